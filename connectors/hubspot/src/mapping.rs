//! HubSpot's record shape, and the table between canonical fields and HubSpot properties.
//!
//! HubSpot sends every property value as a string (or `null` when unset); values are typed
//! here through [`Record::set_parsed`], so a value of the wrong type becomes a rejection that
//! names the field, never the value.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use ferry_core::json::{Object, Text};
use ferry_core::{
    FieldBinding, FieldMap, FieldMaps, FieldType, PicklistOption, Record, RecordRejection, Value,
    field,
};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::VENDOR;
use crate::objects::{HubspotBinding, HubspotReference, OBJECTS, binding};

/// Canonical contact field ↔ HubSpot contact property.
pub const CONTACT_PROPERTIES: &[(&str, &str)] = &[
    (field::EMAIL, "email"),
    (field::FIRST_NAME, "firstname"),
    (field::LAST_NAME, "lastname"),
    (field::PHONE, "phone"),
    (field::MOBILE_PHONE, "mobilephone"),
    (field::JOB_TITLE, "jobtitle"),
    (field::STREET, "address"),
    (field::CITY, "city"),
    (field::STATE, "state"),
    (field::POSTAL_CODE, "zip"),
    (field::COUNTRY, "country"),
    (field::EMAIL_OPT_OUT, "hs_email_optout"),
    (field::LEGAL_BASIS, "hs_legal_basis"),
    (field::CREATED_AT, "createdate"),
    (field::UPDATED_AT, "lastmodifieddate"),
    (field::OWNER, "hubspot_owner_id"),
];

/// The options of the contact property `hs_legal_basis` ("Legal basis for processing
/// contact's data", a multiple checkbox whose internal values are its labels) under the
/// model's names ([`ferry_core::model::LEGAL_BASES`]). HubSpot keeps no option for a legal
/// obligation, vital or public interest, nor for a legitimate interest other than a
/// prospect's or a customer's. [secondary: the options as integrations write them; HubSpot's
/// reference does not list them.]
pub const LEGAL_BASIS_OPTIONS: &[(&str, &str)] = &[
    (
        "legitimate_interests_prospect",
        "Legitimate interest \u{2013} prospect/lead",
    ),
    (
        "legitimate_interests_customer",
        "Legitimate interest \u{2013} existing customer",
    ),
    ("contract", "Performance of a contract"),
    ("consent", "Freely given consent from contact"),
    ("not_applicable", "Not applicable"),
];

/// Canonical company field ↔ HubSpot company property.
pub const COMPANY_PROPERTIES: &[(&str, &str)] = &[
    (field::NAME, "name"),
    (field::DOMAIN, "domain"),
    (field::PHONE, "phone"),
    (field::INDUSTRY, "industry"),
    (field::EMPLOYEE_COUNT, "numberofemployees"),
    (field::ANNUAL_REVENUE, "annualrevenue"),
    (field::STREET, "address"),
    (field::CITY, "city"),
    (field::STATE, "state"),
    (field::POSTAL_CODE, "zip"),
    (field::COUNTRY, "country"),
    (field::CREATED_AT, "createdate"),
    (field::UPDATED_AT, "hs_lastmodifieddate"),
    (field::OWNER, "hubspot_owner_id"),
];

/// Canonical deal field ↔ HubSpot deal property. The stage is `dealstage` with its pipeline
/// in [`PIPELINE_PROPERTY`]; won and lost are stages in HubSpot, so a deal has no status.
pub const DEAL_PROPERTIES: &[(&str, &str)] = &[
    (field::NAME, "dealname"),
    (field::AMOUNT, "amount"),
    (field::CURRENCY, "deal_currency_code"),
    (field::CLOSE_DATE, "closedate"),
    (field::STAGE, "dealstage"),
    (field::OWNER, "hubspot_owner_id"),
    (field::CREATED_AT, "createdate"),
    (field::UPDATED_AT, "hs_lastmodifieddate"),
];

/// Canonical note field ↔ HubSpot note property.
pub const NOTE_PROPERTIES: &[(&str, &str)] = &[
    (field::BODY, "hs_note_body"),
    (field::TIMESTAMP, "hs_timestamp"),
    (field::OWNER, "hubspot_owner_id"),
    (field::CREATED_AT, "hs_createdate"),
    (field::UPDATED_AT, "hs_lastmodifieddate"),
];

