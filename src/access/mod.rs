//! API keys and roles (docs/DESIGN.md section 6). A key is `mgw_` followed by 32 random hex digits; only
//! its SHA-256 digest and an 8-character display prefix are stored. A plain digest suits here because keys are random with 128 bits
//! of entropy: a slow password hash would only slow every request down.

mod watch;

pub use watch::{KeyHold, KeyWatch};

mod cache;
pub mod personal;
pub use cache::TTL as KEY_CACHE_TTL;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder,
};
use sha2::{Digest, Sha256};

use entity::api_key;

use crate::{Error, Result};

/// What a key may do. Higher roles may do everything lower ones may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read everything.
    Viewer,
    /// Read, bind customers, run manual syncs.
    Operator,
    /// Everything, including integrations, projects, selection and keys.
    Admin,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "VIEWER",
            Role::Operator => "OPERATOR",
            Role::Admin => "ADMIN",
        }
    }

    /// Parses a stored or typed name, case-insensitively.
    pub fn parse(text: &str) -> Option<Role> {
        match text.to_ascii_uppercase().as_str() {
            "VIEWER" => Some(Role::Viewer),
            "OPERATOR" => Some(Role::Operator),
            "ADMIN" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is acting: the key behind a request, or the gateway itself (scheduler, start-up).
#[derive(Clone, Debug)]
pub struct Actor {
    /// The key's id; `None` for the gateway itself.
    pub key_id: Option<i64>,
    /// A name for the history: the key's name or a system name.
    pub name: String,
    /// What the actor may do.
    pub role: Role,
    /// Whether it reads customers' documents and names (LGPD); masked when not.
    pub personal_data: bool,
}

impl Actor {
    /// The gateway acting on its own behalf (scheduler, demo set-up).
    pub fn system(name: &str) -> Actor {
        Actor {
            key_id: None,
            name: name.to_owned(),
            role: Role::Admin,
            personal_data: true,
        }
    }

    /// Fails with `FORBIDDEN` unless the actor reads personal data; `what` says what was asked.
    pub fn require_personal_data(&self, what: &str) -> Result<()> {
        if self.personal_data {
            Ok(())
        } else {
            Err(Error::Forbidden {
                role: format!("{} without personal data", self.role.as_str()),
                needed: format!("a key with personalData to {what}"),
            })
        }
    }

    /// Fails with `FORBIDDEN` unless the actor's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<()> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Error::Forbidden {
                role: self.role.as_str().to_owned(),
                needed: needed.as_str().to_owned(),
            })
        }
    }
}

/// A key just created: the secret is shown once and never again.
#[derive(Debug)]
pub struct NewKey {
    /// The stored row (digest only).
    pub key: api_key::Model,
    /// The secret to hand to the client.
    pub secret: String,
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Characters of a key kept for display: `mgw_` and 4 hex digits, 16 of its 128 bits, enough to
/// tell keys apart in `keys list` and too few to help guess one.
pub const PREFIX_CHARS: usize = 8;

/// Shortest `ADMIN_API_KEY` accepted, so that a chosen secret is not weaker than a generated one.
pub const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// The display prefix: a generated key's first characters (`mgw_` and 4 hex digits); for a
/// chosen secret (`ADMIN_API_KEY`) of another shape, `mgw_` and 4 hex digits of its digest, so
/// that none of the secret itself is stored or shown.
fn prefix_of(secret: &str) -> String {
    let generated = secret.len() > PREFIX_CHARS
        && secret.starts_with("mgw_")
        && secret[4..].bytes().all(|b| b.is_ascii_hexdigit());
    if generated {
        secret.chars().take(PREFIX_CHARS).collect()
    } else {
        format!("mgw_{}", &digest(secret)[..PREFIX_CHARS - 4])
    }
}

/// The name of the key made from `ADMIN_API_KEY`.
const ADMIN_API_KEY_NAME: &str = "ADMIN_API_KEY";

/// What a new key is.
#[derive(Clone, Debug)]
pub struct KeySpec {
    pub name: String,
    pub role: Role,
    /// When it stops working; never when `None`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether it reads personal data; `None` takes the role's default ([`personal_by_default`]).
    pub personal_data: Option<bool>,
}

impl KeySpec {
    /// A key of `role` named `name`, without expiry, with the role's default on personal data.
    pub fn new(name: &str, role: Role) -> KeySpec {
        KeySpec {
            name: name.to_owned(),
            role,
            expires_at: None,
            personal_data: None,
        }
    }
}

/// Whether a new key of `role` reads personal data unless told: VIEWER keys (dashboards,
/// reports) do not, OPERATOR and ADMIN keys (who bind customers) do.
pub fn personal_by_default(role: Role) -> bool {
    role >= Role::Operator
}

async fn insert_key(
    db: &DatabaseConnection,
    spec: &KeySpec,
    secret: &str,
) -> Result<api_key::Model> {
    let name = crate::text::clean_line("name", &spec.name, 120)?;
    let now = Utc::now();
    if spec.expires_at.is_some_and(|at| at <= now) {
        return Err(Error::validation(
            "expiresAt",
            "expiresAt must be in the future",
        ));
    }
    let row = api_key::ActiveModel {
        name: Set(name),
        role: Set(spec.role.as_str().to_owned()),
        prefix: Set(prefix_of(secret)),
        hash: Set(digest(secret)),
        created_at: Set(now),
        revoked_at: Set(None),
        last_used_at: Set(None),
        expires_at: Set(spec.expires_at),
        personal_data: Set(spec
            .personal_data
            .unwrap_or_else(|| personal_by_default(spec.role))),
        ..Default::default()
    };
    Ok(row.insert(db).await?)
}

/// Creates a key of `role` with a fresh random secret, the role's defaults otherwise.
pub async fn create_key(db: &DatabaseConnection, name: &str, role: Role) -> Result<NewKey> {
    create(db, &KeySpec::new(name, role)).await
}

/// Creates a key as `spec` says, with a fresh random secret.
pub async fn create(db: &DatabaseConnection, spec: &KeySpec) -> Result<NewKey> {
    let secret = format!("mgw_{}", crate::crypto::random_hex(16));
    let key = insert_key(db, spec, &secret).await?;
    tracing::info!(key_id = key.id, role = %key.role, personal_data = key.personal_data, "API key created");
    Ok(NewKey { key, secret })
}

/// A key by id.
pub async fn find_key(db: &DatabaseConnection, id: i64) -> Result<api_key::Model> {
    api_key::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("API key {}", crate::ids::api_key(id))))
}

