//! The history of every change and run of an integration.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, QueryFilter};
use serde_json::Value;

use entity::history_entry;

use crate::access::Actor;
use crate::store::paging::{Page, PageRequest};
use crate::Result;

/// Appends one entry. `before`/`after` must already be free of secrets.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    integration_id: Option<i64>,
    actor: &Actor,
    action: &str,
    summary: impl Into<String>,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<()> {
    history_entry::ActiveModel {
        integration_id: Set(integration_id),
        api_key_id: Set(actor.key_id),
        actor: Set(actor.name.clone()),
        action: Set(action.to_owned()),
        summary: Set(summary.into()),
        before: Set(before),
        after: Set(after),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// One page of an integration's history, newest first.
pub async fn page<C: ConnectionTrait>(
    db: &C,
    integration_id: i64,
    request: PageRequest,
) -> Result<Page<history_entry::Model>> {
    let select = <history_entry::Entity as sea_orm::EntityTrait>::find()
        .filter(history_entry::Column::IntegrationId.eq(integration_id));
    crate::store::paging::newest_first(db, select, history_entry::Column::Id, request).await
}
