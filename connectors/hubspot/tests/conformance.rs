//! The conformance suite (`ferry-testkit`) against the HubSpot emulator.

fn main() -> std::process::ExitCode {
    ferry_testkit::run(ferry_testkit::Target {
        connector: ferry_hubspot::spec(),
        emulator: ferry_sandbox::hubspot::SPEC,
        // HubSpot requires no contact property; only a value over its 65,536-character
        // property limit is refused.
        refused_contact: Some(ferry_testkit::refusals::overlong_value),
    })
}
