//! `ferry plan`: a dry run. It checks the config and both vendors, reads the first page of each
//! object and shows what a migration would write, with customer values masked. It writes
//! nothing to any vendor (no `prepare`, no upsert) and nothing to disk (sealed like `migrate`).
//!
//! Also the wording of the scope warning `ferry check` prints; what each vendor's credentials
//! need lives in its connector's spec (`ConnectorSpec::permissions`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use ferry_core::directory::Directory;
use ferry_core::owners::{OwnerMap, Unmatched};
use ferry_core::stages::StageMap;
use ferry_core::{Capability, Mode, ObjectType, Record, Report, Role, Value};

use crate::{CliError, EXIT_CONFIG, EXIT_FAILED, Prepared, hardening, summary};

/// Options of `ferry plan`.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// The config file.
    #[arg(short, long, default_value = "ferry.toml")]
    pub config: PathBuf,
    /// Show the preview's values in clear instead of masked (they are customer data: do not
    /// paste the output into tickets or CI logs).
    #[arg(long)]
    pub show_values: bool,
    /// Seconds the whole dry run may take; what was found by then is printed.
    #[arg(long, default_value_t = PLAN_DEADLINE_SECS, value_parser = clap::value_parser!(u64).range(1..))]
    pub deadline: u64,
    /// Run even though source and sink are the same account.
    #[arg(long)]
    pub allow_same_account: bool,
    /// Skip the whole-source check: read only each object's first page (quick, but says
    /// nothing of consent, findings or duplicates beyond it).
    #[arg(long)]
    pub first_page_only: bool,
    /// Seconds between progress lines of the whole-source check when stderr is not a
    /// terminal, or `NO_COLOR` is set.
    #[arg(long, default_value_t = 5)]
    pub progress_interval: u64,
}

/// The default of `ferry plan --deadline`. The dry run makes a handful of requests per object
/// (a count and a first page) with the migration's own patience (60 s timeouts, 8 retries):
/// without a deadline one hung endpoint would hold it for about ten minutes. Two minutes allow
/// for slow first pages of several objects.
const PLAN_DEADLINE_SECS: u64 = 120;

/// The most picklist labels `plan` lists by name as having no sink value.
const UNMAPPED_LISTED: usize = 5;

/// Records previewed per object.
const PREVIEW: usize = 3;

/// Source ids listed per finding code by the whole-source check.
const FIRST_IDS: usize = 5;

/// Where `ferry sync` keeps its state for this config, when `[sync] state` is set: a file, or
/// the environment variables of the sink and how long a killed run's lease blocks the next.
fn sync_state_line(config: &crate::config::Config, source: &str, sink: &str) -> Option<String> {
    let state = config.sync.state.as_ref()?;
    if !config.sync.in_sink() {
        return Some(format!("sync state: the file {}", state.display()));
    }
    let key = ferry_core::sync::sink_state_key(source, &config.fingerprint().ok()?);
    Some(format!(
        "sync state: in the {sink} sink, environment variable ferry_state_{key} (lease \
         ferry_lease_{key}: a killed sync blocks the next for up to {} s)",
        config.sync.lease_seconds
    ))
}

