//! Notes as classic `Note` records, which take no custom field: so no External ID field, and no
//! upsert by one. ferry keys a note by its `Title` instead, `ferry:<source id>` ([`title`]), and
//! writes in two steps: find the notes already holding those titles
//! (`SELECT … FROM Note WHERE Title IN (…)`), then update those by `Id`
//! (`PATCH composite/sobjects`) and create the rest (`POST composite/sobjects`). A rerun finds
//! every note it wrote and creates none; read-back and `ferry verify` find notes by the same
//! titles.
//!
//! The rest of a Note: `Body` is plain text, at most 32,000 characters (the engine refuses a
//! longer body before writing, counted on its plain form; HTML bodies are written as
//! [`ferry_core::richtext::to_plain`] gives them). `ParentId` is the one parent (an
//! Opportunity, Contact or Account id, resolved from the parent's source id through its External
//! ID field), settable on create only: a note whose parent changed is deleted and created again
//! on its new parent. `CreatedDate`, the note's time, is settable on create only (the integration
//! user may "Set Audit Fields upon Record Creation"); an update leaves it as it was.

use std::collections::HashMap;

use ferry_core::http::BodyCap;
use ferry_core::model::Link;
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Record, RecordOutcome, RecordRejection, Value,
    Written, field,
};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::client::{Call, Client};
use crate::mapping::{self, NOTE_PARENTS};
use crate::policy::clean_code;
use crate::soql;

/// The sObject notes are written as.
pub(crate) const SOBJECT: &str = "Note";
/// What starts the `Title` of every note ferry writes; the source id follows.
pub const TITLE_PREFIX: &str = "ferry:";
/// The longest `Title` a Note holds.
pub const MAX_TITLE: usize = 80;
/// The longest `Body` a Note holds, in characters.
pub const MAX_BODY: usize = 32_000;
/// Most records one sObject Collections call carries.
const COLLECTION_LIMIT: usize = 200;

/// The `Title` that keys the note of `source_id`, or `None` when the id does not fit one.
pub fn title(source_id: &str) -> Option<String> {
    let title = format!("{TITLE_PREFIX}{source_id}");
    (title.chars().count() <= MAX_TITLE && !source_id.trim().is_empty()).then_some(title)
}

/// The source id a ferry title keys.
pub fn source_id_of(title: &str) -> Option<&str> {
    title.strip_prefix(TITLE_PREFIX).filter(|s| !s.is_empty())
}

/// The parent a note is written on: the first of its links by the order deal, contact,
/// company (the engine has already kept only one where the sink takes one).
fn parent(record: &Record) -> Option<&Link> {
    let Some(Value::Links(links)) = record.get(field::PARENTS) else {
        return None;
    };
    NOTE_PARENTS.iter().find_map(|(object, _)| {
        links
            .iter()
            .find(|l| l.object == *object && !l.id.is_empty())
    })
}

/// A note found by its title.
struct Found {
    id: String,
    parent: Option<String>,
}

/// A record's result in an sObject Collections response.
#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
}

