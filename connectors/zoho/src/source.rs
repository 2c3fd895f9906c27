//! Reading Accounts, Contacts, Deals and Notes from Zoho, in ascending id order.
//!
//! The first page comes from the list endpoint (`page=1`). Every later page is a COQL query,
//! `where id > {last id read} order by id asc`: unlike page numbers (offsets, which skip live
//! records when records before them are deleted mid-read, and stop at 2,000) and page tokens
//! (valid 24 hours, and only up to 100,000 records), it starts after the last record read, so
//! nothing is skipped or read twice and a checkpoint's cursor never expires. Cursors are
//! `k:{last id}`; `p:{page}` and `t:{last id}:{page token}` from checkpoints of earlier
//! versions are still read (a `t:` cursor goes on by id).
//!
//! A full read after the first page keeps up to `max_concurrent_requests` COQL pages in
//! flight (10 on Standard; `coql_page_size` records a page, 1,000 by default): one page at a
//! time would leave all but one of the org's calls idle for each round trip. The pages ahead are asked by `OFFSET` after the last id handed out,
//! each overlapping the one before by a record so that a shift (records created or deleted
//! meanwhile) is seen when that page comes to be read: the pages ahead are then dropped and
//! asked again after the last id. As each page is handed out, the next one is asked, so the
//! window slides instead of going in rounds. The pages in flight are kept between calls only
//! for the cursor the last call handed out (`k:{last id}`, as before), so a checkpoint resumes
//! exactly as before and any other cursor starts afresh.
//!
//! Notes are the exception: COQL does not serve them, so their later pages go on by Zoho's page
//! token (`t:{last id}:{token}`), valid 24 hours and up to 100,000 records. A deal's contacts
//! are its contact roles, read per deal of the page (Zoho has no read across deals).
//!
//! Changes (`ferry sync`) are read the same two ways, filtered on `Modified_Time`, so a record
//! read as a change is built exactly as a full read builds it. Accounts, Contacts and Deals:
//! COQL `where Modified_Time >= '{since}' [and id > {last id}] order by id asc`. Ordering by
//! id, not by time, makes ties at one second harmless and needs no offset (COQL's stops at
//! 100,000), and the cursor is the full read's `k:{last id}`. A record changed again while the
//! read runs may be passed over if its id was read already: its new `Modified_Time` is after
//! the sync point, so the next sync reads it. Notes: the list with `If-Modified-Since`
//! (304 when nothing changed), `sort_by=Modified_Time` ascending, page 1 then page tokens
//! (`w:{window}:{last Modified_Time}:{token}`, times in ms); when a token runs out (100,000
//! records, 24 hours, or unknown after a restart) the read starts again from the last
//! `Modified_Time` read, less a second: a new time window, its first records read twice and
//! absorbed by the upsert.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::connector::FetchedPage;
use ferry_core::currency::OrgCurrency;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, VendorField};
use ferry_core::http::{HttpResponse, HttpStats};
use ferry_core::model::Link;
use ferry_core::sync::Watermark;
use ferry_core::{ConnectorError, ConnectorResult, DeletedPage, ObjectType, Page, Source, Value};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::client::Client;
use crate::config::{Settings, ZohoConfig};
use crate::fields;
use crate::mapping::{self, Links, ZohoObject};
use crate::roles;

/// Most COQL pages a full read keeps in flight (as many as `max_concurrent_requests` allows,
/// up to this): 10 pages of 200 hold about 2,000 records, and more would hold records in
/// memory for little gain.
const MAX_WINDOW: usize = 10;

/// The COQL endpoint.
const COQL: &str = "/crm/v8/coql";

/// A COQL page asked ahead of the reader, its request in a task of its own so that it goes
/// on between calls. A page dropped unread is not aborted: Zoho counts a call against the
/// org's concurrent calls until it has answered it, so the request keeps its call slot (the
/// client's permit) until the answer, which is then dropped.
struct Lane {
    task: tokio::task::JoinHandle<ConnectorResult<ListBody>>,
    /// Whether the page starts on the last record of the page before it (the overlap that
    /// shows a shift), or right after the last id handed out.
    anchored: bool,
}

