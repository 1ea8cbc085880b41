//! Customer bindings: a customer bound to a service port, confirmed, and pushed to the platform
//! through the outbox ([`outbox`]); released, cancelled, retried. A binding is never deleted:
//! every change is a new status, recorded in the history with the key that made it.
//!
//! Lifecycle: `bind` → PENDING (the port leaves `freePorts` at once) → `confirm` → CONFIRMED,
//! with the push queued in the same transaction → `release` → RELEASED, with the removal
//! queued. `cancel` ends a PENDING binding (CANCELLED). A sync that loses the port makes an
//! active binding ORPHANED (see `store::plant::orphan_bindings`).

pub mod document;
pub mod outbox;
pub mod wake;

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::json;

use entity::binding::{self, BindingStatus};
use entity::port::PortStatus;
use entity::push_outbox::PushAction;
use entity::splitter::SplitterKind;
use entity::{port, splitter};

use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::{history, Error, Result};

/// Longest contract, name, address and plan, in characters.
const MAX_TEXT_CHARS: usize = 200;

/// The customer of a new binding, as the ISP gives it.
#[derive(Clone, Debug)]
pub struct CustomerInput {
    /// CPF or CNPJ, digits or formatted.
    pub document: String,
    /// The ISP's contract (`id_cliente_servico`).
    pub contract: String,
    /// Customer name.
    pub name: String,
    /// Service address.
    pub address: Option<String>,
    /// Plan.
    pub plan: Option<String>,
}

/// The customer, checked: document as digits, texts cleaned.
struct Customer {
    document: String,
    contract: String,
    name: String,
    address: Option<String>,
    plan: Option<String>,
}

fn clean(input: CustomerInput) -> Result<Customer> {
    let optional = |field: &str, text: Option<String>| -> Result<Option<String>> {
        text.filter(|t| !t.trim().is_empty())
            .map(|t| crate::text::clean_line(field, &t, MAX_TEXT_CHARS))
            .transpose()
    };
    Ok(Customer {
        document: document::digits(&input.document)?,
        contract: crate::text::clean_line("contract", &input.contract, MAX_TEXT_CHARS)?,
        name: crate::text::clean_line("name", &input.name, MAX_TEXT_CHARS)?,
        address: optional("address", input.address)?,
        plan: optional("plan", input.plan)?,
    })
}

/// Tells subscribers (`bindingEvents`) a binding's state, after a change committed; a failure
/// to read it is logged, never the caller's error.
pub(crate) async fn announce(app: &AppState, binding_id: i64) {
    match crate::events::BindingEvent::read(&app.db, binding_id).await {
        Ok(Some(event)) => app.events.publish_binding(event),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(binding_id, error = %e.message(), "could not announce a binding change")
        }
    }
}

/// Records in the history that these bindings became ORPHANED (their port disappeared), in the
/// transaction that orphaned them; `actor` is who caused it (the sync's starter, the admin who
/// unlinked the project).
pub async fn record_orphaned<C: ConnectionTrait>(
    txn: &C,
    actor: &Actor,
    ids: &[i64],
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = binding::Entity::find()
        .filter(binding::Column::Id.is_in(ids.to_vec()))
        .all(txn)
        .await?;
    for b in rows {
        history::record(
            txn,
            Some(b.integration_id),
            actor,
            "binding.orphaned",
            format!(
                "binding {} (contract {}) orphaned: its port {} disappeared",
                b.id,
                b.contract,
                b.snapshot_port_fid.as_deref().unwrap_or("?")
            ),
            None,
            Some(snapshot(&b)),
        )
        .await?;
    }
    Ok(())
}

/// Announces each of these bindings (after the transaction that changed them committed).
pub(crate) async fn announce_all(app: &AppState, ids: &[i64]) {
    for id in ids {
        announce(app, *id).await;
    }
}

/// One binding, or `NOT_FOUND`.
pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> Result<binding::Model> {
    binding::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("binding {id}")))
}

/// The active binding (PENDING or CONFIRMED) of a port, if any.
async fn active_on_port<C: ConnectionTrait>(
    db: &C,
    port_id: i64,
) -> Result<Option<binding::Model>> {
    Ok(binding::Entity::find()
        .filter(binding::Column::PortId.eq(port_id))
        .filter(binding::Column::Status.is_in(BindingStatus::ACTIVE))
        .one(db)
        .await?)
}

