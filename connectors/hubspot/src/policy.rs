//! What the shared HTTP layer needs to know about HubSpot: which responses to retry, the rate
//! limit HubSpot announces in its headers, and how to summarise its error bodies.

use std::time::Duration;

use ferry_core::http::{
    HttpResponse, RateLimit, VendorPolicy, Verdict, default_classify, path_matches,
};
use ferry_core::quota::DailyQuota;
use ferry_core::redact::{clean_code, truncate};
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

use crate::VENDOR;

/// HubSpot's documented minimum wait after a 423 Locked ("Locks will last for 2 seconds").
const LOCKED_WAIT: Duration = Duration::from_secs(2);

/// The endpoints HubSpot's spec marks `"x-hubspot-rate-limit-exemptions": ["ten-secondly"]`:
/// CRM search (five per second of its own) and the v4 association batches. They count against
/// the daily limit, not the ten-second window ([`VendorPolicy::request_cost`] is zero).
pub const TEN_SECONDLY_EXEMPT: &[&str] =
    &["crm/v3/objects/*/search", "crm/v4/associations/*/*/batch/*"];

/// What an announced rate limit (`X-HubSpot-RateLimit-Max` per `-Interval-Milliseconds`) does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Announced {
    /// It replaces the limit in force, higher or lower: the operator set none, so the default
    /// is only a guess at the account's tier.
    Replaces,
    /// It may lower the limit below this operator-set cap, never raise it above.
    CappedAt(RateLimit),
    /// It is ignored: the client has a limit of its own (search's five per second).
    Ignored,
}

/// HubSpot's retry, rate-limit and error-body rules.
#[derive(Clone, Debug)]
pub struct HubspotPolicy {
    announced: Announced,
}

impl HubspotPolicy {
    /// For a default (not operator-set) limit: HubSpot's announced limit replaces it both ways.
    pub fn uncapped() -> HubspotPolicy {
        HubspotPolicy {
            announced: Announced::Replaces,
        }
    }

    /// For an operator-set limit: an announced limit may lower it but never raise it above `cap`.
    pub fn capped(cap: RateLimit) -> HubspotPolicy {
        HubspotPolicy {
            announced: Announced::CappedAt(cap),
        }
    }

    /// For the search client, whose own limit no announced (ten-second) limit may replace.
    pub fn ignoring_announced_limits() -> HubspotPolicy {
        HubspotPolicy {
            announced: Announced::Ignored,
        }
    }
}

fn header_number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Whether a 429's body names the daily limit (`policyName` `DAILY`), not the burst window.
fn is_daily_429(response: &HttpResponse) -> bool {
    serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|b| {
            b.get("policyName")
                .and_then(Value::as_str)
                .map(|p| p == "DAILY")
        })
        .unwrap_or(false)
}

impl VendorPolicy for HubspotPolicy {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// One request of the ten-second window, or none for the endpoints HubSpot exempts from it.
    fn request_cost(&self, _method: &Method, url: &Url, _body: Option<&[u8]>) -> u64 {
        let exempt = TEN_SECONDLY_EXEMPT
            .iter()
            .any(|pattern| path_matches(url.path(), pattern));
        u64::from(!exempt)
    }

    /// 429 (burst), 408 and 5xx retry with backoff (HubSpot sends no `Retry-After` on 429);
    /// 423 Locked waits at least 2 s; 477 Migration in Progress waits its `Retry-After`; a
    /// 429 for the *daily* limit is final, since no retry can succeed before midnight.
    fn classify(&self, response: &HttpResponse) -> Verdict {
        match response.status.as_u16() {
            423 => Verdict::Retry {
                after: Some(
                    response
                        .retry_after()
                        .unwrap_or(LOCKED_WAIT)
                        .max(LOCKED_WAIT),
                ),
                reason: "HTTP 423 Locked".into(),
            },
            477 => Verdict::Retry {
                after: response.retry_after(),
                reason: "HTTP 477 Migration in Progress".into(),
            },
            429 if is_daily_429(response) => Verdict::Done,
            _ => default_classify(response),
        }
    }

