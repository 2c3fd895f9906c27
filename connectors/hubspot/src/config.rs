//! The `[source]` and `[sink]` settings of a HubSpot connector, and their validation. One config
//! type serves both roles; settings that only one role uses say so.

use std::time::Duration;

use ferry_core::http::{RateLimit, RetrySettings, checked_base_url, checked_retry};
use ferry_core::{ConnectorError, ConnectorResult, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::VENDOR;

/// HubSpot's API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.hubapi.com";
/// HubSpot's burst limit for a private app on Free and Starter (Professional and Enterprise
/// allow 190 per 10 s, with the API limit increase 250).
pub const DEFAULT_RATE_LIMIT_PER_10S: u32 = 100;
/// HubSpot's largest list page, and the default page size.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The custom property that holds each record's source id in a HubSpot sink, by default.
pub const DEFAULT_SOURCE_ID_PROPERTY: &str = "ferry_source_id";
/// The longest internal property name ferry accepts (HubSpot's own limit is not documented
/// in the sources ferry follows; its internal names are far shorter).
const MAX_PROPERTY_NAME: usize = 100;

/// How to reach a HubSpot account, as written in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubspotConfig {
    /// The API's base URL; default `https://api.hubapi.com`. Plain `http://` is accepted only
    /// on loopback (the sandbox emulator).
    pub base_url: Option<String>,
    /// The private-app access token, as an environment-variable reference: `"${HUBSPOT_TOKEN}"`.
    pub token: SecretRef,
    /// Requests per ten seconds ferry allows itself. Unset: 100 (the private-app burst limit on
    /// Free/Starter) until HubSpot's `X-HubSpot-RateLimit-Max` header announces the account's
    /// own limit, which then replaces it, higher or lower (190 on Professional). Set: a cap that
    /// an announced limit may lower but never raise, to leave headroom for other apps.
    pub rate_limit_per_10s: Option<u32>,
    /// Records per list page, 1 to 100; default 100 (HubSpot's maximum).
    pub page_size: Option<u32>,
    /// Seconds allowed for one request, first byte to last; default 60.
    pub timeout_secs: Option<u64>,
    /// How many times a transient failure (429, 5xx, 423, 477, network) is retried; default 8.
    pub max_retries: Option<usize>,
    /// Sink only: the internal name of the unique custom property, on both contacts and
    /// companies, that holds each record's source id (upserts are keyed by it, so reruns update
    /// instead of duplicating); default `ferry_source_id`. `prepare` creates it when missing.
    pub source_id_property: Option<String>,
    /// Source only: whether a full read splits each object between the list endpoint, reading
    /// up from the lowest id, and CRM search lanes reading down from the highest, side by side
    /// (see `docs/connectors/hubspot.md`); default `true` (`false`: the list alone).
    pub read_partitions: Option<bool>,
}

/// Validated settings, with the token read from the environment.
pub(crate) struct Settings {
    pub base_url: Url,
    pub token: SecretString,
    pub rate_limit: RateLimit,
    /// Whether the operator set `rate_limit`: then it is a cap on announced limits.
    pub rate_limit_is_cap: bool,
    pub page_size: u32,
    pub retry: RetrySettings,
    /// The sink's source-id property (validated even for a source, where it is unused).
    pub source_id_property: String,
}

/// The settings a role needs besides the client: what [`crate::HubspotClient`]'s constructor
/// hands back.
pub(crate) struct RoleSettings {
    pub page_size: u32,
    pub source_id_property: String,
    /// Whether a source splits its full reads between the list and search (`read_partitions`).
    pub read_partitions: bool,
}

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

impl HubspotConfig {
    /// A config with every setting at its default and the token read from `token`.
    pub fn new(token: SecretRef) -> HubspotConfig {
        HubspotConfig {
            base_url: None,
            token,
            rate_limit_per_10s: None,
            page_size: None,
            timeout_secs: None,
            max_retries: None,
            source_id_property: None,
            read_partitions: None,
        }
    }

