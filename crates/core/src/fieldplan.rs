//! What the operator's field map and value tables resolve to for one object of one run, from
//! both vendors' field metadata, before anything is read or written.
//!
//! The plan gives each connector the bindings to add to its standard table
//! ([`crate::Source::map_fields`], [`crate::Sink::map_fields`]), the picklist value maps the
//! engine applies to each record ([`ValueMap`]), the sink fields to create when the operator
//! allows it, and every mistake at once (a field neither vendor has, a text into a number
//! field), each naming both fields and their kinds.

use std::collections::BTreeMap;

use crate::fields::{FieldBinding, FieldKind, NewField, VendorField, same_label};
use crate::model::{FieldType, ObjectType};

/// The prefix of the canonical name a mapped custom field travels under, so that it never
/// collides with a standard canonical field.
pub const CUSTOM_PREFIX: &str = "custom.";

/// One object's field settings from the config: `[fields.<object>]` pairs (source field = sink
/// field) and `[values.<object>.<field>]` tables (source label = sink label, `"*"` for any
/// other value, `""` for "leave it empty").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSettings {
    /// Source vendor field → sink vendor field, by name (or label).
    pub pairs: Vec<(String, String)>,
    /// Field (canonical, source or sink name) → its value table.
    pub values: BTreeMap<String, Vec<(String, String)>>,
}

impl FieldSettings {
    /// Whether the operator asked for anything beyond the standard fields.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty() && self.values.is_empty()
    }
}

/// A source field carried into a sink field, as the plan resolved it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MappedPair {
    /// The canonical name the values travel under (and are hashed under).
    pub canonical: String,
    /// The source vendor field.
    pub source: String,
    /// Its kind.
    pub source_kind: FieldKind,
    /// The sink vendor field.
    pub sink: String,
    /// Its kind.
    pub sink_kind: FieldKind,
    /// Whether the operator mapped it (`false`: a standard field mapped by label of values).
    pub configured: bool,
}

/// What becomes of one source picklist label in the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mapped {
    /// This sink label (already spelt as the sink spells it).
    To(String),
    /// Written empty, as the value table says (`"x" = ""` or `"*" = ""`).
    Empty,
    /// No sink value: the record is refused before writing.
    Unmapped,
}

/// How the labels of one field are carried from the source's list into the sink's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueMap {
    /// The record field (canonical name) the map applies to.
    pub canonical: String,
    /// The sink field, for messages.
    pub sink_field: String,
    /// The value table's entries: source label → sink label (`None`: leave empty).
    pub table: Vec<(String, Option<String>)>,
    /// The `"*"` entry, if any: what any other value becomes.
    pub otherwise: Option<Option<String>>,
    /// The sink picklist's labels; `None` when the sink field takes any text.
    pub sink_labels: Option<Vec<String>>,
}

impl ValueMap {
    /// What `label` becomes: the table's entry, else the sink's own label that is the same
    /// label, else the `"*"` entry, else unmapped.
    pub fn apply(&self, label: &str) -> Mapped {
        let to = |target: &Option<String>| match target {
            None => Mapped::Empty,
            Some(t) => Mapped::To(t.clone()),
        };
        if let Some((_, target)) = self.table.iter().find(|(from, _)| same_label(from, label)) {
            return to(target);
        }
        match &self.sink_labels {
            None => return Mapped::To(label.to_owned()),
            Some(labels) => {
                if let Some(same) = labels.iter().find(|l| same_label(l, label)) {
                    return Mapped::To(same.clone());
                }
            }
        }
        match &self.otherwise {
            Some(target) => to(target),
            None => Mapped::Unmapped,
        }
    }

    /// The source's labels this map leaves without a sink value: listed by `ferry plan`
    /// before anything is written.
    pub fn unmapped<'a>(&self, source_labels: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        source_labels
            .into_iter()
            .filter(|label| self.apply(label) == Mapped::Unmapped)
            .map(str::to_owned)
            .collect()
    }
}

/// A source field no binding carries, and the sink field most like it, for `ferry plan`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    /// The unmapped source field.
    pub source: String,
    /// Its label.
    pub label: String,
    /// The most similar sink field by name and kind, if one is close enough.
    pub sink: Option<String>,
}

