//! The one project of an integration: link an existing remote project, create one on the
//! platform, or unlink (which deletes the local copy; bindings survive as ORPHANED).

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::json;

use entity::{element_selection, project, sync_run};

use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::store::bindings::PortScope;
use crate::store::plant;
use crate::{history, integrations, Error, Result};

/// Which project to link.
#[derive(Clone, Debug)]
pub enum ProjectChoice {
    /// An existing project on the platform, by its id.
    Existing(String),
    /// A new project, created on the platform with this name.
    New(String),
}

/// The project of an integration, if one is linked.
pub async fn of<C: ConnectionTrait>(db: &C, integration_id: i64) -> Result<Option<project::Model>> {
    Ok(project::Entity::find()
        .filter(project::Column::IntegrationId.eq(integration_id))
        .one(db)
        .await?)
}

/// Links a project to an integration; `CONFLICT` while another is linked.
pub async fn set(
    app: &AppState,
    actor: &Actor,
    integration_id: i64,
    choice: ProjectChoice,
) -> Result<project::Model> {
    actor.require(Role::Admin)?;
    let db = &app.db;
    let row = integrations::find(db, integration_id).await?;
    if let Some(current) = of(db, integration_id).await? {
        return Err(Error::Conflict(format!(
            "the integration already has project \"{}\" ({}); unlinkProject first",
            current.name, current.remote_id
        )));
    }
    let platform = app.platform(&row)?;
    let (mut remote, created) = match choice {
        ProjectChoice::Existing(remote_id) => {
            let remote_id = crate::text::clean_line("remoteId", &remote_id, 64)?;
            let found = platform
                .projects()
                .await?
                .into_iter()
                .find(|p| p.remote_id == remote_id)
                .ok_or_else(|| {
                    Error::validation(
                        "remoteId",
                        format!("the platform has no project {remote_id}; see remoteProjects"),
                    )
                })?;
            (found, false)
        }
        ProjectChoice::New(name) => {
            let name = crate::text::clean_line("newName", &name, 120)?;
            if !row.active {
                return Err(Error::InactiveIntegration);
            }
            (platform.create_project(&name).await?, true)
        }
    };
    crate::text::make_plain(&mut remote.name);
    let txn = crate::db::write_txn(db).await?;
    let linked = project::ActiveModel {
        integration_id: Set(integration_id),
        remote_id: Set(remote.remote_id.clone()),
        name: Set(remote.name.clone()),
        created_remotely: Set(created),
        linked_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        if crate::error::is_unique_violation(&e) {
            Error::Conflict("another project was linked meanwhile; unlinkProject first".into())
        } else {
            e.into()
        }
    })?;
    history::record(
        &txn,
        Some(integration_id),
        actor,
        crate::history::Action::ProjectLinked,
        if created {
            format!(
                "created project \"{}\" on the platform and linked it",
                remote.name
            )
        } else {
            format!("linked project \"{}\" ({})", remote.name, remote.remote_id)
        },
        None,
        Some(json!({ "remoteId": remote.remote_id, "name": remote.name, "created": created })),
    )
    .await?;
    txn.commit().await?;
    Ok(linked)
}

/// Unlinks the project: deletes the synced copy (active bindings become ORPHANED), resets the
/// cursors, and stops syncs until a project is set again.
pub async fn unlink(app: &AppState, actor: &Actor, integration_id: i64) -> Result<u64> {
    actor.require(Role::Admin)?;
    let db = &app.db;
    integrations::find(db, integration_id).await?;
    let txn = crate::db::write_txn(db).await?;
    let Some(current) = of(&txn, integration_id).await? else {
        return Err(Error::Conflict(
            "the integration has no project to unlink".into(),
        ));
    };
    if let Some(run) = sync_run::Entity::find()
        .filter(sync_run::Column::IntegrationId.eq(integration_id))
        .filter(sync_run::Column::Status.is_in(crate::sync::SyncStatus::ACTIVE))
        .one(&txn)
        .await?
    {
        return Err(Error::SyncAlreadyRunning { run_id: run.id });
    }
    let orphaned_ids =
        crate::store::bindings::orphan_bindings(&txn, &PortScope::Project(current.id)).await?;
    crate::bindings::record_orphaned(&txn, actor, &orphaned_ids).await?;
    let orphaned = orphaned_ids.len() as u64;
    plant::delete_project_plant(&txn, current.id).await?;
    project::Entity::delete_by_id(current.id).exec(&txn).await?;
    element_selection::Entity::update_many()
        .col_expr(
            element_selection::Column::Cursor,
            sea_orm::sea_query::Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(element_selection::Column::IntegrationId.eq(integration_id))
        .exec(&txn)
        .await?;
    history::record(
        &txn,
        Some(integration_id),
        actor,
        crate::history::Action::ProjectUnlinked,
        format!(
            "unlinked project \"{}\"; local copy deleted, {orphaned} binding(s) orphaned",
            current.name
        ),
        Some(json!({ "remoteId": current.remote_id, "name": current.name })),
        None,
    )
    .await?;
    txn.commit().await?;
    crate::bindings::announce_all(app, &orphaned_ids).await;
    Ok(orphaned)
}
