//! Reading persons, organizations and deals from Pipedrive's v2 list endpoints (and each
//! deal's participants from v1), and notes from v1.
//!
//! A full read of more than one page is split into `update_time` windows read side by side
//! (`read_windows`, see [`crate::windows`]): one cursor of 500 records a round trip is
//! Pipedrive's bound at a real network's latency, well under its 80 requests per 2 s.
//!
//! Incremental reads (`ferry sync`) are the same lists, in the same id order with the same
//! cursors, filtered on `update_time` with `updated_since` (at or after; RFC 3339, whole
//! seconds): v2 for persons, organizations and deals, v1 for notes. Records come out exactly as
//! a full read's, participants included. Paging in id order rather than `sort_by=update_time`
//! means a record changed while the read runs keeps its place: it is read once, never skipped,
//! and read again by the next sync if it changed after the sync point. No upper bound
//! (`updated_until`) is sent: v1 notes have none, and reading a change early costs only a
//! repeat, which the upsert absorbs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, VendorField};
use ferry_core::http::{HttpStats, RateLimit};
use ferry_core::json::{Text, Tree};
use ferry_core::{
    ConnectorError, ConnectorResult, DeletedPage, FetchedPage, ObjectType, Page, Source, Watermark,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;

use crate::VENDOR;
use crate::ahead::{Ahead, Pending};
use crate::client::PipedriveClient;
use crate::config::PipedriveConfig;
use crate::mapping;
use crate::objects;
use crate::windows::{IdSet, Span, Window, Windows};

/// How far before Pipedrive's clock at the start of a read the next incremental read starts.
/// Pipedrive documents neither how precise `update_time` is (it shows whole seconds, as does
/// the `Date` header the clock comes from) nor when a write becomes visible to the lists, and
/// its workflow automations write records on their own shortly after the change that triggered
/// them; API hosts' clocks may drift apart too. With nothing documented, the same five minutes
/// as HubSpot's search lag: changes inside the overlap are read twice, and the second read of
/// one that did not change is skipped (`unchanged_skipped`).
pub const SYNC_OVERLAP: Duration = Duration::from_secs(300);

/// Pages a windowed read's round takes per window slot (`read_windows`): a round holds at
/// most `read_windows` × this × 500 records (6,000 at the defaults). One: the pages still on
/// their way when a round is full are held for the next, so bigger rounds read no faster, but
/// hold more records, and the last of them is written and verified after the read ends (4
/// pages a slot: 45 to 54 MiB peak RSS for 30,000 persons; one: 33 to 36 MiB;
/// `docs/performance.md`).
pub const PAGES_PER_SLOT: usize = 1;

/// How long Pipedrive keeps a deleted deal (and lists it with `status=deleted`) before it
/// purges it: 30 days.
pub const DELETED_KEPT: Duration = Duration::from_secs(30 * 86_400);

/// `since` as Pipedrive's lists take `updated_since`: RFC 3339 UTC in whole seconds, rounded
/// down (reading a second more is safe, a second less could miss a change).
fn updated_since(since: &Watermark) -> String {
    rfc3339_second(since.at_ms)
}

/// `ms` as RFC 3339 UTC in whole seconds, rounded down: how Pipedrive's lists take times.
fn rfc3339_second(ms: i64) -> String {
    let second = ms - ms.rem_euclid(1000);
    ferry_core::model::format_timestamp(second).replacen(".000Z", "Z", 1)
}

/// A Pipedrive company account as a [`Source`]: pages through `GET /api/v2/{persons|
/// organizations|deals}` with Pipedrive's cursor, in id order. Source ids are Pipedrive ids, and so
/// are references (a person's company is its `org_id`) and links (a deal's contacts: its
/// `person_id`, then its other participants). Lists carry every custom field, so mapped custom fields
/// need no extra request.
pub struct PipedriveSource {
    client: Arc<PipedriveClient>,
    page_size: u32,
    /// Requests in flight when reading per-record lists (a deal's participants).
    concurrency: usize,
    /// The plain fields read per object: the standard table and the mapped fields.
    fields: FieldMaps,
    /// `update_time` windows a full read reads side by side; 1: one cursor.
    read_windows: usize,
    /// The ids each object's full read in this process has returned, so that a record met
    /// again in a later window (changed during the read) is skipped.
    returned: Mutex<HashMap<ObjectType, IdSet>>,
    /// Per object: each window's next page in flight, for the cursor the last call handed out.
    ahead: Ahead<Window, ConnectorResult<Answer>>,
}

impl PipedriveSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.api_token`).
    pub fn new(config: PipedriveConfig, key_prefix: &str) -> ConnectorResult<PipedriveSource> {
        let (client, settings) = PipedriveClient::new(&config, key_prefix)?;
        Ok(PipedriveSource {
            client: Arc::new(client),
            ahead: Ahead::new(),
            page_size: settings.page_size,
            concurrency: settings.concurrency,
            read_windows: settings.read_windows,
            returned: Mutex::default(),
            fields: FieldMaps::new(
                objects::OBJECTS
                    .iter()
                    .map(|row| (row.object, row.standard_map())),
            ),
        })
    }

    /// The burst limit in force: the configured one, or what Pipedrive announced since.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.client.rate_limit()
    }
}

/// A page of records as listed, before each record's participants are added: the records
/// (or why one could not be read) and the next page's cursor.
struct Listed {
    records: Vec<Result<ferry_core::Record, ferry_core::RecordRejection>>,
    next: Option<String>,
}

impl PipedriveSource {
    /// Adds each record's participants (`GET /v1/{path}/{id}/participants`, offset-paged; one
    /// request per record, as Pipedrive has no batch read of them) to its `links` field, after
    /// the link its id field holds, each person once. A record deleted since it was listed
    /// (404) no longer exists: it is left out of the page, logged by id.
    async fn add_participants(
        &self,
        row: &objects::PipedriveObject,
        links: &objects::PipedriveLinks,
        records: &mut Vec<Result<ferry_core::Record, ferry_core::RecordRejection>>,
    ) -> ConnectorResult<()> {
        let reads: Vec<_> = records
            .iter()
            .enumerate()
            .filter_map(|(at, r)| Some((at, r.as_ref().ok()?.source_id.parse::<u64>().ok()?)))
            .map(|(at, id)| async move {
                let path = format!("/v1/{}/{id}/participants", row.path);
                match crate::participants::list(&self.client, &path).await {
                    Ok(people) => Ok((at, Some(people))),
                    Err(ConnectorError::Status { status: 404, .. }) => Ok((at, None)),
                    Err(e) => Err(e),
                }
            })
            .collect();
        let answers: Vec<_> = futures::stream::iter(reads)
            .buffered(self.concurrency)
            .collect()
            .await;
        let mut gone = Vec::new();
        for answer in answers {
            let (at, people) = answer?;
            let Some(people) = people else {
                gone.push(at);
                continue;
            };
            if let Some(Ok(record)) = records.get_mut(at) {
                // Source ids are Pipedrive ids.
                let people: Vec<u64> = people.into_iter().map(|(_, person)| person).collect();
                crate::participants::add_to(record, links, &people, |_, id| id.to_string());
            }
        }
        for at in gone.into_iter().rev() {
            let removed = records.remove(at);
            if let Ok(record) = removed {
                tracing::info!(
                    vendor = VENDOR,
                    object = %row.object,
                    source_id = record.source_id.as_str(),
                    "deleted since it was listed (its participants read answered 404): left out"
                );
            }
        }
        Ok(())
    }
}

impl PipedriveSource {
    /// A page of notes (`GET /v1/notes`, offset-paged in id order; the cursor is the offset),
    /// those updated at or after `since` if given: body, original time, author and parents
    /// (Pipedrive ids, which are their source ids).
    async fn read_notes(&self, cursor: Option<&str>, since: Option<&str>) -> ConnectorResult<Page> {
        let object = ObjectType::NOTES;
        let malformed = |detail: &str| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {}", crate::notes::PATH),
            detail: detail.to_owned(),
        };
        let start = match cursor {
            None => 0,
            Some(c) => c
                .parse::<u64>()
                .map_err(|_| malformed("the resume cursor is not an offset"))?,
        };
        let limit = self.page_size.min(crate::notes::PAGE_LIMIT);
        let filters: Vec<(&str, &str)> = since.map(|t| ("updated_since", t)).into_iter().collect();
        let (items, next) = crate::notes::page(&self.client, start, limit, &filters).await?;
        let mut page = Page {
            records: Vec::with_capacity(items.len()),
            next: next.map(|n| n.to_string()),
            unreadable: Vec::new(),
        };
        for raw in &items {
            let id =
                mapping::id_of(raw).ok_or_else(|| malformed("a record without a numeric id"))?;
            let record = crate::notes::to_record(raw, id.to_string(), |_, id| id.to_string());
            page.push(VENDOR, object, record);
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }
}

#[async_trait]
impl Source for PipedriveSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The account's company id (`GET /v1/users/me`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// The company's users, active or not (`GET /v1/users`).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client).await
    }

    /// The deal pipelines and their stages (`GET /api/v2/pipelines`, `GET /api/v2/stages`).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object, self.page_size).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client
            .get_small("/api/v2/persons", &[("limit", "1")])
            .await?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// Pipedrive's v2 lists carry no total, and counting would cost a full read: `None`.
    async fn count(&self, _object: ObjectType) -> ConnectorResult<Option<u64>> {
        Ok(None)
    }

    /// The fields of `object` from Pipedrive's fields API (`GET /api/v2/{personFields|
    /// organizationFields}`), custom ones by their 40-character keys.
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        crate::fields::describe(&self.client, object).await
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        crate::fields::check_bindings(object, bindings)?;
        let row = objects::binding(object)?;
        self.fields.map(object, &row.standard_map(), bindings);
        Ok(())
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let row = objects::binding(object)?;
        if !row.source_id_field {
            return self.read_notes(cursor, None).await;
        }
        if self.read_windows < 2 {
            let listed = self.list_page(row, cursor, Window::default()).await?;
            return self.complete_page(row, listed).await;
        }
        match cursor {
            None => self.read_first_page(row).await,
            Some(c) => match Windows::parse(c) {
                Some(windows) => {
                    let windows = windows.map_err(|_| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET /api/v2/{}", row.path),
                        detail: "the cursor of a windowed read is not `windows:` and its windows"
                            .into(),
                    })?;
                    self.read_round(row, windows, c).await
                }
                // A read begun with one cursor goes on with it.
                None => {
                    let listed = self.list_page(row, cursor, Window::default()).await?;
                    self.complete_page(row, listed).await
                }
            },
        }
    }

    /// The page at `cursor` of the full read's list, filtered on `updated_since` (see the
    /// module's documentation): the same cursors, records and participants reads.
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        let row = objects::binding(object)?;
        let page = if row.source_id_field {
            let changed = Window {
                since: Some(since.at_ms),
                ..Window::default()
            };
            let listed = self.list_page(row, cursor, changed).await?;
            self.complete_page(row, listed).await?
        } else {
            self.read_notes(cursor, Some(&updated_since(since))).await?
        };
        Ok(FetchedPage::ready(page))
    }

    /// Deals: `GET /api/v2/deals?status=deleted`, every deal deleted in the last 30 days
    /// (Pipedrive purges them then), ids only, in the list's cursor pages. Not filtered on
    /// `update_time`: that a delete moves it is not documented. When `since` is older than
    /// those 30 days (by Pipedrive's clock, asked on the first page), deletes may have been
    /// purged: [`DeletedPage::Lost`], and the engine compares id sets. Persons and
    /// organizations have no documented deleted listing: `Unsupported`, id sets too.
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        let row = objects::binding(object)?;
        if !row.lists_deleted {
            return Err(ConnectorError::Unsupported {
                vendor: VENDOR,
                detail: format!("Pipedrive lists no deleted {object}"),
            });
        }
        if cursor.is_none() {
            let now = self.client.server_time_ms().await?;
            if since.at_ms < now - DELETED_KEPT.as_millis() as i64 {
                return Ok(DeletedPage::Lost);
            }
        }
        let path = format!("/api/v2/{}", row.path);
        let limit = self.page_size.to_string();
        let mut query = vec![("limit", limit.as_str()), ("status", "deleted")];
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        let body = self.client.get(&path, &query).await?;
        let malformed = |detail: &str| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {path}"),
            detail: detail.to_owned(),
        };
        let items = body
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| malformed("`data` is not a list"))?;
        let mut ids = Vec::with_capacity(items.len());
        for raw in items {
            // `status=deleted` lists only deleted deals; a live one is left alone all the same.
            if raw.get("is_deleted").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let id =
                mapping::id_of(raw).ok_or_else(|| malformed("a record without a numeric id"))?;
            ids.push(id.to_string());
        }
        let next = body
            .pointer("/additional_data/next_cursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        Ok(DeletedPage::Ids { ids, next })
    }

    /// Pipedrive's clock (the `Date` header of `GET /v1/users/me`) less [`SYNC_OVERLAP`].
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        objects::binding(object)?;
        let now = self.client.server_time_ms().await?;
        Ok(Watermark::settled_before(now, SYNC_OVERLAP))
    }
}

