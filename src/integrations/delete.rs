//! Deleting an integration (ADMIN): its plant copy, runs, selection, bindings and deliveries go
//! in one conditional statement (the foreign keys cascade), its history stays, the deletion
//! recorded as its newest entry.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
    QueryTrait, Select,
};

use entity::binding::{self, BindingStatus};
use entity::integration;
use entity::push_outbox::{self, PushStatus};
use entity::sync_run::{self, SyncStatus};

use super::{find, snapshot};
use crate::access::{Actor, Role};
use crate::{history, Error, Result};

/// Deletes an inactive integration that has no PENDING or CONFIRMED binding, no delivery
/// PENDING or FAILED (a customer the platform may still show) and no sync queued or running;
/// answers the deleted row. Anything else is refused with CONFLICT saying what to do first.
///
/// One `DELETE … WHERE` carries every condition, so a bind, a confirmation or a run that lands
/// meanwhile makes it delete nothing: on PostgreSQL the integration's row is locked first
/// (`FOR UPDATE`, which waits for the transactions that insert rows pointing at it), on SQLite
/// the write transaction is exclusive.
pub async fn delete(
    db: &sea_orm::DatabaseConnection,
    actor: &Actor,
    id: i64,
) -> Result<integration::Model> {
    actor.require(Role::Admin)?;
    let txn = crate::db::write_txn(db).await?;
    let row = if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        integration::Entity::find_by_id(id)
            .lock_exclusive()
            .one(&txn)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!("integration {}", crate::ids::integration(id)))
            })?
    } else {
        find(&txn, id).await?
    };
    let deleted = integration::Entity::delete_many()
        .filter(integration::Column::Id.eq(id))
        .filter(integration::Column::Active.eq(false))
        .filter(
            integration::Column::Id.not_in_subquery(
                live_bindings(id)
                    .select_only()
                    .column(binding::Column::IntegrationId)
                    .into_query(),
            ),
        )
        .filter(
            integration::Column::Id.not_in_subquery(
                undelivered(id)
                    .select_only()
                    .column(push_outbox::Column::IntegrationId)
                    .into_query(),
            ),
        )
        .filter(
            integration::Column::Id.not_in_subquery(
                running(id)
                    .select_only()
                    .column(sync_run::Column::IntegrationId)
                    .into_query(),
            ),
        )
        .exec(&txn)
        .await?;
    if deleted.rows_affected == 0 {
        let reason = refusal(&txn, &row).await?;
        txn.rollback().await?;
        return Err(Error::Conflict(format!(
            "integration {} is not deleted: {reason}",
            crate::ids::integration(id)
        )));
    }
    history::record(
        &txn,
        Some(id),
        actor,
        history::Action::IntegrationDeleted,
        format!(
            "deleted the integration \"{}\" with its plant copy, runs, selection, bindings and deliveries",
            row.name
        ),
        Some(snapshot(&row)),
        None,
    )
    .await?;
    txn.commit().await?;
    tracing::info!(integration = %crate::ids::integration(id), "integration deleted");
    Ok(row)
}

/// The integration's PENDING or CONFIRMED bindings.
fn live_bindings(id: i64) -> Select<binding::Entity> {
    binding::Entity::find()
        .filter(binding::Column::IntegrationId.eq(id))
        .filter(binding::Column::Status.is_in([BindingStatus::Pending, BindingStatus::Confirmed]))
}

/// Its deliveries PENDING or FAILED: customers the platform may still show, or not yet.
fn undelivered(id: i64) -> Select<push_outbox::Entity> {
    push_outbox::Entity::find()
        .filter(push_outbox::Column::IntegrationId.eq(id))
        .filter(push_outbox::Column::Status.is_in([PushStatus::Pending, PushStatus::Failed]))
}

/// Its runs queued or running.
fn running(id: i64) -> Select<sync_run::Entity> {
    sync_run::Entity::find()
        .filter(sync_run::Column::IntegrationId.eq(id))
        .filter(sync_run::Column::Status.is_in([SyncStatus::Queued, SyncStatus::Running]))
}

/// Why the conditional delete matched nothing, as a person should read it.
async fn refusal(txn: &sea_orm::DatabaseTransaction, row: &integration::Model) -> Result<String> {
    if row.active {
        return Ok(
            "it is active; deactivate it first (setIntegrationActive(active: false))".into(),
        );
    }
    let bindings = live_bindings(row.id).count(txn).await?;
    if bindings > 0 {
        return Ok(format!(
            "it has {bindings} PENDING or CONFIRMED binding(s); cancel or release them first"
        ));
    }
    let deliveries = undelivered(row.id).count(txn).await?;
    if deliveries > 0 {
        return Ok(format!(
            "it has {deliveries} delivery(ies) PENDING or FAILED (the platform may still show \
             those customers); reactivate it and let them settle, or retry them, first"
        ));
    }
    Ok("a sync of it is queued or running; wait for it to end".into())
}
