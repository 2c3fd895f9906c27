//! Column definitions (attribute metadata) of account and contact:
//! `GET EntityDefinitions(LogicalName='…')/Attributes`, optionally cast to one type
//! (`/Microsoft.Dynamics.CRM.PicklistAttributeMetadata`) with `$select` and
//! `$expand=OptionSet($select=Options)`, one attribute by `(LogicalName='…')` or MetadataId, and
//! `POST …/Attributes` creating a custom column (204 with `OData-EntityId`), as
//! `webapi/query-metadata-web-api.md` and `create-update-column-definitions-using-web-api.md`
//! describe them.

use serde_json::{Map, Value as Json, json};

use super::api::{API_PREFIX, Reply};
use super::error::ApiError;
use super::error::Entity;
use super::records::{Dv, Set};
use super::store::{CustomColumn, CustomKind, Kind, Store, TIER_BASE, Table, guid, parse_guid};

/// The customization prefix of the environment's default publisher: a created column's
/// schema name must start with it.
pub const PREFIX: &str = "new_";
/// The longest schema name Dataverse accepts for a column.
const MAX_SCHEMA_NAME: usize = 50;

/// The metadata types the emulator can describe, by their `AttributeType`.
const TYPES: &[(&str, &str, &str)] = &[
    // (AttributeType, AttributeTypeName, metadata type)
    ("String", "StringType", "StringAttributeMetadata"),
    ("Memo", "MemoType", "MemoAttributeMetadata"),
    ("Integer", "IntegerType", "IntegerAttributeMetadata"),
    ("BigInt", "BigIntType", "BigIntAttributeMetadata"),
    ("Decimal", "DecimalType", "DecimalAttributeMetadata"),
    ("Money", "MoneyType", "MoneyAttributeMetadata"),
    ("Boolean", "BooleanType", "BooleanAttributeMetadata"),
    ("DateTime", "DateTimeType", "DateTimeAttributeMetadata"),
    ("Picklist", "PicklistType", "PicklistAttributeMetadata"),
    ("Customer", "CustomerType", "LookupAttributeMetadata"),
    ("Lookup", "LookupType", "LookupAttributeMetadata"),
    ("Owner", "OwnerType", "LookupAttributeMetadata"),
    ("State", "StateType", "StateAttributeMetadata"),
    ("Status", "StatusType", "StatusAttributeMetadata"),
    (
        "EntityName",
        "EntityNameType",
        "EntityNameAttributeMetadata",
    ),
    (
        "Uniqueidentifier",
        "UniqueidentifierType",
        "UniqueIdentifierAttributeMetadata",
    ),
];

/// The properties of the base `AttributeMetadata` type, which `$select` may name without a cast.
const BASE_PROPERTIES: &[&str] = &[
    "MetadataId",
    "LogicalName",
    "SchemaName",
    "EntityLogicalName",
    "AttributeType",
    "AttributeTypeName",
    "DisplayName",
    "Description",
    "IsCustomAttribute",
    "IsValidForCreate",
    "IsValidForUpdate",
    "IsValidForRead",
    "IsPrimaryId",
    "IsPrimaryName",
    "IsLogical",
    "IsManaged",
    "AttributeOf",
    "RequiredLevel",
    "ColumnNumber",
];

/// The properties a derived metadata type adds to `AttributeMetadata`, by `AttributeType`
/// (the ones the emulator fills in).
fn derived_properties(kind: &str) -> &'static [&'static str] {
    match kind {
        "String" => &["MaxLength", "Format", "FormatName"],
        "Memo" => &["MaxLength", "Format"],
        "Integer" => &["MinValue", "MaxValue", "Format"],
        "BigInt" => &["MinValue", "MaxValue"],
        "Decimal" => &["MinValue", "MaxValue", "Precision"],
        "Money" => &["MinValue", "MaxValue", "Precision", "PrecisionSource"],
        "Boolean" => &["DefaultValue"],
        "DateTime" => &["Format", "DateTimeBehavior"],
        "Customer" | "Lookup" | "Owner" => &["Targets"],
        _ => &[],
    }
}

/// One attribute as the metadata API describes it.
struct Attribute {
    logical: String,
    schema: String,
    label: String,
    /// `AttributeType`.
    kind: &'static str,
    custom: bool,
    create: bool,
    update: bool,
    required: &'static str,
    primary_id: bool,
    primary_name: bool,
    metadata_id: u128,
    /// The properties of the derived type (`MaxLength`, `MinValue`, `Format`…).
    derived: Map<String, Json>,
    /// A choice's options, or a two-option column's (false, true).
    options: Option<Vec<(i64, String)>>,
}

fn label(text: &str) -> Json {
    let localized = json!({"Label": text, "LanguageCode": 1033, "IsManaged": false});
    json!({"LocalizedLabels": [localized.clone()], "UserLocalizedLabel": localized})
}