impl PipedriveSource {
    /// One page of `row`'s list (see [`Lister::page`]).
    async fn list_page(
        &self,
        row: &'static objects::PipedriveObject,
        cursor: Option<&str>,
        window: Window,
    ) -> ConnectorResult<Listed> {
        self.lister(row).page(cursor, &window).await
    }

    /// What reads `row`'s list pages with the fields mapped now.
    fn lister(&self, row: &'static objects::PipedriveObject) -> Lister {
        Lister {
            client: Arc::clone(&self.client),
            row,
            map: self.fields.get(row.object),
            page_size: self.page_size,
        }
    }

    /// The page of a [`PipedriveSource::list_page`]: each record with its participants, less
    /// the records deleted in between.
    async fn complete_page(
        &self,
        row: &objects::PipedriveObject,
        listed: Listed,
    ) -> ConnectorResult<Page> {
        let Listed { mut records, next } = listed;
        let listed = records.len();
        for links in row.links.iter().filter(|l| l.participants) {
            self.add_participants(row, links, &mut records).await?;
        }
        let gone = listed - records.len();
        if gone > 0 {
            tracing::info!(
                vendor = VENDOR,
                object = %row.object,
                gone,
                "records deleted between the list and their participants read were left out"
            );
        }
        let mut page = Page {
            records: Vec::with_capacity(records.len()),
            next,
            unreadable: Vec::new(),
        };
        for record in records {
            page.push(VENDOR, row.object, record);
        }
        page.log_read(VENDOR, row.object);
        Ok(page)
    }
}

