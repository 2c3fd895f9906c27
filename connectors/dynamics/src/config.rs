//! The `[source]` / `[sink]` settings of a Dynamics 365 / Dataverse connector, and their
//! validation (no I/O).

use std::time::Duration;

use ferry_core::http::{RateLimit, RetrySettings, checked_base_url, checked_retry};
use ferry_core::{ConnectorError, ConnectorResult, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::VENDOR;

/// The Microsoft identity platform's host, used when `login_url` is not set.
pub const DEFAULT_LOGIN_URL: &str = "https://login.microsoftonline.com";
/// The alternate-key column on contact and account unless `source_id_column` says otherwise.
pub const DEFAULT_SOURCE_ID_COLUMN: &str = "ferry_sourceid";
/// The customization prefix of the default publisher, which created columns' names start with
/// unless `publisher_prefix` says otherwise.
pub const DEFAULT_PUBLISHER_PREFIX: &str = "new";
/// Dataverse's largest page (`Prefer: odata.maxpagesize`), and the default.
pub const MAX_PAGE_SIZE: u32 = 5_000;
/// Requests one `$batch` may hold.
pub const MAX_BATCH_SIZE: usize = 1_000;
/// Records per upsert `$batch` by default: small enough that one batch's execution time stays
/// well inside the per-window execution-time limit, large enough to save requests.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// Source ids per read-back call by default: the ids of ten upsert batches, read back in one
/// `$batch` of a few long `GET`s (one request against the five-minute budget).
pub const DEFAULT_READ_BACK_SIZE: usize = 1_000;
/// Service protection: requests per user per sliding five minutes.
pub const DEFAULT_REQUESTS_PER_5MIN: u32 = 6_000;
/// Service protection: concurrent requests per user.
pub const MAX_CONCURRENCY: usize = 52;
/// Requests in flight at once by default.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// How to reach a Dataverse environment, as written in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsConfig {
    /// The environment's URL, which is also the Web API's base and the token's resource:
    /// `https://<org>.crm.dynamics.com` (or `crm4`, `crm11`, … for other regions).
    pub environment_url: String,
    /// The Microsoft Entra tenant (directory) id or domain the app registration lives in.
    pub tenant_id: String,
    /// Where tokens are requested; default `https://login.microsoftonline.com`.
    pub login_url: Option<String>,
    /// The app registration's application (client) id: `"${DYNAMICS_CLIENT_ID}"`.
    pub client_id: SecretRef,
    /// The app registration's client secret: `"${DYNAMICS_CLIENT_SECRET}"`.
    pub client_secret: SecretRef,
    /// The logical name of the text column, on contact and account, that holds each record's
    /// source id and is an alternate key of both tables. Default `ferry_sourceid`.
    pub source_id_column: Option<String>,
    /// The customization prefix of the publisher that columns ferry creates belong to
    /// (`create_missing_fields`): a created column is named `<prefix>_<name>`. Default `new`
    /// (the environment's default publisher).
    pub publisher_prefix: Option<String>,
    /// Records per page when reading, 1 to 5,000 (`Prefer: odata.maxpagesize`). Default 5,000.
    #[serde(default, deserialize_with = "lenient_number")]
    pub page_size: Option<u32>,
    /// Records per upsert `$batch`, 1 to 1,000. Default 100.
    #[serde(default, deserialize_with = "lenient_number")]
    pub batch_size: Option<usize>,
    /// Source ids per read-back call, 1 to 1,000 (split further to keep URLs short). Default
    /// 100.
    #[serde(default, deserialize_with = "lenient_number")]
    pub read_back_size: Option<usize>,
    /// Requests in flight at once, 1 to 52 (Dataverse's per-user concurrency limit). Default 8.
    #[serde(default, deserialize_with = "lenient_number")]
    pub concurrency: Option<usize>,
    /// Requests per five minutes ferry allows itself; default 6,000 (the per-user service
    /// protection limit). Lower it to leave room for other integrations using the same user.
    #[serde(default, deserialize_with = "lenient_number")]
    pub requests_per_5min: Option<u32>,
    /// Seconds allowed for one request; default 60.
    #[serde(default, deserialize_with = "lenient_number")]
    pub timeout_secs: Option<u64>,
    /// Retries of a transient failure (429, 5xx, network); default 8.
    #[serde(default, deserialize_with = "lenient_number")]
    pub max_retries: Option<usize>,
}

