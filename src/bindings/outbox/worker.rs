//! The delivery worker: rounds that claim what is due, check each delivery against the binding
//! and the port as the last sync saw them, write it on the platform, and settle it as soon as it
//! is done, all under one fenced claim (see the module above).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use entity::binding::{self, BindingStatus};
use entity::port;
use entity::push_outbox::{self, PushAction, PushStatus};

use super::fresh::{fresh_ports, Fresh};
use super::settle::{settle, settle_delivered, Outcome};
use super::Delivery;
use crate::clock::DbTime;
use crate::platform::{CustomerRecord, PortChange, PortWrite};
use crate::state::AppState;
use crate::{Error, Result};

/// Deliveries claimed per round.
pub(super) const BATCH: u64 = 200;
/// Deliveries of a round in flight at once. They are of different ports and customers (a round
/// takes one per port and per contract), so both orders hold; the platform client queues behind
/// its own rate limits.
const IN_FLIGHT: usize = 8;

/// The worker's platform clients, one per integration for as long as its row is unchanged: a
/// client keeps its session, so a burst of deliveries logs in once instead of once each.
#[derive(Default)]
pub struct Clients(std::sync::Mutex<HashMap<i64, Client>>);

/// A client, and the `updated_at` of the integration row it was made from.
type Client = (DateTime<Utc>, Arc<dyn crate::platform::Platform>);

impl Clients {
    pub(super) fn get(
        &self,
        app: &AppState,
        integration: &entity::integration::Model,
    ) -> Result<Arc<dyn crate::platform::Platform>> {
        let mut clients = self.0.lock().expect("clients lock");
        if let Some((seen, client)) = clients.get(&integration.id) {
            if *seen == integration.updated_at {
                return Ok(client.clone());
            }
        }
        let client = app.platform(integration)?;
        clients.insert(integration.id, (integration.updated_at, client.clone()));
        Ok(client)
    }
}

/// Due deliveries, oldest first, of active integrations: the oldest pending one of its
/// `(integration, port)` (deliveries of a port go out in order; fids are per platform
/// installation) that is also the oldest pending one of its `(integration, contract)` (a
/// customer's deliveries go out in order across ports: the push to the port a customer moves to
/// waits for the removal from the port they leave, which a platform keeping one client per
/// customer requires). The oldest pending delivery of all is always due, so nothing waits on a
/// cycle.
async fn due(app: &AppState, now: DateTime<Utc>) -> Result<Vec<push_outbox::Model>> {
    // The oldest pending delivery of each port, as one aggregate: a correlated NOT EXISTS
    // measured up to 360 ms a round on PostgreSQL with 3,000 pending (its plan followed the
    // table's growth badly), this a few milliseconds. A delivery without a port (none is
    // queued without one) is taken as it is, and fails with its reason.
    let oldest_per_port = Query::select()
        .expr(Expr::col(push_outbox::Column::Id).min())
        .from(push_outbox::Entity)
        .and_where(push_outbox::Column::Status.eq(PushStatus::Pending))
        .and_where(push_outbox::Column::PortFid.is_not_null())
        .group_by_col(push_outbox::Column::IntegrationId)
        .group_by_col(push_outbox::Column::PortFid)
        .to_owned();
    let oldest_per_contract = Query::select()
        .expr(Expr::col((push_outbox::Entity, push_outbox::Column::Id)).min())
        .from(push_outbox::Entity)
        .inner_join(
            binding::Entity,
            Expr::col((binding::Entity, binding::Column::Id))
                .equals((push_outbox::Entity, push_outbox::Column::BindingId)),
        )
        .and_where(push_outbox::Column::Status.eq(PushStatus::Pending))
        .group_by_col((push_outbox::Entity, push_outbox::Column::IntegrationId))
        .group_by_col((binding::Entity, binding::Column::Contract))
        .to_owned();
    let active = Query::select()
        .column(entity::integration::Column::Id)
        .from(entity::integration::Entity)
        .and_where(entity::integration::Column::Active.eq(true))
        .to_owned();
    Ok(push_outbox::Entity::find()
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(push_outbox::Column::NextAttemptAt.lte(now))
        .filter(push_outbox::Column::IntegrationId.in_subquery(active))
        .filter(
            sea_orm::Condition::any()
                .add(push_outbox::Column::Id.in_subquery(oldest_per_port))
                .add(push_outbox::Column::PortFid.is_null()),
        )
        .filter(push_outbox::Column::Id.in_subquery(oldest_per_contract))
        .order_by_asc(push_outbox::Column::Id)
        .limit(BATCH)
        .all(&app.db)
        .await?)
}

