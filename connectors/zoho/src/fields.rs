//! Zoho's field metadata for ferry: describing a module's fields (`GET
//! /crm/v8/settings/fields`), checking an operator's mapped fields before they go into a
//! `fields` parameter or a COQL query, and creating custom fields (`POST
//! /crm/v8/settings/fields`). Metadata only: no record value is read here.

use ferry_core::fields::{FieldBinding, FieldKind, NewField, VendorField};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::Client;
use crate::mapping::{self, FieldsBody};
use crate::policy::{clean_code, clean_name};

/// The metadata path.
pub(crate) const PATH: &str = "/crm/v8/settings/fields";

/// Most field API names Zoho takes in one `fields` parameter (and ferry puts in a COQL
/// select).
pub(crate) const MAX_READ_FIELDS: usize = 50;

/// `module`'s fields as Zoho describes them.
pub(crate) async fn fetch(client: &Client, module: &str) -> ConnectorResult<FieldsBody> {
    let response = client
        .send_ok(Method::GET, PATH, &[("module", module)], None)
        .await?;
    if response.status.as_u16() == 204 {
        return Ok(FieldsBody { fields: Vec::new() });
    }
    response.json(VENDOR, &format!("GET {PATH}"))
}

/// `object`'s fields in ferry's terms.
pub(crate) async fn describe(
    client: &Client,
    object: ObjectType,
) -> ConnectorResult<Vec<VendorField>> {
    let row = mapping::binding(object)?;
    let body = fetch(client, row.module).await?;
    Ok(vendor_fields(row, &body))
}

/// The fields of `row`'s module's `settings/fields` answer in ferry's terms.
pub(crate) fn vendor_fields(row: &mapping::ZohoObject, body: &FieldsBody) -> Vec<VendorField> {
    let fields: Vec<VendorField> = body
        .fields
        .iter()
        .map(|f| mapping::vendor_field(row, f))
        .collect();
    tracing::debug!(vendor = VENDOR, object = %row.object, fields = fields.len(), "described fields");
    fields
}

/// Refuses bindings ferry cannot read or write through: a vendor name that is not an API
/// name (it would go into a query), the lookup that carries the reference, the system
/// timestamps, `reserved` (the sink's source-id field), or more fields than one read names.
pub(crate) fn check_bindings(
    object: ObjectType,
    bindings: &[FieldBinding],
    reserved: Option<&str>,
) -> ConnectorResult<()> {
    let row = mapping::binding(object)?;
    let key = format!("fields.{object}");
    for b in bindings {
        let name = b.vendor.as_ref();
        let problem = if !mapping::is_api_name(name) {
            Some("is not a Zoho API name (letters, digits and underscores, starting with a letter)")
        } else if row.reference(name).is_some() {
            Some("is the lookup ferry writes the record's reference into")
        } else if row.bound_apart().iter().any(|(zoho, _)| *zoho == name) {
            Some("is a field ferry binds itself (the owner, the pipeline and stage, or a link)")
        } else if mapping::SYSTEM_FIELDS.iter().any(|(_, zoho)| *zoho == name) {
            Some("is a system field Zoho sets itself")
        } else if reserved == Some(name) || name.eq_ignore_ascii_case("id") {
            Some("holds the record's identity")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(ConnectorError::Config {
                vendor: VENDOR,
                key,
                detail: format!(
                    "Zoho field `{}` (mapped as `{}`) {problem}",
                    clean_name(name),
                    b.canonical
                ),
            });
        }
    }
    let map = row.standard().with(bindings);
    let read = mapping::read_fields(&map, row).len();
    if read > MAX_READ_FIELDS {
        return Err(ConnectorError::Config {
            vendor: VENDOR,
            key,
            detail: format!(
                "{read} Zoho fields of {} would be read, more than the {MAX_READ_FIELDS} Zoho \
                 returns in one call: map fewer fields",
                row.module
            ),
        });
    }
    Ok(())
}

/// The create-field body of `field`: Zoho derives the API name from the label.
fn create_body(field: &NewField, data_type: &str) -> Json {
    let label = if field.label.trim().is_empty() {
        field.name.trim()
    } else {
        field.label.trim()
    };
    let mut f = json!({"field_label": label, "data_type": data_type});
    if data_type == "text" {
        f["length"] = json!(255);
    }
    if data_type == "picklist" {
        f["pick_list_values"] = field
            .options
            .iter()
            .map(|o| json!({"display_value": o.label, "actual_value": o.label}))
            .collect();
    }
    json!({ "fields": [f] })
}