impl PipedriveSource {
    /// The first call of a full read: the 500 records changed first and the 500 changed last
    /// (the list sorted by `update_time` either way, side by side; the second's `Date` header
    /// is Pipedrive's clock). An object of one page is the first list whole, handed out in id
    /// order as one cursor reads it. A longer one goes on in windows ([`Windows::plan`])
    /// over the time between the two pages, whose records are all there is outside it, the
    /// first page of each window the first round starts with asked before this call returns.
    /// So the first round trip reads two pages that the windows do not read again, and gives
    /// the bounds the windows are planned from.
    async fn read_first_page(
        &self,
        row: &'static objects::PipedriveObject,
    ) -> ConnectorResult<Page> {
        self.ids_returned(row.object, |ids| *ids = IdSet::default());
        self.ahead.forget(row.object);
        let lister = self.lister(row);
        let ((oldest, _), (newest, now)) = tokio::try_join!(
            lister.fetch_by_update_time("asc"),
            lister.fetch_by_update_time("desc"),
        )?;
        if oldest.listed.next.is_none() {
            let mut listed = oldest.listed;
            listed.records.sort_by_key(listed_id);
            self.ids_returned(row.object, |ids| {
                for record in &listed.records {
                    if let Some(id) = listed_id(record) {
                        ids.insert(id);
                    }
                }
            });
            return self.complete_page(row, listed).await;
        }
        let endpoint = || format!("GET /api/v2/{}", row.path);
        let now = now.ok_or_else(|| crate::client::no_date(endpoint()))?;
        let (first_pages, last_pages) = (lister.span(&oldest)?, lister.span(&newest)?);
        // A write may become visible to the lists after the time it is stamped with (and API
        // hosts' clocks drift): the open window starts the sync overlap earlier.
        let open_from = now - SYNC_OVERLAP.as_millis() as i64;
        let pages = Windows::pages_between(first_pages, last_pages, lister.page_size);
        let windows = Windows::plan(
            first_pages.latest,
            last_pages.earliest,
            open_from,
            self.read_windows.min(pages.max(1)),
        );
        tracing::debug!(vendor = VENDOR, object = %row.object, windows = windows.0.len(), "a full read goes on in update-time windows");
        let mut listed = oldest.listed;
        let newest = newest.listed;
        self.ids_returned(row.object, |ids| {
            for record in &listed.records {
                if let Some(id) = listed_id(record) {
                    ids.insert(id);
                }
            }
            // The two pages meet when the object is little more than a page.
            for record in newest.records {
                if listed_id(&record).is_none_or(|id| ids.insert(id)) {
                    listed.records.push(record);
                }
            }
        });
        listed.next = self.keep_ahead(&lister, &windows, Pending::new());
        self.complete_page(row, listed).await
    }

