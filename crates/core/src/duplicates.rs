//! People entered twice in the source: the same customer under two records, found while the
//! records stream past, before they are written.
//!
//! Three kinds of evidence, each strong enough alone:
//! - the same email address (ignoring case);
//! - the same phone number (its last nine digits, so that `+44 20 7946 0123` and
//!   `020 7946 0123` agree) on records whose names are alike ([`PHONE_NAME_SIMILARITY`]) or
//!   where one has no name: colleagues sharing a switchboard number are not one person;
//! - near-identical names ([`NAME_SIMILARITY`], Jaro-Winkler) within one block: the same
//!   company, or the same email domain (not a public provider's such as `gmail.com`), and the
//!   same initial of the last name. Blocks keep the
//!   work near-linear: a name is compared with at most [`BLOCK_DEPTH`] earlier ones.
//!
//! Records found alike are joined into clusters (union-find); a cluster is named by its first
//! record. Nothing of a record is kept but hashes, its source id and its folded name, in flat
//! arenas: about 60 bytes a record (`docs/performance.md`).
//!
//! Merging (`migration.duplicates = "merge"`) needs each cluster whole before its survivor can
//! be chosen, and a stream finds a cluster only as its later records arrive. So a merged object
//! is read twice: a first read plans ([`MergePlanner`] → [`MergePlan`]: the clusters and their
//! survivors, about 70 bytes a record while it runs, then only the clusters' ids), and the
//! second read holds each cluster's records until its last one arrives ([`Merger`]), writes
//! the survivor filled from the others and drops the rest. Later objects' references to a
//! merged-away record are re-pointed to its survivor ([`repoint`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::sync::Arc;

use crate::model::{ObjectType, Record, Value, field};
use crate::quality::{HashIndex, MergeSurvivor, id_hash, reserve_lean};

/// Jaro-Winkler similarity at or above which two names in one block are one person's.
pub const NAME_SIMILARITY: f64 = 0.93;

/// Jaro-Winkler similarity at or above which two names sharing a phone number are one person's.
pub const PHONE_NAME_SIMILARITY: f64 = 0.80;

/// The most earlier names of its block a new name is compared with.
pub const BLOCK_DEPTH: usize = 64;

/// The most findings listed in a report per code (`DUPLICATE_NAME`, ...) and the most
/// clusters listed per object; the counts stay exact. A run over data full of namesakes finds
/// hundreds of thousands: listing each, with its reason, took ferry to 1.3 GB at a million.
pub const LISTED: usize = 1000;

/// The most source ids listed of one cluster (its first ones, in the order read).
pub const LISTED_IDS: usize = 20;

/// The most records a cluster may have to be merged: a larger one is namesakes chained
/// together, or a shared mailbox, not one person entered again; its records are written as
/// they are (and listed among the clusters).
pub const MERGE_MAX: usize = 20;

/// Digits of a phone number compared: enough to tell numbers apart, few enough that a national
/// and an international form of one number agree.
const PHONE_DIGITS: usize = 9;

/// Mail providers anyone can sign up with: sharing one says nothing about two people, so
/// their domains are no block for names.
const SHARED_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "ymail.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "gmx.com",
    "web.de",
    "t-online.de",
    "freenet.de",
    "mail.ru",
    "yandex.ru",
    "yandex.com",
    "qq.com",
    "163.com",
    "126.com",
    "naver.com",
    "orange.fr",
    "free.fr",
    "laposte.net",
    "wanadoo.fr",
    "libero.it",
    "virgilio.it",
    "btinternet.com",
    "sky.com",
    "comcast.net",
    "verizon.net",
    "att.net",
    "zoho.com",
    "fastmail.com",
    "hey.com",
    "seznam.cz",
    "wp.pl",
    "o2.pl",
    "interia.pl",
    "rediffmail.com",
];

/// Whether `domain` is a public mail provider's, or a regional variant of one (`yahoo.co.uk`,
/// `hotmail.fr`, `outlook.de`).
fn shared_mail_domain(domain: &str) -> bool {
    SHARED_MAIL_DOMAINS.contains(&domain)
        || [
            "gmail.",
            "googlemail.",
            "hotmail.",
            "outlook.",
            "live.",
            "yahoo.",
            "gmx.",
            "aol.",
        ]
        .iter()
        .any(|provider| domain.starts_with(provider))
}

/// The end of a block's chain.
const END: u32 = u32::MAX;

/// What a key in the finder's index stands for, hashed in front of its value so that an
/// email address, a phone number and a block never share a key.
#[derive(Clone, Copy)]
enum Key {
    /// An email address: the first record with it.
    Email = 1,
    /// A phone number's last digits: the first record with it.
    Phone = 2,
    /// A block: its latest record.
    Block = 3,
}

/// The 64-bit hash of `parts` as a `kind` of key (each part ended by a NUL, so that parts
/// cannot run into each other).
fn key(kind: Key, parts: &[&str]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    h.write_u8(kind as u8);
    for part in parts {
        h.write(part.as_bytes());
        h.write_u8(0);
    }
    h.finish()
}

/// Why a record is taken for one read earlier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// The same email address.
    Email,
    /// The same phone number, and alike names.
    Phone,
    /// Near-identical names at the same company or email domain.
    Name,
}

impl Evidence {
    /// The finding's code.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::Email => "DUPLICATE_EMAIL",
            Evidence::Phone => "DUPLICATE_PHONE",
            Evidence::Name => "DUPLICATE_NAME",
        }
    }

    /// Whether `code` is a duplicate finding's.
    pub fn is_code(code: &str) -> bool {
        [Evidence::Email, Evidence::Phone, Evidence::Name]
            .iter()
            .any(|e| e.code() == code)
    }

    /// The evidence in words, for reasons.
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::Email => "the same email address",
            Evidence::Phone => "the same phone number and a similar name",
            Evidence::Name => "a near-identical name at the same company or email domain",
        }
    }
}

