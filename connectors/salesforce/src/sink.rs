//! The Salesforce sink: upserts through sObject Collections keyed by the external-id field,
//! reads back through SOQL.

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::fields::{FieldBinding, FieldMap, FieldMaps, NewField, VendorField};
use ferry_core::http::{BodyCap, HttpStats};
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::{
    Capability, ConnectorError, ConnectorResult, ObjectType, Record, RecordOutcome,
    RecordRejection, Sink, Written,
};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::client::{Call, Client};
use crate::config::{SalesforceConfig, Settings};
use crate::fields::{self, Describe};
use crate::mapping::{self, COMPANY_LOOKUP, SalesforceBody};
use crate::policy::clean_code;
use crate::soql;

/// A Salesforce org as a sink.
pub struct SalesforceSink {
    settings: Settings,
    client: Client,
    /// The standard field maps, plus the fields the engine mapped.
    fields: FieldMaps,
}

/// The body of an sObject Collections request.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Collection<'a> {
    all_or_none: bool,
    records: &'a [SalesforceBody<'a>],
}

/// A record's result in an sObject Collections response.
#[derive(Deserialize)]
struct SaveResult {
    id: Option<String>,
    success: bool,
    #[serde(default)]
    created: Option<bool>,
    #[serde(default)]
    errors: Vec<SaveError>,
}

/// A record's error. Salesforce's `message` is deliberately not read: it quotes values.
#[derive(Deserialize)]
struct SaveError {
    #[serde(rename = "statusCode", default)]
    status_code: String,
    #[serde(default)]
    fields: Vec<String>,
}

impl SalesforceSink {
    /// Builds the sink from its config (no I/O: the token is fetched on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `sink.client_secret`.
    pub fn new(config: SalesforceConfig, key_prefix: &str) -> ConnectorResult<SalesforceSink> {
        let (settings, client) = Client::build(&config, key_prefix)?;
        Ok(SalesforceSink {
            settings,
            client,
            fields: mapping::standard_maps(),
        })
    }

    /// How many access tokens this sink has fetched (1 unless sessions expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    fn ext(&self) -> &str {
        &self.settings.external_id_field
    }

    /// Checks `sobject` has the external-id field and every mapped field, writable.
    async fn check_object(&self, sobject: &str, written: &[&str]) -> ConnectorResult<Describe> {
        let described = fields::describe(&self.client, sobject).await?;
        let find = |name: &str| described.field(name);
        let ext = self.ext();
        match find(ext) {
            None => return Err(setup_missing_field(sobject, ext)),
            Some(f) if !f.external_id => return Err(setup_not_external(sobject, ext)),
            Some(f) => {
                if !f.case_sensitive {
                    tracing::warn!(
                        vendor = VENDOR,
                        sobject,
                        field = ext,
                        "the external-id field is case-insensitive: source ids differing only in case would be merged"
                    );
                }
            }
        }
        let unwritable: Vec<&str> = written
            .iter()
            .copied()
            .filter(|name| !find(name).is_some_and(|f| f.createable && f.updateable))
            .collect();
        if !unwritable.is_empty() {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "the integration user cannot write {sobject} fields {}: give the connected app's run-as user \
                     edit access to them (Setup → Object Manager → {sobject} → Fields & Relationships → the field → \
                     Set Field-Level Security), or use a profile or permission set that has it",
                    unwritable.join(", ")
                ),
            });
        }
        Ok(described)
    }

    /// Sends one collection upsert of `items` (record index, body) and answers each: written,
    /// refused, or refused for a reason that passes (sent again by [`settle`]).
    async fn send_collection<'r>(
        &self,
        sobject: &str,
        records: &[Record],
        items: Vec<(usize, SalesforceBody<'r>)>,
        map: &FieldMap,
    ) -> ConnectorResult<Vec<((usize, SalesforceBody<'r>), Attempt<RecordOutcome>)>> {
        let ext = self.ext();
        let path = self
            .client
            .data_path(&format!("composite/sobjects/{sobject}/{ext}"));
        let endpoint = format!("PATCH {path}");
        let bodies: Vec<SalesforceBody<'_>> = items.iter().map(|(_, b)| *b).collect();
        // Encoded straight from the records: no JSON tree per record.
        let body = serde_json::to_vec(&Collection {
            all_or_none: false,
            records: &bodies,
        })
        .map_err(|e| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.clone(),
            detail: format!("cannot encode the request: {e}"),
        })?;
        let response = self
            .client
            .send(Call {
                method: Method::PATCH,
                path: &path,
                query: &[],
                body: Some(body),
                headers: &[],
                cap: BodyCap::Page,
            })
            .await?;
        let results: Vec<SaveResult> = response.json(VENDOR, &endpoint)?;
        if results.len() != items.len() {
            return Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint,
                detail: format!("{} results for {} records", results.len(), items.len()),
            });
        }
        let mut out = Vec::with_capacity(items.len());
        for (item, result) in items.into_iter().zip(results) {
            let record = &records[item.0];
            let attempt = if result.success {
                let sink_id = result.id.filter(|id| !id.is_empty()).ok_or_else(|| {
                    ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: endpoint.clone(),
                        detail: "a successful result has no id".into(),
                    }
                })?;
                Attempt::Done(RecordOutcome {
                    source_id: record.source_id.clone(),
                    result: Ok(Written {
                        sink_id,
                        created: result.created.unwrap_or(false),
                    }),
                })
            } else {
                let (code, reason) = rejection_reason(record, &result.errors, ext, map);
                let refused = reject(record, &code, reason);
                if is_transient(&result.errors) {
                    Attempt::Again(refused)
                } else {
                    Attempt::Done(refused)
                }
            };
            out.push((item, attempt));
        }
        Ok(out)
    }

    /// Sends one collection upsert of at most 200 records; returns outcomes in input order.
    async fn upsert_chunk(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let sobject = mapping::sobject(object);
        let ext = self.ext();
        let map = self.fields.get(object);
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut sent: Vec<usize> = Vec::with_capacity(records.len());
        let mut bodies: Vec<SalesforceBody<'_>> = Vec::with_capacity(records.len());
        for (i, record) in records.iter().enumerate() {
            if record.source_id.is_empty() {
                outcomes[i] = Some(reject(
                    record,
                    "MISSING_SOURCE_ID",
                    "the record has no source id".into(),
                ));
                continue;
            }
            match mapping::to_salesforce(record, ext, &map) {
                Ok(body) => {
                    sent.push(i);
                    bodies.push(body);
                }
                Err(e) => {
                    outcomes[i] = Some(RecordOutcome {
                        source_id: record.source_id.clone(),
                        result: Err(e.into_rejection(&record.source_id)),
                    });
                }
            }
        }
        // Records refused with a transient per-record code (a row lock) are sent again, in a
        // smaller collection, after a backoff; the rest of their collection is already saved.
        let items: Vec<(usize, SalesforceBody<'_>)> = sent.into_iter().zip(bodies).collect();
        let resend = Resend::from_retry(&self.settings.retry);
        let settled = settle(VENDOR, items, resend, |items| {
            self.send_collection(sobject, records, items, &map)
        })
        .await?;
        for ((i, _), outcome) in settled {
            outcomes[i] = Some(outcome);
        }
        let written = outcomes
            .iter()
            .flatten()
            .filter(|o| o.result.as_ref().is_ok_and(|w| w.created))
            .count();
        let rejected = outcomes
            .iter()
            .flatten()
            .filter(|o| o.result.is_err())
            .count();
        tracing::debug!(
            vendor = VENDOR,
            sobject,
            records = records.len(),
            created = written,
            rejected,
            "upserted"
        );
        outcomes
            .into_iter()
            .zip(records)
            .map(|(o, r)| {
                o.ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("PATCH composite/sobjects/{sobject}"),
                    detail: format!("no outcome for record {}", r.source_id),
                })
            })
            .collect()
    }
}

