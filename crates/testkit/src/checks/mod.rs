//! The checks, and the helpers they share. Each check serves its own emulator (so request
//! counts and record counts are its own), runs concurrently with the others, and fails with a
//! reason that names counts, ids, codes and field names, never a field's value.
//!
//! | check | direction | proves |
//! |---|---|---|
//! | `source::paging` | source | every seeded company and contact is read exactly once; cursors end |
//! | `source::associations` | source | contacts reference companies that were read, the right ones |
//! | `source::opt_outs` | source | every email opt-out is read, on the right contact |
//! | `sink::batch_size` | sink | a full batch is accepted, a full read-back works |
//! | `sink::idempotent_upsert` | sink | a second upsert creates nothing and keeps the ids |
//! | `sink::read_back` | sink | what is read back hashes equal to what was written |
//! | `sink::opt_out_kept` | sink | an opt-out the sink holds survives an upsert whose opt-out is false or absent |
//! | `sink::refused_record` | sink | a refusal is an outcome without values, sent once, not retried |
//! | `sink::retries_429` | sink | a migration through throttling loses nothing |
//! | `sink::retries_5xx` | sink | a migration through 503s loses nothing |
//! | `fields` | both | the vendor's fields are listed (seeded custom fields with kinds and picklist options); mapped custom fields are read, written and read back equal, picklists as labels; an unknown label refuses its record only; a created field is listed and stored |
//! | `round_trip` | both | records of every object the connector moves, written by the sink, read back through the source unchanged: fields, links (a contact's company, a deal's contacts, a note's parents), owners and stages |
//! | `directory` | always | users (inactive ones marked) and deal pipelines with their stages are the account's, the same through source and sink |
//! | `account_id` | always | the account id is non-empty, stable, the same through both roles, another account's differs |
//! | `secrets` | always | no credential in any log line or error; wrong credentials are `Auth` errors |

pub(crate) mod account;
pub(crate) mod directory;
pub(crate) mod fields;
pub(crate) mod round_trip;
pub(crate) mod secrets;
pub(crate) mod sink;
pub(crate) mod source;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use ferry_core::checksum::is_blank;
use ferry_core::quality::{KnownIds, QualityChecker, QualityRules};
use ferry_core::{
    FieldLimit, ObjectType, Projection, Record, RecordOutcome, RecordRejection, Sink, Source,
    Value, Written,
};

use crate::harness::{CheckFuture, Ctx, Stop, ensure};

/// Which directions a check needs the connector to support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Needs {
    /// A source.
    Source,
    /// A sink.
    Sink,
    /// Both a source and a sink.
    Both,
    /// Either.
    Always,
}

/// When a check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// With the other main checks, concurrently.
    Main,
    /// After every main check, to look at what they left behind (the log).
    Last,
}

/// One conformance check.
pub(crate) struct Check {
    /// Its name, as printed and as filters match it.
    pub name: &'static str,
    /// The directions it needs.
    pub needs: Needs,
    /// When it runs.
    pub phase: Phase,
    /// Runs it.
    pub run: fn(Arc<Ctx>) -> CheckFuture,
}

/// Every check, in the order results are printed.
pub(crate) fn all() -> Vec<Check> {
    let check = |name, needs, phase, run| Check {
        name,
        needs,
        phase,
        run,
    };
    use Needs::*;
    use Phase::*;
    vec![
        check("source::paging", Source, Main, |c| {
            Box::pin(source::paging(c))
        }),
        check("source::associations", Source, Main, |c| {
            Box::pin(source::associations(c))
        }),
        check("source::opt_outs", Source, Main, |c| {
            Box::pin(source::opt_outs(c))
        }),
        check("sink::batch_size", Sink, Main, |c| {
            Box::pin(sink::batch_size(c))
        }),
        check("sink::idempotent_upsert", Sink, Main, |c| {
            Box::pin(sink::idempotent_upsert(c))
        }),
        check("sink::read_back", Sink, Main, |c| {
            Box::pin(sink::read_back(c))
        }),
        check("sink::opt_out_kept", Sink, Main, |c| {
            Box::pin(sink::opt_out_kept(c))
        }),
        check("sink::refused_record", Sink, Main, |c| {
            Box::pin(sink::refused_record(c))
        }),
        check("sink::retries_429", Sink, Main, |c| {
            Box::pin(sink::retries_429(c))
        }),
        check("sink::retries_5xx", Sink, Main, |c| {
            Box::pin(sink::retries_5xx(c))
        }),
        check("fields", Both, Main, |c| Box::pin(fields::fields(c))),
        check("round_trip", Both, Main, |c| {
            Box::pin(round_trip::round_trip(c))
        }),
        check("directory", Always, Main, |c| {
            Box::pin(directory::directory(c))
        }),
        check("account_id", Always, Main, |c| {
            Box::pin(account::account_id_is_stable(c))
        }),
        check("secrets", Always, Last, |c| Box::pin(secrets::secrets(c))),
    ]
}

