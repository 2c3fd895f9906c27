//! The operator's field map at run time: both vendors' field metadata is read (never a record
//! value), `[fields.*]` and `[values.*]` are resolved against it (`ferry_core::fieldplan`),
//! missing sink fields are created when `create_missing_fields` allows it, and each connector
//! is told the bindings it adds to its standard table. Also `ferry fields`, which lists it all.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::anyhow;
use ferry_core::fieldplan::{self, FieldPlan, FieldPlanError, FieldSettings, PlanInput};
use ferry_core::{ConnectorError, ObjectType, Sink, Source, VendorField};
use serde::Serialize;

use crate::config::Config;
use crate::{CliError, ReportFormat, connectors};

/// Whether a command may create the sink fields the map needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creating {
    /// `migrate` with `create_missing_fields = true`: create them, and say so.
    Allowed,
    /// `plan` with `create_missing_fields = true`: list what would be created.
    WouldCreate,
    /// `verify`, `fields`, or the setting off: a missing field is a config error.
    Never,
}

/// A field ferry created in the sink, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct CreatedField {
    /// The object.
    pub object: ObjectType,
    /// The field as the sink now lists it.
    pub name: String,
    /// Its kind.
    pub kind: ferry_core::FieldKind,
}

/// The resolved field maps of a run.
#[derive(Debug, Default)]
pub struct FieldSetup {
    /// Per object whose fields both vendors describe.
    pub plans: BTreeMap<ObjectType, FieldPlan>,
    /// Fields created in the sink by this run.
    pub created: Vec<CreatedField>,
    /// The source's fields per object, as it described them: the run's consent guard asks
    /// which opt-outs the source holds without describing it again.
    pub source_fields: BTreeMap<ObjectType, Vec<VendorField>>,
}

/// Both sides' field metadata of `object`; `None` when a connector cannot describe its fields
/// and the config maps nothing for it (then only standard fields travel, as before).
async fn describe_both(
    source: &dyn Source,
    sink: &dyn Sink,
    object: ObjectType,
    settings: &FieldSettings,
) -> Result<Option<(Vec<VendorField>, Vec<VendorField>)>, CliError> {
    let (from, to) = tokio::join!(source.describe(object), sink.describe(object));
    match (from, to) {
        (Ok(from), Ok(to)) => Ok(Some((from, to))),
        (Err(ConnectorError::Unsupported { vendor, .. }), _)
        | (_, Err(ConnectorError::Unsupported { vendor, .. })) => {
            if settings.is_empty() {
                Ok(None)
            } else {
                Err(CliError::config(anyhow!(
                    "config key `fields.{object}`: the {vendor} connector cannot list its fields, \
                     so none can be mapped"
                )))
            }
        }
        (Err(e), _) | (_, Err(e)) => Err(CliError::failed(
            anyhow::Error::new(e).context(format!("reading the {object} field metadata")),
        )),
    }
}

