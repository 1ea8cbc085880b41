//! API keys over GraphQL (ADMIN): `apiKeys`, `createApiKey`, `revokeApiKey`. Secrets are
//! answered once, by `createApiKey`; only digests are stored.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};

use crate::access::{self, Role};
use crate::graphql::guard::RoleGuard;
use crate::graphql::ids::{self, API_KEY};
use crate::graphql::scalars::DateTime;
use crate::graphql::state;
use entity::api_key;

/// What a key may do; higher roles may do everything lower ones may.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::access::Role")]
pub enum ApiKeyRole {
    /// Reads everything (customers' documents and names only with `personalData`).
    Viewer,
    /// Reads, binds customers, runs manual syncs.
    Operator,
    /// Everything, including integrations, projects, selection and keys.
    Admin,
}

/// An API key, never its secret.
pub struct ApiKey(api_key::Model);

/// An API key, never its secret.
#[Object]
impl ApiKey {
    /// Opaque id (also accepted by `mapping-gateway keys revoke`).
    async fn id(&self) -> ID {
        ids::encode(API_KEY, self.0.id)
    }
    /// Who or what uses it.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What it may do.
    async fn role(&self) -> async_graphql::Result<ApiKeyRole> {
        Role::parse(&self.0.role).map(Into::into).ok_or_else(|| {
            crate::Error::internal(anyhow::anyhow!("unknown role {:?}", self.0.role)).into()
        })
    }
    /// The first characters of the secret (`mgw_` and 4 hex digits), to tell keys apart.
    async fn prefix(&self) -> &str {
        &self.0.prefix
    }
    /// Whether it reads customers' CPF/CNPJ, names and addresses; masked when false.
    async fn personal_data(&self) -> bool {
        self.0.personal_data
    }
    /// When it was made.
    async fn created_at(&self) -> DateTime {
        DateTime(self.0.created_at)
    }
    /// When a request last used it (written at most once a minute); null if never.
    async fn last_used_at(&self) -> Option<DateTime> {
        self.0.last_used_at.map(DateTime)
    }
    /// When it stops working; null: never.
    async fn expires_at(&self) -> Option<DateTime> {
        self.0.expires_at.map(DateTime)
    }
    /// When it was revoked; null while not.
    async fn revoked_at(&self) -> Option<DateTime> {
        self.0.revoked_at.map(DateTime)
    }
    /// Whether requests with it are accepted now (neither revoked nor expired).
    async fn active(&self) -> bool {
        access::state_of(&self.0, chrono::Utc::now()) == "active"
    }
}

/// A new key.
#[derive(InputObject)]
pub struct CreateApiKeyInput {
    /// Who or what will use it (one line, at most 120 characters).
    pub name: String,
    /// What it may do.
    pub role: ApiKeyRole,
    /// When it stops working (in the future); never when absent.
    pub expires_at: Option<DateTime>,
    /// Whether it reads customers' CPF/CNPJ, names and addresses. Default: false for VIEWER,
    /// true for OPERATOR and ADMIN.
    pub personal_data: Option<bool>,
}

/// A key just made, with its secret: shown this once, never again.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key.
    pub key: ApiKey,
    /// The secret to send as `Authorization: Bearer <secret>`; store it now.
    pub secret: String,
}

/// API key queries.
#[derive(Default)]
pub struct KeyQuery;

/// API key queries.
#[Object]
impl KeyQuery {
    /// Every API key, oldest first, revoked and expired ones included (ADMIN).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn api_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ApiKey>> {
        Ok(access::list_keys(&state(ctx)?.db)
            .await?
            .into_iter()
            .map(ApiKey)
            .collect())
    }
}

/// API key mutations.
#[derive(Default)]
pub struct KeyMutation;

/// API key mutations.
#[Object]
impl KeyMutation {
    /// Makes a key (ADMIN) and answers its secret, once.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Its name, role, expiry and say on personal data.")]
        input: CreateApiKeyInput,
    ) -> async_graphql::Result<CreatedApiKey> {
        let spec = access::KeySpec {
            name: input.name,
            role: input.role.into(),
            expires_at: input.expires_at.map(|t| t.0),
            personal_data: input.personal_data,
        };
        let new = access::create(&state(ctx)?.db, &spec).await?;
        Ok(CreatedApiKey {
            key: ApiKey(new.key),
            secret: new.secret,
        })
    }

    /// Revokes a key (ADMIN): its requests are refused from now on, on every instance, and
    /// its open WebSockets are closed. Revoking a revoked key changes nothing.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the key.")] id: ID,
    ) -> async_graphql::Result<ApiKey> {
        let id = ids::decode(API_KEY, &id)?;
        Ok(ApiKey(access::revoke_key(&state(ctx)?.db, id).await?))
    }
}
