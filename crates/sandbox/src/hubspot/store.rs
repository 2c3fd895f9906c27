//! The emulator's in-memory records, property definitions and unique-value indexes.
//!
//! Records are kept compact because the emulator backs benchmarks with a million contacts: one
//! record is its id, three timestamps, its primary company, and all its property values packed
//! into one string with an index of (property, end offset) pairs. Records of a type sit in a
//! vector sorted by id (new ids are always the largest), so listing from a cursor is a binary
//! search and a slice walk.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_json::{Value, json};

use serde::Serialize;

use crate::timestamp::{Iso8601, serialize_display};

/// A CRM object type held in an [`ObjectStore`] (deals and notes are on the shared table
/// engine: `records.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Contacts,
    Companies,
}

impl Kind {
    /// Parses a path segment: plural name, singular name or object type id (`0-1`).
    pub(crate) fn parse(segment: &str) -> Option<Kind> {
        match segment.to_ascii_lowercase().as_str() {
            "contacts" | "contact" | "0-1" => Some(Kind::Contacts),
            "companies" | "company" | "0-2" => Some(Kind::Companies),
            _ => None,
        }
    }

    /// The plural name used in paths and association keys.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Contacts => "contacts",
            Kind::Companies => "companies",
        }
    }

    /// The upper-case singular name HubSpot uses in error messages (`CONTACT`).
    pub(crate) fn upper(self) -> &'static str {
        match self {
            Kind::Contacts => "CONTACT",
            Kind::Companies => "COMPANY",
        }
    }

    /// The first id handed out for this type. Ids are unique per type, as in HubSpot.
    pub(crate) fn first_id(self) -> u64 {
        match self {
            Kind::Companies => 1_000_001,
            Kind::Contacts => 2_000_001,
        }
    }

    /// The properties returned when a request names none.
    pub(crate) fn default_properties(self) -> &'static [&'static str] {
        match self {
            Kind::Contacts => &["firstname", "lastname", "email"],
            Kind::Companies => &["name", "domain"],
        }
    }

    /// The last-modified property's name (`lastmodifieddate` on contacts only).
    pub(crate) fn modified_property(self) -> &'static str {
        match self {
            Kind::Contacts => "lastmodifieddate",
            Kind::Companies => "hs_lastmodifieddate",
        }
    }
}

/// A property whose value the emulator derives from the record rather than stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Computed {
    ObjectId,
    CreatedAt,
    UpdatedAt,
}

/// A property definition, as the properties API describes it.
#[derive(Clone, Debug)]
pub(crate) struct PropDef {
    pub name: String,
    pub label: String,
    /// `string`, `number`, `date`, `datetime`, `enumeration` or `bool`.
    pub ty: String,
    pub field_type: String,
    pub group: String,
    pub description: String,
    pub options: Vec<Value>,
    pub unique: bool,
    pub read_only: bool,
    pub hubspot_defined: bool,
    pub computed: Option<Computed>,
    pub created_ms: i64,
}

impl PropDef {
    pub(crate) fn standard(
        name: &str,
        label: &str,
        ty: &str,
        field_type: &str,
        group: &str,
    ) -> PropDef {
        PropDef {
            name: name.to_owned(),
            label: label.to_owned(),
            ty: ty.to_owned(),
            field_type: field_type.to_owned(),
            group: group.to_owned(),
            description: String::new(),
            options: Vec::new(),
            unique: false,
            read_only: false,
            hubspot_defined: true,
            computed: None,
            created_ms: 0,
        }
    }

    /// The property as the properties API returns it.
    pub(crate) fn to_json(&self, display_order: usize) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "type": self.ty,
            "fieldType": self.field_type,
            "groupName": self.group,
            "description": self.description,
            "options": self.options,
            "displayOrder": display_order,
            "calculated": false,
            "externalOptions": false,
            "hasUniqueValue": self.unique,
            "hidden": false,
            "hubspotDefined": self.hubspot_defined,
            "formField": !self.read_only,
            "archived": false,
            "createdAt": format_timestamp(self.created_ms),
            "updatedAt": format_timestamp(self.created_ms),
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only,
            },
        })
    }

    /// Checks a value written to this property; `Err` holds HubSpot's error code.
    pub(crate) fn check_value(&self, raw: &str) -> Result<(), &'static str> {
        if raw.is_empty() {
            return Ok(());
        }
        match self.ty.as_str() {
            "number" => raw
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .map(|_| ())
                .ok_or("INVALID_INTEGER"),
            "bool" => match raw {
                "true" | "false" => Ok(()),
                _ => Err("INVALID_OPTION"),
            },
            "date" | "datetime" => parse_timestamp(raw).map(|_| ()).ok_or("INVALID_DATE"),
            // A written value must be one of the options' internal values (a label is refused).
            "enumeration" if !self.options.is_empty() => {
                let known = |v: &str| {
                    self.options
                        .iter()
                        .any(|o| o.get("value").and_then(Value::as_str) == Some(v))
                };
                if raw.split(';').all(known) {
                    Ok(())
                } else {
                    Err("INVALID_OPTION")
                }
            }
            _ => Ok(()),
        }
    }
}

