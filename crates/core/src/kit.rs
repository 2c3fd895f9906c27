//! The connector kit: what a connector crate exports so the binary can list and build it.
//!
//! A connector crate exports one `pub fn spec() -> ConnectorSpec`. The binary's registry is a
//! list of those calls, so adding a vendor is its own folder plus one registration line.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::connector::{Capability, Sink, Source};
use crate::error::{ConnectorError, ConnectorResult};
use crate::model::ObjectType;

/// Builds a source from its config table (as JSON); errors name keys under `key_prefix`.
pub type BuildSource =
    fn(settings: serde_json::Value, key_prefix: &str) -> ConnectorResult<Arc<dyn Source>>;
/// Builds a sink from its config table (as JSON); errors name keys under `key_prefix`.
pub type BuildSink =
    fn(settings: serde_json::Value, key_prefix: &str) -> ConnectorResult<Arc<dyn Sink>>;

/// What a connector is and can do.
#[derive(Clone, Copy)]
pub struct ConnectorSpec {
    /// The name used in config files: `connector = "hubspot"`.
    pub name: &'static str,
    /// The vendor and API, for people: "HubSpot CRM API v3".
    pub title: &'static str,
    /// The object types it can read and write.
    pub objects: &'static [ObjectType],
    /// How to build it as a source, if it can be one.
    pub source: Option<BuildSource>,
    /// How to build it as a sink, if it can be one.
    pub sink: Option<BuildSink>,
    /// What its credentials need for a role, and where the operator can see what they grant
    /// (`ferry check` prints it).
    pub permissions: fn(Role) -> Permissions,
    /// The granted scopes that give more than a role needs, for vendors whose scopes say so
    /// (credentials that can delete records should not be lying around for a read-only source).
    pub excess_scopes: fn(Role, &[String]) -> Vec<String>,
    /// Which settings name the account the connector reaches, for the same-account guard.
    pub account: AccountSettings,
}

/// Where a connector's settings say which account it reaches: two tables of the same connector
/// with the same account URL and the same credential references name the same account.
#[derive(Clone, Copy)]
pub struct AccountSettings {
    /// The key holding the account's URL (`base_url`, `environment_url`, …).
    pub url_key: &'static str,
    /// The account URL when `url_key` is unset, from the other settings (given as JSON);
    /// `None` when they do not determine one.
    pub default_url: fn(settings: &serde_json::Value) -> Option<String>,
    /// The keys holding credential references.
    pub credentials: &'static [&'static str],
    /// The sink setting naming the field that holds each record's source id, for connectors
    /// whose source can leave out the copies ferry wrote (a copy within one account): the
    /// source reads the same setting. `None`: the source cannot tell copies apart.
    pub copies_marker_key: Option<&'static str>,
}

/// The part a connector plays in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read from.
    Source,
    /// Written to.
    Sink,
}

impl Role {
    /// Both roles, in the order `ferry check` reports them.
    pub const ALL: [Role; 2] = [Role::Source, Role::Sink];

    /// The config table's name: `"source"` or `"sink"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Source => "source",
            Role::Sink => "sink",
        }
    }
}

/// What a vendor's credentials need for a role, and whether ferry can see what they grant.
#[derive(Clone, Copy, Debug)]
pub struct Permissions {
    /// The least the migration needs.
    pub needs: &'static str,
    /// Whether and where the vendor exposes what the credentials grant.
    pub visibility: &'static str,
}

/// [`ConnectorSpec::excess_scopes`] for vendors whose grants ferry cannot judge (no scopes, or
/// scopes the token does not carry): nothing is flagged.
pub fn no_excess_scopes(_role: Role, _granted: &[String]) -> Vec<String> {
    Vec::new()
}

/// A setting's number written as a number or as a string of digits (`deserialize_with`): the
/// conformance suite and `ferry sandbox` hand every setting over as text, so `"1000"` must
/// mean the same as `1000`.
pub fn lenient_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + serde::Deserialize<'de>,
{
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum NumberOrText<T> {
        Number(T),
        Text(String),
    }
    match <Option<NumberOrText<T>> as serde::Deserialize>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

/// Parses a connector's config table into its config type. Errors name the table and the key
/// serde complains about (`unknown field`, `missing field`), never a value.
pub fn parse_settings<T: DeserializeOwned>(
    vendor: &'static str,
    settings: serde_json::Value,
    key_prefix: &str,
) -> ConnectorResult<T> {
    serde_path_to_error::deserialize(settings).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." || path.is_empty() {
            key_prefix.to_owned()
        } else {
            format!("{key_prefix}.{path}")
        };
        ConnectorError::Config {
            vendor,
            key,
            detail: without_value(&e.into_inner().to_string()),
        }
    })
}

