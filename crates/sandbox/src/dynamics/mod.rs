//! The dynamics emulator: being written (issue 3).
