//! The emulator's records: persons and organizations, their fields (standard and custom, the
//! custom ones keyed by 40-character hashes), and the exact-match search indexes.
//!
//! Records sit in a vector indexed by id (ids start at 1 per entity type, as Pipedrive's do),
//! and every searchable value (name, email, phone, custom field) is indexed lower-cased, so a
//! lookup or a write costs the same with a million records as with ten.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value as Json, json};

/// The entity types the emulator holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Persons,
    Organizations,
}

impl Kind {
    /// The kind of a URL segment (`persons`, `organizations`).
    pub(crate) fn parse(segment: &str) -> Option<Kind> {
        match segment {
            "persons" => Some(Kind::Persons),
            "organizations" => Some(Kind::Organizations),
            _ => None,
        }
    }

    /// The kind of a fields URL segment (`personFields`, `organizationFields`).
    pub(crate) fn parse_fields(segment: &str) -> Option<Kind> {
        match segment {
            "personFields" => Some(Kind::Persons),
            "organizationFields" => Some(Kind::Organizations),
            _ => None,
        }
    }

    /// The singular noun in messages ("Person not found").
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Persons => "Person",
            Kind::Organizations => "Organization",
        }
    }

    /// The `type` of a search result item.
    fn item_type(self) -> &'static str {
        match self {
            Kind::Persons => "person",
            Kind::Organizations => "organization",
        }
    }
}

/// `marketing_status` values, as Pipedrive documents them.
pub(crate) const MARKETING_STATUSES: &[&str] =
    &["no_consent", "unsubscribed", "subscribed", "archived"];

/// The subfields of an organization's `address`.
pub(crate) const ADDRESS_PARTS: &[&str] = &[
    "value",
    "country",
    "admin_area_level_1",
    "admin_area_level_2",
    "locality",
    "sublocality",
    "route",
    "street_number",
    "postal_code",
];

/// Field types `POST …Fields` accepts.
pub(crate) const CREATABLE_FIELD_TYPES: &[&str] = &[
    "varchar",
    "text",
    "double",
    "phone",
    "date",
    "daterange",
    "time",
    "timerange",
    "set",
    "enum",
    "varchar_auto",
    "address",
    "monetary",
    "org",
    "people",
    "user",
];

/// One field of an entity type.
#[derive(Clone, Debug)]
pub(crate) struct Field {
    /// The v1 numeric id.
    pub id: u64,
    /// `field_code` (v2) / `key` (v1): a name for standard fields, a 40-character hash for
    /// custom ones.
    pub code: String,
    /// The display name.
    pub name: String,
    /// The field type (`varchar`, `phone`, …).
    pub field_type: String,
    /// Whether a user created it.
    pub custom: bool,
    /// Whether entity responses leave it out unless asked for (`marketing_status`).
    pub optional_response: bool,
    /// The options of an `enum` or `set` field (ids are numbers for custom fields, names for
    /// built-in ones, as the v2 fields API documents); empty for other types.
    pub options: Vec<FieldOption>,
}

/// One option of an `enum` or `set` field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct FieldOption {
    /// The option id: a number for custom fields, a name (`"subscribed"`) for built-in ones.
    pub id: Json,
    /// The label people see.
    pub label: String,
}

/// An email or phone entry of a person.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Channel {
    pub value: String,
    pub primary: bool,
    pub label: String,
}

/// One person or organization.
#[derive(Clone, Debug, Default)]
pub(crate) struct Record {
    pub id: u64,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub emails: Vec<Channel>,
    pub phones: Vec<Channel>,
    pub org_id: Option<u64>,
    /// The owning user; `None`: the account's default owner (the token's user).
    pub owner_id: Option<u64>,
    /// `None`: not set (read as `no_consent`).
    pub marketing_status: Option<&'static str>,
    /// Whether the one allowed change of marketing status has been used.
    pub marketing_changed: bool,
    /// Organization address subfields; `None` when the organization has no address.
    pub address: Option<BTreeMap<&'static str, String>>,
    /// Custom field values by field index (into the store's field list).
    pub custom: Vec<(usize, Json)>,
    pub add_time_ms: i64,
    pub update_time_ms: i64,
    pub deleted: bool,
}

