//! A [`Source`] over records held in memory: the other end of a migration when the connector
//! under test is a sink, and a source of changes for the engine's incremental reads. Test
//! scaffolding, not a vendor.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ferry_core::{
    ConnectorError, ConnectorResult, DeletedPage, FetchedPage, ObjectType, Page, Record, Source,
    User, Watermark,
};

/// Serves records in pages of a fixed size, with the page offset as cursor. Each record has a
/// change time on the source's own clock ([`MemorySource::set_clock`]), which
/// [`MemorySource::change`] moves, as a vendor's modification stamp moves.
#[derive(Clone, Debug)]
pub struct MemorySource {
    state: Arc<Mutex<State>>,
    page_size: usize,
}

#[derive(Debug, Default)]
struct State {
    companies: Vec<Stamped>,
    contacts: Vec<Stamped>,
    /// The source's clock, ms since the epoch.
    now_ms: i64,
    /// Records returned by incremental reads so far.
    changed_read: u64,
    /// The deletion log: (object, source id, deleted at).
    deleted: Vec<(ObjectType, String, i64)>,
    /// Deletions before this time were trimmed from the log (`None`: it keeps them all).
    log_starts_ms: Option<i64>,
    /// Whether the source has no deletion log at all (the trait's default).
    no_log: bool,
}

#[derive(Clone, Debug)]
struct Stamped {
    record: Record,
    modified_ms: i64,
}

impl State {
    fn records(&self, object: ObjectType) -> &[Stamped] {
        if object == ObjectType::COMPANIES {
            &self.companies
        } else if object == ObjectType::CONTACTS {
            &self.contacts
        } else {
            &[]
        }
    }

    fn records_mut(&mut self, object: ObjectType) -> Option<&mut Vec<Stamped>> {
        if object == ObjectType::COMPANIES {
            Some(&mut self.companies)
        } else if object == ObjectType::CONTACTS {
            Some(&mut self.contacts)
        } else {
            None
        }
    }
}

/// The offset a cursor names.
fn offset(object: ObjectType, cursor: Option<&str>) -> ConnectorResult<usize> {
    match cursor {
        None => Ok(0),
        Some(c) => c.parse::<usize>().map_err(|_| ConnectorError::Malformed {
            vendor: "memory",
            endpoint: format!("read {object}"),
            detail: "the cursor is not a page offset".into(),
        }),
    }
}

