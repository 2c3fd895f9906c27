//! The account identity check: what `Source::account_id` and `Sink::account_id` report is
//! what the same-account guard of `ferry check`, `plan` and `migrate` compares.

use std::sync::Arc;

use ferry_core::AccountId;
use ferry_sandbox::faults::Faults;

use crate::harness::{Ctx, Served, Stop, Verdict, ensure};

/// The account id of `served` through the connector's source (or its sink, for a sink-only
/// connector); `None` when the connector cannot say.
async fn account_id(ctx: &Ctx, served: &Served) -> Result<Option<AccountId>, Stop> {
    let read = match ctx.target.connector.source {
        Some(_) => ctx.source(served, None)?.account_id().await,
        None => ctx.sink(served, None)?.account_id().await,
    };
    read.map_err(|e| ctx.error("account_id() with the emulator's credentials", &e))
}

/// Check: the account id is non-empty, the same on every asking and through both roles, and
/// another emulator instance (another account) reports another one.
pub(crate) async fn account_id_is_stable(ctx: Arc<Ctx>) -> Verdict {
    let one = ctx.serve(Faults::default(), None).await?;
    let Some(first) = account_id(&ctx, &one).await? else {
        return Err(Stop::Skip(format!(
            "{} cannot say which account its credentials reach",
            ctx.vendor()
        )));
    };
    ensure!(
        !first.id.trim().is_empty() && !first.kind.is_empty(),
        "an empty account id ({:?})",
        first.kind
    );
    let again = account_id(&ctx, &one).await?;
    ensure!(
        again.as_ref() == Some(&first),
        "the account id changed between two askings: {} {} then {:?}",
        first.kind,
        first.id,
        again.map(|a| a.id)
    );
    if ctx.target.connector.source.is_some() && ctx.target.connector.sink.is_some() {
        let sink = ctx
            .sink(&one, None)?
            .account_id()
            .await
            .map_err(|e| ctx.error("the sink's account_id()", &e))?;
        ensure!(
            sink.as_ref() == Some(&first),
            "source and sink report different ids for one account: {} and {:?}",
            first.id,
            sink.map(|a| a.id)
        );
    }
    let other = ctx.serve(Faults::default(), None).await?;
    let second = account_id(&ctx, &other).await?;
    ensure!(
        second.as_ref().is_some_and(|s| s.id != first.id),
        "two emulator instances (two accounts) report the same {} {}",
        first.kind,
        first.id
    );
    Ok(format!(
        "{} {}, stable; another account differs",
        first.kind, first.id
    ))
}
