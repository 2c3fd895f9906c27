//! Where a sync state is kept, and the lease that keeps two syncs off one state kept in a sink.
//!
//! A [`StateStore`] holds one small text document with a version, and replaces it only when the
//! version the writer read is still the current one (compare-and-swap): a writer that lost a
//! race gets [`StoreError::Conflict`], never a half-written document. Two kinds exist: the state
//! file ([`FileStore`]: atomic replacement, and the `flock` of [`crate::sync::lock`] instead of
//! versions) and a place in the sink ([`crate::Sink::state_store`]: Dataverse environment
//! variables, whose records carry ETags and answer `If-Match` with 412 when they changed).
//!
//! A state in the sink has no process-bound lock, so it is guarded by a [`Lease`]: a second
//! record holding the run that owns the state and until when. A run takes the lease only if it
//! is free or expired, renews it while it runs ([`LeaseKeeper`]), and frees it at the end; a run
//! killed without freeing it blocks the next one only until it expires.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A document as a store holds it: its text and the version a replacement must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The document.
    pub text: String,
    /// Its version (an ETag), opaque.
    pub version: String,
}

/// Why a store could not be read or written. Names the store, never the document.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The document changed (or was created) since the writer read it.
    #[error("{store} was changed by another writer since this run read it")]
    Conflict {
        /// The store.
        store: String,
    },
    /// The document is longer than the store holds.
    #[error("{store} holds at most {max} characters, and the sync state needs {len}")]
    TooLarge {
        /// The store.
        store: String,
        /// The document's length.
        len: usize,
        /// The store's capacity.
        max: usize,
    },
    /// Reading or writing failed.
    #[error("{store}: {detail}")]
    Failed {
        /// The store.
        store: String,
        /// What failed (an endpoint and a status, an I/O error), never the document.
        detail: String,
    },
}

/// One small text document with a version, replaced only by a writer that names the current
/// version. Calls block: a store in a sink runs its requests on the runtime it was made on.
pub trait StateStore: Send + Sync + std::fmt::Debug {
    /// Where the document lives, for messages (`dynamics environment variable ferry_state_…`).
    fn name(&self) -> String;

    /// The most characters the document may hold; `None`: no limit worth checking.
    fn capacity(&self) -> Option<usize>;

    /// The document and its version; `None` when there is none yet.
    fn read(&self) -> Result<Option<Stored>, StoreError>;

    /// Replaces the document with `text` if its version is still `version` (`None`: only if
    /// there is no document yet), returning the new version; [`StoreError::Conflict`] otherwise.
    fn write(&self, text: &str, version: Option<&str>) -> Result<String, StoreError>;
}

/// A state file: replaced atomically ([`crate::sync::write_atomically`]). Versions are not
/// compared: the file's lock ([`crate::sync::lock`]) keeps every other sync off it.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

impl FileStore {
    /// The store of the file at `path`.
    pub fn new(path: &Path) -> FileStore {
        FileStore {
            path: path.to_owned(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl StateStore for FileStore {
    fn name(&self) -> String {
        format!("sync state {}", self.path.display())
    }

    fn capacity(&self) -> Option<usize> {
        None
    }

    fn read(&self) -> Result<Option<Stored>, StoreError> {
        match std::fs::read(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Failed {
                store: self.name(),
                detail: e.to_string(),
            }),
            // A state that is not UTF-8 is handed on as it decodes: the state's own checks
            // then call it unreadable, naming where.
            Ok(bytes) => Ok(Some(Stored {
                text: String::from_utf8_lossy(&bytes).into_owned(),
                version: String::new(),
            })),
        }
    }

    fn write(&self, text: &str, _version: Option<&str>) -> Result<String, StoreError> {
        crate::sync::write_atomically(&self.path, text.as_bytes()).map_err(|e| {
            StoreError::Failed {
                store: self.name(),
                detail: e.to_string(),
            }
        })?;
        Ok(String::new())
    }
}

/// How long a lease lasts unless renewed, by default: a killed run blocks the next sync at
/// most this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);

/// The lease record: who holds the state and until when. Holds no customer data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The run holding it (a random run id, the host and the process id); empty when free.
    pub holder: String,
    /// Until when, in milliseconds since the Unix epoch by the holder's clock.
    pub expires_at_ms: i64,
}

/// Why a lease could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another run holds it and it has not expired.
    #[error(
        "{store} is held by another `ferry sync` ({holder}) until {until}; wait for it to finish \
         (a run that was killed holds it until then)"
    )]
    Held {
        /// The lease's store.
        store: String,
        /// Who holds it.
        holder: String,
        /// When it expires (RFC 3339).
        until: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A lease on a state kept in a sink, taken by one run.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn StateStore>,
    holder: String,
    length: Duration,
    version: Mutex<String>,
    lost: AtomicBool,
}

