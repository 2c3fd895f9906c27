//! Reading companies and contacts from HubSpot's v3 list endpoints.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::http::{HttpStats, RateLimit};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Source};
use serde_json::{Value, json};

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::config::HubspotConfig;
use crate::mapping::{self, ListResponse};

/// A HubSpot account as a [`Source`]: pages through `GET /crm/v3/objects/{type}` in id order.
pub struct HubspotSource {
    client: HubspotClient,
    page_size: u32,
}

impl HubspotSource {
    /// Builds the source from its config; errors name `key_prefix.<key>` (`source.token`).
    pub fn new(config: HubspotConfig, key_prefix: &str) -> ConnectorResult<HubspotSource> {
        let (client, role) = HubspotClient::new(&config, key_prefix)?;
        Ok(HubspotSource {
            client,
            page_size: role.page_size,
        })
    }

    /// The ten-second rate limit in force: the configured one, or what HubSpot announced since
    /// (any announced limit if none was configured; only a lower one if one was).
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.client.rate_limit()
    }
}

#[async_trait]
impl Source for HubspotSource {
    fn vendor(&self) -> &'static str {
        VENDOR
    }

    fn http_stats(&self) -> Option<Arc<HttpStats>> {
        Some(self.client.stats())
    }

    async fn check(&self) -> ConnectorResult<()> {
        let path = "/crm/v3/objects/contacts";
        let (endpoint, mut response) = self
            .client
            .get_ok(path, &[("limit", "1"), ("archived", "false")])
            .await?;
        let _: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        tracing::debug!(vendor = VENDOR, "credentials accepted");
        Ok(())
    }

    /// One search with no filters and `limit: 1`, for its `total`: live records only, as the
    /// list reads them (search may lag just-written records by a short indexing delay, which
    /// is fine for a progress estimate). `Ok(None)` when the answer has no numeric `total`.
    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let path = format!("/crm/v3/objects/{}/search", mapping::object_path(object));
        let body = json!({"filterGroups": [], "properties": ["hs_object_id"], "limit": 1});
        let response: Value = self.client.search_json(&path, &body).await?;
        let total = response.get("total").and_then(Value::as_u64);
        tracing::debug!(vendor = VENDOR, %object, total, "counted records");
        Ok(total)
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let path = format!("/crm/v3/objects/{}", mapping::object_path(object));
        let properties: Vec<&str> = mapping::properties(object)
            .iter()
            .map(|(_, p)| *p)
            .collect();
        let properties = properties.join(",");
        let limit = self.page_size.to_string();
        let mut query = vec![
            ("limit", limit.as_str()),
            ("archived", "false"),
            ("properties", properties.as_str()),
        ];
        if object == ObjectType::Contacts {
            query.push(("associations", "companies"));
        }
        if let Some(after) = cursor {
            query.push(("after", after));
        }
        let (endpoint, mut response) = self.client.get_ok(&path, &query).await?;
        let response: ListResponse<'_> = response.json_borrowed(VENDOR, &endpoint)?;
        let next = response.paging.and_then(|p| p.next).map(|n| n.after);
        if next.is_some() && next.as_deref() == cursor {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("GET {path}"),
                detail: "the next-page cursor equals the current one; paging would never end"
                    .into(),
            });
        }
        let mut page = Page {
            records: Vec::with_capacity(response.results.len()),
            next,
            unreadable: Vec::new(),
        };
        for raw in &response.results {
            match mapping::to_record(object, raw) {
                Ok(record) => page.records.push(record),
                Err(rejection) => {
                    tracing::warn!(vendor = VENDOR, %object, id = %rejection.source_id, "record has unreadable values");
                    page.unreadable.push(rejection);
                }
            }
        }
        tracing::debug!(
            vendor = VENDOR,
            %object,
            records = page.records.len(),
            unreadable = page.unreadable.len(),
            last_page = page.next.is_none(),
            "read page"
        );
        Ok(page)
    }
}
