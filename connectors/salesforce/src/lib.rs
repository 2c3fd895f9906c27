//! ferry's Salesforce connector: a [`ferry_core::Sink`] that upserts Accounts and Contacts
//! through sObject Collections keyed by an External ID field holding each record's source id,
//! and reads them back with SOQL for checksum verification.
//!
//! Read top to bottom: [`config`] (the settings), `auth` (OAuth client credentials), `client`
//! (authenticated calls, token renewal), [`policy`] (retries and error details), [`mapping`]
//! (canonical ↔ Salesforce fields), `soql` (safe query building), [`sink`].

pub mod config;
pub mod mapping;
pub mod policy;
pub mod sink;

mod auth;
mod client;
mod soql;

pub use config::SalesforceConfig;
pub use policy::SalesforcePolicy;
pub use sink::SalesforceSink;

/// The vendor's name in config files and messages.
pub const VENDOR: &str = "salesforce";
