//! SHA-256 checksums over a canonical encoding of records, and an order-independent aggregate.
//!
//! The encoding never goes through `serde_json::to_vec` of a map: key order there depends on
//! crate features elsewhere in the build. Instead fields are visited in sorted order and every
//! part is length-prefixed and type-tagged, so two different records cannot encode the same.

use std::fmt;

use serde::{Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::model::{FieldName, FieldType, Fields, ObjectType, Record, Value};

/// Version tag hashed first, so a change of encoding can never compare equal to an old digest.
const ENCODING_TAG: &[u8] = b"ferry.record.v1\0";

/// A record's SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Which fields a checksum covers: those the sink stores and can return on read-back.
///
/// A source may carry fields a sink cannot store (system timestamps, say); hashing only the
/// stored ones makes the digest before the write comparable with the one after read-back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Projection {
    fields: Vec<String>,
}

impl Projection {
    /// A projection over the given canonical field names.
    pub fn new<I, S>(fields: I) -> Projection
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut fields: Vec<String> = fields.into_iter().map(Into::into).collect();
        fields.sort();
        fields.dedup();
        Projection { fields }
    }

    /// Whether the projection covers `field`.
    pub fn contains(&self, field: &str) -> bool {
        self.fields
            .binary_search_by(|f| f.as_str().cmp(field))
            .is_ok()
    }

    /// The fields of `fields` the projection does not cover, in name order: one pass over
    /// both, sorted alike (a binary search per field cost a few percent of a run).
    pub fn uncovered<'a>(
        &'a self,
        fields: &'a Fields,
    ) -> impl Iterator<Item = (&'a FieldName, &'a Value)> {
        let mut covered = self.fields.iter().map(String::as_str).peekable();
        fields.iter().filter(move |(name, _)| {
            let name: &str = name;
            while covered.next_if(|f| *f < name).is_some() {}
            covered.peek() != Some(&name)
        })
    }

    /// The covered field names, sorted.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }
}

/// Hashes `record`'s fields that `projection` covers, with its object type and source id.
pub fn record_digest(record: &Record, projection: &Projection) -> Digest {
    let mut h = Sha256::new();
    h.update(ENCODING_TAG);
    put_str(&mut h, record.object.as_str());
    put_str(&mut h, &record.source_id);
    // BTreeMap iterates in key order, which is the canonical order. The projection is sorted
    // the same way, so one pass over both finds the covered fields (a binary search per field
    // was a tenth of the time spent on digests).
    let mut covered = projection.fields.iter().map(String::as_str).peekable();
    // Most objects have no rich text: only theirs look up each field's type.
    let rich = has_rich_text(record.object);
    for (name, value) in &record.fields {
        let name: &str = name;
        while covered.next_if(|f| *f < name).is_some() {}
        if covered.peek() != Some(&name) || is_blank(value) {
            continue;
        }
        if let (true, Value::Text(text)) = (rich, value)
            && is_rich_text(record.object, name)
        {
            // The plain form: the same note in HTML and in plain text hashes the same.
            let plain = crate::richtext::to_plain(text);
            if !plain.is_empty() {
                put_str(&mut h, name);
                h.update([b'T']);
                put_str(&mut h, &plain);
            }
            continue;
        }
        put_str(&mut h, name);
        put_value(&mut h, value);
    }
    Digest(h.finalize().into())
}

/// Whether `object` has a [`FieldType::RichText`] field.
fn has_rich_text(object: ObjectType) -> bool {
    object
        .fields()
        .iter()
        .any(|f| matches!(f.ty, FieldType::RichText))
}

/// Whether `field` of `object` is a [`FieldType::RichText`] field.
fn is_rich_text(object: ObjectType, field: &str) -> bool {
    object
        .field(field)
        .is_some_and(|f| f.ty == FieldType::RichText)
}