    /// The cursor of `windows`, with `pending` kept for the call that comes with it: the next
    /// page of every window the next round's slots start with asked now if not in flight
    /// already (the windows not started yet, and the open one once it is readable).
    fn keep_ahead(
        &self,
        lister: &Lister,
        windows: &Windows,
        mut pending: Pending<Window, ConnectorResult<Answer>>,
    ) -> Option<String> {
        let cursor = windows.cursor()?;
        // A page no window stands at any more (none expected) is not kept for ever.
        pending.retain(|window| windows.0.contains(window));
        for window in windows.0[windows.readable()].iter().take(self.read_windows) {
            if !pending.holds(window) {
                pending.push(window.clone(), lister.ask(window.clone()));
            }
        }
        self.ahead.keep(lister.row.object, cursor.clone(), pending);
        Some(cursor)
    }

    /// One round of a windowed read, the call with `cursor`: `read_windows` slots side by
    /// side (the rate limiter paces their requests), each reading pages of a window in turn
    /// and, when its window ends, going on with the next window not started, until the round
    /// has taken [`PAGES_PER_SLOT`] pages a slot, the first answered, for as many slots as
    /// there are windows to read (at the end of a read, fewer windows than `read_windows`: a
    /// round of `read_windows` pages would take several round trips of each, and the sink
    /// would wait for them); less the records the read returned already. Each window's next
    /// page is asked for as soon as its last is in; the pages still on their way when the
    /// round is full are held for the next round (kept for the cursor this round hands out),
    /// so the round waits for no answer beyond its own and requests keep flowing between
    /// rounds. Each window read moves on, and is dropped when read to its end.
    async fn read_round(
        &self,
        row: &'static objects::PipedriveObject,
        mut windows: Windows,
        cursor: &str,
    ) -> ConnectorResult<Page> {
        let lister = self.lister(row);
        let pending = Mutex::new(self.ahead.take(row.object, cursor));
        let readable = windows.readable();
        let slots = self.read_windows.min(readable.len());
        let queue = Mutex::new(readable);
        let pages_left = AtomicUsize::new(slots * PAGES_PER_SLOT);
        // Set once the round has taken its last page: the slots stop waiting and hold theirs.
        let (full, full_now) = tokio::sync::watch::channel(false);
        let take_page =
            || match pages_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            {
                Ok(1) => {
                    full.send_replace(true);
                    true
                }
                Ok(_) => true,
                Err(_) => false,
            };
        let hold = |window: &Window, task| {
            pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(window.clone(), task);
        };
        let plan = &windows;
        let slot = || async {
            let mut full = full_now.clone();
            // Per window read: its index, its records, where it stands, and whether it ended.
            let mut read = Vec::new();
            loop {
                let Some(at) = queue.lock().unwrap_or_else(PoisonError::into_inner).next() else {
                    return Ok::<_, ConnectorError>(read);
                };
                let mut window = plan.0[at].clone();
                let held = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(&window);
                let mut asked = Some(held.unwrap_or_else(|| lister.ask(window.clone())));
                let mut records = Vec::new();
                let ended = loop {
                    let Some(mut task) = asked.take() else {
                        break true;
                    };
                    // The round takes the first pages answered; once it has all of them, the
                    // pages still on their way are held for the next round.
                    let answered = tokio::select! {
                        biased;
                        answer = &mut task => Some(answer),
                        _ = full.wait_for(|full| *full) => None,
                    };
                    let Some(answer) = answered else {
                        hold(&window, task);
                        break false;
                    };
                    let answer = answer.unwrap_or_else(|_| Err(lost_page(row)))?;
                    if !take_page() {
                        // Answered as the round filled up: held as it is.
                        hold(&window, tokio::spawn(std::future::ready(Ok(answer))));
                        break false;
                    }
                    if let Some(next) = &answer.listed.next {
                        // The page's records were mapped in the task that asked for it, so
                        // the slot goes on with the next page at once.
                        window.cursor = Some(next.clone());
                        asked = Some(lister.ask(window.clone()));
                    }
                    records.extend(answer.listed.records);
                };
                read.push((at, records, window.cursor, ended));
                if !ended {
                    return Ok(read);
                }
            }
        };
        let slots = futures::future::try_join_all((0..slots).map(|_| slot())).await?;
        let mut read: Vec<_> = slots.into_iter().flatten().collect();
        read.sort_by_key(|(at, ..)| *at);
        let mut records = Vec::new();
        let mut skipped = 0usize;
        let mut ended = Vec::new();
        self.ids_returned(row.object, |ids| {
            for (at, listed, cursor, end) in read {
                for record in listed {
                    match listed_id(&record) {
                        Some(id) if !ids.insert(id) => skipped += 1,
                        _ => records.push(record),
                    }
                }
                if end {
                    ended.push(at);
                } else {
                    windows.0[at].cursor = cursor;
                }
            }
            tracing::debug!(vendor = VENDOR, object = %row.object, records = records.len(), skipped, ended = ended.len(), id_set_bytes = ids.bytes(), "read a round of update-time windows");
        });
        for at in ended.into_iter().rev() {
            windows.0.remove(at);
        }
        let pending = pending.into_inner().unwrap_or_else(PoisonError::into_inner);
        let listed = Listed {
            records,
            next: self.keep_ahead(&lister, &windows, pending),
        };
        self.complete_page(row, listed).await
    }

