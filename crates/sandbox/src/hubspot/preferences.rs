//! The communication-preferences endpoints that unsubscribe an email address from all email
//! (v4, also under dated versions such as `2026-03`), which is how HubSpot records an opt-out:
//! `hs_email_optout` is read-only through the CRM objects API.
//!
//! As in HubSpot, the opt-out belongs to the address, not to a contact record: an address may
//! be unsubscribed with no contact holding it, and a contact created later with that address
//! is opted out too. The batch endpoint needs Marketing Hub Enterprise
//! (`Options::batch_subscriptions`). Nothing here can subscribe an address again.

// Helpers return a finished HubSpot error `Response` as their `Err`: it is sent as is, once.
#![allow(clippy::result_large_err)]

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::api::{batch_response, now_ms, parse_body, valid_email};
use super::respond::{error, error_with, too_many_inputs, validation};
use super::store::{Kind, format_timestamp};
use super::{Data, Emulator};

/// Addresses per batch unsubscribe. HubSpot's limit for this endpoint is UNCONFIRMED; 100
/// (its common CRM batch size) keeps a client that relies on more from passing here.
const MAX_UNSUBSCRIBE_BATCH: usize = 100;
/// The emulated account's one email subscription type.
const SUBSCRIPTION_ID: u64 = 1;
const SUBSCRIPTION_NAME: &str = "Marketing Information";

/// Whether `version` is a path version HubSpot serves these endpoints under: `v4`, or a
/// dated one such as `2026-03`.
fn known_version(version: &str) -> bool {
    let b = version.as_bytes();
    version == "v4"
        || (b.len() == 7
            && b[4] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || c.is_ascii_digit()))
}

fn unknown_version() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "OBJECT_NOT_FOUND",
        "Resource not found",
    )
}

/// The `channel` query parameter: `EMAIL` is the only channel; `required` says whether it may
/// be absent.
fn check_channel(query: Option<&str>, required: bool) -> Result<(), Response> {
    let channel = query.unwrap_or_default().split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == "channel").then_some(v)
    });
    match channel {
        Some("EMAIL") => Ok(()),
        None if !required => Ok(()),
        None => Err(validation(
            "Some required query parameters were not set: [channel]",
        )),
        Some(other) => Err(validation(format!(
            "Invalid value for query parameter `channel`: {other} (expected EMAIL)"
        ))),
    }
}

/// Unsubscribes `email` from all email; returns whether its status changed.
fn unsubscribe(data: &mut Data, email: &str, now: i64) -> bool {
    let changed = data.opted_out.insert(email.to_lowercase().into_boxed_str());
    let contacts = data.store_mut(Kind::Contacts);
    let holder = contacts.prop_id("email").and_then(|p| {
        contacts
            .find_unique(p, email)
            .or_else(|| contacts.find_unique(p, &email.to_lowercase()))
    });
    if let Some(id) = holder {
        data.sync_opt_out(id, now);
    }
    changed
}

/// The status of one address after an unsubscribe, in HubSpot's `PublicStatus` shape.
fn status(email: &str, changed: bool, now: i64) -> Value {
    json!({
        "channel": "EMAIL",
        "source": "Public API",
        "status": "NOT_SUBSCRIBED",
        "subscriberIdString": email,
        "subscriptionId": SUBSCRIPTION_ID,
        "subscriptionName": SUBSCRIPTION_NAME,
        "timestamp": format_timestamp(now),
        // "NO_STATUS_CHANGE" is documented; the other value is UNCONFIRMED.
        "setStatusSuccessReason": if changed { "REQUESTED_CHANGE_OCCURRED" } else { "NO_STATUS_CHANGE" },
    })
}

fn invalid_address(email: &str) -> Value {
    json!({
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": format!("{email} is not a valid email address"),
        "context": {"subscriberIdString": [email]},
    })
}

/// `POST /communication-preferences/{version}/statuses/batch/unsubscribe-all` with
/// `{"inputs": [email, …]}`: 200, or 207 with an error per malformed address. 403
/// `MISSING_SCOPES` when the account lacks the batch scopes (Marketing Hub Enterprise).
pub(crate) async fn batch_unsubscribe_all(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    if !emulator.inner.options.batch_subscriptions {
        let mut extra = Map::new();
        extra.insert(
            "errors".into(),
            json!([{"message": "One or more of the following scopes are required.",
                    "context": {"requiredGranularScopes": ["communication_preferences.statuses.batch.write"]}}]),
        );
        return error_with(
            StatusCode::FORBIDDEN,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
            extra,
        );
    }
    if let Err(r) = check_channel(query.as_deref(), false) {
        return r;
    }
    let body = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(inputs) = body.get("inputs").and_then(Value::as_array) else {
        return validation("Some required fields were not set: [inputs]");
    };
    if inputs.len() > MAX_UNSUBSCRIBE_BATCH {
        return too_many_inputs(MAX_UNSUBSCRIBE_BATCH, inputs.len());
    }
    let Some(emails) = inputs
        .iter()
        .map(Value::as_str)
        .collect::<Option<Vec<&str>>>()
    else {
        return validation("inputs must be an array of email addresses");
    };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for email in emails {
        if !valid_email(email) {
            errors.push(invalid_address(email));
            continue;
        }
        let changed = unsubscribe(&mut data, email, now);
        results.push(json!({
            "subscriberIdString": email,
            "statuses": [status(email, changed, now)],
        }));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// `POST /communication-preferences/{version}/statuses/{email}/unsubscribe-all?channel=EMAIL`:
/// one address; 200, or 400 for a malformed address.
pub(crate) async fn unsubscribe_all(
    State(emulator): State<Emulator>,
    Path((version, subscriber)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    if let Err(r) = check_channel(query.as_deref(), true) {
        return r;
    }
    if !valid_email(&subscriber) {
        return validation(format!("{subscriber} is not a valid email address"));
    }
    let now = emulator.now_ms();
    let changed = unsubscribe(&mut emulator.write(), &subscriber, now);
    batch_response(
        StatusCode::OK,
        vec![status(&subscriber, changed, now)],
        Vec::new(),
        started,
    )
}

/// `GET /communication-preferences/{version}/statuses/{email}/unsubscribe-all`: the address's
/// wide status; `results` is empty when it has not opted out of all email.
pub(crate) async fn read_unsubscribe_all(
    State(emulator): State<Emulator>,
    Path((version, subscriber)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    if let Err(r) = check_channel(query.as_deref(), false) {
        return r;
    }
    let opted_out = emulator
        .read()
        .opted_out
        .contains(subscriber.to_lowercase().as_str());
    let results = if opted_out {
        vec![json!({
            "channel": "EMAIL",
            "status": "NOT_SUBSCRIBED",
            "subscriberIdString": subscriber,
            "timestamp": format_timestamp(now_ms()),
            "wideStatusType": "PORTAL_WIDE",
        })]
    } else {
        Vec::new()
    };
    let body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": format_timestamp(started),
        "completedAt": format_timestamp(now_ms()),
    });
    (StatusCode::OK, Json(body)).into_response()
}
