//! Reaching the request's DataLoaders (see `store::loaders`) from a resolver.

use std::sync::Arc;

use crate::store::loaders::{Loaders, RequestLoaders};

/// The request's loaders (made on first use).
pub fn loaders<'a>(ctx: &'a async_graphql::Context<'_>) -> async_graphql::Result<&'a Loaders> {
    ctx.data::<RequestLoaders>()
        .map(RequestLoaders::get)
        .map_err(|_| {
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

/// The row a foreign key points to, for a non-null field: missing only when it was deleted
/// since its parent was read, and then `NOT_FOUND` (which nulls the nearest nullable parent).
pub fn required<T>(row: Option<T>, kind: &'static str, id: i64) -> async_graphql::Result<T> {
    row.ok_or_else(|| {
        crate::Error::NotFound(format!(
            "{kind} with id \"{}\"",
            crate::ids::opaque(kind, id)
        ))
        .into()
    })
}
