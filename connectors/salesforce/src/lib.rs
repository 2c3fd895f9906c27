//! ferry connector for salesforce: to be written.
