//! HubSpot's field metadata: the properties API (`GET /crm/v3/properties/{objectType}`) as
//! [`VendorField`]s, and creating a custom property (`POST /crm/v3/properties/{objectType}`).
//! Metadata only: no record value is ever read here.

use ferry_core::http::BodyCap;
use ferry_core::redact::clean_code;
use ferry_core::{
    ConnectorError, ConnectorResult, FieldKind, FieldType, NewField, ObjectType, PicklistOption,
    VendorField,
};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::HubspotClient;
use crate::mapping;
use crate::objects::{HubspotBinding, binding};

/// A property as the properties API describes it (the parts ferry reads).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Property {
    name: String,
    #[serde(default)]
    label: String,
    #[serde(rename = "type", default)]
    ty: String,
    #[serde(default)]
    field_type: String,
    #[serde(default)]
    options: Vec<PropertyOption>,
    /// Absent in some answers; HubSpot's own properties say `true`.
    #[serde(default)]
    hubspot_defined: Option<bool>,
    #[serde(default)]
    calculated: bool,
    #[serde(default)]
    external_options: bool,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    modification_metadata: Option<ModificationMetadata>,
}

#[derive(Debug, Deserialize)]
struct PropertyOption {
    #[serde(default)]
    label: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModificationMetadata {
    #[serde(default)]
    read_only_value: bool,
}

/// The properties API's list answer.
#[derive(Deserialize)]
struct PropertyList {
    results: Vec<Property>,
}

/// The kind of a HubSpot property, from its `type` and `fieldType`. A number is a decimal
/// (HubSpot's number properties take decimals) unless the standard table maps it to a whole
/// canonical number (`numberofemployees`); a text the table maps to an email or phone field is
/// one.
fn kind(property: &Property, canonical: Option<FieldType>) -> FieldKind {
    match (property.ty.as_str(), property.field_type.as_str()) {
        _ if property.external_options => FieldKind::Reference,
        (_, "file") => FieldKind::Other,
        ("string", "phonenumber") | ("phone_number", _) => FieldKind::Phone,
        ("string", _) => match canonical {
            Some(FieldType::Email) => FieldKind::Email,
            Some(FieldType::Phone) => FieldKind::Phone,
            _ => FieldKind::Text,
        },
        ("number", _) => match canonical {
            Some(FieldType::Integer) => FieldKind::Integer,
            _ => FieldKind::Decimal,
        },
        ("date", _) => FieldKind::Date,
        ("datetime", _) => FieldKind::Timestamp,
        ("bool", _) | ("enumeration", "booleancheckbox") => FieldKind::Bool,
        ("enumeration", "checkbox") => FieldKind::MultiPicklist,
        ("enumeration", _) => FieldKind::Picklist,
        _ => FieldKind::Other,
    }
}

impl Property {
    /// The property as a [`VendorField`] of `row`'s object.
    fn into_field(self, row: &HubspotBinding) -> VendorField {
        let canonical = mapping::canonical(row, &self.name);
        let canonical_type = canonical.and_then(|c| row.object.field(c)).map(|f| f.ty);
        let kind = kind(&self, canonical_type);
        let options = match kind {
            FieldKind::Picklist | FieldKind::MultiPicklist => self
                .options
                .into_iter()
                .map(|o| PicklistOption {
                    value: o.value,
                    label: o.label,
                })
                .collect(),
            _ => Vec::new(),
        };
        let read_only = self
            .modification_metadata
            .as_ref()
            .is_some_and(|m| m.read_only_value);
        VendorField {
            writable: !read_only && !self.calculated && !self.archived,
            vendor_type: format!("{}/{}", clean_code(&self.ty), clean_code(&self.field_type)),
            custom: !self.hubspot_defined.unwrap_or(false),
            label: self.label,
            name: self.name,
            kind,
            options,
            canonical: canonical.map(str::to_owned),
        }
    }
}

/// The properties path of `row`'s object.
fn path(row: &HubspotBinding) -> String {
    format!("/crm/v3/properties/{}", row.path)
}

/// Every live property of `object`, read under the page body cap (HubSpot answers all
/// properties in one unpaged answer, which for a portal with many custom properties is large).
pub(crate) async fn describe(
    client: &HubspotClient,
    object: ObjectType,
) -> ConnectorResult<Vec<VendorField>> {
    let row = binding(object)?;
    let path = path(row);
    let (endpoint, response) = client
        .get_ok_capped(&path, &[("archived", "false")], BodyCap::Page)
        .await?;
    let list: PropertyList = response.json(VENDOR, &endpoint)?;
    let mut fields: Vec<VendorField> = list
        .results
        .into_iter()
        .filter(|p| !p.archived)
        .map(|p| p.into_field(row))
        .collect();
    fields.extend(row.read_through_preferences().map(preference_field));
    fields.extend(row.email_types.map(email_types_field));
    tracing::debug!(vendor = VENDOR, %object, fields = fields.len(), "described");
    Ok(fields)
}

/// An opt-out HubSpot keeps in its communication-preferences API and shows on no property
/// (SMS), as a read-only field named by its canonical name: the source reads it, a field map
/// can name it (`"sms_opt_out" = "<sink field>"`), a HubSpot sink records it through the API.
fn preference_field(subscription: &crate::objects::Subscription) -> VendorField {
    VendorField {
        name: subscription.opt_out.to_owned(),
        label: format!(
            "Unsubscribed from all {} (communication preferences)",
            subscription.channel
        ),
        kind: FieldKind::Bool,
        vendor_type: format!("communication-preferences/{}", subscription.channel),
        custom: false,
        writable: false,
        options: Vec::new(),
        canonical: Some(subscription.opt_out.to_owned()),
    }
}

/// The email opt-outs per subscription type, kept by HubSpot on a read-only flag per type, as
/// one read-only text field named by its canonical name (the type names, `; `-joined): the
/// source reads it, a field map can name it (`"email_unsubscribed_types" = "<sink field>"`), a
/// HubSpot sink records it through the status calls.
fn email_types_field(canonical: &'static str) -> VendorField {
    VendorField {
        name: canonical.to_owned(),
        label: "Unsubscribed from email subscription types (communication preferences)".into(),
        kind: FieldKind::Text,
        vendor_type: "communication-preferences/EMAIL types".into(),
        custom: false,
        writable: false,
        options: Vec::new(),
        canonical: Some(canonical.to_owned()),
    }
}

/// The internal name HubSpot accepts for a property asked for as `name`: lower-case ASCII
/// letters, digits and underscores, starting with a letter (`Favourite Colour` →
/// `favourite_colour`).
pub fn internal_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_owned();
    if out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out
    } else {
        format!("f_{out}")
    }
}

