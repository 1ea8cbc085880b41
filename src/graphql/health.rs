//! `Integration.health`: what an operator asks first (did the last sync run, and if not why;
//! which pushes are stuck), read from the database as `/metrics` exports it.

use async_graphql::{Context, Object};

use crate::graphql::scalars::DateTime;
use crate::graphql::state;
use crate::graphql::sync::SyncRun;
use crate::store::health::{self, Health};

/// How an integration is doing: its last sync and its deliveries to the platform.
pub struct IntegrationHealth(pub Health);

impl IntegrationHealth {
    /// The health of one integration.
    pub async fn of(ctx: &Context<'_>, integration_id: i64) -> async_graphql::Result<Self> {
        let mut all = health::of(&state(ctx)?.db, Some(&[integration_id])).await?;
        Ok(IntegrationHealth(
            all.remove(&integration_id).unwrap_or_default(),
        ))
    }
}

/// How an integration is doing: its last sync and its deliveries to the platform.
#[Object]
impl IntegrationHealth {
    /// When its last successful sync ended; null before the first.
    async fn last_success_at(&self) -> Option<DateTime> {
        self.0.last_success_at.map(DateTime)
    }
    /// Its last sync that ended (succeeded, failed or cancelled), with its error; null before
    /// the first.
    async fn last_run(&self) -> Option<SyncRun> {
        self.0.last_run.clone().map(SyncRun)
    }
    /// Deliveries waiting for their turn or their next attempt (held ones not counted).
    async fn pending_deliveries(&self) -> i64 {
        self.0.pending
    }
    /// Deliveries held because the platform port carries another customer; they go out once a
    /// sync finds the port free.
    async fn held_deliveries(&self) -> i64 {
        self.0.held
    }
    /// Deliveries given up or refused by the platform; `retryPush` sends them again. List them
    /// with `bindings(filter: { pushStatus: [FAILED] })`.
    async fn failed_deliveries(&self) -> i64 {
        self.0.failed
    }
    /// When the oldest pending (not held) delivery was queued; null without one.
    async fn oldest_pending_at(&self) -> Option<DateTime> {
        self.0.oldest_pending_at.map(DateTime)
    }
}
