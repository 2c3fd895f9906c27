//! Column definitions: what `describe` lists (`GET EntityDefinitions(LogicalName='…')/Attributes`
//! and the casts that carry choice options and formats), the operator's mapped columns
//! (`map_fields`), and creating a custom column (`POST …/Attributes`). Metadata only: no
//! record value is ever read here.

use ferry_core::fields::{
    FieldBinding, FieldKind, FieldMap, FieldMaps, NewField, PicklistOption, VendorField,
};
use ferry_core::http::BodyCap;
use ferry_core::{ConnectorError, ConnectorResult, ObjectType};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::VENDOR;
use crate::client::{Call, Client, endpoint};
use crate::mapping::{self, DataverseObject};
use crate::policy::describe as describe_error;

/// The standard maps of every row of [`mapping::OBJECTS`].
pub(crate) fn standard_maps() -> FieldMaps {
    FieldMaps::new(mapping::OBJECTS.iter().map(|t| (t.object, t.standard())))
}

/// Adds the operator's `bindings` to `object`'s map, after checking each names a column by
/// its logical name (it goes into `$select` and request bodies as it is).
pub(crate) fn map_fields(
    maps: &FieldMaps,
    object: ObjectType,
    bindings: &[FieldBinding],
) -> ConnectorResult<()> {
    let standard = mapping::binding(object)?.standard();
    for b in bindings {
        if !crate::config::is_logical_name(&b.vendor) {
            return Err(ConnectorError::Config {
                vendor: VENDOR,
                key: format!("fields.{object}"),
                detail: format!(
                    "`{}` (for `{}`) is not a Dataverse column's logical name: lower-case letters, digits and \
                     underscores, as `ferry fields` lists them (e.g. new_region)",
                    b.vendor, b.canonical
                ),
            });
        }
    }
    // A pair the field plan made of a column this connector maps itself (a deal's currency
    // lookup, matched by its canonical `currency` with another vendor's currency list) is
    // already carried by the row: binding it again would select and write the lookup as text.
    let table = mapping::binding(object)?;
    let none = FieldMap::standard(object, &[]);
    let bindings: Vec<FieldBinding> = bindings
        .iter()
        .filter(|b| mapping::canonical_of(table, &none, &b.vendor).is_none())
        .cloned()
        .collect();
    maps.map(object, &standard, &bindings);
    tracing::debug!(vendor = VENDOR, %object, mapped = bindings.len(), "mapped fields");
    Ok(())
}

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

#[derive(Deserialize)]
struct Label {
    #[serde(rename = "UserLocalizedLabel")]
    user: Option<LocalizedLabel>,
    #[serde(rename = "LocalizedLabels", default)]
    all: Vec<LocalizedLabel>,
}

#[derive(Deserialize)]
struct LocalizedLabel {
    #[serde(rename = "Label", default)]
    label: String,
}

