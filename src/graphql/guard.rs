//! Field guards: every root field names the least role that may use it.

use async_graphql::{Context, Guard};

use crate::access::{Actor, Role};
use crate::Error;

/// Lets a field run only for a caller whose role is at least the given one.
pub struct RoleGuard(pub Role);

impl Guard for RoleGuard {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        match ctx.data_opt::<Actor>() {
            None => Err(Error::Unauthenticated.into()),
            Some(actor) => actor.require(self.0).map_err(Into::into),
        }
    }
}

/// The authenticated caller; guards have already refused anonymous calls.
pub fn actor<'a>(ctx: &'a Context<'_>) -> async_graphql::Result<&'a Actor> {
    ctx.data_opt::<Actor>()
        .ok_or_else(|| Error::Unauthenticated.into())
}

/// Whether the caller reads personal data (customers' documents, names and addresses, LGPD):
/// only a key with `personalData` does.
pub fn personal_data(ctx: &Context<'_>) -> bool {
    ctx.data_opt::<Actor>().is_some_and(|a| a.personal_data)
}
