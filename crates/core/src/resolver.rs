//! The reference resolver sinks share: a reference holds the target's *source* id, and a sink
//! whose vendor links records by its own ids (Zoho, Pipedrive, HubSpot associations) must find
//! the target's sink id. This keeps source id ↔ sink id pairs per object in a bounded two-way
//! cache, looks the misses up in one batch through the connector's own lookup, and words the
//! refusal of a record whose reference cannot be resolved, naming the field, never a value.
//!
//! The bound is on memory, not on correctness: past it the cache starts over, and a miss
//! costs a lookup. Vendors that resolve references themselves (Salesforce and Dataverse, by
//! the target's external id in the write) need none of this.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};

use crate::connector::RecordRejection;
use crate::error::ConnectorResult;
use crate::model::ObjectType;

/// The refusal code of a record whose reference names a target the sink does not hold.
pub const UNRESOLVED_REFERENCE: &str = "UNRESOLVED_REFERENCE";

/// The most pairs a resolver keeps by default (per direction): about 200,000 companies, a few
/// tens of MB at most.
pub const DEFAULT_LIMIT: usize = 200_000;

struct Pairs<Id> {
    by_source: HashMap<(ObjectType, String), Id>,
    by_id: HashMap<(ObjectType, Id), String>,
    /// Objects whose every record carrying a source id was written by this run (the sink made
    /// the source-id field itself): a miss then means "absent" without a lookup.
    complete: HashSet<ObjectType>,
}

/// Source id ↔ sink id, per object, bounded.
pub struct Resolver<Id> {
    pairs: Mutex<Pairs<Id>>,
    limit: usize,
}

impl<Id: Clone + Eq + Hash> Default for Resolver<Id> {
    fn default() -> Self {
        Resolver::with_limit(DEFAULT_LIMIT)
    }
}

impl<Id: Clone + Eq + Hash> Resolver<Id> {
    /// A resolver keeping at most `limit` pairs before it starts over.
    pub fn with_limit(limit: usize) -> Resolver<Id> {
        Resolver {
            pairs: Mutex::new(Pairs {
                by_source: HashMap::new(),
                by_id: HashMap::new(),
                complete: HashSet::new(),
            }),
            limit: limit.max(1),
        }
    }

    fn pairs(&self) -> std::sync::MutexGuard<'_, Pairs<Id>> {
        self.pairs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Remembers that `source_id` of `object` is `id` in the sink (written or found).
    pub fn remember(&self, object: ObjectType, source_id: &str, id: Id) {
        let mut pairs = self.pairs();
        if pairs.by_source.len() >= self.limit || pairs.by_id.len() >= self.limit {
            pairs.by_source.clear();
            pairs.by_id.clear();
            // What was complete is no longer all in the cache.
            pairs.complete.clear();
        }
        pairs
            .by_source
            .insert((object, source_id.to_owned()), id.clone());
        pairs.by_id.insert((object, id), source_id.to_owned());
    }

    /// Marks `object` as written only by this run (see [`Resolver::resolve`]).
    pub fn mark_complete(&self, object: ObjectType) {
        self.pairs().complete.insert(object);
    }

    /// The sink id of `source_id`, if known.
    pub fn sink_id(&self, object: ObjectType, source_id: &str) -> Option<Id> {
        self.pairs()
            .by_source
            .get(&(object, source_id.to_owned()))
            .cloned()
    }

    /// The source id of sink record `id`, if known (mapping a read-back's reference back).
    pub fn source_id(&self, object: ObjectType, id: &Id) -> Option<String> {
        self.pairs().by_id.get(&(object, id.clone())).cloned()
    }