impl Label {
    fn text(label: Option<&Label>) -> Option<String> {
        let label = label?;
        label
            .user
            .as_ref()
            .or(label.all.first())
            .map(|l| l.label.clone())
            .filter(|l| !l.is_empty())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute {
    logical_name: String,
    #[serde(default)]
    attribute_type: Option<String>,
    #[serde(default)]
    attribute_type_name: Option<TypeName>,
    #[serde(default)]
    display_name: Option<Label>,
    #[serde(default)]
    is_custom_attribute: Option<bool>,
    #[serde(default)]
    is_valid_for_create: Option<bool>,
    #[serde(default)]
    is_valid_for_update: Option<bool>,
    #[serde(default)]
    is_valid_for_read: Option<bool>,
    #[serde(default)]
    attribute_of: Option<String>,
}

#[derive(Deserialize)]
struct TypeName {
    #[serde(rename = "Value")]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Choice {
    logical_name: String,
    #[serde(default)]
    option_set: Option<OptionSet>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OptionSet {
    #[serde(default)]
    options: Vec<Option_>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Option_ {
    value: i64,
    #[serde(default)]
    label: Option<Label>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Formatted {
    logical_name: String,
    /// `StringAttributeMetadata.FormatName.Value` (`Email`, `Phone`, `Text`…).
    #[serde(default)]
    format_name: Option<TypeName>,
    /// `DateTimeAttributeMetadata.Format` (`DateOnly`, `DateAndTime`).
    #[serde(default)]
    format: Option<String>,
}

/// `EntityDefinitions(LogicalName='…')/Attributes{cast}?{query}`.
fn attributes_url(
    client: &Client,
    logical: &str,
    cast: &str,
    query: &[(&str, &str)],
) -> ConnectorResult<url::Url> {
    let mut url = client.api_url(&format!(
        "EntityDefinitions(LogicalName='{logical}')/Attributes{cast}"
    ))?;
    if !query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in query {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

/// ferry's kind of a column, from its `AttributeType`, its type name and its format.
fn kind_of(attribute_type: &str, type_name: &str, format: Option<&str>) -> FieldKind {
    match attribute_type {
        "String" => match format {
            Some("Email") => FieldKind::Email,
            Some("Phone") => FieldKind::Phone,
            _ => FieldKind::Text,
        },
        "Memo" => FieldKind::Text,
        "Integer" | "BigInt" => FieldKind::Integer,
        "Decimal" | "Double" | "Money" => FieldKind::Decimal,
        "Boolean" => FieldKind::Bool,
        "DateTime" => match format {
            Some("DateOnly") => FieldKind::Date,
            _ => FieldKind::Timestamp,
        },
        "Picklist" => FieldKind::Picklist,
        "Virtual" if type_name == "MultiSelectPicklistType" => FieldKind::MultiPicklist,
        "Lookup" | "Customer" | "Owner" => FieldKind::Reference,
        _ => FieldKind::Other,
    }
}

/// The standard canonical field a column holds, as the connector maps it.
fn canonical(table: &DataverseObject, column: &str) -> Option<String> {
    mapping::canonical_of(table, &table.standard(), column)
}

/// The columns of `object`'s table, as [`VendorField`]s: four metadata reads (every attribute's
/// base properties, the options of the choices, the formats of text and date columns), each
/// under the page body cap. Helper columns (`AttributeOf` set) and unreadable ones are left out.
pub(crate) async fn describe(
    client: &Client,
    object: ObjectType,
) -> ConnectorResult<Vec<VendorField>> {
    let table = mapping::binding(object)?;
    let logical = table.logical;
    let base: List<Attribute> = get(
        client,
        attributes_url(
            client,
            logical,
            "",
            &[(
                "$select",
                "LogicalName,AttributeType,AttributeTypeName,DisplayName,IsCustomAttribute,IsValidForCreate,\
                 IsValidForUpdate,IsValidForRead,AttributeOf",
            )],
        )?,
    )
    .await?;
    let choices: List<Choice> = get(
        client,
        attributes_url(
            client,
            logical,
            "/Microsoft.Dynamics.CRM.PicklistAttributeMetadata",
            &[
                ("$select", "LogicalName"),
                ("$expand", "OptionSet($select=Options)"),
            ],
        )?,
    )
    .await?;
    let strings: List<Formatted> = get(
        client,
        attributes_url(
            client,
            logical,
            "/Microsoft.Dynamics.CRM.StringAttributeMetadata",
            &[("$select", "LogicalName,FormatName")],
        )?,
    )
    .await?;
    let dates: List<Formatted> = get(
        client,
        attributes_url(
            client,
            logical,
            "/Microsoft.Dynamics.CRM.DateTimeAttributeMetadata",
            &[("$select", "LogicalName,Format")],
        )?,
    )
    .await?;
    let format_of = |name: &str| -> Option<String> {
        strings
            .value
            .iter()
            .find(|f| f.logical_name == name)
            .and_then(|f| f.format_name.as_ref().and_then(|n| n.value.clone()))
            .or_else(|| {
                dates
                    .value
                    .iter()
                    .find(|f| f.logical_name == name)
                    .and_then(|f| f.format.clone())
            })
    };
    let mut out = Vec::with_capacity(base.value.len());
    for a in &base.value {
        if a.attribute_of.is_some() || a.is_valid_for_read == Some(false) {
            continue;
        }
        let attribute_type = a.attribute_type.as_deref().unwrap_or("");
        let type_name = a
            .attribute_type_name
            .as_ref()
            .and_then(|t| t.value.as_deref())
            .unwrap_or("");
        let format = format_of(&a.logical_name);
        let kind = kind_of(attribute_type, type_name, format.as_deref());
        let options = if kind == FieldKind::Picklist {
            choices
                .value
                .iter()
                .find(|c| c.logical_name == a.logical_name)
                .and_then(|c| c.option_set.as_ref())
                .map(|set| {
                    set.options
                        .iter()
                        .map(|o| PicklistOption {
                            value: o.value.to_string(),
                            label: Label::text(o.label.as_ref())
                                .unwrap_or_else(|| o.value.to_string()),
                        })
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let vendor_type = match (attribute_type, format.as_deref()) {
            ("Virtual", _) => type_name.to_owned(),
            (t, Some(f)) if t == "String" || t == "DateTime" => format!("{t}/{f}"),
            (t, _) => t.to_owned(),
        };
        out.push(VendorField {
            label: Label::text(a.display_name.as_ref()).unwrap_or_else(|| a.logical_name.clone()),
            kind,
            vendor_type,
            custom: a.is_custom_attribute.unwrap_or(false),
            writable: a.is_valid_for_create.unwrap_or(false)
                && a.is_valid_for_update.unwrap_or(false),
            options,
            canonical: canonical(table, &a.logical_name),
            name: a.logical_name.clone(),
        });
    }
    tracing::debug!(vendor = VENDOR, %object, fields = out.len(), "described fields");
    Ok(out)
}

async fn get<T: serde::de::DeserializeOwned>(client: &Client, url: url::Url) -> ConnectorResult<T> {
    client.get_json_capped(url, &[], BodyCap::Page).await
}

fn label(text: &str) -> Json {
    json!({
        "@odata.type": "Microsoft.Dynamics.CRM.Label",
        "LocalizedLabels": [{
            "@odata.type": "Microsoft.Dynamics.CRM.LocalizedLabel",
            "Label": text,
            "LanguageCode": 1033
        }]
    })
}

/// The schema name a new column gets: `name` with every character Dataverse does not allow
/// made an underscore, behind the publisher's prefix unless it already starts with it.
pub(crate) fn schema_name(prefix: &str, name: &str) -> String {
    let clean: String = name
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let with = format!("{prefix}_");
    if clean.to_ascii_lowercase().starts_with(&with) {
        clean
    } else {
        format!("{with}{clean}")
    }
}

/// The attribute definition of `new`, or why its kind cannot be created.
fn definition(schema: &str, new: &NewField) -> Result<Json, &'static str> {
    let typed = |odata: &str, attribute_type: &str| {
        json!({
            "@odata.type": format!("Microsoft.Dynamics.CRM.{odata}"),
            "AttributeType": attribute_type,
            "AttributeTypeName": {"Value": format!("{attribute_type}Type")},
            "SchemaName": schema,
            "DisplayName": label(&new.label),
            "Description": label("Created by ferry"),
            "RequiredLevel": {"Value": "None", "CanBeChanged": true,
                              "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"},
        })
    };
    let mut body = match new.kind {
        FieldKind::Text | FieldKind::Email | FieldKind::Phone => {
            let mut b = typed("StringAttributeMetadata", "String");
            let (format, max) = match new.kind {
                FieldKind::Email => ("Email", 100),
                FieldKind::Phone => ("Phone", 50),
                // The longest single line of text, so any migrated text fits.
                _ => ("Text", 4000),
            };
            b["FormatName"] = json!({"Value": format});
            b["MaxLength"] = json!(max);
            b
        }
        FieldKind::Integer => {
            let mut b = typed("IntegerAttributeMetadata", "Integer");
            b["Format"] = json!("None");
            b["MinValue"] = json!(-2_147_483_648_i64);
            b["MaxValue"] = json!(2_147_483_647_i64);
            b
        }
        FieldKind::Decimal => {
            let mut b = typed("DecimalAttributeMetadata", "Decimal");
            // Dataverse's widest decimal: ten places, ±100 billion.
            b["Precision"] = json!(10);
            b["MinValue"] = json!(-100_000_000_000.0);
            b["MaxValue"] = json!(100_000_000_000.0);
            b
        }
        FieldKind::Bool => {
            let mut b = typed("BooleanAttributeMetadata", "Boolean");
            b["DefaultValue"] = json!(false);
            b["OptionSet"] = json!({
                "TrueOption": {"Value": 1, "Label": label("Yes")},
                "FalseOption": {"Value": 0, "Label": label("No")},
                "OptionSetType": "Boolean"
            });
            b
        }
        FieldKind::Date | FieldKind::Timestamp => {
            let mut b = typed("DateTimeAttributeMetadata", "DateTime");
            let (format, behavior) = if new.kind == FieldKind::Date {
                ("DateOnly", "DateOnly")
            } else {
                ("DateAndTime", "UserLocal")
            };
            b["Format"] = json!(format);
            b["DateTimeBehavior"] = json!({"Value": behavior});
            b
        }
        FieldKind::Picklist => {
            if new.options.is_empty() {
                return Err("a choice column needs at least one option");
            }
            let mut b = typed("PicklistAttributeMetadata", "Picklist");
            // No values: Dataverse numbers the options from the publisher's option prefix.
            b["OptionSet"] = json!({
                "@odata.type": "Microsoft.Dynamics.CRM.OptionSetMetadata",
                "IsGlobal": false,
                "OptionSetType": "Picklist",
                "Options": new.options.iter().map(|o| json!({"Value": null, "Label": label(&o.label)})).collect::<Vec<_>>(),
            });
            b
        }
        FieldKind::MultiPicklist | FieldKind::Reference | FieldKind::Other => {
            return Err(
                "ferry creates text, number, yes/no, date and choice columns only (not multi-select choices, \
                 lookups or other kinds)",
            );
        }
    };
    if new.label.trim().is_empty() {
        body["DisplayName"] = label(schema);
    }
    Ok(body)
}

/// Creates `new` on `object`'s table (`POST EntityDefinitions(LogicalName='…')/Attributes`,
/// 204 with `OData-EntityId`) and returns it as [`describe`] lists it.
pub(crate) async fn create(
    client: &Client,
    prefix: &str,
    object: ObjectType,
    new: &NewField,
) -> ConnectorResult<VendorField> {
    let logical_table = mapping::binding(object)?.logical;
    let schema = schema_name(prefix, &new.name);
    let column = schema.to_ascii_lowercase();
    let url = attributes_url(client, logical_table, "", &[])?;
    let name = endpoint(&Method::POST, &url);
    if !crate::config::is_logical_name(&column) {
        return Err(ConnectorError::Config {
            vendor: VENDOR,
            key: format!("fields.{object}"),
            detail: format!(
                "cannot create column `{column}` on {logical_table}: a column name must be at most 50 letters, digits \
                 and underscores, starting with a letter"
            ),
        });
    }
    let body = definition(&schema, new).map_err(|why| ConnectorError::Unsupported {
        vendor: VENDOR,
        detail: format!(
            "{name}: cannot create column `{column}` ({}) on {logical_table}: {why}",
            new.kind
        ),
    })?;
    let call = Call {
        method: Method::POST,
        url,
        headers: &[],
        body: Some((
            "application/json; charset=utf-8".into(),
            body.to_string().into_bytes(),
        )),
        cap: BodyCap::Small,
    };
    let response = client.send(&call).await?;
    let status = response.status.as_u16();
    if !response.is_success() {
        let detail = format!(
            "creating column `{column}` ({}) on {logical_table}: {}",
            new.kind,
            describe_error(status, &response.body)
        );
        return Err(if status == 401 || status == 403 {
            ConnectorError::Auth {
                vendor: VENDOR,
                endpoint: name,
                status,
                detail: format!(
                    "{detail}; the application user's security role needs the System Customizer privileges \
                     (Create and Write on Attribute / Entity customizations)"
                ),
            }
        } else {
            ConnectorError::Status {
                vendor: VENDOR,
                endpoint: name,
                status,
                detail,
            }
        });
    }
    tracing::info!(vendor = VENDOR, %object, column = %column, kind = %new.kind, "created column");
    describe(client, object)
        .await?
        .into_iter()
        .find(|f| f.name == column)
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!(
                "GET {}EntityDefinitions(LogicalName='{logical_table}')/Attributes",
                client.api_base().path()
            ),
            detail: format!("the column `{column}` just created is not among the table's columns"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::field;
    use ferry_core::model::FieldType;

    #[test]
    fn a_pair_on_a_column_the_row_maps_itself_is_not_bound_again() {
        // The field plan pairs a deal's currency with another vendor's currency list.
        let maps = standard_maps();
        let currency = FieldBinding::new(field::CURRENCY, "transactioncurrencyid", FieldType::Text);
        let custom = FieldBinding::new("custom.region", "new_region", FieldType::Text);
        map_fields(&maps, ObjectType::DEALS, &[currency, custom]).unwrap();
        let select = mapping::select(
            mapping::binding(ObjectType::DEALS).unwrap(),
            &maps.get(ObjectType::DEALS),
            &[],
        );
        let columns: Vec<&str> = select.split(',').collect();
        assert!(!columns.contains(&"transactioncurrencyid"), "{select}");
        assert!(columns.contains(&"new_region"), "{select}");
    }

    #[test]
    fn kinds_follow_type_and_format() {
        assert_eq!(
            kind_of("String", "StringType", Some("Email")),
            FieldKind::Email
        );
        assert_eq!(
            kind_of("String", "StringType", Some("Text")),
            FieldKind::Text
        );
        assert_eq!(kind_of("Integer", "IntegerType", None), FieldKind::Integer);
        assert_eq!(kind_of("Money", "MoneyType", None), FieldKind::Decimal);
        assert_eq!(
            kind_of("DateTime", "DateTimeType", Some("DateOnly")),
            FieldKind::Date
        );
        assert_eq!(
            kind_of("Picklist", "PicklistType", None),
            FieldKind::Picklist
        );
        assert_eq!(
            kind_of("Virtual", "MultiSelectPicklistType", None),
            FieldKind::MultiPicklist
        );
        assert_eq!(
            kind_of("Customer", "CustomerType", None),
            FieldKind::Reference
        );
        assert_eq!(
            kind_of("Uniqueidentifier", "UniqueidentifierType", None),
            FieldKind::Other
        );
        assert_eq!(
            canonical(
                mapping::binding(ObjectType::CONTACTS).unwrap(),
                "donotbulkemail"
            )
            .as_deref(),
            Some(field::EMAIL_OPT_OUT)
        );
    }

    #[test]
    fn schema_names_take_the_publisher_prefix_once() {
        assert_eq!(
            schema_name("new", "favourite colour"),
            "new_favourite_colour"
        );
        assert_eq!(schema_name("new", "New_Segment"), "New_Segment");
        assert_eq!(schema_name("abc", "Loyalty-Points"), "abc_Loyalty_Points");
    }
}