impl DynamicsConfig {
    /// A config with every optional setting at its default.
    pub fn new(
        environment_url: impl Into<String>,
        tenant_id: impl Into<String>,
        client_id: SecretRef,
        client_secret: SecretRef,
    ) -> DynamicsConfig {
        DynamicsConfig {
            environment_url: environment_url.into(),
            tenant_id: tenant_id.into(),
            login_url: None,
            client_id,
            client_secret,
            source_id_column: None,
            publisher_prefix: None,
            page_size: None,
            batch_size: None,
            read_back_size: None,
            concurrency: None,
            requests_per_5min: None,
            timeout_secs: None,
            max_retries: None,
        }
    }
}

/// A number written as a number or as a string of digits: `ferry sandbox` prints every
/// setting quoted, so `page_size = "1000"` must mean the same as `page_size = 1000`.
fn lenient_number<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr + Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrText<T> {
        Number(T),
        Text(String),
    }
    match Option::<NumberOrText<T>>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(Some(n)),
        Some(NumberOrText::Text(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| serde::de::Error::custom("expected a whole number")),
    }
}

/// Validated settings, secrets resolved.
pub(crate) struct Settings {
    pub environment_url: Url,
    pub token_url: Url,
    pub scope: String,
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub source_id_column: String,
    pub publisher_prefix: String,
    pub page_size: u32,
    pub batch_size: usize,
    pub read_back_size: usize,
    pub concurrency: usize,
    pub rate_limit: RateLimit,
    pub retry: RetrySettings,
}

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A Dataverse logical name: lower-case letters, digits and underscores, starting with a letter.
pub(crate) fn is_logical_name(name: &str) -> bool {
    (1..=50).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl DynamicsConfig {
    /// Validates the settings and resolves the secrets; errors name `key_prefix.<key>`.
    pub(crate) fn settings(&self, key_prefix: &str) -> ConnectorResult<Settings> {
        let bad = |name: &str, detail: String| ConnectorError::Config {
            vendor: VENDOR,
            key: key(key_prefix, name),
            detail,
        };
        let mut environment_url = checked_base_url(
            VENDOR,
            &key(key_prefix, "environment_url"),
            &self.environment_url,
        )?;
        if environment_url.query().is_some() || environment_url.path().contains("/api/") {
            return Err(bad(
                "environment_url",
                "give the environment's URL only (https://<org>.crm.dynamics.com), without /api/data/… or a query"
                    .into(),
            ));
        }
        // One trailing slash, so joins keep any path prefix.
        if !environment_url.path().ends_with('/') {
            let path = format!("{}/", environment_url.path());
            environment_url.set_path(&path);
        }
        let tenant = self.tenant_id.trim();
        if tenant.is_empty()
            || tenant.len() > 100
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(bad(
                "tenant_id",
                "must be the directory (tenant) id, a GUID, or its domain such as contoso.onmicrosoft.com".into(),
            ));
        }
        let login_url = checked_base_url(
            VENDOR,
            &key(key_prefix, "login_url"),
            self.login_url.as_deref().unwrap_or(DEFAULT_LOGIN_URL),
        )?;
        let token_path = format!(
            "{}/{tenant}/oauth2/v2.0/token",
            login_url.path().trim_end_matches('/')
        );
        let mut token_url = login_url.clone();
        token_url.set_path(&token_path);
        token_url.set_query(None);
        let scope = format!(
            "{}/.default",
            environment_url.as_str().trim_end_matches('/')
        );
        let secret = |name: &str, r: &SecretRef| r.resolve().map_err(|e| bad(name, e.to_string()));
        let client_id = secret("client_id", &self.client_id)?;
        let client_secret = secret("client_secret", &self.client_secret)?;
        let source_id_column = self
            .source_id_column
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCE_ID_COLUMN.to_owned());
        if !is_logical_name(&source_id_column) {
            return Err(bad(
                "source_id_column",
                "must be a column's logical name: lower-case letters, digits and underscores (e.g. ferry_sourceid)"
                    .into(),
            ));
        }
        let publisher_prefix = self
            .publisher_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_PUBLISHER_PREFIX.to_owned());
        // Dataverse: 2 to 8 letters or digits, starting with a letter, not `mscrm`.
        let prefix_ok = (2..=8).contains(&publisher_prefix.len())
            && publisher_prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && publisher_prefix
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && !publisher_prefix.starts_with("mscrm");
        if !prefix_ok {
            return Err(bad(
                "publisher_prefix",
                "must be a publisher's customization prefix: 2 to 8 lower-case letters or digits, starting with a \
                 letter (e.g. new)"
                    .into(),
            ));
        }
        let page_size = self.page_size.unwrap_or(MAX_PAGE_SIZE);
        if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
            return Err(bad(
                "page_size",
                format!(
                    "{page_size} is out of range: Dataverse returns 1 to 5000 records per page"
                ),
            ));
        }
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(bad(
                "batch_size",
                format!("{batch_size} is out of range: a $batch holds 1 to 1000 requests"),
            ));
        }
        let read_back_size = self.read_back_size.unwrap_or(DEFAULT_READ_BACK_SIZE);
        if !(1..=1000).contains(&read_back_size) {
            return Err(bad(
                "read_back_size",
                format!("{read_back_size} is out of range: 1 to 1000"),
            ));
        }
        let concurrency = self.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=MAX_CONCURRENCY).contains(&concurrency) {
            return Err(bad(
                "concurrency",
                format!(
                    "{concurrency} is out of range: 1 to 52 (Dataverse refuses more than 52 concurrent requests per user)"
                ),
            ));
        }
        let requests = self.requests_per_5min.unwrap_or(DEFAULT_REQUESTS_PER_5MIN);
        if requests == 0 {
            return Err(bad("requests_per_5min", "must be at least 1".into()));
        }
        let retry = checked_retry(VENDOR, key_prefix, self.timeout_secs, self.max_retries)?;
        Ok(Settings {
            environment_url,
            token_url,
            scope,
            client_id,
            client_secret,
            source_id_column,
            publisher_prefix,
            page_size,
            batch_size,
            read_back_size,
            concurrency,
            rate_limit: RateLimit::new(requests, Duration::from_secs(300)),
            retry,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "environment_url": "https://org.crm.dynamics.com",
            "tenant_id": "contoso.onmicrosoft.com",
            "client_id": "${PATH}",
            "client_secret": "${PATH}",
        })
    }

    fn settings(extra: serde_json::Value) -> ConnectorResult<Settings> {
        let mut c = base();
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        let config: DynamicsConfig = serde_json::from_value(c).expect("config");
        config.settings("sink")
    }

    #[test]
    fn defaults_apply() {
        let s = settings(serde_json::json!({})).unwrap();
        assert_eq!(
            s.token_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(s.scope, "https://org.crm.dynamics.com/.default");
        assert_eq!(s.source_id_column, "ferry_sourceid");
        assert_eq!(
            (s.page_size, s.batch_size, s.read_back_size, s.concurrency),
            (5000, 100, 1000, 8)
        );
        assert_eq!(s.rate_limit, RateLimit::new(6000, Duration::from_secs(300)));
    }

    #[test]
    fn errors_name_the_key() {
        let err = |extra: serde_json::Value| match settings(extra) {
            Err(ConnectorError::Config { key, .. }) => key,
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            err(serde_json::json!({"environment_url": "http://org.crm.dynamics.com"})),
            "sink.environment_url"
        );
        assert_eq!(
            err(
                serde_json::json!({"environment_url": "https://org.crm.dynamics.com/api/data/v9.2"})
            ),
            "sink.environment_url"
        );
        assert_eq!(
            err(serde_json::json!({"tenant_id": "a/b"})),
            "sink.tenant_id"
        );
        assert_eq!(
            err(serde_json::json!({"source_id_column": "Ferry Id"})),
            "sink.source_id_column"
        );
        assert_eq!(
            err(serde_json::json!({"publisher_prefix": "New_"})),
            "sink.publisher_prefix"
        );
        assert_eq!(
            err(serde_json::json!({"page_size": 5001})),
            "sink.page_size"
        );
        assert_eq!(
            err(serde_json::json!({"batch_size": 1001})),
            "sink.batch_size"
        );
        assert_eq!(
            err(serde_json::json!({"concurrency": 53})),
            "sink.concurrency"
        );
        assert_eq!(
            err(serde_json::json!({"client_secret": "${FERRY_DYN_SURELY_UNSET}"})),
            "sink.client_secret"
        );
    }

    #[test]
    fn numbers_may_be_written_as_strings() {
        let s = settings(serde_json::json!({"page_size": "1000", "batch_size": 50})).unwrap();
        assert_eq!((s.page_size, s.batch_size), (1000, 50));
        let mut c = base();
        c["page_size"] = "lots".into();
        let e = serde_json::from_value::<DynamicsConfig>(c)
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number"), "{e}");
    }

    #[test]
    fn unknown_keys_and_literal_secrets_are_refused() {
        let mut c = base();
        c["pagesize"] = 5.into();
        assert!(serde_json::from_value::<DynamicsConfig>(c).is_err());
        let mut c = base();
        c["client_secret"] = "s3cr3t-value".into();
        let e = serde_json::from_value::<DynamicsConfig>(c)
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cr3t-value"), "{e}");
    }
}
