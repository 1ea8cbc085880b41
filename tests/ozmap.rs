//! OZmap's own rules, over real HTTP: the client against the OZmap simulator (box type or level
//! → CTO/CEO, `isDrop` → SERVICE, port state from `connectables` and `ports[].blocked`, the
//! customer from a property's client with the CPF/CNPJ of its observation, properties created,
//! deleted or left without their client, incremental listings, login renewal and API keys),
//! (the list envelope's endings against a scripted server are in `ozmap_wire.rs`), and through
//! GraphQL: the `OZMAP`
//! gateway, its connection test and remote projects, and an integration by API key.
//!
//! The end-to-end suites (sync, bindings, integrity, deliveries, run control, live, races) run
//! on both platforms through `on_every_platform!` and `each_platform!`.

mod common;

use std::collections::HashMap;

use common::{Engine, TestApp};
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::ozmap::OzmapClient;
use mapping_gateway::platform::{
    CustomerRecord, ListQuery, Platform, PortChange, PortStatus, PortWrite, SplitterKind,
};
use mapping_gateway::simulator::{Faults, RunningSimulator, SimConfig, SimPlatform};
use serde_json::{json, Value};

async fn sim(config: SimConfig) -> RunningSimulator {
    common::simulator(SimConfig {
        platform: SimPlatform::Ozmap,
        ..config
    })
    .await
}

/// A client with quick retries and pages of 40.
fn client(url: &str, user: &str, secret: &str) -> OzmapClient {
    let options = mapping_gateway::transport::ClientOptions {
        page_size: 40,
        ..common::fast_client_options()
    };
    OzmapClient::new(url, user, secret, options).unwrap()
}

fn in_project(sim: &RunningSimulator) -> ListQuery {
    ListQuery {
        project_id: Some(sim.remote_fid("projeto", sim.state.summary.projects[0])),
        ..Default::default()
    }
}

