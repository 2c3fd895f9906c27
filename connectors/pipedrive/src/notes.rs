//! Pipedrive's notes (v1 `/v1/notes`; there is no v2 notes API). A note has no custom fields,
//! so it cannot carry ferry's source id: the sink finds a note again by its natural key instead
//! (see [`NoteKey`]), and the source reads notes by offset paging in id order.
//!
//! This module holds what the source and the sink share: the note ↔ canonical shapes, the key,
//! the pairing of notes with the notes a parent holds, and the paged listing.

use std::collections::HashSet;

use ferry_core::model::Link;
use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Record, RecordRejection, Value, field,
};
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::PipedriveClient;

/// The notes endpoint (v1 only).
pub(crate) const PATH: &str = "/v1/notes";

/// The largest page v1 lists serve.
pub(crate) const PAGE_LIMIT: u32 = 500;

/// The longest `content` ferry writes, in characters. Pipedrive documents no limit; its
/// emulator refuses more than this (never truncating), and ferry declares the same.
pub const BODY_MAX_CHARS: usize = 100_000;

/// The parents' id fields, in the engine's priority order of a note's `parents` targets
/// (deal, contact, company): the first one set is the note's key parent.
pub(crate) const PARENT_FIELDS: [(ObjectType, &str); 3] = [
    (ObjectType::DEALS, "deal_id"),
    (ObjectType::CONTACTS, "person_id"),
    (ObjectType::COMPANIES, "org_id"),
];

/// The code of a note ferry cannot key: without a parent or an original time, it could not be
/// found again, so a rerun would add a copy.
pub const NOTE_NOT_KEYED: &str = "NOTE_NOT_KEYED";

/// What makes a note "the same note" without a source id: the parent it hangs on first (by
/// the engine's priority: deal, then contact, then company; as the sink's id), its original
/// time to the second, and (only to tell apart notes of one parent in one second) the plain
/// text of its body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct NoteKey {
    /// The key parent: its object and its Pipedrive id.
    pub parent: (ObjectType, u64),
    /// The original time, in whole seconds since 1970 (UTC).
    pub second: i64,
    /// The plain text of the body ([`ferry_core::richtext::to_plain`]).
    pub plain: String,
}

/// The key parent of a note's id fields (`(field, id)` in [`PARENT_FIELDS`] order): the first
/// set one.
pub(crate) fn key_parent(fields: &[(&str, Option<u64>)]) -> Option<(ObjectType, u64)> {
    PARENT_FIELDS.iter().find_map(|(object, vendor)| {
        fields
            .iter()
            .find(|(f, _)| f == vendor)
            .and_then(|(_, id)| *id)
            .map(|id| (*object, id))
    })
}

/// The list filter of a parent (`deal_id`, `person_id`, `org_id`).
pub(crate) fn filter_of(object: ObjectType) -> &'static str {
    PARENT_FIELDS
        .iter()
        .find(|(o, _)| *o == object)
        .map_or("deal_id", |(_, f)| *f)
}

/// The key of a note Pipedrive holds, under `parent` (the parent it was listed by).
pub(crate) fn key_of_raw(raw: &Json, parent: (ObjectType, u64)) -> Option<NoteKey> {
    let ms = raw
        .get("add_time")
        .and_then(Json::as_str)
        .and_then(ferry_core::model::parse_timestamp)?;
    Some(NoteKey {
        parent,
        second: ms.div_euclid(1000),
        plain: ferry_core::richtext::to_plain(content(raw)),
    })
}

/// The key of a canonical note whose key parent is `parent`; `None` without an original time.
pub(crate) fn key_of_record(record: &Record, parent: (ObjectType, u64)) -> Option<NoteKey> {
    let Some(Value::Timestamp(ms)) = record.get(field::TIMESTAMP) else {
        return None;
    };
    Some(NoteKey {
        parent,
        second: ms.div_euclid(1000),
        plain: ferry_core::richtext::to_plain(record.text(field::BODY).unwrap_or("")),
    })
}