/// Which searchable value an index entry came from (the `fields` of a search request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SearchField {
    Name,
    Email,
    Phone,
    Address,
    Custom,
}

impl SearchField {
    /// The name a search request's `fields` uses.
    pub(crate) fn parse(kind: Kind, name: &str) -> Option<SearchField> {
        match (kind, name) {
            (_, "name") => Some(SearchField::Name),
            (_, "custom_fields") => Some(SearchField::Custom),
            (Kind::Persons, "email") => Some(SearchField::Email),
            (Kind::Persons, "phone") => Some(SearchField::Phone),
            (Kind::Organizations, "address") => Some(SearchField::Address),
            // Notes are searchable in Pipedrive; the emulator stores none, so nothing matches.
            (_, "notes") => None,
            _ => None,
        }
    }

    /// Whether `name` is a field this kind's search accepts (including `notes`).
    pub(crate) fn known(kind: Kind, name: &str) -> bool {
        name == "notes" || SearchField::parse(kind, name).is_some()
    }
}

/// A request the API refuses: the 400 message, naming fields (as Pipedrive's do).
#[derive(Debug, PartialEq)]
pub(crate) struct Invalid(pub String);

/// One entity type's records, fields and indexes.
pub(crate) struct Store {
    kind: Kind,
    records: Vec<Record>,
    live: usize,
    pub fields: Vec<Field>,
    next_field_id: u64,
    /// The id the next custom option gets (Pipedrive numbers options across the account).
    next_option_id: u64,
    index: HashMap<(SearchField, String), Vec<u64>>,
    /// The owner of records that name none: the token's user.
    default_owner: u64,
}

fn standard_fields(kind: Kind) -> Vec<Field> {
    let f = |id: u64, code: &str, name: &str, ty: &str, optional: bool| Field {
        id,
        code: code.to_owned(),
        name: name.to_owned(),
        field_type: ty.to_owned(),
        custom: false,
        optional_response: optional,
        options: Vec::new(),
    };
    let mut fields = match kind {
        Kind::Persons => vec![
            f(9001, "name", "Name", "varchar", false),
            f(9002, "first_name", "First name", "varchar", false),
            f(9003, "last_name", "Last name", "varchar", false),
            f(9004, "emails", "Email", "varchar", false),
            f(9005, "phones", "Phone", "phone", false),
            f(9006, "org_id", "Organization", "org", false),
            f(9007, "owner_id", "Owner", "user", false),
            f(9008, "add_time", "Person created", "date", false),
            f(9009, "update_time", "Update time", "date", false),
            f(9010, "marketing_status", "Marketing status", "enum", true),
            f(9011, "visible_to", "Visible to", "visible_to", false),
            f(9012, "label_ids", "Labels", "set", false),
            f(9013, "id", "ID", "int", false),
        ],
        Kind::Organizations => vec![
            f(4001, "name", "Name", "varchar", false),
            f(4002, "owner_id", "Owner", "user", false),
            f(4003, "address", "Address", "address", false),
            f(4004, "add_time", "Organization created", "date", false),
            f(4005, "update_time", "Update time", "date", false),
            f(4006, "visible_to", "Visible to", "visible_to", false),
            f(4007, "label_ids", "Labels", "set", false),
            f(4008, "id", "ID", "int", false),
        ],
    };
    for field in &mut fields {
        if field.code == "marketing_status" {
            // Built-in options carry names as ids.
            field.options = MARKETING_STATUSES
                .iter()
                .map(|s| FieldOption {
                    id: json!(s),
                    label: marketing_label(s).to_owned(),
                })
                .collect();
        }
    }
    fields
}

/// The label Pipedrive shows for a marketing status.
fn marketing_label(status: &str) -> &'static str {
    match status {
        "subscribed" => "Subscribed",
        "unsubscribed" => "Unsubscribed",
        "archived" => "Archived",
        _ => "No consent",
    }
}

/// The `object` of [`crate::seed::CUSTOM_FIELDS`] a kind holds.
fn seed_object(kind: Kind) -> &'static str {
    match kind {
        Kind::Persons => "contacts",
        Kind::Organizations => "companies",
    }
}

