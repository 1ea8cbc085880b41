//! Writing "customer X is on port N of splitter S" and clearing it, per the contract: each write
//! starts by reading the port (its splitter and the property connected to it), so both are
//! idempotent and a port carrying another customer is never written.
//!
//! - Push: a property of the box, connected to S/N, with the client found by `code` (its name
//!   and observation brought up to date) or created with it, and `external_id` naming the
//!   integration.
//! - Release: the property is deleted when the gateway created it (its `external_id`), else only
//!   its client is detached: the drop someone else installed stays.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::OzmapClient;
use super::listing::{condition, Route};
use super::wire::{Property, Splitter};
use super::{assumed, convert};
use crate::platform::{CustomerRecord, Holder, PortChange, PortWrite, RemoteCustomer, RemotePort};
use crate::{Error, Result};

/// A port as it is now, with what a write needs besides.
struct PortNow {
    port: RemotePort,
    /// The box that houses the splitter.
    box_id: Option<String>,
    /// The property connected to the port, if any.
    property: Option<Property>,
}

impl OzmapClient {
    /// The port `fid` as the platform has it now; `None` when its splitter or output is gone.
    async fn port_now(&self, fid: &str) -> Result<Option<PortNow>> {
        let Some((splitter_id, number)) = assumed::parse_port_fid(fid) else {
            return Ok(None);
        };
        let Some(record) = self.one("splitters", splitter_id).await? else {
            return Ok(None);
        };
        let splitter = Splitter::read(&record).map_err(|u| {
            Error::PlatformUnavailable(format!("splitter {splitter_id}: unreadable {}", u.field))
        })?;
        let body = json!({
            "filter": [condition("connections.id", "=", json!(splitter_id))],
        });
        let mut properties = Vec::new();
        for row in self.all(Route::Properties, body).await? {
            let property = Property::read(&row).map_err(|u| {
                Error::PlatformUnavailable(format!(
                    "a property on splitter {splitter_id}: unreadable {}",
                    u.field
                ))
            })?;
            properties.push(property);
        }
        let Some(port) = convert::ports(&splitter, &properties)
            .into_iter()
            .find(|p| p.number == number)
        else {
            return Ok(None);
        };
        let property = properties.into_iter().find(|p| {
            p.connections
                .iter()
                .any(|(s, n)| s == splitter_id && *n == number)
        });
        Ok(Some(PortNow {
            port,
            box_id: splitter.parent,
            property,
        }))
    }

    pub(super) async fn write_port(
        &self,
        fid: &str,
        change: PortChange<'_>,
        origin: &str,
    ) -> Result<PortWrite> {
        let Some(now) = self.port_now(fid).await? else {
            return match change {
                // A customer cannot be put on a port the platform no longer has: final.
                PortChange::Occupy(_) => {
                    Err(Error::NotFound(format!("port {fid} on the platform")))
                }
                PortChange::Free(_) => Ok(PortWrite::NothingThere),
            };
        };
        match change {
            PortChange::Occupy(customer) => {
                match now.port.holder(&customer.contract, &customer.document) {
                    Holder::Ours => return Ok(PortWrite::Written),
                    Holder::Other => return Ok(PortWrite::Other(other(&now.port))),
                    Holder::Nobody => {}
                }
                match self.create_property(fid, &now, customer, origin).await {
                    Ok(()) => Ok(PortWrite::Written),
                    // A refusal (a port taken meanwhile, a code in use): what is there now
                    // decides, and another customer is reported, never overwritten.
                    Err(e) => match self.port_now(fid).await? {
                        Some(after) => {
                            match after.port.holder(&customer.contract, &customer.document) {
                                Holder::Ours => Ok(PortWrite::Written),
                                Holder::Other => Ok(PortWrite::Other(other(&after.port))),
                                // Still free: the refusal was of something that changed since
                                // the read (a client that left its property meanwhile), so the
                                // outbox tries again later; a request the platform finds
                                // malformed stays final.
                                Holder::Nobody => Err(match e {
                                    Error::NotFound(m) => Error::PlatformUnavailable(m),
                                    e => e,
                                }),
                            }
                        }
                        None => Ok(PortWrite::NothingThere),
                    },
                }
            }
            PortChange::Free(ours) => {
                let Some(property) = now.property.filter(|p| p.client.is_some()) else {
                    return Ok(PortWrite::NothingThere);
                };
                match now.port.holder(&ours.contract, &ours.document) {
                    Holder::Nobody => return Ok(PortWrite::NothingThere),
                    Holder::Other => return Ok(PortWrite::Other(other(&now.port))),
                    Holder::Ours => {}
                }
                let path = format!("/api/v2/properties/{}", property.id);
                if assumed::created_by(origin, property.external_id.as_deref()) {
                    self.call(Method::DELETE, &path, None).await?;
                } else {
                    self.call(Method::PATCH, &path, Some(&json!({ "client": null })))
                        .await?;
                }
                Ok(PortWrite::Written)
            }
        }
    }

    /// `POST /properties` connected to the port, with the client found by code or a new one.
    async fn create_property(
        &self,
        fid: &str,
        now: &PortNow,
        customer: &CustomerRecord,
        origin: &str,
    ) -> Result<()> {
        let (splitter, number) = assumed::parse_port_fid(fid).unwrap_or((fid, 0));
        let observation = assumed::observation_of(&customer.document);
        let body = json!({ "filter": [condition("code", "=", json!(customer.contract))] });
        let existing = self.all(Route::Clients, body).await?;
        let found = existing
            .iter()
            .find(|c| c.get("code").and_then(Value::as_str) == Some(customer.contract.as_str()));
        let client = match found.and_then(|c| c.get("id").and_then(Value::as_str)) {
            Some(id) => {
                let text = |f: &str| found.and_then(|c| c.get(f)).and_then(Value::as_str);
                if text("name") != Some(customer.name.as_str())
                    || text("observation") != Some(observation.as_str())
                {
                    self.call(
                        Method::PATCH,
                        &format!("/api/v2/ftth-clients/{id}"),
                        Some(&json!({ "name": customer.name, "observation": observation })),
                    )
                    .await?;
                }
                json!(id)
            }
            None => json!({
                "code": customer.contract, "name": customer.name,
                "observation": observation, "implanted": true,
            }),
        };
        let body = json!({
            "project": now.port.project_id, "box": now.box_id,
            "connector": splitter, "port": number,
            "auto_connect": false, "force": false,
            "external_id": assumed::external_id(origin, &customer.contract),
            "client": client,
        });
        self.call(Method::POST, "/api/v2/properties", Some(&body))
            .await?;
        Ok(())
    }
}

/// The customer a port carries, for a conflict: none named when the port is occupied by a drop
/// without a client, or reserved.
fn other(port: &RemotePort) -> RemoteCustomer {
    port.customer.clone().unwrap_or_default()
}
