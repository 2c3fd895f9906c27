//! Fields as data: what a connector reports of its vendor's fields (metadata, never values), and
//! the one field-map type every connector reads and writes through, standard and mapped fields
//! alike.
//!
//! A connector's standard table says which vendor field holds each canonical field. An operator
//! can map more (`[fields.contacts]` in the config): the engine checks both vendors' field
//! metadata ([`VendorField`]), then hands each connector the extra bindings
//! ([`FieldBinding`]) with [`crate::Source::map_fields`] / [`crate::Sink::map_fields`]. A binding
//! replaces a standard one that has the same canonical name or the same vendor field.
//!
//! A picklist's canonical value is its **label**: the reading connector turns its vendor's
//! internal value into the label, the engine maps labels between vendors, and the writing
//! connector turns the label into its own internal value. Labels are compared ignoring case
//! and surrounding spaces.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::connector::RecordRejection;
use crate::model::{FieldType, ObjectType, Value, ValueError};

/// What a vendor field holds, in the terms ferry compares two vendors' fields in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Free text (single or multi-line).
    Text,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A checkbox.
    Bool,
    /// A whole number.
    Integer,
    /// A number with decimals (currency amounts included).
    Decimal,
    /// A calendar date without a time.
    Date,
    /// A point in time.
    Timestamp,
    /// One value out of a list of options.
    Picklist,
    /// Several values out of a list of options.
    MultiPicklist,
    /// A link to another record (lookups, owners).
    Reference,
    /// Anything ferry cannot carry (files, formulas, compound addresses).
    Other,
}

impl FieldKind {
    /// The name used in messages and reports: `"text"`, `"picklist"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Email => "email",
            FieldKind::Phone => "phone",
            FieldKind::Bool => "bool",
            FieldKind::Integer => "integer",
            FieldKind::Decimal => "decimal",
            FieldKind::Date => "date",
            FieldKind::Timestamp => "timestamp",
            FieldKind::Picklist => "picklist",
            FieldKind::MultiPicklist => "multi-picklist",
            FieldKind::Reference => "reference",
            FieldKind::Other => "other",
        }
    }

    /// The canonical type values of this kind travel as (a picklist travels as its label,
    /// a date as `YYYY-MM-DD` text); `None` for kinds ferry does not carry in a field map.
    pub fn canonical_type(self) -> Option<FieldType> {
        Some(match self {
            FieldKind::Text | FieldKind::Picklist | FieldKind::Date => FieldType::Text,
            FieldKind::Email => FieldType::Email,
            FieldKind::Phone => FieldType::Phone,
            FieldKind::Bool => FieldType::Bool,
            FieldKind::Integer => FieldType::Integer,
            FieldKind::Decimal => FieldType::Decimal,
            FieldKind::Timestamp => FieldType::Timestamp,
            FieldKind::MultiPicklist | FieldKind::Reference | FieldKind::Other => return None,
        })
    }

    /// Whether the values of a field of this kind can be written into a field of kind `to`
    /// without loss or guessing: the same kind, a whole number into a decimal, anything
    /// textual into text, and, checked per value, text into an email, phone or picklist field
    /// (a picklist by label) and a decimal into a whole-number field (many vendors keep every
    /// number as a decimal: a value with a fraction refuses its record, naming the field).
    pub fn fits(self, to: FieldKind) -> bool {
        use FieldKind::*;
        match (self, to) {
            (MultiPicklist | Reference | Other, _) | (_, MultiPicklist | Reference | Other) => {
                false
            }
            (a, b) if a == b => true,
            (Integer, Decimal) | (Decimal, Integer) => true,
            (Email | Phone | Picklist | Date | Integer | Decimal, Text) => true,
            (Text | Picklist, Picklist) | (Text, Email | Phone) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for FieldKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One allowed value of a picklist: the vendor's internal value and the label people see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PicklistOption {
    /// What the vendor's API reads and writes (HubSpot's `COMPUTER_SOFTWARE`, a Dataverse
    /// option number as text, a Pipedrive option id as text).
    pub value: String,
    /// What people see ("Computer Software").
    pub label: String,
}

/// Whether two picklist labels are the same label: case and surrounding spaces do not count.
pub fn same_label(a: &str, b: &str) -> bool {
    // Compared for every picklist value of every record: no allocation.
    let (a, b) = (a.trim(), b.trim());
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// A field of one object as the vendor describes it. Metadata only: never a record's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VendorField {
    /// The name the API reads and writes: an API name (`Favourite_Colour__c`), an internal
    /// property name, or Pipedrive's 40-character key.
    pub name: String,
    /// The label people see, by which fields can also be matched across vendors.
    pub label: String,
    /// What it holds, in ferry's terms.
    pub kind: FieldKind,
    /// The vendor's own type name, for messages (`enumeration/select`, `double`, `Picklist`).
    pub vendor_type: String,
    /// Whether the account added it (a custom field) rather than the vendor.
    pub custom: bool,
    /// Whether the API accepts writes to it (`false` for system and formula fields).
    pub writable: bool,
    /// The options of a picklist, in the vendor's order; empty for other kinds.
    pub options: Vec<PicklistOption>,
    /// The canonical field the connector's standard table maps it to, if any.
    pub canonical: Option<String>,
}

/// One binding of a canonical field to a vendor field, used in both directions: reading (the
/// vendor's value becomes a canonical value of type `ty`) and writing (the reverse).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldBinding {
    /// The canonical name the value travels under (a standard name such as `industry`, or the
    /// name the engine gives a mapped field).
    pub canonical: Cow<'static, str>,
    /// The vendor field's name, as [`VendorField::name`].
    pub vendor: Cow<'static, str>,
    /// The canonical type of the values.
    pub ty: FieldType,
    /// For a picklist: its options. The canonical value is then the label.
    pub options: Vec<PicklistOption>,
}

