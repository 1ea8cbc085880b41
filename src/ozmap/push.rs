//! Writing "customer X is on port N of splitter S" and clearing it, per the contract: each write
//! starts by reading the port (its splitter and the property connected to it), so both are
//! idempotent and a port carrying another customer is never written.
//!
//! - Push: a property of the box, connected to S/N, with the client found by `code` or created
//!   with it, and `external_id` naming the integration. An existing client is edited after the
//!   property is made, and only where it disagrees: the CPF/CNPJ part of its `observation`, its
//!   name when it has none. A client already on a property of ours elsewhere (a move whose
//!   removal did not land) leaves it first; on someone else's property it is not moved, and the
//!   push is held as in conflict.
//! - Release: the property is deleted when the gateway created it (its `external_id`), else only
//!   its client is detached: the drop someone else installed stays.

use reqwest::Method;
use serde_json::{json, Value};

use super::client::OzmapClient;
use super::listing::{condition, Route};
use super::wire::{Client, Property, Splitter};
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
        let (properties, unreadable) = self
            .properties_connected(std::slice::from_ref(&splitter))
            .await?;
        if let Some(field) = unreadable {
            return Err(Error::PlatformUnavailable(format!(
                "a property on splitter {splitter_id}: unreadable {field}"
            )));
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
                    Holder::Ours => {
                        // Written before, its client's edit perhaps not: finish it.
                        if let Some(client) = now.property.as_ref().and_then(|p| p.client.as_ref())
                        {
                            self.amend_client(client, customer).await?;
                        }
                        return Ok(PortWrite::Written);
                    }
                    Holder::Other => return Ok(PortWrite::Other(other(&now.port))),
                    Holder::Nobody => {}
                }
                match self.create_property(fid, &now, customer, origin).await {
                    Ok(None) => Ok(PortWrite::Written),
                    Ok(Some(elsewhere)) => Ok(PortWrite::Other(elsewhere)),
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
    /// An existing client is edited after the property is made, so a push that fails leaves it
    /// as it was. A refusal of an existing client already on another property: that property
    /// is removed first when it is ours (a move whose removal did not land), else the client
    /// is someone else's there and is returned (never moved).
    async fn create_property(
        &self,
        fid: &str,
        now: &PortNow,
        customer: &CustomerRecord,
        origin: &str,
    ) -> Result<Option<RemoteCustomer>> {
        let (splitter, number) = assumed::parse_port_fid(fid).unwrap_or((fid, 0));
        let body = json!({ "filter": [condition("code", "=", json!(customer.contract))] });
        let existing = self.all(Route::Clients, body).await?;
        let found = existing
            .iter()
            .find(|c| c.get("code").and_then(Value::as_str) == Some(customer.contract.as_str()));
        let found_id = found.and_then(|c| c.get("id").and_then(Value::as_str));
        let client = match found_id {
            Some(id) => json!(id),
            None => json!({
                "code": customer.contract, "name": customer.name,
                "observation": assumed::observation_of(&customer.document), "implanted": true,
            }),
        };
        let property = json!({
            "project": now.port.project_id, "box": now.box_id,
            "connector": splitter, "port": number,
            "auto_connect": false, "force": false,
            "external_id": assumed::external_id(origin, &customer.contract),
            "client": client,
        });
        if let Err(refused) = self
            .call(Method::POST, "/api/v2/properties", Some(&property))
            .await
        {
            let Some(id) = found_id else {
                return Err(refused);
            };
            match self.property_of_client(id).await? {
                Some(p) if assumed::created_by(origin, p.external_id.as_deref()) => {
                    self.call(
                        Method::DELETE,
                        &format!("/api/v2/properties/{}", p.id),
                        None,
                    )
                    .await?;
                    self.call(Method::POST, "/api/v2/properties", Some(&property))
                        .await?;
                }
                Some(p) => {
                    return Ok(Some(RemoteCustomer {
                        contract: None,
                        document: None,
                        name: Some(format!(
                            "client {} on another property ({})",
                            customer.contract, p.id
                        )),
                    }))
                }
                None => return Err(refused),
            }
        }
        if let Some(found) = found.and_then(Client::read) {
            self.amend_client(&found, customer).await?;
        }
        Ok(None)
    }

    /// The property a client is on, if any.
    async fn property_of_client(&self, client: &str) -> Result<Option<Property>> {
        let body = json!({ "filter": [condition("client", "in", json!([client]))] });
        Ok(self
            .all(Route::Properties, body)
            .await?
            .iter()
            .filter_map(|row| Property::read(row).ok())
            .find(|p| {
                p.client
                    .as_ref()
                    .map(|c| c.id.as_str())
                    .or(p.client_ref.as_deref())
                    == Some(client)
            }))
    }

    /// Edits an existing client only where it disagrees with the customer: the CPF/CNPJ part of
    /// its `observation` when the document differs (the rest of the text kept), its name only
    /// when it has none. What a person wrote there is never replaced.
    async fn amend_client(&self, client: &Client, customer: &CustomerRecord) -> Result<()> {
        let observation = client.observation.as_deref().unwrap_or_default();
        let ours: String = customer
            .document
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let mut patch = serde_json::Map::new();
        if assumed::customer_document(observation).as_deref() != Some(ours.as_str()) {
            patch.insert(
                "observation".into(),
                json!(assumed::with_document(observation, &ours)),
            );
        }
        if client.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
            patch.insert("name".into(), json!(customer.name));
        }
        if patch.is_empty() {
            return Ok(());
        }
        self.call(
            Method::PATCH,
            &format!("/api/v2/ftth-clients/{}", client.id),
            Some(&Value::Object(patch)),
        )
        .await?;
        Ok(())
    }
}

/// The customer a port carries, for a conflict: none named when the port is occupied by a drop
/// without a client, or reserved.
fn other(port: &RemotePort) -> RemoteCustomer {
    port.customer.clone().unwrap_or_default()
}
