//! The conformance suite (`ferry-testkit`) against the Salesforce emulator.

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_salesforce::spec(),
        emulator: ferry_sandbox::salesforce::SPEC,
        refused_contact: Some(ferry_testkit::refusals::missing_last_name),
    })
}
