//! Sink checks, each against its own empty emulator.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ferry_core::pipeline::{Mode, RunOptions};
use ferry_core::{
    ObjectType, Outcome, Progress, Projection, Record, Sink, Value, field, record_digest,
};
use ferry_sandbox::faults::Faults;

use super::{
    all_ok, as_compared, base_objects, differing_fields, fit, list, prepare, read_back_all, upsert,
    write_all,
};
use crate::data;
use crate::harness::{Ctx, Stop, Verdict, ensure};
use crate::memory_source::MemorySource;

/// Larger batch or read-back sizes than this are taken for a mistake, not a vendor limit.
const MAX_SANE_SIZE: usize = 10_000;

/// The generated companies and contacts, fitted to the connector, as one list per object.
fn generated(ctx: &Ctx, contacts: usize) -> HashMap<ObjectType, Vec<Record>> {
    let (companies, contacts) = data::canonical_records(&data::clean(contacts));
    HashMap::from([
        (ObjectType::COMPANIES, fit(ctx, companies)),
        (ObjectType::CONTACTS, fit(ctx, contacts)),
    ])
}

/// Check 4: one upsert of exactly `batch_size` records succeeds, and one read-back of exactly
/// `read_back_size` ids returns them all. (The emulators refuse oversize batches, so a sink
/// claiming more than the vendor takes fails here.)
pub(crate) async fn batch_size(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let objects = base_objects(&ctx);
    let mut sizes = HashMap::new();
    for &object in &objects {
        let declared = super::capability(&ctx, sink.as_ref(), object).await?;
        let (batch, read_back) = (declared.batch_size, declared.read_back_size);
        ensure!(
            (1..=MAX_SANE_SIZE).contains(&batch) && (1..=MAX_SANE_SIZE).contains(&read_back),
            "batch_size({object}) = {batch} and read_back_size({object}) = {read_back}: each must be 1 to {MAX_SANE_SIZE}"
        );
        sizes.insert(object, (batch, read_back));
    }
    let need = |o| sizes.get(&o).map_or(0, |(b, r)| *b.max(r));
    let contacts = need(ObjectType::CONTACTS).max(5 * need(ObjectType::COMPANIES));
    let mut records = generated(&ctx, contacts);
    prepare(&ctx, sink.as_ref()).await?;
    let mut parts = Vec::new();
    for &object in &objects {
        let (batch, read_back) = sizes[&object];
        let mut all = records.remove(&object).unwrap_or_default();
        // Contacts refer to every company, so every company is written; contacts only as
        // many as the sizes need.
        if object == ObjectType::CONTACTS {
            all.truncate(batch.max(read_back));
        }
        ensure!(
            all.len() >= batch.max(read_back),
            "generated {} {object}, fewer than the {} the sizes need (a testkit bug)",
            all.len(),
            batch.max(read_back)
        );
        let (full, rest) = all.split_at(batch);
        let outcomes = upsert(&ctx, sink.as_ref(), object, full).await?;
        all_ok(object, outcomes).map_err(|stop| match stop {
            Stop::Fail(r) => Stop::Fail(format!("a full batch of {batch}: {r}")),
            other => other,
        })?;
        write_all(&ctx, sink.as_ref(), object, rest).await?;
        let stored = served.count(object);
        ensure!(
            stored == all.len(),
            "wrote {} {object}, the emulator holds {stored}",
            all.len()
        );
        let ids: Vec<String> = all[..read_back]
            .iter()
            .map(|r| r.source_id.clone())
            .collect();
        let got = sink.read_back(object, &ids).await.map_err(|e| {
            ctx.error(
                &format!("read_back of {read_back} {object} (its read_back_size)"),
                &e,
            )
        })?;
        let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let returned: HashSet<&str> = got.iter().map(|r| r.source_id.as_str()).collect();
        ensure!(
            got.len() == read_back && returned == wanted,
            "read_back of {read_back} written {object} returned {} records, {} of them distinct requested ids",
            got.len(),
            returned.intersection(&wanted).count()
        );
        parts.push(format!(
            "{batch} {object} in one upsert, {read_back} in one read-back"
        ));
    }
    Ok(parts.join("; "))
}

