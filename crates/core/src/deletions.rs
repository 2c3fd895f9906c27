//! Deletions in `ferry sync`: learning what the source deleted, and removing it from the sink
//! per `[sync] deletes` (never by default).
//!
//! Before anything is written, each object's deletions since its deletions cursor (else its
//! watermark) are read from the source's deletion log ([`Source::fetch_deleted_page`]); a
//! source without one, or one whose log no longer reaches back that far, is compared by id
//! sets instead: the source's live ids against the source ids the sink's records carry. Only
//! records carrying ferry's source id are ever found, so a record created in the sink by hand
//! is never removed. What would go is counted across every object first: over `max_deletes`,
//! the run is refused ([`ErrorKind::MassDelete`], exit 3) before anything is written or
//! removed. After the records are written, removals run children before parents (notes,
//! deals, contacts, companies), and each object's deletions cursor moves to the source's sync
//! point taken before its deletions were read, only once every removal settled.

use std::sync::Arc;

use crate::connector::{DeletedPage, Removal, Removed, Sink, Source};
use crate::error::{ConnectorError, ConnectorResult};
use crate::model::ObjectType;
use crate::quality::{HashSeen, id_hash};
use crate::report::{ErrorKind, Failure, Report, Stage};
use crate::sync::{StateFile, Watermark};

/// What a sync does with records deleted in the source (`[sync] deletes`, `max_deletes`,
/// `--allow-mass-delete`).
#[derive(Clone, Debug)]
pub struct DeletePolicy {
    /// How the sink removes them; `None` ("ignore", the default): they stay in the sink.
    pub removal: Option<Removal>,
    /// The most sink records one sync may remove before it is refused.
    pub max_deletes: u64,
    /// Remove even more than `max_deletes`.
    pub allow_mass_delete: bool,
}

impl Default for DeletePolicy {
    fn default() -> Self {
        DeletePolicy {
            removal: None,
            max_deletes: 100,
            allow_mass_delete: false,
        }
    }
}

/// One object's deletions, learnt before the run wrote anything.
#[derive(Debug)]
pub struct Detected {
    /// The object.
    pub object: ObjectType,
    /// How they were learnt: `"source"`, `"id_sets"` or `"first_sync"`.
    pub how: &'static str,
    /// The source's sync point taken before reading them: the next deletions cursor.
    pub point: Watermark,
    /// Source ids of the sink records to remove (each carried by a sink record when read).
    pub ids: Vec<String>,
}

/// Learns the deletions of each object of `objects` (`(object, read_back_size)`), reading
/// nothing but ids; an object with no watermark yet (its first sync) has none to learn.
pub async fn detect(
    source: &dyn Source,
    sink: &dyn Sink,
    state: &StateFile,
    objects: &[(ObjectType, usize)],
    how: Removal,
) -> ConnectorResult<Vec<Detected>> {
    // A sink that cannot remove is refused on the first sync already, not once there is
    // something to remove: removing no record asks nothing of the vendor.
    for &(object, _) in objects {
        sink.remove(object, &[], how).await?;
    }
    let mut detected = Vec::with_capacity(objects.len());
    for &(object, read_back_size) in objects {
        let point = source.sync_point(object).await?;
        let Some(since) = state.deletions_since(object) else {
            detected.push(Detected {
                object,
                how: "first_sync",
                point,
                ids: Vec::new(),
            });
            continue;
        };
        let (how, ids) = match from_log(source, object, &since).await? {
            Some(ids) => ("source", in_sink(sink, object, ids, read_back_size).await?),
            None => ("id_sets", compare_id_sets(source, sink, object).await?),
        };
        tracing::info!(%object, how, to_remove = ids.len(), "deletions learnt");
        detected.push(Detected {
            object,
            how,
            point,
            ids,
        });
    }
    Ok(detected)
}

