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
    /// The plant tree.
    pub plant: PlantLoaders,
}

impl Loaders {
    /// Fresh loaders for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            project: DataLoader::new(ProjectByIntegration(db.clone()), tokio::spawn),
            integration: DataLoader::new(IntegrationById(db.clone()), tokio::spawn),
            plant: PlantLoaders::new(db),
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

/// Loads rows of one entity whose key column is in the batch; `key` says which key a row
/// answers. One statement per batch, ids inlined (see `lookup::in_ids`).
pub struct Rows<E: sea_orm::EntityTrait> {
    db: DatabaseConnection,
    column: &'static str,
    order: &'static str,
    key: fn(&E::Model) -> i64,
}

impl<E: sea_orm::EntityTrait> Rows<E> {
    fn new(
        db: &DatabaseConnection,
        column: &'static str,
        order: &'static str,
        key: fn(&E::Model) -> i64,
    ) -> Self {
        Rows {
            db: db.clone(),
            column,
            order,
            key,
        }
    }

    async fn fetch(&self, keys: &[i64]) -> Result<Vec<E::Model>, Arc<crate::Error>> {
        use sea_orm::QueryOrder;
        E::find()
            .filter(crate::lookup::in_ids(self.column, keys))
            .order_by_asc(sea_orm::sea_query::Expr::cust(self.order))
            .all(&self.db)
            .await
            .map_err(|e| Arc::new(e.into()))
    }
}

/// One row per key.
pub struct One<E: sea_orm::EntityTrait>(Rows<E>);

/// Every row of each key, in the loader's order.
pub struct Many<E: sea_orm::EntityTrait>(Rows<E>);

impl<E> Loader<i64> for One<E>
where
    E: sea_orm::EntityTrait,
    E::Model: Clone + Send + Sync,
{
    type Value = E::Model;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let key = self.0.key;
        Ok(self
            .0
            .fetch(keys)
            .await?
            .into_iter()
            .map(|m| (key(&m), m))
            .collect())
    }
}

impl<E> Loader<i64> for Many<E>
where
    E: sea_orm::EntityTrait,
    E::Model: Clone + Send + Sync,
{
    type Value = Vec<E::Model>;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let key = self.0.key;
        let mut out: HashMap<i64, Vec<E::Model>> = HashMap::new();
        for m in self.0.fetch(keys).await? {
            out.entry(key(&m)).or_default().push(m);
        }
        Ok(out)
    }
}

/// Counts of bindable free ports (FREE, no active binding) per element (service splitters only)
/// or per splitter.
pub struct FreePortCounts {
    db: DatabaseConnection,
    per_element: bool,
}

impl Loader<i64> for FreePortCounts {
    type Value = i64;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, i64>, Self::Error> {
        use sea_orm::ConnectionTrait;
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        let (group, extra) = if self.per_element {
            ("s.element_id", "AND s.kind = 'SERVICE'")
        } else {
            ("s.id", "")
        };
        let sql = format!(
            "SELECT {group} AS k, COUNT(*) AS n FROM splitters s JOIN ports p ON p.splitter_id = s.id \
             WHERE {group} IN ({}) {extra} AND p.status = 'FREE' \
             AND NOT EXISTS (SELECT 1 FROM bindings b WHERE b.port_id = p.id \
             AND b.status IN ('PENDING', 'CONFIRMED')) GROUP BY {group}",
            list.join(",")
        );
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await
            .map_err(|e| Arc::new(e.into()))?;
        let mut out = HashMap::new();
        for row in rows {
            let k: i64 = row.try_get("", "k").map_err(|e| Arc::new(e.into()))?;
            let n: i64 = row.try_get("", "n").map_err(|e| Arc::new(e.into()))?;
            out.insert(k, n);
        }
        Ok(out)
    }
}

/// Loaders of the plant tree.
pub struct PlantLoaders {
    /// Element by id.
    pub element: DataLoader<One<entity::element::Entity>>,
    /// Splitter by id.
    pub splitter: DataLoader<One<entity::splitter::Entity>>,
    /// Port by id.
    pub port: DataLoader<One<entity::port::Entity>>,
    /// Project by id.
    pub project: DataLoader<One<entity::project::Entity>>,
    /// Splitters of each element, by fid.
    pub splitters_of_element: DataLoader<Many<entity::splitter::Entity>>,
    /// Ports of each splitter, by number.
    pub ports_of_splitter: DataLoader<Many<entity::port::Entity>>,
    /// The active (PENDING or CONFIRMED) binding of each port.
    pub active_binding_of_port: DataLoader<One<entity::binding::Entity>>,
    /// Bindable free ports per element.
    pub free_ports_of_element: DataLoader<FreePortCounts>,
    /// Bindable free ports per splitter.
    pub free_ports_of_splitter: DataLoader<FreePortCounts>,
}

fn dl<L: Loader<i64>>(loader: L) -> DataLoader<L> {
    DataLoader::new(loader, tokio::spawn)
}

impl PlantLoaders {
    /// Fresh loaders for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        use entity::{binding, element, port, project, splitter};
        PlantLoaders {
            element: dl(One(Rows::<element::Entity>::new(db, "id", "id", |m| m.id))),
            splitter: dl(One(Rows::<splitter::Entity>::new(db, "id", "id", |m| m.id))),
            port: dl(One(Rows::<port::Entity>::new(db, "id", "id", |m| m.id))),
            project: dl(One(Rows::<project::Entity>::new(db, "id", "id", |m| m.id))),
            splitters_of_element: dl(Many(Rows::<splitter::Entity>::new(
                db,
                "element_id",
                "fid_num, fid",
                |m| m.element_id.unwrap_or_default(),
            ))),
            ports_of_splitter: dl(Many(Rows::<port::Entity>::new(
                db,
                "splitter_id",
                "number",
                |m| m.splitter_id,
            ))),
            active_binding_of_port: DataLoader::new(
                One(Rows::<binding::Entity>::new(
                    db,
                    "status IN ('PENDING', 'CONFIRMED') AND port_id",
                    "id",
                    |m| m.port_id.unwrap_or_default(),
                )),
                tokio::spawn,
            ),
            free_ports_of_element: DataLoader::new(
                FreePortCounts {
                    db: db.clone(),
                    per_element: true,
                },
                tokio::spawn,
            ),
            free_ports_of_splitter: DataLoader::new(
                FreePortCounts {
                    db: db.clone(),
                    per_element: false,
                },
                tokio::spawn,
            ),
        }
    }
}
