//! The `[source]` / `[sink]` settings of a Zoho connector, and their validation.

use ferry_core::http::{RetrySettings, checked_base_url, checked_retry};
use ferry_core::{ConnectorError, ConnectorResult, SecretRef};
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use crate::VENDOR;

/// The unique custom text field holding each record's source id unless configured otherwise.
pub const DEFAULT_SOURCE_ID_FIELD: &str = "Ferry_Source_Id";
/// Zoho takes at most 100 records per insert/update/upsert call.
pub const MAX_BATCH_SIZE: usize = 100;
/// Zoho returns at most 200 records per list page.
pub const MAX_PAGE_SIZE: usize = 200;
/// COQL's largest `LIMIT`.
pub const MAX_COQL_PAGE_SIZE: usize = 2000;
/// Source ids per read-back call by default; queries are split into COQL `in` lists of 50.
pub const DEFAULT_READ_BACK_SIZE: usize = 200;
/// Largest read-back size allowed.
pub const MAX_READ_BACK_SIZE: usize = 2000;
/// Simultaneous calls by default: the concurrency limit of Zoho's Standard edition (Free
/// allows 5, Professional 15, Enterprise 20, Ultimate 25).
pub const DEFAULT_MAX_CONCURRENT: usize = 10;

/// A Zoho data centre: where the accounts server and the API live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataCentre {
    /// United States (`zoho.com`), the default.
    Us,
    /// Europe (`zoho.eu`).
    Eu,
    /// India (`zoho.in`).
    In,
    /// Australia (`zoho.com.au`).
    Au,
    /// China (`zoho.com.cn`).
    Cn,
    /// Japan (`zoho.jp`).
    Jp,
    /// Canada (`zohocloud.ca`).
    Ca,
    /// Saudi Arabia (`zoho.sa`).
    Sa,
}

impl DataCentre {
    /// Parses the domain suffix used in config files: `com`, `eu`, `in`, `com.au`, `com.cn`,
    /// `jp`, `ca`, `sa`.
    pub fn parse(raw: &str) -> Option<DataCentre> {
        Some(
            match raw
                .trim()
                .trim_start_matches('.')
                .to_ascii_lowercase()
                .as_str()
            {
                "com" | "us" => DataCentre::Us,
                "eu" => DataCentre::Eu,
                "in" => DataCentre::In,
                "com.au" | "au" => DataCentre::Au,
                "com.cn" | "cn" => DataCentre::Cn,
                "jp" => DataCentre::Jp,
                "ca" => DataCentre::Ca,
                "sa" => DataCentre::Sa,
                _ => return None,
            },
        )
    }

    /// The accounts server, where tokens are refreshed.
    pub fn accounts_url(self) -> &'static str {
        match self {
            DataCentre::Us => "https://accounts.zoho.com",
            DataCentre::Eu => "https://accounts.zoho.eu",
            DataCentre::In => "https://accounts.zoho.in",
            DataCentre::Au => "https://accounts.zoho.com.au",
            DataCentre::Cn => "https://accounts.zoho.com.cn",
            DataCentre::Jp => "https://accounts.zoho.jp",
            DataCentre::Ca => "https://accounts.zohocloud.ca",
            DataCentre::Sa => "https://accounts.zoho.sa",
        }
    }

    /// The API domain.
    pub fn api_url(self) -> &'static str {
        match self {
            DataCentre::Us => "https://www.zohoapis.com",
            DataCentre::Eu => "https://www.zohoapis.eu",
            DataCentre::In => "https://www.zohoapis.in",
            DataCentre::Au => "https://www.zohoapis.com.au",
            DataCentre::Cn => "https://www.zohoapis.com.cn",
            DataCentre::Jp => "https://www.zohoapis.jp",
            DataCentre::Ca => "https://www.zohoapis.ca",
            DataCentre::Sa => "https://www.zohoapis.sa",
        }
    }
}

