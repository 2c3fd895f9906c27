//! The final summary, for people (a table and the first failures) or for CI (`--report json`).

use std::fmt::Write as _;

use ferry_core::report::count;
use ferry_core::{ErrorKind, Failure, Outcome, Report};

use crate::hardening;

/// How many failures and warnings the human summary lists before saying how many more.
const LISTED: usize = 20;

/// The report as a person reads it.
pub fn human(report: &Report) -> String {
    let mut out = String::new();
    // A sync whose every record read was as the last sync wrote it changed nothing either.
    let nothing_changed = report
        .objects
        .iter()
        .all(|o| o.read == o.unchanged_skipped && o.archived + o.deleted + o.not_removed == 0);
    let read_again: u64 = report.objects.iter().map(|o| o.unchanged_skipped).sum();
    let unchanged;
    let verdict = match report.outcome {
        Outcome::Verified if report.command == "sync" && nothing_changed && read_again == 0 => {
            "nothing changed since the last sync: 0 records read, nothing written"
        }
        Outcome::Verified if report.command == "sync" && nothing_changed => {
            unchanged = format!(
                "nothing changed since the last sync: {} read again, as the last sync wrote \
                 them; nothing written",
                count(read_again, "record", "records")
            );
            &unchanged
        }
        Outcome::Interrupted | Outcome::Failed if report.stopped == Some("daily_quota") => {
            "STOPPED at the daily request quota before finishing"
        }
        Outcome::Verified => "every record written and verified",
        Outcome::RecordsFailed => {
            "every written record verified; some records failed (listed below)"
        }
        Outcome::Mismatch => {
            "VERIFICATION MISMATCH: the sink differs from what was sent (listed below)"
        }
        Outcome::Failed => "FAILED before finishing",
        Outcome::Interrupted => "STOPPED on request before finishing",
        Outcome::NotInSink => {
            "every record in the sink agrees with the source; some source records are NOT IN THE SINK (listed below)"
        }
    };
    let _ = writeln!(
        out,
        "\nferry {}: {} -> {}: {verdict} ({:.1} s)",
        report.command,
        report.source,
        report.sink,
        report.elapsed_ms as f64 / 1000.0
    );
    if let Some(error) = &report.error {
        let kind = report.error_kind.map_or("", ErrorKind::as_str);
        let _ = writeln!(out, "error ({kind}): {error}");
    }
    if let Some(q) = &report.daily_quota {
        let _ = match q.share {
            Some(share) => writeln!(
                out,
                "stopped at the daily quota of the {} ({}): this run used {} of the {} left when \
                 it started, its share of {:.0}% (daily_quota_share); {} left of {}",
                q.role,
                q.vendor,
                q.used,
                q.remaining_at_start,
                share * 100.0,
                q.remaining,
                q.limit
            ),
            None => writeln!(
                out,
                "stopped at the daily quota of the {} ({}): the vendor refused a request because \
                 the day's quota of {} is used up",
                q.role, q.vendor, q.limit
            ),
        };
    }
    let not_in_sink: u64 = report.objects.iter().map(|o| o.not_in_sink).sum();
    if not_in_sink > 0 {
        let _ = writeln!(
            out,
            "{} not in {} (never written: refused during the migration, or not migrated yet); \
             nothing written differs because of them",
            count(not_in_sink, "source record is", "source records are"),
            report.sink
        );
    }
    if !report.fields_created.is_empty() {
        let _ = writeln!(
            out,
            "created in {} (create_missing_fields): {}",
            report.sink,
            crate::plan::escape_control(&report.fields_created.join(", "))
        );
    }
    if !report.owners_unmatched.is_empty() {
        // By source user id only: an owner's email or name is personal data.
        let listed: Vec<String> = report
            .owners_unmatched
            .iter()
            .take(LISTED)
            .map(|u| {
                format!(
                    "{} ({}, {})",
                    u.source_user_id,
                    count(u.records, "record", "records"),
                    u.action.as_str()
                )
            })
            .collect();
        let more = report.owners_unmatched.len().saturating_sub(LISTED);
        let _ = writeln!(
            out,
            "owners with no active user of the same email in {} (by source user id): {}{}",
            report.sink,
            crate::plan::escape_control(&listed.join(", ")),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    let resumed: u64 = report.objects.iter().map(|o| o.already_done).sum();
    if resumed > 0 {
        let _ = writeln!(
            out,
            "resumed from the checkpoint: {} settled by earlier runs and not read again",
            count(resumed, "record was", "records were")
        );
    }
    for o in &report.objects {
        let (Some(object), Some(sync)) = (o.object, &o.sync) else {
            continue;
        };
        let read = match &sync.watermark_before {
            Some(since) => format!("incremental read of the changes since {since}"),
            None => "full read".to_owned(),
        };
        let after = sync.watermark_after.as_deref().unwrap_or("none");
        let unchanged = if o.unchanged_skipped > 0 {
            format!(
                " ({} as the last sync wrote {}, not written again)",
                count(o.unchanged_skipped, "unchanged", "unchanged"),
                if o.unchanged_skipped == 1 {
                    "it"
                } else {
                    "them"
                }
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "sync {object}: {read}, {}{unchanged}; watermark {}",
            count(o.read, "record", "records"),
            if sync.advanced {
                format!("now {after}")
            } else if sync.settled {
                format!("now {after}, as before (the sync point has not moved since the last sync)")
            } else {
                format!("kept at {after}: the next sync reads these changes again")
            }
        );
    }
    // Only a migration keeps a checkpoint: a verify has nothing to resume.
    if report.command == "migrate"
        && matches!(report.outcome, Outcome::Interrupted | Outcome::Failed)
    {
        let _ = match &report.checkpoint {
            Some(path) if report.checkpoint_saved => writeln!(
                out,
                "progress is saved in {path}: run the same command again to resume there"
            ),
            // Never claim a save that failed: a rerun resumes from the last save that
            // succeeded, if any.
            Some(path) => writeln!(
                out,
                "progress could NOT be saved in {path}: a rerun resumes from the last save that \
                 succeeded, if any, or starts over (safe: writes are upserts by source id)"
            ),
            None => writeln!(
                out,
                "no checkpoint is configured: a rerun starts over (safe: writes are upserts by source id); \
                 set [migration] checkpoint to resume instead"
            ),
        };
    }
    let _ = writeln!(
        out,
        "\n{:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
        "object", "read", "written", "created", "updated", "failed", "verified", "mismatched"
    );
    for o in &report.objects {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "{name:<10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            o.read, o.written, o.created, o.updated, o.failed, o.verified, o.mismatched
        );
        if o.unprocessed > 0 {
            let _ = writeln!(
                out,
                "{:<10} {} read but not processed because the run stopped",
                "",
                count(o.unprocessed, "record", "records")
            );
        }
        if o.archived + o.deleted + o.not_removed > 0 {
            let _ = writeln!(
                out,
                "{:<10} gone from the source: {} archived, {} deleted in the sink{}",
                "",
                o.archived,
                o.deleted,
                if o.not_removed > 0 {
                    format!(
                        "; {} NOT removed (refused, listed below)",
                        count(o.not_removed, "record", "records")
                    )
                } else {
                    String::new()
                }
            );
        }
        if o.not_in_sink > 0 {
            let _ = writeln!(
                out,
                "{:<10} {} not in the sink",
                "",
                count(o.not_in_sink, "record", "records")
            );
        }
        if o.extra_in_sink > 0 {
            let _ = writeln!(
                out,
                "{:<10} EXTRA IN SINK: {} holds {} with a source id, {} more than this run read back \
                 (duplicates, or records whose source record is gone)",
                "",
                report.sink,
                count(o.in_sink.unwrap_or_default(), "record", "records"),
                o.extra_in_sink
            );
        }
    }
    let _ = writeln!(
        out,
        "\nchecksums (SHA-256, summed over records; sent vs read back from {}):",
        report.sink
    );
    for o in &report.objects {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let state = if o.digests_match { "match" } else { "DIFFER" };
        let _ = writeln!(
            out,
            "  {name:<10} sent      {} ({})",
            o.sent_digest.hex(),
            count(o.sent_digest.count(), "record", "records")
        );
        let _ = writeln!(
            out,
            "  {:<10} read back {} ({}) {state}",
            "",
            o.read_back_digest.hex(),
            count(o.read_back_digest.count(), "record", "records")
        );
    }
    for o in report
        .objects
        .iter()
        .filter(|o| !o.fields_not_carried.is_empty())
    {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "  {name:<10} not carried ({} has no place for them): {}",
            report.sink,
            o.fields_not_carried.join(", ")
        );
    }
    for o in report
        .objects
        .iter()
        .filter(|o| !o.links_not_carried.is_empty())
    {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let fields: Vec<String> = o
            .links_not_carried
            .iter()
            .map(|(field, n)| format!("{field} on {}", count(*n, "record", "records")))
            .collect();
        let _ = writeln!(
            out,
            "  {name:<10} links not carried ({} holds fewer; each record is a NOT_CARRIED warning): {}",
            report.sink,
            fields.join(", ")
        );
    }
    for o in report
        .objects
        .iter()
        .filter(|o| !o.times_rounded.is_empty())
    {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let fields: Vec<String> = o
            .times_rounded
            .iter()
            .map(|(field, n)| format!("{field} on {}", count(*n, "record", "records")))
            .collect();
        let _ = writeln!(
            out,
            "  {name:<10} times kept to the second ({} keeps no fractions; each record is a TIME_ROUNDED warning): {}",
            report.sink,
            fields.join(", ")
        );
    }
    for o in report
        .objects
        .iter()
        .filter(|o| !o.phones_normalized.is_empty())
    {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let fields: Vec<String> = o
            .phones_normalized
            .iter()
            .map(|(field, n)| format!("{field} {}", count(*n, "number", "numbers")))
            .collect();
        let _ = writeln!(
            out,
            "  {name:<10} phone numbers written in E.164 form, not as read (migration.phones = \"normalize\"): {}",
            fields.join(", ")
        );
    }
    for o in report.objects.iter().filter(|o| o.mx_unchecked > 0) {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        let _ = writeln!(
            out,
            "  {name:<10} warning: {} whose email domain DNS did not answer for (timeout or server \
             failure; migration.email_mx_check): neither flagged nor passed",
            count(o.mx_unchecked, "address", "addresses")
        );
    }
    for o in report
        .objects
        .iter()
        .filter(|o| !o.duplicate_clusters.is_empty())
    {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        // Each cluster's first record, and every later one (counted by evidence).
        let records = o.duplicate_clusters_found + o.duplicates.values().sum::<u64>();
        let by: Vec<String> = o
            .duplicates
            .iter()
            .map(|(code, n)| {
                format!(
                    "{} {n}",
                    code.trim_start_matches("DUPLICATE_").to_lowercase()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "  {name:<10} the same person more than once: {} of {} (found by {}); the report lists them (`duplicate_clusters`)",
            count(o.duplicate_clusters_found, "cluster", "clusters"),
            count(records, "record", "records"),
            by.join(", ")
        );
        if o.merged > 0 {
            let _ = writeln!(
                out,
                "  {name:<10} merged (migration.duplicates = \"merge\"): {} into {}; the report lists each (`merges`)",
                count(o.merged, "record", "records"),
                count(o.merges.len() as u64, "survivor", "survivors"),
            );
        }
    }
    consent_lines(&mut out, report);
    list(&mut out, "failed records", &report.failures);
    list(&mut out, "warnings (records written)", &report.warnings);
    let _ = writeln!(
        out,
        "\nrequests: {} {}; {} {}",
        report.source,
        requests(&report.source_http),
        report.sink,
        requests(&report.sink_http)
    );
    out
}

/// One vendor's request counts, and the time its limits made ferry wait when there was any:
/// "120 (2 retried, 2 throttled, waited 3.0 s on 429 and Retry-After)".
fn requests(http: &ferry_core::report::HttpReport) -> String {
    let seconds = |ms: u64| format!("{:.1} s", ms as f64 / 1000.0);
    let mut waits = Vec::new();
    if http.paced_ms > 0 {
        waits.push(format!(
            "{} paced to the rate limit",
            seconds(http.paced_ms)
        ));
    }
    if http.throttled_wait_ms > 0 {
        waits.push(format!(
            "{} on 429 and Retry-After",
            seconds(http.throttled_wait_ms)
        ));
    }
    let waited = if waits.is_empty() {
        String::new()
    } else {
        format!(", waited {}", waits.join(" and "))
    };
    format!(
        "{} ({} retried, {} throttled{waited})",
        http.requests, http.retries, http.throttled
    )
}

/// One line per object and channel with opted-out records: how many were read opted out, and
/// of those how many the sink holds opted out (verified), were refused and were written
/// without the opt-out as `[consent] accept_loss` allows; then the sink's own opt-outs left
/// standing.
fn consent_lines(out: &mut String, report: &Report) {
    for o in &report.objects {
        let name = o.object.map(|o| o.as_str()).unwrap_or("?");
        for (channel, c) in &o.consent {
            if c.opted_out + c.kept_in_sink == 0 {
                continue;
            }
            let mut line = format!(
                "  {name:<10} consent, {channel}: {} opted out: {} kept opted out in {}, {} refused, {} lost",
                count(c.opted_out, "record", "records"),
                c.kept,
                report.sink,
                c.refused,
                c.lost
            );
            if c.lost > 0 {
                line.push_str(" (written without it: [consent] accept_loss)");
            }
            if c.kept_in_sink > 0 {
                let _ = write!(
                    line,
                    "; {} opted out in {} only, left opted out",
                    count(c.kept_in_sink, "more record", "more records"),
                    report.sink
                );
            }
            let _ = writeln!(out, "{line}");
        }
    }
}

fn list(out: &mut String, title: &str, entries: &[Failure]) {
    if entries.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title} ({}):", entries.len());
    for f in entries.iter().take(LISTED) {
        let stage = serde_json::to_value(f.stage)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {} {} [{stage}] {}: {}",
            f.object, f.source_id, f.code, f.reason
        );
    }
    if entries.len() > LISTED {
        let _ = writeln!(
            out,
            "  ... and {} more (`--report json` lists every one)",
            entries.len() - LISTED
        );
    }
}

/// The JSON report of a `migrate` or `verify` that stopped before it could run (a config error,
/// a connector that could not be built): the same `outcome`, `error` and `error_kind` fields as
/// a full report, so a CI job parses both alike.
pub fn json_error(command: &str, kind: ErrorKind, error: &anyhow::Error) -> String {
    let value = serde_json::json!({
        "command": command,
        "outcome": Outcome::Failed,
        "error": format!("{error:#}"),
        "error_kind": kind,
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The whole report as JSON, with the sandbox status (see [`sandbox`]) under `"sandbox"` when
/// the command sealed itself.
pub fn json(report: &Report, sandbox: Option<&hardening::Status>) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(report)?;
    if let (Some(status), Some(object)) = (sandbox, value.as_object_mut()) {
        object.insert("sandbox".into(), serde_json::to_value(status)?);
    }
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The human summary's last line: whether the kernel forbids ferry filesystem writes (Landlock)
/// and whether core dumps are disabled.
pub fn sandbox(status: &hardening::Status) -> String {
    let mut line = match status.landlock {
        "enforced" => format!(
            "sandbox: Landlock enforced (kernel ABI {}): no filesystem writes",
            status.abi.unwrap_or_default()
        ),
        "partial" => format!("sandbox: Landlock PARTIAL: {}", status.detail),
        _ => format!(
            "sandbox: Landlock UNAVAILABLE, filesystem writes not blocked by the kernel: {}",
            status.detail
        ),
    };
    if status.landlock != "unavailable" {
        if status.writable.is_empty() {
            if status.landlock == "enforced" {
                line.push_str(" at all");
            }
        } else {
            let dirs: Vec<String> = status
                .writable
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            line.push_str(&format!(
                " except checkpoint and sync state files in {}",
                dirs.join(", ")
            ));
        }
    }
    if status.core_dumps_disabled {
        line.push_str("; core dumps disabled");
    } else {
        line.push_str(&format!(
            "; core dumps NOT disabled: {}",
            status.core_dumps_detail
        ));
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn report(command: &'static str, outcome: Outcome) -> Report {
        Report {
            command,
            source: "hubspot",
            sink: "salesforce",
            outcome,
            error: None,
            error_kind: None,
            objects: vec![ferry_core::report::ObjectReport {
                object: Some(ferry_core::ObjectType::CONTACTS),
                read: 11,
                verified: 10,
                unprocessed: 1,
                ..Default::default()
            }],
            failures: Vec::new(),
            warnings: Vec::new(),
            source_http: Default::default(),
            sink_http: Default::default(),
            elapsed_ms: 10,
            interrupted: true,
            checkpoint: None,
            checkpoint_saved: false,
            fields_created: Vec::new(),
            owners_unmatched: Vec::new(),
            blocked: Vec::new(),
            stopped: None,
            daily_quota: None,
        }
    }

    #[test]
    fn an_interrupted_verify_speaks_of_no_checkpoint_and_counts_in_the_singular() {
        let text = human(&report("verify", Outcome::Interrupted));
        assert!(text.contains("1 record read but not processed"), "{text}");
        assert!(!text.contains("checkpoint"), "{text}");
        // A migration does tell how to resume.
        let text = human(&report("migrate", Outcome::Interrupted));
        assert!(text.contains("no checkpoint is configured"), "{text}");
    }

    #[test]
    fn unmatched_owners_are_listed_by_source_user_id_with_their_records_and_action() {
        use ferry_core::owners::Unmatched;
        let mut r = report("migrate", Outcome::Verified);
        for (id, records, action) in [("101", 4, Unmatched::Reject), ("7", 1, Unmatched::Reject)] {
            r.owners_unmatched.push(ferry_core::UnmatchedOwner {
                source_user_id: id.into(),
                records,
                action,
            });
        }
        let text = human(&r);
        assert!(
            text.contains(
                "owners with no active user of the same email in salesforce (by source user id): \
                 101 (4 records, reject), 7 (1 record, reject)"
            ),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["owners_unmatched"][0],
            serde_json::json!({"source_user_id": "101", "records": 4, "action": "reject"})
        );
    }

    #[test]
    fn a_stop_at_the_daily_quota_says_whose_and_how_much() {
        let mut r = report("migrate", Outcome::Interrupted);
        r.stop_for_daily_quota(ferry_core::quota::QuotaStop {
            role: "sink",
            vendor: "salesforce",
            limit: 100_000,
            remaining_at_start: 194,
            remaining: 91,
            used: 103,
            share: Some(0.5),
        });
        let text = human(&r);
        assert!(
            text.contains("STOPPED at the daily request quota"),
            "{text}"
        );
        assert!(
            text.contains("used 103 of the 194 left when it started, its share of 50%"),
            "{text}"
        );
        assert_eq!(r.exit_code(), 4);
        let json: serde_json::Value =
            serde_json::from_str(&json(&r, None).expect("json")).expect("parses");
        assert_eq!(json["stopped"], "daily_quota", "{json}");
        assert_eq!(json["error_kind"], "daily_quota", "{json}");
        assert_eq!(json["daily_quota"]["used"], 103, "{json}");

        let mut r = report("migrate", Outcome::Failed);
        r.error = Some("REQUEST_LIMIT_EXCEEDED".into());
        r.stop_for_daily_quota(ferry_core::quota::refused("sink", "salesforce", None));
        let text = human(&r);
        assert!(text.contains("the vendor refused a request"), "{text}");
        assert_eq!(r.exit_code(), 4, "resumable, like a stop at the share");
    }

    #[test]
    fn rate_limit_waits_are_shown_per_vendor_only_when_there_were_any() {
        let mut r = report("sync", Outcome::Verified);
        r.source_http.requests = 12;
        r.sink_http = ferry_core::report::HttpReport {
            requests: 40,
            retries: 3,
            throttled: 3,
            paced_ms: 1_250,
            throttled_wait_ms: 3_004,
            ..Default::default()
        };
        let text = human(&r);
        assert!(
            text.contains(
                "requests: hubspot 12 (0 retried, 0 throttled); salesforce 40 (3 retried, 3 \
                 throttled, waited 1.2 s paced to the rate limit and 3.0 s on 429 and Retry-After)"
            ),
            "{text}"
        );
        r.sink_http.paced_ms = 0;
        assert!(
            human(&r).contains("(3 retried, 3 throttled, waited 3.0 s on 429 and Retry-After)")
        );
        assert!(
            human(&r).contains("every record written and verified"),
            "11 read, none unchanged"
        );
        r.objects[0].unchanged_skipped = 11;
        assert!(
            human(&r).contains(
                "nothing changed since the last sync: 11 records read again, as the last sync \
                 wrote them; nothing written"
            ),
            "{}",
            human(&r)
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sink_http"]["throttled_wait_ms"], 3_004);
        assert_eq!(json["source_http"]["paced_ms"], 0);
    }

    #[test]
    fn links_not_carried_are_counted_per_object_and_field() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].links_not_carried =
            [("parents".to_owned(), 2), ("deals".to_owned(), 1)].into();
        let text = human(&r);
        assert!(
            text.contains(
                "  contacts   links not carried (salesforce holds fewer; each record is a \
                 NOT_CARRIED warning): deals on 1 record, parents on 2 records"
            ),
            "{text}"
        );
        r.objects[0].links_not_carried.clear();
        assert!(!human(&r).contains("links not carried"));
    }

    #[test]
    fn times_rounded_are_counted_per_object_and_field() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].times_rounded = [("timestamp".to_owned(), 3)].into();
        let text = human(&r);
        assert!(
            text.contains(
                "  contacts   times kept to the second (salesforce keeps no fractions; each record \
                 is a TIME_ROUNDED warning): timestamp on 3 records"
            ),
            "{text}"
        );
        r.objects[0].times_rounded.clear();
        assert!(!human(&r).contains("times kept"));
    }

    #[test]
    fn unchecked_email_domains_are_one_warning_per_object() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].mx_unchecked = 3;
        let text = human(&r);
        assert_eq!(text.matches("did not answer").count(), 1, "{text}");
        assert!(
            text.contains(
                "  contacts   warning: 3 addresses whose email domain DNS did not answer for"
            ),
            "{text}"
        );
        r.objects[0].mx_unchecked = 0;
        assert!(!human(&r).contains("did not answer"));
    }

    #[test]
    fn normalised_phone_numbers_are_counted_per_object_and_field() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].phones_normalized =
            [("mobile_phone".to_owned(), 1), ("phone".to_owned(), 7)].into();
        let text = human(&r);
        assert!(
            text.contains(
                "  contacts   phone numbers written in E.164 form, not as read \
                 (migration.phones = \"normalize\"): mobile_phone 1 number, phone 7 numbers"
            ),
            "{text}"
        );
        r.objects[0].phones_normalized.clear();
        assert!(!human(&r).contains("E.164"));
    }

    #[test]
    fn duplicate_people_are_summed_up_per_object() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].duplicates = [
            ("DUPLICATE_EMAIL".to_owned(), 2),
            ("DUPLICATE_NAME".to_owned(), 1),
        ]
        .into();
        r.objects[0].duplicate_clusters = vec![
            vec!["1".into(), "4".into(), "9".into()],
            vec!["2".into(), "3".into()],
        ];
        r.objects[0].duplicate_clusters_found = 2;
        let text = human(&r);
        assert!(
            text.contains(
                "  contacts   the same person more than once: 2 clusters of 5 records (found by \
                 email 2, name 1)"
            ),
            "{text}"
        );
    }

    #[test]
    fn each_channel_with_opt_outs_gets_a_consent_line() {
        let mut r = report("migrate", Outcome::Verified);
        r.objects[0].consent.insert(
            "phone",
            ferry_core::consent::ChannelCounts {
                opted_out: 5,
                kept: 3,
                refused: 1,
                lost: 1,
                kept_in_sink: 2,
            },
        );
        r.objects[0]
            .consent
            .insert("fax", ferry_core::consent::ChannelCounts::default());
        let text = human(&r);
        assert!(
            text.contains(
                "  contacts   consent, phone: 5 records opted out: 3 kept opted out in salesforce, \
                 1 refused, 1 lost (written without it: [consent] accept_loss); 2 more records \
                 opted out in salesforce only, left opted out"
            ),
            "{text}"
        );
        assert!(!text.contains("consent, fax"), "{text}");
    }

    #[test]
    fn the_error_kind_is_shown_with_the_error() {
        let mut r = report("migrate", Outcome::Failed);
        r.fail(ErrorKind::Network, "hubspot: GET /x: network error".into());
        let text = human(&r);
        assert!(
            text.contains("error (network): hubspot: GET /x: network error"),
            "{text}"
        );
    }

    #[test]
    fn the_sandbox_line_says_what_is_enforced() {
        let mut status = hardening::Status {
            landlock: "enforced",
            abi: Some(7),
            detail: String::new(),
            writable: vec![PathBuf::from("/var/lib/ferry")],
            core_dumps_disabled: true,
            core_dumps_detail: String::new(),
        };
        assert_eq!(
            sandbox(&status),
            "sandbox: Landlock enforced (kernel ABI 7): no filesystem writes except checkpoint \
             and sync state files in /var/lib/ferry; core dumps disabled\n"
        );
        status.writable.clear();
        assert!(sandbox(&status).contains("no filesystem writes at all;"));
        status.landlock = "unavailable";
        status.detail = "the kernel has no Landlock".into();
        status.core_dumps_disabled = false;
        status.core_dumps_detail = "prctl: EPERM".into();
        let line = sandbox(&status);
        assert!(
            line.contains("UNAVAILABLE") && line.contains("core dumps NOT disabled: prctl"),
            "{line}"
        );
    }
}
