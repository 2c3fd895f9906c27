//! Field metadata: `describe` as ferry's [`VendorField`]s, and creating a custom field through
//! the Tooling API with its field-level security.
//!
//! Salesforce hides a field created through the Tooling (or Metadata) API from everyone,
//! describe and DML included, until a `FieldPermissions` row grants a permission set Read and
//! Edit on it. ferry grants them on the permission set owned by the run-as user's profile (the
//! user found through OpenID Connect's userinfo, its profile and that profile's permission set
//! with SOQL), which is what "Set Field-Level Security" in Setup does.

use ferry_core::fields::{
    FieldBinding, FieldKind, FieldMap, NewField, PicklistOption, VendorField,
};
use ferry_core::http::BodyCap;
use ferry_core::{ConnectorError, ConnectorResult, ObjectType};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

use crate::VENDOR;
use crate::client::{Call, Client, USERINFO_PATH};
use crate::mapping;
use crate::soql;

/// One value of a described picklist.
#[derive(Deserialize)]
pub(crate) struct DescribedValue {
    #[serde(default)]
    value: String,
    #[serde(default)]
    label: Option<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

/// One field of a `describe` answer (the parts ferry reads: metadata, never values).
#[derive(Deserialize)]
pub(crate) struct DescribedField {
    pub name: String,
    #[serde(default)]
    label: String,
    #[serde(rename = "type", default)]
    ty: String,
    #[serde(default)]
    length: u64,
    #[serde(default)]
    precision: u64,
    #[serde(default)]
    scale: u64,
    #[serde(default)]
    custom: bool,
    #[serde(default)]
    calculated: bool,
    #[serde(rename = "externalId", default)]
    pub external_id: bool,
    #[serde(default)]
    pub createable: bool,
    #[serde(default)]
    pub updateable: bool,
    #[serde(rename = "caseSensitive", default)]
    pub case_sensitive: bool,
    #[serde(rename = "picklistValues", default)]
    picklist_values: Vec<DescribedValue>,
}

/// A `describe` answer.
#[derive(Deserialize)]
pub(crate) struct Describe {
    pub fields: Vec<DescribedField>,
}

impl Describe {
    /// The field called `name`; API names are case-insensitive.
    pub(crate) fn field(&self, name: &str) -> Option<&DescribedField> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

/// `GET …/sobjects/{sobject}/describe`, read under the page body cap (an org's Account
/// describe runs to megabytes).
pub(crate) async fn describe(client: &Client, sobject: &str) -> ConnectorResult<Describe> {
    let path = client.data_path(&format!("sobjects/{sobject}/describe"));
    let response = client
        .send(Call {
            method: Method::GET,
            path: &path,
            query: &[],
            body: None,
            headers: &[],
            cap: BodyCap::Page,
        })
        .await?;
    response.json(VENDOR, &format!("GET {path}"))
}

/// The bindings of `map` with every field spelled as describe spells it, or `None` when they
/// all are. SOQL and DML take API names in any case, but query results use describe's
/// spelling, which is what the read finds values by.
pub(crate) fn respelled(map: &FieldMap, described: &Describe) -> Option<Vec<FieldBinding>> {
    let mut changed = false;
    let bindings = map
        .iter()
        .map(|b| match described.field(&b.vendor) {
            Some(f) if f.name != b.vendor => {
                changed = true;
                FieldBinding {
                    vendor: f.name.clone().into(),
                    ..b.clone()
                }
            }
            _ => b.clone(),
        })
        .collect();
    changed.then_some(bindings)
}

/// ferry's kind of a Salesforce field type. A Number with no decimals holds whole numbers.
fn kind(f: &DescribedField) -> FieldKind {
    match f.ty.as_str() {
        "string" | "textarea" | "url" | "combobox" | "encryptedstring" => FieldKind::Text,
        "email" => FieldKind::Email,
        "phone" => FieldKind::Phone,
        "boolean" => FieldKind::Bool,
        "int" | "long" => FieldKind::Integer,
        "double" if f.scale == 0 => FieldKind::Integer,
        "double" | "currency" | "percent" => FieldKind::Decimal,
        "date" => FieldKind::Date,
        "datetime" => FieldKind::Timestamp,
        "picklist" => FieldKind::Picklist,
        "multipicklist" => FieldKind::MultiPicklist,
        "reference" => FieldKind::Reference,
        _ => FieldKind::Other,
    }
}

/// The type as people read it in Setup's terms: `string(255)`, `double(18,0)`, `picklist`.
fn vendor_type(f: &DescribedField) -> String {
    match f.ty.as_str() {
        "string" | "textarea" | "encryptedstring" if f.length > 0 => {
            format!("{}({})", f.ty, f.length)
        }
        "double" | "currency" | "percent" => format!("{}({},{})", f.ty, f.precision, f.scale),
        _ => f.ty.clone(),
    }
}

/// A described field as ferry lists it: active picklist values only (inactive ones cannot be
/// written), formula fields not writable.
fn vendor_field(object: ObjectType, f: &DescribedField) -> VendorField {
    let kind = kind(f);
    let options = if matches!(kind, FieldKind::Picklist | FieldKind::MultiPicklist) {
        f.picklist_values
            .iter()
            .filter(|v| v.active)
            .map(|v| PicklistOption {
                value: v.value.clone(),
                label: v.label.clone().unwrap_or_else(|| v.value.clone()),
            })
            .collect()
    } else {
        Vec::new()
    };
    VendorField {
        name: f.name.clone(),
        label: f.label.clone(),
        kind,
        vendor_type: vendor_type(f),
        custom: f.custom,
        writable: f.createable && f.updateable && !f.calculated,
        options,
        canonical: mapping::standard_canonical(object, &f.name).map(str::to_owned),
    }
}

/// Every field of `object`'s sObject, as ferry lists them.
pub(crate) async fn vendor_fields(
    client: &Client,
    object: ObjectType,
) -> ConnectorResult<Vec<VendorField>> {
    let described = describe(client, mapping::binding(object)?.sobject).await?;
    Ok(listed(object, &described))
}

/// Every field of `described`, `object`'s sObject, as ferry lists them.
pub(crate) fn listed(object: ObjectType, described: &Describe) -> Vec<VendorField> {
    let fields: Vec<VendorField> = described
        .fields
        .iter()
        .map(|f| vendor_field(object, f))
        .collect();
    tracing::debug!(vendor = VENDOR, %object, fields = fields.len(), "described");
    fields
}

/// The API name Salesforce would give a custom field asked for as `name`: letters, digits and
/// single underscores, starting with a letter, at most 40 characters, then `__c`.
pub fn api_name(name: &str) -> Option<String> {
    let base = name.strip_suffix("__c").unwrap_or(name);
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && (out.is_empty() || out.ends_with('_'))) {
            out.push(c);
        }
    }
    let mut out: String = out
        .trim_start_matches(|c: char| !c.is_ascii_alphabetic())
        .chars()
        .take(40)
        .collect();
    while out.ends_with('_') {
        out.pop();
    }
    (!out.is_empty()).then(|| format!("{out}__c"))
}

