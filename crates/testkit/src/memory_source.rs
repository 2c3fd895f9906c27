//! A [`Source`] over records held in memory: the other end of a migration when the connector
//! under test is a sink. Test scaffolding, not a vendor.

use async_trait::async_trait;
use ferry_core::{ConnectorError, ConnectorResult, ObjectType, Page, Record, Source, User};

/// Serves fixed records in pages of a fixed size, with the page offset as cursor.
#[derive(Clone, Debug)]
pub struct MemorySource {
    companies: Vec<Record>,
    contacts: Vec<Record>,
    page_size: usize,
}

impl MemorySource {
    /// A source of `records` (sorted into their object types, order kept), `page_size` per page.
    pub fn new(records: impl IntoIterator<Item = Record>, page_size: usize) -> MemorySource {
        let (companies, contacts) = records
            .into_iter()
            .partition(|r| r.object == ObjectType::COMPANIES);
        MemorySource {
            companies,
            contacts,
            page_size: page_size.max(1),
        }
    }

    fn records(&self, object: ObjectType) -> &[Record] {
        if object == ObjectType::COMPANIES {
            &self.companies
        } else if object == ObjectType::CONTACTS {
            &self.contacts
        } else {
            &[]
        }
    }
}

#[async_trait]
impl Source for MemorySource {
    fn vendor(&self) -> &'static str {
        "memory"
    }

    async fn check(&self) -> ConnectorResult<()> {
        Ok(())
    }

    async fn read_page(&self, object: ObjectType, cursor: Option<&str>) -> ConnectorResult<Page> {
        let records = self.records(object);
        let start = match cursor {
            None => 0,
            Some(c) => c.parse::<usize>().map_err(|_| ConnectorError::Malformed {
                vendor: "memory",
                endpoint: format!("read {object}"),
                detail: "the cursor is not a page offset".into(),
            })?,
        };
        let end = (start + self.page_size).min(records.len());
        Ok(Page {
            records: records.get(start..end).unwrap_or_default().to_vec(),
            next: (end < records.len()).then(|| end.to_string()),
            unreadable: Vec::new(),
        })
    }

    async fn count(&self, object: ObjectType) -> ConnectorResult<Option<u64>> {
        Ok(Some(self.records(object).len() as u64))
    }

    /// No users: its records name no owner, so a sink's own default applies to every one.
    async fn users(&self) -> ConnectorResult<Vec<User>> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_through_every_record_once() {
        let records = (0..7).map(|i| Record::new(ObjectType::CONTACTS, i.to_string()));
        let source = MemorySource::new(records, 3);
        let (mut seen, mut cursor) = (Vec::new(), None::<String>);
        loop {
            let page = source
                .read_page(ObjectType::CONTACTS, cursor.as_deref())
                .await
                .unwrap();
            seen.extend(page.records.into_iter().map(|r| r.source_id));
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["0", "1", "2", "3", "4", "5", "6"]);
        let empty = source.read_page(ObjectType::COMPANIES, None).await.unwrap();
        assert!(empty.records.is_empty() && empty.next.is_none());
    }
}
