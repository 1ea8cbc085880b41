//! Keyset paging shared by every list that can grow: newest first, by id.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use crate::Result;

/// Largest page any list serves (docs/DESIGN.md section 6).
pub const MAX_PAGE_SIZE: u64 = 500;

/// What page to read: at most `limit` rows after (older than) the row `after`.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    /// Rows to return.
    pub limit: u64,
    /// Id of the last row of the previous page.
    pub after: Option<i64>,
}

/// One page of rows.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows, in order.
    pub items: Vec<T>,
    /// True when more rows follow.
    pub has_next: bool,
    /// Rows in the whole list.
    pub total: u64,
}

/// Which way a keyset page walks the ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Highest id first (history, runs, bindings).
    NewestFirst,
    /// Lowest id first (elements).
    OldestFirst,
}

/// Reads one page of `select` ordered by `id` descending.
pub async fn newest_first<C, E>(
    db: &C,
    select: Select<E>,
    id: E::Column,
    request: PageRequest,
) -> Result<Page<E::Model>>
where
    C: ConnectionTrait,
    E: EntityTrait,
    E::Model: Sync,
{
    keyset(db, select, id, request, Walk::NewestFirst, true).await
}

/// Reads one page of `select` by `id` in the given direction; `total` is counted (one more
/// statement) only when `with_total`, and is 0 otherwise.
pub async fn keyset<C, E>(
    db: &C,
    select: Select<E>,
    id: E::Column,
    request: PageRequest,
    walk: Walk,
    with_total: bool,
) -> Result<Page<E::Model>>
where
    C: ConnectionTrait,
    E: EntityTrait,
    E::Model: Sync,
{
    let total = if with_total {
        select.clone().count(db).await?
    } else {
        0
    };
    let mut query = match walk {
        Walk::NewestFirst => select.order_by_desc(id),
        Walk::OldestFirst => select.order_by_asc(id),
    }
    .limit(request.limit + 1);
    if let Some(after) = request.after {
        query = query.filter(match walk {
            Walk::NewestFirst => id.lt(after),
            Walk::OldestFirst => id.gt(after),
        });
    }
    let mut items = query.all(db).await?;
    let has_next = items.len() as u64 > request.limit;
    items.truncate(request.limit as usize);
    Ok(Page {
        items,
        has_next,
        total,
    })
}