/// The property holding the pipeline of a stage property's stage (`dealstage`): stage ids
/// are unique within their pipeline only.
pub const PIPELINE_PROPERTY: &str = "pipeline";

/// HubSpot's default pipeline's id: a deal whose `pipeline` is empty is in it (HubSpot's deals
/// guide: without `pipeline` "the default pipeline is used").
pub const DEFAULT_PIPELINE: &str = "default";

/// Standard `datetime` properties holding a canonical date (a deal's `closedate`): written as
/// midnight UTC in full ISO form, the form HubSpot documents for datetimes; read as the UTC day
/// of the time they hold.
pub const DATE_TIME_PROPERTIES: &[&str] = &["closedate"];

/// The standard field map of `row`'s object: its table, typed by the canonical schema, its
/// multiple-checkbox properties with their options under the model's names.
pub fn standard_map(row: &HubspotBinding) -> FieldMap {
    let map = FieldMap::standard(row.object, row.properties);
    let named: Vec<FieldBinding> = row
        .named_options
        .iter()
        .filter_map(|named| {
            let binding = map.by_canonical(named.canonical)?;
            Some(FieldBinding {
                options: named
                    .options
                    .iter()
                    .map(|&(name, value)| PicklistOption {
                        value: value.to_owned(),
                        label: name.to_owned(),
                    })
                    .collect(),
                ..binding.clone()
            })
        })
        .collect();
    map.with(&named)
}

/// The names a HubSpot sink holds in each of `row`'s multiple-checkbox properties: the engine
/// leaves out any other before writing.
pub fn named_limits(row: &HubspotBinding) -> impl Iterator<Item = ferry_core::FieldLimit> {
    row.named_options.iter().map(|named| {
        ferry_core::FieldLimit::only_values(
            named.canonical,
            named
                .options
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect(),
        )
    })
}

/// The standard field maps of every object the connector moves, to which `map_fields` adds
/// the operator's mapped fields.
pub fn field_maps() -> FieldMaps {
    FieldMaps::new(OBJECTS.iter().map(|row| (row.object, standard_map(row))))
}

/// Mapped properties a sink does not write: HubSpot sets the timestamps itself, and refuses
/// `hs_email_optout` through the CRM objects API (`READ_ONLY_VALUE`); an opt-out is recorded
/// through the communication-preferences API instead.
pub const NOT_WRITTEN: &[&str] = &[
    "hs_email_optout",
    "createdate",
    "lastmodifieddate",
    "hs_lastmodifieddate",
    "hs_createdate",
];

/// The bindings of `map` a sink writes with each upsert.
pub fn written_properties(map: &FieldMap) -> impl Iterator<Item = &FieldBinding> {
    map.iter()
        .filter(|b| !NOT_WRITTEN.contains(&b.vendor.as_ref()))
}

/// The canonical fields a HubSpot sink stores and reads back: the written properties of `map`
/// (standard and mapped), the opt-outs the row's subscriptions record, and its references (its
/// associations).
pub fn stored_fields(row: &HubspotBinding, map: &FieldMap) -> Vec<String> {
    let mut fields: Vec<String> = written_properties(map)
        .map(|b| b.canonical.to_string())
        .collect();
    for opt_out in row
        .subscriptions
        .iter()
        .map(|s| s.opt_out)
        .chain(row.email_types)
    {
        if !fields.iter().any(|f| f == opt_out) {
            fields.push(opt_out.to_owned());
        }
    }
    for reference in row.references {
        // A note's `parents` is one field of three references.
        if !fields.iter().any(|f| f == reference.canonical) {
            fields.push(reference.canonical.to_owned());
        }
    }
    fields
}

/// The properties to ask for to read the records of `map`: its properties, and the pipeline
/// of a stage.
pub fn read_properties(map: &FieldMap) -> Vec<&str> {
    // An opt-out read through the communication-preferences API is no property.
    let mut properties: Vec<&str> = map
        .vendor_names()
        .into_iter()
        .filter(|name| ferry_core::model::opt_out(name).is_none())
        .collect();
    if map.iter().any(|b| b.ty == FieldType::Stage) && !properties.contains(&PIPELINE_PROPERTY) {
        properties.push(PIPELINE_PROPERTY);
    }
    properties
}