/// Check 5: a second upsert of the same records creates nothing, keeps every sink id and leaves
/// the emulator's counts unchanged; the first one created every record.
pub(crate) async fn idempotent_upsert(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let records = generated(&ctx, 20);
    prepare(&ctx, sink.as_ref()).await?;
    let mut first = HashMap::new();
    for object in base_objects(&ctx) {
        let these = &records[&object];
        let written = write_all(&ctx, sink.as_ref(), object, these).await?;
        let not_created = written.iter().filter(|w| !w.created).count();
        ensure!(
            not_created == 0,
            "the first upsert of {} new {object} reported {not_created} as updated (created == false)",
            these.len()
        );
        first.insert(object, (written, served.count(object)));
    }
    let mut parts = Vec::new();
    for object in base_objects(&ctx) {
        let these = &records[&object];
        let written = write_all(&ctx, sink.as_ref(), object, these).await?;
        let (before, count_before) = &first[&object];
        let created = written.iter().filter(|w| w.created).count();
        ensure!(
            created == 0,
            "upserting the same {} {object} again reported {created} as created",
            these.len()
        );
        let moved = written
            .iter()
            .zip(before)
            .filter(|(a, b)| a.sink_id != b.sink_id)
            .count();
        ensure!(
            moved == 0,
            "upserting the same {object} again returned a different sink id for {moved} of them"
        );
        let count = served.count(object);
        ensure!(
            count == *count_before && count == these.len(),
            "the emulator held {count_before} {object} after the first upsert of {} and {count} after the second",
            these.len()
        );
        // Verification compares this count with the records read back to find duplicates.
        let counted = sink
            .count_with_source_id(object)
            .await
            .map_err(|e| Stop::Fail(format!("count_with_source_id({object}) failed: {e}")))?;
        ensure!(
            counted.is_none_or(|n| n == these.len() as u64),
            "count_with_source_id({object}) said {counted:?}; the sink holds {} records with a source id",
            these.len()
        );
        let counted = match counted {
            Some(_) => "counted",
            None => "not countable",
        };
        parts.push(format!("{} {object} ({counted})", these.len()));
    }
    Ok(format!(
        "{} created once, then updated in place with the same sink ids",
        parts.join(" and ")
    ))
}

/// An opt-out the sink holds is never cleared: contacts written opted out, then upserted again
/// with their source no longer saying so (the opt-out `false`, then absent), read back opted
/// out. A migration or a rerun must never make a person subscribable again.
pub(crate) async fn opt_out_kept(ctx: Arc<Ctx>) -> Verdict {
    if !base_objects(&ctx).contains(&ObjectType::CONTACTS) {
        return Err(Stop::Skip(format!(
            "{} does not write contacts",
            ctx.vendor()
        )));
    }
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let records = generated(&ctx, 40);
    prepare(&ctx, sink.as_ref()).await?;
    for object in base_objects(&ctx) {
        if object != ObjectType::CONTACTS {
            write_all(&ctx, sink.as_ref(), object, &records[&object]).await?;
        }
    }
    let opted: Vec<Record> = records[&ObjectType::CONTACTS]
        .iter()
        .filter(|r| data::opted_out(r))
        .take(5)
        .cloned()
        .collect();
    ensure!(
        !opted.is_empty(),
        "the generated contacts hold no opt-out (a testkit bug)"
    );
    write_all(&ctx, sink.as_ref(), ObjectType::CONTACTS, &opted).await?;
    let ids: Vec<String> = opted.iter().map(|r| r.source_id.clone()).collect();
    for (how, flag) in [("false", Some(false)), ("absent", None)] {
        let again: Vec<Record> = opted
            .iter()
            .cloned()
            .map(|mut r| {
                match flag {
                    Some(b) => r.set(field::EMAIL_OPT_OUT, Value::Bool(b)),
                    None => {
                        r.fields.remove(field::EMAIL_OPT_OUT);
                    }
                }
                r
            })
            .collect();
        write_all(&ctx, sink.as_ref(), ObjectType::CONTACTS, &again).await?;
        let back = read_back_all(&ctx, sink.as_ref(), ObjectType::CONTACTS, &ids).await?;
        let kept = back.iter().filter(|r| data::opted_out(r)).count();
        ensure!(
            back.len() == opted.len() && kept == opted.len(),
            "{} opted-out contacts upserted again with the opt-out {how}: {kept} of {} read back \
             opted out. A sink must never clear an opt-out it holds",
            opted.len(),
            back.len()
        );
    }
    Ok(format!(
        "{} opted-out contacts stayed opted out when upserted again with the opt-out false, then absent",
        opted.len()
    ))
}

