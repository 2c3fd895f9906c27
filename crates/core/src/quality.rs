//! Data-quality checks on records as they are read: invalid data is found and reported, not
//! silently carried into the sink.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::connector::FieldLimit;
use crate::fieldplan::{CUSTOM_PREFIX, Mapped, ValueMap};
use crate::model::{FieldType, ObjectType, Record, Value, field};

/// What to do with a record whose email address is malformed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidEmail {
    /// Do not write it; list it as failed (the default: a bad address is never carried silently).
    #[default]
    Reject,
    /// Write it anyway and list a warning.
    Warn,
}

/// What to do with a record missing a field the sink requires (Salesforce's contact last name,
/// say).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingRequired {
    /// Do not write it; list it as failed (the default: ferry never invents data silently).
    #[default]
    Reject,
    /// Write this text in the empty field, and list a warning naming the field.
    Placeholder(String),
}

/// What to do with a reference to a record the source does not have (a contact whose company
/// is not among the companies read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingReference {
    /// Do not write the record; list it as failed (the default).
    #[default]
    Reject,
    /// Write the record without the reference, and list a warning.
    Drop,
}

/// What to do with a record holding a payment card number or a bank account number (IBAN) in
/// a text field ([`crate::sensitive`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentData {
    /// Write it as it is, and list a warning naming the record, object and field (the default:
    /// a migration is the moment to find them; the operator decides).
    #[default]
    Flag,
    /// Do not write it; list it as failed.
    Refuse,
    /// Write it with each number masked but its last four characters, and list a warning; the
    /// digest covers the masked text, which is what the sink holds.
    Redact,
}

/// What to do with phone numbers ([`crate::phone`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phones {
    /// Carry them as read, unchecked (the default: parsing costs about 30 µs a number).
    #[default]
    Off,
    /// Check each against its country's numbering plan; an invalid one is written as read and
    /// listed as a warning ([`INVALID_PHONE`]).
    Check,
    /// Check them, and write each valid one in E.164 form (`+4930123456`); the digest covers
    /// that form, which is what the sink holds. Counted per field in the report.
    Normalize,
}

/// What to do with a person the source holds twice ([`crate::duplicates`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Duplicates {
    /// Write every record, and list each later one as a warning naming the cluster's first
    /// record (the default: only the operator can say which record is right).
    #[default]
    Flag,
    /// Write the first record of each cluster only; list each later one as skipped, naming
    /// the record kept.
    Skip,
    /// Write one record per cluster, its survivor ([`MergeSurvivor`]), with its empty fields
    /// filled from the others and every opt-out any of them has; the others are not written,
    /// and later objects' references to them point at the survivor
    /// ([`crate::duplicates`]). The object is read twice.
    Merge,
}

/// Which record of a cluster survives a merge (`migration.merge_survivor`). Ties go to the
/// latest `updated_at`, then to the lowest source id, so that the choice is the same on
/// every run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeSurvivor {
    /// The record with the most fields filled that the sink stores (the default).
    #[default]
    Complete,
    /// The record updated last (`updated_at`).
    Latest,
}

/// What counts as the same person twice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateMatching {
    /// The same email address only: one 8-byte hash a record (the default: see `Full`).
    #[default]
    Email,
    /// The same email; the same phone and a similar name; a near-identical name at the same
    /// company or email domain ([`crate::duplicates`]): about 60 bytes a record, and the
    /// report lists the clusters. Not the default: it about doubles ferry's CPU per record
    /// (131 MiB at a million of the benchmark's contacts, within the memory target, once the
    /// report's lists were bounded: `docs/performance.md`, "Duplicate finder memory").
    Full,
}

/// The code of a record with a phone number that is not valid in its country's plan.
pub const INVALID_PHONE: &str = "INVALID_PHONE";

/// The code of a record whose valid email address is a placeholder nobody reads.
pub const PLACEHOLDER_EMAIL: &str = "PLACEHOLDER_EMAIL";

/// The code of a record whose email address is a shared mailbox (a role account).
pub const ROLE_EMAIL: &str = "ROLE_EMAIL";

/// The code of a record whose email domain publishes a "null MX" (RFC 7505): it takes no mail
/// (`migration.email_mx_check`).
pub const EMAIL_DOMAIN_NO_MAIL: &str = "EMAIL_DOMAIN_NO_MAIL";

/// The code of a record whose email domain does not exist or has no MX, A or AAAA record
/// (`migration.email_mx_check`).
pub const EMAIL_DOMAIN_NO_MX: &str = "EMAIL_DOMAIN_NO_MX";

/// The code of a record holding what looks like a payment card number in a text field.
pub const PAYMENT_CARD: &str = "PAYMENT_CARD";

/// The code of a record holding what looks like a bank account number (IBAN) in a text field.
pub const BANK_ACCOUNT: &str = "BANK_ACCOUNT";

/// The data-quality rules of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QualityRules {
    /// Malformed email addresses.
    pub invalid_email: InvalidEmail,
    /// Records larger than this (in bytes of text) are refused: no CRM takes them, and they
    /// would only make memory spike.
    pub max_record_bytes: usize,
    /// Empty fields the sink requires.
    pub missing_required: MissingRequired,
    /// References to records the source does not have.
    pub missing_reference: MissingReference,
    /// Payment card and bank account numbers in text fields.
    pub payment_data: PaymentData,
    /// Phone numbers: unchecked, checked, or checked and written as E.164.
    pub phones: Phones,
    /// The region of numbers in national form, when the record's `country` names none.
    pub phone_region: Option<crate::phone::Region>,
    /// People the source holds twice.
    pub duplicates: Duplicates,
    /// What counts as the same person twice.
    pub duplicate_matching: DuplicateMatching,
    /// The DNS check of email domains ([`crate::mx`]); `None`: off (the default).
    pub email_mx: Option<crate::mx::MxSettings>,
    /// Which record of a cluster survives `duplicates = "merge"`.
    pub merge_survivor: MergeSurvivor,
}

impl Default for QualityRules {
    fn default() -> Self {
        QualityRules {
            invalid_email: InvalidEmail::Reject,
            max_record_bytes: 1 << 20,
            missing_required: MissingRequired::Reject,
            missing_reference: MissingReference::Reject,
            payment_data: PaymentData::Flag,
            phones: Phones::Off,
            phone_region: None,
            duplicates: Duplicates::Flag,
            duplicate_matching: DuplicateMatching::Email,
            email_mx: None,
            merge_survivor: MergeSurvivor::Complete,
        }
    }
}

/// What happens to a record with a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// It is written; the finding is a warning.
    Write,
    /// It is not written; the finding is a failure.
    Reject,
    /// It is not written again: the source returned it twice (listed as a warning).
    Skip,
}

/// A problem found in one record. Names the field, never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// A short code, e.g. `INVALID_EMAIL`.
    pub code: &'static str,
    /// A sentence naming the field.
    pub reason: String,
    /// What happens to the record.
    pub action: Action,
}

/// A 64-bit hash of an id or address, the same across the whole run: the checker keeps these,
/// never the values themselves, so memory stays small and no value is kept.
pub fn id_hash(value: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write(value.as_bytes());
    h.finish()
}

/// A set of 64-bit hashes that costs 8 bytes per member: a [`HashIndex`] with no values.
#[derive(Debug, Default)]
pub struct HashSeen {
    members: HashIndex<()>,
}

impl HashSeen {
    /// Adds `hash`; `false` if it was already there.
    pub fn insert(&mut self, hash: u64) -> bool {
        self.members.insert(hash, ()).is_none()
    }

