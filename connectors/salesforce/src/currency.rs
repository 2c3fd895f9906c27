//! Whether an org keeps one currency ([`ferry_core::currency`]): an org without multiple
//! currencies has no `CurrencyIsoCode` on Opportunity, and its amounts are all in
//! `Organization.DefaultCurrencyIsoCode`.

use ferry_core::json::Field;
use ferry_core::{ConnectorError, ConnectorResult};

use crate::VENDOR;
use crate::client::Client;

/// The org's corporate currency.
const ORG_CURRENCY_SOQL: &str = "SELECT DefaultCurrencyIsoCode FROM Organization";

/// The org's one currency, or `None` when it has multiple currencies: one describe of
/// Opportunity and, in a single-currency org, one query of Organization.
pub(crate) async fn single(client: &Client) -> ConnectorResult<Option<String>> {
    let described = crate::fields::describe(client, "Opportunity").await?;
    single_by(client, &described).await
}

/// [`single`] with Opportunity's describe read already: in a single-currency org, one query
/// of Organization.
pub(crate) async fn single_by(
    client: &Client,
    described: &crate::fields::Describe,
) -> ConnectorResult<Option<String>> {
    if described.field("CurrencyIsoCode").is_some() {
        return Ok(None);
    }
    let mut currency = None;
    client
        .query_each(ORG_CURRENCY_SOQL, |org| {
            if let Some(iso) = org.get("DefaultCurrencyIsoCode").and_then(Field::as_str) {
                currency.get_or_insert_with(|| iso.trim().to_owned());
            }
        })
        .await?;
    currency
        .filter(|iso| !iso.is_empty())
        .map(Some)
        .ok_or_else(|| ConnectorError::Malformed {
            vendor: VENDOR,
            endpoint: format!("GET {}", client.data_path("query")),
            detail: "Opportunity has no CurrencyIsoCode (a single-currency org), and Organization \
                     names no DefaultCurrencyIsoCode"
                .into(),
        })
}
