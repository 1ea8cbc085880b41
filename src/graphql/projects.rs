//! Projects, the element catalog and the element selection.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Enum, Object, OneofObject, SimpleObject, ID};

use entity::project;

use crate::access::Role;
use crate::catalog::ElementItem;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, INTEGRATION, PROJECT};
use crate::graphql::integrations::Integration;
use crate::graphql::state;
use crate::projects::{self as domain, ProjectChoice};

// The catalog's own enum as the API names it: the conversions both ways are generated and
// checked variant by variant.
/// A selectable item of the element catalog.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::catalog::ElementItem")]
pub enum ElementItemKey {
    /// Splitter de atendimento (always selected).
    Service,
    /// Splitter de distribuição.
    Distribution,
    /// Caixa de terminação óptica.
    Cto,
    /// Caixa de emenda óptica.
    Ceo,
    /// Point of presence.
    Pop,
    /// Pole.
    Pole,
}

/// A category of the element catalog.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "crate::catalog::Category")]
pub enum ElementCategoryKey {
    /// Splitters.
    Splitter,
    /// Optical boxes (Caixa Óptica).
    Box,
    /// Points of presence.
    Pop,
    /// Poles.
    Pole,
}

/// An item of the catalog.
#[derive(SimpleObject)]
#[graphql(name = "ElementItem")]
pub struct CatalogItem {
    /// The value to pass to `setElementSelection`.
    pub key: ElementItemKey,
    /// Label, in the users' language.
    pub label: &'static str,
    /// True when it cannot be deselected.
    pub locked: bool,
    /// True when new integrations select it.
    pub default: bool,
}

/// A category of the catalog with its items.
#[derive(SimpleObject)]
pub struct ElementCategory {
    /// Which category.
    pub key: ElementCategoryKey,
    /// Label, in the users' language.
    pub label: &'static str,
    /// True when at least one of its items must be selected.
    pub required: bool,
    /// Its items.
    pub items: Vec<CatalogItem>,
}

/// The project of an integration: which network design on the platform is synced.
pub struct Project(pub project::Model);

/// The project of an integration: which network design on the platform is synced.
#[Object]
impl Project {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(PROJECT, self.0.id)
    }
    /// The platform's id of the project.
    async fn remote_id(&self) -> &str {
        &self.0.remote_id
    }
    /// Its name on the platform.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// True when the gateway created it on the platform.
    async fn created_remotely(&self) -> bool {
        self.0.created_remotely
    }
    /// When it was linked.
    async fn linked_at(&self) -> DateTime {
        self.0.linked_at.into()
    }
    /// The integration it is linked to (`setProject`'s way back, for client caches).
    async fn integration(&self, ctx: &Context<'_>) -> async_graphql::Result<Integration> {
        let integration = crate::graphql::loaders::loaders(ctx)?
            .integration
            .load_one(self.0.integration_id)
            .await
            .map_err(crate::graphql::loaders::loader_error)?;
        crate::graphql::loaders::required(integration, INTEGRATION, self.0.integration_id)
            .map(Integration)
    }
    /// Its synced elements, by id: the same connection as `elements` (an integration has one
    /// project, and unlinking it removes its copy).
    #[graphql(
        complexity = "super::paging::connection_cost(super::paging::Args::size(first, last), child_complexity, super::plant::ElementFilterInput::searches(&filter))"
    )]
    async fn elements(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to keep.")] filter: Option<super::plant::ElementFilterInput>,
        #[graphql(
            desc = "Page size, at most 500; left out when reading backward with `last`.",
            default = 50
        )]
        first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
        #[graphql(
            desc = "Page size reading backward: the last edges before `before` (or of \
                          the list), at most 500."
        )]
        last: Option<i32>,
        #[graphql(desc = "Cursor of the first edge of the next page (with `last`).")]
        before: Option<String>,
    ) -> async_graphql::Result<super::plant::ElementConnection> {
        let args = super::paging::Args {
            first,
            after,
            last,
            before,
        };
        super::plant::element_page(ctx, self.0.integration_id, filter, args).await
    }
}

/// Which project to link: an existing one on the platform, or a new one created by name.
#[derive(OneofObject)]
pub enum SetProjectInput {
    /// The platform's id of an existing project (see `remoteProjects`).
    RemoteId(String),
    /// The name of a project to create on the platform.
    NewName(String),
}

/// Project and selection queries.
#[derive(Default)]
pub struct ProjectQuery;

/// Project and selection queries.
#[Object]
impl ProjectQuery {
    /// The element catalog: categories, items, which are locked, required and selected by
    /// default.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn element_catalog(&self) -> Vec<ElementCategory> {
        crate::selection::catalog()
            .into_iter()
            .map(|c| ElementCategory {
                key: c.category.into(),
                label: c.label,
                required: c.required,
                items: c
                    .items
                    .into_iter()
                    .map(|i| CatalogItem {
                        key: i.item.into(),
                        label: i.label,
                        locked: i.locked,
                        default: i.default,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Project and selection mutations.
#[derive(Default)]
pub struct ProjectMutation;

/// Project and selection mutations.
#[Object]
impl ProjectMutation {
    /// Links the integration's one project (ADMIN): an existing remote project, or a new one
    /// created on the platform. `CONFLICT` while another is linked.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "The project to link.")] input: SetProjectInput,
    ) -> async_graphql::Result<Project> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let choice = match input {
            SetProjectInput::RemoteId(r) => ProjectChoice::Existing(r),
            SetProjectInput::NewName(n) => ProjectChoice::New(n),
        };
        Ok(Project(domain::set(app, actor(ctx)?, id, choice).await?))
    }

    /// Unlinks the project (ADMIN): deletes the synced copy (active bindings become ORPHANED)
    /// and stops syncs until a project is set again.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn unlink_project(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
    ) -> async_graphql::Result<Integration> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        domain::unlink(app, actor(ctx)?, id).await?;
        Ok(Integration(crate::integrations::find(&app.db, id).await?))
    }

    /// Replaces the element selection (ADMIN). `SERVICE` is locked on, and at least one item of
    /// `SPLITTER` and of `BOX` is required; a refusal is `INVALID_SELECTION`. Newly selected
    /// items are listed in full by the next sync; records of removed items are deleted by it.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn set_element_selection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
        #[graphql(desc = "Every item to select.")] items: Vec<ElementItemKey>,
    ) -> async_graphql::Result<Integration> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let items: Vec<ElementItem> = items.into_iter().map(Into::into).collect();
        crate::selection::set(&app.db, actor(ctx)?, id, &items).await?;
        Ok(Integration(crate::integrations::find(&app.db, id).await?))
    }
}
