//! ferry connector for hubspot: to be written.
