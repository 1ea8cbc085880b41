//! Relay's object identification: the `Node` interface that every object with an id
//! implements, and `node(id:)` / `nodes(ids:)` that fetch any of them again by that id, batched
//! through the request's loaders (ids of one kind asked together are one statement).

use async_graphql::{Context, Interface, Object, ID};
use futures::future::try_join_all;

use crate::access::Role;
use crate::graphql::binding::Binding;
use crate::graphql::element::Element;
use crate::graphql::guard::RoleGuard;
use crate::graphql::history::HistoryEntry;
use crate::graphql::ids::{self, BINDING, ELEMENT, HISTORY_ENTRY, INTEGRATION, PORT, PROJECT};
use crate::graphql::ids::{SPLITTER, SYNC_RUN};
use crate::graphql::integrations::Integration;
use crate::graphql::loaders::{loader_error, loaders};
use crate::graphql::paging;
use crate::graphql::port::Port;
use crate::graphql::projects::Project;
use crate::graphql::splitter::Splitter;
use crate::graphql::sync::SyncRun;

/// Most ids `nodes` takes at once.
pub const MAX_NODES: usize = 100;

/// An object with a global id: `node(id:)` fetches it again by that id (Relay's refetching).
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Opaque global id; `node(id:)` fetches the object again."
))]
pub enum Node {
    Integration(Integration),
    Project(Project),
    Element(Element),
    Splitter(Splitter),
    Port(Port),
    Binding(Binding),
    SyncRun(SyncRun),
    HistoryEntry(HistoryEntry),
}

/// The row of `n` through one of the plant's loaders (`None` for no row), made a `Node`.
async fn one<E, N>(
    loader: &crate::store::loaders::Cached<crate::store::loaders::One<E>>,
    n: i64,
    node: impl FnOnce(std::sync::Arc<E::Model>) -> N,
) -> async_graphql::Result<Option<N>>
where
    E: sea_orm::EntityTrait,
    E::Model: Clone + Send + Sync,
{
    Ok(loader
        .load_one(n)
        .await
        .map_err(loader_error)?
        .flatten()
        .map(node))
}

/// The object of an id, through the request's loaders; `None` when the id names nothing.
async fn load(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Option<Node>> {
    let Some((kind, n)) = ids::decode_any(id) else {
        return Ok(None);
    };
    let l = loaders(ctx)?;
    let plant = &l.plant;
    match kind {
        INTEGRATION => Ok(l
            .integration
            .load_one(n)
            .await
            .map_err(loader_error)?
            .map(|m| Node::Integration(Integration(m)))),
        PROJECT => one(&plant.project, n, |m| Node::Project(Project((*m).clone()))).await,
        ELEMENT => one(&plant.element, n, |m| Node::Element(Element(m))).await,
        SPLITTER => one(&plant.splitter, n, |m| Node::Splitter(Splitter(m))).await,
        PORT => one(&plant.port, n, |m| Node::Port(Port(m))).await,
        BINDING => one(&plant.binding, n, |m| Node::Binding(Binding(m))).await,
        SYNC_RUN => one(&plant.sync_run, n, |m| Node::SyncRun(SyncRun((*m).clone()))).await,
        HISTORY_ENTRY => {
            one(&plant.history_entry, n, |m| {
                Node::HistoryEntry(HistoryEntry((*m).clone()))
            })
            .await
        }
        _ => Ok(None),
    }
}

/// Object identification queries.
#[derive(Default)]
pub struct NodeQuery;

/// Object identification queries.
#[Object]
impl NodeQuery {
    /// The object of a global id, whatever its type (VIEWER); null when the id names nothing.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::lookup_cost(child_complexity)"
    )]
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as any object's `id` gives it.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        load(ctx, id.as_str()).await
    }

    /// The objects of several global ids, in the same order, null for an id that names nothing
    /// (VIEWER); at most 100 ids. Ids of one type are read together.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "paging::QUERY + ids.len().saturating_mul(child_complexity)"
    )]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids, at most 100.")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(crate::Error::over_limit(
                "ids",
                "pageSize",
                MAX_NODES as f64,
                format!("nodes takes at most {MAX_NODES} ids, got {}", ids.len()),
            )
            .into());
        }
        try_join_all(ids.iter().map(|id| load(ctx, id.as_str()))).await
    }
}
