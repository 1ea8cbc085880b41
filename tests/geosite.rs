//! The Geosite client against the simulator over real HTTP: paging, filters, writes,
//! viability, sessions, faults; and `simulate` through the binary.

mod common;

use std::time::Duration;

use futures::TryStreamExt;
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::geosite::{ClientOptions, Feature, GeositeClient};
use mapping_gateway::platform::{ListQuery, Platform, PortChange, PortStatus, PortWrite};
use mapping_gateway::simulator::{self, Faults, RunningSimulator, SimConfig};
use serde_json::{json, Value};

fn client(sim: &RunningSimulator, options: ClientOptions) -> GeositeClient {
    GeositeClient::new(&sim.url, "integracao", "geosite", options).unwrap()
}

#[tokio::test]
async fn lists_page_by_page_with_total_and_filters() {
    let sim = common::simulator(SimConfig {
        boxes: 40,
        ..Default::default()
    })
    .await;
    let geo = client(
        &sim,
        ClientOptions {
            page_size: 7,
            ..common::fast_client_options()
        },
    );
    let projects = geo.projects().await.unwrap();
    assert_eq!(projects.len(), 3);
    assert_eq!(projects[0].name, "Projeto Centro");
    let project = sim.state.summary.projects[0];

    let pages = common::all_pages(geo.ports(common::project_query(project))).await;
    let ports: Vec<_> = pages.iter().flat_map(|p| p.records.clone()).collect();
    let expected = {
        let store = sim.state.store.read().unwrap();
        let t = &store.tables["portaSplitter"];
        let c = t.col("fidProjeto").unwrap();
        t.rows.values().filter(|r| r[c] == json!(project)).count()
    };
    assert_eq!(ports.len(), expected);
    assert!(
        pages.len() >= expected / 7,
        "paged in sevens: {}",
        pages.len()
    );
    assert!(pages
        .iter()
        .all(|p| p.total == expected as u64 && p.clock.is_some()));
    assert!(pages.iter().all(|p| p.records.len() <= 7));
    let mut fids: Vec<i64> = ports.iter().map(|p| p.fid.parse().unwrap()).collect();
    let sorted = {
        let mut f = fids.clone();
        f.sort();
        f
    };
    assert_eq!(fids, sorted, "fid order");
    fids.dedup();
    assert_eq!(fids.len(), ports.len(), "no duplicates");
    assert!(ports.iter().any(|p| p.status == PortStatus::Occupied
        && p.customer.as_ref().is_some_and(|c| c.contract.is_some())));

    // Filters: the splitters of one box, the ports of some splitters, what changed since.
    let boxes: Vec<_> =
        common::all_pages(geo.elements(ElementItem::Cto, common::project_query(project)))
            .await
            .into_iter()
            .flat_map(|p| p.records)
            .collect();
    assert!(boxes
        .iter()
        .all(|b| b.latitude.is_some() && b.longitude.is_some()));
    let one_box = &boxes[0];
    let splitters: Vec<_> = common::all_pages(geo.splitters(ListQuery {
        box_fid: Some(one_box.fid.clone()),
        ..Default::default()
    }))
    .await
    .into_iter()
    .flat_map(|p| p.records)
    .collect();
    assert!(!splitters.is_empty() && splitters.len() <= 4);
    assert!(splitters
        .iter()
        .all(|s| s.box_fid.as_deref() == Some(one_box.fid.as_str())));
    assert!(splitters
        .iter()
        .all(|s| s.port_count == 8 || s.port_count == 16));
    let splitter_fids: Vec<String> = splitters.iter().map(|s| s.fid.clone()).collect();
    let box_ports: Vec<_> = common::all_pages(geo.ports(ListQuery {
        splitter_fids: Some(splitter_fids.clone()),
        ..Default::default()
    }))
    .await
    .into_iter()
    .flat_map(|p| p.records)
    .collect();
    assert_eq!(
        box_ports.len() as i32,
        splitters.iter().map(|s| s.port_count).sum::<i32>()
    );

    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let target = &box_ports[0];
    geo.save(
        Feature::Port,
        &json!({ "fid": target.fid.parse::<i64>().unwrap(), "status": "RESERVADA" }),
    )
    .await
    .unwrap();
    let changed: Vec<_> = common::all_pages(geo.ports(ListQuery {
        project_id: Some(project.to_string()),
        changed_since: Some(before),
        ..Default::default()
    }))
    .await
    .into_iter()
    .flat_map(|p| p.records)
    .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].fid, target.fid);
    assert_eq!(changed[0].status, PortStatus::Reserved);
}