/// How to reach a Zoho CRM org, as written in the config file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoConfig {
    /// The OAuth client id (API console), as an environment reference: `"${ZOHO_CLIENT_ID}"`.
    pub client_id: SecretRef,
    /// The OAuth client secret, as an environment reference: `"${ZOHO_CLIENT_SECRET}"`.
    pub client_secret: SecretRef,
    /// The refresh token (scopes `ZohoCRM.modules.ALL`, `ZohoCRM.settings.fields.READ`,
    /// `ZohoCRM.coql.READ`), as an environment reference: `"${ZOHO_REFRESH_TOKEN}"`.
    pub refresh_token: SecretRef,
    /// The org's data centre: `com` (default), `eu`, `in`, `com.au`, `com.cn`, `jp`, `ca`,
    /// `sa`. It decides the accounts server and the API domain.
    pub data_centre: Option<String>,
    /// Overrides the accounts server (e.g. for a DC not listed, or the sandbox emulator).
    pub accounts_url: Option<String>,
    /// Overrides the API domain (e.g. `https://sandbox.zohoapis.com`, or the emulator).
    pub api_url: Option<String>,
    /// The API name of the unique custom single-line field on Accounts and Contacts that holds
    /// each record's source id (sink only). Default `Ferry_Source_Id`.
    pub source_id_field: Option<String>,
    /// Records per upsert call, 1 to 100. Default 100.
    pub batch_size: Option<usize>,
    /// Records per list page, 1 to 200. Default 200.
    pub page_size: Option<usize>,
    /// Records per COQL page of a full read (source), 1 to 2,000 (a query of `LIMIT` up to
    /// 200 costs one credit, up to 1,000 two, up to 2,000 three). Default five `page_size`s
    /// (1,000).
    pub coql_page_size: Option<usize>,
    /// Source ids per read-back call, 1 to 2,000 (sent as COQL `in` lists of 50). Default 200.
    pub read_back_size: Option<usize>,
    /// Simultaneous API calls ferry allows itself, below the edition's concurrency limit.
    /// Default 10.
    pub max_concurrent_requests: Option<usize>,
    /// Seconds allowed for one request. Default 60.
    pub timeout_secs: Option<u64>,
    /// Retries of a transient failure (429 on concurrency, 5xx, network). Default 8.
    pub max_retries: Option<usize>,
}

impl ZohoConfig {
    /// A config with every setting at its default and the given OAuth credentials.
    pub fn new(
        client_id: SecretRef,
        client_secret: SecretRef,
        refresh_token: SecretRef,
    ) -> ZohoConfig {
        ZohoConfig {
            client_id,
            client_secret,
            refresh_token,
            data_centre: None,
            accounts_url: None,
            api_url: None,
            source_id_field: None,
            batch_size: None,
            page_size: None,
            coql_page_size: None,
            read_back_size: None,
            max_concurrent_requests: None,
            timeout_secs: None,
            max_retries: None,
        }
    }
}

/// The OAuth credentials, resolved.
pub(crate) struct Credentials {
    pub client_id: SecretString,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
}

/// Validated settings, defaults applied.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub accounts_url: Url,
    pub api_url: Url,
    pub source_id_field: String,
    pub batch_size: usize,
    pub page_size: usize,
    pub coql_page_size: usize,
    pub read_back_size: usize,
    pub max_concurrent: usize,
    pub retry: RetrySettings,
}