/// A full read's COQL pages in flight after the last record handed out, in id order.
struct Window {
    /// The id of the last record handed out: the next call comes with `k:{last}`.
    last: String,
    lanes: std::collections::VecDeque<Lane>,
    /// The records the object's count leaves after `last` (`None` without a count).
    left: Option<u64>,
}

/// A Zoho CRM org as a [`Source`].
pub struct ZohoSource {
    settings: Settings,
    client: Arc<Client>,
    /// The fields read per object: the standard tables and the operator's mapped fields.
    maps: FieldMaps,
    /// Whether the org keeps every amount in one currency.
    currency: OrgCurrency,
    /// Per object: its count when asked ([`Source::count`]) and the records
    /// read since the read began, so that a read asks for no more pages than are left (each
    /// empty page costs a credit).
    left: std::sync::Mutex<HashMap<ObjectType, (Option<u64>, u64)>>,
    /// Per object: the full read's pages in flight, for the cursor the last call handed out.
    windows: std::sync::Mutex<HashMap<ObjectType, Window>>,
    /// Whether contacts hold the GDPR consent record ([`crate::gdpr::enabled`]), once asked.
    gdpr: tokio::sync::OnceCell<bool>,
}

#[derive(Deserialize, Default)]
struct Info {
    #[serde(default)]
    more_records: bool,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct ListBody {
    #[serde(default)]
    data: Vec<Map<String, Json>>,
    #[serde(default)]
    info: Info,
}

/// How much earlier than Zoho's clock the next incremental read starts: `Modified_Time` has
/// whole seconds, Zoho's API front ends and the database that stamps records need not share a
/// clock to the second, and automation (workflow field updates, blueprints) can commit after
/// the time it stamps. Records of the overlap are read again; the sink's upsert absorbs them.
pub const SYNC_OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// `ms` as a Zoho date-time literal, `2026-12-06T16:47:33+00:00` (whole seconds, UTC).
fn zoho_time(ms: i64) -> String {
    let text = ferry_core::model::format_timestamp(ms - ms.rem_euclid(1000));
    format!("{}+00:00", text.get(..19).unwrap_or(&text))
}

#[derive(Debug, PartialEq, Eq)]
enum Cursor<'a> {
    Page(usize),
    Keyset {
        last: &'a str,
    },
    /// A page token (Notes, which COQL does not serve), with the last id read before it.
    Token {
        last: &'a str,
        token: &'a str,
    },
}

fn parse_cursor(cursor: Option<&str>) -> Option<Cursor<'_>> {
    let Some(c) = cursor else {
        return Some(Cursor::Page(1));
    };
    if let Some(n) = c.strip_prefix("p:") {
        return n.parse().ok().filter(|n| *n >= 1).map(Cursor::Page);
    }
    if let Some(rest) = c.strip_prefix("t:") {
        let (last, token) = rest.split_once(':')?;
        return Some(Cursor::Token { last, token });
    }
    let last = c.strip_prefix("k:")?;
    Some(Cursor::Keyset { last })
}

/// Whether `s` is a Zoho record id (digits only), so it may go into a COQL query.
pub(crate) fn is_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 25 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A page ahead whose task ended without an answer (it panicked).
fn lost_page() -> ConnectorError {
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("POST {COQL}"),
        detail: "the request for a page ahead stopped without an answer".into(),
    }
}

/// A COQL or list answer's body (204: no records).
fn list_body(path: &str, response: &HttpResponse) -> ConnectorResult<ListBody> {
    if response.status.as_u16() == 204 {
        return Ok(ListBody::default());
    }
    response.json(VENDOR, &format!("GET {path}"))
}

