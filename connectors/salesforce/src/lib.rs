//! ferry's Salesforce connector, both roles over one config, client and mapping:
//! - a [`ferry_core::Source`] that reads Accounts, Contacts, Opportunities (with their contact
//!   roles, a page of opportunities at a time) and Notes with SOQL in `Id` order, paging through
//!   `nextRecordsUrl`;
//! - a [`ferry_core::Sink`] that upserts Accounts, Contacts and Opportunities through sObject
//!   Collections keyed by an External ID field holding each record's source id, brings each
//!   opportunity's contact roles to its contacts, writes Notes keyed by their title (a Note takes
//!   no custom field), and reads them back with SOQL for checksum verification; an object of
//!   at least `bulk_threshold` records through Bulk API 2.0 jobs instead.
//!
//! Read top to bottom: [`config`] (the settings), `auth` (OAuth client credentials), `client`
//! (authenticated calls, token renewal, queries and paging), [`policy`] (retries and error
//! details), [`mapping`] (canonical ↔ Salesforce fields), [`fields`] (field metadata: describe
//! and creating custom fields), `currency` (single-currency orgs), `soql` (safe query building),
//! `directory` (users and stages), `links` (contact roles), `notes`, [`source`], [`sink`];
//! [`bulk`], the Bulk API 2.0 client the sink writes and reads back large objects through
//! (`bulk_threshold`).

pub mod bulk;
pub mod config;
pub mod fields;
pub mod mapping;
pub mod policy;
pub mod sink;
pub mod source;

mod auth;
mod client;
mod currency;
mod directory;
mod links;
mod notes;
mod soql;

pub use config::SalesforceConfig;
pub use directory::{PIPELINE_ID, PIPELINE_LABEL};
pub use policy::SalesforcePolicy;
pub use sink::SalesforceSink;
pub use source::SalesforceSource;

/// The vendor's name in config files and messages.
pub const VENDOR: &str = "salesforce";

/// The Salesforce connector in ferry's registry.
pub fn spec() -> ferry_core::ConnectorSpec {
    ferry_core::ConnectorSpec {
        name: VENDOR,
        title: "Salesforce REST API (OAuth 2.0 client credentials)",
        objects: &mapping::OBJECT_TYPES,
        source: Some(build_source),
        sink: Some(build_sink),
        permissions,
        excess_scopes,
        account: ferry_core::AccountSettings {
            url_key: "login_url",
            default_url: |_| Some(config::DEFAULT_LOGIN_URL.to_owned()),
            credentials: &["client_id", "client_secret"],
            copies_marker_key: None,
        },
    }
}

/// What Salesforce credentials need for a role (`ferry check` prints it).
fn permissions(role: ferry_core::Role) -> ferry_core::Permissions {
    ferry_core::Permissions {
        needs: match role {
            ferry_core::Role::Source => {
                "OAuth scope `api`; a run-as user with Read (not Create, Edit or Delete) on Account, Contact, \
                 Opportunity, OpportunityContactRole and Note (and on User and OpportunityStage, for owners and \
                 stages), and read access (field-level security) to every custom field mapped"
            }
            ferry_core::Role::Sink => {
                "OAuth scope `api`; a run-as user with Read, Create and Edit on Account, Contact, Opportunity \
                 and Note, Read, Create, Edit and Delete on OpportunityContactRole (a deal's contacts) and Delete \
                 on Note (a note whose parent changed is created again), Read on User and OpportunityStage, and \
                 \"Set Audit Fields upon Record Creation\" (a note keeps its original time), and Customize \
                 Application once, if the external-id field must be created on Account, Contact and \
                 Opportunity; to create \
                 missing custom fields (`create_missing_fields`), also Customize Application, View Setup \
                 and Configuration, and Manage Profiles and Permission Sets (ferry grants the new field's \
                 field-level security on the run-as user's profile)"
            }
        },
        visibility: "shown once a token is fetched; object rights come from the run-as user's profile and \
                     permission sets",
    }
}

/// `full` grants everything the user can do, including setup; ferry needs `api`.
fn excess_scopes(_role: ferry_core::Role, granted: &[String]) -> Vec<String> {
    granted.iter().filter(|s| *s == "full").cloned().collect()
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

fn build_source(
    settings: serde_json::Value,
    key_prefix: &str,
) -> ferry_core::ConnectorResult<std::sync::Arc<dyn ferry_core::Source>> {
    let config = ferry_core::kit::parse_settings(VENDOR, settings, key_prefix)?;
    Ok(std::sync::Arc::new(SalesforceSource::new(
        config, key_prefix,
    )?))
}

#[cfg(test)]
mod tests {
    use ferry_core::Role;

    #[test]
    fn broad_scopes_are_flagged() {
        let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let excess = super::spec().excess_scopes;
        assert!(excess(Role::Sink, &scopes(&["api"])).is_empty());
        assert_eq!(excess(Role::Source, &scopes(&["api", "full"])), ["full"]);
    }
}
