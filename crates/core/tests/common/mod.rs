//! What the engine's integration tests share: an in-memory source that pages through the
//! records it was given, and answers with the users and pipelines it was given.

#![allow(dead_code)]

use std::sync::Mutex;

use async_trait::async_trait;
use ferry_core::{ConnectorResult, ObjectType, Page, Pipeline, Record, Source, User};

/// Reads the records it was given, `page_size` to a page, and counts the pages read.
pub struct MemorySource {
    records: Vec<Record>,
    page_size: usize,
    users: Vec<User>,
    /// The deal pipelines it reports.
    pub pipelines: Vec<Pipeline>,
    /// How many pages were read (0: the run stopped before reading).
    pub pages_read: Mutex<usize>,
}

impl MemorySource {
    /// A source of `records`, `page_size` to a page, with no users or pipelines.
    pub fn new(records: Vec<Record>, page_size: usize) -> MemorySource {
        MemorySource {
            records,
            page_size,
            users: Vec::new(),
            pipelines: Vec::new(),
            pages_read: Mutex::new(0),
        }
    }

    /// This source, reporting `users` and `pipelines`.
    pub fn with_directory(mut self, users: Vec<User>, pipelines: Vec<Pipeline>) -> MemorySource {
        self.users = users;
        self.pipelines = pipelines;
        self
    }
}

#[async_trait]
impl Source for MemorySource {
    fn vendor(&self) -> &'static str {
        "memsource"
    }
    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }
    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        *self.pages_read.lock().unwrap() += 1;
        let start: usize = cursor.and_then(|c| c.parse().ok()).unwrap_or(0);
        let all: Vec<&Record> = self.records.iter().filter(|r| r.object == object).collect();
        let end = (start + self.page_size).min(all.len());
        Ok(Page {
            records: all[start..end].iter().map(|r| (*r).clone()).collect(),
            next: (end < all.len()).then(|| end.to_string()),
            unreadable: Vec::new(),
        })
    }
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        Ok(self.users.clone())
    }
    async fn pipelines(&self, _: ObjectType) -> ConnectorResult<Vec<Pipeline>> {
        Ok(self.pipelines.clone())
    }
}
