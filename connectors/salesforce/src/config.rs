//! The settings of a Salesforce connector (`[source]` or `[sink]`: one config type serves both
//! roles), and their validation (no I/O).

use std::time::Duration;

use ferry_core::http::{RateLimit, RetrySettings, checked_base_url, checked_retry};
use ferry_core::{ConnectorError, ConnectorResult, SecretRef};
use serde::Deserialize;
use url::Url;

use crate::VENDOR;

/// Where client credentials are exchanged for a token unless `login_url` says otherwise.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";
/// The REST API version used unless `api_version` says otherwise.
pub const DEFAULT_API_VERSION: &str = "62.0";
/// The external-id field on Account, Contact and Opportunity unless `external_id_field` says otherwise.
pub const DEFAULT_EXTERNAL_ID_FIELD: &str = "Ferry_Source_Id__c";
/// sObject Collections take at most 200 records per request.
pub const MAX_BATCH_SIZE: usize = 200;
/// Source ids per read-back call by default (one SOQL page holds up to 2,000 records).
pub const DEFAULT_READ_BACK_SIZE: usize = 500;
/// Records of one object from which a migration writes it through Bulk API 2.0 when the
/// config names no `bulk_threshold`. Below it sObject Collections cost at most 50 calls and
/// answer at once, where a Bulk job waits in Salesforce's queue; above it Bulk spends about
/// 2,000 records per API call against Collections' 143, the org's daily allocation being what
/// a large migration runs out of. A Bulk object holds up to three jobs of records in memory
/// (docs/performance.md) and writes one job at a time.
pub const DEFAULT_BULK_THRESHOLD: u64 = 10_000;
/// Records per Bulk API 2.0 ingest job (and per read-back query job) unless `bulk_job_records`
/// says otherwise: about 2,300 records per API call at 100,000 records, with one job written
/// and one read back at a time (docs/performance.md).
pub const DEFAULT_BULK_JOB_RECORDS: usize = 25_000;
/// The accepted `bulk_job_records`: a job of fewer than 1,000 saves little over sObject
/// Collections; Salesforce takes up to 150,000,000 records a job, but the sink holds a job's
/// records (and the run one more batch each side) in memory.
pub const BULK_JOB_RECORDS: std::ops::RangeInclusive<usize> = 1_000..=1_000_000;
/// The SOQL page sizes Salesforce accepts in `Sforce-Query-Options: batchSize=N` (default 2,000).
pub const QUERY_BATCH_SIZES: std::ops::RangeInclusive<usize> = 200..=2000;

/// Settings of a Salesforce org, as written in the config file's `[source]` or `[sink]` table.
/// Settings that only matter to one role are ignored by the other.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceConfig {
    /// Where the OAuth token is requested. The client-credentials flow needs your org's My
    /// Domain login URL (`https://<MyDomain>.my.salesforce.com`). Default
    /// `https://login.salesforce.com`.
    pub login_url: Option<String>,
    /// The connected app's consumer key, as an environment reference: `"${SF_CLIENT_ID}"`.
    pub client_id: SecretRef,
    /// The connected app's consumer secret, as an environment reference: `"${SF_CLIENT_SECRET}"`.
    pub client_secret: SecretRef,
    /// The REST API version, e.g. `"62.0"` (46.0 or later: sObject Collections upsert). Default
    /// `"62.0"`.
    pub api_version: Option<String>,
    /// The API name of the unique, case-sensitive External ID text field on Account, Contact and Opportunity
    /// that holds each record's source id. Default `Ferry_Source_Id__c`. Sink only (a source's
    /// source ids are Salesforce record ids).
    pub external_id_field: Option<String>,
    /// Records per upsert request, 1 to 200. Default 200. Sink only.
    pub batch_size: Option<usize>,
    /// Source ids per read-back call, 1 to 2,000 (queries are split further to keep URLs
    /// short). Default 500. Sink only.
    pub read_back_size: Option<usize>,
    /// Records of one object (the source's count) from which `ferry migrate` writes it
    /// through Bulk API 2.0 ingest jobs and reads it back through Bulk query jobs, instead of
    /// sObject Collections of 200 and SOQL pages. Default 10,000; `0` or `false`: off (always
    /// sObject Collections). Sink only.
    #[serde(default, deserialize_with = "threshold_or_off")]
    pub bulk_threshold: Option<u64>,
    /// Records per Bulk API 2.0 ingest job (and read-back query job), 1,000 to 1,000,000.
    /// Default 25,000. Sink only.
    #[serde(default, deserialize_with = "ferry_core::kit::lenient_number")]
    pub bulk_job_records: Option<usize>,
    /// Records per SOQL page when reading, 200 to 2,000, sent as `Sforce-Query-Options:
    /// batchSize=N` (Salesforce treats it as a hint and may return fewer). Default 2,000.
    /// Source only.
    pub query_batch_size: Option<usize>,
    /// Seconds allowed for one HTTP request. Default 60.
    pub timeout_secs: Option<u64>,
    /// Retries of a transient failure (429, 5xx, network) before giving up. Default 8.
    pub max_retries: Option<usize>,
    /// An optional cap on requests per second. Salesforce documents a rolling 24-hour
    /// allocation, not a per-second limit, so there is none by default.
    pub requests_per_second: Option<u32>,
}

