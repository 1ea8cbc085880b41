//! Integrations: the `Integration` type, its queries and mutations.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};

use entity::integration;

use crate::access::Role;
use crate::gateways::GatewayKind;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, INTEGRATION};
use crate::graphql::state;
use crate::integrations::{self as domain, IntegrationChanges, NewIntegration};

/// A mapping platform the gateway can integrate with.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(name = "GatewayKind")]
pub enum GatewayEnum {
    /// Geosite (GeoSite Telecom, by Digicade).
    Geosite,
    /// OZmap (devOZ).
    Ozmap,
}

impl From<GatewayEnum> for GatewayKind {
    fn from(value: GatewayEnum) -> Self {
        match value {
            GatewayEnum::Geosite => GatewayKind::Geosite,
            GatewayEnum::Ozmap => GatewayKind::Ozmap,
        }
    }
}

impl From<GatewayKind> for GatewayEnum {
    fn from(value: GatewayKind) -> Self {
        match value {
            GatewayKind::Geosite => GatewayEnum::Geosite,
            GatewayKind::Ozmap => GatewayEnum::Ozmap,
        }
    }
}

/// When the integration syncs on its own.
#[derive(SimpleObject)]
pub struct Schedule {
    /// Cron expression (minute hour day-of-month month day-of-week), e.g. `0 4 * * *`.
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `America/Sao_Paulo`.
    pub timezone: String,
}

/// An integration with a mapping platform: credentials, one project, the elements to bring in.
pub struct Integration(pub integration::Model);

/// An integration with a mapping platform: credentials, one project, the elements to bring in.
#[Object]
impl Integration {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(INTEGRATION, self.0.id)
    }
    /// Unique display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Which platform.
    async fn gateway(&self) -> async_graphql::Result<GatewayEnum> {
        GatewayKind::parse(&self.0.gateway)
            .map(Into::into)
            .ok_or_else(|| {
                crate::Error::Internal(anyhow::anyhow!("unknown gateway {:?}", self.0.gateway))
                    .into()
            })
    }
    /// Base URL of the platform's API.
    async fn api_url(&self) -> &str {
        &self.0.api_url
    }
    /// Platform user the gateway logs in as.
    async fn username(&self) -> &str {
        &self.0.username
    }
    /// True when a password is stored. The password itself is write-only.
    async fn has_password(&self) -> bool {
        self.0.password_ciphertext.is_some()
    }
    /// Public random identifier, sent to the platform as `origem` with every push.
    async fn key(&self) -> &str {
        &self.0.key
    }
    /// False when deactivated: never synced or pushed, data still readable.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// When scheduled syncs run.
    async fn schedule(&self) -> Schedule {
        Schedule {
            cron: self.0.schedule_cron.clone(),
            timezone: self.0.schedule_timezone.clone(),
        }
    }
    /// The linked project; null until `setProject`.
    async fn project(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<crate::graphql::projects::Project>> {
        Ok(crate::graphql::loaders::loaders(ctx)?
            .project
            .load_one(self.0.id)
            .await
            .map_err(crate::graphql::loaders::loader_error)?
            .map(crate::graphql::projects::Project))
    }
    /// The selected element items, in catalog order.
    async fn element_selection(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::graphql::projects::ElementItemKey>> {
        let rows = crate::graphql::loaders::loaders(ctx)?
            .plant
            .selection
            .load_one(self.0.id)
            .await
            .map_err(crate::graphql::loaders::loader_error)?
            .map(|all| all.iter().map(|r| (**r).clone()).collect::<Vec<_>>())
            .unwrap_or_default();
        let mut items = crate::selection::items(&rows);
        items.sort();
        Ok(items.into_iter().map(Into::into).collect())
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }
    /// Its sync runs, newest first: `syncRuns(integrationId:)` from the integration.
    #[graphql(
        complexity = "super::paging::connection_cost(super::paging::Args::size(first, last), child_complexity, false)"
    )]
    async fn sync_runs(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward, at most 500.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<crate::graphql::sync::SyncRunConnection> {
        crate::graphql::sync::SyncQuery
            .sync_runs(
                ctx,
                ids::encode(INTEGRATION, self.0.id),
                first,
                after,
                last,
                before,
            )
            .await
    }
    /// Its history, newest first: `history(integrationId:)` from the integration.
    #[graphql(
        complexity = "super::paging::connection_cost(super::paging::Args::size(first, last), child_complexity, false)"
    )]
    async fn history(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward, at most 500.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<crate::graphql::history::HistoryEntryConnection> {
        crate::graphql::history::HistoryQuery
            .history(
                ctx,
                ids::encode(INTEGRATION, self.0.id),
                first,
                after,
                last,
                before,
            )
            .await
    }
    /// Its bindings, newest first: `bindings(filter: {integrationId})` from the integration
    /// (the filter's `integrationId` is this one's).
    #[graphql(
        complexity = "super::paging::connection_cost(super::paging::Args::size(first, last), child_complexity, false)"
    )]
    async fn bindings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to keep.")] filter: Option<
            crate::graphql::plant::BindingFilterInput,
        >,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(desc = "Page size reading backward, at most 500.")] last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<crate::graphql::binding::BindingConnection> {
        let filter = crate::graphql::plant::BindingFilterInput {
            integration_id: Some(ids::encode(INTEGRATION, self.0.id)),
            ..filter.unwrap_or_default()
        };
        crate::graphql::plant::PlantQuery
            .bindings(ctx, Some(filter), first, after, last, before)
            .await
    }
    /// How it is doing: its last sync and its deliveries to the platform.
    async fn health(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<crate::graphql::health::IntegrationHealth> {
        crate::graphql::health::IntegrationHealth::of(ctx, self.0.id).await
    }
}