/// The codes and field names of a refused create-field answer (never Zoho's messages).
fn refusal(body: &Json) -> String {
    let items: Vec<&Json> = match body.get("fields").and_then(Json::as_array) {
        Some(items) => items.iter().collect(),
        None => vec![body],
    };
    let parts: Vec<String> = items
        .into_iter()
        .map(|item| {
            let code = clean_code(item.get("code").and_then(Json::as_str).unwrap_or("UNKNOWN"));
            match item
                .get("details")
                .and_then(|d| d.get("api_name"))
                .and_then(Json::as_str)
            {
                Some(key) => format!("{code} on {}", clean_name(key)),
                None => code,
            }
        })
        .collect();
    parts.join("; ")
}

/// Creates `field` on `object`'s module and returns it as [`describe`] lists it.
pub(crate) async fn create(
    client: &Client,
    object: ObjectType,
    field: &NewField,
) -> ConnectorResult<VendorField> {
    let row = mapping::binding(object)?;
    let module = row.module;
    let endpoint = format!("POST {PATH}?module={module}");
    let name = clean_name(&field.name);
    let data_type =
        mapping::data_type_of(field.kind).ok_or_else(|| ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!(
                "{endpoint}: cannot create field `{name}`: ferry does not create {} fields in Zoho",
                field.kind
            ),
        })?;
    if field.kind == FieldKind::Picklist && field.options.is_empty() {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!("{endpoint}: cannot create picklist `{name}` without options"),
        });
    }
    let response = client
        .send(
            Method::POST,
            PATH,
            &[("module", module)],
            Some(&create_body(field, data_type)),
        )
        .await?;
    let body: Json = serde_json::from_slice(&response.body).unwrap_or(Json::Null);
    if !response.is_success() {
        if response.status.as_u16() == 400 {
            return Err(ConnectorError::Setup {
                vendor: VENDOR,
                detail: format!(
                    "{endpoint}: Zoho refused to create field `{name}` ({}). A field with this label may \
                     exist already, or the org's custom-field limit is reached (Setup → Customization → \
                     Modules and Fields → {module})",
                    refusal(&body)
                ),
            });
        }
        return Err(client.error_for(&endpoint, &response));
    }
    let id = body
        .get("fields")
        .and_then(|f| f.get(0))
        .filter(|f| f.get("status").and_then(Json::as_str) == Some("success"))
        .and_then(|f| f.get("details"))
        .and_then(|d| d.get("id"))
        .and_then(|id| match id {
            Json::String(s) => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.clone(),
            detail: format!("the answer for field `{name}` has no fields[0].details.id"),
        })?;
    let described = fetch(client, module).await?;
    let created = described
        .fields
        .iter()
        .find(|f| match &f.id {
            Json::String(s) => *s == id,
            Json::Number(n) => n.to_string() == id,
            _ => false,
        })
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {PATH}"),
            detail: format!("the field created as `{name}` (id {id}) is not listed"),
        })?;
    let created = mapping::vendor_field(row, created);
    tracing::info!(vendor = VENDOR, module, field = %created.name, kind = %created.kind, "created field");
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::fields::PicklistOption;
    use ferry_core::model::FieldType;

    #[test]
    fn a_picklist_is_created_with_its_labels_as_values() {
        let field = NewField {
            name: "tier".into(),
            label: "Tier Two".into(),
            kind: FieldKind::Picklist,
            options: vec![PicklistOption {
                value: String::new(),
                label: "Gold".into(),
            }],
        };
        assert_eq!(
            create_body(&field, "picklist"),
            json!({"fields": [{"field_label": "Tier Two", "data_type": "picklist",
                "pick_list_values": [{"display_value": "Gold", "actual_value": "Gold"}]}]})
        );
    }

    #[test]
    fn mapped_fields_that_would_break_a_query_or_the_identity_are_refused() {
        let bind = |vendor: &'static str| FieldBinding::new("x", vendor, FieldType::Text);
        let contacts = ObjectType::CONTACTS;
        assert!(check_bindings(contacts, &[bind("Favourite_Colour")], Some("Src")).is_ok());
        for bad in [
            "Name) or (1=1",
            "Account_Name",
            "Modified_Time",
            "Src",
            "id",
            "9lives",
        ] {
            let err = check_bindings(contacts, &[bind(bad)], Some("Src")).unwrap_err();
            assert!(
                matches!(&err, ConnectorError::Config { key, .. } if key == "fields.contacts"),
                "{bad}: {err}"
            );
        }
        let many: Vec<FieldBinding> = (0..50)
            .map(|i| FieldBinding::new(format!("f{i}"), format!("F{i}"), FieldType::Text))
            .collect();
        assert!(check_bindings(contacts, &many, None).is_err());
    }

    #[test]
    fn refusals_name_codes_and_keys_not_messages() {
        let body = json!({"fields": [{"code": "ALREADY_USED", "details": {"api_name": "field_label"},
            "message": "secret label", "status": "error"}]});
        assert_eq!(refusal(&body), "ALREADY_USED on field_label");
    }
}
