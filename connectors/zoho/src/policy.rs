//! How ferry's HTTP layer should treat Zoho's responses.
//!
//! Zoho answers 429 `TOO_MANY_REQUESTS` both when too many calls run at once (worth retrying)
//! and when the org's rolling 24-hour API credits are spent (retrying cannot help for hours).
//! The two are told apart by `X-API-CREDITS-REMAINING`, which Zoho sends once half the credits
//! are used: fewer left than ferry's dearest call costs (an upsert of 100 records, 10 credits)
//! makes the 429 final. No `Retry-After` is documented; one is honoured if sent.

use ferry_core::http::{HttpResponse, VendorPolicy, Verdict, default_classify, path_matches};
pub(crate) use ferry_core::redact::clean_code;
use ferry_core::redact::truncate;
use reqwest::{Method, Url};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value as Json;

use crate::VENDOR;

/// The header announcing the credits left in the window.
pub const CREDITS_REMAINING: &str = "x-api-credits-remaining";

/// Error codes whose messages are about the request, never about record values, and so may be
/// repeated in ferry's errors.
const SAFE_MESSAGES: &[&str] = &[
    "TOO_MANY_REQUESTS",
    "INVALID_TOKEN",
    "AUTHENTICATION_FAILURE",
    "OAUTH_SCOPE_MISMATCH",
    "NO_PERMISSION",
    "INVALID_MODULE",
    "REQUIRED_PARAM_MISSING",
    "LIMIT_EXCEEDED",
    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
    "PAGINATION_LIMIT_EXCEEDED",
    "INVALID_URL_PATTERN",
    "INTERNAL_ERROR",
    "FEATURE_NOT_SUPPORTED",
    "AMBIGUITY_DURING_PROCESSING",
    "TOKEN_BOUND_DATA_MISMATCH",
];

/// Detail keys that name parameters or fields (never values), and so may be repeated.
const SAFE_DETAILS: &[&str] = &["param_name", "api_name", "limit", "resource_path_index"];

/// The credits of ferry's dearest call: an upsert of 100 records (one credit per ten).
pub const DEAREST_CALL: u64 = 10;

/// Records per credit of an insert, update, upsert or delete ("1 credit per 10 records").
const RECORDS_PER_CREDIT: u64 = 10;

/// The credits one call costs (Zoho's API limits page): an insert, update or upsert one per ten
/// records of its `data`, a delete one per ten `ids`, a COQL query one, two or three by its
/// `LIMIT` (up to 200, 1,000, 2,000), any other call one. Token requests go to Zoho's accounts
/// server, not the CRM API, and cost none.
pub fn credits(method: &Method, url: &Url, body: Option<&[u8]>) -> u64 {
    let path = url.path();
    if !path.contains("/crm/") {
        return 0;
    }
    if path_matches(path, "crm/*/coql") {
        return match body.and_then(coql_limit) {
            Some(0..=200) | None => 1,
            Some(201..=1000) => 2,
            Some(_) => 3,
        };
    }
    let records = if *method == Method::DELETE {
        url.query_pairs()
            .find(|(k, _)| k == "ids")
            .map(|(_, ids)| ids.split(',').count() as u64)
    } else if matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        body.and_then(|b| serde_json::from_slice::<DataBody>(b).ok())
            .map(|b| b.data.len() as u64)
    } else {
        None
    };
    records.map_or(1, |n| n.div_ceil(RECORDS_PER_CREDIT).max(1))
}

/// A write body, for counting its records.
#[derive(Deserialize)]
struct DataBody {
    data: Vec<IgnoredAny>,
}

/// The `LIMIT` of a COQL body (`{"select_query": "… limit N"}`, or `limit offset, N`).
fn coql_limit(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Coql {
        select_query: String,
    }
    let query = serde_json::from_slice::<Coql>(body).ok()?.select_query;
    let lower = query.to_ascii_lowercase();
    let tail = &lower[lower.rfind(" limit ")? + " limit ".len()..];
    tail.rsplit(',').next()?.trim().parse().ok()
}

/// Zoho's [`VendorPolicy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ZohoPolicy;

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Json,
}

/// Keeps a field API name to API-name characters.
pub(crate) fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(80)
        .collect()
}

/// The whole-request error code of a response body, if it is Zoho's error shape.
pub(crate) fn error_code(response: &HttpResponse) -> Option<String> {
    let body: ErrorBody = serde_json::from_slice(&response.body).ok()?;
    (!body.code.is_empty()).then(|| clean_code(&body.code))
}

/// Whether the response says the org's API credits cannot pay for ferry's calls any more.
pub(crate) fn credits_exhausted(response: &HttpResponse) -> bool {
    response.status.as_u16() == 429
        && response
            .header(CREDITS_REMAINING)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|left| left < DEAREST_CALL)
}

impl VendorPolicy for ZohoPolicy {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Credits, as the API limits page prices calls: see [`credits`].
    fn request_cost(&self, method: &Method, url: &Url, body: Option<&[u8]>) -> u64 {
        credits(method, url, body)
    }

    fn classify(&self, response: &HttpResponse) -> Verdict {
        if credits_exhausted(response) {
            return Verdict::Done;
        }
        default_classify(response)
    }

