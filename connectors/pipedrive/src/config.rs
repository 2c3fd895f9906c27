//! The `[source]` / `[sink]` settings of a Pipedrive connector, and their validation.

use std::time::Duration;

use ferry_core::http::{RateLimit, RetrySettings, checked_base_url, checked_retry};
use ferry_core::{ConnectorError, ConnectorResult, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::VENDOR;

/// Pipedrive's API host, used when `base_url` is not set.
pub const DEFAULT_BASE_URL: &str = "https://api.pipedrive.com";
/// The custom field that holds each record's source id, when `source_id_field` is not set.
pub const DEFAULT_SOURCE_ID_FIELD: &str = "Ferry source id";
/// The lowest documented burst limit for API-token requests (20 per 2 s, Essential), the
/// starting point until Pipedrive announces the account's own in `x-ratelimit-limit`.
pub const DEFAULT_RATE_LIMIT_PER_2S: u32 = 20;
/// Search's own limit on every plan: 10 requests per 2 seconds.
pub const DEFAULT_SEARCH_LIMIT_PER_2S: u32 = 10;
/// Pipedrive's largest page ("a maximum value of 500 is allowed"), and the default: a list
/// request costs the same tokens whatever its size.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Records per `upsert` call by default (each is a search and a write of its own).
pub const DEFAULT_BATCH_SIZE: usize = 25;
/// The most records one `upsert` call may carry.
pub const MAX_BATCH_SIZE: usize = 100;
/// Requests in flight per `upsert` / `read_back` call by default.
pub const DEFAULT_CONCURRENCY: usize = 4;
/// `update_time` windows a full read reads side by side by default (`read_windows`). At 150 ms
/// a round trip, 8 windows' pages in flight kept Pipedrive's 80 requests per 2 s only while
/// all 8 were being read: 12 keep it after the first windows end (300,000 persons on a loaded
/// machine: 13,630 to 17,910 records/s in twelve runs, 16,050 with 8 in one; 16 read 16,576/s
/// with more memory; `docs/performance.md`).
pub const DEFAULT_READ_WINDOWS: usize = 12;
/// Most windows read side by side.
pub const MAX_READ_WINDOWS: usize = 16;
/// Most ids one `GET …?ids=` list may carry, and so the read-back chunk.
pub const MAX_IDS_PER_LIST: usize = 100;

/// How to reach a Pipedrive company account, as written in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipedriveConfig {
    /// The personal API token, sent as `x-api-token`, as an environment-variable reference:
    /// `"${PIPEDRIVE_TOKEN}"`.
    pub api_token: SecretRef,
    /// The API's base URL; default `https://api.pipedrive.com` (or your
    /// `https://<company>.pipedrive.com`). Plain `http://` is accepted only on loopback.
    pub base_url: Option<String>,
    /// The *name* of the custom text field (on persons and on organizations) that holds each
    /// record's source id; default "Ferry source id". The sink creates it when it is missing.
    pub source_id_field: Option<String>,
    /// Requests per two seconds ferry allows itself. Unset: 20 (the lowest plan's burst limit)
    /// until Pipedrive's `x-ratelimit-limit` header announces the account's own, which then
    /// replaces it. Set: a cap that an announced limit may lower but never raise.
    pub rate_limit_per_2s: Option<u32>,
    /// Search requests per two seconds; default 10 (Pipedrive's search limit on every plan).
    pub search_rate_limit_per_2s: Option<u32>,
    /// Records per list page, 1 to 500; default 500.
    pub page_size: Option<u32>,
    /// Records per `upsert` call, 1 to 100; default 25. Pipedrive has no batch endpoint, so this
    /// is the unit of concurrency, not of a request.
    pub batch_size: Option<usize>,
    /// Requests in flight within one `upsert` or `read_back` call, 1 to 16; default 4.
    pub concurrency: Option<usize>,
    /// As a source: `update_time` windows a full read of persons, organizations and deals
    /// reads side by side, each its own list cursor, 1 to 16; default 12. 1 reads one cursor.
    pub read_windows: Option<usize>,
    /// Seconds allowed for one request; default 60.
    pub timeout_secs: Option<u64>,
    /// How many times a transient failure (429 burst, 5xx, network) is retried; default 8.
    pub max_retries: Option<usize>,
}

/// Validated settings, with the token read from the environment.
pub(crate) struct Settings {
    pub base_url: Url,
    pub token: SecretString,
    pub source_id_field: String,
    pub rate_limit: RateLimit,
    pub rate_limit_is_cap: bool,
    pub search_rate_limit: RateLimit,
    pub page_size: u32,
    pub batch_size: usize,
    pub concurrency: usize,
    pub read_windows: usize,
    pub retry: RetrySettings,
}

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