    /// Runs `f` on the set of ids `object`'s full read has returned.
    fn ids_returned<T>(&self, object: ObjectType, f: impl FnOnce(&mut IdSet) -> T) -> T {
        let mut sets = self.returned.lock().unwrap_or_else(PoisonError::into_inner);
        f(sets.entry(object).or_default())
    }
}

/// A list page as answered: its records mapped (in the task that asked for it, see
/// [`Lister::ask`]) and the next page's cursor, and the `update_time`s of its first and last
/// records.
struct Answer {
    listed: Listed,
    /// The `update_time`s the page spans (what windows are planned from, for a page sorted by
    /// it); `None` when its first or last record has none readable.
    span: Option<Span>,
}

/// A list page's envelope, its records borrowed from the body.
#[derive(Deserialize)]
struct Listing<'a> {
    success: Option<bool>,
    #[serde(borrow)]
    data: Option<Vec<Tree<'a>>>,
    #[serde(borrow)]
    additional_data: Option<Additional<'a>>,
}

/// A list page's `additional_data`.
#[derive(Deserialize)]
struct Additional<'a> {
    #[serde(borrow)]
    next_cursor: Option<Text<'a>>,
}

/// What reads one object's list pages, cheap to clone into a task of its own.
#[derive(Clone)]
struct Lister {
    client: Arc<PipedriveClient>,
    row: &'static objects::PipedriveObject,
    /// The plain fields read: the standard table and the mapped fields.
    map: Arc<FieldMap>,
    page_size: u32,
}

