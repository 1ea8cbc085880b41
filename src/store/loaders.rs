//! DataLoaders (async-graphql's own), created per request, so that nested fields cost one query
//! per level of a tree rather than one per node.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

use entity::{integration, project};

/// A loader with a per-request cache, so that a prefetched tree answers its nested fields from
/// memory (see `plant::prefetch_tree`).
pub type Cached<L> = DataLoader<L, HashMapCache>;

/// Every loader of one request.
pub struct Loaders {
    /// Project by integration id.
    pub project: Cached<ProjectByIntegration>,
    /// Integration by id.
    pub integration: Cached<IntegrationById>,
    /// The plant tree.
    pub plant: PlantLoaders,
}

impl Loaders {
    /// Fresh loaders for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        Loaders {
            project: dl(ProjectByIntegration(db.clone())),
            integration: dl(IntegrationById(db.clone())),
            plant: PlantLoaders::new(db),
        }
    }
}

/// The loaders of one request, made on its first use: most operations (one port by id, a
/// mutation) use none, and a full set is a dozen loaders with their caches.
pub struct RequestLoaders {
    db: DatabaseConnection,
    made: std::sync::OnceLock<Loaders>,
}

impl RequestLoaders {
    /// Loaders to be made for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        RequestLoaders {
            db: db.clone(),
            made: std::sync::OnceLock::new(),
        }
    }

    /// The request's loaders, made now if this is their first use.
    pub fn get(&self) -> &Loaders {
        self.made.get_or_init(|| Loaders::new(&self.db))
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

/// Loads rows of one entity whose key column is in the batch (and which meet `only`, when
/// given), in `order`; `key` says which key a row answers. One statement per batch, ids inlined
/// (see `lookup::in_ids`).
pub struct Rows<E: sea_orm::EntityTrait> {
    db: DatabaseConnection,
    column: E::Column,
    order: &'static [E::Column],
    only: Option<sea_orm::Condition>,
    key: fn(&E::Model) -> i64,
    json: Option<crate::store::rows::Decode<E::Model>>,
}

impl<E: sea_orm::EntityTrait> Rows<E> {
    fn new(
        db: &DatabaseConnection,
        column: E::Column,
        order: &'static [E::Column],
        key: fn(&E::Model) -> i64,
    ) -> Self {
        Rows {
            db: db.clone(),
            column,
            order,
            only: None,
            key,
            json: None,
        }
    }

    /// Reads the batch as one JSON array on SQLite (`store::rows::many`, for levels of
    /// thousands of rows).
    fn read_as_json(mut self) -> Self
    where
        E::Model: serde::de::DeserializeOwned,
    {
        self.json = Some(crate::store::rows::decoder());
        self
    }

    fn only(mut self, condition: sea_orm::Condition) -> Self {
        self.only = Some(condition);
        self
    }

    async fn fetch(&self, keys: &[i64]) -> Result<Vec<E::Model>, Arc<crate::Error>> {
        use sea_orm::IdenStatic;
        let mut condition =
            sea_orm::Condition::all().add(crate::store::lookup::in_ids(self.column.as_str(), keys));
        if let Some(only) = &self.only {
            condition = condition.add(only.clone());
        }
        crate::store::rows::many::<E>(&self.db, condition, self.order, self.json)
            .await
            .map_err(Arc::new)
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
    /// `None` for a key without a row, so that absence is cached too. Shared, so that a cache
    /// hit costs a reference count rather than a copy of the row (`Port` and the other API
    /// types hold the same `Arc`).
    type Value = Option<Arc<E::Model>>;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let key = self.0.key;
        let mut out: HashMap<i64, Self::Value> = keys.iter().map(|k| (*k, None)).collect();
        for m in self.0.fetch(keys).await? {
            out.insert(key(&m), Some(Arc::new(m)));
        }
        Ok(out)
    }
}

impl<E> Loader<i64> for Many<E>
where
    E: sea_orm::EntityTrait,
    E::Model: Clone + Send + Sync,
{
    /// Shared like `One`'s: a splitter's ports are handed out by reference count, not copied
    /// on every hit.
    type Value = Arc<[Arc<E::Model>]>;
    type Error = Arc<crate::Error>;

    async fn load(&self, keys: &[i64]) -> Result<HashMap<i64, Self::Value>, Self::Error> {
        let key = self.0.key;
        let mut out: HashMap<i64, Vec<Arc<E::Model>>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        for m in self.0.fetch(keys).await? {
            out.entry(key(&m)).or_default().push(Arc::new(m));
        }
        Ok(out.into_iter().map(|(k, v)| (k, v.into())).collect())
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
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let list: Vec<String> = keys.iter().map(i64::to_string).collect();
        // Per element only service splitters count; per splitter every splitter does.
        let (group, condition) = if self.per_element {
            ("s.element_id", crate::store::lookup::bindable_sql("s", "p"))
        } else {
            ("s.id", crate::store::lookup::free_unbound_sql("p"))
        };
        let sql = format!(
            "SELECT {group} AS k, COUNT(*) AS n FROM splitters s JOIN ports p ON p.splitter_id = s.id \
             WHERE {group} IN ({}) AND {condition} GROUP BY {group}",
            list.join(","),
        );
        let rows = self
            .db
            .query_all_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql,
            ))
            .await
            .map_err(|e| Arc::new(e.into()))?;
        let mut out: HashMap<i64, i64> = keys.iter().map(|k| (*k, 0)).collect();
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
    pub element: Cached<One<entity::element::Entity>>,
    /// Splitter by id.
    pub splitter: Cached<One<entity::splitter::Entity>>,
    /// Port by id.
    pub port: Cached<One<entity::port::Entity>>,
    /// Project by id.
    pub project: Cached<One<entity::project::Entity>>,
    /// Splitters of each element, by fid.
    pub splitters_of_element: Cached<Many<entity::splitter::Entity>>,
    /// Ports of each splitter, by number.
    pub ports_of_splitter: Cached<Many<entity::port::Entity>>,
    /// The active (PENDING or CONFIRMED) binding of each port.
    pub active_binding_of_port: Cached<One<entity::binding::Entity>>,
    /// Bindable free ports per element.
    pub free_ports_of_element: Cached<FreePortCounts>,
    /// Bindable free ports per splitter.
    pub free_ports_of_splitter: Cached<FreePortCounts>,
    /// Selected items of each integration.
    pub selection: Cached<Many<entity::element_selection::Entity>>,
    /// Deliveries of each binding, oldest first.
    pub deliveries_of_binding: Cached<Many<entity::push_outbox::Entity>>,
    /// Binding by id.
    pub binding: Cached<One<entity::binding::Entity>>,
    /// Sync run by id.
    pub sync_run: Cached<One<entity::sync_run::Entity>>,
    /// History entry by id.
    pub history_entry: Cached<One<entity::history_entry::Entity>>,
}

