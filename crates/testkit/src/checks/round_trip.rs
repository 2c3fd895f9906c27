//! The round trip: records written through the sink, read back through the source of the same
//! connector from the same emulator, for every object the connector moves.
//!
//! The source returns the vendor's ids, not the source ids the sink was given, and references
//! name those vendor ids. So records are compared by content: the digest over the sink's stored
//! fields with the source id blanked, and with every reference (a contact's company, a deal's
//! contacts, a note's parents) replaced by the content digest of the record it points to.
//! Objects are compared in write order, so those digests exist when a reference needs them.
//! Equal multisets of digests mean every record, link, owner and stage survived the trip.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ferry_core::model::Link;
use ferry_core::{
    Digest, ObjectType, Pipeline, Projection, Record, Sink, User, Value, field, record_digest,
    richtext,
};
use ferry_sandbox::faults::Faults;

use super::{
    Read, as_compared, differing_fields, fit, fit_links, list, objects, prepare, read_all,
    write_all,
};
use crate::data::{self, Account};
use crate::harness::{Ctx, Stop, Verdict, ensure};

/// Content digests of records already compared, by object and source id: what references to
/// them are replaced with.
type Digests = HashMap<(ObjectType, String), Digest>;

/// A record's digest with its identity taken out: source id blanked, references replaced by
/// the content digests of the records they point to.
fn content(record: &Record, projection: &Projection, digests: &Digests) -> Digest {
    record_digest(&neutral(record, digests), projection)
}

/// `record` with its identity taken out, as [`content`] hashes it.
fn neutral(record: &Record, digests: &Digests) -> Record {
    let mut r = record.clone();
    r.source_id = String::new();
    let resolve = |object: ObjectType, id: &str| {
        digests
            .get(&(object, id.to_owned()))
            .map_or_else(|| format!("unresolved:{object}:{id}"), |d| d.to_string())
    };
    for edge in record.object.references() {
        let replaced = match r.get(edge.field) {
            Some(Value::Reference(id)) => match edge.targets {
                [target] => Value::Reference(resolve(*target, id)),
                _ => Value::Reference(format!("unresolved:{id}")),
            },
            Some(Value::Links(links)) => Value::Links(
                links
                    .iter()
                    .map(|l| Link {
                        object: l.object,
                        id: resolve(l.object, &l.id),
                    })
                    .collect(),
            ),
            _ => continue,
        };
        r.set(edge.field, replaced);
    }
    r
}