/// Rows of a store table in the simulator's first project.
fn rows(sim: &RunningSimulator, feature: &str) -> Vec<(i64, HashMap<String, Value>)> {
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

#[tokio::test]
async fn boxes_splitters_and_ports_follow_the_contract_rules() {
    let sim = sim(SimConfig {
        boxes: 30,
        seed: 5,
        ..Default::default()
    })
    .await;
    let oz = client(&sim.url, "integracao", "geosite");
    let projects = oz.projects().await.unwrap();
    assert_eq!(projects.len(), 3);
    assert!(projects.iter().all(|p| p.remote_id.len() == 24));
    let q = in_project(&sim);

    // Box type CTO / CEO → item; the whole listing read, every record once.
    for (item, feature) in [(ElementItem::Cto, "cto"), (ElementItem::Ceo, "caixaEmenda")] {
        let pages = common::all_pages(oz.elements(item, q.clone())).await;
        assert!(
            pages.iter().all(|p| p.clock.is_some()),
            "the Date header is the clock"
        );
        let got: Vec<String> = pages
            .into_iter()
            .flat_map(|p| p.records)
            .map(|e| e.fid)
            .collect();
        let want: Vec<String> = rows(&sim, feature)
            .iter()
            .map(|(f, _)| sim.remote_fid(feature, *f))
            .collect();
        assert_eq!(got, want, "{item:?}");
    }
    // Poles are the ones the project's boxes hang on; POPs are per project.
    let poles: usize = common::all_pages(oz.elements(ElementItem::Pole, q.clone()))
        .await
        .iter()
        .map(|p| p.records.len())
        .sum();
    assert_eq!(poles, rows(&sim, "poste").len());
    let pops: usize = common::all_pages(oz.elements(ElementItem::Pop, q.clone()))
        .await
        .iter()
        .map(|p| p.records.len())
        .sum();
    assert_eq!(pops, rows(&sim, "estacao").len());

    // isDrop → SERVICE.
    let splitters: Vec<_> = common::all_pages(oz.splitters(q.clone()))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .collect();
    let service = rows(&sim, "splitter")
        .iter()
        .filter(|(_, r)| r["tipo"] == "Atendimento")
        .count();
    assert_eq!(
        splitters
            .iter()
            .filter(|s| s.kind == SplitterKind::Service)
            .count(),
        service
    );
    assert!(splitters
        .iter()
        .all(|s| s.ratio == format!("1:{}", s.port_count)));

    // Ports: FREE, OCCUPIED with the property's client, RESERVED when blocked, and a damaged
    // port (a fiber plugged, no property) OCCUPIED with nobody.
    let ports: HashMap<String, _> = common::all_pages(oz.ports(q.clone()))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .map(|p| (p.fid.clone(), p))
        .collect();
    let store_ports = rows(&sim, "portaSplitter");
    assert_eq!(ports.len(), store_ports.len());
    for (fid, r) in &store_ports {
        let port = &ports[&sim.remote_fid("portaSplitter", *fid)];
        let (status, customer) = match r["status"].as_str().unwrap() {
            "LIVRE" => (PortStatus::Free, false),
            "RESERVADA" => (PortStatus::Reserved, false),
            "DANIFICADA" => (PortStatus::Occupied, false),
            _ => (PortStatus::Occupied, true),
        };
        assert_eq!(port.status, status, "{r:?}");
        assert_eq!(port.customer.is_some(), customer, "{r:?}");
        if let Some(c) = &port.customer {
            assert_eq!(
                c.contract.as_ref(),
                r["contrato"].as_str().map(str::to_owned).as_ref()
            );
            let digits: String = r["documento"]
                .as_str()
                .unwrap()
                .chars()
                .filter(char::is_ascii_digit)
                .collect();
            assert_eq!(
                c.document.as_deref(),
                Some(digits.as_str()),
                "the CPF/CNPJ of the observation"
            );
        }
    }
}

#[tokio::test]
async fn a_document_without_valid_check_digits_is_no_document() {
    let sim = sim(SimConfig {
        boxes: 10,
        seed: 6,
        ..Default::default()
    })
    .await;
    let (fid, _) = rows(&sim, "portaSplitter")
        .into_iter()
        .find(|(_, r)| r["status"] == "OCUPADA")
        .unwrap();
    common::edit(
        &sim,
        "portaSplitter",
        fid,
        &[("documento", json!("529.982.247-26"))],
    );
    let oz = client(&sim.url, "integracao", "geosite");
    let remote = sim.remote_fid("portaSplitter", fid);
    let page = common::all_pages(oz.ports(ListQuery {
        fid: Some(remote.clone()),
        ..Default::default()
    }))
    .await;
    let port = &page[0].records[0];
    assert_eq!(port.fid, remote);
    let customer = port.customer.as_ref().unwrap();
    assert!(
        customer.contract.is_some() && customer.document.is_none(),
        "{customer:?}"
    );
}

#[tokio::test]
async fn pushes_create_properties_and_releases_delete_only_their_own() {
    let sim = sim(SimConfig {
        boxes: 20,
        seed: 7,
        ..Default::default()
    })
    .await;
    let oz = client(&sim.url, "integracao", "geosite");
    let store_ports = rows(&sim, "portaSplitter");
    let free = store_ports
        .iter()
        .find(|(_, r)| r["status"] == "LIVRE")
        .unwrap()
        .0;
    let free = sim.remote_fid("portaSplitter", free);
    let maria = CustomerRecord {
        contract: "990001".into(),
        document: "52998224725".into(),
        name: "Maria".into(),
    };

    // Push: one property, connected to the port, its client made with the document.
    assert_eq!(
        oz.set_port_customer(&free, PortChange::Occupy(&maria), "chave1")
            .await
            .unwrap(),
        PortWrite::Written
    );
    let writes = sim.state.writes();
    let created = writes
        .iter()
        .find(|w| w.feature == "properties" && w.action == "create")
        .unwrap();
    let (splitter, n) = free.rsplit_once(':').unwrap();
    assert_eq!(created.body["connector"], splitter);
    assert_eq!(created.body["port"].to_string(), n);
    assert_eq!(created.body["external_id"], "chave1:990001");
    assert_eq!(created.body["client"]["code"], "990001");
    assert_eq!(
        created.body["client"]["observation"],
        "CPF/CNPJ 52998224725"
    );
    assert_eq!(created.body["auto_connect"], false);
    // Idempotent: the port already shows Maria, nothing is written.
    let count = sim.state.writes().len();
    assert_eq!(
        oz.set_port_customer(&free, PortChange::Occupy(&maria), "chave1")
            .await
            .unwrap(),
        PortWrite::Written
    );
    assert_eq!(sim.state.writes().len(), count);
    // Someone else is never written over.
    let joao = CustomerRecord {
        contract: "990002".into(),
        document: "11222333000181".into(),
        name: "João".into(),
    };
    match oz
        .set_port_customer(&free, PortChange::Occupy(&joao), "chave1")
        .await
        .unwrap()
    {
        PortWrite::Other(c) => assert_eq!(c.contract.as_deref(), Some("990001")),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.state.writes().len(), count);
    // Release of ours: the property goes, the port is free.
    assert_eq!(
        oz.set_port_customer(&free, PortChange::Free(&maria), "chave1")
            .await
            .unwrap(),
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert_eq!(
        (last.feature.as_str(), last.action.as_str()),
        ("properties", "delete")
    );
    let now = common::all_pages(oz.ports(ListQuery {
        fid: Some(free.clone()),
        ..Default::default()
    }))
    .await;
    assert_eq!(now[0].records[0].status, PortStatus::Free);
    assert_eq!(
        oz.set_port_customer(&free, PortChange::Free(&maria), "chave1")
            .await
            .unwrap(),
        PortWrite::NothingThere
    );

    // A property the gateway did not create: the release only detaches its client; the drop
    // stays (OCCUPIED, nobody), and the client, on no property, can be put on another port.
    let (taken, r) = store_ports
        .iter()
        .find(|(_, r)| r["status"] == "OCUPADA")
        .unwrap();
    let taken = sim.remote_fid("portaSplitter", *taken);
    let theirs = CustomerRecord {
        contract: r["contrato"].as_str().unwrap().into(),
        document: r["documento"]
            .as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect(),
        name: r["nomeCliente"].as_str().unwrap().into(),
    };
    assert_eq!(
        oz.set_port_customer(&taken, PortChange::Free(&theirs), "chave1")
            .await
            .unwrap(),
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert_eq!(
        (last.action.as_str(), &last.body["client"]),
        ("update", &Value::Null)
    );
    let now = &common::all_pages(oz.ports(ListQuery {
        fid: Some(taken.clone()),
        ..Default::default()
    }))
    .await[0]
        .records[0];
    assert_eq!(
        (now.status, now.customer.is_none()),
        (PortStatus::Occupied, true)
    );
    assert_eq!(
        oz.set_port_customer(&free, PortChange::Occupy(&theirs), "chave1")
            .await
            .unwrap(),
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert!(
        last.body["client"].is_string(),
        "the existing client, by id: {}",
        last.body
    );
    // A port gone from the platform cannot take a customer: a final NOT_FOUND.
    let gone = format!("{}:99", splitter);
    let err = oz
        .set_port_customer(&gone, PortChange::Occupy(&joao), "chave1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
}

#[tokio::test]
async fn incremental_port_listings_bring_what_changed_through_splitter_property_or_client() {
    let sim = sim(SimConfig {
        boxes: 20,
        seed: 8,
        ..Default::default()
    })
    .await;
    let oz = client(&sim.url, "integracao", "geosite");
    let since = chrono::Utc::now();
    let q = ListQuery {
        changed_since: Some(since),
        ..in_project(&sim)
    };
    let nothing: usize = common::all_pages(oz.ports(q.clone()))
        .await
        .iter()
        .map(|p| p.records.len())
        .sum();
    assert_eq!(nothing, 0);
    let (fid, _) = rows(&sim, "portaSplitter")
        .into_iter()
        .find(|(_, r)| r["status"] == "OCUPADA")
        .unwrap();
    common::edit(
        &sim,
        "portaSplitter",
        fid,
        &[("nomeCliente", json!("Nome Novo"))],
    );
    let changed: Vec<_> = common::all_pages(oz.ports(q))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .collect();
    let remote = sim.remote_fid("portaSplitter", fid);
    let port = changed
        .iter()
        .find(|p| p.fid == remote)
        .expect("the edited port is listed");
    assert_eq!(
        port.customer.as_ref().unwrap().name.as_deref(),
        Some("Nome Novo")
    );
    let splitter = remote.rsplit_once(':').unwrap().0;
    assert!(
        changed.iter().all(|p| p.splitter_fid == splitter),
        "only that splitter's ports"
    );
}

#[tokio::test]
async fn logins_are_renewed_once_on_a_401_and_api_keys_never_log_in() {
    let sim = sim(SimConfig {
        boxes: 10,
        seed: 9,
        api_key: "chave-api-1".into(),
        ..Default::default()
    })
    .await;
    sim.state.set_faults(Faults {
        expire_tokens_after_calls: Some(2),
        ..Default::default()
    });
    let oz = client(&sim.url, "integracao", "geosite");
    let ports: usize = common::all_pages(oz.ports(in_project(&sim)))
        .await
        .iter()
        .map(|p| p.records.len())
        .sum();
    assert!(ports > 0);
    assert!(sim.state.logins() >= 2, "logged in again after a 401");
    sim.state.set_faults(Faults::default());

    let logins = sim.state.logins();
    let by_key = client(&sim.url, "APIKEY", "chave-api-1");
    assert_eq!(by_key.projects().await.unwrap().len(), 3);
    assert_eq!(sim.state.logins(), logins, "a key is sent as is");
    let calls = sim.state.calls();
    let refused = client(&sim.url, "apikey", "wrong")
        .projects()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "PLATFORM_AUTH");
    assert_eq!(sim.state.calls() - calls, 1, "a refused key is not retried");
    let refused = client(&sim.url, "integracao", "wrong")
        .check()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "PLATFORM_AUTH");
}

on_both_engines! {
    async fn an_ozmap_integration_is_offered_tested_and_synced_by_api_key(app: TestApp) {
        let gateways = app.ok("{ gateways { kind name parameters { field secret hint } } }", json!({})).await;
        let ozmap = gateways["gateways"].as_array().unwrap().iter().find(|g| g["kind"] == "OZMAP").expect("OZMAP offered").clone();
        assert_eq!(ozmap["name"], "OZmap");
        let fields: Vec<&str> = ozmap["parameters"].as_array().unwrap().iter().map(|p| p["field"].as_str().unwrap()).collect();
        assert_eq!(fields, ["apiUrl", "username", "password", "key"]);
        assert!(ozmap["parameters"][1]["hint"].as_str().unwrap().contains("apikey"));

        let sim = sim(SimConfig { boxes: 20, seed: 12, api_key: "chave-secreta-9".into(), ..Default::default() }).await;
        let made = app.ok(
            "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id gateway } }",
            json!({ "input": { "name": "OZ", "gateway": "OZMAP", "apiUrl": sim.url, "username": "apikey", "password": "chave-secreta-9" } }),
        ).await;
        assert_eq!(made["createIntegration"]["gateway"], "OZMAP");
        let id = made["createIntegration"]["id"].as_str().unwrap().to_owned();
        let test = app.ok("mutation($i: ID!) { testIntegration(id: $i) { ok projectCount code } }", json!({ "i": id })).await;
        assert_eq!(test["testIntegration"], json!({ "ok": true, "projectCount": 3, "code": null }));
        let remote = app.ok("query($i: ID!) { remoteProjects(integrationId: $i) { remoteId name } }", json!({ "i": id })).await;
        let first = sim.remote_fid("projeto", sim.state.summary.projects[0]);
        assert!(remote["remoteProjects"].as_array().unwrap().iter().any(|p| p["remoteId"] == first.as_str()));
        app.ok("mutation($i: ID!, $r: String!) { setProject(integrationId: $i, input: { remoteId: $r }) { id } }", json!({ "i": id, "r": first })).await;
        let run = common::world::succeeded(&app, &id, "FULL").await;
        assert!(run["counts"]["created"].as_u64().unwrap() > 0, "{run}");
        assert_eq!(sim.state.logins(), 0, "an API key never logs in");
        // The key is a secret: never returned.
        let shown = app.ok("query($i: ID!) { integration(id: $i) { username } }", json!({ "i": id })).await;
        assert!(!shown.to_string().contains("chave-secreta-9"));
        // A wrong key is a typed outcome, not an error.
        app.ok("mutation($i: ID!, $p: UpdateIntegrationInput!) { updateIntegration(id: $i, input: $p) { id } }", json!({ "i": id, "p": { "password": "errada" } })).await;
        let test = app.ok("mutation($i: ID!) { testIntegration(id: $i) { ok code } }", json!({ "i": id })).await;
        assert_eq!(test["testIntegration"], json!({ "ok": false, "code": "PLATFORM_AUTH" }));
    }
}