/// Keeps the key of `secret` (kept by its holder, like the demo's key file) as an active key
/// named `name`: true when it is (created now if the database does not know it), false when
/// that key was revoked, which stays so.
pub async fn keep_secret(
    db: &DatabaseConnection,
    name: &str,
    role: Role,
    secret: &str,
) -> Result<bool> {
    match api_key::Entity::find()
        .filter(api_key::Column::Hash.eq(digest(secret)))
        .one(db)
        .await?
    {
        Some(key) => Ok(key.revoked_at.is_none()),
        None => insert_key(db, &KeySpec::new(name, role), secret)
            .await
            .map(|_| true),
    }
}

/// Every key, oldest first, revoked ones included.
pub async fn list_keys(db: &DatabaseConnection) -> Result<Vec<api_key::Model>> {
    Ok(api_key::Entity::find()
        .order_by_asc(api_key::Column::Id)
        .all(db)
        .await?)
}

/// Where a key is in its life at `now`: `active`, `expired` or `revoked`.
pub fn state_of(key: &api_key::Model, now: DateTime<Utc>) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at <= now) {
        "expired"
    } else {
        "active"
    }
}

/// `keys list`: the columns `apiKeys` answers, one key a line, times in UTC to the minute.
pub fn table(keys: &[api_key::Model], now: DateTime<Utc>) -> String {
    let time = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let mut out = format!(
        "{:<24}  {:<8}  {:<8}  {:<7}  {:<8}  {:<16}  {:<16}  {:<16}  {:<16}  NAME\n",
        "ID", "ROLE", "PREFIX", "STATE", "PERSONAL", "CREATED", "LAST USED", "EXPIRES", "REVOKED"
    );
    for key in keys {
        out.push_str(&format!(
            "{:<24}  {:<8}  {:<8}  {:<7}  {:<8}  {:<16}  {:<16}  {:<16}  {:<16}  {}\n",
            crate::ids::api_key(key.id),
            key.role,
            key.prefix,
            state_of(key, now),
            if key.personal_data { "yes" } else { "no" },
            time(Some(key.created_at)),
            time(key.last_used_at),
            time(key.expires_at),
            time(key.revoked_at),
            key.name
        ));
    }
    out
}

/// Revokes a key by id; its requests are refused from then on. Revoking a revoked key keeps
/// its first revocation time.
pub async fn revoke_key(db: &DatabaseConnection, id: i64) -> Result<api_key::Model> {
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_key::Column::Id.eq(id))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    let key = find_key(db, id).await?;
    changed(db, id).await;
    tracing::info!(key_id = id, "API key revoked");
    Ok(key)
}

/// After a key was revoked or given another role: this process forgets its cached verification
/// now, and every instance hears of it through the event bus (PostgreSQL). A failed
/// announcement is logged, not returned: the change is committed, and the periodic check of
/// held keys ([`KeyWatch`]) and the cache's lifetime still end the key's use elsewhere.
async fn changed(db: &DatabaseConnection, id: i64) {
    cache::forget(id);
    if let Err(e) = crate::events::relay::announce_key(db, id).await {
        tracing::warn!(key_id = id, error = %e.for_log(), "could not tell other instances of a key change");
    }
}