impl ZohoSource {
    /// Builds the source from its config (no I/O: the token is refreshed on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `source.refresh_token`.
    pub fn new(config: ZohoConfig, key_prefix: &str) -> ConnectorResult<ZohoSource> {
        let settings = config.settings(key_prefix)?;
        let client = Client::new(&settings, config.credentials(key_prefix)?)?;
        Ok(ZohoSource {
            settings,
            client: Arc::new(client),
            maps: mapping::standard_maps(),
            currency: OrgCurrency::default(),
            left: std::sync::Mutex::default(),
            windows: std::sync::Mutex::default(),
            gdpr: tokio::sync::OnceCell::new(),
        })
    }

    /// How many access tokens this source has fetched (1 unless they expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    /// A list page of `row` at `position`: in id order, or (`since` given) the records
    /// modified after `since` (`If-Modified-Since`) in `Modified_Time` order. 304 (nothing
    /// modified) is an empty page.
    async fn list(
        &self,
        row: &ZohoObject,
        position: (&str, &str),
        since: Option<&str>,
    ) -> ConnectorResult<Result<ListBody, HttpResponse>> {
        let path = format!("/crm/v8/{}", row.module);
        let fields = mapping::read_fields(&self.maps.get(row.object), row).join(",");
        let per_page = self.settings.page_size.to_string();
        let sort_by = if since.is_some() {
            "Modified_Time"
        } else {
            "id"
        };
        let query = [
            ("fields", fields.as_str()),
            ("per_page", per_page.as_str()),
            ("sort_by", sort_by),
            ("sort_order", "asc"),
            position,
        ];
        let headers: Vec<(&str, &str)> = since
            .map(|t| ("If-Modified-Since", t))
            .into_iter()
            .collect();
        let response = self
            .client
            .send_with(Method::GET, &path, &query, None, &headers)
            .await?;
        if since.is_some() && response.status.as_u16() == 304 {
            return Ok(Ok(ListBody::default()));
        }
        if response.is_success() {
            Ok(Ok(list_body(&path, &response)?))
        } else {
            Ok(Err(response))
        }
    }

    /// The COQL page of `row` after id `last` (if given) among the records modified at or
    /// after `since` (if given), in id order.
    async fn keyset(
        &self,
        row: &ZohoObject,
        since: Option<&str>,
        last: Option<&str>,
    ) -> ConnectorResult<Page> {
        let criteria: Vec<String> = since
            .map(|t| format!("Modified_Time >= {}", crate::coql::quote(t)))
            .into_iter()
            .chain(last.map(|id| format!("id > {id}")))
            .collect();
        // COQL needs a `where`: every id is above 0.
        let criteria = if criteria.is_empty() {
            "id > 0".to_owned()
        } else {
            criteria.join(" and ")
        };
        let body = self.coql(row, &criteria).await?;
        let next = self.next_keyset(&body.data, body.info.more_records, last)?;
        self.page(row, &body.data, next).await
    }