/// A 40-character hex key derived from the account (`salt`), the entity type and the label:
/// the seeded custom fields have the same key in one account and different keys in two, as
/// Pipedrive's hashes do.
fn derived_hash(salt: u64, kind: Kind, label: &str) -> String {
    use std::hash::{Hash, Hasher};
    let part = |round: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (salt, round, kind.noun(), label).hash(&mut h);
        h.finish()
    };
    let hex = format!("{:016x}{:016x}{:016x}", part(1), part(2), part(3));
    hex[..40].to_owned()
}

/// A fresh 40-character lower-case hex key, as Pipedrive gives custom fields.
fn field_hash() -> String {
    let a: u128 = rand::random();
    let b: u32 = rand::random();
    format!("{a:032x}{b:08x}")
}

fn key(value: &str) -> String {
    value.trim().to_lowercase()
}

/// Whether `email` looks like a valid address: Pipedrive keeps a marketing status only then.
pub(crate) fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !email.chars().any(char::is_whitespace)
}

/// Splits a full name the way the emulator derives `first_name`/`last_name` from `name`: the
/// first word, and the rest.
pub(crate) fn split_name(name: &str) -> (Option<String>, Option<String>) {
    let name = name.trim();
    match name.split_once(char::is_whitespace) {
        Some((first, rest)) => (
            Some(first.to_owned()),
            Some(rest.trim().to_owned()).filter(|s| !s.is_empty()),
        ),
        None if name.is_empty() => (None, None),
        None => (Some(name.to_owned()), None),
    }
}