    /// Whether `hash` is a member.
    pub fn contains(&self, hash: u64) -> bool {
        self.members.get(hash).is_some()
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A map from 64-bit hashes to small values that costs 8 bytes per key plus the value's size:
/// a sorted vector of keys beside one of values, plus the latest keys in a small hash map
/// that is merged into them in bulk. A `HashMap<u64, _>` costs 16 to 28 bytes per key (load
/// factor, and the old table beside the new one while it grows), which made the duplicate
/// checks most of ferry's memory at a million records.
///
/// A binary search of a vector of a million hashes misses the cache at most of its 20 steps,
/// which made lookups a tenth of ferry's CPU time. So the vector is indexed by the top bits
/// of the hash (the hashes are uniform): one lookup in a small index, then a search among
/// about 16 neighbours, for under half a byte per key.
#[derive(Debug)]
pub struct HashIndex<V> {
    sorted: Vec<u64>,
    /// `values[i]` belongs to `sorted[i]`.
    values: Vec<V>,
    /// `index[b]..index[b + 1]`: where the keys whose top `bits` bits are `b` lie in
    /// `sorted`. Empty while `bits` is 0.
    index: Vec<u32>,
    bits: u32,
    recent: HashMap<u64, V, BuildHasherDefault<AlreadyHashed>>,
}

impl<V> Default for HashIndex<V> {
    fn default() -> Self {
        HashIndex {
            sorted: Vec::new(),
            values: Vec::new(),
            index: Vec::new(),
            bits: 0,
            recent: HashMap::default(),
        }
    }
}

/// The fewest keys gathered before a merge; later, a 64th of the map, so that each key is
/// moved about 64 times in all however large the map grows.
const MIN_MERGE: usize = 4096;

/// About how many keys share one index slot.
const PER_SLOT: usize = 16;

impl<V: Copy> HashIndex<V> {
    /// Sets the value of `hash`; returns the one it replaces.
    pub fn insert(&mut self, hash: u64, value: V) -> Option<V> {
        if let Some(at) = self.in_sorted(hash) {
            return Some(std::mem::replace(&mut self.values[at], value));
        }
        let previous = self.recent.insert(hash, value);
        if previous.is_none() && self.recent.len() >= MIN_MERGE.max(self.sorted.len() / 64) {
            self.merge();
        }
        previous
    }

    /// The value of `hash`, if it is a key.
    pub fn get(&self, hash: u64) -> Option<V> {
        match self.in_sorted(hash) {
            Some(at) => Some(self.values[at]),
            None => self.recent.get(&hash).copied(),
        }
    }

    /// How many keys there are.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.recent.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where `hash` lies in `sorted`.
    fn in_sorted(&self, hash: u64) -> Option<usize> {
        let (start, end) = match self.bits {
            0 => (0, self.sorted.len()),
            bits => {
                let b = (hash >> (64 - bits)) as usize;
                (self.index[b] as usize, self.index[b + 1] as usize)
            }
        };
        self.sorted[start..end]
            .binary_search(&hash)
            .ok()
            .map(|at| start + at)
    }

    /// Moves the recent keys into the sorted vector, merging from the back in place, and
    /// rebuilds the index.
    fn merge(&mut self) {
        let mut fresh: Vec<(u64, V)> = self.recent.drain().collect();
        fresh.sort_unstable_by_key(|(hash, _)| *hash);
        let old = self.sorted.len();
        let Some(&(_, filler)) = fresh.first() else {
            return;
        };
        reserve_lean(&mut self.sorted, fresh.len());
        reserve_lean(&mut self.values, fresh.len());
        self.sorted.resize(old + fresh.len(), 0);
        self.values.resize(old + fresh.len(), filler);
        let (mut i, mut j) = (old, fresh.len());
        while j > 0 {
            let k = i + j - 1;
            if i > 0 && self.sorted[i - 1] > fresh[j - 1].0 {
                self.sorted[k] = self.sorted[i - 1];
                self.values[k] = self.values[i - 1];
                i -= 1;
            } else {
                (self.sorted[k], self.values[k]) = fresh[j - 1];
                j -= 1;
            }
        }
        self.reindex();
    }

    fn reindex(&mut self) {
        // Positions are u32, so a map beyond 4 billion keys goes without an index.
        let n = self.sorted.len();
        self.bits = match n / PER_SLOT {
            0 => 0,
            _ if n > u32::MAX as usize => 0,
            slots => slots.ilog2().min(24),
        };
        self.index.clear();
        if self.bits == 0 {
            self.index.shrink_to_fit();
            return;
        }
        let shift = 64 - self.bits;
        self.index.reserve_exact((1usize << self.bits) + 1);
        let mut at = 0usize;
        for b in 0..(1u64 << self.bits) {
            while at < n && self.sorted[at] >> shift < b {
                at += 1;
            }
            self.index.push(at as u32);
        }
        self.index.push(n as u32);
    }
}

/// Makes room in `v` for `more` items, growing it by an eighth rather than doubling it: for
/// the vectors that grow with every record read, so that they hold at most an eighth more
/// than they use instead of up to twice as much. Growth stays geometric, so pushes stay
/// amortised constant time.
pub fn reserve_lean<T>(v: &mut Vec<T>, more: usize) {
    if v.capacity() - v.len() < more {
        v.reserve_exact(more.max(v.len() / 8).max(1024));
    }
}

/// The hasher for keys that are hashes already: it passes them through.
#[derive(Debug, Default)]
pub struct AlreadyHashed(u64);

impl std::hash::Hasher for AlreadyHashed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// What a text value holds that the checks care about.
struct TextMarks {
    /// U+FFFD, which stands for bytes that were not valid UTF-8.
    replacement: bool,
    /// Control characters other than tab, line feed and carriage return.
    control: bool,
}

fn text_marks(text: &str) -> TextMarks {
    // Most values are ASCII, checked a word at a time; only the others are decoded.
    if text.is_ascii() {
        return TextMarks {
            replacement: false,
            control: text
                .bytes()
                .any(|b| (b < 0x20 || b == 0x7f) && !matches!(b, b'\t' | b'\n' | b'\r')),
        };
    }
    let mut marks = TextMarks {
        replacement: false,
        control: false,
    };
    for c in text.chars() {
        marks.replacement |= c == char::REPLACEMENT_CHARACTER;
        marks.control |= c.is_control() && !matches!(c, '\t' | '\n' | '\r');
    }
    marks
}

/// The code of a record refused because a picklist label has no value in the sink's list.
pub const UNMAPPED_VALUE: &str = "UNMAPPED_VALUE";

/// The code of the warning for a picklist value the value table leaves empty (`"*" = ""`).
pub const VALUE_LEFT_EMPTY: &str = "VALUE_LEFT_EMPTY";

/// The code of a record refused because the sink cannot hold its email opt-out.
pub const OPT_OUT_NOT_REPRESENTABLE: &str = "OPT_OUT_NOT_REPRESENTABLE";

/// The code of a record refused because a text is longer than the sink holds
/// ([`crate::FieldLimit::max_chars`]); it is never truncated.
pub const TOO_LONG: &str = "TOO_LONG";

/// The code of a record refused because a field holds a value the sink cannot hold there
/// ([`crate::FieldLimit::only_values`]: a deal in another currency than a single-currency
/// org's).
pub const VALUE_NOT_HELD: &str = "VALUE_NOT_HELD";

/// The code of the warning for a record written without some names of a set (a legal basis)
/// that the sink holds no option for ([`crate::FieldLimit::only_values`] of a
/// [`crate::FieldType::Names`] field).
pub const NAMES_NOT_HELD: &str = "NAMES_NOT_HELD";

/// Whether `field` of `record`'s object is a set of names.
fn is_names(record: &Record, field: &str) -> bool {
    names_field(record, field).is_some()
}

/// The canonical name of `field` of `record`'s object, if it is a set of names.
fn names_field(record: &Record, field: &str) -> Option<&'static str> {
    record
        .object
        .field(field)
        .filter(|f| f.ty == crate::FieldType::Names)
        .map(|f| f.name)
}

/// `names` as a message shows them: the model's names quoted, a vendor's own options (a
/// consent stage) only counted, since they are the record's values, not the model's words.
fn shown_names(names: &[String]) -> String {
    let own = names
        .iter()
        .filter(|n| crate::model::legal_basis(n).is_none())
        .count();
    let mut shown: Vec<String> = names
        .iter()
        .filter(|n| crate::model::legal_basis(n).is_some())
        .map(|n| format!("`{n}`"))
        .collect();
    match own {
        0 => {}
        1 => shown.push("an option of the source's own".to_owned()),
        n => shown.push(format!("{n} options of the source's own")),
    }
    shown.join(", ")
}

/// The code of the warning for a record whose timestamp had a fraction of a second the sink
/// does not keep ([`crate::FieldLimit::to_the_second`]): written and verified to the second.
pub const TIME_ROUNDED: &str = "TIME_ROUNDED";

/// The code of the warning for a record written without a field that the sink fills in with
/// a value of its own ([`crate::FieldLimit::unset_reads_as`]: Pipedrive's deal amount 0): the
/// record is written, and verified, with that value.
pub const SINK_DEFAULT: &str = "SINK_DEFAULT";

/// The code of the warning for a record written with fewer links than it has, because the
/// sink holds fewer in that field ([`crate::FieldLimit::max_links`]).
pub const NOT_CARRIED: &str = "NOT_CARRIED";

/// Whether `record` opted out of email but has no valid address to record that against:
/// a sink that keeps opt-outs per address ([`crate::Sink::opt_out_needs_email`]) would
/// write it subscribable, or not at all.
pub fn opt_out_without_address(record: &Record) -> bool {
    record.get(field::EMAIL_OPT_OUT).and_then(Value::as_bool) == Some(true)
        && !record
            .text(field::EMAIL)
            .is_some_and(|email| crate::email::is_valid(email.trim()))
}

/// Why a sink that keeps opt-outs per email address refuses `record` (see
/// [`opt_out_without_address`]): names the fields and the sink, never a value.
pub fn opt_out_not_representable_reason(sink: &str) -> String {
    format!(
        "field `{}` is true but field `{}` holds no valid address, and {sink} records an email \
         opt-out only against an address; the person would arrive without the opt-out (subscribable), \
         so the record was not written",
        field::EMAIL_OPT_OUT,
        field::EMAIL
    )
}

/// Whether the domain of `email` is worth asking DNS about: a valid address that is not a
/// placeholder (whose reserved or made-up domain is flagged already).
fn mail_domain_checked(email: &str) -> bool {
    crate::email::is_valid(email)
        && crate::email::concern(email) != Some(crate::email::Concern::Placeholder)
}

/// The addresses of `record`'s email fields whose domains the DNS check asks about.
fn checked_addresses(record: &Record) -> impl Iterator<Item = &str> {
    record
        .object
        .fields()
        .iter()
        .filter(|f| f.ty == FieldType::Email)
        .filter_map(|spec| record.text(spec.name))
        .filter(|email| mail_domain_checked(email))
}

/// Checks records one by one, remembering hashes of emails and source ids to find duplicates.
pub struct QualityChecker {
    rules: QualityRules,
    required: Vec<String>,
    /// Whether the sink keeps opt-outs per email address ([`crate::Sink::opt_out_needs_email`]).
    opt_out_needs_email: bool,
    sink: &'static str,
    /// Hashes of the email addresses seen so far (`DuplicateMatching::Email`).
    seen_emails: HashSeen,
    /// People seen so far (`DuplicateMatching::Full`, objects with an email field).
    people: crate::duplicates::DuplicateFinder,
    seen_ids: HashSeen,
    known_parents: KnownIds,
    /// The source ids (hashed) of parent records the sink refused earlier in this run: a
    /// reference to one would point at nothing in the sink.
    refused_parents: KnownIds,
    /// Picklist labels carried from the source's list into the sink's ([`ValueMap`]).
    value_maps: Vec<ValueMap>,
    /// What the sink cannot hold of some fields ([`crate::Capability::limits`]).
    limits: Vec<FieldLimit>,
    /// Per link field, how many records were written with links left out.
    links_not_carried: BTreeMap<String, u64>,
    /// Per timestamp field, the records whose time was cut to the sink's precision.
    times_rounded: BTreeMap<String, u64>,
    /// Per phone field, the numbers written in E.164 form ([`Phones::Normalize`]).
    phones_normalized: BTreeMap<String, u64>,
    /// Per kind of evidence, the records found to be duplicates.
    duplicates_found: BTreeMap<&'static str, u64>,
    /// The DNS check of email domains, shared by the run's objects (`None`: off).
    mx: Option<Arc<crate::mx::MxChecker>>,
    /// Addresses whose domain DNS could not answer for ([`crate::mx::Verdict::Unchecked`]).
    mx_unchecked: u64,
}

/// Object names in priority order for messages: `deals, contacts, companies`.
fn names_in_order(objects: &[ObjectType]) -> String {
    objects
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Object names for messages: `contacts or companies`.
fn names(objects: &[ObjectType]) -> String {
    objects
        .iter()
        .map(|o| o.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The code of a record referring to a record the source does not have.
pub const MISSING_REFERENCE: &str = "MISSING_REFERENCE";

/// The code of a record referring to a record the sink refused earlier in the run.
pub const REFERENCE_REFUSED: &str = "REFERENCE_REFUSED";

/// The source ids (hashed) of the objects read whole earlier in this run, by object: a
/// reference field is checked against the ids of its target, and not at all when its target
/// was not read whole (not in the run, or resumed from a checkpoint).
pub type KnownIds = std::collections::BTreeMap<ObjectType, Arc<HashSeen>>;

impl QualityChecker {
    /// A checker applying `rules`, for a sink called `sink` that requires the canonical fields
    /// `required`. References to other records are checked against `known_parents`, for the
    /// targets it holds.
    pub fn new(
        rules: QualityRules,
        sink: &'static str,
        required: Vec<String>,
        known_parents: KnownIds,
    ) -> QualityChecker {
        QualityChecker {
            rules,
            required,
            opt_out_needs_email: false,
            sink,
            seen_emails: HashSeen::default(),
            people: crate::duplicates::DuplicateFinder::default(),
            seen_ids: HashSeen::default(),
            known_parents,
            refused_parents: KnownIds::new(),
            value_maps: Vec::new(),
            limits: Vec::new(),
            links_not_carried: BTreeMap::new(),
            times_rounded: BTreeMap::new(),
            phones_normalized: BTreeMap::new(),
            duplicates_found: BTreeMap::new(),
            mx: None,
            mx_unchecked: 0,
        }
    }

    /// Checks each address's domain against the verdicts of `mx` ([`EMAIL_DOMAIN_NO_MX`],
    /// [`EMAIL_DOMAIN_NO_MAIL`]); [`QualityChecker::look_up_domains`] asks DNS for them first.
    pub fn with_mx(mut self, mx: Option<Arc<crate::mx::MxChecker>>) -> QualityChecker {
        self.mx = mx;
        self
    }

    /// Looks up the email domains of `records` that the run has not asked about yet, before
    /// they are checked. Returns at once when the DNS check is off.
    pub async fn look_up_domains(&self, records: &[Record]) {
        let Some(mx) = &self.mx else {
            return;
        };
        let domains: Vec<String> = records
            .iter()
            .flat_map(|record| checked_addresses(record).filter_map(crate::mx::domain_of))
            .collect();
        mx.look_up(domains).await;
    }

    /// How many addresses so far had a domain DNS could not answer for (a timeout, SERVFAIL):
    /// neither flagged nor passed.
    pub fn mx_unchecked(&self) -> u64 {
        self.mx_unchecked
    }

    /// The email domain check alone ([`EMAIL_DOMAIN_NO_MX`], [`EMAIL_DOMAIN_NO_MAIL`]) on a
    /// record whose domains were looked up: `ferry plan`'s view of the first page.
    pub fn mail_domain_findings(&mut self, record: &Record) -> Vec<Finding> {
        let mut findings = Vec::new();
        self.check_mail_domains(record, &mut findings);
        findings
    }

    /// Applies the sink's per-field limits ([`crate::Capability::limits`]): a text over its
    /// length is refused ([`TOO_LONG`]); a link field with more links than the sink holds keeps
    /// the first ones, by the priority of the edge's targets (the order of
    /// [`crate::model::RefSpec::targets`]) and then the source's order, and the record is
    /// written with a warning ([`NOT_CARRIED`]) saying how many of which objects were left out.
    pub fn with_limits(mut self, limits: Vec<FieldLimit>) -> QualityChecker {
        self.limits = limits;
        self
    }

    /// Per link field, how many records so far were written with links left out
    /// ([`NOT_CARRIED`]).
    pub fn links_not_carried(&self) -> &BTreeMap<String, u64> {
        &self.links_not_carried
    }

    /// Per timestamp field, how many records had a time finer than the sink keeps
    /// ([`TIME_ROUNDED`]).
    pub fn times_rounded(&self) -> &BTreeMap<String, u64> {
        &self.times_rounded
    }

    /// Per phone field, how many numbers so far were written in E.164 form
    /// ([`Phones::Normalize`]).
    pub fn phones_normalized(&self) -> &BTreeMap<String, u64> {
        &self.phones_normalized
    }

    /// Carries picklist labels into the sink's list before anything else is checked: a label
    /// the sink has no value for refuses the record ([`UNMAPPED_VALUE`]), unless the value
    /// table says to leave it empty ([`VALUE_LEFT_EMPTY`], a warning).
    pub fn with_value_maps(mut self, maps: Vec<ValueMap>) -> QualityChecker {
        self.value_maps = maps;
        self
    }

    /// Refuses records that opted out of email but have no valid address, for a sink that
    /// keeps opt-outs per address ([`crate::Sink::opt_out_needs_email`]).
    pub fn with_opt_out_needs_email(mut self, needs: bool) -> QualityChecker {
        self.opt_out_needs_email = needs;
        self
    }

    /// The problems in `record`; an empty list when there are none. May fill a required field
    /// with the configured placeholder or drop a dangling reference, as the rules say (and
    /// lists a warning when it does).
    pub fn check(&mut self, record: &mut Record) -> Vec<Finding> {
        let mut findings = Vec::new();
        if !self.seen_ids.insert(id_hash(&record.source_id)) {
            findings.push(Finding {
                code: "DUPLICATE_SOURCE_RECORD",
                reason: "the source returned this record twice; it was written once".into(),
                action: Action::Skip,
            });
            return findings;
        }
        let size: usize = record
            .fields
            .iter()
            .map(|(name, value)| name.len() + value.as_text().map_or(16, str::len))
            .sum();
        if size > self.rules.max_record_bytes {
            findings.push(Finding {
                code: "OVERSIZED_RECORD",
                reason: format!(
                    "the record holds {size} bytes of data, over the limit of {} (migration.max_record_bytes)",
                    self.rules.max_record_bytes
                ),
                action: Action::Reject,
            });
            return findings;
        }
        // Bytes that were not valid UTF-8 were replaced with U+FFFD when the page was decoded
        // (`http::HttpResponse::json`): the value as read is not the vendor's, so nothing of
        // the record is written.
        let texts = || {
            record
                .fields
                .iter()
                .filter_map(|(name, value)| match value {
                    Value::Text(text) => Some((name.as_ref(), text_marks(text))),
                    // A reference (an id) is checked for garbling, never for control characters.
                    Value::Reference(id) => Some((
                        name.as_ref(),
                        TextMarks {
                            control: false,
                            ..text_marks(id)
                        },
                    )),
                    _ => None,
                })
        };
        let garbled: Vec<&str> = texts()
            .filter(|(_, marks)| marks.replacement)
            .map(|(name, _)| name)
            .collect();
        if !garbled.is_empty() {
            findings.extend(garbled.into_iter().map(|name| Finding {
                code: "INVALID_TEXT_ENCODING",
                reason: format!(
                    "field `{name}` holds bytes that are not valid UTF-8 (or U+FFFD, which stands for them); not written"
                ),
                action: Action::Reject,
            }));
            return findings;
        }
        for (name, _) in texts().filter(|(_, marks)| marks.control) {
            findings.push(Finding {
                code: "CONTROL_CHARACTERS",
                reason: format!("field `{name}` contains control characters; written as read"),
                action: Action::Write,
            });
        }
        self.map_values(record, &mut findings);
        // References first: a link dropped there (`missing_reference = "drop"`) may leave a
        // field the sink requires empty, which the required check must then see.
        self.check_references(record, &mut findings);
        self.check_required(record, &mut findings);
        self.check_emails(record, &mut findings);
        if let Some(duplicate) = self.check_duplicates(record) {
            findings.push(duplicate);
            if self.rules.duplicates == Duplicates::Skip {
                return findings;
            }
        }
        self.check_phones(record, &mut findings);
        self.check_payment_data(record, &mut findings);
        // Listed only when nothing else refused the record already (an invalid address, say).
        let refused = findings.iter().any(|f| f.action == Action::Reject);
        if self.opt_out_needs_email && !refused && opt_out_without_address(record) {
            findings.push(Finding {
                code: OPT_OUT_NOT_REPRESENTABLE,
                reason: opt_out_not_representable_reason(self.sink),
                action: Action::Reject,
            });
        }
        if !self.limits.is_empty() {
            self.check_lengths(record, &mut findings);
            // Links are cut, times rounded and the sink's defaults given, only in a record
            // that is written.
            if !findings.iter().any(|f| f.action == Action::Reject) {
                self.fit_links(record, &mut findings);
                self.round_times(record, &mut findings);
                self.narrow_names(record, &mut findings);
                self.fill_defaults(record, &mut findings);
            }
        }
        findings
    }

    /// Whether `record` is a person seen earlier in the run ([`crate::duplicates`]): by
    /// email, phone or name, for objects with an email field. Names the first record of the
    /// cluster by source id, never a value.
    fn check_duplicates(&mut self, record: &Record) -> Option<Finding> {
        record.object.field(field::EMAIL)?;
        if self.rules.duplicates == Duplicates::Merge {
            return None; // merged before the check, by a plan of the whole object
        }
        let (evidence, first) = match self.rules.duplicate_matching {
            DuplicateMatching::Full => {
                let duplicate = self.people.observe(record)?;
                (duplicate.evidence, Some(duplicate.first))
            }
            DuplicateMatching::Email => {
                let email = record
                    .text(field::EMAIL)
                    .filter(|e| crate::email::is_valid(e))?;
                if self
                    .seen_emails
                    .insert(id_hash(&email.trim().to_lowercase()))
                {
                    return None;
                }
                (crate::duplicates::Evidence::Email, None)
            }
        };
        *self.duplicates_found.entry(evidence.code()).or_default() += 1;
        let earlier = match &first {
            Some(id) => format!("source record `{id}`, read earlier"),
            None => "a record read earlier".to_owned(),
        };
        let (action, outcome) = match (self.rules.duplicates, &first) {
            (Duplicates::Flag, _) => (
                Action::Write,
                "both were written (migration.duplicates = \"flag\")".to_owned(),
            ),
            (Duplicates::Skip | Duplicates::Merge, Some(id)) => (
                Action::Skip,
                format!("not written: `{id}` was kept (migration.duplicates = \"skip\")"),
            ),
            (Duplicates::Skip | Duplicates::Merge, None) => (
                Action::Skip,
                "not written: the earlier one was kept (migration.duplicates = \"skip\")"
                    .to_owned(),
            ),
        };
        Some(Finding {
            code: evidence.code(),
            reason: format!(
                "{} as {earlier}: the same person entered twice; {outcome}",
                evidence.describe()
            ),
            action,
        })
    }

    /// Per code (`DUPLICATE_EMAIL`, `DUPLICATE_PHONE`, `DUPLICATE_NAME`), how many records so
    /// far were found to be a person read earlier.
    pub fn duplicates_found(&self) -> &BTreeMap<&'static str, u64> {
        &self.duplicates_found
    }

    /// The clusters of duplicate people found so far, each as its records' source ids.
    pub fn duplicate_clusters(&mut self) -> Vec<Vec<String>> {
        self.people.clusters()
    }

    /// How many clusters of duplicate people were found so far, and the first of them as a
    /// report lists them ([`crate::duplicates::DuplicateFinder::listed_clusters`]).
    pub fn listed_duplicate_clusters(&mut self) -> (u64, Vec<Vec<String>>) {
        self.people.listed_clusters()
    }

    /// Checks the record's phone numbers against their country's plan (the region its
    /// `country` field names, else the run's), listing an invalid one as a warning and, under
    /// [`Phones::Normalize`], writing a valid one without an extension in E.164 form. Names
    /// the field, never the number.
    fn check_phones(&mut self, record: &mut Record, findings: &mut Vec<Finding>) {
        if self.rules.phones == Phones::Off {
            return;
        }
        let region = record
            .text(field::COUNTRY)
            .and_then(crate::phone::Region::of_country)
            .or(self.rules.phone_region);
        let object = record.object;
        for (name, value) in record.fields.iter_mut() {
            let Value::Text(text) = value else {
                continue;
            };
            if object.field(name).map(|f| f.ty) != Some(FieldType::Phone) || text.trim().is_empty()
            {
                continue;
            }
            match crate::phone::read(text, region) {
                crate::phone::Reading::Valid { e164, extension } => {
                    if self.rules.phones == Phones::Normalize && !extension && *text != e164 {
                        *text = e164;
                        *self.phones_normalized.entry(name.to_string()).or_default() += 1;
                    }
                }
                crate::phone::Reading::Invalid => findings.push(Finding {
                    code: INVALID_PHONE,
                    reason: format!(
                        "field `{name}` is not a valid phone number{}; written as read",
                        region.map_or(String::new(), |r| format!(" (read in region {})", r.code()))
                    ),
                    action: Action::Write,
                }),
                // National form and no region to read it in: nothing can be said of it.
                crate::phone::Reading::NoRegion => {}
            }
        }
    }

    /// Finds payment card and bank account numbers in the record's texts (not in email
    /// addresses, phone numbers or owner ids) and flags, refuses or masks them per the run's
    /// rule, naming the field and the kind, never the number.
    fn check_payment_data(&self, record: &mut Record, findings: &mut Vec<Finding>) {
        let object = record.object;
        let rule = self.rules.payment_data;
        for (name, value) in record.fields.iter_mut() {
            let Value::Text(text) = value else {
                continue;
            };
            let ty = object.field(name).map(|f| f.ty);
            if matches!(
                ty,
                Some(FieldType::Email | FieldType::Phone | FieldType::Owner)
            ) {
                continue;
            }
            let found = crate::sensitive::find(text);
            if found.is_empty() {
                continue;
            }
            let mut kinds: Vec<crate::sensitive::Kind> = found.iter().map(|f| f.kind).collect();
            kinds.sort();
            kinds.dedup();
            let (action, outcome) = match rule {
                PaymentData::Flag => (
                    Action::Write,
                    "written as read (migration.payment_data = \"flag\")",
                ),
                PaymentData::Refuse => (
                    Action::Reject,
                    "not written (migration.payment_data = \"refuse\")",
                ),
                PaymentData::Redact => (
                    Action::Write,
                    "written with the number masked but its last four characters (migration.payment_data = \"redact\")",
                ),
            };
            if rule == PaymentData::Redact {
                *text = crate::sensitive::mask(text, &found);
            }
            for kind in kinds {
                let count = found.iter().filter(|f| f.kind == kind).count();
                findings.push(Finding {
                    code: match kind {
                        crate::sensitive::Kind::PaymentCard => PAYMENT_CARD,
                        crate::sensitive::Kind::Iban => BANK_ACCOUNT,
                    },
                    reason: format!(
                        "field `{name}` holds {}{}; {outcome}",
                        kind.describe(),
                        if count > 1 {
                            format!(" ({count} of them)")
                        } else {
                            String::new()
                        }
                    ),
                    action,
                });
            }
        }
    }

    /// Refuses texts longer than the sink holds, naming the field and the limit, never the
    /// value (nor a part of it: nothing is truncated), and values the sink cannot hold there,
    /// naming the ones it can (the sink's, never the record's).
    fn check_lengths(&self, record: &Record, findings: &mut Vec<Finding>) {
        for limit in &self.limits {
            let (Some(only), Some(Value::Text(text))) =
                (&limit.only_values, record.get(&limit.field))
            else {
                continue;
            };
            if is_names(record, &limit.field) {
                continue; // each name on its own: `narrow_names`
            }
            if !only.iter().any(|v| v.eq_ignore_ascii_case(text.trim())) {
                findings.push(Finding {
                    code: VALUE_NOT_HELD,
                    reason: format!(
                        "field `{}` holds a value {} cannot hold there: it holds only {}; not written",
                        limit.field,
                        self.sink,
                        only.join(", ")
                    ),
                    action: Action::Reject,
                });
            }
        }
        for limit in &self.limits {
            let Some(max) = limit.max_chars else {
                continue;
            };
            let Some(Value::Text(text)) = record.get(&limit.field) else {
                continue;
            };
            // Most texts are short: no count of characters when even their bytes fit.
            if text.len() <= max {
                continue;
            }
            let (chars, form) = if limit.counts_plain_text {
                (
                    crate::richtext::to_plain(text).chars().count(),
                    " as plain text",
                )
            } else {
                (text.chars().count(), "")
            };
            if chars > max {
                findings.push(Finding {
                    code: TOO_LONG,
                    reason: format!(
                        "field `{}` is {chars} characters{form}; {} holds at most {max} there, \
                         and ferry never truncates: not written",
                        limit.field, self.sink
                    ),
                    action: Action::Reject,
                });
            }
        }
    }

    /// Gives a record without a field the value the sink fills in for it, so that the digest
    /// covers what the sink will hold, and says so (the sink's value, never a record's).
    fn fill_defaults(&self, record: &mut Record, findings: &mut Vec<Finding>) {
        for limit in &self.limits {
            let Some(default) = &limit.unset_reads_as else {
                continue;
            };
            let unset = match record.get(&limit.field) {
                None => true,
                Some(Value::Text(text)) => text.trim().is_empty(),
                Some(_) => false,
            };
            if !unset {
                continue;
            }
            let spec = record.object.field(&limit.field);
            let ty = spec.map_or(FieldType::Text, |s| s.ty);
            // A default that does not parse as the field's type is the connector's mistake:
            // the record keeps the field unset (and verification shows the difference).
            let Ok(Some(value)) = Value::parse(ty, default) else {
                continue;
            };
            match spec {
                Some(spec) => record.set(spec.name, value),
                None => {
                    record
                        .fields
                        .insert(std::borrow::Cow::Owned(limit.field.clone()), value);
                }
            }
            findings.push(Finding {
                code: SINK_DEFAULT,
                reason: format!(
                    "field `{}` is unset, and {} holds an unset one as {default}: written and \
                     verified as {default}",
                    limit.field, self.sink
                ),
                action: Action::Write,
            });
        }
    }

    /// Keeps the links the sink can hold, by priority, and says what was left out.
    fn fit_links(&mut self, record: &mut Record, findings: &mut Vec<Finding>) {
        let object = record.object;
        for limit in &self.limits {
            let holds = match (limit.max_links, limit.max_per_target) {
                (Some(max), None) => format!("at most {max}"),
                (None, Some(each)) => format!("at most {each} of each object"),
                (Some(max), Some(each)) => format!("at most {max}, {each} of each object,"),
                (None, None) => continue,
            };
            let max = limit.max_links.unwrap_or(usize::MAX);
            let per_target = limit.max_per_target.unwrap_or(usize::MAX);
            let Some(Value::Links(links)) = record.fields.get_mut(limit.field.as_str()) else {
                continue;
            };
            // A link listed twice is one link (the checksum counts it once too).
            let mut seen = HashSet::new();
            links.retain(|l| seen.insert((l.object, l.id.clone())));
            let mut per_object: BTreeMap<ObjectType, usize> = BTreeMap::new();
            for link in links.iter() {
                *per_object.entry(link.object).or_default() += 1;
            }
            if links.len() <= max && per_object.values().all(|n| *n <= per_target) {
                continue;
            }
            let targets: &[ObjectType] = object
                .references()
                .find(|edge| edge.field == limit.field)
                .map_or(&[], |edge| edge.targets);
            // A stable sort: within one target, the source's order.
            links.sort_by_key(|l| {
                targets
                    .iter()
                    .position(|t| *t == l.object)
                    .unwrap_or(usize::MAX)
            });
            let total = links.len();
            let mut kept_of: BTreeMap<ObjectType, usize> = BTreeMap::new();
            let mut left_out = Vec::new();
            let mut kept = Vec::with_capacity(total.min(max));
            for link in links.drain(..) {
                let of = kept_of.entry(link.object).or_default();
                if kept.len() < max && *of < per_target {
                    *of += 1;
                    kept.push(link);
                } else {
                    left_out.push(link);
                }
            }
            *links = kept;
            let mut by_object: BTreeMap<ObjectType, u64> = BTreeMap::new();
            for link in &left_out {
                *by_object.entry(link.object).or_default() += 1;
            }
            let which = by_object
                .iter()
                .map(|(object, n)| format!("{n} of {object}"))
                .collect::<Vec<_>>()
                .join(", ");
            let kept = match targets {
                [] | [_] => "the first in the source's order".to_owned(),
                _ => format!("the first by priority ({})", names_in_order(targets)),
            };
            findings.push(Finding {
                code: NOT_CARRIED,
                reason: format!(
                    "field `{}` has {} and {} holds {holds} there: {} not carried \
                     ({which}); written with {kept}",
                    limit.field,
                    crate::report::count(total as u64, "link", "links"),
                    self.sink,
                    left_out.len()
                ),
                action: Action::Write,
            });
            *self
                .links_not_carried
                .entry(limit.field.clone())
                .or_default() += 1;
        }
    }

    /// Cuts timestamps to the precision the sink keeps, so that the digest covers the time as
    /// the sink will hold it, and says so for each record that lost a fraction.
    fn round_times(&mut self, record: &mut Record, findings: &mut Vec<Finding>) {
        for limit in &self.limits {
            let Some(precision) = limit.precision_ms.filter(|p| *p > 1) else {
                continue;
            };
            let Some(Value::Timestamp(ms)) = record.fields.get_mut(limit.field.as_str()) else {
                continue;
            };
            let fraction = ms.rem_euclid(precision);
            if fraction == 0 {
                continue;
            }
            *ms -= fraction;
            findings.push(Finding {
                code: TIME_ROUNDED,
                reason: format!(
                    "field `{}` has a fraction of a second and {} keeps whole seconds there: \
                     written and verified to the second",
                    limit.field, self.sink
                ),
                action: Action::Write,
            });
            *self.times_rounded.entry(limit.field.clone()).or_default() += 1;
        }
    }

    /// Leaves out of a set of names ([`crate::FieldType::Names`], a legal basis) each name the
    /// sink holds no option for, writing the broader basis where the sink keeps that
    /// ([`crate::model::LegalBasis::broader`]), so that the digest covers the set as the sink
    /// will hold it; says so for each record that lost a name ([`NAMES_NOT_HELD`]). Opt-outs
    /// never come here: a type opted out of that the sink lacks refuses the record.
    fn narrow_names(&mut self, record: &mut Record, findings: &mut Vec<Finding>) {
        for limit in &self.limits {
            let Some(only) = &limit.only_values else {
                continue;
            };
            let Some(field) = names_field(record, &limit.field) else {
                continue;
            };
            if crate::model::opt_out(field).is_some() {
                continue;
            }
            let Some(Value::Text(text)) = record.fields.get(limit.field.as_str()) else {
                continue;
            };
            let held = |name: &str| only.iter().any(|v| v == name);
            let mut kept = Vec::new();
            let mut left_out = Vec::new();
            let mut own = 0;
            for name in crate::model::names(text) {
                if held(name) {
                    kept.push(name.to_owned());
                } else if let Some(broader) = crate::model::legal_basis(name)
                    .and_then(|b| b.broader)
                    .filter(|b| held(b))
                {
                    kept.push(broader.to_owned());
                    left_out.push(format!("`{name}` (written as `{broader}`)"));
                } else if crate::model::legal_basis(name).is_some() {
                    left_out.push(format!("`{name}`"));
                } else {
                    own += 1; // a vendor's own option, outside the model's names: not shown
                }
            }
            match own {
                0 => {}
                1 => left_out.push("an option of the source's own".to_owned()),
                n => left_out.push(format!("{n} options of the source's own")),
            }
            // A sink that holds fewer names keeps the first by its precedence (the order of
            // `only`), so what it is written, and the digest, are one stated choice.
            kept.sort_by_key(|name| only.iter().position(|v| v == name));
            kept.dedup();
            let beyond = limit
                .max_names
                .filter(|most| kept.len() > *most)
                .map(|most| kept.split_off(most));
            if left_out.is_empty() && beyond.is_none() {
                continue;
            }
            let mut said = Vec::new();
            if !left_out.is_empty() {
                said.push(format!(
                    "{} has no option for {}",
                    self.sink,
                    left_out.join(", ")
                ));
            }
            if let Some(beyond) = beyond {
                said.push(format!(
                    "{} holds {} at most, {} by its precedence: {} left out",
                    self.sink,
                    kept.len(),
                    shown_names(&kept),
                    shown_names(&beyond)
                ));
            }
            findings.push(Finding {
                code: NAMES_NOT_HELD,
                reason: format!(
                    "field `{}`: {}; written with the rest",
                    limit.field,
                    said.join("; ")
                ),
                action: Action::Write,
            });
            match crate::model::names_value(kept) {
                Some(value) => record.set(field, value),
                None => {
                    record.fields.remove(field);
                }
            }
        }
    }

    /// The hashes of every source id checked (see [`id_hash`]), for the children's checker.
    /// Notes the source id of a record that is not checked (merged into another): `false`
    /// when the source returned it earlier in the run.
    pub fn first_sight(&mut self, source_id: &str) -> bool {
        self.seen_ids.insert(id_hash(source_id))
    }

    pub fn into_seen_ids(self) -> HashSeen {
        self.seen_ids
    }

    fn map_values(&self, record: &mut Record, findings: &mut Vec<Finding>) {
        for map in &self.value_maps {
            let Some(Value::Text(label)) = record.fields.get_mut(map.canonical.as_str()) else {
                continue;
            };
            match map.apply(label) {
                Mapped::To(sink_label) => *label = sink_label,
                Mapped::Empty => {
                    record.fields.remove(map.canonical.as_str());
                    findings.push(Finding {
                        code: VALUE_LEFT_EMPTY,
                        reason: format!(
                            "field `{}`: the value table leaves this value empty in sink field `{}`",
                            map.canonical, map.sink_field
                        ),
                        action: Action::Write,
                    });
                }
                Mapped::Unmapped => findings.push(Finding {
                    code: UNMAPPED_VALUE,
                    reason: format!(
                        "field `{}` of {}: the sink's picklist `{}` has no option with this \
                         label; map it in [values.{}.{}] (\"*\" = \"\" leaves such values empty)",
                        map.canonical,
                        record.object,
                        map.sink_field,
                        record.object,
                        if map.canonical.starts_with(CUSTOM_PREFIX) {
                            &map.sink_field
                        } else {
                            &map.canonical
                        }
                    ),
                    action: Action::Reject,
                }),
            }
        }
    }

    fn check_required(&self, record: &mut Record, findings: &mut Vec<Finding>) {
        for name in &self.required {
            if record
                .get(name)
                .is_some_and(|v| !crate::checksum::is_blank(v))
            {
                continue;
            }
            // A placeholder text is no record to link to: a required reference is refused.
            let reference = matches!(
                record.object.field(name).map(|f| f.ty),
                Some(FieldType::Reference(_))
            );
            match &self.rules.missing_required {
                MissingRequired::Placeholder(_) if reference => findings.push(Finding {
                    code: "MISSING_REQUIRED",
                    reason: format!(
                        "field `{name}` refers to no record and {} requires it; a placeholder cannot \
                         stand for a record: not written",
                        self.sink
                    ),
                    action: Action::Reject,
                }),
                MissingRequired::Reject => findings.push(Finding {
                    code: "MISSING_REQUIRED",
                    reason: format!(
                        "field `{name}` is empty and {} requires it (migration.missing_required decides)",
                        self.sink
                    ),
                    action: Action::Reject,
                }),
                MissingRequired::Placeholder(text) => {
                    record.fields.insert(name.clone().into(), Value::Text(text.clone()));
                    findings.push(Finding {
                        code: "PLACEHOLDER_WRITTEN",
                        reason: format!(
                            "field `{name}` was empty and {} requires it: the configured placeholder was written",
                            self.sink
                        ),
                        action: Action::Write,
                    });
                }
            }
        }
    }

    /// References to these records (by object) are handled like references to records the source
    /// does not have (`missing_reference`): the sink refused them earlier in this run, so the
    /// reference would point at nothing, or make the sink write part of the record and refuse
    /// the rest.
    pub fn with_refused_parents(mut self, refused: KnownIds) -> QualityChecker {
        self.refused_parents = refused;
        self
    }

    /// Whether `id` is a record of `object` that the sink refused earlier in this run.
    fn is_refused(&self, object: ObjectType, id: &str) -> bool {
        self.refused_parents
            .get(&object)
            .is_some_and(|refused| refused.contains(id_hash(id)))
    }

    /// Whether `id` is a record of `object` that this run knows the source does not have (only
    /// objects read whole in this run are known; a reference to any other is not judged).
    fn is_dangling(&self, object: ObjectType, id: &str) -> bool {
        self.known_parents
            .get(&object)
            .is_some_and(|known| !id.is_empty() && !known.contains(id_hash(id)))
    }

    /// Checks each reference field of the record against its edge in the schema: a link to an
    /// object the edge does not allow is refused (a connector's fault, never guessed at), and a
    /// reference to a record the source does not have follows `missing_reference`.
    fn check_references(&self, record: &mut Record, findings: &mut Vec<Finding>) {
        let reject = self.rules.missing_reference == MissingReference::Reject;
        for edge in record.object.references() {
            let Some(value) = record.fields.get_mut(edge.field) else {
                continue;
            };
            let mut refused = 0;
            let dangling = match value {
                Value::Reference(id) | Value::Text(id) => match edge.targets {
                    [target] => {
                        refused = usize::from(self.is_refused(*target, id));
                        usize::from(self.is_dangling(*target, id))
                    }
                    _ => {
                        findings.push(Finding {
                            code: "REFERENCE_NOT_ALLOWED",
                            reason: format!(
                                "field `{}` holds an id without its object, but may refer to {}; not written",
                                edge.field,
                                names(edge.targets)
                            ),
                            action: Action::Reject,
                        });
                        continue;
                    }
                },
                Value::Links(links) => {
                    let mut foreign: Vec<&str> = links
                        .iter()
                        .filter(|l| !edge.targets.contains(&l.object))
                        .map(|l| l.object.as_str())
                        .collect();
                    if !foreign.is_empty() {
                        foreign.sort_unstable();
                        foreign.dedup();
                        findings.push(Finding {
                            code: "REFERENCE_NOT_ALLOWED",
                            reason: format!(
                                "field `{}` refers to {}, but may refer only to {}; not written",
                                edge.field,
                                foreign.join(", "),
                                names(edge.targets)
                            ),
                            action: Action::Reject,
                        });
                        continue;
                    }
                    if !edge.many && links.len() > 1 {
                        findings.push(Finding {
                            code: "REFERENCE_NOT_ALLOWED",
                            reason: format!(
                                "field `{}` refers to {} records, but may refer to one; not written",
                                edge.field,
                                links.len()
                            ),
                            action: Action::Reject,
                        });
                        continue;
                    }
                    let dangling = links
                        .iter()
                        .filter(|l| self.is_dangling(l.object, &l.id))
                        .count();
                    refused = links
                        .iter()
                        .filter(|l| self.is_refused(l.object, &l.id))
                        .count();
                    if (dangling > 0 || refused > 0) && !reject {
                        links.retain(|l| {
                            !self.is_dangling(l.object, &l.id) && !self.is_refused(l.object, &l.id)
                        });
                    }
                    dangling
                }
                _ => 0,
            };
            if dangling == 0 && refused == 0 {
                continue;
            }
            if !reject && !matches!(record.get(edge.field), Some(Value::Links(_))) {
                record.fields.remove(edge.field);
            }
            let what = |n: usize| {
                if n == 1 {
                    "a record".to_owned()
                } else {
                    format!("{n} records")
                }
            };
            let outcome = if reject {
                "not written (migration.missing_reference decides)"
            } else {
                "written without it"
            };
            let action = if reject {
                Action::Reject
            } else {
                Action::Write
            };
            if dangling > 0 {
                findings.push(Finding {
                    code: MISSING_REFERENCE,
                    reason: format!(
                        "field `{}` refers to {} the source does not have; {outcome}",
                        edge.field,
                        what(dangling)
                    ),
                    action,
                });
            }
            if refused > 0 {
                findings.push(Finding {
                    code: REFERENCE_REFUSED,
                    reason: format!(
                        "field `{}` refers to {} that {} refused earlier in this run (listed with \
                         its own reason); {outcome}",
                        edge.field,
                        what(refused),
                        self.sink
                    ),
                    action,
                });
            }
        }
    }

    fn check_emails(&mut self, record: &Record, findings: &mut Vec<Finding>) {
        for spec in record
            .object
            .fields()
            .iter()
            .filter(|f| f.ty == FieldType::Email)
        {
            let Some(Value::Text(email)) = record.get(spec.name) else {
                continue;
            };
            if !crate::email::is_valid(email) {
                findings.push(Finding {
                    code: "INVALID_EMAIL",
                    reason: format!("field `{}` is not a valid email address", spec.name),
                    action: match self.rules.invalid_email {
                        InvalidEmail::Reject => Action::Reject,
                        InvalidEmail::Warn => Action::Write,
                    },
                });
                continue;
            }
            if let Some(concern) = crate::email::concern(email) {
                let (code, what) = match concern {
                    crate::email::Concern::Placeholder => (
                        PLACEHOLDER_EMAIL,
                        "a placeholder address nobody reads (noreply@, test@, a reserved domain)",
                    ),
                    crate::email::Concern::Role => (
                        ROLE_EMAIL,
                        "a shared mailbox of a team or function (info@, sales@), not a person's",
                    ),
                };
                findings.push(Finding {
                    code,
                    reason: format!("field `{}` is {what}; written as read", spec.name),
                    action: Action::Write,
                });
            }
        }
        self.check_mail_domains(record, findings);
    }

    /// Flags addresses whose domain takes no mail, per the verdicts looked up before
    /// ([`QualityChecker::look_up_domains`]). Names the field, never the address or domain.
    fn check_mail_domains(&mut self, record: &Record, findings: &mut Vec<Finding>) {
        let Some(mx) = &self.mx else {
            return;
        };
        for spec in record
            .object
            .fields()
            .iter()
            .filter(|f| f.ty == FieldType::Email)
        {
            let Some(domain) = record
                .text(spec.name)
                .filter(|email| mail_domain_checked(email))
                .and_then(crate::mx::domain_of)
            else {
                continue;
            };
            let (code, what) = match mx.verdict(&domain) {
                Some(crate::mx::Verdict::NoMail) => (
                    EMAIL_DOMAIN_NO_MAIL,
                    "publishes a null MX (RFC 7505): it accepts no mail",
                ),
                Some(crate::mx::Verdict::NoMx) => (
                    EMAIL_DOMAIN_NO_MX,
                    "does not exist or has no mail server (no MX, A or AAAA record)",
                ),
                Some(crate::mx::Verdict::Unchecked) | None => {
                    self.mx_unchecked += 1;
                    continue;
                }
                Some(crate::mx::Verdict::Accepts) => continue,
            };
            findings.push(Finding {
                code,
                reason: format!(
                    "the domain of the address in field `{}` {what}; written as read \
                     (migration.email_mx_check)",
                    spec.name
                ),
                action: Action::Write,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_index_keeps_each_keys_latest_value_across_merges() {
        let mut index = HashIndex::<u32>::default();
        let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        for i in 0..100_000u32 {
            assert_eq!(index.insert(mix(u64::from(i)), i), None, "{i} is new");
            // Each key set again later: the new value replaces the old, merged or not.
            let again = i / 3;
            assert_eq!(
                index.insert(mix(u64::from(again)), again + 1),
                Some(if again * 3 < i { again + 1 } else { again }),
                "{again} set again at {i}"
            );
        }
        assert_eq!(index.len(), 100_000);
        assert!(index.bits > 0, "large enough to be indexed");
        assert_eq!(index.get(mix(99_999)), Some(99_999));
        assert_eq!(index.get(mix(3)), Some(4));
        assert_eq!(index.get(mix(100_000)), None);
    }

    #[test]
    fn hash_seen_is_an_exact_set_across_merges() {
        let mut seen = HashSeen::default();
        let mix = |i: u64| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17);
        for i in 0..200_000u64 {
            assert!(seen.insert(mix(i)), "{i} is new");
            assert!(!seen.insert(mix(i / 2)), "{} was added before", i / 2);
        }
        assert_eq!(seen.len(), 200_000);
        assert!(seen.members.bits > 0, "large enough to be indexed");
        // Hashes at the very ends of the range land in the first and last slots (0 is mix(0)).
        for edge in [1, 2, u64::MAX - 1, u64::MAX] {
            assert!(!seen.contains(edge));
            assert!(seen.insert(edge));
            assert!(seen.contains(edge));
        }
        for _ in 0..MIN_MERGE.max(seen.len() / 64) {
            let i = seen.len() as u64;
            seen.insert(mix(i));
        }
        // Enough to merge at least once, so the edges went through the index.
        assert!(seen.members.recent.len() < MIN_MERGE.max(seen.members.sorted.len() / 64));
        assert!(
            [0, 1, 2, u64::MAX - 1, u64::MAX]
                .iter()
                .all(|e| seen.contains(*e))
        );
        assert!(
            seen.members.sorted.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        assert!((0..200_000).all(|i| seen.contains(mix(i))));
        assert!(!seen.contains(mix(1_000_000)));
    }
    use crate::model::ObjectType;

    fn contact(id: &str, email: &str) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        r.set(field::EMAIL, Value::Text(email.into()));
        r
    }

    fn checker(rules: QualityRules) -> QualityChecker {
        QualityChecker::new(
            rules,
            "testsink",
            vec![field::LAST_NAME.to_owned()],
            KnownIds::new(),
        )
    }

    fn named(id: &str, email: &str) -> Record {
        let mut r = contact(id, email);
        r.set(field::LAST_NAME, Value::Text("Ng".into()));
        r
    }

    #[test]
    fn invalid_placeholder_and_role_addresses_are_told_apart_naming_only_the_field() {
        let codes = |email: &str| -> Vec<(&'static str, Action)> {
            let mut q = checker(QualityRules::default());
            let findings = q.check(&mut named("1", email));
            for f in &findings {
                assert!(!f.reason.contains(email), "{}", f.reason);
                assert!(f.reason.contains("`email`"), "{}", f.reason);
            }
            findings.iter().map(|f| (f.code, f.action)).collect()
        };
        assert_eq!(codes("jane.doe@company.de"), []);
        assert_eq!(
            codes("jane.doe@company.de."),
            [("INVALID_EMAIL", Action::Reject)]
        );
        assert_eq!(
            codes("Jane <jane@company.de>"),
            [("INVALID_EMAIL", Action::Reject)]
        );
        assert_eq!(
            codes("noreply@company.de"),
            [(PLACEHOLDER_EMAIL, Action::Write)]
        );
        assert_eq!(codes("info@company.de"), [(ROLE_EMAIL, Action::Write)]);
        let mut warn = checker(QualityRules {
            invalid_email: InvalidEmail::Warn,
            ..QualityRules::default()
        });
        let f = warn.check(&mut named("2", "a@nodot"));
        assert_eq!((f[0].code, f[0].action), ("INVALID_EMAIL", Action::Write));
    }

    #[test]
    fn phones_are_checked_in_the_records_country_or_the_runs_region_and_normalised_on_request() {
        let phones = |rules: QualityRules, country: Option<&str>, phone: &str| {
            let mut q = checker(rules);
            let mut r = named("1", "jane.doe@company.de");
            r.set(field::PHONE, Value::Text(phone.into()));
            if let Some(country) = country {
                r.set(field::COUNTRY, Value::Text(country.into()));
            }
            let findings = q.check(&mut r);
            for f in &findings {
                assert!(!f.reason.contains(phone), "{}", f.reason);
            }
            (
                findings.iter().map(|f| f.code).collect::<Vec<_>>(),
                r.text(field::PHONE).map(str::to_owned),
                q.phones_normalized().get(field::PHONE).copied(),
            )
        };
        let check = QualityRules {
            phones: Phones::Check,
            ..QualityRules::default()
        };
        let normalize = QualityRules {
            phones: Phones::Normalize,
            phone_region: crate::phone::Region::of_country("US"),
            ..QualityRules::default()
        };
        // Off: nothing is looked at.
        assert_eq!(
            phones(QualityRules::default(), None, "12"),
            (vec![], Some("12".into()), None)
        );
        // Checked, written as read.
        assert_eq!(
            phones(check.clone(), None, "+1 555 123 4567"),
            (vec![INVALID_PHONE], Some("+1 555 123 4567".into()), None)
        );
        assert_eq!(
            phones(check.clone(), Some("Germany"), "030 123456"),
            (vec![], Some("030 123456".into()), None)
        );
        // National form, no region anywhere: not judged.
        assert_eq!(
            phones(check, None, "030 123456"),
            (vec![], Some("030 123456".into()), None)
        );
        // Normalised: the record's country before the run's region.
        assert_eq!(
            phones(normalize.clone(), Some("DE"), "030 123456"),
            (vec![], Some("+4930123456".into()), Some(1))
        );
        assert_eq!(
            phones(normalize.clone(), None, "(415) 555-0123"),
            (vec![], Some("+14155550123".into()), Some(1))
        );
        // An extension has no place in E.164: kept as written.
        assert_eq!(
            phones(normalize.clone(), None, "415 555 0123 x 99"),
            (vec![], Some("415 555 0123 x 99".into()), None)
        );
        assert_eq!(
            phones(normalize, Some("Japan"), "12"),
            (vec![INVALID_PHONE], Some("12".into()), None)
        );
    }

    #[test]
    fn full_matching_names_the_first_record_and_skip_keeps_only_it() {
        let person = |id: &str, first: &str, email: &str| {
            let mut r = named(id, email);
            r.set(field::FIRST_NAME, Value::Text(first.into()));
            r.set(field::COMPANY, Value::Reference("co-1".into()));
            r
        };
        for (policy, action) in [
            (Duplicates::Flag, Action::Write),
            (Duplicates::Skip, Action::Skip),
        ] {
            let mut q = checker(QualityRules {
                duplicates: policy,
                duplicate_matching: DuplicateMatching::Full,
                ..QualityRules::default()
            });
            let first = q.check(&mut person("1", "Jonas", "jonas@acme.example.org"));
            assert!(first.is_empty(), "{first:?}");
            // Another address at the same company, a typo in the name: the same person.
            let f = q.check(&mut person("2", "Jnoas", "j2@gmail.com"));
            assert_eq!(
                (f[0].code, f[0].action),
                ("DUPLICATE_NAME", action),
                "{f:?}"
            );
            assert!(f[0].reason.contains("`1`"), "{}", f[0].reason);
            assert!(!f[0].reason.contains("Jnoas") && !f[0].reason.contains("gmail"));
            assert_eq!(
                q.duplicate_clusters(),
                vec![vec!["1".to_owned(), "2".to_owned()]]
            );
            assert_eq!(q.duplicates_found().get("DUPLICATE_NAME"), Some(&1));
        }
        // By default only the address counts: the typo'd name under another address passes.
        let mut q = checker(QualityRules::default());
        let first = q.check(&mut person("1", "Jonas", "jonas@acme.example.org"));
        assert!(first.is_empty(), "{first:?}");
        let second = q.check(&mut person("2", "Jnoas", "j2@gmail.com"));
        assert!(second.is_empty(), "{second:?}");
        assert!(q.duplicate_clusters().is_empty());
    }

    #[test]
    fn duplicates_are_found_case_insensitively_and_reported_without_the_value() {
        let mut q = checker(QualityRules::default());
        assert!(q.check(&mut named("1", "Lorelai@Example.com")).is_empty());
        let findings = q.check(&mut named("2", "lorelai@example.com"));
        assert_eq!(findings.len(), 1);
        assert_eq!(
            (findings[0].code, findings[0].action),
            ("DUPLICATE_EMAIL", Action::Write)
        );
        assert!(!findings[0].reason.contains("lorelai"));
        let again = q.check(&mut named("1", "other@example.com"));
        assert_eq!(
            (again[0].code, again[0].action),
            ("DUPLICATE_SOURCE_RECORD", Action::Skip)
        );
    }

    #[test]
    fn a_garbled_reference_is_rejected_too() {
        let mut q = checker(QualityRules::default());
        let mut r = named("8", "ok@example.com");
        r.set(field::COMPANY, Value::Reference("c-\u{FFFD}".into()));
        let f = q.check(&mut r);
        assert_eq!(
            (f[0].code, f[0].action),
            ("INVALID_TEXT_ENCODING", Action::Reject)
        );
        assert!(f[0].reason.contains(field::COMPANY));
    }

    #[test]
    fn text_that_was_not_utf8_is_rejected_naming_the_field_never_the_value() {
        let mut q = checker(QualityRules::default());
        let mut r = named("7", "lorelai\u{FFFD}example.com");
        r.set(field::FIRST_NAME, Value::Text("Rory".into()));
        let f = q.check(&mut r);
        assert_eq!(
            f.len(),
            1,
            "one finding per garbled field, no INVALID_EMAIL: {f:?}"
        );
        assert_eq!(
            (f[0].code, f[0].action),
            ("INVALID_TEXT_ENCODING", Action::Reject)
        );
        assert!(f[0].reason.contains("`email`"), "{}", f[0].reason);
        assert!(!f[0].reason.contains("lorelai"));
        assert!(q.check(&mut named("8", "lorelai@example.com")).is_empty());
    }

    #[test]
    fn invalid_email_policy() {
        let mut reject = checker(QualityRules::default());
        let f = reject.check(&mut named("1", "trailing@"));
        assert_eq!((f[0].code, f[0].action), ("INVALID_EMAIL", Action::Reject));
        assert!(!f[0].reason.contains("trailing@"));
        let mut warn = checker(QualityRules {
            invalid_email: InvalidEmail::Warn,
            ..QualityRules::default()
        });
        assert_eq!(
            warn.check(&mut named("1", "trailing@"))[0].action,
            Action::Write
        );
    }

    #[test]
    fn missing_required_fields_are_rejected_or_filled_as_configured() {
        let mut reject = checker(QualityRules::default());
        let f = reject.check(&mut contact("1", "a@example.com"));
        assert_eq!(
            (f[0].code, f[0].action),
            ("MISSING_REQUIRED", Action::Reject)
        );
        assert!(f[0].reason.contains("last_name") && f[0].reason.contains("testsink"));

        let rules = QualityRules {
            missing_required: MissingRequired::Placeholder("[not provided]".into()),
            ..QualityRules::default()
        };
        let mut fill = checker(rules);
        let mut record = contact("2", "b@example.com");
        let f = fill.check(&mut record);
        assert_eq!(
            (f[0].code, f[0].action),
            ("PLACEHOLDER_WRITTEN", Action::Write)
        );
        assert_eq!(
            record.text(field::LAST_NAME),
            Some("[not provided]"),
            "the placeholder is what gets written and verified"
        );
    }

    #[test]
    fn references_to_records_the_source_lacks() {
        let mut known = HashSeen::default();
        known.insert(id_hash("c-1"));
        let known = KnownIds::from([(ObjectType::COMPANIES, Arc::new(known))]);
        let mut q = QualityChecker::new(QualityRules::default(), "s", vec![], known.clone());
        let mut ok = contact("1", "a@example.com");
        ok.set(field::COMPANY, Value::Reference("c-1".into()));
        assert!(q.check(&mut ok).is_empty());
        let mut dangling = contact("2", "b@example.com");
        dangling.set(field::COMPANY, Value::Reference("c-404".into()));
        assert_eq!(q.check(&mut dangling.clone())[0].action, Action::Reject);

        let rules = QualityRules {
            missing_reference: MissingReference::Drop,
            ..QualityRules::default()
        };
        let mut drop = QualityChecker::new(rules, "s", vec![], known);
        let f = drop.check(&mut dangling);
        assert_eq!(
            (f[0].code, f[0].action),
            ("MISSING_REFERENCE", Action::Write)
        );
        assert_eq!(dangling.get(field::COMPANY), None);
    }

    #[test]
    fn a_required_link_left_empty_by_dropping_refused_parents_is_missing() {
        let mut refused = HashSeen::default();
        refused.insert(id_hash("p-9"));
        let refused = KnownIds::from([(ObjectType::CONTACTS, Arc::new(refused))]);
        for missing_required in [
            MissingRequired::Reject,
            MissingRequired::Placeholder("n/a".into()),
        ] {
            let rules = QualityRules {
                missing_reference: MissingReference::Drop,
                missing_required,
                ..QualityRules::default()
            };
            let mut q =
                QualityChecker::new(rules, "onesink", vec!["parents".into()], KnownIds::new())
                    .with_refused_parents(refused.clone());
            let mut note = Record::new(ObjectType::NOTES, "n-1");
            note.set(
                field::PARENTS,
                Value::Links(vec![crate::model::Link {
                    object: ObjectType::CONTACTS,
                    id: "p-9".into(),
                }]),
            );
            let codes: Vec<(&str, Action)> = q
                .check(&mut note)
                .iter()
                .map(|f| (f.code, f.action))
                .collect();
            assert_eq!(
                codes,
                [
                    (REFERENCE_REFUSED, Action::Write),
                    ("MISSING_REQUIRED", Action::Reject)
                ]
            );
        }
    }

    #[test]
    fn an_opt_out_without_an_address_is_refused_only_for_a_sink_that_needs_one() {
        let opted_out = |id: &str, email: Option<&str>| {
            let mut r = Record::new(ObjectType::CONTACTS, id);
            if let Some(email) = email {
                r.set(field::EMAIL, Value::Text(email.into()));
            }
            r.set(field::EMAIL_OPT_OUT, Value::Bool(true));
            r
        };
        let mut per_address = QualityChecker::new(
            QualityRules::default(),
            "pipedrive",
            vec![],
            KnownIds::new(),
        )
        .with_opt_out_needs_email(true);
        let f = per_address.check(&mut opted_out("n", None));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(
            (f[0].code, f[0].action),
            (OPT_OUT_NOT_REPRESENTABLE, Action::Reject)
        );
        assert!(
            f[0].reason.contains("`email_opt_out`")
                && f[0].reason.contains("`email`")
                && f[0].reason.contains("pipedrive"),
            "{}",
            f[0].reason
        );
        // A blank or malformed address is refused once, as INVALID_EMAIL; written anyway under
        // `invalid_email = "warn"`, the opt-out could not be recorded, so it is refused.
        for (i, email) in ["", "  ", "trailing@"].into_iter().enumerate() {
            let f = per_address.check(&mut opted_out(&format!("m{i}"), Some(email)));
            assert_eq!(
                f.iter().map(|f| f.code).collect::<Vec<_>>(),
                ["INVALID_EMAIL"],
                "{email:?}"
            );
        }
        let mut warn = QualityChecker::new(
            QualityRules {
                invalid_email: InvalidEmail::Warn,
                ..QualityRules::default()
            },
            "hubspot",
            vec![],
            KnownIds::new(),
        )
        .with_opt_out_needs_email(true);
        let f = warn.check(&mut opted_out("w", Some("trailing@")));
        assert_eq!(
            f.iter().map(|f| (f.code, f.action)).collect::<Vec<_>>(),
            [
                ("INVALID_EMAIL", Action::Write),
                (OPT_OUT_NOT_REPRESENTABLE, Action::Reject)
            ]
        );
        // With an address, or not opted out, or for a sink with a person-level flag: written.
        assert!(
            per_address
                .check(&mut opted_out("a", Some("a@example.com")))
                .is_empty()
        );
        let mut not_opted = opted_out("b", None);
        not_opted.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        assert!(per_address.check(&mut not_opted).is_empty());
        let mut flag =
            QualityChecker::new(QualityRules::default(), "zoho", vec![], KnownIds::new());
        assert!(flag.check(&mut opted_out("c", None)).is_empty());
    }

    #[test]
    fn picklist_labels_are_carried_refused_or_left_empty_before_anything_else() {
        let map = ValueMap {
            canonical: field::INDUSTRY.into(),
            sink_field: "industry".into(),
            table: vec![("Technology".into(), Some("Computer Software".into()))],
            otherwise: None,
            sink_labels: Some(vec!["Computer Software".into(), "Retail".into()]),
        };
        let company = |i: usize, industry: &str| {
            let mut r = Record::new(ObjectType::COMPANIES, i.to_string());
            r.set(field::NAME, Value::Text("Acme".into()));
            r.set(field::INDUSTRY, Value::Text(industry.into()));
            r
        };
        let plain = || QualityChecker::new(QualityRules::default(), "s", vec![], KnownIds::new());
        let mut q = plain().with_value_maps(vec![map.clone()]);
        let mut mapped = company(1, "technology");
        assert!(q.check(&mut mapped).is_empty());
        assert_eq!(mapped.text(field::INDUSTRY), Some("Computer Software"));
        let mut same = company(2, "RETAIL ");
        assert!(q.check(&mut same).is_empty());
        assert_eq!(same.text(field::INDUSTRY), Some("Retail"));
        let refused = q.check(&mut company(3, "Banking"));
        assert_eq!(refused.len(), 1);
        assert_eq!(
            (refused[0].code, refused[0].action),
            (UNMAPPED_VALUE, Action::Reject)
        );
        assert!(
            refused[0].reason.contains("[values.companies.industry]"),
            "{}",
            refused[0].reason
        );
        assert!(
            !refused[0].reason.contains("Banking"),
            "{}",
            refused[0].reason
        );

        let mut q = plain().with_value_maps(vec![ValueMap {
            otherwise: Some(None),
            ..map
        }]);
        let mut emptied = company(4, "Banking");
        let findings = q.check(&mut emptied);
        assert_eq!(
            (findings[0].code, findings[0].action),
            (VALUE_LEFT_EMPTY, Action::Write)
        );
        assert_eq!(emptied.get(field::INDUSTRY), None);
    }

    #[test]
    fn control_characters_and_oversized_records() {
        let mut q = QualityChecker::new(
            QualityRules {
                max_record_bytes: 100,
                ..QualityRules::default()
            },
            "s",
            vec![],
            KnownIds::new(),
        );
        let mut bell = contact("1", "a@example.com");
        bell.set(field::CITY, Value::Text("Kra\u{7}ków".into()));
        let f = q.check(&mut bell);
        assert_eq!(
            (f[0].code, f[0].action),
            ("CONTROL_CHARACTERS", Action::Write)
        );
        assert!(f[0].reason.contains("city") && !f[0].reason.contains("Kra"));
        // ASCII and non-ASCII text take different paths: both find a C0 or C1 control, and
        // neither flags tab, line feed or carriage return.
        for (i, (text, flagged)) in [
            ("Kra\u{7f}kow", true),
            ("Kraków\u{85}", true),
            ("Kra\tkow\r\n", false),
            ("Kraków\t\n", false),
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = contact(&format!("c{i}"), &format!("c{i}@example.com"));
            r.set(field::CITY, Value::Text(text.into()));
            let found = q
                .check(&mut r)
                .iter()
                .any(|f| f.code == "CONTROL_CHARACTERS");
            assert_eq!(found, flagged, "{text:?}");
        }
        let mut big = contact("2", "b@example.com");
        big.set(field::STREET, Value::Text("x".repeat(200)));
        assert_eq!(q.check(&mut big)[0].code, "OVERSIZED_RECORD");
    }

    /// Notes on deals, contacts or companies, several at once (targets in priority order).
    static DEALS: crate::model::ObjectSpec = crate::model::ObjectSpec {
        name: "deals",
        fields: &[],
    };
    static NOTES: crate::model::ObjectSpec = crate::model::ObjectSpec {
        name: "notes",
        fields: &[
            crate::model::FieldSpec {
                name: "body",
                ty: FieldType::RichText,
            },
            crate::model::FieldSpec {
                name: "parents",
                ty: FieldType::Reference(crate::model::RefSpec {
                    targets: &[
                        ObjectType::new(&DEALS),
                        ObjectType::CONTACTS,
                        ObjectType::COMPANIES,
                    ],
                    many: true,
                }),
            },
        ],
    };

    fn note(id: &str, body: &str, parents: &[(ObjectType, &str)]) -> Record {
        let mut r = Record::new(ObjectType::new(&NOTES), id);
        r.set_named("body", Value::Text(body.into()));
        let links = parents
            .iter()
            .map(|(object, id)| crate::model::Link {
                object: *object,
                id: (*id).into(),
            })
            .collect();
        r.set_named("parents", Value::Links(links));
        r
    }

    fn limited(limits: Vec<FieldLimit>) -> QualityChecker {
        QualityChecker::new(QualityRules::default(), "onesink", vec![], KnownIds::new())
            .with_limits(limits)
    }

    #[test]
    fn a_text_over_the_sinks_length_is_refused_naming_the_field_and_the_limit() {
        let mut q = limited(vec![FieldLimit::max_chars("body", 10)]);
        let mut long = note("n-1", "abcdefghijk", &[]);
        let f = q.check(&mut long);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].code, f[0].action), (TOO_LONG, Action::Reject));
        assert_eq!(
            f[0].reason,
            "field `body` is 11 characters; onesink holds at most 10 there, and ferry never \
             truncates: not written"
        );
        assert_eq!(long.text("body"), Some("abcdefghijk"), "never truncated");
        // Characters, not bytes: ten non-ASCII letters fit.
        assert!(q.check(&mut note("n-2", "ééééééééé€", &[])).is_empty());
        assert!(q.check(&mut note("n-3", "0123456789", &[])).is_empty());
        assert_eq!(
            q.check(&mut note("n-4", "ééééééééééé", &[]))[0].code,
            TOO_LONG
        );
        // A sink that stores the plain form counts that: markup does not count.
        let mut plain = limited(vec![FieldLimit::max_chars("body", 10).of_plain_text()]);
        assert!(
            plain
                .check(&mut note("n-5", "<p><b>0123456789</b></p>", &[]))
                .is_empty()
        );
        let f = plain.check(&mut note("n-6", "<p>0123456789A</p>", &[]));
        assert!(
            f[0].reason.contains("11 characters as plain text") && !f[0].reason.contains("0123"),
            "{}",
            f[0].reason
        );
    }

    #[test]
    fn links_beyond_one_per_target_are_cut_per_object_and_reported() {
        // One deal, one person and one organisation per note (Pipedrive).
        let mut q = limited(vec![FieldLimit::max_links_per_target("parents", 1)]);
        let deals = ObjectType::new(&DEALS);
        let mut n = note(
            "n-1",
            "x",
            &[
                (ObjectType::CONTACTS, "p-1"),
                (ObjectType::COMPANIES, "co-1"),
                (ObjectType::CONTACTS, "p-2"),
                (deals, "d-1"),
            ],
        );
        let f = q.check(&mut n);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].code, f[0].action), (NOT_CARRIED, Action::Write));
        assert_eq!(
            f[0].reason,
            "field `parents` has 4 links and onesink holds at most 1 of each object there: 1 not \
             carried (1 of contacts); written with the first by priority (deals, contacts, \
             companies)"
        );
        let kept: Vec<(ObjectType, &str)> = match n.get("parents") {
            Some(Value::Links(l)) => l.iter().map(|l| (l.object, l.id.as_str())).collect(),
            _ => Vec::new(),
        };
        assert_eq!(
            kept,
            [
                (deals, "d-1"),
                (ObjectType::CONTACTS, "p-1"),
                (ObjectType::COMPANIES, "co-1")
            ]
        );
        // One of each: nothing cut, nothing said.
        let mut fits = note(
            "n-2",
            "x",
            &[
                (ObjectType::CONTACTS, "p-1"),
                (ObjectType::COMPANIES, "co-1"),
            ],
        );
        assert!(q.check(&mut fits).is_empty());
    }

