//! A deal's contacts, held by Salesforce in rows of their own: one `OpportunityContactRole`
//! (`OpportunityId`, `ContactId`, `IsPrimary`) per contact. Read for a page of opportunities at
//! once (`WHERE OpportunityId IN (…)`), never one request per deal; written after the
//! opportunities through sObject Collections: the roles a deal lacks are created (the contact
//! found by its external id, `"Contact": {"<ext>": "<source id>"}`), the roles of migrated
//! contacts the deal no longer has are deleted, and the roles it has are left alone, so a rerun
//! creates nothing.

use std::collections::HashMap;

use ferry_core::http::BodyCap;
use ferry_core::json::{Field, Object};
use ferry_core::model::Link;
use ferry_core::resend::{Attempt, Resend, settle};
use ferry_core::{
    ConnectorError, ConnectorResult, ObjectType, Record, RecordOutcome, RecordRejection, Value,
};
use reqwest::Method;
use serde::Deserialize;

use crate::VENDOR;
use crate::client::{Call, Client};
use crate::policy::clean_code;
use crate::soql;

/// The sObject of a deal's contact links.
pub(crate) const ROLE_SOBJECT: &str = "OpportunityContactRole";

/// Most records one sObject Collections call carries (and ids one delete names).
const COLLECTION_LIMIT: usize = 200;

/// One contact role as read: its id, its opportunity's id, and its contact (the `Id` when
/// reading a source, the contact's source id when reading back a sink).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Role {
    pub id: String,
    pub opportunity: String,
    pub contact: Option<String>,
    pub primary: bool,
}

/// The roles of the opportunities `ids`, primary first, then in role id order. `contact` is
/// the field that names the contact: `ContactId`, or `Contact.<ext>` for its source id.
pub(crate) async fn roles(
    client: &Client,
    ids: &[String],
    contact: &str,
) -> ConnectorResult<Vec<Role>> {
    let prefix = format!(
        "SELECT Id, OpportunityId, {contact}, IsPrimary FROM {ROLE_SOBJECT} WHERE OpportunityId"
    );
    let path: Vec<&str> = contact.split('.').collect();
    let mut out = Vec::new();
    let mut bad = false;
    for q in soql::in_queries(&prefix, ids) {
        client
            .query_each(&q, |sf| match role(sf, &path) {
                Some(r) => out.push(r),
                None => bad = true,
            })
            .await?;
    }
    if bad {
        return Err(ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {}", client.data_path("query")),
            detail: format!("an {ROLE_SOBJECT} row has no Id or OpportunityId"),
        });
    }
    out.sort_by(|a, b| b.primary.cmp(&a.primary).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// One role row; `None` when it lacks its own or its opportunity's id.
fn role(sf: &Object<'_>, contact: &[&str]) -> Option<Role> {
    let text = |f: Option<&Field<'_>>| f.and_then(Field::text).map(|t| t.into_owned());
    let mut value = sf.get(contact.first()?);
    for step in &contact[1..] {
        value = value.and_then(|v| v.get(step));
    }
    Some(Role {
        id: text(sf.get("Id"))?,
        opportunity: text(sf.get("OpportunityId"))?,
        contact: text(value).filter(|c| !c.is_empty()),
        primary: matches!(sf.get("IsPrimary"), Some(Field::Bool(true))),
    })
}

/// Sets `field` of each record to the contacts its roles name, as links; `id_of` gives the
/// opportunity id of a record (the source id on a source, the sink id on read-back).
pub(crate) fn attach(
    records: &mut [Record],
    field: &'static str,
    roles: Vec<Role>,
    id_of: impl Fn(usize, &Record) -> Option<String>,
) {
    let mut by_deal: HashMap<String, Vec<Link>> = HashMap::new();
    for r in roles {
        if let Some(contact) = r.contact {
            let links = by_deal.entry(r.opportunity).or_default();
            if !links.iter().any(|l| l.id == contact) {
                links.push(Link {
                    object: ObjectType::CONTACTS,
                    id: contact,
                });
            }
        }
    }
    for (i, record) in records.iter_mut().enumerate() {
        if let Some(links) = id_of(i, record).and_then(|id| by_deal.remove(&id)) {
            record.set(field, Value::Links(links));
        }
    }
}

/// The contact source ids a record links, in its order, each once.
fn wanted(record: &Record, field: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(Value::Links(links)) = record.get(field) {
        for link in links.iter().filter(|l| l.object == ObjectType::CONTACTS) {
            if !link.id.is_empty() && !out.contains(&link.id) {
                out.push(link.id.clone());
            }
        }
    }
    out
}

/// A record's result in an sObject Collections response.
#[derive(Deserialize)]
struct SaveResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<SaveError>,
}

/// A record's error; the message is not read (it may quote values).
#[derive(Deserialize)]
struct SaveError {
    #[serde(rename = "statusCode", default)]
    status_code: String,
}

