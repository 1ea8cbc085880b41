//! Integrations with mapping platforms: create, edit, (de)activate, read.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait, QueryOrder};
use serde_json::json;

use entity::{element_selection, integration};

use crate::access::{Actor, Role};
use crate::crypto::MasterKey;
use crate::error::is_unique_violation;
use crate::gateways::GatewayKind;
use crate::outbound::NetworkPolicy;
use crate::{history, Error, Result};

mod delete;
mod input;
mod remote;

pub use delete::delete;
use input::{clean_name, clean_password, clean_url_for, clean_username, origin_of};
pub use remote::{remote_projects, test_connection, ConnectionTest};

/// The element items selected when an integration is created.
pub const DEFAULT_SELECTION: [crate::catalog::ElementItem; 2] = [
    crate::catalog::ElementItem::Service,
    crate::catalog::ElementItem::Cto,
];

/// Input of [`create`].
#[derive(Clone)]
pub struct NewIntegration {
    /// Unique display name.
    pub name: String,
    /// Which platform.
    pub gateway: GatewayKind,
    /// Absolute http(s) URL of the platform API.
    pub api_url: String,
    /// Platform user.
    pub username: String,
    /// Platform password (write-only).
    pub password: String,
}

/// Input of [`update`]: only the given fields change.
#[derive(Clone, Default)]
pub struct IntegrationChanges {
    /// New name.
    pub name: Option<String>,
    /// New API URL.
    pub api_url: Option<String>,
    /// New platform user.
    pub username: Option<String>,
    /// New platform password.
    pub password: Option<String>,
    /// Lets `api_url` go from https to http (the password then travels in clear).
    pub allow_insecure: bool,
    /// New schedule: a 5-field cron expression and an IANA time zone.
    pub schedule: Option<(String, String)>,
}

