//! ferry's HubSpot connector: reads companies, contacts, deals and notes (with each contact's
//! primary company, each deal's primary company and contacts, each note's deals, contacts and
//! companies) from HubSpot's CRM v3 API and v4 associations, and writes them back as a sink
//! (upserts keyed by a unique source-id property, the associations, email opt-outs), within
//! HubSpot's documented rate limits.
//!
//! Read top to bottom: [`config`] (the settings), [`policy`] (retries, rate-limit headers,
//! error bodies), [`client`] (auth and requests), [`objects`] (the table of what each object is
//! in HubSpot: paths, properties, associations, subscriptions), [`mapping`] (HubSpot properties
//! ↔ canonical fields), [`fields`] (the properties API as field metadata, creating
//! properties), [`source`] (paging), [`sink`] (writing and reading back). The sandbox's HubSpot
//! emulator backs the tests.

pub mod client;
pub mod config;
mod directory;
pub mod fields;
mod links;
pub mod mapping;
pub mod objects;
pub mod policy;
pub mod preferences;
pub mod sink;
pub mod source;

pub use client::HubspotClient;
pub use config::HubspotConfig;
pub use policy::HubspotPolicy;
pub use sink::HubspotSink;
pub use source::HubspotSource;

/// The vendor's name in config files, messages and logs.
pub const VENDOR: &str = "hubspot";

/// The HubSpot connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "HubSpot CRM API v3 (private-app token)",
        objects: &objects::OBJECT_TYPES,
        source: Some(build_source),
        sink: Some(build_sink),
        permissions,
        excess_scopes: ferry_core::kit::no_excess_scopes,
        account: ferry_core::AccountSettings {
            url_key: "base_url",
            default_url: |_| Some(config::DEFAULT_BASE_URL.to_owned()),
            credentials: &["token"],
            copies_marker_key: Some("source_id_property"),
        },
    }
}

/// What HubSpot credentials need for a role (`ferry check` prints it).
fn permissions(role: ferry_core::Role) -> ferry_core::Permissions {
    ferry_core::Permissions {
        needs: match role {
            ferry_core::Role::Source => {
                "private-app scopes crm.objects.companies.read, crm.objects.contacts.read (contacts \
                 and notes), crm.objects.deals.read, crm.objects.owners.read, \
                 communication_preferences.read, and crm.schemas.companies.read, \
                 crm.schemas.contacts.read and crm.schemas.deals.read (the properties API, for \
                 field metadata); no write scope"
            }
            ferry_core::Role::Sink => {
                "private-app scopes crm.objects.companies.read/.write, crm.objects.contacts.read/.write \
                 (contacts and notes), crm.objects.deals.read/.write, crm.objects.owners.read, \
                 crm.schemas.companies.read/.write, crm.schemas.contacts.read/.write and \
                 crm.schemas.deals.read/.write (field metadata, the source-id property and created \
                 custom properties), communication_preferences.read_write"
            }
        },
        visibility: "HubSpot's CRM API does not expose a private-app token's scopes: review them in \
                     Settings > Integrations > Private apps",
    }
}

fn build_source(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Source>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(HubspotSource::new(config, key_prefix)?))
}

fn build_sink(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Sink>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(HubspotSink::new(config, key_prefix)?))
}