/// A record found to be a duplicate: the source id of its cluster's first record, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duplicate {
    /// The source id of the first record of the cluster (the one a `skip` keeps).
    pub first: String,
    /// The evidence that joined it.
    pub evidence: Evidence,
}

/// Finds duplicate people among the records it is shown, in the order shown.
///
/// Per record it keeps its source id and folded name front-coded ([`Strings`]), its
/// union-find parent and its place in its blocks' chains; the first record of each email
/// address and phone number and the latest of each block are found through one
/// [`HashIndex`]: about 60 bytes a record in all (`docs/performance.md`).
#[derive(Debug, Default)]
pub struct DuplicateFinder {
    ids: Strings,
    /// Folded names ("jane doe").
    names: Strings,
    keys: HashIndex<u32>,
    /// Per record, the record before it in each of its (up to two) blocks.
    block_next: Vec<[u32; 2]>,
    /// Union-find parents; a root is its cluster's first record.
    parent: Vec<u32>,
    /// Only the same email address counts (`duplicate_matching = "email"`).
    email_only: bool,
}

impl DuplicateFinder {
    /// A finder that takes only the same email address for the same person
    /// (`duplicate_matching = "email"`).
    pub fn emails_only() -> DuplicateFinder {
        DuplicateFinder {
            email_only: true,
            ..DuplicateFinder::default()
        }
    }

    /// Looks at `record` (a person: contacts and the like): returns the cluster it joins when
    /// it is a duplicate of one seen earlier, and remembers it either way.
    pub fn observe(&mut self, record: &Record) -> Option<Duplicate> {
        let Ok(index) = u32::try_from(self.parent.len()) else {
            return None; // four billion records: beyond any CRM
        };
        if index == END {
            return None;
        }
        self.ids.push(&record.source_id);
        let name = folded_name(record);
        self.names.push(&name);
        reserve_lean(&mut self.parent, 1);
        self.parent.push(index);
        reserve_lean(&mut self.block_next, 1);
        self.block_next.push([END; 2]);

        let email = record
            .text(field::EMAIL)
            .map(|e| e.trim().to_lowercase())
            .filter(|e| crate::email::is_valid(e));
        let mut matches: Vec<(u32, Evidence)> = Vec::new();
        if let Some(email) = &email {
            let hash = key(Key::Email, &[email]);
            match self.keys.get(hash) {
                Some(earlier) => matches.push((earlier, Evidence::Email)),
                None => {
                    self.keys.insert(hash, index);
                }
            }
        }
        let mut other = Vec::new();
        let people_evidence = !self.email_only;
        for phone in [field::PHONE, field::MOBILE_PHONE]
            .iter()
            .filter(|_| people_evidence)
            .filter_map(|f| record.text(f))
            .filter_map(phone_key)
        {
            match self.keys.get(phone) {
                Some(earlier) => {
                    let other = self.names.get_into(earlier, &mut other);
                    if name.is_empty()
                        || other.is_empty()
                        || strsim::jaro_winkler(&name, other) >= PHONE_NAME_SIMILARITY
                    {
                        matches.push((earlier, Evidence::Phone));
                    }
                }
                None => {
                    self.keys.insert(phone, index);
                }
            }
        }
        if people_evidence && !name.is_empty() {
            let initial = name.rsplit(' ').next().and_then(|l| l.chars().next());
            let initial = initial.map(String::from).unwrap_or_default();
            let bases = [
                record.get(field::COMPANY).and_then(|v| match v {
                    Value::Reference(id) => Some(key(Key::Block, &["company", id, &initial])),
                    _ => None,
                }),
                email
                    .as_deref()
                    .and_then(|e| e.rsplit_once('@'))
                    .filter(|(_, domain)| !shared_mail_domain(domain))
                    .map(|(_, domain)| key(Key::Block, &["domain", domain, &initial])),
            ];
            for (slot, block) in bases.iter().enumerate() {
                let Some(block) = *block else { continue };
                let mut at = self.keys.insert(block, index).unwrap_or(END);
                self.block_next[index as usize][slot] = at;
                let mut depth = 0;
                while at != END && depth < BLOCK_DEPTH {
                    let other = self.names.get_into(at, &mut other);
                    if strsim::jaro_winkler(&name, other) >= NAME_SIMILARITY {
                        matches.push((at, Evidence::Name));
                        break;
                    }
                    at = self.block_next[at as usize][slot];
                    depth += 1;
                }
            }
        }
        // The strongest evidence names the finding; every match joins the cluster.
        let evidence = matches.iter().map(|(_, e)| *e).min()?;
        let mut root = index;
        for (earlier, _) in matches {
            root = self.union(root, earlier);
        }
        Some(Duplicate {
            first: self.ids.get(root),
            evidence,
        })
    }

    /// The clusters of two or more records found so far, each as its records' source ids in
    /// the order read, the clusters in the order of their first record.
    pub fn clusters(&mut self) -> Vec<Vec<String>> {
        self.cluster_indices()
            .into_iter()
            .map(|c| c.into_iter().map(|i| self.ids.get(i)).collect())
            .collect()
    }