/// A record's error; the message is not read (it may quote values).
#[derive(Deserialize)]
struct SaveError {
    #[serde(rename = "statusCode", default)]
    status_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// One note to send: the record's index, and the existing note's id for an update.
#[derive(Clone)]
struct Item {
    index: usize,
    update: Option<String>,
    parent: String,
}

/// The sink ids of the records of `object` whose external id is among `source_ids`.
async fn sink_ids(
    client: &Client,
    ext: &str,
    object: ObjectType,
    source_ids: &[String],
) -> ConnectorResult<HashMap<String, String>> {
    let sobject = mapping::binding(object)?.sobject;
    let prefix = format!("SELECT Id, {ext} FROM {sobject} WHERE {ext}");
    let mut out = HashMap::new();
    for q in soql::in_queries(&prefix, source_ids) {
        client
            .query_each(&q, |sf| {
                let text = |f: &str| sf.get(f).and_then(|v| v.as_str()).map(str::to_owned);
                if let (Some(id), Some(source)) = (text("Id"), text(ext)) {
                    out.insert(source, id);
                }
            })
            .await?;
    }
    Ok(out)
}

/// The source ids (external ids) of the records `ids` (sink ids of any parent object), by id.
async fn parent_sources(
    client: &Client,
    ext: &str,
    ids: &[String],
) -> ConnectorResult<HashMap<String, (ObjectType, String)>> {
    let mut out = HashMap::new();
    for (object, _) in NOTE_PARENTS {
        let of_object: Vec<String> = ids
            .iter()
            .filter(|id| mapping::parent_object(id) == Some(*object))
            .cloned()
            .collect();
        if of_object.is_empty() {
            continue;
        }
        let sobject = mapping::binding(*object)?.sobject;
        let prefix = format!("SELECT Id, {ext} FROM {sobject} WHERE Id");
        for q in soql::in_queries(&prefix, &of_object) {
            client
                .query_each(&q, |sf| {
                    let text = |f: &str| sf.get(f).and_then(|v| v.as_str()).map(str::to_owned);
                    if let (Some(id), Some(source)) = (text("Id"), text(ext)) {
                        out.insert(id, (*object, source));
                    }
                })
                .await?;
        }
    }
    Ok(out)
}

/// The notes keyed by the titles of `source_ids`, as `(source id, row)`, in `Id` order. SOQL
/// compares text ignoring case, so rows whose title names another source id (`ferry:ABC` for
/// `ferry:abc`) are left out.
pub(crate) async fn find(
    client: &Client,
    select: &str,
    source_ids: &[String],
    mut each: impl FnMut(&str, &ferry_core::json::Object<'_>),
) -> ConnectorResult<()> {
    let asked: std::collections::HashSet<&str> = source_ids.iter().map(String::as_str).collect();
    let titles: Vec<String> = source_ids.iter().filter_map(|s| title(s)).collect();
    let prefix = format!("SELECT {select} FROM {SOBJECT} WHERE Title");
    for q in soql::in_queries(&prefix, &titles) {
        let q = format!("{q} ORDER BY Id");
        client
            .query_each(&q, |sf| {
                if let Some(source) = sf
                    .get("Title")
                    .and_then(|v| v.as_str())
                    .and_then(source_id_of)
                    .filter(|source| asked.contains(source))
                {
                    each(source, sf);
                }
            })
            .await?;
    }
    Ok(())
}

fn refuse(record: &Record, code: &str, reason: String) -> RecordOutcome {
    RecordOutcome {
        source_id: record.source_id.clone(),
        result: Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: code.to_owned(),
            reason,
        }),
    }
}