impl FieldBinding {
    /// A binding with no options.
    pub fn new(
        canonical: impl Into<Cow<'static, str>>,
        vendor: impl Into<Cow<'static, str>>,
        ty: FieldType,
    ) -> Self {
        FieldBinding {
            canonical: canonical.into(),
            vendor: vendor.into(),
            ty,
            options: Vec::new(),
        }
    }

    /// Whether this binding is a picklist's (its values travel as labels).
    pub fn is_picklist(&self) -> bool {
        !self.options.is_empty()
    }

    /// Reads a vendor's raw value (its string form) as the canonical value: a picklist's
    /// internal value becomes its label (a value the list does not hold is kept as it is: the
    /// engine then maps or refuses it by label), anything else is parsed as `ty`.
    pub fn read(&self, raw: &str) -> Result<Option<Value>, ValueError> {
        self.read_via(raw, |raw| {
            self.options
                .iter()
                .find(|o| o.value == raw)
                .map(|o| o.label.as_str())
        })
    }

    /// [`FieldBinding::read`], finding a picklist value's label with `label_of`.
    fn read_via<'s>(
        &'s self,
        raw: &str,
        label_of: impl Fn(&str) -> Option<&'s str>,
    ) -> Result<Option<Value>, ValueError> {
        if self.is_picklist() && self.ty == FieldType::Names {
            // A multiple-choice list: each of the `;`-separated values by its label.
            return Ok(crate::model::names_value(
                crate::model::names(raw).map(|value| label_of(value).unwrap_or(value)),
            ));
        }
        if self.is_picklist() && !raw.is_empty() {
            let label = label_of(raw).unwrap_or(raw);
            return Ok(Some(Value::Text(label.to_owned())));
        }
        Value::parse(self.ty, raw)
    }

    /// The vendor's internal value for a picklist label; `None` when the list has no such
    /// label (the record must then be refused, naming the field).
    pub fn option_value(&self, label: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|o| same_label(&o.label, label))
            .map(|o| o.value.as_str())
    }

    /// The internal value a sink writes for a picklist label, or the record's refusal
    /// ([`NO_SUCH_OPTION`]) naming the canonical and vendor fields, never the value.
    pub fn write_option(
        &self,
        vendor: &str,
        source_id: &str,
        label: &str,
    ) -> Result<&str, RecordRejection> {
        self.option_value(label)
            .ok_or_else(|| self.no_such_option(vendor, source_id))
    }

    /// The internal values a sink writes for the names of a multiple-choice list's value
    /// ([`FieldType::Names`]), in the list's order, or the record's refusal
    /// ([`NO_SUCH_OPTION`]) when one has no option (the engine leaves out, before the digest,
    /// the names a sink declared it cannot hold: see [`crate::FieldLimit::only_values`]).
    pub fn write_names(
        &self,
        vendor: &str,
        source_id: &str,
        names: &str,
    ) -> Result<Vec<&str>, RecordRejection> {
        let mut values = Vec::new();
        for name in crate::model::names(names) {
            values.push(
                self.option_value(name)
                    .ok_or_else(|| self.no_such_option(vendor, source_id))?,
            );
        }
        values.sort_by_key(|v| self.options.iter().position(|o| o.value == *v));
        Ok(values)
    }

    /// The refusal of a record whose label the picklist lacks.
    fn no_such_option(&self, vendor: &str, source_id: &str) -> RecordRejection {
        RecordRejection {
            source_id: source_id.to_owned(),
            code: NO_SUCH_OPTION.to_owned(),
            reason: format!(
                "`{}` ({vendor} field `{}`): the picklist has no option with this label",
                self.canonical, self.vendor
            ),
        }
    }
}

