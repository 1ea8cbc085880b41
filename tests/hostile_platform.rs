//! A hostile platform server (an axum stub speaking OZmap's listing shape): an answer larger
//! than PLATFORM_MAX_BODY_BYTES, announced or streamed without end, and pages that go on past
//! the total they announced. Each ends in a clear error, with memory bounded by the cap.

mod common;

use axum::body::Body;
use axum::response::Response;
use axum::routing::get;
use common::{Engine, TestApp};
use serde_json::json;

/// Serves `router` on a loopback port; returns its base URL.
async fn stub(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// A raw HTTP server that answers every request with headers announcing `length` bytes and
/// then sends one byte and waits (hyper would not send a length it does not hold).
async fn announcing(length: u64) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n["
                );
                let _ = socket.write_all(head.as_bytes()).await;
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
            });
        }
    });
    format!("http://{addr}")
}

/// An OZmap integration (API key, no login) on `url`.
async fn ozmap_on(app: &TestApp, url: &str) -> String {
    app.ok(
        "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
        json!({ "input": { "name": common::unique("hostil"), "gateway": "OZMAP", "apiUrl": url,
                           "username": "apikey", "password": "chave" } }),
    )
    .await["createIntegration"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tested(app: &TestApp, id: &str) -> serde_json::Value {
    app.ok(
        "mutation($i: ID!) { testIntegration(id: $i) { ok code message } }",
        json!({ "i": id }),
    )
    .await["testIntegration"]
        .clone()
}

on_both_engines! {
    /// An answer that announces 600 MB is refused before a byte of it is read; one that streams
    /// without end (no length) is cut at the cap. Both fail the connection test with a message
    /// naming the setting.
    async fn an_answer_over_the_cap_is_refused(app: TestApp) {
        let announced = announcing(600_000_000).await;
        let endless = stub(axum::Router::new().route(
            "/api/v2/projects",
            get(|| async {
                let chunk = axum::body::Bytes::from(vec![b' '; 64 * 1024]);
                let stream = futures::StreamExt::map(futures::stream::repeat(chunk), Ok::<_, std::io::Error>);
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from_stream(stream))
                    .unwrap()
            }),
        ))
        .await;
        for url in [announced, endless] {
            let id = ozmap_on(&app, &url).await;
            let test = tested(&app, &id).await;
            assert_eq!(test["ok"], false, "{url}: {test}");
            let message = test["message"].as_str().unwrap();
            assert!(message.contains("PLATFORM_MAX_BODY_BYTES"), "{url}: {message}");
        }
    }

    /// Pages of 500 projects that announce a total of 500 and always have a next page: the
    /// listing stops once it went past what was announced, with an error, instead of reading
    /// until the request times out.
    async fn pages_past_their_announced_total_stop_the_listing(app: TestApp) {
        let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = served.clone();
        let url = stub(axum::Router::new().route(
            "/api/v2/projects",
            get(move || {
                let counter = counter.clone();
                async move {
                    let page = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let rows: Vec<_> = (0..500)
                        .map(|n| json!({ "id": format!("{:024x}", page * 500 + n), "name": "P" }))
                        .collect();
                    axum::Json(json!({ "total": 500, "count": 500, "start": page * 500, "limit": 500,
                                       "rows": rows, "hasNextPage": true,
                                       "nextUrl": format!("/api/v2/projects?page={}&limit=500", page + 2) }))
                }
            }),
        ))
        .await;
        let id = ozmap_on(&app, &url).await;
        let (_, body) = app
            .post(
                Some(&app.admin_key),
                "query($i: ID!) { remoteProjects(integrationId: $i) { remoteId } }",
                json!({ "i": id }),
            )
            .await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert_eq!(body["errors"][0]["extensions"]["code"], "PLATFORM_UNAVAILABLE", "{body}");
        assert!(message.contains("announced a total of 500"), "{message}");
        let pages = served.load(std::sync::atomic::Ordering::Relaxed);
        assert!(pages <= 4, "{pages} pages read for a listing of 500");
    }
}

/// A platform that answers too slowly for the run's time budget (SYNC_TIME_BUDGET_SECS, here
/// 5 s; every answer takes 6 s): the run ends FAILED with a message naming the setting, and
/// the copy of the last good run is as it was.
async fn a_run_past_its_time_budget_fails_and_keeps_the_copy(engine: Engine) {
    let mut settings = common::test_settings();
    settings.sync.time_budget = std::time::Duration::from_secs(5);
    let Some(app) = TestApp::start_configured(engine, Default::default(), settings).await else {
        return;
    };
    let w = common::world::world(&app, 10).await;
    common::world::succeeded(&app, &w.id, "FULL").await;
    let before = common::world::local_plant(&app, common::world::db_id(&w.id)).await;
    w.sim.state.set_faults(mapping_gateway::simulator::Faults {
        latency_ms: 6_000,
        ..Default::default()
    });
    let run = common::world::sync(&app, &w.id, "FULL").await;
    assert_eq!(run["status"], "FAILED", "{run}");
    let message = run["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("SYNC_TIME_BUDGET_SECS"), "{run}");
    w.sim.state.set_faults(Default::default());
    let after = common::world::local_plant(&app, common::world::db_id(&w.id)).await;
    assert_eq!(before, after, "the last good copy is intact");
}

each_engine!(a_run_past_its_time_budget_fails_and_keeps_the_copy);