    /// The limit HubSpot announces, as this policy lets it apply (see [`HubspotPolicy::capped`]).
    fn announced_limit(&self, headers: &HeaderMap) -> Option<RateLimit> {
        if self.announced == Announced::Ignored {
            return None;
        }
        let max = u32::try_from(header_number(headers, "x-hubspot-ratelimit-max")?)
            .ok()
            .filter(|m| *m > 0)?;
        let interval = header_number(headers, "x-hubspot-ratelimit-interval-milliseconds")
            .filter(|ms| *ms > 0)?;
        let announced = RateLimit::new(max, Duration::from_millis(interval));
        match self.announced {
            Announced::Replaces => Some(announced),
            Announced::CappedAt(cap) => {
                // Compare as rates: requests per millisecond, cross-multiplied to stay in integers.
                let announced_rate = u128::from(max) * cap.per.as_millis();
                let cap_rate = u128::from(cap.requests) * announced.per.as_millis();
                Some(if announced_rate < cap_rate {
                    announced
                } else {
                    cap
                })
            }
            Announced::Ignored => None,
        }
    }

    /// The account's daily limit from `X-HubSpot-RateLimit-Daily` and `-Daily-Remaining`
    /// (private-app tokens; HubSpot sends neither to OAuth calls nor on search answers).
    fn daily_quota(&self, headers: &HeaderMap) -> Option<DailyQuota> {
        let limit = header_number(headers, "x-hubspot-ratelimit-daily").filter(|n| *n > 0)?;
        let remaining = header_number(headers, "x-hubspot-ratelimit-daily-remaining")?;
        Some(DailyQuota {
            limit,
            remaining: remaining.min(limit),
        })
    }

    /// A 429 whose `policyName` is `DAILY` ("You have reached your daily limit.").
    fn daily_quota_refused(&self, response: &HttpResponse) -> bool {
        response.status.as_u16() == 429 && is_daily_429(response)
    }

