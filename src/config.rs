//! The operator's config file (`ferry.toml`): which vendors, which objects, how.
//!
//! Every table rejects unknown keys, so a typo is an error naming the key rather than a
//! setting silently ignored. Secrets are only `${ENV_VAR}` references (see `SecretRef`).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use ferry_core::ObjectType;
use ferry_core::consent::ConsentPolicy;
use ferry_core::directory::DirectoryRules;
use ferry_core::fieldplan::FieldSettings;
use ferry_core::owners::{OwnerRules, Unmatched, normalise_email};
use ferry_core::quality::{
    DuplicateMatching, Duplicates, InvalidEmail, MergeSurvivor, MissingReference, MissingRequired,
    PaymentData, Phones, QualityRules,
};
use ferry_core::stages::StageRules;
use serde::Deserialize;

/// The config file format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// The largest config file ferry reads: 1 MiB, far beyond any real config (a few KiB), so
/// `--config /dev/zero` or a log file given by mistake fails at once instead of filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The largest `max_record_bytes` accepted: 1 GiB (a record is held in memory several times).
pub const MAX_RECORD_BYTES_LIMIT: usize = 1024 * 1024 * 1024;

/// A parsed config file. Connector tables stay raw until the registry knows which connector
/// they are for.
#[derive(Debug)]
pub struct Config {
    /// The `[source]` table: `connector` and that connector's settings.
    pub source: ConnectorTable,
    /// The `[sink]` table.
    pub sink: ConnectorTable,
    /// The `[migration]` table.
    pub migration: MigrationConfig,
    /// `[fields.<object>]` and `[values.<object>.<field>]`, per object.
    pub fields: BTreeMap<ObjectType, FieldSettings>,
    /// `create_missing_fields` in `[sink]`: create sink fields the field map needs.
    pub create_missing_fields: bool,
    /// `[mapping.owners]` and `[mapping.deal_stages]`: how owners and stages are mapped.
    pub directory: DirectoryRules,
    /// The `[sync]` table: `ferry sync`'s state file and deletion policy.
    pub sync: SyncConfig,
    /// The `[consent]` table: opt-outs the operator accepts to lose.
    pub consent: ConsentPolicy,
}

/// A connector's table: its name and the rest of its settings.
#[derive(Debug, Clone)]
pub struct ConnectorTable {
    /// `source` or `sink`: the table's name, for error messages.
    pub role: &'static str,
    /// The connector's name, e.g. `hubspot`.
    pub connector: String,
    /// The remaining settings, parsed by the connector's own config type.
    pub settings: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Config format version; absent means the current one.
    version: Option<u32>,
    source: Option<toml::Table>,
    sink: Option<toml::Table>,
    #[serde(default)]
    migration: MigrationConfig,
    /// `[fields.<object>]`: source vendor field = sink vendor field.
    #[serde(default)]
    fields: BTreeMap<String, BTreeMap<String, String>>,
    /// `[values.<object>.<field>]`: source label = sink label.
    #[serde(default)]
    values: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    /// `[mapping.owners]` and `[mapping.deal_stages]`.
    #[serde(default)]
    mapping: RawMapping,
    /// `[sync]`: `ferry sync`'s settings.
    #[serde(default)]
    sync: SyncConfig,
    /// `[consent]`: what the consent guard may let go.
    #[serde(default)]
    consent: RawConsent,
}

/// The `[consent]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    /// Opt-out fields (`do_not_call`) the operator accepts to lose where the sink cannot hold
    /// them.
    #[serde(default)]
    accept_loss: Vec<String>,
}

impl RawConsent {
    /// The policy, each name checked against the model's opt-outs.
    fn policy(self) -> anyhow::Result<ConsentPolicy> {
        for name in &self.accept_loss {
            if ferry_core::model::opt_out(name).is_none() {
                let known: Vec<&str> = ferry_core::model::OPT_OUTS
                    .iter()
                    .map(|o| o.field)
                    .collect();
                bail!(
                    "config key `consent.accept_loss`: `{name}` is not an opt-out ferry carries; \
                     the opt-outs are {}",
                    known.join(", ")
                );
            }
        }
        Ok(ConsentPolicy {
            accept_loss: self.accept_loss,
        })
    }
}

/// The `[sync]` table: what `ferry sync` keeps between runs and how it treats deletions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncConfig {
    /// The state file: per object, the watermark the next sync reads changes from (no record
    /// data). Required by `ferry sync`. Relative paths are relative to the working directory;
    /// `"sink"` keeps it in the sink, where the vendor allows ([`SyncConfig::in_sink`]).
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// With `state = "sink"`: how long the lease on the state lasts unless renewed (it is
    /// renewed every quarter of it), so how long a killed sync blocks the next. Default 120.
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u64,
    /// What a sync does with records deleted in the source: `"ignore"` (the default: they
    /// stay in the sink), `"archive"` (the sink's soft delete) or `"delete"`.
    #[serde(default = "default_deletes")]
    pub deletes: String,
    /// The most sink records one sync may archive or delete: a sync that would remove more is
    /// refused (exit 3) before it writes anything, unless `--allow-mass-delete`. Default 100.
    #[serde(default = "default_max_deletes")]
    pub max_deletes: u64,
}

fn default_deletes() -> String {
    "ignore".into()
}

fn default_max_deletes() -> u64 {
    100
}

fn default_lease_seconds() -> u64 {
    120
}

/// Why a sink vendor cannot keep `ferry sync`'s state (`[sync] state = "sink"`): data, one
/// line per vendor without a place for a small text value that needs no new schema, or
/// without compare-and-swap on it. A vendor not listed keeps it if its connector offers a
/// place ([`ferry_core::Sink::state_store`]).
const NO_STATE_IN_SINK: &[(&str, &str)] = &[
    (
        "hubspot",
        "HubSpot has no place for a small text value without creating schema (a custom object \
         or property)",
    ),
    (
        "salesforce",
        "Salesforce has no place for a small text value without creating schema (a custom \
         object or custom setting)",
    ),
    (
        "pipedrive",
        "Pipedrive has no place for a small text value without creating schema (a custom field)",
    ),
    (
        "zoho",
        "Zoho CRM's org variables cannot be replaced conditionally (no compare-and-swap), so \
         two syncs could overwrite each other's state",
    ),
];

impl Default for SyncConfig {
    fn default() -> Self {
        SyncConfig {
            state: None,
            lease_seconds: default_lease_seconds(),
            deletes: default_deletes(),
            max_deletes: default_max_deletes(),
        }
    }
}

impl SyncConfig {
    /// How the sink removes records deleted in the source; `None` for `"ignore"`.
    pub fn removal(&self) -> anyhow::Result<Option<ferry_core::Removal>> {
        match self.deletes.as_str() {
            "ignore" => Ok(None),
            "archive" => Ok(Some(ferry_core::Removal::Archive)),
            "delete" => Ok(Some(ferry_core::Removal::Delete)),
            _ => bail!(
                "config key `sync.deletes`: must be \"ignore\" (records deleted in the source \
                 stay in the sink), \"archive\" or \"delete\""
            ),
        }
    }

