//! Customer bindings: a customer bound to a service port, confirmed, and pushed to the platform
//! through the outbox ([`outbox`]); released, cancelled, retried. A binding is never deleted:
//! every change is a new status, recorded in the history with the key that made it.
//!
//! Lifecycle: `bind` → PENDING (the port leaves `freePorts` at once) → `confirm` → CONFIRMED,
//! with the push queued in the same transaction → `release` → RELEASED, with the removal
//! queued. `cancel` ends a PENDING binding (CANCELLED). A sync that loses the port makes an
//! active binding ORPHANED (see `store::bindings::orphan_bindings`).

pub mod document;
mod lifecycle;
pub mod outbox;
mod retry;
pub mod wake;

pub use lifecycle::{change, rebind, Change};
pub use retry::retry_push;

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};
use serde_json::json;

use entity::binding::{self, BindingStatus};
use entity::port::PortStatus;
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

/// A refusal of a customer's field, named by its path in the `customer` argument
/// (`customer.document`), as `extensions.field` answers it.
fn in_customer(e: Error) -> Error {
    match e {
        Error::Validation {
            message,
            field: Some(field),
        } => Error::Validation {
            message,
            field: Some(format!("customer.{field}")),
        },
        e => e,
    }
}

fn clean(input: CustomerInput) -> Result<Customer> {
    let optional = |field: &str, text: Option<String>| -> Result<Option<String>> {
        text.filter(|t| !t.trim().is_empty())
            .map(|t| crate::text::clean_line(field, &t, MAX_TEXT_CHARS))
            .transpose()
    };
    Ok(Customer {
        document: document::digits(&input.document)?,
        contract: crate::text::identifier("contract", &input.contract, MAX_TEXT_CHARS)?,
        name: crate::text::clean_line("name", &input.name, MAX_TEXT_CHARS)?,
        address: optional("address", input.address)?,
        plan: optional("plan", input.plan)?,
    })
}

/// Publishes a change made in `txn`, then commits it and wakes the delivery worker: the event
/// is read inside the transaction, so it tells this change even when the worker delivers the
/// push before a read after the commit could run, and it goes out before the worker is woken.
/// A failure to read it is logged, never the caller's error.
pub(crate) async fn commit_and_announce(
    app: &AppState,
    txn: sea_orm::DatabaseTransaction,
    binding_id: i64,
) -> Result<()> {
    let event = crate::events::BindingEvent::read(&txn, binding_id).await;
    txn.commit().await?;
    match event {
        Ok(Some(event)) => app.events.publish_binding(event),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(binding_id, error = %e.for_log(), "could not announce a binding change")
        }
    }
    app.outbox.wake();
    Ok(())
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
            crate::history::Action::BindingOrphaned,
            format!(
                "binding {} (contract {}) orphaned: its port {} disappeared",
                crate::ids::binding(b.id),
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
    match crate::events::BindingEvent::read_many(&app.db, ids).await {
        Ok(events) => events
            .into_iter()
            .for_each(|event| app.events.publish_binding(event)),
        Err(e) => {
            tracing::warn!(bindings = ids.len(), error = %e.for_log(), "could not announce binding changes")
        }
    }
}

/// One binding, or `NOT_FOUND`.
pub async fn find<C: ConnectionTrait>(db: &C, id: i64) -> Result<binding::Model> {
    binding::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("binding {}", crate::ids::binding(id))))
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
    Error::Conflict(format!(
        "{rule}: binding {} holds it",
        crate::ids::binding(other.id)
    ))
}

/// Checks that `port_id` may take the customer with `contract`: a port of a SERVICE splitter
/// of an active integration, FREE on the platform (or already carrying the same contract), with
/// no active binding. Returns the port.
async fn bindable_port<C: ConnectionTrait>(
    db: &C,
    port_id: i64,
    contract: &str,
) -> Result<port::Model> {
    // FOR KEY SHARE on PostgreSQL (nothing on SQLite, whose write transactions are serial): a
    // sync deleting the port locks it first (`store::bindings::orphan_bindings`), so the port
    // cannot vanish between this check and the binding's commit.
    let port = port::Entity::find_by_id(port_id)
        .lock(sea_orm::sea_query::LockType::KeyShare)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("port {}", crate::ids::port(port_id))))?;
    let splitter = splitter::Entity::find_by_id(port.splitter_id)
        .one(db)
        .await?
        .ok_or_else(|| {
            Error::NotFound(format!("splitter of port {}", crate::ids::port(port_id)))
        })?;
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

