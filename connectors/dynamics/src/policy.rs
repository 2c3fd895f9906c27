//! How ferry's HTTP layer should treat Dataverse's responses.
//!
//! Service protection answers 429 with `Retry-After` in seconds; the shared layer retries it,
//! waiting at least that long. 5xx and 408 are retried too. Error bodies are
//! `{"error": {"code": "0x…", "message": "…"}}`; messages often quote values ("Cannot convert
//! the literal 'x'…"), so only messages of codes known to be about the request are repeated.

use ferry_core::http::{HttpResponse, VendorPolicy};
use ferry_core::redact::{clean_code, truncate};
use reqwest::{Method, Url};
use serde::Deserialize;

use crate::VENDOR;

/// Error codes whose messages never quote record data: service protection, privileges.
const SAFE_MESSAGES: &[&str] = &[
    "0x80072322", // request count limit
    "0x80072321", // execution time limit
    "0x80072326", // concurrency limit
    "0x80040220", // missing privilege
];

/// Dataverse's [`VendorPolicy`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DynamicsPolicy;

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorInner,
}

#[derive(Deserialize)]
struct ErrorInner {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct EntraError {
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// The code and message of a Dataverse error body.
pub(crate) fn parse_error(body: &[u8]) -> Option<(String, String)> {
    let e: ErrorBody = serde_json::from_slice(body).ok()?;
    Some((clean_code(&e.error.code), e.error.message))
}

/// A one-line account of an error body: the code, and the message only when it is safe.
pub(crate) fn describe(status: u16, body: &[u8]) -> String {
    if let Some((code, message)) = parse_error(body) {
        let code = if code.is_empty() {
            "(no code)".to_owned()
        } else {
            code
        };
        return if SAFE_MESSAGES.contains(&code.as_str()) {
            truncate(&format!("{code}: {message}"))
        } else {
            format!("{code} (Dataverse's message is not repeated: it may quote record data)")
        };
    }
    if let Ok(e) = serde_json::from_slice::<EntraError>(body) {
        let codes: Vec<String> = e.error_codes.iter().map(|c| format!("AADSTS{c}")).collect();
        return format!("{} {}", clean_code(&e.error), codes.join(" "));
    }
    if status == 401 {
        return "the access token was refused (the app user may be missing from the environment or disabled)"
            .to_owned();
    }
    format!("{} bytes of unrecognised error body", body.len())
}

impl VendorPolicy for DynamicsPolicy {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Service protection counts requests per user over 300 s, a `$batch` as one ("A batch
    /// counts as one request toward the request-count limit", api-limits.md); the token
    /// requests to Microsoft Entra ID (`…/oauth2/v2.0/token`) are not Dataverse requests.
    fn request_cost(&self, _method: &Method, url: &Url, _body: Option<&[u8]>) -> u64 {
        u64::from(!url.path().contains("/oauth2/"))
    }

    fn error_detail(&self, response: &HttpResponse) -> String {
        describe(response.status.as_u16(), &response.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_that_may_quote_data_are_withheld() {
        let quoting = br#"{"error":{"code":"0x80048d19","message":"Cannot convert the literal 'secret-value' to the expected type 'Edm.Int32'."}}"#;
        let d = describe(400, quoting);
        assert!(
            d.starts_with("0x80048d19") && !d.contains("secret-value"),
            "{d}"
        );
        let limit = br#"{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit of 6000 over time window of 300 seconds."}}"#;
        assert!(describe(429, limit).contains("6000"));
        let entra = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215]}"#;
        assert_eq!(describe(401, entra), "invalid_client AADSTS7000215");
    }

    #[test]
    fn a_long_message_is_cut_to_the_shared_cap() {
        let body = format!(
            r#"{{"error":{{"code":"0x80040220","message":"{}"}}}}"#,
            "é".repeat(1000)
        );
        let detail = describe(403, body.as_bytes());
        assert!(detail.starts_with("0x80040220: éé"), "{detail}");
        assert_eq!(
            detail.chars().count(),
            ferry_core::redact::MAX_MESSAGE_CHARS
        );
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).expect("url")
    }

    #[test]
    fn a_batch_is_one_request_and_tokens_are_free() {
        let cost = |u: &str| {
            DynamicsPolicy.request_cost(&reqwest::Method::POST, &url(u), Some(b"--batch_1"))
        };
        assert_eq!(cost("https://org.crm.dynamics.com/api/data/v9.2/$batch"), 1);
        assert_eq!(
            cost("https://login.microsoftonline.com/tenant/oauth2/v2.0/token"),
            0
        );
    }
}
