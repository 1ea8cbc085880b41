//! The Geosite client against the simulator over real HTTP, and against wiremock for wire-format
//! tolerance and retry behaviour; `testIntegration`, `remoteProjects`, demo mode and `simulate`
//! end to end.

mod common;

use std::time::Duration;

use common::{captured_logs, Engine, TestApp};
use futures::TryStreamExt;
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::geosite::{ClientOptions, Feature, GeositeClient};
use mapping_gateway::platform::{ListPage, ListQuery, Platform, PortStatus, SplitterKind};
use mapping_gateway::simulator::{self, Faults, RunningSimulator, SimConfig};
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn fast() -> ClientOptions {
    ClientOptions {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_attempts: 4,
        deadline: Duration::from_secs(20),
        network: common::loopback_allowed(),
        ..Default::default()
    }
}

async fn sim(config: SimConfig) -> RunningSimulator {
    simulator::spawn(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

fn client(sim: &RunningSimulator, options: ClientOptions) -> GeositeClient {
    GeositeClient::new(&sim.url, "integracao", "geosite", options).unwrap()
}

async fn all<T>(listing: mapping_gateway::platform::Listing<T>) -> Vec<ListPage<T>> {
    listing.try_collect().await.unwrap()
}

fn project_query(project: i64) -> ListQuery {
    ListQuery {
        project_id: Some(project.to_string()),
        ..Default::default()
    }
}

#[tokio::test]
async fn lists_page_by_page_with_total_and_filters() {
    let sim = sim(SimConfig {
        boxes: 40,
        ..Default::default()
    })
    .await;
    let geo = client(
        &sim,
        ClientOptions {
            page_size: 7,
            ..fast()
        },
    );
    let projects = geo.projects().await.unwrap();
    assert_eq!(projects.len(), 3);
    assert_eq!(projects[0].name, "Projeto Centro");
    let project = sim.state.summary.projects[0];

    let pages = all(geo.ports(project_query(project))).await;
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
    let boxes: Vec<_> = all(geo.elements(ElementItem::Cto, project_query(project)))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .collect();
    assert!(boxes
        .iter()
        .all(|b| b.latitude.is_some() && b.longitude.is_some()));
    let one_box = &boxes[0];
    let splitters: Vec<_> = all(geo.splitters(ListQuery {
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
    let box_ports: Vec<_> = all(geo.ports(ListQuery {
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
    let changed: Vec<_> = all(geo.ports(ListQuery {
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
    let sim = sim(SimConfig {
        boxes: 20,
        ..Default::default()
    })
    .await;
    let geo = client(&sim, fast());
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
    let free = all(geo.ports(project_query(project)))
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
    geo.set_port_customer(&free.fid, Some(&customer), "origin-key")
        .await
        .unwrap();
    let now_on = all(geo.ports(ListQuery {
        fid: Some(free.fid.clone()),
        ..Default::default()
    }))
    .await
    .remove(0)
    .records
    .remove(0);
    assert_eq!(now_on.status, PortStatus::Occupied);
    assert_eq!(now_on.customer.unwrap().contract.as_deref(), Some("999001"));
    geo.set_port_customer(&free.fid, None, "origin-key")
        .await
        .unwrap();
    let writes = sim.state.writes();
    let last = writes.last().unwrap();
    assert_eq!(last.feature, "portaSplitter");
    assert_eq!(last.body["status"], "LIVRE");
    assert_eq!(last.body["contrato"], Value::Null);
    assert_eq!(last.body["origem"], "origin-key");
    assert_eq!(writes[writes.len() - 2].body["documento"], "52998224725");

    // Viability finds a box at its own location, with its port counts.
    let cto = all(geo.elements(ElementItem::Cto, project_query(project)))
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
    let sim = sim(SimConfig {
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
            ..fast()
        },
    );
    let project = sim.state.summary.projects[0];
    let pages = all(geo.ports(project_query(project))).await;
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
            ..fast()
        },
    );
    let refreshes = sim.state.refreshes();
    eager.projects().await.unwrap();
    eager.projects().await.unwrap();
    assert!(sim.state.refreshes() > refreshes);

    // When refreshing fails, the client logs in again.
    let strict = self::sim(SimConfig {
        boxes: 5,
        refresh_ttl: Duration::ZERO,
        ..Default::default()
    })
    .await;
    strict.state.set_faults(Faults {
        expire_tokens_after_calls: Some(1),
        ..Default::default()
    });
    let geo = client(&strict, fast());
    geo.projects().await.unwrap();
    geo.projects().await.unwrap();
    assert!(strict.state.logins() >= 2);
}

#[tokio::test]
async fn faults_are_retried_or_reported() {
    let sim = sim(SimConfig {
        boxes: 5,
        ..Default::default()
    })
    .await;
    let geo = client(&sim, fast());
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
            ..fast()
        },
    );
    let result: Result<Vec<_>, _> = geo
        .ports(project_query(sim.state.summary.projects[0]))
        .try_collect()
        .await;
    assert_eq!(result.unwrap_err().code(), "PLATFORM_UNAVAILABLE");
    let bad = GeositeClient::new(&sim.url, "integracao", "wrong", fast()).unwrap();
    sim.state.set_faults(Faults::default());
    assert_eq!(bad.projects().await.unwrap_err().code(), "PLATFORM_AUTH");
}

async fn mock_login(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/auth/generatetoken"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(
                json!({ "token": "tok-SECRET-123", "refreshToken": "ref-SECRET-456" }),
            ),
        )
        .mount(server)
        .await;
}

fn requests_to(received: &[wiremock::Request], p: &str) -> usize {
    received.iter().filter(|r| r.url.path() == p).count()
}

#[tokio::test]
async fn tolerates_the_wire_format_variants() {
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/cto/desc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "columns": [{"name":"fid"},{"name":"nome"},{"name":"fidProjeto"},{"name":"x"},{"name":"y"},{"name":"dataAlteracao"}]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/cto/list"))
        .and(header("Authorization", "Digicade-Rest-API:tok-SECRET-123"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("date", "Sun, 29 Nov 2026 10:00:00 GMT")
                .set_body_json(json!({
                    "total": "2",
                    "records": [
                        { "dataAlteracao": "2026-11-01T10:00:00Z", "fid": "17", "nome": "CTO-01", "fidProjeto": "3", "x": "-38.5", "y": "-3.7", "extra": true },
                        { "fid": 18, "nome": 42, "fidProjeto": 3, "latitude": -3.8, "longitude": -38.6 }
                    ]
                })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/splitter/desc"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({ "columns": [] })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/splitter/list"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "total": 2,
            "records": [
                { "fid": 5, "nome": "S1", "fidCaixa": "17", "tipo": "ATENDÍMENTO", "relacao": "1:16" },
                { "fid": "6", "nome": "S2", "fidCaixa": 17, "tipo": "Distribuição", "relacao": "1:8" }
            ]
        })))
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "PASSWORD-xyz", fast()).unwrap();
    let pages = all(geo.elements(ElementItem::Cto, project_query(3))).await;
    assert_eq!(pages.len(), 1);
    let page = &pages[0];
    assert_eq!(page.total, 2);
    assert_eq!(
        page.clock.unwrap().to_rfc3339(),
        "2026-11-29T10:00:00+00:00"
    );
    assert_eq!(page.records[0].fid, "17");
    assert_eq!(page.records[0].project_id.as_deref(), Some("3"));
    assert_eq!(
        (page.records[0].latitude, page.records[0].longitude),
        (Some(-3.7), Some(-38.5))
    );
    assert_eq!(page.records[1].name, "42");
    assert_eq!(
        (page.records[1].latitude, page.records[1].longitude),
        (Some(-3.8), Some(-38.6))
    );
    let splitters = all(geo.splitters(ListQuery::default()))
        .await
        .remove(0)
        .records;
    assert_eq!(splitters[0].kind, SplitterKind::Service);
    assert_eq!(splitters[0].port_count, 16);
    assert_eq!(splitters[1].kind, SplitterKind::Distribution);
    assert_eq!(splitters[1].box_fid.as_deref(), Some("17"));
    // The list request asked only for columns the installation has.
    let received = server.received_requests().await.unwrap();
    let list = received
        .iter()
        .find(|r| r.url.path() == "/cto/list")
        .unwrap();
    let columns = list
        .url
        .query_pairs()
        .find(|(k, _)| k == "columns")
        .unwrap()
        .1;
    assert_eq!(columns, "fid,nome,fidProjeto,x,y,dataAlteracao");
    let logs = captured_logs();
    assert!(
        !logs.contains("PASSWORD-xyz")
            && !logs.contains("tok-SECRET")
            && !logs.contains("ref-SECRET")
    );
}

#[tokio::test]
async fn retries_follow_the_rules() {
    // 429 with Retry-After, then success: the wait is honoured.
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/viabilidade/caixas"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/viabilidade/caixas"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "success": "true", "caixas": [] })),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    let started = std::time::Instant::now();
    assert!(geo.viability(-3.7, -38.5, 100.0).await.unwrap().is_empty());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    assert_eq!(
        requests_to(
            &server.received_requests().await.unwrap(),
            "/viabilidade/caixas"
        ),
        2
    );

    // 500 then success.
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("POST"))
        .and(path("/projeto/save"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/projeto/save"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "success": true, "fid": "77" })),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    assert_eq!(geo.create_project("P").await.unwrap().remote_id, "77");
    assert_eq!(
        requests_to(&server.received_requests().await.unwrap(), "/projeto/save"),
        2
    );

    // 400 is not retried.
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("POST"))
        .and(path("/projeto/save"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({ "success": false, "message": "nome inválido" })),
        )
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    let err = geo.create_project("").await.unwrap_err();
    assert_eq!(err.code(), "VALIDATION");
    assert!(err.message().contains("nome inválido"));
    assert_eq!(
        requests_to(&server.received_requests().await.unwrap(), "/projeto/save"),
        1
    );

    // A budget of 4 attempts against a failing server ends in PLATFORM_UNAVAILABLE.
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("GET"))
        .and(path("/viabilidade/caixas"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    assert_eq!(
        geo.viability(0.0, 0.0, 1.0).await.unwrap_err().code(),
        "PLATFORM_UNAVAILABLE"
    );
    assert_eq!(
        requests_to(
            &server.received_requests().await.unwrap(),
            "/viabilidade/caixas"
        ),
        4
    );

    // Bad credentials are PLATFORM_AUTH, after a single login attempt.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/auth/generatetoken"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    assert_eq!(geo.projects().await.unwrap_err().code(), "PLATFORM_AUTH");
    assert_eq!(
        requests_to(
            &server.received_requests().await.unwrap(),
            "/auth/generatetoken"
        ),
        1
    );

    // A 401 on a call renews once (refresh) and retries once.
    let server = MockServer::start().await;
    mock_login(&server).await;
    Mock::given(method("POST"))
        .and(path("/auth/refresh"))
        .and(header("Authorization", "Digicade-Rest-API:ref-SECRET-456"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "token": "tok-2", "refreshToken": "ref-2" })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/viabilidade/caixas"))
        .and(header("Authorization", "Digicade-Rest-API:tok-2"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "success": true, "caixas": [] })),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/viabilidade/caixas"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let geo = GeositeClient::new(&server.uri(), "u", "p", fast()).unwrap();
    assert!(geo.viability(0.0, 0.0, 1.0).await.unwrap().is_empty());
    let received = server.received_requests().await.unwrap();
    assert_eq!(requests_to(&received, "/auth/refresh"), 1);
    assert_eq!(requests_to(&received, "/viabilidade/caixas"), 2);
}