/// serde's type errors quote the offending value (`invalid type: integer `123`, expected a
/// string`); a value typed into a secret's key, or a secret pasted under the wrong key, would be
/// echoed. Keeps the key (named by the caller), the type given and what was expected; never the
/// value, whatever the key (ferry cannot tell a secret pasted in the wrong place from a typo).
pub fn without_value(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let (given, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
            // serde's `Unexpected` reads `string "…"`, `integer `…``, `floating point `…``,
            // `boolean `…``, `sequence`, `map`: the kind comes before any quote.
            let kind = given
                .split(['`', '"', '\''])
                .next()
                .unwrap_or_default()
                .trim();
            let kind = if kind.is_empty() { "a value" } else { kind };
            let expected = if expected.is_empty() {
                "another value"
            } else {
                expected
            };
            return format!(
                "{}: {kind} given (value not shown), expected {expected}",
                prefix.trim_end_matches(": ")
            );
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest
            .split_once(", expected ")
            .map(|(_, e)| e)
            .unwrap_or("another value");
        return format!("unknown value (not shown), expected {expected}");
    }
    message.to_owned()
}

/// A row of a connector's binding table (one per object it moves).
pub trait ObjectRow {
    /// The object the row binds.
    fn object(&self) -> ObjectType;
}

/// The row of `object` in a connector's binding table, or the refusal of an object the connector
/// does not move ([`Capability::unsupported`], naming `vendor` and the object).
pub fn row_of<'a, R: ObjectRow>(
    vendor: &'static str,
    rows: &'a [R],
    object: ObjectType,
) -> ConnectorResult<&'a R> {
    rows.iter()
        .find(|row| row.object() == object)
        .ok_or_else(|| Capability::unsupported(vendor, object))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(ObjectType);

    impl ObjectRow for Row {
        fn object(&self) -> ObjectType {
            self.0
        }
    }

    #[test]
    fn a_table_finds_its_rows_and_refuses_any_other_object_by_name() {
        static TICKETS: crate::model::ObjectSpec = crate::model::ObjectSpec {
            name: "tickets",
            fields: &[],
        };
        let rows = [Row(ObjectType::COMPANIES), Row(ObjectType::CONTACTS)];
        assert_eq!(
            row_of("acme", &rows, ObjectType::CONTACTS)
                .map(|r| r.0)
                .ok(),
            Some(ObjectType::CONTACTS)
        );
        for (table, object) in [
            (&rows[..], ObjectType::new(&TICKETS)),
            (&rows[..1], ObjectType::CONTACTS),
            (&[][..], ObjectType::COMPANIES),
        ] {
            match row_of("acme", table, object).map(|r| r.0) {
                Err(ConnectorError::Unsupported { vendor, detail }) => {
                    assert_eq!(vendor, "acme");
                    assert!(detail.contains(object.as_str()), "{detail}");
                }
                other => panic!("{object} not refused: {other:?}"),
            }
        }
    }
    use crate::secret::SecretRef;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        token: SecretRef,
        page_size: Option<u32>,
    }

    #[test]
    fn errors_name_the_table_and_key_but_not_values() {
        let err = parse_settings::<Example>(
            "v",
            serde_json::json!({"token": "${T}", "pagesize": 5}),
            "source",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("`source.pagesize`"), "{err}");
        let err = parse_settings::<Example>("v", serde_json::json!({"token": "hunter2"}), "source")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source.token")
                && err.contains("environment variable")
                && !err.contains("hunter2"),
            "{err}"
        );
        let err = parse_settings::<Example>("v", serde_json::json!({"token": 8675309}), "sink")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sink.token") && err.contains("invalid type") && !err.contains("8675309"),
            "{err}"
        );
        // The key, the type given and the type expected; never the value.
        let err = parse_settings::<Example>(
            "v",
            serde_json::json!({"token": "${T}", "page_size": "pat-na1-secret"}),
            "sink",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("sink.page_size")
                && err.contains("string given")
                && err.contains("expected u32")
                && !err.contains("pat-na1-secret"),
            "{err}"
        );
        let err = parse_settings::<Example>(
            "v",
            serde_json::json!({"token": "${T}", "page_size": -7}),
            "sink",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("integer given") && !err.contains("-7"),
            "{err}"
        );
        let err = parse_settings::<Example>("v", serde_json::json!({}), "sink")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `token`"), "{err}");
    }
}