/// Input of `createIntegration`.
#[derive(InputObject)]
pub struct CreateIntegrationInput {
    /// Unique, non-empty display name.
    pub name: String,
    /// Which platform.
    pub gateway: GatewayEnum,
    /// Absolute http(s) URL of the platform's API (see `gateways` for hints).
    pub api_url: String,
    /// Platform user.
    pub username: String,
    /// Platform password: stored encrypted, never returned.
    #[graphql(secret)]
    pub password: String,
}

/// When an integration syncs on its own.
#[derive(InputObject)]
pub struct ScheduleInput {
    /// Cron expression, 5 fields (minute hour day-of-month month day-of-week), e.g. `0 4 * * *`.
    pub cron: String,
    /// IANA time zone the expression is read in, e.g. `America/Sao_Paulo`; weekend runs (FULL)
    /// follow it too.
    pub timezone: String,
}

/// Input of `updateIntegration`: give only what changes.
#[derive(InputObject)]
pub struct UpdateIntegrationInput {
    /// New unique, non-empty display name.
    pub name: Option<String>,
    /// New absolute http(s) URL of the platform's API.
    pub api_url: Option<String>,
    /// New platform user.
    pub username: Option<String>,
    /// New platform password: stored encrypted, never returned.
    #[graphql(secret)]
    pub password: Option<String>,
    /// Allows moving `apiUrl` from https to http, which sends the password in clear (recorded
    /// in the history). Needed with the password for such a move.
    pub allow_insecure: Option<bool>,
    /// New schedule.
    pub schedule: Option<ScheduleInput>,
}

/// The most integrations `integrations` lists at once.
const MAX_INTEGRATIONS_LISTED: u64 = 500;

/// Integration queries.
#[derive(Default)]
pub struct IntegrationQuery;

#[Object]
impl IntegrationQuery {
    /// The integrations by name: the first `first` of them (100 unless said, at most 500).
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "super::paging::lookup_cost(super::paging::complexity(Some(first), child_complexity))"
    )]
    async fn integrations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, at most 500.", default = 100)] first: i32,
    ) -> async_graphql::Result<Vec<Integration>> {
        let limit = super::paging::size_within("first", first, MAX_INTEGRATIONS_LISTED)?;
        let rows = domain::list_first(&state(ctx)?.db, Some(limit)).await?;
        Ok(rows.into_iter().map(Integration).collect())
    }

    /// One integration by id; null with a `NOT_FOUND` error when there is none.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "super::paging::lookup_cost(child_complexity)"
    )]
    async fn integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] id: ID,
    ) -> async_graphql::Result<Option<Integration>> {
        let id = ids::decode(INTEGRATION, &id)?;
        Ok(Some(Integration(domain::find(&state(ctx)?.db, id).await?)))
    }
}

/// An integration just deleted.
#[derive(async_graphql::SimpleObject)]
pub struct DeletedIntegration {
    /// The id it had (its history is still read with it).
    pub id: ID,
    /// The name it had.
    pub name: String,
}

/// Integration mutations.
#[derive(Default)]
pub struct IntegrationMutation;

#[Object]
impl IntegrationMutation {
    /// Creates an integration (ADMIN). It starts active, with the default schedule (daily 04:00
    /// America/Sao_Paulo) and element selection (service splitters and CTOs).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn create_integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new integration.")] input: CreateIntegrationInput,
    ) -> async_graphql::Result<Integration> {
        let app = state(ctx)?;
        let row = domain::create(
            &app.db,
            &app.master,
            &app.settings.network,
            actor(ctx)?,
            NewIntegration {
                name: input.name,
                gateway: input.gateway.into(),
                api_url: input.api_url,
                username: input.username,
                password: input.password,
            },
            (
                &app.settings.sync.default_cron,
                &app.settings.sync.default_timezone,
            ),
        )
        .await?;
        Ok(Integration(row))
    }

    /// Changes any subset of an integration's settings (ADMIN).
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn update_integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdateIntegrationInput,
    ) -> async_graphql::Result<Integration> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &id)?;
        let row = domain::update(
            &app.db,
            &app.master,
            &app.settings.network,
            actor(ctx)?,
            id,
            IntegrationChanges {
                name: input.name,
                api_url: input.api_url,
                username: input.username,
                password: input.password,
                allow_insecure: input.allow_insecure.unwrap_or(false),
                schedule: input.schedule.map(|s| (s.cron, s.timezone)),
            },
        )
        .await?;
        Ok(Integration(row))
    }

    /// Deletes an integration (ADMIN) with its plant copy, runs, selection, bindings and
    /// deliveries, in one transaction; its history stays readable (`history(integrationId)`),
    /// the deletion its newest entry. Refused with CONFLICT while it is active, has PENDING or
    /// CONFIRMED bindings, deliveries PENDING or FAILED, or a sync queued or running.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn delete_integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] id: ID,
    ) -> async_graphql::Result<DeletedIntegration> {
        let db = &state(ctx)?.db;
        let row =
            crate::integrations::delete(db, actor(ctx)?, ids::decode(INTEGRATION, &id)?).await?;
        Ok(DeletedIntegration {
            id: ids::encode(INTEGRATION, row.id),
            name: row.name,
        })
    }

    /// Deactivates (`active: false`) or reactivates an integration (ADMIN). Deactivating
    /// cancels its running sync, whichever instance runs it.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_integration_active(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] id: ID,
        #[graphql(desc = "The new state.")] active: bool,
    ) -> async_graphql::Result<Integration> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &id)?;
        Ok(Integration(
            crate::sync::set_integration_active(app, actor(ctx)?, id, active).await?,
        ))
    }
}
