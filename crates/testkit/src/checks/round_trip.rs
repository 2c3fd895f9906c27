//! The round trip: records written through the sink, read back through the source of the same
//! connector from the same emulator.
//!
//! The source returns the vendor's ids, not the source ids the sink was given, and contacts
//! reference companies by those vendor ids. So records are compared by content: the digest
//! over the sink's stored fields with the source id blanked, and with a contact's company
//! reference replaced by the content digest of the company it points to. Equal multisets of
//! those digests mean every record, association included, survived the trip.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ferry_core::{Digest, ObjectType, Projection, Record, Value, field, record_digest};
use ferry_sandbox::faults::Faults;

use super::{Read, differing_fields, fit, list, objects, prepare, read_all, write_all};
use crate::data;
use crate::harness::{Ctx, Stop, Verdict, ensure};

/// A record's digest with its identity taken out: source id blanked, company reference
/// replaced by the referenced company's content digest (`companies`: source id → digest).
fn content(
    record: &Record,
    projection: &Projection,
    companies: &HashMap<String, Digest>,
) -> Digest {
    record_digest(&neutral(record, companies), projection)
}

/// `record` with its identity taken out, as [`content`] hashes it.
fn neutral(record: &Record, companies: &HashMap<String, Digest>) -> Record {
    let mut r = record.clone();
    r.source_id = String::new();
    if let Some(Value::Reference(id)) = r.get(field::COMPANY) {
        let resolved = companies
            .get(id)
            .map_or_else(|| format!("unresolved:{id}"), |d| d.to_string());
        r.set(field::COMPANY, Value::Reference(resolved));
    }
    r
}

/// Check 9: what the sink wrote, the source reads back unchanged.
pub(crate) async fn round_trip(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let source = ctx.source(&served, None)?;
    let (companies, contacts) = data::canonical_records(&data::clean(40));
    let written: HashMap<ObjectType, Vec<Record>> = HashMap::from([
        (ObjectType::COMPANIES, fit(&ctx, companies)),
        (ObjectType::CONTACTS, fit(&ctx, contacts)),
    ]);
    prepare(&ctx, sink.as_ref()).await?;
    for object in objects(&ctx) {
        write_all(&ctx, sink.as_ref(), object, &written[&object]).await?;
    }
    let mut read: HashMap<ObjectType, Read> = HashMap::new();
    for object in objects(&ctx) {
        let expected = written[&object].len();
        let got = read_all(&ctx, source.as_ref(), object, expected + 10).await?;
        super::exactly_once(object, &got, expected)?;
        read.insert(object, got);
    }

    // Companies first: their content digests stand in for ids in contacts' references.
    let mut sent_company: HashMap<String, Digest> = HashMap::new();
    let mut read_company: HashMap<String, Digest> = HashMap::new();
    let mut parts = Vec::new();
    for object in objects(&ctx) {
        let projection = Projection::new(super::capability(&ctx, sink.as_ref(), object)?.stored);
        let got = &read[&object].records;
        let mut sent: Vec<(Digest, &Record)> = written[&object]
            .iter()
            .map(|r| (content(r, &projection, &sent_company), r))
            .collect();
        let mut back: Vec<(Digest, &Record)> = got
            .iter()
            .map(|r| (content(r, &projection, &read_company), r))
            .collect();
        if object == ObjectType::COMPANIES {
            sent_company = sent
                .iter()
                .map(|(d, r)| (r.source_id.clone(), *d))
                .collect();
            read_company = back
                .iter()
                .map(|(d, r)| (r.source_id.clone(), *d))
                .collect();
        }
        sent.sort_by_key(|(d, _)| *d);
        back.sort_by_key(|(d, _)| *d);
        let sent_digests: Vec<Digest> = sent.iter().map(|(d, _)| *d).collect();
        let back_digests: Vec<Digest> = back.iter().map(|(d, _)| *d).collect();
        if sent_digests != back_digests {
            let unmatched = count_unmatched(&sent_digests, &back_digests);
            let fields = explain(&sent, &back, &projection, &sent_company, &read_company);
            return Err(Stop::Fail(format!(
                "{unmatched} of {} {object} written through the sink read back through the source with different content; differing fields{}",
                sent.len(),
                if fields.is_empty() {
                    " (records not matchable by email or domain): unknown".to_owned()
                } else {
                    format!(": {}", list(&fields))
                }
            )));
        }
        parts.push(format!("{} {object}", sent.len()));
    }
    ensure!(!parts.is_empty(), "the connector moves no object type");
    Ok(format!(
        "{} written by the sink and read by the source with equal content digests over the stored fields, associations included",
        parts.join(" and ")
    ))
}