/// A role to create: the index of its deal's record, the opportunity id, the contact's source
/// id, and whether it is the deal's primary.
#[derive(Clone, Debug)]
struct NewRole {
    record: usize,
    opportunity: String,
    contact: String,
    primary: bool,
}

/// Brings the contact roles of every written deal of `records` (their `outcomes`, in order) to
/// the contacts each links in `field`. A deal whose roles cannot all be written is reported
/// refused, naming the contact by its source id (its opportunity is saved: a rerun completes it).
pub(crate) async fn write_roles(
    client: &Client,
    resend: Resend,
    ext: &str,
    field: &str,
    records: &[Record],
    outcomes: &mut [RecordOutcome],
) -> ConnectorResult<()> {
    let written: Vec<(usize, String)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.result.as_ref().ok().map(|w| (i, w.sink_id.clone())))
        .collect();
    if written.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = written.iter().map(|(_, id)| id.clone()).collect();
    let existing = roles(client, &ids, &format!("Contact.{ext}")).await?;
    let mut held: HashMap<&str, Vec<&Role>> = HashMap::new();
    for r in &existing {
        held.entry(r.opportunity.as_str()).or_default().push(r);
    }
    let mut create = Vec::new();
    let mut delete: Vec<(usize, String)> = Vec::new();
    for (i, opportunity) in &written {
        let want = wanted(&records[*i], field);
        let has = held.get(opportunity.as_str()).cloned().unwrap_or_default();
        for (k, contact) in want.iter().enumerate() {
            if !has.iter().any(|r| r.contact.as_deref() == Some(contact)) {
                create.push(NewRole {
                    record: *i,
                    opportunity: opportunity.clone(),
                    contact: contact.clone(),
                    primary: k == 0 && has.is_empty(),
                });
            }
        }
        // Roles of contacts ferry did not migrate (no source id) are the sink's own: kept.
        for r in has {
            if r.contact.as_ref().is_some_and(|c| !want.contains(c)) {
                delete.push((*i, r.id.clone()));
            }
        }
    }
    let mut refused: HashMap<usize, RecordRejection> = HashMap::new();
    for chunk in create.chunks(COLLECTION_LIMIT) {
        let settled = settle(VENDOR, chunk.to_vec(), resend, |items| {
            create_roles(client, ext, items)
        })
        .await?;
        for (role, code) in settled {
            if let Some(code) = code {
                let source_id = records[role.record].source_id.clone();
                refused.entry(role.record).or_insert(RecordRejection {
                    source_id,
                    reason: format!(
                        "Salesforce refused the {field} link to contact {} ({code}): no Contact has it as its \
                         {ext} (the contact was not migrated, or was rejected)",
                        role.contact
                    ),
                    code,
                });
            }
        }
    }
    for chunk in delete.chunks(COLLECTION_LIMIT) {
        for ((i, _), code) in chunk.iter().zip(delete_roles(client, chunk).await?) {
            if let Some(code) = code {
                let source_id = records[*i].source_id.clone();
                refused.entry(*i).or_insert(RecordRejection {
                    source_id,
                    reason: format!(
                        "Salesforce refused to remove a {field} link the source deal no longer has ({code})"
                    ),
                    code,
                });
            }
        }
    }
    tracing::debug!(
        vendor = VENDOR,
        deals = written.len(),
        created = create.len(),
        deleted = delete.len(),
        refused = refused.len(),
        "contact roles written"
    );
    for (i, rejection) in refused {
        outcomes[i].result = Err(rejection);
    }
    Ok(())
}

/// `POST …/composite/sobjects` of the roles `items`: each answered done (`None`, or the code it
/// was refused with) or to send again (a row lock).
async fn create_roles(
    client: &Client,
    ext: &str,
    items: Vec<NewRole>,
) -> ConnectorResult<Vec<(NewRole, Attempt<Option<String>>)>> {
    let records: Vec<serde_json::Value> = items
        .iter()
        .map(|r| {
            serde_json::json!({
                "attributes": {"type": ROLE_SOBJECT},
                "OpportunityId": r.opportunity,
                "Contact": {ext: r.contact},
                "IsPrimary": r.primary,
            })
        })
        .collect();
    let body = serde_json::json!({"allOrNone": false, "records": records});
    let results = collection(
        client,
        Method::POST,
        Some(body.to_string().into_bytes()),
        &[],
    )
    .await?;
    if results.len() != items.len() {
        return Err(count_mismatch(client, "POST", results.len(), items.len()));
    }
    Ok(items
        .into_iter()
        .zip(results)
        .map(|(item, result)| {
            let attempt = match outcome(&result) {
                None => Attempt::Done(None),
                Some(code) if code == "UNABLE_TO_LOCK_ROW" => Attempt::Again(Some(code)),
                Some(code) => Attempt::Done(Some(code)),
            };
            (item, attempt)
        })
        .collect())
}

