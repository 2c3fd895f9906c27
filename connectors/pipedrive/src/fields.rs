//! Pipedrive's field metadata: listing an entity type's fields (`GET /api/v2/{personFields|
//! organizationFields}`, cursor-paged) and creating a custom field (`POST` to the same path),
//! never reading a record's value.

use ferry_core::fields::{FieldBinding, NewField, VendorField};
use ferry_core::http::Sent;
use ferry_core::{ConnectorError, ConnectorResult, ObjectType};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::PipedriveClient;
use crate::mapping;
use crate::objects::{self, PipedriveObject};

/// The fields-API path of `row`'s object.
fn path(row: &PipedriveObject) -> String {
    format!("/api/v2/{}", row.fields_path)
}

/// Every field of `object` as Pipedrive lists it (standard, system and custom, with options),
/// 500 (the largest page) per request, each page under the client's page body cap.
pub(crate) async fn describe(
    client: &PipedriveClient,
    object: ObjectType,
) -> ConnectorResult<Vec<VendorField>> {
    let row = objects::binding(object)?;
    if !row.source_id_field {
        return Ok(note_fields());
    }
    let path = path(row);
    let standard = row.standard_map();
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("limit", "500")];
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let body = client.get(&path, &query).await?;
        let items =
            body.get("data")
                .and_then(Json::as_array)
                .ok_or_else(|| ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {path}"),
                    detail: "`data` is not a list".into(),
                })?;
        out.extend(
            items
                .iter()
                .filter_map(|raw| mapping::vendor_field(row, raw, &standard)),
        );
        match body
            .pointer("/additional_data/next_cursor")
            .and_then(Json::as_str)
            .filter(|c| !c.is_empty())
        {
            Some(next) if cursor.as_deref() == Some(next) => {
                return Err(ConnectorError::Malformed {
                    vendor: VENDOR,
                    endpoint: format!("GET {path}"),
                    detail: "the next-page cursor equals the current one".into(),
                });
            }
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

/// A note's fields: Pipedrive has no fields API for notes (and no custom note fields), so they
/// are the v1 note's own, listed without a request.
fn note_fields() -> Vec<VendorField> {
    use ferry_core::FieldKind;
    let field = |name: &str, kind, vendor_type: &str, canonical: Option<&str>| VendorField {
        name: name.to_owned(),
        label: name.to_owned(),
        kind,
        vendor_type: vendor_type.to_owned(),
        custom: false,
        writable: true,
        options: Vec::new(),
        canonical: canonical.map(str::to_owned),
    };
    vec![
        field(
            "content",
            FieldKind::Text,
            "html",
            Some(ferry_core::field::BODY),
        ),
        field(
            "add_time",
            FieldKind::Timestamp,
            "datetime",
            Some(ferry_core::field::TIMESTAMP),
        ),
        field(
            "user_id",
            FieldKind::Reference,
            "user",
            Some(ferry_core::field::OWNER),
        ),
        field(
            "deal_id",
            FieldKind::Reference,
            "deal",
            Some(ferry_core::field::PARENTS),
        ),
        field(
            "person_id",
            FieldKind::Reference,
            "person",
            Some(ferry_core::field::PARENTS),
        ),
        field(
            "org_id",
            FieldKind::Reference,
            "org",
            Some(ferry_core::field::PARENTS),
        ),
    ]
}

/// Checks that each binding names a field this connector can read and write as one value: a
/// plain top-level field or a custom field's key. Compound fields (emails, phones, the
/// organization, the marketing status, the address) are refused, naming the field.
pub(crate) fn check_bindings(object: ObjectType, bindings: &[FieldBinding]) -> ConnectorResult<()> {
    let row = objects::binding(object)?;
    if let (false, Some(b)) = (row.source_id_field, bindings.first()) {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!(
                "cannot map `{}` to a {} field: Pipedrive {}s have no custom fields",
                b.canonical, row.noun, row.noun
            ),
        });
    }
    for b in bindings {
        if !mapping::PLAIN_TOP_LEVEL.contains(&b.vendor.as_ref())
            && !mapping::is_custom_key(&b.vendor)
        {
            return Err(ConnectorError::Unsupported {
                vendor: VENDOR,
                detail: format!(
                    "cannot map `{}` to {} field `{}`: only a custom field (by its 40-character key) \
                     or one of {} can be mapped",
                    b.canonical,
                    row.path,
                    b.vendor,
                    mapping::PLAIN_TOP_LEVEL.join(", ")
                ),
            });
        }
    }
    Ok(())
}