/// HubSpot's `type` and `fieldType` for a new field of `kind`; `None` for kinds ferry does not
/// create.
fn types_for(kind: FieldKind) -> Option<(&'static str, &'static str)> {
    Some(match kind {
        FieldKind::Text | FieldKind::Email => ("string", "text"),
        FieldKind::Phone => ("string", "phonenumber"),
        FieldKind::Integer | FieldKind::Decimal => ("number", "number"),
        FieldKind::Bool => ("bool", "booleancheckbox"),
        FieldKind::Date => ("date", "date"),
        FieldKind::Timestamp => ("datetime", "date"),
        FieldKind::Picklist => ("enumeration", "select"),
        FieldKind::MultiPicklist => ("enumeration", "checkbox"),
        FieldKind::Reference | FieldKind::Other => return None,
    })
}

/// The request body creating `field` on `row`'s object (its internal name already chosen).
fn create_body(row: &HubspotBinding, name: &str, field: &NewField) -> Option<Json> {
    let (ty, field_type) = types_for(field.kind)?;
    let options: Vec<Json> = match field.kind {
        // HubSpot's UI gives an option the label as its internal value unless told otherwise.
        FieldKind::Picklist | FieldKind::MultiPicklist => field
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let value = if o.value.trim().is_empty() {
                    o.label.trim()
                } else {
                    o.value.trim()
                };
                json!({"label": o.label.trim(), "value": value, "displayOrder": i, "hidden": false})
            })
            .collect(),
        FieldKind::Bool => vec![
            json!({"label": "Yes", "value": "true", "displayOrder": 0, "hidden": false}),
            json!({"label": "No", "value": "false", "displayOrder": 1, "hidden": false}),
        ],
        _ => Vec::new(),
    };
    let mut body = json!({
        "name": name,
        "label": field.label,
        "type": ty,
        "fieldType": field_type,
        "groupName": row.property_group,
        "description": "Created by ferry for a mapped field.",
        "formField": false,
    });
    if !options.is_empty() {
        body["options"] = Json::Array(options);
    }
    Some(body)
}