/// Claims the deliveries read as due, in one conditional `UPDATE ... RETURNING`: a row still
/// PENDING and due becomes this round's (its token set, its `next_attempt_at` a lease ahead),
/// one that another instance claimed meanwhile does not. Returns the claimed rows.
async fn claim(
    app: &AppState,
    rows: &[push_outbox::Model],
    now: DateTime<Utc>,
    token: &str,
) -> Result<Vec<push_outbox::Model>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut claimed = push_outbox::Entity::update_many()
        .col_expr(
            push_outbox::Column::NextAttemptAt,
            Expr::value(now + lease(&app.settings.delivery)),
        )
        .col_expr(push_outbox::Column::ClaimToken, Expr::value(token))
        .filter(push_outbox::Column::Id.is_in(rows.iter().map(|r| r.id)))
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .filter(push_outbox::Column::NextAttemptAt.lte(now))
        .exec_with_returning(&app.db)
        .await?;
    claimed.sort_by_key(|r| r.id);
    Ok(claimed)
}

fn lease(settings: &Delivery) -> chrono::Duration {
    chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::seconds(15))
}

/// Moves the lease of every delivery this round still holds a lease ahead (on the database's
/// clock); returns their ids.
async fn renew(app: &AppState, token: &str, clock: DbTime) -> Result<HashSet<i64>> {
    let held = push_outbox::Entity::update_many()
        .col_expr(
            push_outbox::Column::NextAttemptAt,
            Expr::value(clock.now() + lease(&app.settings.delivery)),
        )
        .filter(push_outbox::Column::ClaimToken.eq(token))
        .filter(push_outbox::Column::Status.eq(PushStatus::Pending))
        .exec_with_returning(&app.db)
        .await?;
    Ok(held.into_iter().map(|r| r.id).collect())
}

/// The bindings and (by fid) the local ports of a round's deliveries, in two statements.
async fn context(
    app: &AppState,
    rows: &[push_outbox::Model],
) -> Result<(
    HashMap<i64, binding::Model>,
    HashMap<(i64, String), port::Model>,
)> {
    let bindings = binding::Entity::find()
        .filter(binding::Column::Id.is_in(rows.iter().map(|r| r.binding_id)))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|b| (b.id, b))
        .collect();
    let fids: HashSet<&str> = rows.iter().filter_map(|r| r.port_fid.as_deref()).collect();
    let integrations: HashSet<i64> = rows.iter().map(|r| r.integration_id).collect();
    let ports = port::Entity::find()
        .filter(port::Column::Fid.is_in(fids))
        .filter(port::Column::IntegrationId.is_in(integrations))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|p| ((p.integration_id, p.fid.clone()), p))
        .collect();
    Ok((bindings, ports))
}

/// What a delivery should do, as the binding and the port stand now: `None` to write it, or the
/// outcome without a platform call. A push goes out only while its binding is CONFIRMED on that
/// port with no conflict recorded and the port (as last synced) carries nobody else; a removal
/// is dropped when its binding is active on the port again.
pub(super) fn verdict(
    row: &push_outbox::Model,
    b: Option<&binding::Model>,
    port: Option<&port::Model>,
) -> Option<Outcome> {
    let Some(b) = b else {
        return Some(Outcome::Superseded("the binding is gone".into()));
    };
    let on_this_port = b.port_id.is_some() && b.port_id == port.map(|p| p.id);
    match row.action {
        PushAction::Push => {
            if b.status != BindingStatus::Confirmed || !on_this_port {
                return Some(Outcome::Superseded(format!(
                    "the binding is {} and no longer wants this port",
                    b.status
                )));
            }
            super::super::conflict_reason(b, port).map(|reason| Outcome::Held {
                reason: format!("held: {reason}"),
                conflict: None,
            })
        }
        PushAction::Remove => (on_this_port && BindingStatus::ACTIVE.contains(&b.status))
            .then(|| Outcome::Superseded("the binding is on this port again".into())),
    }
}