    /// How many clusters of two or more records were found, and the first [`LISTED`] of them,
    /// each as its first [`LISTED_IDS`] source ids: what a report lists.
    pub fn listed_clusters(&mut self) -> (u64, Vec<Vec<String>>) {
        let clusters = self.cluster_indices();
        let listed = clusters
            .iter()
            .take(LISTED)
            .map(|c| {
                c.iter()
                    .take(LISTED_IDS)
                    .map(|&i| self.ids.get(i))
                    .collect()
            })
            .collect();
        (clusters.len() as u64, listed)
    }

    /// [`DuplicateFinder::clusters`] as the records' places in the order observed.
    fn cluster_indices(&mut self) -> Vec<Vec<u32>> {
        // Sizes first, so that only clusters of two or more get a list: at a million records
        // a list per record would cost more than the finder itself.
        let n = self.parent.len() as u32;
        let mut size = vec![0u32; n as usize];
        for i in 0..n {
            let root = self.find(i);
            size[root as usize] += 1;
        }
        let mut at: HashMap<u32, usize> = HashMap::new();
        let mut clusters: Vec<Vec<u32>> = Vec::new();
        for i in 0..n {
            let root = self.find(i);
            if size[root as usize] < 2 {
                continue;
            }
            let slot = *at.entry(root).or_insert_with(|| {
                clusters.push(Vec::new());
                clusters.len() - 1
            });
            clusters[slot].push(i);
        }
        // A root is its cluster's first record, so clusters come in the order of their first.
        clusters
    }

    fn find(&mut self, mut i: u32) -> u32 {
        while self.parent[i as usize] != i {
            let grandparent = self.parent[self.parent[i as usize] as usize];
            self.parent[i as usize] = grandparent;
            i = grandparent;
        }
        i
    }

    /// Joins the clusters of `a` and `b` under the earlier root; returns it.
    fn union(&mut self, a: u32, b: u32) -> u32 {
        let (ra, rb) = (self.find(a), self.find(b));
        let (first, second) = (ra.min(rb), ra.max(rb));
        self.parent[second as usize] = first;
        first
    }
}

/// What decides a record's place when its cluster's survivor is chosen: how many carried
/// fields it fills, and when it was last updated (`i64::MIN` when the source does not say).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rank {
    /// Fields with a value that the sink stores.
    pub filled: u16,
    /// `updated_at`, in milliseconds since the epoch.
    pub updated_at: i64,
}

impl Rank {
    /// The rank of `record`, counting only the fields `carried` says the sink stores.
    pub fn of(record: &Record, carried: impl Fn(&str) -> bool) -> Rank {
        let filled = record
            .fields
            .iter()
            .filter(|(name, value)| has_value(value) && carried(name))
            .count();
        let updated_at = match record.get(field::UPDATED_AT) {
            Some(Value::Timestamp(ms)) => *ms,
            _ => i64::MIN,
        };
        Rank {
            filled: u16::try_from(filled).unwrap_or(u16::MAX),
            updated_at,
        }
    }
}

/// Whether `a` (with source id `a_id`) comes before `b` as a cluster's survivor under `rule`:
/// [`MergeSurvivor::Complete`] ranks by fields filled, then the latest update, then the
/// lowest source id; [`MergeSurvivor::Latest`] by the latest update, then the lowest source id.
/// Total, so the choice never depends on the order read.
pub fn survivor_order(
    rule: MergeSurvivor,
    (a, a_id): (Rank, &str),
    (b, b_id): (Rank, &str),
) -> std::cmp::Ordering {
    let by_update = b.updated_at.cmp(&a.updated_at);
    let first = match rule {
        MergeSurvivor::Complete => b.filled.cmp(&a.filled).then(by_update),
        MergeSurvivor::Latest => by_update,
    };
    first.then_with(|| a_id.cmp(b_id))
}

/// Whether a value fills its field: not empty text, links or stage. A `false` flag is a value
/// (only the opt-outs are joined, by [`join_opt_outs`]).
fn has_value(value: &Value) -> bool {
    match value {
        Value::Text(s) | Value::Reference(s) => !s.trim().is_empty(),
        Value::Links(links) => !links.is_empty(),
        Value::Stage(id) => !id.pipeline.is_empty() || !id.stage.is_empty(),
        _ => true,
    }
}

/// Fills the fields `survivor` leaves empty from `others`, taken in survivor-rank order (the
/// first with a value gives it), and joins the opt-outs of all of them ([`join_opt_outs`]).
pub fn fill(survivor: &mut Record, others: &[Record]) {
    for other in others {
        for (name, value) in &other.fields {
            if has_value(value) && !survivor.get(name).is_some_and(has_value) {
                survivor.fields.insert(name.clone(), value.clone());
            }
        }
    }
    join_opt_outs(survivor, others);
}

/// Sets each opt-out of the object ([`crate::model::OPT_OUTS`]) on `survivor` when any record
/// of the cluster has it (every type any of them unsubscribed from, for an opt-out kept per
/// type): a merge never weakens an opt-out, whichever record survives.
pub fn join_opt_outs(survivor: &mut Record, others: &[Record]) {
    for o in survivor.object.opt_outs() {
        let joined = o.join(
            std::iter::once(&*survivor)
                .chain(others)
                .map(|r| r.get(o.field)),
        );
        if let Some(value) = joined {
            survivor.set(o.field, value);
        }
    }
}

/// One merge, by source ids: the record written and the records merged into it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Merge {
    /// The source id of the record written (filled from the others).
    pub survivor: String,
    /// The source ids of the records merged into it and not written, in survivor-rank order.
    pub merged: Vec<String>,
}

