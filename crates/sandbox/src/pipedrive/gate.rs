//! The checks in front of every route, and Pipedrive's envelopes: the API token, the daily
//! token budget, the burst window (and search's own window), the rate-limit headers and the
//! 401/429 bodies.
//!
//! Token costs follow Pipedrive's published model (v1: single GET 2, list 20, write 10, delete
//! 6, search 40), with v2 endpoints at half ("v2 consume 50% fewer tokens"): v2 deals list 10,
//! one deal 1, create or update 5, delete 3, as the spec's `x-token-cost` gives them; v1 notes
//! and users at the v1 figures, the current user (`/v1/users/me`) 2. The full per-endpoint table
//! is not reproduced; see `docs/connectors/pipedrive.md`.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;

/// Pipedrive's rate-limit window.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);
/// The `error_info` Pipedrive puts in error bodies.
pub(crate) const ERROR_INFO: &str =
    "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// A success envelope: `{"success": true, "data": …, "additional_data": …}`.
pub(crate) fn ok(data: Value, additional: Value) -> Response {
    let mut body = json!({"success": true, "data": data});
    if !additional.is_null() {
        body["additional_data"] = additional;
    }
    (StatusCode::OK, Json(body)).into_response()
}

/// An error envelope with Pipedrive's shape; `code` is added when given (v2 validation).
pub(crate) fn error(
    status: StatusCode,
    message: impl Into<String>,
    code: Option<&str>,
) -> Response {
    let mut body = json!({
        "success": false,
        "error": message.into(),
        "error_info": ERROR_INFO,
        "data": null,
        "additional_data": null,
    });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    (status, Json(body)).into_response()
}

/// A 400 schema-validation error, as v2 answers invalid input.
pub(crate) fn invalid(message: impl Into<String>) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        message,
        Some("ERR_SCHEMA_VALIDATION_FAILED"),
    )
}

/// A 404 for a missing record or route.
pub(crate) fn not_found(message: impl Into<String>) -> Response {
    error(StatusCode::NOT_FOUND, message, None)
}

fn unauthorized() -> Response {
    let body = json!({
        "success": false,
        "error": "unauthorized access",
        "errorCode": 401,
        "error_info": "Please check developers.pipedrive.com",
    });
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

/// Pipedrive's 429 body.
pub(crate) fn too_many_requests() -> Response {
    let body = json!({
        "success": false,
        "error": "Request over limit",
        "errorCode": 429,
        "error_info": ERROR_INFO,
        "data": null,
        "additional_data": null,
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

/// The 429 the fault layer injects; `Retry-After` only when the profile asks for one.
pub(crate) fn injected_429(retry_after_secs: Option<u64>) -> Response {
    let mut response = too_many_requests();
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

/// What a request draws on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bucket {
    /// The burst window.
    General,
    /// Search's own window ("10 requests per 2 seconds" on every plan).
    Search,
}

/// The token cost of a request.
pub(crate) fn cost(method: &Method, path: &str) -> u64 {
    let v2 = path.starts_with("/api/v2/");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let v1_cost = if path.ends_with("/search") {
        40
    } else if *method == Method::GET {
        // `/api/v2/persons/{id}` and `/v1/persons/{id}` are single reads, and so is the
        // current user (`/v1/users/me`, 2 tokens); the rest are lists.
        let single = segments
            .last()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()))
            || path == "/v1/users/me";
        if single { 2 } else { 20 }
    } else if *method == Method::DELETE {
        6
    } else {
        10
    };
    if v2 { (v1_cost / 2).max(1) } else { v1_cost }
}

/// The request logs behind the limits.
#[derive(Debug, Default)]
pub(crate) struct Limits {
    window: VecDeque<Instant>,
    search_window: VecDeque<Instant>,
    tokens_used: u64,
}

/// The limits in force, from the options.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Caps {
    pub burst: Option<u32>,
    pub search: Option<u32>,
    pub daily_tokens: Option<u64>,
}

/// The numbers the rate-limit headers report.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quota {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    pub reset_secs: u64,
    pub daily_remaining: Option<u64>,
}

