//! `Element`: a synced box or point, with its splitters.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Object, ID};

use crate::graphql::ids::{self, ELEMENT};
use crate::graphql::loaders::{loader_error, loaders, required};
use crate::graphql::projects::{ElementItemKey, Project};
use entity::element;

use super::splitter::Splitter;

/// A synced box or point.
pub struct Element(pub std::sync::Arc<element::Model>);

impl From<element::Model> for Element {
    fn from(row: element::Model) -> Self {
        Element(std::sync::Arc::new(row))
    }
}

/// A synced box or point (CTO, CEO, POP, POLE).
#[Object]
impl Element {
    /// Opaque id.
    pub(crate) async fn id(&self) -> ID {
        ids::encode(ELEMENT, self.0.id)
    }
    /// The platform's id.
    async fn fid(&self) -> &str {
        &self.0.fid
    }
    /// Which catalog item it is.
    async fn item(&self) -> ElementItemKey {
        self.0.item.into()
    }
    /// Name on the platform.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Latitude (WGS 84).
    async fn latitude(&self) -> Option<f64> {
        self.0.latitude
    }
    /// Longitude (WGS 84).
    async fn longitude(&self) -> Option<f64> {
        self.0.longitude
    }
    /// When it last changed on the platform.
    async fn remote_updated_at(&self) -> Option<DateTime> {
        self.0.remote_updated_at.map(DateTime)
    }
    /// When the gateway last wrote it.
    async fn synced_at(&self) -> DateTime {
        self.0.synced_at.into()
    }
    /// The project it belongs to.
    async fn project(&self, ctx: &Context<'_>) -> async_graphql::Result<Project> {
        let project = loaders(ctx)?
            .plant
            .project
            .load_one(self.0.project_id)
            .await
            .map_err(loader_error)?
            .flatten();
        let project = required(project, crate::ids::PROJECT, self.0.project_id)?;
        Ok(Project((*project).clone()))
    }
    /// The splitters it houses, by fid.
    #[graphql(complexity = "4 * child_complexity + 1")]
    async fn splitters(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Splitter>> {
        Ok(loaders(ctx)?
            .plant
            .splitters_of_element
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .map(|all| all.iter().cloned().map(Splitter).collect())
            .unwrap_or_default())
    }
    /// Bindable ports: FREE ports of its service splitters with no active binding.
    async fn free_port_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        Ok(loaders(ctx)?
            .plant
            .free_ports_of_element
            .load_one(self.0.id)
            .await
            .map_err(loader_error)?
            .unwrap_or(0))
    }
}
