//! The connector registry: every connector ferry knows, and how a config's
//! `connector = "…"` becomes a running source or sink.
//!
//! Adding a vendor adds one line to `all()` (and its crate to `Cargo.toml`).

use std::sync::Arc;

use ferry_core::{ConnectorError, ConnectorSpec, Sink, Source};

use crate::CliError;
use crate::config::ConnectorTable;

/// Every connector, one line each.
pub fn all() -> Vec<ConnectorSpec> {
    vec![
        ferry_hubspot::spec(),
        ferry_salesforce::spec(),
        ferry_dynamics::spec(),
        ferry_zoho::spec(),
        ferry_pipedrive::spec(),
    ]
}

/// The connector a config's `connector = "…"` names, if ferry has it.
pub fn by_name(name: &str) -> Option<ConnectorSpec> {
    all().into_iter().find(|c| c.name == name)
}

/// Builds the `[source]` connector. Configuration mistakes exit 2.
pub fn source(table: &ConnectorTable) -> Result<Arc<dyn Source>, CliError> {
    let build = by_name(&table.connector)
        .and_then(|c| c.source)
        .ok_or_else(|| unknown(table))?;
    build(table.settings_json()?, table.role).map_err(connector_error)
}

/// Builds the `[sink]` connector. Configuration mistakes exit 2.
pub fn sink(table: &ConnectorTable) -> Result<Arc<dyn Sink>, CliError> {
    let build = by_name(&table.connector)
        .and_then(|c| c.sink)
        .ok_or_else(|| unknown(table))?;
    build(table.settings_json()?, table.role).map_err(connector_error)
}

fn connector_error(e: ConnectorError) -> CliError {
    if matches!(e, ConnectorError::Config { .. }) {
        CliError::config(e)
    } else {
        CliError::failed(e)
    }
}

fn unknown(table: &ConnectorTable) -> CliError {
    let able: Vec<&str> = all()
        .into_iter()
        .filter(|c| {
            if table.role == "source" {
                c.source.is_some()
            } else {
                c.sink.is_some()
            }
        })
        .map(|c| c.name)
        .collect();
    CliError::config(anyhow::anyhow!(
        "config key `{}.connector`: no {} connector called `{}` (available as {}: {})",
        table.role,
        table.role,
        table.connector,
        table.role,
        able.join(", ")
    ))
}

/// The `ferry connectors` listing.
pub fn listing() -> String {
    let mut out = format!(
        "{:<12} {:<8} {:<8} {:<22} {}\n",
        "connector", "source", "sink", "objects", "API"
    );
    for c in all() {
        let objects: Vec<&str> = c.objects.iter().map(|o| o.as_str()).collect();
        let yes = |b: bool| if b { "yes" } else { "-" };
        out.push_str(&format!(
            "{:<12} {:<8} {:<8} {:<22} {}\n",
            c.name,
            yes(c.source.is_some()),
            yes(c.sink.is_some()),
            objects.join(", "),
            c.title
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use ferry_core::Role;

    #[test]
    fn every_connector_has_permission_advice() {
        for spec in super::all() {
            for role in Role::ALL {
                let p = (spec.permissions)(role);
                assert!(
                    !p.needs.trim().is_empty() && !p.visibility.trim().is_empty(),
                    "{} {}",
                    spec.name,
                    role.as_str()
                );
            }
        }
    }

    #[test]
    fn advice_differs_by_role() {
        for spec in super::all() {
            let needs = |role| (spec.permissions)(role).needs;
            assert_ne!(needs(Role::Source), needs(Role::Sink), "{}", spec.name);
        }
    }
}