/// A picklist's options indexed both ways, built once with its [`FieldMap`], so that the label
/// or value of every record is found without scanning the list (lists run to hundreds of
/// options): label → option as [`same_label`] compares them, value → option exactly. Where
/// two options share a label or a value the first wins, as a scan finds it.
#[derive(Clone, Debug, Default, PartialEq)]
struct OptionIndex {
    /// `(hash of the label as compared, position)`, sorted.
    by_label: Vec<(u64, u32)>,
    /// `(hash of the value, position)`, sorted.
    by_value: Vec<(u64, u32)>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a of a label's characters, trimmed and lowercased as [`same_label`] compares them,
/// so that two labels it finds the same hash alike. No allocation: it runs for every record.
fn label_hash(label: &str) -> u64 {
    let label = label.trim();
    let step = |h: u64, c: u32| (h ^ u64::from(c)).wrapping_mul(FNV_PRIME);
    if label.is_ascii() {
        label.bytes().fold(FNV_OFFSET, |h, b| {
            step(h, u32::from(b.to_ascii_lowercase()))
        })
    } else {
        label
            .chars()
            .flat_map(char::to_lowercase)
            .fold(FNV_OFFSET, |h, c| step(h, u32::from(c)))
    }
}

/// FNV-1a of a value's bytes.
fn value_hash(value: &str) -> u64 {
    value.bytes().fold(FNV_OFFSET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

impl OptionIndex {
    fn new(options: &[PicklistOption]) -> OptionIndex {
        let sorted = |hash: &dyn Fn(&PicklistOption) -> u64| {
            let mut entries: Vec<(u64, u32)> = options
                .iter()
                .zip(0u32..)
                .map(|(o, i)| (hash(o), i))
                .collect();
            entries.sort_unstable();
            entries
        };
        OptionIndex {
            by_label: sorted(&|o| label_hash(&o.label)),
            by_value: sorted(&|o| value_hash(&o.value)),
        }
    }

    /// The first position among `entries` with `hash` that `is` accepts.
    fn find(entries: &[(u64, u32)], hash: u64, is: impl Fn(usize) -> bool) -> Option<usize> {
        let start = entries.partition_point(|&(h, _)| h < hash);
        entries[start..]
            .iter()
            .take_while(|&&(h, _)| h == hash)
            .map(|&(_, i)| i as usize)
            .find(|&i| is(i))
    }
}

/// A binding of a [`FieldMap`] with its picklist's options indexed: reads and writes exactly
/// as [`FieldBinding`] does, without scanning the options for every record. Derefs to the
/// binding for its names and type.
#[derive(Clone, Copy, Debug)]
pub struct IndexedBinding<'a> {
    binding: &'a FieldBinding,
    index: &'a OptionIndex,
}

impl std::ops::Deref for IndexedBinding<'_> {
    type Target = FieldBinding;

    fn deref(&self) -> &FieldBinding {
        self.binding
    }
}

impl<'a> IndexedBinding<'a> {
    /// As [`FieldBinding::read`].
    pub fn read(&self, raw: &str) -> Result<Option<Value>, ValueError> {
        let options = &self.binding.options;
        self.binding.read_via(raw, |raw| {
            OptionIndex::find(&self.index.by_value, value_hash(raw), |i| {
                options[i].value == raw
            })
            .map(|i| options[i].label.as_str())
        })
    }

    /// As [`FieldBinding::option_value`].
    pub fn option_value(&self, label: &str) -> Option<&'a str> {
        let options = &self.binding.options;
        OptionIndex::find(&self.index.by_label, label_hash(label), |i| {
            same_label(&options[i].label, label)
        })
        .map(|i| options[i].value.as_str())
    }