/// Runs the dry run and prints it on stdout. Exit 0 when both vendors answered and every first
/// page was read, 2 when stages are unmapped or the owner rules name no active sink user (a
/// migration would refuse to start) or a migration would need more than `daily_quota_share`
/// of a vendor's daily quota (it would stop part-way), 1 otherwise.
pub async fn run(
    args: PlanArgs,
    prepared: Prepared,
    setup: crate::fields::FieldSetup,
    quiet: bool,
) -> Result<u8, CliError> {
    let Prepared {
        source,
        sink,
        options,
        config,
        ..
    } = prepared;
    let share = config.migration.daily_quota_share();
    let (source_for_check, sink_for_check) = (Arc::clone(&source), Arc::clone(&sink));
    let mut out = String::new();
    if args.show_values {
        let warning = "warning: --show-values: the preview below shows customer data unmasked";
        eprintln!("{warning}");
        let _ = writeln!(out, "{warning}");
    }
    let _ = writeln!(
        out,
        "ferry plan: {} -> {} (config {}): a dry run, nothing is written",
        source.vendor(),
        sink.vendor(),
        args.config.display()
    );
    if let Some(line) = sync_state_line(&config, source.vendor(), sink.vendor()) {
        let _ = writeln!(out, "{line}");
    }
    let mut code = 0;
    // Each object's record count, where the source could say.
    let mut counts: Vec<(ObjectType, Option<u64>)> = Vec::new();
    let deadline = std::time::Duration::from_secs(args.deadline);
    let work = async {
        for (role, vendor, result) in [
            ("source", source.vendor(), source.check().await),
            ("sink", sink.vendor(), sink.check().await),
        ] {
            match result {
                Ok(()) => {
                    let _ = writeln!(out, "{role} {vendor}: reachable, credentials accepted");
                }
                Err(e) => {
                    let _ = writeln!(out, "{role} {vendor}: {e}");
                    code = EXIT_FAILED;
                }
            }
        }
        // The email domain check, when configured, asks DNS about the first pages' domains.
        let mx = match options
            .quality
            .email_mx
            .clone()
            .map(ferry_core::mx::MxChecker::new)
        {
            Some(Ok(mx)) => Some(std::sync::Arc::new(mx)),
            Some(Err(e)) => {
                let _ = writeln!(out, "email MX check: {e}");
                code = EXIT_CONFIG;
                None
            }
            None => None,
        };
        if code == 0 {
            for &object in &options.objects {
                let stored =
                    match ferry_core::pipeline::survey_capability(sink.as_ref(), object).await {
                        Ok(capability) => capability.stored,
                        Err(e) => {
                            let _ = writeln!(out, "\n{}: {e}", object.as_str());
                            code = EXIT_FAILED;
                            continue;
                        }
                    };
                let _ = writeln!(out, "\n{}:", object.as_str());
                let counted = source.count(object).await;
                counts.push((object, counted.as_ref().ok().copied().flatten()));
                // Told the count, as a migration tells it, a sink that writes a large object
                // differently (Salesforce's Bulk API 2.0) estimates the requests it would spend
                // that way.
                if let Ok(Some(n)) = counted.as_ref()
                    && sink.wants_size(object)
                {
                    sink.expect(object, *n);
                }
                let _ = match counted {
                    Ok(Some(n)) => writeln!(
                        out,
                        "  {} in {}",
                        ferry_core::report::count(n, "record", "records"),
                        source.vendor()
                    ),
                    Ok(None) => writeln!(
                        out,
                        "  record count: {} cannot say cheaply",
                        source.vendor()
                    ),
                    Err(e) => writeln!(out, "  record count failed: {e}"),
                };
                let _ = writeln!(
                    out,
                    "  written and verified: {}",
                    if stored.is_empty() {
                        "(no fields)".to_owned()
                    } else {
                        stored.join(", ")
                    }
                );
                let plan = setup.plans.get(&object);
                if let Some(plan) = plan {
                    describe_field_plan(&mut out, plan);
                }
                let page = match source.read_page(object, None).await {
                    Ok(page) => page,
                    Err(e) => {
                        let _ = writeln!(out, "  first page could not be read: {e}");
                        code = EXIT_FAILED;
                        continue;
                    }
                };
                if let Some(plan) = plan {
                    let refused = page
                        .records
                        .iter()
                        .filter(|r| unmapped_value(r, &plan.value_maps))
                        .count();
                    if refused > 0 {
                        let _ = writeln!(
                            out,
                            "  first page: {} a picklist value with no sink value (refused by a \
                             migration, by source id)",
                            ferry_core::report::count(
                                refused as u64,
                                "record holds",
                                "records hold"
                            )
                        );
                    }
                }
                if mx.is_some() {
                    describe_mail_domains(&mut out, &page.records, &options.quality, mx.clone())
                        .await;
                }
                let not_carried = not_carried(&page.records, &stored);
                if !not_carried.is_empty() {
                    let _ = writeln!(
                        out,
                        "  not carried ({} has no place for them): {}",
                        sink.vendor(),
                        escape_control(&not_carried.join(", "))
                    );
                }
                let _ = writeln!(
                    out,
                    "  first page: {}{}; preview of {}{}:",
                    ferry_core::report::count(page.records.len() as u64, "record", "records"),
                    if page.unreadable.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " and {} that cannot be mapped (listed by id in a migration)",
                            page.unreadable.len()
                        )
                    },
                    page.records.len().min(PREVIEW),
                    if args.show_values {
                        " (values SHOWN)"
                    } else {
                        " (values masked; --show-values shows them)"
                    }
                );
                for record in page.records.iter().take(PREVIEW) {
                    let _ = writeln!(out, "    {}", preview(record, args.show_values));
                }
            }
        }
        if code == 0 {
            let mut capabilities: Vec<(ObjectType, Capability)> = Vec::new();
            for &o in &options.objects {
                if let Ok(capability) =
                    ferry_core::pipeline::survey_capability(sink.as_ref(), o).await
                {
                    capabilities.push((o, capability));
                }
            }
            let needs: Vec<(ObjectType, &Capability)> =
                capabilities.iter().map(|(o, c)| (*o, c)).collect();
            match Directory::read(source.as_ref(), sink.as_ref(), &needs, &options.directory).await
            {
                Ok(directory) => {
                    if let Some(owners) = directory.owners() {
                        describe_owners(&mut out, owners);
                    }
                    for &object in &options.objects {
                        if let Some(stages) = directory.stages(object) {
                            describe_stages(&mut out, object, stages);
                        }
                    }
                    if directory.problem().is_some() {
                        code = EXIT_CONFIG;
                    }
                }
                Err(e) => {
                    let _ = writeln!(
                        out,
                        "
owners and stages: {e}"
                    );
                    code = if e.kind() == ferry_core::ErrorKind::Config {
                        EXIT_CONFIG
                    } else {
                        EXIT_FAILED
                    };
                }
            }
            if describe_daily_quota(&mut out, source.as_ref(), sink.as_ref(), &counts, share) {
                code = EXIT_CONFIG;
            }
        }
    };
    if tokio::time::timeout(deadline, work).await.is_err() {
        let mut last: Vec<String> = Vec::new();
        for vendor in [source.vendor(), sink.vendor()] {
            if let Some(endpoint) = ferry_core::http::last_request(vendor) {
                let said = format!("{vendor} {endpoint}");
                if !last.contains(&said) {
                    last.push(said);
                }
            }
        }
        let _ = writeln!(
            out,
            "stopped: the dry run did not finish within its {} s deadline (--deadline){}",
            args.deadline,
            if last.is_empty() {
                String::new()
            } else {
                format!("; the last requests were {}", last.join(" and "))
            }
        );
        code = EXIT_FAILED;
    }
    print!("{out}");
    if code != EXIT_FAILED && !args.first_page_only {
        // The whole source, checked as a migration checks it before writing. No deadline:
        // it reads every record (progress on stderr; a signal stops it and what was checked
        // is shown).
        let report = crate::execute(
            Mode::Check,
            source_for_check,
            sink_for_check,
            &options,
            quiet,
            args.progress_interval,
            None,
        )
        .await;
        let mut checked = String::new();
        describe_check(&mut checked, &report);
        print!("{checked}");
        if !report.blocked.is_empty() {
            code = EXIT_CONFIG;
        } else if report.error.is_some() {
            code = EXIT_FAILED;
        }
    }
    if let Some(status) = hardening::status() {
        print!("\n{}", summary::sandbox(status));
    }
    Ok(code)
}