impl Lister {
    /// One page of the list (`GET /api/v2/{path}`) at `cursor`, those updated within `window`
    /// (`updated_since`, `updated_until`; its cursor is not used), mapped to records, without
    /// the participants (see [`PipedriveSource::complete_page`]).
    async fn page(&self, cursor: Option<&str>, window: &Window) -> ConnectorResult<Listed> {
        Ok(self.fetch(cursor, window).await?.listed)
    }

    /// The answer of [`Lister::page`].
    async fn fetch(&self, cursor: Option<&str>, window: &Window) -> ConnectorResult<Answer> {
        Ok(self.fetch_sorted(cursor, window, &[]).await?.0)
    }

    /// The first page of the whole list sorted by `update_time` (`direction` `asc` or
    /// `desc`), and Pipedrive's clock when it answered.
    async fn fetch_by_update_time(
        &self,
        direction: &str,
    ) -> ConnectorResult<(Answer, Option<i64>)> {
        let order = [("sort_by", "update_time"), ("sort_direction", direction)];
        self.fetch_sorted(None, &Window::default(), &order).await
    }

    /// The `update_time`s `answer`, a page sorted by it, spans, and its records.
    fn span(&self, answer: &Answer) -> ConnectorResult<Span> {
        answer.span.ok_or_else(|| {
            self.malformed("a record sorted by `update_time` has no readable `update_time`")
        })
    }