/// Check 6: the digests over the sink's stored fields of what was written equal those of what
/// `read_back` returns, companies and contacts, with company references and opt-outs.
pub(crate) async fn read_back(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    let records = generated(&ctx, 60);
    if base_objects(&ctx).contains(&ObjectType::CONTACTS) {
        let stored: BTreeSet<String> = super::capability(&ctx, sink.as_ref(), ObjectType::CONTACTS)
            .await?
            .stored
            .into_iter()
            .collect();
        let mut required = vec![field::EMAIL_OPT_OUT];
        if base_objects(&ctx).contains(&ObjectType::COMPANIES) {
            required.push(field::COMPANY);
        }
        for name in required {
            ensure!(
                stored.contains(name),
                "stored_fields(contacts) leaves out `{name}`, so checksums would not cover it"
            );
        }
        let contacts = &records[&ObjectType::CONTACTS];
        ensure!(
            contacts.iter().any(data::opted_out)
                && (!base_objects(&ctx).contains(&ObjectType::COMPANIES)
                    || contacts.iter().any(|c| c.get(field::COMPANY).is_some())),
            "the generated contacts lack an opt-out or a company reference (a testkit bug)"
        );
    }
    prepare(&ctx, sink.as_ref()).await?;
    let mut parts = Vec::new();
    for object in base_objects(&ctx) {
        let written = &records[&object];
        write_all(&ctx, sink.as_ref(), object, written).await?;
        let projection =
            Projection::new(super::capability(&ctx, sink.as_ref(), object).await?.stored);
        let ids: Vec<String> = written.iter().map(|r| r.source_id.clone()).collect();
        let got = read_back_all(&ctx, sink.as_ref(), object, &ids).await?;
        let mut by_id: HashMap<&str, &Record> = HashMap::new();
        let mut repeated = 0usize;
        for r in &got {
            if by_id.insert(r.source_id.as_str(), r).is_some() {
                repeated += 1;
            }
        }
        ensure!(
            repeated == 0,
            "read_back returned {repeated} {object} more than once"
        );
        let mut missing = 0usize;
        let mut mismatched = 0usize;
        let mut fields = BTreeSet::new();
        for w in written {
            match by_id.get(w.source_id.as_str()) {
                None => missing += 1,
                Some(r) => {
                    let r = as_compared(w, r);
                    if record_digest(w, &projection) != record_digest(&r, &projection) {
                        mismatched += 1;
                        fields.extend(differing_fields(w, &r, &projection));
                    }
                }
            }
        }
        ensure!(
            missing == 0,
            "read_back returned {} of {} written {object}: {missing} missing",
            got.len(),
            written.len()
        );
        ensure!(
            got.len() == written.len(),
            "read_back returned {} {object} for {} ids (records that were not asked for)",
            got.len(),
            written.len()
        );
        ensure!(
            mismatched == 0,
            "{mismatched} of {} {object} read back with a different digest; differing fields: {}",
            written.len(),
            list(&fields)
        );
        let mut detail = format!("{} {object}", written.len());
        if object == ObjectType::CONTACTS {
            let opted = written.iter().filter(|r| data::opted_out(r)).count();
            let linked = written
                .iter()
                .filter(|r| r.get(field::COMPANY).is_some())
                .count();
            detail.push_str(&format!(" ({opted} opted out, {linked} with a company)"));
        }
        parts.push(detail);
    }
    // Ids never written are simply absent, not an error.
    if let Some(&object) = base_objects(&ctx).first() {
        let absent = sink
            .read_back(object, &["tk-never-written".to_owned()])
            .await
            .map_err(|e| ctx.error("read_back of an id never written", &e))?;
        ensure!(
            absent.is_empty(),
            "read_back of an id never written returned {} records",
            absent.len()
        );
    }
    Ok(format!(
        "{} read back with equal digests over the stored fields; an unknown id is absent",
        parts.join(" and ")
    ))
}