impl PipedriveConfig {
    /// A config with every setting at its default and the token read from `api_token`.
    pub fn new(api_token: SecretRef) -> PipedriveConfig {
        PipedriveConfig {
            api_token,
            base_url: None,
            source_id_field: None,
            rate_limit_per_2s: None,
            search_rate_limit_per_2s: None,
            page_size: None,
            batch_size: None,
            concurrency: None,
            read_windows: None,
            timeout_secs: None,
            max_retries: None,
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
            .api_token
            .resolve()
            .map_err(|e| config_error("api_token", e.to_string()))?;
        let source_id_field = self
            .source_id_field
            .as_deref()
            .unwrap_or(DEFAULT_SOURCE_ID_FIELD)
            .trim()
            .to_owned();
        if source_id_field.is_empty() {
            return Err(config_error("source_id_field", "must not be empty".into()));
        }
        let in_range = |name: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(value)
            } else {
                Err(config_error(
                    name,
                    format!("{value} is out of range: 1 to {max}"),
                ))
            }
        };
        let requests = in_range(
            "rate_limit_per_2s",
            self.rate_limit_per_2s.unwrap_or(DEFAULT_RATE_LIMIT_PER_2S) as usize,
            u32::MAX as usize,
        )? as u32;
        let searches = in_range(
            "search_rate_limit_per_2s",
            self.search_rate_limit_per_2s
                .unwrap_or(DEFAULT_SEARCH_LIMIT_PER_2S) as usize,
            u32::MAX as usize,
        )? as u32;
        let page_size = self.page_size.unwrap_or(MAX_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(config_error(
                "page_size",
                format!(
                    "{page_size} is out of range: Pipedrive returns 1 to {MAX_PAGE_SIZE} records per page"
                ),
            ));
        }
        let batch_size = in_range(
            "batch_size",
            self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE),
            MAX_BATCH_SIZE,
        )?;
        let concurrency = in_range(
            "concurrency",
            self.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
            16,
        )?;
        let read_windows = in_range(
            "read_windows",
            self.read_windows.unwrap_or(DEFAULT_READ_WINDOWS),
            MAX_READ_WINDOWS,
        )?;
        let retry = checked_retry(VENDOR, key_prefix, self.timeout_secs, self.max_retries)?;
        Ok(Settings {
            base_url,
            token,
            source_id_field,
            rate_limit: RateLimit::new(requests, Duration::from_secs(2)),
            rate_limit_is_cap: self.rate_limit_per_2s.is_some(),
            search_rate_limit: RateLimit::new(searches, Duration::from_secs(2)),
            page_size,
            batch_size,
            concurrency,
            read_windows,
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_literal_tokens_are_refused() {
        let parse = |v| serde_json::from_value::<PipedriveConfig>(v);
        assert!(parse(serde_json::json!({"api_token": "${X}", "token": "${X}"})).is_err());
        let err = parse(serde_json::json!({"api_token": "0123456789abcdef-hunter2"}))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn errors_name_the_key() {
        let unset = PipedriveConfig::new(SecretRef::env("FERRY_PIPEDRIVE_SURELY_UNSET"));
        match unset.settings("sink") {
            Err(ConnectorError::Config { key, detail, .. }) => {
                assert_eq!(key, "sink.api_token");
                assert!(detail.contains("FERRY_PIPEDRIVE_SURELY_UNSET"));
            }
            _ => panic!("expected a config error"),
        }
        // PATH is set in any test environment; only the named setting is wrong.
        let with = |f: fn(&mut PipedriveConfig)| {
            let mut c = PipedriveConfig::new(SecretRef::env("PATH"));
            f(&mut c);
            match c.settings("source") {
                Err(ConnectorError::Config { key, .. }) => key,
                _ => String::new(),
            }
        };
        assert_eq!(with(|c| c.page_size = Some(501)), "source.page_size");
        assert_eq!(with(|c| c.batch_size = Some(0)), "source.batch_size");
        assert_eq!(with(|c| c.concurrency = Some(64)), "source.concurrency");
        assert_eq!(with(|c| c.read_windows = Some(0)), "source.read_windows");
        assert_eq!(
            with(|c| c.base_url = Some("http://crm.example.com".into())),
            "source.base_url"
        );
        assert_eq!(
            with(|c| c.source_id_field = Some(" ".into())),
            "source.source_id_field"
        );
        assert_eq!(
            with(|c| c.rate_limit_per_2s = Some(0)),
            "source.rate_limit_per_2s"
        );
        assert_eq!(with(|c| c.timeout_secs = Some(0)), "source.timeout_secs");
        assert_eq!(with(|c| c.max_retries = Some(1000)), "source.max_retries");
    }
}