fn content(raw: &Json) -> &str {
    raw.get("content").and_then(Json::as_str).unwrap_or("")
}

/// Pairs the notes `wanted` (keys of one parent, in input order) with the notes the parent
/// holds (`held`: Pipedrive id and key, in id order), each held note at most once. `claimed`
/// holds notes taken already (this run wrote or matched them for other source ids); `known`
/// gives a wanted note's own earlier match, which wins when it is still held.
///
/// Rule, for notes of the same second: first the cached match, then equal plain text, then
/// whatever is left in order (a note edited in the source: same parent and time, another
/// body). Notes whose text and second are both equal are interchangeable.
pub(crate) fn pair(
    wanted: &[(NoteKey, Option<u64>)],
    held: &[(u64, NoteKey)],
    claimed: &HashSet<u64>,
) -> Vec<Option<u64>> {
    let mut taken: HashSet<u64> = claimed.clone();
    let mut out: Vec<Option<u64>> = vec![None; wanted.len()];
    // The cached match, if the note is still there under the same key parent and second.
    for (i, (key, known)) in wanted.iter().enumerate() {
        if let Some(id) = known {
            let still = held
                .iter()
                .any(|(h, k)| h == id && k.parent == key.parent && k.second == key.second);
            if still && taken.insert(*id) {
                out[i] = Some(*id);
            }
        }
    }
    for exact in [true, false] {
        for (i, (key, _)) in wanted.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let found = held.iter().find(|(h, k)| {
                !taken.contains(h)
                    && k.parent == key.parent
                    && k.second == key.second
                    && (!exact || k.plain == key.plain)
            });
            if let Some((h, _)) = found {
                taken.insert(*h);
                out[i] = Some(*h);
            }
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of epoch milliseconds, as v1 takes `add_time`: to the second.
pub(crate) fn add_time(ms: i64) -> String {
    let iso = ferry_core::model::format_timestamp(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// The v1 body of a note: `content` (HTML as is), the author, the three parent id fields
/// (`linked`, a `None` clearing one), and on create the original time.
pub(crate) fn to_body(
    record: &Record,
    linked: &[(&str, Option<u64>)],
    create: bool,
) -> Result<Json, RecordRejection> {
    let mut body = serde_json::Map::new();
    body.insert(
        "content".into(),
        json!(record.text(field::BODY).unwrap_or("")),
    );
    if let Some(owner) = record.text(field::OWNER) {
        let id = owner.trim().parse::<u64>().map_err(|_| RecordRejection {
            source_id: record.source_id.clone(),
            code: crate::mapping::UNWRITABLE_VALUE.into(),
            reason: "field `owner` is not a Pipedrive user id (a number); not written".into(),
        })?;
        body.insert("user_id".into(), json!(id));
    }
    for (vendor, id) in linked {
        body.insert((*vendor).into(), json!(id));
    }
    if create && let Some(Value::Timestamp(ms)) = record.get(field::TIMESTAMP) {
        body.insert("add_time".into(), json!(add_time(*ms)));
    }
    Ok(Json::Object(body))
}

/// A v1 note in canonical form under `source_id`: body (`content` as is), timestamp and
/// created_at (`add_time`), updated_at, owner (`user_id`), and parents as links in priority
/// order, each parent's id mapped by `source_id_of`.
pub(crate) fn to_record(
    raw: &Json,
    source_id: String,
    source_id_of: impl Fn(ObjectType, u64) -> String,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(ObjectType::NOTES, source_id);
    let body = content(raw);
    if !body.is_empty() {
        record.set(field::BODY, Value::Text(body.to_owned()));
    }
    let mut problems = Vec::new();
    for (canonical, vendor) in [
        (field::TIMESTAMP, "add_time"),
        (field::CREATED_AT, "add_time"),
        (field::UPDATED_AT, "update_time"),
    ] {
        if let Some(text) = raw
            .get(vendor)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
        {
            match ferry_core::model::parse_timestamp(text) {
                Some(ms) => record.set(canonical, Value::Timestamp(ms)),
                None => problems.push(format!("`{canonical}` (Pipedrive `{vendor}`)")),
            }
        }
    }
    if let Some(user) = raw.get("user_id").and_then(Json::as_u64) {
        record.set(field::OWNER, Value::Text(user.to_string()));
    }
    let links: Vec<Link> = PARENT_FIELDS
        .iter()
        .filter_map(|&(object, vendor)| {
            let id = raw.get(vendor).and_then(Json::as_u64)?;
            Some(Link {
                object,
                id: source_id_of(object, id),
            })
        })
        .collect();
    if !links.is_empty() {
        record.set(field::PARENTS, Value::Links(links));
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: "UNREADABLE_VALUE".into(),
            reason: format!(
                "value of {} could not be read (expected a time)",
                problems.join(", ")
            ),
        })
    }
}

/// One page of `GET /v1/notes` (id order) from offset `start`, with `filters` (a parent's id
/// field and id, `updated_since`) if any: the notes and the next page's start, if there is
/// one.
pub(crate) async fn page(
    client: &PipedriveClient,
    start: u64,
    limit: u32,
    filters: &[(&str, &str)],
) -> ConnectorResult<(Vec<Json>, Option<u64>)> {
    let malformed = |detail: &str| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("GET {PATH}"),
        detail: detail.to_owned(),
    };
    let (from, limit) = (start.to_string(), limit.to_string());
    let mut query = vec![
        ("start", from.as_str()),
        ("limit", limit.as_str()),
        ("sort", "id ASC"),
    ];
    query.extend_from_slice(filters);
    let body = client.get(PATH, &query).await?;
    let items = match body.get("data") {
        Some(Json::Array(items)) => items.clone(),
        Some(Json::Null) | None => Vec::new(),
        Some(_) => return Err(malformed("`data` is not a list")),
    };
    let pagination = body.pointer("/additional_data/pagination");
    let more = pagination
        .and_then(|p| p.get("more_items_in_collection"))
        .and_then(Json::as_bool)
        == Some(true);
    if !more {
        return Ok((items, None));
    }
    match pagination
        .and_then(|p| p.get("next_start"))
        .and_then(Json::as_u64)
    {
        Some(next) if next > start => Ok((items, Some(next))),
        _ => Err(malformed("the next page's start does not move forward")),
    }
}

/// Every note of one parent (`GET /v1/notes?{deal_id|person_id|org_id}=…`, all pages), each
/// with its key, in id order.
pub(crate) async fn of_parent(
    client: &PipedriveClient,
    parent: (ObjectType, u64),
) -> ConnectorResult<Vec<(u64, NoteKey, Json)>> {
    let id = parent.1.to_string();
    let filter = [(filter_of(parent.0), id.as_str())];
    let mut out = Vec::new();
    let mut start = 0;
    loop {
        let (items, next) = page(client, start, PAGE_LIMIT, &filter).await?;
        for raw in items {
            // The filter already holds; a note without an id or time cannot be anyone's match.
            if let (Some(id), Some(key)) = (crate::mapping::id_of(&raw), key_of_raw(&raw, parent)) {
                out.push((id, key, raw));
            }
        }
        match next {
            Some(n) => start = n,
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(second: i64, plain: &str) -> NoteKey {
        NoteKey {
            parent: (ObjectType::DEALS, 7),
            second,
            plain: plain.into(),
        }
    }

    #[test]
    fn notes_pair_by_second_then_text_then_in_order() {
        let held = vec![
            (1, key(100, "a")),
            (2, key(100, "b")),
            (3, key(200, "c")),
            (4, key(100, "b")),
        ];
        let none = HashSet::new();
        // Same second, kept apart by text, whatever the order.
        let wanted = vec![(key(100, "b"), None), (key(100, "a"), None)];
        assert_eq!(pair(&wanted, &held, &none), [Some(2), Some(1)]);
        // Equal text and second: interchangeable, in order.
        let wanted = vec![(key(100, "b"), None), (key(100, "b"), None)];
        assert_eq!(pair(&wanted, &held, &none), [Some(2), Some(4)]);
        // An edited body keeps its note (same parent and second); a new second is a new note.
        let wanted = vec![(key(200, "c edited"), None), (key(300, "c"), None)];
        assert_eq!(pair(&wanted, &held, &none), [Some(3), None]);
        // A note another source id claimed is not taken again, not even by an edit.
        let claimed = HashSet::from([3]);
        assert_eq!(pair(&wanted, &held, &claimed), [None, None]);
        // The cached match wins over an equal text.
        let wanted = vec![(key(100, "b"), Some(4)), (key(100, "b"), None)];
        assert_eq!(pair(&wanted, &held, &none), [Some(4), Some(2)]);
        // Another parent is never a match.
        let mut elsewhere = key(100, "a");
        elsewhere.parent = (ObjectType::CONTACTS, 7);
        assert_eq!(pair(&[(elsewhere, None)], &held, &none), [None]);
    }

    #[test]
    fn a_note_round_trips_with_its_parents_time_and_owner() {
        let raw = json!({"id": 5, "content": "<p>Hi &amp; bye</p>", "add_time": "2024-01-02 03:04:05",
            "update_time": "2024-01-03 00:00:00", "user_id": 101, "deal_id": 9, "person_id": null, "org_id": 4});
        let record = to_record(&raw, "n-1".into(), |o, id| format!("{o}-{id}")).unwrap();
        assert_eq!(record.text(field::BODY), Some("<p>Hi &amp; bye</p>"));
        assert_eq!(
            record.get(field::TIMESTAMP),
            Some(&Value::Timestamp(1_704_164_645_000))
        );
        assert_eq!(record.text(field::OWNER), Some("101"));
        assert_eq!(
            record.get(field::PARENTS),
            Some(&Value::Links(vec![
                Link {
                    object: ObjectType::DEALS,
                    id: "deals-9".into()
                },
                Link {
                    object: ObjectType::COMPANIES,
                    id: "companies-4".into()
                },
            ]))
        );
        let linked = [
            ("deal_id", Some(9)),
            ("person_id", None),
            ("org_id", Some(4)),
        ];
        let body = to_body(&record, &linked, true).unwrap();
        assert_eq!(
            body,
            json!({"content": "<p>Hi &amp; bye</p>", "user_id": 101, "add_time": "2024-01-02 03:04:05",
                "deal_id": 9, "person_id": null, "org_id": 4})
        );
        // An update leaves the original time alone.
        assert!(
            to_body(&record, &linked, false)
                .unwrap()
                .get("add_time")
                .is_none()
        );
        assert_eq!(key_parent(&linked), Some((ObjectType::DEALS, 9)));
        assert_eq!(key_parent(&linked[1..]), Some((ObjectType::COMPANIES, 4)));
        let parent = (ObjectType::DEALS, 9);
        assert_eq!(key_of_raw(&raw, parent), key_of_record(&record, parent));
        assert_eq!(key_of_raw(&raw, parent).unwrap().plain, "Hi & bye");
        // Sub-second digits do not change the key: Pipedrive keeps the second.
        let mut later = record.clone();
        later.set(field::TIMESTAMP, Value::Timestamp(1_704_164_645_999));
        assert_eq!(
            key_of_record(&later, parent),
            key_of_record(&record, parent)
        );
        let mut bad = record.clone();
        bad.set(field::OWNER, Value::Text("someone@example.com".into()));
        assert!(to_body(&bad, &linked, true).is_err());
        let unreadable = json!({"id": 5, "content": "x", "add_time": "soon", "deal_id": 9});
        let err = to_record(&unreadable, "n-1".into(), |_, id| id.to_string()).unwrap_err();
        assert!(
            err.reason.contains("add_time") && !err.reason.contains("soon"),
            "{}",
            err.reason
        );
    }
}