    /// Checks the values serde's types cannot express.
    fn validate(&self) -> anyhow::Result<()> {
        self.removal()?;
        if self
            .state
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            bail!(
                "config key `sync.state`: is empty; name a file such as \"ferry-sync-state.json\""
            );
        }
        if self.lease_seconds == 0 {
            bail!("config key `sync.lease_seconds`: must be at least 1 (default 120)");
        }
        Ok(())
    }

    /// Whether the state is kept in the sink (`state = "sink"`; `"./sink"` names a file).
    pub fn in_sink(&self) -> bool {
        self.state.as_deref() == Some(Path::new("sink"))
    }

    /// Refuses `state = "sink"` for a sink vendor that cannot keep it, naming the key, the
    /// vendor and why.
    fn check_sink_vendor(&self, sink: &str) -> anyhow::Result<()> {
        if !self.in_sink() {
            return Ok(());
        }
        if let Some((_, why)) = NO_STATE_IN_SINK.iter().find(|(v, _)| *v == sink) {
            bail!(
                "config key `sync.state`: \"sink\" cannot be used with the {sink} sink: {why}; \
                 name a file such as \"ferry-sync-state.json\" (\"./sink\" names a file called \
                 sink)"
            );
        }
        Ok(())
    }

    /// The lease length of a state kept in the sink.
    pub fn lease(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_seconds)
    }

    /// Checks that the state file (if any) can be written where it is configured (see
    /// [`check_file_key`]).
    pub fn check_state_path(&self) -> anyhow::Result<()> {
        match &self.state {
            Some(_) if self.in_sink() => Ok(()),
            Some(path) => check_file_key("sync.state", path, "ferry-sync-state.json"),
            None => Ok(()),
        }
    }

    /// The state file `ferry sync` needs, or an error naming `sync.state`.
    pub fn state_path(&self) -> anyhow::Result<&Path> {
        self.state.as_deref().ok_or_else(|| {
            anyhow!(
                "config key `sync.state`: is required by `ferry sync`; name the file that keeps \
                 each object's watermark between syncs, e.g. `[sync]` state = \"ferry-sync-state.json\""
            )
        })
    }
}

/// Checks that `path`, the value of config key `key`, names a file that can be written: not
/// empty, not a directory, in an existing directory this user may write. Done when the config
/// is loaded, so that a bad path stops the run before any vendor is written to.
fn check_file_key(key: &str, path: &Path, example: &str) -> anyhow::Result<()> {
    let bad = |what: String| anyhow!("config key `{key}`: {what}");
    if path.as_os_str().is_empty() {
        return Err(bad(format!("is empty; name a file such as \"{example}\"")));
    }
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") || path.is_dir() {
        return Err(bad(format!(
            "`{}` names a directory; name a file in it, such as \"{}/{example}\"",
            path.display(),
            path.display().to_string().trim_end_matches('/')
        )));
    }
    let dir = checkpoint_dir(path);
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(bad(format!(
                "`{}` is not a directory, so `{}` cannot be created",
                dir.display(),
                path.display()
            )));
        }
        Err(e) => {
            return Err(bad(format!(
                "the directory `{}` cannot be used ({}); create it or name another file",
                dir.display(),
                e.kind()
            )));
        }
    }
    if !writable_dir(&dir) {
        return Err(bad(format!(
            "the directory `{}` is not writable by this user",
            dir.display()
        )));
    }
    Ok(())
}

/// The `[mapping]` table: owners and stages, which are matched rather than copied.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    /// `unmatched`, `fallback` and source email = sink email pairs, checked by hand so that
    /// each error names its key.
    owners: Option<toml::Table>,
    /// "source pipeline/source stage" or "source stage" = "sink stage".
    #[serde(default)]
    deal_stages: BTreeMap<String, String>,
}

/// The `[migration]` table: what to move and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// Object types to move, run parents first whatever the order given.
    /// Default: `["companies", "contacts"]`.
    #[serde(default = "default_objects")]
    pub objects: Vec<String>,
    /// Sink batches (writes, and read-backs) in flight at once. Default 4, or the sink's
    /// concurrent-call limit where that is what limits it (see [`Self::in_flight`]).
    #[serde(default)]
    pub batches_in_flight: Option<usize>,
    /// What to do with a malformed email address: `"reject"` (default; the record is listed as
    /// failed and not written) or `"warn"` (written, and listed as a warning).
    #[serde(default)]
    pub invalid_email: InvalidEmail,
    /// A file where `migrate` saves how far it got (cursors and counts only, never record data),
    /// so that a run that was stopped or killed resumes there. Relative paths are relative to
    /// the working directory. Default: none (a rerun starts over; upserts keep it correct).
    #[serde(default)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// What to do with a record missing a field the sink requires: `"reject"` (default: the
    /// record is listed as failed; ferry never invents data silently) or
    /// `{ placeholder = "[not provided]" }` (that text is written, and a warning lists the record).
    #[serde(default)]
    pub missing_required: MissingRequired,
    /// What to do with a record referring to one the source does not have (a contact whose
    /// company is not among the companies read): `"reject"` (default) or `"drop"` (written
    /// without the reference, with a warning).
    #[serde(default)]
    pub missing_reference: MissingReference,
    /// Records holding more than this many bytes of text are refused. Default 1 MiB.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// What to do with a payment card or bank account number found in a text field: `"flag"`
    /// (default: written, and listed as a warning), `"refuse"` (not written, listed as
    /// failed) or `"redact"` (written with the number masked, listed as a warning).
    #[serde(default)]
    pub payment_data: PaymentData,
    /// What to do with phone numbers: `"off"` (default: carried unchecked), `"check"` (an
    /// invalid one is listed as a warning) or `"normalize"` (checked, and valid ones written
    /// as E.164).
    #[serde(default)]
    pub phones: Phones,
    /// The region (ISO 3166-1 code or English country name) of phone numbers in national
    /// form, for records whose `country` names none. Default: none (such numbers are not
    /// judged).
    #[serde(default)]
    pub phone_region: Option<String>,
    /// What to do with a person the source holds twice (same email, same phone and a similar
    /// name, or a near-identical name at the same company or email domain): `"flag"` (default:
    /// written, and listed as a warning naming the first record), `"skip"` (only the first
    /// is written) or `"merge"` (one survivor written, filled from the others; references to
    /// the others re-pointed to it).
    #[serde(default)]
    pub duplicates: Duplicates,
    /// Which record of a cluster survives `duplicates = "merge"`: `"complete"` (default: the
    /// most fields filled) or `"latest"` (the latest `updated_at`); ties go to the latest
    /// update, then the lowest source id.
    #[serde(default)]
    pub merge_survivor: MergeSurvivor,
    /// What counts as the same person twice: `"email"` (default: the same address; 8 bytes a
    /// record) or `"full"` (also the same phone and a similar name, or a near-identical name
    /// at the same company or email domain; about 60 bytes a record, plus each finding).
    #[serde(default)]
    pub duplicate_matching: DuplicateMatching,
    /// Whether each email address's domain is asked of DNS whether it takes mail (MX, or A or
    /// AAAA): a domain that does not exist, has none, or publishes a null MX is listed as a
    /// warning. Only the domain is sent, never the address. Default: false.
    #[serde(default)]
    pub email_mx_check: bool,
    /// How long one domain's DNS questions may take together, in milliseconds (1 to 60000).
    /// Default 2000; set only with `email_mx_check`.
    #[serde(default)]
    pub mx_timeout_ms: Option<u64>,
    /// Domains asked about at once (1 to 256). Default 8; set only with `email_mx_check`.
    #[serde(default)]
    pub mx_concurrency: Option<usize>,
    /// The DNS server asked, as `"ip:port"` or an IP (port 53). Default: the system resolver's
    /// configuration (`/etc/resolv.conf`); set only with `email_mx_check`.
    #[serde(default)]
    pub dns_server: Option<String>,
    /// The share (above 0, at most 1) of a vendor account's daily request quota left when a
    /// `migrate` or `sync` starts that it may use: once it has, it stops cleanly (exit 4,
    /// resumable). Checked per vendor from the quota its answers state (HubSpot's daily
    /// headers, Salesforce's `Sforce-Limit-Info`). Default 0.9: the quota is shared with every
    /// other integration of the account, so a tenth of it stays theirs.
    #[serde(default)]
    pub daily_quota_share: Option<f64>,
}

