//! The Zoho sink: upserts keyed by the source-id field (`duplicate_check_fields`), resolves
//! each reference and link of a row of [`mapping::OBJECTS`] (a contact's company, a deal's
//! contacts, a note's parent) to its target's Zoho id with COQL (cached per run), keeps a
//! deal's contact roles in step with its contacts, reads back by Zoho id (`GET ?ids=`, what
//! the run wrote or found) or by COQL (the rest). Notes, which Zoho can neither upsert nor
//! query with COQL, are inserted or updated by id and read back by id.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use async_trait::async_trait;
use ferry_core::batch::{self, Answer};
use ferry_core::currency::OrgCurrency;
use ferry_core::fields::{
    FieldBinding, FieldMap, FieldMaps, NewField, RecentListings, VendorField,
};
use ferry_core::http::{HttpResponse, HttpStats};
use ferry_core::model::Link;
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::resolver::Resolver;
use ferry_core::{
    Capability, ConnectorError, ConnectorResult, FieldLimit, IdPage, ObjectType, Record,
    RecordOutcome, RecordRejection, Removal, RemoveOutcome, Removed, Sink, Value, Written,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value as Json, json};

use crate::VENDOR;
use crate::client::Client;
use crate::config::{MAX_BATCH_SIZE, Settings, ZohoConfig};
use crate::coql;
use crate::fields;
use crate::mapping::{self, Links, ZohoObject, ZohoReference};
use crate::policy::{clean_code, clean_name};
use crate::roles;

/// The most characters Zoho keeps in a note's `Note_Content` (Zoho's API reference,
/// `notes.json`: `maxLen` 65535); longer content is refused, never truncated.
pub const NOTE_CONTENT_MAX: usize = 65_535;

/// Per-record error codes of a failure that passes: Zoho's server failed on that record and
/// did not save it. Sending it again can succeed.
const TRANSIENT_CODES: &[&str] = &["INTERNAL_ERROR"];

/// Most source id → Zoho id pairs of reference targets kept (companies' Accounts); past it the
/// cache starts over (a miss costs one COQL query per 50 targets, never a wrong answer).
const MAX_CACHED_TARGETS: usize = 500_000;

/// The most ids one `GET /crm/v8/{module}?ids=` names: Zoho answers more with
/// `LIMIT_EXCEEDED` (as for writes, 100 a call).
const GET_IDS_LIMIT: usize = 100;

/// The most field API names the `fields` parameter of `GET /crm/v8/{module}` takes.
const GET_FIELDS_LIMIT: usize = 50;

/// A Zoho CRM org as a sink.
pub struct ZohoSink {
    settings: Settings,
    client: Client,
    /// Source id → Zoho id of the records references point at (a company's Account), per
    /// object, learnt from upserts and lookups in this run.
    targets: Resolver<String>,
    /// The fields written and read back per object: the standard tables and the operator's
    /// mapped fields.
    maps: FieldMaps,
    /// Whether the org keeps every amount in one currency.
    currency: OrgCurrency,
    /// The id of the contact role given to contacts ferry adds to a deal, once read.
    role: std::sync::Mutex<Option<String>>,
    /// Per object, the mapped opt-outs whose Zoho field is text rather than a checkbox
    /// (learnt by `prepare`): the flag goes there as `"true"`, which Zoho takes for text.
    text_flags: std::sync::Mutex<HashMap<ObjectType, HashSet<String>>>,
    /// Per object, the `settings/fields` answer [`Sink::describe`] read last: `prepare` checks
    /// the source-id field there instead of asking again (a call and a credit).
    listed: RecentListings<Arc<mapping::FieldsBody>>,
    /// Whether contacts hold the GDPR consent record ([`crate::gdpr::enabled`]), learnt by
    /// `survey`: only then are `legal_basis` and `consent_date` stored.
    gdpr: tokio::sync::OnceCell<bool>,
}

/// A record's links resolved to Zoho ids: a deal's contacts (in the record's order), or a
/// note's parent (its module and id).
#[derive(Default)]
struct Resolved {
    contacts: Vec<String>,
    parent: Option<(&'static str, String)>,
}

/// A contact role Zoho refused for one deal: its error code, and which of the deal's contact
/// links it was (1-based, of `of`).
struct RoleRefused {
    code: String,
    position: usize,
    of: usize,
}

/// The refusal of a deal whose row was saved but one of whose contact roles Zoho refused:
/// names the link by position, never its id or a value.
fn role_refused(record: &Record, refused: &RoleRefused) -> RecordRejection {
    reject(
        record,
        &refused.code,
        format!(
            "Zoho refused {} on the contact role of {} link {} of {} (Contact_Roles; the \
             contact was deleted, or cannot be linked): the deal is saved without that contact",
            refused.code,
            ferry_core::field::CONTACTS,
            refused.position,
            refused.of
        ),
    )
}

/// A record to upsert: its input position, the record, and its Zoho body.
type Item<'r> = (usize, &'r Record, Json);

#[derive(Deserialize, Default)]
struct QueryBody {
    #[serde(default)]
    data: Vec<Map<String, Json>>,
}

/// `select {columns} from {module} where id in (…)` for each 50 of `ids` (numeric ids only,
/// checked by the caller).
fn id_queries(columns: &[String], module: &str, ids: &[String]) -> Vec<String> {
    ids.chunks(coql::MAX_IN_VALUES)
        .map(|chunk| {
            format!(
                "select {} from {module} where id in ({}) limit {}",
                columns.join(", "),
                chunk.join(", "),
                chunk.len()
            )
        })
        .collect()
}

fn reject(record: &Record, code: &str, reason: String) -> RecordRejection {
    RecordRejection {
        source_id: record.source_id.clone(),
        code: code.to_owned(),
        reason,
    }
}

/// The refusal of a record of `row` whose `reference` names a target no record of the
/// target's module holds as its source id (in the field `src`).
fn unresolved(
    row: &ZohoObject,
    reference: &ZohoReference,
    record: &Record,
    src: &str,
) -> ConnectorResult<RecordRejection> {
    let target = mapping::binding(reference.target)?;
    let field = reference.canonical;
    Ok(reject(
        record,
        &format!("UNRESOLVED_{}", field.to_ascii_uppercase()),
        format!(
            "the {field} reference: no {} has the {}'s {field} as its {src} (the {field} was not \
             migrated, or was rejected)",
            target.record,
            row.record.to_ascii_lowercase()
        ),
    ))
}

/// The field API names an error item names (`details.api_name`, or the nested errors of
/// `MULTIPLE_OR_MULTI_ERRORS`), with their codes.
fn error_parts(item: &Json) -> Vec<(String, Option<String>)> {
    let code = clean_code(item.get("code").and_then(Json::as_str).unwrap_or_default());
    if let Some(errors) = item
        .get("details")
        .and_then(|d| d.get("errors"))
        .and_then(Json::as_array)
    {
        return errors.iter().flat_map(error_parts).collect();
    }
    let field = item
        .get("details")
        .and_then(|d| d.get("api_name"))
        .and_then(Json::as_str)
        .map(clean_name);
    vec![(code, field)]
}

/// A rejection's code and reason from Zoho's error item: codes and field API names (with
/// canonical names beside them), never Zoho's message.
fn rejection_reason(map: &FieldMap, row: &ZohoObject, item: &Json) -> (String, String) {
    let canonical = |api: &str| {
        mapping::canonical_of(map, row, api)
            .or_else(|| crate::gdpr::canonical_of(api).map(str::to_owned))
    };
    let parts = error_parts(item);
    let top = clean_code(item.get("code").and_then(Json::as_str).unwrap_or_default());
    let described: Vec<String> = parts
        .iter()
        .map(|(code, field)| match field {
            Some(f) => match canonical(f) {
                Some(c) => format!("{code} on {f} ({c})"),
                None => format!("{code} on {f}"),
            },
            None => code.clone(),
        })
        .collect();
    let code = if top.is_empty() {
        "UNKNOWN".to_owned()
    } else {
        top
    };
    (code, format!("Zoho refused {}", described.join("; ")))
}

