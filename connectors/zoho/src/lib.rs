//! ferry's Zoho CRM connector (API v8): a [`ferry_core::Source`] that pages through Contacts
//! and Accounts, and a [`ferry_core::Sink`] that upserts them keyed by a unique custom field
//! holding each record's source id, and reads them back with COQL for checksum verification.
//!
//! Read top to bottom: [`config`] (settings, data centres), `auth` (the OAuth refresh-token
//! grant), `client` (authenticated calls, the concurrency limit, token renewal on 401),
//! [`policy`] (retries, error bodies), [`mapping`] (canonical ↔ Zoho fields), `coql` (safe
//! query building), [`source`], [`sink`].

pub mod config;
pub mod mapping;
pub mod policy;
pub mod sink;
pub mod source;

mod auth;
mod client;
mod coql;

pub use config::{DataCentre, ZohoConfig};
pub use policy::ZohoPolicy;
pub use sink::ZohoSink;
pub use source::ZohoSource;

/// The vendor's name in config files and messages.
pub const VENDOR: &str = "zoho";

/// The Zoho connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "Zoho CRM API v8 (OAuth refresh token)",
        objects: &[
            ferry_core::ObjectType::Companies,
            ferry_core::ObjectType::Contacts,
        ],
        source: Some(build_source),
        sink: Some(build_sink),
    }
}

fn build_source(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Source>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(ZohoSource::new(config, key_prefix)?))
}

fn build_sink(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Sink>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(ZohoSink::new(config, key_prefix)?))
}
