//! The directory check: the users and deal pipelines a connector lists are what the vendor's
//! account holds, the same through both roles. The engine matches owners by these users'
//! emails and maps stages by these labels, so a user left out is an owner that never matches,
//! and a stage left out refuses every run that has a deal in it.

use std::collections::BTreeSet;
use std::sync::Arc;

use ferry_core::{ConnectorResult, ObjectType, Pipeline, StageOutcome, User};
use ferry_sandbox::accounts::{Outcome, PIPELINES, account_users};
use ferry_sandbox::faults::Faults;

use super::objects;
use crate::harness::{Ctx, Stop, Verdict, ensure};

/// What one role of the connector listed.
struct Listing {
    /// "source" or "sink".
    role: &'static str,
    users: Vec<User>,
    /// Empty when the connector does not move deals.
    pipelines: Vec<Pipeline>,
}

/// Lists users and, when the connector moves deals, pipelines through one role.
async fn list(
    ctx: &Ctx,
    role: &'static str,
    users: impl std::future::Future<Output = ConnectorResult<Vec<User>>>,
    pipelines: impl std::future::Future<Output = ConnectorResult<Vec<Pipeline>>>,
) -> Result<Listing, Stop> {
    let users = users
        .await
        .map_err(|e| ctx.error(&format!("users() of the {role}"), &e))?;
    let pipelines = if objects(ctx).contains(&ObjectType::DEALS) {
        pipelines
            .await
            .map_err(|e| ctx.error(&format!("pipelines(deals) of the {role}"), &e))?
    } else {
        Vec::new()
    };
    Ok(Listing {
        role,
        users,
        pipelines,
    })
}

/// Labels compare as the engine compares them: ignoring case and surrounding spaces.
fn fold(label: &str) -> String {
    label.trim().to_lowercase()
}

/// Fails unless `listing` holds every user of the account, with its active flag, once.
fn users_complete(ctx: &Ctx, listing: &Listing) -> Result<(), Stop> {
    let role = listing.role;
    let mut ids = BTreeSet::new();
    for u in &listing.users {
        ensure!(
            !u.id.trim().is_empty(),
            "users() of the {role} lists a user without an id"
        );
        ensure!(
            ids.insert(u.id.as_str()),
            "users() of the {role} lists user {} twice",
            u.id
        );
    }
    let account = account_users(ctx.target.emulator.vendor);
    let mut missing = Vec::new();
    let mut wrong_flag = Vec::new();
    for wanted in &account {
        match listing
            .users
            .iter()
            .find(|u| fold(&u.email) == fold(&wanted.email))
        {
            None => missing.push(wanted.key),
            Some(u) if u.active != wanted.active => wrong_flag.push(u.id.as_str()),
            Some(_) => {}
        }
    }
    // Seed keys and vendor ids only: an address is personal data even in a test's reason.
    ensure!(
        missing.is_empty(),
        "users() of the {role} lists {} of the account's {} users; missing: seed users {missing:?} (inactive users must be listed too, marked inactive)",
        account.len() - missing.len(),
        account.len()
    );
    ensure!(
        wrong_flag.is_empty(),
        "users() of the {role} marks users {wrong_flag:?} active when the account has them deactivated, or the other way round"
    );
    Ok(())
}

/// Fails unless `listing` holds every stage the account places a seed stage in, by labels,
/// with an outcome that does not contradict the deals placed there.
fn pipelines_complete(ctx: &Ctx, listing: &Listing) -> Result<usize, Stop> {
    if !objects(ctx).contains(&ObjectType::DEALS) {
        return Ok(0);
    }
    let role = listing.role;
    let mut stages = 0;
    for p in &listing.pipelines {
        ensure!(
            !p.id.is_empty() && p.stages.iter().all(|s| !s.id.is_empty()),
            "pipelines(deals) of the {role} lists pipeline \"{}\" or one of its stages without an id",
            p.label
        );
        stages += p.stages.len();
    }
    for label in ctx.target.emulator.deal_stages {
        let found = listing
            .pipelines
            .iter()
            .filter(|p| fold(&p.label) == fold(label.pipeline))
            .find_map(|p| {
                p.stages
                    .iter()
                    .find(|s| fold(&s.label) == fold(label.stage))
            });
        let Some(stage) = found else {
            return Err(Stop::Fail(format!(
                "pipelines(deals) of the {role} lists no stage \"{}\" in a pipeline \"{}\", which the account has",
                label.stage, label.pipeline
            )));
        };
        let seed = PIPELINES
            .iter()
            .find(|p| p.key == label.seed_pipeline)
            .and_then(|p| p.stages.iter().find(|s| s.key == label.seed_stage))
            .map(|s| s.outcome);
        let contradicts = matches!(
            (stage.outcome, seed),
            (StageOutcome::Won, Some(Outcome::Open | Outcome::Lost))
                | (StageOutcome::Lost, Some(Outcome::Open | Outcome::Won))
        );
        ensure!(
            !contradicts,
            "pipelines(deals) of the {role} says stage \"{}/{}\" closes a deal {:?}, but the account keeps {:?} deals there",
            label.pipeline,
            label.stage,
            stage.outcome,
            seed
        );
    }
    Ok(stages)
}

/// A listing's content, for comparing the two roles: users by id, pipelines as listed.
fn summary(listing: &Listing) -> (BTreeSet<(String, String, bool)>, Vec<Pipeline>) {
    let users = listing
        .users
        .iter()
        .map(|u| (u.id.clone(), fold(&u.email), u.active))
        .collect();
    (users, listing.pipelines.clone())
}

/// Check: users and pipelines are the account's, complete, and the same through both roles.
pub(crate) async fn directory(ctx: Arc<Ctx>) -> Verdict {
    let served = ctx.serve(Faults::default(), None).await?;
    let mut listings = Vec::new();
    if ctx.target.connector.source.is_some() {
        let source = ctx.source(&served, None)?;
        let pipelines = source.pipelines(ObjectType::DEALS);
        listings.push(list(&ctx, "source", source.users(), pipelines).await?);
    }
    if ctx.target.connector.sink.is_some() {
        let sink = ctx.sink(&served, None)?;
        let pipelines = sink.pipelines(ObjectType::DEALS);
        listings.push(list(&ctx, "sink", sink.users(), pipelines).await?);
    }
    let mut stages = 0;
    for listing in &listings {
        users_complete(&ctx, listing)?;
        stages = pipelines_complete(&ctx, listing)?;
    }
    if let [a, b] = listings.as_slice() {
        ensure!(
            summary(a) == summary(b),
            "the source and the sink list different users or pipelines for one account"
        );
    }
    let first = listings
        .first()
        .ok_or_else(|| Stop::Skip("the connector is neither a source nor a sink".to_owned()))?;
    Ok(format!(
        "{} users ({} inactive) and {} pipelines with {stages} stages, every one the account holds{}",
        first.users.len(),
        first.users.iter().filter(|u| !u.active).count(),
        first.pipelines.len(),
        if listings.len() == 2 {
            ", the same through source and sink"
        } else {
            ""
        }
    ))
}