/// The refusal of a record whose `field` links to a record the sink does not hold: names the
/// field, never an id.
fn unresolved_links(record: &Record, field: &str) -> RecordRejection {
    reject(
        record,
        &format!("UNRESOLVED_{}", field.to_ascii_uppercase()),
        format!(
            "the {field} links: a linked record has no Zoho record with its source id (it was \
             not migrated, or was rejected)"
        ),
    )
}

/// `record`'s links as Zoho ids, from `links` (source id → Zoho id per object), or the refusal
/// of a record linking to one that cannot be found.
fn links_of(
    row: &ZohoObject,
    record: &Record,
    links: &HashMap<ObjectType, HashMap<String, String>>,
) -> Result<Resolved, RecordRejection> {
    let mut resolved = Resolved::default();
    let (field, wanted) = match row.links {
        None => return Ok(resolved),
        Some(Links::ContactRoles) => (
            ferry_core::field::CONTACTS,
            link_list(record, ferry_core::field::CONTACTS),
        ),
        Some(Links::NoteParent) => (
            ferry_core::field::PARENTS,
            link_list(record, ferry_core::field::PARENTS),
        ),
    };
    for link in wanted {
        let Some(id) = links.get(&link.object).and_then(|ids| ids.get(&link.id)) else {
            return Err(unresolved_links(record, field));
        };
        match row.links {
            Some(Links::NoteParent) => {
                // Zoho holds one parent: the engine keeps the first (deal, contact, company).
                if resolved.parent.is_none() {
                    let module = mapping::binding(link.object)
                        .map(|r| r.module)
                        .map_err(|_| unresolved_links(record, field))?;
                    resolved.parent = Some((module, id.clone()));
                }
            }
            _ => {
                if !resolved.contacts.contains(id) {
                    resolved.contacts.push(id.clone());
                }
            }
        }
    }
    Ok(resolved)
}

/// The links of `field` on `record` (none when it holds none).
fn link_list<'a>(record: &'a Record, field: &str) -> Vec<&'a ferry_core::model::Link> {
    match record.get(field) {
        Some(ferry_core::Value::Links(links)) => links.iter().collect(),
        _ => Vec::new(),
    }
}

/// Puts a record's resolved links into its Zoho body: a deal's first contact as its
/// `Contact_Name` (the others become contact roles after the write), a note's `Parent_Id` in
/// v8's form.
fn put_links(row: &ZohoObject, resolved: &Resolved, body: &mut Map<String, Json>) {
    match row.links {
        Some(Links::ContactRoles) => {
            let named = match resolved.contacts.first() {
                Some(id) => json!({ "id": id }),
                None => Json::Null,
            };
            body.insert(mapping::CONTACT_NAME.into(), named);
        }
        Some(Links::NoteParent) => {
            if let Some((module, id)) = &resolved.parent {
                body.insert(
                    mapping::PARENT_ID.into(),
                    json!({"module": {"api_name": module}, "id": id}),
                );
            }
        }
        None => {}
    }
}

impl ZohoSink {
    /// Builds the sink from its config (no I/O: the token is refreshed on first use). Errors
    /// name the offending key as `{key_prefix}.{setting}`, e.g. `sink.client_secret`.
    pub fn new(config: ZohoConfig, key_prefix: &str) -> ConnectorResult<ZohoSink> {
        let settings = config.settings(key_prefix)?;
        let client = Client::new(&settings, config.credentials(key_prefix)?)?;
        Ok(ZohoSink {
            settings,
            client,
            targets: Resolver::with_limit(MAX_CACHED_TARGETS),
            maps: mapping::standard_maps(),
            currency: OrgCurrency::default(),
            role: std::sync::Mutex::new(None),
            text_flags: std::sync::Mutex::default(),
            listed: RecentListings::default(),
            gdpr: tokio::sync::OnceCell::new(),
        })
    }

    /// How many access tokens this sink has fetched (1 unless they expired).
    pub fn token_fetches(&self) -> u64 {
        self.client.token_fetches()
    }

    fn src(&self) -> &str {
        &self.settings.source_id_field
    }

    /// Whether `object`'s records hold the GDPR consent record (contacts of a GDPR org), as
    /// `survey` learnt it.
    fn consent_held(&self, object: ObjectType) -> bool {
        object == ObjectType::CONTACTS && self.gdpr.get().copied().unwrap_or(false)
    }

    async fn coql(&self, query: String) -> ConnectorResult<Vec<Map<String, Json>>> {
        let path = "/crm/v8/coql";
        let response = self
            .client
            .send_ok(
                Method::POST,
                path,
                &[],
                Some(&json!({"select_query": query})),
            )
            .await?;
        if response.status.as_u16() == 204 {
            return Ok(Vec::new());
        }
        let body: QueryBody = response.json(VENDOR, &format!("POST {path}"))?;
        Ok(body.data)
    }

    /// The Zoho ids of the records of `module` with the given source ids (those that exist),
    /// looked up with COQL, 50 per query: the lookup of [`Resolver::resolve`] for the cache's
    /// misses.
    async fn lookup_targets(
        &self,
        module: &str,
        missing: Vec<String>,
    ) -> ConnectorResult<HashMap<String, String>> {
        let columns = vec!["id".to_owned(), self.src().to_owned()];
        let mut learnt = HashMap::new();
        for q in coql::in_queries(&columns, module, self.src(), &missing) {
            for row in self.coql(q).await? {
                let (Some(id), Some(src)) = (
                    row.get("id").and_then(Json::as_str),
                    row.get(self.src()).and_then(Json::as_str),
                ) else {
                    continue;
                };
                learnt.insert(src.to_owned(), id.to_owned());
            }
        }
        tracing::debug!(
            vendor = VENDOR,
            module,
            asked = missing.len(),
            found = learnt.len(),
            "resolved references"
        );
        Ok(learnt)
    }

