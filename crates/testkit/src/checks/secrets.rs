//! The secret check, run after every other check: wrong credentials make `Auth` errors that
//! name the vendor and quote nothing, and no credential (nor an access token the emulator
//! issued, nor a wrong credential) appears in any captured log line or any message a check
//! saw.

use std::sync::{Arc, PoisonError};

use ferry_core::{ConnectorError, ConnectorResult};
use ferry_sandbox::faults::Faults;

use crate::harness::{Ctx, Served, Stop, Verdict, ensure, wrong_value};

/// Builds the connector in `role` with credential `var` wrong and runs `check()`.
async fn check_with_wrong(
    ctx: &Ctx,
    served: &Served,
    role: &str,
    var: &str,
) -> ConnectorResult<()> {
    let settings = ctx.settings(served, Some(var));
    match role {
        "source" => match ctx.target.connector.source {
            Some(build) => build(settings, "source")?.check().await,
            None => Ok(()),
        },
        _ => match ctx.target.connector.sink {
            Some(build) => build(settings, "sink")?.check().await,
            None => Ok(()),
        },
    }
}

/// What kind of error `e` is, for messages.
fn kind(e: &ConnectorError) -> &'static str {
    match e {
        ConnectorError::Network { .. } => "Network",
        ConnectorError::Auth { .. } => "Auth",
        ConnectorError::Status { .. } => "Status",
        ConnectorError::RetriesExhausted { .. } => "RetriesExhausted",
        ConnectorError::Malformed { .. } => "Malformed",
        ConnectorError::Setup { .. } => "Setup",
        ConnectorError::Config { .. } => "Config",
        ConnectorError::Unsupported { .. } => "Unsupported",
    }
}

/// `line` with `secret` blotted out and cut short, to show where a secret leaked.
fn redacted(line: &str, secret: &str) -> String {
    let line = line.replace(secret, "[SECRET]");
    let mut short: String = line.chars().take(160).collect();
    if short.len() < line.len() {
        short.push('…');
    }
    short
}

/// Check 10.
pub(crate) async fn secrets(ctx: Arc<Ctx>) -> Verdict {
    ensure!(
        ctx.logs.installed(),
        "the log capture could not be installed (another global tracing subscriber was set first)"
    );
    let credentials = ctx.target.emulator.credentials;
    let vendor = ctx.vendor();
    let mut roles = Vec::new();
    if ctx.target.connector.source.is_some() {
        roles.push("source");
    }
    if ctx.target.connector.sink.is_some() {
        roles.push("sink");
    }

    let served = ctx.serve(Faults::default(), None).await?;
    for (var, _) in credentials {
        for role in &roles {
            match check_with_wrong(&ctx, &served, role, var).await {
                Ok(()) => {
                    return Err(Stop::Fail(format!(
                        "the {role}'s check() succeeded with a wrong {var}"
                    )));
                }
                Err(e) => {
                    let text = e.to_string();
                    ctx.note(text.clone());
                    ensure!(
                        matches!(&e, ConnectorError::Auth { vendor: v, .. } if *v == vendor),
                        "with a wrong {var}, the {role}'s check() failed with a {} error, not an Auth error of {vendor}: {text}",
                        kind(&e)
                    );
                    ensure!(
                        text.contains(vendor),
                        "the Auth error for a wrong {var} does not name {vendor}: {text}"
                    );
                    ensure!(
                        !text.contains(&wrong_value(var)),
                        "the Auth error for a wrong {var} quotes the wrong value: {}",
                        redacted(&text, &wrong_value(var))
                    );
                }
            }
        }
    }

    let mut secrets: Vec<(String, String)> = Vec::new();
    for (var, value) in credentials {
        if !value.is_empty() {
            secrets.push(((*var).to_owned(), (*value).to_owned()));
        }
        secrets.push((format!("the wrong {var}"), wrong_value(var)));
    }
    let issued: Vec<String> = ctx
        .seen_credentials
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter(|t| !secrets.iter().any(|(_, s)| s == *t))
        .cloned()
        .collect();
    for token in &issued {
        secrets.push(("an access token the emulator issued".into(), token.clone()));
    }

    let lines = ctx.logs.lines();
    ensure!(
        !lines.is_empty(),
        "no log line was captured at TRACE level, so the log cannot be shown to be free of secrets"
    );
    let texts = ctx.noted();
    for (what, haystack) in [("log line", &lines), ("error or rejection message", &texts)] {
        for (label, secret) in &secrets {
            let leaks: Vec<&String> = haystack
                .iter()
                .filter(|l| l.contains(secret.as_str()))
                .collect();
            if let Some(first) = leaks.first() {
                return Err(Stop::Fail(format!(
                    "{} {what}s contain {label}, e.g. {}",
                    leaks.len(),
                    redacted(first, secret)
                )));
            }
        }
    }
    let wrong_detail = if credentials.is_empty() {
        "the emulator has no credentials to get wrong".to_owned()
    } else {
        format!(
            "each wrong credential ({}) is an Auth error naming {vendor} for the {}",
            credentials
                .iter()
                .map(|(v, _)| *v)
                .collect::<Vec<_>>()
                .join(", "),
            roles.join(" and ")
        )
    };
    Ok(format!(
        "{} log lines and {} messages hold none of {} credentials and {} issued tokens; {wrong_detail}",
        lines.len(),
        texts.len(),
        credentials.len(),
        issued.len()
    ))
}