/// The HubSpot properties of an upsert of `record` through `map`: every written property,
/// with `""` for a field the record lacks, so that an upsert clears what the source no longer
/// holds and the sink ends equal to the source; an opt-out only when it is `true`. A picklist label becomes its internal value;
/// a label the property's options lack refuses the record (`NO_SUCH_OPTION`), naming the
/// field, never the value.
pub fn to_properties(
    record: &Record,
    map: &FieldMap,
) -> Result<serde_json::Map<String, serde_json::Value>, RecordRejection> {
    let mut properties = serde_json::Map::new();
    for binding in written_properties(map) {
        if ferry_core::consent::leave_out(record, &binding.canonical) {
            // Only an opt-out is ever written: `""` or `false` would clear one HubSpot holds.
            continue;
        }
        let value = match record.get(&binding.canonical) {
            None => String::new(),
            Some(value) if binding.ty == FieldType::Stage => {
                // The stage's id with its pipeline's: an id is unique within its pipeline only.
                let (pipeline, stage) = match value {
                    Value::Stage(id) => (id.pipeline.clone(), id.stage.clone()),
                    other => (String::new(), other.to_vendor_string()),
                };
                properties.insert(PIPELINE_PROPERTY.to_owned(), pipeline.into());
                stage
            }
            Some(value) if binding.is_picklist() && binding.ty == FieldType::Names => binding
                .write_names(VENDOR, &record.source_id, &value.to_vendor_string())?
                .join(";"),
            Some(value) if binding.is_picklist() => {
                let label = value.to_vendor_string();
                binding
                    .write_option(VENDOR, &record.source_id, &label)?
                    .to_owned()
            }
            Some(Value::Date(days)) if DATE_TIME_PROPERTIES.contains(&binding.vendor.as_ref()) => {
                ferry_core::model::format_timestamp(days.saturating_mul(86_400_000))
            }
            Some(value) => value.to_vendor_string(),
        };
        properties.insert(binding.vendor.to_string(), serde_json::Value::String(value));
    }
    Ok(properties)
}

/// The canonical field a HubSpot property of `row`'s object maps to in the standard table, if
/// any.
pub fn canonical(row: &HubspotBinding, property: &str) -> Option<&'static str> {
    row.properties
        .iter()
        .find(|(_, p)| *p == property)
        .map(|(c, _)| *c)
}

/// One page of a v3 list response, its text borrowed from the response body.
#[derive(Debug, Deserialize)]
pub(crate) struct ListResponse<'a> {
    #[serde(borrow)]
    pub results: Vec<HubspotObject<'a>>,
    #[serde(default)]
    pub paging: Option<Paging>,
}

/// Only the `paging` member of a list response: the records are skipped, not read.
#[derive(Debug, Deserialize)]
pub(crate) struct ListPaging {
    #[serde(default)]
    pub paging: Option<Paging>,
}

impl ListPaging {
    /// The cursor of the next page, if there is one.
    pub fn next(self) -> Option<String> {
        self.paging.and_then(|p| p.next).map(|n| n.after)
    }
}

/// The `paging` member of a list response.
#[derive(Debug, Deserialize)]
pub(crate) struct Paging {
    #[serde(default)]
    pub next: Option<NextPage>,
}

/// The `paging.next` member: the opaque cursor of the next page.
#[derive(Debug, Deserialize)]
pub(crate) struct NextPage {
    pub after: String,
}

/// A CRM object as HubSpot returns it (`SimplePublicObjectWithAssociations`). Its text is
/// borrowed from the response body where it holds no escapes: every record of every page is
/// read through here, and a map of owned strings per record was most of the cost of reading.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubspotObject<'a> {
    /// The record id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// Property values: strings, or `null` when unset.
    #[serde(default, borrow)]
    pub properties: Object<'a>,
    /// Associated records, when requested (the targets of the object's references).
    #[serde(default, borrow)]
    pub associations: Associations<'a>,
    /// Creation time, ISO-8601.
    #[serde(default, borrow)]
    pub created_at: Option<Text<'a>>,
    /// Last modification time, ISO-8601.
    #[serde(default, borrow)]
    pub updated_at: Option<Text<'a>>,
}

