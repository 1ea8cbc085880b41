//! Attacks on connections, driven with raw sockets, WebSockets and the binary: slow and idle
//! connections, too many of them, WebSocket abuse, operations past their deadline, SIGTERM.

mod common;

use std::time::Duration;

use common::{
    close_code, connect, fragment_bomb, quick_limits, read_until_closed, send, unique, Engine,
    TestApp,
};
use mapping_gateway::config::Limits;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let app = TestApp::start_with(Engine::Sqlite, quick_limits())
        .await
        .unwrap();
    // Half the headers, then nothing.
    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .await
        .unwrap();
    read_until_closed(&mut half).await;

    // Complete headers, a body that stalls halfway: answered 408 with a code, then closed.
    let mut stalled = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Authorization: Bearer {}\r\nContent-Length: 100\r\n\r\n{{\"query\":",
        app.admin_key
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"code\":\"VALIDATION\"") && answer.contains("bodyTimeout"),
        "{answer}"
    );

    // A kept-alive connection that sits idle after its request.
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Many of them at once: all closed, and the server still answers.
    let mut many = Vec::new();
    for _ in 0..100 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
        many.push(s);
    }
    for s in &mut many {
        read_until_closed(s).await;
    }
    let health = app
        .client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_must_authenticate_in_time_and_keep_messages_small() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_body_bytes: 64 * 1024,
            ..quick_limits()
        },
    )
    .await
    .unwrap();
    let ws_url = app.url.replace("http://", "ws://") + "/graphql/ws";
    // Never sends connection_init: 4408 after WS_INIT_TIMEOUT_SECS.
    let mut silent = connect(&ws_url, "graphql-transport-ws").await;
    assert_eq!(close_code(&mut silent).await, Some(4408));
    // An operation before the handshake: 4401.
    let mut early = connect(&ws_url, "graphql-transport-ws").await;
    send(
        &mut early,
        json!({ "type": "subscribe", "id": "1", "payload": { "query": "{ gateways { kind } }" } }),
    )
    .await;
    assert_eq!(close_code(&mut early).await, Some(4401));
    // A message over MAX_BODY_BYTES, before authentication: closed, never parsed.
    for protocol in ["graphql-transport-ws", "graphql-ws"] {
        let mut big = connect(&ws_url, protocol).await;
        let padding = "x".repeat(5 * 1024 * 1024);
        use futures::SinkExt;
        let _ = big
            .send(tokio_tungstenite::tungstenite::Message::Text(
                json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key), "pad": padding } })
                    .to_string()
                    .into(),
            ))
            .await;
        let code = close_code(&mut big).await;
        assert!(code.is_none() || code == Some(1009), "{protocol}: {code:?}");
    }
    // An authenticated socket works.
    let mut good = connect(&ws_url, "graphql-transport-ws").await;
    send(&mut good, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
    assert_eq!(common::next_json(&mut good).await["type"], "connection_ack");
    send(
        &mut good,
        json!({ "type": "subscribe", "id": "1", "payload": { "query": fragment_bomb(10, 10) } }),
    )
    .await;
    let answer = common::next_json(&mut good).await;
    let error = if answer["payload"].is_array() {
        &answer["payload"][0]
    } else {
        &answer["payload"]["errors"][0]
    };
    assert_eq!(error["extensions"]["limit"], "nodes", "{answer}");
    let message = error["message"].as_str().unwrap();
    assert!(message.ends_with("the limit is 1000"), "{message}");
    // A WebSocket is not an idle connection: after three idle timeouts without a message it
    // still answers.
    tokio::time::sleep(Duration::from_secs(3)).await;
    send(
        &mut good,
        json!({ "type": "subscribe", "id": "2", "payload": { "query": "{ gateways { kind } }" } }),
    )
    .await;
    loop {
        let answer = common::next_json(&mut good).await;
        if answer["type"] == "next" {
            assert_eq!(answer["id"], "2", "{answer}");
            assert!(answer["payload"]["data"]["gateways"].is_array(), "{answer}");
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_within_the_deadline_and_cancels_syncs() {
    let dir = std::env::temp_dir().join(unique("mgw-term-"));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}", dir.join("gw.db").display());
    let mut gateway = common::Process::start(
        &["serve"],
        &[
            ("DATABASE_URL", database_url.clone()),
            ("LISTEN", "127.0.0.1:0".into()),
            ("DEMO", "true".into()),
            ("DEMO_BOXES", "40".into()),
            ("SCHEDULER", "false".into()),
            ("SHUTDOWN_TIMEOUT_SECS", "3".into()),
            ("BODY_TIMEOUT_SECS", "120".into()),
        ],
    );
    let lines = gateway.until("GraphiQL:");
    let demo = lines
        .iter()
        .find_map(|l| l.strip_prefix("Demo: Geosite simulator at "))
        .unwrap()
        .to_owned();
    let sim_url = demo.split_whitespace().next().unwrap().to_owned();
    let integration = demo
        .split("(id ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_owned();
    let key = common::last_word(&lines, "Demo ADMIN API key:");
    let base = common::last_word(&lines, "GraphiQL:")
        .trim_end_matches("/graphql")
        .to_owned();
    let client = reqwest::Client::new();
    let gql = |query: &'static str, variables: Value| {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
        async move {
            client
                .post(format!("{base}/graphql"))
                .bearer_auth(key)
                .json(&json!({ "query": query, "variables": variables }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    // The demo linked its project and synced it at start.
    // A slow platform keeps the sync in flight.
    client
        .put(format!("{sim_url}/_sim/faults"))
        .json(&json!({ "latencyMs": 2000 }))
        .send()
        .await
        .unwrap();
    let started = gql(
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": integration }),
    )
    .await;
    let run_id = started["data"]["startSync"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A request in flight that will never finish its body.
    let addr = base.trim_start_matches("http://").to_owned();
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(format!("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {key}\r\nContent-Length: 50\r\n\r\n{{").as_bytes())
        .await
        .unwrap();
    gateway.terminate();
    let (status, stderr) = gateway.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {stderr}");
    // The run was recorded as cancelled.
    let db = sea_orm::Database::connect(&database_url).await.unwrap();
    use sea_orm::EntityTrait;
    let run_id = mapping_gateway::graphql::ids::decode(
        mapping_gateway::graphql::ids::SYNC_RUN,
        &async_graphql::ID(run_id),
    )
    .unwrap();
    let run = entity::sync_run::Entity::find_by_id(run_id)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, entity::sync_run::SyncStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_past_its_deadline_is_answered() {
    let mut settings = common::test_settings();
    settings.platform.request_timeout = Duration::from_secs(60);
    settings.platform.deadline = Duration::from_secs(60);
    let app = TestApp::start_configured(Engine::Sqlite, quick_limits(), settings)
        .await
        .unwrap();
    // A platform that accepts and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let id = app
        .create_integration("Muda", &format!("http://{addr}/api"))
        .await;
    let (status, body) = app
        .post(
            Some(&app.admin_key),
            "mutation($id: ID!) { testIntegration(id: $id) { ok } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errors"][0]["extensions"]["limit"], "requestTimeout");
    assert!(body["errors"][0]["extensions"]["code"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_stops_cleanly_on_sigterm() {
    let dir = std::env::temp_dir().join(unique("mgw-idle-"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut gateway = common::Process::start(
        &["serve"],
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("gw.db").display()),
            ),
            ("LISTEN", "127.0.0.1:0".into()),
            ("SCHEDULER", "false".into()),
        ],
    );
    gateway.until("GraphiQL:");
    gateway.terminate();
    let (status, stderr) = gateway.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Log lines written to a pipe or file carry no colour codes.
    assert!(
        stderr.contains("shutting down") && !stderr.contains('\u{1b}'),
        "{stderr}"
    );
}

/// An HTTP/2 connection with no request in progress is closed after HEADER_TIMEOUT_SECS (with a
/// GOAWAY), though its client answers every PING; a request in progress for longer keeps it,
/// and the slots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_connections_without_a_request_are_closed_whatever_their_pings() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_connections: 3,
            body_timeout_secs: 10,
            ..quick_limits()
        },
    )
    .await
    .unwrap();
    let mut open = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect(app.addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        // The connection task answers the server's PINGs and ends when the server closes.
        open.push((client, tokio::spawn(connection)));
    }
    // One connection serves a request, then idles.
    let mut client = open[0].0.clone().ready().await.unwrap();
    let request = axum::http::Request::get(format!("{}/healthz", app.url))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // Another sends a body slowly, for three idle timeouts: it is answered, not cut.
    let mut client = open[1].0.clone().ready().await.unwrap();
    let request = axum::http::Request::post(format!("{}/graphql", app.url))
        .header("content-type", "application/json")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(request, false).unwrap();
    body.send_data(r#"{"query":"#.into(), false).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    body.send_data(r#""{ gateways { kind } }"}"#.into(), true)
        .unwrap();
    assert_eq!(
        response.await.unwrap().status(),
        401,
        "answered after the slow body"
    );
    for (client, task) in open {
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the idle HTTP/2 connection was closed")
            .unwrap()
            .ok();
        drop(client);
    }
    common::slots_come_back(app.addr, 3, Duration::from_secs(20)).await;
}