/// Writes `records` as Notes (see the module's documentation); one outcome per record, in order.
pub(crate) async fn upsert(
    client: &Client,
    resend: Resend,
    ext: &str,
    records: &[Record],
) -> ConnectorResult<Vec<RecordOutcome>> {
    let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
    // Parents by object, to resolve their source ids in one query per object.
    let mut wanted: HashMap<ObjectType, Vec<String>> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        if title(&record.source_id).is_none() {
            outcomes[i] = Some(refuse(
                record,
                "SOURCE_ID_TOO_LONG",
                format!(
                    "a Salesforce Note keeps ferry's key in its Title ({TITLE_PREFIX}<source id>, at most \
                     {MAX_TITLE} characters), and this source id is empty or longer than {}",
                    MAX_TITLE - TITLE_PREFIX.len()
                ),
            ));
            continue;
        }
        match parent(record) {
            Some(link) => wanted.entry(link.object).or_default().push(link.id.clone()),
            None => {
                outcomes[i] = Some(refuse(
                    record,
                    "REQUIRED_FIELD_MISSING",
                    "a Salesforce Note needs a parent (ParentId): the note has no deal, contact or company"
                        .into(),
                ));
            }
        }
    }
    let mut parents: HashMap<(ObjectType, String), String> = HashMap::new();
    for (object, ids) in &wanted {
        for (source, id) in sink_ids(client, ext, *object, ids).await? {
            parents.insert((*object, source), id);
        }
    }
    let pending: Vec<String> = records
        .iter()
        .zip(&outcomes)
        .filter(|(_, o)| o.is_none())
        .map(|(r, _)| r.source_id.clone())
        .collect();
    let mut existing: HashMap<String, Vec<Found>> = HashMap::new();
    find(client, "Id, Title, ParentId", &pending, |source, sf| {
        let text = |f: &str| sf.get(f).and_then(|v| v.as_str()).map(str::to_owned);
        if let Some(id) = text("Id") {
            existing.entry(source.to_owned()).or_default().push(Found {
                id,
                parent: text("ParentId"),
            });
        }
    })
    .await?;
    let mut items = Vec::new();
    // Notes to delete: copies of a note (a write whose answer was lost and was sent again), and
    // notes whose parent changed (`ParentId` cannot be updated).
    let mut delete: Vec<String> = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if outcomes[i].is_some() {
            continue;
        }
        let Some(link) = parent(record) else { continue };
        let Some(parent_id) = parents.get(&(link.object, link.id.clone())) else {
            let sobject = mapping::binding(link.object).map_or("record", |r| r.sobject);
            let noun = mapping::binding(link.object).map_or("parent", |r| r.noun);
            outcomes[i] = Some(refuse(
                record,
                "INVALID_FIELD",
                format!(
                    "the parents link: no {sobject} has the note's parent {noun} {} as its {ext} (the {noun} \
                     was not migrated, or was rejected)",
                    link.id
                ),
            ));
            continue;
        };
        let mut found = existing.remove(&record.source_id).unwrap_or_default();
        let keep = found
            .iter()
            .position(|f| f.parent.as_deref() == Some(parent_id.as_str()));
        let update = keep.map(|k| found.swap_remove(k).id);
        delete.extend(found.into_iter().map(|f| f.id));
        items.push(Item {
            index: i,
            update,
            parent: parent_id.clone(),
        });
    }
    for chunk in delete.chunks(COLLECTION_LIMIT) {
        let ids = chunk.join(",");
        let path = client.data_path("composite/sobjects");
        client
            .send(Call {
                method: Method::DELETE,
                path: &path,
                query: &[("ids", &ids), ("allOrNone", "false")],
                body: None,
                headers: &[],
                cap: BodyCap::Page,
            })
            .await?;
    }
    let (updates, creates): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|item| item.update.is_some());
    for (items, method) in [(updates, Method::PATCH), (creates, Method::POST)] {
        for chunk in items.chunks(COLLECTION_LIMIT) {
            let settled = settle(VENDOR, chunk.to_vec(), resend, |items| {
                send(client, records, items, method.clone())
            })
            .await?;
            for (item, outcome) in settled {
                outcomes[item.index] = Some(outcome);
            }
        }
    }
    let created = outcomes
        .iter()
        .flatten()
        .filter(|o| o.result.as_ref().is_ok_and(|w| w.created))
        .count();
    tracing::debug!(
        vendor = VENDOR,
        sobject = SOBJECT,
        records = records.len(),
        created,
        deleted = delete.len(),
        "notes written"
    );
    outcomes
        .into_iter()
        .zip(records)
        .map(|(o, r)| {
            o.ok_or_else(|| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("POST {}", client.data_path("composite/sobjects")),
                detail: format!("no outcome for note {}", r.source_id),
            })
        })
        .collect()
}

/// The JSON of one note: on create its title, parent and time; always its body and owner
/// (an absent owner is left to Salesforce: the caller on create, unchanged on update).
fn body(record: &Record, item: &Item) -> serde_json::Value {
    let mut note = serde_json::Map::new();
    note.insert("attributes".into(), serde_json::json!({"type": SOBJECT}));
    match &item.update {
        Some(id) => {
            note.insert("Id".into(), id.clone().into());
        }
        None => {
            note.insert("Title".into(), title(&record.source_id).into());
            note.insert("ParentId".into(), item.parent.clone().into());
            note.insert("IsPrivate".into(), false.into());
            if let Some(Value::Timestamp(ms)) = record.get(field::TIMESTAMP) {
                note.insert(
                    "CreatedDate".into(),
                    Value::Timestamp(*ms).to_vendor_string().into(),
                );
            }
        }
    }
    let text = record
        .get(field::BODY)
        .and_then(Value::as_text)
        .map(ferry_core::richtext::to_plain)
        .filter(|b| !b.is_empty());
    note.insert(
        "Body".into(),
        text.map_or(serde_json::Value::Null, Into::into),
    );
    if let Some(owner) = record.text(field::OWNER).filter(|o| !o.is_empty()) {
        note.insert("OwnerId".into(), owner.into());
    }
    serde_json::Value::Object(note)
}