/// The first read of a merged object: finds its clusters ([`DuplicateFinder`]) and keeps
/// each record's [`Rank`] (10 bytes more a record) to choose the survivors.
#[derive(Debug)]
pub struct MergePlanner {
    finder: DuplicateFinder,
    /// Per record, [`Rank::filled`] and [`Rank::updated_at`], apart: a `Rank` is padded to 16.
    filled: Vec<u16>,
    updated_at: Vec<i64>,
    found: BTreeMap<&'static str, u64>,
}

impl MergePlanner {
    /// A planner matching people by every kind of evidence (`full`), or by email only.
    pub fn new(full: bool) -> MergePlanner {
        MergePlanner {
            finder: if full {
                DuplicateFinder::default()
            } else {
                DuplicateFinder::emails_only()
            },
            filled: Vec::new(),
            updated_at: Vec::new(),
            found: BTreeMap::new(),
        }
    }

    /// Looks at the next record read.
    pub fn observe(&mut self, record: &Record, rank: Rank) {
        if let Some(duplicate) = self.finder.observe(record) {
            *self.found.entry(duplicate.evidence.code()).or_default() += 1;
        }
        if self.filled.len() < self.finder.parent.len() {
            reserve_lean(&mut self.filled, 1);
            self.filled.push(rank.filled);
            reserve_lean(&mut self.updated_at, 1);
            self.updated_at.push(rank.updated_at);
        }
    }

    /// The plan: each cluster's survivor under `rule`, and who merges into whom.
    pub fn finish(mut self, rule: MergeSurvivor) -> MergePlan {
        let mut plan = MergePlan {
            found: std::mem::take(&mut self.found),
            ..MergePlan::default()
        };
        let clusters = self.finder.cluster_indices();
        plan.clusters_found = clusters.len() as u64;
        for indices in clusters {
            if plan.read.len() < LISTED {
                let listed = indices.iter().take(LISTED_IDS);
                plan.read
                    .push(listed.map(|&i| self.finder.ids.get(i)).collect());
            }
            if indices.len() > MERGE_MAX {
                plan.too_large += 1;
                continue;
            }
            let read: Vec<String> = indices.iter().map(|&i| self.finder.ids.get(i)).collect();
            let mut ranked: Vec<(Rank, String)> = indices
                .iter()
                .zip(&read)
                .map(|(&i, id)| {
                    let rank = Rank {
                        filled: self.filled[i as usize],
                        updated_at: self.updated_at[i as usize],
                    };
                    (rank, id.clone())
                })
                .collect();
            ranked.sort_by(|a, b| survivor_order(rule, (a.0, &a.1), (b.0, &b.1)));
            let cluster = plan.ranked.len() as u32;
            for id in &read {
                plan.members.insert(id_hash(id), cluster);
            }
            plan.ranked
                .push(ranked.into_iter().map(|(_, id)| id).collect());
        }
        if plan.too_large > 0 {
            tracing::warn!(
                clusters = plan.too_large,
                max = MERGE_MAX,
                "clusters too large to be one person: not merged"
            );
        }
        plan
    }
}

/// The clusters of one object and their survivors, decided before any of its records is
/// written: about 150 bytes per record in a cluster (its id, a hash, its cluster's list),
/// nothing for the others.
#[derive(Debug, Default)]
pub struct MergePlan {
    /// A member's source id (hashed) to its cluster.
    members: HashIndex<u32>,
    /// Per cluster, its members' source ids in survivor-rank order: the survivor first.
    ranked: Vec<Vec<String>>,
    /// The first [`LISTED`] clusters, each as its first [`LISTED_IDS`] source ids, read order.
    read: Vec<Vec<String>>,
    /// Clusters found, listed or not, merged or not.
    clusters_found: u64,
    /// Clusters of more than [`MERGE_MAX`] records: not merged.
    too_large: u64,
    /// Per code (`DUPLICATE_EMAIL`, ...), the records found to be a person read earlier.
    found: BTreeMap<&'static str, u64>,
}

impl MergePlan {
    /// The cluster of the record with source id `id`, if it is in one.
    pub fn cluster_of(&self, id: &str) -> Option<u32> {
        let cluster = self.members.get(id_hash(id))?;
        // A hash is not the id: make sure.
        self.ranked
            .get(cluster as usize)
            .filter(|members| members.iter().any(|m| m == id))
            .map(|_| cluster)
    }

    /// The survivor that the record `id` is merged into; `None` for a survivor or a record in
    /// no cluster.
    pub fn survivor_of(&self, id: &str) -> Option<&str> {
        let survivor = self.ranked[self.cluster_of(id)? as usize].first()?;
        (survivor != id).then_some(survivor.as_str())
    }

    /// The first [`LISTED`] clusters, each as its first [`LISTED_IDS`] records' source ids in
    /// the order read.
    pub fn clusters(&self) -> &[Vec<String>] {
        &self.read
    }

    /// How many clusters were found.
    pub fn clusters_found(&self) -> u64 {
        self.clusters_found
    }

    /// How many clusters were too large to merge ([`MERGE_MAX`]).
    pub fn too_large(&self) -> u64 {
        self.too_large
    }

    /// Per code, the records found to be a person read earlier.
    pub fn found(&self) -> &BTreeMap<&'static str, u64> {
        &self.found
    }

    /// Members' source ids of `cluster` in survivor-rank order.
    fn ranked(&self, cluster: u32) -> &[String] {
        &self.ranked[cluster as usize]
    }
}

/// The merges a run applies, by object: what later objects' references are re-pointed by.
pub type MergePlans = BTreeMap<ObjectType, Arc<MergePlan>>;