/// Adds which property was being created to an error, keeping its endpoint (never a value),
/// and to a refused credential the scope creating properties needs.
fn creating(error: ConnectorError, row: &HubspotBinding, name: &str) -> ConnectorError {
    let error = match error {
        ConnectorError::Auth {
            vendor,
            endpoint,
            status,
            detail,
        } => ConnectorError::Auth {
            vendor,
            endpoint,
            status,
            detail: format!(
                "{detail} (creating properties needs the scope crm.schemas.{}.write)",
                row.path
            ),
        },
        other => other,
    };
    error.about(format_args!("creating {} property `{name}`", row.object))
}

/// Creates `field` as a custom property of `object` and returns it as [`describe`] lists it.
pub(crate) async fn create(
    client: &HubspotClient,
    object: ObjectType,
    field: &NewField,
) -> ConnectorResult<VendorField> {
    let name = internal_name(&field.name);
    let row = binding(object)?;
    let path = path(row);
    let Some(body) = create_body(row, &name, field) else {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!(
                "POST {path}: cannot create property `{name}` of kind {}: ferry creates text, number, \
                 bool, date, timestamp and picklist properties",
                field.kind
            ),
        });
    };
    if matches!(field.kind, FieldKind::Picklist | FieldKind::MultiPicklist)
        && field.options.is_empty()
    {
        return Err(ConnectorError::Unsupported {
            vendor: VENDOR,
            detail: format!(
                "POST {path}: cannot create picklist property `{name}` without options (HubSpot \
                 requires them)"
            ),
        });
    }
    let (endpoint, response) = client
        .send(Method::POST, &path, &[], Some(&body))
        .await
        .map_err(|e| creating(e, row, &name))?;
    match response.status.as_u16() {
        200 | 201 => {}
        409 => {
            return Err(ConnectorError::Status {
                vendor: VENDOR,
                endpoint,
                status: 409,
                detail: format!(
                    "creating {object} property `{name}`: a property with this internal name \
                     already exists (map to it instead)"
                ),
            });
        }
        _ => {
            return Err(creating(client.error_for(&endpoint, &response), row, &name));
        }
    }
    let created: Property = response
        .json(VENDOR, &endpoint)
        .map_err(|e| creating(e, row, &name))?;
    tracing::info!(vendor = VENDOR, %object, property = %created.name, "created a property");
    Ok(created.into_field(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(json: Json) -> Property {
        serde_json::from_value(json).expect("a property")
    }

    #[test]
    fn kinds_follow_type_field_type_and_the_standard_table() {
        let p = |ty: &str, ft: &str| property(json!({"name": "x", "type": ty, "fieldType": ft}));
        assert_eq!(kind(&p("string", "text"), None), FieldKind::Text);
        assert_eq!(
            kind(&p("string", "text"), Some(FieldType::Email)),
            FieldKind::Email
        );
        assert_eq!(kind(&p("string", "phonenumber"), None), FieldKind::Phone);
        assert_eq!(kind(&p("number", "number"), None), FieldKind::Decimal);
        assert_eq!(
            kind(&p("number", "number"), Some(FieldType::Integer)),
            FieldKind::Integer
        );
        assert_eq!(kind(&p("enumeration", "select"), None), FieldKind::Picklist);
        assert_eq!(kind(&p("enumeration", "radio"), None), FieldKind::Picklist);
        assert_eq!(
            kind(&p("enumeration", "checkbox"), None),
            FieldKind::MultiPicklist
        );
        assert_eq!(
            kind(&p("enumeration", "booleancheckbox"), None),
            FieldKind::Bool
        );
        assert_eq!(kind(&p("datetime", "date"), None), FieldKind::Timestamp);
        assert_eq!(kind(&p("date", "date"), None), FieldKind::Date);
        assert_eq!(kind(&p("string", "file"), None), FieldKind::Other);
        let owner = property(json!({"name": "hubspot_owner_id", "type": "enumeration",
            "fieldType": "select", "externalOptions": true}));
        assert_eq!(kind(&owner, None), FieldKind::Reference);
    }

    #[test]
    fn internal_names_follow_hubspots_rules() {
        assert_eq!(internal_name("Favourite Colour"), "favourite_colour");
        assert_eq!(internal_name("  Größe / Size "), "gr_e_size");
        assert_eq!(internal_name("2nd phone"), "f_2nd_phone");
        assert_eq!(internal_name("tier"), "tier");
    }
}
