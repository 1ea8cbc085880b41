//! Clients that hold what others need: connections that never read what they asked for, and
//! WebSockets that open more operations than their share.

mod common;

use std::time::Duration;

use common::{
    close_code, connect, healthz_on, quick_limits, read_until_closed, send, slots_come_back,
    Engine, TestApp,
};
use mapping_gateway::config::Limits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One socket holds at most MAX_OPERATIONS_PER_SOCKET live operations: one more is refused with
/// an `error` for its id and the socket stays usable; a completed one frees its place; a
/// subscribe id that is live already closes the socket with 4409, as graphql-transport-ws says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_s_operations_are_bounded_and_their_ids_unique() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_operations_per_socket: 3,
            ..quick_limits()
        },
    )
    .await
    .unwrap();
    let integration = app
        .create_integration("Contada", "https://contada.example")
        .await;
    let ws_url = app.url.replace("http://", "ws://") + "/graphql/ws";
    let mut socket = connect(&ws_url, common::TRANSPORT_WS).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
    assert_eq!(
        common::next_json(&mut socket).await["type"],
        "connection_ack"
    );
    let subscribe = |id: &str| {
        json!({ "type": "subscribe", "id": id, "payload": {
            "query": "subscription($i: ID!) { bindingEvents(integrationId: $i) { __typename } }",
            "variables": { "i": integration } } })
    };
    for id in ["1", "2", "3", "4"] {
        send(&mut socket, subscribe(id)).await;
    }
    let refused = common::next_json(&mut socket).await;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_str()),
        (Some("error"), Some("4")),
        "{refused}"
    );
    assert_eq!(
        refused["payload"][0]["extensions"]["code"], "RATE_LIMITED",
        "{refused}"
    );
    // Completing one frees its place: a query then runs.
    send(&mut socket, json!({ "type": "complete", "id": "1" })).await;
    assert_eq!(
        common::next_json(&mut socket).await["id"],
        "1",
        "the server completes it too"
    );
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": "5", "payload": { "query": "{ gateways { kind } }" } }),
    )
    .await;
    let answer = common::next_json(&mut socket).await;
    assert_eq!(
        (answer["type"].as_str(), answer["id"].as_str()),
        (Some("next"), Some("5")),
        "{answer}"
    );
    assert_eq!(answer["payload"]["data"]["gateways"][0]["kind"], "GEOSITE");
    assert_eq!(common::next_json(&mut socket).await["type"], "complete");
    // The query's id is free again once it completed; a live one is not.
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": "5", "payload": { "query": "{ gateways { kind } }" } }),
    )
    .await;
    assert_eq!(common::next_json(&mut socket).await["id"], "5");
    assert_eq!(common::next_json(&mut socket).await["type"], "complete");
    send(&mut socket, subscribe("2")).await;
    assert_eq!(close_code(&mut socket).await, Some(4409));
}

/// Clients that pipeline requests for a large file (the GraphiQL script, about 1 MB) through a
/// small receive buffer and never read: each connection whose writes wait WRITE_TIMEOUT_SECS is
/// closed, so the slots they held come back; `/healthz` answers meanwhile on the slot left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_never_read_lose_their_connections() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            // Three readers, the test's own kept-alive client, and one more.
            max_connections: 5,
            write_timeout_secs: 1,
            header_timeout_secs: 30,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    let page = app
        .client
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = page
        .split('"')
        .find(|part| part.contains("/graphiql/") && part.ends_with("/graphiql.min.js"))
        .unwrap_or_else(|| panic!("no script in {page}"))
        .to_owned();
    let request = format!("GET {script} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(8);
    let mut readers = Vec::new();
    for _ in 0..3 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        readers.push(stream);
    }
    let mut one = TcpStream::connect(app.addr).await.unwrap();
    assert!(healthz_on(&mut one).await, "the slot left answers");
    drop(one);
    // Every slot comes back once the readers' connections are closed: four at once answer.
    slots_come_back(app.addr, 4, Duration::from_secs(20)).await;
    // Their connections were closed before the answers were all sent.
    for mut reader in readers {
        let got = read_until_closed(&mut reader).await;
        assert!(
            got.len() < 8 * 1_000_000,
            "{} bytes: the connection was not cut",
            got.len()
        );
    }
}

/// A WebSocket client that floods pings and never reads the pongs: once the server's writes to
/// it have waited WRITE_TIMEOUT_SECS its connection is closed and its slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_reads_is_closed() {
    use tokio_tungstenite::tungstenite::protocol::Role;
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_connections: 3,
            write_timeout_secs: 1,
            header_timeout_secs: 30,
            ..Limits::default()
        },
    )
    .await
    .unwrap();
    let mut flooders = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        stream
            .write_all(
                b"GET /graphql/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n",
            )
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"));
        let socket =
            tokio_tungstenite::WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
        flooders.push(tokio::spawn(async move {
            use futures::SinkExt;
            let mut socket = socket;
            // Pings until the server stops taking them or closes; the pongs are never read.
            for _ in 0..200_000 {
                let ping = tokio_tungstenite::tungstenite::Message::Ping(vec![7u8; 125].into());
                if socket.feed(ping).await.is_err() {
                    return;
                }
            }
            let _ = socket.flush().await;
            // Holds the socket open without reading.
            std::future::pending::<()>().await;
        }));
    }
    slots_come_back(app.addr, 3, Duration::from_secs(30)).await;
    for flooder in flooders {
        flooder.abort();
    }
}

/// On SIGTERM an open WebSocket is told with a close frame (1001, going away) before the
/// process exits, so clients reconnect instead of seeing a dropped connection (1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_websockets_with_going_away() {
    let dir = std::env::temp_dir().join(common::unique("mgw-away-"));
    std::fs::create_dir_all(&dir).unwrap();
    let admin = common::unique("admin-key-for-the-going-away-test-");
    let mut gateway = common::Process::start(
        &["serve"],
        &[
            (
                "DATABASE_URL",
                format!("sqlite://{}", dir.join("gw.db").display()),
            ),
            ("LISTEN", "127.0.0.1:0".into()),
            ("SCHEDULER", "false".into()),
            ("ADMIN_API_KEY", admin.clone()),
        ],
    );
    let url = common::last_word(&gateway.until("GraphiQL:"), "GraphiQL:");
    let ws_url = url.replace("http://", "ws://") + "/ws";
    let mut socket = connect(&ws_url, common::TRANSPORT_WS).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {admin}") } })).await;
    assert_eq!(
        common::next_json(&mut socket).await["type"],
        "connection_ack"
    );
    gateway.terminate();
    assert_eq!(close_code(&mut socket).await, Some(1001));
    let (status, stderr) = gateway.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status:?}: {stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
