//! Reading the opt-outs HubSpot keeps per subscriber and shows on no property of the record
//! (SMS), through the communication-preferences v4 API: the wide ("unsubscribe from all")
//! status of each subscriber of a page, one batch read per 100 subscribers, or one request
//! per subscriber where the account lacks the batch scopes (Marketing Hub Enterprise).
//!
//! A subscriber is an email address, or a phone number sent in E.164 form (`+4915112345678`):
//! a number written with its country code is reformatted; a national one is read in the
//! region of the record's country. The subscriber is personal data: endpoints are named
//! without it in messages and logs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use ferry_core::phone::{Reading, Region};
use ferry_core::{ConnectorResult, FieldType, Record, Value, field};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::objects::{HubspotBinding, Subscription};

/// Subscribers per batch read. HubSpot's limit for this endpoint is UNCONFIRMED; 100 is its
/// common batch size.
pub const MAX_SUBSCRIBERS: usize = 100;

/// The batch read of wide statuses.
const BATCH_READ: &str = "/communication-preferences/v4/statuses/batch/unsubscribe-all/read";

/// The subscriber id `record` is opted out of `subscription`'s channel under: its address, or
/// its phone number in E.164 form. `None` when it has none HubSpot could take.
pub fn subscriber(subscription: &Subscription, record: &Record) -> Option<String> {
    let text = record
        .text(subscription.address)
        .map(str::trim)
        .filter(|t| !t.is_empty())?;
    let phone = record
        .object
        .field(subscription.address)
        .is_some_and(|f| f.ty == FieldType::Phone);
    if !phone {
        return Some(text.to_owned());
    }
    // A number with its country code needs no region, and one given makes the parser drop
    // digits of some (`+49 151 …` read in the US loses the `1` of `151`).
    let international = text.starts_with('+') || text.starts_with("00");
    let region = record
        .text(field::COUNTRY)
        .filter(|_| !international)
        .and_then(Region::of_country);
    match ferry_core::phone::read(text, region) {
        Reading::Valid { e164, .. } => Some(e164),
        // Not in libphonenumber's plans, but written internationally: its digits are its form.
        _ => {
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            let international = text.starts_with('+');
            (international && (7..=15).contains(&digits.len()) && !digits.starts_with('0'))
                .then(|| format!("+{digits}"))
        }
    }
}

/// A batch answer of wide statuses.
#[derive(Deserialize)]
struct WideAnswer {
    #[serde(default)]
    results: Vec<WideResult>,
}

/// One subscriber's wide statuses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WideResult {
    subscriber_id_string: String,
    #[serde(default)]
    wide_statuses: Vec<WideStatus>,
}

/// One wide status (`PublicWideStatus`).
#[derive(Deserialize)]
struct WideStatus {
    #[serde(default)]
    channel: String,
    #[serde(default)]
    status: String,
}

/// A single read's answer: the subscriber's wide statuses.
#[derive(Deserialize)]
struct SingleAnswer {
    #[serde(default)]
    results: Vec<WideStatus>,
}

/// Whether `statuses` say unsubscribed from all of `channel`.
fn unsubscribed(statuses: &[WideStatus], channel: &str) -> bool {
    statuses
        .iter()
        .any(|s| s.channel == channel && s.status == "NOT_SUBSCRIBED")
}

