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
use crate::state::AppState;
use crate::{history, Error, Result};

/// The element items selected when an integration is created.
pub const DEFAULT_SELECTION: [&str; 2] = ["SERVICE", "CTO"];

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

/// Longest integration name and platform username, in characters.
const MAX_NAME_CHARS: usize = 120;
/// Longest API URL, in bytes.
const MAX_URL_BYTES: usize = 2048;
/// Longest platform password, in bytes.
const MAX_PASSWORD_BYTES: usize = 1024;

fn clean_name(name: &str) -> Result<String> {
    crate::text::clean_line("name", name, MAX_NAME_CHARS)
}

fn clean_username(username: &str) -> Result<String> {
    crate::text::clean_line("username", username, MAX_NAME_CHARS)
}

fn clean_url(api_url: &str, network: &NetworkPolicy) -> Result<String> {
    if api_url.len() > MAX_URL_BYTES {
        return Err(Error::validation(
            "apiUrl",
            format!("apiUrl is longer than {MAX_URL_BYTES} bytes"),
        ));
    }
    let parsed = url::Url::parse(api_url.trim()).map_err(|_| {
        Error::validation(
            "apiUrl",
            "apiUrl must be an absolute http(s) URL, e.g. https://provedor.geosite.com.br/api",
        )
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::validation(
            "apiUrl",
            "apiUrl must use http or https and name a host",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Error::validation(
            "apiUrl",
            "apiUrl must not carry credentials; use username and password",
        ));
    }
    network
        .check_url(&parsed)
        .map_err(|refused| Error::validation("apiUrl", format!("apiUrl: {refused}")))?;
    Ok(parsed.as_str().trim_end_matches('/').to_owned())
}

/// Host and port of a stored, cleaned URL.
fn origin_of(api_url: &str) -> Option<(String, Option<u16>)> {
    let url = url::Url::parse(api_url).ok()?;
    Some((url.host_str()?.to_owned(), url.port_or_known_default()))
}

fn clean_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::validation("password", "password must not be empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::validation(
            "password",
            format!("password is longer than {MAX_PASSWORD_BYTES} bytes"),
        ));
    }
    if password.contains('\0') {
        return Err(Error::validation(
            "password",
            "password must not contain NUL",
        ));
    }
    Ok(password.to_owned())
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
    let api_url = clean_url(&input.api_url, network)?;
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
            item: Set(item.to_owned()),
            cursor: Set(None),
        }
    }))
    .exec(&txn)
    .await?;
    history::record(
        &txn,
        Some(row.id),
        actor,
        "integration.created",
        format!("created integration \"{}\"", row.name),
        None,
        Some(snapshot(&row)),
    )
    .await?;
    txn.commit().await?;
    tracing::info!(integration_id = row.id, name = %row.name, "integration created");
    Ok(row)
}

/// Changes the given fields of an integration. Moving `apiUrl` to another host or port, or
/// changing `username`, needs the password in the same change: otherwise the stored password
/// would be sent to wherever the new URL points.
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
        let api_url = clean_url(api_url, network)?;
        if origin_of(&api_url) != origin_of(&before.api_url) && changes.password.is_none() {
            return Err(Error::validation(
                "password",
                "moving apiUrl to another host needs the password again in the same change",
            ));
        }
        row.api_url = Set(api_url);
        changed.push("apiUrl");
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
        "integration.updated",
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
        ("integration.activated", "reactivated the integration")
    } else {
        ("integration.deactivated", "deactivated the integration")
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
    Ok(integration::Entity::find()
        .order_by_asc(integration::Column::Name)
        .all(db)
        .await?)
}

/// One integration, or `NOT_FOUND`.
pub async fn find<C: sea_orm::ConnectionTrait>(db: &C, id: i64) -> Result<integration::Model> {
    integration::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("integration {id}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let open = NetworkPolicy::default();
        assert_eq!(
            clean_url("https://x.example/api/", &open).unwrap(),
            "https://x.example/api"
        );
        for bad in [
            "",
            "x.example",
            "ftp://x.example",
            "https://u:p@x.example",
            "/api",
            "http://169.254.169.254/",
            "http://2130706433/",
            "http://[::1]:8080/",
        ] {
            assert_eq!(
                clean_url(bad, &open).unwrap_err().code(),
                "VALIDATION",
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let input = NewIntegration {
            name: "n".into(),
            gateway: GatewayKind::Geosite,
            api_url: "http://x".into(),
            username: "u".into(),
            password: "hunter2-secret".into(),
        };
        assert!(!format!("{input:?}").contains("hunter2"));
    }
}

/// The outcome of [`test_connection`]: platform failures are results, not errors.
#[derive(Clone, Debug)]
pub struct ConnectionTest {
    /// True when login and listing projects worked.
    pub ok: bool,
    /// Time taken, in milliseconds.
    pub latency_ms: u64,
    /// What happened, for a person.
    pub message: String,
    /// The error code when it failed (`PLATFORM_AUTH`, `PLATFORM_UNAVAILABLE`, ...).
    pub code: Option<&'static str>,
    /// Projects the user can see, when it worked.
    pub project_count: Option<u64>,
}

/// Logs in to the platform and counts projects; records the outcome in the history.
pub async fn test_connection(app: &AppState, actor: &Actor, id: i64) -> Result<ConnectionTest> {
    actor.require(Role::Admin)?;
    let db = &app.db;
    let row = find(db, id).await?;
    let started = std::time::Instant::now();
    // An address the policy refuses is a failed test, like any other unreachable platform.
    let outcome = match app.platform(&row) {
        Ok(platform) => platform.check().await,
        Err(e) => Err(e),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let result = match outcome {
        Ok(check) => ConnectionTest {
            ok: true,
            latency_ms,
            message: format!("connected; {} project(s) visible", check.project_count),
            code: None,
            project_count: Some(check.project_count),
        },
        Err(Error::Internal(e)) => return Err(Error::Internal(e)),
        Err(e) => ConnectionTest {
            ok: false,
            latency_ms,
            message: e.message(),
            code: Some(e.code()),
            project_count: None,
        },
    };
    history::record(
        db,
        Some(id),
        actor,
        "integration.tested",
        if result.ok {
            format!("connection test passed in {latency_ms} ms")
        } else {
            format!("connection test failed: {}", result.message)
        },
        None,
        None,
    )
    .await?;
    Ok(result)
}

/// The projects the platform offers, read live; nothing is stored.
pub async fn remote_projects(
    app: &AppState,
    actor: &Actor,
    id: i64,
) -> Result<Vec<crate::platform::RemoteProject>> {
    actor.require(Role::Admin)?;
    let row = find(&app.db, id).await?;
    app.platform(&row)?.projects().await
}