/// The whole-source check: per object, what a migration would write and refuse, the findings
/// by code with counts and the first source ids, consent per channel and duplicate clusters;
/// then what would stop a migration before it writes. Ids and counts only, never a value.
fn describe_check(out: &mut String, report: &Report) {
    let _ = writeln!(
        out,
        "\nwhole source checked, as a migration checks each record before writing (nothing \
         written):"
    );
    for o in &report.objects {
        let Some(object) = o.object else { continue };
        let _ = writeln!(
            out,
            "{object}: {} read; {} would be written, {} refused, {} skipped{}{}",
            o.read,
            o.checked,
            o.failed,
            o.skipped,
            if o.merged > 0 {
                format!(", {} merged into a duplicate", o.merged)
            } else {
                String::new()
            },
            if o.unprocessed > 0 {
                format!(", {} not checked (the check stopped)", o.unprocessed)
            } else {
                String::new()
            }
        );
        for (label, list) in [("refused", &report.failures), ("flagged", &report.warnings)] {
            let mut by_code: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for f in list.iter().filter(|f| f.object == object) {
                by_code.entry(&f.code).or_default().push(&f.source_id);
            }
            for (code, ids) in by_code {
                let first: Vec<String> = ids
                    .iter()
                    .take(FIRST_IDS)
                    .map(|id| escape_control(id))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {label} {code}: {}{} ({}{})",
                    ids.len(),
                    match code {
                        "PAYMENT_CARD" | "BANK_ACCOUNT" => " (dangerous data)",
                        _ => "",
                    },
                    first.join(", "),
                    if ids.len() > FIRST_IDS { ", …" } else { "" }
                );
            }
        }
        for (channel, c) in &o.consent {
            let _ = writeln!(
                out,
                "  consent, {channel}: {} opted out; {} refused, {} lost as accept_loss allows",
                c.opted_out, c.refused, c.lost
            );
        }
        if !o.duplicate_clusters.is_empty() {
            let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
            for cluster in &o.duplicate_clusters {
                *sizes.entry(cluster.len()).or_default() += 1;
            }
            let sizes: Vec<String> = sizes
                .iter()
                .map(|(size, n)| format!("{n} of {size}"))
                .collect();
            let first: Vec<String> = o
                .duplicate_clusters
                .iter()
                .take(FIRST_IDS)
                .map(|c| format!("[{}]", escape_control(&c.join(", "))))
                .collect();
            let _ = writeln!(
                out,
                "  duplicate clusters: {} (of those listed: {}); first: {}",
                o.duplicate_clusters_found,
                sizes.join(", "),
                first.join(" ")
            );
        }
    }
    for blocked in &report.blocked {
        let _ = writeln!(out, "a migration would refuse to start: {blocked}");
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "the check stopped: {error}");
    } else if report.interrupted {
        let _ = writeln!(out, "the check was stopped before the end of the source");
    }
}