    /// Checks `module` has the source-id field, unique and of type text, and every mapped field.
    /// Checks `module`'s source-id field and `mapped` fields; returns its fields as described.
    async fn check_module(
        &self,
        object: ObjectType,
        mapped: &[String],
    ) -> ConnectorResult<Arc<mapping::FieldsBody>> {
        let module = mapping::binding(object)?.module;
        let body = match self.listed.take(object) {
            Some(body) => body,
            None => Arc::new(fields::fetch(&self.client, module).await?),
        };
        let find = |name: &str| body.fields.iter().find(|f| f.api_name == name);
        let src = self.src();
        let modules = |keep: &dyn Fn(&str) -> bool| {
            mapping::OBJECTS
                .iter()
                .map(|row| row.module)
                .filter(|m| keep(m))
                .collect::<Vec<_>>()
                .join(" and ")
        };
        let steps = format!(
            "In Zoho CRM: Setup → Customization → Modules and Fields → {module} → Layouts → Standard → drag a \
             \"Single Line\" field in; Field Label \"Ferry Source Id\" (its API name becomes Ferry_Source_Id; check it \
             under Setup → Developer Hub → APIs → API names), Number of characters 255; under its properties tick \
             \"Do not allow duplicate values\"; Save. Do the same on {other}. Or set `source_id_field` to the API \
             name of an existing unique single-line field on {all}.",
            other = modules(&|m| m != module),
            all = modules(&|_| true),
        );
        let field = find(src).ok_or_else(|| ConnectorError::Setup {
            vendor: VENDOR,
            detail: format!(
                "{module} has no field `{src}`, which ferry needs to store each record's source id (so reruns update \
                 instead of duplicating). {steps}"
            ),
        })?;
        if field.data_type != "text" {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "{module}.{src} is a `{}` field; ferry needs a single-line text field. {steps}",
                    clean_code(&field.data_type)
                ),
            });
        }
        let unique = field.unique.as_object().filter(|o| !o.is_empty());
        match unique {
            None => {
                return Err(ConnectorError::Setup {
                    vendor: VENDOR,
                    detail: format!(
                        "{module}.{src} exists but does not refuse duplicate values, so Zoho cannot upsert by it. \
                         Edit the field (Setup → Customization → Modules and Fields → {module} → Layouts → Standard → \
                         the field → Edit Properties) and tick \"Do not allow duplicate values\". Or set \
                         `source_id_field` to the API name of a unique single-line field."
                    ),
                });
            }
            Some(u) => {
                if u.get("case_sensitive").and_then(Json::as_bool) != Some(true) {
                    tracing::warn!(
                        vendor = VENDOR,
                        module,
                        field = src,
                        "the source-id field's uniqueness is not case sensitive: source ids differing only in case would be merged"
                    );
                }
            }
        }
        let absent: Vec<&str> = mapped
            .iter()
            .map(String::as_str)
            .filter(|n| find(n).is_none())
            .collect();
        if !absent.is_empty() {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "{module} has no fields {} (or the integration user cannot see them): restore them in the \
                     module's layout, or give the user's profile access to them",
                    absent.join(", ")
                ),
            });
        }
        Ok(body)
    }

    /// The Zoho ids of the targets `chunk`'s records refer to through `reference`: from the
    /// cache, the misses looked up in the target's module by source id.
    async fn resolve(
        &self,
        reference: &ZohoReference,
        chunk: &[(usize, &Record)],
    ) -> ConnectorResult<HashMap<String, String>> {
        let target = mapping::binding(reference.target)?;
        let mut ids: Vec<&str> = chunk
            .iter()
            .filter_map(|(_, r)| r.text(reference.canonical))
            .filter(|c| !c.is_empty())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        self.targets
            .resolve(reference.target, ids, |missing| {
                self.lookup_targets(target.module, missing)
            })
            .await
    }

    /// The Zoho ids of the records `chunk`'s links point at (a deal's contacts, a note's
    /// parents), per object: from the cache, the misses looked up by source id.
    async fn resolve_links(
        &self,
        row: &ZohoObject,
        chunk: &[(usize, &Record)],
    ) -> ConnectorResult<HashMap<ObjectType, HashMap<String, String>>> {
        let field = match row.links {
            None => return Ok(HashMap::new()),
            Some(Links::ContactRoles) => ferry_core::field::CONTACTS,
            Some(Links::NoteParent) => ferry_core::field::PARENTS,
        };
        let mut wanted: HashMap<ObjectType, Vec<&str>> = HashMap::new();
        for (_, record) in chunk {
            for link in link_list(record, field) {
                wanted
                    .entry(link.object)
                    .or_default()
                    .push(link.id.as_str());
            }
        }
        let mut out = HashMap::new();
        for (object, ids) in wanted {
            let Ok(target) = mapping::binding(object) else {
                continue;
            };
            let found = self
                .targets
                .resolve(object, ids, |missing| {
                    self.lookup_targets(target.module, missing)
                })
                .await?;
            out.insert(object, found);
        }
        Ok(out)
    }

    /// The id of the role ferry gives the contacts it adds to a deal (read once).
    async fn role(&self) -> ConnectorResult<String> {
        let cached = self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(role) = cached {
            return Ok(role);
        }
        let role = roles::default_role(&self.client).await?;
        *self
            .role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(role.clone());
        Ok(role)
    }

    /// Makes deal `deal`'s contact roles the contacts `contacts`: a role for each contact
    /// without one (a contact that holds a role keeps it), and none for the others. A deal
    /// just created has none to read. A rerun therefore writes nothing and duplicates nothing.
    /// A role Zoho refuses for this deal (a contact deleted meanwhile) is answered as that
    /// role's [`RoleRefused`], after the deal's other roles are written and removed.
    async fn sync_roles(
        &self,
        deal: &str,
        created: bool,
        contacts: &[String],
    ) -> ConnectorResult<Option<RoleRefused>> {
        let held: Vec<String> = if created {
            Vec::new()
        } else {
            roles::contacts_of(&self.client, deal, "id")
                .await?
                .iter()
                .filter_map(|c| roles::text(c, "id"))
                .collect()
        };
        let missing: Vec<&String> = contacts.iter().filter(|c| !held.contains(c)).collect();
        let mut refused = None;
        if !missing.is_empty() {
            let role = self.role().await?;
            let puts = missing
                .iter()
                .map(|c| roles::put(&self.client, deal, c, &role))
                .collect();
            for (contact, result) in missing.iter().zip(join_all(puts).await) {
                if let (Some(code), None) = (result?, &refused) {
                    let position = contacts.iter().position(|c| c == *contact).unwrap_or(0);
                    refused = Some(RoleRefused {
                        code,
                        position: position + 1,
                        of: contacts.len(),
                    });
                }
            }
        }
        // Contacts the record no longer lists lose their role even when an added one was
        // refused: the deal is left as near to the record as Zoho allows.
        let extra: Vec<String> = held.into_iter().filter(|h| !contacts.contains(h)).collect();
        if !extra.is_empty() {
            roles::remove(&self.client, deal, &extra).await?;
        }
        Ok(refused)
    }

    /// Writes notes, which Zoho cannot upsert: a note this run already wrote or found is
    /// updated by its id (`PUT /crm/v8/Notes`); any other is inserted (`POST /crm/v8/Notes`),
    /// and one Zoho refuses as a `DUPLICATE_DATA` of the source-id field (written before) is
    /// updated as the `duplicate_record` Zoho names. Each is answered as by an upsert.
    async fn send_notes<'r>(
        &self,
        map: &FieldMap,
        row: &ZohoObject,
        items: Vec<Item<'r>>,
    ) -> ConnectorResult<Vec<(Item<'r>, Attempt<Result<Written, RecordRejection>>)>> {
        let path = format!("/crm/v8/{}", row.module);
        let endpoint_post = format!("POST {path}");
        let endpoint_put = format!("PUT {path}");
        let mut out = Vec::with_capacity(items.len());
        let mut updates: Vec<(Item<'r>, String)> = Vec::new();
        let mut inserts: Vec<Item<'r>> = Vec::new();
        for item in items {
            match self.targets.sink_id(row.object, &item.1.source_id) {
                Some(id) => updates.push((item, id)),
                None => inserts.push(item),
            }
        }
        if !inserts.is_empty() {
            let bodies: Vec<&Json> = inserts.iter().map(|(_, _, b)| b).collect();
            let body = json!({"data": bodies, "trigger": []});
            let response = self
                .client
                .send(Method::POST, &path, &[], Some(&body))
                .await?;
            let answers = self.items(&endpoint_post, &response, inserts.len())?;
            for (item, answer) in inserts.into_iter().zip(answers) {
                match self.duplicate_of(&answer) {
                    Some(id) => updates.push((item, id)),
                    None => {
                        let attempt =
                            self.attempt(map, row, &endpoint_post, item.1, &answer, true)?;
                        out.push((item, attempt));
                    }
                }
            }
        }
        if !updates.is_empty() {
            let bodies: Vec<Json> = updates
                .iter()
                .map(|((_, _, b), id)| {
                    let mut b = b.clone();
                    if let Some(o) = b.as_object_mut() {
                        o.insert("id".into(), Json::String(id.clone()));
                    }
                    b
                })
                .collect();
            let body = json!({"data": bodies, "trigger": []});
            let response = self
                .client
                .send(Method::PUT, &path, &[], Some(&body))
                .await?;
            let answers = self.items(&endpoint_put, &response, updates.len())?;
            for ((item, _), answer) in updates.into_iter().zip(answers) {
                let attempt = self.attempt(map, row, &endpoint_put, item.1, &answer, false)?;
                out.push((item, attempt));
            }
        }
        Ok(out)
    }

    /// The id of the record holding the same source id, when `answer` is Zoho's
    /// `DUPLICATE_DATA` on the source-id field.
    fn duplicate_of(&self, answer: &Json) -> Option<String> {
        let details = answer.get("details")?;
        let on_src = answer.get("code").and_then(Json::as_str) == Some("DUPLICATE_DATA")
            && details.get("api_name").and_then(Json::as_str) == Some(self.src());
        let id = details.get("duplicate_record")?.get("id")?.as_str()?;
        (on_src && crate::source::is_id(id)).then(|| id.to_owned())
    }

    /// One record's outcome from its item of a write's answer; `insert`: whether the write
    /// inserted it (an insert, or an upsert answered `action: insert`), so a success created it.
    fn attempt(
        &self,
        map: &FieldMap,
        row: &ZohoObject,
        endpoint: &str,
        record: &Record,
        answer: &Json,
        insert: bool,
    ) -> ConnectorResult<Attempt<Result<Written, RecordRejection>>> {
        if answer.get("status").and_then(Json::as_str) == Some("success") {
            let sink_id = answer
                .get("details")
                .and_then(|d| d.get("id"))
                .and_then(Json::as_str)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.to_owned(),
                    detail: "a successful result has no details.id".into(),
                })?
                .to_owned();
            return Ok(Attempt::Done(Ok(Written {
                sink_id,
                created: insert,
            })));
        }
        let (code, reason) = rejection_reason(map, row, answer);
        let refused = Err(reject(record, &code, reason));
        Ok(if TRANSIENT_CODES.contains(&code.as_str()) {
            Attempt::Again(refused)
        } else {
            Attempt::Done(refused)
        })
    }

    /// Sets each read-back deal's `contacts` to the source ids of its `Contact_Name` and its
    /// contact roles (one read per deal, in flight together). A linked contact without a
    /// source id (not written by ferry) is named `zoho:{id}`, so it never matches one sent.
    async fn read_back_contacts(
        &self,
        rows: &[Map<String, Json>],
        records: &mut [Record],
    ) -> ConnectorResult<()> {
        let src = self.src();
        let deals: Vec<String> = rows
            .iter()
            .map(|z| roles::text(z, "id").unwrap_or_default())
            .collect();
        let held = join_all(
            deals
                .iter()
                .map(|deal| roles::contacts_of(&self.client, deal, src))
                .collect(),
        )
        .await;
        let named_key = format!("{}.{src}", mapping::CONTACT_NAME);
        for ((z, record), contacts) in rows.iter().zip(records.iter_mut()).zip(held) {
            let mut links: Vec<Link> = roles::text(z, &named_key)
                .into_iter()
                .chain(contacts?.iter().filter_map(|c| {
                    roles::text(c, src)
                        .or_else(|| roles::text(c, "id").map(|id| format!("zoho:{id}")))
                }))
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

    /// Every note's source id → note id (`GET /crm/v8/Notes?fields={src}`, page by page): how
    /// a sink finds notes it did not write in this run, since COQL does not serve Notes. Run
    /// once; notes written later are remembered as they are written.
    async fn scan_notes(&self, row: &ZohoObject) -> ConnectorResult<HashMap<String, String>> {
        #[derive(Deserialize, Default)]
        struct Info {
            #[serde(default)]
            more_records: bool,
            #[serde(default)]
            next_page_token: Option<String>,
        }
        #[derive(Deserialize, Default)]
        struct Body {
            #[serde(default)]
            data: Vec<Map<String, Json>>,
            #[serde(default)]
            info: Info,
        }
        let path = format!("/crm/v8/{}", row.module);
        let endpoint = format!("GET {path}");
        let src = self.src();
        let mut found = HashMap::new();
        let mut token: Option<String> = None;
        loop {
            let position = match &token {
                None => ("page", "1"),
                Some(t) => ("page_token", t.as_str()),
            };
            let query = [
                ("fields", src),
                ("per_page", "200"),
                ("sort_by", "id"),
                ("sort_order", "asc"),
                position,
            ];
            let response = self
                .client
                .send_ok(Method::GET, &path, &query, None)
                .await?;
            if response.status.as_u16() == 204 {
                break;
            }
            let body: Body = response.json(VENDOR, &endpoint)?;
            for z in &body.data {
                if let (Some(id), Some(sid)) = (roles::text(z, "id"), roles::text(z, src)) {
                    found.insert(sid, id);
                }
            }
            match body.info.next_page_token.filter(|t| !t.is_empty()) {
                Some(next) if body.info.more_records && token.as_deref() != Some(&next) => {
                    token = Some(next);
                }
                _ => break,
            }
        }
        for (sid, id) in &found {
            self.targets.remember(row.object, sid, id.clone());
        }
        self.targets.mark_complete(row.object);
        tracing::debug!(
            vendor = VENDOR,
            notes = found.len(),
            "scanned notes for source ids"
        );
        Ok(found)
    }

    /// Notes read back by source id: each found through the run's cache (or one scan of the
    /// module), then read by id (`GET /crm/v8/Notes/{id}`, in flight together: Notes has no
    /// COQL and the list no filter), its parent mapped back to the parent's source id.
    async fn read_back_notes(
        &self,
        row: &ZohoObject,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        let src = self.src();
        let map = self.maps.get(row.object);
        let ids = self
            .targets
            .resolve(row.object, source_ids.iter().map(String::as_str), |_| {
                self.scan_notes(row)
            })
            .await?;
        let mut fields: Vec<String> = vec![src.to_owned()];
        fields.extend(map.vendor_names().into_iter().map(str::to_owned));
        fields.push(mapping::OWNER.into());
        fields.push(mapping::PARENT_ID.into());
        let fields = fields.join(",");
        let wanted: Vec<&String> = source_ids.iter().filter_map(|s| ids.get(s)).collect();
        let reads = join_all(
            wanted
                .iter()
                .map(|id| self.note_by_id(row, id, &fields))
                .collect(),
        )
        .await;
        let mut notes = Vec::with_capacity(wanted.len());
        for read in reads {
            notes.extend(read?);
        }
        // Parents: Zoho ids back to source ids, from the cache or by COQL per module.
        self.learn_source_ids(notes.iter().filter_map(mapping::parent_of).collect())
            .await?;
        let mut out = Vec::with_capacity(notes.len());
        for z in &notes {
            let Some(mut record) = mapping::from_read_back(&map, row, z, src) else {
                continue;
            };
            if let Some((object, id)) = mapping::parent_of(z) {
                let parent = self
                    .targets
                    .source_id(object, &id)
                    .unwrap_or_else(|| format!("zoho:{id}"));
                record.set(
                    ferry_core::field::PARENTS,
                    Value::Links(vec![Link { object, id: parent }]),
                );
            }
            out.push(record);
        }
        tracing::debug!(vendor = VENDOR, object = %row.object, asked = source_ids.len(), found = out.len(), "read back");
        Ok(out)
    }

    /// One note by its id, with `fields`; `None` when Zoho has no such note (204).
    async fn note_by_id(
        &self,
        row: &ZohoObject,
        id: &str,
        fields: &str,
    ) -> ConnectorResult<Option<Map<String, Json>>> {
        if !crate::source::is_id(id) {
            return Ok(None);
        }
        let path = format!("/crm/v8/{}/{id}", row.module);
        let response = self
            .client
            .send_ok(Method::GET, &path, &[("fields", fields)], None)
            .await?;
        if response.status.as_u16() == 204 {
            return Ok(None);
        }
        let body: QueryBody =
            response.json(VENDOR, &format!("GET /crm/v8/{}/{{id}}", row.module))?;
        Ok(body.data.into_iter().next())
    }

    /// The source ids of the Zoho records `targets` (object, Zoho id), from the cache, the
    /// others learnt by `select id, <src> from <module> where id in (…)` (50 a query, in flight
    /// together) and remembered. A record without a source id (not written by ferry) or gone is
    /// absent from the answer: never guessed.
    async fn learn_source_ids(
        &self,
        targets: Vec<(ObjectType, String)>,
    ) -> ConnectorResult<HashMap<(ObjectType, String), String>> {
        let src = self.src();
        let mut known = HashMap::new();
        let mut missing: HashMap<ObjectType, Vec<String>> = HashMap::new();
        for (object, id) in targets {
            if known.contains_key(&(object, id.clone())) {
                continue;
            }
            match self.targets.source_id(object, &id) {
                Some(sid) => {
                    known.insert((object, id), sid);
                }
                None if crate::source::is_id(&id) => missing.entry(object).or_default().push(id),
                None => {}
            }
        }
        for (object, mut ids) in missing {
            ids.sort_unstable();
            ids.dedup();
            let module = mapping::binding(object)?.module;
            let columns = vec!["id".to_owned(), src.to_owned()];
            let queries = id_queries(&columns, module, &ids);
            for rows in join_all(queries.into_iter().map(|q| self.coql(q)).collect()).await {
                for z in rows? {
                    if let (Some(id), Some(sid)) = (roles::text(&z, "id"), roles::text(&z, src)) {
                        self.targets.remember(object, &sid, id.clone());
                        known.insert((object, id), sid);
                    }
                }
            }
        }
        Ok(known)
    }

    /// The fields a read-back by Zoho id names: the source id, the mapped fields, the lookups,
    /// the owner, pipeline and stage, and the consent record where contacts hold it. `None`
    /// past Zoho's 50 (the read-back then goes by COQL, which has no such limit).
    fn fields_by_id(&self, row: &ZohoObject, map: &FieldMap) -> Option<Vec<String>> {
        let mut fields: Vec<String> = vec![self.src().to_owned()];
        fields.extend(map.vendor_names().into_iter().map(str::to_owned));
        fields.extend(row.references.iter().map(|r| r.lookup.to_owned()));
        fields.push(mapping::OWNER.into());
        if row.staged {
            fields.push(mapping::PIPELINE.into());
            fields.push(mapping::STAGE.into());
        }
        if row.links == Some(Links::ContactRoles) {
            fields.push(mapping::CONTACT_NAME.into());
        }
        if self.consent_held(row.object) {
            fields.push(crate::gdpr::FIELD.into());
        }
        let mut seen = HashSet::new();
        fields.retain(|f| seen.insert(f.clone()));
        (fields.len() <= GET_FIELDS_LIMIT).then_some(fields)
    }

    /// The lookups of `row`'s records a read-back maps to their targets' source ids, with the
    /// object each points at: the references, and a deal's `Contact_Name`.
    fn lookups(row: &ZohoObject) -> Vec<(&'static str, ObjectType)> {
        let mut out: Vec<(&'static str, ObjectType)> = row
            .references
            .iter()
            .map(|r| (r.lookup, r.target))
            .collect();
        if row.links == Some(Links::ContactRoles) {
            out.push((mapping::CONTACT_NAME, ObjectType::CONTACTS));
        }
        out
    }

    /// Reads back by Zoho id the records of `source_ids` whose id this run learnt (written or
    /// found): `GET /crm/v8/{module}?ids=…&fields=…`, 100 a call, in flight together. A lookup
    /// answers its target's Zoho id, mapped back to the target's source id (cache, then COQL by
    /// id) and set as `<lookup>.<src>`, as a COQL read-back names it; a target with no source id
    /// is named `zoho:{id}`, so it never matches one sent. Answers the rows read and the source
    /// ids left to read by source id: those of unknown id, and those the call did not find
    /// (deleted, or the record no longer holds that source id).
    async fn read_by_zoho_id(
        &self,
        row: &ZohoObject,
        map: &FieldMap,
        source_ids: &[String],
    ) -> ConnectorResult<(Vec<Map<String, Json>>, Vec<String>)> {
        let src = self.src();
        let mut wanted: HashMap<String, &str> = HashMap::new();
        let fields = self.fields_by_id(row, map);
        if fields.is_some() {
            for sid in source_ids {
                if let Some(id) = self.targets.sink_id(row.object, sid)
                    && crate::source::is_id(&id)
                {
                    wanted.insert(id, sid.as_str());
                }
            }
        }
        let mut rows = Vec::new();
        if let (Some(fields), false) = (fields, wanted.is_empty()) {
            let fields = fields.join(",");
            let path = format!("/crm/v8/{}", row.module);
            let mut ids: Vec<&str> = wanted.keys().map(String::as_str).collect();
            ids.sort_unstable();
            let lists: Vec<String> = ids.chunks(GET_IDS_LIMIT).map(|c| c.join(",")).collect();
            let calls = lists.iter().map(|ids| {
                let query = [("ids", ids.as_str()), ("fields", fields.as_str())];
                let path = path.as_str();
                async move { self.client.send_ok(Method::GET, path, &query, None).await }
            });
            for answer in join_all(calls.collect()).await {
                let response = answer?;
                if response.status.as_u16() == 204 {
                    continue;
                }
                let body: QueryBody = response.json(VENDOR, &format!("GET {path}"))?;
                // Only a record still holding the source id paired with its id is taken.
                rows.extend(body.data.into_iter().filter(|z| {
                    let paired = roles::text(z, "id").and_then(|id| wanted.get(&id).copied());
                    paired.is_some() && paired == z.get(src).and_then(Json::as_str)
                }));
            }
        }
        let lookups = Self::lookups(row);
        let targets = rows
            .iter()
            .flat_map(|z| {
                lookups
                    .iter()
                    .filter_map(|(lookup, target)| Some((*target, mapping::lookup_id(z, lookup)?)))
            })
            .collect();
        let known = self.learn_source_ids(targets).await?;
        for z in &mut rows {
            for (lookup, target) in &lookups {
                let Some(id) = mapping::lookup_id(z, lookup) else {
                    continue;
                };
                let sid = match known.get(&(*target, id.clone())) {
                    Some(sid) => sid.clone(),
                    None => format!("zoho:{id}"),
                };
                z.insert(format!("{lookup}.{src}"), Json::String(sid));
            }
        }
        let found: HashSet<&str> = rows
            .iter()
            .filter_map(|z| z.get(src).and_then(Json::as_str))
            .collect();
        let mut seen = HashSet::new();
        let rest = source_ids
            .iter()
            .filter(|sid| !found.contains(sid.as_str()) && seen.insert(sid.as_str()))
            .cloned()
            .collect();
        Ok((rows, rest))
    }

    /// Reads back by source id: COQL, 50 source ids a query, in flight together (the client's
    /// permits bound them); each lookup's target named by its source id (`<lookup>.<src>`).
    async fn read_by_source_id(
        &self,
        row: &ZohoObject,
        map: &FieldMap,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Map<String, Json>>> {
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let src = self.src();
        let mut columns: Vec<String> = vec!["id".into(), src.to_owned()];
        columns.extend(map.vendor_names().into_iter().map(str::to_owned));
        for (lookup, _) in Self::lookups(row) {
            columns.push(format!("{lookup}.{src}"));
        }
        columns.push(mapping::OWNER.into());
        if row.staged {
            columns.push(mapping::PIPELINE.into());
            columns.push(mapping::STAGE.into());
        }
        let queries = coql::in_queries(&columns, row.module, src, source_ids);
        let mut rows = Vec::new();
        for answer in join_all(queries.into_iter().map(|q| self.coql(q)).collect()).await {
            rows.extend(answer?);
        }
        Ok(rows)
    }

    /// Writes one chunk of [`batch::upsert_in_batches`] (at most 100 records, each with its
    /// input position) in one upsert, and answers each position.
    async fn upsert_chunk<'r>(
        &self,
        map: &FieldMap,
        row: &ZohoObject,
        chunk: Vec<(usize, &'r Record)>,
    ) -> ConnectorResult<Vec<Answer>> {
        let (object, module) = (row.object, row.module);
        let src = self.src().to_owned();
        // Per reference of the row, in its order: the chunk's targets' Zoho ids.
        let mut resolved = Vec::with_capacity(row.references.len());
        for reference in row.references {
            resolved.push(self.resolve(reference, &chunk).await?);
        }
        let links = self.resolve_links(row, &chunk).await?;
        let text_flags = self
            .text_flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&object)
            .cloned()
            .unwrap_or_default();
        let records = chunk.len();
        let mut answers: Vec<Answer> = Vec::with_capacity(records);
        let mut items: Vec<Item<'r>> = Vec::with_capacity(records);
        let mut written_links: HashMap<usize, Resolved> = HashMap::new();
        'records: for (i, record) in chunk {
            let mut targets: Vec<Option<&str>> = Vec::with_capacity(row.references.len());
            for (reference, ids) in row.references.iter().zip(&resolved) {
                let target = record.text(reference.canonical).filter(|c| !c.is_empty());
                match target.map(|t| ids.get(t)) {
                    None => targets.push(None),
                    Some(Some(id)) => targets.push(Some(id.as_str())),
                    Some(None) => {
                        answers.push((i, Err(unresolved(row, reference, record, &src)?)));
                        continue 'records;
                    }
                }
            }
            let resolved = match links_of(row, record, &links) {
                Ok(resolved) => resolved,
                Err(refused) => {
                    answers.push((i, Err(refused)));
                    continue 'records;
                }
            };
            let written = mapping::to_zoho(map, row, record, &src, &targets, &text_flags).and_then(
                |mut body| {
                    if self.consent_held(object)
                        && let Some(consent) = crate::gdpr::to_write(record)?
                    {
                        body.insert(crate::gdpr::FIELD.into(), consent);
                    }
                    Ok(body)
                },
            );
            match written {
                Ok(mut body) => {
                    put_links(row, &resolved, &mut body);
                    written_links.insert(i, resolved);
                    items.push((i, record, Json::Object(body)));
                }
                Err(refused) => answers.push((i, Err(refused))),
            }
        }
        let resend = Resend::from_retry(&self.settings.retry);
        let settled = if row.upsert {
            settle(VENDOR, items, resend, |items| {
                self.send_upsert(map, row, items)
            })
            .await?
        } else {
            settle(VENDOR, items, resend, |items| {
                self.send_notes(map, row, items)
            })
            .await?
        };
        // Every record written is remembered by its Zoho id: references and links find their
        // targets by it, notes are found again by it, and the read-back reads by it.
        let mut roles = Vec::new();
        for ((i, record, _), result) in settled {
            if let Ok(written) = &result {
                self.targets
                    .remember(object, &record.source_id, written.sink_id.clone());
                if row.links == Some(Links::ContactRoles) {
                    let contacts = written_links.remove(&i).unwrap_or_default().contacts;
                    roles.push((
                        answers.len(),
                        record,
                        written.sink_id.clone(),
                        written.created,
                        contacts,
                    ));
                }
            }
            answers.push((i, result));
        }
        if !roles.is_empty() {
            let synced = join_all(
                roles
                    .iter()
                    .map(|(_, _, deal, created, contacts)| {
                        self.sync_roles(deal, *created, contacts)
                    })
                    .collect(),
            )
            .await;
            // A deal one of whose roles Zoho refused is refused: its row is saved, but it
            // lacks that contact, so it must not count as written (nor verify).
            for ((at, record, ..), result) in roles.iter().zip(synced) {
                let (Some(refused), Some(answer)) = (result?, answers.get_mut(*at)) else {
                    continue;
                };
                tracing::info!(
                    vendor = VENDOR,
                    module,
                    source_id = record.source_id.as_str(),
                    position = refused.position,
                    code = refused.code.as_str(),
                    "Zoho refused a contact role: the deal is refused"
                );
                answer.1 = Err(role_refused(record, &refused));
            }
        }
        let rejected = answers.iter().filter(|(_, r)| r.is_err()).count();
        tracing::debug!(vendor = VENDOR, module, records, rejected, "upserted");
        Ok(answers)
    }

    /// Sends one upsert of `items` (input position, record, body) and answers each: written,
    /// refused, or refused for a reason that passes (sent again by [`settle`]).
    async fn send_upsert<'r>(
        &self,
        map: &FieldMap,
        row: &ZohoObject,
        items: Vec<Item<'r>>,
    ) -> ConnectorResult<Vec<(Item<'r>, Attempt<Result<Written, RecordRejection>>)>> {
        let module = row.module;
        let src = self.src();
        let path = format!("/crm/v8/{module}/upsert");
        let endpoint = format!("POST {path}");
        let bodies: Vec<&Json> = items.iter().map(|(_, _, b)| b).collect();
        // `trigger: []`: a migration must not fire the org's workflows, approvals or
        // blueprints (Zoho runs all of them when `trigger` is left out).
        let body = json!({"data": bodies, "duplicate_check_fields": [src], "trigger": []});
        let response = self
            .client
            .send(Method::POST, &path, &[], Some(&body))
            .await?;
        let answers = self.items(&endpoint, &response, items.len())?;
        let mut out = Vec::with_capacity(items.len());
        for (item, answer) in items.into_iter().zip(answers) {
            let created = answer.get("action").and_then(Json::as_str) == Some("insert");
            let attempt = self.attempt(map, row, &endpoint, item.1, &answer, created)?;
            out.push((item, attempt));
        }
        Ok(out)
    }

    /// The per-record items of an upsert answer (200, 207, or 400 when every record failed);
    /// a whole-request error otherwise.
    fn items(
        &self,
        endpoint: &str,
        response: &HttpResponse,
        expected: usize,
    ) -> ConnectorResult<Vec<Json>> {
        let status = response.status.as_u16();
        let parsed: Option<Vec<Json>> = serde_json::from_slice::<Json>(&response.body)
            .ok()
            .and_then(|b| b.get("data").and_then(Json::as_array).cloned());
        match parsed {
            Some(items) if matches!(status, 200 | 201 | 207 | 400) && items.len() == expected => {
                Ok(items)
            }
            Some(items) if response.is_success() || status == 207 => {
                Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: endpoint.to_owned(),
                    detail: format!("{} results for {expected} records", items.len()),
                })
            }
            _ if response.is_success() => Err(ConnectorError::Malformed {
                vendor: VENDOR,
                endpoint: endpoint.to_owned(),
                detail: "the answer has no data array".into(),
            }),
            _ => Err(self.client.error_for(endpoint, response)),
        }
    }
}