/// Re-points each reference of `record` to a merged-away record at its survivor, for every
/// reference field of its schema whose targets were merged; a list of links that then names
/// one record twice keeps it once. Returns how many references were re-pointed.
pub fn repoint(record: &mut Record, plans: &MergePlans) -> usize {
    let mut moved = 0;
    for edge in record.object.references() {
        if !edge.targets.iter().any(|t| plans.contains_key(t)) {
            continue;
        }
        match record.fields.get_mut(edge.field) {
            Some(Value::Reference(id)) => {
                let plan = edge.targets.first().and_then(|t| plans.get(t));
                if let Some(survivor) = plan.and_then(|p| p.survivor_of(id)) {
                    *id = survivor.to_owned();
                    moved += 1;
                }
            }
            Some(Value::Links(links)) => {
                let mut changed = false;
                for link in links.iter_mut() {
                    let plan = plans.get(&link.object);
                    if let Some(survivor) = plan.and_then(|p| p.survivor_of(&link.id)) {
                        link.id = survivor.to_owned();
                        moved += 1;
                        changed = true;
                    }
                }
                if changed {
                    let mut seen = HashSet::new();
                    links.retain(|l| seen.insert((l.object, l.id.clone())));
                }
            }
            _ => {}
        }
    }
    moved
}

/// A cluster merged: its survivor filled from the others (absent when the survivor was not
/// read), and the records merged into it, each with the tag it was taken with.
#[derive(Debug)]
pub struct Merged<T> {
    /// The survivor's source id.
    pub survivor_id: String,
    /// The survivor, filled, with its tag.
    pub survivor: Option<(Record, T)>,
    /// The merged-away records' source ids and tags, in survivor-rank order.
    pub merged: Vec<(String, T)>,
}

/// What [`Merger::take`] did with a record.
#[derive(Debug)]
pub enum Taken<T> {
    /// In no cluster: goes on as it is.
    Alone(Record, T),
    /// Held until the rest of its cluster is read.
    Held,
    /// The last record of its cluster: the cluster is merged.
    Merged(Merged<T>),
    /// A record of a cluster already merged, or held, read again (the source returned it
    /// twice).
    Again(Record, T),
}

/// The second read of a merged object: holds each cluster's records until its last one is
/// read, then merges them. Holds only records of clusters, and only while their cluster is
/// open: at most the records between a cluster's first and last record.
#[derive(Debug)]
pub struct Merger<T> {
    plan: Arc<MergePlan>,
    held: HashMap<u32, Vec<(Record, T)>>,
    done: Vec<bool>,
}

impl<T> Merger<T> {
    /// A merger following `plan`.
    pub fn new(plan: Arc<MergePlan>) -> Merger<T> {
        let done = vec![false; plan.ranked.len()];
        Merger {
            plan,
            held: HashMap::new(),
            done,
        }
    }

    /// Takes the next record read, with `tag` (where it came from).
    pub fn take(&mut self, record: Record, tag: T) -> Taken<T> {
        let Some(cluster) = self.plan.cluster_of(&record.source_id) else {
            return Taken::Alone(record, tag);
        };
        if self.done[cluster as usize] {
            return Taken::Again(record, tag);
        }
        let held = self.held.entry(cluster).or_default();
        if held.iter().any(|(r, _)| r.source_id == record.source_id) {
            return Taken::Again(record, tag);
        }
        held.push((record, tag));
        if held.len() < self.plan.ranked(cluster).len() {
            return Taken::Held;
        }
        Taken::Merged(self.merge(cluster))
    }

    /// The clusters not read whole (a record missing from the second read), merged from the
    /// records read, in the order of the plan.
    pub fn finish(&mut self) -> Vec<Merged<T>> {
        let mut open: Vec<u32> = self.held.keys().copied().collect();
        open.sort_unstable();
        open.into_iter().map(|c| self.merge(c)).collect()
    }

    fn merge(&mut self, cluster: u32) -> Merged<T> {
        self.done[cluster as usize] = true;
        let mut held = self.held.remove(&cluster).unwrap_or_default();
        let ranked = self.plan.ranked(cluster);
        let place = |id: &str| ranked.iter().position(|m| m == id).unwrap_or(usize::MAX);
        held.sort_by_key(|(r, _)| place(&r.source_id));
        let survivor_read = held
            .first()
            .is_some_and(|(r, _)| ranked.first() == Some(&r.source_id));
        let mut records = held.into_iter();
        let survivor = if survivor_read { records.next() } else { None };
        let (others, tags): (Vec<Record>, Vec<T>) = records.unzip();
        let survivor = survivor.map(|(mut record, tag)| {
            fill(&mut record, &others);
            (record, tag)
        });
        let merged = others.into_iter().map(|r| r.source_id).zip(tags).collect();
        Merged {
            survivor_id: ranked.first().cloned().unwrap_or_default(),
            survivor,
            merged,
        }
    }
}

/// How many strings share one start offset in [`Strings`]: reading one decodes at most this
/// many.
const GROUP: usize = 16;

/// Strings end to end, front-coded: each as the length of the prefix it shares with the one
/// before, then the rest. Source ids read in order share most of their characters
/// (`0035g00000AbCdE`, `0035g00000AbCdF`), so an 18-character id costs about five bytes; a
/// start offset is kept only for every [`GROUP`]th string.
#[derive(Debug, Default)]
struct Strings {
    bytes: Vec<u8>,
    /// Where each group of strings starts in `bytes`.
    starts: Vec<usize>,
    len: usize,
    /// The string pushed last.
    last: Vec<u8>,
}

