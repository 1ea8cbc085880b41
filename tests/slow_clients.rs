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
    let admin = app.admin_key.clone();
    let mut socket = open_socket(&app, &admin).await;
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

/// An operation id over 128 bytes closes the socket with 4400 (each live id is kept until its
/// operation ends, so their length is bounded); one of 128 bytes runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_ids_are_at_most_128_bytes() {
    let app = TestApp::start_with(Engine::Sqlite, quick_limits())
        .await
        .unwrap();
    let admin = app.admin_key.clone();
    let mut socket = open_socket(&app, &admin).await;
    let query = json!({ "query": "{ gateways { kind } }" });
    let longest = "i".repeat(128);
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": longest, "payload": query }),
    )
    .await;
    assert_eq!(common::next_json(&mut socket).await["id"], longest);
    assert_eq!(common::next_json(&mut socket).await["type"], "complete");
    let long = "i".repeat(129);
    send(
        &mut socket,
        json!({ "type": "subscribe", "id": long, "payload": query }),
    )
    .await;
    assert_eq!(close_code(&mut socket).await, Some(4400));
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
    let script = common::graphiql_script(&app).await;
    let request = format!("GET {script} HTTP/1.1\r\nHost: x\r\n\r\n").repeat(8);
    let mut readers = Vec::new();
    for _ in 0..3 {
        let mut stream = common::never_reading(app.addr).await;
        stream.write_all(request.as_bytes()).await.unwrap();
        readers.push(stream);
    }
    let mut one = TcpStream::connect(app.addr).await.unwrap();
    assert!(healthz_on(&mut one).await, "the slot left answers");
    drop(one);
    // Every slot comes back once the readers' connections are closed (the test client's idle
    // one gives way): five at once answer, so no reader is left that could still be written to.
    slots_come_back(app.addr, 5, Duration::from_secs(20)).await;
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

/// Pipelined requests that are never read: the gateway answers them one at a time and reads
/// ahead at most a buffer of them, so the client cannot make it queue every request it sends;
/// once its answers wait WRITE_TIMEOUT_SECS the connection is closed, and meanwhile another
/// client is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_never_read_are_bounded_and_cut() {
    let app = TestApp::start_with(Engine::Sqlite, common::never_reading_limits())
        .await
        .unwrap();
    const REQUESTS: usize = 50_000;
    // Refused at once (no key), and counted.
    let request = b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                    Content-Length: 2\r\n\r\n{}"
        .repeat(100);
    let answered = || {
        mapping_gateway::metrics::get()
            .http_requests
            .with_label_values(&["graphql", "anonymous", "UNAUTHENTICATED"])
            .get() as usize
    };
    let total = request.len() * REQUESTS / 100;
    let mut writers = Vec::new();
    for _ in 0..2 {
        let stream = common::never_reading(app.addr).await;
        let request = request.clone();
        writers.push(tokio::spawn(async move {
            let (_never_read, mut write) = stream.into_split();
            let mut written = 0;
            while written < total {
                match write.write(&request).await {
                    Ok(n) if n > 0 => written += n,
                    _ => break,
                }
            }
            written
        }));
    }
    let mut one = TcpStream::connect(app.addr).await.unwrap();
    assert!(healthz_on(&mut one).await, "the slot left answers");
    drop(one);
    slots_come_back(app.addr, 3, Duration::from_secs(20)).await;
    for writer in writers {
        let written = tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("the writer was stopped by the closed connection")
            .unwrap();
        assert!(written > 0);
    }
    // Each connection was answered at most what the kernel keeps unsent for it, the client's
    // receive buffer and one buffer of hyper's (answers are over 200 bytes): a few dozen, not
    // the tens of thousands the default send buffer would take.
    let bound =
        2 * (mapping_gateway::http::UNSENT + 4096 + mapping_gateway::http::READ_AHEAD) / 200;
    assert!(
        answered() <= bound,
        "{} of {} requests answered to clients that read nothing (bound {bound})",
        answered(),
        2 * REQUESTS
    );
}

/// A WebSocket client that floods pings and never reads the pongs: once the server's writes to
/// it have waited WRITE_TIMEOUT_SECS its connection is closed and its slot comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_that_never_reads_is_closed() {
    use tokio_tungstenite::tungstenite::protocol::Role;
    let app = TestApp::start_with(Engine::Sqlite, common::never_reading_limits())
        .await
        .unwrap();
    let mut flooders = Vec::new();
    for _ in 0..2 {
        let mut stream = common::never_reading(app.addr).await;
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

/// Subscribes `n` times to bindingEvents on `socket`, with ids `{prefix}{i}`.
async fn subscribe_many(socket: &mut common::Socket, integration: &str, prefix: &str, n: usize) {
    for i in 0..n {
        send(
            socket,
            json!({ "type": "subscribe", "id": format!("{prefix}{i}"), "payload": {
                "query": "subscription($i: ID!) { bindingEvents(integrationId: $i) { __typename } }",
                "variables": { "i": integration } } }),
        )
        .await;
    }
}

/// Waits until the server has read everything sent on `socket` so far: a client `ping` is
/// answered with a `pong` after the messages before it were admitted. Returns the messages
/// that came before the pong.
async fn settle(socket: &mut common::Socket) -> Vec<serde_json::Value> {
    send(socket, json!({ "type": "ping" })).await;
    let mut before = Vec::new();
    loop {
        let message = common::next_json(socket).await;
        if message["type"] == "pong" {
            return before;
        }
        before.push(message);
    }
}

/// An authenticated graphql-transport-ws socket.
async fn open_socket(app: &TestApp, key: &str) -> common::Socket {
    let mut socket = connect(&app.ws_url(), common::TRANSPORT_WS).await;
    send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } })).await;
    assert_eq!(
        common::next_json(&mut socket).await["type"],
        "connection_ack"
    );
    socket
}