/// The default of `[migration] daily_quota_share`.
pub const DEFAULT_DAILY_QUOTA_SHARE: f64 = 0.9;

fn default_max_record_bytes() -> usize {
    QualityRules::default().max_record_bytes
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            objects: default_objects(),
            batches_in_flight: None,
            invalid_email: InvalidEmail::default(),
            checkpoint: None,
            missing_required: MissingRequired::default(),
            missing_reference: MissingReference::default(),
            max_record_bytes: default_max_record_bytes(),
            payment_data: PaymentData::default(),
            phones: Phones::default(),
            phone_region: None,
            duplicates: Duplicates::default(),
            duplicate_matching: DuplicateMatching::default(),
            email_mx_check: false,
            mx_timeout_ms: None,
            mx_concurrency: None,
            dns_server: None,
            merge_survivor: MergeSurvivor::default(),
            daily_quota_share: None,
        }
    }
}

/// The longest `migration.mx_timeout_ms`: a minute per domain.
const MX_TIMEOUT_MS_LIMIT: u64 = 60_000;

/// The most `migration.mx_concurrency`.
const MX_CONCURRENCY_LIMIT: usize = 256;

/// `migration.dns_server` as a socket address: `ip:port`, or an IP alone for port 53.
fn dns_server(text: &str) -> Option<std::net::SocketAddr> {
    text.parse().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, 53))
    })
}

fn default_objects() -> Vec<String> {
    ObjectType::DEFAULT_RUN
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect()
}

/// Batches in flight when the config names none and the sink has no concurrency limit.
const DEFAULT_IN_FLIGHT: usize = 4;
/// Most batches in flight a config may ask for.
const MAX_IN_FLIGHT: usize = 64;

impl MigrationConfig {
    /// Batches in flight: as configured, else at least as many as the calls the sink may have
    /// in flight at once (`sink_concurrency`: Zoho's concurrency limit), so that a sink limited
    /// by concurrency, not rate, has every call slot busy; else 4.
    pub fn in_flight(&self, sink_concurrency: Option<usize>) -> usize {
        self.batches_in_flight.unwrap_or_else(|| {
            sink_concurrency.map_or(DEFAULT_IN_FLIGHT, |n| {
                n.clamp(DEFAULT_IN_FLIGHT, MAX_IN_FLIGHT)
            })
        })
    }

    /// The data-quality rules these settings describe.
    pub fn quality_rules(&self) -> QualityRules {
        QualityRules {
            invalid_email: self.invalid_email,
            max_record_bytes: self.max_record_bytes,
            missing_required: self.missing_required.clone(),
            missing_reference: self.missing_reference,
            payment_data: self.payment_data,
            phones: self.phones,
            duplicates: self.duplicates,
            duplicate_matching: self.duplicate_matching,
            email_mx: self.email_mx_check.then(|| {
                let defaults = ferry_core::mx::MxSettings::default();
                ferry_core::mx::MxSettings {
                    timeout: self
                        .mx_timeout_ms
                        .map_or(defaults.timeout, std::time::Duration::from_millis),
                    concurrency: self.mx_concurrency.unwrap_or(defaults.concurrency),
                    // Checked by `validate`.
                    server: self.dns_server.as_deref().and_then(dns_server),
                }
            }),
            merge_survivor: self.merge_survivor,
            // Checked by `validate`.
            phone_region: self
                .phone_region
                .as_deref()
                .and_then(ferry_core::phone::Region::of_country),
        }
    }

    /// The object types to run, validated and in dependency order.
    pub fn object_types(&self) -> anyhow::Result<Vec<ObjectType>> {
        let mut objects = Vec::new();
        for name in &self.objects {
            let object = ObjectType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = ObjectType::ALL.iter().map(|o| o.as_str()).collect();
                anyhow!(
                    "config key `migration.objects`: unknown object `{name}` (known: {})",
                    known.join(", ")
                )
            })?;
            if !objects.contains(&object) {
                objects.push(object);
            }
        }
        if objects.is_empty() {
            bail!("config key `migration.objects`: lists no object to migrate");
        }
        ferry_core::write_order(&objects)
            .map_err(|e| anyhow!("config key `migration.objects`: {e}"))
    }

    /// The share of the daily quota left at the start a run may use (`daily_quota_share`).
    pub fn daily_quota_share(&self) -> f64 {
        self.daily_quota_share.unwrap_or(DEFAULT_DAILY_QUOTA_SHARE)
    }

    /// Checks values that serde's types cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if let Some(share) = self.daily_quota_share
            && !(share > 0.0 && share <= 1.0)
        {
            bail!(
                "config key `migration.daily_quota_share`: must be above 0 and at most 1 (a share \
                 of the daily quota left when the run starts), got {share}; the default is \
                 {DEFAULT_DAILY_QUOTA_SHARE}"
            );
        }
        if let Some(n) = self.batches_in_flight
            && !(1..=MAX_IN_FLIGHT).contains(&n)
        {
            bail!(
                "config key `migration.batches_in_flight`: must be between 1 and {MAX_IN_FLIGHT}, \
                 got {n}"
            );
        }
        if !(1..=MAX_RECORD_BYTES_LIMIT).contains(&self.max_record_bytes) {
            bail!(
                "config key `migration.max_record_bytes`: must be between 1 and {MAX_RECORD_BYTES_LIMIT} \
                 (1 GiB), got {}; the default is {}",
                self.max_record_bytes,
                default_max_record_bytes()
            );
        }
        if let Some(path) = &self.checkpoint {
            if path.as_os_str().is_empty() {
                bail!(
                    "config key `migration.checkpoint`: is empty; name a file such as \
                     \"ferry-checkpoint.json\", or remove the key to run without a checkpoint"
                );
            }
            if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
                bail!(
                    "config key `migration.checkpoint`: `{}` names a directory; name a file in it, \
                     such as \"{}ferry-checkpoint.json\"",
                    path.display(),
                    path.display()
                );
            }
        }
        if let Some(region) = &self.phone_region {
            if ferry_core::phone::Region::of_country(region).is_none() {
                bail!(
                    "config key `migration.phone_region`: names no country with a phone numbering \
                     plan (value not shown); give an ISO 3166-1 code such as \"DE\" or an English \
                     country name such as \"Germany\""
                );
            }
            if self.phones == Phones::Off {
                bail!(
                    "config key `migration.phone_region`: is set, but `migration.phones` is \
                     \"off\" (the default), so no number is read in it; set `phones = \"check\"` \
                     or `\"normalize\"`, or remove `phone_region`"
                );
            }
        }
        self.validate_mx_check()?;
        self.object_types().map(|_| ())
    }

    /// Checks the email MX check's keys: in range, and set only with the check on.
    fn validate_mx_check(&self) -> anyhow::Result<()> {
        let set = [
            ("mx_timeout_ms", self.mx_timeout_ms.is_some()),
            ("mx_concurrency", self.mx_concurrency.is_some()),
            ("dns_server", self.dns_server.is_some()),
        ];
        if !self.email_mx_check
            && let Some((key, _)) = set.iter().find(|(_, set)| *set)
        {
            bail!(
                "config key `migration.{key}`: is set, but `migration.email_mx_check` is false \
                 (the default), so no domain is looked up; set `email_mx_check = true`, or \
                 remove `{key}`"
            );
        }
        if let Some(ms) = self.mx_timeout_ms
            && !(1..=MX_TIMEOUT_MS_LIMIT).contains(&ms)
        {
            bail!(
                "config key `migration.mx_timeout_ms`: must be between 1 and {MX_TIMEOUT_MS_LIMIT}, \
                 got {ms}; the default is 2000"
            );
        }
        if let Some(n) = self.mx_concurrency
            && !(1..=MX_CONCURRENCY_LIMIT).contains(&n)
        {
            bail!(
                "config key `migration.mx_concurrency`: must be between 1 and \
                 {MX_CONCURRENCY_LIMIT}, got {n}; the default is 8"
            );
        }
        if let Some(server) = &self.dns_server
            && dns_server(server).is_none()
        {
            bail!(
                "config key `migration.dns_server`: is not an IP address with an optional port \
                 (value not shown); write it as \"192.0.2.53\" or \"127.0.0.1:5353\", or remove the \
                 key to use the system resolver"
            );
        }
        Ok(())
    }

    /// Checks that the checkpoint (if any) can be written where it is configured: not a
    /// directory, in a directory that exists and that this user may write. Done when the config
    /// is loaded, so a bad path stops the run before any vendor is written to, not after.
    pub fn check_checkpoint_path(&self) -> anyhow::Result<()> {
        let Some(path) = &self.checkpoint else {
            return Ok(());
        };
        let bad = |what: String| anyhow!("config key `migration.checkpoint`: {what}");
        if path.is_dir() {
            return Err(bad(format!(
                "`{}` is a directory; name a file in it, such as \"{}/ferry-checkpoint.json\"",
                path.display(),
                path.display()
            )));
        }
        let dir = checkpoint_dir(path);
        match std::fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "`{}` is not a directory, so `{}` cannot be created",
                    dir.display(),
                    path.display()
                )));
            }
            Err(e) => {
                return Err(bad(format!(
                    "the directory `{}` cannot be used ({}); create it or name another file",
                    dir.display(),
                    e.kind()
                )));
            }
        }
        if !writable_dir(&dir) {
            return Err(bad(format!(
                "the directory `{}` is not writable by this user, so progress could not be saved",
                dir.display()
            )));
        }
        Ok(())
    }
}

