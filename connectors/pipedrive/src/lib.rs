//! ferry's Pipedrive connector: reads and writes persons (canonical contacts), organizations
//! (canonical companies), deals and notes, with their owners, through Pipedrive's v2 API (v1 for
//! notes), within its documented rate
//! limits (a daily token budget, a two-second burst window, search's own window).
//!
//! Read top to bottom: [`config`] (the settings), [`policy`] (retries, rate-limit headers,
//! error bodies), [`client`] (`x-api-token` auth, the envelope), [`objects`] (the binding
//! table: Pipedrive's side of each object ferry moves), [`mapping`] (Pipedrive shapes
//! ↔ canonical fields), `fields` (field metadata: list and create custom fields),
//! `participants` (a deal's persons), [`notes`] (v1 notes, found by their natural key),
//! `directory` (users, pipelines and stages), [`source`]
//! (cursor paging; `updated_since` for `ferry sync`'s incremental reads), [`sink`] (find by source id, then `PATCH` or `POST`). The sandbox's Pipedrive emulator backs the tests.

mod ahead;
pub mod client;
pub mod config;
mod directory;
mod fields;
pub mod mapping;
pub mod notes;
pub mod objects;
mod participants;
pub mod policy;
pub mod sink;
pub mod source;
mod windows;

pub use client::PipedriveClient;
pub use config::PipedriveConfig;
pub use policy::PipedrivePolicy;
pub use sink::PipedriveSink;
pub use source::PipedriveSource;

/// The vendor's name in config files, messages and logs.
pub const VENDOR: &str = "pipedrive";

/// The Pipedrive connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "Pipedrive API v2 (API token)",
        objects: objects::object_types(),
        source: Some(build_source),
        sink: Some(build_sink),
        permissions,
        excess_scopes: ferry_core::kit::no_excess_scopes,
        account: ferry_core::AccountSettings {
            url_key: "base_url",
            default_url: |_| Some(config::DEFAULT_BASE_URL.to_owned()),
            credentials: &["api_token"],
            copies_marker_key: None,
        },
    }
}

/// What Pipedrive credentials need for a role (`ferry check` prints it).
fn permissions(role: ferry_core::Role) -> ferry_core::Permissions {
    ferry_core::Permissions {
        needs: match role {
            ferry_core::Role::Source => {
                "an API token of a user who can see the organizations, persons and deals to move \
                 (any user may list their fields, the users, pipelines and stages)"
            }
            ferry_core::Role::Sink => {
                "an API token of a user who can add and edit organizations, persons and deals; an admin's \
                 token if ferry is to create custom fields (its source-id field, or mapped fields \
                 with create_missing_fields)"
            }
        },
        visibility: "a Pipedrive API token carries all of its user's rights and has no scopes: use a \
                     dedicated user with the least visibility and permission set that works",
    }
}

fn build_source(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Source>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(PipedriveSource::new(
        config, key_prefix,
    )?))
}

fn build_sink(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Sink>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(PipedriveSink::new(config, key_prefix)?))
}
