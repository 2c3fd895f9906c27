//! The frame every sink's `upsert` writes through: the input guarantees the vendors' batch
//! calls need, chunking, and one outcome per record in input order, whatever order the vendor
//! answered in.
//!
//! A connector gives the vendor's batch call (`write`: one chunk of at most `batch_size`
//! records, each with its input position, answered per position) and keeps its dialect: how
//! a body is built, how an answer maps to outcomes, which refusals pass (with
//! [`crate::resend::settle`] inside `write`). What every sink needs the same is here:
//! - an empty call sends nothing;
//! - a record without a source id is refused (`MISSING_SOURCE_ID`), never sent: it could not
//!   be found again;
//! - a second record with a source id already in the call is refused (`DUPLICATE_SOURCE_ID`):
//!   vendors refuse or merge such batches, and an upsert keyed by source id cannot write both;
//! - chunks of at most `batch_size`, sent one after another;
//! - exactly one outcome per record, in input order; an answer that leaves a record out, names
//!   one twice, or names one that was not sent is a malformed answer, not a silent gap.

use std::collections::HashSet;
use std::future::Future;

use crate::connector::{RecordOutcome, RecordRejection, Written};
use crate::error::{ConnectorError, ConnectorResult};
use crate::model::{ObjectType, Record};

/// A record's refusal code when it has no source id.
pub const MISSING_SOURCE_ID: &str = "MISSING_SOURCE_ID";
/// A record's refusal code when an earlier record of the same call has its source id.
pub const DUPLICATE_SOURCE_ID: &str = "DUPLICATE_SOURCE_ID";

/// One record's answer from a chunk write: its input position and its outcome.
pub type Answer = (usize, Result<Written, RecordRejection>);