    /// [`Lister::fetch`] in the order `order` gives (none: id order), and Pipedrive's clock
    /// when it answered.
    async fn fetch_sorted(
        &self,
        cursor: Option<&str>,
        window: &Window,
        order: &[(&str, &str)],
    ) -> ConnectorResult<(Answer, Option<i64>)> {
        let row = self.row;
        let since = window.since.map(rfc3339_second);
        let until = window.until.map(rfc3339_second);
        let path = format!("/api/v2/{}", row.path);
        let limit = self.page_size.to_string();
        let include = row.include_fields.join(",");
        let mut query = vec![("limit", limit.as_str())];
        if !include.is_empty() {
            query.push(("include_fields", include.as_str()));
        }
        if let Some(t) = &since {
            query.push(("updated_since", t));
        }
        if let Some(t) = &until {
            query.push(("updated_until", t));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        query.extend_from_slice(order);
        let (mut response, date) = self.client.get_response(&path, &query).await?;
        // Parsed borrowed from the body: a page of 500 records costs no allocation per name
        // and value, and is read once, here, cursor and records together.
        let listing: Listing<'_> = response.json_borrowed(VENDOR, &self.endpoint())?;
        if listing.success != Some(true) {
            return Err(self.malformed("a 2xx response without `success: true`"));
        }
        let data = listing
            .data
            .ok_or_else(|| self.malformed("`data` is not a list"))?;
        let next = listing
            .additional_data
            .and_then(|a| a.next_cursor)
            .filter(|c| !c.is_empty())
            .map(|c| c.0.into_owned());
        if next.is_some() && next.as_deref() == cursor {
            return Err(self
                .malformed("the next-page cursor equals the current one; paging would never end"));
        }
        let update_time = |record: Option<&Tree<'_>>| {
            record
                .and_then(|r| r.get("update_time"))
                .and_then(Tree::as_str)
                .and_then(ferry_core::model::parse_timestamp)
        };
        let span = match (update_time(data.first()), update_time(data.last())) {
            (Some(first), Some(last)) => Some(Span {
                earliest: first.min(last),
                latest: first.max(last),
                records: data.len(),
            }),
            _ => None,
        };
        let listed = self.records(&data, next)?;
        Ok((Answer { listed, span }, date))
    }

    /// The records of a page, mapped, with the next page's cursor.
    fn records(&self, data: &[Tree<'_>], next: Option<String>) -> ConnectorResult<Listed> {
        let mut records = Vec::with_capacity(data.len());
        for raw in data {
            let id = mapping::id_of(raw)
                .ok_or_else(|| self.malformed("a record without a numeric id"))?;
            // A reference holds the target's Pipedrive id, which is its source id.
            records.push(mapping::to_record(
                self.row,
                raw,
                id.to_string(),
                |_, id| id.to_string(),
                &self.map,
            ));
        }
        Ok(Listed { records, next })
    }

    /// The list's answer is not what Pipedrive documents.
    fn malformed(&self, detail: &str) -> ConnectorError {
        ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: self.endpoint(),
            detail: detail.to_owned(),
        }
    }

