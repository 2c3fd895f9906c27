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

/// The Salesforce connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "Salesforce REST API (OAuth 2.0 client credentials)",
        objects: &[
            ferry_core::ObjectType::Companies,
            ferry_core::ObjectType::Contacts,
        ],
        source: None,
        sink: Some(build_sink),
    }
}

fn build_sink(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Sink>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(SalesforceSink::new(
        config, key_prefix,
    )?))
}
