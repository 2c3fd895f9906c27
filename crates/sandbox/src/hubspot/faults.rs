//! HubSpot's own faults, on top of the vendor-neutral ones of [`crate::faults::inject`]:
//!
//! - `shift`: records created and updated while a client pages through a listing (a list
//!   page with `after`, or a search). HubSpot's list pages in id order with an id cursor, and
//!   new records get higher ids, so they show up in later pages; updated records keep their
//!   place.
//! - `partial`: a batch write (with `objectWriteTraceId`s, so HubSpot answers per input) where
//!   some inputs fail with category `LOCKED`, the per-input form of HubSpot's 423 ("Locks will
//!   last for 2 seconds"), while the rest are saved: 207 Multi-Status.
//!
//! Private-app tokens do not expire, so HubSpot has no `expire` fault.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Emulator;
use super::api::now_ms;
use super::store::Kind;
use crate::faults::{Counter, PARTIAL_SALT};

/// What the fault layers count.
#[derive(Default)]
pub(crate) struct FaultState {
    inputs: Counter,
}

/// The state the fault layers share with the emulator.
pub(crate) type Faulty = (Emulator, std::sync::Arc<FaultState>);

/// The object type a request reads a later page of, for `shift`: a list page that carries
/// `after`, or any search of the object (a partitioned read's lanes search ranges of ids
/// beside the list, so records must appear while those are read too).
pub(crate) fn later_page(request: &Request, _body: &[u8]) -> Option<Kind> {
    let rest = request.uri().path().strip_prefix("/crm/v3/objects/")?;
    let (kind, search) = match rest.split_once('/') {
        None => (rest, false),
        Some((kind, "search")) => (kind, true),
        Some(_) => return None,
    };
    let kind = Kind::parse(kind).filter(|k| matches!(k, Kind::Contacts | Kind::Companies))?;
    let later = match *request.method() {
        Method::GET => !search && crate::faults::has_param(request, "after"),
        Method::POST => search,
        _ => false,
    };
    later.then_some(kind)
}

/// Creates record number `k` of the shift, and updates an existing record.
pub(crate) fn change(emulator: &Emulator, kind: Kind, k: u64) {
    let now = emulator.now_ms();
    let mut data = emulator.write();
    let store = data.store_mut(kind);
    let values: &[(&str, String)] = &match kind {
        Kind::Contacts => [
            ("email", format!("shifted-{k}@example.com")),
            ("firstname", "Shifted".to_owned()),
            ("lastname", format!("Contact {k}")),
        ],
        _ => [
            ("name", format!("Shifted Company {k}")),
            ("domain", format!("shifted-{k}.example.com")),
            ("city", "Created Mid-Read".to_owned()),
        ],
    };
    let pairs: Vec<(u16, &str)> = values
        .iter()
        .filter_map(|(name, v)| Some((store.prop_id(name)?, v.as_str())))
        .collect();
    // The record to update: spread over the listing, so some were read and some are ahead.
    let live = store.starting_at(0);
    let target = crate::faults::shift_target(k, live.len())
        .map(|i| live[i].id)
        .filter(|id| store.get(*id).is_some_and(|r| !r.is_archived()));
    store.create(now, now, None, &pairs);
    let changed = match kind {
        Kind::Contacts => "jobtitle",
        _ => "city",
    };
    if let (Some(id), Some(prop)) = (target, store.prop_id(changed)) {
        store.update(id, now, &[(prop, "Updated Mid-Read")], None);
    }
}

/// The per-input error of a locked record in a 207 answer.
fn locked(trace: &str) -> Value {
    json!({
        "status": "error",
        "category": "LOCKED",
        "message": "Attempting to sync large volume too quickly; system lock for ~2 seconds",
        "context": {"objectWriteTraceId": [trace]},
    })
}