/// The ids the source's deletion log names since `since`, deduplicated; `None` when it has no
/// log or the log no longer reaches back that far.
async fn from_log(
    source: &dyn Source,
    object: ObjectType,
    since: &Watermark,
) -> ConnectorResult<Option<Vec<String>>> {
    let (mut ids, mut seen, mut cursor) = (Vec::new(), HashSeen::default(), None::<String>);
    loop {
        match source
            .fetch_deleted_page(object, since, cursor.as_deref())
            .await
        {
            Ok(DeletedPage::Ids { ids: page, next }) => {
                ids.extend(page.into_iter().filter(|id| seen.insert(id_hash(id))));
                match next {
                    Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                        return Err(loops(source.vendor(), object, "deletions"));
                    }
                    Some(next) => cursor = Some(next),
                    None => return Ok(Some(ids)),
                }
            }
            Ok(DeletedPage::Lost) => {
                tracing::warn!(%object, "the source's deletion log no longer reaches the last sync: comparing id sets");
                return Ok(None);
            }
            Err(ConnectorError::Unsupported { .. }) => {
                tracing::info!(%object, "the source has no deletion log: comparing id sets");
                return Ok(None);
            }
            Err(e) => return Err(e),
        }
    }
}

/// A cursor that names its own page would loop forever.
fn loops(vendor: &'static str, object: ObjectType, what: &str) -> ConnectorError {
    ConnectorError::Malformed {
        vendor,
        endpoint: format!("list {object} {what}"),
        detail: "the next page's cursor is the page's own".into(),
    }
}

/// Of `ids`, those a sink record carries now (read back `read_back_size` at a time): only
/// they would be removed, and only they count against `max_deletes`.
async fn in_sink(
    sink: &dyn Sink,
    object: ObjectType,
    ids: Vec<String>,
    read_back_size: usize,
) -> ConnectorResult<Vec<String>> {
    let mut present = Vec::new();
    for chunk in ids.chunks(read_back_size.max(1)) {
        let found: std::collections::HashSet<String> = sink
            .read_back(object, chunk)
            .await?
            .into_iter()
            .map(|r| r.source_id)
            .collect();
        present.extend(chunk.iter().filter(|id| found.contains(*id)).cloned());
    }
    Ok(present)
}