impl std::fmt::Debug for NewIntegration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIntegration")
            .field("name", &self.name)
            .field("api_url", &self.api_url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// What the history keeps of an integration: everything but secrets.
fn snapshot(row: &integration::Model) -> serde_json::Value {
    json!({
        "name": row.name,
        "gateway": row.gateway,
        "apiUrl": row.api_url,
        "username": row.username,
        "hasPassword": row.password_ciphertext.is_some(),
        "active": row.active,
        "schedule": { "cron": row.schedule_cron, "timezone": row.schedule_timezone },
    })
}

fn name_conflict(err: sea_orm::DbErr, name: &str) -> Error {
    if is_unique_violation(&err) {
        Error::Conflict(format!("an integration named \"{name}\" already exists"))
    } else {
        err.into()
    }
}

/// Creates an integration with the default schedule and element selection.
pub async fn create(
    db: &DatabaseConnection,
    master: &MasterKey,
    network: &NetworkPolicy,
    actor: &Actor,
    input: NewIntegration,
    schedule: (&str, &str),
) -> Result<integration::Model> {
    actor.require(Role::Admin)?;
    let name = clean_name(&input.name)?;
    let api_url = clean_url_for(input.gateway, &input.api_url, network)?;
    let username = clean_username(&input.username)?;
    let password = clean_password(&input.password)?;
    let now = Utc::now();

    let txn = crate::db::write_txn(db).await?;
    let row = integration::ActiveModel {
        name: Set(name.clone()),
        gateway: Set(input.gateway.as_str().to_owned()),
        api_url: Set(api_url),
        username: Set(username),
        password_ciphertext: Set(None),
        key: Set(crate::crypto::random_hex(16)),
        active: Set(true),
        schedule_cron: Set(schedule.0.to_owned()),
        schedule_timezone: Set(schedule.1.to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .map_err(|e| name_conflict(e, &name))?;
    // The row id is the associated data of the ciphertext, so it is sealed once the id exists.
    let mut sealed: integration::ActiveModel = row.into();
    let id = *sealed.id.as_ref();
    sealed.password_ciphertext = Set(Some(master.seal_password(id, &password)?));
    let row = sealed.update(&txn).await?;
    element_selection::Entity::insert_many(DEFAULT_SELECTION.map(|item| {
        element_selection::ActiveModel {
            integration_id: Set(row.id),
            item: Set(item),
            cursor: Set(None),
        }
    }))
    .exec(&txn)
    .await?;
    history::record(
        &txn,
        Some(row.id),
        actor,
        crate::history::Action::IntegrationCreated,
        format!("created integration \"{}\"", row.name),
        None,
        Some(snapshot(&row)),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(integration_id = row.id, name = %row.name, "integration created");
    Ok(row)
}

/// Changes the given fields of an integration. Any change of `apiUrl`'s scheme, host, port or
/// path, or of `username`, needs the password in the same change: otherwise the stored password
/// would be sent to wherever the new URL points. Going from https to http also needs
/// `allow_insecure`, and the history says so.
pub async fn update(
    db: &DatabaseConnection,
    master: &MasterKey,
    network: &NetworkPolicy,
    actor: &Actor,
    id: i64,
    changes: IntegrationChanges,
) -> Result<integration::Model> {
    actor.require(Role::Admin)?;
    let txn = crate::db::write_txn(db).await?;
    let before = find(&txn, id).await?;
    let mut row: integration::ActiveModel = before.clone().into();
    let mut changed = Vec::new();
    if let Some(name) = &changes.name {
        row.name = Set(clean_name(name)?);
        changed.push("name");
    }
    if let Some(api_url) = &changes.api_url {
        let gateway = GatewayKind::parse(&before.gateway).ok_or_else(|| {
            Error::internal(anyhow::anyhow!("unknown gateway {:?}", before.gateway))
        })?;
        let api_url = clean_url_for(gateway, api_url, network)?;
        let (from, to) = (origin_of(&before.api_url), origin_of(&api_url));
        if from != to && changes.password.is_none() {
            return Err(Error::validation(
                "password",
                "changing apiUrl's scheme, host, port or path needs the password again in the \
                 same change",
            ));
        }
        let downgrade = api_url.starts_with("http:") && before.api_url.starts_with("https:");
        if downgrade && !changes.allow_insecure {
            return Err(Error::validation(
                "allowInsecure",
                "moving apiUrl from https to http sends the password in clear: give \
                 allowInsecure: true to do it anyway",
            ));
        }
        row.api_url = Set(api_url);
        changed.push(if downgrade {
            "apiUrl (from https to http, allowed as insecure)"
        } else {
            "apiUrl"
        });
    }
    if let Some(username) = &changes.username {
        let username = clean_username(username)?;
        if username != before.username && changes.password.is_none() {
            return Err(Error::validation(
                "password",
                "changing username needs the password again in the same change",
            ));
        }
        row.username = Set(username);
        changed.push("username");
    }
    if let Some(password) = &changes.password {
        let password = clean_password(password)?;
        row.password_ciphertext = Set(Some(master.seal_password(id, &password)?));
        changed.push("password");
    }
    if let Some((cron, timezone)) = &changes.schedule {
        crate::schedule::parse_cron(cron)?;
        crate::schedule::parse_zone(timezone)?;
        row.schedule_cron = Set(cron.trim().to_owned());
        row.schedule_timezone = Set(timezone.trim().to_owned());
        changed.push("schedule");
    }
    if changed.is_empty() {
        return Err(Error::validation(
            "input",
            "nothing to change: give at least one field",
        ));
    }
    row.updated_at = Set(Utc::now());
    let name = changes.name.clone().unwrap_or_else(|| before.name.clone());
    let after = row
        .update(&txn)
        .await
        .map_err(|e| name_conflict(e, &name))?;
    history::record(
        &txn,
        Some(id),
        actor,
        crate::history::Action::IntegrationUpdated,
        format!("changed {}", changed.join(", ")),
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Activates or deactivates an integration. A deactivated one is never synced or pushed; its
/// data stays readable.
pub async fn set_active(
    db: &DatabaseConnection,
    actor: &Actor,
    id: i64,
    active: bool,
) -> Result<integration::Model> {
    actor.require(Role::Admin)?;
    let txn = crate::db::write_txn(db).await?;
    let before = find(&txn, id).await?;
    if before.active == active {
        txn.commit().await?;
        return Ok(before);
    }
    let mut row: integration::ActiveModel = before.clone().into();
    row.active = Set(active);
    row.updated_at = Set(Utc::now());
    let after = row.update(&txn).await?;
    let (action, summary) = if active {
        (
            crate::history::Action::IntegrationActivated,
            "reactivated the integration",
        )
    } else {
        (
            crate::history::Action::IntegrationDeactivated,
            "deactivated the integration",
        )
    };
    history::record(
        &txn,
        Some(id),
        actor,
        action,
        summary,
        Some(snapshot(&before)),
        Some(snapshot(&after)),
    )
    .await?;
    txn.commit().await?;
    Ok(after)
}

/// Every integration, by name.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<integration::Model>> {
    list_first(db, None).await
}

/// The first `limit` integrations by name (all of them without a limit).
pub async fn list_first(
    db: &DatabaseConnection,
    limit: Option<u64>,
) -> Result<Vec<integration::Model>> {
    use sea_orm::QuerySelect;
    Ok(integration::Entity::find()
        .order_by_asc(integration::Column::Name)
        .limit(limit)
        .all(db)
        .await?)
}

/// One integration, or `NOT_FOUND`.
pub async fn find<C: sea_orm::ConnectionTrait>(db: &C, id: i64) -> Result<integration::Model> {
    integration::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("integration {}", crate::ids::integration(id))))
}