/// Per vendor: the daily request quota its answers stated so far (plan's own requests have
/// been made by now: HubSpot's headers come with its first call, Salesforce's with every
/// call), the requests a migration would spend from the record counts and each connector's
/// requests per record, and whether that is more than the share a migration may use
/// (`daily_quota_share`). `true` when it is: a migration would stop part-way, at the share.
fn describe_daily_quota(
    out: &mut String,
    source: &dyn ferry_core::Source,
    sink: &dyn ferry_core::Sink,
    counts: &[(ObjectType, Option<u64>)],
    share: f64,
) -> bool {
    use ferry_core::quota::{allowed_share, estimate_requests};
    let _ = writeln!(
        out,
        "\ndaily request quota (a migration stops once it has used {:.0}% of what is left when it \
         starts: daily_quota_share):",
        share * 100.0
    );
    let source_needs: Vec<(Option<u64>, Option<f64>)> = counts
        .iter()
        .map(|(o, n)| (*n, source.requests_per_record(*o)))
        .collect();
    let sink_needs: Vec<(Option<u64>, Option<f64>)> = counts
        .iter()
        .map(|(o, n)| (*n, sink.requests_per_record(*o)))
        .collect();
    let mut exceeded = false;
    for (role, vendor, stats, needs) in [
        ("source", source.vendor(), source.http_stats(), source_needs),
        ("sink", sink.vendor(), sink.http_stats(), sink_needs),
    ] {
        let quota = stats.and_then(|s| s.daily_quota.get());
        let estimate = estimate_requests(&needs);
        let needs = match estimate {
            Some(n) => format!(
                "a migration needs about {}",
                ferry_core::report::count(n, "request", "requests")
            ),
            None => "the requests a migration needs are unknown (a record count or the \
                     connector's requests per record is)"
                .to_owned(),
        };
        let Some(quota) = quota else {
            let _ = writeln!(
                out,
                "  {role} {vendor}: daily quota unknown (its answers state none); {needs}"
            );
            continue;
        };
        let allowed = allowed_share(quota.remaining, share);
        let verdict = match estimate {
            Some(n) if n > allowed => {
                exceeded = true;
                format!(
                    ": {}% of what is left, MORE than the {allowed} it may use; a migration would \
                     stop part-way (exit 4) and resume when the quota allows",
                    percent(n, quota.remaining)
                )
            }
            Some(n) => format!(" ({}% of what is left)", percent(n, quota.remaining)),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {role} {vendor}: {} of {} left today; {needs}{verdict}",
            quota.remaining, quota.limit
        );
    }
    if exceeded {
        let _ = writeln!(
            out,
            "a migration would stop part-way: it needs more than daily_quota_share of a daily \
             quota (above)"
        );
    }
    exceeded
}

