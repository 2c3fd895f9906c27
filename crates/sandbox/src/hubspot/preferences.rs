//! The communication-preferences endpoints that unsubscribe a subscriber from all of a channel
//! (v4, also under dated versions such as `2026-03`), which is how HubSpot records an opt-out:
//! `hs_email_optout` is read-only through the CRM objects API.
//!
//! Two channels: `EMAIL`, whose subscriber is an email address, and `SMS`, whose subscriber is
//! a phone number in E.164 form (`+4915112345678`). HubSpot's v4 reference lists `EMAIL` as
//! the channel; SMS subscriptions (Marketing SMS add-on) are kept per number the same way
//! [UNCONFIRMED through the public API: the emulator serves them as it serves email].
//!
//! As in HubSpot, the opt-out belongs to the subscriber, not to a contact record: an address
//! may be unsubscribed with no contact holding it, and a contact created later with that
//! address is opted out too (`hs_email_optout`; SMS has no property on the record). The batch
//! endpoints need Marketing Hub Enterprise (`Options::batch_subscriptions`). Nothing here can
//! subscribe a subscriber again.

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
/// The subscription type an unsubscribe-all answer names (the account's first).
const SUBSCRIPTION_ID: u64 = 1;
const SUBSCRIPTION_NAME: &str = "Marketing Information";

/// One subscription type of the emulated account (`GET /definitions`).
pub(crate) struct Definition {
    /// Its id (HubSpot answers it as a string in definitions, a number in statuses).
    pub(crate) id: u64,
    /// Its name, which an account's user gives it.
    pub(crate) name: &'static str,
    /// The channel its statuses are kept on.
    pub(crate) channel: Channel,
    /// Its purpose, as the definitions answer names it [UNCONFIRMED values].
    purpose: &'static str,
}

/// The account's subscription types: three on email, one on SMS.
pub(crate) static DEFINITIONS: &[Definition] = &[
    Definition {
        id: SUBSCRIPTION_ID,
        name: SUBSCRIPTION_NAME,
        channel: Channel::Email,
        purpose: "Marketing",
    },
    Definition {
        id: 2,
        name: "One to One",
        channel: Channel::Email,
        purpose: "Sales",
    },
    Definition {
        id: 3,
        name: "Customer Service Communication",
        channel: Channel::Email,
        purpose: "Customer Service",
    },
    Definition {
        id: 4,
        name: "SMS Marketing",
        channel: Channel::Sms,
        purpose: "Marketing",
    },
];

/// The legal bases HubSpot documents for a status (`legalBasis`).
pub(crate) const LEGAL_BASES: &[&str] = &[
    "LEGITIMATE_INTEREST_PQL",
    "LEGITIMATE_INTEREST_CLIENT",
    "PERFORMANCE_OF_CONTRACT",
    "CONSENT_WITH_NOTICE",
    "NON_GDPR",
];

/// One subscriber's status on one subscription type, as last set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TypeStatus {
    /// `SUBSCRIBED` or `NOT_SUBSCRIBED` (a type never set is `NOT_SPECIFIED`, not kept).
    pub(crate) status: &'static str,
    /// The legal basis given with it, if any.
    pub(crate) legal_basis: Option<&'static str>,
    /// The explanation given with the legal basis, if any.
    pub(crate) explanation: Option<String>,
    /// When it was set (epoch ms): HubSpot's clock, never the caller's.
    pub(crate) timestamp: i64,
    /// Who set it (`source`).
    pub(crate) source: &'static str,
}

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

/// A subscription channel, and how its subscribers are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Channel {
    /// Email; the subscriber is an address (kept lower-cased).
    Email,
    /// Text messages; the subscriber is an E.164 phone number.
    Sms,
}