fn bool_options() -> Vec<Value> {
    vec![
        json!({"label": "True", "value": "true", "displayOrder": 0, "hidden": false}),
        json!({"label": "False", "value": "false", "displayOrder": 1, "hidden": false}),
    ]
}

/// The options of the contact property `hs_legal_basis`, whose internal values are their
/// labels [secondary: as integrations write them; HubSpot's reference does not list them],
/// each with the seed's name for it ([`crate::seed::SeedContact::legal_basis`]).
pub(crate) const LEGAL_BASES: [(&str, &str); 5] = [
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

fn legal_basis_options() -> Vec<Value> {
    LEGAL_BASES
        .iter()
        .enumerate()
        .map(|(i, (_, l))| json!({"label": l, "value": l, "displayOrder": i, "hidden": false}))
        .collect()
}

/// The `hs_legal_basis` value of a seeded contact's legal bases (those HubSpot has options
/// for), in the options' order; `None` for none.
pub(crate) fn legal_basis_value(names: &[&str]) -> Option<String> {
    let values: Vec<&str> = LEGAL_BASES
        .iter()
        .filter(|(name, _)| names.contains(name))
        .map(|(_, value)| *value)
        .collect();
    (!values.is_empty()).then(|| values.join(";"))
}

fn standard_properties(kind: Kind) -> Vec<PropDef> {
    let s = PropDef::standard;
    let mut props = match kind {
        Kind::Contacts => vec![
            s("email", "Email", "string", "text", "contactinformation"),
            s(
                "firstname",
                "First Name",
                "string",
                "text",
                "contactinformation",
            ),
            s(
                "lastname",
                "Last Name",
                "string",
                "text",
                "contactinformation",
            ),
            s(
                "phone",
                "Phone Number",
                "string",
                "phonenumber",
                "contactinformation",
            ),
            s(
                "mobilephone",
                "Mobile Phone Number",
                "string",
                "phonenumber",
                "contactinformation",
            ),
            s(
                "jobtitle",
                "Job Title",
                "string",
                "text",
                "contactinformation",
            ),
            s(
                "company",
                "Company Name",
                "string",
                "text",
                "contactinformation",
            ),
            s(
                "address",
                "Street Address",
                "string",
                "text",
                "contactinformation",
            ),
            s("city", "City", "string", "text", "contactinformation"),
            s(
                "state",
                "State/Region",
                "string",
                "text",
                "contactinformation",
            ),
            s("zip", "Postal Code", "string", "text", "contactinformation"),
            s(
                "country",
                "Country/Region",
                "string",
                "text",
                "contactinformation",
            ),
            // Read-only through the CRM API ("hs_email_optout_… is a read only property; its
            // value cannot be set", as HubSpot answers on its developer forum): the opt-out is
            // set through the communication-preferences API (`preferences.rs`).
            PropDef {
                options: bool_options(),
                read_only: true,
                ..s(
                    "hs_email_optout",
                    "Unsubscribed from all email",
                    "enumeration",
                    "booleancheckbox",
                    "emailinformation",
                )
            },
            // A multiple checkbox: a value is its options' internal values joined by `;`.
            PropDef {
                options: legal_basis_options(),
                ..s(
                    "hs_legal_basis",
                    "Legal basis for processing contact's data",
                    "enumeration",
                    "checkbox",
                    "contactinformation",
                )
            },
        ],
        Kind::Companies => vec![
            s(
                "name",
                "Company name",
                "string",
                "text",
                "companyinformation",
            ),
            s(
                "domain",
                "Company Domain Name",
                "string",
                "text",
                "companyinformation",
            ),
            s(
                "phone",
                "Phone Number",
                "string",
                "phonenumber",
                "companyinformation",
            ),
            PropDef {
                options: super::fields::industry_options(),
                ..s(
                    "industry",
                    "Industry",
                    "enumeration",
                    "select",
                    "companyinformation",
                )
            },
            s(
                "numberofemployees",
                "Number of Employees",
                "number",
                "number",
                "companyinformation",
            ),
            s(
                "annualrevenue",
                "Annual Revenue",
                "number",
                "number",
                "companyinformation",
            ),
            s(
                "address",
                "Street Address",
                "string",
                "text",
                "companyinformation",
            ),
            s("city", "City", "string", "text", "companyinformation"),
            s(
                "state",
                "State/Region",
                "string",
                "text",
                "companyinformation",
            ),
            s("zip", "Postal Code", "string", "text", "companyinformation"),
            s(
                "country",
                "Country/Region",
                "string",
                "text",
                "companyinformation",
            ),
        ],
    };
    if kind == Kind::Contacts {
        // A contact's email is unique in HubSpot and usable as an `idProperty`.
        props[0].unique = true;
        // One read-only flag per email subscription type, `hs_email_optout_<type id>`,
        // labelled "Opted out of email: <type name>": `true` while the contact's address is
        // `NOT_SUBSCRIBED` to the type [secondary: integrations' property lists and search
        // filters; HubSpot's reference does not list them].
        props.extend(
            super::preferences::type_opt_out_properties().map(|(name, label)| PropDef {
                options: bool_options(),
                read_only: true,
                ..s(
                    &name,
                    &label,
                    "enumeration",
                    "booleancheckbox",
                    "emailinformation",
                )
            }),
        );
    }
    let group = match kind {
        Kind::Contacts => "contactinformation",
        Kind::Companies => "companyinformation",
    };
    let computed = |name: &str, label: &str, ty: &str, field_type: &str, c: Computed| PropDef {
        read_only: true,
        computed: Some(c),
        unique: c == Computed::ObjectId,
        ..s(name, label, ty, field_type, group)
    };
    props.push(computed(
        "hs_object_id",
        "Record ID",
        "number",
        "number",
        Computed::ObjectId,
    ));
    props.push(computed(
        "createdate",
        "Create Date",
        "datetime",
        "date",
        Computed::CreatedAt,
    ));
    props.push(computed(
        kind.modified_property(),
        "Last Modified Date",
        "datetime",
        "date",
        Computed::UpdatedAt,
    ));
    props.extend(super::fields::custom_properties(kind));
    props
}

/// One stored record.
#[derive(Clone, Debug)]
pub(crate) struct Rec {
    pub id: u64,
    pub created: i64,
    pub updated: i64,
    pub archived_at: Option<i64>,
    /// The contact's primary company id.
    pub company: Option<u64>,
    values: Box<str>,
    /// (property id, end offset of its value in `values`), in insertion order.
    index: Box<[(u16, u32)]>,
}

impl Rec {
    fn new(
        id: u64,
        created: i64,
        updated: i64,
        company: Option<u64>,
        pairs: &[(u16, &str)],
    ) -> Rec {
        let mut rec = Rec {
            id,
            created,
            updated,
            archived_at: None,
            company,
            values: "".into(),
            index: Box::new([]),
        };
        rec.pack(pairs.iter().copied());
        rec
    }

    fn pack<'a>(&mut self, pairs: impl Iterator<Item = (u16, &'a str)>) {
        let mut values = String::new();
        let mut index = Vec::new();
        for (prop, value) in pairs {
            if value.is_empty() {
                continue;
            }
            values.push_str(value);
            index.push((prop, values.len() as u32));
        }
        self.values = values.into_boxed_str();
        self.index = index.into_boxed_slice();
    }

    /// The stored value of `prop`.
    pub(crate) fn get(&self, prop: u16) -> Option<&str> {
        let mut start = 0usize;
        for &(p, end) in self.index.iter() {
            if p == prop {
                return self.values.get(start..end as usize);
            }
            start = end as usize;
        }
        None
    }

    /// Every stored (property, value) pair.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (u16, &str)> {
        let mut start = 0usize;
        self.index.iter().map(move |&(p, end)| {
            let value = self.values.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            (p, value)
        })
    }

    /// Sets (or, with an empty value, clears) the given properties.
    fn set(&mut self, changes: &[(u16, &str)]) {
        let kept: Vec<(u16, String)> = self
            .pairs()
            .filter(|(p, _)| !changes.iter().any(|(c, _)| c == p))
            .map(|(p, v)| (p, v.to_owned()))
            .collect();
        let merged = kept
            .iter()
            .map(|(p, v)| (*p, v.as_str()))
            .chain(changes.iter().copied());
        let merged: Vec<(u16, &str)> = merged.collect();
        self.pack(merged.into_iter());
    }

    pub(crate) fn is_archived(&self) -> bool {
        self.archived_at.is_some()
    }
}

