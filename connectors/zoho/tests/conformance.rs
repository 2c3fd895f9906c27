//! The conformance suite (`ferry-testkit`) against the Zoho emulator.

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_zoho::spec(),
        emulator: ferry_sandbox::zoho::SPEC,
        refused_contact: Some(ferry_testkit::refusals::missing_last_name),
    })
}
