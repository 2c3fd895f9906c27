//! The connector registry: maps a config's `connector = "…"` to an implementation.
//!
//! Adding a vendor adds one line to `source` and/or `sink` here.

use std::sync::Arc;

use ferry_core::{ConnectorError, SecretRef, Sink, Source};
use secrecy::SecretString;

use crate::CliError;
use crate::config::ConnectorTable;

/// Connectors that can be a source.
pub const SOURCES: &[&str] = &["hubspot"];
/// Connectors that can be a sink.
pub const SINKS: &[&str] = &["salesforce"];

/// Builds the `[source]` connector. Configuration mistakes exit 2.
pub fn source(table: &ConnectorTable) -> Result<Arc<dyn Source>, CliError> {
    match table.connector.as_str() {
        "hubspot" => {
            let config = table.parse().map_err(CliError::config)?;
            Ok(Arc::new(
                ferry_hubspot::HubspotSource::new(config, table.role).map_err(connector_error)?,
            ))
        }
        other => Err(unknown(table, other, SOURCES)),
    }
}

/// Builds the `[sink]` connector. Configuration mistakes exit 2.
pub fn sink(table: &ConnectorTable) -> Result<Arc<dyn Sink>, CliError> {
    match table.connector.as_str() {
        "salesforce" => {
            let config = table.parse().map_err(CliError::config)?;
            Ok(Arc::new(
                ferry_salesforce::SalesforceSink::new(config, table.role)
                    .map_err(connector_error)?,
            ))
        }
        other => Err(unknown(table, other, SINKS)),
    }
}

/// A source and a sink, ready to run.
pub type Pair = (Arc<dyn Source>, Arc<dyn Sink>);

/// The demo's pair: HubSpot and Salesforce emulators with the sandbox's in-memory credentials.
pub fn sandbox_pair(hubspot_url: &str, salesforce_url: &str) -> Result<Pair, CliError> {
    let secret = |s: &str| SecretRef::in_memory(SecretString::from(s.to_owned()));
    let mut source = ferry_hubspot::HubspotConfig::new(secret(ferry_sandbox::HUBSPOT_TOKEN));
    source.base_url = Some(hubspot_url.to_owned());
    let mut sink = ferry_salesforce::SalesforceConfig::new(
        secret(ferry_sandbox::SALESFORCE_CLIENT_ID),
        secret(ferry_sandbox::SALESFORCE_CLIENT_SECRET),
    );
    sink.login_url = Some(salesforce_url.to_owned());
    let source = ferry_hubspot::HubspotSource::new(source, "source").map_err(CliError::failed)?;
    let sink = ferry_salesforce::SalesforceSink::new(sink, "sink").map_err(CliError::failed)?;
    Ok((Arc::new(source), Arc::new(sink)))
}

fn connector_error(e: ConnectorError) -> CliError {
    if matches!(e, ConnectorError::Config { .. }) {
        CliError::config(e)
    } else {
        CliError::failed(e)
    }
}

fn unknown(table: &ConnectorTable, name: &str, known: &[&str]) -> CliError {
    CliError::config(anyhow::anyhow!(
        "config key `{}.connector`: no {} connector called `{name}` (available: {})",
        table.role,
        table.role,
        known.join(", ")
    ))
}