impl Quota {
    fn apply(&self, headers: &mut HeaderMap) {
        if let (Some(limit), Some(remaining)) = (self.limit, self.remaining) {
            headers.insert("x-ratelimit-limit", HeaderValue::from(limit));
            headers.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
            headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_secs));
        }
        if let Some(daily) = self.daily_remaining {
            headers.insert(
                "x-daily-ratelimit-token-remaining",
                HeaderValue::from(daily),
            );
        }
    }
}

fn expire(log: &mut VecDeque<Instant>, now: Instant) {
    while log
        .front()
        .is_some_and(|t| now.duration_since(*t) >= WINDOW)
    {
        log.pop_front();
    }
}

impl Limits {
    /// Admits a request costing `tokens` if the limits allow; `Err` carries the headers of the
    /// refusal.
    pub(crate) fn admit(
        &mut self,
        caps: Caps,
        bucket: Bucket,
        tokens: u64,
        now: Instant,
    ) -> Result<Quota, Quota> {
        expire(&mut self.window, now);
        expire(&mut self.search_window, now);
        let (log, cap) = match bucket {
            Bucket::General => (&mut self.window, caps.burst),
            Bucket::Search => (&mut self.search_window, caps.search),
        };
        let reset = |log: &VecDeque<Instant>| {
            log.front()
                .map(|t| {
                    (WINDOW.saturating_sub(now.duration_since(*t)))
                        .as_secs_f64()
                        .ceil() as u64
                })
                .unwrap_or(WINDOW.as_secs())
                .max(1)
        };
        let daily_left = caps
            .daily_tokens
            .map(|d| d.saturating_sub(self.tokens_used));
        let quota = |log: &VecDeque<Instant>, daily_remaining| Quota {
            limit: cap,
            remaining: cap.map(|c| c.saturating_sub(log.len() as u32)),
            reset_secs: reset(log),
            daily_remaining,
        };
        if daily_left.is_some_and(|left| left < tokens) {
            return Err(quota(log, daily_left));
        }
        if cap.is_some_and(|c| log.len() as u32 >= c) {
            return Err(quota(log, daily_left));
        }
        log.push_back(now);
        self.tokens_used += tokens;
        let daily_left = caps
            .daily_tokens
            .map(|d| d.saturating_sub(self.tokens_used));
        Ok(quota(log, daily_left))
    }

    /// Tokens spent so far.
    pub(crate) fn tokens_used(&self) -> u64 {
        self.tokens_used
    }
}

/// The API token of a request: the `x-api-token` header, or the legacy `api_token` query
/// parameter.
fn token(request: &Request) -> Option<String> {
    if let Some(t) = request
        .headers()
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
    {
        return Some(t.trim().to_owned());
    }
    let query = request.uri().query()?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "api_token").then(|| urlencoding::decode(v).map(|s| s.into_owned()).ok())?
    })
}