/// Reads both vendors' fields for `objects`, resolves the config's field map, creates missing
/// sink fields when `creating` allows, and gives each connector its bindings. Every mistake is
/// listed at once (exit 2), before anything is read or written.
pub async fn resolve(
    source: &Arc<dyn Source>,
    sink: &Arc<dyn Sink>,
    config: &Config,
    objects: &[ObjectType],
    creating: Creating,
) -> Result<FieldSetup, CliError> {
    let creating = if config.create_missing_fields {
        creating
    } else {
        Creating::Never
    };
    let mut setup = FieldSetup::default();
    let mut problems: Vec<String> = Vec::new();
    for &object in objects {
        let settings = config.fields.get(&object).cloned().unwrap_or_default();
        let described = match describe_both(&**source, &**sink, object, &settings).await {
            Ok(described) => described,
            // Nothing mapped for the object: the run can go on with the standard fields (it
            // fails on its own, with its report, if the vendor is unreachable), but picklists
            // then travel as the source stores them, and the operator must know.
            Err(e) if settings.is_empty() => {
                eprintln!(
                    "warning: {object}: the field metadata could not be read ({:#}); picklist \
                     values are carried as the source stores them, not mapped by label",
                    e.error
                );
                None
            }
            Err(e) => return Err(e),
        };
        let Some((from, mut to)) = described else {
            continue;
        };
        setup.source_fields.insert(object, from.clone());
        let input = |to: &[VendorField]| -> FieldPlan {
            fieldplan::plan(&PlanInput {
                object,
                source_vendor: source.vendor(),
                source: &from,
                sink_vendor: sink.vendor(),
                sink: to,
                settings: &settings,
            })
        };
        let mut plan = input(&to);
        let mut only_missing = !plan.errors.is_empty()
            && plan
                .errors
                .iter()
                .all(|e| matches!(e, FieldPlanError::UnknownSinkField { .. }));
        if only_missing && creating != Creating::Never {
            // Before anything is created in the customer's account: the plan as it would be
            // with the fields as the sink creates them (Pipedrive makes a text field for a
            // flag). A field that could not carry what is mapped into it is not created, nor
            // any other: the run is refused naming it.
            let mut preview = to.clone();
            preview.extend(plan.to_create.iter().map(|new| VendorField {
                name: new.name.clone(),
                label: new.label.clone(),
                // A kind the sink cannot create: its create call says so, as before.
                kind: sink.created_kind(new.kind).unwrap_or(new.kind),
                vendor_type: "to be created".into(),
                custom: true,
                writable: true,
                options: new.options.clone(),
                canonical: None,
            }));
            let previewed = input(&preview);
            if !previewed.errors.is_empty() {
                plan.errors = previewed.errors;
                only_missing = false;
            }
        }
        if only_missing && creating == Creating::Allowed {
            for new in &plan.to_create {
                let made = sink.create_field(object, new).await.map_err(|e| match e {
                    ConnectorError::Unsupported { .. } | ConnectorError::Config { .. } => {
                        CliError::config(e)
                    }
                    _ => CliError::failed(anyhow::Error::new(e).context(format!(
                        "creating {object} field `{}` in {}",
                        new.name,
                        sink.vendor()
                    ))),
                })?;
                tracing::info!(%object, field = %made.name, "created a sink field");
                setup.created.push(CreatedField {
                    object,
                    name: made.name.clone(),
                    kind: made.kind,
                });
            }
            to = sink.describe(object).await.map_err(CliError::failed)?;
            // The created fields may be named as the vendor's rules say (`__c`, a prefix):
            // the config's pairs point at them by the name asked for or by label.
            plan = input(&to);
        } else if only_missing && creating == Creating::WouldCreate {
            plan.errors.clear();
        }
        problems.extend(plan.errors.iter().map(ToString::to_string));
        if plan.errors.is_empty() {
            source
                .map_fields(object, &plan.source_bindings)
                .map_err(CliError::config)?;
            sink.map_fields(object, &plan.sink_bindings)
                .map_err(CliError::config)?;
        }
        setup.plans.insert(object, plan);
    }
    if !problems.is_empty() {
        return Err(CliError::config(anyhow!(
            "the field map cannot be carried out (nothing was written):\n  {}",
            problems.join("\n  ")
        )));
    }
    Ok(setup)
}

/// Options of `ferry fields`.
#[derive(clap::Args)]
pub struct FieldsArgs {
    /// The config file.
    #[arg(short, long, default_value = "ferry.toml")]
    pub config: PathBuf,
    /// How to print the listing on stdout.
    #[arg(long, value_enum, default_value_t = ReportFormat::Human)]
    pub report: ReportFormat,
}

#[derive(Serialize)]
struct Side<'a> {
    vendor: &'static str,
    fields: Vec<Listed<'a>>,
}

#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    field: &'a VendorField,
    /// What carries it: the canonical field, or the other vendor's field of a mapped pair.
    carried_as: Option<String>,
}

#[derive(Serialize)]
struct ObjectListing<'a> {
    object: ObjectType,
    source: Side<'a>,
    sink: Side<'a>,
    mapped: &'a [fieldplan::MappedPair],
    unmapped: &'a [fieldplan::Suggestion],
    problems: Vec<String>,
}