/// The Tooling API `Metadata` of a new field of `kind`: Text(255), Number(18,0) for whole
/// numbers, Number(18,6) for decimals, a restricted picklist whose values are the labels.
fn metadata(field: &NewField) -> Result<serde_json::Value, String> {
    let label = field.label.trim();
    Ok(match field.kind {
        FieldKind::Text => json!({"type": "Text", "label": label, "length": 255}),
        FieldKind::Email => json!({"type": "Email", "label": label}),
        FieldKind::Phone => json!({"type": "Phone", "label": label}),
        FieldKind::Bool => json!({"type": "Checkbox", "label": label, "defaultValue": "false"}),
        FieldKind::Integer => {
            json!({"type": "Number", "label": label, "precision": 18, "scale": 0})
        }
        FieldKind::Decimal => {
            json!({"type": "Number", "label": label, "precision": 18, "scale": 6})
        }
        FieldKind::Date => json!({"type": "Date", "label": label}),
        FieldKind::Timestamp => json!({"type": "DateTime", "label": label}),
        FieldKind::Picklist => {
            if field.options.is_empty() {
                return Err("a picklist needs at least one option".into());
            }
            let values: Vec<serde_json::Value> = field
                .options
                .iter()
                .map(|o| json!({"fullName": o.label.trim(), "label": o.label.trim(), "default": false}))
                .collect();
            json!({
                "type": "Picklist",
                "label": label,
                "valueSet": {"restricted": true, "valueSetDefinition": {"sorted": false, "value": values}},
            })
        }
        other => return Err(format!("ferry cannot create a {other} field in Salesforce")),
    })
}

