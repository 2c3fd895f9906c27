//! Scheduled syncs: watermarks, the state file that keeps them between runs, and its lock.
//!
//! A sync reads, per object, only the records changed since the object's watermark: the point
//! of the source's change history up to which every change was moved. The source says where
//! the next watermark may be ([`crate::Source::sync_point`]): its own clock when the read
//! starts, less an overlap for clock skew and for writes that commit after their timestamp. The
//! next read starts there (`>=`), so a change is read again rather than missed; a repeat whose
//! digest equals the one the last sync wrote is not written again (`unchanged_skipped`), and
//! the upsert absorbs the others, which count as updated, never created.
//!
//! The state file holds, per object, the watermark (and room for a vendor's delta token and a
//! deletions cursor), the digests of the records the next read repeats through its overlap (so
//! that those still as written are not written again), and which configuration it belongs to.
//! It holds no record, no field value and no secret: ids and hashes. It is replaced atomically (`<path>.tmp`, fsync, rename, fsync of the
//! directory) after each object settled, so a run killed at any point leaves a valid state: the
//! one before the object under way. An advisory lock on `<path>.lock`, which the kernel drops
//! when the process dies, keeps two syncs off one state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::model::{ObjectType, format_timestamp, parse_timestamp};
use crate::state_store::{StateStore, StoreError};

/// The state format this build writes. Version 2 added each object's record digests
/// ([`ObjectState::digests`]).
pub const STATE_VERSION: u32 = 2;

/// The oldest state format this build reads: a version 1 state has no digests, so its first
/// sync skips nothing as unchanged.
pub const OLDEST_STATE_VERSION: u32 = 1;

/// The bytes of a record's SHA-256 digest ([`crate::checksum::record_digest`]) the state keeps:
/// 128 bits, so two different records of one object share a hash with odds of 2^-64 even
/// among billions, and a record's entry in the state file is 48 bytes plus its id (32 hex
/// digits, quotes and indentation).
pub const RECORD_HASH_BYTES: usize = 16;

/// A record's digest as the state keeps it: the first [`RECORD_HASH_BYTES`] of the SHA-256
/// digest the verification computes of what was written, written as hex. A hash, never a
/// value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RecordHash(pub [u8; RECORD_HASH_BYTES]);

impl RecordHash {
    /// The hash kept of `digest`.
    pub fn of(digest: &crate::checksum::Digest) -> RecordHash {
        let mut hash = [0u8; RECORD_HASH_BYTES];
        hash.copy_from_slice(&digest.0[..RECORD_HASH_BYTES]);
        RecordHash(hash)
    }
}

impl Serialize for RecordHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for RecordHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut hash = [0u8; RECORD_HASH_BYTES];
        hex::decode_to_slice(&text, &mut hash).map_err(|_| {
            serde::de::Error::custom(format!(
                "a record digest is not {} hex digits",
                RECORD_HASH_BYTES * 2
            ))
        })?;
        Ok(RecordHash(hash))
    }
}

/// A point in a source's change history: an incremental read returns the records changed at or
/// after it. Vendor-neutral, and no customer data: a UTC instant and, for sources that break
/// ties by id, the id of the last record read at that instant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "RawWatermark", into = "RawWatermark")]
pub struct Watermark {
    /// The instant, in milliseconds since the Unix epoch, UTC.
    pub at_ms: i64,
    /// A tie-breaker within `at_ms` (a record id), for sources that page on it; `None` when
    /// the source reads every record of the instant again.
    pub after_id: Option<String>,
}

/// How a watermark is written in the state file and the report: RFC 3339 text.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatermark {
    at: String,
    #[serde(default)]
    after_id: Option<String>,
}

impl TryFrom<RawWatermark> for Watermark {
    type Error = String;

    fn try_from(raw: RawWatermark) -> Result<Self, Self::Error> {
        let at_ms = parse_timestamp(&raw.at)
            .filter(|_| raw.at.contains('T'))
            .ok_or_else(|| "a watermark's `at` is not an RFC 3339 timestamp".to_owned())?;
        Ok(Watermark {
            at_ms,
            after_id: raw.after_id,
        })
    }
}

impl From<Watermark> for RawWatermark {
    fn from(w: Watermark) -> Self {
        RawWatermark {
            at: format_timestamp(w.at_ms),
            after_id: w.after_id,
        }
    }
}

impl Watermark {
    /// The watermark at `at_ms`, with no tie-breaker.
    pub fn at(at_ms: i64) -> Watermark {
        Watermark {
            at_ms,
            after_id: None,
        }
    }

