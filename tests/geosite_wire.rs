//! The Geosite client against wiremock: every wire-format variant the contract allows, and the
//! retry rules (429 with Retry-After, 5xx, timeouts, 401 renewal, no retry of other 4xx).

mod common;

use std::time::Duration;

use common::captured_logs;
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::geosite::GeositeClient;
use mapping_gateway::platform::{ListQuery, Platform, SplitterKind};
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

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
    let geo = GeositeClient::new(
        &server.uri(),
        "u",
        "PASSWORD-xyz",
        common::fast_client_options(),
    )
    .unwrap();
    let pages = common::all_pages(geo.elements(ElementItem::Cto, common::project_query(3))).await;
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
    let splitters = common::all_pages(geo.splitters(ListQuery::default()))
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
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
    let geo = GeositeClient::new(&server.uri(), "u", "p", common::fast_client_options()).unwrap();
    assert!(geo.viability(0.0, 0.0, 1.0).await.unwrap().is_empty());
    let received = server.received_requests().await.unwrap();
    assert_eq!(requests_to(&received, "/auth/refresh"), 1);
    assert_eq!(requests_to(&received, "/viabilidade/caixas"), 2);
}