/// Whether `e` is Salesforce's 400 with error code `code`.
fn is_code(e: &ConnectorError, code: &str) -> bool {
    matches!(e, ConnectorError::Status { status: 400, detail, .. } if detail.starts_with(code))
}

/// `POST` `body` to `path` (relative to the data API) and expect a 2xx.
async fn post(client: &Client, path: &str, body: &serde_json::Value) -> ConnectorResult<()> {
    let body = serde_json::to_vec(body).map_err(|e| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: format!("POST {path}"),
        detail: format!("cannot encode the request: {e}"),
    })?;
    client
        .send(Call {
            method: Method::POST,
            path,
            query: &[],
            body: Some(body),
            headers: &[],
            cap: BodyCap::Small,
        })
        .await
        .map(drop)
}

/// The one text value of `column` in the first record `soql` finds.
async fn query_one(client: &Client, soql: &str, column: &str) -> ConnectorResult<Option<String>> {
    let mut found = None;
    client
        .query_each(soql, |record| {
            if found.is_none() {
                found = record
                    .get(column)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned);
            }
        })
        .await?;
    Ok(found)
}

/// The id of the permission set owned by the run-as user's profile: the user from userinfo,
/// its `ProfileId`, then that profile's `PermissionSet`.
async fn profile_permission_set(client: &Client) -> ConnectorResult<String> {
    let endpoint = format!("GET {USERINFO_PATH}");
    let response = client
        .send(Call {
            method: Method::GET,
            path: USERINFO_PATH,
            query: &[],
            body: None,
            headers: &[],
            cap: BodyCap::Small,
        })
        .await?;
    let answer: serde_json::Value = response.json(VENDOR, &endpoint)?;
    let user = answer
        .get("user_id")
        .and_then(|v| v.as_str())
        .filter(|id| matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: endpoint.clone(),
            detail: "userinfo has no user_id of a record id's shape".into(),
        })?;
    let setup = |detail: String| ConnectorError::Setup {
        vendor: VENDOR,
        detail,
    };
    let profile = query_one(
        client,
        &format!(
            "SELECT ProfileId FROM User WHERE Id = {}",
            soql::literal(user)
        ),
        "ProfileId",
    )
    .await?
    .ok_or_else(|| {
        setup("the run-as user's profile cannot be read (SELECT ProfileId FROM User)".into())
    })?;
    query_one(
        client,
        &format!(
            "SELECT Id FROM PermissionSet WHERE ProfileId = {}",
            soql::literal(&profile)
        ),
        "Id",
    )
    .await?
    .ok_or_else(|| {
        setup(
            "the run-as user's profile has no permission set ferry can read to grant field-level security on \
             (SELECT Id FROM PermissionSet WHERE ProfileId = …): give the user \"View Setup and Configuration\""
                .into(),
        )
    })
}