/// How often a key's `last_used_at` is written at most.
pub const LAST_USED_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// Resolves a secret to its actor; `None` when unknown, revoked or expired.
pub async fn authenticate(db: &DatabaseConnection, secret: &str) -> Result<Option<Actor>> {
    let digest = digest(secret);
    let now = Utc::now();
    if let Some(actor) = cache::get(&digest, now) {
        return Ok(Some(actor));
    }
    let Some(key) = api_key::Entity::find()
        .filter(api_key::Column::Hash.eq(digest.as_str()))
        .filter(api_key::Column::RevokedAt.is_null())
        .filter(
            sea_orm::Condition::any()
                .add(api_key::Column::ExpiresAt.is_null())
                .add(api_key::Column::ExpiresAt.gt(now)),
        )
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&key.role) else {
        return Ok(None);
    };
    // Record use at most once a minute, so reads do not turn into a write each: one conditional
    // UPDATE, so instances and requests racing past the cache write it once. Best-effort and off
    // the request's path: a database busy with a sync's write lock must not delay or fail a read.
    if key.last_used_at.is_none_or(|t| now - t >= LAST_USED_EVERY) {
        let db = db.clone();
        let id = key.id;
        tokio::spawn(async move {
            let update = api_key::Entity::update_many()
                .col_expr(
                    api_key::Column::LastUsedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(api_key::Column::Id.eq(id))
                .filter(
                    sea_orm::Condition::any()
                        .add(api_key::Column::LastUsedAt.is_null())
                        .add(api_key::Column::LastUsedAt.lte(now - LAST_USED_EVERY)),
                )
                .exec(&db);
            if let Err(e) = update.await {
                tracing::debug!(key_id = id, error = %e, "could not record the key's last use");
            }
        });
    }
    let actor = Actor {
        key_id: Some(key.id),
        name: key.name,
        role,
        personal_data: key.personal_data,
    };
    cache::put(digest, actor.clone(), key.expires_at);
    Ok(Some(actor))
}

/// Makes sure an active ADMIN key with this secret exists (the `ADMIN_API_KEY` setting).
pub async fn ensure_admin_secret(db: &DatabaseConnection, secret: &str) -> Result<()> {
    if secret.chars().count() < MIN_ADMIN_SECRET_CHARS {
        return Err(Error::validation(
            "ADMIN_API_KEY",
            format!("ADMIN_API_KEY must be at least {MIN_ADMIN_SECRET_CHARS} characters long"),
        ));
    }
    if secret.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Error::validation(
            "ADMIN_API_KEY",
            "ADMIN_API_KEY must not contain spaces or control characters",
        ));
    }
    match api_key::Entity::find()
        .filter(api_key::Column::Hash.eq(digest(secret)))
        .one(db)
        .await?
    {
        Some(key)
            if key.revoked_at.is_none()
                && key.expires_at.is_none()
                && key.role == Role::Admin.as_str() => {}
        Some(key) => {
            let mut row: api_key::ActiveModel = key.into();
            row.role = Set(Role::Admin.as_str().to_owned());
            row.revoked_at = Set(None);
            row.expires_at = Set(None);
            let key = row.update(db).await?;
            changed(db, key.id).await;
        }
        None => {
            insert_key(db, &KeySpec::new(ADMIN_API_KEY_NAME, Role::Admin), secret).await?;
        }
    }
    // A key made before prefixes came from the digest shows the secret's first characters:
    // rewritten to the digest's.
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::Prefix,
            sea_orm::sea_query::Expr::value(prefix_of(secret)),
        )
        .filter(api_key::Column::Hash.eq(digest(secret)))
        .filter(api_key::Column::Prefix.ne(prefix_of(secret)))
        .exec(db)
        .await?;
    // A new value replaces the old one: the key made from an earlier ADMIN_API_KEY is revoked.
    let replaced = api_key::Entity::update_many()
        .col_expr(
            api_key::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(api_key::Column::Name.eq(ADMIN_API_KEY_NAME))
        .filter(api_key::Column::Hash.ne(digest(secret)))
        .filter(api_key::Column::RevokedAt.is_null())
        .exec_with_returning(db)
        .await?;
    for key in replaced {
        tracing::warn!(
            key_id = key.id,
            "revoked the key made from the previous ADMIN_API_KEY value"
        );
        changed(db, key.id).await;
    }
    Ok(())
}

/// Creates a first ADMIN key when none is active, so a fresh installation can be used at once.
pub async fn bootstrap_admin(db: &DatabaseConnection) -> Result<Option<NewKey>> {
    let active_admin = api_key::Entity::find()
        .filter(api_key::Column::Role.eq(Role::Admin.as_str()))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(db)
        .await?;
    if active_admin.is_some() {
        return Ok(None);
    }
    create_key(db, "bootstrap admin", Role::Admin)
        .await
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Operator && Role::Operator > Role::Viewer);
        let viewer = Actor {
            key_id: Some(1),
            name: "v".into(),
            role: Role::Viewer,
            personal_data: false,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(viewer.require(Role::Admin).unwrap_err().code(), "FORBIDDEN");
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert_eq!(Role::parse("root"), None);
    }
}