/// One create (`POST`) or update (`PATCH`) of `items` on `composite/sobjects`.
async fn send(
    client: &Client,
    records: &[Record],
    items: Vec<Item>,
    method: Method,
) -> ConnectorResult<Vec<(Item, Attempt<RecordOutcome>)>> {
    let path = client.data_path("composite/sobjects");
    let endpoint = format!("{method} {path}");
    let notes: Vec<serde_json::Value> = items
        .iter()
        .map(|item| body(&records[item.index], item))
        .collect();
    let payload = serde_json::json!({"allOrNone": false, "records": notes});
    let response = client
        .send(Call {
            method,
            path: &path,
            query: &[],
            body: Some(payload.to_string().into_bytes()),
            headers: &[],
            cap: BodyCap::Page,
        })
        .await?;
    let results: Vec<SaveResult> = response.json(VENDOR, &endpoint)?;
    if results.len() != items.len() {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint,
            detail: format!("{} results for {} notes", results.len(), items.len()),
        });
    }
    let mut out = Vec::with_capacity(items.len());
    for (item, result) in items.into_iter().zip(results) {
        let record = &records[item.index];
        let attempt = if result.success {
            let sink_id = result
                .id
                .filter(|id| !id.is_empty())
                .or_else(|| item.update.clone())
                .ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: "a successful result has no id".into(),
                })?;
            Attempt::Done(RecordOutcome {
                source_id: record.source_id.clone(),
                result: Ok(Written {
                    sink_id,
                    created: item.update.is_none(),
                }),
            })
        } else {
            let code = result
                .errors
                .first()
                .map(|e| clean_code(&e.status_code))
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| "UNKNOWN".into());
            let fields: Vec<String> = result
                .errors
                .iter()
                .flat_map(|e| e.fields.iter())
                .map(|f| {
                    f.chars()
                        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .take(80)
                        .collect()
                })
                .collect();
            let reason = if fields.is_empty() {
                "Salesforce refused the note (no field named)".to_owned()
            } else {
                format!("Salesforce refused the note: field {}", fields.join(", "))
            };
            let refused = refuse(record, &code, reason);
            if code == "UNABLE_TO_LOCK_ROW" {
                Attempt::Again(refused)
            } else {
                Attempt::Done(refused)
            }
        };
        out.push((item, attempt));
    }
    Ok(out)
}