impl Lease {
    /// Takes the lease in `store` for `holder`, for `length` from `now_ms`, if it is free or
    /// expired; [`LeaseError::Held`] when another run holds it, or took it at the same time.
    pub fn acquire(
        store: Arc<dyn StateStore>,
        holder: &str,
        length: Duration,
        now_ms: i64,
    ) -> Result<Lease, LeaseError> {
        let current = store.read()?;
        let held = |record: &LeaseRecord| LeaseError::Held {
            store: store.name(),
            holder: record.holder.clone(),
            until: crate::model::format_timestamp(record.expires_at_ms),
        };
        if let Some(stored) = &current
            // A record that does not parse was not written by a ferry that can hold it: free.
            && let Ok(record) = serde_json::from_str::<LeaseRecord>(&stored.text)
            && !record.holder.is_empty()
            && record.holder != holder
            && record.expires_at_ms > now_ms
        {
            return Err(held(&record));
        }
        let text = record_text(holder, length, now_ms);
        let version = match store.write(&text, current.as_ref().map(|s| s.version.as_str())) {
            Ok(version) => version,
            Err(StoreError::Conflict { .. }) => {
                // Another run wrote it between the read and the write: it holds it now.
                let record = store
                    .read()?
                    .and_then(|s| serde_json::from_str::<LeaseRecord>(&s.text).ok())
                    .unwrap_or(LeaseRecord {
                        holder: "another run".into(),
                        expires_at_ms: now_ms.saturating_add(duration_ms(length)),
                    });
                return Err(held(&record));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Lease {
            store,
            holder: holder.to_owned(),
            length,
            version: Mutex::new(version),
            lost: AtomicBool::new(false),
        })
    }

    /// Extends the lease to `length` from `now_ms`. [`StoreError::Conflict`] means another run
    /// took it (this one was stalled past its expiry): the lease is then lost.
    pub fn renew(&self, now_ms: i64) -> Result<(), StoreError> {
        self.replace(&record_text(&self.holder, self.length, now_ms))
    }

    /// Frees the lease, so that the next sync need not wait for it to expire.
    pub fn release(&self) -> Result<(), StoreError> {
        let free = serde_json::to_string(&LeaseRecord {
            holder: String::new(),
            expires_at_ms: 0,
        })
        .unwrap_or_default();
        self.replace(&free)
    }

    /// Whether another run took the lease from this one.
    pub fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// The lease's store, for messages.
    pub fn store_name(&self) -> String {
        self.store.name()
    }

    fn replace(&self, text: &str) -> Result<(), StoreError> {
        if self.lost() {
            return Err(StoreError::Conflict {
                store: self.store.name(),
            });
        }
        let mut version = self.version.lock().unwrap_or_else(PoisonError::into_inner);
        match self.store.write(text, Some(&version)) {
            Ok(new) => {
                *version = new;
                Ok(())
            }
            Err(e) => {
                if matches!(e, StoreError::Conflict { .. }) {
                    self.lost.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn record_text(holder: &str, length: Duration, now_ms: i64) -> String {
    serde_json::to_string(&LeaseRecord {
        holder: holder.to_owned(),
        expires_at_ms: now_ms.saturating_add(duration_ms(length)),
    })
    .unwrap_or_default()
}

/// How often a held lease is renewed: a quarter of its length (30 s for the default two
/// minutes), so that three renewals in a row may fail before it expires.
pub fn heartbeat(length: Duration) -> Duration {
    (length / 4).max(Duration::from_millis(250))
}

/// A held lease renewed on a thread of its own until dropped, then freed.
#[derive(Debug)]
pub struct LeaseKeeper {
    lease: Arc<Lease>,
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LeaseKeeper {
    /// Renews `lease` every [`heartbeat`] by ferry's clock while the value lives.
    pub fn start(lease: Lease) -> LeaseKeeper {
        let lease = Arc::new(lease);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let every = heartbeat(lease.length);
        let renewing = Arc::clone(&lease);
        let thread = std::thread::Builder::new()
            .name("ferry-lease".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(every)
                {
                    if let Err(e) = renewing.renew(crate::sync::now_ms()) {
                        tracing::warn!(error = %e, "the sync state's lease was not renewed");
                        if renewing.lost() {
                            break;
                        }
                    }
                }
            })
            .ok();
        LeaseKeeper {
            lease,
            stop: Some(stop),
            thread,
        }
    }

    /// The lease kept.
    pub fn lease(&self) -> Arc<Lease> {
        Arc::clone(&self.lease)
    }
}

impl Drop for LeaseKeeper {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Err(e) = self.lease.release() {
            tracing::warn!(error = %e, "the sync state's lease was not freed: the next sync waits until it expires");
        }
    }
}

/// The holder id of this run: a random run id, the host name and the process id. No secret
/// and no customer data.
pub fn holder_id() -> String {
    let run: u64 = rand::random();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into());
    format!("run {run:016x} on {host} pid {}", std::process::id())
}

/// An in-memory store for tests: compare-and-swap on a counter.
#[derive(Debug, Default)]
pub struct MemoryStore {
    doc: Mutex<Option<(String, u64)>>,
    /// The most characters it holds, if any.
    pub capacity: Option<usize>,
}

impl MemoryStore {
    /// An empty store holding at most `capacity` characters (`None`: any).
    pub fn with_capacity(capacity: Option<usize>) -> MemoryStore {
        MemoryStore {
            doc: Mutex::default(),
            capacity,
        }
    }
}

impl StateStore for MemoryStore {
    fn name(&self) -> String {
        "memory store".into()
    }

    fn capacity(&self) -> Option<usize> {
        self.capacity
    }

    fn read(&self) -> Result<Option<Stored>, StoreError> {
        Ok(self
            .doc
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(text, v)| Stored {
                text: text.clone(),
                version: v.to_string(),
            }))
    }

    fn write(&self, text: &str, version: Option<&str>) -> Result<String, StoreError> {
        let mut doc = self.doc.lock().unwrap_or_else(PoisonError::into_inner);
        let current = doc.as_ref().map(|(_, v)| v.to_string());
        if current.as_deref() != version {
            return Err(StoreError::Conflict { store: self.name() });
        }
        let next = doc.as_ref().map_or(1, |(_, v)| v + 1);
        *doc = Some((text.to_owned(), next));
        Ok(next.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_live_lease_refuses_another_run_until_it_expires_or_is_freed() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let first = Lease::acquire(Arc::clone(&store), "run a", MIN, 1_000).unwrap();
        let err = Lease::acquire(Arc::clone(&store), "run b", MIN, 2_000).unwrap_err();
        assert!(
            matches!(&err, LeaseError::Held { holder, .. } if holder == "run a"),
            "{err}"
        );
        assert!(err.to_string().contains("memory store"), "{err}");
        // Renewed at 50 s, it lasts until 110 s: still held at 100 s.
        first.renew(50_000).unwrap();
        assert!(Lease::acquire(Arc::clone(&store), "run b", MIN, 100_000).is_err());
        // A crashed holder never renews again: expired, it is taken.
        let second = Lease::acquire(Arc::clone(&store), "run b", MIN, 110_001).unwrap();
        // The first run's renewal now fails, and it knows it lost the lease.
        assert!(matches!(
            first.renew(111_000),
            Err(StoreError::Conflict { .. })
        ));
        assert!(first.lost());
        assert!(first.release().is_err(), "a lost lease is not freed");
        second.release().unwrap();
        Lease::acquire(Arc::clone(&store), "run c", MIN, 111_000).unwrap();
    }

    #[test]
    fn two_runs_taking_a_free_lease_at_once_are_one_refused() {
        // The race: both read "no lease", both write; the store lets only the first through.
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        store.write(&record_text("run a", MIN, 0), None).unwrap();
        let err = store
            .write(&record_text("run b", MIN, 0), None)
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }));
        let err = Lease::acquire(Arc::clone(&store), "run b", MIN, 10).unwrap_err();
        assert!(matches!(err, LeaseError::Held { .. }), "{err}");
    }

    #[test]
    fn a_keeper_renews_the_lease_and_frees_it_when_dropped() {
        let store: Arc<dyn StateStore> = Arc::new(MemoryStore::default());
        let length = Duration::from_secs(1);
        let lease =
            Lease::acquire(Arc::clone(&store), "run a", length, crate::sync::now_ms()).unwrap();
        let keeper = LeaseKeeper::start(lease);
        let version = |s: &Arc<dyn StateStore>| s.read().unwrap().unwrap().version;
        let before = version(&store);
        std::thread::sleep(heartbeat(length) * 3);
        assert_ne!(version(&store), before, "renewed");
        assert!(
            Lease::acquire(Arc::clone(&store), "run b", length, crate::sync::now_ms()).is_err()
        );
        drop(keeper);
        let record: LeaseRecord =
            serde_json::from_str(&store.read().unwrap().unwrap().text).unwrap();
        assert!(record.holder.is_empty(), "freed: {record:?}");
        Lease::acquire(Arc::clone(&store), "run b", length, crate::sync::now_ms()).unwrap();
    }

    #[test]
    fn the_holder_id_names_the_process_and_differs_between_runs() {
        let a = holder_id();
        assert!(a.contains(&format!("pid {}", std::process::id())), "{a}");
        assert_ne!(a, holder_id());
    }
}