/// How many of `a` have no partner in `b` (both sorted).
fn count_unmatched(a: &[Digest], b: &[Digest]) -> usize {
    let (mut i, mut j, mut unmatched) = (0, 0, 0);
    while i < a.len() {
        match b.get(j).map(|d| a[i].cmp(d)) {
            Some(std::cmp::Ordering::Equal) => {
                i += 1;
                j += 1;
            }
            Some(std::cmp::Ordering::Greater) => j += 1,
            _ => {
                unmatched += 1;
                i += 1;
            }
        }
    }
    unmatched
}

/// The names of fields that differ, for records matched by email (contacts) or domain
/// (companies); empty when none can be matched.
fn explain(
    sent: &[(Digest, &Record)],
    back: &[(Digest, &Record)],
    projection: &Projection,
    sent_company: &HashMap<String, Digest>,
    read_company: &HashMap<String, Digest>,
) -> BTreeSet<String> {
    let key = |r: &Record| {
        r.text(field::EMAIL)
            .or_else(|| r.text(field::DOMAIN))
            .map(str::to_owned)
    };
    let back_by_key: HashMap<String, &Record> = back
        .iter()
        .filter_map(|(_, r)| Some((key(r)?, *r)))
        .collect();
    let mut fields = BTreeSet::new();
    for (_, w) in sent {
        let Some(r) = key(w).and_then(|k| back_by_key.get(&k)) else {
            continue;
        };
        let (a, b) = (neutral(w, sent_company), neutral(r, read_company));
        fields.extend(differing_fields(&a, &b, projection));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmatched_counts_multiset_differences() {
        let d = |b: u8| Digest([b; 32]);
        assert_eq!(count_unmatched(&[d(1), d(2), d(2)], &[d(1), d(2), d(2)]), 0);
        assert_eq!(count_unmatched(&[d(1), d(2), d(2)], &[d(1), d(2), d(3)]), 1);
        assert_eq!(count_unmatched(&[d(1)], &[]), 1);
    }

    #[test]
    fn references_compare_by_the_companys_content() {
        let projection = Projection::new(["name", "company"]);
        let mut company_a = Record::new(ObjectType::COMPANIES, "tk-1");
        company_a.set(field::NAME, Value::Text("Acme".into()));
        let mut company_b = company_a.clone();
        company_b.source_id = "0015000000abc".into();
        let company_digests = |r: &Record| {
            HashMap::from([(
                r.source_id.clone(),
                content(r, &projection, &HashMap::new()),
            )])
        };
        let (sent, read) = (company_digests(&company_a), company_digests(&company_b));
        let contact = |id: &str, company: &str| {
            let mut c = Record::new(ObjectType::CONTACTS, id);
            c.set(field::COMPANY, Value::Reference(company.into()));
            c
        };
        let projection = Projection::new(["company"]);
        assert_eq!(
            content(&contact("tk-2", "tk-1"), &projection, &sent),
            content(&contact("003x", "0015000000abc"), &projection, &read)
        );
        assert_ne!(
            content(&contact("tk-2", "tk-1"), &projection, &sent),
            content(&contact("003x", "0015000000xyz"), &projection, &read)
        );
    }
}