/// Runs `futures` concurrently and returns their outputs in input order: a small `join_all`,
/// since this crate does not depend on `futures`. Each wake polls the futures still pending,
/// which is cheap for the few queries of one read-back.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[async_trait]
impl Sink for ZohoSink {
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

    /// Zoho limits an account by calls in flight, not by rate: `max_concurrent_requests`.
    fn concurrent_calls(&self) -> Option<usize> {
        Some(self.settings.max_concurrent)
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

    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        let row = mapping::binding(object)?;
        let mut stored = mapping::stored_fields(&self.maps.get(object), row);
        let mut limits = match row.links {
            // `Note_Content` is plain text of at most 65,535 characters, and a note hangs
            // on one parent.
            Some(Links::NoteParent) => vec![
                FieldLimit::max_chars(ferry_core::field::BODY, NOTE_CONTENT_MAX).of_plain_text(),
                FieldLimit::max_links(ferry_core::field::PARENTS, 1),
            ],
            _ => self.currency.limits(object),
        };
        if self.consent_held(object) {
            // One basis (`Data_Processing_Basis`), by `gdpr::BASES`' precedence.
            stored.push(ferry_core::field::LEGAL_BASIS.to_owned());
            stored.push(ferry_core::field::CONSENT_DATE.to_owned());
            limits.push(FieldLimit::one_of(
                ferry_core::field::LEGAL_BASIS,
                crate::gdpr::held_names(),
            ));
        }
        Ok(Capability {
            batch_size: self.settings.batch_size,
            read_back_size: self.settings.read_back_size,
            stored,
            required: row.required.iter().map(|f| (*f).to_owned()).collect(),
            // Zoho's opt-out is a checkbox on the person (`opt_out`), not per address.
            opt_out_needs_email: false,
            limits,
        })
    }

