//! Reading accounts, contacts, opportunities and annotations:
//! `GET /api/data/v9.2/{accounts|contacts|opportunities|annotations}` in primary-key
//! order with `Prefer: odata.maxpagesize`, following `@odata.nextLink` unchanged (as the
//! documentation requires) with the same page size on every page.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMaps, VendorField};
use ferry_core::http::{BodyCap, HttpStats};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Source};
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

    /// The first page's URL of `object`.
    fn first_url(&self, t: &DataverseObject) -> ConnectorResult<Url> {
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
            q.append_pair("$orderby", t.id);
        }
        Ok(url)
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
            None => self.first_url(t)?,
            Some(link) => self.next_url(t, link)?,
        };
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
}