#[tokio::test]
async fn save_delete_and_viability() {
    let sim = common::simulator(SimConfig {
        boxes: 20,
        ..Default::default()
    })
    .await;
    let geo = client(&sim, common::fast_client_options());
    let created = geo.create_project("Projeto Novo").await.unwrap();
    assert!(geo
        .projects()
        .await
        .unwrap()
        .iter()
        .any(|p| p.remote_id == created.remote_id && p.name == "Projeto Novo"));
    geo.delete(Feature::Project, &created.remote_id)
        .await
        .unwrap();
    assert!(!geo
        .projects()
        .await
        .unwrap()
        .iter()
        .any(|p| p.remote_id == created.remote_id));
    let missing = geo
        .delete(Feature::Project, &created.remote_id)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "NOT_FOUND");
    let invalid = geo
        .save(Feature::Port, &json!({ "fid": 1, "status": "QUEBRADA" }))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), "VALIDATION");

    // Push and release a customer on a free port: both are recorded as written.
    let project = sim.state.summary.projects[0];
    let free = common::all_pages(geo.ports(common::project_query(project)))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .find(|p| p.status == PortStatus::Free)
        .unwrap();
    let customer = mapping_gateway::platform::CustomerRecord {
        contract: "999001".into(),
        document: "52998224725".into(),
        name: "Ana Teste".into(),
    };
    geo.set_port_customer(&free.fid, PortChange::Occupy(&customer), "origin-key")
        .await
        .unwrap();
    let now_on = common::all_pages(geo.ports(ListQuery {
        fid: Some(free.fid.clone()),
        ..Default::default()
    }))
    .await
    .remove(0)
    .records
    .remove(0);
    assert_eq!(now_on.status, PortStatus::Occupied);
    assert_eq!(now_on.customer.unwrap().contract.as_deref(), Some("999001"));
    geo.set_port_customer(&free.fid, PortChange::Free(&customer), "origin-key")
        .await
        .unwrap();
    let writes = sim.state.writes();
    let last = writes.last().unwrap();
    assert_eq!(last.feature, "portaSplitter");
    assert_eq!(last.body["status"], "LIVRE");
    assert_eq!(last.body["contrato"], Value::Null);
    assert_eq!(last.body["origem"], "origin-key");
    assert_eq!(writes[writes.len() - 2].body["documento"], "52998224725");

    // A removal reads the port first: a free port is left alone, and so is another customer.
    let free_again = geo
        .set_port_customer(&free.fid, PortChange::Free(&customer), "origin-key")
        .await
        .unwrap();
    assert_eq!(free_again, PortWrite::NothingThere);
    let other = mapping_gateway::platform::CustomerRecord {
        contract: "OTHER-1".into(),
        document: "11222333000181".into(),
        name: "Outro".into(),
    };
    geo.set_port_customer(&free.fid, PortChange::Occupy(&other), "someone-else")
        .await
        .unwrap();
    let writes_before = sim.state.writes().len();
    let refused = geo
        .set_port_customer(&free.fid, PortChange::Free(&customer), "origin-key")
        .await
        .unwrap();
    assert!(
        matches!(&refused, PortWrite::Other(c) if c.contract.as_deref() == Some("OTHER-1")),
        "{refused:?}"
    );
    assert_eq!(sim.state.writes().len(), writes_before, "nothing written");
    let missing = geo
        .set_port_customer("987654321", PortChange::Free(&customer), "origin-key")
        .await
        .unwrap();
    assert_eq!(
        missing,
        PortWrite::NothingThere,
        "a port the platform lacks"
    );

    // Viability finds a box at its own location, with its port counts.
    let cto = common::all_pages(geo.elements(ElementItem::Cto, common::project_query(project)))
        .await
        .remove(0)
        .records
        .remove(0);
    let found = geo
        .viability(cto.latitude.unwrap(), cto.longitude.unwrap(), 30.0)
        .await
        .unwrap();
    let hit = found
        .iter()
        .find(|b| b.fid == cto.fid)
        .expect("the box itself");
    assert!(hit.distance_m < 1.0);
    assert!(hit.label.starts_with("CTO: "));
    assert_eq!(
        hit.ports,
        hit.free_ports + hit.occupied_ports + (hit.ports - hit.free_ports - hit.occupied_ports)
    );
    assert!(hit.ports > 0);
    assert!(found.windows(2).all(|w| w[0].distance_m <= w[1].distance_m));
}