    async fn check(&self) -> ConnectorResult<()> {
        self.client
            .send_ok(
                Method::GET,
                "/crm/v8/settings/fields",
                &[("module", "Contacts")],
                None,
            )
            .await?;
        Ok(())
    }

    /// Deals: whether the org keeps one currency (see [`crate::currency`]); contacts: whether
    /// they hold the GDPR consent record (see [`crate::gdpr`]).
    async fn survey(&self, object: ObjectType) -> ConnectorResult<()> {
        if object == ObjectType::CONTACTS {
            self.gdpr
                .get_or_try_init(|| crate::gdpr::enabled(&self.client))
                .await?;
        }
        self.currency
            .learn(object, &self.maps, || crate::currency::single(&self.client))
            .await
            .map(|_| ())
    }

    async fn prepare(&self, object: ObjectType) -> ConnectorResult<()> {
        // Normally surveyed already; a single-currency org has no currency field to check.
        self.survey(object).await?;
        let row = mapping::binding(object)?;
        let mapped: Vec<String> = mapping::read_fields(&self.maps.get(object), row)
            .into_iter()
            .filter(|n| !mapping::SYSTEM_FIELDS.iter().any(|(_, z)| z == n))
            .collect();
        let described = self.check_module(object, &mapped).await?;
        let text_flags: HashSet<String> = self
            .maps
            .get(object)
            .iter()
            .filter(|b| ferry_core::model::opt_out(&b.canonical).is_some())
            .filter(|b| {
                described.fields.iter().any(|f| {
                    f.api_name == b.vendor.as_ref()
                        && matches!(f.data_type.as_str(), "text" | "textarea")
                })
            })
            .map(|b| b.vendor.to_string())
            .collect();
        self.text_flags
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(object, text_flags);
        // A reference or a link finds its target through the target's source id (contacts their
        // Account, deals their contacts, notes their parent).
        let mut checked = vec![row.module];
        for target in row.link_targets() {
            let module = mapping::binding(target)?.module;
            if !checked.contains(&module) {
                self.check_module(target, &[]).await?;
                checked.push(module);
            }
        }
        if row.links == Some(Links::ContactRoles) {
            self.role().await?;
        }
        Ok(())
    }