/// The display name and requirement of a column of the table reference.
fn builtin_label(table: Table, name: &str) -> (&'static str, &'static str) {
    match (table, name) {
        (Table::Account, "name") => ("Account Name", "ApplicationRequired"),
        (Table::Account, "websiteurl") => ("Website", "None"),
        (Table::Account, "telephone1") => ("Main Phone", "None"),
        (Table::Account, "industrycode") => ("Industry", "None"),
        (Table::Account, "numberofemployees") => ("Number of Employees", "None"),
        (Table::Account, "revenue") => ("Annual Revenue", "None"),
        (Table::Contact, "firstname") => ("First Name", "Recommended"),
        (Table::Contact, "lastname") => ("Last Name", "ApplicationRequired"),
        (Table::Contact, "emailaddress1") => ("Email", "None"),
        (Table::Contact, "telephone1") => ("Business Phone", "None"),
        (Table::Contact, "mobilephone") => ("Mobile Phone", "None"),
        (Table::Contact, "jobtitle") => ("Job Title", "None"),
        (Table::Contact, "donotphone") => ("Do not allow Phone Calls", "None"),
        (Table::Contact, "donotpostalmail") => ("Do not allow Mails", "None"),
        (Table::Contact, "donotfax") => ("Do not allow Faxes", "None"),
        (Table::Contact, "donotbulkpostalmail") => ("Do not allow Bulk Mails", "None"),
        (Table::Contact, "parentcustomerid") => ("Company Name", "None"),
        (_, "address1_line1") => ("Address 1: Street 1", "None"),
        (_, "address1_city") => ("Address 1: City", "None"),
        (_, "address1_stateorprovince") => ("Address 1: State/Province", "None"),
        (_, "address1_postalcode") => ("Address 1: ZIP/Postal Code", "None"),
        (_, "address1_country") => ("Address 1: Country/Region", "None"),
        (_, "donotemail") => ("Do not allow Emails", "None"),
        (_, "donotbulkemail") => ("Do not allow Bulk Emails", "None"),
        (_, super::store::KEY_COLUMN) => ("Ferry Source Id", "None"),
        (_, "ownerid") => ("Owner", "SystemRequired"),
        _ => ("", "None"),
    }
}