const TEST: &str =
    "mutation($id: ID!) { testIntegration(id: $id) { ok latencyMs message code projectCount } }";

on_both_engines! {
    async fn test_integration_reports_platform_state(app: TestApp) {
        let sim = sim(SimConfig { boxes: 10, ..Default::default() }).await;
        let good = app.create_integration_with("Boa", &sim.url, "geosite").await;
        let result = app.ok(TEST, json!({ "id": good })).await["testIntegration"].clone();
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["projectCount"], 3);
        assert_eq!(result["code"], Value::Null);

        let wrong = app.create_integration_with("Senha errada", &sim.url, "nope").await;
        let result = app.ok(TEST, json!({ "id": wrong })).await["testIntegration"].clone();
        assert_eq!(result["ok"], false);
        assert_eq!(result["code"], "PLATFORM_AUTH");

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let down = app.create_integration_with("Fora do ar", &format!("http://{closed}"), "geosite").await;
        let result = app.ok(TEST, json!({ "id": down })).await["testIntegration"].clone();
        assert_eq!(result["ok"], false);
        assert_eq!(result["code"], "PLATFORM_UNAVAILABLE");

        // Only ADMIN may test, and the test is in the history.
        let viewer = app.key(mapping_gateway::access::Role::Viewer).await;
        assert_eq!(app.error_code(Some(&viewer), TEST, json!({ "id": good })).await, "FORBIDDEN");
        let history = app
            .ok("query($id: ID!) { history(integrationId: $id) { edges { node { action summary } } } }", json!({ "id": good }))
            .await;
        assert_eq!(history["history"]["edges"][0]["node"]["action"], "integration.tested");
    }

    async fn remote_projects_are_listed_live_and_not_stored(app: TestApp) {
        let sim = sim(SimConfig { boxes: 10, ..Default::default() }).await;
        let id = app.create_integration_with("Projetos", &sim.url, "geosite").await;
        let data = app
            .ok("query($id: ID!) { remoteProjects(integrationId: $id) { remoteId name updatedAt } }", json!({ "id": id }))
            .await;
        let names: Vec<&str> = data["remoteProjects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Projeto Centro", "Projeto Aldeota", "Projeto Messejana"]);
        assert!(data["remoteProjects"][0]["updatedAt"].is_string());
        use sea_orm::{EntityTrait, PaginatorTrait};
        assert_eq!(entity::project::Entity::find().count(&app.state.db).await.unwrap(), 0);
        let wrong = app.create_integration_with("Errada", &sim.url, "nope").await;
        assert_eq!(
            app.error_code(Some(&app.admin_key), "query($id: ID!) { remoteProjects(integrationId: $id) { name } }", json!({ "id": wrong })).await,
            "PLATFORM_AUTH"
        );
    }
}