/// `DELETE …/composite/sobjects?ids=…`: each role's refusal code, or `None` when deleted.
async fn delete_roles(
    client: &Client,
    roles: &[(usize, String)],
) -> ConnectorResult<Vec<Option<String>>> {
    let ids: Vec<&str> = roles.iter().map(|(_, id)| id.as_str()).collect();
    Ok(delete_ids(client, &ids)
        .await?
        .into_iter()
        .map(|code| code.filter(|c| c != "ENTITY_IS_DELETED"))
        .collect())
}

/// `DELETE …/composite/sobjects?ids=…&allOrNone=false` (at most 200 ids): each record's
/// refusal code (`ENTITY_IS_DELETED` for one deleted already), or `None` when deleted.
pub(crate) async fn delete_ids(
    client: &Client,
    ids: &[&str],
) -> ConnectorResult<Vec<Option<String>>> {
    let joined = ids.join(",");
    let results = collection(
        client,
        Method::DELETE,
        None,
        &[("ids", &joined), ("allOrNone", "false")],
    )
    .await?;
    if results.len() != ids.len() {
        return Err(count_mismatch(client, "DELETE", results.len(), ids.len()));
    }
    Ok(results.iter().map(outcome).collect())
}

/// `None` for a saved record, else its first error's code.
fn outcome(result: &SaveResult) -> Option<String> {
    if result.success {
        return None;
    }
    Some(
        result
            .errors
            .first()
            .map(|e| clean_code(&e.status_code))
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "UNKNOWN".into()),
    )
}

/// One sObject Collections call on `composite/sobjects` and its per-record results.
async fn collection(
    client: &Client,
    method: Method,
    body: Option<Vec<u8>>,
    query: &[(&str, &str)],
) -> ConnectorResult<Vec<SaveResult>> {
    let path = client.data_path("composite/sobjects");
    let endpoint = format!("{method} {path}");
    let response = client
        .send(Call {
            method,
            path: &path,
            query,
            body,
            headers: &[],
            cap: BodyCap::Page,
        })
        .await?;
    response.json(VENDOR, &endpoint)
}

fn count_mismatch(client: &Client, method: &str, got: usize, sent: usize) -> ConnectorError {
    ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("{method} {}", client.data_path("composite/sobjects")),
        detail: format!("{got} results for {sent} {ROLE_SOBJECT} records"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Object<'_> {
        serde_json::from_str(json).expect("json")
    }

    #[test]
    fn roles_name_their_contact_by_id_or_through_the_contact() {
        let sf = parse(
            r#"{"Id":"00K1","OpportunityId":"0061","ContactId":"0031","IsPrimary":true,
                "Contact":{"attributes":{"type":"Contact"},"Ext__c":"c-9"}}"#,
        );
        let by_id = role(&sf, &["ContactId"]).expect("role");
        assert_eq!(
            (by_id.contact.as_deref(), by_id.primary),
            (Some("0031"), true)
        );
        let by_ext = role(&sf, &["Contact", "Ext__c"]).expect("role");
        assert_eq!(by_ext.contact.as_deref(), Some("c-9"));
        let unmigrated = parse(r#"{"Id":"00K2","OpportunityId":"0061","Contact":{"Ext__c":null}}"#);
        assert_eq!(
            role(&unmigrated, &["Contact", "Ext__c"]).unwrap().contact,
            None
        );
        assert!(role(&parse(r#"{"Id":"00K3"}"#), &["ContactId"]).is_none());
    }

    #[test]
    fn links_are_attached_per_deal_once_each() {
        let role = |id: &str, opp: &str, contact: Option<&str>| Role {
            id: id.into(),
            opportunity: opp.into(),
            contact: contact.map(str::to_owned),
            primary: false,
        };
        let mut records = vec![
            Record::new(ObjectType::DEALS, "0061"),
            Record::new(ObjectType::DEALS, "0062"),
            Record::new(ObjectType::DEALS, "0063"),
        ];
        let roles = vec![
            role("1", "0061", Some("c-1")),
            role("2", "0061", Some("c-2")),
            role("3", "0061", Some("c-1")),
            role("4", "0062", None),
            role("5", "0063", Some("c-3")),
        ];
        attach(&mut records, "contacts", roles, |_, r| {
            Some(r.source_id.clone())
        });
        let ids = |r: &Record| match r.get("contacts") {
            Some(Value::Links(l)) => l.iter().map(|l| l.id.clone()).collect::<Vec<_>>(),
            _ => Vec::new(),
        };
        assert_eq!(ids(&records[0]), ["c-1", "c-2"]);
        assert!(records[1].get("contacts").is_none());
        assert_eq!(ids(&records[2]), ["c-3"]);
        let mut deal = Record::new(ObjectType::DEALS, "d");
        deal.set(
            "contacts",
            Value::Links(vec![
                Link {
                    object: ObjectType::CONTACTS,
                    id: "b".into(),
                },
                Link {
                    object: ObjectType::CONTACTS,
                    id: "a".into(),
                },
                Link {
                    object: ObjectType::CONTACTS,
                    id: "b".into(),
                },
            ]),
        );
        assert_eq!(wanted(&deal, "contacts"), ["b", "a"]);
    }
}
