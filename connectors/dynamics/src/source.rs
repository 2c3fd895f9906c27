//! Reading accounts, contacts, opportunities and annotations:
//! `GET /api/data/v9.2/{accounts|contacts|opportunities|annotations}` in primary-key
//! order with `Prefer: odata.maxpagesize`, following `@odata.nextLink` unchanged (as the
//! documentation requires) with the same page size on every page.
//!
//! Incremental reads (`ferry sync`) add `$filter=modifiedon ge <watermark>` and order by
//! `modifiedon asc,<primary key> asc`, paged the same way: Dataverse stamps `modifiedon` on
//! every Update of a row (a column, a lookup set by `@odata.bind`, an owner, a close), by a
//! user or a plug-in, and the filter needs nothing enabled on the table. Change tracking
//! (`Prefer: odata.track-changes`, delta links) would also report deletions, but enabling it
//! cannot be undone on a customer's table, its token expires after 7 days and it refuses
//! `$filter`/`$orderby`. The sync point is the environment's clock (the `Date` header of a
//! `GET WhoAmI`) less [`SYNC_OVERLAP`].

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMaps, VendorField};
use ferry_core::http::{BodyCap, HttpStats};
use ferry_core::{
    ConnectorError, ConnectorResult, FetchedPage, ObjectType, Page, Source, Watermark,
};
use serde::Deserialize;
use serde_json::{Map, Value as Json};
use url::Url;

use crate::VENDOR;
use crate::client::Client;
use crate::config::DynamicsConfig;
use crate::mapping::{self, DataverseObject, Identity};

/// A Dataverse environment as a [`Source`].
pub struct DynamicsSource {
    client: Client,
    page_size: u32,
    /// The standard columns and the operator's mapped ones, per object.
    fields: FieldMaps,
}

#[derive(Deserialize)]
pub(crate) struct Collection {
    #[serde(default)]
    pub value: Vec<Map<String, Json>>,
    #[serde(rename = "@odata.nextLink")]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.count")]
    pub count: Option<u64>,
}

/// How far before the environment's clock at the start of a read the next incremental read
/// starts: `modifiedon` is stamped when the transaction writes the row, which becomes visible
/// when it commits (a plug-in's long transaction, a `$batch` change set, a bulk
/// `UpdateMultiple`), and the environment's servers' clocks drift. Changes inside the overlap
/// are read twice; the second read of one that did not change is skipped (`unchanged_skipped`).
pub const SYNC_OVERLAP: std::time::Duration = std::time::Duration::from_secs(300);

/// `@odata.count` stops at this; a count of exactly this says "this many or more".
pub(crate) const COUNT_CAP: u64 = 5_000;

