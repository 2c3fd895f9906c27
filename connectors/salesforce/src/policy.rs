//! How ferry's HTTP layer should treat Salesforce's responses.
//!
//! Salesforce throttles nothing per second: it counts calls against a rolling 24-hour
//! allocation and, past it, answers 403 `REQUEST_LIMIT_EXCEEDED` with no `Retry-After`.
//! Retrying cannot help then, so that 403 is final. 429 and 5xx (maintenance, an edge that
//! could not reach the instance) are retried as usual.

use ferry_core::http::{HttpResponse, VendorPolicy};
use ferry_core::quota::{DailyQuota, parse_api_usage};
pub(crate) use ferry_core::redact::clean_code;
use ferry_core::redact::truncate;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde::Deserialize;

use crate::VENDOR;

/// The error code of an exhausted daily API allocation.
pub const REQUEST_LIMIT_EXCEEDED: &str = "REQUEST_LIMIT_EXCEEDED";

/// Error codes whose messages are about the request, never about record values, and so may be
/// repeated in ferry's errors. Other messages (JSON parse errors, SOQL errors) can quote data.
const SAFE_MESSAGES: &[&str] = &[
    REQUEST_LIMIT_EXCEEDED,
    "INVALID_SESSION_ID",
    "NOT_FOUND",
    "EXCEEDED_ID_LIMIT",
    "API_DISABLED_FOR_ORG",
    "API_CURRENTLY_DISABLED",
    "INSUFFICIENT_ACCESS",
    "INVALID_TYPE",
    "INVALID_QUERY_LOCATOR",
    "FUNCTIONALITY_NOT_ENABLED",
    "REQUEST_RUNNING_TOO_LONG",
    "SERVER_UNAVAILABLE",
    "UNSUPPORTED_API_VERSION",
];

/// Salesforce's [`VendorPolicy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SalesforcePolicy;

#[derive(Deserialize)]
struct RestError {
    #[serde(rename = "errorCode", default)]
    error_code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

/// The first `errorCode` of a REST error body, if it is one.
pub(crate) fn error_code(response: &HttpResponse) -> Option<String> {
    let errors: Vec<RestError> = serde_json::from_slice(&response.body).ok()?;
    errors.first().map(|e| clean_code(&e.error_code))
}

impl VendorPolicy for SalesforcePolicy {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Every REST call counts against the org's daily API requests; the OAuth endpoints
    /// (`/services/oauth2/…`: token, user info) are not API calls.
    fn request_cost(&self, _method: &Method, url: &Url, _body: Option<&[u8]>) -> u64 {
        u64::from(!url.path().contains("/services/oauth2/"))
    }

    /// The org's rolling 24-hour API allocation from `Sforce-Limit-Info: api-usage=USED/MAX`,
    /// sent on every REST answer.
    fn daily_quota(&self, headers: &HeaderMap) -> Option<DailyQuota> {
        parse_api_usage(headers.get("sforce-limit-info")?.to_str().ok()?)
    }

    /// A 403 `REQUEST_LIMIT_EXCEEDED` for the allocation ("TotalRequests Limit exceeded.", or
    /// an `api-usage` at or over it), not for too many long-running requests at once.
    fn daily_quota_refused(&self, response: &HttpResponse) -> bool {
        if response.status.as_u16() != 403 {
            return false;
        }
        let Ok(errors) = serde_json::from_slice::<Vec<RestError>>(&response.body) else {
            return false;
        };
        errors.first().is_some_and(|e| {
            e.error_code == REQUEST_LIMIT_EXCEEDED
                && (e.message.contains("TotalRequests")
                    || self
                        .daily_quota(&response.headers)
                        .is_some_and(|q| q.remaining == 0))
        })
    }