    /// The next page of a full read after id `last`, from the pages kept in flight when
    /// `k:{last}` is the cursor the last call handed out (else from a new window). A page
    /// ahead that does not start on the last record of the page before it (records created
    /// or deleted in between shifted the offsets), or that failed, is dropped with the pages
    /// after it, and they are asked again after `last`; so the pages handed out hold exactly
    /// the records after `last` in id order, none skipped or read twice. As each page is
    /// handed out, the next is asked.
    async fn window_page(&self, row: &ZohoObject, last: &str) -> ConnectorResult<Page> {
        let size = self.settings.coql_page_size;
        let most = self.settings.max_concurrent.min(MAX_WINDOW);
        if most < 2 || size < 2 {
            return self.keyset(row, None, Some(last)).await;
        }
        let kept = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&row.object)
            .filter(|w| w.last == last);
        let mut window = kept.unwrap_or_else(|| Window {
            last: last.to_owned(),
            lanes: std::collections::VecDeque::new(),
            left: None,
        });
        // The engine asks for the count beside the read: it may come after the read began.
        if window.left.is_none() {
            window.left = self.left_after_read(row.object);
        }
        loop {
            self.fill(row, &mut window, most);
            let Some(mut head) = window.lanes.pop_front() else {
                continue; // `fill` asks for a page whenever none is in flight
            };
            let body = (&mut head.task).await.unwrap_or_else(|_| Err(lost_page()));
            let mut body = match body {
                Ok(body) => body,
                Err(e) if !head.anchored => return Err(e),
                Err(_) => {
                    tracing::debug!(vendor = VENDOR, object = %row.object, "a page ahead failed; asked again after the last id");
                    window.lanes.clear();
                    continue;
                }
            };
            let full = body.data.len() == size;
            if head.anchored {
                let first = body.data.first().and_then(|r| r.get("id"));
                if first.and_then(Json::as_str) != Some(window.last.as_str()) {
                    tracing::debug!(vendor = VENDOR, object = %row.object, "records moved during the read; the pages ahead are asked again after the last id");
                    window.lanes.clear();
                    continue;
                }
                body.data.remove(0);
            }
            let next = self.next_keyset(&body.data, body.info.more_records, Some(last))?;
            if let (Some(_), Some(id)) =
                (&next, body.data.last().and_then(|r| roles::text(r, "id")))
            {
                window.last = id;
                window.left = window
                    .left
                    .map(|l| l.saturating_sub(body.data.len() as u64));
                if !full {
                    // The offsets ahead counted on a full page.
                    window.lanes.clear();
                }
                self.fill(row, &mut window, most);
                self.windows
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(row.object, window);
            }
            return self.page(row, &body.data, next).await;
        }
    }

    /// Asks for pages after the window's last until `most` are in flight, but for no more than
    /// the records left by the object's count need (pages overlap by one record), so the end
    /// of a counted read asks for no empty page; and always for one when none is in flight
    /// (records created since the count).
    fn fill(&self, row: &ZohoObject, window: &mut Window, most: usize) {
        let size = self.settings.coql_page_size;
        while window.lanes.len() < most {
            // The records after `last` the pages in flight bring.
            let coming: usize = window
                .lanes
                .iter()
                .map(|lane| if lane.anchored { size - 1 } else { size })
                .sum();
            if !window.lanes.is_empty() && window.left.is_some_and(|left| left <= coming as u64) {
                break;
            }
            let (offset, anchored) = match coming {
                0 => (0, false),
                n => (n - 1, true),
            };
            let client = Arc::clone(&self.client);
            let query = self.coql_query(row, &format!("id > {}", window.last), size, offset);
            let task = tokio::spawn(async move {
                let body = json!({"select_query": query});
                let response = client.send_ok(Method::POST, COQL, &[], Some(&body)).await?;
                list_body(COQL, &response)
            });
            window.lanes.push_back(Lane { task, anchored });
        }
    }

    /// The records of `object` its count leaves after those read since ([`Source::count`]).
    fn left_after_read(&self, object: ObjectType) -> Option<u64> {
        self.left
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&object)
            .and_then(|(total, read)| Some(total.as_ref()?.saturating_sub(*read)))
    }

    /// `select … where {criteria} order by id asc limit {limit} [offset {offset}]`.
    fn coql_query(&self, row: &ZohoObject, criteria: &str, limit: usize, offset: usize) -> String {
        let offset = match offset {
            0 => String::new(),
            n => format!(" offset {n}"),
        };
        format!(
            "select {} from {} where {criteria} order by id asc limit {limit}{offset}",
            mapping::read_fields(&self.maps.get(row.object), row).join(", "),
            row.module,
        )
    }

    /// The COQL page of `row`'s records matching `criteria`, in id order.
    async fn coql(&self, row: &ZohoObject, criteria: &str) -> ConnectorResult<ListBody> {
        let limit = self.settings.page_size;
        let query = json!({"select_query": self.coql_query(row, criteria, limit, 0)});
        let response = self
            .client
            .send_ok(Method::POST, COQL, &[], Some(&query))
            .await?;
        list_body(COQL, &response)
    }

    /// The keyset cursor after `data`, read after `last`: `None` at the end, an error when
    /// more records are announced but the read did not move past `last`.
    fn next_keyset(
        &self,
        data: &[Map<String, Json>],
        more: bool,
        last: Option<&str>,
    ) -> ConnectorResult<Option<String>> {
        let new_last = data.last().and_then(|r| r.get("id")).and_then(Json::as_str);
        match (more, new_last) {
            (true, Some(id)) if Some(id) != last && is_id(id) => Ok(Some(format!("k:{id}"))),
            (true, _) => Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: "POST /crm/v8/coql".to_owned(),
                detail: "more records announced, but the page did not advance".into(),
            }),
            (false, _) => Ok(None),
        }
    }

    async fn page(
        &self,
        row: &ZohoObject,
        data: &[Map<String, Json>],
        next: Option<String>,
    ) -> ConnectorResult<Page> {
        let object = row.object;
        let map: Arc<FieldMap> = self.maps.get(object);
        let mut page = Page {
            records: Vec::with_capacity(data.len()),
            next,
            unreadable: Vec::new(),
        };
        for raw in data {
            page.push(VENDOR, object, mapping::from_zoho(&map, row, raw));
        }
        if row.links == Some(Links::ContactRoles) {
            self.add_contacts(data, &mut page).await?;
        }
        if object == ObjectType::CONTACTS && !page.records.is_empty() && self.gdpr().await? {
            self.add_consent(&mut page).await?;
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }

    /// Whether the org's contacts hold the GDPR consent record (asked once a run).
    async fn gdpr(&self) -> ConnectorResult<bool> {
        self.gdpr
            .get_or_try_init(|| crate::gdpr::enabled(&self.client))
            .await
            .copied()
    }

    /// Sets each contact's legal basis and consent date from its GDPR consent record, read by
    /// id (one `GET ?ids=` per 100 contacts of the page): COQL is not known to serve it.
    async fn add_consent(&self, page: &mut Page) -> ConnectorResult<()> {
        let ids: Vec<&str> = page.records.iter().map(|r| r.source_id.as_str()).collect();
        let consents = crate::gdpr::fetch(&self.client, &ids).await?;
        for mut record in std::mem::take(&mut page.records) {
            let read = match consents.get(&record.source_id) {
                Some(consent) => crate::gdpr::apply(&mut record, consent).map(|()| record),
                None => Ok(record),
            };
            page.push(VENDOR, ObjectType::CONTACTS, read);
        }
        Ok(())
    }

    /// Sets each deal's `contacts`: its `Contact_Name` and its contact roles, read per deal
    /// (Zoho has no read of several deals' roles), the deals' reads in flight together.
    async fn add_contacts(
        &self,
        data: &[Map<String, Json>],
        page: &mut Page,
    ) -> ConnectorResult<()> {
        let ids: Vec<&str> = page.records.iter().map(|r| r.source_id.as_str()).collect();
        let roles = crate::sink::join_all(
            ids.iter()
                .map(|id| roles::contacts_of(&self.client, id, "id"))
                .collect(),
        )
        .await;
        for (record, contacts) in page.records.iter_mut().zip(roles) {
            let named = data
                .iter()
                .find(|z| z.get("id").and_then(Json::as_str) == Some(record.source_id.as_str()))
                .and_then(mapping::contact_name_of);
            let mut links: Vec<Link> = named
                .into_iter()
                .chain(contacts?.iter().filter_map(|c| roles::text(c, "id")))
                .map(|id| Link {
                    object: ObjectType::CONTACTS,
                    id,
                })
                .collect();
            links.sort_unstable();
            links.dedup();
            if !links.is_empty() {
                record.set(ferry_core::field::CONTACTS, Value::Links(links));
            }
        }
        Ok(())
    }

    /// The page of `object` at `cursor` as Zoho lists it (a single-currency org's currency is
    /// added by [`Source::read_page`]).
    async fn read_records(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<Page> {
        let row = mapping::binding(object)?;
        let path = format!("/crm/v8/{}", row.module);
        let bad_cursor = || ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {path}"),
            detail: "the cursor is not one this source handed out".into(),
        };
        let position = parse_cursor(cursor).ok_or_else(bad_cursor)?;
        let (param, page) = match position {
            // COQL does not serve Notes: they go on by page token.
            Cursor::Token { token, .. } if !row.upsert => ("page_token", token.to_owned()),
            Cursor::Keyset { last } | Cursor::Token { last, .. } if is_id(last) => {
                return self.window_page(row, last).await;
            }
            Cursor::Keyset { .. } | Cursor::Token { .. } => return Err(bad_cursor()),
            Cursor::Page(n) => ("page", n.to_string()),
        };
        let body = match self.list(row, (param, &page), None).await? {
            Ok(body) => body,
            Err(response) => return Err(self.client.error_for(&format!("GET {path}"), &response)),
        };
        let last = body
            .data
            .last()
            .and_then(|r| r.get("id"))
            .and_then(Json::as_str);
        let next = match (body.info.more_records, last) {
            (false, _) => None,
            (true, Some(last)) if is_id(last) && !row.upsert => {
                match body.info.next_page_token.as_deref() {
                    Some(token) if !token.is_empty() => Some(format!("t:{last}:{token}")),
                    _ => {
                        return Err(ConnectorError::Malformed {
                            vendor: VENDOR,
                            endpoint: format!("GET {path}"),
                            detail: "more records announced without a next_page_token".into(),
                        });
                    }
                }
            }
            (true, Some(last)) if is_id(last) => Some(format!("k:{last}")),
            (true, _) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {path}"),
                    detail: "more records announced after a page without a numeric last id".into(),
                });
            }
        };
        self.page(row, &body.data, next).await
    }
}

