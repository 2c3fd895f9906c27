//! The operator's config file (`ferry.toml`): which vendors, which objects, how.
//!
//! Every table rejects unknown keys, so a typo is an error naming the key rather than a
//! setting silently ignored. Secrets are only `${ENV_VAR}` references (see `SecretRef`).

use std::path::Path;

use anyhow::{Context, anyhow, bail};
use ferry_core::ObjectType;
use ferry_core::quality::{InvalidEmail, MissingReference, MissingRequired, QualityRules};
use serde::Deserialize;

/// The config file format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

/// A parsed config file. Connector tables stay raw until the registry knows which connector
/// they are for.
#[derive(Debug)]
pub struct Config {
    /// The `[source]` table: `connector` and that connector's settings.
    pub source: ConnectorTable,
    /// The `[sink]` table.
    pub sink: ConnectorTable,
    /// The `[migration]` table.
    pub migration: MigrationConfig,
}

/// A connector's table: its name and the rest of its settings.
#[derive(Debug, Clone)]
pub struct ConnectorTable {
    /// `source` or `sink`: the table's name, for error messages.
    pub role: &'static str,
    /// The connector's name, e.g. `hubspot`.
    pub connector: String,
    /// The remaining settings, parsed by the connector's own config type.
    pub settings: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Config format version; absent means the current one.
    version: Option<u32>,
    source: Option<toml::Table>,
    sink: Option<toml::Table>,
    #[serde(default)]
    migration: MigrationConfig,
}

/// The `[migration]` table: what to move and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationConfig {
    /// Object types to move, run parents first whatever the order given.
    /// Default: `["companies", "contacts"]`.
    #[serde(default = "default_objects")]
    pub objects: Vec<String>,
    /// Sink batches (writes, and read-backs) in flight at once. Default 4.
    #[serde(default = "default_in_flight")]
    pub batches_in_flight: usize,
    /// What to do with a malformed email address: `"reject"` (default; the record is listed as
    /// failed and not written) or `"warn"` (written, and listed as a warning).
    #[serde(default)]
    pub invalid_email: InvalidEmail,
    /// A file where `migrate` saves how far it got (cursors and counts only, never record data),
    /// so that a run that was stopped or killed resumes there. Relative paths are relative to
    /// the working directory. Default: none (a rerun starts over; upserts keep it correct).
    #[serde(default)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// What to do with a record missing a field the sink requires: `"reject"` (default: the
    /// record is listed as failed; ferry never invents data silently) or
    /// `{ placeholder = "[not provided]" }` (that text is written, and a warning lists the record).
    #[serde(default)]
    pub missing_required: MissingRequired,
    /// What to do with a record referring to one the source does not have (a contact whose
    /// company is not among the companies read): `"reject"` (default) or `"drop"` (written
    /// without the reference, with a warning).
    #[serde(default)]
    pub missing_reference: MissingReference,
    /// Records holding more than this many bytes of text are refused. Default 1 MiB.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
}

fn default_max_record_bytes() -> usize {
    QualityRules::default().max_record_bytes
}

impl Default for MigrationConfig {
    fn default() -> Self {
        MigrationConfig {
            objects: default_objects(),
            batches_in_flight: default_in_flight(),
            invalid_email: InvalidEmail::default(),
            checkpoint: None,
            missing_required: MissingRequired::default(),
            missing_reference: MissingReference::default(),
            max_record_bytes: default_max_record_bytes(),
        }
    }
}

fn default_objects() -> Vec<String> {
    ObjectType::ALL
        .iter()
        .map(|o| o.as_str().to_owned())
        .collect()
}

fn default_in_flight() -> usize {
    4
}

impl MigrationConfig {
    /// The data-quality rules these settings describe.
    pub fn quality_rules(&self) -> QualityRules {
        QualityRules {
            invalid_email: self.invalid_email,
            max_record_bytes: self.max_record_bytes,
            missing_required: self.missing_required.clone(),
            missing_reference: self.missing_reference,
        }
    }

    /// The object types to run, validated and in dependency order.
    pub fn object_types(&self) -> anyhow::Result<Vec<ObjectType>> {
        let mut objects = Vec::new();
        for name in &self.objects {
            let object = ObjectType::parse(name).ok_or_else(|| {
                let known: Vec<&str> = ObjectType::ALL.iter().map(|o| o.as_str()).collect();
                anyhow!(
                    "config key `migration.objects`: unknown object `{name}` (known: {})",
                    known.join(", ")
                )
            })?;
            if !objects.contains(&object) {
                objects.push(object);
            }
        }
        if objects.is_empty() {
            bail!("config key `migration.objects`: lists no object to migrate");
        }
        objects.sort(); // ObjectType's order is the dependency order
        Ok(objects)
    }

    /// Checks values that serde's types cannot express.
    pub fn validate(&self) -> anyhow::Result<()> {
        if !(1..=64).contains(&self.batches_in_flight) {
            bail!(
                "config key `migration.batches_in_flight`: must be between 1 and 64, got {}",
                self.batches_in_flight
            );
        }
        self.object_types().map(|_| ())
    }
}

