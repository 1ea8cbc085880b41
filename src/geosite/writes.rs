//! Writing: `save` (create or update) and `delete`. The gateway writes only projects it creates
//! and the customer of a port.

use serde_json::{json, Value};

use super::{wire, Feature, GeositeClient};
use crate::platform::{ListPage, ListQuery, Platform, RemotePort};
use crate::{Error, Result};

impl GeositeClient {
    /// The port as the platform has it now (`None` when it has none with that fid). A record that
    /// is listed but cannot be read is an error, never taken for an absent port.
    pub async fn port_now(&self, fid: &str) -> Result<Option<RemotePort>> {
        use futures::TryStreamExt;
        let query = ListQuery {
            fid: Some(fid.to_owned()),
            ..Default::default()
        };
        let pages: Vec<ListPage<RemotePort>> = self.ports(query).try_collect().await?;
        let total = pages.first().map_or(0, |p| p.total);
        let found = pages
            .into_iter()
            .flat_map(|p| p.records)
            .find(|p| p.fid == fid);
        if found.is_none() && total > 0 {
            return Err(Error::PlatformUnavailable(format!(
                "port {fid} is listed by the platform but cannot be read"
            )));
        }
        Ok(found)
    }

    /// Creates (`fid` absent) or updates a record; returns its fid.
    pub async fn save(&self, feature: Feature, record: &Value) -> Result<String> {
        let reply = self
            .post(&format!("{}/save", feature.path()), record)
            .await?;
        if !wire::success(&reply.body) {
            return Err(Error::Validation {
                message: format!(
                    "the platform refused the record: {}",
                    reply
                        .body
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no reason given")
                ),
                field: None,
            });
        }
        reply
            .body
            .get("fid")
            .and_then(wire::id)
            .or_else(|| record.get("fid").and_then(wire::id))
            .ok_or_else(|| Error::PlatformUnavailable("save answered without a fid".into()))
    }
    /// Deletes a record; `NOT_FOUND` when the platform has no such fid.
    pub async fn delete(&self, feature: Feature, fid: &str) -> Result<()> {
        self.post(
            &format!("{}/delete", feature.path()),
            &json!({ "fid": wire::id_value(fid) }),
        )
        .await?;
        Ok(())
    }
}