impl Strings {
    fn push(&mut self, s: &str) {
        let s = s.as_bytes();
        let shared = if self.len.is_multiple_of(GROUP) {
            reserve_lean(&mut self.starts, 1);
            self.starts.push(self.bytes.len());
            0
        } else {
            self.last.iter().zip(s).take_while(|(a, b)| a == b).count()
        };
        reserve_lean(&mut self.bytes, s.len() - shared + 10);
        push_varint(&mut self.bytes, shared);
        push_varint(&mut self.bytes, s.len() - shared);
        self.bytes.extend_from_slice(&s[shared..]);
        self.last.clear();
        self.last.extend_from_slice(s);
        self.len += 1;
    }

    /// String `i`, decoded into `buf`.
    fn get_into<'a>(&self, i: u32, buf: &'a mut Vec<u8>) -> &'a str {
        let i = i as usize;
        buf.clear();
        let mut at = self.starts[i / GROUP];
        for _ in 0..=i % GROUP {
            let shared = read_varint(&self.bytes, &mut at);
            let rest = read_varint(&self.bytes, &mut at);
            buf.truncate(shared);
            buf.extend_from_slice(&self.bytes[at..at + rest]);
            at += rest;
        }
        // Whole strings were pushed, so the bytes are valid UTF-8.
        std::str::from_utf8(buf).unwrap_or_default()
    }

    /// String `i`.
    fn get(&self, i: u32) -> String {
        self.get_into(i, &mut Vec::new()).to_owned()
    }
}

