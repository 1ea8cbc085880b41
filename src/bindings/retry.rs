//! Retrying a binding's failed deliveries ([`retry_push`]): every write the binding still wants
//! whose latest delivery FAILED is queued again, in order: the removals from ports it left
//! first, then the push to the port it is on.

use std::collections::HashMap;

use entity::binding::{self, BindingStatus};
use entity::push_outbox::{self, PushAction, PushStatus};

use super::{conflict_reason, find, outbox, port_of, snapshot};
use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::{history, Error, Result};

/// Queues again every failed write the binding still wants (OPERATOR): for each port, the
/// binding's latest delivery there, when it FAILED and is still wanted: a removal from a port
/// the binding is not active on (after a release or a move), a push to the port a CONFIRMED
/// binding is on (refused while that port is in conflict). Removals go first, then the push;
/// a push still pending on the binding's port is queued again behind them, so a customer is
/// never written on the new port before leaving the old one. Each failed row becomes
/// SUPERSEDED by one conditional write, so two retries at once queue one set of deliveries.
pub async fn retry_push(app: &AppState, actor: &Actor, id: i64) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let b = find(&txn, id).await?;
    let rows = outbox::of_binding(&txn, b.id).await?;
    let port = port_of(&txn, &b).await?;
    let here = port
        .as_ref()
        .filter(|_| BindingStatus::ACTIVE.contains(&b.status))
        .map(|p| p.fid.as_str());
    // The latest delivery of each port (rows are oldest first).
    let latest: HashMap<&str, &push_outbox::Model> = rows
        .iter()
        .filter_map(|r| Some((r.port_fid.as_deref()?, r)))
        .collect();
    let mut failed: Vec<&push_outbox::Model> = latest
        .values()
        .copied()
        .filter(|r| r.status == PushStatus::Failed)
        .filter(|r| match r.action {
            PushAction::Remove => r.port_fid.as_deref() != here,
            PushAction::Push => {
                b.status == BindingStatus::Confirmed && r.port_fid.as_deref() == here
            }
        })
        .collect();
    failed.sort_by_key(|r| (r.action == PushAction::Push, r.id));
    if failed.is_empty() {
        return Err(Error::validation(
            "bindingId",
            format!(
                "binding {} has no FAILED delivery to retry",
                crate::ids::binding(b.id)
            ),
        ));
    }
    let pushes_again = failed.iter().any(|r| r.action == PushAction::Push);
    if pushes_again {
        if let Some(reason) = conflict_reason(&b, port.as_ref()) {
            return Err(Error::Conflict(format!(
                "binding {} is not pushed again: {reason}",
                crate::ids::binding(b.id)
            )));
        }
    }
    for row in &failed {
        if !outbox::retire_failed(&txn, row.id).await? {
            return Err(Error::Conflict(format!(
                "the failed delivery of binding {} was retried meanwhile",
                crate::ids::binding(b.id)
            )));
        }
    }
    let mut queued = Vec::new();
    for row in failed.iter().filter(|r| r.action == PushAction::Remove) {
        let fid = row.port_fid.as_deref().unwrap_or_default();
        outbox::enqueue(&txn, &b, PushAction::Remove, fid).await?;
        queued.push(format!("the removal from port {fid}"));
    }
    // The push: failed, or still pending behind a removal queued now.
    let pending_push = here.and_then(|fid| latest.get(fid)).is_some_and(|r| {
        r.action == PushAction::Push && r.status == PushStatus::Pending && !queued.is_empty()
    });
    if let Some(fid) = here.filter(|_| pushes_again || pending_push) {
        outbox::enqueue(&txn, &b, PushAction::Push, fid).await?;
        queued.push(format!("the push to port {fid}"));
    }
    // The binding with its delivery, before (FAILED, with the platform's reason) and after.
    let first = failed[0];
    let delivery = |status: &str, last_error: Option<&str>| {
        let mut s = snapshot(&b);
        s["pushStatus"] = serde_json::json!(status);
        s["attempts"] = serde_json::json!(first.attempts);
        s["lastError"] = serde_json::json!(last_error);
        s
    };
    history::record(
        &txn,
        Some(b.integration_id),
        actor,
        crate::history::Action::BindingRetried,
        format!(
            "queued {} of binding {} again",
            queued.join(", then "),
            crate::ids::binding(b.id)
        ),
        Some(delivery("FAILED", first.last_error.as_deref())),
        Some(delivery("PENDING", None)),
    )
    .await?;
    super::commit_and_announce(app, txn, b.id).await?;
    Ok(b)
}