/// Middleware: 401 without the right token, 429 over a limit, rate-limit headers otherwise.
pub(crate) async fn gate(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let inner = &emulator.inner;
    inner.stats.requests.fetch_add(1, Ordering::Relaxed);
    if token(&request).as_deref() != Some(inner.options.token.as_str()) {
        return unauthorized();
    }
    let path = request.uri().path().to_owned();
    let bucket = if path.ends_with("/search") {
        Bucket::Search
    } else {
        Bucket::General
    };
    let caps = Caps {
        burst: inner.options.burst_limit,
        search: inner.options.search_limit,
        daily_tokens: inner.options.daily_token_budget,
    };
    let tokens = cost(request.method(), &path);
    let admitted = match inner.limits.lock() {
        Ok(mut limits) => limits.admit(caps, bucket, tokens, Instant::now()),
        Err(_) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "limiter poisoned", None);
        }
    };
    match admitted {
        Ok(quota) => {
            let mut response = next.run(request).await;
            quota.apply(response.headers_mut());
            response
        }
        Err(quota) => {
            inner.stats.throttled.fetch_add(1, Ordering::Relaxed);
            let mut response = too_many_requests();
            quota.apply(response.headers_mut());
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(burst: Option<u32>, daily: Option<u64>) -> Caps {
        Caps {
            burst,
            search: Some(10),
            daily_tokens: daily,
        }
    }

    #[test]
    fn costs_follow_the_published_model_halved_for_v2() {
        assert_eq!(cost(&Method::GET, "/api/v2/persons"), 10);
        assert_eq!(cost(&Method::GET, "/api/v2/persons/17"), 1);
        assert_eq!(cost(&Method::GET, "/api/v2/persons/search"), 20);
        assert_eq!(cost(&Method::POST, "/api/v2/persons"), 5);
        assert_eq!(cost(&Method::PATCH, "/api/v2/organizations/3"), 5);
        assert_eq!(cost(&Method::GET, "/v1/personFields"), 20);
    }

    #[test]
    fn sales_objects_cost_what_pipedrive_documents() {
        // v2 deals: list 10, one 1, create and update 5, delete 3, search 20.
        assert_eq!(cost(&Method::GET, "/api/v2/deals"), 10);
        assert_eq!(cost(&Method::GET, "/api/v2/deals/7"), 1);
        assert_eq!(cost(&Method::POST, "/api/v2/deals"), 5);
        assert_eq!(cost(&Method::PATCH, "/api/v2/deals/7"), 5);
        assert_eq!(cost(&Method::DELETE, "/api/v2/deals/7"), 3);
        assert_eq!(cost(&Method::GET, "/api/v2/deals/search"), 20);
        assert_eq!(cost(&Method::GET, "/api/v2/stages"), 10);
        // v1 notes and users: list 20, one 2, write 10, delete 6; the current user is one read.
        assert_eq!(cost(&Method::GET, "/v1/notes"), 20);
        assert_eq!(cost(&Method::GET, "/v1/notes/3"), 2);
        assert_eq!(cost(&Method::POST, "/v1/notes"), 10);
        assert_eq!(cost(&Method::PUT, "/v1/notes/3"), 10);
        assert_eq!(cost(&Method::DELETE, "/v1/notes/3"), 6);
        assert_eq!(cost(&Method::GET, "/v1/users"), 20);
        assert_eq!(cost(&Method::GET, "/v1/users/12"), 2);
        assert_eq!(cost(&Method::GET, "/v1/users/me"), 2);
    }

    #[test]
    fn burst_window_refuses_and_recovers() {
        let mut limits = Limits::default();
        let caps = caps(Some(3), None);
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            assert_eq!(
                limits
                    .admit(caps, Bucket::General, 1, t0)
                    .unwrap()
                    .remaining,
                Some(left)
            );
        }
        let refused = limits.admit(caps, Bucket::General, 1, t0).unwrap_err();
        assert_eq!((refused.remaining, refused.reset_secs), (Some(0), 2));
        assert!(
            limits.admit(caps, Bucket::Search, 20, t0).is_ok(),
            "search has its own window"
        );
        assert!(limits.admit(caps, Bucket::General, 1, t0 + WINDOW).is_ok());
    }

    #[test]
    fn daily_budget_refuses_what_it_cannot_pay_for() {
        let mut limits = Limits::default();
        let caps = caps(None, Some(25));
        let t0 = Instant::now();
        assert_eq!(
            limits
                .admit(caps, Bucket::Search, 20, t0)
                .unwrap()
                .daily_remaining,
            Some(5)
        );
        assert_eq!(
            limits
                .admit(caps, Bucket::General, 10, t0)
                .unwrap_err()
                .daily_remaining,
            Some(5)
        );
        assert!(limits.admit(caps, Bucket::General, 5, t0).is_ok());
        assert_eq!(limits.tokens_used(), 25);
    }
}
