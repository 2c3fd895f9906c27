//! The conformance suite (`ferry-testkit`) against the Salesforce emulator with Bulk API 2.0
//! on for every object the suite writes (`bulk_threshold = 1`): every write an ingest job,
//! every read-back a query job. Jobs of 1,000 records (`bulk_job_records`), so the suite's full
//! batches stay small.

/// The emulator's connector settings, with `bulk_threshold = 1` and `bulk_job_records = 1000`.
fn bulk_settings(base_url: &str) -> Vec<(&'static str, String)> {
    let mut settings = (ferry_sandbox::salesforce::SPEC.connector_settings)(base_url);
    settings.push(("bulk_threshold", "1".to_owned()));
    settings.push(("bulk_job_records", "1000".to_owned()));
    settings
}

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_salesforce::spec(),
        emulator: ferry_sandbox::EmulatorSpec {
            connector_settings: bulk_settings,
            ..ferry_sandbox::salesforce::SPEC
        },
        refused_contact: Some(ferry_testkit::refusals::missing_last_name),
    })
}
