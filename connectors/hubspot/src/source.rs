//! Reading companies, contacts, deals and notes from HubSpot's v3 list endpoints, with the
//! links of deals and notes from v4 association batch reads.
//!
//! Full reads are partitioned (`read_partitions`, on by default): the list reads up from the
//! lowest id while up to three search lanes read down from the highest, each search a keyset
//! query below the lowest id its lane read, side by side, until they meet (see `Reader`). The
//! list is one chain of requests, so with a vendor's latency it alone cannot reach HubSpot's
//! read limit; search has a limit of its own, exempt from the ten-second bucket.
//!
//! Incremental reads (`ferry sync`) go through CRM search (`POST
//! /crm/v3/objects/{type}/search`), 200 records a request, filtered on the last-modified
//! property (`lastmodifieddate` on contacts, `hs_lastmodifieddate` on the others):
//! `modified >= since AND modified <= readStart AND hs_object_id > lastId`, sorted by
//! `hs_object_id`. Every page is a new query from the last id read (keyset paging), so no query
//! ever pages past HubSpot's 10,000-result cap, a window whose records all share one timestamp
//! (bulk jobs stamp more than 10,000 at once) still ends, and records that change while the
//! read runs shift nothing (search's `after` is an offset: paging one query by it would skip a
//! record each time one left the results). The cursor is `readStart:lastId`, two numbers, no
//! customer data. `readStart` is HubSpot's clock when the sync point was taken, so changes
//! made during the read are left to the next sync, whose watermark is earlier. Search answers
//! carry no associations: every object's links come from v4 association batch reads.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::http::{BodyCap, HttpResponse, HttpStats, RateLimit};
use ferry_core::model::Link;
use ferry_core::{
    ConnectorError, ConnectorResult, DeletedPage, FetchedPage, FieldBinding, FieldMap, FieldMaps,
    ObjectType, Page, Source, Value, VendorField, Watermark,
};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::config::HubspotConfig;
use crate::mapping::{self, ListPaging, ListResponse};
use crate::objects::{HubspotBinding, binding};
use crate::preferences::{EmailType, SubscriptionTypes};

/// How far before HubSpot's clock at the start of a read the next incremental read starts:
/// search shows "new or updated records … after a few moments" (its index lags the writes),
/// and hosts' clocks drift. Changes inside the overlap are read twice; the second read of one
/// that did not change is skipped (`unchanged_skipped`).
pub const SYNC_OVERLAP: Duration = Duration::from_secs(300);

/// Records per search request: HubSpot's most ("The maximum number of supported objects per
/// page is 200").
const SEARCH_PAGE: usize = 200;

/// Filter groups (ORed) one search takes at most.
const MAX_FILTER_GROUPS: usize = 5;

/// A HubSpot account as a [`Source`]: pages through `GET /crm/v3/objects/{type}` in id order,
/// beside CRM search on full reads when `read_partitions` is on.
pub struct HubspotSource {
    client: Arc<HubspotClient>,
    page_size: u32,
    /// The source-id property a HubSpot sink writes (`source_id_property`).
    source_id_property: String,
    /// Whether to leave out records carrying it (a copy within one account).
    leave_out_copies: AtomicBool,
    /// The properties read per object: the standard table and the operator's mapped fields.
    fields: FieldMaps,
    /// HubSpot's clock when each object's sync point was taken: where its incremental read
    /// stops (`modified <= readStart`).
    read_starts: Mutex<HashMap<ObjectType, i64>>,
    /// Set once HubSpot refuses the batch read of subscription statuses (it needs Marketing
    /// Hub Enterprise): SMS opt-outs are then read one subscriber per request.
    single_status_read: Arc<AtomicBool>,
    /// The account's subscription types, once asked: the channels it has types on (none on
    /// SMS: no SMS status is read) and its email types, whose flags are read with contacts.
    types: tokio::sync::OnceCell<SubscriptionTypes>,
    /// Whether full reads are split between the list and search (`read_partitions`).
    read_partitions: bool,
    /// Per object, the partitioned read in progress, kept between pages with its requests in
    /// flight.
    readers: Mutex<HashMap<ObjectType, Reader>>,
}

