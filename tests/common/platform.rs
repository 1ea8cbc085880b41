//! The platform side of the tests: the simulator, Geosite client options, listings.

use super::loopback_allowed;

/// Geosite client options for tests: quick retries, a short deadline, loopback admitted.
pub fn fast_client_options() -> mapping_gateway::geosite::ClientOptions {
    mapping_gateway::geosite::ClientOptions {
        min_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_attempts: 4,
        deadline: std::time::Duration::from_secs(20),
        network: loopback_allowed(),
        ..Default::default()
    }
}

/// A simulator on a free loopback port.
pub async fn simulator(
    config: mapping_gateway::simulator::SimConfig,
) -> mapping_gateway::simulator::RunningSimulator {
    mapping_gateway::simulator::spawn(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

/// Every page of a listing.
pub async fn all_pages<T>(
    listing: mapping_gateway::platform::Listing<T>,
) -> Vec<mapping_gateway::platform::ListPage<T>> {
    futures::TryStreamExt::try_collect(listing).await.unwrap()
}

/// A listing of one project's records.
pub fn project_query(project: i64) -> mapping_gateway::platform::ListQuery {
    mapping_gateway::platform::ListQuery {
        project_id: Some(project.to_string()),
        ..Default::default()
    }
}

/// Sets columns of a platform record in the simulator's store and moves its change time, as an
/// edit on the platform would; both simulator fronts serve the same store.
pub fn edit(
    sim: &mapping_gateway::simulator::RunningSimulator,
    feature: &str,
    fid: i64,
    fields: &[(&str, serde_json::Value)],
) {
    let now =
        serde_json::json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    sim.state.edit(|store| {
        let table = store.tables.get_mut(feature).unwrap();
        let columns: Vec<usize> = fields
            .iter()
            .map(|(c, _)| table.col(c).unwrap_or_else(|| panic!("no column {c}")))
            .collect();
        let changed = table.col("dataAlteracao").unwrap();
        let row = table.rows.get_mut(&fid).expect("the record exists");
        for ((_, value), i) in fields.iter().zip(columns) {
            row[i] = value.clone();
        }
        row[changed] = now;
    });
}

/// Deletes a platform record from the simulator's store.
pub fn remove(sim: &mapping_gateway::simulator::RunningSimulator, feature: &str, fid: i64) {
    sim.state.edit(|store| {
        store
            .tables
            .get_mut(feature)
            .unwrap()
            .rows
            .remove(&fid)
            .expect("the record exists");
    });
}

/// The gateway's writes to ports, oldest first, each as a Geosite port save
/// (`{fid, status, contrato, documento, nomeCliente, origem}`) whatever the platform: on OZmap
/// a property created on a port is the port occupied by its client, a property deleted the
/// port freed, a property left without its client the port still occupied without a customer.
pub fn port_writes(sim: &mapping_gateway::simulator::RunningSimulator) -> Vec<serde_json::Value> {
    use mapping_gateway::simulator::ozmap::records::{fid_of, Tag};
    use mapping_gateway::simulator::SimPlatform;
    use serde_json::{json, Value};
    let writes = sim.state.writes();
    match sim.platform {
        SimPlatform::Geosite => writes
            .into_iter()
            .filter(|w| w.feature == "portaSplitter")
            .map(|w| {
                let mut body = w.body;
                body["fid"] = json!(body["fid"].to_string().trim_matches('"'));
                body
            })
            .collect(),
        SimPlatform::Ozmap => writes
            .into_iter()
            .filter(|w| w.feature == "properties")
            .filter_map(|w| {
                let b = &w.body;
                let port_of = |id: &Value| {
                    let fid = fid_of(Tag::Property, id.as_str()?)?;
                    Some(sim.remote_fid("portaSplitter", fid))
                };
                Some(match w.action.as_str() {
                    "create" => {
                        let client = &b["clientGot"];
                        let document = client["observation"]
                            .as_str()
                            .map(|o| o.trim_start_matches("CPF/CNPJ").trim().to_owned());
                        let origin = b["external_id"]
                            .as_str()
                            .and_then(|e| e.split_once(':'))
                            .map(|(key, _)| key.to_owned());
                        json!({
                            "fid": format!("{}:{}", b["connector"].as_str()?, b["port"]),
                            "status": "OCUPADA", "contrato": client["code"],
                            "documento": document, "nomeCliente": client["name"],
                            "origem": origin, "external_id": b["external_id"],
                        })
                    }
                    "delete" => json!({
                        "fid": port_of(&b["id"])?, "status": "LIVRE", "contrato": null,
                        "documento": null, "nomeCliente": null, "action": "delete",
                    }),
                    _ => json!({
                        "fid": port_of(&b["id"])?, "status": "OCUPADA", "contrato": null,
                        "documento": null, "nomeCliente": null, "action": "detach",
                    }),
                })
            })
            .collect(),
    }
}

/// The store fid of a platform id a client sees (the inverse of `RunningSimulator::remote_fid`).
pub fn store_fid(
    sim: &mapping_gateway::simulator::RunningSimulator,
    feature: &str,
    remote: &str,
) -> i64 {
    use mapping_gateway::simulator::ozmap::records::{fid_of, Tag};
    use mapping_gateway::simulator::SimPlatform;
    match sim.platform {
        SimPlatform::Geosite => remote.parse().expect("a Geosite fid"),
        SimPlatform::Ozmap if feature == "portaSplitter" => {
            let (splitter, n) = remote.rsplit_once(':').expect("an OZmap port id");
            let splitter = fid_of(Tag::Plain, splitter).expect("a splitter id");
            let store = sim.state.store.read().unwrap();
            let t = &store.tables["portaSplitter"];
            let (s, num) = (t.col("fidSplitter").unwrap(), t.col("numero").unwrap());
            t.rows
                .iter()
                .find(|(_, r)| {
                    r[s] == serde_json::json!(splitter) && r[num].as_i64() == n.parse().ok()
                })
                .map(|(fid, _)| *fid)
                .expect("the port exists")
        }
        SimPlatform::Ozmap => fid_of(Tag::Plain, remote).expect("an OZmap object id"),
    }
}
