//! The pipedrive emulator: being written (issue 3).
