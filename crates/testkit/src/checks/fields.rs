//! Fields as data: the connector lists its vendor's fields (the emulator's seeded custom fields
//! among them, with their kinds and picklist options), reads and writes the fields it is told
//! to map, with picklist values as labels, refuses only the record whose label the sink's list
//! lacks, and creates a field its vendor then lists and stores.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ferry_core::fields::NO_SUCH_OPTION;
use ferry_core::{
    FieldBinding, FieldKind, NewField, ObjectType, Projection, Value, VendorField, record_digest,
};
use ferry_sandbox::faults::Faults;
use ferry_sandbox::seed::{CUSTOM_FIELDS, CustomKind, SeedData, TIERS};

use super::{
    as_compared, base_objects, differing_fields, fit, prepare, read_all, read_back_all, upsert,
};
use crate::data;
use crate::harness::{Ctx, Stop, Verdict, ensure};

/// The canonical name the check gives a seeded custom field: `custom.<label>`.
fn canonical(label: &str) -> String {
    format!("custom.{}", label.to_lowercase().replace(' ', "_"))
}

/// The seeded custom values of `data`'s records of `object`, by canonical name, as the
/// labels and numbers a source should deliver.
fn seeded_values(data: &SeedData, object: ObjectType) -> BTreeMap<String, Vec<Value>> {
    let mut values: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut add = |label: &str, value: Option<Value>| {
        if let Some(v) = value {
            values.entry(canonical(label)).or_default().push(v);
        }
    };
    let number = |n: Option<u32>| n.map(|n| Value::Integer(i64::from(n)));
    if object == ObjectType::COMPANIES {
        for c in &data.companies {
            add("Region", c.region.clone().map(Value::Text));
            add("Seats", number(c.seats));
            add("Tier", c.tier.map(|t| Value::Text(t.to_owned())));
        }
    } else if object == ObjectType::CONTACTS {
        for c in &data.contacts {
            add(
                "Favourite Colour",
                c.favourite_colour.clone().map(Value::Text),
            );
            add("Loyalty Points", number(c.loyalty_points));
        }
    }
    values
}

/// A number as the check compares it: vendors keep "Seats" as a whole or a decimal number.
fn comparable(value: &Value) -> Value {
    match value {
        Value::Decimal(n) if n.fract() == 0.0 => Value::Integer(*n as i64),
        other => other.clone(),
    }
}

/// The bindings of `object`'s seeded custom fields, found by label in `fields`.
fn bindings(fields: &[VendorField], object: ObjectType) -> Result<Vec<FieldBinding>, Stop> {
    let mut out = Vec::new();
    for custom in CUSTOM_FIELDS.iter().filter(|c| c.object == object.as_str()) {
        let listed: Vec<&VendorField> = fields
            .iter()
            .filter(|f| f.label == custom.label && f.custom)
            .collect();
        ensure!(
            listed.len() == 1,
            "describe({object}) lists {} custom fields labelled `{}`, not one",
            listed.len(),
            custom.label
        );
        let field = listed[0];
        let kind_ok = match custom.kind {
            CustomKind::Text => field.kind == FieldKind::Text,
            CustomKind::Number => matches!(field.kind, FieldKind::Integer | FieldKind::Decimal),
            CustomKind::Picklist => {
                let labels: BTreeSet<&str> =
                    field.options.iter().map(|o| o.label.as_str()).collect();
                field.kind == FieldKind::Picklist && labels == TIERS.iter().copied().collect()
            }
        };
        ensure!(
            kind_ok && field.writable,
            "describe({object}): `{}` ({}) is {} ({}, {} options{}), expected a writable {:?} field",
            field.name,
            custom.label,
            field.kind,
            field.vendor_type,
            field.options.len(),
            if field.writable { "" } else { ", read-only" },
            custom.kind
        );
        let ty = field
            .kind
            .canonical_type()
            .unwrap_or(ferry_core::FieldType::Text);
        out.push(FieldBinding {
            options: field.options.clone(),
            ..FieldBinding::new(canonical(custom.label), field.name.clone(), ty)
        });
    }
    Ok(out)
}

