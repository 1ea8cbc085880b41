//! DataLoaders (async-graphql's own), created per request, so that nested fields cost one query
//! per level of a tree rather than one per node.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, Loader};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use entity::{integration, project};

/// Every loader of one request.
pub struct Loaders {
    /// Project by integration id.
    pub project: DataLoader<ProjectByIntegration>,
    /// Integration by id.
    pub integration: DataLoader<IntegrationById>,
}

impl Loaders {
    /// Fresh loaders for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            project: DataLoader::new(ProjectByIntegration(db.clone()), tokio::spawn),
            integration: DataLoader::new(IntegrationById(db.clone()), tokio::spawn),
        }
    }
}

/// Loads the project of each integration.
pub struct ProjectByIntegration(DatabaseConnection);

impl Loader<i64> for ProjectByIntegration {
    type Value = project::Model;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = project::Entity::find()
            .filter(project::Column::IntegrationId.is_in(keys.to_vec()))
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(e.into()))?;
        Ok(rows.into_iter().map(|p| (p.integration_id, p)).collect())
    }
}

/// Loads integrations by id.
pub struct IntegrationById(DatabaseConnection);

impl Loader<i64> for IntegrationById {
    type Value = integration::Model;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let rows = integration::Entity::find()
            .filter(integration::Column::Id.is_in(keys.to_vec()))
            .all(&self.0)
            .await
            .map_err(|e| Arc::new(e.into()))?;
        Ok(rows.into_iter().map(|i| (i.id, i)).collect())
    }
}

/// The request's loaders.
pub fn loaders<'a>(ctx: &'a async_graphql::Context<'_>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<Loaders>().map_err(|_| {
        crate::Error::internal(anyhow::anyhow!("Loaders missing from the request")).into()
    })
}

/// Turns a loader error back into the domain error it carries.
pub fn loader_error(e: Arc<crate::Error>) -> async_graphql::Error {
    match Arc::try_unwrap(e) {
        Ok(err) => err.into(),
        Err(shared) => crate::Error::internal(anyhow::anyhow!("{}", shared.message())).into(),
    }
}