/// Per-record error codes that say the record could not be saved *now*: another transaction
/// held its row (or its parent's). Salesforce documents retrying them.
const TRANSIENT_CODES: &[&str] = &["UNABLE_TO_LOCK_ROW"];

/// Whether a record's errors are all transient, so sending it again can succeed.
fn is_transient(errors: &[SaveError]) -> bool {
    !errors.is_empty()
        && errors
            .iter()
            .all(|e| TRANSIENT_CODES.contains(&e.status_code.as_str()))
}

fn reject(record: &Record, code: &str, reason: String) -> RecordOutcome {
    RecordOutcome {
        source_id: record.source_id.clone(),
        result: Err(RecordRejection {
            source_id: record.source_id.clone(),
            code: code.to_owned(),
            reason,
        }),
    }
}

/// Keeps a Salesforce field name to API-name characters.
fn clean_field(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
        .take(80)
        .collect()
}

/// A rejection's code and reason from Salesforce's errors: codes and field names, with the
/// canonical names beside them, never the vendor's message (which quotes values).
fn rejection_reason(
    record: &Record,
    errors: &[SaveError],
    ext: &str,
    map: &FieldMap,
) -> (String, String) {
    let canonical = |sf: &str| {
        map.iter()
            .find(|b| b.vendor.eq_ignore_ascii_case(sf))
            .map(|b| b.canonical.clone())
    };
    let parts: Vec<String> = errors
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let code = clean_code(&e.status_code);
            let names: Vec<String> = e
                .fields
                .iter()
                .map(|f| {
                    let f = clean_field(f);
                    match canonical(&f) {
                        Some(c) => format!("{f} ({c})"),
                        None => f,
                    }
                })
                .collect();
            let has_company = record.object == ObjectType::CONTACTS && record.text(COMPANY_LOOKUP.0).is_some();
            // The first error's code is the rejection's code; only further errors repeat theirs.
            let prefix = if i == 0 { String::new() } else { format!("{code} ") };
            if !names.is_empty() {
                format!("{prefix}field {}", names.join(", "))
            } else if code == "INVALID_FIELD" && has_company {
                format!(
                    "{prefix}the company reference: no Account has the contact's company as its {ext} (the company \
                     was not migrated, or was rejected)"
                )
            } else if i == 0 {
                "the record (no field named)".to_owned()
            } else {
                code
            }
        })
        .collect();
    let code = errors
        .first()
        .map(|e| clean_code(&e.status_code))
        .filter(|c| !c.is_empty());
    let reason = if parts.is_empty() {
        "refused without an error code".to_owned()
    } else {
        format!("Salesforce refused {}", parts.join("; "))
    };
    (code.unwrap_or_else(|| "UNKNOWN".into()), reason)
}

