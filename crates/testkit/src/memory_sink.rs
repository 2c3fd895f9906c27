//! A [`Sink`] over records held in memory: the other end of an engine test when no vendor is
//! under test. Test scaffolding, not a vendor.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use ferry_core::connector::{
    Capability, IdPage, RecordOutcome, RecordRejection, Removal, RemoveOutcome, Removed, Written,
};
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Record, Sink, field};

/// The last name of a record the sink refuses (code `REFUSED`), as a vendor refuses a record.
pub const REFUSE: &str = "REFUSE";
/// The last name of a record the sink will not remove (code `LOCKED`), as a vendor keeps a
/// locked record.
pub const KEEP: &str = "KEEP";

/// Stores records by source id as written, less the fields it was told it cannot hold; refuses
/// records whose last name is [`REFUSE`] and will not remove those whose last name is [`KEEP`].
/// Lists the source ids it holds two to a page, so that id listings cross page boundaries.
#[derive(Debug)]
pub struct MemorySink {
    batch_size: usize,
    /// Fields of the model this sink has no place for (besides the owner, which it never holds).
    not_held: Vec<&'static str>,
    stored: Mutex<HashMap<String, Record>>,
    upserted: Mutex<u64>,
    removed: Mutex<Vec<(ObjectType, String, Removal)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemorySink {
    /// An empty sink writing, reading back and removing at most `batch_size` records a call.
    pub fn new(batch_size: usize) -> MemorySink {
        MemorySink {
            batch_size,
            not_held: Vec::new(),
            stored: Mutex::default(),
            upserted: Mutex::default(),
            removed: Mutex::default(),
        }
    }

    /// The same sink without a place for `field`: it is left out of the capability and dropped
    /// from what is stored.
    pub fn without(mut self, field: &'static str) -> MemorySink {
        self.not_held.push(field);
        self
    }

    /// The record stored for `source_id`.
    pub fn get(&self, source_id: &str) -> Option<Record> {
        lock(&self.stored).get(source_id).cloned()
    }

    /// Puts `record` in the sink (or replaces it) as if written there by someone else.
    pub fn put(&self, record: Record) {
        lock(&self.stored).insert(record.source_id.clone(), record);
    }

    /// The source ids stored, sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = lock(&self.stored).keys().cloned().collect();
        ids.sort();
        ids
    }

    /// How many records are stored.
    pub fn len(&self) -> usize {
        lock(&self.stored).len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        lock(&self.stored).is_empty()
    }

    /// Records handed to `upsert` so far, refused ones included.
    pub fn upserted(&self) -> u64 {
        *lock(&self.upserted)
    }

    /// The records removed so far, in order, with how.
    pub fn removed(&self) -> Vec<(ObjectType, String, Removal)> {
        lock(&self.removed).clone()
    }

    fn check_batch(&self, len: usize) -> ConnectorResult<()> {
        if len > self.batch_size {
            return Err(ConnectorError::Unsupported {
                vendor: "memsink",
                detail: format!(
                    "{len} records in one call, more than the batch size {}",
                    self.batch_size
                ),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for MemorySink {
    fn vendor(&self) -> &'static str {
        "memsink"
    }
    fn capability(&self, object: ObjectType) -> ConnectorResult<Capability> {
        Ok(Capability {
            batch_size: self.batch_size,
            read_back_size: self.batch_size,
            stored: object
                .fields()
                .iter()
                .filter(|f| f.name != field::OWNER && !self.not_held.contains(&f.name))
                .map(|f| f.name.to_owned())
                .collect(),
            required: Vec::new(),
            opt_out_needs_email: false,
            limits: Vec::new(),
        })
    }
    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }
    async fn prepare(&self, _: ObjectType) -> ConnectorResult<()> {
        Ok(())
    }
    async fn upsert(
        &self,
        _: ObjectType,
        records: &[Record],
    ) -> ConnectorResult<Vec<RecordOutcome>> {
        self.check_batch(records.len())?;
        *lock(&self.upserted) += records.len() as u64;
        let mut stored = lock(&self.stored);
        Ok(records
            .iter()
            .map(|r| RecordOutcome {
                source_id: r.source_id.clone(),
                result: if r.text(field::LAST_NAME) == Some(REFUSE) {
                    Err(RecordRejection {
                        source_id: r.source_id.clone(),
                        code: "REFUSED".into(),
                        reason: "refused".into(),
                    })
                } else {
                    let mut kept = r.clone();
                    for name in &self.not_held {
                        kept.fields.remove(name);
                    }
                    Ok(Written {
                        sink_id: format!("s-{}", r.source_id),
                        created: stored.insert(r.source_id.clone(), kept).is_none(),
                    })
                },
            })
            .collect())
    }
    async fn read_back(&self, _: ObjectType, ids: &[String]) -> ConnectorResult<Vec<Record>> {
        self.check_batch(ids.len())?;
        let stored = lock(&self.stored);
        Ok(ids
            .iter()
            .filter_map(|id| stored.get(id).cloned())
            .collect())
    }
    async fn source_ids_page(
        &self,
        object: ObjectType,
        cursor: Option<&str>,
    ) -> ConnectorResult<IdPage> {
        let mut ids: Vec<String> = lock(&self.stored)
            .values()
            .filter(|r| r.object == object)
            .map(|r| r.source_id.clone())
            .collect();
        ids.sort();
        let start: usize = match cursor {
            None => 0,
            Some(c) => c.parse().map_err(|_| ConnectorError::Malformed {
                vendor: "memsink",
                endpoint: "source_ids_page".into(),
                detail: "not a cursor of this sink".into(),
            })?,
        };
        let start = start.min(ids.len());
        let end = (start + 2).min(ids.len());
        Ok(IdPage {
            ids: ids[start..end].to_vec(),
            next: (end < ids.len()).then(|| end.to_string()),
        })
    }
    async fn remove(
        &self,
        object: ObjectType,
        ids: &[String],
        how: Removal,
    ) -> ConnectorResult<Vec<RemoveOutcome>> {
        self.check_batch(ids.len())?;
        let mut stored = lock(&self.stored);
        let mut removed = lock(&self.removed);
        Ok(ids
            .iter()
            .map(|id| RemoveOutcome {
                source_id: id.clone(),
                result: match stored.get(id) {
                    None => Ok(Removed::Absent),
                    Some(r) if r.text(field::LAST_NAME) == Some(KEEP) => Err(RecordRejection {
                        source_id: id.clone(),
                        code: "LOCKED".into(),
                        reason: "the record is locked".into(),
                    }),
                    Some(_) => {
                        stored.remove(id);
                        removed.push((object, id.clone(), how));
                        Ok(match how {
                            Removal::Archive => Removed::Archived,
                            Removal::Delete => Removed::Deleted,
                        })
                    }
                },
            })
            .collect())
    }
}