/// A key's live operations are bounded over all its sockets, a socket may not open operations
/// faster than its budget refills, and a flood of 10,000 subscribes on one socket leaves the
/// server answering an ADMIN query at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_s_operations_are_bounded_across_sockets_and_in_rate() {
    let app = TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_operations_per_socket: 50,
            max_subscriptions_per_key: 60,
            ..quick_limits()
        },
    )
    .await
    .unwrap();
    let integration = app
        .create_integration("Orcada", "https://orcada.example")
        .await;
    let viewer = app.key(mapping_gateway::access::Role::Viewer).await;
    let mut first = open_socket(&app, &viewer).await;
    subscribe_many(&mut first, &integration, "a", 50).await;
    assert_eq!(settle(&mut first).await, Vec::<serde_json::Value>::new());
    let mut second = open_socket(&app, &viewer).await;
    subscribe_many(&mut second, &integration, "b", 11).await;
    let refused = common::next_json(&mut second).await;
    assert_eq!(
        (refused["type"].as_str(), refused["id"].as_str()),
        (Some("error"), Some("b10")),
        "{refused}"
    );
    assert!(
        refused["payload"][0]["message"]
            .as_str()
            .unwrap()
            .contains("API key"),
        "{refused}"
    );
    // Closing a socket gives its key's places back.
    drop(first);
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut n = 0;
        loop {
            n += 1;
            subscribe_many(&mut second, &integration, &format!("c{n}-"), 1).await;
            // A refusal comes back at once; an admitted subscription sends nothing.
            let answer =
                tokio::time::timeout(Duration::from_millis(300), common::next_json(&mut second))
                    .await;
            if answer.is_err() {
                return;
            }
        }
    })
    .await
    .expect("the closed socket's places come back");
    // The rate: a socket that completes its operations cannot go on opening 50 more at once
    // past its first 100.
    let admin = app.admin_key.clone();
    let mut fast = open_socket(&app, &admin).await;
    for prefix in ["d", "e"] {
        subscribe_many(&mut fast, &integration, prefix, 50).await;
        for i in 0..50 {
            send(
                &mut fast,
                json!({ "type": "complete", "id": format!("{prefix}{i}") }),
            )
            .await;
        }
    }
    subscribe_many(&mut fast, &integration, "g", 50).await;
    let mut too_fast = false;
    for _ in 0..1000 {
        let message = common::next_json(&mut fast).await;
        if message["type"] == "error" {
            too_fast = message["payload"][0]["message"]
                .as_str()
                .unwrap()
                .contains("too fast");
            break;
        }
    }
    assert!(too_fast, "opening 50 at once after 100 is refused");
    // A flood of subscribes on one socket: an ADMIN query still answers.
    let mut flood = open_socket(&app, &viewer).await;
    subscribe_many(&mut flood, &integration, "f", 10_000).await;
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        app.ok("{ integrations { id } }", json!({})),
    )
    .await
    .expect("an ADMIN query answers during the flood");
    assert!(answered["integrations"].is_array());
}

on_both_engines! {
    /// Operations over WebSockets take their database connections from a pool of their own:
    /// with every connection of that pool held, a socket's query waits, while an ADMIN query
    /// and a sync start over HTTP answer; the socket's query answers once the pool is free.
    async fn sockets_cannot_take_the_connections_http_and_syncs_need(app: TestApp) {
        let socket_db = app
            .socket_db
            .clone()
            .expect("a file or server database has a sockets' pool");
        let (_sim, integration, _) = common::linked_simulator(&app, 5, 3).await;
        let admin = app.admin_key.clone();
        let mut socket = open_socket(&app, &admin).await;
        // Every connection of the sockets' pool, held: the next one cannot be had.
        let mut held = Vec::new();
        while let Ok(transaction) = tokio::time::timeout(
            Duration::from_millis(500),
            sea_orm::TransactionTrait::begin(&socket_db),
        )
        .await
        {
            held.push(transaction.expect("a connection"));
        }
        assert!(!held.is_empty());
        send(
            &mut socket,
            json!({ "type": "subscribe", "id": "q", "payload": { "query": "{ integrations { id } }" } }),
        )
        .await;
        let listed = app.ok("{ integrations { id } }", json!({})).await;
        assert!(listed["integrations"].as_array().is_some_and(|l| !l.is_empty()));
        let run = app
            .ok(
                "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id status } }",
                json!({ "i": integration }),
            )
            .await;
        assert!(run["startSync"]["id"].is_string(), "{run}");
        assert!(
            tokio::time::timeout(Duration::from_millis(500), common::next_json(&mut socket))
                .await
                .is_err(),
            "the socket's query needs a connection of its own pool"
        );
        drop(held);
        let answer = common::next_json(&mut socket).await;
        assert_eq!(answer["type"], "next", "{answer}");
        assert!(answer["payload"]["data"]["integrations"].is_array(), "{answer}");
        app.wait_run(run["startSync"]["id"].as_str().unwrap(), "status").await;
    }
}