/// A property value as stored, or the record field a computed property shows; serialised as
/// the JSON string HubSpot sends.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PropValue<'r> {
    Text(&'r str),
    Id(u64),
    Time(i64),
}

impl Serialize for PropValue<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            PropValue::Text(text) => s.serialize_str(text),
            PropValue::Id(id) => serialize_display(s, &id),
            PropValue::Time(ms) => timestamp(ms).serialize(s),
        }
    }
}

/// All records and property definitions of one object type.
pub(crate) struct ObjectStore {
    pub kind: Kind,
    pub props: Vec<PropDef>,
    by_name: HashMap<String, u16>,
    records: Vec<Rec>,
    next_id: u64,
    /// Unique-value indexes (property → value → id), built on first use and kept up to date.
    unique: HashMap<u16, HashMap<Box<str>, u64>>,
}

impl ObjectStore {
    pub(crate) fn new(kind: Kind) -> ObjectStore {
        let props = standard_properties(kind);
        let by_name = props
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.clone(), i as u16))
            .collect();
        ObjectStore {
            kind,
            props,
            by_name,
            records: Vec::new(),
            next_id: kind.first_id(),
            unique: HashMap::new(),
        }
    }

    /// The id of the property called `name`.
    pub(crate) fn prop_id(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    /// The definition of property `id`.
    pub(crate) fn prop(&self, id: u16) -> &PropDef {
        &self.props[usize::from(id)]
    }

    /// Adds a custom property; returns its id.
    pub(crate) fn add_property(&mut self, def: PropDef) -> u16 {
        let id = self.props.len() as u16;
        self.by_name.insert(def.name.clone(), id);
        self.props.push(def);
        id
    }

    /// The ids of the properties named, unknown names ignored, plus the computed properties
    /// HubSpot always returns.
    pub(crate) fn selection<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Vec<u16> {
        let mut ids: Vec<u16> = Vec::new();
        let computed = self
            .props
            .iter()
            .enumerate()
            .filter(|(_, p)| p.computed.is_some())
            .map(|(i, _)| i as u16);
        for id in names
            .into_iter()
            .filter_map(|n| self.prop_id(n.trim()))
            .chain(computed)
        {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The default selection, for requests that name no properties.
    pub(crate) fn default_selection(&self) -> Vec<u16> {
        self.selection(self.kind.default_properties().iter().copied())
    }

    /// Every property with a value on `rec`, plus the computed ones.
    pub(crate) fn full_selection(&self, rec: &Rec) -> Vec<u16> {
        let mut ids: Vec<u16> = rec.pairs().map(|(p, _)| p).collect();
        for (i, p) in self.props.iter().enumerate() {
            if p.computed.is_some() && !ids.contains(&(i as u16)) {
                ids.push(i as u16);
            }
        }
        ids
    }

    /// The value of `prop` on `rec`, computed properties included.
    pub(crate) fn value<'r>(&self, rec: &'r Rec, prop: u16) -> Option<Cow<'r, str>> {
        self.value_ref(rec, prop).map(|v| match v {
            PropValue::Text(s) => Cow::Borrowed(s),
            PropValue::Id(id) => Cow::Owned(id.to_string()),
            PropValue::Time(ms) => Cow::Owned(format_timestamp(ms)),
        })
    }

    /// The value of `prop` on `rec` without formatting computed ones, for responses that
    /// write it straight into their body.
    pub(crate) fn value_ref<'r>(&self, rec: &'r Rec, prop: u16) -> Option<PropValue<'r>> {
        match self.props.get(usize::from(prop)).and_then(|p| p.computed) {
            Some(Computed::ObjectId) => Some(PropValue::Id(rec.id)),
            Some(Computed::CreatedAt) => Some(PropValue::Time(rec.created)),
            Some(Computed::UpdatedAt) => Some(PropValue::Time(rec.updated)),
            None => rec.get(prop).map(PropValue::Text),
        }
    }

    /// How many records are stored, archived ones included.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The records from the first with an id at or after `id`.
    pub(crate) fn starting_at(&self, id: u64) -> &[Rec] {
        let start = self.records.partition_point(|r| r.id < id);
        &self.records[start..]
    }

    /// The record with `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&Rec> {
        self.position(id).map(|i| &self.records[i])
    }

    fn position(&self, id: u64) -> Option<usize> {
        // Ids are handed out one after another and records are only ever appended, so a record
        // sits at its id's distance from the first one. Looking there first spares a binary
        // search that misses the cache at every step (a tenth of the emulator's time when it
        // serves a page of contacts with their companies); the search stays as the fallback.
        let first = self.records.first()?.id;
        let guess = id
            .checked_sub(first)
            .and_then(|d| usize::try_from(d).ok())
            .filter(|&i| self.records.get(i).is_some_and(|r| r.id == id));
        guess.or_else(|| self.records.binary_search_by_key(&id, |r| r.id).ok())
    }

    /// Finds the live record whose unique property `prop` equals `value`.
    pub(crate) fn find_unique(&mut self, prop: u16, value: &str) -> Option<u64> {
        match self.props.get(usize::from(prop)).and_then(|p| p.computed) {
            Some(Computed::ObjectId) => {
                let id = value.parse().ok()?;
                return self.get(id).filter(|r| !r.is_archived()).map(|r| r.id);
            }
            Some(_) => return None,
            None => {}
        }
        if !self.unique.contains_key(&prop) {
            let mut index: HashMap<Box<str>, u64> = HashMap::new();
            for rec in self.records.iter().filter(|r| !r.is_archived()) {
                if let Some(v) = rec.get(prop) {
                    // Seeded data may hold duplicates HubSpot would have refused: first one wins.
                    index.entry(v.into()).or_insert(rec.id);
                }
            }
            self.unique.insert(prop, index);
        }
        self.unique
            .get(&prop)
            .and_then(|index| index.get(value))
            .copied()
    }

    /// Resolves an input id: a record id, or a unique value of `id_property`.
    pub(crate) fn resolve(&mut self, id_property: Option<u16>, raw: &str) -> Option<u64> {
        match id_property {
            Some(prop) => self.find_unique(prop, raw),
            None => raw
                .parse()
                .ok()
                .and_then(|id| self.get(id))
                .filter(|r| !r.is_archived())
                .map(|r| r.id),
        }
    }

    /// Stores a new record; returns its id.
    pub(crate) fn create(
        &mut self,
        created: i64,
        updated: i64,
        company: Option<u64>,
        pairs: &[(u16, &str)],
    ) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let rec = Rec::new(id, created, updated, company, pairs);
        for (&prop, index) in self.unique.iter_mut() {
            if let Some(v) = rec.get(prop) {
                index.entry(v.into()).or_insert(id);
            }
        }
        self.records.push(rec);
        id
    }

    /// Reserves `n` ids and returns the first (for seeding, which builds records itself).
    fn reserve(&mut self, n: usize) -> u64 {
        let first = self.next_id;
        self.next_id += n as u64;
        self.records.reserve(n);
        first
    }

    /// Sets properties of record `id`, keeping unique indexes current.
    pub(crate) fn update(
        &mut self,
        id: u64,
        now: i64,
        changes: &[(u16, &str)],
        company: Option<Option<u64>>,
    ) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        let rec = &mut self.records[pos];
        for (&prop, index) in self.unique.iter_mut() {
            if changes.iter().any(|(p, _)| *p == prop)
                && let Some(old) = rec.get(prop)
                && index.get(old) == Some(&id)
            {
                index.remove(old);
            }
        }
        rec.set(changes);
        rec.updated = now;
        if let Some(company) = company {
            rec.company = company;
        }
        for (&prop, index) in self.unique.iter_mut() {
            if let Some(v) = rec.get(prop) {
                index.entry(v.into()).or_insert(id);
            }
        }
        true
    }

    /// Sets properties of seeded record `id` that no unique index covers, leaving its
    /// last-modified time as seeded.
    pub(crate) fn set_seeded(&mut self, id: u64, changes: &[(u16, &str)]) {
        if let Some(pos) = self.position(id) {
            self.records[pos].set(changes);
        }
    }

    /// Sets the primary company of contact `id` (association changes leave the record's
    /// last-modified time alone). Returns whether the record exists.
    pub(crate) fn set_company(&mut self, id: u64, company: Option<u64>) -> bool {
        match self.position(id) {
            Some(pos) => {
                self.records[pos].company = company;
                true
            }
            None => false,
        }
    }

    /// Archives record `id` (soft delete).
    pub(crate) fn archive(&mut self, id: u64, now: i64) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        let rec = &mut self.records[pos];
        if rec.is_archived() {
            return false;
        }
        rec.archived_at = Some(now);
        rec.updated = now;
        for (&prop, index) in self.unique.iter_mut() {
            if let Some(old) = rec.get(prop)
                && index.get(old) == Some(&id)
            {
                index.remove(old);
            }
        }
        true
    }

    /// Overwrites one stored value without validation (to plant bad data in tests).
    pub(crate) fn put_raw(&mut self, id: u64, prop: u16, value: &str) -> bool {
        let Some(pos) = self.position(id) else {
            return false;
        };
        self.records[pos].set(&[(prop, value)]);
        self.unique.remove(&prop);
        true
    }

    /// Appends seeded records built by `build(id, i)`, ids ascending from the next free one.
    pub(crate) fn seed_with(&mut self, n: usize, mut build: impl FnMut(u64, usize) -> Rec) -> u64 {
        let first = self.reserve(n);
        for i in 0..n {
            self.records.push(build(first + i as u64, i));
        }
        self.unique.clear();
        first
    }
}