impl Channel {
    /// The channel as the API spells it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "EMAIL",
            Channel::Sms => "SMS",
        }
    }

    fn parse(name: &str) -> Option<Channel> {
        match name {
            "EMAIL" => Some(Channel::Email),
            "SMS" => Some(Channel::Sms),
            _ => None,
        }
    }

    /// Whether `subscriber` is a subscriber id of this channel.
    fn valid(self, subscriber: &str) -> bool {
        match self {
            Channel::Email => valid_email(subscriber),
            Channel::Sms => is_e164(subscriber),
        }
    }

    /// The key a subscriber is kept under.
    pub(crate) fn key(self, subscriber: &str) -> Box<str> {
        match self {
            Channel::Email => subscriber.to_lowercase().into_boxed_str(),
            Channel::Sms => subscriber.into(),
        }
    }

    fn invalid(self, subscriber: &str) -> String {
        match self {
            Channel::Email => format!("{subscriber} is not a valid email address"),
            Channel::Sms => format!("{subscriber} is not a phone number in E.164 form"),
        }
    }
}

/// `+` and 7 to 15 digits, the first not 0 (ITU-T E.164).
pub(crate) fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

/// The `channel` query parameter, `EMAIL` or `SMS`; `required` says whether it may be absent
/// (then `EMAIL`).
fn check_channel(query: Option<&str>, required: bool) -> Result<Channel, Response> {
    let channel = query.unwrap_or_default().split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == "channel").then_some(v)
    });
    match channel {
        None if !required => Ok(Channel::Email),
        None => Err(validation(
            "Some required query parameters were not set: [channel]",
        )),
        Some(name) => Channel::parse(name).ok_or_else(|| {
            validation(format!(
                "Invalid value for query parameter `channel`: {name} (expected EMAIL or SMS)"
            ))
        }),
    }
}

/// Unsubscribes `subscriber` from all of `channel`; returns whether its status changed.
fn unsubscribe(data: &mut Data, channel: Channel, subscriber: &str, now: i64) -> bool {
    let changed = data.wide_mut(channel).insert(channel.key(subscriber));
    if channel != Channel::Email {
        return changed;
    }
    if let Some(id) = holder(data, subscriber) {
        data.sync_opt_out(id, now);
    }
    changed
}

/// The contact holding email address `subscriber`, if one does.
fn holder(data: &mut Data, subscriber: &str) -> Option<u64> {
    let contacts = data.store_mut(Kind::Contacts);
    contacts.prop_id("email").and_then(|p| {
        contacts
            .find_unique(p, subscriber)
            .or_else(|| contacts.find_unique(p, &subscriber.to_lowercase()))
    })
}

/// The status of one subscriber after an unsubscribe, in HubSpot's `PublicStatus` shape.
fn status(channel: Channel, subscriber: &str, changed: bool, now: i64) -> Value {
    json!({
        "channel": channel.as_str(),
        "source": "Public API",
        "status": "NOT_SUBSCRIBED",
        "subscriberIdString": subscriber,
        "subscriptionId": SUBSCRIPTION_ID,
        "subscriptionName": SUBSCRIPTION_NAME,
        "timestamp": format_timestamp(now),
        // "NO_STATUS_CHANGE" is documented; the other value is UNCONFIRMED.
        "setStatusSuccessReason": if changed { "REQUESTED_CHANGE_OCCURRED" } else { "NO_STATUS_CHANGE" },
    })
}

fn invalid_subscriber(channel: Channel, subscriber: &str) -> Value {
    json!({
        "status": "error",
        "category": "VALIDATION_ERROR",
        "message": channel.invalid(subscriber),
        "context": {"subscriberIdString": [subscriber]},
    })
}

/// The 403 of a batch endpoint the account lacks the scopes of (Marketing Hub Enterprise).
fn missing_batch_scope(scope: &str) -> Response {
    let mut extra = Map::new();
    extra.insert(
        "errors".into(),
        json!([{"message": "One or more of the following scopes are required.",
                "context": {"requiredGranularScopes": [scope]}}]),
    );
    error_with(
        StatusCode::FORBIDDEN,
        "MISSING_SCOPES",
        "This app hasn't been granted all required scopes to make this call.",
        extra,
    )
}

