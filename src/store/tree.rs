//! The tree under a page of elements, read level by level before the page is resolved: one
//! statement per level whatever the page size, with no dependence on batching windows. Each
//! level is fed into the request's DataLoaders, so the nested fields are answered from their
//! caches through the same `load_one` they use anywhere else.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use entity::{binding, element, port};

use super::loaders::{Cached, PlantLoaders};
use super::lookup::ACTIVE_ON_PORT;
use crate::Result;

/// Which levels the selection reaches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Want {
    /// `freePortCount` of the elements.
    pub element_free_ports: bool,
    /// `splitters` of the elements.
    pub splitters: bool,
    /// `freePortCount` of the splitters.
    pub splitter_free_ports: bool,
    /// `ports` of the splitters.
    pub ports: bool,
    /// `binding` of the ports.
    pub bindings: bool,
}

/// One level for these keys, read in one statement by the loader itself (a whole level at once,
/// with no batching window).
async fn read_level<L>(loader: &Cached<L>, keys: &[i64]) -> Result<HashMap<i64, L::Value>>
where
    L: Loader<i64, Error = std::sync::Arc<crate::Error>>,
{
    loader.loader().load(keys).await.map_err(|e| {
        std::sync::Arc::try_unwrap(e).unwrap_or_else(|shared| {
            crate::Error::internal(anyhow::anyhow!("{}", shared.message()))
        })
    })
}

/// Reads one level and feeds it to its loader.
async fn fill_level<L>(loader: &Cached<L>, keys: &[i64]) -> Result<()>
where
    L: Loader<i64, Error = std::sync::Arc<crate::Error>>,
{
    let values = read_level(loader, keys).await?;
    loader.feed_many(values).await;
    Ok(())
}

/// Reads the wanted levels under `elements` and feeds them to `loaders`.
pub async fn prefetch(
    db: &DatabaseConnection,
    loaders: &PlantLoaders,
    elements: &[element::Model],
    want: Want,
) -> Result<()> {
    if elements.is_empty() {
        return Ok(());
    }
    let element_ids: Vec<i64> = elements.iter().map(|e| e.id).collect();
    loaders
        .element
        .feed_many(elements.iter().map(|e| (e.id, Some(Arc::new(e.clone())))))
        .await;
    if want.element_free_ports {
        fill_level(&loaders.free_ports_of_element, &element_ids).await?;
    }
    if !want.splitters {
        return Ok(());
    }
    let by_element = read_level(&loaders.splitters_of_element, &element_ids).await?;
    let splitters: Vec<_> = by_element
        .values()
        .flat_map(|s| s.iter().cloned())
        .collect();
    let splitter_ids: Vec<i64> = splitters.iter().map(|s| s.id).collect();
    loaders.splitters_of_element.feed_many(by_element).await;
    loaders
        .splitter
        .feed_many(splitters.into_iter().map(|s| (s.id, Some(s))))
        .await;
    if splitter_ids.is_empty() {
        return Ok(());
    }
    if want.splitter_free_ports {
        fill_level(&loaders.free_ports_of_splitter, &splitter_ids).await?;
    }
    if !want.ports {
        return Ok(());
    }
    let by_splitter = read_level(&loaders.ports_of_splitter, &splitter_ids).await?;
    let port_ids: Vec<i64> = by_splitter
        .values()
        .flat_map(|s| s.iter().map(|p| p.id))
        .collect();
    loaders.ports_of_splitter.feed_many(by_splitter).await;
    if want.bindings && !port_ids.is_empty() {
        let mut active: HashMap<i64, Option<Arc<binding::Model>>> =
            port_ids.iter().map(|id| (*id, None)).collect();
        for b in active_bindings_under(db, &splitter_ids).await? {
            if let Some(port_id) = b.port_id {
                active.insert(port_id, Some(Arc::new(b)));
            }
        }
        loaders.active_binding_of_port.feed_many(active).await;
    }
    Ok(())
}

/// Active bindings on the ports of these splitters, keyed through the splitters (a few
/// thousand ids) rather than every port id.
async fn active_bindings_under(
    db: &DatabaseConnection,
    splitter_ids: &[i64],
) -> Result<Vec<binding::Model>> {
    use sea_orm::sea_query::Query;
    let ports_of_splitters = Query::select()
        .column(port::Column::Id)
        .from(port::Entity)
        .and_where(super::lookup::in_ids("splitter_id", splitter_ids))
        .to_owned();
    Ok(binding::Entity::find()
        .filter(binding::Column::Status.is_in(ACTIVE_ON_PORT))
        .filter(binding::Column::PortId.in_subquery(ports_of_splitters))
        .all(db)
        .await?)
}
