//! The Salesforce source: reads Accounts, Contacts, Opportunities and Notes with SOQL, in `Id`
//! order, page by page through the query's `nextRecordsUrl`. A page of opportunities comes with
//! their contacts: one `OpportunityContactRole` query for the whole page (`WHERE OpportunityId
//! IN (…)`). A note's one parent is its `ParentId`, a link to a deal, contact or company told
//! apart by the id's key prefix.
//!
//! `/query` (not `/queryAll`) leaves deleted and archived records out. The cursor handed to the
//! pipeline is the `nextRecordsUrl` and the `Id` of the last record read, separated by a space;
//! the URL is only followed when it is a query-locator path on the org's instance (see
//! [`crate::client`]). Salesforce keeps a query's locator for two days, then answers
//! `INVALID_QUERY_LOCATOR`: a read resumed from an older checkpoint then goes on with a new
//! query for the records after that `Id` (`WHERE Id > '…' ORDER BY Id`), so nothing is read
//! twice or skipped.
//!
//! Incremental reads (`ferry sync`) query `WHERE SystemModstamp >= <watermark> ORDER BY
//! SystemModstamp, Id`: `SystemModstamp` moves on every change, by a user or by automation
//! (`LastModifiedDate` only on users' changes). Deals then go on with the opportunities whose
//! contact roles changed (`queryAll` on `OpportunityContactRole`, deleted roles included),
//! since a role's change need not move its opportunity's stamp. The sync point is the org's
//! clock, the `Date` header of a `GET …/limits`, less [`SYNC_OVERLAP`].
//!
//! Deletions (`[sync] deletes`) come from getDeleted, `GET …/sobjects/{sobject}/deleted/?start=
//! &end=`, for every object read (classic `Note` supports it, unlike `ContentNote`). It covers
//! the Recycle Bin's 15 days, less when the bin was emptied: when `earliestDateAvailable` is
//! later than the watermark, or the watermark is older than 15 days, deletions were lost and
//! the engine compares id sets instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use ferry_core::currency::OrgCurrency;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, VendorField};
use ferry_core::http::BodyCap;
use ferry_core::http::HttpStats;
use ferry_core::{
    ConnectorError, ConnectorResult, DeletedPage, FetchedPage, IdPage, ObjectType, Page, Source,
    Watermark,
};
use reqwest::Method;

use crate::VENDOR;

/// The field every change of a record moves, by a user or by automation.
const MODSTAMP: &str = "SystemModstamp";
use crate::client::{Call, Client, QueryResponse};
use crate::config::{SalesforceConfig, Settings};
use crate::links::ROLE_SOBJECT;
use crate::mapping::{self, ID_FIELD, SalesforceLinks};

/// How far before the org's clock at the start of a read the next incremental read starts:
/// `SystemModstamp` is stamped when a transaction starts and becomes visible when it commits
/// (long Apex transactions, bulk jobs, a workflow's field updates), and hosts' clocks drift.
/// Changes inside the overlap are read twice; the second read of one that did not change is
/// skipped (`unchanged_skipped`).
pub const SYNC_OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// The cursor of the second part of an incremental read of deals: the opportunities whose
/// contact roles changed (followed by the role query's `nextRecordsUrl` once it has one).
const ROLES_CURSOR: &str = "roles";

/// How far back getDeleted reaches: the Recycle Bin keeps deletes for 15 days.
pub const DELETED_WINDOW_MS: i64 = 15 * 86_400_000;

/// A getDeleted answer; `deletedDate` is not needed (the window is the watermark's).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeletedAnswer {
    deleted_records: Vec<DeletedRecord>,
    earliest_date_available: Option<String>,
}

/// One record of a getDeleted answer.
#[derive(serde::Deserialize)]
struct DeletedRecord {
    id: String,
}

