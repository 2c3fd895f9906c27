//! Reading persons and organizations from Pipedrive's v2 list endpoints.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMaps, VendorField};
use ferry_core::http::{HttpStats, RateLimit};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Source};
use serde_json::Value;

use crate::VENDOR;
use crate::client::PipedriveClient;
use crate::config::PipedriveConfig;
use crate::mapping;
use crate::objects;

/// A Pipedrive company account as a [`Source`]: pages through `GET /api/v2/{persons|
/// organizations}` with Pipedrive's cursor, in id order. Source ids are Pipedrive ids, and so
/// are references (a person's company is its `org_id`). Lists carry every custom field, so mapped custom fields
/// need no extra request.
pub struct PipedriveSource {
    client: PipedriveClient,
    page_size: u32,
    /// The plain fields read per object: the standard table and the mapped fields.
    fields: FieldMaps,
}

impl PipedriveSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.api_token`).
    pub fn new(config: PipedriveConfig, key_prefix: &str) -> ConnectorResult<PipedriveSource> {
        let (client, settings) = PipedriveClient::new(&config, key_prefix)?;
        Ok(PipedriveSource {
            client,
            page_size: settings.page_size,
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
        let map = self.fields.get(object);
        let path = format!("/api/v2/{}", row.path);
        let limit = self.page_size.to_string();
        let include = row.include_fields.join(",");
        let mut query = vec![("limit", limit.as_str())];
        if !include.is_empty() {
            query.push(("include_fields", include.as_str()));
        }
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
        let next = body
            .pointer("/additional_data/next_cursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        if next.is_some() && next.as_deref() == cursor {
            return Err(malformed(
                "the next-page cursor equals the current one; paging would never end",
            ));
        }
        let mut page = Page {
            records: Vec::with_capacity(items.len()),
            next,
            unreadable: Vec::new(),
        };
        for raw in items {
            let id =
                mapping::id_of(raw).ok_or_else(|| malformed("a record without a numeric id"))?;
            // A reference holds the target's Pipedrive id, which is its source id.
            let mapped = mapping::to_record(row, raw, id.to_string(), |_, id| id.to_string(), &map);
            page.push(VENDOR, object, mapped);
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }
}