/// The associations of a record, by the associated object type's path (`companies`), in the
/// order HubSpot sent them.
#[derive(Debug, Default)]
pub struct Associations<'a>(Vec<(Text<'a>, AssociationPage<'a>)>);

impl Associations<'_> {
    /// The associations with records of the object type at `path`, if listed.
    pub fn get(&self, path: &str) -> Option<&AssociationPage<'_>> {
        self.0
            .iter()
            .find(|(name, _)| &**name == path)
            .map(|(_, page)| page)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Associations<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Visit<'a> {
            type Value = Associations<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of association pages by object type")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pages = Vec::new();
                while let Some(entry) = map.next_entry::<Text<'a>, AssociationPage<'a>>()? {
                    pages.push(entry);
                }
                Ok(Associations(pages))
            }
        }
        d.deserialize_map(Visit(PhantomData))
    }
}

/// The associations of one type on a record.
#[derive(Debug, Default, Deserialize)]
pub struct AssociationPage<'a> {
    /// The associated records.
    #[serde(default, borrow)]
    pub results: Vec<AssociationRef<'a>>,
}

/// One associated record and the association's type label.
#[derive(Debug, Deserialize)]
pub struct AssociationRef<'a> {
    /// The associated record's id.
    #[serde(deserialize_with = "string_or_number")]
    pub id: String,
    /// The association type, e.g. `contact_to_company` (primary).
    #[serde(rename = "type", default, borrow)]
    pub kind: Option<Text<'a>>,
}

/// Deserialises an id HubSpot sends as a string or a number into a non-empty string.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Visit;
    impl Visitor<'_> for Visit {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a non-empty string or number id")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            if v.is_empty() {
                return Err(E::custom("expected a non-empty string or number id"));
            }
            Ok(v.to_owned())
        }
        fn visit_u64<E>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            serde_json::Number::from_f64(v)
                .map(|n| n.to_string())
                .ok_or_else(|| E::custom("expected a non-empty string or number id"))
        }
    }
    d.deserialize_any(Visit)
}

impl HubspotObject<'_> {
    /// A property's value as text; `None` when absent, `null` or empty.
    pub fn property(&self, name: &str) -> Option<String> {
        self.property_text(name).map(Cow::into_owned)
    }

    /// A property's value as text, borrowed where HubSpot sent a string (nearly always: the
    /// mapping of every record reads every property through here, so it should not copy).
    pub fn property_text(&self, name: &str) -> Option<Cow<'_, str>> {
        self.properties.get(name)?.text().filter(|t| !t.is_empty())
    }

    /// The id of the record `reference` refers to: its association labelled as the reference's
    /// (a contact's primary company), else the first record of the target listed.
    pub fn referenced(&self, reference: &HubspotReference) -> Option<&str> {
        let path = binding(reference.target).ok()?.path;
        let associated = &self.associations.get(path)?.results;
        associated
            .iter()
            .find(|a| a.kind.as_deref() == Some(reference.list_label))
            .or_else(|| associated.first())
            .map(|a| a.id.as_str())
    }
}