/// Whether `id` has the shape of a Salesforce record id (15 or 18 letters and digits), so it
/// can go into a query as a literal.
fn is_record_id(id: &str) -> bool {
    matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether Salesforce refused a query locator because it expired (or was never issued).
fn is_expired_locator(e: &ConnectorError) -> bool {
    matches!(e, ConnectorError::Status { status: 400, detail, .. } if detail.contains("INVALID_QUERY_LOCATOR"))
}

/// A Salesforce org as a source.
pub struct SalesforceSource {
    settings: Settings,
    client: Client,
    /// The standard field maps, plus the fields the engine mapped.
    fields: FieldMaps,
    /// Whether the org keeps every amount in one currency.
    currency: OrgCurrency,
    /// Each sObject's describe, read once: the run's field plan (`Source::describe`) reads
    /// it before the run, and the first page's respelling takes it from here.
    described: Mutex<HashMap<&'static str, Arc<crate::fields::Describe>>>,
}

impl SalesforceSource {
    /// Builds the source from its config (no I/O: the token is fetched on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `source.client_secret`.
    pub fn new(config: SalesforceConfig, key_prefix: &str) -> ConnectorResult<SalesforceSource> {
        let (settings, client) = Client::build(&config, key_prefix)?;
        Ok(SalesforceSource {
            settings,
            client,
            fields: mapping::standard_maps(),
            currency: OrgCurrency::default(),
            described: Mutex::default(),
        })
    }

    /// `sobject`'s describe, asked of Salesforce the first time only (fields do not change
    /// within a run, and a second describe would cost a call and a round trip).
    async fn described(
        &self,
        sobject: &'static str,
    ) -> ConnectorResult<Arc<crate::fields::Describe>> {
        let kept = |s: &Self| {
            let described = s.described.lock().unwrap_or_else(PoisonError::into_inner);
            described.get(sobject).map(Arc::clone)
        };
        if let Some(described) = kept(self) {
            return Ok(described);
        }
        let described = Arc::new(crate::fields::describe(&self.client, sobject).await?);
        self.described
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(sobject, Arc::clone(&described));
        Ok(described)
    }

    /// The org's one currency (`None`: multiple), from the Opportunity describe the run's
    /// field plan read.
    async fn single_currency(&self) -> ConnectorResult<Option<String>> {
        let opportunity = self.described("Opportunity").await?;
        crate::currency::single_by(&self.client, &opportunity).await
    }

    /// How many access tokens this source has fetched (1 unless sessions expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    /// The SOQL that reads every live record of `object`, in `Id` order.
    fn read_query(&self, object: ObjectType) -> ConnectorResult<String> {
        let row = mapping::binding(object)?;
        Ok(format!(
            "SELECT {} FROM {} ORDER BY {ID_FIELD}",
            mapping::source_fields(row, &self.fields.get(object)).join(", "),
            row.sobject
        ))
    }

    /// The SOQL that reads the live records of `object` after `last`, in `Id` order.
    fn read_after_query(&self, object: ObjectType, last: &str) -> ConnectorResult<String> {
        let row = mapping::binding(object)?;
        Ok(format!(
            "SELECT {} FROM {} WHERE {ID_FIELD} > '{last}' ORDER BY {ID_FIELD}",
            mapping::source_fields(row, &self.fields.get(object)).join(", "),
            row.sobject
        ))
    }

    /// The SOQL that reads the live records of `object` changed at or after `since`, in
    /// (`SystemModstamp`, `Id`) order. The literal is whole seconds in UTC (the watermark is).
    fn changed_query(&self, object: ObjectType, since: &Watermark) -> ConnectorResult<String> {
        let row = mapping::binding(object)?;
        let at = since.at_ms - since.at_ms.rem_euclid(1000);
        let literal = ferry_core::model::format_timestamp(at).replace(".000Z", "Z");
        Ok(format!(
            "SELECT {} FROM {} WHERE {MODSTAMP} >= {literal} ORDER BY {MODSTAMP}, {ID_FIELD}",
            mapping::source_fields(row, &self.fields.get(object)).join(", "),
            row.sobject
        ))
    }

    /// Spells the mapped fields of `object` as describe does, so that values are found in
    /// query results (one describe, only when fields beyond the standard ones are mapped).
    async fn respell(&self, object: ObjectType) -> ConnectorResult<()> {
        let row = mapping::binding(object)?;
        let map = self.fields.get(object);
        if *map == *row.standard() {
            return Ok(());
        }
        let described = self.described(row.sobject).await?;
        if let Some(bindings) = crate::fields::respelled(&map, &described) {
            self.fields.map(object, &FieldMap::default(), &bindings);
        }
        Ok(())
    }

    /// Maps one page of query results onto a [`Page`]. `last_before` is the `Id` the cursor
    /// of this page carried, kept when the page is empty.
    fn to_page(
        &self,
        object: ObjectType,
        mut response: QueryResponse,
        last_before: Option<&str>,
    ) -> ConnectorResult<Page> {
        let row = mapping::binding(object)?;
        let mut raw = response.page()?;
        let last_id = raw
            .records
            .last()
            .and_then(|sf| sf.get(ID_FIELD))
            .and_then(|v| v.as_str())
            .or(last_before)
            .map(str::to_owned);
        let next = match (raw.done, raw.next_records_url.take()) {
            (true, _) => None,
            (false, Some(next)) => Some(match last_id {
                Some(last) => format!("{next} {last}"),
                None => next,
            }),
            (false, None) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {}", self.client.data_path("query")),
                    detail: "a page with done: false has no nextRecordsUrl".into(),
                });
            }
        };
        let map = self.fields.get(object);
        let mut page = Page {
            records: Vec::with_capacity(raw.records.len()),
            next,
            unreadable: Vec::new(),
        };
        for sf in &raw.records {
            let Some(id) = sf
                .get(ID_FIELD)
                .and_then(|v| v.as_str())
                .filter(|id| !id.is_empty())
            else {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {}", self.client.data_path("query")),
                    detail: format!("a {} record has no Id", row.sobject),
                });
            };
            page.push(VENDOR, object, mapping::from_source(row, id, sf, &map));
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }
}