/// Joins first and last name into `name`.
pub(crate) fn join_name(first: Option<&str>, last: Option<&str>) -> String {
    [first, last]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// An empty store with the standard fields of `kind` and the account's seeded custom
    /// fields ([`crate::seed::CUSTOM_FIELDS`]), keyed by hashes derived from `account`.
    pub(crate) fn new(kind: Kind, account: u64) -> Store {
        let mut store = Store {
            kind,
            records: Vec::new(),
            live: 0,
            fields: standard_fields(kind),
            next_field_id: 1,
            next_option_id: 1,
            index: HashMap::new(),
            default_owner: super::crm::user_id(account, 0),
        };
        for custom in crate::seed::CUSTOM_FIELDS
            .iter()
            .filter(|c| c.object == seed_object(kind))
        {
            let (field_type, options): (&str, &[&str]) = match custom.kind {
                crate::seed::CustomKind::Text => ("varchar", &[]),
                crate::seed::CustomKind::Number => ("double", &[]),
                crate::seed::CustomKind::Picklist => ("enum", crate::seed::TIERS),
            };
            let code = derived_hash(account, kind, custom.label);
            store.push_field(code, custom.label, field_type, options);
        }
        if kind == Kind::Organizations {
            let industry = super::INDUSTRY;
            let options: Vec<&str> = industry.labels.iter().map(|(_, label)| *label).collect();
            let code = derived_hash(account, kind, industry.field);
            store.push_field(code, industry.field, "enum", &options);
        }
        store
    }

    /// Live records.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// The live record with `id`.
    pub(crate) fn get(&self, id: u64) -> Option<&Record> {
        let i = usize::try_from(id.checked_sub(1)?).ok()?;
        self.records.get(i).filter(|r| !r.deleted)
    }

    /// The id the next new record gets.
    pub(crate) fn next_id(&self) -> u64 {
        self.records.len() as u64 + 1
    }

    /// Live records with id ≥ `from`, in id order, at most `limit`; and the id to continue at.
    pub(crate) fn page(&self, from: u64, limit: usize) -> (Vec<&Record>, Option<u64>) {
        let start = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for r in self.records.iter().skip(start) {
            if r.deleted {
                continue;
            }
            if out.len() == limit {
                return (out, Some(r.id));
            }
            out.push(r);
        }
        (out, None)
    }

    /// Marks the `n`th live record (in id order) as updated at `now_ms`, as an edit by
    /// another user would; returns its id.
    pub(crate) fn touch_nth(&mut self, n: usize, now_ms: i64) -> Option<u64> {
        let record = self.records.iter_mut().filter(|r| !r.deleted).nth(n)?;
        record.update_time_ms = now_ms;
        Some(record.id)
    }

    /// The custom field index of `code`.
    pub(crate) fn custom_field(&self, code: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.custom && f.code == code)
    }

    /// The index of the custom field called `label` (the oldest one), for seeding.
    pub(crate) fn custom_field_named(&self, label: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.custom && f.name == label)
    }

    /// Adds a custom field with a fresh random key and, for `enum`/`set`, options with the
    /// given labels; returns its index.
    pub(crate) fn add_field(&mut self, name: &str, field_type: &str, options: &[&str]) -> usize {
        self.push_field(field_hash(), name, field_type, options)
    }

    fn push_field(
        &mut self,
        code: String,
        name: &str,
        field_type: &str,
        options: &[&str],
    ) -> usize {
        let options = options
            .iter()
            .map(|label| {
                let id = self.next_option_id;
                self.next_option_id += 1;
                FieldOption {
                    id: json!(id),
                    label: (*label).to_owned(),
                }
            })
            .collect();
        self.fields.push(Field {
            id: self.next_field_id,
            code,
            name: name.to_owned(),
            field_type: field_type.to_owned(),
            custom: true,
            optional_response: false,
            options,
        });
        self.next_field_id += 1;
        self.fields.len() - 1
    }

    /// The ids whose `field` value equals `term` (case-insensitive), in id order.
    pub(crate) fn exact(&self, field: SearchField, term: &str) -> &[u64] {
        self.index
            .get(&(field, key(term)))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    fn index_entries(&self, r: &Record) -> Vec<(SearchField, String)> {
        let mut out = vec![(SearchField::Name, key(&r.name))];
        out.extend(r.emails.iter().map(|c| (SearchField::Email, key(&c.value))));
        out.extend(r.phones.iter().map(|c| (SearchField::Phone, key(&c.value))));
        if let Some(value) = r.address.as_ref().and_then(|a| a.get("value")) {
            out.push((SearchField::Address, key(value)));
        }
        for (f, v) in &r.custom {
            // Pipedrive's search covers text, number, monetary, phone and address custom
            // fields, not option fields.
            let option_field = self
                .fields
                .get(*f)
                .is_some_and(|f| matches!(f.field_type.as_str(), "enum" | "set"));
            if option_field {
                continue;
            }
            if let Some(text) = searchable(v) {
                out.push((SearchField::Custom, key(&text)));
            }
        }
        out.retain(|(_, k)| !k.is_empty());
        out.sort();
        out.dedup();
        out
    }

    fn unindex(&mut self, r: &Record) {
        for entry in self.index_entries(r) {
            if let Some(ids) = self.index.get_mut(&entry) {
                ids.retain(|id| *id != r.id);
                if ids.is_empty() {
                    self.index.remove(&entry);
                }
            }
        }
    }

    fn reindex(&mut self, r: &Record) {
        for entry in self.index_entries(r) {
            let ids = self.index.entry(entry).or_default();
            // Ids only grow, so pushing keeps the list sorted except on updates.
            match ids.binary_search(&r.id) {
                Ok(_) => {}
                Err(at) => ids.insert(at, r.id),
            }
        }
    }

    /// Stores `record` as a new record (its id must be [`Store::next_id`]).
    pub(crate) fn insert(&mut self, record: Record) {
        self.reindex(&record);
        self.records.push(record);
        self.live += 1;
    }

    /// Replaces the live record with the same id.
    pub(crate) fn replace(&mut self, record: Record) {
        let Some(i) = usize::try_from(record.id.saturating_sub(1)).ok() else {
            return;
        };
        if let Some(old) = self.records.get(i).cloned() {
            self.unindex(&old);
            self.reindex(&record);
            self.records[i] = record;
        }
    }

    /// Marks the record deleted; returns whether it was live.
    pub(crate) fn delete(&mut self, id: u64) -> bool {
        let Some(r) = self.get(id).cloned() else {
            return false;
        };
        self.unindex(&r);
        if let Some(slot) = self.records.get_mut((id - 1) as usize) {
            slot.deleted = true;
        }
        self.live -= 1;
        true
    }

    /// Builds the record a POST (`existing` None) or PATCH body makes, validating it as the
    /// v2 API does. `org_exists` answers whether an organization id is live, `owner_ok` whether
    /// a user may own records (its error is the 400 message).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn apply(
        &self,
        body: &Json,
        existing: Option<&Record>,
        id: u64,
        now_ms: i64,
        campaigns: bool,
        org_exists: &dyn Fn(u64) -> bool,
        owner_ok: &dyn Fn(u64) -> Result<(), String>,
    ) -> Result<Record, Invalid> {
        let Some(body) = body.as_object() else {
            return Err(Invalid("Validation failed: body: Expected object".into()));
        };
        let allowed: &[&str] = match self.kind {
            Kind::Persons => &[
                "name",
                "first_name",
                "last_name",
                "owner_id",
                "org_id",
                "add_time",
                "update_time",
                "emails",
                "phones",
                "visible_to",
                "label_ids",
                "marketing_status",
                "custom_fields",
            ],
            Kind::Organizations => &[
                "name",
                "owner_id",
                "add_time",
                "update_time",
                "visible_to",
                "label_ids",
                "address",
                "custom_fields",
            ],
        };
        if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(Invalid(format!(
                "Validation failed: {unknown}: Unrecognized key"
            )));
        }
        let mut r = existing.cloned().unwrap_or_else(|| Record {
            id,
            add_time_ms: now_ms,
            ..Record::default()
        });
        r.update_time_ms = now_ms;
        let opt_text = |k: &str| -> Result<Option<Option<String>>, Invalid> {
            match body.get(k) {
                None => Ok(None),
                Some(Json::Null) => Ok(Some(None)),
                Some(Json::String(s)) => {
                    Ok(Some(Some(s.trim().to_owned()).filter(|s| !s.is_empty())))
                }
                Some(_) => Err(Invalid(format!(
                    "Validation failed: {k}: Expected string, received {}",
                    type_name(&body[k])
                ))),
            }
        };
        let name = opt_text("name")?;
        if self.kind == Kind::Persons {
            let first = opt_text("first_name")?;
            let last = opt_text("last_name")?;
            match (&name, &first, &last) {
                (Some(n), None, None) => {
                    let n = n.clone().unwrap_or_default();
                    let (f, l) = split_name(&n);
                    r.name = n;
                    r.first_name = f;
                    r.last_name = l;
                }
                (n, f, l) if f.is_some() || l.is_some() => {
                    if let Some(f) = f {
                        r.first_name = f.clone();
                    }
                    if let Some(l) = l {
                        r.last_name = l.clone();
                    }
                    r.name = match n {
                        Some(n) => n.clone().unwrap_or_default(),
                        None => join_name(r.first_name.as_deref(), r.last_name.as_deref()),
                    };
                }
                _ => {}
            }
        } else if let Some(n) = name {
            r.name = n.unwrap_or_default();
        }
        if r.name.is_empty() {
            return Err(Invalid("Validation failed: name: Required".into()));
        }
        for k in ["add_time", "update_time"] {
            if let Some(v) = body.get(k) {
                let ms = v
                    .as_str()
                    .and_then(parse_rfc3339)
                    .ok_or_else(|| Invalid(format!("Validation failed: {k}: Invalid datetime")))?;
                if k == "add_time" {
                    r.add_time_ms = ms;
                } else {
                    r.update_time_ms = ms;
                }
            }
        }
        for k in ["owner_id", "visible_to"] {
            if let Some(v) = body.get(k)
                && !v.is_null()
                && !v.is_u64()
            {
                return Err(Invalid(format!(
                    "Validation failed: {k}: Expected number, received {}",
                    type_name(v)
                )));
            }
        }
        if let Some(owner) = body.get("owner_id") {
            r.owner_id = owner.as_u64();
            if let Some(id) = r.owner_id {
                owner_ok(id).map_err(Invalid)?;
            }
        }
        if let Some(v) = body.get("label_ids")
            && !v.as_array().is_some_and(|a| a.iter().all(Json::is_u64))
        {
            return Err(Invalid(
                "Validation failed: label_ids: Expected array of numbers".into(),
            ));
        }
        if self.kind == Kind::Persons {
            if let Some(v) = body.get("org_id") {
                r.org_id = match v {
                    Json::Null => None,
                    v => {
                        let org = v.as_u64().ok_or_else(|| {
                            Invalid(format!(
                                "Validation failed: org_id: Expected number, received {}",
                                type_name(v)
                            ))
                        })?;
                        if !org_exists(org) {
                            return Err(Invalid(format!(
                                "Validation failed: org_id: Organization with id {org} does not exist"
                            )));
                        }
                        Some(org)
                    }
                };
            }
            for k in ["emails", "phones"] {
                if let Some(v) = body.get(k) {
                    let list = channels(k, v)?;
                    if k == "emails" {
                        r.emails = list;
                    } else {
                        r.phones = list;
                    }
                }
            }
            if let Some(v) = body.get("marketing_status") {
                let status = v
                    .as_str()
                    .and_then(|s| MARKETING_STATUSES.iter().find(|m| **m == s).copied())
                    .ok_or_else(|| {
                        Invalid(format!(
                            "Validation failed: marketing_status: Invalid enum value. Expected {}",
                            MARKETING_STATUSES.join(" | ")
                        ))
                    })?;
                if campaigns {
                    set_marketing(&mut r, status, existing.is_none());
                }
            }
        } else if let Some(v) = body.get("address") {
            r.address = match v {
                Json::Null => None,
                Json::Object(parts) => {
                    let mut address = BTreeMap::new();
                    for (k, v) in parts {
                        let part = ADDRESS_PARTS.iter().find(|p| **p == k).ok_or_else(|| {
                            Invalid(format!("Validation failed: address.{k}: Unrecognized key"))
                        })?;
                        match v {
                            Json::Null => {}
                            Json::String(s) if s.trim().is_empty() => {}
                            Json::String(s) => {
                                address.insert(*part, s.trim().to_owned());
                            }
                            other => {
                                return Err(Invalid(format!(
                                    "Validation failed: address.{k}: Expected string, received {}",
                                    type_name(other)
                                )));
                            }
                        }
                    }
                    (!address.is_empty()).then_some(address)
                }
                other => {
                    return Err(Invalid(format!(
                        "Validation failed: address: Expected object, received {}",
                        type_name(other)
                    )));
                }
            };
        }
        if let Some(v) = body.get("custom_fields") {
            let Some(values) = v.as_object() else {
                return Err(Invalid(
                    "Validation failed: custom_fields: Expected object".into(),
                ));
            };
            for (code, value) in values {
                let Some(field) = self.custom_field(code) else {
                    return Err(Invalid(format!(
                        "Validation failed: custom_fields.{code}: Unknown custom field"
                    )));
                };
                let value = check_custom(&self.fields[field], code, value)?;
                r.custom.retain(|(f, _)| *f != field);
                if let Some(value) = value {
                    r.custom.push((field, value));
                }
            }
            r.custom.sort_by_key(|(f, _)| *f);
        }
        Ok(r)
    }

    /// The v2 JSON of a record. `custom_only` restricts `custom_fields` to those codes;
    /// `marketing` adds `marketing_status` (include_fields).
    pub(crate) fn render(
        &self,
        r: &Record,
        custom_only: Option<&[String]>,
        marketing: bool,
    ) -> Json {
        let mut custom = Map::new();
        for (i, f) in self.fields.iter().enumerate() {
            if !f.custom || custom_only.is_some_and(|only| !only.contains(&f.code)) {
                continue;
            }
            let value = r
                .custom
                .iter()
                .find(|(fi, _)| *fi == i)
                .map(|(_, v)| v.clone())
                .unwrap_or(Json::Null);
            custom.insert(f.code.clone(), value);
        }
        let mut out = json!({
            "id": r.id,
            "name": r.name,
            "owner_id": r.owner_id.unwrap_or(self.default_owner),
            "add_time": format_rfc3339(r.add_time_ms),
            "update_time": format_rfc3339(r.update_time_ms),
            "is_deleted": r.deleted,
            "visible_to": 3,
            "label_ids": [],
            "custom_fields": custom,
        });
        let Some(obj) = out.as_object_mut() else {
            return out;
        };
        match self.kind {
            Kind::Persons => {
                obj.insert("first_name".into(), json!(r.first_name));
                obj.insert("last_name".into(), json!(r.last_name));
                obj.insert("org_id".into(), json!(r.org_id));
                obj.insert("emails".into(), render_channels(&r.emails));
                obj.insert("phones".into(), render_channels(&r.phones));
                obj.insert("picture_id".into(), Json::Null);
                if marketing {
                    obj.insert(
                        "marketing_status".into(),
                        json!(r.marketing_status.unwrap_or("no_consent")),
                    );
                }
            }
            Kind::Organizations => {
                obj.insert(
                    "address".into(),
                    match &r.address {
                        Some(a) => {
                            let mut m = Map::new();
                            for part in ADDRESS_PARTS {
                                m.insert((*part).into(), json!(a.get(part)));
                            }
                            Json::Object(m)
                        }
                        None => Json::Null,
                    },
                );
            }
        }
        out
    }

    /// A search result item (`data.items[].item`). `org_name` names the person's organization.
    pub(crate) fn render_search_item(&self, r: &Record, org: Option<&Record>) -> Json {
        let custom: Vec<String> = r
            .custom
            .iter()
            .filter(|(f, _)| {
                self.fields
                    .get(*f)
                    .is_some_and(|f| !matches!(f.field_type.as_str(), "enum" | "set"))
            })
            .filter_map(|(_, v)| searchable(v))
            .collect();
        let mut item = json!({
            "id": r.id,
            "type": self.kind.item_type(),
            "name": r.name,
            "visible_to": 3,
            "owner": {"id": r.owner_id.unwrap_or(self.default_owner)},
            "custom_fields": custom,
            "notes": [],
        });
        if let Some(obj) = item.as_object_mut() {
            match self.kind {
                Kind::Persons => {
                    obj.insert(
                        "emails".into(),
                        json!(r.emails.iter().map(|c| &c.value).collect::<Vec<_>>()),
                    );
                    obj.insert(
                        "phones".into(),
                        json!(r.phones.iter().map(|c| &c.value).collect::<Vec<_>>()),
                    );
                    obj.insert(
                        "organization".into(),
                        match org {
                            Some(o) => json!({"id": o.id, "name": o.name, "address": o.address.as_ref().and_then(|a| a.get("value"))}),
                            None => Json::Null,
                        },
                    );
                }
                Kind::Organizations => {
                    obj.insert(
                        "address".into(),
                        json!(r.address.as_ref().and_then(|a| a.get("value"))),
                    );
                }
            }
        }
        item
    }
}

