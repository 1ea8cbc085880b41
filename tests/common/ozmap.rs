//! The OZmap simulator and client as the OZmap suites use them.

use std::collections::HashMap;

use mapping_gateway::ozmap::OzmapClient;
use mapping_gateway::platform::ListQuery;
use mapping_gateway::simulator::{RunningSimulator, SimConfig, SimPlatform};
use serde_json::{json, Value};

pub async fn ozmap_sim(config: SimConfig) -> RunningSimulator {
    super::simulator(SimConfig {
        platform: SimPlatform::Ozmap,
        ..config
    })
    .await
}

/// A client with quick retries and pages of 40.
pub fn ozmap_client(url: &str, user: &str, secret: &str) -> OzmapClient {
    let options = mapping_gateway::transport::ClientOptions {
        page_size: 40,
        ..super::fast_client_options()
    };
    OzmapClient::new(url, user, secret, options).unwrap()
}

pub fn in_project(sim: &RunningSimulator) -> ListQuery {
    ListQuery {
        project_id: Some(sim.remote_fid("projeto", sim.state.summary.projects[0])),
        ..Default::default()
    }
}

/// Rows of a store table in the simulator's first project.
pub fn rows(sim: &RunningSimulator, feature: &str) -> Vec<(i64, HashMap<String, Value>)> {
    let project = json!(sim.state.summary.projects[0]);
    let store = sim.state.store.read().unwrap();
    let t = &store.tables[feature];
    t.rows
        .iter()
        .map(|(fid, r)| {
            let fields = t
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| (c.to_string(), r[i].clone()))
                .collect::<HashMap<_, _>>();
            (*fid, fields)
        })
        .filter(|(_, f)| f.get("fidProjeto").is_none_or(|p| *p == project))
        .collect()
}