/// The directory a checkpoint file (and its `.tmp` sibling) is written in.
fn checkpoint_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether this process may create files in `dir` (asked of the kernel, without writing).
#[cfg(target_os = "linux")]
fn writable_dir(dir: &Path) -> bool {
    use rustix::fs::{Access, access};
    access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn writable_dir(dir: &Path) -> bool {
    std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
}

impl Config {
    /// A fingerprint of what this migration is: vendors, settings and objects. Changing any of
    /// them makes an existing checkpoint refuse to resume.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let table = |t: &ConnectorTable| -> anyhow::Result<String> {
            Ok(format!(
                "{}\n{}",
                t.connector,
                toml::to_string(&t.settings)?
            ))
        };
        let objects: Vec<&str> = self
            .migration
            .object_types()?
            .iter()
            .map(|o| o.as_str())
            .collect();
        let (source, sink) = (table(&self.source)?, table(&self.sink)?);
        // The field map decides what is written: a resumed run must write what the first did.
        let mut fields = format!("{:?} {}", self.fields, self.create_missing_fields);
        // So do the owner and stage rules (left out when absent: older fingerprints hold).
        if self.directory != DirectoryRules::default() {
            fields.push_str(&format!(" {:?}", self.directory));
        }
        Ok(ferry_core::checkpoint::fingerprint(&[
            &source,
            &sink,
            &objects.join(","),
            &fields,
        ]))
    }

    /// Reads and validates the config file at `path` (no network access): at most
    /// [`MAX_CONFIG_BYTES`], UTF-8, and a checkpoint path that can be written.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let cannot_read = || format!("cannot read config file {}", path.display());
        let file = std::fs::File::open(path).with_context(cannot_read)?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(cannot_read)?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            bail!(
                "config file {}: larger than {} KiB, the most ferry reads (a config file is a few \
                 KiB): is it the right file?",
                path.display(),
                MAX_CONFIG_BYTES / 1024
            );
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            // Where, not what: the bytes around may be a secret pasted in another encoding.
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let (line, column) = line_column(&String::from_utf8_lossy(valid), valid.len());
            anyhow!(
                "config file {}: not UTF-8 text (the first invalid byte is at line {line}, \
                 column {column}); save it as UTF-8",
                path.display()
            )
        })?;
        let config =
            Config::parse(&text).with_context(|| format!("config file {}", path.display()))?;
        config
            .migration
            .check_checkpoint_path()
            .with_context(|| format!("config file {}", path.display()))?;
        config
            .sync
            .check_state_path()
            .with_context(|| format!("config file {}", path.display()))?;
        Ok(config)
    }

    /// Parses config text. Errors give the line, the column and the reason, never the line's
    /// text: a secret pasted into the file (the usual reason it stops parsing) would be shown.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        if let Some(version) = raw.version
            && version != CONFIG_VERSION
        {
            bail!(
                "config key `version`: this ferry reads version {CONFIG_VERSION}, the file says {version}"
            );
        }
        let source = connector_table("source", raw.source)?;
        let mut sink = connector_table("sink", raw.sink)?;
        // ferry's own setting, not the connector's: taken out before the connector parses.
        let create_missing_fields = match sink.settings.remove("create_missing_fields") {
            None => false,
            Some(toml::Value::Boolean(b)) => b,
            Some(_) => bail!("config key `sink.create_missing_fields`: must be true or false"),
        };
        raw.migration.validate()?;
        let fields = field_settings(raw.fields, raw.values, &raw.migration)?;
        raw.sync.validate()?;
        raw.sync.check_sink_vendor(&sink.connector)?;
        let consent = raw.consent.policy()?;
        let directory = directory_rules(raw.mapping, &raw.migration)?;
        Ok(Config {
            source,
            sink,
            migration: raw.migration,
            fields,
            create_missing_fields,
            directory,
            sync: raw.sync,
            consent,
        })
    }
}