/// One object's resolved field plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldPlan {
    /// Bindings the source adds to its standard table.
    pub source_bindings: Vec<FieldBinding>,
    /// Bindings the sink adds to its standard table.
    pub sink_bindings: Vec<FieldBinding>,
    /// The fields carried beyond the standard table, and the standard picklists.
    pub mapped: Vec<MappedPair>,
    /// Sink fields the operator's map needs that the sink lacks, to create when allowed.
    pub to_create: Vec<NewField>,
    /// Picklist value maps the engine applies to each record before writing.
    pub value_maps: Vec<ValueMap>,
    /// Source custom fields nothing carries, with suggestions.
    pub unmapped: Vec<Suggestion>,
    /// Every mistake in the settings; the run must not start unless this is empty (after
    /// creating `to_create`, when the operator allows it).
    pub errors: Vec<FieldPlanError>,
}

/// A mistake in an object's field settings, naming the fields, never a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldPlanError {
    /// `[fields.<object>]` names a source field the source does not have.
    #[error(
        "config key `fields.{object}.{field}`: the source ({vendor}) has no {object} field `{field}`{}",
        near_text(.near)
    )]
    UnknownSourceField {
        object: ObjectType,
        vendor: &'static str,
        field: String,
        near: Option<String>,
    },
    /// `[fields.<object>]` names a sink field the sink does not have.
    #[error(
        "config key `fields.{object}.{key}`: the sink ({vendor}) has no {object} field `{field}`{}; \
         create it in {vendor} as a {kind} field, or set `create_missing_fields = true` in [sink] \
         to let ferry create it",
        near_text(.near)
    )]
    UnknownSinkField {
        object: ObjectType,
        vendor: &'static str,
        key: String,
        field: String,
        kind: FieldKind,
        near: Option<String>,
    },
    /// The source field's values cannot go into the sink field.
    #[error(
        "config key `fields.{object}.{key}`: source field `{source_field}` ({source_kind}) cannot be \
         written into sink field `{sink}` ({sink_kind}): its values would be lost or guessed"
    )]
    TypeMismatch {
        object: ObjectType,
        key: String,
        source_field: String,
        source_kind: FieldKind,
        sink: String,
        sink_kind: FieldKind,
    },
    /// The sink field is read-only (a system or formula field).
    #[error("config key `fields.{object}.{key}`: sink field `{sink}` is read-only in the sink")]
    NotWritable {
        object: ObjectType,
        key: String,
        sink: String,
    },
    /// A field of a kind ferry does not carry (a lookup, a file, a multi-select).
    #[error(
        "config key `fields.{object}.{key}`: field `{field}` holds {kind} values, which ferry \
         does not carry in a field map"
    )]
    NotCarried {
        object: ObjectType,
        key: String,
        field: String,
        kind: FieldKind,
    },
    /// Two config pairs write one sink field.
    #[error(
        "config key `fields.{object}`: sink field `{sink}` is mapped from both `{first}` and `{second}`"
    )]
    TwoIntoOne {
        object: ObjectType,
        sink: String,
        first: String,
        second: String,
    },
    /// A pair would write a sink opt-out from something other than the same opt-out.
    #[error(
        "config key `fields.{object}.{key}`: sink field `{sink}` holds the `{opt_out}` opt-out; \
         only the source's own `{opt_out}` may be written into it (mapping `{source_field}` \
         there could turn an opted-out person reachable)"
    )]
    ConsentWeakened {
        object: ObjectType,
        key: String,
        source_field: String,
        sink: String,
        opt_out: String,
    },
    /// `[values.<object>.<field>]` names a field that is not carried.
    #[error(
        "config key `values.{object}.{field}`: no carried {object} field is called `{field}` \
         (name a canonical field such as `industry`, or a field of [fields.{object}])"
    )]
    UnknownValueField { object: ObjectType, field: String },
    /// A value table maps to a label the sink's picklist lacks.
    #[error(
        "config key `values.{object}.{field}`: the sink's picklist `{sink}` has no option labelled \
         as the entry for `{from}` says"
    )]
    NoSuchSinkLabel {
        object: ObjectType,
        field: String,
        sink: String,
        from: String,
    },
}

fn near_text(near: &Option<String>) -> String {
    near.as_ref()
        .map(|n| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default()
}

/// Both sides' fields of one object, and the operator's settings for it.
pub struct PlanInput<'a> {
    /// The object.
    pub object: ObjectType,
    /// The source connector's name.
    pub source_vendor: &'static str,
    /// The source's fields (its `describe`).
    pub source: &'a [VendorField],
    /// The sink connector's name.
    pub sink_vendor: &'static str,
    /// The sink's fields (its `describe`).
    pub sink: &'a [VendorField],
    /// The operator's settings.
    pub settings: &'a FieldSettings,
}

