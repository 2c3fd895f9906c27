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
//! Notes are the exception: COQL does not serve them, so their later pages go on by Zoho's page
//! token (`t:{last id}:{token}`), valid 24 hours and up to 100,000 records. A deal's contacts
//! are its contact roles, read per deal of the page (Zoho has no read across deals).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::currency::OrgCurrency;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, VendorField};
use ferry_core::http::{HttpResponse, HttpStats};
use ferry_core::model::Link;
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Source, Value};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::client::Client;
use crate::config::{Settings, ZohoConfig};
use crate::fields;
use crate::mapping::{self, Links, ZohoObject};
use crate::roles;

/// A Zoho CRM org as a [`Source`].
pub struct ZohoSource {
    settings: Settings,
    client: Client,
    /// The fields read per object: the standard tables and the operator's mapped fields.
    maps: FieldMaps,
    /// Whether the org keeps every amount in one currency.
    currency: OrgCurrency,
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

impl ZohoSource {
    /// Builds the source from its config (no I/O: the token is refreshed on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `source.refresh_token`.
    pub fn new(config: ZohoConfig, key_prefix: &str) -> ConnectorResult<ZohoSource> {
        let settings = config.settings(key_prefix)?;
        let client = Client::new(&settings, config.credentials(key_prefix)?)?;
        Ok(ZohoSource {
            settings,
            client,
            maps: mapping::standard_maps(),
            currency: OrgCurrency::default(),
        })
    }

    /// How many access tokens this source has fetched (1 unless they expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    fn body(&self, path: &str, response: &HttpResponse) -> ConnectorResult<ListBody> {
        if response.status.as_u16() == 204 {
            return Ok(ListBody::default());
        }
        response.json(VENDOR, &format!("GET {path}"))
    }

    async fn list(
        &self,
        row: &ZohoObject,
        position: (&str, &str),
    ) -> ConnectorResult<Result<ListBody, HttpResponse>> {
        let path = format!("/crm/v8/{}", row.module);
        let fields = mapping::read_fields(&self.maps.get(row.object), row).join(",");
        let per_page = self.settings.page_size.to_string();
        let query = [
            ("fields", fields.as_str()),
            ("per_page", per_page.as_str()),
            ("sort_by", "id"),
            ("sort_order", "asc"),
            position,
        ];
        let response = self.client.send(Method::GET, &path, &query, None).await?;
        if response.is_success() {
            Ok(Ok(self.body(&path, &response)?))
        } else {
            Ok(Err(response))
        }
    }

    async fn keyset(&self, row: &ZohoObject, last: &str) -> ConnectorResult<Page> {
        let path = "/crm/v8/coql";
        let query = format!(
            "select {} from {} where id > {last} order by id asc limit {}",
            mapping::read_fields(&self.maps.get(row.object), row).join(", "),
            row.module,
            self.settings.page_size
        );
        let response = self
            .client
            .send_ok(
                Method::POST,
                path,
                &[],
                Some(&json!({"select_query": query})),
            )
            .await?;
        let body = self.body(path, &response)?;
        let new_last = body
            .data
            .last()
            .and_then(|r| r.get("id"))
            .and_then(Json::as_str);
        let next = match (body.info.more_records, new_last) {
            (true, Some(id)) if id != last => Some(format!("k:{id}")),
            (true, _) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("POST {path}"),
                    detail: "more records announced, but the page did not advance".into(),
                });
            }
            (false, _) => None,
        };
        self.page(row, &body.data, next).await
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
        page.log_read(VENDOR, object);
        Ok(page)
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
                return self.keyset(row, last).await;
            }
            Cursor::Keyset { .. } | Cursor::Token { .. } => return Err(bad_cursor()),
            Cursor::Page(n) => ("page", n.to_string()),
        };
        let body = match self.list(row, (param, &page)).await? {
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
        if response.status.as_u16() == 204 {
            return Ok(Some(0));
        }
        let body: Json = response.json(VENDOR, &format!("GET {path}"))?;
        // Documented as a number; some answers quote it.
        Ok(body
            .get("count")
            .and_then(|c| c.as_u64().or_else(|| c.as_str()?.trim().parse().ok())))
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

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        self.currency
            .learn(object, &self.maps, || crate::currency::single(&self.client))
            .await?;
        let mut page = self.read_records(object, cursor).await?;
        self.currency.stamp(object, &mut page.records);
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
}