/// Upserts `records` in chunks of at most `batch_size` through `write`, returning one outcome
/// per record in input order. `write` gets each chunk as `(input position, record)` pairs and
/// answers each position once, in any order. A whole-request error of `write` ends the call.
pub async fn upsert_in_batches<'r, F, Fut>(
    vendor: &'static str,
    object: ObjectType,
    records: &'r [Record],
    batch_size: usize,
    mut write: F,
) -> ConnectorResult<Vec<RecordOutcome>>
where
    F: FnMut(Vec<(usize, &'r Record)>) -> Fut,
    Fut: Future<Output = ConnectorResult<Vec<Answer>>>,
{
    let mut outcomes: Vec<Option<Result<Written, RecordRejection>>> = vec![None; records.len()];
    let mut seen: HashSet<&str> = HashSet::with_capacity(records.len());
    let mut to_send: Vec<(usize, &'r Record)> = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let refuse = |code: &str, reason: &str| {
            Some(Err(RecordRejection {
                source_id: record.source_id.clone(),
                code: code.to_owned(),
                reason: reason.to_owned(),
            }))
        };
        if record.source_id.trim().is_empty() {
            outcomes[i] = refuse(
                MISSING_SOURCE_ID,
                "the record has no source id, so it could not be found again; not written",
            );
        } else if !seen.insert(record.source_id.as_str()) {
            outcomes[i] = refuse(
                DUPLICATE_SOURCE_ID,
                "an earlier record of the same batch has this source id; written once",
            );
        } else {
            to_send.push((i, record));
        }
    }
    for chunk in to_send.chunks(batch_size.max(1)) {
        let sent: HashSet<usize> = chunk.iter().map(|(i, _)| *i).collect();
        let answers = write(chunk.to_vec()).await?;
        let malformed = |detail: String| ConnectorError::Malformed {
            vendor,
            endpoint: format!("{object} batch write"),
            detail,
        };
        for (i, result) in answers {
            if !sent.contains(&i) {
                return Err(malformed(format!(
                    "an answer for record {i}, which this batch did not send"
                )));
            }
            if outcomes[i].replace(result).is_some() {
                return Err(malformed(format!("two answers for record {i}")));
            }
        }
        let unanswered = chunk.iter().filter(|(i, _)| outcomes[*i].is_none()).count();
        if unanswered > 0 {
            return Err(malformed(format!(
                "no answer for {unanswered} of the {} records sent",
                chunk.len()
            )));
        }
    }
    Ok(records
        .iter()
        .zip(outcomes)
        .map(|(record, result)| RecordOutcome {
            source_id: record.source_id.clone(),
            // Every position was filled above: refused before sending, or answered.
            result: result.unwrap_or_else(|| {
                Err(RecordRejection {
                    source_id: record.source_id.clone(),
                    code: "NOT_ANSWERED".into(),
                    reason: "the vendor did not answer for this record".into(),
                })
            }),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn records(ids: &[&str]) -> Vec<Record> {
        ids.iter()
            .map(|id| Record::new(ObjectType::CONTACTS, *id))
            .collect()
    }

    fn written(i: usize) -> Result<Written, RecordRejection> {
        Ok(Written {
            sink_id: format!("s{i}"),
            created: true,
        })
    }

    #[tokio::test]
    async fn outcomes_come_in_input_order_in_chunks_with_bad_ids_refused_unsent() {
        let input = records(&["a", "b", "", "a", "c", "d", "e"]);
        let chunks = Mutex::new(Vec::new());
        let outcomes = upsert_in_batches("v", ObjectType::CONTACTS, &input, 2, |chunk| {
            chunks.lock().unwrap().push(
                chunk
                    .iter()
                    .map(|(_, r)| r.source_id.clone())
                    .collect::<Vec<_>>(),
            );
            // The vendor answers in reverse order.
            let answers: Vec<Answer> = chunk.iter().rev().map(|(i, _)| (*i, written(*i))).collect();
            async move { Ok(answers) }
        })
        .await
        .unwrap();
        assert_eq!(
            *chunks.lock().unwrap(),
            [vec!["a", "b"], vec!["c", "d"], vec!["e"]]
        );
        let codes: Vec<String> = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(w) => w.sink_id.clone(),
                Err(r) => r.code.clone(),
            })
            .collect();
        assert_eq!(
            codes,
            [
                "s0",
                "s1",
                MISSING_SOURCE_ID,
                DUPLICATE_SOURCE_ID,
                "s4",
                "s5",
                "s6"
            ]
        );
        let ids: Vec<&str> = outcomes.iter().map(|o| o.source_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "", "a", "c", "d", "e"]);
    }

    #[tokio::test]
    async fn an_empty_call_sends_nothing_and_a_gap_in_the_answer_is_an_error() {
        let sent = Mutex::new(0);
        let none = upsert_in_batches("v", ObjectType::CONTACTS, &[], 10, |_| {
            *sent.lock().unwrap() += 1;
            async { Ok(Vec::new()) }
        })
        .await
        .unwrap();
        assert!(none.is_empty());
        assert_eq!(*sent.lock().unwrap(), 0);

        let input = records(&["a", "b"]);
        let gap = upsert_in_batches("v", ObjectType::CONTACTS, &input, 10, |chunk| {
            let answers: Vec<Answer> = chunk
                .iter()
                .take(1)
                .map(|(i, _)| (*i, written(*i)))
                .collect();
            async move { Ok(answers) }
        })
        .await
        .unwrap_err();
        assert!(
            gap.to_string().contains("no answer for 1 of the 2"),
            "{gap}"
        );
        let twice = upsert_in_batches("v", ObjectType::CONTACTS, &input, 10, |_| async {
            Ok(vec![(0, written(0)), (0, written(0)), (1, written(1))])
        })
        .await
        .unwrap_err();
        assert!(
            twice.to_string().contains("two answers for record 0"),
            "{twice}"
        );
        let stranger = upsert_in_batches("v", ObjectType::CONTACTS, &input, 1, |_| async {
            Ok(vec![(1, written(1))])
        })
        .await
        .unwrap_err();
        assert!(stranger.to_string().contains("did not send"), "{stranger}");
    }
}