/// Resolves one object's plan, with every mistake in its settings in [`FieldPlan::errors`].
pub fn plan(input: &PlanInput<'_>) -> FieldPlan {
    let PlanInput {
        object,
        source_vendor,
        source,
        sink_vendor,
        sink,
        settings,
    } = *input;
    let mut errors = Vec::new();
    let mut out = FieldPlan::default();
    let mut sink_taken: BTreeMap<String, String> = BTreeMap::new();
    let mut source_taken: Vec<String> = Vec::new();

    let mut written_as: Vec<(String, String, String)> = Vec::new();
    for (from, to) in &settings.pairs {
        let Some(src) = find(source, from) else {
            errors.push(FieldPlanError::UnknownSourceField {
                object,
                vendor: source_vendor,
                field: from.clone(),
                near: nearest(source, from, None),
            });
            continue;
        };
        if src.kind.canonical_type().is_none() && !standard_names(object, src) {
            errors.push(FieldPlanError::NotCarried {
                object,
                key: from.clone(),
                field: src.name.clone(),
                kind: src.kind,
            });
            continue;
        }
        let Some(dst) = find(sink, to) else {
            // A set of names is held as text by the model's names, not as the source's list.
            let names = standard_names(object, src);
            out.to_create.push(NewField {
                name: to.clone(),
                label: label_for(to).unwrap_or_else(|| src.label.clone()),
                kind: if names { FieldKind::Text } else { src.kind },
                options: if names {
                    Vec::new()
                } else {
                    src.options.clone()
                },
            });
            errors.push(FieldPlanError::UnknownSinkField {
                object,
                vendor: sink_vendor,
                key: from.clone(),
                field: to.clone(),
                kind: src.kind,
                near: nearest(sink, to, Some(src.kind)),
            });
            continue;
        };
        if let Some(first) = sink_taken.insert(dst.name.clone(), from.clone()) {
            errors.push(FieldPlanError::TwoIntoOne {
                object,
                sink: dst.name.clone(),
                first,
                second: from.clone(),
            });
            continue;
        }
        if dst.kind.canonical_type().is_none() {
            errors.push(FieldPlanError::NotCarried {
                object,
                key: from.clone(),
                field: dst.name.clone(),
                kind: dst.kind,
            });
            continue;
        }
        let names_into_text = standard_names(object, src) && dst.kind == FieldKind::Text;
        if !(src.kind.fits(dst.kind) || opt_out_into_text(src, dst) || names_into_text) {
            errors.push(FieldPlanError::TypeMismatch {
                object,
                key: from.clone(),
                source_field: src.name.clone(),
                source_kind: src.kind,
                sink: dst.name.clone(),
                sink_kind: dst.kind,
            });
            continue;
        }
        if let Some(opt_out) = dst.canonical.as_deref().and_then(crate::model::opt_out)
            && src.canonical.as_deref() != Some(opt_out.field)
        {
            errors.push(FieldPlanError::ConsentWeakened {
                object,
                key: from.clone(),
                source_field: src.name.clone(),
                sink: dst.name.clone(),
                opt_out: opt_out.field.to_owned(),
            });
            continue;
        }
        if !dst.writable {
            errors.push(FieldPlanError::NotWritable {
                object,
                key: from.clone(),
                sink: dst.name.clone(),
            });
            continue;
        }
        let canonical = dst
            .canonical
            .clone()
            .or_else(|| src.canonical.clone())
            .unwrap_or_else(|| format!("{CUSTOM_PREFIX}{}", dst.name));
        source_taken.push(src.name.clone());
        // The names the operator wrote (a label, for Pipedrive's keys) name the pair too.
        written_as.push((from.clone(), to.clone(), canonical.clone()));
        push_pair(&mut out, object, canonical, src, dst, true);
    }

    // Standard picklists: the same canonical field on both sides, a list on either.
    for dst in sink.iter().filter(|f| f.writable) {
        let Some(canonical) = &dst.canonical else {
            continue;
        };
        // Only a text field travels as a label: a flag or a number a vendor keeps in a
        // list (Pipedrive's marketing status for the opt-out) is its connector's own mapping.
        let text = object
            .field(canonical)
            .is_some_and(|f| f.ty == FieldType::Text);
        if !text || out.mapped.iter().any(|m| &m.canonical == canonical) {
            continue;
        }
        let Some(src) = source
            .iter()
            .find(|f| f.canonical.as_ref() == Some(canonical))
        else {
            continue;
        };
        let picklist = |f: &VendorField| f.kind == FieldKind::Picklist && !f.options.is_empty();
        if picklist(src) || picklist(dst) || settings.values.contains_key(canonical) {
            source_taken.push(src.name.clone());
            push_pair(&mut out, object, canonical.clone(), src, dst, false);
        }
    }

    // Value tables, by canonical, source or sink field name, or as the field map names them.
    for (field, entries) in &settings.values {
        let named = |m: &&MappedPair| {
            &m.canonical == field
                || &m.source == field
                || &m.sink == field
                || written_as
                    .iter()
                    .any(|(a, b, c)| (a == field || b == field) && c == &m.canonical)
        };
        let Some(pair) = out.mapped.iter().find(named) else {
            errors.push(FieldPlanError::UnknownValueField {
                object,
                field: field.clone(),
            });
            continue;
        };
        let target = |t: &str| (!t.trim().is_empty()).then(|| t.trim().to_owned());
        let at = match out
            .value_maps
            .iter()
            .position(|v| v.canonical == pair.canonical)
        {
            Some(at) => at,
            None => {
                // A table on a text field: the sink takes any text, the table still applies.
                out.value_maps.push(ValueMap {
                    canonical: pair.canonical.clone(),
                    sink_field: pair.sink.clone(),
                    table: Vec::new(),
                    otherwise: None,
                    sink_labels: None,
                });
                out.value_maps.len() - 1
            }
        };
        let map = &mut out.value_maps[at];
        for (from, to) in entries {
            let to = target(to);
            if let (Some(label), Some(labels)) = (&to, &map.sink_labels)
                && !labels.iter().any(|l| same_label(l, label))
            {
                errors.push(FieldPlanError::NoSuchSinkLabel {
                    object,
                    field: field.clone(),
                    sink: map.sink_field.clone(),
                    from: from.clone(),
                });
                continue;
            }
            // Spelt as the sink spells it, so that read-back compares equal.
            let to = to.map(|label| {
                map.sink_labels
                    .as_ref()
                    .and_then(|labels| labels.iter().find(|l| same_label(l, &label)).cloned())
                    .unwrap_or(label)
            });
            if from.trim() == "*" {
                map.otherwise = Some(to);
            } else {
                map.table.push((from.clone(), to));
            }
        }
    }

    out.unmapped = source
        .iter()
        .filter(|f| f.custom && f.canonical.is_none() && !source_taken.contains(&f.name))
        .filter(|f| f.kind.canonical_type().is_some())
        .map(|f| Suggestion {
            source: f.name.clone(),
            label: f.label.clone(),
            sink: nearest_by_label(sink, f).map(|s| s.name.clone()),
        })
        .collect();

    out.errors = errors;
    out
}