/// Maps a HubSpot object of `row`'s object to a canonical record through `map` (a picklist's
/// internal value becomes its label), or says which fields could not be read.
pub fn to_record(
    row: &HubspotBinding,
    map: &FieldMap,
    raw: &HubspotObject,
) -> Result<Record, RecordRejection> {
    let mut record = Record::new(row.object, raw.id.clone());
    let mut problems = Vec::new();
    for binding in map.iter() {
        let value = raw
            .property_text(&binding.vendor)
            .or(match binding.canonical.as_ref() {
                field::CREATED_AT => raw.created_at.as_deref().map(Cow::Borrowed),
                field::UPDATED_AT => raw.updated_at.as_deref().map(Cow::Borrowed),
                _ => None,
            });
        let Some(value) = value else {
            continue;
        };
        if binding.ty == FieldType::Stage {
            let pipeline = raw
                .property_text(PIPELINE_PROPERTY)
                .unwrap_or(Cow::Borrowed(DEFAULT_PIPELINE));
            let stage = Value::stage(pipeline.into_owned(), value.into_owned());
            record.fields.insert(binding.canonical.clone(), stage);
            continue;
        }
        match read_value(binding, &value) {
            Ok(Some(v)) => {
                record.fields.insert(binding.canonical.clone(), v);
            }
            Ok(None) => {}
            Err(e) => problems.push(format!(
                "`{}` (HubSpot property `{}`, expected {})",
                binding.canonical, binding.vendor, e.expected
            )),
        }
    }
    // Link fields are read apart, through v4 association batch reads.
    for reference in row.references.iter().filter(|r| !r.many) {
        if let Some(target) = raw.referenced(reference) {
            record.set(reference.canonical, Value::Reference(target.to_owned()));
        }
    }
    if problems.is_empty() {
        Ok(record)
    } else {
        Err(RecordRejection {
            source_id: raw.id.clone(),
            code: "UNREADABLE_VALUE".into(),
            reason: format!("value of {} could not be read", problems.join(", ")),
        })
    }
}

