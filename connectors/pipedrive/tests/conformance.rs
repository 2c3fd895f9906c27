//! ferry's conformance suite against the Pipedrive connector and emulator.

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_pipedrive::spec(),
        emulator: ferry_sandbox::pipedrive::SPEC,
        // A person needs a `name`: Pipedrive refuses a contact with neither first nor last name.
        refused_contact: Some(ferry_testkit::refusals::missing_name),
    })
}