/// What the checksum covers of `field`'s value: `None` for a blank value (see [`is_blank`]),
/// the plain form ([`crate::richtext::to_plain`]) of a rich-text field's text, else the value.
/// Two values hash the same exactly when these are equal, so a mismatch names only the fields
/// that really differ.
pub fn as_hashed(object: ObjectType, field: &str, value: Option<&Value>) -> Option<Value> {
    let value = value.filter(|v| !is_blank(v))?;
    match value {
        Value::Text(text) if is_rich_text(object, field) => {
            Some(Value::Text(crate::richtext::to_plain(text))).filter(|v| !is_blank(v))
        }
        other => Some(other.clone()),
    }
}

/// Whether a value means the same as no value to every vendor: empty text (vendors disagree on
/// `""` and `null`), and a `false` flag (a Salesforce or Dataverse checkbox cannot be null, so an
/// absent opt-out reads back as `false`; a `true` flag is always hashed, so an opt-out that did
/// not arrive is always caught).
pub fn is_blank(value: &Value) -> bool {
    match value {
        Value::Text(s) | Value::Reference(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Links(links) => links.is_empty(),
        Value::Stage(id) => id.pipeline.is_empty() && id.stage.is_empty(),
        _ => false,
    }
}

fn put_str(h: &mut Sha256, s: &str) {
    h.update((s.len() as u64).to_be_bytes());
    h.update(s.as_bytes());
}

fn put_value(h: &mut Sha256, value: &Value) {
    match value {
        Value::Text(s) => {
            h.update([b'T']);
            put_str(h, s);
        }
        Value::Reference(s) => {
            h.update([b'R']);
            put_str(h, s);
        }
        Value::Links(links) => {
            // A set: vendors list associations in no promised order, so they hash sorted.
            let mut sorted: Vec<&crate::model::Link> = links.iter().collect();
            sorted.sort_unstable();
            sorted.dedup();
            h.update([b'L']);
            h.update((sorted.len() as u64).to_be_bytes());
            for link in sorted {
                put_str(h, link.object.as_str());
                put_str(h, &link.id);
            }
        }
        Value::Bool(b) => h.update([b'B', u8::from(*b)]),
        Value::Integer(n) => {
            h.update([b'I']);
            h.update(n.to_be_bytes());
        }
        Value::Decimal(n) => {
            h.update([b'D']);
            // Shortest round-trip form: equal numbers hash equal however the vendor spelled them.
            put_str(h, &crate::model::format_decimal(*n));
        }
        Value::Timestamp(ms) => {
            h.update([b'S']);
            h.update(ms.to_be_bytes());
        }
        Value::Date(days) => {
            h.update([b'Y']);
            h.update(days.to_be_bytes());
        }
        Value::Stage(id) => {
            h.update([b'G']);
            put_str(h, &id.pipeline);
            put_str(h, &id.stage);
        }
    }
}

/// An order-independent digest of a set of records: the sum of their digests modulo 2^256,
/// with a count.
///
/// A sum, unlike XOR, does not cancel when the same record appears twice, and it can be built
/// from batches in any order and merged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AggregateDigest {
    limbs: [u64; 4],
    count: u64,
}

impl AggregateDigest {
    /// Adds one record digest.
    pub fn add(&mut self, digest: &Digest) {
        let mut carry = 0u128;
        for i in (0..4).rev() {
            let limb = u64::from_be_bytes(digest.0[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
            let sum = self.limbs[i] as u128 + limb as u128 + carry;
            self.limbs[i] = sum as u64;
            carry = sum >> 64;
        }
        self.count += 1;
    }

    /// Merges another aggregate into this one.
    pub fn merge(&mut self, other: &AggregateDigest) {
        let mut carry = 0u128;
        for i in (0..4).rev() {
            let sum = self.limbs[i] as u128 + other.limbs[i] as u128 + carry;
            self.limbs[i] = sum as u64;
            carry = sum >> 64;
        }
        self.count += other.count;
    }

    /// How many record digests were added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The sum as 64 hex digits.
    pub fn hex(&self) -> String {
        self.limbs.iter().map(|l| format!("{l:016x}")).collect()
    }
}

impl Serialize for AggregateDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("sha256-sum:{}:{}", self.count, self.hex()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::field;

    fn contact(id: &str, email: &str) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::EMAIL, Value::Text(email.into()));
        r.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        r.set(field::CREATED_AT, Value::Timestamp(1_654_094_108_469));
        r
    }