    fn error_detail(&self, response: &HttpResponse) -> String {
        if let Ok(e) = serde_json::from_slice::<ErrorBody>(&response.body)
            && !e.code.is_empty()
        {
            let code = clean_code(&e.code);
            let mut detail = if SAFE_MESSAGES.contains(&code.as_str()) {
                format!("{code}: {}", e.message)
            } else {
                format!("{code} (Zoho's message is not repeated: it may quote record data)")
            };
            if let Some(details) = e.details.as_object() {
                let parts: Vec<String> = SAFE_DETAILS
                    .iter()
                    .filter_map(|k| {
                        let v = details.get(*k)?;
                        let v = match v {
                            Json::String(s) => clean_name(s),
                            Json::Number(n) => n.to_string(),
                            _ => return None,
                        };
                        Some(format!("{k}={v}"))
                    })
                    .collect();
                if !parts.is_empty() {
                    detail.push_str(&format!(" ({})", parts.join(", ")));
                }
            }
            if credits_exhausted(response) {
                detail.push_str(
                        "; the org's rolling 24-hour API credits are used up, and retrying cannot help until usage \
                         falls (Setup → Developer Hub → APIs → API Dashboard shows the usage; Zoho sells add-on credits)",
                    );
            }
            return truncate(&detail);
        }
        if let Ok(Json::Object(o)) = serde_json::from_slice::<Json>(&response.body)
            && let Some(Json::String(error)) = o.get("error")
        {
            return format!("OAuth error {}", clean_code(error));
        }
        format!("{} bytes of unrecognised error body", response.body.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(status: u16, body: &str, credits: Option<&'static str>) -> HttpResponse {
        let mut headers = HeaderMap::new();
        if let Some(c) = credits {
            headers.insert(CREDITS_REMAINING, HeaderValue::from_static(c));
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: body.as_bytes().to_vec().into(),
        }
    }

    #[test]
    fn concurrency_429_is_retried_but_spent_credits_are_final() {
        let body =
            r#"{"code":"TOO_MANY_REQUESTS","details":{},"message":"too many","status":"error"}"#;
        assert!(matches!(
            ZohoPolicy.classify(&response(429, body, None)),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            ZohoPolicy.classify(&response(429, body, Some("120"))),
            Verdict::Retry { .. }
        ));
        let spent = response(429, body, Some("0"));
        assert_eq!(ZohoPolicy.classify(&spent), Verdict::Done);
        assert!(
            ZohoPolicy
                .error_detail(&spent)
                .contains("retrying cannot help")
        );
    }

    #[test]
    fn messages_and_details_that_may_quote_data_are_withheld() {
        let r = response(
            400,
            r#"{"code":"SYNTAX_ERROR","details":{"near":"secret-value"},"message":"near secret-value","status":"error"}"#,
            None,
        );
        let d = ZohoPolicy.error_detail(&r);
        assert!(
            d.starts_with("SYNTAX_ERROR") && !d.contains("secret-value"),
            "{d}"
        );
        let r = response(
            400,
            r#"{"code":"REQUIRED_PARAM_MISSING","details":{"param_name":"fields"},"message":"required param is missing","status":"error"}"#,
            None,
        );
        assert_eq!(
            ZohoPolicy.error_detail(&r),
            "REQUIRED_PARAM_MISSING: required param is missing (param_name=fields)"
        );
    }

    #[test]
    fn a_long_message_is_cut_to_the_shared_cap() {
        let body = format!(
            r#"{{"code":"INVALID_MODULE","details":{{}},"message":"{}","status":"error"}}"#,
            "é".repeat(1000)
        );
        let detail = ZohoPolicy.error_detail(&response(400, &body, None));
        assert!(detail.starts_with("INVALID_MODULE: éé"), "{detail}");
        assert_eq!(
            detail.chars().count(),
            ferry_core::redact::MAX_MESSAGE_CHARS
        );
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).expect("url")
    }

    #[test]
    fn credits_follow_the_records_and_the_coql_limit() {
        use reqwest::Method;
        let base = "http://127.0.0.1:1/crm/v8";
        let data = |n: usize| format!("{{\"data\":[{}]}}", vec!["{}"; n].join(","));
        let c = |m: Method, u: String, b: Option<String>| {
            credits(&m, &url(&u), b.as_deref().map(str::as_bytes))
        };
        assert_eq!(
            c(
                Method::POST,
                format!("{base}/Contacts/upsert"),
                Some(data(100))
            ),
            10
        );
        assert_eq!(
            c(
                Method::POST,
                format!("{base}/Contacts/upsert"),
                Some(data(11))
            ),
            2
        );
        assert_eq!(
            c(Method::POST, format!("{base}/Contacts"), Some(data(1))),
            1
        );
        assert_eq!(
            c(
                Method::DELETE,
                format!("{base}/Contacts?ids=1,2,3,4,5,6,7,8,9,10,11"),
                None
            ),
            2
        );
        let coql = |q: &str| Some(format!("{{\"select_query\":\"{q}\"}}"));
        assert_eq!(
            c(
                Method::POST,
                format!("{base}/coql"),
                coql("select id from Contacts where id in (1) limit 100")
            ),
            1
        );
        assert_eq!(
            c(
                Method::POST,
                format!("{base}/coql"),
                coql("select id from Contacts order by id asc LIMIT 1000")
            ),
            2
        );
        assert_eq!(
            c(
                Method::POST,
                format!("{base}/coql"),
                coql("select id from Contacts limit 0, 2000")
            ),
            3
        );
        assert_eq!(c(Method::GET, format!("{base}/Contacts?ids=1,2"), None), 1);
        assert_eq!(
            c(
                Method::POST,
                "http://127.0.0.1:1/oauth/v2/token".into(),
                None
            ),
            0
        );
    }
}