/// Builds a seeded record from (property id, value) pairs; `None`s are skipped.
pub(crate) fn seeded_record(
    id: u64,
    created: i64,
    updated: i64,
    company: Option<u64>,
    pairs: &[(Option<u16>, Option<&str>)],
) -> Rec {
    let resolved: Vec<(u16, &str)> = pairs
        .iter()
        .filter_map(|(p, v)| Some(((*p)?, (*v)?)))
        .collect();
    Rec::new(id, created, updated, company, &resolved)
}

/// Formats epoch milliseconds as ISO-8601 UTC with milliseconds, as HubSpot does.
pub(crate) fn format_timestamp(ms: i64) -> String {
    timestamp(ms).to_string()
}

/// Epoch milliseconds as HubSpot shows them, for writing straight into a response.
pub(crate) fn timestamp(ms: i64) -> Iso8601 {
    Iso8601 { ms, zone: "Z" }
}

/// Parses the timestamps HubSpot accepts on write: epoch milliseconds, or ISO-8601 in UTC
/// (`2024-01-02`, `2024-01-02T03:04:05Z`, `2024-01-02T03:04:05.678Z`).
pub(crate) fn parse_timestamp(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().ok();
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if s.get(4..5) != Some("-")
        || s.get(7..8) != Some("-")
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let (mut hh, mut mm, mut ss, mut millis) = (0, 0, 0, 0);
    if s.len() > 10 {
        if s.get(10..11) != Some("T") {
            return None;
        }
        (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let rest = s.get(19..)?;
        let rest = match rest.strip_prefix('.') {
            Some(frac) => {
                let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
                let padded: String = frac[..digits]
                    .chars()
                    .chain("000".chars())
                    .take(3)
                    .collect();
                millis = padded.parse().ok()?;
                &frac[digits..]
            }
            None => rest,
        };
        if !matches!(rest, "" | "Z" | "+00:00" | "+0000") || hh > 23 || mm > 59 || ss > 60 {
            return None;
        }
    }
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(
            format_timestamp(1_654_093_908_469),
            "2022-06-01T14:31:48.469Z"
        );
        assert_eq!(
            parse_timestamp("2022-06-01T14:31:48.469Z"),
            Some(1_654_093_908_469)
        );
        assert_eq!(parse_timestamp("1654093908469"), Some(1_654_093_908_469));
        assert_eq!(parse_timestamp("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_timestamp("soon"), None);
    }

    #[test]
    fn packed_values_set_and_clear() {
        let mut store = ObjectStore::new(Kind::Contacts);
        let email = store.prop_id("email").unwrap();
        let city = store.prop_id("city").unwrap();
        let id = store.create(0, 0, None, &[(email, "a@example.com"), (city, "Malmö")]);
        assert_eq!(store.find_unique(email, "a@example.com"), Some(id));
        store.update(id, 5, &[(email, "b@example.com"), (city, "")], None);
        let rec = store.get(id).unwrap();
        assert_eq!(rec.get(email), Some("b@example.com"));
        assert_eq!(rec.get(city), None);
        assert_eq!(store.find_unique(email, "a@example.com"), None);
        assert_eq!(store.find_unique(email, "b@example.com"), Some(id));
    }
}