/// The subscribers among `subscribers` HubSpot shows unsubscribed from all of
/// `subscription`'s channel. `single` is set once the batch read is refused (403: the account
/// lacks the batch scopes), and then each subscriber is asked alone.
pub async fn unsubscribed_of(
    client: &HubspotClient,
    subscription: &Subscription,
    subscribers: &[String],
    single: &AtomicBool,
) -> ConnectorResult<HashSet<String>> {
    let channel = subscription.channel;
    let query = [("channel", channel)];
    let mut out = HashSet::new();
    if !single.load(Ordering::Relaxed) {
        for chunk in subscribers.chunks(MAX_SUBSCRIBERS) {
            let body = json!({ "inputs": chunk });
            let (endpoint, response) = client
                .send(Method::POST, BATCH_READ, &query, Some(&body))
                .await?;
            if response.status.as_u16() == 403 {
                tracing::warn!(
                    vendor = VENDOR,
                    channel,
                    "the batch read of subscription statuses is refused (it needs Marketing Hub Enterprise); reading one subscriber per request"
                );
                single.store(true, Ordering::Relaxed);
                break;
            }
            if !response.is_success() {
                return Err(client.error_for(&endpoint, &response));
            }
            // A malformed subscriber id is a per-input error: HubSpot holds no opt-out for it.
            let answer: WideAnswer = response.json(VENDOR, &endpoint)?;
            out.extend(
                answer
                    .results
                    .into_iter()
                    .filter(|r| unsubscribed(&r.wide_statuses, channel))
                    .map(|r| r.subscriber_id_string),
            );
        }
        if !single.load(Ordering::Relaxed) {
            return Ok(out);
        }
        out.clear();
    }
    for subscriber in subscribers {
        let endpoint =
            "GET /communication-preferences/v4/statuses/{subscriber}/unsubscribe-all".to_owned();
        let path = format!(
            "/communication-preferences/v4/statuses/{}/unsubscribe-all",
            urlencoding::encode(subscriber)
        );
        let (endpoint, response) = client
            .send_as(endpoint, Method::GET, &path, &query, None)
            .await?;
        match response.status.as_u16() {
            200..=299 => {
                let answer: SingleAnswer = response.json(VENDOR, &endpoint)?;
                if unsubscribed(&answer.results, channel) {
                    out.insert(subscriber.clone());
                }
            }
            // A subscriber id HubSpot cannot take holds no opt-out.
            400 | 404 => {}
            _ => return Err(client.error_for(&endpoint, &response)),
        }
    }
    Ok(out)
}

/// Sets each record's opt-out of every subscription of `row` that HubSpot shows on no
/// property ([`HubspotBinding::read_through_preferences`]): `true` where its subscriber is
/// unsubscribed from all of the channel; otherwise the field stays absent (nothing to carry).
/// A channel not in `channels` (when known) is not read: the account has no type on it.
pub async fn read_opt_outs(
    client: &HubspotClient,
    row: &HubspotBinding,
    mut records: Vec<&mut Record>,
    single: &AtomicBool,
    channels: Option<&HashSet<String>>,
) -> ConnectorResult<()> {
    for subscription in row.read_through_preferences() {
        if channels.is_some_and(|c| !c.contains(subscription.channel)) {
            for record in records.iter_mut() {
                record.fields.remove(subscription.opt_out);
            }
            continue;
        }
        let mut subscribers: Vec<String> = Vec::new();
        let ids: Vec<Option<String>> = records
            .iter_mut()
            .map(|record| {
                record.fields.remove(subscription.opt_out);
                subscriber(subscription, record)
            })
            .collect();
        for id in ids.iter().flatten() {
            if !subscribers.contains(id) {
                subscribers.push(id.clone());
            }
        }
        if subscribers.is_empty() {
            continue;
        }
        let out = unsubscribed_of(client, subscription, &subscribers, single).await?;
        let mut n = 0usize;
        for (record, id) in records.iter_mut().zip(&ids) {
            if id.as_ref().is_some_and(|id| out.contains(id)) {
                record.set(subscription.opt_out, Value::Bool(true));
                n += 1;
            }
        }
        tracing::debug!(vendor = VENDOR, object = %row.object, channel = subscription.channel, subscribers = subscribers.len(), opted_out = n, "read opt-outs");
    }
    Ok(())
}

/// One email subscription type of the account: HubSpot shows a contact's opt-out of it on a
/// read-only flag property of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailType {
    /// The type's id (`subscriptionId` of status calls).
    pub id: String,
    /// Its name, which the account's users gave it: what travels (`email_unsubscribed_types`).
    pub name: String,
    /// The flag property, `hs_email_optout_<id>`: `"true"` while the contact is unsubscribed.
    pub property: String,
}

impl EmailType {
    fn new(id: String, name: String) -> EmailType {
        let property = format!("{TYPE_FLAG_PREFIX}{id}");
        EmailType { id, name, property }
    }
}

/// The prefix of the per-type opt-out flags; the type's id follows. [secondary: integrations'
/// property lists and search filters name them so; HubSpot's reference does not list them.]
const TYPE_FLAG_PREFIX: &str = "hs_email_optout_";
/// The label HubSpot gives a per-type flag, before the type's name.
const TYPE_FLAG_LABEL: &str = "Opted out of email: ";