/// Creates a custom field of `object` through `POST /api/v2/{personFields|
/// organizationFields}` and returns it as [`describe`] lists it. Pipedrive names it by a
/// 40-character key of its own; the label is `field.label` (else `field.name`). Only admins
/// may add fields.
pub(crate) async fn create(
    client: &PipedriveClient,
    object: ObjectType,
    field: &NewField,
) -> ConnectorResult<VendorField> {
    let row = objects::binding(object)?;
    if !row.source_id_field {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!("Pipedrive {}s have no custom fields to create", row.noun),
        });
    }
    let path = path(row);
    let endpoint = format!("POST {path}");
    let label = Some(field.label.trim())
        .filter(|l| !l.is_empty())
        .unwrap_or(field.name.trim())
        .to_owned();
    let refuse = |detail: String| ConnectorError::Unsupported {
        vendor: VENDOR,
        detail: format!("{endpoint}: cannot create field \"{label}\": {detail}"),
    };
    if label.is_empty() {
        return Err(refuse("the field has neither a label nor a name".into()));
    }
    let Some(field_type) = mapping::field_type_for(field.kind) else {
        return Err(refuse(format!(
            "Pipedrive has no custom field type for {} values",
            field.kind
        )));
    };
    let mut body = json!({"field_name": label, "field_type": field_type});
    if matches!(field_type, "enum" | "set") {
        if field.options.is_empty() {
            return Err(refuse("a picklist needs at least one option".into()));
        }
        body["options"] = json!(
            field
                .options
                .iter()
                .map(|o| json!({"label": o.label}))
                .collect::<Vec<_>>()
        );
    }
    // Pipedrive allows several fields with one name: the one created is the one whose key
    // was not there before.
    let before: Vec<String> = describe(client, object)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let landed = || async {
        Ok(describe(client, object)
            .await?
            .into_iter()
            .find(|f| f.custom && f.label == label && !before.contains(&f.name)))
    };
    let response = match client.create(&path, &body, landed).await {
        Ok(Sent::Landed(created)) => return Ok(created),
        Ok(Sent::Response(response)) => response,
        Err(e) => return Err(for_field(e, &label)),
    };
    let answer = client
        .write_envelope(&Method::POST, &path, response)
        .map_err(|e| for_field(e, &label))?;
    let created = answer
        .get("data")
        .and_then(|raw| mapping::vendor_field(row, raw, &row.standard_map()))
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.clone(),
            detail: format!("the created field \"{label}\" has no `field_code`"),
        })?;
    tracing::info!(vendor = VENDOR, entity = row.path, key = %created.name, "created a custom field");
    Ok(created)
}

/// `error` with the field it was about named in its detail; a 403 becomes advice (only
/// admins may add fields).
fn for_field(error: ConnectorError, label: &str) -> ConnectorError {
    match error {
        ConnectorError::Auth {
            status: 403,
            endpoint,
            ..
        } => ConnectorError::Setup {
            vendor: VENDOR,
            detail: format!(
                "{endpoint}: this API token may not create field \"{label}\" (creating fields needs \
                 an admin user). Create it once in Settings → Data fields, or use an admin's token"
            ),
        },
        // Another refused credential says so itself.
        auth @ ConnectorError::Auth { .. } => auth,
        other => other.about(format_args!("creating field \"{label}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::FieldType;

    #[test]
    fn only_plain_fields_and_custom_keys_can_be_mapped() {
        let ok = [
            FieldBinding::new(
                "colour",
                "0123456789abcdef0123456789abcdef01234567",
                FieldType::Text,
            ),
            FieldBinding::new("first_name", "first_name", FieldType::Text),
        ];
        assert!(check_bindings(ObjectType::CONTACTS, &ok).is_ok());
        for vendor in [
            "emails",
            "org_id",
            "ABCDEF0123456789abcdef0123456789abcdef01",
            "abc",
        ] {
            let err = check_bindings(
                ObjectType::CONTACTS,
                &[FieldBinding::new("x", vendor, FieldType::Text)],
            )
            .unwrap_err();
            assert!(err.to_string().contains(vendor), "{err}");
        }
    }
}