/// The notes of `source_ids` as stored: body, owner, time (`CreatedDate`) and the parent as a
/// link to its source id.
pub(crate) async fn read_back(
    client: &Client,
    ext: &str,
    source_ids: &[String],
) -> ConnectorResult<Vec<Record>> {
    let mut out: Vec<Record> = Vec::with_capacity(source_ids.len());
    let mut parent_ids: Vec<String> = Vec::new();
    let endpoint = format!("GET {}", client.data_path("query"));
    let mut bad = None;
    find(
        client,
        "Id, Title, Body, OwnerId, ParentId, CreatedDate",
        source_ids,
        |source, sf| {
            let text = |f: &str| sf.get(f).and_then(|v| v.as_str()).filter(|s| !s.is_empty());
            let mut record = Record::new(ObjectType::NOTES, source);
            if let Some(body) = text("Body") {
                record.set(field::BODY, Value::Text(body.to_owned()));
            }
            if let Some(owner) = text("OwnerId") {
                record.set(field::OWNER, Value::Text(owner.to_owned()));
            }
            match text("CreatedDate").map(|t| Value::parse(ferry_core::FieldType::Timestamp, t)) {
                Some(Ok(Some(v))) => record.set(field::TIMESTAMP, v),
                Some(Err(_)) => {
                    bad.get_or_insert("a Note's CreatedDate is not a date-time");
                }
                _ => {}
            }
            parent_ids.push(text("ParentId").unwrap_or_default().to_owned());
            out.push(record);
        },
    )
    .await?;
    if let Some(detail) = bad {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint,
            detail: detail.into(),
        });
    }
    let wanted: Vec<String> = parent_ids
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect();
    let sources = parent_sources(client, ext, &wanted).await?;
    for (record, parent) in out.iter_mut().zip(&parent_ids) {
        if let Some((object, id)) = sources.get(parent) {
            record.set(
                field::PARENTS,
                Value::Links(vec![Link {
                    object: *object,
                    id: id.clone(),
                }]),
            );
        }
    }
    tracing::debug!(
        vendor = VENDOR,
        asked = source_ids.len(),
        found = out.len(),
        "notes read back"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_key_source_ids_and_only_those_that_fit() {
        assert_eq!(title("n-1").as_deref(), Some("ferry:n-1"));
        assert_eq!(source_id_of("ferry:n-1"), Some("n-1"));
        assert_eq!(source_id_of("Call notes"), None);
        assert_eq!(source_id_of("ferry:"), None);
        let longest = "x".repeat(MAX_TITLE - TITLE_PREFIX.len());
        assert!(title(&longest).is_some());
        assert!(title(&format!("{longest}x")).is_none());
        assert!(title(" ").is_none());
    }

    #[test]
    fn a_note_goes_on_its_deal_before_its_contact_or_company() {
        let link = |object, id: &str| Link {
            object,
            id: id.into(),
        };
        let mut note = Record::new(ObjectType::NOTES, "n-1");
        note.set(
            field::PARENTS,
            Value::Links(vec![
                link(ObjectType::COMPANIES, "co-1"),
                link(ObjectType::CONTACTS, "c-1"),
                link(ObjectType::DEALS, "d-1"),
            ]),
        );
        assert_eq!(parent(&note), Some(&link(ObjectType::DEALS, "d-1")));
        note.set(
            field::PARENTS,
            Value::Links(vec![
                link(ObjectType::COMPANIES, "co-1"),
                link(ObjectType::CONTACTS, "c-1"),
            ]),
        );
        assert_eq!(parent(&note), Some(&link(ObjectType::CONTACTS, "c-1")));
        assert_eq!(parent(&Record::new(ObjectType::NOTES, "n-2")), None);
    }

    #[test]
    fn a_create_carries_title_parent_and_time_an_update_neither() {
        let mut note = Record::new(ObjectType::NOTES, "n-1");
        note.set(field::BODY, Value::Text("<p>Call &amp; demo</p>".into()));
        note.set(field::TIMESTAMP, Value::Timestamp(1_636_220_320_000));
        let create = Item {
            index: 0,
            update: None,
            parent: "006000000000001AAA".into(),
        };
        let json = body(&note, &create);
        assert_eq!(json["Title"], "ferry:n-1");
        assert_eq!(json["ParentId"], "006000000000001AAA");
        assert_eq!(json["Body"], "Call & demo");
        assert!(
            json["CreatedDate"]
                .as_str()
                .is_some_and(|d| d.starts_with("2021-11-06T17:38:40")),
            "{json}"
        );
        assert!(json.get("OwnerId").is_none(), "{json}");
        let update = Item {
            update: Some("002000000000001AAA".into()),
            ..create
        };
        note.set(field::OWNER, Value::Text("005000000000002AAA".into()));
        let json = body(&note, &update);
        assert_eq!(json["Id"], "002000000000001AAA");
        assert_eq!(json["OwnerId"], "005000000000002AAA");
        for create_only in ["Title", "ParentId", "CreatedDate"] {
            assert!(json.get(create_only).is_none(), "{create_only}: {json}");
        }
    }
}