/// `ferry fields`: for each configured object, the source's and the sink's fields with their
/// kinds, what each is carried as, and which source fields nothing carries. Reads metadata
/// only. Exit 2 when the config's field map has a mistake (listed), 1 when a vendor fails.
pub async fn run(args: FieldsArgs) -> Result<u8, CliError> {
    let config = Config::load(&args.config).map_err(CliError::config)?;
    let objects = config.migration.object_types().map_err(CliError::config)?;
    let source = connectors::source(&config.source)?;
    let sink = connectors::sink(&config.sink)?;
    let mut described = Vec::new();
    for &object in &objects {
        let settings = config.fields.get(&object).cloned().unwrap_or_default();
        let Some((from, to)) = describe_both(&*source, &*sink, object, &settings).await? else {
            return Err(CliError::config(anyhow!(
                "{object}: the {} or {} connector cannot list its fields",
                source.vendor(),
                sink.vendor()
            )));
        };
        let plan = fieldplan::plan(&PlanInput {
            object,
            source_vendor: source.vendor(),
            source: &from,
            sink_vendor: sink.vendor(),
            sink: &to,
            settings: &settings,
        });
        described.push((object, from, to, plan));
    }
    let listings = listings(&described, source.vendor(), sink.vendor());
    let problems = listings.iter().any(|l| !l.problems.is_empty());
    match args.report {
        ReportFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "objects": listings }))
                .map_err(CliError::failed)?
        ),
        ReportFormat::Human => print!("{}", human(&listings)),
    }
    Ok(if problems { crate::EXIT_CONFIG } else { 0 })
}

type Described = (ObjectType, Vec<VendorField>, Vec<VendorField>, FieldPlan);

/// Each object's two field lists, with what carries each field.
fn listings<'a>(
    described: &'a [Described],
    source_vendor: &'static str,
    sink_vendor: &'static str,
) -> Vec<ObjectListing<'a>> {
    described
        .iter()
        .map(|(object, from, to, plan)| {
            let carried = |f: &VendorField, source_side: bool| {
                plan.mapped
                    .iter()
                    .find(|m| {
                        if source_side {
                            m.source == f.name
                        } else {
                            m.sink == f.name
                        }
                    })
                    .map(|m| {
                        if source_side {
                            format!("{} -> {}", m.canonical, m.sink)
                        } else {
                            format!("{} <- {}", m.canonical, m.source)
                        }
                    })
                    .or_else(|| f.canonical.clone())
            };
            let side = |vendor, fields: &'a [VendorField], source_side| Side {
                vendor,
                fields: fields
                    .iter()
                    .map(|field| Listed {
                        field,
                        carried_as: carried(field, source_side),
                    })
                    .collect(),
            };
            ObjectListing {
                object: *object,
                source: side(source_vendor, from, true),
                sink: side(sink_vendor, to, false),
                mapped: &plan.mapped,
                unmapped: &plan.unmapped,
                problems: plan.errors.iter().map(ToString::to_string).collect(),
            }
        })
        .collect()
}

/// Text a vendor returned (a label, an API name), printed without its control characters.
fn clean(text: &str) -> String {
    crate::plan::escape_control(text)
}

fn human(listings: &[ObjectListing<'_>]) -> String {
    let mut out = String::new();
    for listing in listings {
        let _ = writeln!(out, "{}:", listing.object);
        for (role, side) in [("source", &listing.source), ("sink", &listing.sink)] {
            let _ = writeln!(
                out,
                "  {role} {}: {}",
                side.vendor,
                ferry_core::report::count(side.fields.len() as u64, "field", "fields")
            );
            for listed in &side.fields {
                let f = listed.field;
                let mut line = format!(
                    "    {:<32} {:<24} {} ({})",
                    clean(&f.name),
                    clean(&f.label),
                    f.kind,
                    clean(&f.vendor_type)
                );
                if f.custom {
                    line.push_str(", custom");
                }
                if !f.writable {
                    line.push_str(", read-only");
                }
                if !f.options.is_empty() {
                    let _ = write!(line, ", {} options", f.options.len());
                }
                match &listed.carried_as {
                    Some(carried) => {
                        let _ = write!(line, "  => {}", clean(carried));
                    }
                    None => line.push_str("  (unmapped)"),
                }
                let _ = writeln!(out, "{line}");
            }
        }
        for s in listing.unmapped {
            let _ = writeln!(
                out,
                "  unmapped source field `{}`{}",
                clean(&s.source),
                s.sink
                    .as_ref()
                    .map(|n| format!(": the sink's `{}` looks like it", clean(n)))
                    .unwrap_or_default()
            );
        }
        for p in &listing.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    out
}