/// How long a loader gathers keys before it queries. Batching by time window is best effort (a
/// busy machine can cut a level in two); element trees do not depend on it, they are prefetched
/// level by level.
pub const BATCH_WINDOW: std::time::Duration = std::time::Duration::from_millis(5);

/// Keys per query: ids are inlined as integers, so no bind-parameter limit applies, and the
/// largest tree a request may ask for (500 boxes) stays under this.
pub const MAX_BATCH: usize = 100_000;

fn dl<L: Loader<i64>>(loader: L) -> Cached<L> {
    DataLoader::with_cache(loader, tokio::spawn, HashMapCache::default())
        .delay(BATCH_WINDOW)
        .max_batch_size(MAX_BATCH)
}

impl PlantLoaders {
    /// Fresh loaders for one request.
    pub fn new(db: &DatabaseConnection) -> Self {
        use entity::{
            binding, element, element_selection, history_entry, port, project, push_outbox,
            splitter, sync_run,
        };
        PlantLoaders {
            binding: dl(One(Rows::<binding::Entity>::new(
                db,
                binding::Column::Id,
                &[binding::Column::Id],
                |m| m.id,
            ))),
            sync_run: dl(One(Rows::<sync_run::Entity>::new(
                db,
                sync_run::Column::Id,
                &[sync_run::Column::Id],
                |m| m.id,
            ))),
            history_entry: dl(One(Rows::<history_entry::Entity>::new(
                db,
                history_entry::Column::Id,
                &[history_entry::Column::Id],
                |m| m.id,
            ))),
            element: dl(One(Rows::<element::Entity>::new(
                db,
                element::Column::Id,
                &[element::Column::Id],
                |m| m.id,
            ))),
            splitter: dl(One(Rows::<splitter::Entity>::new(
                db,
                splitter::Column::Id,
                &[splitter::Column::Id],
                |m| m.id,
            ))),
            port: dl(One(Rows::<port::Entity>::new(
                db,
                port::Column::Id,
                &[port::Column::Id],
                |m| m.id,
            ))),
            project: dl(One(Rows::<project::Entity>::new(
                db,
                project::Column::Id,
                &[project::Column::Id],
                |m| m.id,
            ))),
            splitters_of_element: dl(Many(
                Rows::<splitter::Entity>::new(
                    db,
                    splitter::Column::ElementId,
                    &[splitter::Column::FidNum, splitter::Column::Fid],
                    |m| m.element_id.unwrap_or_default(),
                )
                .read_as_json(),
            )),
            ports_of_splitter: dl(Many(
                Rows::<port::Entity>::new(
                    db,
                    port::Column::SplitterId,
                    &[port::Column::Number],
                    |m| m.splitter_id,
                )
                .read_as_json(),
            )),
            active_binding_of_port: dl(One(Rows::<binding::Entity>::new(
                db,
                binding::Column::PortId,
                &[binding::Column::Id],
                |m| m.port_id.unwrap_or_default(),
            )
            .only(
                sea_orm::Condition::all()
                    .add(binding::Column::Status.is_in(crate::store::lookup::ACTIVE_ON_PORT)),
            ))),
            free_ports_of_element: dl(FreePortCounts {
                db: db.clone(),
                per_element: true,
            }),
            free_ports_of_splitter: dl(FreePortCounts {
                db: db.clone(),
                per_element: false,
            }),
            selection: dl(Many(Rows::<element_selection::Entity>::new(
                db,
                element_selection::Column::IntegrationId,
                &[element_selection::Column::Item],
                |m| m.integration_id,
            ))),
            deliveries_of_binding: dl(Many(Rows::<push_outbox::Entity>::new(
                db,
                push_outbox::Column::BindingId,
                &[push_outbox::Column::Id],
                |m| m.binding_id,
            ))),
        }
    }
}