/// Whether the sink stores a field the account's directory decides: an owner or a stage.
async fn needs_directory(ctx: &Ctx, sink: &dyn Sink) -> Result<bool, Stop> {
    for object in objects(ctx) {
        let stored = super::capability(ctx, sink, object).await?.stored;
        if stored
            .iter()
            .any(|f| f == field::OWNER || f == field::STAGE)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sink's users and deal pipelines, as the engine asks for them before a run.
async fn directory(ctx: &Ctx, sink: &dyn Sink) -> Result<(Vec<User>, Vec<Pipeline>), Stop> {
    if !needs_directory(ctx, sink).await? {
        return Ok((Vec::new(), Vec::new()));
    }
    let users = sink
        .users()
        .await
        .map_err(|e| ctx.error("users() of the sink", &e))?;
    let pipelines = if objects(ctx).contains(&ObjectType::DEALS) {
        sink.pipelines(ObjectType::DEALS)
            .await
            .map_err(|e| ctx.error("pipelines(deals) of the sink", &e))?
    } else {
        Vec::new()
    };
    Ok((users, pipelines))
}

/// Fails unless the sink's `read_back_sent` (what verification calls) returns every record of `written` once, equal by digest
/// over the stored fields (references as source ids, as the engine verifies them).
async fn read_back_equal(
    ctx: &Ctx,
    sink: &dyn Sink,
    object: ObjectType,
    written: &[Record],
) -> Result<(), Stop> {
    let mut back = Vec::with_capacity(written.len());
    for chunk in written.chunks(
        super::capability(ctx, sink, object)
            .await?
            .read_back_size
            .max(1),
    ) {
        let mut got = sink
            .read_back_sent(object, chunk)
            .await
            .map_err(|e| ctx.error(&format!("reading back {} {object}", chunk.len()), &e))?;
        back.append(&mut got);
    }
    let projection = Projection::new(super::capability(ctx, sink, object).await?.stored);
    let by_id: HashMap<&str, &Record> = back.iter().map(|r| (r.source_id.as_str(), r)).collect();
    ensure!(
        by_id.len() == back.len(),
        "read_back returned a {object} more than once"
    );
    let mut missing = 0;
    let mut fields = BTreeSet::new();
    let mut mismatched = 0;
    for sent in written {
        let Some(got) = by_id.get(sent.source_id.as_str()) else {
            missing += 1;
            continue;
        };
        let got = as_compared(sent, got);
        if record_digest(sent, &projection) != record_digest(&got, &projection) {
            mismatched += 1;
            fields.extend(differing_fields(sent, &got, &projection));
        }
    }
    ensure!(
        missing == 0 && mismatched == 0,
        "read_back of {} written {object}: {missing} missing, {mismatched} with a different digest (differing fields: {})",
        written.len(),
        list(&fields)
    );
    Ok(())
}

/// Check 9: what the sink wrote, the source reads back unchanged.
pub(crate) async fn round_trip(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let source = ctx.source(&served, None)?;
    let seed = data::clean(40);
    let (users, pipelines) = directory(&ctx, sink.as_ref()).await?;
    let account = Account {
        vendor: ctx.target.emulator.vendor,
        stage_labels: ctx.target.emulator.deal_stages,
        users: &users,
        pipelines: &pipelines,
    };
    let (mut companies, mut contacts) = data::canonical_records(&seed);
    data::set_owners(&seed, &account, &mut companies, &mut contacts);
    let mut records: HashMap<ObjectType, Vec<Record>> = HashMap::from([
        (ObjectType::COMPANIES, companies),
        (ObjectType::CONTACTS, contacts),
    ]);
    if objects(&ctx).contains(&ObjectType::DEALS) || objects(&ctx).contains(&ObjectType::NOTES) {
        let (deals, notes) = data::crm_records(&seed, &account).map_err(Stop::Fail)?;
        records.insert(ObjectType::DEALS, deals);
        records.insert(ObjectType::NOTES, notes);
    }
    let mut written: HashMap<ObjectType, Vec<Record>> = HashMap::new();
    for object in objects(&ctx) {
        let limits = super::capability(&ctx, sink.as_ref(), object).await?.limits;
        let fitted = fit_links(
            fit(&ctx, records.remove(&object).unwrap_or_default()),
            &limits,
        );
        written.insert(object, fitted);
    }
    prepare(&ctx, sink.as_ref()).await?;
    for object in objects(&ctx) {
        write_all(&ctx, sink.as_ref(), object, &written[&object]).await?;
        read_back_equal(&ctx, sink.as_ref(), object, &written[&object]).await?;
    }
    let mut read: HashMap<ObjectType, Read> = HashMap::new();
    for object in objects(&ctx) {
        let expected = written[&object].len();
        let got = read_all(&ctx, source.as_ref(), object, expected + 10).await?;
        super::exactly_once(object, &got, expected)?;
        read.insert(object, got);
    }

    // In write order: the digests of referenced records stand in for their ids.
    let mut sent_digests = Digests::new();
    let mut read_digests = Digests::new();
    let mut parts = Vec::new();
    for object in objects(&ctx) {
        let projection =
            Projection::new(super::capability(&ctx, sink.as_ref(), object).await?.stored);
        let digest_all = |records: &[Record], digests: &Digests| {
            let mut all: Vec<(Digest, Record)> = records
                .iter()
                .map(|r| (content(r, &projection, digests), r.clone()))
                .collect();
            all.sort_by_key(|(d, _)| *d);
            all
        };
        let sent = digest_all(&written[&object], &sent_digests);
        let back = digest_all(&read[&object].records, &read_digests);
        let sent_only: Vec<Digest> = sent.iter().map(|(d, _)| *d).collect();
        let back_only: Vec<Digest> = back.iter().map(|(d, _)| *d).collect();
        if sent_only != back_only {
            let unmatched = count_unmatched(&sent_only, &back_only);
            let fields = explain(&sent, &back, &projection, &sent_digests, &read_digests);
            return Err(Stop::Fail(format!(
                "{unmatched} of {} {object} written through the sink read back through the source with different content; differing fields{}",
                sent.len(),
                if fields.is_empty() {
                    " (records not matchable by email, domain, name or body): unknown".to_owned()
                } else {
                    format!(": {}", list(&fields))
                }
            )));
        }
        sent_digests.extend(
            sent.iter()
                .map(|(d, r)| ((object, r.source_id.clone()), *d)),
        );
        read_digests.extend(
            back.iter()
                .map(|(d, r)| ((object, r.source_id.clone()), *d)),
        );
        parts.push(format!("{} {object}", sent.len()));
    }
    ensure!(!parts.is_empty(), "the connector moves no object type");
    Ok(format!(
        "{} written by the sink and read by the source with equal content digests over the stored fields, links, owners and stages included",
        parts.join(", ")
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

/// The names of fields that differ, for records matched by a natural key (a contact's email,
/// a company's domain, a deal's name, a note's text); empty when none can be matched. Names
/// only: the keys never leave this function.
fn explain(
    sent: &[(Digest, Record)],
    back: &[(Digest, Record)],
    projection: &Projection,
    sent_digests: &Digests,
    read_digests: &Digests,
) -> BTreeSet<String> {
    let key = |r: &Record| {
        r.text(field::EMAIL)
            .or_else(|| r.text(field::DOMAIN))
            .or_else(|| r.text(field::NAME))
            .map(str::to_owned)
            .or_else(|| r.text(field::BODY).map(richtext::to_plain))
    };
    let back_by_key: HashMap<String, &Record> = back
        .iter()
        .filter_map(|(_, r)| Some((key(r)?, r)))
        .collect();
    let mut fields = BTreeSet::new();
    for (_, w) in sent {
        let Some(r) = key(w).and_then(|k| back_by_key.get(&k)) else {
            continue;
        };
        let (a, b) = (neutral(w, sent_digests), neutral(r, read_digests));
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
                (ObjectType::COMPANIES, r.source_id.clone()),
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

    #[test]
    fn links_compare_by_the_content_of_what_they_point_to() {
        let projection = Projection::new(["parents"]);
        let digest = |b: u8| Digest([b; 32]);
        let sent = HashMap::from([
            ((ObjectType::CONTACTS, "p-1".to_owned()), digest(1)),
            ((ObjectType::DEALS, "d-1".to_owned()), digest(2)),
        ]);
        let read = HashMap::from([
            ((ObjectType::CONTACTS, "003A".to_owned()), digest(1)),
            ((ObjectType::DEALS, "006B".to_owned()), digest(2)),
            ((ObjectType::DEALS, "006C".to_owned()), digest(3)),
        ]);
        let note = |parents: &[(ObjectType, &str)]| {
            let mut n = Record::new(ObjectType::NOTES, "n");
            let links = parents.iter().map(|(object, id)| Link {
                object: *object,
                id: (*id).to_owned(),
            });
            n.set(field::PARENTS, Value::Links(links.collect()));
            n
        };
        let written = note(&[(ObjectType::CONTACTS, "p-1"), (ObjectType::DEALS, "d-1")]);
        let same = note(&[(ObjectType::DEALS, "006B"), (ObjectType::CONTACTS, "003A")]);
        let other_deal = note(&[(ObjectType::DEALS, "006C"), (ObjectType::CONTACTS, "003A")]);
        let one_lost = note(&[(ObjectType::CONTACTS, "003A")]);
        let want = content(&written, &projection, &sent);
        assert_eq!(want, content(&same, &projection, &read));
        assert_ne!(want, content(&other_deal, &projection, &read));
        assert_ne!(want, content(&one_lost, &projection, &read));
    }
}