/// Writes one delivery on the platform; what the platform did, or why the call failed.
async fn deliver(
    app: &AppState,
    clients: &Clients,
    integration: &entity::integration::Model,
    row: &push_outbox::Model,
    b: &binding::Model,
) -> Result<PortWrite> {
    let platform = clients.get(app, integration)?;
    let Some(fid) = row.port_fid.as_deref() else {
        return Err(Error::Validation {
            message: format!("delivery {} has no port", row.id),
            field: None,
        });
    };
    let text = |key: &str| {
        row.payload
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let record = match row.action {
        PushAction::Push => CustomerRecord {
            contract: text("contract"),
            document: text("document"),
            name: text("name"),
        },
        PushAction::Remove => CustomerRecord {
            contract: b.contract.clone(),
            document: b.document.clone(),
            name: b.name.clone(),
        },
    };
    let change = match row.action {
        PushAction::Push => PortChange::Occupy(&record),
        PushAction::Remove => PortChange::Free(&record),
    };
    platform
        .set_port_customer(fid, change, &integration.key)
        .await
}

/// One round: claims what is due (one statement), checks it against the bindings and ports
/// (two), delivers it [`IN_FLIGHT`] at a time while a task renews the lease, and settles each
/// delivery as soon as it is done; returns how many were claimed. A delivery whose claim is lost
/// while in flight (the lease renewal no longer finds it) is abandoned, unsettled.
///
/// Due times and leases are compared on the database's clock, read once at the start of the
/// round and carried forward by a monotonic timer: instances whose clocks disagree still agree
/// on whose claim a delivery is.
pub async fn run_once(app: &AppState, clients: &Clients) -> Result<usize> {
    let clock = DbTime::read(&app.db).await?;
    let now = clock.now();
    let token = crate::crypto::random_hex(16);
    let claimed = claim(app, &due(app, now).await?, now, &token).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let (held_tx, _) =
        tokio::sync::watch::channel(claimed.iter().map(|r| r.id).collect::<HashSet<_>>());
    let held_tx = Arc::new(held_tx);
    let renewal = {
        let (app, token, held) = (app.clone(), token.clone(), held_tx.clone());
        let lease = app.settings.delivery.lease;
        tokio::spawn(async move {
            let mut renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(lease / 3).await;
                match renew(&app, &token, clock).await {
                    Ok(ids) => {
                        renewed = tokio::time::Instant::now();
                        held.send_replace(ids);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.for_log(), "could not renew a delivery lease");
                        // Past the lease another instance may hold them: stop every call.
                        if renewed.elapsed() >= lease {
                            held.send_replace(HashSet::new());
                        }
                    }
                }
            }
        })
    };
    let outcome = deliver_claimed(app, clients, &claimed, &token, &held_tx, clock).await;
    renewal.abort();
    outcome.map(|()| claimed.len())
}

async fn deliver_claimed(
    app: &AppState,
    clients: &Clients,
    claimed: &[push_outbox::Model],
    token: &str,
    held: &tokio::sync::watch::Sender<HashSet<i64>>,
    clock: DbTime,
) -> Result<()> {
    let (bindings, ports) = context(app, claimed).await?;
    // Each integration of the round is read once.
    let mut integrations = HashMap::new();
    for row in claimed {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            integrations.entry(row.integration_id)
        {
            slot.insert(crate::integrations::find(&app.db, row.integration_id).await);
        }
    }
    let fresh = fresh_ports(app, clients, &integrations, &bindings, &ports, claimed).await;
    let round = Round {
        app,
        clients,
        bindings: &bindings,
        ports: &ports,
        integrations: &integrations,
        fresh: &fresh,
        held,
        clock,
    };
    let round = &round;
    // Deliveries keep going while the ones done are settled: the settler takes whatever has
    // finished since its last statement, so a busy round settles in batches and a quiet one
    // settles each delivery at once.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let deliveries = async move {
        futures::stream::iter(claimed.to_vec())
            .map(|row| round.one(row))
            .buffer_unordered(IN_FLIGHT)
            .for_each(|done| {
                if let Some(done) = done {
                    let _ = done_tx.send(done);
                }
                std::future::ready(())
            })
            .await;
    };
    let settler = async {
        let mut delivered = 0usize;
        while let Some(first) = done_rx.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = done_rx.try_recv() {
                batch.push(more);
            }
            let (written, others): (Vec<_>, Vec<_>) = batch
                .into_iter()
                .partition(|(_, outcome)| matches!(outcome, Outcome::Delivered));
            let mut announce = settle_delivered(app, &written, token, clock.now()).await?;
            delivered += announce.len();
            for (row, outcome) in others {
                if settle(app, &row, token, &outcome, clock.now()).await? {
                    announce.push(row.binding_id);
                }
            }
            super::super::announce_all(app, &announce).await;
        }
        Ok::<usize, Error>(delivered)
    };
    let ((), delivered) = tokio::join!(deliveries, settler);
    let delivered = delivered?;
    if delivered > 0 {
        tracing::info!(deliveries = delivered, "delivered to the platform");
    }
    Ok(())
}