/// Middleware: some inputs of a batch create, update or upsert fail with category `LOCKED`
/// and are not saved; the others are, and the answer is a 207 listing both.
pub(crate) async fn partial(
    State((emulator, state)): State<Faulty>,
    request: Request,
    next: Next,
) -> Response {
    let Some(percent) = emulator.inner.options.faults.partial else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let is_write = request.method() == Method::POST
        && path.starts_with("/crm/v3/objects/")
        && ["/batch/create", "/batch/update", "/batch/upsert"]
            .iter()
            .any(|a| path.ends_with(a));
    if !is_write {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let forward = |parts, bytes: Bytes| Request::from_parts(parts, Body::from(bytes));
    let Ok(mut parsed) = serde_json::from_slice::<Value>(&bytes) else {
        return next.run(forward(parts, bytes)).await;
    };
    let Some(inputs) = parsed.get_mut("inputs").and_then(Value::as_array_mut) else {
        return next.run(forward(parts, bytes)).await;
    };
    // Without a trace id per input HubSpot fails the whole batch instead of answering per input.
    let traces: Option<Vec<String>> = inputs
        .iter()
        .map(|i| {
            i.get("objectWriteTraceId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let Some(traces) = traces.filter(|t| !t.is_empty()) else {
        return next.run(forward(parts, bytes)).await;
    };
    let faults = &emulator.inner.options.faults;
    let locked_inputs: Vec<bool> = traces
        .iter()
        .map(|_| faults.hits(PARTIAL_SALT, state.inputs.next(), percent))
        .collect();
    if !locked_inputs.contains(&true) {
        return next.run(forward(parts, bytes)).await;
    }
    let errors: Vec<Value> = traces
        .iter()
        .zip(&locked_inputs)
        .filter(|(_, l)| **l)
        .map(|(t, _)| locked(t))
        .collect();
    let kept: Vec<Value> = std::mem::take(inputs)
        .into_iter()
        .zip(&locked_inputs)
        .filter(|(_, l)| !**l)
        .map(|(i, _)| i)
        .collect();
    if kept.is_empty() {
        return super::api::batch_response(StatusCode::OK, Vec::new(), errors, now_ms());
    }
    *inputs = kept;
    let Ok(body) = serde_json::to_vec(&parsed) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let response = next.run(forward(parts, Bytes::from(body))).await;
    if !response.status().is_success() {
        return response;
    }
    let (mut head, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(head, Body::from(bytes));
    };
    let mut all_errors = answer
        .get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    all_errors.extend(errors);
    answer["numErrors"] = json!(all_errors.len());
    answer["errors"] = Value::Array(all_errors);
    head.status = StatusCode::MULTI_STATUS;
    head.headers.remove(axum::http::header::CONTENT_LENGTH);
    match serde_json::to_vec(&answer) {
        Ok(body) => Response::from_parts(head, Body::from(body)),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::{Emulator, Options};
    use crate::faults::Faults;

    async fn serve(faults: &str) -> (Emulator, crate::Running, reqwest::Client) {
        let emulator = Emulator::new(Options {
            faults: Faults::parse(faults).unwrap(),
            ..Options::default()
        });
        let running = crate::serve("hubspot", emulator.router(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        (emulator, running, reqwest::Client::new())
    }

    #[tokio::test]
    async fn records_created_between_pages_are_read_on_later_pages() {
        let (emulator, running, http) = serve("shift:2").await;
        let data = crate::seed::generate(120, 3, &crate::seed::Mess::none());
        emulator.seed(&data);
        let mut after: Option<String> = None;
        let (mut read, mut pages) = (std::collections::HashSet::new(), 0);
        loop {
            let mut url = format!("{}/crm/v3/objects/contacts?limit=50", running.base_url);
            if let Some(a) = &after {
                url.push_str(&format!("&after={a}"));
            }
            let page: Value = http
                .get(url)
                .bearer_auth(crate::HUBSPOT_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            pages += 1;
            for r in page["results"].as_array().unwrap() {
                assert!(
                    read.insert(r["id"].as_str().unwrap().to_owned()),
                    "read twice"
                );
            }
            after = page["paging"]["next"]["after"].as_str().map(str::to_owned);
            if after.is_none() {
                break;
            }
        }
        let created = 2 * (pages - 1);
        assert_eq!(emulator.count("contacts"), Some(120 + created));
        assert_eq!(
            read.len(),
            120 + created,
            "every record, old and new, read once"
        );
    }

    #[tokio::test]
    async fn locked_inputs_fail_in_a_207_and_are_not_saved() {
        let (emulator, running, http) = serve("partial:30,seed:2").await;
        let inputs: Vec<Value> = (0..40)
            .map(|i| {
                json!({"objectWriteTraceId": i.to_string(),
                       "properties": {"email": format!("p{i}@example.com"), "lastname": "P"}})
            })
            .collect();
        let response = http
            .post(format!(
                "{}/crm/v3/objects/contacts/batch/create",
                running.base_url
            ))
            .bearer_auth(crate::HUBSPOT_TOKEN)
            .json(&json!({ "inputs": inputs }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 207);
        let body: Value = response.json().await.unwrap();
        let errors = body["errors"].as_array().unwrap();
        let results = body["results"].as_array().unwrap();
        assert!(!errors.is_empty() && !results.is_empty());
        assert_eq!(errors.len() + results.len(), 40);
        assert_eq!(body["numErrors"], errors.len());
        for e in errors {
            assert_eq!(e["category"], "LOCKED");
            assert_eq!(
                e["context"]["objectWriteTraceId"].as_array().unwrap().len(),
                1
            );
        }
        assert_eq!(emulator.count("contacts"), Some(results.len()));
    }
}
