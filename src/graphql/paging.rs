//! Relay connections over the domain's keyset pages.

use async_graphql::SimpleObject;

use crate::store::paging::{Page, PageRequest, MAX_PAGE_SIZE};
use crate::Error;

/// Page size when `first` is not given.
pub const DEFAULT_PAGE_SIZE: i32 = 50;

/// Pagination state of a connection page (Relay).
#[derive(SimpleObject)]
pub struct PageInfo {
    /// True when an earlier page exists; pass `startCursor` as `before` (with `last`) to read
    /// it. Reading forward it is true whenever `after` was given.
    pub has_previous_page: bool,
    /// True when another page follows; pass `endCursor` as `after` to read it. Reading
    /// backward it is true whenever `before` was given.
    pub has_next_page: bool,
    /// Cursor of the first edge of this page.
    pub start_cursor: Option<String>,
    /// Cursor of the last edge of this page.
    pub end_cursor: Option<String>,
}

/// A page of a list, ready to become a connection type of [`connection_type!`].
pub struct Parts<T> {
    /// Cursor and node of each edge.
    pub edges: Vec<(String, T)>,
    /// Pagination state.
    pub page_info: PageInfo,
    /// Items in the whole list.
    pub total_count: u64,
}

/// Declares a documented Relay connection type and its edge type for a node type.
#[macro_export]
macro_rules! connection_type {
    ($conn:ident, $edge:ident, $node:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ", as a Relay connection.")]
        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            /// The items of this page, each with its cursor.
            pub edges: Vec<$edge>,
            /// Where this page stands in the list.
            pub page_info: $crate::graphql::paging::PageInfo,
            /// Number of items in the whole list, across all pages.
            pub total_count: u64,
        }

        #[doc = concat!("One of ", $what, " with its cursor.")]
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            /// Opaque cursor of this item; pass it as `after` to read what follows.
            pub cursor: String,
            /// The item.
            pub node: $node,
        }

        impl From<$crate::graphql::paging::Parts<$node>> for $conn {
            fn from(parts: $crate::graphql::paging::Parts<$node>) -> Self {
                $conn {
                    edges: parts
                        .edges
                        .into_iter()
                        .map(|(cursor, node)| $edge { cursor, node })
                        .collect(),
                    page_info: parts.page_info,
                    total_count: parts.total_count,
                }
            }
        }
    };
}

/// The paging arguments of a connection field, as Relay names them.
#[derive(Default)]
pub struct Args {
    /// Page size reading forward.
    pub first: Option<i32>,
    /// Cursor the page starts after.
    pub after: Option<String>,
    /// Page size reading backward (the last rows before `before`, or of the list).
    pub last: Option<i32>,
    /// Cursor the page ends before.
    pub before: Option<String>,
}

impl Args {
    /// The page size the cost model counts: `last` when given (`first` then only holds its
    /// default).
    pub fn size(first: Option<i32>, last: Option<i32>) -> Option<i32> {
        last.or(first)
    }
}

/// Checks the paging arguments of a list named `list` (cursors of one list are refused by
/// another; `first` and `last` together are refused, unless `first` holds its default, which
/// the schema states: a client reading backward gives `last` alone).
pub fn request(list: &str, mut args: Args) -> Result<PageRequest, Error> {
    if args.last.is_some() && args.first == Some(DEFAULT_PAGE_SIZE) {
        args.first = None;
    }
    if args.first.is_some() && args.last.is_some() {
        return Err(Error::validation(
            "last",
            "give first (reading forward) or last (reading backward), not both",
        ));
    }
    let (field, size) = match args.last {
        Some(last) => ("last", last),
        None => ("first", args.first.unwrap_or(DEFAULT_PAGE_SIZE)),
    };
    let size = size_within(field, size, MAX_PAGE_SIZE)?;
    let cursor = |name: &str, cursor: Option<String>| {
        cursor
            .map(|c| {
                super::ids::decode_tagged(list, &c).ok_or_else(|| {
                    Error::validation(name, format!("this cursor does not belong to {list}"))
                })
            })
            .transpose()
    };
    Ok(PageRequest {
        limit: size,
        after: cursor("after", args.after)?,
        before: cursor("before", args.before)?,
        from_end: args.last.is_some(),
    })
}