    fn all() -> Projection {
        Projection::new(ObjectType::CONTACTS.fields().iter().map(|f| f.name))
    }

    #[test]
    fn insertion_order_does_not_change_the_digest() {
        let a = contact("1", "a@example.com");
        let mut b = Record::new(ObjectType::CONTACTS, "1");
        b.set(field::CREATED_AT, Value::Timestamp(1_654_094_108_469));
        b.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        b.set(field::LAST_NAME, Value::Text("Gilmore".into()));
        b.set(field::EMAIL, Value::Text("a@example.com".into()));
        assert_eq!(record_digest(&a, &all()), record_digest(&b, &all()));
    }

    #[test]
    fn any_change_changes_the_digest() {
        let base = record_digest(&contact("1", "a@example.com"), &all());
        assert_ne!(base, record_digest(&contact("2", "a@example.com"), &all()));
        assert_ne!(base, record_digest(&contact("1", "b@example.com"), &all()));
        let mut flipped = contact("1", "a@example.com");
        flipped.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert_ne!(
            base,
            record_digest(&flipped, &all()),
            "an opt-out change must be caught"
        );
        let mut company = contact("1", "a@example.com");
        company.object = ObjectType::COMPANIES;
        assert_ne!(base, record_digest(&company, &all()));
    }

    #[test]
    fn type_tags_and_length_prefixes_keep_values_apart() {
        let mut text = Record::new(ObjectType::CONTACTS, "1");
        text.set(field::COMPANY, Value::Text("42".into()));
        let mut reference = Record::new(ObjectType::CONTACTS, "1");
        reference.set(field::COMPANY, Value::Reference("42".into()));
        assert_ne!(
            record_digest(&text, &all()),
            record_digest(&reference, &all())
        );

        let mut split_a = Record::new(ObjectType::CONTACTS, "1");
        split_a.set(field::FIRST_NAME, Value::Text("ab".into()));
        split_a.set(field::LAST_NAME, Value::Text("c".into()));
        let mut split_b = Record::new(ObjectType::CONTACTS, "1");
        split_b.set(field::FIRST_NAME, Value::Text("a".into()));
        split_b.set(field::LAST_NAME, Value::Text("bc".into()));
        assert_ne!(
            record_digest(&split_a, &all()),
            record_digest(&split_b, &all())
        );
    }

    #[test]
    fn dates_and_stages_hash_apart_from_other_values() {
        let deal = |value: Value| {
            let mut r = Record::new(ObjectType::DEALS, "d-1");
            r.set(field::CLOSE_DATE, value);
            let projection = Projection::new(ObjectType::DEALS.fields().iter().map(|f| f.name));
            record_digest(&r, &projection)
        };
        let day = deal(Value::Date(19_782));
        assert_ne!(day, deal(Value::Date(19_783)));
        assert_ne!(day, deal(Value::Integer(19_782)));
        assert_ne!(day, deal(Value::Timestamp(19_782)));
        assert_ne!(day, deal(Value::Text("2024-02-29".into())));
        let stage = |pipeline: &str, stage: &str| deal(Value::stage(pipeline, stage));
        assert_ne!(stage("ab", "c"), stage("a", "bc"));
        assert_ne!(stage("p", "won"), stage("p", "lost"));
        assert_ne!(stage("p", "won"), deal(Value::Text("won".into())));
        assert_eq!(
            stage("", ""),
            deal(Value::Text(String::new())),
            "no stage is no value"
        );
    }