/// `part` as a whole percentage of `whole` (rounded up: 0 only when `part` is 0).
fn percent(part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return if part == 0 { 0 } else { 100 };
    }
    (part.saturating_mul(100)).div_ceil(whole)
}

/// The most records `plan` lists by source id for one email domain finding.
const MX_LISTED: usize = 5;

/// The first page's email domain findings (`migration.email_mx_check`), per code with the
/// records' source ids, and how many addresses DNS did not answer for. Never a domain.
async fn describe_mail_domains(
    out: &mut String,
    records: &[Record],
    rules: &ferry_core::quality::QualityRules,
    mx: Option<std::sync::Arc<ferry_core::mx::MxChecker>>,
) {
    let mut quality = ferry_core::quality::QualityChecker::new(
        rules.clone(),
        "plan",
        Vec::new(),
        Default::default(),
    )
    .with_mx(mx);
    quality.look_up_domains(records).await;
    let mut by_code: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for record in records {
        for finding in quality.mail_domain_findings(record) {
            by_code
                .entry(finding.code)
                .or_default()
                .push(&record.source_id);
        }
    }
    for (code, ids) in by_code {
        let listed: Vec<String> = ids
            .iter()
            .take(MX_LISTED)
            .map(|id| format!("`{}`", escape_control(id)))
            .collect();
        let _ = writeln!(
            out,
            "  first page: {} (a warning in a migration, written as read): {}{}",
            ferry_core::report::count(
                ids.len() as u64,
                &format!("record with {code}"),
                &format!("records with {code}")
            ),
            listed.join(", "),
            if ids.len() > MX_LISTED { ", ..." } else { "" }
        );
    }
    if quality.mx_unchecked() > 0 {
        let _ = writeln!(
            out,
            "  first page: {} whose domain DNS did not answer for (not checked)",
            ferry_core::report::count(quality.mx_unchecked(), "address", "addresses")
        );
    }
}

/// The most unmatched source user ids `plan` lists by id.
const OWNERS_LISTED: usize = 20;