impl HubspotSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.token`).
    pub fn new(config: HubspotConfig, key_prefix: &str) -> ConnectorResult<HubspotSource> {
        let (client, role) = HubspotClient::new(&config, key_prefix)?;
        Ok(HubspotSource {
            client: Arc::new(client),
            page_size: role.page_size,
            source_id_property: role.source_id_property,
            leave_out_copies: AtomicBool::new(false),
            fields: mapping::field_maps(),
            read_starts: Mutex::new(HashMap::new()),
            single_status_read: Arc::new(AtomicBool::new(false)),
            types: tokio::sync::OnceCell::new(),
            read_partitions: role.read_partitions,
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// The ten-second rate limit in force: the configured one, or what HubSpot announced since
    /// (any announced limit if none was configured; only a lower one if one was).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.client.rate_limit()
    }

    /// The properties a read of `object` asks for, and the source-id property whose records
    /// are left out (a copy within one account).
    fn read_properties(&self, object: ObjectType) -> (Arc<FieldMap>, Vec<String>, Option<String>) {
        let map = self.fields.get(object);
        let mut properties: Vec<String> = mapping::read_properties(&map)
            .into_iter()
            .map(str::to_owned)
            .collect();
        let copies_of = self
            .leave_out_copies
            .load(Ordering::Relaxed)
            .then(|| self.source_id_property.clone());
        if let Some(property) = &copies_of {
            properties.push(property.clone());
        }
        if binding(object).is_ok_and(|row| row.email_types.is_some()) {
            properties.extend(self.known_email_types().iter().map(|t| t.property.clone()));
        }
        (map, properties, copies_of)
    }

    /// The account's email subscription types for `row`'s records (none for an object without
    /// per-type opt-outs), asked once.
    async fn email_types(&self, row: &HubspotBinding) -> ConnectorResult<&[EmailType]> {
        if row.email_types.is_none() {
            return Ok(&[]);
        }
        Ok(&self.types().await?.email)
    }

    /// The email subscription types asked so far ([`Self::email_types`]); none before.
    fn known_email_types(&self) -> &[EmailType] {
        self.types.get().map_or(&[], |t| t.email.as_slice())
    }

    /// Where an incremental read of `object` begun now stops: HubSpot's clock when its sync
    /// point was taken, or now (one request) if none was.
    async fn read_start(&self, object: ObjectType) -> ConnectorResult<i64> {
        let known = self
            .read_starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&object)
            .copied();
        match known {
            Some(at) => Ok(at),
            None => self.client.server_time_ms().await,
        }
    }
}

impl HubspotSource {
    /// Sets the page's opt-outs HubSpot shows on no property (SMS), from the
    /// communication-preferences API.
    async fn read_opt_outs(&self, row: &HubspotBinding, page: &mut Page) -> ConnectorResult<()> {
        if page.records.is_empty() || row.read_through_preferences().next().is_none() {
            return Ok(());
        }
        let channels = self.channels().await?;
        let records = page.records.iter_mut().collect();
        crate::preferences::read_opt_outs(
            &self.client,
            row,
            records,
            &self.single_status_read,
            channels,
        )
        .await
    }

    /// The account's subscription types, asked once.
    async fn types(&self) -> ConnectorResult<&SubscriptionTypes> {
        self.types
            .get_or_try_init(|| crate::preferences::subscription_types(&self.client))
            .await
    }

    /// The channels the account has subscription types on (`None`: it does not say).
    async fn channels(&self) -> ConnectorResult<Option<&HashSet<String>>> {
        Ok(self.types().await?.channels.as_ref())
    }
}

/// The cursor of an incremental read: where the read stops (`readStart`, epoch ms) and the
/// last record id read. Two numbers: no customer data.
fn changes_cursor(path: &str, cursor: &str) -> ConnectorResult<(i64, u64)> {
    cursor
        .split_once(':')
        .and_then(|(until, last)| Some((until.parse().ok()?, last.parse().ok()?)))
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("POST {path}"),
            detail: "the cursor of an incremental read is not `<read start>:<last record id>`"
                .into(),
        })
}

#[async_trait]
impl Source for HubspotSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The account's portal id (`GET /account-info/v3/details`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// A list call per page of `page_size`, and one v4 association batch read per reference
    /// of an object whose links are read in batches. A partitioned read reads about half
    /// through search (see [`LIST_SHARE`]): a search per 200 records, and an association batch
    /// read per reference and search page (search answers carry no associations).
    fn requests_per_record(&self, object: ObjectType) -> Option<f64> {
        let row = binding(object).ok()?;
        let links = if row.reads_links_in_batches() {
            row.references.len()
        } else {
            0
        };
        let listed = (1 + links) as f64 / f64::from(self.page_size.max(1));
        if !self.read_partitions {
            return Some(listed);
        }
        let searched =
            (1 + row.references.len()) as f64 / partition_search_page(self.page_size) as f64;
        Some(LIST_SHARE * listed + (1.0 - LIST_SHARE) * searched)
    }

    /// The owners, active and archived (`GET /crm/v3/owners`; scope `crm.objects.owners.read`).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client, self.page_size).await
    }

    /// The deal pipelines (`GET /crm/v3/pipelines/deals`).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        let path = "/crm/v3/objects/contacts";
        let (endpoint, mut response) = self
            .client
            .get_ok_capped(
                path,
                &[("limit", "1"), ("archived", "false")],
                BodyCap::Small,
            )
            .await?;
        let _: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// One search with no filters and `limit: 1`, for its `total`: live records only, as the
    /// list reads them (search may lag just-written records by a short indexing delay, which
    /// is fine for a progress estimate). `Ok(None)` when the answer has no numeric `total`.
    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let path = format!("/crm/v3/objects/{}/search", binding(object)?.path);
        let body = json!({"filterGroups": [], "properties": ["hs_object_id"], "limit": 1});
        // Beside a partitioned read, through the limiter its searches take turns at, so that
        // no second holds one search too many; else with the short patience of estimates.
        let response: Json = if self.read_partitions {
            let (endpoint, response) = self.client.search_read(&path, &body).await?;
            response.json(VENDOR, &endpoint)?
        } else {
            self.client.search_json(&path, &body).await?
        };
        let total = response.get("total").and_then(Json::as_u64);
        tracing::debug!(vendor = VENDOR, %object, total, "counted records");
        Ok(total)
    }

    /// An opt-out HubSpot keeps on a channel the account has no subscription type on (SMS
    /// without the add-on) is held by nobody: 0, without reading. Any other is counted by
    /// reading every page (no search filter can find an SMS status).
    async fn count_opted_out(&self, object: ObjectType, field: &str) -> ConnectorResult<u64> {
        let row = binding(object)?;
        // Per-type opt-outs: one search for contacts with any type's flag set, where the
        // types fit in one search's filter groups (an OR of up to five).
        if row.email_types == Some(field) {
            let types = self.email_types(row).await?;
            if types.is_empty() {
                return Ok(0);
            }
            if types.len() <= MAX_FILTER_GROUPS {
                let path = format!("/crm/v3/objects/{}/search", row.path);
                let groups: Vec<Json> = types
                    .iter()
                    .map(|t| json!({"filters": [{"propertyName": t.property, "operator": "EQ", "value": "true"}]}))
                    .collect();
                let body =
                    json!({"filterGroups": groups, "properties": ["hs_object_id"], "limit": 1});
                // With the run's patience, not an estimate's: a failed count refuses the run.
                let (endpoint, response) = self.client.search_read(&path, &body).await?;
                let response: Json = response.json(VENDOR, &endpoint)?;
                if let Some(total) = response.get("total").and_then(Json::as_u64) {
                    return Ok(total);
                }
            }
        }
        if let Some(subscription) = row.read_through_preferences().find(|s| s.opt_out == field)
            && self
                .channels()
                .await?
                .is_some_and(|c| !c.contains(subscription.channel))
        {
            tracing::debug!(vendor = VENDOR, %object, channel = subscription.channel, "no subscription type on the channel: nobody opted out of it");
            return Ok(0);
        }
        ferry_core::connector::count_opted_out_by_reading(self, object, field).await
    }

    /// Lists ask for the source-id property (`source_id_property`, as the sink's table sets
    /// it: the same config type serves both) and drop the records that have one.
    fn leave_out_copies(&self) -> bool {
        self.leave_out_copies.store(true, Ordering::Relaxed);
        true
    }

    /// The properties API (`GET /crm/v3/properties/{objectType}`; scope
    /// `crm.schemas.{objectType}.read`).
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        crate::fields::describe(&self.client, object).await
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        self.fields
            .map(object, &mapping::standard_map(binding(object)?), bindings);
        Ok(())
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let fetched = self.fetch_page(object, cursor).await?;
        (fetched.records)()
    }

    /// One search of the records changed at or after `since` and at or before the read's
    /// start, after the cursor's last id, in id order, 200 at most, with their links from
    /// association batch reads (see the module's documentation).
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        let row = binding(object)?;
        let path = format!("/crm/v3/objects/{}/search", row.path);
        let (until, last_id) = match cursor {
            None => (self.read_start(object).await?, None),
            Some(cursor) => {
                let (until, last) = changes_cursor(&path, cursor)?;
                (until, Some(last))
            }
        };
        let types = self.email_types(row).await?;
        let (map, properties, copies_of) = self.read_properties(object);
        let mut filters = vec![
            json!({"propertyName": row.modified_property, "operator": "GTE",
                   "value": since.at_ms.to_string()}),
            json!({"propertyName": row.modified_property, "operator": "LTE",
                   "value": until.to_string()}),
        ];
        if let Some(last) = last_id {
            filters.push(
                json!({"propertyName": "hs_object_id", "operator": "GT", "value": last.to_string()}),
            );
        }
        let body = json!({
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            "properties": properties,
            "limit": SEARCH_PAGE,
        });
        let (endpoint, mut response) = self.client.search_read(&path, &body).await?;
        let answer: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        // The last id of the answer, whether or not its record is kept: the next query starts
        // after it. Ids must rise, or keyset paging could loop or skip.
        let mut last = last_id;
        for raw in &answer.results {
            let id: u64 = raw.id.parse().map_err(|_| ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: endpoint.clone(),
                detail: "a search result's id is not a number".into(),
            })?;
            if last.is_some_and(|l| id <= l) {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: "search results sorted by hs_object_id came out of order".into(),
                });
            }
            last = Some(id);
        }
        let more = answer.paging.as_ref().is_some_and(|p| p.next.is_some());
        let next = match last {
            Some(last) if more && !answer.results.is_empty() => Some(format!("{until}:{last}")),
            _ => None,
        };
        let mut page = page_of(row, &map, &answer, copies_of.as_deref(), types);
        drop(answer);
        page.next = next;
        if !row.references.is_empty() {
            read_links(&self.client, row, &mut page).await?;
        }
        self.read_opt_outs(row, &mut page).await?;
        tracing::debug!(vendor = VENDOR, %object, records = page.records.len(), "read changes");
        Ok(FetchedPage::ready(page))
    }

    /// `GET /crm/v3/objects/{type}?archived=true` (100 a page): only archived records, with
    /// `archivedAt`, which search never returns and which no time filter narrows, so every
    /// page is read and those archived before `since` are left out here. HubSpot keeps them
    /// [`RECYCLING_BIN_MS`] (90 days): a `since` older than that (by HubSpot's clock, asked on
    /// the first page) is [`DeletedPage::Lost`].
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        let row = binding(object)?;
        if cursor.is_none() && since.at_ms < self.client.server_time_ms().await? - RECYCLING_BIN_MS
        {
            tracing::info!(vendor = VENDOR, %object, "the last sync is older than the recycling bin's 90 days");
            return Ok(DeletedPage::Lost);
        }
        let path = format!("/crm/v3/objects/{}", row.path);
        let mut query = vec![
            ("limit", "100"),
            ("archived", "true"),
            ("properties", "hs_object_id"),
        ];
        if let Some(after) = cursor {
            query.push(("after", after));
        }
        let (endpoint, response) = self.client.get_ok(&path, &query).await?;
        let answer: ArchivedList = response.json(VENDOR, &endpoint)?;
        let next = answer.paging.and_then(|p| p.next).map(|n| n.after);
        check_progress(&path, cursor, next.as_deref())?;
        let ids = answer
            .results
            .into_iter()
            .filter(|r| {
                // An archive time HubSpot did not give, or not readably, keeps the id: removing
                // a record archived earlier is only repeated work.
                r.archived_at
                    .as_deref()
                    .and_then(ferry_core::model::parse_timestamp)
                    .is_none_or(|at| at >= since.at_ms)
            })
            .map(|r| r.id)
            .collect();
        Ok(DeletedPage::Ids { ids, next })
    }

    /// HubSpot's clock (the `Date` header of `GET /account-info/v3/details`) less
    /// [`SYNC_OVERLAP`]; the clock itself is where the read of `object` that follows stops.
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        binding(object)?;
        let now = self.client.server_time_ms().await?;
        self.read_starts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(object, now);
        Ok(Watermark::settled_before(now, SYNC_OVERLAP))
    }

    async fn fetch_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        let row = binding(object)?;
        let path = format!("/crm/v3/objects/{}", row.path);
        let split = match cursor {
            None => self.read_partitions.then(Split::default),
            Some(cursor) => Split::parse(&path, cursor)?,
        };
        if let Some(split) = split {
            return Ok(FetchedPage::ready(
                self.read_partitioned(row, cursor, split).await?,
            ));
        }
        let types = self.email_types(row).await?;
        let map = self.fields.get(object);
        let mut properties: Vec<&str> = mapping::read_properties(&map);
        properties.extend(types.iter().map(|t| t.property.as_str()));
        let copies_of = self
            .leave_out_copies
            .load(Ordering::Relaxed)
            .then(|| self.source_id_property.clone());
        if let Some(property) = &copies_of {
            properties.push(property);
        }
        let properties = properties.join(",");
        let limit = self.page_size.to_string();
        let mut query = vec![
            ("limit", limit.as_str()),
            ("archived", "false"),
            ("properties", properties.as_str()),
        ];
        let batches = row.reads_links_in_batches();
        let associations = listed_associations(row)?;
        if !associations.is_empty() {
            query.push(("associations", associations.as_str()));
        }
        if let Some(after) = cursor {
            query.push(("after", after));
        }
        let (endpoint, response) = self.client.get_ok(&path, &query).await?;
        // Opt-outs shown on no property (SMS) are read after the page, like links in batches.
        let preferences = row.read_through_preferences().next().is_some();
        if batches || preferences {
            let mut page =
                read_records(row, &map, &endpoint, response, copies_of.as_deref(), types)?;
            check_progress(&path, cursor, page.next.as_deref())?;
            if batches {
                read_links(&self.client, row, &mut page).await?;
            }
            self.read_opt_outs(row, &mut page).await?;
            return Ok(FetchedPage::ready(page));
        }
        // Skimming the answer for its cursor skips the records without reading them, a
        // fraction of the work; they are read later, while the next page is fetched. An answer
        // that cannot be skimmed (bytes that are not UTF-8, say) is read whole now.
        let next = match serde_json::from_slice::<ListPaging>(&response.body) {
            Ok(skimmed) => skimmed.next(),
            Err(_) => {
                let page =
                    read_records(row, &map, &endpoint, response, copies_of.as_deref(), types)?;
                check_progress(&path, cursor, page.next.as_deref())?;
                return Ok(FetchedPage::ready(page));
            }
        };
        check_progress(&path, cursor, next.as_deref())?;
        Ok(FetchedPage {
            next: next.clone(),
            // The cursor skimmed is the page's: the one the pager follows.
            // Only objects without per-type opt-outs get here (contacts read SMS opt-outs after
            // the page): no type flags to read.
            records: Box::new(move || {
                let page = read_records(row, &map, &endpoint, response, copies_of.as_deref(), &[])?;
                Ok(Page { next, ..page })
            }),
        })
    }
}

/// The targets of the object's references, as associations listed with each record on a list
/// page (comma-separated), unless they are read in batches after the page.
fn listed_associations(row: &HubspotBinding) -> ConnectorResult<String> {
    let batches = row.reads_links_in_batches();
    Ok(row
        .references
        .iter()
        .filter(|_| !batches)
        .map(|r| binding(r.target).map(|target| target.path))
        .collect::<ConnectorResult<Vec<_>>>()?
        .join(","))
}

/// Sets the link fields of a page's records (a deal's company and contacts, a note's parents)
/// from v4 association batch reads: one request per reference for the whole page (more only
/// for a record with over 500 associations of one object), never one per record.
async fn read_links(
    client: &HubspotClient,
    row: &HubspotBinding,
    page: &mut Page,
) -> ConnectorResult<()> {
    if page.records.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = page.records.iter().map(|r| r.source_id.clone()).collect();
    let position: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for reference in row.references {
        for read in crate::links::read(client, row, reference, &ids).await? {
            let Some(&i) = position.get(read.from.id.as_str()) else {
                continue;
            };
            let to = read.referenced(reference);
            let record = &mut page.records[i];
            if !reference.many {
                if let Some(to) = to.first() {
                    record.set(reference.canonical, Value::Reference((*to).to_owned()));
                }
                continue;
            }
            let links = to.iter().map(|to| Link {
                object: reference.target,
                id: (*to).to_owned(),
            });
            // A note's parents gather the links of three references.
            match record.fields.get_mut(reference.canonical) {
                Some(Value::Links(existing)) => existing.extend(links),
                _ => record.set(reference.canonical, Value::Links(links.collect())),
            }
        }
    }
    Ok(())
}

/// How long HubSpot keeps archived records (its recycling bin) before purging them: 90 days.
pub const RECYCLING_BIN_MS: i64 = 90 * 86_400_000;

/// A page of archived records: their ids and when each was archived.
#[derive(serde::Deserialize)]
struct ArchivedList {
    results: Vec<ArchivedRecord>,
    #[serde(default)]
    paging: Option<mapping::Paging>,
}

/// One archived record.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchivedRecord {
    #[serde(deserialize_with = "mapping::string_or_number")]
    id: String,
    #[serde(default)]
    archived_at: Option<String>,
}

/// Refuses a next-page cursor equal to the current one: paging would never end.
fn check_progress(path: &str, cursor: Option<&str>, next: Option<&str>) -> ConnectorResult<()> {
    if next.is_some() && next == cursor {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {path}"),
            detail: "the next-page cursor equals the current one; paging would never end".into(),
        });
    }
    Ok(())
}

/// Reads the records of a list answer into a page, with the answer's cursor, leaving out those
/// with a value in the property `copies_of` names (ferry's copies, in a same-account copy).
fn read_records(
    row: &HubspotBinding,
    map: &FieldMap,
    endpoint: &str,
    mut response: HttpResponse,
    copies_of: Option<&str>,
    types: &[EmailType],
) -> ConnectorResult<Page> {
    let response: ListResponse<'_> = response.json_borrowed(VENDOR, endpoint)?;
    Ok(page_of(row, map, &response, copies_of, types))
}

/// The records of a list or search answer as a page, with the answer's cursor, leaving out
/// those with a value in the property `copies_of` names; each record's per-type email opt-outs
/// from the flags of `types`.
fn page_of(
    row: &HubspotBinding,
    map: &FieldMap,
    response: &ListResponse<'_>,
    copies_of: Option<&str>,
    types: &[EmailType],
) -> Page {
    let mut page = Page {
        records: Vec::with_capacity(response.results.len()),
        next: response
            .paging
            .as_ref()
            .and_then(|p| p.next.as_ref())
            .map(|n| n.after.clone()),
        unreadable: Vec::new(),
    };
    let mut copies = 0usize;
    for raw in &response.results {
        if copies_of.is_some_and(|p| raw.property_text(p).is_some()) {
            copies += 1;
            continue;
        }
        let record = mapping::to_record(row, map, raw).map(|mut record| {
            if let Some(field) = row.email_types {
                crate::preferences::read_types(&mut record, field, raw, types);
            }
            record
        });
        page.push(VENDOR, row.object, record);
    }
    if copies > 0 {
        tracing::debug!(vendor = VENDOR, object = %row.object, copies, "left out ferry's copies");
    }
    page.log_read(VENDOR, row.object);
    page
}

/// The prefix of a partitioned full read's cursor; a list cursor never starts with it.
const SPLIT_PREFIX: &str = "split:";
/// Search lanes at most: each is a chain of requests (a query starts below the lowest id its
/// lane's last answer held), so one lane searches at most once a round trip; three keep
/// search at its five a second with round trips of up to 600 ms.
const SEARCH_LANES: usize = 3;
/// The share of a partitioned read the list reads, for `ferry plan`'s estimate of requests:
/// measured, 0.4 at 150 ms a request and 0.6 without added latency (HubSpot at 190 requests
/// per 10 s; `docs/performance.md`).
const LIST_SHARE: f64 = 0.5;
/// How many lanes the list reads as fast as, until both sides have read something to measure
/// it by: at 150 ms a request, a list page of 100 every 150 ms against a lane's share of
/// search's five pages of 200 a second among three lanes.
const LIST_LANES: f64 = 2.0;
/// How many lanes the list may count for: a list that reads a thousand times as fast as a lane
/// (an account without a ten-second limit) leaves search next to nothing.
const MAX_LIST_LANES: f64 = 1000.0;
/// List pages' worth of records a partitioned page holds at most (one side's page more at
/// worst): the engine stops between pages, so a stop lands within a few list pages.
const MAX_PAGE_LISTS: usize = 5;
/// Searches' worth of records (estimated) a range must have left to be split for another
/// lane: fewer end within a few requests anyway.
const MIN_SPLIT_SEARCHES: f64 = 3.0;

/// Records per search of a partitioned read: twice a list page (`page_size`), so that a
/// smaller page size keeps pages and checkpoints as fine; at most search's 200.
fn partition_search_page(page_size: u32) -> usize {
    SEARCH_PAGE.min(2 * page_size.max(1) as usize)
}

/// A search lane of a partitioned read: the ids from `lo` up to `floor` (exclusive) that it
/// has still to read, highest first. Above `floor`, up to the lane above, it has read
/// everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Lane {
    /// The lowest id of its range; `None` for the lowest lane while the list reads: its range
    /// then ends at the list's position, and the two meet.
    lo: Option<u64>,
    /// The lowest id it has read (`None`: nothing yet, and no upper bound).
    floor: Option<u64>,
}

/// Where a partitioned full read stands (see `docs/connectors/hubspot.md`). The list reads up
/// from the lowest id; search lanes read down, each request a new query below the lowest id
/// its lane returned. The cursor holds ids and the list's own cursor: no customer data.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Split {
    /// The highest id the list has returned (0: none yet); `None` once the list is done.
    last: Option<u64>,
    /// The list's cursor (`None`: its first page).
    after: Option<String>,
    /// The search lanes not done, lowest first.
    lanes: Vec<Lane>,
}

impl Default for Split {
    fn default() -> Self {
        Split {
            last: Some(0),
            after: None,
            lanes: vec![Lane {
                lo: None,
                floor: None,
            }],
        }
    }
}

impl Split {
    /// The split read `cursor` names; `Ok(None)` for a list cursor (a read begun unsplit).
    fn parse(path: &str, cursor: &str) -> ConnectorResult<Option<Split>> {
        let Some(rest) = cursor.strip_prefix(SPLIT_PREFIX) else {
            return Ok(None);
        };
        let malformed = || ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {path}"),
            detail:
                "the cursor of a partitioned read is not `split:<last id>:<lanes>:<list cursor>`"
                    .into(),
        };
        let number = |s: &str| -> ConnectorResult<Option<u64>> {
            match s {
                "" => Ok(None),
                s => s.parse().map(Some).map_err(|_| malformed()),
            }
        };
        // The list cursor comes last: it is HubSpot's and may hold anything.
        let mut parts = rest.splitn(3, ':');
        let (Some(last), Some(lanes), Some(after)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let last = match last {
            "-" => None,
            l => Some(number(l)?.ok_or_else(malformed)?),
        };
        let lanes = lanes
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|lane| {
                let (lo, floor) = lane.split_once('-').ok_or_else(malformed)?;
                Ok(Lane {
                    lo: number(lo)?,
                    floor: number(floor)?,
                })
            })
            .collect::<ConnectorResult<Vec<Lane>>>()?;
        // Only the lowest lane meets the list, and only while the list reads.
        let open = lanes.iter().filter(|l| l.lo.is_none()).count();
        if open != usize::from(last.is_some())
            || lanes.first().is_some_and(|l| l.lo.is_some() && open > 0)
        {
            return Err(malformed());
        }
        Ok(Some(Split {
            last,
            after: (!after.is_empty()).then(|| after.to_owned()),
            lanes,
        }))
    }

    /// The cursor that resumes the read here.
    fn cursor(&self) -> String {
        let text = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        let last = self.last.map_or_else(|| "-".to_owned(), |l| l.to_string());
        let lanes: Vec<String> = self
            .lanes
            .iter()
            .map(|l| format!("{}-{}", text(l.lo), text(l.floor)))
            .collect();
        let after = self.after.as_deref().unwrap_or_default();
        format!("{SPLIT_PREFIX}{last}:{}:{after}", lanes.join(","))
    }
}

/// The id of a record HubSpot returned, as a number.
fn numeric_id(endpoint: &str, id: &str) -> ConnectorResult<u64> {
    id.parse().map_err(|_| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: endpoint.to_owned(),
        detail: "a record id is not a number".into(),
    })
}

/// What every request of a partitioned read needs, shared by the requests in flight: those
/// outlive the `fetch_page` call that sent them, and are kept for the next.
struct Reads {
    client: Arc<HubspotClient>,
    row: &'static HubspotBinding,
    map: Arc<FieldMap>,
    properties: Vec<String>,
    /// The list's associations (`associations=`), empty when links are read in batches.
    associations: String,
    copies_of: Option<String>,
    email_types: Vec<EmailType>,
    /// The channels the account has subscription types on (`None`: it does not say).
    channels: Option<HashSet<String>>,
    single_status_read: Arc<AtomicBool>,
    page_size: u32,
    /// Records per search ([`partition_search_page`]).
    search_page: usize,
}

/// A list page, its links and opt-outs not yet read: the highest id it held and the cursor
/// after it.
struct Listed {
    page: Page,
    last: u64,
    after: Option<String>,
}

/// What one search request returned: its page (links and opt-outs not yet read), its lowest
/// id, and whether it was full.
struct SearchPage {
    page: Page,
    lowest: Option<u64>,
    full: bool,
}

/// A page whose links and opt-outs are read, and what it tells of where its side stands.
struct Part {
    page: Page,
    covered: Covered,
}

/// The ids a completed page answers for.
enum Covered {
    /// A list page: every id up to `last`, and the list's cursor after it.
    List { last: u64, after: Option<String> },
    /// A search page asked for ids above `above`: down to `lowest` if `full`, else all of them.
    Lane {
        above: u64,
        lowest: Option<u64>,
        full: bool,
    },
}

/// What a request in flight of a partitioned read came back with.
enum Event {
    /// A list page, links not read.
    Listed(ConnectorResult<Listed>),
    /// A search page of lane `lane` (links not read), for the ids above `above` it asked for.
    Searched {
        lane: u64,
        above: u64,
        answer: ConnectorResult<SearchPage>,
    },
    /// Page `seq` of the list (`lane` `None`) or a lane, links and opt-outs read: delivered in
    /// its side's order.
    Completed {
        lane: Option<u64>,
        seq: u64,
        part: ConnectorResult<Part>,
    },
}

/// Pages of one side (the list or a lane) read and completed, delivered in the order sent:
/// where a side stands is where its last delivered page left it.
#[derive(Default)]
struct Queue {
    sent: u64,
    next: u64,
    ready: BTreeMap<u64, Part>,
}

impl Queue {
    /// The number of the next page sent.
    fn send(&mut self) -> u64 {
        self.sent += 1;
        self.sent - 1
    }

    /// The next page in order, once completed.
    fn pop(&mut self) -> Option<Part> {
        let part = self.ready.remove(&self.next)?;
        self.next += 1;
        Some(part)
    }
}

/// The list side of a partitioned read. `last` and `after` are where its delivered pages
/// leave it (the cursor's); `asked_last` and `asked_after` where its answers do (the next
/// request's).
struct ListRun {
    last: u64,
    after: Option<String>,
    asked_last: u64,
    asked_after: Option<String>,
    fetching: bool,
    /// No more pages are asked for: the list ran out or reached the lowest lane.
    spent: bool,
    queue: Queue,
}

/// A search lane: the ids from `lo` (the list's position for the lowest lane, `lo` `None`,
/// while the list reads) up to `floor` (exclusive) are left for it to deliver; `asked` is
/// the lowest id its answers held, where its next search starts.
struct LaneRun {
    id: u64,
    lo: Option<u64>,
    floor: Option<u64>,
    asked: Option<u64>,
    searching: bool,
    /// No more searches: its answers reached the bottom of its range.
    spent: bool,
    /// Searched only once every other side is done: the ids above the first search's highest,
    /// which hold the records created during the read (the list alone reads those it reaches).
    waits: bool,
    /// Whether its first page, the read's first search, sets a waiting lane above it.
    tops: bool,
    queue: Queue,
}

type InFlight = FuturesUnordered<BoxFuture<'static, Event>>;

/// A partitioned full read in progress: the list and the search lanes, each with its next
/// request in flight as soon as its last answered (links and opt-outs read beside), pages
/// delivered as they complete. It lives across `fetch_page` calls: the page returned carries
/// the cursor of everything delivered, and the next call with that cursor goes on with the
/// requests already in flight (a call with another cursor starts afresh from it).
struct Reader {
    object: ObjectType,
    /// The cursor of the page last returned.
    cursor: String,
    reads: Arc<Reads>,
    list: Option<ListRun>,
    /// Lowest first; the lowest is the open one (`lo` `None`) while the list reads.
    lanes: Vec<LaneRun>,
    next_lane: u64,
    in_flight: InFlight,
    /// Records delivered by the list and by search, to share ranges out by how fast each
    /// reads.
    listed: u64,
    searched: u64,
    /// Records per id where search pages came back full (HubSpot's ids need not be dense):
    /// the records they held and the ids they spanned.
    dense_records: u64,
    dense_ids: u64,
}

impl Reader {
    /// A read resumed where `split` stands.
    fn new(object: ObjectType, reads: Arc<Reads>, split: Split) -> Reader {
        let list = split.last.map(|last| ListRun {
            last,
            after: split.after.clone(),
            asked_last: last,
            asked_after: split.after.clone(),
            fetching: false,
            spent: false,
            queue: Queue::default(),
        });
        let lanes: Vec<LaneRun> = split
            .lanes
            .iter()
            .zip(0..)
            .map(|(lane, id)| LaneRun {
                id,
                lo: lane.lo,
                floor: lane.floor,
                asked: lane.floor,
                searching: false,
                spent: false,
                // Unread and unbounded above: the read's first search (no `lo`), or the ids
                // above it.
                waits: lane.lo.is_some() && lane.floor.is_none(),
                tops: lane.lo.is_none() && lane.floor.is_none(),
                queue: Queue::default(),
            })
            .collect();
        Reader {
            object,
            cursor: split.cursor(),
            reads,
            list,
            next_lane: lanes.len() as u64,
            lanes,
            in_flight: FuturesUnordered::new(),
            listed: 0,
            searched: 0,
            dense_records: 0,
            dense_ids: 0,
        }
    }

    /// Where the read stands: `None` once every side is done.
    fn split(&self) -> Option<String> {
        if self.list.is_none() && self.lanes.is_empty() {
            return None;
        }
        let split = Split {
            last: self.list.as_ref().map(|l| l.last),
            after: self.list.as_ref().and_then(|l| l.after.clone()),
            lanes: self
                .lanes
                .iter()
                .map(|l| Lane {
                    lo: l.lo,
                    floor: l.floor,
                })
                .collect(),
        };
        Some(split.cursor())
    }

    /// The next page: whatever is delivered once at least one page has moved the read on
    /// (more if more have completed by then), with the cursor of all that was delivered.
    async fn next_page(&mut self) -> ConnectorResult<Page> {
        let mut page = Page::default();
        // What the last page left queued once it was full goes first.
        let sides: Vec<Option<u64>> = std::iter::once(None)
            .chain(self.lanes.iter().map(|l| Some(l.id)))
            .collect();
        for side in sides {
            self.deliver(side, &mut page);
        }
        self.ask();
        loop {
            let next = self.split();
            let Some(next) = next else { break };
            if self.full(&page) && next != self.cursor {
                break;
            }
            let event = if next != self.cursor {
                match self.in_flight.next().now_or_never() {
                    Some(Some(event)) => event,
                    _ => break,
                }
            } else {
                self.in_flight
                    .next()
                    .await
                    .ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET /crm/v3/objects/{}", self.reads.row.path),
                        detail: "a partitioned read has nothing left to ask yet has not ended"
                            .into(),
                    })?
            };
            self.handle(event, &mut page)?;
            self.ask();
        }
        page.records
            .sort_by_key(|r| r.source_id.parse::<u64>().unwrap_or(u64::MAX));
        page.next = self.split();
        if let Some(next) = &page.next {
            self.cursor.clone_from(next);
        }
        tracing::debug!(vendor = VENDOR, object = %self.object, records = page.records.len(), lanes = self.lanes.len(), list = self.list.is_some(), "read a partitioned page");
        Ok(page)
    }

    /// Whether `page` holds all a page may: pages beyond it stay queued for the next.
    fn full(&self, page: &Page) -> bool {
        page.records.len() + page.unreadable.len() >= MAX_PAGE_LISTS * self.reads.page_size as usize
    }

    /// Sends each side's next request where it has none in flight and has more to read.
    fn ask(&mut self) {
        let open = self.lanes.first().filter(|l| l.lo.is_none());
        let ceiling = open.and_then(|l| l.asked);
        if let Some(list) = &mut self.list
            && !list.fetching
            && !list.spent
        {
            if ceiling.is_some_and(|c| list.asked_last.saturating_add(1) >= c) {
                list.spent = true;
            } else {
                list.fetching = true;
                let (reads, after, last) = (
                    Arc::clone(&self.reads),
                    list.asked_after.clone(),
                    list.asked_last,
                );
                self.in_flight
                    .push(async move { Event::Listed(reads.list_page(after, last).await) }.boxed());
            }
        }
        self.widen();
        let list_at = self.list.as_ref().map_or(0, |l| l.asked_last);
        let last_left = self.list.is_none() && self.lanes.iter().all(|l| l.waits);
        for lane in &mut self.lanes {
            lane.waits &= !last_left;
            if lane.searching || lane.spent || lane.waits {
                continue;
            }
            let above = lane.lo.map_or(list_at, |lo| lo.saturating_sub(1));
            if lane.asked.is_some_and(|a| a <= above.saturating_add(1)) {
                lane.spent = true;
                continue;
            }
            lane.searching = true;
            let (reads, id, below) = (Arc::clone(&self.reads), lane.id, lane.asked);
            self.in_flight.push(
                async move {
                    let answer = reads.search(above, below).await;
                    Event::Searched {
                        lane: id,
                        above,
                        answer,
                    }
                }
                .boxed(),
            );
        }
    }

    /// Splits the range with the most left to read per reader while fewer than
    /// [`SEARCH_LANES`] lanes search: a lane that ends takes over part of another's range, so
    /// that no lane idles while another has much left. The list reads the lowest lane's range
    /// too, as fast as it has read so far against a lane, so that range counts for less and
    /// keeps most of its width.
    fn widen(&mut self) {
        // A split is for good: a fixed lane's range is read by search alone. So the first waits
        // until search has brought two pages, by when the list has shown its pace: against an
        // account whose ten-second window lets the list read hundreds of pages a second, an
        // early split left half the object to search's five a second.
        if self.searched < 2 * self.reads.search_page as u64 {
            return;
        }
        let list_lanes = if self.listed > 0 {
            (self.listed as f64 * SEARCH_LANES as f64 / self.searched as f64)
                .clamp(0.25, MAX_LIST_LANES)
        } else {
            LIST_LANES
        };
        let list_at = self.list.as_ref().map_or(0, |l| l.asked_last);
        let list_known = self.list.as_ref().is_none_or(|l| l.queue.sent > 0);
        let density = match self.dense_ids {
            0 => 1.0,
            ids => self.dense_records as f64 / ids as f64,
        };
        while self.lanes.iter().filter(|l| !l.spent && !l.waits).count() < SEARCH_LANES {
            let widest = self
                .lanes
                .iter()
                .enumerate()
                // The open lane's range starts where the list stands: unknown (ids need not start
                // near 0) until the list's first answer.
                .filter(|(_, l)| !l.spent && !l.waits && (l.lo.is_some() || list_known))
                .filter_map(|(i, l)| {
                    let lo = l.lo.unwrap_or(list_at.saturating_add(1));
                    let span = l.asked?.saturating_sub(lo);
                    let readers = if l.lo.is_none() {
                        1.0 + list_lanes
                    } else {
                        1.0
                    };
                    Some((i, span, span as f64 / readers))
                })
                .filter(|&(_, span, _)| {
                    span as f64 * density >= MIN_SPLIT_SEARCHES * self.reads.search_page as f64
                })
                .max_by(|a, b| a.2.total_cmp(&b.2));
            let Some((i, span, _)) = widest else { return };
            // The lane split keeps the top, where its search in flight reads: a half of a
            // fixed lane's range, a share of the open one's that leaves the list and the new
            // open lane as long a read below.
            let readers = if self.lanes[i].lo.is_none() {
                2.0 + list_lanes
            } else {
                2.0
            };
            let Some(asked) = self.lanes[i].asked else {
                return;
            };
            let at = asked - ((span as f64 / readers) as u64).max(1);
            let lower = LaneRun {
                id: self.next_lane,
                lo: self.lanes[i].lo,
                floor: Some(at),
                asked: Some(at),
                searching: false,
                spent: false,
                waits: false,
                tops: false,
                queue: Queue::default(),
            };
            self.next_lane += 1;
            self.lanes[i].lo = Some(at);
            self.lanes.insert(i, lower);
        }
    }

    /// Takes in one answer: sends a page on for its links and opt-outs, or delivers the
    /// completed pages now in order into `page`.
    fn handle(&mut self, event: Event, page: &mut Page) -> ConnectorResult<()> {
        match event {
            Event::Listed(answer) => {
                let Some(list) = &mut self.list else {
                    return Ok(());
                };
                list.fetching = false;
                let listed = answer?;
                list.asked_last = listed.last;
                list.asked_after.clone_from(&listed.after);
                if listed.after.is_none() {
                    // Nothing above the list's last id: the lowest lane has nothing to search.
                    list.spent = true;
                    if let Some(open) = self.lanes.first_mut().filter(|l| l.lo.is_none()) {
                        open.spent = true;
                    }
                }
                let seq = list.queue.send();
                let reads = Arc::clone(&self.reads);
                let covered = Covered::List {
                    last: listed.last,
                    after: listed.after,
                };
                let links = self.reads.row.reads_links_in_batches();
                self.in_flight.push(
                    async move {
                        let part = reads.complete(listed.page, links).await;
                        Event::Completed {
                            lane: None,
                            seq,
                            part: part.map(|page| Part { page, covered }),
                        }
                    }
                    .boxed(),
                );
            }
            Event::Searched {
                lane,
                above,
                answer,
            } => {
                let Some(run) = self.lanes.iter_mut().find(|l| l.id == lane) else {
                    return Ok(());
                };
                run.searching = false;
                let found = answer?;
                if let (true, Some(below), Some(lowest)) = (found.full, run.asked, found.lowest) {
                    self.dense_records += self.reads.search_page as u64;
                    self.dense_ids += below.saturating_sub(lowest);
                }
                // Not full: the lane's range is read down to the bottom it asked for.
                run.asked = match found.full {
                    true => found.lowest,
                    false => Some(above.saturating_add(1)),
                };
                run.spent |= !found.full;
                let seq = run.queue.send();
                let reads = Arc::clone(&self.reads);
                let covered = Covered::Lane {
                    above,
                    lowest: found.lowest,
                    full: found.full,
                };
                let links = !self.reads.row.references.is_empty();
                self.in_flight.push(
                    async move {
                        let part = reads.complete(found.page, links).await;
                        Event::Completed {
                            lane: Some(lane),
                            seq,
                            part: part.map(|page| Part { page, covered }),
                        }
                    }
                    .boxed(),
                );
            }
            Event::Completed { lane, seq, part } => {
                let queue = match lane {
                    None => self.list.as_mut().map(|l| &mut l.queue),
                    Some(id) => self
                        .lanes
                        .iter_mut()
                        .find(|l| l.id == id)
                        .map(|l| &mut l.queue),
                };
                let Some(queue) = queue else {
                    return Ok(());
                };
                queue.ready.insert(seq, part?);
                self.deliver(lane, page);
            }
        }
        Ok(())
    }

    /// Delivers the side's completed pages in order until `page` is full: the records nobody
    /// delivered yet go into `page`, and the side moves on (or ends, with the side it met).
    /// What is left waits in the side's queue for the next page.
    fn deliver(&mut self, lane: Option<u64>, page: &mut Page) {
        loop {
            if self.full(page) {
                return;
            }
            let part = match lane {
                None => self.list.as_mut().and_then(|l| l.queue.pop()),
                Some(id) => self
                    .lanes
                    .iter_mut()
                    .find(|l| l.id == id)
                    .and_then(|l| l.queue.pop()),
            };
            let Some(Part {
                page: part,
                covered,
            }) = part
            else {
                return;
            };
            match covered {
                Covered::List { last, after } => {
                    // The lowest lane delivered every id from its floor up.
                    let open = self.lanes.first().filter(|l| l.lo.is_none());
                    let (has_open, ceiling) = (open.is_some(), open.and_then(|l| l.floor));
                    self.listed += take(page, part, |id| ceiling.is_none_or(|c| id < c));
                    let met =
                        after.is_none() || ceiling.is_some_and(|c| last.saturating_add(1) >= c);
                    if met {
                        self.list = None;
                        if has_open {
                            self.lanes.remove(0);
                        }
                        return;
                    }
                    if let Some(list) = &mut self.list {
                        list.last = last;
                        list.after = after;
                    }
                }
                Covered::Lane {
                    above,
                    lowest,
                    full,
                } => {
                    let Some(i) = self.lanes.iter().position(|l| Some(l.id) == lane) else {
                        return;
                    };
                    let open = self.lanes[i].lo.is_none();
                    // The list delivered every id up to its last.
                    let lower = match self.lanes[i].lo {
                        Some(lo) => lo,
                        None => self.list.as_ref().map_or(0, |l| l.last).saturating_add(1),
                    };
                    if self.lanes[i].tops {
                        // Records created from now on get ids above the highest there is.
                        self.lanes[i].tops = false;
                        let ids = part.records.iter().map(|r| r.source_id.as_str());
                        let ids = ids.chain(part.unreadable.iter().map(|r| r.source_id.as_str()));
                        if let Some(top) = ids.filter_map(|id| id.parse::<u64>().ok()).max() {
                            self.lanes.push(LaneRun {
                                id: self.next_lane,
                                lo: Some(top.saturating_add(1)),
                                floor: None,
                                asked: None,
                                searching: false,
                                spent: false,
                                waits: true,
                                tops: false,
                                queue: Queue::default(),
                            });
                            self.next_lane += 1;
                        }
                    }
                    self.searched += take(page, part, |id| id >= lower);
                    let covered = if full {
                        lowest.unwrap_or(lower)
                    } else {
                        above.saturating_add(1)
                    };
                    let floor = covered.max(lower);
                    self.lanes[i].floor = Some(floor);
                    if floor <= lower {
                        self.lanes.remove(i);
                        if open {
                            self.list = None;
                        }
                        return;
                    }
                }
            }
        }
    }
}

/// Moves the records of `part` whose ids `keep` into `page`; how many.
fn take(page: &mut Page, part: Page, keep: impl Fn(u64) -> bool) -> u64 {
    let kept = |id: &str| id.parse::<u64>().is_ok_and(&keep);
    let before = page.records.len() + page.unreadable.len();
    page.records
        .extend(part.records.into_iter().filter(|r| kept(&r.source_id)));
    page.unreadable
        .extend(part.unreadable.into_iter().filter(|r| kept(&r.source_id)));
    (page.records.len() + page.unreadable.len() - before) as u64
}

impl Reads {
    /// One list page from `after`, whose ids must rise above `last` (a partitioned read
    /// relies on the list's id order).
    async fn list_page(&self, after: Option<String>, last: u64) -> ConnectorResult<Listed> {
        let path = format!("/crm/v3/objects/{}", self.row.path);
        let properties = self.properties.join(",");
        let limit = self.page_size.to_string();
        let mut query = vec![
            ("limit", limit.as_str()),
            ("archived", "false"),
            ("properties", properties.as_str()),
        ];
        if !self.associations.is_empty() {
            query.push(("associations", self.associations.as_str()));
        }
        if let Some(after) = &after {
            query.push(("after", after.as_str()));
        }
        let (endpoint, mut response) = self.client.get_ok(&path, &query).await?;
        let answer: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        let mut highest = last;
        for raw in &answer.results {
            let id = numeric_id(&endpoint, &raw.id)?;
            if id <= highest {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint,
                    detail: "the list answered out of id order, which a partitioned read \
                             relies on (set read_partitions = false)"
                        .into(),
                });
            }
            highest = id;
        }
        let mut page = page_of(
            self.row,
            &self.map,
            &answer,
            self.copies_of.as_deref(),
            &self.email_types,
        );
        drop(answer);
        check_progress(&path, after.as_deref(), page.next.as_deref())?;
        let after = page.next.take();
        Ok(Listed {
            page,
            last: highest,
            after,
        })
    }

    /// One search of the records with ids above `above` and below `below`, highest first, 200
    /// at most.
    async fn search(&self, above: u64, below: Option<u64>) -> ConnectorResult<SearchPage> {
        let path = format!("/crm/v3/objects/{}/search", self.row.path);
        let mut filters = Vec::new();
        if above > 0 {
            filters.push(
                json!({"propertyName": "hs_object_id", "operator": "GT", "value": above.to_string()}),
            );
        }
        if let Some(below) = below {
            filters.push(
                json!({"propertyName": "hs_object_id", "operator": "LT", "value": below.to_string()}),
            );
        }
        let groups = if filters.is_empty() {
            json!([])
        } else {
            json!([{ "filters": filters }])
        };
        let body = json!({
            "filterGroups": groups,
            "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
            "properties": self.properties,
            "limit": self.search_page,
        });
        let (endpoint, mut response) = self.client.search_read(&path, &body).await?;
        let answer: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        // Ids must fall, inside the bounds asked for, or the read could skip or repeat.
        let mut lowest: Option<u64> = None;
        for raw in &answer.results {
            let id = numeric_id(&endpoint, &raw.id)?;
            let in_order = lowest.is_none_or(|l| id < l);
            if !in_order || id <= above || below.is_some_and(|b| id >= b) {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint,
                    detail: "search results sorted by hs_object_id came out of order or out of \
                             the range asked for"
                        .into(),
                });
            }
            lowest = Some(id);
        }
        let full = answer.results.len() >= self.search_page
            && answer.paging.as_ref().is_some_and(|p| p.next.is_some());
        let mut page = page_of(
            self.row,
            &self.map,
            &answer,
            self.copies_of.as_deref(),
            &self.email_types,
        );
        page.next = None;
        Ok(SearchPage { page, lowest, full })
    }

    /// Reads a page's links (`links`: search answers carry no associations, and deals' and
    /// notes' are read in batches) and its opt-outs shown on no property.
    async fn complete(&self, mut page: Page, links: bool) -> ConnectorResult<Page> {
        if links {
            read_links(&self.client, self.row, &mut page).await?;
        }
        if !page.records.is_empty() && self.row.read_through_preferences().next().is_some() {
            let records = page.records.iter_mut().collect();
            crate::preferences::read_opt_outs(
                &self.client,
                self.row,
                records,
                &self.single_status_read,
                self.channels.as_ref(),
            )
            .await?;
        }
        Ok(page)
    }
}

impl HubspotSource {
    /// The next page of a partitioned full read of `row`'s object from `split` (`cursor`, as
    /// the engine passed it): the read in progress goes on if it returned that cursor last.
    async fn read_partitioned(
        &self,
        row: &'static HubspotBinding,
        cursor: Option<&str>,
        split: Split,
    ) -> ConnectorResult<Page> {
        let kept = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&row.object)
            .filter(|r| cursor.is_some_and(|c| c == r.cursor));
        let mut reader = match kept {
            Some(reader) => reader,
            None => Reader::new(row.object, Arc::new(self.reads(row).await?), split),
        };
        let page = reader.next_page().await?;
        if page.next.is_some() {
            self.readers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(row.object, reader);
        }
        Ok(page)
    }

    /// What the requests of a partitioned read of `row`'s object need.
    async fn reads(&self, row: &'static HubspotBinding) -> ConnectorResult<Reads> {
        let email_types = self.email_types(row).await?.to_vec();
        let channels = if row.read_through_preferences().next().is_some() {
            self.channels().await?.cloned()
        } else {
            None
        };
        let (map, properties, copies_of) = self.read_properties(row.object);
        Ok(Reads {
            client: Arc::clone(&self.client),
            row,
            map,
            properties,
            associations: listed_associations(row)?,
            copies_of,
            email_types,
            channels,
            single_status_read: Arc::clone(&self.single_status_read),
            page_size: self.page_size,
            search_page: partition_search_page(self.page_size),
        })
    }
}