/// Adds a carried pair: both bindings, and a value map when the sink keeps a list (or the
/// source's labels must be translated anyway).
fn push_pair(
    out: &mut FieldPlan,
    object: ObjectType,
    canonical: String,
    src: &VendorField,
    dst: &VendorField,
    configured: bool,
) {
    // The sink's type: what is written and read back, so both digests agree. An opt-out
    // stays a flag (or a set of names) whatever field holds it: the consent guard reads it so.
    let names = standard_names(object, src);
    let ty = match crate::model::opt_out(&canonical) {
        Some(o) => o.field_type(),
        None if names => FieldType::Names,
        None => dst.kind.canonical_type().unwrap_or(FieldType::Text),
    };
    let binding = |f: &VendorField| FieldBinding {
        options: if f.kind == FieldKind::Picklist {
            f.options.clone()
        } else {
            Vec::new()
        },
        ..FieldBinding::new(canonical.clone(), f.name.clone(), ty)
    };
    // A standard set of names is read by its connector's own binding, which names its
    // options as the model does; the source's list would read the vendor's labels instead.
    if !names {
        out.source_bindings.push(binding(src));
    }
    out.sink_bindings.push(binding(dst));
    if dst.kind == FieldKind::Picklist || src.kind == FieldKind::Picklist {
        out.value_maps.push(ValueMap {
            canonical: canonical.clone(),
            sink_field: dst.name.clone(),
            table: Vec::new(),
            otherwise: None,
            sink_labels: (dst.kind == FieldKind::Picklist)
                .then(|| dst.options.iter().map(|o| o.label.clone()).collect()),
        });
    }
    out.mapped.push(MappedPair {
        canonical,
        source: src.name.clone(),
        source_kind: src.kind,
        sink: dst.name.clone(),
        sink_kind: dst.kind,
        configured,
    });
}