impl SalesforceSource {
    /// One page of the opportunities whose contact roles were added, changed or deleted at or
    /// after `since`: a page of `queryAll` (deleted roles are in the Recycle Bin, and deleting
    /// moves a role's stamp) of `SELECT OpportunityId FROM OpportunityContactRole WHERE
    /// SystemModstamp >= …`, then those opportunities by id with their contacts. `next` is the
    /// role query's `nextRecordsUrl`, empty on the first page. An opportunity whose roles
    /// span pages, or which changed itself too, is read more than once; the engine skips a
    /// repeat that is as it wrote it.
    async fn role_changes_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        next: &str,
    ) -> ConnectorResult<FetchedPage> {
        let row = mapping::binding(object)?;
        let batch = Some(self.settings.query_batch_size);
        // The fields were spelled by the first part of the read (`respell`).
        let mut roles = if next.is_empty() {
            let at = since.at_ms - since.at_ms.rem_euclid(1000);
            let literal = ferry_core::model::format_timestamp(at).replace(".000Z", "Z");
            let soql = format!(
                "SELECT OpportunityId FROM {ROLE_SOBJECT} WHERE {MODSTAMP} >= {literal} \
                 ORDER BY {MODSTAMP}, {ID_FIELD}"
            );
            self.client.query_all(&soql, batch).await?
        } else {
            self.client.query_more(next, batch).await?
        };
        let raw = roles.page()?;
        let mut ids: Vec<String> = raw
            .records
            .iter()
            .filter_map(|r| r.get("OpportunityId").and_then(|v| v.as_str()))
            .filter(|id| is_record_id(id))
            .map(str::to_owned)
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let following = match (raw.done, raw.next_records_url) {
            (true, _) => None,
            (false, Some(url)) => Some(format!("{ROLES_CURSOR} {url}")),
            (false, None) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {}", self.client.data_path("queryAll")),
                    detail: "a page with done: false has no nextRecordsUrl".into(),
                });
            }
        };
        let mut page = Page {
            records: Vec::with_capacity(ids.len()),
            next: following,
            unreadable: Vec::new(),
        };
        let prefix = format!(
            "SELECT {} FROM {} WHERE {ID_FIELD}",
            mapping::source_fields(row, &self.fields.get(object)).join(", "),
            row.sobject
        );
        for soql in crate::soql::in_queries(&prefix, &ids) {
            let mut response = self.client.query(&soql, batch).await?;
            loop {
                let part = self.to_page(object, response, None)?;
                page.records.extend(part.records);
                page.unreadable.extend(part.unreadable);
                match part.next.as_deref().and_then(|n| n.split_once(' ')) {
                    Some((url, _)) => response = self.client.query_more(url, batch).await?,
                    None => break,
                }
            }
        }
        tracing::debug!(vendor = VENDOR, %object, read = page.records.len(), "read deals whose contact roles changed");
        self.currency.stamp(object, &mut page.records);
        Ok(FetchedPage::ready(self.with_links(object, page).await?))
    }

    /// `page` with the links its records hold in other rows: a page of deals with their
    /// contacts, from one query of their contact roles (split only if the ids overflow a URL).
    async fn with_links(&self, object: ObjectType, mut page: Page) -> ConnectorResult<Page> {
        let row = mapping::binding(object)?;
        let Some(SalesforceLinks::ContactRoles { canonical }) = &row.links else {
            return Ok(page);
        };
        if page.records.is_empty() {
            return Ok(page);
        }
        let ids: Vec<String> = page.records.iter().map(|r| r.source_id.clone()).collect();
        let roles = crate::links::roles(&self.client, &ids, "ContactId").await?;
        crate::links::attach(&mut page.records, canonical, roles, |_, r| {
            Some(r.source_id.clone())
        });
        Ok(page)
    }
}

