//! Binding events: a binding's state after a change of its status or of its delivery, for
//! `bindingEvents`. Subscribers that fall behind skip what they missed; every event carries the
//! current state of its binding, read after the change committed.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use tokio::sync::broadcast;

use super::Bus;
use crate::Result;

/// A binding's state after a change of its status or of its delivery.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingEvent {
    /// The binding.
    pub binding_id: i64,
    /// Its integration.
    pub integration_id: i64,
    /// Its status.
    pub status: entity::binding::BindingStatus,
    /// Its latest delivery's status, once one was queued.
    pub push_status: Option<entity::push_outbox::PushStatus>,
    /// Attempts of that delivery.
    pub attempts: i32,
    /// Why its last attempt failed.
    pub last_error: Option<String>,
    /// When this state was read.
    pub at: DateTime<Utc>,
}

impl BindingEvent {
    /// The current state of a binding and its latest delivery; `None` when it does not exist.
    pub async fn read<C: ConnectionTrait>(db: &C, binding_id: i64) -> Result<Option<BindingEvent>> {
        Ok(Self::read_many(db, &[binding_id]).await?.pop())
    }

    /// The current states of these bindings (those that exist), in two statements whatever
    /// their number.
    pub async fn read_many<C: ConnectionTrait>(db: &C, ids: &[i64]) -> Result<Vec<BindingEvent>> {
        use entity::{binding, push_outbox};
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = binding::Entity::find()
            .filter(binding::Column::Id.is_in(ids.iter().copied()))
            .order_by_asc(binding::Column::Id)
            .all(db)
            .await?;
        // Every delivery of these bindings, oldest first: the last one seen is the latest.
        let mut latest = std::collections::HashMap::new();
        for d in push_outbox::Entity::find()
            .filter(push_outbox::Column::BindingId.is_in(ids.iter().copied()))
            .order_by_asc(push_outbox::Column::Id)
            .all(db)
            .await?
        {
            latest.insert(d.binding_id, d);
        }
        let at = Utc::now();
        Ok(rows
            .into_iter()
            .map(|b| {
                let delivery = latest.remove(&b.id);
                BindingEvent {
                    binding_id: b.id,
                    integration_id: b.integration_id,
                    status: b.status,
                    push_status: delivery.as_ref().map(|d| d.status),
                    attempts: delivery.as_ref().map_or(0, |d| d.attempts),
                    last_error: delivery.and_then(|d| d.last_error),
                    at,
                }
            })
            .collect())
    }
}

/// Every binding event of one integration, as they happen, for as long as the stream is read.
/// A subscriber that falls behind skips what it missed (the next events carry the current
/// state of their bindings).
pub fn binding_events(bus: Arc<Bus>, integration_id: i64) -> BoxStream<'static, BindingEvent> {
    Box::pin(async_stream::stream! {
        let metrics = crate::metrics::get();
        let _open = metrics.subscriptions.guard();
        let mut receiver = bus.bindings.subscribe();
        loop {
            match receiver.recv().await {
                Ok(event) if event.integration_id == integration_id => yield (*event).clone(),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    bus.dropped.fetch_add(n, Ordering::Relaxed);
                    metrics.events_dropped.inc_by(n);
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}