/// Whether `src` is an opt-out going into a text field: a vendor without a checkbox field
/// (Pipedrive) holds a flag so, and every vendor but HubSpot holds subscription types so. The
/// opt-out travels as a flag or names; the sink writes a flag as `"true"` (only ever when
/// true), names in their canonical form, and reads them back as such.
fn opt_out_into_text(src: &VendorField, dst: &VendorField) -> bool {
    matches!(src.kind, FieldKind::Bool | FieldKind::Text)
        && dst.kind == FieldKind::Text
        && src
            .canonical
            .as_deref()
            .and_then(crate::model::opt_out)
            .is_some()
}

/// Whether `src` is the vendor's multiple-choice list of a standard set of names (a contact's
/// legal basis, [`FieldType::Names`]): its connector reads it by the model's names, which a
/// text field then holds.
fn standard_names(object: ObjectType, src: &VendorField) -> bool {
    src.kind == FieldKind::MultiPicklist
        && src
            .canonical
            .as_deref()
            .and_then(|c| object.field(c))
            .is_some_and(|f| f.ty == FieldType::Names)
}

/// The field a config names: by its name, else by its label when one field has it (Pipedrive's
/// keys are hashes that differ per account; people name its fields by label).
pub fn find<'a>(fields: &'a [VendorField], name: &str) -> Option<&'a VendorField> {
    if let Some(f) = fields.iter().find(|f| f.name == name) {
        return Some(f);
    }
    // By label too as ferry labels a field it creates under that name (`Do_Not_Call__c` →
    // "Do Not Call"), so that the run that created it, and every rerun, finds it whatever
    // name the vendor gave it (`do_not_call`, `Do_Not_Call__c`, a Pipedrive key).
    let created = label_for(name);
    let mut by_label = fields.iter().filter(|f| {
        same_label(&f.label, name) || created.as_deref().is_some_and(|l| same_label(&f.label, l))
    });
    match (by_label.next(), by_label.next()) {
        (Some(f), None) => Some(f),
        _ => None,
    }
}

/// The label a field created under the name `asked` gets: that name, without a vendor's
/// custom-field suffix and with underscores as spaces (`Sales_Region__c` → "Sales Region").
/// Never the source field's label: a rerun finds the field by the name the map gives it, and a
/// sink that names fields by key (Pipedrive) has only the label to find it by.
fn label_for(asked: &str) -> Option<String> {
    let base = asked.strip_suffix("__c").unwrap_or(asked);
    let label = base.replace('_', " ");
    let label = label.trim();
    (!label.is_empty()).then(|| label.to_owned())
}

/// Lowercase letters and digits only, without vendors' custom-field marks (`__c`, `new_`,
/// `cf_`), so that `Favourite_Colour__c`, `favourite_colour` and "Favourite Colour" compare equal.
fn squash(name: &str) -> String {
    let lower = name.to_lowercase();
    let trimmed = lower
        .strip_suffix("__c")
        .unwrap_or(&lower)
        .trim_start_matches("new_")
        .trim_start_matches("cf_");
    trimmed.chars().filter(|c| c.is_alphanumeric()).collect()
}

/// The edit distance between two short strings (for suggestions only).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            previous = here;
        }
    }
    row[b.len()]
}

/// The field whose name or label is closest to `name` (a third of its length at most), of a
/// kind that `kind` fits when given.
fn nearest(fields: &[VendorField], name: &str, kind: Option<FieldKind>) -> Option<String> {
    let target = squash(name);
    fields
        .iter()
        .filter(|f| kind.is_none_or(|k| k.fits(f.kind)))
        .map(|f| {
            let d = distance(&squash(&f.name), &target).min(distance(&squash(&f.label), &target));
            (d, f)
        })
        .filter(|(d, _)| *d <= target.chars().count().div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, f)| f.name.clone())
}