impl SalesforceConfig {
    /// A config with every setting at its default and the given client credentials.
    pub fn new(client_id: SecretRef, client_secret: SecretRef) -> SalesforceConfig {
        SalesforceConfig {
            login_url: None,
            client_id,
            client_secret,
            api_version: None,
            external_id_field: None,
            batch_size: None,
            read_back_size: None,
            bulk_threshold: None,
            bulk_job_records: None,
            query_batch_size: None,
            timeout_secs: None,
            max_retries: None,
            requests_per_second: None,
        }
    }
}

/// Validated settings, defaults applied.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub login_url: Url,
    /// `vNN.N`, as it appears in paths.
    pub api_version: String,
    pub external_id_field: String,
    pub batch_size: usize,
    pub read_back_size: usize,
    /// `u64::MAX` when Bulk is off.
    pub bulk_threshold: u64,
    pub bulk_job_records: usize,
    pub query_batch_size: usize,
    pub retry: RetrySettings,
    pub rate_limit: Option<RateLimit>,
}

fn is_api_name(name: &str) -> bool {
    name.len() <= 80
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("___")
}

/// `bulk_threshold`: a number of records (as a number or digits), or `false` (or `0`) for
/// Bulk off, which reads as `Some(0)`.
fn threshold_or_off<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Threshold {
        Number(u64),
        Switch(bool),
        Text(String),
    }
    match Option::<Threshold>::deserialize(d)? {
        None => Ok(None),
        Some(Threshold::Number(n)) => Ok(Some(n)),
        Some(Threshold::Switch(false)) => Ok(Some(0)),
        Some(Threshold::Text(t)) if t.trim().eq_ignore_ascii_case("false") => Ok(Some(0)),
        Some(Threshold::Text(t)) => t.trim().parse().map(Some).map_err(|_| {
            serde::de::Error::custom("expected a whole number of records, or false for Bulk off")
        }),
        Some(Threshold::Switch(true)) => Err(serde::de::Error::custom(
            "expected a whole number of records, or false for Bulk off",
        )),
    }
}

