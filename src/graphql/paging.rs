//! Relay connections over the domain's keyset pages.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{OutputType, SimpleObject};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;

use crate::paging::{Page, PageRequest, MAX_PAGE_SIZE};
use crate::Error;

/// Page size when `first` is not given.
pub const DEFAULT_PAGE_SIZE: i32 = 50;

/// Fields every connection carries beside `edges` and `pageInfo`.
#[derive(SimpleObject)]
pub struct ConnectionFields {
    /// Number of items in the whole list, across all pages.
    pub total_count: u64,
}

/// A Relay connection with `totalCount`.
pub type Conn<T> = Connection<String, T, ConnectionFields>;

/// Checks `first`/`after` of a list named `list` (cursors of one list are refused by another).
pub fn request(
    list: &str,
    first: Option<i32>,
    after: Option<String>,
) -> Result<PageRequest, Error> {
    let first = first.unwrap_or(DEFAULT_PAGE_SIZE);
    if first < 0 || first as u64 > MAX_PAGE_SIZE {
        return Err(Error::validation(
            "first",
            format!("first must be between 0 and {MAX_PAGE_SIZE}, got {first}"),
        ));
    }
    let after = after
        .map(|cursor| {
            B64.decode(&cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|text| {
                    let (kind, id) = text.split_once(':')?;
                    (kind == list).then(|| id.parse::<i64>().ok()).flatten()
                })
                .ok_or_else(|| {
                    Error::validation("after", format!("this cursor does not belong to {list}"))
                })
        })
        .transpose()?;
    Ok(PageRequest {
        limit: first as u64,
        after,
    })
}

/// Builds a connection from a page; `key` gives each item's keyset id.
pub fn connection<T, U: OutputType>(
    list: &str,
    page: Page<T>,
    key: impl Fn(&T) -> i64,
    wrap: impl Fn(T) -> U,
) -> Conn<U> {
    let mut conn = Connection::with_additional_fields(
        false,
        page.has_next,
        ConnectionFields {
            total_count: page.total,
        },
    );
    conn.edges.extend(page.items.into_iter().map(|item| {
        let cursor = B64.encode(format!("{list}:{}", key(&item)));
        Edge::new(cursor, wrap(item))
    }));
    conn
}

/// Complexity of a connection: its selection counted `first` times.
pub fn complexity(first: Option<i32>, child: usize) -> usize {
    (first
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, MAX_PAGE_SIZE as i32) as usize)
        .saturating_mul(child)
        .saturating_add(1)
}
