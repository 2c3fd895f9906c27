//! Salesforce's own faults, on top of the vendor-neutral ones of [`crate::faults::inject`]
//! (and sessions expiring mid-run, [`crate::faults::expiring`]): records of an sObject
//! Collections write that fail with `UNABLE_TO_LOCK_ROW` (another transaction held the row;
//! retrying later succeeds) while the rest of the collection is saved.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value as Json, json};

use super::Shared;
use crate::faults::{Counter, PARTIAL_SALT};

/// What the fault layer counts.
#[derive(Default)]
pub(super) struct FaultState {
    inputs: Counter,
}

/// The state the fault layers share with the org.
pub(super) type Faulty = (Arc<Shared>, Arc<FaultState>);

/// Salesforce's per-record error for a row another transaction has locked.
fn locked_result() -> Json {
    json!({
        "success": false,
        "errors": [{
            "statusCode": "UNABLE_TO_LOCK_ROW",
            "message": "unable to obtain exclusive access to this record or 1 records",
            "fields": [],
        }],
    })
}

/// Middleware on the data routes: some records of an sObject Collections write (create,
/// update, upsert; `allOrNone` false) fail with `UNABLE_TO_LOCK_ROW` and are not saved; the
/// others are saved, and the answer keeps the input order.
pub(super) async fn partial(
    State((shared, state)): State<Faulty>,
    request: Request,
    next: Next,
) -> Response {
    let Some(percent) = shared.options.faults.partial else {
        return next.run(request).await;
    };
    let is_collection = request.uri().path().contains("/composite/sobjects")
        && matches!(*request.method(), Method::POST | Method::PATCH);
    if !is_collection {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let forward = |parts, bytes: Bytes| Request::from_parts(parts, Body::from(bytes));
    let mut parsed: Json = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return next.run(forward(parts, bytes)).await,
    };
    let all_or_none = parsed
        .get("allOrNone")
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let Some(records) = parsed.get_mut("records").and_then(Json::as_array_mut) else {
        return next.run(forward(parts, bytes)).await;
    };
    if all_or_none || records.is_empty() || records.len() > super::COLLECTION_LIMIT {
        return next.run(forward(parts, bytes)).await;
    }
    let locked: Vec<bool> = records
        .iter()
        .map(|_| {
            shared
                .options
                .faults
                .hits(PARTIAL_SALT, state.inputs.next(), percent)
        })
        .collect();
    if !locked.contains(&true) {
        return next.run(forward(parts, bytes)).await;
    }
    let kept: Vec<Json> = std::mem::take(records)
        .into_iter()
        .zip(&locked)
        .filter(|(_, l)| !**l)
        .map(|(r, _)| r)
        .collect();
    let saved: Vec<Json> = if kept.is_empty() {
        Vec::new()
    } else {
        *records = kept;
        let Ok(body) = serde_json::to_vec(&parsed) else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let response = next.run(forward(parts, Bytes::from(body))).await;
        if response.status() != StatusCode::OK {
            return response;
        }
        let (head, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        match serde_json::from_slice::<Vec<Json>>(&bytes) {
            Ok(results) if results.len() == locked.iter().filter(|l| !**l).count() => results,
            _ => return Response::from_parts(head, Body::from(bytes)),
        }
    };
    let mut saved = saved.into_iter();
    let merged: Vec<Json> = locked
        .iter()
        .map(|l| {
            if *l {
                locked_result()
            } else {
                saved.next().unwrap_or_else(locked_result)
            }
        })
        .collect();
    axum::Json(merged).into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::super::{Emulator, Options};
    use crate::faults::Faults;

    const UPSERT: &str = "/services/data/v62.0/composite/sobjects/Contact/Ferry_Source_Id__c";

    async fn token(http: &reqwest::Client, base: &str) -> String {
        let body: Json = http
            .post(format!("{base}/services/oauth2/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", crate::SALESFORCE_CLIENT_ID),
                ("client_secret", crate::SALESFORCE_CLIENT_SECRET),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn some_records_fail_with_unable_to_lock_row_and_are_not_saved() {
        let emulator = Emulator::new(Options {
            faults: Faults::parse("partial:30,seed:4").unwrap(),
            ..Options::default()
        });
        let running = crate::serve(
            "salesforce",
            emulator.router(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let token = token(&http, &running.base_url).await;
        let records: Vec<Json> = (0..50)
            .map(|i| json!({"LastName": format!("L{i}"), "Ferry_Source_Id__c": format!("s{i}")}))
            .collect();
        let response = http
            .patch(format!("{}{UPSERT}", running.base_url))
            .bearer_auth(&token)
            .json(&json!({"allOrNone": false, "records": records}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let results: Vec<Json> = response.json().await.unwrap();
        assert_eq!(results.len(), 50, "one result per record, in order");
        let locked: Vec<usize> = (0..50)
            .filter(|i| results[*i]["success"] == false)
            .collect();
        assert!((5..=30).contains(&locked.len()), "{} locked", locked.len());
        for (i, result) in results.iter().enumerate() {
            let saved = emulator
                .record_by_external_id("Contact", &format!("s{i}"))
                .is_some();
            if locked.contains(&i) {
                assert_eq!(result["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
                assert!(!saved, "a locked record is not saved");
            } else {
                assert_eq!(result["success"], true, "{result}");
                assert!(saved);
            }
        }
        assert_eq!(emulator.count("Contact"), 50 - locked.len());
    }

    #[tokio::test]
    async fn a_token_expires_at_its_nth_use_and_a_new_one_works() {
        let emulator = Emulator::new(Options {
            faults: Faults::parse("expire:3").unwrap(),
            ..Options::default()
        });
        let running = crate::serve(
            "salesforce",
            emulator.router(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let http = reqwest::Client::new();
        let limits = format!("{}/services/data/v62.0/limits", running.base_url);
        let first = token(&http, &running.base_url).await;
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let r = http.get(&limits).bearer_auth(&first).send().await.unwrap();
            statuses.push(r.status().as_u16());
        }
        assert_eq!(statuses, vec![200, 200, 401, 401]);
        let fresh = token(&http, &running.base_url).await;
        let r = http.get(&limits).bearer_auth(&fresh).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
}
