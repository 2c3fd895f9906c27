//! HubSpot's v4 association batch reads, shared by the source (the links of a page of records)
//! and the sink (linking, unlinking and read-back): `POST
//! /crm/v4/associations/{from}/{to}/batch/read`, 1,000 records a request, 500 associations a
//! record an answer, later ones through the record's `paging.next.after`.

use std::collections::HashMap;

use ferry_core::{ConnectorError, ConnectorResult};
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::mapping::{self, string_or_number};
use crate::objects::{HubspotBinding, HubspotReference, binding};

/// HubSpot's batch-read limit for v4 associations (since 2025-02-10).
pub(crate) const MAX_ASSOCIATION_READ: usize = 1000;

/// A v4 association batch-read answer (200, or 207 listing records without any as errors).
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<AssociationRead>,
}

/// One record of a v4 association batch read: the associated records of `from`.
#[derive(Deserialize)]
pub(crate) struct AssociationRead {
    pub from: ObjectRef,
    #[serde(default)]
    pub to: Vec<AssociatedObject>,
    /// Present when `from` has more associations than one answer lists (500).
    #[serde(default)]
    paging: Option<mapping::Paging>,
}

/// A record's id in a v4 answer.
#[derive(Deserialize)]
pub(crate) struct ObjectRef {
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
}

/// One associated record and the association's types.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AssociatedObject {
    #[serde(deserialize_with = "string_or_number")]
    pub to_object_id: String,
    #[serde(default)]
    association_types: Vec<AssociationType>,
}

impl AssociatedObject {
    /// Whether the association has the `HUBSPOT_DEFINED` type `type_id` (a reference's: a
    /// contact's primary company).
    pub fn has_type(&self, type_id: i64) -> bool {
        self.association_types.iter().any(|a| {
            a.type_id == Some(type_id)
                && a.category.as_deref().is_none_or(|c| c == "HUBSPOT_DEFINED")
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationType {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    type_id: Option<i64>,
}

impl AssociationRead {
    /// The HubSpot ids `reference` refers to from this record, as the source reads them: every
    /// associated record for a link field; else the one of the reference's type (the primary
    /// company), or the first listed.
    pub fn referenced<'a>(&'a self, reference: &HubspotReference) -> Vec<&'a str> {
        if reference.many {
            let mut ids: Vec<&str> = self.to.iter().map(|t| t.to_object_id.as_str()).collect();
            ids.dedup();
            return ids;
        }
        self.to
            .iter()
            .find(|t| t.has_type(reference.association_type_id))
            .or_else(|| self.to.first())
            .map(|t| t.to_object_id.as_str())
            .into_iter()
            .collect()
    }
}

/// The associations with `reference`'s target of the given records of `row`'s object
/// (HubSpot ids); records without any are absent (HubSpot lists them as errors of a 207).
/// A link field's reads follow every record's pages; a single reference's stop once the
/// association of its type (a contact's primary company) was listed.
pub(crate) async fn read(
    client: &HubspotClient,
    row: &HubspotBinding,
    reference: &HubspotReference,
    from: &[String],
) -> ConnectorResult<Vec<AssociationRead>> {
    let target = binding(reference.target)?;
    let path = format!(
        "/crm/v4/associations/{}/{}/batch/read",
        row.path, target.path
    );
    let mut out: Vec<AssociationRead> = Vec::with_capacity(from.len());
    let mut position: HashMap<String, usize> = HashMap::new();
    let mut inputs: Vec<Json> = from.iter().map(|id| json!({"id": id})).collect();
    while !inputs.is_empty() {
        let mut next_inputs = Vec::new();
        for chunk in inputs.chunks(MAX_ASSOCIATION_READ) {
            let body = json!({ "inputs": chunk });
            let answer: Answer = client.post_exempt(&path, &body).await?;
            for mut read in answer.results {
                let after = read.paging.take().and_then(|p| p.next).map(|n| n.after);
                let id = read.from.id.clone();
                let index = match position.get(&id) {
                    Some(&i) => {
                        out[i].to.append(&mut read.to);
                        i
                    }
                    None => {
                        position.insert(id.clone(), out.len());
                        out.push(read);
                        out.len() - 1
                    }
                };
                let enough = !reference.many
                    && out[index]
                        .to
                        .iter()
                        .any(|t| t.has_type(reference.association_type_id));
                if let (false, Some(after)) = (enough, after) {
                    let asked = chunk
                        .iter()
                        .find(|i| i["id"] == json!(id))
                        .and_then(|i| i.get("after"));
                    if asked.and_then(Json::as_str) == Some(after.as_str()) {
                        return Err(ConnectorError::Malformed {
                            vendor: VENDOR,
                            endpoint: format!("POST {path}"),
                            detail: "an association page's next cursor equals its own".into(),
                        });
                    }
                    next_inputs.push(json!({"id": id, "after": after}));
                }
            }
        }
        inputs = next_inputs;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ObjectType;

    fn read(json: Json) -> AssociationRead {
        serde_json::from_value(json).expect("an association read")
    }

    fn reference(object: ObjectType, target: ObjectType) -> &'static HubspotReference {
        binding(object)
            .expect("a row")
            .references
            .iter()
            .find(|r| r.target == target)
            .expect("a reference")
    }

    #[test]
    fn a_link_field_takes_every_association_and_a_reference_the_primary() {
        let answer = read(json!({"from": {"id": "3000001"}, "to": [
            {"toObjectId": 11, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null}]},
            {"toObjectId": "12", "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": null}]},
        ]}));
        let company = reference(ObjectType::DEALS, ObjectType::COMPANIES);
        assert_eq!(answer.referenced(company), vec!["12"]);
        let contacts = reference(ObjectType::DEALS, ObjectType::CONTACTS);
        assert_eq!(answer.referenced(contacts), vec!["11", "12"]);
        // No primary: the first listed.
        let unlabelled = read(json!({"from": {"id": "1"}, "to": [
            {"toObjectId": 21, "associationTypes": [{"typeId": 341}]},
            {"toObjectId": 22, "associationTypes": [{"typeId": 341}]}]}));
        assert_eq!(unlabelled.referenced(company), vec!["21"]);
        // A type of another category is not HubSpot's primary label.
        let custom = read(json!({"from": {"id": "1"}, "to": [
            {"toObjectId": 31, "associationTypes": [{"category": "USER_DEFINED", "typeId": 341}]},
            {"toObjectId": 32, "associationTypes": [{"category": "USER_DEFINED", "typeId": 5}]}]}));
        assert_eq!(custom.referenced(company), vec!["31"]);
        let none = read(json!({"from": {"id": "1"}}));
        assert!(none.referenced(contacts).is_empty() && none.referenced(company).is_empty());
    }
}