/// The `[mapping.owners]` and `[mapping.deal_stages]` tables, each error naming its key (never
/// an email: the keys are the operator's own).
fn directory_rules(
    mapping: RawMapping,
    migration: &MigrationConfig,
) -> anyhow::Result<DirectoryRules> {
    let owners = owner_rules(mapping.owners)?;
    let mut deal_stages = StageRules::default();
    if !mapping.deal_stages.is_empty() && !migration.object_types()?.contains(&ObjectType::DEALS) {
        bail!(
            "config key `mapping.deal_stages`: deals are not in `migration.objects`, so this table \
             would do nothing"
        );
    }
    for (key, value) in mapping.deal_stages {
        if key.trim().is_empty() || key.trim() == "/" {
            bail!("config key `mapping.deal_stages`: a key is empty; name a source stage");
        }
        if value.trim().is_empty() {
            bail!("config key `mapping.deal_stages.{key:?}`: is empty; name a sink stage");
        }
        deal_stages.pairs.push((key, value));
    }
    Ok(DirectoryRules {
        owners,
        deal_stages,
    })
}

/// The `[mapping.owners]` table: `unmatched`, `fallback`, and explicit email pairs.
fn owner_rules(table: Option<toml::Table>) -> anyhow::Result<OwnerRules> {
    let mut rules = OwnerRules::default();
    let Some(table) = table else {
        return Ok(rules);
    };
    let mut sources: Vec<String> = Vec::new();
    for (key, value) in table {
        let named = match key.as_str() {
            "unmatched" | "fallback" => format!("mapping.owners.{key}"),
            _ => format!("mapping.owners.{key:?}"),
        };
        let toml::Value::String(text) = value else {
            bail!("config key `{named}`: must be a string");
        };
        match key.as_str() {
            "unmatched" => {
                rules.unmatched = match text.as_str() {
                    "unset" => Unmatched::Unset,
                    "fallback" => Unmatched::Fallback,
                    "reject" => Unmatched::Reject,
                    _ => bail!(
                        "config key `{named}`: must be \"unset\" (the default: the sink's own \
                         default owner applies), \"fallback\" or \"reject\""
                    ),
                }
            }
            "fallback" => {
                if text.trim().is_empty() {
                    bail!("config key `{named}`: is empty; name an active sink user's email");
                }
                rules.fallback = Some(text);
            }
            _ => {
                if key.trim().is_empty() {
                    bail!("config key `mapping.owners`: a source email is empty");
                }
                if text.trim().is_empty() {
                    bail!("config key `{named}`: is empty; name an active sink user's email");
                }
                let normalised = normalise_email(&key);
                if sources.contains(&normalised) {
                    bail!(
                        "config key `{named}`: the same source email (ignoring case) is paired \
                         twice"
                    );
                }
                sources.push(normalised);
                rules.pairs.push((key, text));
            }
        }
    }
    match (rules.unmatched, &rules.fallback) {
        (Unmatched::Fallback, None) => bail!(
            "config key `mapping.owners.fallback`: is required with unmatched = \"fallback\"; \
             name an active sink user's email"
        ),
        (unmatched, Some(_)) if unmatched != Unmatched::Fallback => bail!(
            "config key `mapping.owners.fallback`: is used only with unmatched = \"fallback\" \
             (unmatched is \"{}\"); remove it, or set unmatched = \"fallback\"",
            unmatched.as_str()
        ),
        _ => {}
    }
    Ok(rules)
}

/// The `[fields.*]` and `[values.*]` tables by object, each object named in
/// `migration.objects` and no key or label empty.
fn field_settings(
    fields: BTreeMap<String, BTreeMap<String, String>>,
    values: BTreeMap<String, BTreeMap<String, BTreeMap<String, String>>>,
    migration: &MigrationConfig,
) -> anyhow::Result<BTreeMap<ObjectType, FieldSettings>> {
    let objects = migration.object_types()?;
    let object = |table: &str, name: &str| -> anyhow::Result<ObjectType> {
        let object = ObjectType::parse(name)
            .ok_or_else(|| anyhow!("config key `{table}.{name}`: unknown object `{name}`"))?;
        if !objects.contains(&object) {
            bail!(
                "config key `{table}.{name}`: {name} are not in `migration.objects`, so this table \
                 would do nothing"
            );
        }
        Ok(object)
    };
    let mut out: BTreeMap<ObjectType, FieldSettings> = BTreeMap::new();
    for (name, pairs) in fields {
        let settings = out.entry(object("fields", &name)?).or_default();
        for (from, to) in pairs {
            if from.trim().is_empty() || to.trim().is_empty() {
                bail!("config key `fields.{name}`: a field name is empty");
            }
            settings.pairs.push((from, to));
        }
    }
    for (name, tables) in values {
        let settings = out.entry(object("values", &name)?).or_default();
        for (field, entries) in tables {
            if entries.keys().any(|k| k.trim().is_empty()) {
                bail!("config key `values.{name}.{field}`: a source label is empty");
            }
            settings.values.insert(field, entries.into_iter().collect());
        }
    }
    Ok(out)
}

/// A TOML error as `line L, column C: reason`, without toml's quoted excerpt of the line and
/// without any value serde quotes (see [`ferry_core::kit::without_value`]); for an error on a
/// value, the key it was given to (keys are names, not secrets).
fn toml_error(text: &str, error: &toml::de::Error) -> anyhow::Error {
    let reason = ferry_core::kit::without_value(error.message());
    let Some(span) = error.span() else {
        return anyhow!("{reason}");
    };
    let start = span.start.min(text.len());
    let start = (0..=start)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    let (line, column) = line_column(text, start);
    let line_text = text[..start].rsplit('\n').next().unwrap_or_default();
    let key = line_text.split_once('=').map(|(key, _)| key.trim());
    let is_key = |k: &&str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    // A duplicate key's span is the key itself: a name the file already used, not a value.
    let duplicate = (reason == "duplicate key")
        .then(|| text.get(start..span.end.min(text.len())))
        .flatten()
        .map(str::trim)
        .filter(is_key);
    match (key.filter(is_key), duplicate) {
        (_, Some(name)) => anyhow!("line {line}, column {column}: duplicate key `{name}`"),
        (Some(key), None) => anyhow!("line {line}, column {column}: key `{key}`: {reason}"),
        (None, None) => anyhow!("line {line}, column {column}: {reason}"),
    }
}

/// The 1-based line and column (in characters) of byte offset `at` in `text`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

fn connector_table(
    role: &'static str,
    table: Option<toml::Table>,
) -> anyhow::Result<ConnectorTable> {
    let mut settings = table.ok_or_else(|| anyhow!("missing table `[{role}]`"))?;
    let connector = match settings.remove("connector") {
        Some(toml::Value::String(name)) => name,
        Some(_) => bail!("config key `{role}.connector`: must be a string such as \"hubspot\""),
        None => bail!(
            "config key `{role}.connector`: missing; name the vendor, e.g. connector = \"hubspot\""
        ),
    };
    Ok(ConnectorTable {
        role,
        connector,
        settings,
    })
}