fn setup_missing_field(sobject: &str, ext: &str) -> ConnectorError {
    ConnectorError::Setup {
        vendor: VENDOR,
        detail: format!(
            "{sobject} has no field `{ext}`, which ferry needs to store each record's source id (so reruns update \
             instead of duplicating). Create it: Setup → Object Manager → {sobject} → Fields & Relationships → New → \
             Text; Field Label \"Ferry Source Id\", Length 255; tick \"Unique\" (choose \"Treat \\\"ABC\\\" and \
             \\\"abc\\\" as different values (case sensitive)\") and \"External ID\"; Field Name (API name) {} ; \
             grant the integration user edit access. Do the same on {}. Or set `sink.external_id_field` to the API name \
             of an existing unique External ID text field on Account and Contact.",
            ext.strip_suffix("__c").unwrap_or(ext),
            if sobject == "Account" {
                "Contact"
            } else {
                "Account"
            },
        ),
    }
}

fn setup_not_external(sobject: &str, ext: &str) -> ConnectorError {
    ConnectorError::Setup {
        vendor: VENDOR,
        detail: format!(
            "{sobject}.{ext} exists but is not an External ID field. Edit it: Setup → Object Manager → {sobject} → \
             Fields & Relationships → {ext} → Edit; tick \"Unique\" (case sensitive) and \"External ID\". Or set \
             `sink.external_id_field` to the API name of an existing unique External ID text field."
        ),
    }
}

#[async_trait]
impl Sink for SalesforceSink {
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

    // Salesforce refuses an Account without Name and a Contact without LastName (REQUIRED_FIELD_MISSING).
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: self.settings.batch_size,
            read_back_size: self.settings.read_back_size,
            stored: mapping::stored_fields(&self.fields.get(object), object),
            required: vec![
                match object {
                    ObjectType::COMPANIES => ferry_core::field::NAME,
                    ObjectType::CONTACTS => ferry_core::field::LAST_NAME,
                }
                .to_owned(),
            ],
            opt_out_needs_email: false,
        })
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client.check().await
    }

    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        let map = self.fields.get(object);
        let described = self
            .check_object(
                mapping::sobject(object),
                &mapping::written_fields(&map, object),
            )
            .await?;
        if let Some(bindings) = fields::respelled(&map, &described) {
            self.fields.map(object, &FieldMap::default(), &bindings);
        }
        if object == ObjectType::CONTACTS {
            // Contacts find their Account through the Account's external id.
            self.check_object(mapping::sobject(ObjectType::COMPANIES), &[])
                .await?;
        }
        Ok(())
    }

    /// `GET …/sobjects/{Account|Contact}/describe`.
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        fields::vendor_fields(&self.client, object).await
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        mapping::check_bindings(object, bindings)?;
        self.fields.map(object, mapping::standard(object), bindings);
        Ok(())
    }

    /// Tooling `CustomField`, then `FieldPermissions` for the run-as user's profile.
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        fields::create_field(&self.client, object, field).await
    }

    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for chunk in records.chunks(crate::config::MAX_BATCH_SIZE.min(self.settings.batch_size)) {
            outcomes.extend(self.upsert_chunk(object, chunk).await?);
        }
        Ok(outcomes)
    }

    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ext = self.ext();
        let map = self.fields.get(object);
        let company = format!("{}.{ext}", COMPANY_LOOKUP.1);
        let mut extra = vec![ext];
        if object == ObjectType::CONTACTS {
            extra.push(&company);
        }
        let select = mapping::read_back_fields(&map, &extra);
        let prefix = format!(
            "SELECT {} FROM {} WHERE {ext}",
            select.join(", "),
            mapping::sobject(object)
        );
        let mut out = Vec::with_capacity(source_ids.len());
        for q in soql::in_queries(&prefix, source_ids) {
            self.client
                .query_each(&q, |sf| {
                    if let Some(record) = mapping::from_salesforce(object, sf, ext, &map) {
                        out.push(record);
                    }
                })
                .await?;
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = out.len(), "read back");
        Ok(out)
    }

    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        let soql = format!(
            "SELECT COUNT() FROM {} WHERE {} != null",
            mapping::sobject(object),
            self.ext()
        );
        Ok(self.client.query(&soql, None).await?.page()?.total_size)
    }
}