    async fn upsert(
        &self,
        object: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        let row = mapping::binding(object)?;
        let map = self.maps.get(object);
        let batch_size = MAX_BATCH_SIZE.min(self.settings.batch_size);
        batch::upsert_in_batches(VENDOR, object, records, batch_size, |chunk| {
            self.upsert_chunk(&map, row, chunk)
        })
        .await
    }

    async fn read_back(
        &self,
        object: ObjectType,
        source_ids: &[String],
    ) -> ConnectorResult<Vec<Record>> {
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let row = mapping::binding(object)?;
        if !row.upsert {
            return self.read_back_notes(row, source_ids).await;
        }
        let src = self.src();
        let map = self.maps.get(object);
        // By Zoho id what this run wrote or found (one call per 100), by source id the rest.
        let (mut rows, rest) = self.read_by_zoho_id(row, &map, source_ids).await?;
        let (by_id, rest_len) = (rows.len(), rest.len());
        rows.extend(self.read_by_source_id(row, &map, &rest).await?);
        let mut out = Vec::with_capacity(rows.len());
        let mut rows_read = Vec::with_capacity(rows.len());
        // Per record read back: whether it was read by Zoho id (its row holds the consent record).
        let mut via_id = Vec::with_capacity(rows.len());
        for (at, z) in rows.into_iter().enumerate() {
            if let Some(record) = mapping::from_read_back(&map, row, &z, src) {
                out.push(record);
                rows_read.push(z);
                via_id.push(at < by_id);
            }
        }
        if row.links == Some(Links::ContactRoles) {
            self.read_back_contacts(&rows_read, &mut out).await?;
        }
        if self.consent_held(object) {
            // Rows read by id hold the consent record; COQL is not known to serve it, so the
            // rows it read are read again by id for it, 100 a call.
            let zoho_id = |z: &Map<String, Json>| roles::text(z, "id").unwrap_or_default();
            let ids: Vec<String> = rows_read
                .iter()
                .zip(&via_id)
                .filter(|(_, by_id)| !**by_id)
                .map(|(z, _)| zoho_id(z))
                .collect();
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let mut consents = if ids.is_empty() {
                HashMap::new()
            } else {
                crate::gdpr::fetch(&self.client, &ids).await?
            };
            for ((z, record), by_id) in rows_read.iter().zip(out.iter_mut()).zip(&via_id) {
                let consent = if *by_id {
                    z.get(crate::gdpr::FIELD).and_then(Json::as_object).cloned()
                } else {
                    consents.remove(&zoho_id(z))
                };
                // A consent date Zoho answers unreadable leaves the record read back without
                // it: verification then reports the difference by source id.
                if let Some(consent) = consent
                    && let Err(unreadable) = crate::gdpr::apply(record, &consent)
                {
                    tracing::warn!(vendor = VENDOR, id = %unreadable.source_id, reason = %unreadable.reason, "read back an unreadable consent record");
                }
            }
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), by_id, by_coql = rest_len, found = out.len(), "read back");
        Ok(out)
    }

    /// Upserted modules: COQL `select id, <src> from <module> where <src> is not null order by
    /// id asc limit 2000`, the cursor the last id read (records without a source id are not
    /// listed). Notes, which COQL does not serve: one scan of the list, in one page.
    async fn source_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        const PAGE: usize = 2_000;
        let row = mapping::binding(object)?;
        if !row.upsert {
            let ids = self.scan_notes(row).await?.into_keys().collect();
            return Ok(IdPage { ids, next: None });
        }
        let (module, src) = (row.module, self.src());
        let criteria = match cursor {
            None => format!("{src} is not null"),
            // Only a numeric id goes back into a query.
            Some(id) if crate::source::is_id(id) => format!("({src} is not null and id > {id})"),
            Some(_) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: "POST /crm/v8/coql".into(),
                    detail: "a record id that is not a number".into(),
                });
            }
        };
        let rows = self
            .coql(format!(
                "select id, {src} from {module} where {criteria} order by id asc limit {PAGE}"
            ))
            .await?;
        let ids = rows
            .iter()
            .filter_map(|r| r.get(src).and_then(Json::as_str))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let next = (rows.len() == PAGE)
            .then(|| rows.last().and_then(|r| r.get("id")).and_then(Json::as_str))
            .flatten()
            .map(str::to_owned);
        Ok(IdPage { ids, next })
    }

    /// Finds the records by the source-id field only (COQL, 50 ids a query; notes through one
    /// scan of the list), then `DELETE /crm/v8/{module}?ids=…` (100 a request) into Zoho's
    /// recycle bin, where the org can restore them: Zoho's only removal through the API, so
    /// `Archive` and `Delete` make the same call, reported as deleted. A record Zoho no
    /// longer finds (`INVALID_DATA` on its id: deleted meanwhile) is absent.
    async fn remove(
        &self,
        object: ObjectType,
        source_ids: &[String],
        _how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        const DELETE_LIMIT: usize = 100;
        let row = mapping::binding(object)?;
        if source_ids.is_empty() {
            return Ok(Vec::new());
        }
        let found: HashMap<String, String> = if row.upsert {
            self.lookup_targets(row.module, source_ids.to_vec()).await?
        } else {
            let mut all = self.scan_notes(row).await?;
            source_ids
                .iter()
                .filter_map(|sid| all.remove_entry(sid))
                .collect()
        };
        let ids: Vec<&str> = found
            .values()
            .map(String::as_str)
            .filter(|id| crate::source::is_id(id))
            .collect();
        let path = format!("/crm/v8/{}", row.module);
        let endpoint = format!("DELETE {path}");
        let mut answers: HashMap<String, Result<Removed, String>> = HashMap::new();
        for chunk in ids.chunks(DELETE_LIMIT) {
            let list = chunk.join(",");
            let response = self
                .client
                .send(Method::DELETE, &path, &[("ids", list.as_str())], None)
                .await?;
            // 200 all deleted, 207 some, 400 none: each with its per-record results.
            if !matches!(response.status.as_u16(), 200 | 207 | 400) {
                return Err(self.client.error_for(&endpoint, &response));
            }
            let body: QueryBody = response.json(VENDOR, &endpoint)?;
            if body.data.len() != chunk.len() && response.status.as_u16() == 400 {
                return Err(self.client.error_for(&endpoint, &response));
            }
            for item in &body.data {
                let Some(id) = item
                    .get("details")
                    .and_then(Json::as_object)
                    .and_then(|d| roles::text(d, "id"))
                else {
                    continue;
                };
                let code = roles::text(item, "code").unwrap_or_default();
                let answer = match code.as_str() {
                    "SUCCESS" => Ok(Removed::Deleted),
                    "INVALID_DATA" => Ok(Removed::Absent),
                    other => Err(ferry_core::redact::clean_code(other)),
                };
                answers.insert(id, answer);
            }
        }
        tracing::debug!(vendor = VENDOR, %object, asked = source_ids.len(), found = found.len(), "deleted");
        Ok(source_ids
            .iter()
            .map(|sid| {
                let result = match found.get(sid).map(|id| answers.get(id)) {
                    None => Ok(Removed::Absent),
                    Some(Some(Ok(removed))) => Ok(*removed),
                    Some(Some(Err(code))) => Err(RecordRejection {
                        source_id: sid.clone(),
                        code: code.clone(),
                        reason: format!("Zoho refused to delete the record from {}", row.module),
                    }),
                    Some(None) => Err(RecordRejection {
                        source_id: sid.clone(),
                        code: "NO_ANSWER".into(),
                        reason: format!(
                            "Zoho's answer to the delete named no result for this record of {}",
                            row.module
                        ),
                    }),
                };
                RemoveOutcome {
                    source_id: sid.clone(),
                    result,
                }
            })
            .collect())
    }

    /// Zoho has no count with criteria outside COQL aggregates, so this pages through the ids
    /// of records with a source id, 2,000 (COQL's largest page) per request, in id order.
    /// `GET /crm/v8/settings/fields?module=…` (scope `ZohoCRM.settings.fields.READ`).
    async fn describe(&self, object: ObjectType) -> ConnectorResult<Vec<VendorField>> {
        let row = mapping::binding(object)?;
        let body = Arc::new(fields::fetch(&self.client, row.module).await?);
        self.listed.keep(object, Arc::clone(&body));
        Ok(fields::vendor_fields(row, &body))
    }

    fn map_fields(&self, object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
        fields::check_bindings(object, bindings, Some(self.src()))?;
        let standard = mapping::binding(object)?.standard();
        self.maps.map(object, &standard, bindings);
        self.currency.leave_out(object, &self.maps);
        Ok(())
    }

    /// `POST /crm/v8/settings/fields?module=…` (scope `ZohoCRM.settings.fields.CREATE`): Zoho
    /// derives the API name from the label, and the field is usable at once.
    async fn create_field(
        &self,
        object: ObjectType,
        field: &NewField,
    ) -> ConnectorResult<VendorField> {
        self.listed.forget(object);
        fields::create(&self.client, object, field).await
    }

    async fn count_with_source_id(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        const PAGE: usize = 2_000;
        let row = mapping::binding(object)?;
        if !row.upsert {
            // COQL does not serve Notes: the list, page by page.
            return Ok(Some(self.scan_notes(row).await?.len() as u64));
        }
        let (module, src) = (row.module, self.src());
        // One aggregate query answers it; an account that refuses aggregates (a 400) is
        // counted by paging the ids instead.
        let aggregate = format!("select COUNT(id) from {module} where {src} is not null");
        match self.coql(aggregate).await {
            Ok(rows) => {
                if let Some(count) = aggregate_count(&rows) {
                    return Ok(Some(count));
                }
            }
            Err(ConnectorError::Status { status: 400, .. }) => {}
            Err(e) => return Err(e),
        }
        let mut count = 0u64;
        let mut last: Option<String> = None;
        loop {
            let criteria = match &last {
                None => format!("{src} is not null"),
                Some(id) => format!("({src} is not null and id > {id})"),
            };
            let rows = self
                .coql(format!(
                    "select id from {module} where {criteria} order by id asc limit {PAGE}"
                ))
                .await?;
            count += rows.len() as u64;
            let next = rows.last().and_then(|r| r.get("id")).and_then(Json::as_str);
            match next {
                // Only a numeric id goes back into a query.
                Some(id) if !crate::source::is_id(id) => {
                    return Err(ConnectorError::Malformed {
                        vendor: VENDOR,
                        endpoint: "POST /crm/v8/coql".into(),
                        detail: "a record id that is not a number".into(),
                    });
                }
                Some(id) if rows.len() == PAGE && last.as_deref() != Some(id) => {
                    last = Some(id.to_owned());
                }
                _ => return Ok(Some(count)),
            }
        }
    }
}