    /// As [`FieldBinding::write_option`].
    pub fn write_option(
        &self,
        vendor: &str,
        source_id: &str,
        label: &str,
    ) -> Result<&'a str, RecordRejection> {
        self.option_value(label)
            .ok_or_else(|| self.binding.no_such_option(vendor, source_id))
    }
}

/// The refusal code of a record whose picklist label the sink's list does not hold.
pub const NO_SUCH_OPTION: &str = "NO_SUCH_OPTION";

/// A connector's fields of one object: canonical field ↔ vendor field, the standard table and
/// the operator's mapped fields in one list, used for writing, reading back and reading as a
/// source, so every direction agrees by construction.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldMap {
    bindings: Vec<FieldBinding>,
    /// The options of each binding indexed, in the same order (empty without options).
    indexes: Vec<OptionIndex>,
}

impl FieldMap {
    /// The standard table of `object`: `(canonical, vendor)` pairs, typed by the canonical
    /// schema (a name the schema lacks travels as text).
    pub fn standard(object: ObjectType, table: &[(&'static str, &'static str)]) -> FieldMap {
        FieldMap::of(
            table
                .iter()
                .map(|&(canonical, vendor)| {
                    let ty = object.field(canonical).map_or(FieldType::Text, |f| f.ty);
                    FieldBinding::new(canonical, vendor, ty)
                })
                .collect(),
        )
    }

    /// The map of `bindings`, their options indexed.
    fn of(bindings: Vec<FieldBinding>) -> FieldMap {
        let indexes = bindings
            .iter()
            .map(|b| OptionIndex::new(&b.options))
            .collect();
        FieldMap { bindings, indexes }
    }

    /// This map with `mapped` added; each replaces a binding with the same canonical name or
    /// the same vendor field.
    pub fn with(&self, mapped: &[FieldBinding]) -> FieldMap {
        let mut bindings: Vec<FieldBinding> = self
            .bindings
            .iter()
            .filter(|b| {
                !mapped
                    .iter()
                    .any(|m| m.canonical == b.canonical || m.vendor == b.vendor)
            })
            .cloned()
            .collect();
        bindings.extend(mapped.iter().cloned());
        FieldMap::of(bindings)
    }

    /// Every binding, standard ones first.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldBinding> {
        self.bindings.iter()
    }

    /// Every binding with its options indexed, in the order of [`FieldMap::iter`]: what a
    /// connector reads and writes each record's values through.
    pub fn indexed(&self) -> impl Iterator<Item = IndexedBinding<'_>> {
        self.bindings
            .iter()
            .zip(&self.indexes)
            .map(|(binding, index)| IndexedBinding { binding, index })
    }

    /// The binding of a vendor field.
    pub fn by_vendor(&self, vendor: &str) -> Option<&FieldBinding> {
        self.bindings.iter().find(|b| b.vendor == vendor)
    }

    /// The binding of a canonical field.
    pub fn by_canonical(&self, canonical: &str) -> Option<&FieldBinding> {
        self.bindings.iter().find(|b| b.canonical == canonical)
    }

    /// The canonical fields the map writes and reads back.
    pub fn canonical_names(&self) -> Vec<String> {
        self.bindings
            .iter()
            .map(|b| b.canonical.to_string())
            .collect()
    }

    /// The vendor fields the map reads and writes.
    pub fn vendor_names(&self) -> Vec<&str> {
        self.bindings.iter().map(|b| b.vendor.as_ref()).collect()
    }
}

/// The field maps of a connector's objects: its standard tables, plus what the engine mapped
/// with `map_fields` before the run. Cheap to read per page (an `Arc` clone).
#[derive(Debug)]
pub struct FieldMaps {
    maps: RwLock<BTreeMap<ObjectType, Arc<FieldMap>>>,
}

impl FieldMaps {
    /// The standard maps, one per object the connector moves.
    pub fn new(standard: impl IntoIterator<Item = (ObjectType, FieldMap)>) -> FieldMaps {
        FieldMaps {
            maps: RwLock::new(
                standard
                    .into_iter()
                    .map(|(object, map)| (object, Arc::new(map)))
                    .collect(),
            ),
        }
    }