/// The check.
pub(crate) async fn fields(ctx: Arc<Ctx>) -> Verdict {
    let seed = data::clean(40);
    // The source reads a seeded account; the sink writes an empty one (the same records in
    // the seeded account would collide on their unique emails).
    let seeded = ctx.serve(Faults::default(), Some(&seed)).await?;
    let empty = ctx.serve(Faults::default(), None).await?;
    let source = ctx.source(&seeded, None)?;
    let sink = ctx.sink(&empty, None)?;
    let mut listed = 0usize;
    let mut types: BTreeMap<String, ferry_core::FieldType> = BTreeMap::new();
    for object in base_objects(&ctx) {
        let from = source
            .describe(object)
            .await
            .map_err(|e| ctx.error(&format!("source describe({object})"), &e))?;
        let to = sink
            .describe(object)
            .await
            .map_err(|e| ctx.error(&format!("sink describe({object})"), &e))?;
        let kinds = |fields: &[VendorField]| -> BTreeSet<(String, &str)> {
            fields
                .iter()
                .map(|f| (f.label.clone(), f.kind.as_str()))
                .collect()
        };
        ensure!(
            kinds(&from) == kinds(&to),
            "describe({object}) lists different fields as a source and as a sink"
        );
        for f in from.iter().chain(&to) {
            if let Some(c) = &f.canonical {
                ensure!(
                    object.field(c).is_some(),
                    "describe({object}): `{}` maps to `{c}`, which is no canonical {object} field",
                    f.name
                );
            }
        }
        listed += to.len();
        // Each account names its fields its own way (Pipedrive's keys differ per account).
        let mapped = bindings(&to, object)?;
        types.extend(mapped.iter().map(|b| (b.canonical.to_string(), b.ty)));
        source
            .map_fields(object, &bindings(&from, object)?)
            .map_err(|e| ctx.error(&format!("source map_fields({object})"), &e))?;
        sink.map_fields(object, &mapped)
            .map_err(|e| ctx.error(&format!("sink map_fields({object})"), &e))?;
        let stored = super::capability(&ctx, sink.as_ref(), object).await?.stored;
        for b in &mapped {
            ensure!(
                stored.iter().any(|s| *s == b.canonical),
                "after map_fields, the sink's stored_fields({object}) leave out `{}`: checksums would not cover it",
                b.canonical
            );
        }

        // As a source: the seeded values, picklists as labels.
        let expected = seeded_values(&seed, object);
        let read = read_all(&ctx, source.as_ref(), object, 50).await?;
        for b in &mapped {
            let mut got: Vec<Value> = read
                .records
                .iter()
                .filter_map(|r| r.get(&b.canonical).map(comparable))
                .collect();
            let mut want: Vec<Value> = expected
                .get(b.canonical.as_ref())
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(comparable)
                .collect();
            let key = |v: &Value| format!("{v:?}");
            got.sort_by_key(key);
            want.sort_by_key(key);
            ensure!(
                got == want,
                "reading {object}: `{}` ({}) held {} values, {} seeded{}",
                b.canonical,
                b.vendor,
                got.len(),
                want.len(),
                if got.len() == want.len() {
                    " (different ones)"
                } else {
                    ""
                }
            );
        }
    }

    // As a sink: written, read back equal; an unknown label refuses its record only.
    prepare(&ctx, sink.as_ref()).await?;
    let (companies, contacts) = data::canonical_records(&seed);
    for (object, mut records) in [
        (ObjectType::COMPANIES, fit(&ctx, companies)),
        (ObjectType::CONTACTS, fit(&ctx, contacts)),
    ] {
        if !base_objects(&ctx).contains(&object) {
            continue;
        }
        let values = seeded_values(&seed, object);
        for (name, list) in &values {
            for (record, value) in records.iter_mut().zip(list.iter().cycle()) {
                // As the engine sends it: a whole number into a decimal field as a decimal.
                let value = match (types.get(name), value) {
                    (Some(ferry_core::FieldType::Decimal), Value::Integer(n)) => {
                        Value::Decimal(*n as f64)
                    }
                    _ => value.clone(),
                };
                record.set_named(name.clone(), value);
            }
        }
        // Contacts would need their companies; the reference is not what this check is about.
        for r in &mut records {
            r.fields.remove(ferry_core::field::COMPANY);
        }
        records.truncate(8);
        let refused_at = if object == ObjectType::COMPANIES {
            let mut odd = records[0].clone();
            odd.source_id = "co-platinum".into();
            odd.set_named(canonical("Tier"), Value::Text("Platinum".into()));
            records.push(odd);
            Some(records.len() - 1)
        } else {
            None
        };
        let outcomes = upsert(&ctx, sink.as_ref(), object, &records).await?;
        for (i, o) in outcomes.iter().enumerate() {
            match (&o.result, Some(i) == refused_at) {
                (Ok(_), false) => {}
                (Err(r), true) => ensure!(
                    r.code == NO_SUCH_OPTION && !r.reason.contains("Platinum"),
                    "the Tier label the list lacks was refused as {} ({}), not {NO_SUCH_OPTION} without the value",
                    r.code,
                    r.reason
                ),
                (Ok(_), true) => {
                    return Err(Stop::Fail(
                        "a Tier label the picklist lacks was written, not refused".into(),
                    ));
                }
                (Err(r), false) => {
                    return Err(Stop::Fail(format!(
                        "{object} {} was refused: {} {}",
                        r.source_id, r.code, r.reason
                    )));
                }
            }
        }
        if let Some(at) = refused_at {
            records.remove(at);
        }
        let ids: Vec<String> = records.iter().map(|r| r.source_id.clone()).collect();
        let back = read_back_all(&ctx, sink.as_ref(), object, &ids).await?;
        let projection =
            Projection::new(super::capability(&ctx, sink.as_ref(), object).await?.stored);
        for sent in &records {
            let got = back.iter().find(|r| r.source_id == sent.source_id);
            let Some(got) = got else {
                return Err(Stop::Fail(format!(
                    "{object} {} was not read back",
                    sent.source_id
                )));
            };
            let got = as_compared(sent, got);
            ensure!(
                record_digest(sent, &projection) == record_digest(&got, &projection),
                "{object} {} read back differs in {:?}",
                sent.source_id,
                differing_fields(sent, &got, &projection)
            );
        }
    }

    // A field created through the metadata API is then listed and stored.
    let object = base_objects(&ctx)[0];
    let new = NewField {
        name: "ferry_check_note".into(),
        label: "Ferry Check Note".into(),
        kind: FieldKind::Text,
        options: Vec::new(),
    };
    let made = sink
        .create_field(object, &new)
        .await
        .map_err(|e| ctx.error(&format!("create_field({object})"), &e))?;
    let after = sink
        .describe(object)
        .await
        .map_err(|e| ctx.error(&format!("describe({object}) after create_field"), &e))?;
    ensure!(
        after
            .iter()
            .any(|f| f.name == made.name && f.kind == FieldKind::Text && f.custom),
        "create_field({object}) answered `{}`, which describe then does not list as a custom text field",
        made.name
    );
    let mut mapped = bindings(&after, object)?;
    mapped.push(FieldBinding::new(
        "custom.ferry_check_note",
        made.name.clone(),
        ferry_core::FieldType::Text,
    ));
    sink.map_fields(object, &mapped)
        .map_err(|e| ctx.error(&format!("sink map_fields({object}) with the new field"), &e))?;
    let (companies, contacts) = data::canonical_records(&seed);
    let mut record = if object == ObjectType::COMPANIES {
        companies[1].clone()
    } else {
        contacts[1].clone()
    };
    record.fields.remove(ferry_core::field::COMPANY);
    record.set_named(
        "custom.ferry_check_note",
        Value::Text("written by the check".into()),
    );
    let outcomes = upsert(&ctx, sink.as_ref(), object, std::slice::from_ref(&record)).await?;
    ensure!(
        outcomes.iter().all(|o| o.result.is_ok()),
        "a record with the created field was refused"
    );
    let back = read_back_all(&ctx, sink.as_ref(), object, &[record.source_id.clone()]).await?;
    ensure!(
        back.first().and_then(|r| r.get("custom.ferry_check_note"))
            == record.get("custom.ferry_check_note"),
        "the created field's value was not read back"
    );
    Ok(format!(
        "{listed} fields listed; custom text, number and picklist fields read, written and read back; a field created"
    ))
}