/// Creates `field` on `object` (Tooling `POST …/tooling/sobjects/CustomField`), grants the
/// run-as user's profile Read and Edit on it (`POST …/sobjects/FieldPermissions`), and
/// returns it as describe then lists it. A field of that name that exists already (a run
/// stopped before granting it) is granted and returned.
pub(crate) async fn create_field(
    client: &Client,
    object: ObjectType,
    field: &NewField,
) -> ConnectorResult<VendorField> {
    let sobject = mapping::binding(object)?.sobject;
    let tooling = client.data_path("tooling/sobjects/CustomField");
    let name = api_name(&field.name).ok_or_else(|| ConnectorError::Unsupported {
        vendor: VENDOR,
        detail: format!(
            "cannot create field `{}` on {sobject} (POST {tooling}): a Salesforce field name needs letters or digits",
            field.name
        ),
    })?;
    let what = format!("creating field `{name}` on {sobject}");
    let metadata = metadata(field).map_err(|detail| ConnectorError::Unsupported {
        vendor: VENDOR,
        detail: format!("{what} (POST {tooling}): {detail}"),
    })?;
    let body = json!({"FullName": format!("{sobject}.{name}"), "Metadata": metadata});
    match post(client, &tooling, &body).await {
        Ok(()) => tracing::info!(vendor = VENDOR, sobject, field = %name, "custom field created"),
        Err(e) if is_code(&e, "DUPLICATE_DEVELOPER_NAME") => {
            tracing::info!(vendor = VENDOR, sobject, field = %name, "custom field exists already; granting access to it");
        }
        Err(e) => return Err(e.about(&what)),
    }
    let grant_what = format!("granting field-level security on `{sobject}.{name}`");
    let permission_set = profile_permission_set(client)
        .await
        .map_err(|e| e.about(&grant_what))?;
    let grant = json!({
        "ParentId": permission_set,
        "SobjectType": sobject,
        "Field": format!("{sobject}.{name}"),
        "PermissionsRead": true,
        "PermissionsEdit": true,
    });
    let path = client.data_path("sobjects/FieldPermissions");
    match post(client, &path, &grant).await {
        Ok(()) => {}
        // Granted before: describe below says whether it is writable.
        Err(e) if is_code(&e, "DUPLICATE_VALUE") => {}
        Err(e) => return Err(e.about(&grant_what)),
    }
    let described = describe(client, sobject).await?;
    match described.field(&name) {
        Some(f) => Ok(vendor_field(object, f)),
        None => Err(ConnectorError::Setup {
            vendor: VENDOR,
            detail: format!(
                "{sobject}.{name} was created and field-level security granted on the run-as user's profile, \
                 but describe does not list it: check Setup → Object Manager → {sobject} → Fields & \
                 Relationships → {name} → Set Field-Level Security"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_names_follow_salesforce_rules() {
        assert_eq!(
            api_name("Favourite Colour").as_deref(),
            Some("Favourite_Colour__c")
        );
        assert_eq!(api_name("Region__c").as_deref(), Some("Region__c"));
        assert_eq!(api_name("  2nd -- try!  ").as_deref(), Some("nd_try__c"));
        assert_eq!(api_name("___").as_deref(), None);
        assert_eq!(api_name(&"x".repeat(60)).map(|n| n.len()), Some(43));
    }

    #[test]
    fn kinds_follow_the_described_type() {
        let field = |ty: &str, scale: u64| DescribedField {
            name: "X__c".into(),
            label: "X".into(),
            ty: ty.into(),
            length: 0,
            precision: 18,
            scale,
            custom: true,
            calculated: false,
            external_id: false,
            createable: true,
            updateable: true,
            case_sensitive: false,
            picklist_values: Vec::new(),
        };
        assert_eq!(kind(&field("double", 0)), FieldKind::Integer);
        assert_eq!(kind(&field("double", 2)), FieldKind::Decimal);
        assert_eq!(kind(&field("currency", 0)), FieldKind::Decimal);
        assert_eq!(kind(&field("address", 0)), FieldKind::Other);
        assert_eq!(vendor_type(&field("double", 0)), "double(18,0)");
        let formula = DescribedField {
            calculated: true,
            ..field("string", 0)
        };
        assert!(!vendor_field(ObjectType::COMPANIES, &formula).writable);
    }
}