    /// Where the next read may start when a read begins at the vendor's clock `vendor_now_ms`:
    /// that instant less `overlap`, truncated to the whole second (vendors filter on seconds;
    /// earlier is always safe, later never is).
    pub fn settled_before(vendor_now_ms: i64, overlap: std::time::Duration) -> Watermark {
        let overlap_ms = i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX);
        let at = vendor_now_ms.saturating_sub(overlap_ms);
        Watermark::at(at - at.rem_euclid(1000))
    }

    /// The instant as RFC 3339 UTC with milliseconds (`2026-12-06T16:47:33.000Z`).
    pub fn to_rfc3339(&self) -> String {
        format_timestamp(self.at_ms)
    }
}

/// The watermark an object keeps after a sync: `point` (the source's sync point, taken before
/// the read) when every record read settled (written and verified), else the `previous` one,
/// so that the next sync reads the same changes again. Never anything later than `point`.
pub fn next_watermark(
    previous: Option<&Watermark>,
    point: &Watermark,
    settled: bool,
) -> Option<Watermark> {
    if settled {
        Some(point.clone())
    } else {
        previous.cloned()
    }
}

/// What one object's sync did with its watermark, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// `"full"` (no watermark yet: every record was read) or `"incremental"`.
    pub read: &'static str,
    /// The watermark the read started from (RFC 3339), `None` for a full read.
    pub watermark_before: Option<String>,
    /// The watermark the state holds now (RFC 3339): the new one when the object settled,
    /// else the one before.
    pub watermark_after: Option<String>,
    /// Whether this run moved the watermark (and saved the state).
    pub advanced: bool,
    /// Whether every record the object read settled: the watermark is then the sync point,
    /// moved or (a sync within the same second as the last) already there.
    pub settled: bool,
    /// How deletions were learnt (`[sync] deletes` other than `"ignore"`): `"source"` (the
    /// vendor's deletion log), `"id_sets"` (the source's ids compared with the sink's), or
    /// `"first_sync"` (nothing to learn yet); absent when deletions are ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<&'static str>,
    /// The deletions cursor the state holds now (RFC 3339), when deletions are carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions_after: Option<String>,
}

/// The saved state of the syncs of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    /// The format version.
    pub version: u32,
    /// The source vendor it belongs to, for messages.
    pub source: String,
    /// The sink vendor it belongs to, for messages.
    pub sink: String,
    /// The source's account as its vendor names it (`org id 00D…`), once known.
    #[serde(default)]
    pub source_account: Option<String>,
    /// The sink's account as its vendor names it (`portal id 123`), once known.
    #[serde(default)]
    pub sink_account: Option<String>,
    /// A hash of the configuration it belongs to (accounts, objects, field maps): a state is
    /// never used by another.
    pub fingerprint: String,
    /// Per object type, where its syncs got to.
    pub objects: BTreeMap<ObjectType, ObjectState>,
}

/// Where the syncs of one object type got to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectState {
    /// Every change before it was moved; `None`: no sync settled yet (the next one reads all).
    pub watermark: Option<Watermark>,
    /// A vendor's change-tracking token (Dataverse's delta link), for sources that have one.
    #[serde(default)]
    pub delta_token: Option<String>,
    /// Every deletion before it was carried (`[sync] deletes` other than `"ignore"`): where the
    /// next read of the source's deletions starts. `None`: the object's watermark serves.
    #[serde(default)]
    pub deletions_cursor: Option<Watermark>,
    /// When the watermark last moved, by ferry's clock (RFC 3339), for people reading the file.
    #[serde(default)]
    pub synced_at: Option<String>,
    /// By source id, the digest of each record the last settled sync wrote and verified (or
    /// found unchanged) whose modified time is at or after the watermark: the records the next
    /// read repeats through its overlap. A record read again with the same digest is not
    /// written again. Ids and hashes only; empty in a version 1 state.
    #[serde(default)]
    pub digests: BTreeMap<String, RecordHash>,
}