    /// Validates the settings and resolves the token; errors name `key_prefix.<key>`.
    pub(crate) fn settings(&self, key_prefix: &str) -> ConnectorResult<Settings> {
        let config_error = |name: &str, detail: String| ConnectorError::Config {
            vendor: VENDOR,
            key: key(key_prefix, name),
            detail,
        };
        let base_url = checked_base_url(
            VENDOR,
            &key(key_prefix, "base_url"),
            self.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL),
        )?;
        let token = self
            .token
            .resolve()
            .map_err(|e| config_error("token", e.to_string()))?;
        let requests = self
            .rate_limit_per_10s
            .unwrap_or(DEFAULT_RATE_LIMIT_PER_10S);
        if requests == 0 {
            return Err(config_error(
                "rate_limit_per_10s",
                "must be at least 1".into(),
            ));
        }
        let page_size = self.page_size.unwrap_or(MAX_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(config_error(
                "page_size",
                format!(
                    "{page_size} is out of range: HubSpot returns 1 to {MAX_PAGE_SIZE} records per page"
                ),
            ));
        }
        let retry = checked_retry(VENDOR, key_prefix, self.timeout_secs, self.max_retries)?;
        let source_id_property = self
            .source_id_property
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCE_ID_PROPERTY.to_owned());
        let name_ok = source_id_property.len() <= MAX_PROPERTY_NAME
            && source_id_property.starts_with(|c: char| c.is_ascii_lowercase())
            && source_id_property
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(config_error(
                "source_id_property",
                format!(
                    "must be a HubSpot internal property name: lower-case letters, digits and underscores, \
                     starting with a letter, at most {MAX_PROPERTY_NAME} characters"
                ),
            ));
        }
        Ok(Settings {
            base_url,
            token,
            rate_limit: RateLimit::new(requests, Duration::from_secs(10)),
            rate_limit_is_cap: self.rate_limit_per_10s.is_some(),
            page_size,
            retry,
            source_id_property,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_like: serde_json::Value) -> Result<HubspotConfig, serde_json::Error> {
        serde_json::from_value(toml_like)
    }

    #[test]
    fn unknown_keys_and_literal_tokens_are_refused() {
        assert!(parse(serde_json::json!({"token": "${X}", "pagesize": 5})).is_err());
        let err = parse(serde_json::json!({"token": "pat-na1-secret"}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pat-na1-secret"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let unset = HubspotConfig::new(SecretRef::env("FERRY_HUBSPOT_SURELY_UNSET"));
        match unset.settings("source") {
            Err(ConnectorError::Config { key, detail, .. }) => {
                assert_eq!(key, "source.token");
                assert!(detail.contains("FERRY_HUBSPOT_SURELY_UNSET"));
            }
            _ => panic!("expected a config error"),
        }
        let plain = HubspotConfig {
            base_url: Some("http://crm.example.com".into()),
            ..unset.clone()
        };
        let err = plain
            .settings("source")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("source.base_url"), "{err}");
    }

    #[test]
    fn source_id_property_must_be_an_internal_name() {
        let config = HubspotConfig {
            source_id_property: Some("Ferry Source Id".into()),
            ..HubspotConfig::new(SecretRef::env("PATH"))
        };
        match config.settings("sink") {
            Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "sink.source_id_property"),
            _ => panic!("expected a config error"),
        }
        let default = HubspotConfig::new(SecretRef::env("PATH"));
        assert_eq!(
            default.settings("sink").map(|s| s.source_id_property).ok(),
            Some(DEFAULT_SOURCE_ID_PROPERTY.to_owned())
        );
    }

    #[test]
    fn page_size_over_100_is_a_config_error() {
        // PATH is set in any test environment; only the page size is wrong here.
        let config = HubspotConfig {
            page_size: Some(101),
            ..HubspotConfig::new(SecretRef::env("PATH"))
        };
        match config.settings("source") {
            Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "source.page_size"),
            _ => panic!("expected a config error"),
        }
    }
}
