//! ferry's HubSpot connector: reads companies and contacts (with each contact's primary
//! company) from HubSpot's CRM v3 API, within HubSpot's documented rate limits.
//!
//! Read top to bottom: [`config`] (the settings), [`policy`] (retries, rate-limit headers,
//! error bodies), [`client`] (auth and requests), [`mapping`] (HubSpot properties ↔ canonical
//! fields), [`source`] (paging). The sandbox's HubSpot emulator backs the tests.

pub mod client;
pub mod config;
pub mod mapping;
pub mod policy;
pub mod source;

pub use client::HubspotClient;
pub use config::HubspotConfig;
pub use policy::HubspotPolicy;
pub use source::HubspotSource;

/// The vendor's name in config files, messages and logs.
pub const VENDOR: &str = "hubspot";