/// The object types the connector supports, parents first.
pub(crate) fn objects(ctx: &Ctx) -> Vec<ObjectType> {
    ObjectType::ALL
        .into_iter()
        .filter(|o| ctx.target.connector.objects.contains(o))
        .collect()
}

/// The objects of the source, sink and field checks, which generate and compare companies and
/// contacts: those of them the connector moves. Deals and notes (with their links, owners and
/// stages) are written, read back and read through the source by `round_trip`.
pub(crate) fn base_objects(ctx: &Ctx) -> Vec<ObjectType> {
    objects(ctx)
        .into_iter()
        .filter(|o| [ObjectType::COMPANIES, ObjectType::CONTACTS].contains(o))
        .collect()
}

/// `back` as the engine compares it with `sent`: a record sent without an owner takes the
/// sink's default owner (the API user, the account's default), which is not a difference.
pub(crate) fn as_compared<'a>(sent: &Record, back: &'a Record) -> std::borrow::Cow<'a, Record> {
    if sent.get(ferry_core::field::OWNER).is_none() && back.get(ferry_core::field::OWNER).is_some()
    {
        let mut back = back.clone();
        back.fields.remove(ferry_core::field::OWNER);
        std::borrow::Cow::Owned(back)
    } else {
        std::borrow::Cow::Borrowed(back)
    }
}

/// `records` fitted to what the connector supports: references to an object the connector
/// does not move are dropped (a contact loses its company when companies are not moved).
pub(crate) fn fit(ctx: &Ctx, mut records: Vec<Record>) -> Vec<Record> {
    let moved = |o: &ObjectType| ctx.target.connector.objects.contains(o);
    for r in &mut records {
        for edge in r.object.references() {
            match r.fields.get_mut(edge.field) {
                Some(Value::Reference(_)) if !edge.targets.iter().all(moved) => {
                    r.fields.remove(edge.field);
                }
                Some(Value::Links(links)) => {
                    links.retain(|l| moved(&l.object));
                    if links.is_empty() {
                        r.fields.remove(edge.field);
                    }
                }
                _ => {}
            }
        }
    }
    records
}

/// `records` with their links cut to what the sink holds, by the engine's own checker
/// (`Capability::limits`): the first links by the edge's target priority are kept.
pub(crate) fn fit_links(mut records: Vec<Record>, limits: &[FieldLimit]) -> Vec<Record> {
    let mut checker = QualityChecker::new(
        QualityRules::default(),
        "testkit",
        Vec::new(),
        KnownIds::new(),
    )
    .with_limits(limits.to_vec());
    for r in &mut records {
        checker.check(r);
    }
    records
}

/// Everything a source returned for one object.
#[derive(Debug, Default)]
pub(crate) struct Read {
    /// The records, in the order read.
    pub records: Vec<Record>,
    /// How many pages it took.
    pub pages: usize,
    /// Records the source could not map.
    pub unreadable: Vec<RecordRejection>,
}

