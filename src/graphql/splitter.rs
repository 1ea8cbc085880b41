//! `Splitter`: a synced splitter, with its box and its ports.

use async_graphql::{Context, Object, ID};

use crate::graphql::ids::{self, SPLITTER};
use crate::graphql::loaders::{loader_error, loaders};
use entity::splitter;

pub use entity::splitter::SplitterKind;

use super::element::Element;
use super::port_list::{Plan, Ports};

/// A synced splitter.
pub struct Splitter(pub std::sync::Arc<splitter::Model>);

impl From<splitter::Model> for Splitter {
    fn from(row: splitter::Model) -> Self {
        Splitter(std::sync::Arc::new(row))
    }
}

/// A synced splitter.
#[Object]
impl Splitter {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(SPLITTER, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// Name on the platform.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// SERVICE (Atendimento) or DISTRIBUTION.
    async fn kind(&self) -> SplitterKind {
        self.0.kind
    }
    /// Ratio as the platform gives it, e.g. `1:16`.
    async fn ratio(&self) -> &str {
        &self.0.ratio
    }
    /// Output ports the ratio implies.
    async fn port_count(&self) -> i32 {
        self.0.port_count
    }
    /// FREE ports with no active binding.
    async fn free_port_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(loaders(ctx)?
            .plant
            .free_ports_of_splitter
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or(0))
    }
    /// The box that houses it; null when that box is not synced (not selected).
    #[graphql(name = "box")]
    async fn housing(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Element>> {
        let Some(id) = self.0.element_id else {
            return Ok(None);
        };
        Ok(loaders(ctx)?
            .plant
            .element
            .load_one(id)
            .await
            .map_err(loader_error)?
            .flatten()
            .map(Element))
    }
    /// The platform fid of the housing box, as the platform gives it: there even when `box` is
    /// null (a box outside the selection), null when the platform names no box.
    async fn box_fid(&self) -> Option<&str> {
        self.0.box_fid.as_deref()
    }
    /// Its output ports, by number.
    #[graphql(complexity = "16 * child_complexity + 1")]
    async fn ports(&self, ctx: &Context<'_>) -> async_graphql::Result<Ports> {
        let plant = &loaders(ctx)?.plant;
        let rows = plant
            .ports_of_splitter
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or_else(|| std::sync::Arc::from([]));
        // The selection is planned once for the list, and which ports have an active binding
        // is one cached lookup for the list instead of one per port.
        let plan = Plan::of(&ctx.item.node.selection_set.node);
        let mut bound = std::collections::HashSet::new();
        if plan.as_ref().is_some_and(Plan::asks_binding) {
            let found = plant
                .active_binding_of_port
                .load_many(rows.iter().map(|p| p.id))
                .await
                .map_err(loader_error)?;
            bound.extend(
                found
                    .into_iter()
                    .filter_map(|(port, binding)| binding.map(|_| port)),
            );
        }
        Ok(Ports::new(rows, plan, bound))
    }
}