    /// The list's endpoint as errors name it.
    fn endpoint(&self) -> String {
        format!("GET /api/v2/{}", self.row.path)
    }

    /// Asks for the page at `window`'s cursor in a task of its own, so that it goes on while
    /// the caller does something else (a round ends, the engine takes it, the next begins).
    /// The task maps the page's records too: the body is parsed once, borrowed, and the
    /// mapping of one window's page runs beside the other windows' requests.
    fn ask(&self, window: Window) -> tokio::task::JoinHandle<ConnectorResult<Answer>> {
        let lister = self.clone();
        tokio::spawn(async move { lister.fetch(window.cursor.as_deref(), &window).await })
    }
}

/// A page asked ahead whose task ended without an answer (it panicked).
fn lost_page(row: &objects::PipedriveObject) -> ConnectorError {
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("GET /api/v2/{}", row.path),
        detail: "the request for a page ahead stopped without an answer".into(),
    }
}

/// The Pipedrive id of a listed record (read or not), if it is a number (source ids are).
fn listed_id(record: &Result<ferry_core::Record, ferry_core::RecordRejection>) -> Option<u64> {
    match record {
        Ok(r) => r.source_id.parse().ok(),
        Err(r) => r.source_id.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::{SecretRef, field};
    use ferry_sandbox::pipedrive::{Emulator, Options, TOKEN};
    use ferry_sandbox::seed::{Mess, generate};
    use secrecy::SecretString;

    /// A deal deleted between the list and its participants read (the page's read split in
    /// two, the delete sent through the emulator's API in between) is left out of the page;
    /// the others come with their contacts.
    #[tokio::test]
    async fn a_deal_deleted_before_its_participants_are_read_is_left_out() {
        let emulator = Emulator::new(Options {
            burst_limit: None,
            search_limit: None,
            daily_token_budget: None,
            ..Options::default()
        });
        let seeded = emulator.seed(&generate(40, 3, &Mess::none()));
        assert!(seeded.deals >= 3, "{seeded:?}");
        let running = ferry_sandbox::serve(
            "pipedrive",
            emulator.router(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )
        .await
        .expect("serve");
        let config = PipedriveConfig {
            base_url: Some(running.base_url.clone()),
            rate_limit_per_2s: Some(20_000),
            search_rate_limit_per_2s: Some(20_000),
            max_retries: Some(2),
            ..PipedriveConfig::new(SecretRef::in_memory(SecretString::from(TOKEN)))
        };
        let source = PipedriveSource::new(config, "source").expect("source");
        let row = objects::binding(ObjectType::DEALS).expect("deals");
        let listed = source
            .list_page(row, None, Window::default())
            .await
            .expect("list");
        let ids: Vec<String> = listed
            .records
            .iter()
            .map(|r| r.as_ref().expect("read").source_id.clone())
            .collect();
        assert_eq!(ids.len(), seeded.deals);
        let gone = ids[1].clone();
        let deleted = reqwest::Client::new()
            .delete(format!("{}/api/v2/deals/{gone}", running.base_url))
            .header("x-api-token", TOKEN)
            .send()
            .await
            .expect("delete");
        assert_eq!(deleted.status().as_u16(), 200);

        let page = source
            .complete_page(row, listed)
            .await
            .expect("the run goes on");
        let read: Vec<&str> = page.records.iter().map(|r| r.source_id.as_str()).collect();
        let expected: Vec<&str> = ids
            .iter()
            .map(String::as_str)
            .filter(|id| *id != gone)
            .collect();
        assert_eq!(read, expected);
        assert!(page.unreadable.is_empty());
        assert!(
            page.records
                .iter()
                .any(|r| matches!(r.get(field::CONTACTS), Some(ferry_core::Value::Links(l)) if !l.is_empty())),
            "the others keep their participants"
        );
    }
}
