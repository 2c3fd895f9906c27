//! What the shared HTTP layer needs to know about Pipedrive: which responses to retry (a 429
//! of the burst window, not one of the exhausted daily token budget), the burst limit Pipedrive
//! announces in `x-ratelimit-limit`, and how to summarise its error bodies.

use std::time::Duration;

use ferry_core::http::{HttpResponse, RateLimit, VendorPolicy, Verdict, default_classify};
pub(crate) use ferry_core::redact::clean_code;
use ferry_core::redact::truncate;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

use crate::VENDOR;

/// Pipedrive's rate-limit window.
pub const WINDOW: Duration = Duration::from_secs(2);
/// The most tokens one request ferry sends can cost (a v1 search: 40). A 429 whose
/// `x-daily-ratelimit-token-remaining` is below this is the daily budget running out: no
/// retry can succeed before the budget resets at midnight.
pub const MAX_REQUEST_TOKENS: u64 = 40;

/// The tokens one request costs, by Pipedrive's published model: v1 a single GET 2, a list
/// 20, a write 10, a delete 6, a search 40; v2 endpoints half of that ("v2 consume 50% fewer
/// tokens"; the spec's `x-token-cost` gives deals 10, 1, 5, 3). The OAuth token endpoint is not
/// the API and costs none.
pub fn tokens(method: &Method, path: &str) -> u64 {
    if path.ends_with("/oauth/token") {
        return 0;
    }
    let v1 = if path.ends_with("/search") {
        40
    } else if *method == Method::GET {
        let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
        let single = !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit());
        if single || path.ends_with("/v1/users/me") {
            2
        } else {
            20
        }
    } else if *method == Method::DELETE {
        6
    } else {
        10
    };
    if path.contains("/api/v2/") {
        (v1 / 2).max(1)
    } else {
        v1
    }
}

/// What an announced limit does to the limit in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Announced {
    Replaces,
    CappedAt(u32),
    Ignored,
}

/// Pipedrive's retry, rate-limit and error-body rules.
#[derive(Clone, Debug)]
pub struct PipedrivePolicy {
    announced: Announced,
}

impl PipedrivePolicy {
    /// For a default limit: the announced `x-ratelimit-limit` replaces it, higher or lower.
    pub fn uncapped() -> PipedrivePolicy {
        PipedrivePolicy {
            announced: Announced::Replaces,
        }
    }

    /// For an operator-set limit: an announced one may lower it, never raise it.
    pub fn capped(per_2s: u32) -> PipedrivePolicy {
        PipedrivePolicy {
            announced: Announced::CappedAt(per_2s),
        }
    }

