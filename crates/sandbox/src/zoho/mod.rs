//! The zoho emulator: being written (issue 3).
