//! Connection slots (MAX_CONNECTIONS) cannot be hoarded: no peer address holds more than
//! MAX_CONNECTIONS_PER_PEER of them, and when all are taken an idle kept-alive connection is
//! closed to admit the new one; connections in use (a WebSocket, here) are never taken. Peers
//! are told apart by binding the client sockets to other loopback addresses (127.0.0.2, ...).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{read_until_closed, Engine, TestApp};
use mapping_gateway::config::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

async fn connect_from(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((ip, 0))).unwrap();
    socket.connect(to).await.unwrap()
}

/// The first bytes of the answer to `request` on `stream` (empty when it was closed unserved).
async fn ask(stream: &mut TcpStream, request: &str) -> String {
    let _ = stream.write_all(request.as_bytes()).await;
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

const HEALTH: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
/// A WebSocket from `ip`: a connection in use, which holds its slot.
async fn in_use(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    let mut stream = connect_from(ip, to).await;
    assert!(common::in_use_on(&mut stream).await, "upgraded");
    stream
}

/// A WebSocket from `ip` as soon as a slot is free for it: a connection that has just
/// answered may count as writing for a moment more, and is not closed for another meanwhile.
async fn in_use_once_admitted(ip: [u8; 4], to: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let mut stream = connect_from(ip, to).await;
            if common::in_use_on(&mut stream).await {
                return stream;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a slot for the WebSocket")
}

async fn app(max_connections: usize, per_peer: usize) -> TestApp {
    TestApp::start_with(
        Engine::Sqlite,
        Limits {
            max_connections,
            max_connections_per_peer: per_peer,
            header_timeout_secs: 30,
            ws_init_timeout_secs: 30,
            ..Limits::default()
        },
    )
    .await
    .unwrap()
}

/// Every slot in use: one more connection is closed unserved; once they end, it is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_in_use_are_capped() {
    let app = app(3, 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(in_use([127, 0, 0, 1], app.addr).await);
    }
    let mut over = connect_from([127, 0, 0, 1], app.addr).await;
    let _ = over.write_all(HEALTH.as_bytes()).await;
    let answer = read_until_closed(&mut over).await;
    assert!(
        answer.is_empty(),
        "a connection over the cap was served: {answer}"
    );
    drop(held);
    let served = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Ok(r) = app.client.get(format!("{}/healthz", app.url)).send().await {
                return r.status();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(served, 200);
}

/// Every slot held by an idle kept-alive connection (one client keeping them open): a new
/// client is served, and one of the idle connections is closed to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_makes_room_for_a_new_one() {
    let app = app(3, 3).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut stream = connect_from([127, 0, 0, 2], app.addr).await;
        assert!(ask(&mut stream, HEALTH).await.starts_with("HTTP/1.1 200"));
        idle.push(stream);
    }
    let mut newcomer = connect_from([127, 0, 0, 3], app.addr).await;
    let answer = ask(&mut newcomer, HEALTH).await;
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the newcomer is served: {answer:?}"
    );
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 1, "one idle connection was closed to make room");
}

/// One peer holds at most MAX_CONNECTIONS_PER_PEER slots, in use or not: its next connection
/// is closed unserved while another peer still gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_holds_at_most_its_share() {
    let app = app(4, 2).await;
    let _held = [
        in_use([127, 0, 0, 4], app.addr).await,
        in_use([127, 0, 0, 4], app.addr).await,
    ];
    let mut third = connect_from([127, 0, 0, 4], app.addr).await;
    let _ = third.write_all(HEALTH.as_bytes()).await;
    assert!(
        read_until_closed(&mut third).await.is_empty(),
        "over its share"
    );
    let mut other = connect_from([127, 0, 0, 5], app.addr).await;
    assert!(ask(&mut other, HEALTH).await.starts_with("HTTP/1.1 200"));
}

/// A connection whose answer is still being written (a large file to a client that has not
/// read it yet) is in use, not idle: with every slot taken, a newcomer is refused rather than
/// that answer cut short, and the slow client then gets all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_writing_its_answer_is_not_idle() {
    let app = app(2, 2).await;
    let script = common::graphiql_script(&app).await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(SocketAddr::from(([127, 0, 0, 6], 0))).unwrap();
    let mut slow = socket.connect(app.addr).await.unwrap();
    slow.write_all(format!("GET {script} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // The answer has begun (looked at, not read): the gateway holds the rest of it.
    let mut head = [0u8; 512];
    let peeked = tokio::time::timeout(Duration::from_secs(10), slow.peek(&mut head))
        .await
        .expect("the answer begins")
        .unwrap();
    let head = String::from_utf8_lossy(&head[..peeked]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap_or_else(|| panic!("no length in {head:?}"))
        .trim()
        .parse()
        .unwrap();
    // The other slot, once the test client's kept-alive connection has given it up.
    let _other = in_use_once_admitted([127, 0, 0, 7], app.addr).await;
    let mut newcomer = connect_from([127, 0, 0, 8], app.addr).await;
    let answer = ask(&mut newcomer, HEALTH).await;
    assert!(
        answer.is_empty(),
        "a newcomer was served by closing a connection still writing: {answer}"
    );
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        let mut got = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let body = got
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|end| got.len() - end - 4);
            if body.is_some_and(|b| b >= length) {
                return body;
            }
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return body,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the answer arrives");
    assert_eq!(got, Some(length), "the slow client got the whole answer");
}