/// What every batch endpoint checks first: the path version, the batch `scope` (Marketing
/// Hub Enterprise), and the body's `inputs`, at most [`MAX_UNSUBSCRIBE_BATCH`]; the inputs, or
/// the error answer.
fn batch_inputs(
    emulator: &Emulator,
    version: &str,
    scope: &str,
    body: &Bytes,
) -> Result<Vec<Value>, Response> {
    if !known_version(version) {
        return Err(unknown_version());
    }
    if !emulator.inner.options.batch_subscriptions {
        return Err(missing_batch_scope(scope));
    }
    let mut body = parse_body(body)?;
    let Some(Value::Array(inputs)) = body.get_mut("inputs").map(Value::take) else {
        return Err(validation("Some required fields were not set: [inputs]"));
    };
    if inputs.len() > MAX_UNSUBSCRIBE_BATCH {
        return Err(too_many_inputs(MAX_UNSUBSCRIBE_BATCH, inputs.len()));
    }
    Ok(inputs)
}

/// `inputs` as subscriber ids (strings).
fn subscriber_ids(inputs: Vec<Value>) -> Result<Vec<String>, Response> {
    inputs
        .into_iter()
        .map(|v| match v {
            Value::String(s) => Some(s),
            _ => None,
        })
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| validation("inputs must be an array of subscriber ids"))
}

/// [`batch_inputs`] as subscriber ids, and the `channel` query parameter (`required`, or
/// `EMAIL` when absent).
fn batch_subscribers(
    emulator: &Emulator,
    version: &str,
    scope: &str,
    query: Option<&str>,
    required: bool,
    body: &Bytes,
) -> Result<(Channel, Vec<String>), Response> {
    let inputs = batch_inputs(emulator, version, scope, body)?;
    let channel = check_channel(query, required)?;
    Ok((channel, subscriber_ids(inputs)?))
}

/// A subscriber's wide status in HubSpot's `PublicWideStatus` shape, if it opted out.
fn wide_status(data: &Data, channel: Channel, subscriber: &str) -> Option<Value> {
    data.wide(channel)
        .contains(channel.key(subscriber).as_ref())
        .then(|| {
            json!({
                "channel": channel.as_str(),
                "status": "NOT_SUBSCRIBED",
                "subscriberIdString": subscriber,
                "timestamp": format_timestamp(now_ms()),
                "wideStatusType": "PORTAL_WIDE",
            })
        })
}