    /// The sink ids of `source_ids` (duplicates and empty ids ignored): known ones from the
    /// cache, the others through `lookup` in one call (none when the object is complete), which
    /// are then remembered. Ids neither knows are absent from the answer.
    pub async fn resolve<F, Fut>(
        &self,
        object: ObjectType,
        source_ids: impl IntoIterator<Item = &str>,
        lookup: F,
    ) -> ConnectorResult<HashMap<String, Id>>
    where
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = ConnectorResult<HashMap<String, Id>>>,
    {
        let mut found = HashMap::new();
        let mut missing: Vec<String> = Vec::new();
        let complete = {
            let pairs = self.pairs();
            for sid in source_ids {
                if sid.is_empty() || found.contains_key(sid) || missing.iter().any(|m| m == sid) {
                    continue;
                }
                match pairs.by_source.get(&(object, sid.to_owned())) {
                    Some(id) => {
                        found.insert(sid.to_owned(), id.clone());
                    }
                    None => missing.push(sid.to_owned()),
                }
            }
            pairs.complete.contains(&object)
        };
        if !missing.is_empty() && !complete {
            for (sid, id) in lookup(missing).await? {
                self.remember(object, &sid, id.clone());
                found.insert(sid, id);
            }
        }
        Ok(found)
    }

    /// The refusal of a record whose `field` refers to a `target` record the sink does not
    /// hold: names the field and the target object, never the value.
    pub fn unresolved(source_id: &str, field: &str, target: ObjectType) -> RecordRejection {
        RecordRejection {
            source_id: source_id.to_owned(),
            code: UNRESOLVED_REFERENCE.to_owned(),
            reason: format!(
                "field `{field}`: the {target} record it refers to is not in the sink (it was not \
                 migrated, or was refused); not written"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn misses_are_looked_up_once_in_a_batch_and_remembered_both_ways() {
        let resolver: Resolver<u64> = Resolver::default();
        resolver.remember(ObjectType::COMPANIES, "co-1", 11);
        let calls = AtomicUsize::new(0);
        let lookup = |asked: Vec<String>| {
            calls.fetch_add(1, Ordering::Relaxed);
            assert_eq!(asked, ["co-2", "co-3"]);
            async { Ok(HashMap::from([("co-2".to_owned(), 12)])) }
        };
        let found = resolver
            .resolve(
                ObjectType::COMPANIES,
                ["co-1", "co-2", "co-2", "", "co-3"],
                lookup,
            )
            .await
            .unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(resolver.sink_id(ObjectType::COMPANIES, "co-2"), Some(12));
        assert_eq!(
            resolver.source_id(ObjectType::COMPANIES, &12).as_deref(),
            Some("co-2")
        );
        // Another object's ids are apart.
        assert_eq!(resolver.sink_id(ObjectType::CONTACTS, "co-2"), None);
    }

    #[tokio::test]
    async fn a_complete_object_needs_no_lookup_and_the_bound_starts_over() {
        let resolver: Resolver<u64> = Resolver::with_limit(2);
        resolver.mark_complete(ObjectType::COMPANIES);
        let found = resolver
            .resolve(ObjectType::COMPANIES, ["co-9"], |_| async {
                panic!("no lookup for a complete object")
            })
            .await
            .unwrap();
        assert!(found.is_empty());
        resolver.remember(ObjectType::COMPANIES, "a", 1);
        resolver.remember(ObjectType::COMPANIES, "b", 2);
        resolver.remember(ObjectType::COMPANIES, "c", 3);
        assert_eq!(resolver.sink_id(ObjectType::COMPANIES, "a"), None);
        assert_eq!(resolver.sink_id(ObjectType::COMPANIES, "c"), Some(3));
        // Starting over forgets completeness: a miss is looked up again.
        let looked = resolver
            .resolve(ObjectType::COMPANIES, ["z"], |asked| async move {
                Ok(HashMap::from([(asked[0].clone(), 26)]))
            })
            .await
            .unwrap();
        assert_eq!(looked.get("z"), Some(&26));
        let refusal = Resolver::<u64>::unresolved("p-1", "company", ObjectType::COMPANIES);
        assert_eq!(refusal.code, UNRESOLVED_REFERENCE);
        assert!(refusal.reason.contains("`company`") && refusal.reason.contains("companies"));
    }
}
