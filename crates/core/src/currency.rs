//! Accounts that keep every amount in one currency. Most Salesforce and Zoho orgs never turn
//! on multiple currencies: their deals have no currency field, and every amount is in the
//! org's home currency. A connector learns that once ([`OrgCurrency::learn`], with its
//! vendor's call); then its source gives every deal that currency ([`OrgCurrency::stamp`]),
//! and its sink holds deals in that currency only: the engine refuses a deal in another per
//! record ([`OrgCurrency::limits`], [`crate::quality::VALUE_NOT_HELD`]) rather than write its
//! amount as if it were in the org's.

use std::future::Future;

use tokio::sync::OnceCell;

use crate::connector::FieldLimit;
use crate::error::ConnectorResult;
use crate::fields::FieldMaps;
use crate::model::{ObjectType, Record, Value, field};

/// Whether the account keeps one currency: learned on first need, once per connector.
#[derive(Debug, Default)]
pub struct OrgCurrency(OnceCell<Option<String>>);

impl OrgCurrency {
    /// For deals: the account's one currency, or `None` when it has several, asked of the
    /// vendor by `ask` the first time only. In a single-currency account `currency` is then
    /// left out of the deals' map in `fields`: there is no field to write or read. Other
    /// objects: `None`, nothing asked.
    pub async fn learn<F, Fut>(
        &self,
        object: ObjectType,
        fields: &FieldMaps,
        ask: F,
    ) -> ConnectorResult<Option<&str>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ConnectorResult<Option<String>>>,
    {
        if object != ObjectType::DEALS {
            return Ok(None);
        }
        let single = self.0.get_or_try_init(ask).await?.as_deref();
        if let Some(currency) = single {
            tracing::debug!(%currency, "the account keeps one currency");
            self.leave_out(object, fields);
        }
        Ok(single)
    }

    /// The account's one currency, if it was learned to keep one.
    pub fn known(&self) -> Option<&str> {
        self.0.get().and_then(|c| c.as_deref())
    }

    /// Leaves `currency` out of the deals' map again after a field map replaced it (a
    /// connector's `map_fields`), if the account is known to keep one currency.
    pub fn leave_out(&self, object: ObjectType, fields: &FieldMaps) {
        if object == ObjectType::DEALS && self.known().is_some() {
            fields.leave_out(object, field::CURRENCY);
        }
    }

    /// What a sink of a single-currency account cannot hold of `object`: a deal in another
    /// currency. Empty otherwise.
    pub fn limits(&self, object: ObjectType) -> Vec<FieldLimit> {
        match self.known() {
            Some(currency) if object == ObjectType::DEALS => vec![FieldLimit::only_values(
                field::CURRENCY,
                vec![currency.to_owned()],
            )],
            _ => Vec::new(),
        }
    }

    /// Gives every record the account's one currency, if it keeps one (a source's deals).
    pub fn stamp(&self, object: ObjectType, records: &mut [Record]) {
        if let Some(currency) = self.known().filter(|_| object == ObjectType::DEALS) {
            for record in records {
                record.set(field::CURRENCY, Value::Text(currency.to_owned()));
            }
        }
    }
}
