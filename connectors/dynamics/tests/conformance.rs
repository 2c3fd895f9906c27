//! The conformance suite against the Dataverse emulator (see `ferry_testkit`).

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_dynamics::spec(),
        emulator: ferry_sandbox::dynamics::SPEC,
        // Dataverse does not enforce the business-required last name; it refuses a job title
        // over its 100 characters.
        refused_contact: Some(ferry_testkit::refusals::overlong_job_title),
    })
}
