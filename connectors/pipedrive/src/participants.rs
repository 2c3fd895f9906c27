//! A deal's participants (v1 `GET|POST /v1/deals/{id}/participants`,
//! `DELETE /v1/deals/{id}/participants/{participant}`): the persons on a deal beyond, and
//! including, its `person_id`. Pipedrive has no batch read or write of them: one request per
//! deal (and per added or removed person).

use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Record, Value as Canonical};
use serde_json::Value;

use crate::VENDOR;
use crate::client::PipedriveClient;
use crate::objects::PipedriveLinks;

/// Every participant `GET {path}` lists, following v1's offset paging: the participant's id
/// (what `DELETE` takes) and its person's id, in Pipedrive's order.
pub(crate) async fn list(client: &PipedriveClient, path: &str) -> ConnectorResult<Vec<(u64, u64)>> {
    let malformed = |detail: &str| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("GET {}", crate::client::endpoint_path(path)),
        detail: detail.to_owned(),
    };
    let mut out = Vec::new();
    let mut start = 0u64;
    loop {
        let from = start.to_string();
        let body = client
            .get(path, &[("start", from.as_str()), ("limit", "500")])
            .await?;
        let items = match body.get("data") {
            Some(Value::Array(items)) => items.as_slice(),
            Some(Value::Null) | None => &[],
            Some(_) => return Err(malformed("`data` is not a list")),
        };
        for item in items {
            let id = item
                .get("id")
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed("a participant without a numeric id"))?;
            let person = item
                .pointer("/person/id")
                .or_else(|| item.pointer("/person_id/value"))
                .or_else(|| item.get("person_id"))
                .and_then(Value::as_u64)
                .ok_or_else(|| malformed("a participant without a numeric person id"))?;
            out.push((id, person));
        }
        let pagination = body.pointer("/additional_data/pagination");
        let more = pagination
            .and_then(|p| p.get("more_items_in_collection"))
            .and_then(Value::as_bool)
            == Some(true);
        if !more {
            return Ok(out);
        }
        match pagination
            .and_then(|p| p.get("next_start"))
            .and_then(Value::as_u64)
        {
            Some(next) if next > start => start = next,
            _ => return Err(malformed("the next page's start does not move forward")),
        }
    }
}

/// Adds `people` (Pipedrive ids of `link`'s single target) to `record`'s `link` field, after
/// what its id field holds, each once, as source ids.
pub(crate) fn add_to(
    record: &mut Record,
    link: &PipedriveLinks,
    people: &[u64],
    source_id_of: impl Fn(ObjectType, u64) -> String,
) {
    let [(target, _)] = link.targets else {
        return;
    };
    let mut all = match record.fields.remove(link.canonical) {
        Some(Canonical::Links(l)) => l,
        _ => Vec::new(),
    };
    for &person in people {
        let id = source_id_of(*target, person);
        if !all.iter().any(|l| l.object == *target && l.id == id) {
            all.push(ferry_core::model::Link {
                object: *target,
                id,
            });
        }
    }
    if !all.is_empty() {
        record.set(link.canonical, Canonical::Links(all));
    }
}