/// How owners are matched: how many source users have an active sink user, and the ids (never
/// the emails) of those that have none.
fn describe_owners(out: &mut String, owners: &OwnerMap) {
    let unmatched = owners.unmatched_users();
    let _ = writeln!(
        out,
        "
owners (matched by email, ignoring case): {} of {} matched to an active sink user",
        owners.matched_count(),
        ferry_core::report::count(
            (owners.matched_count() + unmatched.len()) as u64,
            "source user",
            "source users"
        )
    );
    if unmatched.is_empty() {
        return;
    }
    let listed: Vec<&str> = unmatched
        .iter()
        .take(OWNERS_LISTED)
        .map(String::as_str)
        .collect();
    let more = unmatched.len().saturating_sub(OWNERS_LISTED);
    let rule = match owners.unmatched_rule() {
        Unmatched::Unset => "left without an owner: the sink's default owner applies",
        Unmatched::Fallback => "owned by the fallback user",
        Unmatched::Reject => "refused",
    };
    let _ = writeln!(
        out,
        "  unmatched source user ids (their records are {rule}; [mapping.owners] pairs emails): {}{}",
        escape_control(&listed.join(", ")),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
}

/// The whole stage mapping of `object`: every source stage with the sink stage it maps to and
/// how, every unmapped stage, and every key that names no source stage.
fn describe_stages(out: &mut String, object: ObjectType, stages: &StageMap) {
    let _ = writeln!(
        out,
        "
{object} stages (source pipeline/stage -> sink pipeline/stage):"
    );
    for m in &stages.mapped {
        let _ = writeln!(
            out,
            "  {} -> {} ({})",
            escape_control(&format!("\"{}/{}\"", m.source_pipeline, m.source_stage)),
            escape_control(&format!("\"{}/{}\"", m.sink_pipeline, m.sink_stage)),
            escape_control(&m.matched_by.to_string())
        );
    }
    for u in &stages.unmapped {
        let _ = writeln!(
            out,
            "  UNMAPPED {} (a migration refuses to start; map it in [mapping.deal_stages])",
            escape_control(&u.to_string())
        );
    }
    for key in &stages.unknown_keys {
        let _ = writeln!(
            out,
            "  config key `mapping.deal_stages.{}` names no source stage",
            escape_control(&format!("{key:?}"))
        );
    }
}

/// Whether `record` holds a picklist label the sink has no value for.
fn unmapped_value(record: &Record, maps: &[ferry_core::fieldplan::ValueMap]) -> bool {
    maps.iter().any(|map| {
        record
            .text(&map.canonical)
            .is_some_and(|label| map.apply(label) == ferry_core::fieldplan::Mapped::Unmapped)
    })
}

/// The field map of one object: the carried pairs with their kinds, the fields that would be
/// created, the source's picklist labels the sink has no value for (labels are the vendors'
/// metadata, not record values), and suggestions for unmapped source fields.
fn describe_field_plan(out: &mut String, plan: &ferry_core::fieldplan::FieldPlan) {
    for m in &plan.mapped {
        let _ = writeln!(
            out,
            "  {} field: source `{}` ({}) -> `{}` ({}), verified as `{}`",
            if m.configured { "mapped" } else { "picklist" },
            escape_control(&m.source),
            m.source_kind,
            escape_control(&m.sink),
            m.sink_kind,
            escape_control(&m.canonical)
        );
    }
    for new in &plan.to_create {
        let _ = writeln!(
            out,
            "  would create in the sink (create_missing_fields): `{}` ({})",
            escape_control(&new.name),
            new.kind
        );
    }
    for map in &plan.value_maps {
        let Some(binding) = plan
            .source_bindings
            .iter()
            .find(|b| b.canonical == map.canonical.as_str())
        else {
            continue;
        };
        let unmapped = map.unmapped(binding.options.iter().map(|o| o.label.as_str()));
        if !unmapped.is_empty() {
            // A long list (HubSpot's 148 industries) is counted; `ferry fields` lists them all.
            let listed = if unmapped.len() <= UNMAPPED_LISTED {
                escape_control(&unmapped.join(", "))
            } else {
                format!(
                    "{} of the source's {} options (`ferry fields` lists them)",
                    unmapped.len(),
                    binding.options.len()
                )
            };
            let _ = writeln!(
                out,
                "  source values of `{}` with no value in the sink's `{}` (records holding them \
                 are refused; map them in [values]): {listed}",
                escape_control(&binding.vendor),
                escape_control(&map.sink_field),
            );
        }
    }
    for s in &plan.unmapped {
        let _ = writeln!(
            out,
            "  unmapped source field `{}` ({}){}",
            escape_control(&s.source),
            escape_control(&s.label),
            s.sink
                .as_ref()
                .map(|n| format!(": most like the sink's `{}`", escape_control(n)))
                .unwrap_or_default()
        );
    }
}

/// Fields the records hold that the sink does not store, as the migration's report counts them.
fn not_carried(records: &[Record], stored: &[String]) -> Vec<String> {
    let fields: BTreeSet<&str> = records
        .iter()
        .flat_map(|r| r.fields.keys().map(|k| k.as_ref()))
        .filter(|name| !stored.iter().any(|s| s == name))
        .collect();
    fields.into_iter().map(str::to_owned).collect()
}

/// `text` with every character that could act on a terminal or forge a line escaped: C0
/// controls (newline, carriage return, ESC, BEL, …), DEL, C1 controls, and the bidirectional
/// overrides, embeddings, isolates and marks that reorder what is displayed. Newline, carriage
/// return and tab read `\n`, `\r`, `\t`; the others `\u{1b}`. Vendor data is anyone's
/// input: an OSC sequence in a company name must not retitle the operator's terminal, nor a
/// newline print a line that looks like ferry's.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_bidi_control(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// Unicode's bidirectional formatting characters (UAX #9): marks, embeddings, overrides and
/// isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// One record as `source id <id>: field=value, …`, control characters escaped (see
/// [`escape_control`]): ids, names and values all come from the vendor.
fn preview(record: &Record, show_values: bool) -> String {
    escape_control(&preview_raw(record, show_values))
}

fn preview_raw(record: &Record, show_values: bool) -> String {
    let fields: Vec<String> = record
        .fields
        .iter()
        .map(|(name, value)| {
            let shown = if show_values {
                value.to_vendor_string()
            } else {
                mask(value)
            };
            format!("{}={shown}", AsRef::<str>::as_ref(name))
        })
        .collect();
    format!("source id {}: {}", record.source_id, fields.join(", "))
}

/// A value as the masked preview shows it: an email as `j***@e***.com`, other text as its first
/// character and a fixed run of stars (`G******`, so the length is not shown either), numbers,
/// flags and dates as their type only. References are source ids, shown as they are.
pub fn mask(value: &Value) -> String {
    match value {
        Value::Text(text) => mask_text(text),
        Value::Reference(id) => id.clone(),
        Value::Links(links) => links
            .iter()
            .map(|l| format!("{}:{}", l.object, l.id))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Bool(_) => "<boolean>".into(),
        Value::Integer(_) | Value::Decimal(_) => "<number>".into(),
        Value::Timestamp(_) => "<timestamp>".into(),
        Value::Date(_) => "<date>".into(),
        // Stage ids are the vendor's metadata, not customer data.
        Value::Stage(id) => format!("{}/{}", id.pipeline, id.stage),
    }
}

fn mask_text(text: &str) -> String {
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    if let Some((local, domain)) = text.split_once('@')
        && !local.is_empty()
        && !domain.is_empty()
    {
        let tld = domain
            .rsplit_once('.')
            .map(|(_, tld)| format!(".{tld}"))
            .unwrap_or_default();
        return format!("{}***@{}***{tld}", first(local), first(domain));
    }
    if text.is_empty() {
        return String::new();
    }
    format!("{}******", first(text))
}

/// The warning `ferry check` prints when a connector's spec flags granted scopes as more than
/// `role` needs (see [`ferry_core::ConnectorSpec::excess_scopes`]); `None` when none are.
pub fn excess_warning(role: Role, excess: &[String]) -> Option<String> {
    (!excess.is_empty()).then(|| {
        format!(
            "the token grants more than the {} needs ({}): a narrower grant limits the damage if it leaks",
            role.as_str(),
            excess.join(" ")
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stage_mapping_and_the_owner_matching_are_listed_without_emails() {
        use ferry_core::owners::OwnerRules;
        use ferry_core::stages::StageRules;
        use ferry_core::{Pipeline, PipelineStage, StageOutcome, User};
        let pipeline = |id: &str, label: &str, stages: &[&str]| Pipeline {
            id: id.into(),
            label: label.into(),
            stages: stages
                .iter()
                .map(|s| PipelineStage {
                    id: format!("{id}-{s}"),
                    label: (*s).into(),
                    outcome: StageOutcome::Open,
                })
                .collect(),
        };
        let source = [pipeline(
            "p",
            "Sales Pipeline",
            &["Appointment Scheduled", "Closed Won", "Negotiation"],
        )];
        let sink = [pipeline("o", "Opportunity", &["Prospecting", "closed won"])];
        let rules = StageRules {
            pairs: vec![
                (
                    "Sales Pipeline/Appointment Scheduled".into(),
                    "Prospecting".into(),
                ),
                ("Nope".into(), "Prospecting".into()),
            ],
        };
        let mut out = String::new();
        describe_stages(
            &mut out,
            ObjectType::DEALS,
            &StageMap::build(&rules, &source, &sink),
        );
        assert_eq!(
            out,
            "\ndeals stages (source pipeline/stage -> sink pipeline/stage):\n  \
             \"Sales Pipeline/Appointment Scheduled\" -> \"Opportunity/Prospecting\" (mapped by key \
             \"Sales Pipeline/Appointment Scheduled\")\n  \
             \"Sales Pipeline/Closed Won\" -> \"Opportunity/closed won\" (same label)\n  \
             UNMAPPED \"Sales Pipeline/Negotiation\" (no sink stage labelled \"negotiation\") (a \
             migration refuses to start; map it in [mapping.deal_stages])\n  \
             config key `mapping.deal_stages.\"Nope\"` names no source stage\n"
        );
        let user = |id: &str, email: &str| User {
            id: id.into(),
            email: email.into(),
            active: true,
        };
        let owners = OwnerMap::build(
            &OwnerRules::default(),
            &[
                user("s1", "a@x.example"),
                user("s2", "b@x.example"),
                user("s3", "c@x.example"),
            ],
            &[user("k1", "A@x.example")],
        )
        .unwrap();
        let mut out = String::new();
        describe_owners(&mut out, &owners);
        assert_eq!(
            out,
            "\nowners (matched by email, ignoring case): 1 of 3 source users matched to an active \
             sink user\n  unmatched source user ids (their records are left without an owner: the \
             sink's default owner applies; [mapping.owners] pairs emails): s2, s3\n"
        );
    }

    #[test]
    fn excess_scopes_are_named_in_the_warning() {
        assert_eq!(excess_warning(Role::Source, &[]), None);
        let warning = excess_warning(Role::Sink, &["full".to_owned(), "x.ALL".to_owned()]);
        assert_eq!(
            warning.as_deref(),
            Some(
                "the token grants more than the sink needs (full x.ALL): a narrower grant \
                 limits the damage if it leaks"
            )
        );
    }

    use ferry_core::ObjectType;

    use super::*;

    #[test]
    fn values_are_masked() {
        let text = |s: &str| mask(&Value::Text(s.into()));
        assert_eq!(text("jane.doe@example.com"), "j***@e***.com");
        assert_eq!(text("ops@localhost"), "o***@l***");
        assert_eq!(text("Gabriel"), "G******");
        assert_eq!(text("Ö"), "Ö******");
        assert_eq!(text("+1 555 0100"), "+******");
        assert_eq!(text("@handle"), "@******");
        assert_eq!(text(""), "");
        assert_eq!(mask(&Value::Integer(42)), "<number>");
        assert_eq!(mask(&Value::Decimal(1.5)), "<number>");
        assert_eq!(mask(&Value::Bool(true)), "<boolean>");
        assert_eq!(mask(&Value::Timestamp(0)), "<timestamp>");
        assert_eq!(mask(&Value::Reference("123".into())), "123");
    }

    #[test]
    fn the_preview_masks_unless_asked() {
        let mut r = Record::new(ObjectType::CONTACTS, "501");
        r.fields
            .insert("email".into(), Value::Text("jane@example.com".into()));
        r.fields
            .insert("first_name".into(), Value::Text("Jane".into()));
        assert_eq!(
            preview(&r, false),
            "source id 501: email=j***@e***.com, first_name=J******"
        );
        assert_eq!(
            preview(&r, true),
            "source id 501: email=jane@example.com, first_name=Jane"
        );
        assert_eq!(
            not_carried(&[r], &["email".to_owned()]),
            vec!["first_name".to_owned()]
        );
    }

    #[test]
    fn the_preview_escapes_control_characters() {
        let mut r = Record::new(ObjectType::COMPANIES, "7\n8");
        r.fields.insert(
            "name".into(),
            Value::Text("\u{1b}]0;pwned\u{7}Acme\nINFO forged log line".into()),
        );
        r.fields.insert(
            "city".into(),
            Value::Text("\u{202e}nodnoL\u{9b}\u{7f}".into()),
        );
        for show_values in [true, false] {
            let line = preview(&r, show_values);
            assert!(
                !line.chars().any(|c| c.is_control() || is_bidi_control(c)),
                "{line:?}"
            );
        }
        assert_eq!(
            preview(&r, true),
            "source id 7\\n8: city=\\u{202e}nodnoL\\u{9b}\\u{7f}, \
             name=\\u{1b}]0;pwned\\u{7}Acme\\nINFO forged log line"
        );
        assert_eq!(
            preview(&r, false),
            "source id 7\\n8: city=\\u{202e}******, name=\\u{1b}******"
        );
        assert_eq!(escape_control("Zoë\tX"), "Zoë\\tX");
    }
}