impl Config {
    /// A fingerprint of what this migration is: vendors, settings and objects. Changing any of
    /// them makes an existing checkpoint refuse to resume.
    pub fn fingerprint(&self) -> anyhow::Result<String> {
        let table = |t: &ConnectorTable| -> anyhow::Result<String> {
            Ok(format!(
                "{}\n{}",
                t.connector,
                toml::to_string(&t.settings)?
            ))
        };
        let objects: Vec<&str> = self
            .migration
            .object_types()?
            .iter()
            .map(|o| o.as_str())
            .collect();
        let (source, sink) = (table(&self.source)?, table(&self.sink)?);
        Ok(ferry_core::checkpoint::fingerprint(&[
            &source,
            &sink,
            &objects.join(","),
        ]))
    }

    /// Reads and validates the config file at `path` (no network access).
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// Parses config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| anyhow!("{}", e.to_string().trim_end()))?;
        if let Some(version) = raw.version {
            if version != CONFIG_VERSION {
                bail!(
                    "config key `version`: this ferry reads version {CONFIG_VERSION}, the file says {version}"
                );
            }
        }
        let source = connector_table("source", raw.source)?;
        let sink = connector_table("sink", raw.sink)?;
        raw.migration.validate()?;
        Ok(Config {
            source,
            sink,
            migration: raw.migration,
        })
    }
}

fn connector_table(
    role: &'static str,
    table: Option<toml::Table>,
) -> anyhow::Result<ConnectorTable> {
    let mut settings = table.ok_or_else(|| anyhow!("missing table `[{role}]`"))?;
    let connector = match settings.remove("connector") {
        Some(toml::Value::String(name)) => name,
        Some(_) => bail!("config key `{role}.connector`: must be a string such as \"hubspot\""),
        None => bail!(
            "config key `{role}.connector`: missing; name the vendor, e.g. connector = \"hubspot\""
        ),
    };
    Ok(ConnectorTable {
        role,
        connector,
        settings,
    })
}

impl ConnectorTable {
    /// A table built in code (the demo's), from `(key, value)` string settings.
    pub fn from_settings(
        role: &'static str,
        connector: &str,
        settings: &[(&str, String)],
    ) -> ConnectorTable {
        let settings = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), toml::Value::String(v.clone())))
            .collect();
        ConnectorTable {
            role,
            connector: connector.to_owned(),
            settings,
        }
    }

    /// The settings as JSON, the form connectors parse their config from.
    pub fn settings_json(&self) -> Result<serde_json::Value, crate::CliError> {
        serde_json::to_value(&self.settings).map_err(|e| {
            crate::CliError::config(anyhow!(
                "config table `[{}]`: cannot be read: {e}",
                self.role
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [source]
        connector = "hubspot"
        token = "${HUBSPOT_TOKEN}"

        [sink]
        connector = "salesforce"

        [migration]
        objects = ["contacts", "companies"]
    "#;

    #[test]
    fn parses_and_orders_objects_parents_first() {
        let config = Config::parse(GOOD).unwrap();
        assert_eq!(config.source.connector, "hubspot");
        assert_eq!(
            config.migration.object_types().unwrap(),
            vec![ObjectType::Companies, ObjectType::Contacts]
        );
        assert!(
            config.source.settings.contains_key("token")
                && !config.source.settings.contains_key("connector")
        );
    }

    #[test]
    fn data_quality_rules_parse() {
        let text = GOOD.replace("[migration]", "[migration]\nmissing_required = { placeholder = \"[not provided]\" }\nmissing_reference = \"drop\"");
        let rules = Config::parse(&text).unwrap().migration.quality_rules();
        assert_eq!(
            rules.missing_required,
            MissingRequired::Placeholder("[not provided]".into())
        );
        assert_eq!(rules.missing_reference, MissingReference::Drop);
        assert_eq!(
            Config::parse(GOOD).unwrap().migration.quality_rules(),
            QualityRules::default()
        );
        let bad = GOOD.replace("[migration]", "[migration]\nmissing_required = \"guess\"");
        assert!(format!("{:#}", Config::parse(&bad).unwrap_err()).contains("missing_required"));
    }

    #[test]
    fn mistakes_name_the_key() {
        let err = |text: &str| format!("{:#}", Config::parse(text).unwrap_err());
        assert!(err("[source]\nconnector='hubspot'\n").contains("[sink]"));
        assert!(err(&GOOD.replace("objects", "objcts")).contains("objcts"));
        assert!(err(&GOOD.replace("\"companies\"", "\"deals\"")).contains("migration.objects"));
        assert!(err(&GOOD.replace("connector = \"salesforce\"", "")).contains("sink.connector"));
        assert!(err(&format!("version = 9\n{GOOD}")).contains("version"));
        assert!(
            err(&GOOD.replace("[migration]", "[migration]\nbatches_in_flight = 0"))
                .contains("batches_in_flight")
        );
    }
}