    /// For the search client, whose limit is search's own.
    pub fn ignoring_announced_limits() -> PipedrivePolicy {
        PipedrivePolicy {
            announced: Announced::Ignored,
        }
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Whether a 429 reports the exhausted daily token budget.
pub(crate) fn is_daily_budget_exhausted(response: &HttpResponse) -> bool {
    response.status.as_u16() == 429
        && header_number(&response.headers, "x-daily-ratelimit-token-remaining")
            .is_some_and(|left| left < MAX_REQUEST_TOKENS)
}

impl VendorPolicy for PipedrivePolicy {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// Tokens of the daily budget: see [`tokens`].
    fn request_cost(&self, method: &Method, url: &Url, _body: Option<&[u8]>) -> u64 {
        tokens(method, url.path())
    }

    /// 429s of the burst window retry after `x-ratelimit-reset` seconds (or `Retry-After`);
    /// a 429 of the exhausted daily budget is final; 408 and 5xx retry with backoff.
    fn classify(&self, response: &HttpResponse) -> Verdict {
        if response.status.as_u16() == 429 {
            if is_daily_budget_exhausted(response) {
                return Verdict::Done;
            }
            let after = response.retry_after().or_else(|| {
                header_number(&response.headers, "x-ratelimit-reset").map(Duration::from_secs)
            });
            return Verdict::Retry {
                after,
                reason: "HTTP 429 (burst limit)".into(),
            };
        }
        default_classify(response)
    }

    fn announced_limit(&self, headers: &HeaderMap) -> Option<RateLimit> {
        let announced = u32::try_from(header_number(headers, "x-ratelimit-limit")?)
            .ok()
            .filter(|n| *n > 0)?;
        match self.announced {
            Announced::Replaces => Some(RateLimit::new(announced, WINDOW)),
            Announced::CappedAt(cap) => Some(RateLimit::new(announced.min(cap), WINDOW)),
            Announced::Ignored => None,
        }
    }

    /// `code: message` from Pipedrive's error body. Validation messages (400) can quote the
    /// values sent, so for those only the code is kept.
    fn error_detail(&self, response: &HttpResponse) -> String {
        let Ok(body) = serde_json::from_slice::<Value>(&response.body) else {
            return format!(
                "HTTP {} with a non-JSON body of {} bytes",
                response.status.as_u16(),
                response.body.len()
            );
        };
        let code = body
            .get("code")
            .and_then(Value::as_str)
            .map(clean_code)
            .filter(|c| !c.is_empty());
        if is_daily_budget_exhausted(response) {
            return "the company's daily API token budget is used up; it resets at midnight \
                    (Pipedrive server time), or buy a top-up"
                .into();
        }
        if response.status.as_u16() == 400 {
            return code.unwrap_or_else(|| "bad request".into());
        }
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        truncate(&match code {
            Some(code) => format!("{code}: {message}"),
            None => message.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderValue;

    fn response(status: u16, headers: &[(&'static str, &'static str)], body: &str) -> HttpResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        HttpResponse {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::IM_A_TEAPOT),
            headers: map,
            body: body.to_owned().into(),
        }
    }

    #[test]
    fn burst_429_retries_after_the_reset_and_daily_429_is_final() {
        let p = PipedrivePolicy::uncapped();
        let burst = response(
            429,
            &[
                ("x-ratelimit-reset", "2"),
                ("x-daily-ratelimit-token-remaining", "5000"),
            ],
            "{}",
        );
        assert!(matches!(
            p.classify(&burst),
            Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(2)
        ));
        let daily = response(429, &[("x-daily-ratelimit-token-remaining", "3")], "{}");
        assert_eq!(p.classify(&daily), Verdict::Done);
        assert!(p.error_detail(&daily).contains("daily"));
        assert!(matches!(
            p.classify(&response(503, &[], "")),
            Verdict::Retry { .. }
        ));
        assert_eq!(p.classify(&response(400, &[], "")), Verdict::Done);
    }

    #[test]
    fn announced_limits() {
        let headers = |v: &'static str| response(200, &[("x-ratelimit-limit", v)], "").headers;
        assert_eq!(
            PipedrivePolicy::uncapped().announced_limit(&headers("80")),
            Some(RateLimit::new(80, WINDOW))
        );
        assert_eq!(
            PipedrivePolicy::capped(30).announced_limit(&headers("80")),
            Some(RateLimit::new(30, WINDOW))
        );
        assert_eq!(
            PipedrivePolicy::capped(30).announced_limit(&headers("20")),
            Some(RateLimit::new(20, WINDOW))
        );
        assert_eq!(
            PipedrivePolicy::ignoring_announced_limits().announced_limit(&headers("80")),
            None
        );
        assert_eq!(
            PipedrivePolicy::uncapped().announced_limit(&headers("0")),
            None
        );
    }

    #[test]
    fn validation_details_keep_the_code_not_the_message() {
        let p = PipedrivePolicy::uncapped();
        let body = r#"{"success":false,"error":"Validation failed: emails.0.value: lorelai@@x is bad","code":"ERR_SCHEMA_VALIDATION_FAILED"}"#;
        assert_eq!(
            p.error_detail(&response(400, &[], body)),
            "ERR_SCHEMA_VALIDATION_FAILED"
        );
        let auth = r#"{"success":false,"error":"unauthorized access","errorCode":401}"#;
        assert_eq!(
            p.error_detail(&response(401, &[], auth)),
            "unauthorized access"
        );
        assert!(
            p.error_detail(&response(502, &[], "<html>"))
                .contains("non-JSON")
        );
    }

    #[test]
    fn a_long_message_is_cut_to_the_shared_cap_code_included() {
        let body = format!(
            r#"{{"success":false,"error":"{}","code":"ERR_TOO_LONG"}}"#,
            "é".repeat(1000)
        );
        let detail = PipedrivePolicy::uncapped().error_detail(&response(500, &[], &body));
        assert!(detail.starts_with("ERR_TOO_LONG: éé"), "{detail}");
        assert_eq!(
            detail.chars().count(),
            ferry_core::redact::MAX_MESSAGE_CHARS
        );
    }

    #[test]
    fn tokens_follow_the_published_model() {
        use reqwest::Method;
        assert_eq!(tokens(&Method::GET, "/api/v2/persons"), 10);
        assert_eq!(tokens(&Method::GET, "/api/v2/persons/17"), 1);
        assert_eq!(tokens(&Method::GET, "/api/v2/persons/search"), 20);
        assert_eq!(tokens(&Method::POST, "/api/v2/persons"), 5);
        assert_eq!(tokens(&Method::PATCH, "/api/v2/organizations/3"), 5);
        assert_eq!(tokens(&Method::GET, "/v1/users/me"), 2);
        assert_eq!(tokens(&Method::GET, "/v1/notes"), 20);
        assert_eq!(tokens(&Method::POST, "/v1/deals/4/participants"), 10);
        assert_eq!(tokens(&Method::DELETE, "/v1/notes/4"), 6);
        assert_eq!(tokens(&Method::POST, "/oauth/token"), 0);
    }
}