/// Reads every record of `object`, following cursors to the end. Fails if the source hands out
/// a cursor twice (the loop would never end) or needs more than `max_pages` pages.
pub(crate) async fn read_all(
    ctx: &Ctx,
    source: &dyn Source,
    object: ObjectType,
    max_pages: usize,
) -> Result<Read, Stop> {
    let mut read = Read::default();
    let mut cursor: Option<String> = None;
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        // Read as the pipeline reads: the cursor first, then the records.
        let what = format!("reading {object} page {}", read.pages + 1);
        let fetched = source
            .fetch_page(object, cursor.as_deref())
            .await
            .map_err(|e| ctx.error(&what, &e))?;
        let next = fetched.next;
        let page = (fetched.records)().map_err(|e| ctx.error(&what, &e))?;
        ensure!(
            page.next == next,
            "{object} page {}: fetch_page named {next:?} as the next cursor, its records' page {:?}",
            read.pages + 1,
            page.next
        );
        read.pages += 1;
        for u in &page.unreadable {
            ctx.note(format!("{} {}", u.code, u.reason));
        }
        read.records.extend(page.records);
        read.unreadable.extend(page.unreadable);
        let Some(next) = page.next else {
            return Ok(read);
        };
        ensure!(
            seen.insert(next.clone()),
            "the source handed out the same {object} cursor twice (after page {}): the cursor loop would never end",
            read.pages
        );
        ensure!(
            read.pages < max_pages,
            "the {object} cursor loop did not end after {} pages ({} records)",
            read.pages,
            read.records.len()
        );
        cursor = Some(next);
    }
}

/// Fails unless every record was read exactly once by source id: `expected` records, no id
/// empty or repeated, none unreadable.
pub(crate) fn exactly_once(object: ObjectType, read: &Read, expected: usize) -> Result<(), Stop> {
    if let Some(u) = read.unreadable.first() {
        return Err(Stop::Fail(format!(
            "{} {object} could not be mapped, e.g. {}: {} {}",
            read.unreadable.len(),
            u.source_id,
            u.code,
            u.reason
        )));
    }
    let mut ids = HashSet::new();
    let mut repeated = 0usize;
    for r in &read.records {
        ensure!(
            !r.source_id.is_empty(),
            "a {object} record was read without a source id"
        );
        ensure!(
            r.object == object,
            "reading {object} returned a record typed {}",
            r.object
        );
        if !ids.insert(r.source_id.as_str()) {
            repeated += 1;
        }
    }
    ensure!(
        repeated == 0,
        "{repeated} {object} read more than once (same source id on two pages or twice on one)"
    );
    ensure!(
        read.records.len() == expected,
        "read {} {object}, the emulator holds {expected}: {} {}",
        read.records.len(),
        expected.abs_diff(read.records.len()),
        if read.records.len() < expected {
            "were never read (a gap between pages)"
        } else {
            "too many"
        }
    );
    Ok(())
}

/// Checks the connector and makes every object writable, as the pipeline does before a run.
pub(crate) async fn prepare(ctx: &Ctx, sink: &dyn Sink) -> Result<(), Stop> {
    sink.check()
        .await
        .map_err(|e| ctx.error("check() with the emulator's credentials", &e))?;
    for object in objects(ctx) {
        sink.prepare(object)
            .await
            .map_err(|e| ctx.error(&format!("prepare({object})"), &e))?;
    }
    Ok(())
}

/// Upserts `records` in one call, checking the outcome contract: one outcome per record, in
/// input order. Rejection texts are noted for the secret check.
pub(crate) async fn upsert(
    ctx: &Ctx,
    sink: &dyn Sink,
    object: ObjectType,
    records: &[Record],
) -> Result<Vec<RecordOutcome>, Stop> {
    let outcomes = sink
        .upsert(object, records)
        .await
        .map_err(|e| ctx.error(&format!("upserting {} {object}", records.len()), &e))?;
    for o in &outcomes {
        if let Err(r) = &o.result {
            ctx.note(format!("{} {}", r.code, r.reason));
        }
    }
    ensure!(
        outcomes.len() == records.len(),
        "upsert of {} {object} returned {} outcomes (one per record expected)",
        records.len(),
        outcomes.len()
    );
    for (i, (o, r)) in outcomes.iter().zip(records).enumerate() {
        ensure!(
            o.source_id == r.source_id,
            "upsert outcome {i} is for {} but record {i} is {} (outcomes must be in input order)",
            o.source_id,
            r.source_id
        );
        if let Err(rejection) = &o.result {
            ensure!(
                rejection.source_id == r.source_id,
                "the rejection of {} names source id {}",
                r.source_id,
                rejection.source_id
            );
        }
    }
    Ok(outcomes)
}