#[tokio::test]
async fn sessions_are_renewed_refreshed_and_survive_expiry_mid_listing() {
    let sim = common::simulator(SimConfig {
        boxes: 30,
        ..Default::default()
    })
    .await;
    // Tokens die after 3 calls: a listing of many pages must renew on the 401 and go on.
    sim.state.set_faults(Faults {
        expire_tokens_after_calls: Some(3),
        ..Default::default()
    });
    let geo = client(
        &sim,
        ClientOptions {
            page_size: 10,
            ..common::fast_client_options()
        },
    );
    let project = sim.state.summary.projects[0];
    let pages = common::all_pages(geo.ports(common::project_query(project))).await;
    assert!(pages.len() > 6);
    assert_eq!(
        sim.state.logins(),
        1,
        "renewed through refresh, not new logins"
    );
    assert!(sim.state.refreshes() >= 2);

    // A token known to expire is renewed before use, without waiting for a 401.
    sim.state.set_faults(Faults::default());
    let eager = client(
        &sim,
        ClientOptions {
            token_ttl: Duration::ZERO,
            ..common::fast_client_options()
        },
    );
    let refreshes = sim.state.refreshes();
    eager.projects().await.unwrap();
    eager.projects().await.unwrap();
    assert!(sim.state.refreshes() > refreshes);

    // When refreshing fails, the client logs in again.
    let strict = self::common::simulator(SimConfig {
        boxes: 5,
        refresh_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    strict.state.set_faults(Faults {
        expire_tokens_after_calls: Some(1),
        ..Default::default()
    });
    let geo = client(&strict, common::fast_client_options());
    geo.projects().await.unwrap();
    geo.projects().await.unwrap();
    assert!(strict.state.logins() >= 2);
}

#[tokio::test]
async fn faults_are_retried_or_reported() {
    let sim = common::simulator(SimConfig {
        boxes: 5,
        ..Default::default()
    })
    .await;
    let geo = client(&sim, common::fast_client_options());
    sim.state.set_faults(Faults {
        burst_429: 2,
        retry_after_secs: 0,
        ..Default::default()
    });
    assert_eq!(geo.projects().await.unwrap().len(), 3);
    sim.state.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let err = geo.projects().await.unwrap_err();
    assert_eq!(err.code(), "PLATFORM_UNAVAILABLE");
    sim.state.set_faults(Faults {
        fail_list_page: Some(simulator::FailListPage {
            feature: Some("portaSplitter".into()),
            page: 2,
        }),
        ..Default::default()
    });
    let geo = client(
        &sim,
        ClientOptions {
            page_size: 5,
            ..common::fast_client_options()
        },
    );
    let result: Result<Vec<_>, _> = geo
        .ports(common::project_query(sim.state.summary.projects[0]))
        .try_collect()
        .await;
    assert_eq!(result.unwrap_err().code(), "PLATFORM_UNAVAILABLE");
    let bad = GeositeClient::new(
        &sim.url,
        "integracao",
        "wrong",
        common::fast_client_options(),
    )
    .unwrap();
    sim.state.set_faults(Faults::default());
    assert_eq!(bad.projects().await.unwrap_err().code(), "PLATFORM_AUTH");
}

#[tokio::test]
async fn simulate_runs_the_simulator_alone() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let sim = common::Process::start(
        &[
            "simulate",
            "--port",
            &port.to_string(),
            "--seed",
            "3",
            "--boxes",
            "12",
        ],
        &[],
    );
    let lines = sim.until("Geosite simulator at");
    assert!(lines.last().unwrap().contains("12 boxes"));
    let geo = GeositeClient::new(
        &format!("http://127.0.0.1:{port}"),
        "integracao",
        "geosite",
        common::fast_client_options(),
    )
    .unwrap();
    assert_eq!(geo.projects().await.unwrap().len(), 3);
    let stats: Value = reqwest::get(format!("http://127.0.0.1:{port}/_sim/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["logins"], 1);
}