/// A HubSpot value read as `binding`'s canonical type; a date held in a `datetime` property
/// (a deal's `closedate`) is the UTC day of its time.
fn read_value(
    binding: &FieldBinding,
    raw: &str,
) -> Result<Option<Value>, ferry_core::model::ValueError> {
    match binding.read(raw) {
        Err(e) if binding.ty == FieldType::Date => ferry_core::model::parse_timestamp(raw)
            .map(|ms| Some(Value::Date(ms.div_euclid(86_400_000))))
            .ok_or(e),
        read => read,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::ObjectType;

    fn contacts() -> &'static HubspotBinding {
        binding(ObjectType::CONTACTS).expect("a row")
    }

    fn companies() -> &'static HubspotBinding {
        binding(ObjectType::COMPANIES).expect("a row")
    }

    fn object(json: serde_json::Value) -> HubspotObject<'static> {
        // Borrowed types need their input to outlive them: leaked, in a test.
        let text: &'static str = Box::leak(json.to_string().into_boxed_str());
        serde_json::from_str(text).expect("a HubSpot object")
    }

    #[test]
    fn maps_a_contact_with_types_and_primary_company() {
        let raw = object(serde_json::json!({
            "id": "2000001",
            "properties": {"email": "a@example.com", "firstname": "Zoë", "lastname": null, "hs_email_optout": "true",
                           "createdate": "2022-06-01T14:31:48.469Z", "lastmodifieddate": "2023-01-01T00:00:00.000Z"},
            "associations": {"companies": {"results": [
                {"id": "1000009", "type": "contact_to_company_unlabeled"},
                {"id": "1000007", "type": "contact_to_company"}]}},
            "createdAt": "2022-06-01T14:31:48.469Z", "updatedAt": "2023-01-01T00:00:00.000Z", "archived": false
        }));
        let r = to_record(contacts(), &standard_map(contacts()), &raw).expect("maps");
        assert_eq!(r.text(field::EMAIL), Some("a@example.com"));
        assert_eq!(r.text(field::FIRST_NAME), Some("Zoë"));
        assert_eq!(r.get(field::LAST_NAME), None);
        assert_eq!(r.get(field::EMAIL_OPT_OUT), Some(&Value::Bool(true)));
        assert_eq!(
            r.get(field::COMPANY),
            Some(&Value::Reference("1000007".into()))
        );
        assert!(matches!(
            r.get(field::CREATED_AT),
            Some(Value::Timestamp(_))
        ));
    }

    #[test]
    fn a_legal_basis_travels_under_the_models_names_both_ways() {
        let map = standard_map(contacts());
        let raw = object(serde_json::json!({
            "id": "7",
            "properties": {"lastname": "Ode",
                           "hs_legal_basis": "Legitimate interest \u{2013} existing customer;Freely given consent from contact"}
        }));
        let r = to_record(contacts(), &map, &raw).expect("maps");
        assert_eq!(
            r.text(field::LEGAL_BASIS),
            Some("consent; legitimate_interests_customer")
        );
        // Written back as HubSpot's internal values, in its options' order.
        let props = to_properties(&r, &map).expect("writes");
        assert_eq!(
            props["hs_legal_basis"],
            "Legitimate interest \u{2013} existing customer;Freely given consent from contact"
        );
        // An option HubSpot added that the model does not name is carried under its own
        // name, and a HubSpot sink writes it back as it is not: refused, naming the field.
        let own = object(serde_json::json!({
            "id": "8", "properties": {"hs_legal_basis": "Not applicable;Soft opt-in"}
        }));
        let r = to_record(contacts(), &map, &own).expect("maps");
        assert_eq!(
            r.text(field::LEGAL_BASIS),
            Some("Soft opt-in; not_applicable")
        );
        let refused = to_properties(&r, &map).expect_err("no such option");
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert!(!refused.reason.contains("Soft"), "{}", refused.reason);
        // Every name a sink holds is declared, so the engine leaves out the others.
        let limits: Vec<_> = named_limits(contacts()).collect();
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].field, field::LEGAL_BASIS);
        assert_eq!(limits[0].only_values.as_ref().map(Vec::len), Some(5));
    }

    #[test]
    fn first_company_when_none_is_primary() {
        let raw = object(
            serde_json::json!({"id": 5, "associations": {"companies": {"results": [{"id": 9, "type": "x"}]}}}),
        );
        let r = to_record(contacts(), &standard_map(contacts()), &raw).expect("maps");
        assert_eq!(r.source_id, "5");
        assert_eq!(r.get(field::COMPANY), Some(&Value::Reference("9".into())));
    }

    #[test]
    fn upsert_properties_clear_absent_fields_and_skip_read_only_ones() {
        let mut r = Record::new(ObjectType::CONTACTS, "p-1");
        r.set(field::EMAIL, Value::Text("a@example.com".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::CREATED_AT, Value::Timestamp(0));
        let props = to_properties(&r, &standard_map(contacts())).expect("writes");
        assert_eq!(props["email"], serde_json::json!("a@example.com"));
        assert_eq!(props["firstname"], serde_json::json!(""));
        for p in NOT_WRITTEN {
            assert!(!props.contains_key(*p), "{p}");
        }
        let mut c = Record::new(ObjectType::COMPANIES, "c-1");
        c.set(field::ANNUAL_REVENUE, Value::Decimal(1_000_000.0));
        c.set(field::EMPLOYEE_COUNT, Value::Integer(250));
        let props = to_properties(&c, &standard_map(companies())).expect("writes");
        assert_eq!(props["annualrevenue"], serde_json::json!("1000000"));
        assert_eq!(props["numberofemployees"], serde_json::json!("250"));
        let stored = stored_fields(contacts(), &standard_map(contacts()));
        assert!(stored.iter().any(|f| f == field::COMPANY));
        assert!(stored.iter().any(|f| f == field::EMAIL_OPT_OUT));
        assert!(!stored.iter().any(|f| f == field::CREATED_AT));
    }

    #[test]
    fn bad_value_is_a_rejection_naming_the_field_not_the_value() {
        let raw = object(
            serde_json::json!({"id": "1000001", "properties": {"name": "Acme", "numberofemployees": "lots-of-people"}}),
        );
        let rejection =
            to_record(companies(), &standard_map(companies()), &raw).expect_err("rejected");
        assert_eq!(rejection.source_id, "1000001");
        assert!(
            rejection.reason.contains("employee_count")
                && rejection.reason.contains("numberofemployees")
        );
        assert!(
            !rejection.reason.contains("lots-of-people"),
            "{}",
            rejection.reason
        );
    }

    fn tier() -> FieldBinding {
        FieldBinding {
            options: ["Gold", "Silver"]
                .into_iter()
                .map(|label| ferry_core::PicklistOption {
                    value: label.to_lowercase(),
                    label: label.into(),
                })
                .collect(),
            ..FieldBinding::new("tier", "tier", ferry_core::FieldType::Text)
        }
    }

    #[test]
    fn mapped_fields_read_as_labels_and_write_as_values() {
        let map = standard_map(companies()).with(&[
            tier(),
            FieldBinding::new("seats", "seats", ferry_core::FieldType::Decimal),
        ]);
        let raw = object(serde_json::json!({"id": "1000001",
            "properties": {"name": "Acme", "tier": "silver", "seats": "12", "region": "EMEA"}}));
        let r = to_record(companies(), &map, &raw).expect("maps");
        assert_eq!(r.text("tier"), Some("Silver"));
        assert_eq!(r.get("seats"), Some(&Value::Decimal(12.0)));
        // An unmapped custom property is not read.
        assert_eq!(r.get("region"), None);
        let props = to_properties(&r, &map).expect("writes");
        assert_eq!(props["tier"], serde_json::json!("silver"));
        assert_eq!(props["seats"], serde_json::json!("12"));
        let stored = stored_fields(companies(), &map);
        assert!(stored.iter().any(|f| f == "tier") && stored.iter().any(|f| f == "seats"));

        let mut unknown = r.clone();
        unknown.set(field::NAME, Value::Text("Beta".into()));
        unknown
            .fields
            .insert("tier".into(), Value::Text("Platinum".into()));
        let refused = to_properties(&unknown, &map).expect_err("refused");
        assert_eq!(refused.code, ferry_core::fields::NO_SUCH_OPTION);
        assert_eq!(refused.source_id, "1000001");
        assert!(!refused.reason.contains("Platinum"), "{}", refused.reason);
    }

    fn deals() -> &'static HubspotBinding {
        binding(ObjectType::DEALS).expect("a row")
    }

    fn notes() -> &'static HubspotBinding {
        binding(ObjectType::NOTES).expect("a row")
    }

    #[test]
    fn maps_a_deal_with_its_stage_in_its_pipeline_a_date_and_an_owner() {
        let raw = object(serde_json::json!({
            "id": "3000001",
            "properties": {"dealname": "Renewal", "amount": "1500.5", "deal_currency_code": "EUR",
                           "closedate": "2025-03-01T00:00:00.000Z", "pipeline": "7001",
                           "dealstage": "7003", "hubspot_owner_id": "81234567",
                           "createdate": "2024-01-02T03:04:05.000Z", "hs_lastmodifieddate": null},
        }));
        let r = to_record(deals(), &standard_map(deals()), &raw).expect("maps");
        assert_eq!(r.text(field::NAME), Some("Renewal"));
        assert_eq!(r.get(field::AMOUNT), Some(&Value::Decimal(1500.5)));
        assert_eq!(r.text(field::CURRENCY), Some("EUR"));
        assert_eq!(r.get(field::STAGE), Some(&Value::stage("7001", "7003")));
        // 2025-03-01 is day 20148 since 1970-01-01.
        assert_eq!(r.get(field::CLOSE_DATE), Some(&Value::Date(20_148)));
        assert_eq!(r.text(field::OWNER), Some("81234567"));
        assert!(matches!(
            r.get(field::CREATED_AT),
            Some(Value::Timestamp(_))
        ));
        // HubSpot keeps won and lost in the stage: a deal has no status.
        assert_eq!(r.get(field::STATUS), None);
        // Links are read apart (v4 batch reads), not from the list's associations.
        assert_eq!(r.get(field::CONTACTS), None);

        // A close date at another time of day is its UTC day; a deal without a pipeline is
        // in the default one.
        let raw = object(serde_json::json!({"id": "3000002",
            "properties": {"closedate": "2025-03-01T17:30:00Z", "dealstage": "closedwon"}}));
        let r = to_record(deals(), &standard_map(deals()), &raw).expect("maps");
        assert_eq!(r.get(field::CLOSE_DATE), Some(&Value::Date(20_148)));
        assert_eq!(
            r.get(field::STAGE),
            Some(&Value::stage(DEFAULT_PIPELINE, "closedwon"))
        );
        let raw = object(serde_json::json!({"id": "3000003", "properties": {"closedate": "soon"}}));
        let refused = to_record(deals(), &standard_map(deals()), &raw).expect_err("unreadable");
        assert!(refused.reason.contains("close_date") && !refused.reason.contains("soon"));
    }

    #[test]
    fn a_deal_is_written_with_its_stage_pipeline_and_close_date_at_midnight_utc() {
        let mut d = Record::new(ObjectType::DEALS, "opp-1");
        d.set(field::NAME, Value::Text("Renewal".into()));
        d.set(field::STAGE, Value::stage("7001", "7003"));
        d.set(field::CLOSE_DATE, Value::Date(20_148));
        d.set(field::STATUS, Value::Text("won".into()));
        d.set(field::CREATED_AT, Value::Timestamp(0));
        let map = standard_map(deals());
        let props = to_properties(&d, &map).expect("writes");
        assert_eq!(props["dealstage"], serde_json::json!("7003"));
        assert_eq!(props[PIPELINE_PROPERTY], serde_json::json!("7001"));
        assert_eq!(
            props["closedate"],
            serde_json::json!("2025-03-01T00:00:00.000Z")
        );
        // No owner: the property is cleared, so the sink ends as the source.
        assert_eq!(props["hubspot_owner_id"], serde_json::json!(""));
        assert!(!props.contains_key("createdate") && !props.contains_key("status"));
        let mut owned = d.clone();
        owned.set(field::OWNER, Value::Text("81234567".into()));
        let props = to_properties(&owned, &map).expect("writes");
        assert_eq!(props["hubspot_owner_id"], serde_json::json!("81234567"));
        // And read back as it was sent.
        let back = object(serde_json::json!({"id": "9", "properties": props}));
        let r = to_record(deals(), &map, &back).expect("maps");
        for f in [field::STAGE, field::CLOSE_DATE, field::OWNER, field::NAME] {
            assert_eq!(r.get(f), owned.get(f), "{f}");
        }

        let stored = stored_fields(deals(), &map);
        for f in [
            field::NAME,
            field::AMOUNT,
            field::CURRENCY,
            field::CLOSE_DATE,
            field::STAGE,
            field::OWNER,
            field::COMPANY,
            field::CONTACTS,
        ] {
            assert!(stored.iter().any(|s| s == f), "{f} stored");
        }
        assert!(
            !stored
                .iter()
                .any(|s| s == field::STATUS || s == field::CREATED_AT)
        );
    }

    #[test]
    fn a_note_keeps_its_body_timestamp_and_owner_and_lists_parents_once() {
        let raw = object(serde_json::json!({"id": "4000001", "properties": {
            "hs_note_body": "<p>Café &amp; résumé</p>", "hs_timestamp": "2024-05-06T07:08:09.010Z",
            "hubspot_owner_id": "81234567", "hs_createdate": "2024-05-06T07:08:09.010Z"}}));
        let map = standard_map(notes());
        let r = to_record(notes(), &map, &raw).expect("maps");
        assert_eq!(r.text(field::BODY), Some("<p>Café &amp; résumé</p>"));
        assert!(matches!(r.get(field::TIMESTAMP), Some(Value::Timestamp(_))));
        assert_eq!(r.text(field::OWNER), Some("81234567"));
        let props = to_properties(&r, &map).expect("writes");
        assert_eq!(
            props["hs_note_body"],
            serde_json::json!("<p>Café &amp; résumé</p>")
        );
        assert_eq!(
            props["hs_timestamp"],
            serde_json::json!("2024-05-06T07:08:09.010Z")
        );
        assert!(!props.contains_key("hs_createdate"));
        let stored = stored_fields(notes(), &map);
        assert_eq!(stored.iter().filter(|f| *f == field::PARENTS).count(), 1);
        for f in [field::BODY, field::TIMESTAMP, field::OWNER] {
            assert!(stored.iter().any(|s| s == f), "{f} stored");
        }
    }

    #[test]
    fn companies_and_contacts_carry_their_owner() {
        for row in [companies(), contacts()] {
            let map = standard_map(row);
            let raw = object(
                serde_json::json!({"id": "1", "properties": {"hubspot_owner_id": "81234567"}}),
            );
            let r = to_record(row, &map, &raw).expect("maps");
            assert_eq!(r.text(field::OWNER), Some("81234567"), "{}", row.object);
            let props = to_properties(&r, &map).expect("writes");
            assert_eq!(props["hubspot_owner_id"], serde_json::json!("81234567"));
            assert!(stored_fields(row, &map).iter().any(|f| f == field::OWNER));
        }
    }
}