async fn post(url: &str, key: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn demo_mode_is_ready_and_idempotent(engine: Engine) {
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let mut env = vec![
        ("DATABASE_URL", db.database_url.clone()),
        ("RUST_LOG", "warn".to_string()),
    ];
    if let Some(key) = &db.master_key {
        env.push(("MASTER_KEY", key.clone()));
    }
    let args = [
        "serve",
        "--demo",
        "--demo-boxes",
        "40",
        "--listen",
        "127.0.0.1:0",
    ];
    let mut keys = Vec::new();
    let mut running = Vec::new();
    for _ in 0..2 {
        // The first gateway stops before the second starts, as on a restart.
        running.clear();
        let gateway = common::Process::start(&args, &env);
        let lines = gateway.until("GraphiQL:");
        let key = common::last_word(&lines, "Demo ADMIN API key:");
        let url = common::last_word(&lines, "GraphiQL:")
            .trim_end_matches("/graphql")
            .to_owned();
        let list = post(&url, &key, "{ integrations { id name active } }", json!({})).await;
        let integrations = list["data"]["integrations"].as_array().unwrap().clone();
        assert_eq!(integrations.len(), 1, "{list}");
        assert_eq!(integrations[0]["name"], "Demo");
        let test = post(&url, &key, TEST, json!({ "id": integrations[0]["id"] })).await;
        assert_eq!(test["data"]["testIntegration"]["ok"], true, "{test}");
        keys.push((key, url));
        running.push(gateway);
    }
    // The first run's demo key was revoked when the second started.
    let refused = post(&keys[1].1, &keys[0].0, "{ integrations { id } }", json!({})).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    drop(running);
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

#[tokio::test]
async fn demo_mode_is_ready_and_idempotent_sqlite() {
    demo_mode_is_ready_and_idempotent(Engine::Sqlite).await;
}

#[tokio::test]
async fn demo_mode_is_ready_and_idempotent_postgres() {
    demo_mode_is_ready_and_idempotent(Engine::Postgres).await;
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
        fast(),
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