/// The source ids the sink's records of `object` carry that no live source record has. The
/// source's ids are kept as 64-bit hashes: a collision could only keep a record, never remove
/// one.
async fn compare_id_sets(
    source: &dyn Source,
    sink: &dyn Sink,
    object: ObjectType,
) -> ConnectorResult<Vec<String>> {
    let (mut live, mut cursor) = (HashSeen::default(), None::<String>);
    loop {
        let page = source.fetch_ids_page(object, cursor.as_deref()).await?;
        for id in &page.ids {
            live.insert(id_hash(id));
        }
        match page.next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(loops(source.vendor(), object, "ids"));
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let (mut gone, mut seen, mut cursor) = (Vec::new(), HashSeen::default(), None::<String>);
    loop {
        let page = sink.source_ids_page(object, cursor.as_deref()).await?;
        gone.extend(
            page.ids
                .into_iter()
                .filter(|id| !live.contains(id_hash(id)) && seen.insert(id_hash(id))),
        );
        match page.next {
            Some(next) if cursor.as_deref() == Some(next.as_str()) => {
                return Err(loops(sink.vendor(), object, "source ids"));
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(gone)
}

/// The refusal of a sync that would remove more than `max_deletes`, naming the count of each
/// object; `None` within the limit or with `--allow-mass-delete`.
pub fn refusal(detected: &[Detected], policy: &DeletePolicy) -> Option<String> {
    let total: u64 = detected.iter().map(|d| d.ids.len() as u64).sum();
    if total <= policy.max_deletes || policy.allow_mass_delete {
        return None;
    }
    let per_object: Vec<String> = detected
        .iter()
        .filter(|d| !d.ids.is_empty())
        .map(|d| format!("{} {}", d.ids.len(), d.object))
        .collect();
    Some(format!(
        "this sync would remove {} from the sink ({}), more than `sync.max_deletes` = {}; nothing \
         was written or removed. Check that the source really lost them, then raise \
         `max_deletes` or run once with --allow-mass-delete",
        crate::report::count(total, "record", "records"),
        per_object.join(", "),
        policy.max_deletes
    ))
}

/// Removes what `detected` names from the sink, children before parents (the reverse of the
/// run's write order), `batch_size(object)` at a time, and books the counts, refusals and
/// deletions cursors in `report`. Stops at the first failed request or when `stop` turns.
pub async fn remove(
    sink: &Arc<dyn Sink>,
    detected: Vec<Detected>,
    how: Removal,
    batch_size: impl Fn(ObjectType) -> usize,
    state: &StateFile,
    stop: Option<&tokio::sync::watch::Receiver<bool>>,
    report: &mut Report,
) {
    for d in detected.into_iter().rev() {
        let object = d.object;
        let (mut archived, mut deleted, mut refused) = (0u64, 0u64, Vec::new());
        let mut error = None;
        let mut stopped = false;
        for chunk in d.ids.chunks(batch_size(object).max(1)) {
            if stop.is_some_and(|s| *s.borrow()) {
                stopped = true;
                break;
            }
            let outcomes = match sink.remove(object, chunk, how).await {
                Ok(o) if o.len() == chunk.len() => o,
                Ok(o) => {
                    error = Some(ConnectorError::Malformed {
                        vendor: sink.vendor(),
                        endpoint: format!("remove {object}"),
                        detail: format!("{} outcomes for {} records", o.len(), chunk.len()),
                    });
                    break;
                }
                Err(e) => {
                    error = Some(e);
                    break;
                }
            };
            for outcome in outcomes {
                match outcome.result {
                    Ok(Removed::Archived) => archived += 1,
                    Ok(Removed::Deleted) => deleted += 1,
                    Ok(Removed::Absent) => {}
                    Err(rejection) => {
                        tracing::warn!(%object, id = %outcome.source_id, code = %rejection.code, "the sink refused to remove a record");
                        refused.push(Failure {
                            object,
                            source_id: outcome.source_id,
                            stage: Stage::Remove,
                            code: rejection.code,
                            reason: rejection.reason,
                        });
                    }
                }
            }
        }
        tracing::info!(%object, archived, deleted, refused = refused.len(), "removals");
        let settled = error.is_none() && !stopped && refused.is_empty();
        let saved = if settled {
            state.advance_deletions(object, d.point.clone())
        } else {
            Ok(())
        };
        if let Some(r) = report.objects.iter_mut().find(|o| o.object == Some(object)) {
            r.archived += archived;
            r.deleted += deleted;
            r.not_removed += refused.len() as u64;
            if let Some(sync) = r.sync.as_mut() {
                sync.deletions = Some(d.how);
                sync.deletions_after = state
                    .snapshot()
                    .objects
                    .get(&object)
                    .and_then(|o| o.deletions_cursor.as_ref())
                    .map(Watermark::to_rfc3339);
            }
        }
        report.failures.append(&mut refused);
        if let Err(e) = saved {
            tracing::error!(%object, error = %e, "cannot save the sync state");
            report.fail(
                ErrorKind::Internal,
                format!("cannot save the sync state: {e}"),
            );
            return;
        }
        if let Some(e) = error {
            tracing::error!(%object, error = %e, kind = %e.kind(), "removals stopped");
            report.fail(e.kind(), e.to_string());
            return;
        }
        if stopped {
            report.interrupted = true;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detected(object: ObjectType, n: usize) -> Detected {
        Detected {
            object,
            how: "source",
            point: Watermark::at(0),
            ids: (0..n).map(|i| i.to_string()).collect(),
        }
    }

    #[test]
    fn the_limit_counts_every_object_and_lets_exactly_max_through() {
        let found = [
            detected(ObjectType::COMPANIES, 1),
            detected(ObjectType::CONTACTS, 0),
            detected(ObjectType::DEALS, 2),
        ];
        let at = |max_deletes, allow_mass_delete| {
            refusal(
                &found,
                &DeletePolicy {
                    removal: Some(Removal::Archive),
                    max_deletes,
                    allow_mass_delete,
                },
            )
        };
        assert_eq!(at(3, false), None);
        let refused = at(2, false).unwrap();
        assert!(
            refused.contains("would remove 3 records from the sink (1 companies, 2 deals)"),
            "{refused}"
        );
        assert_eq!(at(2, true), None);
        assert!(at(0, false).is_some());
    }
}