fn has_valid_email(r: &Record) -> bool {
    r.emails.iter().any(|c| valid_email(&c.value))
}

/// Applies a requested marketing status: set on creation (if the person has a valid email),
/// changed at most once afterwards; a forbidden change leaves the status as it was, silently.
fn set_marketing(r: &mut Record, status: &'static str, creating: bool) {
    if !has_valid_email(r) {
        return;
    }
    let current = r.marketing_status.unwrap_or("no_consent");
    if creating {
        r.marketing_status = Some(status);
    } else if current != status && !r.marketing_changed {
        r.marketing_status = Some(status);
        r.marketing_changed = true;
    }
}

fn channels(k: &str, v: &Json) -> Result<Vec<Channel>, Invalid> {
    let items = match v {
        Json::Null => return Ok(Vec::new()),
        Json::Array(items) => items,
        other => {
            return Err(Invalid(format!(
                "Validation failed: {k}: Expected array, received {}",
                type_name(other)
            )));
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let value = item
            .get("value")
            .and_then(Json::as_str)
            .ok_or_else(|| Invalid(format!("Validation failed: {k}.{i}.value: Required")))?;
        let primary = match item.get("primary") {
            None | Some(Json::Null) => false,
            Some(Json::Bool(b)) => *b,
            Some(other) => {
                return Err(Invalid(format!(
                    "Validation failed: {k}.{i}.primary: Expected boolean, received {}",
                    type_name(other)
                )));
            }
        };
        let label = match item.get("label") {
            None | Some(Json::Null) => "work".to_owned(),
            Some(Json::String(s)) => s.clone(),
            Some(other) => {
                return Err(Invalid(format!(
                    "Validation failed: {k}.{i}.label: Expected string, received {}",
                    type_name(other)
                )));
            }
        };
        if value.trim().is_empty() {
            continue;
        }
        out.push(Channel {
            value: value.trim().to_owned(),
            primary,
            label,
        });
    }
    if !out.is_empty() && !out.iter().any(|c| c.primary) {
        out[0].primary = true;
    }
    Ok(out)
}

fn render_channels(list: &[Channel]) -> Json {
    Json::Array(
        list.iter()
            .map(|c| json!({"value": c.value, "primary": c.primary, "label": c.label}))
            .collect(),
    )
}

/// Checks a custom field value against its type; `None` clears it.
fn check_custom(field: &Field, code: &str, value: &Json) -> Result<Option<Json>, Invalid> {
    let bad = |expected: &str| {
        Invalid(format!(
            "Validation failed: custom_fields.{code}: Expected {expected}, received {}",
            type_name(value)
        ))
    };
    match (field.field_type.as_str(), value) {
        (_, Json::Null) => Ok(None),
        ("varchar" | "varchar_auto" | "text" | "phone" | "date" | "time", Json::String(s)) => {
            if field.field_type != "text" && s.chars().count() > 255 {
                return Err(Invalid(format!(
                    "Validation failed: custom_fields.{code}: String must contain at most 255 character(s)"
                )));
            }
            Ok(Some(Json::String(s.clone())).filter(|_| !s.is_empty()))
        }
        ("varchar" | "varchar_auto" | "text" | "phone" | "date" | "time", _) => Err(bad("string")),
        ("enum", Json::Number(_)) => {
            if field.options.iter().any(|o| o.id == *value) {
                Ok(Some(value.clone()))
            } else {
                Err(no_option(code))
            }
        }
        ("set", Json::Array(ids)) => {
            if ids
                .iter()
                .all(|id| field.options.iter().any(|o| o.id == *id))
            {
                Ok(Some(value.clone()).filter(|_| !ids.is_empty()))
            } else {
                Err(no_option(code))
            }
        }
        ("set", _) => Err(bad("array")),
        ("double" | "monetary" | "org" | "people" | "user", Json::Number(_)) => {
            Ok(Some(value.clone()))
        }
        ("double" | "monetary" | "org" | "people" | "user" | "enum", _) => Err(bad("number")),
        _ => Ok(Some(value.clone())),
    }
}

/// The refusal of an option id the field does not have (Pipedrive answers 400 and names the
/// field; the emulator does not repeat the value).
fn no_option(code: &str) -> Invalid {
    Invalid(format!(
        "Validation failed: custom_fields.{code}: Invalid option id: the field has no option with this id"
    ))
}

/// The text a custom value is searched by.
fn searchable(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// RFC 3339 UTC without fractions, as v2 timestamps look (`2024-01-01T00:00:00Z`).
pub(crate) fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::timestamp::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff](Z|±HH:MM)` into epoch milliseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        let digits: String = frac[..n].chars().chain("000".chars()).take(3).collect();
        millis = digits.parse().ok()?;
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" => 0,
        _ if rest.len() == 6 => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest.get(1..3)?.parse::<i64>().ok()? * 60
                + rest.get(4..6)?.parse::<i64>().ok()?)
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    Some((days * 86_400 + h * 3600 + mi * 60 + se - offset * 60) * 1000 + millis)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_and_join() {
        assert_eq!(
            split_name("Lorelai Gilmore"),
            (Some("Lorelai".into()), Some("Gilmore".into()))
        );
        assert_eq!(
            split_name("Lorelai Victoria Gilmore").1.as_deref(),
            Some("Victoria Gilmore")
        );
        assert_eq!(split_name("Gilmore"), (Some("Gilmore".into()), None));
        assert_eq!(join_name(None, Some("Gilmore")), "Gilmore");
    }

    #[test]
    fn timestamps_round_trip() {
        let ms = parse_rfc3339("2024-02-29T12:34:56Z").unwrap();
        assert_eq!(format_rfc3339(ms), "2024-02-29T12:34:56Z");
        assert_eq!(parse_rfc3339("2024-02-29T14:34:56.5+02:00"), Some(ms + 500));
    }
}
