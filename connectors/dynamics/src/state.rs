//! `[sync] state = "sink"`: ferry sync's state (and its lease) kept in the environment as
//! environment variables. Each is a definition (`environmentvariabledefinitions`, schema name
//! `ferry_state_…` or `ferry_lease_…`, type JSON) and its value record
//! (`environmentvariablevalues`), whose `value` (`Memo`, 2,000 characters) holds the document.
//! A replacement is a `PATCH` of the value record with `If-Match` naming the ETag this run
//! read or wrote: Dataverse answers 412 when the record changed since, which is the
//! compare-and-swap [`StateStore`] needs. Watermarks, ids and hashes only; no record data.

use std::sync::Arc;

use ferry_core::http::BodyCap;
use ferry_core::state_store::{StateStore, StoreError, Stored};
use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::{Call, Client, endpoint};

/// The most characters an environment variable value holds (`value` is a `Memo` of 2,000).
pub const VALUE_MAX: usize = 2_000;

/// The `type` of a JSON environment variable definition.
const TYPE_JSON: i64 = 100_000_003;

/// One environment variable of the environment, as a [`StateStore`].
pub(crate) struct EnvironmentStore {
    client: Arc<Client>,
    schema: String,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for EnvironmentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvironmentStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A version as this store hands it out: the value record's id and its ETag, so that a
/// replacement needs no lookup.
fn version(id: &str, etag: &str) -> String {
    format!("{id} {etag}")
}

impl EnvironmentStore {
    /// The variable `schema` (letters, digits and `_` only) of the environment `client`
    /// reaches; its requests run on `runtime`.
    pub(crate) fn new(
        client: Arc<Client>,
        schema: &str,
        runtime: tokio::runtime::Handle,
    ) -> EnvironmentStore {
        EnvironmentStore {
            client,
            schema: schema.to_owned(),
            runtime,
        }
    }

    fn filter(&self) -> String {
        urlencoding::encode(&format!("schemaname eq '{}'", self.schema)).into_owned()
    }

