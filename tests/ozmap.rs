//! OZmap's own rules, over real HTTP: the client against the OZmap simulator (box type or level
//! → CTO/CEO, `isDrop` → SERVICE, port state from `connectables` and `ports[].blocked`, the
//! customer from a property's client with the CPF/CNPJ of its observation, incremental listings,
//! login renewal and API keys), and through GraphQL: the `OZMAP` gateway, its connection test
//! and remote projects, and an integration by API key. Writes (properties created, deleted or
//! left without their client) are in `ozmap_push.rs`, the list envelope's endings against a
//! scripted server in `ozmap_wire.rs`.
//!
//! The end-to-end suites (sync, bindings, integrity, deliveries, run control, live, races) run
//! on both platforms through `on_every_platform!` and `each_platform!`.

mod common;

use std::collections::HashMap;

use common::ozmap::*;
use common::{Engine, TestApp};
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::platform::{ListQuery, Platform, PortStatus, SplitterKind};
use mapping_gateway::simulator::{Faults, SimConfig};
use serde_json::json;

#[tokio::test]
async fn boxes_splitters_and_ports_follow_the_contract_rules() {
    let sim = ozmap_sim(SimConfig {
        boxes: 30,
        seed: 5,
        ..Default::default()
    })
    .await;
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
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
    let sim = ozmap_sim(SimConfig {
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
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
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
async fn incremental_port_listings_bring_what_changed_through_splitter_property_or_client() {
    let sim = ozmap_sim(SimConfig {
        boxes: 20,
        seed: 8,
        ..Default::default()
    })
    .await;
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
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
    // The edit moved the splitter's `updatedAt` and the property's: read once all the same.
    let mut fids: Vec<&str> = changed.iter().map(|p| p.fid.as_str()).collect();
    fids.sort_unstable();
    let listed = fids.len();
    fids.dedup();
    assert_eq!(listed, fids.len(), "each port listed once: {fids:?}");
}

#[tokio::test]
async fn logins_are_renewed_once_on_a_401_and_api_keys_never_log_in() {
    let sim = ozmap_sim(SimConfig {
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
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
    let ports: usize = common::all_pages(oz.ports(in_project(&sim)))
        .await
        .iter()
        .map(|p| p.records.len())
        .sum();
    assert!(ports > 0);
    assert!(sim.state.logins() >= 2, "logged in again after a 401");
    sim.state.set_faults(Faults::default());

    let logins = sim.state.logins();
    let by_key = ozmap_client(&sim.url, "APIKEY", "chave-api-1");
    assert_eq!(by_key.projects().await.unwrap().len(), 3);
    assert_eq!(sim.state.logins(), logins, "a key is sent as is");
    let calls = sim.state.calls();
    let refused = ozmap_client(&sim.url, "apikey", "wrong")
        .projects()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "PLATFORM_AUTH");
    assert_eq!(sim.state.calls() - calls, 1, "a refused key is not retried");
    let refused = ozmap_client(&sim.url, "integracao", "wrong")
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

        let sim = ozmap_sim(SimConfig { boxes: 20, seed: 12, api_key: "chave-secreta-9".into(), ..Default::default() }).await;
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

on_both_engines! {
    /// A full listing of object ids reads the local rows it may doom 5,000 at a time by id:
    /// ports gone on each side of a chunk's edge (the 5,000th and 5,001st by id) while their
    /// splitters stay (each splitter cut short at that port) are deleted, exactly those, and no
    /// other row of the copy moves.
    async fn deletions_on_both_sides_of_a_read_chunk_are_exact(app: TestApp) {
        use common::world::*;
        use sea_orm::{EntityTrait, QueryOrder};
        let app = app.on(mapping_gateway::simulator::SimPlatform::Ozmap);
        let w = world(&app, 800).await;
        succeeded(&app, &w.id, "FULL").await;
        let ports_by_id = || async {
            entity::port::Entity::find().order_by_asc(entity::port::Column::Id).all(&app.state.db).await.unwrap()
        };
        let before = ports_by_id().await;
        assert!(before.len() > 5_100, "{} ports: the listing must cross a chunk", before.len());
        let mut cut_splitters = Vec::new();
        let mut doomed: Vec<i64> = Vec::new();
        for edge in [before[4_999].clone(), before[5_000].clone()] {
            if cut_splitters.contains(&edge.splitter_id) {
                continue;
            }
            cut_splitters.push(edge.splitter_id);
            let splitter = field(&w.sim, "portaSplitter", w.store_fid("portaSplitter", &edge.fid), "fidSplitter").as_i64().unwrap();
            let number = edge.number as i64;
            for p in fids(&w.sim, "portaSplitter", w.project, |r| r[1] == json!(splitter) && r[3].as_i64().is_some_and(|n| n >= number)) {
                w.delete("portaSplitter", p);
            }
            w.save("splitter", splitter, &[("relacao", json!(format!("1:{}", number - 1)))]);
            doomed.extend(before.iter().filter(|p| p.splitter_id == edge.splitter_id && p.number as i64 >= number).map(|p| p.id));
        }
        assert!(doomed.contains(&before[4_999].id) && doomed.contains(&before[5_000].id));
        let run = sync(&app, &w.id, "FULL").await;
        assert_eq!(run["status"], "SUCCEEDED", "{run}");
        assert_eq!(run["counts"]["deleted"].as_u64(), Some(doomed.len() as u64), "{run}");
        let kept: Vec<(i64, String)> = before.iter().filter(|p| !doomed.contains(&p.id)).map(|p| (p.id, p.fid.clone())).collect();
        let after: Vec<(i64, String)> = ports_by_id().await.into_iter().map(|p| (p.id, p.fid)).collect();
        assert_eq!(after, kept, "exactly the cut ports are deleted, every other kept");
    }
}