    /// The map of `object` (empty for an object the connector does not move).
    pub fn get(&self, object: ObjectType) -> Arc<FieldMap> {
        let maps = self
            .maps
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        maps.get(&object).cloned().unwrap_or_default()
    }

    /// Leaves `canonical` out of `object`'s map: the account has no field for it (a
    /// single-currency org's currency), so it is neither written nor read.
    pub fn leave_out(&self, object: ObjectType, canonical: &str) {
        let mut maps = self
            .maps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(map) = maps.get_mut(&object)
            && map.by_canonical(canonical).is_some()
        {
            let kept = map
                .iter()
                .filter(|b| b.canonical != canonical)
                .cloned()
                .collect();
            *map = Arc::new(FieldMap::of(kept));
        }
    }

    /// Adds the operator's mapped fields to `object`'s map (replacing what was mapped before).
    pub fn map(&self, object: ObjectType, standard: &FieldMap, mapped: &[FieldBinding]) {
        let mut maps = self
            .maps
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        maps.insert(object, Arc::new(standard.with(mapped)));
    }
}

/// How long a listing of an object's fields, kept by [`RecentListings`], stands in for
/// listing them again: a run's first object is prepared a second or two after the field plan
/// described it; a later object's (minutes later) lists its fields afresh.
pub const LISTING_FRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// A sink's latest listing of each object's fields (as the field plan's `describe` read it),
/// taken once by the `prepare` that would otherwise list them again to find the source-id
/// field: one request of the vendor's budget fewer per object and run. A listing older than
/// [`LISTING_FRESH`], or one made stale by a field created since, is not taken.
pub struct RecentListings<V> {
    listed: std::sync::Mutex<std::collections::HashMap<ObjectType, (std::time::Instant, V)>>,
}

impl<V> Default for RecentListings<V> {
    fn default() -> Self {
        RecentListings {
            listed: std::sync::Mutex::default(),
        }
    }
}

impl<V> RecentListings<V> {
    /// Keeps `listing` of `object`'s fields, read just now.
    pub fn keep(&self, object: ObjectType, listing: V) {
        self.lock()
            .insert(object, (std::time::Instant::now(), listing));
    }

    /// Takes `object`'s listing if it is fresh; it is not kept after (a check that a create
    /// landed must list again).
    pub fn take(&self, object: ObjectType) -> Option<V> {
        self.lock()
            .remove(&object)
            .filter(|(at, _)| at.elapsed() < LISTING_FRESH)
            .map(|(_, listing)| listing)
    }