impl DynamicsSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.client_id`).
    pub fn new(config: DynamicsConfig, key_prefix: &str) -> ConnectorResult<DynamicsSource> {
        let settings = config.settings(key_prefix)?;
        Ok(DynamicsSource {
            client: Client::new(&settings)?,
            page_size: settings.page_size,
            fields: crate::fields::standard_maps(),
        })
    }

    /// How many access tokens this source has fetched.
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    /// The first page's URL of `object`: every record in primary-key order, or with `since`
    /// the records modified at or after it, by `modifiedon` then primary key.
    fn first_url(&self, t: &DataverseObject, since: Option<&Watermark>) -> ConnectorResult<Url> {
        let mut url = self.client.api_url(t.set)?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair(
                "$select",
                &mapping::select(t, &self.fields.get(t.object), &["createdon", "modifiedon"]),
            );
            if let Some(expand) = mapping::expand(t, Identity::Source) {
                q.append_pair("$expand", &expand);
            }
            match since {
                None => q.append_pair("$orderby", t.id),
                Some(since) => q
                    .append_pair("$filter", &format!("modifiedon ge {}", whole_second(since)))
                    .append_pair("$orderby", &format!("modifiedon asc,{} asc", t.id)),
            };
        }
        Ok(url)
    }

    /// The page of `object` at `url` (`cursor` is the next link it came from, if any).
    async fn page_at(
        &self,
        t: &DataverseObject,
        url: Url,
        cursor: Option<&str>,
    ) -> ConnectorResult<Page> {
        let object = t.object;
        let prefer = max_page_size(self.page_size);
        let response: Collection = self.client.get_json(url, &[("Prefer", &prefer)]).await?;
        if response.next_link.is_some() && response.next_link.as_deref() == cursor {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("GET {}{}", self.client.api_base().path(), t.set),
                detail: "the next link equals the current one; paging would never end".into(),
            });
        }
        let map = self.fields.get(object);
        let mut page = Page {
            records: Vec::with_capacity(response.value.len()),
            next: response.next_link,
            unreadable: Vec::new(),
        };
        for row in &response.value {
            let Some(mapped) = mapping::from_dataverse(t, row, Identity::Source, &map) else {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {}{}", self.client.api_base().path(), t.set),
                    detail: "a record has no primary key".into(),
                });
            };
            page.push(VENDOR, object, mapped);
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }

    /// A next link, checked to point at this environment's entity set (the token goes with it).
    fn next_url(&self, t: &DataverseObject, link: &str) -> ConnectorResult<Url> {
        let set = t.set;
        let expected = format!("{}{set}?", self.client.api_base());
        if !link.starts_with(&expected) {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("GET {}{set}", self.client.api_base().path()),
                detail: "the @odata.nextLink does not point at this environment's entity set"
                    .into(),
            });
        }
        Url::parse(link).map_err(|e| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {}{set}", self.client.api_base().path()),
            detail: format!("the @odata.nextLink is not a URL: {e}"),
        })
    }
}

/// A watermark as an OData date-time literal in whole seconds (`2026-12-06T16:47:33Z`),
/// rounded down: earlier is always safe, later never is.
fn whole_second(since: &Watermark) -> String {
    let at = since.at_ms - since.at_ms.rem_euclid(1000);
    let text = Watermark::at(at).to_rfc3339();
    match text.strip_suffix(".000Z") {
        Some(seconds) => format!("{seconds}Z"),
        None => text,
    }
}

/// The `Prefer` value for a page size.
pub(crate) fn max_page_size(n: u32) -> String {
    format!("odata.maxpagesize={n}")
}

#[async_trait]
impl Source for DynamicsSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// The account's organisation id (`GET WhoAmI`).
    async fn account_id(&self) -> ConnectorResult<Option<ferry_core::AccountId>> {
        self.client.account_id().await.map(Some)
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    /// Every user of the environment (`systemusers`), paged as records are.
    async fn users(&self) -> ConnectorResult<Vec<ferry_core::User>> {
        crate::directory::users(&self.client, self.page_size).await
    }

    /// The opportunity business process flows and their stages.
    async fn pipelines(&self, object: ObjectType) -> ConnectorResult<Vec<ferry_core::Pipeline>> {
        crate::directory::pipelines(&self.client, self.page_size, object).await
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client.authenticate().await?;
        let _: Json = self
            .client
            .get_json_capped(self.client.api_url("WhoAmI")?, &[], BodyCap::Small)
            .await?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// `$count=true` on a one-record page. Dataverse caps the count at 5,000, so a count of
    /// 5,000 says only "at least 5,000": then `None` rather than a wrong number.
    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let t = mapping::binding(object)?;
        let mut url = self.client.api_url(t.set)?;
        url.query_pairs_mut()
            .append_pair("$select", t.id)
            .append_pair("$count", "true");
        let prefer = max_page_size(1);
        let page: Collection = self.client.get_json(url, &[("Prefer", &prefer)]).await?;
        let count = page.count.filter(|n| *n < COUNT_CAP);
        tracing::debug!(vendor = VENDOR, %object, count, "counted records");
        Ok(count)
    }

    /// One `$count` of the rows any of whose consent columns is set
    /// (`$filter=donotphone eq true`, `donotemail eq true or donotbulkemail eq true`), a page of
    /// one row; at Dataverse's count cap (5,000), or for an opt-out in a mapped column, every
    /// page is read and counted instead.
    async fn count_opted_out(&self, object: ObjectType, field: &str) -> ConnectorResult<u64> {
        let t = mapping::binding(object)?;
        let Some(opt_out) = t.opt_outs.iter().find(|o| o.canonical == field) else {
            return ferry_core::connector::count_opted_out_by_reading(self, object, field).await;
        };
        let filter: Vec<String> = opt_out
            .columns
            .iter()
            .map(|c| format!("{c} eq true"))
            .collect();
        let mut url = self.client.api_url(t.set)?;
        url.query_pairs_mut()
            .append_pair("$select", t.id)
            .append_pair("$filter", &filter.join(" or "))
            .append_pair("$count", "true");
        let prefer = max_page_size(1);
        let page: Collection = self.client.get_json(url, &[("Prefer", &prefer)]).await?;
        match page.count {
            Some(n) if n < COUNT_CAP => Ok(n),
            // Capped (or not counted): never read a capped count as the number opted out.
            _ => ferry_core::connector::count_opted_out_by_reading(self, object, field).await,
        }
    }

    /// The table's column definitions (`GET EntityDefinitions(LogicalName='…')/Attributes`).
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        crate::fields::describe(&self.client, object).await
    }

    /// Reads the mapped columns too (a choice's value as its label).
    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        crate::fields::map_fields(&self.fields, object, bindings)
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let t = mapping::binding(object)?;
        let url = match cursor {
            None => self.first_url(t, None)?,
            Some(link) => self.next_url(t, link)?,
        };
        self.page_at(t, url, cursor).await
    }

    /// The records modified at or after `since` (`modifiedon ge`), by `modifiedon` then
    /// primary key, paged by next link like a full read and read into records the same way.
    async fn fetch_changed_page(
        &self,
        object: ObjectType,
        since: &Watermark,
        cursor: Option<&str>,
    ) -> ConnectorResult<FetchedPage> {
        let t = mapping::binding(object)?;
        let url = match cursor {
            None => self.first_url(t, Some(since))?,
            Some(link) => self.next_url(t, link)?,
        };
        Ok(FetchedPage::ready(self.page_at(t, url, cursor).await?))
    }

    /// The environment's clock (the `Date` header of `GET WhoAmI`) less [`SYNC_OVERLAP`].
    async fn sync_point(&self, object: ObjectType) -> ConnectorResult<Watermark> {
        mapping::binding(object)?;
        let now = self.client.server_time_ms().await?;
        Ok(Watermark::settled_before(now, SYNC_OVERLAP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watermark_becomes_a_whole_second_literal_rounded_down() {
        // 2026-12-06T16:47:33.999Z: the literal is the second it falls in, never later.
        let at = 1_796_575_653_999;
        assert_eq!(whole_second(&Watermark::at(at)), "2026-12-06T16:47:33Z");
        assert_eq!(
            whole_second(&Watermark::at(at - 999)),
            "2026-12-06T16:47:33Z"
        );
        assert_eq!(whole_second(&Watermark::at(0)), "1970-01-01T00:00:00Z");
    }
}