impl SalesforceConfig {
    /// Checks every setting without I/O or environment access; errors name the key as
    /// `{key_prefix}.{setting}`.
    pub(crate) fn settings(&self, key_prefix: &str) -> ConnectorResult<Settings> {
        let key = |name: &str| format!("{key_prefix}.{name}");
        let bad = |name: &str, detail: String| ConnectorError::Config {
            vendor: VENDOR,
            key: key(name),
            detail,
        };

        let login_url = checked_base_url(
            VENDOR,
            &key("login_url"),
            self.login_url.as_deref().unwrap_or(DEFAULT_LOGIN_URL),
        )?;

        let raw_version = self.api_version.as_deref().unwrap_or(DEFAULT_API_VERSION);
        let version = raw_version.trim().trim_start_matches(['v', 'V']);
        let major = version
            .strip_suffix(".0")
            .and_then(|m| m.parse::<u32>().ok());
        let api_version = match major {
            Some(m) if m >= 46 => format!("v{m}.0"),
            Some(_) => {
                return Err(bad(
                    "api_version",
                    format!(
                        "`{raw_version}` is too old: ferry needs 46.0 or later (sObject Collections upsert)"
                    ),
                ));
            }
            None => {
                return Err(bad(
                    "api_version",
                    format!("`{raw_version}` is not an API version such as \"62.0\""),
                ));
            }
        };

        let external_id_field = self
            .external_id_field
            .clone()
            .unwrap_or_else(|| DEFAULT_EXTERNAL_ID_FIELD.to_owned());
        if !is_api_name(&external_id_field) {
            return Err(bad(
                "external_id_field",
                "must be a field's API name: letters, digits and underscores, starting with a letter (e.g. Ferry_Source_Id__c)".into(),
            ));
        }

        let batch_size = self.batch_size.unwrap_or(MAX_BATCH_SIZE);
        if !(1..=MAX_BATCH_SIZE).contains(&batch_size) {
            return Err(bad(
                "batch_size",
                format!("{batch_size} is out of range: sObject Collections take 1 to 200 records"),
            ));
        }
        let read_back_size = self.read_back_size.unwrap_or(DEFAULT_READ_BACK_SIZE);
        if !(1..=2000).contains(&read_back_size) {
            return Err(bad(
                "read_back_size",
                format!("{read_back_size} is out of range: 1 to 2000"),
            ));
        }
        let bulk_threshold = match self.bulk_threshold.unwrap_or(DEFAULT_BULK_THRESHOLD) {
            0 => u64::MAX,
            n => n,
        };
        let bulk_job_records = self.bulk_job_records.unwrap_or(DEFAULT_BULK_JOB_RECORDS);
        if !BULK_JOB_RECORDS.contains(&bulk_job_records) {
            return Err(bad(
                "bulk_job_records",
                format!("{bulk_job_records} is out of range: 1000 to 1000000"),
            ));
        }
        let query_batch_size = self.query_batch_size.unwrap_or(*QUERY_BATCH_SIZES.end());
        if !QUERY_BATCH_SIZES.contains(&query_batch_size) {
            return Err(bad(
                "query_batch_size",
                format!(
                    "{query_batch_size} is out of range: Salesforce accepts batchSize 200 to 2000"
                ),
            ));
        }
        let retry = checked_retry(VENDOR, key_prefix, self.timeout_secs, self.max_retries)?;
        let rate_limit = match self.requests_per_second {
            Some(0) => {
                return Err(bad(
                    "requests_per_second",
                    "must be at least 1 (leave it out for no limit)".into(),
                ));
            }
            Some(n) => Some(RateLimit::new(n, Duration::from_secs(1))),
            None => None,
        };
        Ok(Settings {
            login_url,
            api_version,
            external_id_field,
            batch_size,
            read_back_size,
            bulk_threshold,
            bulk_job_records,
            query_batch_size,
            retry,
            rate_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_like: serde_json::Value) -> Result<SalesforceConfig, serde_json::Error> {
        serde_json::from_value(toml_like)
    }

    #[test]
    fn defaults_apply() {
        let c =
            parse(serde_json::json!({"client_id": "${SF_ID}", "client_secret": "${SF_SECRET}"}))
                .unwrap();
        let s = c.settings("sink").unwrap();
        assert_eq!(s.login_url.as_str(), "https://login.salesforce.com/");
        assert_eq!(s.api_version, "v62.0");
        assert_eq!(s.external_id_field, "Ferry_Source_Id__c");
        assert_eq!(
            (
                s.batch_size,
                s.read_back_size,
                s.query_batch_size,
                s.rate_limit
            ),
            (200, 500, 2000, None)
        );
        assert_eq!((s.bulk_threshold, s.bulk_job_records), (10_000, 25_000));
        // Bulk off: `0`, `false`, or either as text.
        for off in [
            serde_json::json!(0),
            serde_json::json!(false),
            serde_json::json!("false"),
            serde_json::json!("0"),
        ] {
            let c = parse(serde_json::json!({
                "client_id": "${SF_ID}", "client_secret": "${SF_SECRET}", "bulk_threshold": off
            }))
            .unwrap();
            assert_eq!(c.settings("sink").unwrap().bulk_threshold, u64::MAX);
        }
        assert!(
            parse(serde_json::json!({
                "client_id": "${SF_ID}", "client_secret": "${SF_SECRET}", "bulk_threshold": true
            }))
            .is_err()
        );
    }

    #[test]
    fn errors_name_the_key() {
        let base = serde_json::json!({"client_id": "${SF_ID}", "client_secret": "${SF_SECRET}"});
        let with = |k: &str, v: serde_json::Value| {
            let mut c = base.clone();
            c[k] = v;
            parse(c).unwrap().settings("sink").unwrap_err().to_string()
        };
        assert!(with("login_url", "http://example.com".into()).contains("sink.login_url"));
        assert!(with("api_version", "45.0".into()).contains("sink.api_version"));
        assert!(with("api_version", "latest".into()).contains("sink.api_version"));
        assert!(with("external_id_field", "Ext' OR 1=1".into()).contains("sink.external_id_field"));
        assert!(with("batch_size", 201.into()).contains("sink.batch_size"));
        assert!(with("bulk_job_records", 999.into()).contains("sink.bulk_job_records"));
        assert!(with("requests_per_second", 0.into()).contains("sink.requests_per_second"));
        assert!(with("query_batch_size", 199.into()).contains("sink.query_batch_size"));
        assert!(with("query_batch_size", 2001.into()).contains("sink.query_batch_size"));
    }

    #[test]
    fn unknown_keys_and_literal_secrets_are_refused() {
        let e = parse(
            serde_json::json!({"client_id": "${A}", "client_secret": "${B}", "pasword": "x"}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("pasword"));
        let e = parse(serde_json::json!({"client_id": "${A}", "client_secret": "hunter2"}))
            .unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