    #[test]
    fn links_hash_as_a_set_and_apart_from_a_bare_reference() {
        use crate::model::Link;
        let link = |object, id: &str| Link {
            object,
            id: id.into(),
        };
        let with = |links: Vec<Link>| {
            let mut r = Record::new(ObjectType::CONTACTS, "1");
            r.set(field::COMPANY, Value::Links(links));
            record_digest(&r, &all())
        };
        let a = link(ObjectType::COMPANIES, "42");
        let b = link(ObjectType::CONTACTS, "7");
        // Vendors list associations in no promised order, and may repeat one.
        assert_eq!(
            with(vec![a.clone(), b.clone()]),
            with(vec![b.clone(), a.clone(), a.clone()])
        );
        assert_ne!(with(vec![a.clone(), b.clone()]), with(vec![a.clone()]));
        // The same id of another object is another link.
        assert_ne!(with(vec![a]), with(vec![link(ObjectType::CONTACTS, "42")]));
        let mut bare = Record::new(ObjectType::CONTACTS, "1");
        bare.set(field::COMPANY, Value::Reference("42".into()));
        assert_ne!(
            record_digest(&bare, &all()),
            with(vec![link(ObjectType::COMPANIES, "42")])
        );
        // No links is no value, as empty text is.
        assert_eq!(
            with(vec![]),
            record_digest(&Record::new(ObjectType::CONTACTS, "1"), &all())
        );
    }

    #[test]
    fn projection_ignores_fields_the_sink_does_not_store() {
        let stored = Projection::new([field::EMAIL, field::LAST_NAME, field::EMAIL_OPT_OUT]);
        let mut without_timestamp = contact("1", "a@example.com");
        without_timestamp.fields.remove(field::CREATED_AT);
        let with = record_digest(&contact("1", "a@example.com"), &stored);
        assert_eq!(with, record_digest(&without_timestamp, &stored));
    }