/// The field values of `record` a rejection must not quote: each text value, and for long
/// ones their first 12 characters (vendors truncate quoted values).
fn quotable(record: &Record) -> Vec<String> {
    let mut out = Vec::new();
    for value in record.fields.values() {
        let text = match value {
            Value::Text(s) => s.clone(),
            Value::Integer(_) | Value::Decimal(_) | Value::Timestamp(_) => value.to_vendor_string(),
            _ => continue,
        };
        if text.chars().count() < 4 {
            continue;
        }
        let head: String = text.chars().take(12).collect();
        if head != text {
            out.push(head);
        }
        out.push(text);
    }
    out
}

/// Check 7: a record the vendor refuses comes back as one `Err(RecordRejection)` that quotes no
/// value, beside an `Ok` for a valid record in the same batch, and the write is sent once.
pub(crate) async fn refused_record(ctx: Arc<Ctx>) -> Verdict {
    let Some(make) = ctx.target.refused_contact else {
        return Err(Stop::Skip(
            "the target names no contact the vendor refuses (Target::refused_contact is None)"
                .into(),
        ));
    };
    if !base_objects(&ctx).contains(&ObjectType::CONTACTS) {
        return Err(Stop::Skip(format!(
            "{} does not write contacts",
            ctx.vendor()
        )));
    }
    let refused = make();
    ensure!(
        refused.object == ObjectType::CONTACTS,
        "refused_contact() made a {} record, not a contact",
        refused.object
    );
    let served = ctx.serve(Faults::default(), None).await?;
    let sink = ctx.sink(&served, None)?;
    prepare(&ctx, sink.as_ref()).await?;

    // Alone first, to count the requests one refused write takes.
    let before = served.traffic.snapshot();
    let retries_before = sink.http_stats().map(|s| s.snapshot().1);
    let outcomes = upsert(
        &ctx,
        sink.as_ref(),
        ObjectType::CONTACTS,
        std::slice::from_ref(&refused),
    )
    .await?;
    let delta = served.traffic.snapshot().since(&before);
    let rejection = match outcomes.into_iter().next().map(|o| o.result) {
        Some(Err(rejection)) => rejection,
        Some(Ok(_)) => {
            return Err(Stop::Fail(format!(
                "{} was written, not refused: refused_contact() is not a record {} refuses",
                refused.source_id,
                ctx.vendor()
            )));
        }
        None => return Err(Stop::Fail("no outcome".into())),
    };
    ensure!(
        !rejection.code.trim().is_empty() && !rejection.reason.trim().is_empty(),
        "the rejection has an empty code or reason"
    );
    for value in quotable(&refused) {
        ensure!(
            !rejection.code.contains(&value) && !rejection.reason.contains(&value),
            "the rejection (code {:?}) quotes a field value of the record ({} characters of it)",
            rejection.code,
            value.chars().count()
        );
    }
    let faults = delta.responses(|s| s == 429 || s >= 500);
    ensure!(
        faults == 0,
        "the emulator answered {faults} requests with 429 or 5xx without injected faults"
    );
    let writes = delta.writes();
    let repeated: Vec<String> = writes
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, n)| format!("{e} ×{n}"))
        .collect();
    ensure!(
        repeated.is_empty(),
        "the refused write was sent more than once: {}",
        repeated.join(", ")
    );
    if let (Some(before), Some(stats)) = (retries_before, sink.http_stats()) {
        let retries = stats.snapshot().1 - before;
        ensure!(
            retries == 0,
            "the sink retried {retries} times for a refused record"
        );
    }

    // Then beside a valid contact in one batch: one Err, one Ok, in order.
    let mut valid = data::canonical_records(&data::clean(5)).1.remove(0);
    valid.fields.remove(field::COMPANY);
    valid.source_id = "tk-contact-valid".into();
    let pair = [refused.clone(), valid];
    let mut pair_detail = String::new();
    if super::capability(&ctx, sink.as_ref(), ObjectType::CONTACTS)
        .await?
        .batch_size
        >= 2
    {
        let outcomes = upsert(&ctx, sink.as_ref(), ObjectType::CONTACTS, &pair).await?;
        match (&outcomes[0].result, &outcomes[1].result) {
            (Err(_), Ok(_)) => {}
            (Ok(_), _) => {
                return Err(Stop::Fail(format!(
                    "beside a valid contact, {} was written, not refused",
                    refused.source_id
                )));
            }
            (Err(_), Err(r)) => {
                return Err(Stop::Fail(format!(
                    "the valid contact beside the refused one was refused too: {} ({}); one bad record must not fail its batch",
                    r.code, r.reason
                )));
            }
        }
        pair_detail = "; beside a valid contact: one Err, one Ok".into();
    }
    let stored = served.count(ObjectType::CONTACTS);
    let expected = usize::from(!pair_detail.is_empty());
    ensure!(
        stored == expected,
        "the emulator holds {stored} contacts, {expected} expected (the refused one must not be stored)"
    );
    let sent = if writes.is_empty() {
        "refused before sending".to_owned()
    } else {
        format!(
            "sent once ({})",
            writes.keys().copied().collect::<Vec<_>>().join(", ")
        )
    };
    Ok(format!(
        "refused as {} naming no value, {sent}, not retried{pair_detail}",
        rejection.code
    ))
}