/// The number a `select COUNT(id)` answered: in its one row, the column named after the
/// aggregate (`COUNT(id)`, any case), or `None` for any other shape. No row is a count of zero.
fn aggregate_count(rows: &[Map<String, Json>]) -> Option<u64> {
    let row = match rows {
        [] => return Some(0),
        [row] => row,
        _ => return None,
    };
    let (_, value) = row
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase().starts_with("count("))?;
    match value {
        Json::Number(n) => n.as_u64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_answer_is_read_by_its_count_column_and_anything_else_is_no_count() {
        let rows = |v: Json| -> Vec<Map<String, Json>> { serde_json::from_value(v).expect("rows") };
        assert_eq!(
            aggregate_count(&rows(json!([{"COUNT(id)": 1234}]))),
            Some(1234)
        );
        assert_eq!(
            aggregate_count(&rows(json!([{"count(id)": "7", "id": "1"}]))),
            Some(7)
        );
        assert_eq!(aggregate_count(&[]), Some(0));
        // Not an aggregate's answer: the ids are paged instead.
        assert_eq!(aggregate_count(&rows(json!([{"id": "5"}]))), None);
        assert_eq!(
            aggregate_count(&rows(json!([{"COUNT(id)": 1}, {"COUNT(id)": 2}]))),
            None
        );
        assert_eq!(aggregate_count(&rows(json!([{"COUNT(id)": -1}]))), None);
    }

    #[tokio::test]
    async fn join_all_runs_the_futures_together_and_keeps_their_order() {
        let in_flight = std::cell::Cell::new(0);
        let most = std::cell::Cell::new(0);
        let futures: Vec<_> = [3u32, 1, 2]
            .into_iter()
            .map(|yields| {
                let (in_flight, most) = (&in_flight, &most);
                async move {
                    in_flight.set(in_flight.get() + 1);
                    most.set(most.get().max(in_flight.get()));
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    in_flight.set(in_flight.get() - 1);
                    yields
                }
            })
            .collect();
        assert_eq!(join_all(futures).await, vec![3, 1, 2]);
        assert_eq!(most.get(), 3, "all three were in flight at once");
        assert!(
            join_all(Vec::<std::future::Ready<u8>>::new())
                .await
                .is_empty()
        );
    }

    #[test]
    fn rejections_name_codes_and_fields_never_values() {
        let item = json!({"code": "INVALID_DATA", "details": {"api_name": "Email", "json_path": "$.data[0].Email"},
                          "message": "invalid data secret@value", "status": "error"});
        let row = mapping::binding(ObjectType::CONTACTS).unwrap();
        let map = row.standard();
        let (code, reason) = rejection_reason(&map, row, &item);
        assert_eq!(code, "INVALID_DATA");
        assert_eq!(reason, "Zoho refused INVALID_DATA on Email (email)");
        let multi = json!({"code": "MULTIPLE_OR_MULTI_ERRORS", "details": {"errors": [
            {"code": "DUPLICATE_DATA", "details": {"api_name": "Email"}},
            {"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name"}}]}, "status": "error"});
        let (code, reason) = rejection_reason(&map, row, &multi);
        assert_eq!(code, "MULTIPLE_OR_MULTI_ERRORS");
        assert!(
            reason.contains("DUPLICATE_DATA on Email (email)")
                && reason.contains("MANDATORY_NOT_FOUND on Last_Name (last_name)")
        );
        // A key of the GDPR consent record, as Zoho names it (its JSON path runs through it).
        let consent = json!({"code": "INVALID_DATA", "details": {"api_name": "Consent_Date",
            "json_path": "$.data[0].Data_Processing_Basis_Details.Consent_Date"}, "status": "error"});
        let (_, reason) = rejection_reason(&map, row, &consent);
        assert_eq!(
            reason,
            "Zoho refused INVALID_DATA on Consent_Date (consent_date)"
        );
    }

    #[test]
    fn an_unresolved_reference_names_the_field_and_the_target_module() {
        let row = mapping::binding(ObjectType::CONTACTS).unwrap();
        let record = Record::new(ObjectType::CONTACTS, "p-4");
        let refused = unresolved(row, &row.references[0], &record, "Src").unwrap();
        assert_eq!(refused.code, "UNRESOLVED_COMPANY");
        assert_eq!(
            refused.reason,
            "the company reference: no Account has the contact's company as its Src (the \
             company was not migrated, or was rejected)"
        );
    }
}