    #[test]
    fn a_projection_covers_exactly_its_fields_whichever_they_are() {
        let record = contact("1", "a@example.com");
        let names: Vec<String> = record.fields.keys().map(|k| k.to_string()).collect();
        // Every subset of the record's fields, each also with names the record lacks, sorting
        // before, between and after its own.
        for mask in 0u32..(1 << names.len()) {
            let mut chosen: Vec<String> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| n.clone())
                .collect();
            let only_chosen = {
                let mut r = record.clone();
                r.fields
                    .retain(|k, _| chosen.iter().any(|c| c == k.as_ref()));
                r
            };
            chosen.extend(["", "a", "m_", "zzz"].map(String::from));
            assert_eq!(
                record_digest(&record, &Projection::new(chosen)),
                record_digest(&only_chosen, &all()),
                "mask {mask:b}"
            );
        }
    }

    #[test]
    fn false_flag_equals_absent_but_true_does_not() {
        let mut absent = contact("1", "a@example.com");
        absent.fields.remove(field::EMAIL_OPT_OUT);
        let mut off = absent.clone();
        off.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert_eq!(record_digest(&absent, &all()), record_digest(&off, &all()));
        assert_ne!(
            record_digest(&absent, &all()),
            record_digest(&contact("1", "a@example.com"), &all())
        );
    }

    #[test]
    fn empty_text_equals_absent() {
        let mut empty = contact("1", "a@example.com");
        empty.set(field::CITY, Value::Text(String::new()));
        assert_eq!(
            record_digest(&empty, &all()),
            record_digest(&contact("1", "a@example.com"), &all())
        );
    }

    #[test]
    fn aggregate_is_order_independent_and_counts_duplicates() {
        let digests: Vec<Digest> = (0..50)
            .map(|i| record_digest(&contact(&i.to_string(), "x@example.com"), &all()))
            .collect();
        let mut forward = AggregateDigest::default();
        digests.iter().for_each(|d| forward.add(d));
        let mut backward = AggregateDigest::default();
        digests.iter().rev().for_each(|d| backward.add(d));
        assert_eq!(forward, backward);

        let (left, right) = digests.split_at(20);
        let mut a = AggregateDigest::default();
        left.iter().for_each(|d| a.add(d));
        let mut b = AggregateDigest::default();
        right.iter().for_each(|d| b.add(d));
        a.merge(&b);
        assert_eq!(a, forward);

        let mut twice = AggregateDigest::default();
        twice.add(&digests[0]);
        twice.add(&digests[0]);
        assert_ne!(twice, AggregateDigest::default());
        assert_eq!(twice.count(), 2);
    }

    /// Notes whose body is rich text, and a plain `subject` beside it.
    static NOTES: crate::model::ObjectSpec = crate::model::ObjectSpec {
        name: "notes",
        fields: &[
            crate::model::FieldSpec {
                name: "body",
                ty: FieldType::RichText,
            },
            crate::model::FieldSpec {
                name: "subject",
                ty: FieldType::Text,
            },
        ],
    };

    fn note(body: &str, subject: &str) -> Digest {
        let mut r = Record::new(ObjectType::new(&NOTES), "n-1");
        r.set_named("body", Value::Text(body.into()));
        r.set_named("subject", Value::Text(subject.into()));
        record_digest(&r, &Projection::new(["body", "subject"]))
    }

    #[test]
    fn rich_text_hashes_its_plain_form_and_other_text_does_not() {
        let html = note("<p>Call Jane &amp; Bob</p><p>re: renewal</p>", "Call");
        assert_eq!(html, note("Call Jane & Bob\nre: renewal", "Call"));
        assert_ne!(html, note("Call Jane & Bob\nre: renewal!", "Call"));
        // Plain text keeps its markup in the checksum: only rich text is normalised.
        assert_ne!(note("x", "<b>Call</b>"), note("x", "Call"));
        // Markup with no text is no value, as empty text is.
        let mut without = Record::new(ObjectType::new(&NOTES), "n-1");
        without.set_named("subject", Value::Text("Call".into()));
        let projection = Projection::new(["body", "subject"]);
        assert_eq!(
            note("<p> </p>", "Call"),
            record_digest(&without, &projection)
        );
        assert_eq!(
            as_hashed(
                ObjectType::new(&NOTES),
                "body",
                Some(&Value::Text("<b>a</b>&amp;b".into()))
            ),
            Some(Value::Text("a&b".into()))
        );
        assert_eq!(
            as_hashed(
                ObjectType::new(&NOTES),
                "body",
                Some(&Value::Text("<br>".into()))
            ),
            None
        );
    }

    #[test]
    fn digest_is_pinned() {
        // Computed independently (Python hashlib over the documented encoding), so a change of
        // how the encoding is fed to SHA-256 cannot change digests unnoticed.
        let mut r = contact("c-1", "a@example.com");
        r.set(field::CITY, Value::Text("x".repeat(600)));
        assert_eq!(
            record_digest(&r, &all()).to_string(),
            "339f214f86d8e7384c5e65506008ea83d62f94632ee12cd187bc4e5c6b998fc1"
        );
    }

    #[test]
    fn uncovered_fields_are_those_the_projection_leaves_out_in_name_order() {
        let mut fields = Fields::new();
        for name in ["a", "b.custom", "city", "email", "zip"] {
            fields.insert(name.into(), Value::Text("x".into()));
        }
        let projection = Projection::new(["b", "city", "country", "zip"]);
        let left: Vec<&str> = projection
            .uncovered(&fields)
            .map(|(name, _)| name.as_ref())
            .collect();
        assert_eq!(left, ["a", "b.custom", "email"]);
        assert_eq!(
            Projection::new(Vec::<&str>::new())
                .uncovered(&fields)
                .count(),
            5
        );
    }
}
