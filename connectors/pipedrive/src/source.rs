//! Reading persons, organizations and deals from Pipedrive's v2 list endpoints (and each
//! deal's participants from v1), and notes from v1.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMaps, VendorField};
use ferry_core::http::{HttpStats, RateLimit};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Source};
use futures::StreamExt;
use serde_json::Value;

use crate::VENDOR;
use crate::client::PipedriveClient;
use crate::config::PipedriveConfig;
use crate::mapping;
use crate::objects;

/// A Pipedrive company account as a [`Source`]: pages through `GET /api/v2/{persons|
/// organizations|deals}` with Pipedrive's cursor, in id order. Source ids are Pipedrive ids, and so
/// are references (a person's company is its `org_id`) and links (a deal's contacts: its
/// `person_id`, then its other participants). Lists carry every custom field, so mapped custom fields
/// need no extra request.
pub struct PipedriveSource {
    client: PipedriveClient,
    page_size: u32,
    /// Requests in flight when reading per-record lists (a deal's participants).
    concurrency: usize,
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
            concurrency: settings.concurrency,
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

impl PipedriveSource {
    /// Adds each record's participants (`GET /v1/{path}/{id}/participants`, offset-paged; one
    /// request per record, as Pipedrive has no batch read of them) to its `links` field, after
    /// the link its id field holds, each person once.
    async fn add_participants(
        &self,
        row: &objects::PipedriveObject,
        links: &objects::PipedriveLinks,
        records: &mut [Result<ferry_core::Record, ferry_core::RecordRejection>],
    ) -> ConnectorResult<()> {
        let reads: Vec<_> = records
            .iter()
            .enumerate()
            .filter_map(|(at, r)| Some((at, r.as_ref().ok()?.source_id.parse::<u64>().ok()?)))
            .map(|(at, id)| async move {
                let path = format!("/v1/{}/{id}/participants", row.path);
                Ok::<_, ConnectorError>((at, crate::participants::list(&self.client, &path).await?))
            })
            .collect();
        let answers: Vec<_> = futures::stream::iter(reads)
            .buffered(self.concurrency)
            .collect()
            .await;
        for answer in answers {
            let (at, people) = answer?;
            if let Some(Ok(record)) = records.get_mut(at) {
                // Source ids are Pipedrive ids.
                let people: Vec<u64> = people.into_iter().map(|(_, person)| person).collect();
                crate::participants::add_to(record, links, &people, |_, id| id.to_string());
            }
        }
        Ok(())
    }
}

impl PipedriveSource {
    /// A page of notes (`GET /v1/notes`, offset-paged in id order; the cursor is the offset):
    /// body, original time, author and parents (Pipedrive ids, which are their source ids).
    async fn read_notes(&self, cursor: Option<&str>) -> ConnectorResult<Page> {
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
        let (items, next) = crate::notes::page(&self.client, start, limit, None).await?;
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
            return self.read_notes(cursor).await;
        }
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
        let mut mapped = Vec::with_capacity(items.len());
        for raw in items {
            let id =
                mapping::id_of(raw).ok_or_else(|| malformed("a record without a numeric id"))?;
            // A reference holds the target's Pipedrive id, which is its source id.
            mapped.push(mapping::to_record(
                row,
                raw,
                id.to_string(),
                |_, id| id.to_string(),
                &map,
            ));
        }
        for links in row.links.iter().filter(|l| l.participants) {
            self.add_participants(row, links, &mut mapped).await?;
        }
        for record in mapped {
            page.push(VENDOR, object, record);
        }
        page.log_read(VENDOR, object);
        Ok(page)
    }
}