impl ConnectorTable {
    /// A table built in code (the demo's), from `(key, value)` string settings.
    pub fn from_settings(
        role: &'static str,
        connector: &str,
        settings: &[(&str, String)],
    ) -> ConnectorTable {
        let settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), toml::Value::String(v.clone())))
            .collect();
        ConnectorTable {
            role,
            connector: connector.to_owned(),
            settings,
        }
    }

    /// The settings as JSON, the form connectors parse their config from.
    pub fn settings_json(&self) -> Result<serde_json::Value, crate::CliError> {
        serde_json::to_value(&self.settings).map_err(|e| {
            crate::CliError::config(anyhow!(
                "config table `[{}]`: cannot be read: {e}",
                self.role
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [source]
        connector = "hubspot"
        token = "${HUBSPOT_TOKEN}"

        [sink]
        connector = "salesforce"

        [migration]
        objects = ["contacts", "companies"]
    "#;

    #[test]
    fn parses_and_orders_objects_parents_first() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.source.connector, "hubspot");
        assert_eq!(
            config.migration.object_types().unwrap(),
            vec![ObjectType::COMPANIES, ObjectType::CONTACTS]
        );
        assert!(
            config.source.settings.contains_key("token")
                && !config.source.settings.contains_key("connector")
        );
    }

    #[test]
    fn the_sync_table_parses_and_names_its_keys() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.sync.deletes, "ignore");
        assert_eq!(config.sync.max_deletes, 100);
        let err = format!("{:#}", config.sync.state_path().unwrap_err());
        assert!(
            err.contains("`sync.state`") && err.contains("required"),
            "{err}"
        );

        let text = format!("{GOOD}\n[sync]\nstate = \"s.json\"\nmax_deletes = 7\n");
        let config = Config::parse(&text).unwrap();
        assert_eq!(config.sync.state_path().unwrap(), Path::new("s.json"));
        assert_eq!(config.sync.max_deletes, 7);

        assert_eq!(config.sync.removal().unwrap(), None);
        for (value, removal) in [
            ("archive", ferry_core::Removal::Archive),
            ("delete", ferry_core::Removal::Delete),
        ] {
            let text = format!("{GOOD}\n[sync]\ndeletes = \"{value}\"\n");
            let config = Config::parse(&text).unwrap();
            assert_eq!(config.sync.removal().unwrap(), Some(removal));
        }
        for (extra, says) in [
            (
                r#"deletes = "purge""#,
                r#"`sync.deletes`: must be "ignore""#,
            ),
            (r#"state = """#, "`sync.state`: is empty"),
            (
                r#"state = "sink""#,
                "`sync.state`: \"sink\" cannot be used with the salesforce sink: Salesforce has \
                 no place",
            ),
            (
                r#"lease_seconds = 0"#,
                "`sync.lease_seconds`: must be at least 1",
            ),
            (r#"states = "x""#, "unknown field `states`"),
        ] {
            let text = format!("{GOOD}\n[sync]\n{extra}\n");
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(err.contains(says), "{extra}: {err}");
        }
    }

    #[test]
    fn a_state_in_the_sink_is_kept_where_the_vendor_allows_and_refused_elsewhere() {
        for (sink, why) in [
            ("hubspot", "without creating schema"),
            ("pipedrive", "without creating schema"),
            ("zoho", "no compare-and-swap"),
        ] {
            let text = GOOD.replace(
                r#"connector = "salesforce""#,
                &format!("connector = \"{sink}\""),
            ) + "\n[sync]\nstate = \"sink\"\n";
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(
                err.contains("`sync.state`")
                    && err.contains(&format!("the {sink} sink"))
                    && err.contains(why),
                "{sink}: {err}"
            );
        }
        let text = GOOD.replace(r#"connector = "salesforce""#, r#"connector = "dynamics""#)
            + "\n[sync]\nstate = \"sink\"\nlease_seconds = 5\n";
        let config = Config::parse(&text).unwrap();
        assert!(config.sync.in_sink());
        assert_eq!(config.sync.lease(), std::time::Duration::from_secs(5));
        config.sync.check_state_path().unwrap();
        // "./sink" is a file called sink, for any sink.
        let text = format!("{GOOD}\n[sync]\nstate = \"./sink\"\n");
        let config = Config::parse(&text).unwrap();
        assert!(!config.sync.in_sink());
        assert_eq!(Config::parse(GOOD).unwrap().sync.lease_seconds, 120);
    }

    /// The error of `GOOD` with `migration.objects` replaced and `extra` appended, in full.
    fn mapping_error(objects: &str, extra: &str) -> String {
        let text = GOOD.replace(r#"["contacts", "companies"]"#, objects) + extra;
        format!("{:#}", Config::parse(&text).unwrap_err())
    }

    #[test]
    fn owner_and_stage_mappings_parse() {
        let text = GOOD.replace(r#"["contacts", "companies"]"#, r#"["deals"]"#)
            + r#"
            [mapping.owners]
            unmatched = "fallback"
            fallback = "ops@example.com"
            "jane@old.example" = "jane@new.example"
            [mapping.deal_stages]
            "Sales Pipeline/Appointment Scheduled" = "Prospecting"
            "Closed Won" = "Closed Won"
        "#;
        let config = Config::parse(&text).unwrap();
        let owners = &config.directory.owners;
        assert_eq!(owners.unmatched, Unmatched::Fallback);
        assert_eq!(owners.fallback.as_deref(), Some("ops@example.com"));
        assert_eq!(
            owners.pairs,
            vec![("jane@old.example".to_owned(), "jane@new.example".to_owned())]
        );
        assert_eq!(config.directory.deal_stages.pairs.len(), 2);
        // The rules are part of what the migration is: a resumed run must map as the first did.
        let plain =
            Config::parse(&GOOD.replace(r#"["contacts", "companies"]"#, r#"["deals"]"#)).unwrap();
        assert_ne!(config.fingerprint().unwrap(), plain.fingerprint().unwrap());
        assert_eq!(
            Config::parse(GOOD).unwrap().directory,
            DirectoryRules::default()
        );
        // Deals and notes may be named; the default run is the whole CRM.
        let all = GOOD.replace(
            r#"["contacts", "companies"]"#,
            r#"["notes", "deals", "contacts", "companies"]"#,
        );
        assert_eq!(
            Config::parse(&all)
                .unwrap()
                .migration
                .object_types()
                .unwrap(),
            vec![
                ObjectType::COMPANIES,
                ObjectType::CONTACTS,
                ObjectType::DEALS,
                ObjectType::NOTES
            ]
        );
        assert_eq!(
            MigrationConfig::default().object_types().unwrap(),
            ObjectType::ALL.to_vec()
        );
    }

    #[test]
    fn every_owner_and_stage_mapping_error_names_its_key() {
        let deals = r#"["deals"]"#;
        for (objects, extra, key) in [
            (
                deals,
                "[mapping.owners]\nunmatched = \"guess\"",
                "`mapping.owners.unmatched`",
            ),
            (
                deals,
                "[mapping.owners]\nunmatched = \"fallback\"",
                "`mapping.owners.fallback`: is required",
            ),
            (
                deals,
                "[mapping.owners]\nfallback = \"ops@example.com\"",
                "`mapping.owners.fallback`: is used only with unmatched = \"fallback\" (unmatched is \"unset\")",
            ),
            (
                deals,
                "[mapping.owners]\nunmatched = \"reject\"\nfallback = \"ops@example.com\"",
                "`mapping.owners.fallback`: is used only",
            ),
            (
                deals,
                "[mapping.owners]\nunmatched = \"fallback\"\nfallback = \" \"",
                "`mapping.owners.fallback`: is empty",
            ),
            (
                deals,
                "[mapping.owners]\n\"jane@old.example\" = 7",
                "`mapping.owners.\"jane@old.example\"`: must be a string",
            ),
            (
                deals,
                "[mapping.owners]\n\"jane@old.example\" = \"\"",
                "`mapping.owners.\"jane@old.example\"`: is empty",
            ),
            (
                deals,
                "[mapping.owners]\n\"Jane@old.example\" = \"a@new.example\"\n\"jane@OLD.example\" = \"b@new.example\"",
                "paired twice",
            ),
            (
                r#"["contacts"]"#,
                "[mapping.deal_stages]\n\"Won\" = \"Closed Won\"",
                "`mapping.deal_stages`: deals are not in `migration.objects`",
            ),
            (
                deals,
                "[mapping.deal_stages]\n\"Won\" = \"\"",
                "`mapping.deal_stages.\"Won\"`: is empty",
            ),
            (
                deals,
                "[mapping.deal_stages]\n\" \" = \"Won\"",
                "`mapping.deal_stages`: a key is empty",
            ),
            (deals, "[mapping.stages]\n\"Won\" = \"Won\"", "stages"),
        ] {
            let error = mapping_error(objects, &format!("\n{extra}\n"));
            assert!(error.contains(key), "{key} in {error}");
            assert!(
                !error.contains("new.example"),
                "no sink email in the error: {error}"
            );
        }
    }

    #[test]
    fn data_quality_rules_parse() {
        let text = GOOD.replace("[migration]", "[migration]\nmissing_required = { placeholder = \"[not provided]\" }\nmissing_reference = \"drop\"");
        let rules = Config::parse(&text).unwrap().migration.quality_rules();
        assert_eq!(
            rules.missing_required,
            MissingRequired::Placeholder("[not provided]".into())
        );
        assert_eq!(rules.missing_reference, MissingReference::Drop);
        assert_eq!(
            Config::parse(GOOD).unwrap().migration.quality_rules(),
            QualityRules::default()
        );
        let bad = GOOD.replace("[migration]", "[migration]\nmissing_required = \"guess\"");
        assert!(format!("{:#}", Config::parse(&bad).unwrap_err()).contains("missing_required"));
    }

    #[test]
    fn field_maps_value_tables_and_field_creation_parse() {
        let text = GOOD.replace(
            "connector = \"salesforce\"",
            "connector = \"salesforce\"\ncreate_missing_fields = true",
        ) + r#"
            [fields.contacts]
            "favourite_colour" = "Favourite_Colour__c"
            [values.companies.industry]
            "Technology" = "Computer Software"
            "*" = ""
        "#;
        let config = Config::parse(&text).unwrap();
        assert!(config.create_missing_fields);
        assert!(!config.sink.settings.contains_key("create_missing_fields"));
        let contacts = &config.fields[&ObjectType::CONTACTS];
        assert_eq!(
            contacts.pairs,
            [(
                "favourite_colour".to_owned(),
                "Favourite_Colour__c".to_owned()
            )]
        );
        let industry = &config.fields[&ObjectType::COMPANIES].values["industry"];
        assert_eq!(industry.len(), 2);
        assert!(!Config::parse(GOOD).unwrap().create_missing_fields);
        // A different field map is a different migration: a checkpoint must not resume it.
        assert_ne!(
            Config::parse(GOOD).unwrap().fingerprint().unwrap(),
            config.fingerprint().unwrap()
        );

        let err = |text: String| format!("{:#}", Config::parse(&text).unwrap_err());
        assert!(err(GOOD.to_owned() + "[fields.deals]\na = \"b\"\n").contains("`fields.deals`"));
        let only_contacts = GOOD.replace("\"contacts\", \"companies\"", "\"contacts\"");
        assert!(
            err(only_contacts + "[values.companies.industry]\na = \"b\"\n")
                .contains("`values.companies`: companies are not in `migration.objects`")
        );
        assert!(
            err(GOOD.to_owned() + "[fields.contacts]\na = \"\"\n").contains("`fields.contacts`")
        );
        assert!(
            err(GOOD.replace(
                "connector = \"salesforce\"",
                "connector = \"salesforce\"\ncreate_missing_fields = \"yes\""
            ))
            .contains("sink.create_missing_fields")
        );
    }

    #[test]
    fn phone_settings_parse_and_their_mistakes_name_the_key_without_the_value() {
        let with = |extra: &str| GOOD.replace("[migration]", &format!("[migration]\n{extra}"));
        let rules = Config::parse(&with("phones = \"normalize\"\nphone_region = \"Germany\""))
            .unwrap()
            .migration
            .quality_rules();
        assert_eq!(rules.phones, Phones::Normalize);
        assert_eq!(rules.phone_region.as_ref().map(|r| r.code()), Some("DE"));
        let defaults = Config::parse(GOOD).unwrap().migration.quality_rules();
        assert_eq!(
            (defaults.phones, defaults.phone_region),
            (Phones::Off, None)
        );
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        let unknown = err(&with("phones = \"check\"\nphone_region = \"Atlantis\""));
        assert!(unknown.contains("migration.phone_region"), "{unknown}");
        assert!(!unknown.contains("Atlantis"), "{unknown}");
        let unused = err(&with("phone_region = \"DE\""));
        assert!(
            unused.contains("migration.phone_region") && unused.contains("migration.phones"),
            "{unused}"
        );
        let choice = err(&with("phones = \"e164\""));
        assert!(
            choice.contains("phones") && !choice.contains("e164"),
            "{choice}"
        );
    }

    #[test]
    fn mx_check_settings_parse_and_their_mistakes_name_the_key() {
        let with = |extra: &str| GOOD.replace("[migration]", &format!("[migration]\n{extra}"));
        assert_eq!(
            Config::parse(GOOD)
                .unwrap()
                .migration
                .quality_rules()
                .email_mx,
            None
        );
        let on = Config::parse(&with("email_mx_check = true"))
            .unwrap()
            .migration
            .quality_rules();
        assert_eq!(on.email_mx, Some(ferry_core::mx::MxSettings::default()));
        let set = Config::parse(&with(
            "email_mx_check = true\nmx_timeout_ms = 500\nmx_concurrency = 2\ndns_server = \"127.0.0.1:5353\"",
        ))
        .unwrap()
        .migration
        .quality_rules();
        assert_eq!(
            set.email_mx,
            Some(ferry_core::mx::MxSettings {
                timeout: std::time::Duration::from_millis(500),
                concurrency: 2,
                server: Some("127.0.0.1:5353".parse().unwrap()),
            })
        );
        let port_53 = Config::parse(&with("email_mx_check = true\ndns_server = \"::1\""))
            .unwrap()
            .migration
            .quality_rules();
        assert_eq!(
            port_53.email_mx.and_then(|s| s.server),
            Some("[::1]:53".parse().unwrap())
        );
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        for (extra, key) in [
            (
                "email_mx_check = true\nmx_timeout_ms = 0",
                "migration.mx_timeout_ms",
            ),
            (
                "email_mx_check = true\nmx_timeout_ms = 60001",
                "migration.mx_timeout_ms",
            ),
            (
                "email_mx_check = true\nmx_concurrency = 0",
                "migration.mx_concurrency",
            ),
            (
                "email_mx_check = true\nmx_concurrency = 257",
                "migration.mx_concurrency",
            ),
            (
                "email_mx_check = true\ndns_server = \"dns.corp:53\"",
                "migration.dns_server",
            ),
            ("dns_server = \"127.0.0.1\"", "migration.dns_server"),
            ("mx_concurrency = 4", "migration.mx_concurrency"),
            ("email_mx_check = \"yes\"", "email_mx_check"),
        ] {
            let message = err(&with(extra));
            assert!(message.contains(key), "{extra}: {message}");
            assert!(!message.contains("dns.corp"), "{message}");
        }
    }

    #[test]
    fn batches_in_flight_default_to_the_sinks_concurrency_unless_configured() {
        let config = Config::parse(GOOD).expect("config");
        assert_eq!(config.migration.in_flight(None), 4);
        assert_eq!(config.migration.in_flight(Some(2)), 4);
        assert_eq!(config.migration.in_flight(Some(10)), 10);
        assert_eq!(config.migration.in_flight(Some(500)), 64);
        let set = Config::parse(&GOOD.replace("[migration]", "[migration]\nbatches_in_flight = 3"))
            .expect("config");
        assert_eq!(set.migration.in_flight(Some(10)), 3);
    }

    #[test]
    fn mistakes_name_the_key() {
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err("[source]\nconnector='hubspot'\n").contains("[sink]"));
        assert!(err(&GOOD.replace("objects", "objcts")).contains("objcts"));
        assert!(err(&GOOD.replace("\"companies\"", "\"tasks\"")).contains("migration.objects"));
        assert!(err(&GOOD.replace("connector = \"salesforce\"", "")).contains("sink.connector"));
        assert!(err(&format!("version = 9\n{GOOD}")).contains("version"));
        assert!(
            err(&GOOD.replace("[migration]", "[migration]\nbatches_in_flight = 0"))
                .contains("batches_in_flight")
        );
        for bad in ["0", "0.0", "-0.5", "1.5", "nan", "inf"] {
            let text = GOOD.replace(
                "[migration]",
                &format!("[migration]\ndaily_quota_share = {bad}"),
            );
            assert!(
                err(&text).contains("migration.daily_quota_share"),
                "{bad}: {}",
                err(&text)
            );
        }
        assert!(
            err(&GOOD.replace("[migration]", "[migration]\ndaily_quota_share = \"most\""))
                .contains("daily_quota_share")
        );
        let share = |v: &str| {
            Config::parse(&GOOD.replace(
                "[migration]",
                &format!("[migration]\ndaily_quota_share = {v}"),
            ))
            .map(|c| c.migration.daily_quota_share())
            .ok()
        };
        assert_eq!(share("0.5"), Some(0.5));
        assert_eq!(share("1"), Some(1.0), "an integer is a share too");
        assert_eq!(
            Config::parse(GOOD)
                .map(|c| c.migration.daily_quota_share())
                .ok(),
            Some(DEFAULT_DAILY_QUOTA_SHARE)
        );
    }

    /// A line that stops the file parsing is where a pasted secret usually is: the error
    /// says where and why, never what the line holds.
    #[test]
    fn parse_errors_never_echo_the_line() {
        const SECRET: &str = "pat-na1-0d1e2f3a-SECRETVALUE";
        let cases = [
            ("unterminated string", format!("token = \"{SECRET}\n")),
            ("unquoted value", format!("token = {SECRET}\n")),
            (
                "duplicate key",
                format!("token = \"${{HUBSPOT_TOKEN}}\"\ntoken = \"{SECRET}\"\n"),
            ),
            ("bare line", format!("{SECRET}\n")),
            ("wrong type", format!("max_record_bytes = \"{SECRET}\"\n")),
            ("unknown value", format!("invalid_email = \"{SECRET}\"\n")),
        ];
        for (case, line) in cases {
            let (table, line_no) = if case == "wrong type" || case == "unknown value" {
                ("[migration]", 4)
            } else {
                ("[source]\nconnector = \"hubspot\"", 5)
            };
            let text = format!("[sink]\nconnector = \"salesforce\"\n{table}\n{line}");
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(!err.contains("SECRETVALUE"), "{case}: {err}");
            assert!(!err.contains("0d1e2f3a"), "{case}: {err}");
            let line_no = if case == "duplicate key" { 6 } else { line_no };
            assert!(
                err.contains(&format!("line {line_no}, column")),
                "{case}: {err}"
            );
            eprintln!("{case}: {err}");
        }
        let err = format!(
            "{:#}",
            Config::parse(&GOOD.replace("[migration]", "[migration]\nmax_record_bytes = \"x1\""))
                .unwrap_err()
        );
        assert!(
            err.contains("key `max_record_bytes`") && err.contains("string given"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            Config::parse(&GOOD.replace("[migration]", "[migration]\nobjects = []")).unwrap_err()
        );
        assert!(err.contains("duplicate key `objects`"), "{err}");
    }

    #[test]
    fn max_record_bytes_must_be_positive() {
        for bad in ["0", "2000000000"] {
            let text = GOOD.replace(
                "[migration]",
                &format!("[migration]\nmax_record_bytes = {bad}"),
            );
            let err = format!("{:#}", Config::parse(&text).unwrap_err());
            assert!(
                err.contains("migration.max_record_bytes") && err.contains("between 1 and"),
                "{err}"
            );
        }
        let text = GOOD.replace("[migration]", "[migration]\nmax_record_bytes = 2048");
        assert_eq!(
            Config::parse(&text).unwrap().migration.max_record_bytes,
            2048
        );
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferry-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn with_checkpoint(path: &str) -> String {
        GOOD.replace(
            "[migration]",
            &format!(
                "[migration]\ncheckpoint = {}",
                toml::Value::String(path.into())
            ),
        )
    }

    #[test]
    fn the_checkpoint_path_is_checked_at_load() {
        let err = format!("{:#}", Config::parse(&with_checkpoint("")).unwrap_err());
        assert!(
            err.contains("migration.checkpoint") && err.contains("empty"),
            "{err}"
        );
        let dir = temp_dir("checkpoint");
        let load = |path: &Path| {
            let file = dir.join("ferry.toml");
            std::fs::write(&file, with_checkpoint(&path.to_string_lossy())).unwrap();
            Config::load(&file)
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        };
        let err = load(&dir).unwrap_err();
        assert!(
            err.contains("migration.checkpoint") && err.contains("is a directory"),
            "{err}"
        );
        let err = load(&dir.join("missing").join("ck.json")).unwrap_err();
        assert!(
            err.contains("migration.checkpoint") && err.contains("missing"),
            "{err}"
        );
        std::fs::write(dir.join("file"), "").unwrap();
        let err = load(&dir.join("file").join("ck.json")).unwrap_err();
        assert!(err.contains("not a directory"), "{err}");
        let err = format!("{:#}", Config::parse(&with_checkpoint("ck/")).unwrap_err());
        assert!(err.contains("names a directory"), "{err}");
        load(&dir.join("ck.json")).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_config_file_is_capped_and_must_be_utf8() {
        let started = std::time::Instant::now();
        let err = format!("{:#}", Config::load(Path::new("/dev/zero")).unwrap_err());
        assert!(
            err.contains("/dev/zero") && err.contains("1024 KiB"),
            "{err}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let dir = temp_dir("utf8");
        let file = dir.join("ferry.toml");
        std::fs::write(&file, b"[source]\ntoken = \"pat-\xff\xfeSECRETVALUE\"\n").unwrap();
        let err = format!("{:#}", Config::load(&file).unwrap_err());
        assert!(
            err.contains("not UTF-8") && err.contains("line 2, column 14"),
            "{err}"
        );
        assert!(!err.contains("SECRETVALUE"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
