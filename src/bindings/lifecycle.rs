//! A binding's life after `bind`: confirm, release and cancel ([`change`]) and moving to another
//! port ([`rebind`]); retrying failed deliveries is in [`super::retry`]. Each is one transaction
//! with its history entry and, when the platform must be written, its outbox row; the change
//! itself is one conditional write ([`super::transition`]) whose affected-row count decides a
//! race. A platform customer who is not ours is never written over: a confirmation of a port in
//! conflict is refused, and a release or move queues no removal of a port carrying someone else.

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use entity::binding::{self, BindingStatus};
use entity::push_outbox::PushAction;

use super::{
    bindable_port, conflict_reason, find, outbox, port_of, removal_target, snapshot, status_error,
    transition,
};
use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::{history, Error, Result};

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
    fn action(self) -> crate::history::Action {
        match self {
            Change::Confirm => crate::history::Action::BindingConfirmed,
            Change::Release => crate::history::Action::BindingReleased,
            Change::Cancel => crate::history::Action::BindingCancelled,
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
    let port = port_of(&txn, &before).await?;
    // What goes to the platform: (action, port fid), or why nothing does.
    let delivery: std::result::Result<(PushAction, String), String> = match change {
        Change::Confirm => {
            let Some(port) = &port else {
                return Err(status_error(&before, "its port is gone"));
            };
            if let Some(reason) = conflict_reason(&before, Some(port)) {
                return Err(Error::Conflict(format!(
                    "binding {} cannot be confirmed: {reason}",
                    before.id
                )));
            }
            Ok((PushAction::Push, port.fid.clone()))
        }
        Change::Release => {
            removal_target(&before, port.as_ref()).map(|fid| (PushAction::Remove, fid))
        }
        Change::Cancel => Err(String::new()),
    };
    let now = app.settings.clock.now();
    let mut set = binding::ActiveModel {
        status: Set(change.to()),
        updated_at: Set(now),
        ..Default::default()
    };
    match change {
        Change::Confirm => set.confirmed_at = Set(Some(now)),
        Change::Release | Change::Cancel => set.closed_at = Set(Some(now)),
    }
    let mut update = binding::Entity::update_many().set(set);
    if change == Change::Confirm {
        // A conflict recorded by a sync since the read above refuses it too.
        update = update.filter(binding::Column::ConflictSeenAt.is_null());
    }
    let after = transition(&txn, &before, update).await?;
    history::record(
        &txn,
        Some(after.integration_id),
        actor,
        change.action(),
        format!(
            "binding {} (contract {}): {} → {}{}",
            crate::ids::binding(after.id),
            after.contract,
            before.status,
            after.status,
            match &delivery {
                Ok(_) => "; delivery queued".to_owned(),
                Err(why) if !why.is_empty() => format!("; no removal queued: {why}"),
                Err(_) => String::new(),
            }
        ),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    if let Ok((action, fid)) = delivery {
        outbox::enqueue(&txn, &after, action, &fid).await?;
    }
    super::commit_and_announce(app, txn, after.id).await?;
    Ok(after)
}

/// Moves a CONFIRMED or ORPHANED binding to another port (OPERATOR): the old port's removal is
/// queued (unless it carries another customer, or nothing tells which port it was), then the
/// push to the new one, in one transaction; the binding is CONFIRMED on the new port.
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
    let removal = removal_target(&before, port_of(&txn, &before).await?.as_ref());
    let now = app.settings.clock.now();
    let set = binding::ActiveModel {
        port_id: Set(Some(port.id)),
        status: Set(BindingStatus::Confirmed),
        confirmed_at: Set(Some(now)),
        updated_at: Set(now),
        conflict_contract: Set(None),
        conflict_document: Set(None),
        conflict_seen_at: Set(None),
        ..Default::default()
    };
    let after = transition(&txn, &before, binding::Entity::update_many().set(set)).await?;
    history::record(
        &txn,
        Some(after.integration_id),
        actor,
        crate::history::Action::BindingRebound,
        format!(
            "moved binding {} (contract {}) to port {}; {}",
            crate::ids::binding(after.id),
            after.contract,
            port.fid,
            match &removal {
                Ok(old) => format!("the removal from port {old} queued"),
                Err(why) => format!("no removal queued: {why}"),
            }
        ),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    if let Ok(old) = removal {
        outbox::enqueue(&txn, &after, PushAction::Remove, &old).await?;
    }
    outbox::enqueue(&txn, &after, PushAction::Push, &port.fid).await?;
    super::commit_and_announce(app, txn, after.id).await?;
    Ok(after)
}