/// What the sink declares it does with `object`, once it surveyed the account as the engine
/// has it do; a refusal fails the check, naming it.
/// The records of an object the suite tells a sink that asks ([`ferry_core::Sink::wants_size`]).
const SIZE_TOLD: u64 = 1_000;

pub(crate) async fn capability(
    ctx: &Ctx,
    sink: &dyn Sink,
    object: ObjectType,
) -> Result<ferry_core::Capability, Stop> {
    // A sink that writes large objects differently is told a size first, as a migration
    // tells it the source's count: what it then declares is what the checks hold it to.
    if sink.wants_size(object) {
        sink.expect(object, SIZE_TOLD);
    }
    sink.survey(object)
        .await
        .map_err(|e| ctx.error(&format!("survey({object})"), &e))?;
    sink.capability(object)
        .map_err(|e| ctx.error(&format!("capability({object})"), &e))
}

/// Upserts `records` in batches of the sink's size; fails unless every record was written.
pub(crate) async fn write_all(
    ctx: &Ctx,
    sink: &dyn Sink,
    object: ObjectType,
    records: &[Record],
) -> Result<Vec<Written>, Stop> {
    let mut written = Vec::with_capacity(records.len());
    for chunk in records.chunks(capability(ctx, sink, object).await?.batch_size.max(1)) {
        let outcomes = upsert(ctx, sink, object, chunk).await?;
        written.extend(all_ok(object, outcomes)?);
    }
    Ok(written)
}

/// The written records of `outcomes`; fails, naming the first rejection, if any was refused.
pub(crate) fn all_ok(
    object: ObjectType,
    outcomes: Vec<RecordOutcome>,
) -> Result<Vec<Written>, Stop> {
    let total = outcomes.len();
    let mut written = Vec::with_capacity(total);
    let mut refused: Vec<RecordRejection> = Vec::new();
    for o in outcomes {
        match o.result {
            Ok(w) => written.push(w),
            Err(r) => refused.push(r),
        }
    }
    if let Some(first) = refused.first() {
        return Err(Stop::Fail(format!(
            "{} of {total} valid {object} were refused, e.g. {}: {} ({})",
            refused.len(),
            first.source_id,
            first.code,
            first.reason
        )));
    }
    Ok(written)
}

/// Reads back `ids` in chunks of the sink's read-back size.
pub(crate) async fn read_back_all(
    ctx: &Ctx,
    sink: &dyn Sink,
    object: ObjectType,
    ids: &[String],
) -> Result<Vec<Record>, Stop> {
    let mut records = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(capability(ctx, sink, object).await?.read_back_size.max(1)) {
        let mut got = sink
            .read_back(object, chunk)
            .await
            .map_err(|e| ctx.error(&format!("reading back {} {object}", chunk.len()), &e))?;
        records.append(&mut got);
    }
    Ok(records)
}

/// The names of the projected fields whose values differ between `a` and `b` (blank values
/// count as absent, as in the checksum). Names only: never the values.
pub(crate) fn differing_fields(a: &Record, b: &Record, projection: &Projection) -> Vec<String> {
    let names: BTreeSet<&str> = a
        .fields
        .keys()
        .chain(b.fields.keys())
        .map(|k| k.as_ref())
        .filter(|k| projection.contains(k))
        .collect();
    names
        .into_iter()
        .filter(|name| {
            let value = |r: &Record| r.get(name).filter(|v| !is_blank(v)).cloned();
            value(a) != value(b)
        })
        .map(str::to_owned)
        .collect()
}

/// "a, b and c" for field-name lists in reasons.
pub(crate) fn list(names: &BTreeSet<String>) -> String {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match names.as_slice() {
        [] => "no field".to_owned(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}