/// The one way a binding's status or port changes after it is created: `update` (an
/// `UPDATE ... RETURNING` with the new values, and any further condition of the caller) applies
/// only while the binding is still as `before` was read, with the same status and the same port.
/// On PostgreSQL a concurrent change of the row makes this statement wait and then re-check that
/// condition, so of two changes racing on one binding exactly one matches; the other gets
/// `CONFLICT` naming what it found.
pub(crate) async fn transition<C: ConnectionTrait>(
    db: &C,
    before: &binding::Model,
    update: sea_orm::UpdateMany<binding::Entity>,
) -> Result<binding::Model> {
    let same_port = match before.port_id {
        Some(id) => binding::Column::PortId.eq(id),
        None => binding::Column::PortId.is_null(),
    };
    let mut rows = update
        .filter(binding::Column::Id.eq(before.id))
        .filter(binding::Column::Status.eq(before.status))
        .filter(same_port)
        .exec_with_returning(db)
        .await
        .map_err(bound_meanwhile)?;
    if let Some(after) = rows.pop() {
        return Ok(after);
    }
    let now = find(db, before.id).await?;
    if now.status == before.status && now.port_id == before.port_id {
        if let Some(reason) = conflict_reason(&now, None) {
            return Err(Error::Conflict(format!(
                "binding {}: {reason}",
                crate::ids::binding(now.id)
            )));
        }
    }
    Err(Error::Conflict(format!(
        "binding {} changed meanwhile: it is {} now{}",
        now.id,
        now.status,
        if now.port_id != before.port_id {
            ", on another port"
        } else {
            ""
        }
    )))
}

/// A unique index refusing a write: the port or the contract got an active binding meanwhile.
fn bound_meanwhile(e: sea_orm::DbErr) -> Error {
    if crate::error::is_unique_violation(&e) {
        Error::Conflict("the port or the contract was bound meanwhile".into())
    } else {
        e.into()
    }
}

/// The port a binding is on, while it has one.
async fn port_of<C: ConnectionTrait>(db: &C, b: &binding::Model) -> Result<Option<port::Model>> {
    let Some(id) = b.port_id else {
        return Ok(None);
    };
    Ok(port::Entity::find_by_id(id).one(db).await?)
}

/// Why the platform side of a binding's port disagrees with it, if it does: a conflict a sync
/// recorded, or (given the port) another customer on it as last synced.
pub(crate) fn conflict_reason(b: &binding::Model, port: Option<&port::Model>) -> Option<String> {
    if b.conflict_seen_at.is_some() {
        return Some(format!(
            "its port carries {} on the platform (a conflict recorded when the platform was last read)",
            crate::platform::describe_customer(
                b.conflict_contract.as_deref(),
                b.conflict_document.as_deref(),
                None
            )
        ));
    }
    let port = port?;
    let holder = crate::platform::holder(
        port.customer_contract.as_deref(),
        port.customer_document.as_deref(),
        port.customer_name.as_deref(),
        &b.contract,
        &b.document,
    );
    (holder == crate::platform::Holder::Other).then(|| {
        format!(
            "its port {} carries {} on the platform",
            port.fid,
            crate::platform::describe_customer(
                port.customer_contract.as_deref(),
                port.customer_document.as_deref(),
                port.customer_name.as_deref()
            )
        )
    })
}

/// Where the removal of a binding's customer goes when it leaves its port: the port it is on,
/// or, for an ORPHANED one, the port its snapshot names (the worker reads that port on the
/// platform first and clears it only when the customer there is ours). `Err` says why no
/// removal is queued: the port carries another customer, or nothing tells which port it was.
fn removal_target(
    b: &binding::Model,
    port: Option<&port::Model>,
) -> std::result::Result<String, String> {
    if let Some(port) = port {
        return match conflict_reason(b, Some(port)) {
            Some(reason) => Err(format!("{reason}: left as it is")),
            None => Ok(port.fid.clone()),
        };
    }
    b.snapshot_port_fid
        .clone()
        .ok_or_else(|| "the port it was on is unknown".to_owned())
}

fn status_error(b: &binding::Model, wanted: &str) -> Error {
    Error::validation(
        "id",
        format!(
            "binding {} is {}; {wanted}",
            crate::ids::binding(b.id),
            b.status
        ),
    )
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
    let customer = clean(input).map_err(in_customer)?;
    let txn = crate::db::write_txn(&app.db).await?;
    let port = bindable_port(&txn, port_id, &customer.contract).await?;
    if let Some(other) = holding_contract(&txn, port.integration_id, &customer.contract).await? {
        return Err(conflict("the contract is already bound", &other));
    }
    let now = app.settings.clock.now();
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
    .map_err(bound_meanwhile)?;
    history::record(
        &txn,
        Some(row.integration_id),
        actor,
        crate::history::Action::BindingCreated,
        format!(
            "bound contract {} to port {} (binding {})",
            row.contract,
            port.fid,
            crate::ids::binding(row.id)
        ),
        None,
        Some(snapshot(&row)),
    )
    .await?;
    commit_and_announce(app, txn, row.id).await?;
    Ok(row)
}