    #[test]
    fn a_time_finer_than_the_sink_keeps_is_cut_to_the_second_and_said() {
        let mut q = limited(vec![FieldLimit::to_the_second("timestamp")]);
        let mut fine = note("n-1", "hi", &[]);
        fine.set_named("timestamp", Value::Timestamp(1_704_164_645_999));
        let f = q.check(&mut fine);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].code, f[0].action), (TIME_ROUNDED, Action::Write));
        assert_eq!(
            f[0].reason,
            "field `timestamp` has a fraction of a second and onesink keeps whole seconds \
             there: written and verified to the second"
        );
        assert_eq!(
            fine.get("timestamp"),
            Some(&Value::Timestamp(1_704_164_645_000))
        );
        // Whole seconds, and times before 1970, are kept to the second as well.
        let mut whole = note("n-2", "hi", &[]);
        whole.set_named("timestamp", Value::Timestamp(1_704_164_645_000));
        assert!(q.check(&mut whole).is_empty());
        let mut early = note("n-3", "hi", &[]);
        early.set_named("timestamp", Value::Timestamp(-1_500));
        assert_eq!(q.check(&mut early)[0].code, TIME_ROUNDED);
        assert_eq!(early.get("timestamp"), Some(&Value::Timestamp(-2_000)));
        assert_eq!(q.times_rounded().get("timestamp"), Some(&2));
    }

    #[test]
    fn payment_data_in_free_text_is_flagged_refused_or_masked_never_shown() {
        let body = "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, call +49 151 1";
        let run = |rule: PaymentData| {
            let rules = QualityRules {
                payment_data: rule,
                ..QualityRules::default()
            };
            let mut q = QualityChecker::new(rules, "onesink", vec![], KnownIds::new());
            let mut n = note("n-1", body, &[]);
            let findings = q.check(&mut n);
            (findings, n.text("body").map(str::to_owned))
        };
        let (flagged, kept) = run(PaymentData::Flag);
        let codes: Vec<(&str, Action)> = flagged.iter().map(|f| (f.code, f.action)).collect();
        assert_eq!(
            codes,
            [(PAYMENT_CARD, Action::Write), (BANK_ACCOUNT, Action::Write)]
        );
        assert_eq!(
            flagged[0].reason,
            "field `body` holds a payment card number; written as read (migration.payment_data = \"flag\")"
        );
        assert_eq!(kept.as_deref(), Some(body), "flagged, not changed");
        for f in &flagged {
            assert!(
                !f.reason.contains("4111") && !f.reason.contains("3704"),
                "{}",
                f.reason
            );
        }
        let (refused, _) = run(PaymentData::Refuse);
        assert!(refused.iter().all(|f| f.action == Action::Reject));
        let (masked, text) = run(PaymentData::Redact);
        assert!(masked.iter().all(|f| f.action == Action::Write));
        assert_eq!(
            text.as_deref(),
            Some("Card **** **** **** 1111, IBAN **** **** **** **** **30 00, call +49 151 1")
        );
        // An email address or a phone number is never taken for one.
        let mut contact = Record::new(ObjectType::CONTACTS, "c-1");
        contact.set(field::PHONE, Value::Text("4111 1111 1111 1111".into()));
        let mut q =
            QualityChecker::new(QualityRules::default(), "onesink", vec![], KnownIds::new());
        assert!(q.check(&mut contact).is_empty());
    }

    #[test]
    fn a_value_the_sink_cannot_hold_is_refused_naming_what_it_holds() {
        let mut q = limited(vec![FieldLimit::only_values(
            "currency",
            vec!["EUR".into()],
        )]);
        let deal = |id: &str, currency: Option<&str>| {
            let mut r = Record::new(ObjectType::DEALS, id);
            r.set_named("name", Value::Text("Renewal".into()));
            if let Some(c) = currency {
                r.set_named("currency", Value::Text(c.into()));
            }
            r
        };
        let f = q.check(&mut deal("d-1", Some("USD")));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, VALUE_NOT_HELD);
        assert_eq!(f[0].action, Action::Reject);
        assert_eq!(
            f[0].reason,
            "field `currency` holds a value onesink cannot hold there: it holds only EUR; not written"
        );
        // Its own currency in any case passes, and so does a deal that states none.
        assert!(q.check(&mut deal("d-2", Some("eur"))).is_empty());
        assert!(q.check(&mut deal("d-3", None)).is_empty());
    }

    #[test]
    fn a_legal_basis_keeps_the_names_the_sink_holds_the_broader_one_for_a_refinement() {
        let held = ["consent", "contract", "legitimate_interests"];
        let mut q = limited(vec![FieldLimit::only_values(
            field::LEGAL_BASIS,
            held.iter().map(|h| (*h).to_owned()).collect(),
        )]);
        let contact = |id: &str, names: &[&str]| {
            let mut r = Record::new(ObjectType::CONTACTS, id);
            r.set(field::LAST_NAME, Value::Text("Ode".into()));
            if let Some(v) = crate::model::names_value(names) {
                r.set(field::LEGAL_BASIS, v);
            }
            r
        };
        // Every name held: written as read, nothing said.
        let mut all_held = contact("c-1", &["contract", "consent"]);
        assert!(q.check(&mut all_held).is_empty());
        assert_eq!(all_held.text(field::LEGAL_BASIS), Some("consent; contract"));

        // A refinement becomes its broader basis; a basis the sink lacks is left out; a
        // vendor's own option is left out without being shown.
        let mut narrowed = contact(
            "c-2",
            &[
                "consent",
                "legitimate_interests_customer",
                "vital_interests",
                "Soft opt-in (ACME)",
            ],
        );
        let f = q.check(&mut narrowed);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].code, f[0].action), (NAMES_NOT_HELD, Action::Write));
        assert_eq!(
            f[0].reason,
            "field `legal_basis`: onesink has no option for `legitimate_interests_customer` \
             (written as `legitimate_interests`), `vital_interests`, an option of the source's \
             own; written with the rest"
        );
        assert!(!f[0].reason.contains("ACME"));
        assert_eq!(
            narrowed.text(field::LEGAL_BASIS),
            Some("consent; legitimate_interests")
        );

        // Nothing held: the field is written empty (absent), not refused.
        let mut none_held = contact("c-3", &["public_interest"]);
        let f = q.check(&mut none_held);
        assert_eq!((f.len(), f[0].code), (1, NAMES_NOT_HELD));
        assert_eq!(none_held.get(field::LEGAL_BASIS), None);
    }

    #[test]
    fn a_sink_holding_one_legal_basis_keeps_the_first_by_its_precedence_and_says_which_went() {
        let held = [
            "consent",
            "contract",
            "legitimate_interests",
            "not_applicable",
        ];
        let mut q = limited(vec![FieldLimit::one_of(
            field::LEGAL_BASIS,
            held.iter().map(|h| (*h).to_owned()).collect(),
        )]);
        let contact = |id: &str, names: &[&str]| {
            let mut r = Record::new(ObjectType::CONTACTS, id);
            if let Some(v) = crate::model::names_value(names) {
                r.set(field::LEGAL_BASIS, v);
            }
            r
        };
        // One name: written as read, nothing said.
        let mut one = contact("c-1", &["contract"]);
        assert!(q.check(&mut one).is_empty());
        assert_eq!(one.text(field::LEGAL_BASIS), Some("contract"));

        // Several: the first by the sink's order, not the names' order; a refinement counts
        // as its broader basis, and the names left out are named.
        let mut several = contact(
            "c-2",
            &[
                "not_applicable",
                "legitimate_interests_customer",
                "contract",
            ],
        );
        let f = q.check(&mut several);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].code, f[0].action), (NAMES_NOT_HELD, Action::Write));
        assert_eq!(
            f[0].reason,
            "field `legal_basis`: onesink has no option for `legitimate_interests_customer` \
             (written as `legitimate_interests`); onesink holds 1 at most, `contract` by its \
             precedence: `legitimate_interests`, `not_applicable` left out; written with the rest"
        );
        assert_eq!(several.text(field::LEGAL_BASIS), Some("contract"));

        // Two names that narrow to one are one name.
        let mut same = contact(
            "c-3",
            &["legitimate_interests", "legitimate_interests_prospect"],
        );
        let f = q.check(&mut same);
        assert_eq!(f.len(), 1, "the refinement is said: {f:?}");
        assert!(!f[0].reason.contains("at most"), "{}", f[0].reason);
        assert_eq!(same.text(field::LEGAL_BASIS), Some("legitimate_interests"));
    }

    #[test]
    fn a_field_the_sink_fills_in_is_given_its_value_with_a_warning_and_a_set_one_is_kept() {
        let mut q = limited(vec![
            FieldLimit::max_chars("name", 20),
            FieldLimit::unset_reads_as("amount", "0"),
            FieldLimit::unset_reads_as("currency", "USD"),
        ]);
        let deal = |id: &str, name: &str, amount: Option<f64>, currency: Option<&str>| {
            let mut r = Record::new(ObjectType::DEALS, id);
            r.set_named("name", Value::Text(name.into()));
            if let Some(a) = amount {
                r.set_named("amount", Value::Decimal(a));
            }
            if let Some(c) = currency {
                r.set_named("currency", Value::Text(c.into()));
            }
            r
        };
        // Neither set: both get the sink's value, each with a warning naming the sink's value.
        let mut bare = deal("d-1", "Renewal", None, None);
        let f = q.check(&mut bare);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(
            f.iter()
                .all(|f| (f.code, f.action) == (SINK_DEFAULT, Action::Write))
        );
        assert_eq!(
            f[0].reason,
            "field `amount` is unset, and onesink holds an unset one as 0: written and verified as 0"
        );
        assert!(f[1].reason.contains("`currency`") && f[1].reason.contains("as USD"));
        assert_eq!(bare.get("amount"), Some(&Value::Decimal(0.0)));
        assert_eq!(bare.get("currency"), Some(&Value::Text("USD".into())));
        // The digest covers what the sink will hold: the same as a deal sent with them.
        let projection = crate::checksum::Projection::new(["name", "amount", "currency"]);
        assert_eq!(
            crate::checksum::record_digest(&bare, &projection),
            crate::checksum::record_digest(
                &deal("d-1", "Renewal", Some(0.0), Some("USD")),
                &projection
            )
        );
        // Set values, an amount of 0 among them, are the record's own: kept, no finding.
        let mut set = deal("d-2", "Renewal", Some(0.0), Some("EUR"));
        assert!(q.check(&mut set).is_empty());
        assert_eq!(set.get("currency"), Some(&Value::Text("EUR".into())));
        // A blank text is unset.
        let mut blank = deal("d-3", "Renewal", Some(5.0), Some(" "));
        let f = q.check(&mut blank);
        assert_eq!((f.len(), f[0].code), (1, SINK_DEFAULT));
        assert_eq!(blank.get("currency"), Some(&Value::Text("USD".into())));
        // A refused record is left as it was: no default, no warning.
        let mut refused = deal("d-4", "A name far too long for it", None, None);
        let f = q.check(&mut refused);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, TOO_LONG);
        assert_eq!(refused.get("amount"), None);
    }

    #[test]
    fn links_beyond_the_sinks_limit_are_cut_by_target_priority_and_reported() {
        let deals = ObjectType::new(&DEALS);
        let (contacts, companies) = (ObjectType::CONTACTS, ObjectType::COMPANIES);
        let mut q = limited(vec![FieldLimit::max_links("parents", 1)]);
        let mut three = note(
            "n-1",
            "x",
            &[(companies, "co-1"), (contacts, "p-1"), (deals, "d-1")],
        );
        let f = q.check(&mut three);
        assert_eq!(
            (f.len(), f[0].code, f[0].action),
            (1, NOT_CARRIED, Action::Write)
        );
        assert_eq!(
            f[0].reason,
            "field `parents` has 3 links and onesink holds at most 1 there: 2 not carried \
             (1 of companies, 1 of contacts); written with the first by priority (deals, \
             contacts, companies)"
        );
        assert_eq!(
            three.get("parents"),
            Some(&Value::Links(vec![crate::model::Link {
                object: deals,
                id: "d-1".into()
            }]))
        );
        // Within one target, the source's order; a link listed twice is one.
        let mut q = limited(vec![FieldLimit::max_links("parents", 2)]);
        let mut people = note(
            "n-2",
            "x",
            &[
                (companies, "co-1"),
                (contacts, "p-9"),
                (contacts, "p-9"),
                (contacts, "p-1"),
                (contacts, "p-5"),
            ],
        );
        let f = q.check(&mut people);
        assert!(
            f[0].reason
                .contains("2 not carried (1 of companies, 1 of contacts)"),
            "{f:?}"
        );
        let kept: Vec<&str> = match people.get("parents") {
            Some(Value::Links(links)) => links.iter().map(|l| l.id.as_str()).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(kept, ["p-9", "p-1"]);
        // As many as it holds: nothing to report; the count is per field.
        assert!(
            q.check(&mut note(
                "n-3",
                "x",
                &[(contacts, "p-9"), (contacts, "p-9"), (deals, "d")]
            ))
            .is_empty()
        );
        assert_eq!(q.links_not_carried().get("parents"), Some(&1));
        // A refused record is not cut (nor counted): it is not written at all.
        let mut q = limited(vec![
            FieldLimit::max_chars("body", 1),
            FieldLimit::max_links("parents", 1),
        ]);
        let mut both = note("n-4", "xy", &[(contacts, "p-1"), (deals, "d-1")]);
        let f = q.check(&mut both);
        assert_eq!(f.iter().map(|f| f.code).collect::<Vec<_>>(), [TOO_LONG]);
        assert!(q.links_not_carried().is_empty());
    }
}