/// `POST /communication-preferences/{version}/statuses/batch/unsubscribe-all?channel=` with
/// `{"inputs": [subscriber, …]}` (`channel` defaults to `EMAIL`): 200, or 207 with an error
/// per malformed subscriber id. 403
/// `MISSING_SCOPES` when the account lacks the batch scopes (Marketing Hub Enterprise).
pub(crate) async fn batch_unsubscribe_all(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let scope = "communication_preferences.statuses.batch.write";
    let (channel, subscribers) =
        match batch_subscribers(&emulator, &version, scope, query.as_deref(), false, &body) {
            Ok(checked) => checked,
            Err(r) => return r,
        };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for subscriber in &subscribers {
        if !channel.valid(subscriber) {
            errors.push(invalid_subscriber(channel, subscriber));
            continue;
        }
        let changed = unsubscribe(&mut data, channel, subscriber, now);
        results.push(json!({
            "subscriberIdString": subscriber,
            "statuses": [status(channel, subscriber, changed, now)],
        }));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// `POST /communication-preferences/{version}/statuses/{subscriber}/unsubscribe-all?channel=`:
/// one subscriber; 200, or 400 for a malformed subscriber id.
pub(crate) async fn unsubscribe_all(
    State(emulator): State<Emulator>,
    Path((version, subscriber)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    let channel = match check_channel(query.as_deref(), true) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !channel.valid(&subscriber) {
        return validation(channel.invalid(&subscriber));
    }
    let now = emulator.now_ms();
    let changed = unsubscribe(&mut emulator.write(), channel, &subscriber, now);
    batch_response(
        StatusCode::OK,
        vec![status(channel, &subscriber, changed, now)],
        Vec::new(),
        started,
    )
}

/// `GET /communication-preferences/{version}/statuses/{subscriber}/unsubscribe-all?channel=`:
/// the subscriber's wide status; `results` is empty when it has not opted out of all of the
/// channel (`EMAIL` when absent).
pub(crate) async fn read_unsubscribe_all(
    State(emulator): State<Emulator>,
    Path((version, subscriber)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    let channel = match check_channel(query.as_deref(), false) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let results: Vec<Value> = wide_status(&emulator.read(), channel, &subscriber)
        .into_iter()
        .collect();
    let body = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": format_timestamp(started),
        "completedAt": format_timestamp(now_ms()),
    });
    (StatusCode::OK, Json(body)).into_response()
}

/// `POST /communication-preferences/{version}/statuses/batch/unsubscribe-all/read?channel=`
/// with `{"inputs": [subscriber, …]}`: each subscriber with its `wideStatuses` (empty when it
/// has not opted out of all of the channel); 207 with an error per malformed subscriber id.
/// 403 `MISSING_SCOPES` without the batch scopes (Marketing Hub Enterprise).
pub(crate) async fn batch_read_unsubscribe_all(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let scope = "communication_preferences.statuses.batch.read";
    let (channel, subscribers) =
        match batch_subscribers(&emulator, &version, scope, query.as_deref(), true, &body) {
            Ok(checked) => checked,
            Err(r) => return r,
        };
    let data = emulator.read();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for subscriber in &subscribers {
        if !channel.valid(subscriber) {
            errors.push(invalid_subscriber(channel, subscriber));
            continue;
        }
        let wide: Vec<Value> = wide_status(&data, channel, subscriber)
            .into_iter()
            .collect();
        results.push(json!({"subscriberIdString": subscriber, "wideStatuses": wide}));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// Subscribers' statuses per subscription type: (channel, subscriber key) → type id → status.
pub(crate) type TypeStatuses =
    std::collections::HashMap<(Channel, Box<str>), std::collections::BTreeMap<u64, TypeStatus>>;

/// `GET /communication-preferences/{version}/definitions`: the account's subscription types.
///
/// The SMS type is listed only by an account with HubSpot's SMS add-on ([`super::Options::sms_addon`],
/// or seeded SMS opt-outs): one without it has no SMS type.
pub(crate) async fn definitions(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
) -> Response {
    let started = now_ms();
    if !known_version(&version) {
        return unknown_version();
    }
    let has_sms = emulator.read().sms_addon;
    let created = format_timestamp(0);
    let results: Vec<Value> = DEFINITIONS
        .iter()
        .filter(|d| d.channel != Channel::Sms || has_sms)
        .map(|d| {
            json!({
                "id": d.id.to_string(),
                "name": d.name,
                "description": format!("{} ({})", d.name, d.channel.as_str()),
                "isActive": true,
                "isDefault": d.id == SUBSCRIPTION_ID,
                "isInternal": false,
                "businessUnitId": 0,
                "communicationMethod": d.channel.as_str(),
                "purpose": d.purpose,
                "createdAt": created,
                "updatedAt": created,
                "subscriptionTranslations": [],
            })
        })
        .collect();
    batch_response(StatusCode::OK, results, Vec::new(), started)
}

/// A subscriber's status on definition `d` in HubSpot's `PublicStatus` shape.
fn type_status(data: &Data, d: &Definition, subscriber: &str) -> Value {
    let kept = data
        .type_statuses
        .get(&(d.channel, d.channel.key(subscriber)))
        .and_then(|types| types.get(&d.id));
    let mut out = json!({
        "channel": d.channel.as_str(),
        "subscriberIdString": subscriber,
        "subscriptionId": d.id,
        "subscriptionName": d.name,
        "businessUnitId": 0,
    });
    match kept {
        Some(t) => {
            out["status"] = json!(t.status);
            out["source"] = json!(t.source);
            out["timestamp"] = json!(format_timestamp(t.timestamp));
            if let Some(basis) = t.legal_basis {
                out["legalBasis"] = json!(basis);
            }
            if let Some(explanation) = &t.explanation {
                out["legalBasisExplanation"] = json!(explanation);
            }
        }
        None => {
            out["status"] = json!("NOT_SPECIFIED");
            out["source"] = json!("");
            out["timestamp"] = json!(format_timestamp(0));
        }
    }
    out
}

/// `POST /communication-preferences/{version}/statuses/batch/read?channel=` with
/// `{"inputs": [subscriber, …]}`: each subscriber's status on every subscription type of the
/// channel (`NOT_SPECIFIED` where never set); 207 with an error per malformed subscriber id.
/// 403 `MISSING_SCOPES` without the batch scopes.
pub(crate) async fn batch_read_statuses(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let scope = "communication_preferences.statuses.batch.read";
    let (channel, subscribers) =
        match batch_subscribers(&emulator, &version, scope, query.as_deref(), true, &body) {
            Ok(checked) => checked,
            Err(r) => return r,
        };
    let data = emulator.read();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for subscriber in &subscribers {
        if !channel.valid(subscriber) {
            errors.push(invalid_subscriber(channel, subscriber));
            continue;
        }
        let statuses: Vec<Value> = DEFINITIONS
            .iter()
            .filter(|d| d.channel == channel)
            .map(|d| type_status(&data, d, subscriber))
            .collect();
        results.push(json!({"subscriberIdString": subscriber, "statuses": statuses}));
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// One status write (`PublicStatusRequest`), checked; `Err` is the message of its 400.
fn set_status(data: &mut Data, subscriber: &str, input: &Value, now: i64) -> Result<Value, String> {
    let text = |k: &str| input.get(k).and_then(Value::as_str);
    let channel = text("channel")
        .and_then(Channel::parse)
        .ok_or("channel must be EMAIL or SMS")?;
    if !channel.valid(subscriber) {
        return Err(channel.invalid(subscriber));
    }
    let status = match text("statusState") {
        Some("SUBSCRIBED") => "SUBSCRIBED",
        Some("NOT_SUBSCRIBED") => "NOT_SUBSCRIBED",
        Some("NOT_SPECIFIED") => "NOT_SPECIFIED",
        _ => return Err("statusState must be SUBSCRIBED, NOT_SUBSCRIBED or NOT_SPECIFIED".into()),
    };
    let id = input
        .get("subscriptionId")
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .ok_or("Some required fields were not set: [subscriptionId]")?;
    let definition = DEFINITIONS
        .iter()
        .find(|d| d.id == id && d.channel == channel)
        .ok_or_else(|| {
            format!(
                "subscription {id} is not a {} subscription",
                channel.as_str()
            )
        })?;
    let legal_basis = match text("legalBasis") {
        None => None,
        Some(b) => Some(
            *LEGAL_BASES
                .iter()
                .find(|l| **l == b)
                .ok_or_else(|| format!("Invalid legalBasis: {b}"))?,
        ),
    };
    let key = (channel, channel.key(subscriber));
    let types = data.type_statuses.entry(key).or_default();
    if status == "NOT_SPECIFIED" {
        types.remove(&id);
    } else {
        types.insert(
            id,
            TypeStatus {
                status,
                legal_basis,
                explanation: text("legalBasisExplanation").map(str::to_owned),
                timestamp: now,
                source: "Public API",
            },
        );
    }
    if channel == Channel::Email
        && let Some(id) = holder(data, subscriber)
    {
        data.sync_opt_out(id, now);
    }
    Ok(type_status(data, definition, subscriber))
}

/// `POST /communication-preferences/{version}/statuses/{subscriber}` with `{channel,
/// statusState, subscriptionId, legalBasis, legalBasisExplanation}`: sets the subscriber's
/// status on one type (v4 may subscribe again one who unsubscribed); the timestamp is
/// HubSpot's clock. 400 for a malformed request.
pub(crate) async fn write_status(
    State(emulator): State<Emulator>,
    Path((version, subscriber)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if !known_version(&version) {
        return unknown_version();
    }
    let input = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let now = emulator.now_ms();
    match set_status(&mut emulator.write(), &subscriber, &input, now) {
        Ok(status) => (StatusCode::OK, Json(status)).into_response(),
        Err(message) => validation(message),
    }
}

/// `POST /communication-preferences/{version}/statuses/batch/write` with `{"inputs":
/// [{subscriberIdString, channel, statusState, subscriptionId, legalBasis, …}]}`: 200, or 207
/// with an error per input refused. 403 `MISSING_SCOPES` without the batch scopes.
pub(crate) async fn batch_write_statuses(
    State(emulator): State<Emulator>,
    Path(version): Path<String>,
    body: Bytes,
) -> Response {
    let started = now_ms();
    let scope = "communication_preferences.statuses.batch.write";
    let inputs = match batch_inputs(&emulator, &version, scope, &body) {
        Ok(inputs) => inputs,
        Err(r) => return r,
    };
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    for input in &inputs {
        let subscriber = input
            .get("subscriberIdString")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match set_status(&mut data, subscriber, input, now) {
            Ok(status) => results.push(status),
            Err(message) => errors.push(json!({
                "status": "error",
                "category": "VALIDATION_ERROR",
                "message": message,
                "context": {"subscriberIdString": [subscriber]},
            })),
        }
    }
    drop(data);
    batch_response(StatusCode::OK, results, errors, started)
}

/// The seeded statuses of contact `c`: `NOT_SUBSCRIBED` on legitimate interest to each type
/// the seed unsubscribed it from ([`crate::seed::SeedContact::email_unsubscribed_types`]), and
/// every eleventh contact subscribed to "Marketing Information" with consent and an
/// explanation (a status that is no opt-out, drawn from the key).
pub(crate) fn seeded_statuses(
    c: &crate::seed::SeedContact,
    email: &str,
    at: i64,
    out: &mut TypeStatuses,
) {
    let mut set = |id: u64, status: TypeStatus| {
        out.entry((Channel::Email, Channel::Email.key(email)))
            .or_default()
            .insert(id, status);
    };
    for name in &c.email_unsubscribed_types {
        if let Some(d) = DEFINITIONS
            .iter()
            .find(|d| d.channel == Channel::Email && d.name == *name)
        {
            set(
                d.id,
                TypeStatus {
                    status: "NOT_SUBSCRIBED",
                    legal_basis: Some("LEGITIMATE_INTEREST_CLIENT"),
                    explanation: Some("Asked not to be contacted so.".into()),
                    timestamp: at,
                    source: "Self Service Resubscription",
                },
            );
        }
    }
    if c.key % 11 == 5 {
        set(
            SUBSCRIPTION_ID,
            TypeStatus {
                status: "SUBSCRIBED",
                legal_basis: Some("CONSENT_WITH_NOTICE"),
                explanation: Some("Signed up on the newsletter form.".into()),
                timestamp: at,
                source: "Form",
            },
        );
    }
}

/// The per-type opt-out property of each email subscription type: its name
/// (`hs_email_optout_<type id>`) and label.
pub(crate) fn type_opt_out_properties() -> impl Iterator<Item = (String, String)> {
    DEFINITIONS
        .iter()
        .filter(|d| d.channel == Channel::Email)
        .map(|d| {
            (
                format!("hs_email_optout_{}", d.id),
                format!("Opted out of email: {}", d.name),
            )
        })
}

/// The values of the per-type opt-out properties for address `email`, in
/// [`type_opt_out_properties`] order: `"true"` where it is `NOT_SUBSCRIBED`, else `"false"`.
pub(crate) fn type_opt_out_values(data: &Data, email: &str) -> Vec<&'static str> {
    let kept = data
        .type_statuses
        .get(&(Channel::Email, Channel::Email.key(email)));
    DEFINITIONS
        .iter()
        .filter(|d| d.channel == Channel::Email)
        .map(|d| {
            let out = kept
                .and_then(|types| types.get(&d.id))
                .is_some_and(|t| t.status == "NOT_SUBSCRIBED");
            if out { "true" } else { "false" }
        })
        .collect()
}