fn nearest_by_label<'a>(sink: &'a [VendorField], src: &VendorField) -> Option<&'a VendorField> {
    let name = nearest(
        &sink
            .iter()
            .filter(|f| f.writable)
            .cloned()
            .collect::<Vec<_>>(),
        &src.label,
        Some(src.kind),
    )
    .or_else(|| nearest(sink, &src.name, Some(src.kind)))?;
    sink.iter().find(|f| f.name == name && f.writable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fields::PicklistOption;

    fn field(name: &str, label: &str, kind: FieldKind, canonical: Option<&str>) -> VendorField {
        VendorField {
            name: name.into(),
            label: label.into(),
            kind,
            vendor_type: kind.as_str().into(),
            custom: canonical.is_none(),
            writable: true,
            options: Vec::new(),
            canonical: canonical.map(Into::into),
        }
    }

    fn picklist(name: &str, canonical: Option<&str>, options: &[(&str, &str)]) -> VendorField {
        VendorField {
            options: options
                .iter()
                .map(|(value, label)| PicklistOption {
                    value: (*value).into(),
                    label: (*label).into(),
                })
                .collect(),
            ..field(name, name, FieldKind::Picklist, canonical)
        }
    }

    fn hubspot() -> Vec<VendorField> {
        vec![
            field("name", "Name", FieldKind::Text, Some("name")),
            picklist(
                "industry",
                Some("industry"),
                &[
                    ("COMPUTER_SOFTWARE", "Computer Software"),
                    ("RETAIL", "Retail"),
                ],
            ),
            field("region", "Region", FieldKind::Text, None),
            field("seats", "Seats", FieldKind::Decimal, None),
            picklist("tier", None, &[("gold", "Gold"), ("silver", "Silver")]),
        ]
    }

    fn salesforce() -> Vec<VendorField> {
        vec![
            field("Name", "Account Name", FieldKind::Text, Some("name")),
            picklist(
                "Industry",
                Some("industry"),
                &[("Technology", "Technology"), ("Retail", "Retail")],
            ),
            field("Region__c", "Region", FieldKind::Text, None),
            field("Seats__c", "Seats", FieldKind::Integer, None),
            picklist("Tier__c", None, &[("Gold", "Gold"), ("Silver", "Silver")]),
        ]
    }

    fn input<'a>(
        source: &'a [VendorField],
        sink: &'a [VendorField],
        settings: &'a FieldSettings,
    ) -> PlanInput<'a> {
        PlanInput {
            object: ObjectType::COMPANIES,
            source_vendor: "salesforce",
            source,
            sink_vendor: "hubspot",
            sink,
            settings,
        }
    }

    fn pairs(pairs: &[(&str, &str)]) -> FieldSettings {
        FieldSettings {
            pairs: pairs
                .iter()
                .map(|(a, b)| ((*a).into(), (*b).into()))
                .collect(),
            values: BTreeMap::new(),
        }
    }

    #[test]
    fn an_opt_out_maps_to_a_custom_field_but_nothing_else_may_write_a_sink_opt_out() {
        let sf = vec![
            field(
                "DoNotCall",
                "Do Not Call",
                FieldKind::Bool,
                Some("do_not_call"),
            ),
            field("Newsletter__c", "Newsletter", FieldKind::Bool, None),
        ];
        let hs = vec![
            field("ferry_do_not_call", "Do not call", FieldKind::Bool, None),
            field(
                "hs_email_optout",
                "Unsubscribed",
                FieldKind::Bool,
                Some("email_opt_out"),
            ),
        ];
        let contacts = |settings: &FieldSettings| {
            plan(&PlanInput {
                object: ObjectType::CONTACTS,
                ..input(&sf, &hs, settings)
            })
        };
        // The opt-out travels under its own canonical name, so the guard sees the sink hold it.
        let held = contacts(&pairs(&[("DoNotCall", "ferry_do_not_call")]));
        assert!(held.errors.is_empty(), "{:?}", held.errors);
        assert_eq!(held.sink_bindings[0].canonical, "do_not_call");
        // Another field into the sink's opt-out could write "not opted out" over it.
        let weakened = contacts(&pairs(&[("Newsletter__c", "hs_email_optout")]));
        assert!(
            matches!(&weakened.errors[..], [FieldPlanError::ConsentWeakened { opt_out, .. }] if opt_out == "email_opt_out"),
            "{:?}",
            weakened.errors
        );
        assert!(
            weakened.errors[0]
                .to_string()
                .contains("`fields.contacts.Newsletter__c`")
        );
    }

    #[test]
    fn an_opt_out_may_go_into_a_text_field_as_a_flag_and_a_created_field_is_found_by_its_label() {
        let sf = vec![
            field(
                "DoNotCall",
                "Do Not Call",
                FieldKind::Bool,
                Some("do_not_call"),
            ),
            field("Newsletter__c", "Newsletter", FieldKind::Bool, None),
        ];
        // Pipedrive: a text field created for `Ferry_Do_Not_Call`, named by a key.
        let pd = vec![
            field("9f3a", "Ferry Do Not Call", FieldKind::Text, None),
            field("77b1", "News", FieldKind::Text, None),
        ];
        let contacts = |settings: &FieldSettings| {
            plan(&PlanInput {
                object: ObjectType::CONTACTS,
                ..input(&sf, &pd, settings)
            })
        };
        let held = contacts(&pairs(&[("DoNotCall", "Ferry_Do_Not_Call")]));
        assert!(held.errors.is_empty(), "{:?}", held.errors);
        assert_eq!(held.sink_bindings[0].vendor, "9f3a");
        // Read and written as a flag on both sides, whatever field holds it.
        assert!(
            held.source_bindings
                .iter()
                .chain(&held.sink_bindings)
                .all(|b| b.canonical == "do_not_call" && b.ty == FieldType::Bool)
        );
        // Only an opt-out: another flag into text is a mismatch.
        let other = contacts(&pairs(&[("Newsletter__c", "News")]));
        assert!(
            matches!(&other.errors[..], [FieldPlanError::TypeMismatch { .. }]),
            "{:?}",
            other.errors
        );
    }

    #[test]
    fn mapped_fields_bind_both_sides_under_one_canonical_name() {
        let (sf, hs) = (salesforce(), hubspot());
        let settings = pairs(&[
            ("Region__c", "region"),
            ("Seats__c", "seats"),
            ("Tier__c", "tier"),
        ]);
        let plan = plan(&input(&sf, &hs, &settings));
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        let names: Vec<(&str, &str, &str)> = plan
            .mapped
            .iter()
            .map(|m| (m.canonical.as_str(), m.source.as_str(), m.sink.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("custom.region", "Region__c", "region"),
                ("custom.seats", "Seats__c", "seats"),
                ("custom.tier", "Tier__c", "tier"),
                ("industry", "Industry", "industry"),
            ]
        );
        // An integer into a decimal field travels as a decimal on both sides.
        assert_eq!(plan.source_bindings[1].ty, FieldType::Decimal);
        assert_eq!(plan.sink_bindings[1].ty, FieldType::Decimal);
        // Each side's picklist translates its own internal values.
        assert_eq!(plan.sink_bindings[2].option_value("gold"), Some("gold"));
        assert_eq!(
            plan.source_bindings[3].option_value("technology"),
            Some("Technology")
        );
        assert!(plan.unmapped.is_empty());
    }

    #[test]
    fn picklists_map_by_label_then_by_table_and_refuse_the_rest() {
        let (sf, hs) = (salesforce(), hubspot());
        let mut settings = pairs(&[]);
        let plan_of = |settings: &FieldSettings| plan(&input(&sf, &hs, settings));
        let industry = plan_of(&settings).value_maps[0].clone();
        assert_eq!(industry.apply(" retail "), Mapped::To("Retail".into()));
        assert_eq!(industry.apply("Technology"), Mapped::Unmapped);
        assert_eq!(industry.unmapped(["Technology", "Retail"]), ["Technology"]);

        settings.values.insert(
            "industry".into(),
            vec![("Technology".into(), "computer software".into())],
        );
        let industry = plan_of(&settings).value_maps[0].clone();
        assert_eq!(
            industry.apply("technology"),
            Mapped::To("Computer Software".into())
        );
        assert_eq!(industry.apply("Banking"), Mapped::Unmapped);

        settings
            .values
            .get_mut("industry")
            .unwrap()
            .push(("*".into(), String::new()));
        let industry = plan_of(&settings).value_maps[0].clone();
        assert_eq!(industry.apply("Banking"), Mapped::Empty);
    }

    #[test]
    fn a_value_table_may_name_a_field_as_the_field_map_does() {
        // Pipedrive names custom fields by hashed keys: the operator maps and keys by label.
        let mut pd = salesforce();
        pd.push(VendorField {
            label: "Customer Tier".into(),
            ..picklist("9f3c0e", None, &[("17", "Gold"), ("18", "Silver")])
        });
        let mut settings = pairs(&[("Customer Tier", "tier")]);
        settings.values.insert(
            "Customer Tier".into(),
            vec![("Silver".into(), "Gold".into())],
        );
        let planned = plan(&input(&pd, &hubspot(), &settings));
        assert!(planned.errors.is_empty(), "{:?}", planned.errors);
        let tier = planned
            .value_maps
            .iter()
            .find(|v| v.canonical == "custom.tier")
            .expect("a value map for the pair");
        assert_eq!(tier.apply("Silver"), Mapped::To("Gold".into()));
    }

    #[test]
    fn mistakes_name_both_fields_and_kinds_and_are_all_listed() {
        let (sf, hs) = (salesforce(), hubspot());
        let mut settings = pairs(&[
            ("Region__c", "seats"),
            ("Regoin__c", "region"),
            ("Seats__c", "Loyalty_Points"),
        ]);
        settings.values.insert(
            "industry".into(),
            vec![("Technology".into(), "Tech".into())],
        );
        let errors = plan(&input(&sf, &hs, &settings)).errors;
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(text.len(), 4, "{text:#?}");
        assert!(
            text[0]
                .contains("`Region__c` (text) cannot be written into sink field `seats` (decimal)"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("no companies field `Regoin__c` (did you mean `Region__c`?)"),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("has no companies field `Loyalty_Points`"),
            "{}",
            text[2]
        );
        assert!(
            text[2].contains("create_missing_fields = true"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("`values.companies.industry`"),
            "{}",
            text[3]
        );
    }

    #[test]
    fn a_created_field_is_labelled_as_the_map_names_it_so_a_rerun_finds_it() {
        assert_eq!(
            label_for("Sales_Region__c").as_deref(),
            Some("Sales Region")
        );
        assert_eq!(label_for("Sales Region").as_deref(), Some("Sales Region"));
        assert_eq!(label_for("__c"), None);
        // Created in a sink that already has a field with the source's label ("Tier"), then
        // found again by the label it was given, not refused as ambiguous or created twice.
        let (sf, mut hs) = (salesforce(), hubspot());
        let settings = pairs(&[("Tier__c", "Old Tier")]);
        let first = plan(&input(&sf, &hs, &settings));
        let new = &first.to_create[0];
        assert_eq!(
            (new.name.as_str(), new.label.as_str()),
            ("Old Tier", "Old Tier")
        );
        hs.push(VendorField {
            name: "old_tier".into(),
            label: new.label.clone(),
            ..picklist("old_tier", None, &[("gold", "Gold"), ("silver", "Silver")])
        });
        assert!(plan(&input(&sf, &hs, &settings)).errors.is_empty());
    }

    #[test]
    fn a_missing_sink_field_is_planned_for_creation_with_the_source_kind_and_options() {
        let (sf, mut hs) = (salesforce(), hubspot());
        hs.retain(|f| f.name != "tier");
        let settings = pairs(&[("Tier__c", "tier")]);
        let first = plan(&input(&sf, &hs, &settings));
        assert!(matches!(
            first.errors[0],
            FieldPlanError::UnknownSinkField { .. }
        ));
        assert_eq!(first.to_create[0].name, "tier");
        assert_eq!(first.to_create[0].kind, FieldKind::Picklist);
        assert_eq!(first.to_create[0].options.len(), 2);
        assert_eq!(
            first.to_create[0].label, "tier",
            "the name the map asks for"
        );
        // The fields to create are known from the same inputs.
        let mut created = hs.clone();
        created.push(picklist(
            "tier",
            None,
            &[("gold", "Gold"), ("silver", "Silver")],
        ));
        assert!(plan(&input(&sf, &created, &settings)).errors.is_empty());
    }

    #[test]
    fn fields_are_found_by_label_and_unmapped_ones_get_suggestions() {
        let (sf, hs) = (salesforce(), hubspot());
        let plan = plan(&input(&sf, &hs, &pairs(&[("Region", "Region")])));
        assert_eq!(plan.mapped[0].source, "Region__c");
        assert_eq!(plan.mapped[0].sink, "region");
        let suggested: Vec<(&str, Option<&str>)> = plan
            .unmapped
            .iter()
            .map(|s| (s.source.as_str(), s.sink.as_deref()))
            .collect();
        assert_eq!(
            suggested,
            [("Seats__c", Some("seats")), ("Tier__c", Some("tier"))]
        );
        assert_eq!(squash("Favourite_Colour__c"), squash("favourite colour"));
    }
}
