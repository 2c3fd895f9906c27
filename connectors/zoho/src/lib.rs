//! ferry's Zoho CRM connector (API v8): a [`ferry_core::Source`] that pages through Accounts,
//! Contacts, Deals (with their contact roles) and Notes, and a [`ferry_core::Sink`] that writes
//! them keyed by a unique custom field holding each record's source id (upserts; Notes, which
//! Zoho cannot upsert, by insert or update), and reads them back for checksum verification.
//!
//! Read top to bottom: [`config`] (settings, data centres), `auth` (the OAuth refresh-token
//! grant), `client` (authenticated calls, the concurrency limit, token renewal on 401),
//! [`policy`] (retries, error bodies), [`mapping`] (canonical ↔ Zoho fields), `fields`
//! (field metadata: describe, mapped fields, creating fields), `coql` (safe query building),
//! `currency` (single-currency orgs), [`gdpr`] (the GDPR consent record of contacts),
//! [`source`], [`sink`].

pub mod config;
pub mod gdpr;
pub mod mapping;
pub mod policy;
pub mod sink;
pub mod source;

mod auth;
mod client;
mod coql;
mod currency;
mod directory;
mod fields;
mod roles;

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
        objects: mapping::objects(),
        source: Some(build_source),
        sink: Some(build_sink),
        permissions,
        excess_scopes,
        account: ferry_core::AccountSettings {
            url_key: "api_url",
            default_url: default_api_url,
            credentials: &["client_id", "client_secret", "refresh_token"],
            copies_marker_key: None,
        },
    }
}

/// The API domain when `api_url` is unset: the data centre's (`com` by default).
fn default_api_url(settings: &serde_json::Value) -> Option<String> {
    let dc = match settings.get("data_centre") {
        Some(value) => DataCentre::parse(value.as_str()?)?,
        None => DataCentre::Us,
    };
    Some(dc.api_url().to_owned())
}

/// What Zoho credentials need for a role (`ferry check` prints it).
fn permissions(role: ferry_core::Role) -> ferry_core::Permissions {
    ferry_core::Permissions {
        needs: match role {
            ferry_core::Role::Source => {
                "scopes ZohoCRM.modules.accounts.READ, ZohoCRM.modules.contacts.READ, \
                 ZohoCRM.modules.deals.READ, ZohoCRM.modules.notes.READ, ZohoCRM.coql.READ, \
                 ZohoCRM.settings.fields.READ, ZohoCRM.settings.layouts.READ, \
                 ZohoCRM.settings.pipeline.READ, ZohoCRM.users.READ, ZohoCRM.org.READ (the org id \
                 that tells two accounts apart; not ZohoCRM.modules.ALL, which includes delete)"
            }
            ferry_core::Role::Sink => {
                "scopes ZohoCRM.modules.accounts.READ,CREATE,UPDATE and the same for contacts, \
                 deals and notes, ZohoCRM.coql.READ, \
                 ZohoCRM.settings.fields.READ, ZohoCRM.settings.layouts.READ, \
                 ZohoCRM.settings.pipeline.READ, ZohoCRM.settings.contact_roles.READ, \
                 ZohoCRM.users.READ, ZohoCRM.org.READ (no DELETE, unless `[sync] deletes` is \
                 \"archive\" or \"delete\": then ZohoCRM.modules.<module>.DELETE too, which \
                 `ferry check` still names as beyond a migration's needs); \
                 with create_missing_fields also ZohoCRM.settings.fields.CREATE, held by a user \
                 whose profile may customize modules (an administrator)"
            }
        },
        visibility: "shown once a token is fetched",
    }
}

/// `ZohoCRM.modules.ALL` includes delete; writes are not a source's business.
fn excess_scopes(role: ferry_core::Role, granted: &[String]) -> Vec<String> {
    granted
        .iter()
        .filter(|s| {
            let upper = s.to_ascii_uppercase();
            upper.ends_with(".ALL")
                || upper.contains("DELETE")
                || (role == ferry_core::Role::Source
                    && (upper.contains("CREATE")
                        || upper.contains("UPDATE")
                        || upper.contains("WRITE")))
        })
        .cloned()
        .collect()
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

#[cfg(test)]
mod tests {
    use ferry_core::Role;

    #[test]
    fn broad_scopes_are_flagged() {
        let scopes = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let excess = super::spec().excess_scopes;
        let zoho = scopes(&["ZohoCRM.modules.ALL", "ZohoCRM.coql.READ"]);
        assert_eq!(excess(Role::Source, &zoho), ["ZohoCRM.modules.ALL"]);
        assert!(!excess(Role::Sink, &zoho).is_empty(), "ALL includes delete");
        let narrow = scopes(&["ZohoCRM.modules.contacts.READ", "ZohoCRM.coql.READ"]);
        assert!(excess(Role::Source, &narrow).is_empty());
        let writes = scopes(&["ZohoCRM.modules.contacts.CREATE"]);
        assert!(
            excess(Role::Source, &writes).len() == 1,
            "a source does not write"
        );
        assert!(excess(Role::Sink, &writes).is_empty());
    }
}