impl ZohoSource {
    /// The page of `object`'s records modified since `since` at `cursor`, as Zoho lists them.
    async fn read_changed(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<Page> {
        let row = mapping::binding(object)?;
        let since_text = zoho_time(since.at_ms);
        if row.upsert {
            let last = match cursor {
                None => None,
                Some(c) => match parse_cursor(Some(c)) {
                    Some(Cursor::Keyset { last }) if is_id(last) => Some(last),
                    _ => return Err(self.bad_cursor("POST /crm/v8/coql")),
                },
            };
            return self.keyset(row, Some(&since_text), last).await;
        }
        // Notes: If-Modified-Since, in Modified_Time order. Whether Zoho lists a record
        // stamped exactly at that second is not documented: ask from a second earlier.
        let path = format!("GET /crm/v8/{}", row.module);
        // The window (If-Modified-Since, ms) a token was issued under, the last Modified_Time
        // read, and the token.
        let (mut window, last, token) = match cursor {
            None => (since.at_ms - 1000, None, None),
            Some(c) => {
                let mut parts = c.strip_prefix("w:").unwrap_or_default().splitn(3, ':');
                let mut ms = || parts.next().and_then(|p| p.parse::<i64>().ok());
                let (window, last) = (ms(), ms());
                match (window, last, parts.next()) {
                    (Some(w), Some(l), Some(t)) if !t.is_empty() => (w, Some(l), Some(t)),
                    _ => return Err(self.bad_cursor(&path)),
                }
            }
        };
        let mut body = match token {
            Some(token) => {
                self.list(row, ("page_token", token), Some(&zoho_time(window)))
                    .await?
            }
            None => {
                self.list(row, ("page", "1"), Some(&zoho_time(window)))
                    .await?
            }
        };
        if let (Err(refused), Some(last)) = (&body, last)
            && matches!(
                crate::policy::error_code(refused).as_deref(),
                Some("PAGINATION_LIMIT_EXCEEDED" | "EXPIRED_VALUE" | "INVALID_DATA")
            )
        {
            // The token ran out (its 100,000 records, its 24 hours, or Zoho no longer knows
            // it): a new window from the last Modified_Time read.
            tracing::debug!(vendor = VENDOR, %object, "page token spent: a new time window");
            if last - 1000 <= window {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: path,
                    detail: "more notes changed within one second than a page token reaches, \
                             so the time window cannot move on"
                        .into(),
                });
            }
            window = last - 1000;
            body = self
                .list(row, ("page", "1"), Some(&zoho_time(window)))
                .await?;
        }
        let body = body.map_err(|response| self.client.error_for(&path, &response))?;
        let last_ms = body
            .data
            .last()
            .and_then(|r| r.get("Modified_Time"))
            .and_then(Json::as_str)
            .and_then(ferry_core::model::parse_timestamp);
        let next = match (
            body.info.more_records,
            body.info.next_page_token.as_deref(),
            last_ms,
        ) {
            (false, _, _) => None,
            (true, Some(token), Some(ms)) if !token.is_empty() => {
                Some(format!("w:{window}:{ms}:{token}"))
            }
            (true, ..) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: path,
                    detail: "more records announced without a next_page_token or a Modified_Time"
                        .into(),
                });
            }
        };
        self.page(row, &body.data, next).await
    }

    fn bad_cursor(&self, endpoint: &str) -> ConnectorError {
        ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.to_owned(),
            detail: "the cursor is not one this source handed out".into(),
        }
    }
}

