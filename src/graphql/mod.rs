//! The GraphQL API: schema assembly, access guards, error mapping and paging.
//!
//! Resolvers are thin: they decode ids and arguments, call a GraphQL-free domain function with the
//! database, and wrap the result in an API type. One schema builder serves the server, the SDL
//! export and the tests.

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};

use crate::config::Limits;

pub mod binding;
pub mod bindings;
pub mod cost;
mod document;
pub mod element;
pub mod error;
pub mod extension;
pub mod gateways;
pub mod guard;
pub mod health;
pub mod history;
pub mod ids;
pub mod integrations;
pub mod keys;
pub mod live_cost;
pub mod loaders;
pub mod node;
pub mod paging;
mod persisted;
pub mod plant;
pub mod platform;
pub mod port;
mod port_list;
pub mod progress;
pub mod projects;
pub mod scalars;
mod shape;
pub mod splitter;
pub mod sync;

/// What can be read: integrations, their plant copy, bindings, sync runs, history and keys.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    gateways::GatewayQuery,
    integrations::IntegrationQuery,
    history::HistoryQuery,
    platform::PlatformQuery,
    projects::ProjectQuery,
    sync::SyncQuery,
    plant::PlantQuery,
    node::NodeQuery,
    keys::KeyQuery,
);

/// What can be changed: integrations, projects and selection, syncs, bindings and keys.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    integrations::IntegrationMutation,
    bindings::BindingMutation,
    platform::PlatformMutation,
    projects::ProjectMutation,
    sync::SyncMutation,
    keys::KeyMutation,
);

/// What can be followed live: sync progress and binding changes.
#[derive(MergedSubscription, Default)]
#[graphql(name = "Subscription")]
pub struct SubscriptionRoot(
    progress::ProgressSubscription,
    bindings::BindingSubscription,
);

/// The gateway's schema type.
pub type AppSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// The schema with its limits and extensions, before per-process data is attached.
///
/// Extension order: `Safety` is the only extension; it measures the document before validation
/// (`MAX_QUERY_NODES`), refuses operations over `MAX_QUERY_COMPLEXITY` saying their cost, reports
/// each operation's cost in `extensions.cost`, tags validation failures (depth, syntax) with `VALIDATION`
/// and turns a panicking resolver into an `INTERNAL` error.
pub fn schema_builder(limits: &Limits) -> SchemaBuilder<QueryRoot, MutationRoot, SubscriptionRoot> {
    Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot::default(),
    )
    .limit_depth(limits.max_depth)
    .extension(extension::Safety {
        max_nodes: limits.max_nodes,
        max_cost: limits.max_complexity,
    })
}

/// What the schema is, for a person: GraphiQL and other explorers show it (the SDL's schema
/// description and introspection's `__schema { description }`).
pub const SCHEMA_DESCRIPTION: &str = "mapping-gateway: the service equipment of an ISP's fibre \
plant, synced from its mapping platform (Geosite, OZmap), and the binding of customers to \
service ports, pushed back to the platform. Ids are opaque; lists are Relay connections; every \
error carries `extensions.code`. Deprecated fields and values are listed with their removal in \
docs/SCHEMA.md.";

/// The SDL of the schema, sorted so that it diffs well; `schema.graphql` holds it.
pub fn sdl() -> String {
    let sdl = schema_builder(&Limits::default())
        .finish()
        .sdl_with_options(
            async_graphql::SDLExportOptions::new()
                .sorted_fields()
                .sorted_arguments()
                .sorted_enum_items()
                .include_specified_by(),
        );
    sdl.replacen(
        "\nschema {",
        &format!("\n\"\"\"\n{SCHEMA_DESCRIPTION}\n\"\"\"\nschema {{"),
        1,
    )
}

/// The process-wide state every resolver reads.
pub fn state<'a>(
    ctx: &'a async_graphql::Context<'_>,
) -> async_graphql::Result<&'a crate::state::AppState> {
    ctx.data::<crate::state::AppState>()
        .map_err(|_| crate::Error::internal(anyhow::anyhow!("AppState missing from schema")).into())
}