/// What a round's deliveries share.
pub(super) struct Round<'a> {
    pub(super) app: &'a AppState,
    pub(super) clients: &'a Clients,
    pub(super) bindings: &'a HashMap<i64, binding::Model>,
    pub(super) ports: &'a HashMap<(i64, String), port::Model>,
    pub(super) integrations: &'a HashMap<i64, Result<entity::integration::Model>>,
    pub(super) fresh: &'a HashMap<i64, Result<Fresh>>,
    pub(super) held: &'a tokio::sync::watch::Sender<HashSet<i64>>,
    /// The database's clock, as read at the start of the round.
    pub(super) clock: DbTime,
}

impl<'a> Round<'a> {
    /// One delivery: its verdict, else the platform call, unless the claim is lost meanwhile
    /// (`None`: nothing to settle).
    async fn one(&self, row: push_outbox::Model) -> Option<(push_outbox::Model, Outcome)> {
        let b = self.bindings.get(&row.binding_id);
        let port = row
            .port_fid
            .as_ref()
            .and_then(|fid| self.ports.get(&(row.integration_id, fid.clone())));
        if let Some(outcome) = verdict(&row, b, port) {
            return Some((row, outcome));
        }
        let b = b?;
        if row.action == PushAction::Push {
            if let Some(outcome) = self.before_push(&row, b).await {
                return Some((row, outcome));
            }
        }
        let mut held = self.held.subscribe();
        let call = async {
            let written = match &self.integrations[&row.integration_id] {
                Ok(integration) => deliver(self.app, self.clients, integration, &row, b).await,
                Err(e) => Err(Error::internal(anyhow::anyhow!(
                    "integration {} unreadable: {}",
                    row.integration_id,
                    e.message()
                ))),
            };
            self.outcome(&row, b, written).await
        };
        let id = row.id;
        tokio::select! {
            outcome = call => Some(outcome),
            _ = held.wait_for(|ids| !ids.contains(&id)) => None,
        }
        .map(|outcome| (row, outcome))
    }

    /// How a platform write ended, as the outbox records it. A push that meets another
    /// customer at write time (someone took the port between the round's read and the write)
    /// is held with the conflict recorded, never settled as if it were no longer wanted; a
    /// removal that finds another customer, or nothing, has nothing left to do.
    async fn outcome(
        &self,
        row: &push_outbox::Model,
        b: &binding::Model,
        written: Result<PortWrite>,
    ) -> Outcome {
        match written {
            Ok(PortWrite::Written) => Outcome::Delivered,
            Ok(PortWrite::NothingThere) => Outcome::Skipped {
                reason: "nothing to clear: the platform port is gone or carries no customer".into(),
                attempted: true,
            },
            Ok(PortWrite::Other(customer)) => match row.action {
                PushAction::Push => {
                    let described = customer.describe();
                    self.hold(row, b, customer, described)
                }
                PushAction::Remove => Outcome::Skipped {
                    reason: format!(
                        "not cleared: the platform port carries {}, not ours",
                        customer.describe()
                    ),
                    attempted: true,
                },
            },
            Err(e) => Outcome::Failed(e),
        }
    }
}