    fn error_detail(&self, response: &HttpResponse) -> String {
        if let Ok(errors) = serde_json::from_slice::<Vec<RestError>>(&response.body)
            && let Some(e) = errors.first()
        {
            let code = clean_code(&e.error_code);
            let detail = if code == REQUEST_LIMIT_EXCEEDED && response.status.as_u16() == 403 {
                format!(
                    "{code}: {} The org's rolling 24-hour API allocation is used up; retrying cannot help \
                         until usage falls (see Setup → Company Information → API Requests, Last 24 Hours, or ask \
                         Salesforce for a higher allocation)",
                    e.message
                )
            } else if SAFE_MESSAGES.contains(&code.as_str()) {
                format!("{code}: {}", e.message)
            } else {
                format!("{code} (Salesforce's message is not repeated: it may quote record data)")
            };
            return truncate(&detail);
        }
        if let Ok(e) = serde_json::from_slice::<OAuthError>(&response.body) {
            return truncate(&format!(
                "{}: {}",
                clean_code(&e.error),
                e.error_description
            ));
        }
        format!("{} bytes of unrecognised error body", response.body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::http::{Verdict, default_classify};
    use reqwest::StatusCode;
    use reqwest::header::HeaderValue;

    fn response(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn daily_limit_is_final_and_explained() {
        let r = response(
            403,
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#,
        );
        assert_eq!(SalesforcePolicy.classify(&r), Verdict::Done);
        let detail = SalesforcePolicy.error_detail(&r);
        assert!(
            detail.contains("REQUEST_LIMIT_EXCEEDED") && detail.contains("retrying cannot help"),
            "{detail}"
        );
        assert!(matches!(
            default_classify(&response(429, "[]")),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            SalesforcePolicy.classify(&response(503, "")),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn sforce_limit_info_gives_the_daily_allocation() {
        let mut r = response(200, "[]");
        assert_eq!(SalesforcePolicy.daily_quota(&r.headers), None);
        r.headers.insert(
            "sforce-limit-info",
            HeaderValue::from_static("api-usage=10018/100000; api-bursts=1/750"),
        );
        assert_eq!(
            SalesforcePolicy.daily_quota(&r.headers),
            Some(DailyQuota {
                limit: 100_000,
                remaining: 89_982
            })
        );
        let limit =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(SalesforcePolicy.daily_quota_refused(&response(403, limit)));
        let concurrent = r#"[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(
            !SalesforcePolicy.daily_quota_refused(&response(403, concurrent)),
            "too many long requests at once is not the daily allocation"
        );
        assert!(!SalesforcePolicy.daily_quota_refused(&response(400, limit)));
    }

    #[test]
    fn messages_that_may_quote_data_are_withheld() {
        let r = response(
            400,
            r#"[{"message":"Cannot deserialize instance of boolean from VALUE_STRING value secret-value","errorCode":"JSON_PARSER_ERROR"}]"#,
        );
        let detail = SalesforcePolicy.error_detail(&r);
        assert!(
            detail.starts_with("JSON_PARSER_ERROR") && !detail.contains("secret-value"),
            "{detail}"
        );
        let r = response(
            400,
            r#"{"error":"invalid_client","error_description":"invalid client credentials"}"#,
        );
        assert_eq!(
            SalesforcePolicy.error_detail(&r),
            "invalid_client: invalid client credentials"
        );
    }

    #[test]
    fn a_long_message_is_cut_to_the_shared_cap() {
        let r = response(
            400,
            &format!(
                r#"[{{"message":"{}","errorCode":"INVALID_TYPE"}}]"#,
                "é".repeat(1000)
            ),
        );
        let detail = SalesforcePolicy.error_detail(&r);
        assert!(detail.starts_with("INVALID_TYPE: éé"), "{detail}");
        assert_eq!(
            detail.chars().count(),
            ferry_core::redact::MAX_MESSAGE_CHARS
        );
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).expect("url")
    }

    #[test]
    fn every_rest_call_costs_one_api_call_and_oauth_none() {
        let cost = |u: &str| SalesforcePolicy.request_cost(&reqwest::Method::GET, &url(u), None);
        assert_eq!(
            cost("https://x.my.salesforce.com/services/data/v62.0/query"),
            1
        );
        assert_eq!(
            cost("https://x.my.salesforce.com/services/data/v62.0/composite/sobjects/Account"),
            1
        );
        assert_eq!(
            cost("https://login.salesforce.com/services/oauth2/token"),
            0
        );
    }
}