/// Why a sync state could not be used. Names where it is kept, never its content.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing the file failed.
    #[error("sync state {path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state is not one this build can read.
    #[error("{place} is not a ferry sync state this version can read ({detail}); {remedy}")]
    Unreadable {
        /// Where the state is kept (`sync state ferry-sync-state.json`).
        place: String,
        /// What is wrong with it.
        detail: String,
        /// How to start again.
        remedy: &'static str,
    },
    /// The state belongs to another source, sink or configuration.
    #[error(
        "{place} belongs to {detail}; using it would skip changes this configuration never \
         moved. {remedy}"
    )]
    OtherSync {
        /// Where the state is kept.
        place: String,
        /// Whose it is.
        detail: String,
        /// How to start again.
        remedy: &'static str,
    },
    /// Another process holds the state's lock.
    #[error(
        "sync state {path} is in use: another `ferry sync` holds its lock ({lock}); wait for it \
         to finish (the lock is released when that process ends, even if it is killed)"
    )]
    Locked {
        /// The state file.
        path: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// Another run holds the lease of a state kept in the sink.
    #[error("the sync state in the sink is in use: {0}")]
    LeaseHeld(crate::state_store::LeaseError),
    /// The store of a state kept in the sink failed, or the state does not fit in it.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How to start again from a state file that cannot be used.
const FILE_REMEDY_UNREADABLE: &str = "move it away to start again with a full sync";
/// How to start again from a state file of another sync.
const FILE_REMEDY_OTHER: &str =
    "Name another `sync.state` file, or move this one away to start with a full sync";
/// How to start again from a state kept in the sink that cannot be used.
const SINK_REMEDY: &str = "delete that environment variable (definition and value) in the sink to \
     start again with a full sync";

/// A sync state being kept by a sync run, in a file or in the sink ([`StateStore`]). Saved
/// whole, replacing the previous one only if no other writer replaced it since it was read.
#[derive(Debug)]
pub struct StateFile {
    store: Box<dyn StateStore>,
    path: Option<PathBuf>,
    version: Mutex<Option<String>>,
    state: Mutex<SyncState>,
    /// The lease guarding a state in the sink: once another run took it, this one saves nothing.
    lease: Option<std::sync::Arc<crate::state_store::Lease>>,
}

impl StateFile {
    /// Opens the state at `path` for the configuration with `fingerprint` syncing `source` to
    /// `sink`: a missing file is a first sync (no watermarks); a file of another version, pair
    /// or configuration is refused.
    pub fn open(
        path: &Path,
        fingerprint: &str,
        source: &str,
        sink: &str,
    ) -> Result<StateFile, StateError> {
        let store = crate::state_store::FileStore::new(path);
        let stored = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StateError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
            Ok(bytes) => Some(bytes),
        };
        let mut file = Self::from_stored(
            Box::new(store),
            stored.as_deref(),
            None,
            fingerprint,
            source,
            sink,
        )?;
        file.path = Some(path.to_owned());
        Ok(file)
    }

    /// Opens the state kept in `store` (a sink's, [`crate::Sink::state_store`]), like
    /// [`StateFile::open`]: none yet is a first sync; one of another pair or configuration is
    /// refused. Its saves are compact JSON that must fit the store ([`StateFile::save`]).
    pub fn open_in(
        store: Box<dyn StateStore>,
        fingerprint: &str,
        source: &str,
        sink: &str,
    ) -> Result<StateFile, StateError> {
        let stored = store.read()?;
        let (bytes, version) = match &stored {
            Some(s) => (Some(s.text.as_bytes()), Some(s.version.clone())),
            None => (None, None),
        };
        Self::from_stored(store, bytes, version, fingerprint, source, sink)
    }

    fn from_stored(
        store: Box<dyn StateStore>,
        bytes: Option<&[u8]>,
        version: Option<String>,
        fingerprint: &str,
        source: &str,
        sink: &str,
    ) -> Result<StateFile, StateError> {
        let place = store.name();
        let in_file = store.capacity().is_none();
        let (unreadable_remedy, other_remedy) = if in_file {
            (FILE_REMEDY_UNREADABLE, FILE_REMEDY_OTHER)
        } else {
            (SINK_REMEDY, SINK_REMEDY)
        };
        let state = match bytes {
            None => SyncState {
                version: STATE_VERSION,
                source: source.to_owned(),
                sink: sink.to_owned(),
                fingerprint: fingerprint.to_owned(),
                ..SyncState::default()
            },
            Some(bytes) => {
                let unreadable = |detail: String| StateError::Unreadable {
                    place: place.clone(),
                    detail,
                    remedy: unreadable_remedy,
                };
                let version: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
                    unreadable(format!(
                        "not valid JSON at line {} column {}",
                        e.line(),
                        e.column()
                    ))
                })?;
                match version.get("version").and_then(serde_json::Value::as_u64) {
                    Some(v)
                        if (u64::from(OLDEST_STATE_VERSION)..=u64::from(STATE_VERSION))
                            .contains(&v) => {}
                    Some(v) => {
                        return Err(unreadable(format!(
                            "format version {v}, expected {OLDEST_STATE_VERSION} to {STATE_VERSION}"
                        )));
                    }
                    None => return Err(unreadable("no format version".into())),
                }
                let mut saved: SyncState = serde_json::from_value(version).map_err(|e| {
                    // serde names the field; the value is a watermark or an id, not customer
                    // data, but the message stays generic like the checkpoint's.
                    unreadable(crate::kit::without_value(&e.to_string()))
                })?;
                if saved.source != source || saved.sink != sink {
                    return Err(StateError::OtherSync {
                        place: place.clone(),
                        remedy: other_remedy,
                        detail: format!(
                            "a sync from {} to {}, and this configuration syncs {source} to {sink}",
                            saved.source, saved.sink
                        ),
                    });
                }
                if saved.fingerprint != fingerprint {
                    return Err(StateError::OtherSync {
                        place: place.clone(),
                        remedy: other_remedy,
                        detail: "another configuration (the source or sink account, the objects \
                                 or the field mappings changed)"
                            .into(),
                    });
                }
                // An older state is written back in this build's format.
                saved.version = STATE_VERSION;
                saved
            }
        };
        Ok(StateFile {
            store,
            path: None,
            version: Mutex::new(version),
            state: Mutex::new(state),
            lease: None,
        })
    }

    /// The state file's path; `None` for a state kept in the sink.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the state is kept, for messages and the plan.
    pub fn place(&self) -> String {
        self.store.name()
    }

    /// Checks the accounts the credentials reach now (as the vendors name them, `None` when a
    /// vendor cannot say) against those the state was written for, and records them in a state
    /// that has none yet: a state is never used for another account, even when the config's
    /// text is the same (a credential reference that now names another org, say).
    pub fn check_accounts(
        &self,
        source: Option<&crate::AccountId>,
        sink: Option<&crate::AccountId>,
    ) -> Result<(), StateError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        for (role, vendor, now, saved) in [
            ("source", &state.source, source, &mut state.source_account),
            ("sink", &state.sink, sink, &mut state.sink_account),
        ] {
            let Some(now) = now.map(|a| format!("{} {}", a.kind, a.id)) else {
                continue;
            };
            match saved {
                Some(was) if *was != now => {
                    return Err(StateError::OtherSync {
                        place: self.store.name(),
                        remedy: if self.path.is_some() {
                            FILE_REMEDY_OTHER
                        } else {
                            SINK_REMEDY
                        },
                        detail: format!(
                            "the {role} {vendor} account {was}, and the {role}'s credentials now \
                             reach {now}"
                        ),
                    });
                }
                Some(_) => {}
                None => *saved = Some(now),
            }
        }
        Ok(())
    }

    /// The watermark of `object`: where its next read starts; `None` for a full read.
    pub fn since(&self, object: ObjectType) -> Option<Watermark> {
        self.lock()
            .objects
            .get(&object)
            .and_then(|o| o.watermark.clone())
    }

    /// Moves the watermark of `object` to `to` (its run settled) and writes the file.
    pub fn advance(&self, object: ObjectType, to: Watermark) -> Result<(), StateError> {
        {
            let mut state = self.lock();
            let entry = state.objects.entry(object).or_default();
            entry.watermark = Some(to);
            entry.synced_at = Some(format_timestamp(now_ms()));
        }
        self.save()
    }

    /// The digests the last settled sync kept of `object`'s records ([`ObjectState::digests`]).
    pub fn digests(&self, object: ObjectType) -> BTreeMap<String, RecordHash> {
        self.lock()
            .objects
            .get(&object)
            .map(|o| o.digests.clone())
            .unwrap_or_default()
    }

    /// Replaces the digests kept of `object`'s records, to be written with the next save;
    /// returns whether they changed.
    pub fn keep_digests(&self, object: ObjectType, digests: BTreeMap<String, RecordHash>) -> bool {
        let mut state = self.lock();
        let entry = state.objects.entry(object).or_default();
        if entry.digests == digests {
            return false;
        }
        entry.digests = digests;
        true
    }

    /// Where the next read of `object`'s deletions starts: its deletions cursor, else its
    /// watermark (the sink holds nothing the source deleted before that); `None` before the
    /// first sync settled.
    pub fn deletions_since(&self, object: ObjectType) -> Option<Watermark> {
        self.lock()
            .objects
            .get(&object)
            .and_then(|o| o.deletions_cursor.clone().or_else(|| o.watermark.clone()))
    }

    /// Moves the deletions cursor of `object` to `to` (its removals settled) and writes the file.
    pub fn advance_deletions(&self, object: ObjectType, to: Watermark) -> Result<(), StateError> {
        self.lock()
            .objects
            .entry(object)
            .or_default()
            .deletions_cursor = Some(to);
        self.save()
    }

    /// Writes the state now, whole: a file atomically ([`write_atomically`]); a state in the
    /// sink as compact JSON, replacing the version this run read or wrote last, and without
    /// the record digests when they do not fit the store (the next sync then counts the
    /// records its overlap repeats as updated, not unchanged). A state that does not fit even
    /// so is refused, and the one before stays.
    pub fn save(&self) -> Result<(), StateError> {
        if let Some(lease) = self.lease.as_ref().filter(|l| l.lost()) {
            return Err(StoreError::Conflict {
                store: lease.store_name(),
            }
            .into());
        }
        let state = self.lock().clone();
        let unreadable = |e: serde_json::Error| StateError::Unreadable {
            place: self.store.name(),
            detail: e.to_string(),
            remedy: FILE_REMEDY_UNREADABLE,
        };
        let text = match self.store.capacity() {
            None => serde_json::to_string_pretty(&state).map_err(unreadable)?,
            Some(max) => {
                let full = serde_json::to_string(&state).map_err(unreadable)?;
                if full.chars().count() <= max {
                    full
                } else {
                    let mut lean = state;
                    for object in lean.objects.values_mut() {
                        object.digests.clear();
                    }
                    let lean = serde_json::to_string(&lean).map_err(unreadable)?;
                    let len = lean.chars().count();
                    if len > max {
                        return Err(StoreError::TooLarge {
                            store: self.store.name(),
                            len,
                            max,
                        }
                        .into());
                    }
                    tracing::info!(
                        chars = full.chars().count(),
                        max,
                        "the record digests do not fit the sync state in the sink: left out"
                    );
                    lean
                }
            }
        };
        let mut version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        match self.store.write(&text, version.as_deref()) {
            Ok(new) => {
                *version = Some(new);
                Ok(())
            }
            Err(StoreError::Failed { detail, .. }) if self.path.is_some() => Err(StateError::Io {
                path: self.path.clone().unwrap_or_default(),
                source: std::io::Error::other(detail),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> SyncState {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SyncState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Now by ferry's clock, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Replaces `path` with `bytes` so that a crash at any point leaves either the old file or the
/// new one whole: write `<path>.tmp`, fsync it, rename it over `path`, fsync the directory (the
/// rename itself is only durable once the directory is). On error, `path` is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = crate::checkpoint::temp_path(path);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// The lock file beside a state file: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The advisory lock on a state file, held while the value lives (and by the kernel until the
/// process ends, however it ends).
#[derive(Debug)]
pub struct StateLock {
    _held: Held,
}

/// What a [`StateLock`] holds: the state file's `flock`, or the lease of a state in the sink.
#[derive(Debug)]
enum Held {
    File(#[allow(dead_code)] std::fs::File),
    Lease(#[allow(dead_code)] crate::state_store::LeaseKeeper),
}

/// The name of the environment variable (or other record) a sink keeps the state of one
/// configuration in: `ferry_state_` and 16 hex digits of a hash of the source vendor and the
/// configuration's fingerprint, so that two configurations writing into one sink never share
/// one. `ferry_lease_…` with the same digits holds its lease. No customer data.
pub fn sink_state_key(source: &str, fingerprint: &str) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(format!("{source}\n{fingerprint}").as_bytes());
    hex::encode(&hash[..8])
}

/// Takes the lease of the state `sink` keeps for this configuration (refusing at once while
/// another run holds it, [`StateError::LeaseHeld`]), renewed until the returned lock is
/// dropped, and opens the state; `None` when the sink keeps no state.
pub fn open_in_sink(
    sink: &dyn crate::Sink,
    fingerprint: &str,
    source: &str,
    lease: std::time::Duration,
) -> Result<Option<(StateLock, StateFile)>, StateError> {
    let key = sink_state_key(source, fingerprint);
    let (Some(state), Some(lease_store)) = (
        sink.state_store(&format!("ferry_state_{key}")),
        sink.state_store(&format!("ferry_lease_{key}")),
    ) else {
        return Ok(None);
    };
    let holder = crate::state_store::holder_id();
    let taken = crate::state_store::Lease::acquire(
        std::sync::Arc::from(lease_store),
        &holder,
        lease,
        now_ms(),
    )
    .map_err(|e| match e {
        crate::state_store::LeaseError::Store(e) => StateError::Store(e),
        held => StateError::LeaseHeld(held),
    })?;
    let keeper = crate::state_store::LeaseKeeper::start(taken);
    tracing::info!(store = %state.name(), "sync state lease taken");
    let mut file = StateFile::open_in(state, fingerprint, source, sink.vendor())?;
    file.lease = Some(keeper.lease());
    Ok(Some((
        StateLock {
            _held: Held::Lease(keeper),
        },
        file,
    )))
}

/// Takes the lock of the state at `path` (on `<path>.lock`, created if missing), at once or not
/// at all: [`StateError::Locked`] when another process holds it.
pub fn lock(path: &Path) -> Result<StateLock, StateError> {
    let lock = lock_path(path);
    let io = |source| StateError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(io)?;
    // std's advisory lock (flock on Unix), stable since Rust 1.89, the workspace's minimum.
    let locked = file.try_lock();
    match locked {
        Ok(()) => Ok(StateLock {
            _held: Held::File(file),
        }),
        Err(std::fs::TryLockError::WouldBlock) => Err(StateError::Locked {
            path: path.to_owned(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ferry-sync-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_state_round_trips_and_holds_only_watermarks() {
        let path = dir("round").join("state.json");
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert_eq!(
            state.since(ObjectType::CONTACTS),
            None,
            "a first sync is full"
        );
        let mark = Watermark::at(1_765_000_000_000);
        state.advance(ObjectType::CONTACTS, mark.clone()).unwrap();
        assert!(!crate::checkpoint::temp_path(&path).exists());

        let again = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert_eq!(again.since(ObjectType::CONTACTS), Some(mark));
        assert_eq!(again.since(ObjectType::COMPANIES), None);
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            json["objects"]["contacts"]["watermark"]["at"],
            "2025-12-06T05:46:40.000Z"
        );
        let entry = json["objects"]["contacts"].as_object().unwrap();
        for room in ["delta_token", "deletions_cursor", "digests"] {
            assert!(entry.contains_key(room), "{room} has its place: {json:#}");
        }
    }

    fn hash(byte: u8) -> RecordHash {
        RecordHash([byte; RECORD_HASH_BYTES])
    }

    #[test]
    fn record_digests_round_trip_as_hex_beside_the_watermark() {
        let path = dir("digests").join("state.json");
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert!(state.digests(ObjectType::CONTACTS).is_empty());
        let kept: BTreeMap<String, RecordHash> = [
            ("003A".to_owned(), hash(0xab)),
            ("003B".to_owned(), hash(0x01)),
        ]
        .into();
        assert!(state.keep_digests(ObjectType::CONTACTS, kept.clone()));
        assert!(
            !state.keep_digests(ObjectType::CONTACTS, kept.clone()),
            "the same digests change nothing"
        );
        state
            .advance(ObjectType::CONTACTS, Watermark::at(1_000))
            .unwrap();

        let again = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert_eq!(again.digests(ObjectType::CONTACTS), kept);
        assert!(again.digests(ObjectType::COMPANIES).is_empty());
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], STATE_VERSION);
        assert_eq!(
            json["objects"]["contacts"]["digests"]["003A"],
            "ab".repeat(RECORD_HASH_BYTES)
        );

        // A digest that is not 32 hex digits makes the state unreadable, naming no value.
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(&"ab".repeat(RECORD_HASH_BYTES), "zz-not-hex");
        std::fs::write(&path, text).unwrap();
        let err = StateFile::open(&path, "fp", "salesforce", "hubspot")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("32 hex digits") && !err.contains("zz-not-hex"),
            "{err}"
        );
    }

    #[test]
    fn a_version_1_state_loads_with_no_digests_and_is_written_back_as_version_2() {
        let path = dir("v1").join("state.json");
        // A state as ferry wrote it before record digests were kept.
        let v1 = r#"{
  "version": 1,
  "source": "salesforce",
  "sink": "hubspot",
  "source_account": "org id 00DA",
  "sink_account": null,
  "fingerprint": "fp",
  "objects": {
    "contacts": {
      "watermark": { "at": "2025-12-06T05:46:40.000Z", "after_id": null },
      "delta_token": null,
      "deletions_cursor": null,
      "synced_at": "2025-12-06T05:51:40.000Z"
    }
  }
}"#;
        std::fs::write(&path, v1).unwrap();
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert_eq!(
            state.since(ObjectType::CONTACTS),
            Some(Watermark::at(1_765_000_000_000))
        );
        assert!(
            state.digests(ObjectType::CONTACTS).is_empty(),
            "no digests: nothing is skipped"
        );
        state.keep_digests(ObjectType::CONTACTS, [("003A".to_owned(), hash(7))].into());
        state.save().unwrap();
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["version"], 2, "{json:#}");
        assert_eq!(json["source_account"], "org id 00DA");
        assert_eq!(
            json["objects"]["contacts"]["watermark"]["at"],
            "2025-12-06T05:46:40.000Z"
        );
        assert_eq!(
            StateFile::open(&path, "fp", "salesforce", "hubspot")
                .unwrap()
                .digests(ObjectType::CONTACTS)
                .len(),
            1
        );
    }

    #[test]
    fn a_state_of_another_pair_or_configuration_is_refused() {
        let path = dir("other").join("state.json");
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        state
            .advance(ObjectType::COMPANIES, Watermark::at(1_000))
            .unwrap();
        let err = StateFile::open(&path, "fp", "hubspot", "salesforce")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("from salesforce to hubspot") && err.contains("sync.state"),
            "{err}"
        );
        let err = StateFile::open(&path, "other", "salesforce", "hubspot")
            .unwrap_err()
            .to_string();
        assert!(err.contains("another configuration"), "{err}");
        std::fs::write(&path, br#"{"version": 9}"#).unwrap();
        let err = StateFile::open(&path, "fp", "salesforce", "hubspot")
            .unwrap_err()
            .to_string();
        assert!(err.contains("format version 9"), "{err}");
        std::fs::write(&path, b"{\"secretish\": ").unwrap();
        let err = StateFile::open(&path, "fp", "salesforce", "hubspot")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not valid JSON") && !err.contains("secretish"),
            "{err}"
        );
    }

    #[test]
    fn a_state_of_another_account_is_refused() {
        let path = dir("accounts").join("state.json");
        let org = |id: &str| crate::AccountId {
            kind: "org id",
            id: id.into(),
        };
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        state.check_accounts(Some(&org("00DA")), None).unwrap();
        state
            .advance(ObjectType::COMPANIES, Watermark::at(1_000))
            .unwrap();
        let again = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        again.check_accounts(Some(&org("00DA")), None).unwrap();
        let err = again
            .check_accounts(Some(&org("00DB")), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("source salesforce account org id 00DA")
                && err.contains("now reach org id 00DB"),
            "{err}"
        );
        // A vendor that cannot name its account is not compared.
        again.check_accounts(None, None).unwrap();
    }

    #[test]
    fn a_failed_write_leaves_the_old_state() {
        let path = dir("atomic").join("state.json");
        let state = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        state
            .advance(ObjectType::COMPANIES, Watermark::at(1_000))
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        // The temporary file cannot be created: a directory is in its place.
        std::fs::create_dir(crate::checkpoint::temp_path(&path)).unwrap();
        assert!(
            state
                .advance(ObjectType::COMPANIES, Watermark::at(9_000))
                .is_err()
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "the old state stays");
        let reopened = StateFile::open(&path, "fp", "salesforce", "hubspot").unwrap();
        assert_eq!(
            reopened.since(ObjectType::COMPANIES),
            Some(Watermark::at(1_000))
        );
    }

    #[test]
    fn the_watermark_moves_only_to_a_settled_point_before_the_read() {
        let overlap = std::time::Duration::from_secs(300);
        let point = Watermark::settled_before(1_765_000_123_456, overlap);
        assert_eq!(
            point.at_ms,
            1_765_000_123_000 - 300_000,
            "less the overlap, whole seconds"
        );
        let previous = Watermark::at(1_000);
        assert_eq!(
            next_watermark(Some(&previous), &point, true),
            Some(point.clone())
        );
        assert_eq!(
            next_watermark(Some(&previous), &point, false),
            Some(previous),
            "an object that did not settle keeps its watermark"
        );
        assert_eq!(next_watermark(None, &point, false), None);
    }

    /// A store that shares its document with the test, through an `Arc`.
    #[derive(Debug)]
    struct Shared(std::sync::Arc<crate::state_store::MemoryStore>);

    impl StateStore for Shared {
        fn name(&self) -> String {
            "dynamics environment variable ferry_state_x".into()
        }
        fn capacity(&self) -> Option<usize> {
            self.0.capacity
        }
        fn read(&self) -> Result<Option<crate::state_store::Stored>, StoreError> {
            self.0.read()
        }
        fn write(&self, text: &str, version: Option<&str>) -> Result<String, StoreError> {
            self.0.write(text, version)
        }
    }

    fn store(capacity: usize) -> std::sync::Arc<crate::state_store::MemoryStore> {
        std::sync::Arc::new(crate::state_store::MemoryStore::with_capacity(Some(
            capacity,
        )))
    }

    #[test]
    fn a_state_in_the_sink_is_compact_whole_and_replaced_only_at_the_version_it_read() {
        let doc = store(2_000);
        let open = || {
            StateFile::open_in(
                Box::new(Shared(doc.clone())),
                "fp",
                "salesforce",
                "dynamics",
            )
        };
        let state = open().unwrap();
        assert_eq!(state.path(), None);
        state
            .advance(ObjectType::CONTACTS, Watermark::at(1_765_000_000_000))
            .unwrap();
        let text = doc.read().unwrap().unwrap().text;
        assert!(!text.contains('\n'), "compact: {text}");
        let again = open().unwrap();
        assert_eq!(
            again.since(ObjectType::CONTACTS),
            Some(Watermark::at(1_765_000_000_000))
        );
        // Another run replaced it since `state` wrote it: `state`'s next save is refused, and
        // the other run's state stays whole.
        again
            .advance(ObjectType::COMPANIES, Watermark::at(5_000))
            .unwrap();
        let err = state
            .advance(ObjectType::CONTACTS, Watermark::at(1_765_000_100_000))
            .unwrap_err();
        assert!(
            matches!(err, StateError::Store(StoreError::Conflict { .. })),
            "{err}"
        );
        let kept = open().unwrap();
        assert_eq!(
            kept.since(ObjectType::COMPANIES),
            Some(Watermark::at(5_000))
        );
        // Another configuration's state is refused, saying how to start again.
        let err = StateFile::open_in(
            Box::new(Shared(doc.clone())),
            "other",
            "salesforce",
            "dynamics",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ferry_state_x") && err.contains("delete that environment variable"),
            "{err}"
        );
    }

    #[test]
    fn a_run_that_lost_its_lease_saves_nothing() {
        use crate::state_store::{Lease, MemoryStore};
        let leases: std::sync::Arc<dyn StateStore> = std::sync::Arc::new(MemoryStore::default());
        let minute = std::time::Duration::from_secs(60);
        let doc = store(2_000);
        let mut state = StateFile::open_in(
            Box::new(Shared(doc.clone())),
            "fp",
            "salesforce",
            "dynamics",
        )
        .unwrap();
        let lease = std::sync::Arc::new(
            Lease::acquire(std::sync::Arc::clone(&leases), "run a", minute, 0).unwrap(),
        );
        state.lease = Some(std::sync::Arc::clone(&lease));
        state
            .advance(ObjectType::CONTACTS, Watermark::at(1_000))
            .unwrap();
        // Stalled past its expiry, the run's lease is taken by the next; its renewal finds out.
        Lease::acquire(std::sync::Arc::clone(&leases), "run b", minute, 61_000).unwrap();
        assert!(lease.renew(62_000).is_err());
        let err = state
            .advance(ObjectType::CONTACTS, Watermark::at(9_000))
            .unwrap_err();
        assert!(
            matches!(err, StateError::Store(StoreError::Conflict { .. })),
            "{err}"
        );
        let kept =
            StateFile::open_in(Box::new(Shared(doc)), "fp", "salesforce", "dynamics").unwrap();
        assert_eq!(kept.since(ObjectType::CONTACTS), Some(Watermark::at(1_000)));
    }

    #[test]
    fn digests_that_do_not_fit_the_sink_are_left_out_and_a_state_that_does_not_fit_is_refused() {
        let doc = store(600);
        let state = StateFile::open_in(
            Box::new(Shared(doc.clone())),
            "fp",
            "salesforce",
            "dynamics",
        )
        .unwrap();
        let many: BTreeMap<String, RecordHash> =
            (0..20).map(|i| (format!("003{i:04}"), hash(i))).collect();
        state.keep_digests(ObjectType::CONTACTS, many.clone());
        state
            .advance(ObjectType::CONTACTS, Watermark::at(1_000))
            .unwrap();
        let saved = StateFile::open_in(
            Box::new(Shared(doc.clone())),
            "fp",
            "salesforce",
            "dynamics",
        )
        .unwrap();
        assert_eq!(
            saved.since(ObjectType::CONTACTS),
            Some(Watermark::at(1_000))
        );
        assert!(saved.digests(ObjectType::CONTACTS).is_empty(), "left out");
        // A few fit, and are kept.
        state.keep_digests(ObjectType::CONTACTS, many.into_iter().take(2).collect());
        state.save().unwrap();
        let saved = StateFile::open_in(
            Box::new(Shared(doc.clone())),
            "fp",
            "salesforce",
            "dynamics",
        )
        .unwrap();
        assert_eq!(saved.digests(ObjectType::CONTACTS).len(), 2);

        // Too small for even the watermarks: refused, naming both sizes, the old state stays.
        let tiny = store(100);
        let state = StateFile::open_in(
            Box::new(Shared(tiny.clone())),
            "fp",
            "salesforce",
            "dynamics",
        )
        .unwrap();
        let err = state
            .advance(ObjectType::CONTACTS, Watermark::at(1_000))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 100 characters"), "{err}");
        assert_eq!(tiny.read().unwrap(), None);
    }

    #[test]
    fn a_second_lock_on_one_state_is_refused_until_the_first_is_dropped() {
        let path = dir("lock").join("state.json");
        let first = lock(&path).unwrap();
        let err = lock(&path).unwrap_err();
        assert!(
            matches!(err, StateError::Locked { .. }) && err.to_string().contains("state.json"),
            "{err}"
        );
        drop(first);
        assert!(lock(&path).is_ok());
    }
}