/// The binding that holds a contract (active or orphaned), if any.
async fn holding_contract<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    contract: &str,
) -> Result<Option<binding::Model>> {
    Ok(binding::Entity::find()
        .filter(binding::Column::IntegrationId.eq(integration_id))
        .filter(binding::Column::Contract.eq(contract))
        .filter(binding::Column::Status.is_in([
            BindingStatus::Pending,
            BindingStatus::Confirmed,
            BindingStatus::Orphaned,
        ]))
        .one(db)
        .await?)
}

fn conflict(rule: &str, other: &binding::Model) -> Error {
    Error::Conflict(format!("{rule}: binding {} holds it", other.id))
}

/// Checks that `port_id` may take the customer with `contract`: a port of a SERVICE splitter
/// of an active integration, FREE on the platform (or already carrying the same contract), with
/// no active binding. Returns the port.
async fn bindable_port<C: ConnectionTrait>(
    db: &C,
    port_id: i64,
    contract: &str,
) -> Result<port::Model> {
    let port = port::Entity::find_by_id(port_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("port {port_id}")))?;
    let splitter = splitter::Entity::find_by_id(port.splitter_id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("splitter of port {port_id}")))?;
    if splitter.kind != SplitterKind::Service {
        return Err(Error::validation(
            "portId",
            "only ports of SERVICE splitters (splitters de atendimento) take customers",
        ));
    }
    let integration = crate::integrations::find(db, port.integration_id).await?;
    if !integration.active {
        return Err(Error::InactiveIntegration);
    }
    let same_contract = port.customer_contract.as_deref() == Some(contract);
    if port.status != PortStatus::Free && !same_contract {
        return Err(Error::Conflict(format!(
            "the port is {} on the platform{}",
            port.status,
            port.customer_contract
                .as_deref()
                .map(|c| format!(" (contract {c})"))
                .unwrap_or_default()
        )));
    }
    if let Some(other) = active_on_port(db, port.id).await? {
        return Err(conflict("the port already has an active binding", &other));
    }
    Ok(port)
}

fn status_error(b: &binding::Model, wanted: &str) -> Error {
    Error::validation("id", format!("binding {} is {}; {wanted}", b.id, b.status))
}

fn snapshot(b: &binding::Model) -> serde_json::Value {
    json!({
        "status": b.status.to_string(), "contract": b.contract, "document": b.document,
        "name": b.name, "portId": b.port_id,
    })
}

/// Binds a customer to a port: a PENDING binding (OPERATOR).
pub async fn bind(
    app: &AppState,
    actor: &Actor,
    port_id: i64,
    input: CustomerInput,
) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let customer = clean(input)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let port = bindable_port(&txn, port_id, &customer.contract).await?;
    if let Some(other) = holding_contract(&txn, port.integration_id, &customer.contract).await? {
        return Err(conflict("the contract is already bound", &other));
    }
    let now = Utc::now();
    let row = binding::ActiveModel {
        integration_id: Set(port.integration_id),
        port_id: Set(Some(port.id)),
        status: Set(BindingStatus::Pending),
        document: Set(customer.document),
        contract: Set(customer.contract),
        name: Set(customer.name),
        address: Set(customer.address),
        plan: Set(customer.plan),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::Conflict("the port or the contract was bound meanwhile".into())
        } else {
            e.into()
        }
    })?;
    history::record(
        &txn,
        Some(row.integration_id),
        actor,
        "binding.created",
        format!(
            "bound contract {} to port {} (binding {})",
            row.contract, port.fid, row.id
        ),
        None,
        Some(snapshot(&row)),
    )
    .await?;
    txn.commit().await?;
    announce(app, row.id).await;
    Ok(row)
}

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
    txn.commit().await?;
    app.outbox.wake();
    announce(app, after.id).await;
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
    txn.commit().await?;
    app.outbox.wake();
    announce(app, after.id).await;
    Ok(after)
}

/// Queues a FAILED delivery of a binding again (OPERATOR).
pub async fn retry_push(app: &AppState, actor: &Actor, id: i64) -> Result<binding::Model> {
    actor.require(Role::Operator)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let b = find(&txn, id).await?;
    let requeued = outbox::requeue_failed(&txn, b.id).await?;
    if !requeued {
        return Err(Error::validation(
            "bindingId",
            format!("binding {} has no FAILED delivery to retry", b.id),
        ));
    }
    history::record(
        &txn,
        Some(b.integration_id),
        actor,
        "binding.retried",
        format!("queued the failed delivery of binding {} again", b.id),
        None,
        None,
    )
    .await?;
    txn.commit().await?;
    app.outbox.wake();
    announce(app, b.id).await;
    Ok(b)
}