    /// The value record: its id, value and ETag.
    async fn find_value(&self) -> ConnectorResult<Option<(String, String, String)>> {
        let url = self.client.api_url(&format!(
            "environmentvariablevalues?$select=environmentvariablevalueid,value&$filter={}",
            self.filter()
        ))?;
        let endpoint = endpoint(&Method::GET, &url);
        let page: Json = self.client.get_json_capped(url, &[], BodyCap::Page).await?;
        let Some(row) = page["value"].as_array().and_then(|rows| rows.first()) else {
            return Ok(None);
        };
        let field = |name: &str| {
            row[name]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.clone(),
                    detail: format!("an environment variable value has no `{name}`"),
                })
        };
        let text = row["value"].as_str().unwrap_or_default().to_owned();
        Ok(Some((
            field("environmentvariablevalueid")?,
            text,
            field("@odata.etag")?,
        )))
    }

    /// The definition's id, if it exists.
    async fn find_definition(&self) -> ConnectorResult<Option<String>> {
        let url = self.client.api_url(&format!(
            "environmentvariabledefinitions?$select=environmentvariabledefinitionid&$filter={}",
            self.filter()
        ))?;
        let page: Json = self.client.get_json_capped(url, &[], BodyCap::Page).await?;
        Ok(page["value"]
            .as_array()
            .and_then(|rows| rows.first())
            .and_then(|row| row["environmentvariabledefinitionid"].as_str())
            .map(str::to_owned))
    }

    /// Sends a write; `Ok(None)` when Dataverse answers 412 (changed since read, or a
    /// definition of that name made meanwhile) or 404 (deleted since read).
    async fn send_write(
        &self,
        method: Method,
        rest: &str,
        if_match: Option<&str>,
        body: Json,
    ) -> ConnectorResult<Option<Json>> {
        let url = self.client.api_url(rest)?;
        let mut headers: Vec<(&'static str, &str)> = vec![("Prefer", "return=representation")];
        if let Some(etag) = if_match {
            headers.push(("If-Match", etag));
        }
        let call = Call {
            method,
            url,
            headers: &headers,
            body: Some(("application/json".into(), body.to_string().into_bytes())),
            cap: BodyCap::Small,
        };
        let response = self.client.send(&call).await?;
        match response.status.as_u16() {
            404 | 412 => Ok(None),
            _ if response.is_success() => response
                .json(VENDOR, &endpoint(&call.method, &call.url))
                .map(Some),
            _ => Err(self
                .client
                .error_for(&endpoint(&call.method, &call.url), &response)),
        }
    }

    fn etag_of(&self, written: &Json, id_column: &str) -> ConnectorResult<(String, String)> {
        match (written[id_column].as_str(), written["@odata.etag"].as_str()) {
            (Some(id), Some(etag)) => Ok((id.to_owned(), etag.to_owned())),
            _ => Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: format!("{}environmentvariablevalues", self.client.api_base().path()),
                detail: "the written environment variable has no id or ETag".into(),
            }),
        }
    }

    async fn write_async(
        &self,
        text: &str,
        version: Option<&str>,
    ) -> ConnectorResult<Option<String>> {
        if let Some(version) = version {
            let (id, etag) = version.split_once(' ').unwrap_or((version, "*"));
            let written = self
                .send_write(
                    Method::PATCH,
                    &format!("environmentvariablevalues({id})?$select=environmentvariablevalueid"),
                    Some(etag),
                    json!({ "value": text }),
                )
                .await?;
            return match written {
                None => Ok(None),
                Some(w) => {
                    let (id, etag) = self.etag_of(&w, "environmentvariablevalueid")?;
                    Ok(Some(self::version(&id, &etag)))
                }
            };
        }
        // First write: the definition (its schema name is unique, so of two runs creating it
        // one is refused), then its value.
        let definition = match self.find_definition().await? {
            Some(id) => id,
            None => {
                let created = self
                    .send_write(
                        Method::POST,
                        "environmentvariabledefinitions?$select=environmentvariabledefinitionid",
                        None,
                        json!({
                            "schemaname": self.schema,
                            "displayname": self.schema,
                            "description": "Kept by ferry sync: watermarks, record ids and \
                                            hashes, no record data. Deleting it (with its value) \
                                            makes the next sync a full one.",
                            "type": TYPE_JSON,
                        }),
                    )
                    .await?;
                match created
                    .as_ref()
                    .and_then(|c| c["environmentvariabledefinitionid"].as_str())
                {
                    Some(id) => id.to_owned(),
                    None => return Ok(None),
                }
            }
        };
        if self.find_value().await?.is_some() {
            return Ok(None);
        }
        let written = self
            .send_write(
                Method::POST,
                "environmentvariablevalues?$select=environmentvariablevalueid",
                None,
                json!({
                    "schemaname": self.schema,
                    "value": text,
                    "EnvironmentVariableDefinitionId@odata.bind":
                        format!("/environmentvariabledefinitions({definition})"),
                }),
            )
            .await?;
        match written {
            None => Ok(None),
            Some(w) => {
                let (id, etag) = self.etag_of(&w, "environmentvariablevalueid")?;
                Ok(Some(self::version(&id, &etag)))
            }
        }
    }

    /// Runs `work` to its end from blocking code: on the runtime's worker (handing its other
    /// tasks to other workers meanwhile), or from a thread of its own.
    fn block<T>(
        &self,
        work: impl std::future::Future<Output = ConnectorResult<T>>,
    ) -> Result<T, StoreError> {
        let done = match tokio::runtime::Handle::try_current() {
            Ok(current)
                if current.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread =>
            {
                return Err(StoreError::Failed {
                    store: self.name(),
                    detail: "a state in the sink needs the multi-threaded runtime".into(),
                });
            }
            Ok(_) => tokio::task::block_in_place(|| self.runtime.block_on(work)),
            Err(_) => self.runtime.block_on(work),
        };
        done.map_err(|e| StoreError::Failed {
            store: self.name(),
            detail: e.to_string(),
        })
    }
}

impl StateStore for EnvironmentStore {
    fn name(&self) -> String {
        format!("{VENDOR} environment variable {}", self.schema)
    }

    fn capacity(&self) -> Option<usize> {
        Some(VALUE_MAX)
    }

    fn read(&self) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .block(self.find_value())?
            .map(|(id, text, etag)| Stored {
                text,
                version: version(&id, &etag),
            }))
    }

    fn write(&self, text: &str, version: Option<&str>) -> Result<String, StoreError> {
        let len = text.chars().count();
        if len > VALUE_MAX {
            return Err(StoreError::TooLarge {
                store: self.name(),
                len,
                max: VALUE_MAX,
            });
        }
        self.block(self.write_async(text, version))?
            .ok_or_else(|| StoreError::Conflict { store: self.name() })
    }
}
