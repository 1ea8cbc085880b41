//! A binding's life after `bind`: confirm, release and cancel ([`change`]), moving to another
//! port ([`rebind`]) and retrying a failed delivery ([`retry_push`]). Each is one transaction
//! with its history entry and, when the platform must be written, its outbox row.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};

use entity::binding::{self, BindingStatus};
use entity::port;
use entity::push_outbox::PushAction;

use super::{bindable_port, find, outbox, snapshot, status_error};
use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::{history, Error, Result};

/// The fid of a binding's port, while it has one.
async fn port_fid<C: ConnectionTrait>(db: &C, b: &binding::Model) -> Result<Option<String>> {
    let Some(id) = b.port_id else {
        return Ok(None);
    };
    Ok(port::Entity::find_by_id(id).one(db).await?.map(|p| p.fid))
}

/// A change of a binding's status by a person.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// PENDING → CONFIRMED, with the push queued in the same transaction.
    Confirm,
    /// CONFIRMED or ORPHANED → RELEASED, with the removal queued while the port exists.
    Release,
    /// PENDING → CANCELLED: nothing was pushed, the port is free again.
    Cancel,
}

impl Change {
    fn from(self) -> &'static [BindingStatus] {
        match self {
            Change::Confirm | Change::Cancel => &[BindingStatus::Pending],
            Change::Release => &[BindingStatus::Confirmed, BindingStatus::Orphaned],
        }
    }
    fn to(self) -> BindingStatus {
        match self {
            Change::Confirm => BindingStatus::Confirmed,
            Change::Release => BindingStatus::Released,
            Change::Cancel => BindingStatus::Cancelled,
        }
    }
    fn refusal(self) -> &'static str {
        match self {
            Change::Confirm => "only a PENDING binding can be confirmed",
            Change::Release => {
                "only a CONFIRMED or ORPHANED binding can be released (cancel a PENDING one)"
            }
            Change::Cancel => "only a PENDING binding can be cancelled",
        }
    }
    fn action(self) -> &'static str {
        match self {
            Change::Confirm => "binding.confirmed",
            Change::Release => "binding.released",
            Change::Cancel => "binding.cancelled",
        }
    }
    /// What it writes on the platform, if anything.
    fn push(self) -> Option<PushAction> {
        match self {
            Change::Confirm => Some(PushAction::Push),
            Change::Release => Some(PushAction::Remove),
            Change::Cancel => None,
        }
    }
}

/// Changes a binding's status (OPERATOR), with its history entry and, when the change writes
/// on the platform, the delivery queued in the same transaction.
pub async fn change(
    app: &AppState,
    actor: &Actor,
    id: i64,
    change: Change,
) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let before = find(&txn, id).await?;
    if !change.from().contains(&before.status) {
        return Err(status_error(&before, change.refusal()));
    }
    let fid = port_fid(&txn, &before).await?;
    if change == Change::Confirm && fid.is_none() {
        return Err(status_error(&before, "its port is gone"));
    }
    let now = Utc::now();
    let mut row: binding::ActiveModel = before.clone().into();
    row.status = Set(change.to());
    row.updated_at = Set(now);
    match change {
        Change::Confirm => row.confirmed_at = Set(Some(now)),
        Change::Release | Change::Cancel => row.closed_at = Set(Some(now)),
    }
    let after = row.update(&txn).await?;
    let push = change.push().zip(fid);
    history::record(
        &txn,
        Some(after.integration_id),
        actor,
        change.action(),
        format!(
            "binding {} (contract {}): {} → {}{}",
            after.id,
            after.contract,
            before.status,
            after.status,
            if push.is_some() {
                "; delivery queued"
            } else {
                ""
            }
        ),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    if let Some((action, fid)) = push {
        outbox::enqueue(&txn, &after, action, &fid).await?;
    }
    super::commit_and_announce(app, txn, after.id).await?;
    Ok(after)
}

/// Moves a CONFIRMED or ORPHANED binding to another port (OPERATOR): the old port's removal is
/// queued when it still exists, then the push to the new one, in one transaction; the binding is
/// CONFIRMED on the new port.
pub async fn rebind(
    app: &AppState,
    actor: &Actor,
    id: i64,
    port_id: i64,
) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let before = find(&txn, id).await?;
    if !matches!(
        before.status,
        BindingStatus::Confirmed | BindingStatus::Orphaned
    ) {
        return Err(status_error(
            &before,
            "only a CONFIRMED or ORPHANED binding can be moved",
        ));
    }
    if before.port_id == Some(port_id) {
        return Err(Error::validation(
            "portId",
            "the binding is on that port already",
        ));
    }
    let port = bindable_port(&txn, port_id, &before.contract).await?;
    if port.integration_id != before.integration_id {
        return Err(Error::validation(
            "portId",
            "the port belongs to another integration",
        ));
    }
    let old_fid = port_fid(&txn, &before).await?;
    let now = Utc::now();
    let mut row: binding::ActiveModel = before.clone().into();
    row.port_id = Set(Some(port.id));
    row.status = Set(BindingStatus::Confirmed);
    row.confirmed_at = Set(Some(now));
    row.updated_at = Set(now);
    row.conflict_contract = Set(None);
    row.conflict_document = Set(None);
    row.conflict_seen_at = Set(None);
    let after = row.update(&txn).await?;
    history::record(
        &txn,
        Some(after.integration_id),
        actor,
        "binding.rebound",
        format!(
            "moved binding {} (contract {}) to port {}{}",
            after.id,
            after.contract,
            port.fid,
            if old_fid.is_some() {
                "; the old port's removal queued"
            } else {
                ""
            }
        ),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    if let Some(old) = old_fid {
        outbox::enqueue(&txn, &after, PushAction::Remove, &old).await?;
    }
    outbox::enqueue(&txn, &after, PushAction::Push, &port.fid).await?;
    super::commit_and_announce(app, txn, after.id).await?;
    Ok(after)
}

/// Queues a FAILED delivery of a binding again (OPERATOR).
pub async fn retry_push(app: &AppState, actor: &Actor, id: i64) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let b = find(&txn, id).await?;
    let Some(failed) = outbox::requeue_failed(&txn, b.id).await? else {
        return Err(Error::validation(
            "bindingId",
            format!("binding {} has no FAILED delivery to retry", b.id),
        ));
    };
    // The binding with its delivery, before (FAILED, with the platform's reason) and after.
    let delivery = |status: &str, last_error: Option<&str>| {
        let mut s = snapshot(&b);
        s["pushStatus"] = serde_json::json!(status);
        s["attempts"] = serde_json::json!(failed.attempts);
        s["lastError"] = serde_json::json!(last_error);
        s
    };
    history::record(
        &txn,
        Some(b.integration_id),
        actor,
        "binding.retried",
        format!("queued the failed delivery of binding {} again", b.id),
        Some(delivery("FAILED", failed.last_error.as_deref())),
        Some(delivery("PENDING", None)),
    )
    .await?;
    super::commit_and_announce(app, txn, b.id).await?;
    Ok(b)
}
