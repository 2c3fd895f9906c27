//! Requests asked ahead of the reader, each in a task of its own so that it goes on between
//! `fetch_page` calls, and kept per object for the cursor the last call handed out: the next
//! call with that cursor takes them, a call with any other cursor (a retry, a read started
//! again) finds none and asks afresh. A checkpoint names only what was handed out, so a resume
//! in a new process simply asks again for what was in flight.
//!
//! The same shape as the Zoho source's COQL pages in flight; not Zoho-specific, so a candidate
//! for `ferry_core::kit` if a third source needs it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use ferry_core::ObjectType;
use tokio::task::JoinHandle;

/// Requests in flight, each under the key of what it asks for.
pub(crate) struct Pending<K, T>(Vec<(K, JoinHandle<T>)>);

impl<K: PartialEq, T> Pending<K, T> {
    /// No requests.
    pub(crate) fn new() -> Pending<K, T> {
        Pending(Vec::new())
    }

    /// The request for `key`, if one is in flight.
    pub(crate) fn take(&mut self, key: &K) -> Option<JoinHandle<T>> {
        let at = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.swap_remove(at).1)
    }

    /// Whether a request for `key` is in flight.
    pub(crate) fn holds(&self, key: &K) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Drops the requests whose keys `keep` refuses.
    pub(crate) fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        self.0.retain(|(k, _)| keep(k));
    }

    /// Keeps `task`, the request for `key`.
    pub(crate) fn push(&mut self, key: K, task: JoinHandle<T>) {
        self.0.push((key, task));
    }
}

/// Per object, the requests kept for the cursor the last call handed out. A request dropped
/// unread is not aborted: it was paced by the rate limiter already, and its answer is dropped.
pub(crate) struct Ahead<K, T> {
    kept: Mutex<HashMap<ObjectType, Kept<K, T>>>,
}

/// The cursor a call handed out and the requests kept for the call that comes with it.
type Kept<K, T> = (String, Pending<K, T>);

impl<K: PartialEq, T> Ahead<K, T> {
    /// Nothing kept.
    pub(crate) fn new() -> Ahead<K, T> {
        Ahead {
            kept: Mutex::new(HashMap::new()),
        }
    }

    /// The requests kept for a call of `object` with `cursor`; none if the last call handed
    /// out another cursor.
    pub(crate) fn take(&self, object: ObjectType, cursor: &str) -> Pending<K, T> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        match kept.remove(&object) {
            Some((at, pending)) if at == cursor => pending,
            _ => Pending::new(),
        }
    }

    /// Keeps `pending` for the next call of `object`, which comes with `cursor`.
    pub(crate) fn keep(&self, object: ObjectType, cursor: String, pending: Pending<K, T>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.insert(object, (cursor, pending));
    }

    /// Drops what `object` kept (a read starting afresh).
    pub(crate) fn forget(&self, object: ObjectType) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.remove(&object);
    }
}