/// A page size argument `field` checked to be within 0..=`max` (`pageSize` is the limit's name).
pub fn size_within(field: &str, size: i32, max: u64) -> Result<u64, Error> {
    let message = || format!("{field} must be between 0 and {max}, got {size}");
    match u64::try_from(size) {
        Err(_) => Err(Error::validation(field, message())),
        Ok(n) if n > max => Err(Error::over_limit(field, "pageSize", max as f64, message())),
        Ok(n) => Ok(n),
    }
}

/// Builds a connection from a page; `key` gives each item's keyset id.
pub fn connection<T, U, C: From<Parts<U>>>(
    list: &str,
    page: Page<T>,
    key: impl Fn(&T) -> i64,
    wrap: impl Fn(T) -> U,
) -> C {
    let edges: Vec<(String, U)> = page
        .items
        .into_iter()
        .map(|item| (super::ids::encode(list, key(&item)).0, wrap(item)))
        .collect();
    let page_info = PageInfo {
        has_previous_page: page.has_previous,
        has_next_page: page.has_next,
        start_cursor: edges.first().map(|e| e.0.clone()),
        end_cursor: edges.last().map(|e| e.0.clone()),
    };
    C::from(Parts {
        edges,
        page_info,
        total_count: page.total,
    })
}

/// Complexity of a connection: its selection counted `first` times.
pub fn complexity(first: Option<i32>, child: usize) -> usize {
    (first
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE as i32) as usize)
        .saturating_mul(child)
        .saturating_add(1)
}

/// Units of one statement a field runs of its own (a root lookup, not batched through a loader).
/// The cost limit was set on the element tree, about 0.4 µs of work a unit on a release build;
/// one statement with its round trip measured about 80 µs, 200 units (docs/BENCHMARKS.md,
/// "Cost of database work").
pub const QUERY: usize = 200;

/// Units of a search by name: a substring test over every element of the integration (no index
/// serves it), 2.1 ms at 20,000 boxes.
pub const SEARCH: usize = 5_000;

/// Units of a call to the platform: its round trip (milliseconds to seconds) and its share of
/// the platform's rate limit.
pub const PLATFORM: usize = 10_000;

/// Units of a `freePorts` search whatever its radius: 0.4 ms at 20,000 boxes.
const NEAREST: usize = 1_000;

/// Meters of search radius that cost one unit on top of [`NEAREST`]: the boxes within the
/// radius are read, so a wider search costs more on a denser network.
const METERS_PER_UNIT: f64 = 5.0;

/// Cost of a root lookup of one row with `child` selected.
pub fn lookup_cost(child: usize) -> usize {
    QUERY.saturating_add(child)
}

/// Cost of a root connection: its statements (the integration's check, the count and the page)
/// and its selection `first` times; with `search`, the scan it makes.
pub fn connection_cost(first: Option<i32>, child: usize, search: bool) -> usize {
    (3 * QUERY)
        .saturating_add(complexity(first, child))
        .saturating_add(if search { SEARCH } else { 0 })
}

/// Cost of a `freePorts` search of `radius` meters (the radius is checked by the resolver)
/// with its selection `first` times.
pub fn free_ports_cost(radius: f64, first: Option<i32>, child: usize) -> usize {
    let radius = if radius.is_finite() && radius > 0.0 {
        (radius.min(crate::store::lookup::MAX_RADIUS_M) / METERS_PER_UNIT).ceil() as usize
    } else {
        0
    };
    (NEAREST + radius + 1)
        .saturating_add((first.unwrap_or(10).clamp(1, 100) as usize).saturating_mul(child))
}