    /// Drops `object`'s listing: a field was created since.
    pub fn forget(&self, object: ObjectType) {
        self.lock().remove(&object);
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<ObjectType, (std::time::Instant, V)>>
    {
        self.listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A field to create in the sink (`create_missing_fields = true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewField {
    /// The name asked for; the connector adjusts it to its vendor's rules (Salesforce's
    /// `__c`, a Dataverse publisher prefix) and returns the name it got.
    pub name: String,
    /// The label people will see.
    pub label: String,
    /// What it holds.
    pub kind: FieldKind,
    /// For a picklist: its options (labels; connectors choose internal values as their vendor
    /// does).
    pub options: Vec<PicklistOption>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field;

    fn tier() -> FieldBinding {
        FieldBinding {
            options: vec![
                PicklistOption {
                    value: "gold".into(),
                    label: "Gold".into(),
                },
                PicklistOption {
                    value: "silver".into(),
                    label: "Silver".into(),
                },
            ],
            ..FieldBinding::new("tier", "tier__c", FieldType::Text)
        }
    }

    #[test]
    fn a_picklist_reads_as_its_label_and_writes_as_its_value() {
        let tier = tier();
        assert_eq!(tier.read("gold").unwrap(), Some(Value::Text("Gold".into())));
        assert_eq!(tier.read("").unwrap(), None);
        // A value the list lacks is kept, for the engine to map or refuse.
        assert_eq!(
            tier.read("Platinum").unwrap(),
            Some(Value::Text("Platinum".into()))
        );
        assert_eq!(tier.option_value(" silver "), Some("silver"));
        assert!(same_label("Größe", " GRÖSSE ") || same_label("Ärzte", "ärzte"));
        assert!(same_label("Ärzte", " ÄRZTE"));
        assert!(!same_label("Gold", "Golden"));
        assert_eq!(tier.option_value("Platinum"), None);
        let refused = tier.write_option("hubspot", "c-1", "Platinum").unwrap_err();
        assert_eq!(refused.code, NO_SUCH_OPTION);
        assert!(!refused.reason.contains("Platinum"), "{}", refused.reason);
    }

    #[test]
    fn the_index_finds_what_a_scan_finds() {
        let option = |value: &str, label: &str| PicklistOption {
            value: value.into(),
            label: label.into(),
        };
        let binding = FieldBinding {
            options: vec![
                option("gold", "Gold"),
                option("GOLD_2", " gold "),
                option("k", "\u{212a}elvin"),
                option("aerzte", "Ärzte"),
                option("gold", "Second gold"),
                option("", "Empty"),
            ],
            ..FieldBinding::new("tier", "tier__c", FieldType::Text)
        };
        let map = FieldMap::default().with(std::slice::from_ref(&binding));
        let indexed = map.indexed().next().unwrap();
        assert_eq!(indexed.canonical, "tier");
        for label in [
            "gold",
            "GOLD ",
            "Gold",
            "kelvin",
            "KELVIN",
            "\u{212a}ELVIN",
            "ärzte",
            " ÄRZTE",
            "Second Gold",
            "empty",
            "Platinum",
            "",
            " ",
            "Golden",
        ] {
            assert_eq!(
                indexed.option_value(label),
                binding.option_value(label),
                "{label:?}"
            );
        }
        for raw in ["gold", "GOLD_2", "k", "aerzte", "Gold", "platinum", ""] {
            assert_eq!(indexed.read(raw), binding.read(raw), "{raw:?}");
        }
        assert_eq!(indexed.option_value(" GOLD"), Some("gold"));
        assert_eq!(indexed.option_value("kelvin"), Some("k"));
        let refused = indexed
            .write_option("hubspot", "c-1", "Platinum")
            .unwrap_err();
        assert_eq!(
            refused,
            binding
                .write_option("hubspot", "c-1", "Platinum")
                .unwrap_err()
        );
        let plain = FieldMap::standard(ObjectType::COMPANIES, &[(field::NAME, "Name")]);
        let name = plain.indexed().next().unwrap();
        assert_eq!(name.read("Acme"), Ok(Some(Value::Text("Acme".into()))));
    }

    #[test]
    fn a_mapped_field_replaces_the_standard_binding_it_overlaps() {
        let standard = FieldMap::standard(
            ObjectType::COMPANIES,
            &[(field::NAME, "Name"), (field::INDUSTRY, "Industry")],
        );
        assert_eq!(standard.by_canonical("name").unwrap().ty, FieldType::Text);
        let mapped = standard.with(&[
            FieldBinding::new(field::INDUSTRY, "Sector__c", FieldType::Text),
            tier(),
        ]);
        assert_eq!(mapped.vendor_names(), ["Name", "Sector__c", "tier__c"]);
        assert!(mapped.by_vendor("Industry").is_none());
        let maps = FieldMaps::new([(ObjectType::COMPANIES, standard.clone())]);
        maps.map(ObjectType::COMPANIES, &standard, &[tier()]);
        assert_eq!(
            maps.get(ObjectType::COMPANIES).canonical_names(),
            ["name", "industry", "tier"]
        );
        assert!(maps.get(ObjectType::CONTACTS).iter().next().is_none());
    }

    #[test]
    fn kinds_fit_only_without_loss() {
        use FieldKind::*;
        assert!(Integer.fits(Decimal));
        assert!(Decimal.fits(Integer), "checked per value");
        assert!(!Text.fits(Decimal));
        assert!(Decimal.fits(Text));
        assert!(Text.fits(Picklist));
        assert!(Picklist.fits(Text));
        assert!(!Bool.fits(Integer));
        assert!(!Other.fits(Other));
        assert!(!Email.fits(Phone));
    }

    #[test]
    fn a_recent_listing_is_taken_once_and_not_after_a_field_was_created() {
        let listings = RecentListings::default();
        assert_eq!(listings.take(ObjectType::COMPANIES), None);
        listings.keep(ObjectType::COMPANIES, 7);
        listings.keep(ObjectType::CONTACTS, 8);
        assert_eq!(listings.take(ObjectType::COMPANIES), Some(7));
        assert_eq!(listings.take(ObjectType::COMPANIES), None, "taken once");
        listings.forget(ObjectType::CONTACTS);
        assert_eq!(listings.take(ObjectType::CONTACTS), None, "stale");
    }
}