/// The schema name of a column of the table reference (its logical name in Pascal case, as the
/// reference spells it).
fn builtin_schema(name: &str) -> String {
    match name {
        "websiteurl" => "WebSiteURL".into(),
        "telephone1" => "Telephone1".into(),
        "industrycode" => "IndustryCode".into(),
        "numberofemployees" => "NumberOfEmployees".into(),
        "revenue" => "Revenue".into(),
        "firstname" => "FirstName".into(),
        "lastname" => "LastName".into(),
        "emailaddress1" => "EMailAddress1".into(),
        "mobilephone" => "MobilePhone".into(),
        "jobtitle" => "JobTitle".into(),
        "donotemail" => "DoNotEMail".into(),
        "donotbulkemail" => "DoNotBulkEMail".into(),
        "donotphone" => "DoNotPhone".into(),
        "donotpostalmail" => "DoNotPostalMail".into(),
        "donotfax" => "DoNotFax".into(),
        "donotbulkpostalmail" => "DoNotBulkPostalMail".into(),
        "parentcustomerid" => "ParentCustomerId".into(),
        "address1_line1" => "Address1_Line1".into(),
        "address1_city" => "Address1_City".into(),
        "address1_stateorprovince" => "Address1_StateOrProvince".into(),
        "address1_postalcode" => "Address1_PostalCode".into(),
        "address1_country" => "Address1_Country".into(),
        super::store::KEY_COLUMN => "ferry_SourceId".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

/// `industrycode`'s options as the account table reference lists them.
pub const INDUSTRY_LABELS: [&str; 33] = [
    "Accounting",
    "Agriculture and Non-petrol Natural Resource Extraction",
    "Broadcasting Printing and Publishing",
    "Brokers",
    "Building Supply Retail",
    "Business Services",
    "Consulting",
    "Consumer Services",
    "Design, Direction and Creative Management",
    "Distributors, Dispatchers and Processors",
    "Doctor's Offices and Clinics",
    "Durable Manufacturing",
    "Eating and Drinking Places",
    "Entertainment Retail",
    "Equipment Rental and Leasing",
    "Financial",
    "Food and Tobacco Processing",
    "Inbound Capital Intensive Processing",
    "Inbound Repair and Services",
    "Insurance",
    "Legal Services",
    "Non-Durable Merchandise Retail",
    "Outbound Consumer Service",
    "Petrochemical Extraction and Distribution",
    "Service Retail",
    "SIG Affiliations",
    "Social Services",
    "Special Outbound Trade Contractors",
    "Specialty Realty",
    "Transportation",
    "Utility Creation and Distribution",
    "Vehicle Retail",
    "Wholesale",
];

fn yes_no() -> Vec<(i64, String)> {
    vec![(0, "No".into()), (1, "Yes".into())]
}

fn system_id(table: Table, n: u128) -> u128 {
    (0x5e5e_0000_u128 << 96) | (u128::from(table == Table::Contact) << 64) | n
}

/// Every attribute of `table`: the primary key, the table reference's columns, the system
/// columns the emulator keeps, and the custom columns.
fn attributes(store: &Store, table: Table) -> Vec<Attribute> {
    let mut out = Vec::new();
    let system =
        |n: u128, logical: &str, schema: &str, label: &str, kind: &'static str| Attribute {
            logical: logical.into(),
            schema: schema.into(),
            label: label.into(),
            kind,
            custom: false,
            create: false,
            update: false,
            required: "SystemRequired",
            primary_id: false,
            primary_name: false,
            metadata_id: system_id(table, n),
            derived: Map::new(),
            options: None,
        };
    let mut id = system(
        1,
        table.id_column(),
        if table == Table::Account {
            "AccountId"
        } else {
            "ContactId"
        },
        if table == Table::Account {
            "Account"
        } else {
            "Contact"
        },
        "Uniqueidentifier",
    );
    id.create = true;
    id.primary_id = true;
    out.push(id);
    for (i, column) in table.columns().iter().enumerate() {
        let (display, required) = builtin_label(table, column.name);
        let mut derived = Map::new();
        let mut options = None;
        let kind = match column.kind {
            Kind::Text { max } => {
                // The formats the table reference gives these columns.
                let format = match column.name {
                    "emailaddress1" => "Email",
                    "telephone1" | "mobilephone" => "Phone",
                    "websiteurl" => "Url",
                    _ => "Text",
                };
                derived.insert("MaxLength".into(), json!(max));
                derived.insert("Format".into(), json!(format));
                derived.insert("FormatName".into(), json!({"Value": format}));
                "String"
            }
            Kind::Bool => {
                options = Some(yes_no());
                derived.insert("DefaultValue".into(), json!(false));
                "Boolean"
            }
            Kind::Int { min, max } => {
                derived.insert("MinValue".into(), json!(min));
                derived.insert("MaxValue".into(), json!(max));
                derived.insert("Format".into(), json!("None"));
                "Integer"
            }
            Kind::Money { min, max } => {
                derived.insert("MinValue".into(), json!(min));
                derived.insert("MaxValue".into(), json!(max));
                derived.insert("Precision".into(), json!(2));
                derived.insert("PrecisionSource".into(), json!(2));
                "Money"
            }
            Kind::Choice(values) => {
                options = Some(
                    values
                        .iter()
                        .map(|v| {
                            let label = usize::try_from(*v - 1)
                                .ok()
                                .and_then(|i| INDUSTRY_LABELS.get(i))
                                .copied()
                                .unwrap_or("");
                            (*v, label.to_owned())
                        })
                        .collect(),
                );
                "Picklist"
            }
            Kind::Lookup if column.name == "ownerid" => {
                derived.insert("Targets".into(), json!(["systemuser", "team"]));
                "Owner"
            }
            Kind::Lookup => {
                derived.insert("Targets".into(), json!(["account", "contact"]));
                "Customer"
            }
        };
        out.push(Attribute {
            logical: column.name.into(),
            schema: builtin_schema(column.name),
            label: display.into(),
            kind,
            custom: column.name == super::store::KEY_COLUMN,
            create: true,
            update: true,
            required,
            primary_id: false,
            primary_name: (table == Table::Account && column.name == "name"),
            metadata_id: system_id(table, 100 + i as u128),
            derived,
            options,
        });
    }
    if table == Table::Contact {
        let mut full = system(2, "fullname", "FullName", "Full Name", "String");
        full.required = "None";
        full.primary_name = true;
        full.derived.insert("MaxLength".into(), json!(160));
        full.derived.insert("Format".into(), json!("Text"));
        full.derived
            .insert("FormatName".into(), json!({"Value": "Text"}));
        out.push(full);
    }
    for (n, logical, schema, display, kind) in [
        (3, "createdon", "CreatedOn", "Created On", "DateTime"),
        (4, "modifiedon", "ModifiedOn", "Modified On", "DateTime"),
        (
            5,
            "versionnumber",
            "VersionNumber",
            "Version Number",
            "BigInt",
        ),
    ] {
        let mut a = system(n, logical, schema, display, kind);
        a.required = "None";
        if kind == "DateTime" {
            a.derived.insert("Format".into(), json!("DateAndTime"));
        }
        out.push(a);
    }
    for c in store.customs(table) {
        out.push(custom_attribute(c));
    }
    out
}

fn custom_attribute(c: &CustomColumn) -> Attribute {
    let mut derived = Map::new();
    let mut options = None;
    let kind = match &c.kind {
        CustomKind::String { max } => {
            derived.insert("MaxLength".into(), json!(max));
            derived.insert("Format".into(), json!("Text"));
            derived.insert("FormatName".into(), json!({"Value": "Text"}));
            "String"
        }
        CustomKind::Memo { max } => {
            derived.insert("MaxLength".into(), json!(max));
            derived.insert("Format".into(), json!("TextArea"));
            "Memo"
        }
        CustomKind::Integer { min, max } => {
            derived.insert("MinValue".into(), json!(min));
            derived.insert("MaxValue".into(), json!(max));
            derived.insert("Format".into(), json!("None"));
            "Integer"
        }
        CustomKind::Decimal {
            min,
            max,
            precision,
        } => {
            derived.insert("MinValue".into(), json!(min));
            derived.insert("MaxValue".into(), json!(max));
            derived.insert("Precision".into(), json!(precision));
            "Decimal"
        }
        CustomKind::Boolean => {
            options = Some(yes_no());
            derived.insert("DefaultValue".into(), json!(false));
            "Boolean"
        }
        CustomKind::DateTime { date_only } => {
            derived.insert(
                "Format".into(),
                json!(if *date_only {
                    "DateOnly"
                } else {
                    "DateAndTime"
                }),
            );
            "DateTime"
        }
        CustomKind::Picklist(list) => {
            options = Some(list.clone());
            "Picklist"
        }
    };
    Attribute {
        logical: c.logical.clone(),
        schema: c.schema.clone(),
        label: c.label.clone(),
        kind,
        custom: true,
        create: true,
        update: true,
        required: "None",
        primary_id: false,
        primary_name: false,
        metadata_id: c.metadata_id,
        derived,
        options,
    }
}

fn type_of(kind: &str) -> (&'static str, &'static str) {
    TYPES
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or(("StringType", "StringAttributeMetadata"), |(_, n, t)| {
            (n, t)
        })
}

/// The whole JSON of `a` in its derived type, before `$select`.
fn full(logical: &str, a: &Attribute) -> Map<String, Json> {
    let (type_name, odata_type) = type_of(a.kind);
    let mut m = Map::new();
    m.insert(
        "@odata.type".into(),
        json!(format!("#Microsoft.Dynamics.CRM.{odata_type}")),
    );
    m.insert("MetadataId".into(), json!(guid(a.metadata_id)));
    m.insert("LogicalName".into(), json!(a.logical));
    m.insert("SchemaName".into(), json!(a.schema));
    m.insert("EntityLogicalName".into(), json!(logical));
    m.insert("AttributeType".into(), json!(a.kind));
    m.insert("AttributeTypeName".into(), json!({"Value": type_name}));
    m.insert("DisplayName".into(), label(&a.label));
    m.insert("Description".into(), label(""));
    m.insert("IsCustomAttribute".into(), json!(a.custom));
    m.insert("IsValidForCreate".into(), json!(a.create));
    m.insert("IsValidForUpdate".into(), json!(a.update));
    m.insert("IsValidForRead".into(), json!(true));
    m.insert("IsPrimaryId".into(), json!(a.primary_id));
    m.insert("IsPrimaryName".into(), json!(a.primary_name));
    m.insert("IsLogical".into(), json!(false));
    m.insert("IsManaged".into(), json!(!a.custom));
    m.insert("AttributeOf".into(), Json::Null);
    m.insert(
        "RequiredLevel".into(),
        json!({"Value": a.required, "CanBeChanged": a.required != "SystemRequired",
               "ManagedPropertyLogicalName": "canmodifyrequirementlevelsettings"}),
    );
    m.insert("ColumnNumber".into(), json!(a.metadata_id & 0xffff));
    m.extend(a.derived.clone());
    m
}

/// `OptionSet` of a choice (`Options`) or of a two-option column (`TrueOption`,
/// `FalseOption`), as `$expand` returns it.
fn option_set(a: &Attribute, logical: &str) -> Json {
    let option = |(value, text): &(i64, String)| {
        json!({"Value": value, "Color": null, "IsManaged": !a.custom, "Label": label(text),
               "Description": label("")})
    };
    let options = a.options.clone().unwrap_or_default();
    let mut set = Map::new();
    set.insert("MetadataId".into(), json!(guid(a.metadata_id ^ 0x0505)));
    set.insert("Name".into(), json!(logical));
    set.insert("IsGlobal".into(), json!(false));
    set.insert("IsCustomOptionSet".into(), json!(a.custom));
    if a.kind == "Boolean" {
        set.insert("OptionSetType".into(), json!("Boolean"));
        if let Some(no) = options.iter().find(|(v, _)| *v == 0) {
            set.insert("FalseOption".into(), option(no));
        }
        if let Some(yes) = options.iter().find(|(v, _)| *v == 1) {
            set.insert("TrueOption".into(), option(yes));
        }
    } else {
        set.insert("OptionSetType".into(), json!("Picklist"));
        set.insert(
            "Options".into(),
            Json::Array(options.iter().map(option).collect()),
        );
    }
    Json::Object(set)
}

/// What `…/Attributes…` addresses after the entity: an optional attribute key and an optional
/// cast to a derived metadata type.
struct Path {
    key: Option<String>,
    cast: Option<&'static str>,
}

fn parse_path(tail: &str) -> Result<Path, ApiError> {
    let rest = tail
        .strip_prefix("/Attributes")
        .ok_or_else(|| ApiError::no_resource(tail))?;
    let (key, rest) = match rest.strip_prefix('(') {
        Some(r) => {
            let (inner, after) = r
                .split_once(')')
                .ok_or_else(|| ApiError::no_resource(tail))?;
            (Some(inner.trim().to_owned()), after)
        }
        None => (None, rest),
    };
    let cast = match rest.trim_end_matches('/') {
        "" => None,
        c => {
            let name = c
                .strip_prefix("/Microsoft.Dynamics.CRM.")
                .ok_or_else(|| ApiError::no_resource(tail))?;
            let found = TYPES
                .iter()
                .find(|(_, _, t)| *t == name)
                .map(|(k, _, _)| *k)
                .ok_or_else(|| {
                    ApiError::query(format!(
                        "The type 'Microsoft.Dynamics.CRM.{name}' is not a metadata type the emulator describes."
                    ))
                })?;
            Some(found)
        }
    };
    Ok(Path { key, cast })
}

/// Whether an attribute key (`LogicalName='x'` or a MetadataId) names `a`.
fn key_matches(key: &str, a: &Attribute) -> bool {
    match key.strip_prefix("LogicalName=") {
        Some(name) => name.trim().trim_matches('\'') == a.logical,
        None => parse_guid(key) == Some(a.metadata_id),
    }
}

/// Reads `$select` and `$expand` against the (cast) type.
fn shape(
    a: &Attribute,
    entity: &str,
    cast: Option<&str>,
    select: Option<&str>,
    expand: Option<&str>,
) -> Result<Json, ApiError> {
    let type_name = match cast {
        Some(k) => type_of(k).1,
        None => "AttributeMetadata",
    };
    let all = full(entity, a);
    let mut out = match select.map(str::trim).filter(|s| !s.is_empty()) {
        None => all.clone(),
        Some(select) => {
            let mut m = Map::new();
            m.insert("@odata.type".into(), all["@odata.type"].clone());
            for name in select.split(',').map(str::trim) {
                let derived_ok = cast.is_some_and(|k| derived_properties(k).contains(&name));
                if !BASE_PROPERTIES.contains(&name) && !derived_ok {
                    return Err(ApiError::query(format!(
                        "Could not find a property named '{name}' on type 'Microsoft.Dynamics.CRM.{type_name}'."
                    )));
                }
                m.insert(name.into(), all.get(name).cloned().unwrap_or(Json::Null));
            }
            m.insert("MetadataId".into(), all["MetadataId"].clone());
            m
        }
    };
    if let Some(expand) = expand.map(str::trim).filter(|s| !s.is_empty()) {
        for item in expand.split(',') {
            let nav = item.split('(').next().unwrap_or("").trim();
            let allowed = matches!(cast, Some("Picklist" | "Boolean" | "State" | "Status"));
            match nav {
                "OptionSet" if allowed => {
                    out.insert("OptionSet".into(), option_set(a, &a.logical));
                }
                // Local choices only: no global option set.
                "GlobalOptionSet" if allowed => {
                    out.insert("GlobalOptionSet".into(), Json::Null);
                }
                _ => {
                    return Err(ApiError::query(format!(
                        "Could not find a property named '{nav}' on type 'Microsoft.Dynamics.CRM.{type_name}'."
                    )));
                }
            }
        }
    }
    Ok(Json::Object(out))
}

/// Answers a `GET` of `EntityDefinitions(LogicalName='…')/Attributes…`.
pub fn read(
    store: &Store,
    table: Table,
    tail: &str,
    query: &[(String, String)],
    base: &str,
) -> Result<Reply, ApiError> {
    read_attributes(table, attributes(store, table), tail, query, base)
}

/// Answers a `GET` of the column definitions of a table on the shared engine.
pub fn read_set(
    set: &'static Set,
    tail: &str,
    query: &[(String, String)],
    base: &str,
) -> Result<Reply, ApiError> {
    read_attributes(set, set_attributes(set), tail, query, base)
}

fn read_attributes(
    entity: impl Entity + Copy,
    attrs: Vec<Attribute>,
    tail: &str,
    query: &[(String, String)],
    base: &str,
) -> Result<Reply, ApiError> {
    let path = parse_path(tail)?;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if param("$filter").is_some() {
        return Err(ApiError::query(
            "The emulator does not filter column definitions: select them all and filter in the client.",
        ));
    }
    let (select, expand) = (param("$select"), param("$expand"));
    let logical = entity.logical();
    let in_cast = |a: &&Attribute| path.cast.is_none_or(|k| a.kind == k);
    let context = format!("{base}{API_PREFIX}$metadata#EntityDefinitions('{logical}')/Attributes");
    match &path.key {
        Some(key) => {
            let a = attrs
                .iter()
                .filter(in_cast)
                .find(|a| key_matches(key, a))
                .ok_or_else(|| ApiError::no_attribute(entity, key))?;
            let mut body = shape(a, logical, path.cast, select, expand)?;
            body["@odata.context"] = json!(format!("{context}/$entity"));
            Ok(Reply::json(200, body))
        }
        None => {
            let value: Vec<Json> = attrs
                .iter()
                .filter(in_cast)
                .map(|a| shape(a, logical, path.cast, select, expand))
                .collect::<Result<_, _>>()?;
            Ok(Reply::json(
                200,
                json!({"@odata.context": context, "value": value}),
            ))
        }
    }
}

/// The schema name Dataverse gives a standard column: the logical name with its words
/// capitalised where the emulator knows them, else the first letter.
fn set_schema(name: &str) -> String {
    let known = [
        ("estimatedvalue", "EstimatedValue"),
        ("estimatedclosedate", "EstimatedCloseDate"),
        ("actualvalue", "ActualValue"),
        ("actualclosedate", "ActualCloseDate"),
        ("closeprobability", "CloseProbability"),
        ("transactioncurrencyid", "TransactionCurrencyId"),
        ("parentaccountid", "ParentAccountId"),
        ("parentcontactid", "ParentContactId"),
        ("customerid", "CustomerId"),
        ("customeridtype", "CustomerIdType"),
        ("ownerid", "OwnerId"),
        ("owneridtype", "OwnerIdType"),
        ("statecode", "StateCode"),
        ("statuscode", "StatusCode"),
        ("salesstage", "SalesStage"),
        ("stepname", "StepName"),
        ("stageid", "StageId"),
        ("processid", "ProcessId"),
        ("notetext", "NoteText"),
        ("isdocument", "IsDocument"),
        ("filename", "FileName"),
        ("mimetype", "MimeType"),
        ("objectid", "ObjectId"),
        ("objecttypecode", "ObjectTypeCode"),
        ("overriddencreatedon", "OverriddenCreatedOn"),
        ("fullname", "FullName"),
        ("internalemailaddress", "InternalEMailAddress"),
        ("isdisabled", "IsDisabled"),
        ("accessmode", "AccessMode"),
        ("versionnumber", "VersionNumber"),
        (super::store::KEY_COLUMN, "ferry_SourceId"),
    ];
    known
        .iter()
        .find(|(l, _)| *l == name)
        .map_or_else(|| builtin_schema(name), |(_, s)| (*s).to_owned())
}

/// Every attribute of a table on the shared engine: the primary key, its columns and the
/// system timestamps.
fn set_attributes(set: &'static Set) -> Vec<Attribute> {
    let id = |n: u128| (u128::from(set.prefix) << 96) | (0x3e7a << 64) | n;
    let mut out = vec![Attribute {
        logical: set.id_column.into(),
        schema: format!("{}Id", set.schema),
        label: set.schema.into(),
        kind: "Uniqueidentifier",
        custom: false,
        create: true,
        update: false,
        required: "SystemRequired",
        primary_id: true,
        primary_name: false,
        metadata_id: id(1),
        derived: Map::new(),
        options: None,
    }];
    for (i, c) in set.columns.iter().enumerate() {
        let mut derived = Map::new();
        let mut options = None;
        let kind = match c.dv {
            Dv::Text(max) => {
                derived.insert("MaxLength".into(), json!(max));
                derived.insert("Format".into(), json!("Text"));
                derived.insert("FormatName".into(), json!({"Value": "Text"}));
                "String"
            }
            Dv::Memo(max) => {
                derived.insert("MaxLength".into(), json!(max));
                derived.insert(
                    "Format".into(),
                    json!(if c.name == "notetext" {
                        "RichText"
                    } else {
                        "TextArea"
                    }),
                );
                "Memo"
            }
            Dv::Money => {
                derived.insert("MinValue".into(), json!(-super::records::MONEY_MAX));
                derived.insert("MaxValue".into(), json!(super::records::MONEY_MAX));
                derived.insert("Precision".into(), json!(2));
                derived.insert("PrecisionSource".into(), json!(2));
                "Money"
            }
            Dv::Int(min, max) => {
                derived.insert("MinValue".into(), json!(min));
                derived.insert("MaxValue".into(), json!(max));
                derived.insert("Format".into(), json!("None"));
                if c.name == "versionnumber" {
                    "BigInt"
                } else {
                    "Integer"
                }
            }
            Dv::Choice(_, values) => {
                options = Some(values.iter().map(|(v, l)| (*v, (*l).to_owned())).collect());
                match c.name {
                    "statecode" => "State",
                    "statuscode" => "Status",
                    _ => "Picklist",
                }
            }
            Dv::Date => {
                derived.insert("Format".into(), json!("DateOnly"));
                derived.insert("DateTimeBehavior".into(), json!({"Value": "DateOnly"}));
                "DateTime"
            }
            Dv::DateTime => {
                derived.insert("Format".into(), json!("DateAndTime"));
                derived.insert("DateTimeBehavior".into(), json!({"Value": "UserLocal"}));
                "DateTime"
            }
            Dv::Bool => {
                options = Some(yes_no());
                derived.insert("DefaultValue".into(), json!(false));
                "Boolean"
            }
            Dv::Lookup(targets) => {
                derived.insert("Targets".into(), json!(targets));
                match c.name {
                    "ownerid" => "Owner",
                    "customerid" => "Customer",
                    _ => "Lookup",
                }
            }
            Dv::EntityName => "EntityName",
        };
        out.push(Attribute {
            logical: c.name.into(),
            schema: set_schema(c.name),
            label: c.label.into(),
            kind,
            custom: c.name == super::store::KEY_COLUMN,
            create: c.writable || c.name == "statecode",
            update: c.writable || c.name == "statecode",
            required: c.required,
            primary_id: false,
            primary_name: c.name == set.primary_name,
            metadata_id: id(100 + i as u128),
            derived,
            options,
        });
    }
    for (n, logical, schema, display) in [
        (3, "createdon", "CreatedOn", "Created On"),
        (4, "modifiedon", "ModifiedOn", "Modified On"),
    ] {
        let mut derived = Map::new();
        derived.insert("Format".into(), json!("DateAndTime"));
        out.push(Attribute {
            logical: logical.into(),
            schema: schema.into(),
            label: display.into(),
            kind: "DateTime",
            custom: false,
            create: false,
            update: false,
            required: "None",
            primary_id: false,
            primary_name: false,
            metadata_id: id(n),
            derived,
            options: None,
        });
    }
    out
}

fn localized(body: &Map<String, Json>, name: &str) -> Option<String> {
    let l = body.get(name)?;
    l.get("LocalizedLabels")
        .and_then(|ls| ls.get(0))
        .or_else(|| l.get("UserLocalizedLabel"))
        .and_then(|l| l.get("Label"))
        .and_then(Json::as_str)
        .map(str::to_owned)
}

fn number(body: &Map<String, Json>, name: &str) -> Option<f64> {
    body.get(name).and_then(Json::as_f64)
}

/// Answers a `POST` of `EntityDefinitions(LogicalName='…')/Attributes`: creates the custom
/// column the body defines and answers 204 with its `OData-EntityId`.
pub fn create(
    store: &mut Store,
    table: Table,
    req_body: &str,
    base: &str,
) -> Result<Reply, ApiError> {
    let bad = |m: &str| ApiError::metadata(m);
    let Ok(Json::Object(body)) = serde_json::from_str::<Json>(req_body) else {
        return Err(bad("The request body is not a JSON object."));
    };
    let odata_type = body
        .get("@odata.type")
        .and_then(Json::as_str)
        .map(|t| t.trim_start_matches('#'))
        .and_then(|t| t.strip_prefix("Microsoft.Dynamics.CRM."))
        .ok_or_else(|| {
            bad("The attribute definition needs an @odata.type naming its metadata type (Microsoft.Dynamics.CRM.StringAttributeMetadata…).")
        })?;
    let schema = body
        .get("SchemaName")
        .and_then(Json::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("The attribute definition needs a SchemaName."))?;
    let valid_chars = schema
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_chars || schema.len() > MAX_SCHEMA_NAME {
        return Err(bad(&format!(
            "The SchemaName {schema} is invalid: use at most {MAX_SCHEMA_NAME} letters, digits and underscores."
        )));
    }
    if !schema.to_ascii_lowercase().starts_with(PREFIX) || schema.len() == PREFIX.len() {
        return Err(bad(&format!(
            "The SchemaName {schema} must start with the customization prefix of the solution's publisher ({PREFIX})."
        )));
    }
    let logical = schema.to_ascii_lowercase();
    if store.column(table, &logical).is_some()
        || attributes(store, table)
            .iter()
            .any(|a| a.logical == logical)
    {
        return Err(ApiError::duplicate_attribute(table, &logical));
    }
    let display = localized(&body, "DisplayName")
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| {
            bad("The attribute definition needs a DisplayName with a LocalizedLabel.")
        })?;
    let kind = match odata_type {
        "StringAttributeMetadata" => {
            let max = number(&body, "MaxLength").unwrap_or(100.0);
            if !(1.0..=4000.0).contains(&max) {
                return Err(bad(
                    "MaxLength of a string column must be between 1 and 4000.",
                ));
            }
            CustomKind::String { max: max as usize }
        }
        "MemoAttributeMetadata" => {
            let max = number(&body, "MaxLength").unwrap_or(2000.0);
            if !(1.0..=1_048_576.0).contains(&max) {
                return Err(bad(
                    "MaxLength of a memo column must be between 1 and 1048576.",
                ));
            }
            CustomKind::Memo { max: max as usize }
        }
        "IntegerAttributeMetadata" => CustomKind::Integer {
            min: number(&body, "MinValue").map_or(-2_147_483_648, |n| n as i64),
            max: number(&body, "MaxValue").map_or(2_147_483_647, |n| n as i64),
        },
        "DecimalAttributeMetadata" => {
            let precision = number(&body, "Precision").unwrap_or(2.0);
            if !(0.0..=10.0).contains(&precision) {
                return Err(bad(
                    "Precision of a decimal column must be between 0 and 10.",
                ));
            }
            CustomKind::Decimal {
                min: number(&body, "MinValue").unwrap_or(-100_000_000_000.0),
                max: number(&body, "MaxValue").unwrap_or(100_000_000_000.0),
                precision: precision as u32,
            }
        }
        "BooleanAttributeMetadata" => CustomKind::Boolean,
        "DateTimeAttributeMetadata" => {
            let format = body
                .get("Format")
                .and_then(Json::as_str)
                .unwrap_or("DateOnly");
            match format {
                "DateOnly" => CustomKind::DateTime { date_only: true },
                "DateAndTime" => CustomKind::DateTime { date_only: false },
                _ => {
                    return Err(bad(
                        "Format of a date and time column must be DateOnly or DateAndTime.",
                    ));
                }
            }
        }
        "PicklistAttributeMetadata" => {
            let options = body
                .get("OptionSet")
                .and_then(|s| s.get("Options"))
                .and_then(Json::as_array)
                .ok_or_else(|| bad("A choice column needs OptionSet.Options (or a GlobalOptionSet, which the emulator does not keep)."))?;
            let mut list: Vec<(i64, String)> = Vec::with_capacity(options.len());
            for (i, option) in options.iter().enumerate() {
                let text = option
                    .get("Label")
                    .and_then(|l| {
                        l.get("LocalizedLabels")
                            .and_then(|ls| ls.get(0))
                            .or_else(|| l.get("UserLocalizedLabel"))
                    })
                    .and_then(|l| l.get("Label"))
                    .and_then(Json::as_str)
                    .filter(|l| !l.trim().is_empty())
                    .ok_or_else(|| bad("Every option needs a Label with a LocalizedLabel."))?;
                // Without a value, options are numbered from the publisher's option prefix.
                let value = option
                    .get("Value")
                    .and_then(Json::as_i64)
                    .unwrap_or(TIER_BASE + i as i64);
                if list.iter().any(|(v, _)| *v == value) {
                    return Err(bad("Two options have the same Value."));
                }
                list.push((value, text.to_owned()));
            }
            CustomKind::Picklist(list)
        }
        other => {
            return Err(bad(&format!(
                "The emulator does not create columns of type {other} (string, memo, integer, decimal, boolean, \
                 date and time, and choice columns only)."
            )));
        }
    };
    let n = store.customs(table).len() as u128 + 1;
    let metadata_id =
        (0xc5c5_0000_u128 << 96) | (u128::from(table == Table::Contact) << 80) | (0x1000 + n);
    store.add_column(
        table,
        CustomColumn {
            logical,
            schema: schema.to_owned(),
            label: display,
            kind,
            metadata_id,
        },
    );
    Ok(Reply {
        status: 204,
        headers: vec![(
            "OData-EntityId".into(),
            format!(
                "{base}{API_PREFIX}EntityDefinitions(LogicalName='{}')/Attributes({})",
                table.logical(),
                guid(metadata_id)
            ),
        )],
        body: None,
    })
}