/// Migrates generated records from a [`MemorySource`] into the sink through
/// `ferry_core::run`, against an emulator with `faults`; `fault` names the injected status for
/// messages, and `is_fault` recognises it.
async fn migrate_through(
    ctx: &Ctx,
    faults: Faults,
    fault: &str,
    is_fault: fn(u16) -> bool,
) -> Verdict {
    let served = ctx.serve(faults, None).await?;
    let sink: Arc<dyn Sink> = ctx.sink(&served, None)?;
    let batch = super::capability(ctx, sink.as_ref(), ObjectType::CONTACTS)
        .await?
        .batch_size
        .clamp(1, MAX_SANE_SIZE);
    // Two batches of contacts where that stays small: each injected fault costs a retry's
    // wait, so more requests only make the check slower.
    let contacts = (batch + batch / 2).clamp(12, 250);
    let records = generated(ctx, contacts);
    let objects = base_objects(ctx);
    let all: Vec<Record> = objects
        .iter()
        .flat_map(|o| records[o].iter().cloned())
        .collect();
    let source = Arc::new(MemorySource::new(all, 100));
    let options = RunOptions {
        objects: objects.clone(),
        ..RunOptions::default()
    };
    let report = ferry_core::run(
        Mode::Migrate,
        source,
        Arc::clone(&sink),
        &options,
        Arc::new(Progress::new(&objects)),
    )
    .await;
    if let Some(e) = &report.error {
        ctx.note(e.clone());
    }
    for f in report.failures.iter().chain(&report.warnings) {
        ctx.note(format!("{} {}", f.code, f.reason));
    }
    let injected = served.traffic.snapshot().responses(is_fault);
    ensure!(
        report.outcome == Outcome::Verified,
        "the migration ended {:?}{}{} ({injected} {fault} injected)",
        report.outcome,
        report
            .error
            .as_ref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default(),
        report
            .failures
            .first()
            .map(|f| format!(
                "; {} failures, e.g. {} {}: {} ({})",
                report.failures.len(),
                f.object,
                f.source_id,
                f.code,
                f.reason
            ))
            .unwrap_or_default()
    );
    let mut parts = Vec::new();
    for object in &objects {
        let sent = records[object].len();
        let stored = served.count(*object);
        let verified = report
            .objects
            .iter()
            .find(|o| o.object == Some(*object))
            .map_or(0, |o| o.verified as usize);
        ensure!(
            stored == sent && verified == sent,
            "sent {sent} {object}, verified {verified}, the emulator holds {stored}"
        );
        parts.push(format!("{sent} {object}"));
    }
    ensure!(
        injected > 0,
        "the emulator injected no {fault} response during the migration, so retries were never exercised (its fault layer ignores this fault: see ferry_sandbox::faults::inject)"
    );
    Ok(format!(
        "{} migrated and verified through {injected} injected {fault} responses ({} retries)",
        parts.join(" and "),
        report.sink_http.retries
    ))
}

/// Check 8a: throttling (429 with `Retry-After`) is retried and nothing is lost.
pub(crate) async fn retries_429(ctx: Arc<Ctx>) -> Verdict {
    let faults = Faults {
        throttle_every: Some(3),
        retry_after_secs: Some(1),
        ..Faults::default()
    };
    migrate_through(&ctx, faults, "429", |s| s == 429).await
}

/// Check 8b: 5xx answers are retried and nothing is lost.
pub(crate) async fn retries_5xx(ctx: Arc<Ctx>) -> Verdict {
    let faults = Faults {
        unavailable_every: Some(4),
        ..Faults::default()
    };
    migrate_through(&ctx, faults, "5xx", |s| s >= 500).await
}
