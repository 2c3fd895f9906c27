//! ferry's Microsoft Dynamics 365 / Dataverse connector: reads and writes accounts, contacts
//! (with each contact's parent account and email opt-out), opportunities (deals: stage, won and
//! lost, account and contact) and annotations (notes on a deal, contact or account), each with
//! its owner, through the Dataverse Web API v9.2, authenticated as an application user with
//! OAuth 2.0 client credentials.
//!
//! Writes are upserts by an alternate key holding each record's source id, sent as one
//! `$batch` per upsert call with `odata.continue-on-error`; reads page with
//! `@odata.nextLink`, and `ferry sync`'s incremental reads filter and order on `modifiedon`;
//! read-back filters on the alternate key.
//!
//! Read top to bottom: [`config`] (the settings), [`policy`] (error bodies), `client` (token,
//! concurrency, requests), [`mapping`] (canonical ↔ Dataverse columns), `fields` (column
//! definitions: describe, mapped and created columns), `batch` (multipart bodies), [`source`],
//! [`sink`].

pub mod config;
pub mod mapping;
pub mod policy;
pub mod sink;
pub mod source;

mod batch;
mod client;
mod directory;
mod fields;
mod state;

pub use config::DynamicsConfig;
pub use policy::DynamicsPolicy;
pub use sink::DynamicsSink;
pub use source::DynamicsSource;

/// The vendor's name in config files, messages and logs.
pub const VENDOR: &str = "dynamics";

/// The Dynamics 365 connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "Microsoft Dynamics 365 / Dataverse Web API v9.2 (OAuth 2.0 client credentials)",
        objects: mapping::objects(),
        source: Some(build_source),
        sink: Some(build_sink),
        permissions,
        excess_scopes: ferry_core::kit::no_excess_scopes,
        account: ferry_core::AccountSettings {
            url_key: "environment_url",
            default_url: |_| None,
            credentials: &["client_id", "client_secret"],
            copies_marker_key: None,
        },
    }
}

/// What Dataverse credentials need for a role (`ferry check` prints it).
fn permissions(role: ferry_core::Role) -> ferry_core::Permissions {
    ferry_core::Permissions {
        needs: match role {
            ferry_core::Role::Source => {
                "an application user whose security role has Read on Account, Contact, Opportunity, Note, \
                 User, Currency, Process and Process Stage only"
            }
            ferry_core::Role::Sink => {
                "an application user whose security role has Read, Create and Write on Account, \
                 Contact, Opportunity and Note, Create on Opportunity Close (to close won and lost \
                 deals), Assign on those tables (to set owners), Read on User, Currency, Process \
                 and Process Stage (no Delete unless `[sync] deletes = \"delete\"`: then Delete on \
                 those four tables); with create_missing_fields, also the System Customizer role \
                 (to create columns); with `[sync] state = \"sink\"`, Create, Read and Write on \
                 Environment Variable Definition and Environment Variable Value"
            }
        },
        visibility: "Dataverse rights come from the application user's security role, which the token \
                     does not carry: review it in the Power Platform admin center",
    }
}

fn build_source(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Source>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(DynamicsSource::new(
        config, key_prefix,
    )?))
}

fn build_sink(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Sink>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(DynamicsSink::new(config, key_prefix)?))
}