impl MemorySource {
    /// A source of `records` (sorted into their object types, order kept), `page_size` per page,
    /// each changed at time 0 of a clock that stands at 0.
    pub fn new(records: impl IntoIterator<Item = Record>, page_size: usize) -> MemorySource {
        let stamp = |record| Stamped {
            record,
            modified_ms: 0,
        };
        let (companies, contacts): (Vec<Record>, Vec<Record>) = records
            .into_iter()
            .partition(|r| r.object == ObjectType::COMPANIES);
        MemorySource {
            state: Arc::new(Mutex::new(State {
                companies: companies.into_iter().map(stamp).collect(),
                contacts: contacts.into_iter().map(stamp).collect(),
                ..State::default()
            })),
            page_size: page_size.max(1),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the source's clock to `now_ms`: what [`Source::sync_point`] reports, and the time
    /// [`MemorySource::change`] stamps.
    pub fn set_clock(&self, now_ms: i64) {
        self.state().now_ms = now_ms;
    }

    /// Replaces the record with `record`'s source id (or adds it), stamped with the clock's
    /// time, as an edit in the vendor's UI would.
    pub fn change(&self, record: Record) {
        let mut state = self.state();
        let now = state.now_ms;
        let Some(records) = state.records_mut(record.object) else {
            return;
        };
        let stamped = Stamped {
            modified_ms: now,
            record,
        };
        match records
            .iter_mut()
            .find(|s| s.record.source_id == stamped.record.source_id)
        {
            Some(old) => *old = stamped,
            None => records.push(stamped),
        }
    }

    /// Deletes the record of `object` with `source_id`, logging the deletion at the clock's time.
    pub fn delete(&self, object: ObjectType, source_id: &str) {
        let mut state = self.state();
        let now = state.now_ms;
        if let Some(records) = state.records_mut(object) {
            records.retain(|s| s.record.source_id != source_id);
        }
        state.deleted.push((object, source_id.to_owned(), now));
    }

    /// Trims the deletion log before `at_ms`, as a vendor's purge does: a read of deletions
    /// since earlier than that is [`DeletedPage::Lost`].
    pub fn trim_deletion_log(&self, at_ms: i64) {
        let mut state = self.state();
        state.deleted.retain(|d| d.2 >= at_ms);
        state.log_starts_ms = Some(at_ms);
    }

    /// Makes the source one without a deletion log, as most vendors' connectors are.
    pub fn without_deletion_log(&self) {
        self.state().no_log = true;
    }

    /// How many records incremental reads have returned so far.
    pub fn changed_read(&self) -> u64 {
        self.state().changed_read
    }
}

#[async_trait]
impl Source for MemorySource {
    fn vendor(&self) -> &'static str {
        "memory"
    }

    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let state = self.state();
        let records = state.records(object);
        let start = offset(object, cursor)?;
        let end = (start + self.page_size).min(records.len());
        Ok(Page {
            records: records
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|s| s.record.clone())
                .collect(),
            next: (end < records.len()).then(|| end.to_string()),
            unreadable: Vec::new(),
        })
    }

    /// The records changed at or after `since`, in (change time, source id) order, paged by
    /// offset into that order.
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        let mut state = self.state();
        let mut changed: Vec<&Stamped> = state
            .records(object)
            .iter()
            .filter(|s| s.modified_ms >= since.at_ms)
            .collect();
        changed.sort_by(|a, b| {
            (a.modified_ms, &a.record.source_id).cmp(&(b.modified_ms, &b.record.source_id))
        });
        let start = offset(object, cursor)?;
        let end = (start + self.page_size).min(changed.len());
        let page = Page {
            records: changed
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|s| s.record.clone())
                .collect(),
            next: (end < changed.len()).then(|| end.to_string()),
            unreadable: Vec::new(),
        };
        state.changed_read += page.records.len() as u64;
        Ok(FetchedPage::ready(page))
    }

    /// The ids deleted at or after `since`, one page of `page_size` at a time, by offset.
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        let state = self.state();
        if state.no_log {
            return Err(ConnectorError::Unsupported {
                vendor: "memory",
                detail: "no deletion log".into(),
            });
        }
        if state.log_starts_ms.is_some_and(|start| since.at_ms < start) {
            return Ok(DeletedPage::Lost);
        }
        let ids: Vec<&String> = state
            .deleted
            .iter()
            .filter(|(o, _, at)| *o == object && *at >= since.at_ms)
            .map(|(_, id, _)| id)
            .collect();
        let start = offset(object, cursor)?;
        let end = (start + self.page_size).min(ids.len());
        Ok(DeletedPage::Ids {
            ids: ids
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .map(|id| (*id).clone())
                .collect(),
            next: (end < ids.len()).then(|| end.to_string()),
        })
    }

    /// The clock now, with no overlap: the memory source commits every change at once.
    async fn sync_point(&self, _object: ObjectType) -> ConnectorResult<Watermark> {
        Ok(Watermark::at(self.state().now_ms))
    }

    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        Ok(Some(self.state().records(object).len() as u64))
    }

    /// No users: its records name no owner, so a sink's own default applies to every one.
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_through_every_record_once() {
        let records = (0..7).map(|i| Record::new(ObjectType::CONTACTS, i.to_string()));
        let source = MemorySource::new(records, 3);
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let page = source
                .read_page(ObjectType::CONTACTS, cursor.as_deref())
                .await
                .unwrap();
            seen.extend(page.records.into_iter().map(|r| r.source_id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["0", "1", "2", "3", "4", "5", "6"]);
        let empty = source.read_page(ObjectType::COMPANIES, None).await.unwrap();
        assert!(empty.records.is_empty() && empty.next.is_none());
    }

    #[tokio::test]
    async fn reads_only_the_records_changed_since_a_watermark_in_change_order() {
        let records = (0..5).map(|i| Record::new(ObjectType::CONTACTS, i.to_string()));
        let source = MemorySource::new(records, 2);
        source.set_clock(5_000);
        source.change(Record::new(ObjectType::CONTACTS, "3"));
        source.set_clock(6_000);
        source.change(Record::new(ObjectType::CONTACTS, "1"));
        let since = Watermark::at(5_000);
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let fetched = source
                .fetch_changed_page(ObjectType::CONTACTS, &since, cursor.as_deref())
                .await
                .unwrap();
            let page = (fetched.records)().unwrap();
            seen.extend(page.records.into_iter().map(|r| r.source_id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["3", "1"]);
        assert_eq!(
            source.sync_point(ObjectType::CONTACTS).await.unwrap(),
            Watermark::at(6_000)
        );
    }
}
