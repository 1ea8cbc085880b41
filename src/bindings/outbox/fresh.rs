//! What the platform says of a round's pushes right before they are written: the ports they go
//! to, read in one listing per integration, so that a push never lands on a customer who
//! arrived after the last sync.

use std::collections::HashMap;

use entity::binding;
use entity::port;
use entity::push_outbox::{self, PushAction};

use super::settle::{Conflict, Outcome};
use super::worker::{verdict, Clients, Round};
use crate::platform::{Holder, ListQuery, RemoteCustomer, RemotePort};
use crate::state::AppState;
use crate::{Error, Result};

impl Round<'_> {
    /// What the platform's port, as read in this round, says of a push: `None` to write it. A
    /// port gone from the platform fails it; a port carrying someone else records the conflict
    /// on the binding (visible in the API, cleared by the sync that finds the port free again)
    /// and holds the push.
    pub(super) async fn before_push(
        &self,
        row: &push_outbox::Model,
        b: &binding::Model,
    ) -> Option<Outcome> {
        let fid = row.port_fid.as_deref()?;
        let fresh = match self.fresh.get(&row.integration_id)? {
            Ok(fresh) => fresh,
            Err(e) => return Some(Outcome::Failed(again(e))),
        };
        let Some(port) = fresh.ports.get(fid) else {
            return Some(Outcome::Failed(if fresh.complete {
                Error::NotFound(format!("port {fid} no longer exists on the platform"))
            } else {
                Error::PlatformUnavailable(format!("port {fid} could not be read"))
            }));
        };
        if port.holder(&b.contract, &b.document) != Holder::Other {
            return None;
        }
        Some(self.hold(
            row,
            b,
            port.customer.clone().unwrap_or_default(),
            port.describe(),
        ))
    }

    /// Holds a push whose port carries another customer on the platform (read by the round, or
    /// met by the write itself): the push waits, PENDING with the reason, until a sync finds
    /// the port free again (or its horizon fails it), and the conflict is recorded on the
    /// binding in the same transaction as the held delivery (see [`Conflict`]).
    pub(super) fn hold(
        &self,
        row: &push_outbox::Model,
        b: &binding::Model,
        customer: RemoteCustomer,
        described: String,
    ) -> Outcome {
        let fid = row.port_fid.as_deref().unwrap_or_default();
        let conflict = self
            .ports
            .get(&(row.integration_id, fid.to_owned()))
            .map(|p| Conflict {
                binding_id: b.id,
                port_id: p.id,
                customer,
                seen_at: self.clock.now(),
            });
        Outcome::Held {
            reason: format!("held: the platform port {fid} carries {described}"),
            conflict,
        }
    }
}

/// The same failure, for every delivery that shared the read that failed.
fn again(e: &Error) -> Error {
    match e {
        Error::PlatformAuth(m) => Error::PlatformAuth(m.clone()),
        Error::PlatformUnavailable(m) => Error::PlatformUnavailable(m.clone()),
        other => Error::PlatformUnavailable(other.message()),
    }
}

/// The ports of one integration that a round pushes to, as the platform has them now.
pub(super) struct Fresh {
    ports: HashMap<String, RemotePort>,
    /// Every listed record was read (none skipped as unreadable): a port missing is gone.
    complete: bool,
}

/// Reads, once per integration and round, the ports the round's pushes go to (`fid in [...]`):
/// a push is never written over a customer who arrived on the port after the last sync. A burst
/// of deliveries costs one read per round on top of one write each.
pub(super) async fn fresh_ports(
    app: &AppState,
    clients: &Clients,
    integrations: &HashMap<i64, Result<entity::integration::Model>>,
    bindings: &HashMap<i64, binding::Model>,
    ports: &HashMap<(i64, String), port::Model>,
    claimed: &[push_outbox::Model],
) -> HashMap<i64, Result<Fresh>> {
    use futures::TryStreamExt;
    let mut wanted: HashMap<i64, Vec<String>> = HashMap::new();
    for row in claimed.iter().filter(|r| r.action == PushAction::Push) {
        let port = row
            .port_fid
            .as_ref()
            .and_then(|fid| ports.get(&(row.integration_id, fid.clone())));
        if verdict(row, bindings.get(&row.binding_id), port).is_none() {
            if let Some(fid) = &row.port_fid {
                wanted
                    .entry(row.integration_id)
                    .or_default()
                    .push(fid.clone());
            }
        }
    }
    let mut fresh = HashMap::new();
    for (integration_id, fids) in wanted {
        let read = async {
            let integration = integrations[&integration_id].as_ref().map_err(again)?;
            let platform = clients.get(app, integration)?;
            let query = ListQuery {
                fids: Some(fids),
                ..Default::default()
            };
            let pages: Vec<_> = platform.ports(query).try_collect().await?;
            let total = pages
                .first()
                .map_or(0, |p: &crate::platform::ListPage<_>| p.total);
            let ports: HashMap<String, RemotePort> = pages
                .into_iter()
                .flat_map(|p| p.records)
                .map(|p| (p.fid.clone(), p))
                .collect();
            Ok(Fresh {
                complete: ports.len() as u64 >= total,
                ports,
            })
        };
        fresh.insert(integration_id, read.await);
    }
    fresh
}
