//! Whether an org keeps one currency ([`ferry_core::currency`]): Zoho shows a `Currency` field
//! on records only once multiple currencies are enabled (Enterprise and Ultimate editions);
//! otherwise every amount is in the org's home currency. `GET /crm/v8/org` says which
//! (`mc_status`) and names it (`iso_code`).

use ferry_core::{ConnectorError, ConnectorResult};
use reqwest::Method;

use crate::VENDOR;
use crate::client::Client;

const PATH: &str = "/crm/v8/org";

/// The org's one currency, or `None` when it has multiple currencies (scope
/// `ZohoCRM.org.READ`).
pub(crate) async fn single(client: &Client) -> ConnectorResult<Option<String>> {
    let response = client.send_ok(Method::GET, PATH, &[], None).await?;
    let endpoint = format!("GET {PATH}");
    let answer: serde_json::Value = response.json(VENDOR, &endpoint)?;
    let org = &answer["org"][0];
    let malformed = |detail: &str| ConnectorError::Malformed {
        vendor: VENDOR,
        endpoint: endpoint.clone(),
        detail: detail.to_owned(),
    };
    match org["mc_status"].as_bool() {
        Some(true) => Ok(None),
        Some(false) => org["iso_code"]
            .as_str()
            .map(str::trim)
            .filter(|iso| !iso.is_empty())
            .map(|iso| Some(iso.to_owned()))
            .ok_or_else(|| malformed("a single-currency org (mc_status false) names no iso_code")),
        None => Err(malformed(
            "the org does not say whether it has multiple currencies (mc_status)",
        )),
    }
}
