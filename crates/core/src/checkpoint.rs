//! Checkpoints: how far a migration got, so that a stopped or killed run resumes instead of
//! starting over.
//!
//! A checkpoint holds, per object type, the cursor of the first source page whose records are
//! not all settled yet (written and verified, or listed as failed), and how many records were
//! settled before it. Cursors are the vendors' opaque paging tokens; with the counts, that is
//! everything: no field value, no record, no secret. The file is safe to publish.
//!
//! Resuming re-reads from that page. Records of it that were already written are upserted
//! again, which changes nothing: every write is keyed by the source id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::model::ObjectType;

/// The checkpoint format this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

/// How often, at most, progress is written (the end of each object is always written).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// The saved state of a migration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The format version.
    pub version: u32,
    /// A hash of the configuration it belongs to; a checkpoint never resumes another migration.
    pub fingerprint: String,
    /// Whether the migration finished (the next run starts afresh).
    pub complete: bool,
    /// Progress per object type.
    pub objects: BTreeMap<ObjectType, ObjectCheckpoint>,
}

/// How far one object type got.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCheckpoint {
    /// Every record of this object type is settled.
    pub done: bool,
    /// The source cursor to resume reading at; `None`: from the first page.
    pub resume_cursor: Option<String>,
    /// Records settled before `resume_cursor`, over all runs.
    pub settled: u64,
}

/// Why a checkpoint could not be used. Names the file, never its content.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    #[error("checkpoint {path}: {source}")]
    Io {
        /// The checkpoint file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint this build can read.
    #[error(
        "checkpoint {path} is not a ferry checkpoint this version can read ({detail}); move it away to start afresh"
    )]
    Unreadable {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The file belongs to a different migration.
    #[error(
        "checkpoint {path} belongs to a different configuration (source, sink, objects or settings \
         changed); resuming would mix two migrations. Use --fresh to start this one afresh"
    )]
    OtherMigration {
        /// The checkpoint file.
        path: PathBuf,
    },
}

/// A checkpoint file being kept up to date by a run.
#[derive(Debug)]
pub struct CheckpointFile {
    path: PathBuf,
    state: Mutex<Checkpoint>,
    last_save: Mutex<Option<Instant>>,
}

impl CheckpointFile {
    /// Opens the checkpoint at `path` for the migration with `fingerprint`: resumes an
    /// unfinished one, starts afresh when there is none, it finished, or `fresh` is set.
    pub fn open(
        path: &Path,
        fingerprint: &str,
        fresh: bool,
    ) -> Result<CheckpointFile, CheckpointError> {
        let new = Checkpoint {
            version: CHECKPOINT_VERSION,
            fingerprint: fingerprint.to_owned(),
            ..Checkpoint::default()
        };
        let state = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => new,
            Err(source) => {
                return Err(CheckpointError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
            Ok(_) if fresh => new,
            Ok(bytes) => {
                let saved: Checkpoint =
                    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Unreadable {
                        path: path.to_owned(),
                        detail: format!(
                            "not valid checkpoint JSON at line {} column {}",
                            e.line(),
                            e.column()
                        ),
                    })?;
                if saved.version != CHECKPOINT_VERSION {
                    return Err(CheckpointError::Unreadable {
                        path: path.to_owned(),
                        detail: format!(
                            "format version {}, expected {CHECKPOINT_VERSION}",
                            saved.version
                        ),
                    });
                }
                if saved.fingerprint != fingerprint {
                    return Err(CheckpointError::OtherMigration {
                        path: path.to_owned(),
                    });
                }
                if saved.complete { new } else { saved }
            }
        };
        Ok(CheckpointFile {
            path: path.to_owned(),
            state: Mutex::new(state),
            last_save: Mutex::new(None),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where `object` got to in earlier runs.
    pub fn object(&self, object: ObjectType) -> ObjectCheckpoint {
        self.lock()
            .objects
            .get(&object)
            .cloned()
            .unwrap_or_default()
    }

    /// Records progress of `object`, writing the file if the last write is over a second old.
    pub fn record(
        &self,
        object: ObjectType,
        progress: ObjectCheckpoint,
    ) -> Result<(), CheckpointError> {
        let due = {
            let mut state = self.lock();
            let done = progress.done;
            state.objects.insert(object, progress);
            let mut last = self
                .last_save
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let due = done || last.is_none_or(|t| t.elapsed() >= SAVE_EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due { self.save() } else { Ok(()) }
    }

    /// Marks the whole migration finished and writes the file.
    pub fn finish(&self) -> Result<(), CheckpointError> {
        self.lock().complete = true;
        self.save()
    }

    /// Writes the state now: to `<path>.tmp`, then renamed over `<path>`, so a crash mid-write
    /// leaves the previous checkpoint intact.
    pub fn save(&self) -> Result<(), CheckpointError> {
        let bytes =
            serde_json::to_vec_pretty(&*self.lock()).map_err(|e| CheckpointError::Unreadable {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        let tmp = temp_path(&self.path);
        let io = |source| CheckpointError::Io {
            path: self.path.clone(),
            source,
        };
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Checkpoint {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Checkpoint> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A fingerprint of a migration's configuration, from its parts in a fixed order: a checkpoint
/// only resumes the migration it was written by.
pub fn fingerprint(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The temporary file a checkpoint is written to before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "ferry-checkpoint-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn resumes_only_the_same_unfinished_migration() {
        let path = dir().join("cp.json");
        let _ = std::fs::remove_file(&path);
        let cp = CheckpointFile::open(&path, "abc", false).unwrap();
        let progress = ObjectCheckpoint {
            done: false,
            resume_cursor: Some("page-7".into()),
            settled: 600,
        };
        cp.record(ObjectType::CONTACTS, progress.clone()).unwrap();
        cp.save().unwrap();
        assert!(
            !temp_path(&path).exists(),
            "the temporary file is renamed away"
        );

        let again = CheckpointFile::open(&path, "abc", false).unwrap();
        assert_eq!(again.object(ObjectType::CONTACTS), progress);
        assert_eq!(
            again.object(ObjectType::COMPANIES),
            ObjectCheckpoint::default()
        );

        let err = CheckpointFile::open(&path, "other", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("different configuration") && err.contains("--fresh"),
            "{err}"
        );
        let fresh = CheckpointFile::open(&path, "other", true).unwrap();
        assert_eq!(
            fresh.object(ObjectType::CONTACTS),
            ObjectCheckpoint::default()
        );

        again.finish().unwrap();
        let after = CheckpointFile::open(&path, "abc", false).unwrap();
        assert_eq!(
            after.object(ObjectType::CONTACTS),
            ObjectCheckpoint::default(),
            "a finished one starts afresh"
        );
    }

    #[test]
    fn a_corrupt_file_is_refused_without_quoting_it() {
        let path = dir().join("corrupt.json");
        std::fs::write(&path, b"{\"secretish\": ").unwrap();
        let err = CheckpointFile::open(&path, "abc", false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not valid checkpoint JSON") && !err.contains("secretish"),
            "{err}"
        );
    }
}