impl SalesforceSource {
    /// The page of `object` at `cursor`, its fields only (links and a single-currency org's
    /// currency are added by [`Source::read_page`]).
    async fn read_fields(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let batch = Some(self.settings.query_batch_size);
        let Some(cursor) = cursor else {
            self.respell(object).await?;
            let raw = self.client.query(&self.read_query(object)?, batch).await?;
            return self.to_page(object, raw, None);
        };
        // Cursors of older versions are the bare URL, without the last id.
        let (next, last) = match cursor.split_once(' ') {
            Some((next, last)) if is_record_id(last) => (next, Some(last)),
            Some(_) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {}", self.client.data_path("query")),
                    detail: "the cursor's last record id is not a Salesforce id".into(),
                });
            }
            None => (cursor, None),
        };
        let raw = match (self.client.query_more(next, batch).await, last) {
            (Err(e), Some(last)) if is_expired_locator(&e) => {
                tracing::info!(vendor = VENDOR, %object, "the query locator expired; reading on after the last record read");
                let soql = self.read_after_query(object, last)?;
                self.client.query(&soql, batch).await?
            }
            (result, _) => result?,
        };
        self.to_page(object, raw, last)
    }
}

#[async_trait]
impl Source for SalesforceSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn granted_scopes(&self) -> Option<Vec<String>> {
        self.client.granted_scopes()
    }

    /// The account's org id (`GET /services/oauth2/userinfo`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// A query page of `query_batch_size` records (Salesforce's `batchSize`), and for an object
    /// with contact roles one query of them per page.
    fn requests_per_record(&self, object: ObjectType) -> Option<f64> {
        let row = mapping::binding(object).ok()?;
        let roles = usize::from(matches!(
            row.links,
            Some(SalesforceLinks::ContactRoles { .. })
        ));
        Some((1 + roles) as f64 / self.settings.query_batch_size.max(1) as f64)
    }

    /// Every user of the org, active or not (`SELECT Id, Email, IsActive FROM User`).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client).await
    }

    /// Deals: the active opportunity stages as one pipeline, `StageName` (see
    /// [`crate::PIPELINE_ID`]).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client.check().await
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        self.currency
            .learn(object, &self.fields, || self.single_currency())
            .await?;
        let mut page = self.read_fields(object, cursor).await?;
        self.currency.stamp(object, &mut page.records);
        self.with_links(object, page).await
    }

    /// `SELECT … WHERE SystemModstamp >= <since> ORDER BY SystemModstamp, Id`, paged through
    /// `nextRecordsUrl` with the same cursor as [`Source::read_page`]. An expired query
    /// locator fails the read (the sync's watermark stays, so the next sync reads it again).
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        self.currency
            .learn(object, &self.fields, || self.single_currency())
            .await?;
        if let Some(next) = cursor.and_then(|c| c.strip_prefix(ROLES_CURSOR)) {
            return self
                .role_changes_page(object, since, next.trim_start())
                .await;
        }
        let batch = Some(self.settings.query_batch_size);
        let mut page = match cursor {
            None => {
                self.respell(object).await?;
                let soql = self.changed_query(object, since)?;
                let raw = self.client.query(&soql, batch).await?;
                self.to_page(object, raw, None)?
            }
            Some(cursor) => {
                let (next, last) = match cursor.split_once(' ') {
                    Some((next, last)) if is_record_id(last) => (next, Some(last)),
                    _ => {
                        return Err(ConnectorError::Malformed {
                            vendor: VENDOR,
                            endpoint: format!("GET {}", self.client.data_path("query")),
                            detail: "the cursor's last record id is not a Salesforce id".into(),
                        });
                    }
                };
                let raw = self.client.query_more(next, batch).await?;
                self.to_page(object, raw, last)?
            }
        };
        let row = mapping::binding(object)?;
        if page.next.is_none() && matches!(row.links, Some(SalesforceLinks::ContactRoles { .. })) {
            // A deal's contacts are rows of their own, whose changes need not move the
            // opportunity's stamp: those are read next.
            page.next = Some(ROLES_CURSOR.to_owned());
        }
        self.currency.stamp(object, &mut page.records);
        Ok(FetchedPage::ready(self.with_links(object, page).await?))
    }

    /// getDeleted from `since` (to the minute, as Salesforce reads it) to the org's clock now:
    /// one page, which holds every id. [`DeletedPage::Lost`] when `since` is beyond the
    /// Recycle Bin's 15 days or `earliestDateAvailable` (the last purged delete) is after it.
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        _cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        let row = mapping::binding(object)?;
        let now = self.client.server_time_ms().await?;
        if since.at_ms < now - DELETED_WINDOW_MS {
            tracing::info!(vendor = VENDOR, %object, "the last sync is older than the Recycle Bin's 15 days");
            return Ok(DeletedPage::Lost);
        }
        let minute = |ms: i64| {
            ferry_core::model::format_timestamp(ms - ms.rem_euclid(60_000)).replace(".000Z", "Z")
        };
        let (start, end) = (minute(since.at_ms), minute(now));
        let path = self
            .client
            .data_path(&format!("sobjects/{}/deleted/", row.sobject));
        let response = self
            .client
            .send(Call {
                method: Method::GET,
                path: &path,
                query: &[("start", start.as_str()), ("end", end.as_str())],
                body: None,
                headers: &[],
                cap: BodyCap::Page,
            })
            .await?;
        let endpoint = format!("GET {path}");
        let answer: DeletedAnswer = response.json(VENDOR, &endpoint)?;
        let earliest = match answer.earliest_date_available.as_deref() {
            None => None,
            Some(raw) => Some(ferry_core::model::parse_timestamp(raw).ok_or_else(|| {
                ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: "earliestDateAvailable is not a date-time".into(),
                }
            })?),
        };
        if earliest.is_some_and(|earliest| earliest > since.at_ms) {
            tracing::info!(vendor = VENDOR, %object, "deletes after the last sync were purged from the Recycle Bin");
            return Ok(DeletedPage::Lost);
        }
        let ids: Vec<String> = answer.deleted_records.into_iter().map(|r| r.id).collect();
        tracing::debug!(vendor = VENDOR, %object, deleted = ids.len(), "read deletions");
        Ok(DeletedPage::Ids { ids, next: None })
    }

    /// `SELECT Id FROM … ORDER BY Id`, paged through `nextRecordsUrl`: the live ids alone, for
    /// an id-set comparison.
    async fn fetch_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let row = mapping::binding(object)?;
        let batch = Some(self.settings.query_batch_size);
        let mut response = match cursor {
            None => {
                let soql = format!("SELECT {ID_FIELD} FROM {} ORDER BY {ID_FIELD}", row.sobject);
                self.client.query(&soql, batch).await?
            }
            Some(next) => self.client.query_more(next, batch).await?,
        };
        let page = response.page()?;
        let ids = page
            .records
            .iter()
            .filter_map(|r| r.get(ID_FIELD).and_then(|v| v.as_str()).map(str::to_owned))
            .collect();
        let next = if page.done {
            None
        } else {
            Some(
                page.next_records_url
                    .ok_or_else(|| ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: format!("GET {}", self.client.data_path("query")),
                        detail: "a page with done: false has no nextRecordsUrl".into(),
                    })?,
            )
        };
        Ok(IdPage { ids, next })
    }

    /// The org's clock (the `Date` header of `GET …/limits`) less [`SYNC_OVERLAP`].
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        mapping::binding(object)?;
        let now = self.client.server_time_ms().await?;
        Ok(Watermark::settled_before(now, SYNC_OVERLAP))
    }

    /// `GET …/sobjects/{Account|Contact}/describe`.
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        let described = self.described(mapping::binding(object)?.sobject).await?;
        Ok(crate::fields::listed(object, &described))
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        let row = mapping::binding(object)?;
        mapping::check_bindings(object, bindings)?;
        self.fields.map(object, row.standard(), bindings);
        self.currency.leave_out(object, &self.fields);
        Ok(())
    }

    /// `SELECT COUNT() FROM …`: its `totalSize`, live records only, as the read sees them.
    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let soql = format!("SELECT COUNT() FROM {}", mapping::binding(object)?.sobject);
        let total = self.client.query(&soql, None).await?.page()?.total_size;
        tracing::debug!(vendor = VENDOR, %object, total, "counted records");
        Ok(total)
    }

    /// One `COUNT()` query filtered on the opt-out's checkbox.
    async fn count_opted_out(&self, object: ObjectType, field: &str) -> ConnectorResult<u64> {
        let row = mapping::binding(object)?;
        let map = self.fields.get(object);
        let Some(binding) = map.by_canonical(field) else {
            return Ok(0);
        };
        let soql = format!(
            "SELECT COUNT() FROM {} WHERE {} = true",
            row.sobject, binding.vendor
        );
        let total = self.client.query(&soql, None).await?.page()?.total_size;
        // Never read a missing count as "nobody opted out".
        total.ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("{} opt-out count", row.sobject),
            detail: "the COUNT() answer has no totalSize".into(),
        })
    }
}