#[async_trait]
impl Source for ZohoSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn granted_scopes(&self) -> Option<Vec<String>> {
        self.client.granted_scopes()
    }

    /// The account's org id (`GET /crm/v8/org`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// Every user of the org, active or not (`GET /crm/v8/users?type=AllUsers`, `page_size` a
    /// page).
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client, self.settings.page_size).await
    }

    /// Deals: the pipelines of the Deals layouts, ids as records hold them (display values).
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, object).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        let path = "/crm/v8/Contacts";
        self.client
            .send_ok(
                Method::GET,
                path,
                &[("fields", "Last_Name"), ("per_page", "1")],
                None,
            )
            .await?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// `GET /crm/v8/{module}/actions/count`: one credit, `{"count": n}`.
    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let path = format!("/crm/v8/{}/actions/count", mapping::binding(object)?.module);
        let response = self.client.send_ok(Method::GET, &path, &[], None).await?;
        let count = if response.status.as_u16() == 204 {
            Some(0)
        } else {
            let body: Json = response.json(VENDOR, &format!("GET {path}"))?;
            // Documented as a number; some answers quote it.
            body.get("count")
                .and_then(|c| c.as_u64().or_else(|| c.as_str()?.trim().parse().ok()))
        };
        if let Some(n) = count {
            self.left
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(object)
                .or_default()
                .0 = Some(n);
        }
        Ok(count)
    }

    /// `GET /crm/v8/settings/fields?module=…` (scope `ZohoCRM.settings.fields.READ`).
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        fields::describe(&self.client, object).await
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        fields::check_bindings(object, bindings, None)?;
        let standard = mapping::binding(object)?.standard();
        self.maps.map(object, &standard, bindings);
        self.currency.leave_out(object, &self.maps);
        Ok(())
    }

    /// Accounts, Contacts, Deals: COQL on `Modified_Time >= since`, in id order; Notes: the
    /// list with `If-Modified-Since` (see the module's documentation).
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        self.currency
            .learn(object, &self.maps, || crate::currency::single(&self.client))
            .await?;
        let mut page = self.read_changed(object, since, cursor).await?;
        self.currency.stamp(object, &mut page.records);
        Ok(FetchedPage::ready(page))
    }

    /// `GET /crm/v8/{module}/deleted?type=all&page=&per_page=200` with `If-Modified-Since:
    /// since`: the records deleted since (into the recycle bin, or permanently), ids only,
    /// page by page (`info.more_records`; the cursor is the next page number). 204 or 304:
    /// nothing deleted.
    async fn fetch_deleted_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<DeletedPage> {
        #[derive(Deserialize, Default)]
        struct Info {
            #[serde(default)]
            more_records: bool,
        }
        #[derive(Deserialize, Default)]
        struct Body {
            #[serde(default)]
            data: Vec<Map<String, Json>>,
            #[serde(default)]
            info: Info,
        }
        let row = mapping::binding(object)?;
        let path = format!("/crm/v8/{}/deleted", row.module);
        let endpoint = format!("GET {path}");
        let page: usize = match cursor {
            None => 1,
            Some(c) => c.parse().map_err(|_| self.bad_cursor(&endpoint))?,
        };
        let page_text = page.to_string();
        let query = [
            ("type", "all"),
            ("per_page", "200"),
            ("page", page_text.as_str()),
        ];
        let since = zoho_time(since.at_ms);
        let response = self
            .client
            .send_with(
                Method::GET,
                &path,
                &query,
                None,
                &[("If-Modified-Since", since.as_str())],
            )
            .await?;
        let status = response.status.as_u16();
        if status == 204 || status == 304 {
            return Ok(DeletedPage::Ids {
                ids: Vec::new(),
                next: None,
            });
        }
        if !response.is_success() {
            return Err(self.client.error_for(&endpoint, &response));
        }
        let body: Body = response.json(VENDOR, &endpoint)?;
        let ids = body
            .data
            .iter()
            .filter_map(|d| roles::text(d, "id"))
            .collect();
        let next =
            (body.info.more_records && !body.data.is_empty()).then(|| (page + 1).to_string());
        Ok(DeletedPage::Ids { ids, next })
    }

    /// Zoho's clock (the `Date` header of `GET /crm/v8/org`) less [`SYNC_OVERLAP`].
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        mapping::binding(object)?;
        let now = self.client.server_time_ms().await?;
        Ok(Watermark::settled_before(now, SYNC_OVERLAP))
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        self.currency
            .learn(object, &self.maps, || crate::currency::single(&self.client))
            .await?;
        let mut page = self.read_records(object, cursor).await?;
        self.currency.stamp(object, &mut page.records);
        let mut left = self
            .left
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A count asked beside the read (after its first pages) must not forget them; a read
        // from the start (a second read of the object) counts afresh.
        let (_, read) = left.entry(object).or_default();
        if cursor.is_none() {
            *read = 0;
        }
        *read += page.records.len() as u64;
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(parse_cursor(None), Some(Cursor::Page(1)));
        assert_eq!(parse_cursor(Some("p:7")), Some(Cursor::Page(7)));
        assert_eq!(
            parse_cursor(Some("t:123:abc:def")),
            Some(Cursor::Token {
                last: "123",
                token: "abc:def"
            }),
            "a page-token cursor: Notes go on by the token, other modules by id"
        );
        assert_eq!(
            parse_cursor(Some("k:42")),
            Some(Cursor::Keyset { last: "42" })
        );
        assert_eq!(parse_cursor(Some("p:0")), None);
        assert_eq!(parse_cursor(Some("zzz")), None);
        assert!(!is_id("1 or 1=1"));
    }

    #[test]
    fn watermarks_become_zoho_date_times_in_whole_seconds() {
        assert_eq!(zoho_time(1_654_094_108_469), "2022-06-01T14:35:08+00:00");
        assert_eq!(zoho_time(0), "1970-01-01T00:00:00+00:00");
        assert_eq!(zoho_time(-1), "1969-12-31T23:59:59+00:00");
    }
}
