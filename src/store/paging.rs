//! Keyset paging shared by every list that can grow: newest first, by id.

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};

use crate::Result;

/// Largest page any list serves (docs/DESIGN.md section 6).
pub const MAX_PAGE_SIZE: u64 = 500;

/// What page to read: at most `limit` rows after the row `after` and before the row `before`
/// (in the list's order); the first of them, or the last ones when `from_end`.
#[derive(Clone, Copy, Debug, Default)]
pub struct PageRequest {
    /// Rows to return.
    pub limit: u64,
    /// Id of the last row of the previous page.
    pub after: Option<i64>,
    /// Id of the first row of the next page.
    pub before: Option<i64>,
    /// The last `limit` rows of the range rather than the first (Relay's `last`).
    pub from_end: bool,
}

/// One page of rows.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows, in order.
    pub items: Vec<T>,
    /// True when more rows follow (in the range, when reading from its end: the row `before`
    /// follows, so it is true whenever `before` was given).
    pub has_next: bool,
    /// True when rows come before this page (likewise: whenever `after` was given, reading
    /// from the start).
    pub has_previous: bool,
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
    // Reading from the end walks the ids the other way, then puts the page back in order.
    let descending = (walk == Walk::NewestFirst) != request.from_end;
    let mut query = if descending {
        select.order_by_desc(id)
    } else {
        select.order_by_asc(id)
    }
    .limit(request.limit + 1);
    // `after` and `before` bound the range in the list's order, whichever end is read.
    let newest_first = walk == Walk::NewestFirst;
    if let Some(after) = request.after {
        query = query.filter(if newest_first {
            id.lt(after)
        } else {
            id.gt(after)
        });
    }
    if let Some(before) = request.before {
        query = query.filter(if newest_first {
            id.gt(before)
        } else {
            id.lt(before)
        });
    }
    let mut items = query.all(db).await?;
    let more = items.len() as u64 > request.limit;
    items.truncate(request.limit as usize);
    let (has_next, has_previous) = if request.from_end {
        items.reverse();
        (request.before.is_some(), more)
    } else {
        (more, request.after.is_some())
    };
    Ok(Page {
        items,
        has_next,
        has_previous,
        total,
    })
}