/// What the account's subscription types say, read once a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionTypes {
    /// The channels the account has types on (`communicationMethod`, upper-cased), or `None`
    /// when the account does not say (every channel is then read). An account without the SMS
    /// add-on has no SMS type, so nobody in it can be unsubscribed from SMS. [UNCONFIRMED: the
    /// values of `communicationMethod`.]
    pub channels: Option<HashSet<String>>,
    /// Its email types, whose opt-outs show on per-type flags.
    pub email: Vec<EmailType>,
}

/// The account's subscription types, from `GET /communication-preferences/v4/definitions` or,
/// where that is refused, its email types from the contact properties' per-type flags (their
/// labels name the types). No email type found: no per-type opt-out can be read or written.
pub async fn subscription_types(client: &HubspotClient) -> ConnectorResult<SubscriptionTypes> {
    #[derive(Deserialize)]
    struct Definitions {
        #[serde(default)]
        results: Vec<Definition>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Definition {
        #[serde(default)]
        id: serde_json::Value,
        #[serde(default)]
        name: String,
        #[serde(default)]
        communication_method: Option<String>,
    }
    let path = "/communication-preferences/v4/definitions";
    let (endpoint, response) = client.send(Method::GET, path, &[], None).await?;
    if response.is_success() {
        let answer: Definitions = response.json(VENDOR, &endpoint)?;
        let channels = answer
            .results
            .iter()
            .filter_map(|d| d.communication_method.as_deref())
            .map(str::to_ascii_uppercase)
            .collect();
        let email = answer
            .results
            .into_iter()
            .filter(|d| {
                d.communication_method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case("EMAIL"))
            })
            .filter_map(|d| {
                let id = match d.id {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some(EmailType::new(id, d.name))
            })
            .filter(|t| !t.name.trim().is_empty())
            .collect();
        return Ok(SubscriptionTypes {
            channels: Some(channels),
            email,
        });
    }
    tracing::debug!(
        vendor = VENDOR,
        status = response.status.as_u16(),
        "subscription definitions not readable: every channel is read, email types named by their flag properties"
    );
    let fields = crate::fields::describe(client, ferry_core::ObjectType::CONTACTS).await?;
    let email = fields
        .into_iter()
        .filter_map(|f| {
            let id = f.name.strip_prefix(TYPE_FLAG_PREFIX)?;
            let type_name = f.label.strip_prefix(TYPE_FLAG_LABEL)?;
            (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                .then(|| EmailType::new(id.to_owned(), type_name.trim().to_owned()))
        })
        .collect();
    Ok(SubscriptionTypes {
        channels: None,
        email,
    })
}

/// Sets `record`'s per-type email opt-out (`field`) from `raw`'s flag properties: the names of
/// the types flagged `"true"`, as one canonical set; absent when none is.
pub fn read_types(
    record: &mut Record,
    field: &'static str,
    raw: &crate::mapping::HubspotObject<'_>,
    types: &[EmailType],
) {
    let names = types
        .iter()
        .filter(|t| raw.property_text(&t.property).as_deref() == Some("true"))
        .map(|t| t.name.as_str());
    match ferry_core::model::names_value(names) {
        Some(value) => record.set(field, value),
        None => {
            record.fields.remove(field);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::CONTACT_SUBSCRIPTIONS;
    use ferry_core::ObjectType;

    fn contact(mobile: &str, country: Option<&str>) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, "1");
        r.set(field::MOBILE_PHONE, Value::Text(mobile.into()));
        if let Some(c) = country {
            r.set(field::COUNTRY, Value::Text(c.into()));
        }
        r
    }

    #[test]
    fn an_sms_subscriber_is_the_mobile_number_in_e164() {
        let sms = &CONTACT_SUBSCRIPTIONS[1];
        assert_eq!(sms.channel, "SMS");
        let id = |m: &str, c: Option<&str>| subscriber(sms, &contact(m, c));
        assert_eq!(
            id("+49 151 1234 5678", None).as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(
            id("0151 12345678", Some("Germany")).as_deref(),
            Some("+4915112345678")
        );
        assert_eq!(id("0151 12345678", None), None, "national, no region");
        // The country's region is for national numbers only.
        assert_eq!(
            id("+49 151 10220802", Some("Canada")).as_deref(),
            Some("+4915110220802")
        );
        assert_eq!(id("  ", None), None);
        let email = &CONTACT_SUBSCRIPTIONS[0];
        let mut r = contact("+49 151 1234 5678", None);
        r.set(field::EMAIL, Value::Text("A@example.org".into()));
        assert_eq!(subscriber(email, &r).as_deref(), Some("A@example.org"));
    }
}