/// `n` in seven-bit groups, low first, the high bit set on all but the last: one byte under 128.
fn push_varint(bytes: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        bytes.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    bytes.push(n as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> usize {
    let (mut n, mut shift) = (0usize, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

/// A person's name for comparing: first and last name, lower-case, letters and digits only,
/// single spaces. Empty when the record has neither.
fn folded_name(record: &Record) -> String {
    let mut name = String::new();
    for part in [field::FIRST_NAME, field::LAST_NAME]
        .iter()
        .filter_map(|f| record.text(f))
    {
        for word in part
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            if !name.is_empty() {
                name.push(' ');
            }
            name.extend(word.chars().flat_map(char::to_lowercase));
        }
    }
    name
}

/// The hash of a phone number's last [`PHONE_DIGITS`] digits; `None` for shorter numbers.
fn phone_key(phone: &str) -> Option<u64> {
    // Digits after an extension mark are not the number's.
    let number = phone.split(['x', 'X', '#', ';']).next().unwrap_or_default();
    let digits: Vec<u8> = number.bytes().filter(u8::is_ascii_digit).collect();
    let tail = digits.get(digits.len().checked_sub(PHONE_DIGITS)?..)?;
    std::str::from_utf8(tail)
        .ok()
        .map(|tail| key(Key::Phone, &[tail]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectType;

    fn person(
        id: &str,
        first: &str,
        last: &str,
        email: &str,
        phone: &str,
        company: &str,
    ) -> Record {
        let mut r = Record::new(ObjectType::CONTACTS, id);
        for (f, v) in [
            (field::FIRST_NAME, first),
            (field::LAST_NAME, last),
            (field::EMAIL, email),
            (field::PHONE, phone),
        ] {
            if !v.is_empty() {
                r.set(f, Value::Text(v.into()));
            }
        }
        if !company.is_empty() {
            r.set(field::COMPANY, Value::Reference(company.into()));
        }
        r
    }

    #[test]
    fn each_kind_of_evidence_joins_and_the_first_record_names_the_cluster() {
        let mut f = DuplicateFinder::default();
        let seen =
            |f: &mut DuplicateFinder, r: Record| f.observe(&r).map(|d| (d.first, d.evidence));
        assert_eq!(
            seen(
                &mut f,
                person(
                    "1",
                    "Jane",
                    "Doe",
                    "jane@acme.example",
                    "+44 20 7946 0123",
                    "c1"
                )
            ),
            None
        );
        assert_eq!(
            seen(
                &mut f,
                person("2", "J", "Doe", "JANE@acme.example ", "", "")
            ),
            Some(("1".into(), Evidence::Email))
        );
        assert_eq!(
            seen(
                &mut f,
                person("3", "Jane", "Doe-Smith", "", "020 7946 0123", "")
            ),
            Some(("1".into(), Evidence::Phone))
        );
        assert_eq!(
            seen(
                &mut f,
                person("4", "Jnae", "Doe", "j.doe@other.example", "", "c1")
            ),
            Some(("1".into(), Evidence::Name))
        );
        // A colleague on the switchboard number, a namesake elsewhere: other people.
        assert_eq!(
            seen(
                &mut f,
                person("5", "Omar", "Haddad", "", "+44 20 7946 0123", "c1")
            ),
            None
        );
        assert_eq!(seen(&mut f, person("6", "Jane", "Doe", "", "", "c2")), None);
        assert_eq!(seen(&mut f, person("7", "", "", "", "", "")), None);
        assert_eq!(f.clusters(), vec![vec!["1", "2", "3", "4"]]);
    }

    #[test]
    fn clusters_joined_late_keep_the_earliest_first() {
        let mut f = DuplicateFinder::default();
        f.observe(&person("a", "Ann", "Lee", "ann@x.example", "", ""));
        f.observe(&person(
            "b",
            "Bo",
            "Kim",
            "bo@x.example",
            "+1 415 555 0101",
            "",
        ));
        // Shares b's phone with a like name, and a's address: both clusters become one.
        let d = f.observe(&person(
            "c",
            "Bo",
            "Kim",
            "ann@x.example",
            "415 555 0101",
            "",
        ));
        assert_eq!(d.map(|d| d.first), Some("a".into()));
        assert_eq!(f.clusters(), vec![vec!["a", "b", "c"]]);
    }

    /// A plan of `people` (each with its `updated_at`) under `rule`.
    fn plan(rule: MergeSurvivor, people: &[(Record, i64)]) -> MergePlan {
        let mut planner = MergePlanner::new(true);
        for (record, updated) in people {
            let mut record = record.clone();
            record.set(field::UPDATED_AT, Value::Timestamp(*updated));
            planner.observe(&record, Rank::of(&record, |_| true));
        }
        planner.finish(rule)
    }

    #[test]
    fn the_survivor_is_the_most_complete_or_the_latest_and_ties_are_decided_by_id() {
        let sparse = person("b", "Jane", "Doe", "jane@acme.example", "", "");
        let full = person(
            "c",
            "Jane",
            "Doe",
            "jane@acme.example",
            "+1 415 555 0101",
            "c1",
        );
        let people = [(sparse.clone(), 300), (full.clone(), 100)];
        let complete = plan(MergeSurvivor::Complete, &people);
        assert_eq!(complete.survivor_of("b"), Some("c"), "most fields filled");
        assert_eq!(
            complete.survivor_of("c"),
            None,
            "the survivor merges into nobody"
        );
        let latest = plan(MergeSurvivor::Latest, &people);
        assert_eq!(latest.survivor_of("c"), Some("b"), "updated last");
        // Equal fields: the later update; equal updates too: the lowest source id, whatever
        // the order read.
        let a = person("a", "Jane", "Doe", "jane@acme.example", "", "");
        let tie = plan(
            MergeSurvivor::Complete,
            &[(sparse.clone(), 5), (a.clone(), 9)],
        );
        assert_eq!(tie.survivor_of("b"), Some("a"));
        for order in [[(sparse.clone(), 5), (a.clone(), 5)], [(a, 5), (sparse, 5)]] {
            for rule in [MergeSurvivor::Complete, MergeSurvivor::Latest] {
                assert_eq!(plan(rule, &order).survivor_of("b"), Some("a"), "{rule:?}");
            }
        }
        assert_eq!(complete.clusters(), [vec!["b".to_owned(), "c".to_owned()]]);
        assert_eq!(complete.survivor_of("nobody"), None);
    }

    #[test]
    fn the_survivor_is_filled_in_rank_order_and_keeps_every_opt_out() {
        let mut survivor = person("1", "Jane", "Doe", "jane@acme.example", "", "");
        survivor.set(field::CITY, Value::Text("  ".into())); // blank: filled
        survivor.set(field::EMAIL_OPT_OUT, Value::Bool(false));
        let mut second = person("2", "Janet", "", "", "+1 415 555 0101", "");
        second.set(field::CITY, Value::Text("Leeds".into()));
        let mut third = person("3", "", "Doe", "", "+1 415 555 0199", "c9");
        third.set(field::CITY, Value::Text("York".into()));
        third.set(field::EMAIL_OPT_OUT, Value::Bool(true));
        fill(&mut survivor, &[second, third]);
        let text = |f| survivor.text(f).map(str::to_owned);
        assert_eq!(text(field::FIRST_NAME).as_deref(), Some("Jane"), "kept");
        assert_eq!(
            text(field::PHONE).as_deref(),
            Some("+1 415 555 0101"),
            "second first"
        );
        assert_eq!(text(field::CITY).as_deref(), Some("Leeds"));
        assert_eq!(text(field::COMPANY).as_deref(), Some("c9"));
        assert_eq!(
            survivor.get(field::EMAIL_OPT_OUT),
            Some(&Value::Bool(true)),
            "an opt-out of any record of the cluster is the survivor's"
        );
        // No opt-out anywhere: none is invented.
        let mut clean = person("4", "Al", "Fox", "", "", "");
        fill(&mut clean, &[person("5", "Al", "Fox", "", "", "")]);
        assert_eq!(clean.get(field::EMAIL_OPT_OUT), None);
    }

    #[test]
    fn opt_outs_are_joined_for_every_listed_flag_of_the_schema() {
        for o in ObjectType::CONTACTS.opt_outs() {
            let name = o.field;
            let spec = ObjectType::CONTACTS.field(name).expect("a contact field");
            assert_eq!(spec.ty, o.field_type(), "{name}");
            let (held, more) = match o.kind {
                crate::model::OptOutKind::Flag => (Value::Bool(true), Value::Bool(true)),
                crate::model::OptOutKind::Names => {
                    (Value::Text("Sales".into()), Value::Text("News".into()))
                }
            };
            let mut survivor = person("1", "Jane", "Doe", "", "", "");
            survivor.set_named(name, more.clone());
            let mut other = person("2", "Jane", "Doe", "", "", "");
            other.set_named(name, held.clone());
            join_opt_outs(&mut survivor, &[other]);
            let joined = o.join([Some(&more), Some(&held)]);
            assert_eq!(survivor.get(name), joined.as_ref(), "{name}");
            assert!(o.holds(survivor.get(name)), "{name}");
        }
    }

    #[test]
    fn references_to_merged_away_records_point_at_the_survivor_once() {
        use crate::model::Link;
        let people = [
            (person("k", "Jane", "Doe", "jane@acme.example", "", ""), 1),
            (person("m", "Jane", "Doe", "jane@acme.example", "", "c1"), 2),
            (
                person("o", "Omar", "Haddad", "omar@acme.example", "", ""),
                3,
            ),
        ];
        let plans: MergePlans = [(
            ObjectType::CONTACTS,
            Arc::new(plan(MergeSurvivor::Complete, &people)),
        )]
        .into_iter()
        .collect();
        let link = |object, id: &str| Link {
            object,
            id: id.into(),
        };
        let mut deal = Record::new(ObjectType::DEALS, "d1");
        deal.set(
            field::CONTACTS,
            Value::Links(vec![
                link(ObjectType::CONTACTS, "k"),
                link(ObjectType::CONTACTS, "o"),
                link(ObjectType::CONTACTS, "m"),
            ]),
        );
        deal.set(field::COMPANY, Value::Reference("k".into())); // a company: not merged
        assert_eq!(repoint(&mut deal, &plans), 1);
        assert_eq!(
            deal.get(field::CONTACTS),
            Some(&Value::Links(vec![
                link(ObjectType::CONTACTS, "m"),
                link(ObjectType::CONTACTS, "o"),
            ])),
        );
        assert_eq!(deal.text(field::COMPANY), Some("k"));
        let mut note = Record::new(ObjectType::NOTES, "n1");
        let parents = vec![
            link(ObjectType::DEALS, "d1"),
            link(ObjectType::CONTACTS, "k"),
        ];
        note.set(field::PARENTS, Value::Links(parents));
        assert_eq!(repoint(&mut note, &plans), 1);
        assert_eq!(
            note.get(field::PARENTS),
            Some(&Value::Links(vec![
                link(ObjectType::DEALS, "d1"),
                link(ObjectType::CONTACTS, "m"),
            ])),
        );
    }

    #[test]
    fn the_merger_holds_a_cluster_until_its_last_record_and_merges_it() {
        let people = [
            (person("1", "Jane", "Doe", "jane@acme.example", "", ""), 1),
            (person("2", "Bo", "Kim", "bo@x.example", "", ""), 1),
            (
                person(
                    "3",
                    "Jane",
                    "Doe",
                    "jane@acme.example",
                    "+1 415 555 0101",
                    "c1",
                ),
                1,
            ),
        ];
        let plan = Arc::new(plan(MergeSurvivor::Complete, &people));
        let mut merger = Merger::new(Arc::clone(&plan));
        let take = |m: &mut Merger<u64>, i: usize, tag| m.take(people[i].0.clone(), tag);
        assert!(matches!(take(&mut merger, 0, 10), Taken::Held));
        assert!(matches!(take(&mut merger, 1, 11), Taken::Alone(r, 11) if r.source_id == "2"));
        let Taken::Merged(m) = take(&mut merger, 2, 12) else {
            panic!("the cluster is whole");
        };
        assert_eq!(m.survivor_id, "3");
        let (survivor, tag) = m.survivor.expect("the survivor was read");
        assert_eq!((survivor.source_id.as_str(), tag), ("3", 12));
        assert_eq!(m.merged, vec![("1".to_owned(), 10)]);
        assert!(
            matches!(take(&mut merger, 0, 13), Taken::Again(..)),
            "read twice"
        );
        assert!(merger.finish().is_empty());

        // The survivor gone by the second read: the others are merged, nothing is written.
        let mut merger = Merger::new(plan);
        assert!(matches!(take(&mut merger, 0, 20), Taken::Held));
        let open = merger.finish();
        assert_eq!(open.len(), 1);
        assert!(open[0].survivor.is_none());
        assert_eq!(open[0].merged, vec![("1".to_owned(), 20)]);
    }

    #[test]
    fn a_cluster_too_large_to_be_one_person_is_not_merged_and_listing_is_bounded() {
        let people: Vec<(Record, i64)> = (0..=MERGE_MAX)
            .map(|i| {
                (
                    person(&format!("{i:03}"), "", "", "info@acme.example", "", ""),
                    1,
                )
            })
            .collect();
        let big = plan(MergeSurvivor::Complete, &people);
        assert_eq!((big.clusters_found(), big.too_large()), (1, 1));
        assert_eq!(big.survivor_of("001"), None, "written as it is");
        assert_eq!(big.clusters()[0].len(), LISTED_IDS, "the first ids listed");
        let small = plan(MergeSurvivor::Complete, &people[..MERGE_MAX]);
        assert_eq!((small.clusters_found(), small.too_large()), (1, 0));
        assert!(small.survivor_of("001").is_some());
    }

    #[test]
    fn email_only_finders_ignore_phones_and_names() {
        let mut f = DuplicateFinder::emails_only();
        f.observe(&person(
            "1",
            "Jane",
            "Doe",
            "jane@acme.example",
            "+1 415 555 0101",
            "c1",
        ));
        let phone = person("2", "Jane", "Doe", "", "+1 415 555 0101", "c1");
        assert_eq!(f.observe(&phone), None);
        let email = person("3", "", "", "JANE@acme.example", "", "");
        assert_eq!(f.observe(&email).map(|d| d.evidence), Some(Evidence::Email));
    }

    #[test]
    fn front_coded_strings_read_back_as_pushed() {
        let long = "ü".repeat(100); // 200 bytes: lengths over one varint byte
        let mut pushed: Vec<String> = (0..100).map(|i| format!("003{i:015}")).collect();
        pushed.extend(["", "Jürgen", "Jürg", long.as_str(), "0035g", "x"].map(String::from));
        let mut strings = Strings::default();
        for s in &pushed {
            strings.push(s);
        }
        for (i, s) in pushed.iter().enumerate() {
            assert_eq!(&strings.get(i as u32), s, "string {i}");
        }
    }

    #[test]
    fn phone_keys_compare_the_last_nine_digits_before_an_extension() {
        assert_eq!(phone_key("+44 20 7946 0123"), phone_key("020 7946 0123"));
        assert_eq!(
            phone_key("+1 (415) 555-0101 x 12"),
            phone_key("415.555.0101")
        );
        assert_ne!(phone_key("+1 415 555 0101"), phone_key("+1 415 555 0102"));
        assert_eq!(phone_key("12345"), None);
    }
}
