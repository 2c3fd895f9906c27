//! Reading companies, contacts, deals and notes from HubSpot's v3 list endpoints, with the
//! links of deals and notes from v4 association batch reads.
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

use std::collections::{HashMap, HashSet};
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
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::config::HubspotConfig;
use crate::mapping::{self, ListPaging, ListResponse};
use crate::objects::{HubspotBinding, binding};

/// How far before HubSpot's clock at the start of a read the next incremental read starts:
/// search shows "new or updated records … after a few moments" (its index lags the writes),
/// and hosts' clocks drift. Changes inside the overlap are read twice; the second read of one
/// that did not change is skipped (`unchanged_skipped`).
pub const SYNC_OVERLAP: Duration = Duration::from_secs(300);

/// Records per search request: HubSpot's most ("The maximum number of supported objects per
/// page is 200").
const SEARCH_PAGE: usize = 200;

/// A HubSpot account as a [`Source`]: pages through `GET /crm/v3/objects/{type}` in id order.
pub struct HubspotSource {
    client: HubspotClient,
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
    single_status_read: AtomicBool,
    /// The channels the account has subscription types on, once asked (`None` inside: the
    /// account does not say, so every channel is read).
    channels: tokio::sync::OnceCell<Option<HashSet<String>>>,
}

impl HubspotSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.token`).
    pub fn new(config: HubspotConfig, key_prefix: &str) -> ConnectorResult<HubspotSource> {
        let (client, role) = HubspotClient::new(&config, key_prefix)?;
        Ok(HubspotSource {
            client,
            page_size: role.page_size,
            source_id_property: role.source_id_property,
            leave_out_copies: AtomicBool::new(false),
            fields: mapping::field_maps(),
            read_starts: Mutex::new(HashMap::new()),
            single_status_read: AtomicBool::new(false),
            channels: tokio::sync::OnceCell::new(),
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
        (map, properties, copies_of)
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

    /// The channels the account has subscription types on, asked once.
    async fn channels(&self) -> ConnectorResult<Option<&HashSet<String>>> {
        let channels = self
            .channels
            .get_or_try_init(|| crate::preferences::channels(&self.client))
            .await?;
        Ok(channels.as_ref())
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
    /// of an object whose links are read in batches.
    fn requests_per_record(&self, object: ObjectType) -> Option<f64> {
        let row = binding(object).ok()?;
        let links = if row.reads_links_in_batches() {
            row.references.len()
        } else {
            0
        };
        Some((1 + links) as f64 / f64::from(self.page_size.max(1)))
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
        let response: Json = self.client.search_json(&path, &body).await?;
        let total = response.get("total").and_then(Json::as_u64);
        tracing::debug!(vendor = VENDOR, %object, total, "counted records");
        Ok(total)
    }

    /// An opt-out HubSpot keeps on a channel the account has no subscription type on (SMS
    /// without the add-on) is held by nobody: 0, without reading. Any other is counted by
    /// reading every page (no search filter can find an SMS status).
    async fn count_opted_out(&self, object: ObjectType, field: &str) -> ConnectorResult<u64> {
        let row = binding(object)?;
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
        let (endpoint, mut response) = self.client.search_changes(&path, &body).await?;
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
        let mut page = page_of(row, &map, &answer, copies_of.as_deref());
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
        let map = self.fields.get(object);
        let mut properties: Vec<&str> = mapping::read_properties(&map);
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
        // The targets of the object's references, as associations listed with each record,
        // unless they are read in batches after the page.
        let batches = row.reads_links_in_batches();
        let associations = row
            .references
            .iter()
            .filter(|_| !batches)
            .map(|r| binding(r.target).map(|target| target.path))
            .collect::<ConnectorResult<Vec<_>>>()?
            .join(",");
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
            let mut page = read_records(row, &map, &endpoint, response, copies_of.as_deref())?;
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
                let page = read_records(row, &map, &endpoint, response, copies_of.as_deref())?;
                check_progress(&path, cursor, page.next.as_deref())?;
                return Ok(FetchedPage::ready(page));
            }
        };
        check_progress(&path, cursor, next.as_deref())?;
        Ok(FetchedPage {
            next: next.clone(),
            // The cursor skimmed is the page's: the one the pager follows.
            records: Box::new(move || {
                let page = read_records(row, &map, &endpoint, response, copies_of.as_deref())?;
                Ok(Page { next, ..page })
            }),
        })
    }
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
) -> ConnectorResult<Page> {
    let response: ListResponse<'_> = response.json_borrowed(VENDOR, endpoint)?;
    Ok(page_of(row, map, &response, copies_of))
}

/// The records of a list or search answer as a page, with the answer's cursor, leaving out
/// those with a value in the property `copies_of` names.
fn page_of(
    row: &HubspotBinding,
    map: &FieldMap,
    response: &ListResponse<'_>,
    copies_of: Option<&str>,
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
        page.push(VENDOR, row.object, mapping::to_record(row, map, raw));
    }
    if copies > 0 {
        tracing::debug!(vendor = VENDOR, object = %row.object, copies, "left out ferry's copies");
    }
    page.log_read(VENDOR, row.object);
    page
}