    /// `CATEGORY: message` from HubSpot's error body. Validation messages quote the values
    /// that failed, so for those only the error codes and property names are kept.
    fn error_detail(&self, response: &HttpResponse) -> String {
        let Ok(body) = serde_json::from_slice::<Value>(&response.body) else {
            return format!(
                "HTTP {} with a non-JSON body of {} bytes",
                response.status.as_u16(),
                response.body.len()
            );
        };
        let text = |k: &str| body.get(k).and_then(Value::as_str);
        let category = text("category")
            .or_else(|| text("policyName"))
            .or_else(|| text("errorType"))
            .unwrap_or("ERROR");
        let codes: Vec<String> = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| {
                        let code = clean_code(e.get("code").and_then(Value::as_str)?);
                        let names = e.pointer("/context/propertyName").and_then(Value::as_array);
                        let names: Vec<&str> = names
                            .map(|n| n.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        Some(if names.is_empty() {
                            code
                        } else {
                            format!("{code} ({})", names.join(", "))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !codes.is_empty() {
            return truncate(&format!("{category}: {}", codes.join("; ")));
        }
        let message = text("message").unwrap_or("no message");
        if category == "VALIDATION_ERROR" && message.starts_with("Property values were not valid") {
            return format!("{category}: property values were not valid");
        }
        truncate(&format!("{category}: {message}"))
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

    fn policy() -> HubspotPolicy {
        HubspotPolicy::uncapped()
    }

    fn announcing(max: &'static str, interval_ms: &'static str) -> HeaderMap {
        response(
            200,
            &[
                ("x-hubspot-ratelimit-max", max),
                ("x-hubspot-ratelimit-interval-milliseconds", interval_ms),
            ],
            "",
        )
        .headers
    }

    #[test]
    fn classifies_hubspot_statuses() {
        let p = policy();
        assert_eq!(
            p.classify(&response(423, &[], "")),
            Verdict::Retry {
                after: Some(LOCKED_WAIT),
                reason: "HTTP 423 Locked".into()
            }
        );
        let migrating = p.classify(&response(477, &[("retry-after", "7")], ""));
        assert!(
            matches!(migrating, Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(7))
        );
        assert!(matches!(
            p.classify(&response(
                429,
                &[],
                r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#
            )),
            Verdict::Retry { .. }
        ));
        assert_eq!(
            p.classify(&response(429, &[], r#"{"policyName":"DAILY"}"#)),
            Verdict::Done
        );
        assert!(matches!(
            p.classify(&response(502, &[], "")),
            Verdict::Retry { .. }
        ));
        assert_eq!(p.classify(&response(400, &[], "")), Verdict::Done);
    }

    #[test]
    fn announced_limit_replaces_a_default_limit_both_ways() {
        let p = HubspotPolicy::uncapped();
        assert_eq!(
            p.announced_limit(&announcing("190", "10000")),
            Some(RateLimit::new(190, Duration::from_secs(10))),
            "a Professional account's 190 raises the default 100"
        );
        assert_eq!(
            p.announced_limit(&announcing("50", "10000")),
            Some(RateLimit::new(50, Duration::from_secs(10)))
        );
        assert_eq!(
            p.announced_limit(&announcing("110", "10000")),
            Some(RateLimit::new(110, Duration::from_secs(10)))
        );
        assert_eq!(p.announced_limit(&HeaderMap::new()), None);
        assert_eq!(p.announced_limit(&announcing("0", "10000")), None);
        assert_eq!(p.announced_limit(&announcing("190", "0")), None);
        assert_eq!(p.announced_limit(&announcing("lots", "10000")), None);
    }

    #[test]
    fn announced_limit_never_exceeds_an_operator_set_one() {
        let p = HubspotPolicy::capped(RateLimit::new(20, Duration::from_secs(10)));
        assert_eq!(
            p.announced_limit(&announcing("10", "10000")),
            Some(RateLimit::new(10, Duration::from_millis(10_000)))
        );
        assert_eq!(
            p.announced_limit(&announcing("190", "10000")),
            Some(RateLimit::new(20, Duration::from_secs(10)))
        );
        // Rates, not counts: 3 per second is above 20 per 10 s; 1 per second is below.
        assert_eq!(
            p.announced_limit(&announcing("3", "1000")),
            Some(RateLimit::new(20, Duration::from_secs(10)))
        );
        assert_eq!(
            p.announced_limit(&announcing("1", "1000")),
            Some(RateLimit::new(1, Duration::from_secs(1)))
        );
        assert_eq!(p.announced_limit(&HeaderMap::new()), None);
    }

    #[test]
    fn the_daily_pair_is_read_and_a_daily_429_is_known() {
        let p = policy();
        let headers = response(
            200,
            &[
                ("x-hubspot-ratelimit-daily", "250000"),
                ("x-hubspot-ratelimit-daily-remaining", "249990"),
            ],
            "",
        )
        .headers;
        assert_eq!(
            p.daily_quota(&headers),
            Some(DailyQuota {
                limit: 250_000,
                remaining: 249_990
            })
        );
        assert_eq!(
            p.daily_quota(&announcing("190", "10000")),
            None,
            "OAuth calls carry the burst headers without the daily pair: unknown"
        );
        let half = response(200, &[("x-hubspot-ratelimit-daily", "10")], "").headers;
        assert_eq!(p.daily_quota(&half), None);
        let daily = response(
            429,
            &[],
            r#"{"status":"error","message":"You have reached your daily limit.","errorType":"RATE_LIMIT","policyName":"DAILY"}"#,
        );
        assert!(p.daily_quota_refused(&daily));
        assert!(!p.daily_quota_refused(&response(
            429,
            &[],
            r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#
        )));
        assert!(!p.daily_quota_refused(&response(200, &[], r#"{"policyName":"DAILY"}"#)));
    }

    #[test]
    fn search_policy_ignores_announced_limits() {
        let p = HubspotPolicy::ignoring_announced_limits();
        assert_eq!(p.announced_limit(&announcing("190", "10000")), None);
        assert_eq!(p.announced_limit(&announcing("1", "10000")), None);
    }

    #[test]
    fn error_detail_from_hubspot_bodies() {
        let p = policy();
        let auth = r#"{"status":"error","message":"The access token is invalid.","correlationId":"x","category":"INVALID_AUTHENTICATION"}"#;
        assert_eq!(
            p.error_detail(&response(401, &[], auth)),
            "INVALID_AUTHENTICATION: The access token is invalid."
        );
        let validation = r#"{"status":"error","message":"Property values were not valid: lots was not a valid number","category":"VALIDATION_ERROR",
            "errors":[{"message":"lots was not a valid number","code":"INVALID_INTEGER","context":{"propertyName":["numberofemployees"]}}]}"#;
        let detail = p.error_detail(&response(400, &[], validation));
        assert_eq!(
            detail,
            "VALIDATION_ERROR: INVALID_INTEGER (numberofemployees)"
        );
        assert!(!p.error_detail(&response(400, &[], r#"{"category":"VALIDATION_ERROR","message":"Property values were not valid: lots"}"#)).contains("lots"));
        assert_eq!(
            p.error_detail(&response(502, &[], "<html>bad gateway</html>")),
            "HTTP 502 with a non-JSON body of 24 bytes"
        );
        let quoting_code = r#"{"category":"VALIDATION_ERROR","errors":[{"code":"INVALID_EMAIL\r\nSet-Cookie: x","context":{"propertyName":["email"]}}]}"#;
        assert_eq!(
            p.error_detail(&response(400, &[], quoting_code)),
            "VALIDATION_ERROR: INVALID_EMAILSet-Cookiex (email)",
            "a code keeps code characters only: no line break reaches a log line"
        );
        let long = format!(r#"{{"category":"X","message":"{}"}}"#, "é".repeat(1000));
        assert!(
            p.error_detail(&response(500, &[], &long)).chars().count()
                <= ferry_core::redact::MAX_MESSAGE_CHARS
        );
    }

    fn url(s: &str) -> reqwest::Url {
        reqwest::Url::parse(s).expect("url")
    }

    #[test]
    fn search_and_v4_association_batches_cost_nothing_in_the_window() {
        let cost =
            |m: reqwest::Method, u: &str| HubspotPolicy::uncapped().request_cost(&m, &url(u), None);
        let base = "http://127.0.0.1:1/prefix";
        assert_eq!(
            cost(
                reqwest::Method::POST,
                &format!("{base}/crm/v3/objects/contacts/search")
            ),
            0
        );
        assert_eq!(
            cost(
                reqwest::Method::POST,
                &format!("{base}/crm/v4/associations/contacts/companies/batch/read")
            ),
            0
        );
        assert_eq!(
            cost(
                reqwest::Method::POST,
                &format!("{base}/crm/v4/associations/contacts/companies/batch/create")
            ),
            0
        );
        assert_eq!(
            cost(
                reqwest::Method::POST,
                &format!("{base}/crm/v3/objects/contacts/batch/read")
            ),
            1
        );
        assert_eq!(
            cost(
                reqwest::Method::POST,
                &format!("{base}/crm/v3/objects/contacts/batch/upsert")
            ),
            1
        );
        assert_eq!(
            cost(
                reqwest::Method::GET,
                &format!("{base}/crm/v4/objects/contacts/1/associations/companies")
            ),
            1
        );
        assert_eq!(
            cost(
                reqwest::Method::GET,
                &format!("{base}/crm/v3/objects/contacts")
            ),
            1
        );
    }
}
