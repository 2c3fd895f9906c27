//! HubSpot's response shapes: error bodies, the 429 body, and the rate-limit headers.

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// A fresh uuid-shaped correlation id, as HubSpot puts in every error body.
pub(crate) fn correlation_id() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// HubSpot's standard error body: `status`, `message`, `correlationId`, `category`, plus any
/// extra members (`errors`, `context`, `subCategory`).
pub(crate) fn error(status: StatusCode, category: &str, message: impl Into<String>) -> Response {
    error_with(status, category, message, Map::new())
}

/// [`error`] with extra members.
pub(crate) fn error_with(
    status: StatusCode,
    category: &str,
    message: impl Into<String>,
    extra: Map<String, Value>,
) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("error"));
    body.insert("message".into(), json!(message.into()));
    body.insert("correlationId".into(), json!(correlation_id()));
    body.extend(extra);
    body.insert("category".into(), json!(category));
    (status, Json(Value::Object(body))).into_response()
}

/// A 400 `VALIDATION_ERROR`.
pub(crate) fn validation(message: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
}

/// A 400 for more batch inputs than HubSpot accepts.
pub(crate) fn too_many_inputs(max: usize, got: usize) -> Response {
    let message = format!(
        "The maximum number of inputs supported in a batch request is {max}, but {got} were provided."
    );
    let mut extra = Map::new();
    extra.insert(
        "context".into(),
        json!({"maxInputs": [max.to_string()], "providedInputs": [got.to_string()]}),
    );
    error_with(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message, extra)
}

/// Which rate limit a 429 reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    TenSecondly,
    /// Search's per-second limit.
    Secondly,
    Daily,
}

/// HubSpot's 429 body for `policy`. HubSpot documents no `Retry-After` on it.
pub(crate) fn rate_limited(policy: Policy) -> Response {
    let (message, name) = match policy {
        Policy::TenSecondly => (
            "You have reached your ten_secondly_rolling limit.",
            "TEN_SECONDLY_ROLLING",
        ),
        // As HubSpot words its per-second limits (reported for search, among others).
        Policy::Secondly => ("You have reached your secondly limit.", "SECONDLY"),
        Policy::Daily => ("You have reached your daily limit.", "DAILY"),
    };
    let body = json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": name,
    });
    (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response()
}

/// The 429 the fault layer injects: HubSpot's burst-limit body, with `Retry-After` only when
/// the fault profile asks for one (the real API sends none). It carries no rate-limit headers,
/// since the fault layer does not know the emulator's configured limits.
pub(crate) fn injected_429(retry_after_secs: Option<u64>) -> Response {
    let mut response = rate_limited(Policy::TenSecondly);
    if let Some(secs) = retry_after_secs {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(secs));
    }
    response
}

/// The rate-limit state to report in headers after a request was admitted or refused.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Quota {
    pub max: Option<u32>,
    pub remaining: Option<u32>,
    pub daily: Option<u64>,
    pub daily_remaining: Option<u64>,
}

impl Quota {
    /// Adds HubSpot's `X-HubSpot-RateLimit-*` headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        if let (Some(max), Some(remaining)) = (self.max, self.remaining) {
            headers.insert(
                "x-hubspot-ratelimit-interval-milliseconds",
                HeaderValue::from_static("10000"),
            );
            headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(max));
            headers.insert(
                "x-hubspot-ratelimit-remaining",
                HeaderValue::from(remaining),
            );
        }
        if let (Some(daily), Some(remaining)) = (self.daily, self.daily_remaining) {
            headers.insert("x-hubspot-ratelimit-daily", HeaderValue::from(daily));
            headers.insert(
                "x-hubspot-ratelimit-daily-remaining",
                HeaderValue::from(remaining),
            );
        }
    }
}