fn key(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Whether `name` can be a Zoho field API name (also keeps it safe inside COQL).
pub(crate) fn is_api_name(name: &str) -> bool {
    name.len() <= 50
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl ZohoConfig {
    /// Checks every setting without I/O; errors name the key as `{key_prefix}.{setting}`.
    pub(crate) fn settings(&self, key_prefix: &str) -> ConnectorResult<Settings> {
        let bad = |name: &str, detail: String| ConnectorError::Config {
            vendor: VENDOR,
            key: key(key_prefix, name),
            detail,
        };
        let dc = match self.data_centre.as_deref() {
            None => DataCentre::Us,
            Some(raw) => DataCentre::parse(raw).ok_or_else(|| {
                bad(
                    "data_centre",
                    format!(
                        "`{raw}` is not a Zoho data centre: use com, eu, in, com.au, com.cn, jp, ca or sa \
                         (or set accounts_url and api_url)"
                    ),
                )
            })?,
        };
        let accounts_url = checked_base_url(
            VENDOR,
            &key(key_prefix, "accounts_url"),
            self.accounts_url.as_deref().unwrap_or(dc.accounts_url()),
        )?;
        let api_url = checked_base_url(
            VENDOR,
            &key(key_prefix, "api_url"),
            self.api_url.as_deref().unwrap_or(dc.api_url()),
        )?;
        let source_id_field = self
            .source_id_field
            .clone()
            .unwrap_or_else(|| DEFAULT_SOURCE_ID_FIELD.to_owned());
        if !is_api_name(&source_id_field) {
            return Err(bad(
                "source_id_field",
                "must be a field's API name: letters, digits and underscores, starting with a letter (e.g. Ferry_Source_Id)".into(),
            ));
        }
        let ranged = |name: &str, value: Option<usize>, default: usize, max: usize| {
            let v = value.unwrap_or(default);
            if (1..=max).contains(&v) {
                Ok(v)
            } else {
                Err(bad(name, format!("{v} is out of range: 1 to {max}")))
            }
        };
        let batch_size = ranged(
            "batch_size",
            self.batch_size,
            MAX_BATCH_SIZE,
            MAX_BATCH_SIZE,
        )?;
        let page_size = ranged("page_size", self.page_size, MAX_PAGE_SIZE, MAX_PAGE_SIZE)?;
        // Five list pages a COQL page (1,000 at the default 200): a `LIMIT` up to 1,000 costs
        // two credits where 200 costs one, so a full read spends 2 credits per 1,000 records
        // rather than 5, and 10 pages in flight carry five times the records per round trip.
        let coql_page_size = ranged(
            "coql_page_size",
            self.coql_page_size,
            (page_size * 5).min(MAX_COQL_PAGE_SIZE),
            MAX_COQL_PAGE_SIZE,
        )?;
        let read_back_size = ranged(
            "read_back_size",
            self.read_back_size,
            DEFAULT_READ_BACK_SIZE,
            MAX_READ_BACK_SIZE,
        )?;
        let max_concurrent = ranged(
            "max_concurrent_requests",
            self.max_concurrent_requests,
            DEFAULT_MAX_CONCURRENT,
            25,
        )?;
        let retry = checked_retry(VENDOR, key_prefix, self.timeout_secs, self.max_retries)?;
        Ok(Settings {
            accounts_url,
            api_url,
            source_id_field,
            batch_size,
            page_size,
            coql_page_size,
            read_back_size,
            max_concurrent,
            retry,
        })
    }

    /// Reads the three secrets; errors name the key, never a value.
    pub(crate) fn credentials(&self, key_prefix: &str) -> ConnectorResult<Credentials> {
        let secret = |name: &str, r: &SecretRef| {
            r.resolve().map_err(|e| ConnectorError::Config {
                vendor: VENDOR,
                key: key(key_prefix, name),
                detail: e.to_string(),
            })
        };
        Ok(Credentials {
            client_id: secret("client_id", &self.client_id)?,
            client_secret: secret("client_secret", &self.client_secret)?,
            refresh_token: secret("refresh_token", &self.refresh_token)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<ZohoConfig, serde_json::Error> {
        serde_json::from_value(v)
    }

    fn base() -> serde_json::Value {
        serde_json::json!({"client_id": "${A}", "client_secret": "${B}", "refresh_token": "${C}"})
    }

    #[test]
    fn defaults_and_data_centres() {
        let s = parse(base()).unwrap().settings("sink").unwrap();
        assert_eq!(s.accounts_url.as_str(), "https://accounts.zoho.com/");
        assert_eq!(s.api_url.as_str(), "https://www.zohoapis.com/");
        assert_eq!(s.source_id_field, "Ferry_Source_Id");
        assert_eq!(
            (s.batch_size, s.page_size, s.read_back_size),
            (100, 200, 200)
        );
        let mut c = base();
        c["data_centre"] = "com.au".into();
        let s = parse(c).unwrap().settings("sink").unwrap();
        assert_eq!(s.accounts_url.as_str(), "https://accounts.zoho.com.au/");
        assert_eq!(s.api_url.as_str(), "https://www.zohoapis.com.au/");
        let mut c = base();
        c["data_centre"] = "ca".into();
        let s = parse(c).unwrap().settings("sink").unwrap();
        assert_eq!(s.accounts_url.as_str(), "https://accounts.zohocloud.ca/");
    }

    #[test]
    fn errors_name_the_key() {
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base();
            c[k] = v;
            parse(c).unwrap().settings("sink").unwrap_err().to_string()
        };
        assert!(with("data_centre", "mars".into()).contains("sink.data_centre"));
        assert!(with("api_url", "http://crm.example.com".into()).contains("sink.api_url"));
        assert!(with("batch_size", 101.into()).contains("sink.batch_size"));
        assert!(with("page_size", 201.into()).contains("sink.page_size"));
        assert!(with("coql_page_size", 2001.into()).contains("sink.coql_page_size"));
        assert!(with("source_id_field", "x' or 1=1".into()).contains("sink.source_id_field"));
        let unset = ZohoConfig::new(
            SecretRef::env("FERRY_ZOHO_SURELY_UNSET_1"),
            SecretRef::env("FERRY_ZOHO_SURELY_UNSET_2"),
            SecretRef::env("FERRY_ZOHO_SURELY_UNSET_3"),
        );
        match unset.credentials("source") {
            Err(ConnectorError::Config { key, .. }) => assert_eq!(key, "source.client_id"),
            _ => panic!("expected a config error"),
        }
    }

    #[test]
    fn unknown_keys_and_literal_secrets_are_refused() {
        let mut c = base();
        c["refresh_tokn"] = "${X}".into();
        assert!(parse(c).unwrap_err().to_string().contains("refresh_tokn"));
        let mut c = base();
        c["refresh_token"] = "1000.abcdef-secret".into();
        assert!(!parse(c).unwrap_err().to_string().contains("abcdef-secret"));
    }
}
