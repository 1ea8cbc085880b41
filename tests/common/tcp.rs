//! Raw TCP helpers of the connection tests.

use std::time::Duration;

use mapping_gateway::config::Limits;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes the connection; returns what arrived. Fails after 10 s.
pub async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server closes the connection");
    String::from_utf8_lossy(&got).into_owned()
}

/// Whether `/healthz` answers 200 on this connection.
pub async fn healthz_on(stream: &mut TcpStream) -> bool {
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        _ => false,
    }
}

/// Opens a WebSocket on `stream` (a raw upgrade): a connection in use, which keeps its slot
/// (an idle kept-alive one may be closed to admit a new connection).
pub async fn in_use_on(stream: &mut TcpStream) -> bool {
    let upgrade = "GET /graphql/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n";
    if stream.write_all(upgrade.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 101"),
        _ => false,
    }
}

/// Waits until `n` connections at once are in use (each a WebSocket): the slots others held
/// came back.
pub async fn slots_come_back(addr: std::net::SocketAddr, n: usize, limit: Duration) {
    tokio::time::timeout(limit, async {
        loop {
            let mut held = Vec::new();
            let mut all = true;
            for _ in 0..n {
                let Ok(mut s) = TcpStream::connect(addr).await else {
                    all = false;
                    break;
                };
                all &= in_use_on(&mut s).await;
                held.push(s);
            }
            if all {
                return;
            }
            drop(held);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the slots of clients that never read come back");
}

/// A connection with a 4 KiB receive buffer, for a client that never reads: the server's writes
/// to it soon wait.
pub async fn never_reading(addr: std::net::SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// The path of GraphiQL's script (about 1 MB), read from the page `GET /graphql` serves to a
/// browser: a large answer for the tests of slow readers.
pub async fn graphiql_script(app: &super::TestApp) -> String {
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
    page.split('"')
        .find(|part| part.contains("/graphiql/") && part.ends_with("/graphiql.min.js"))
        .unwrap_or_else(|| panic!("no script in {page}"))
        .to_owned()
}

/// Limits for the tests of clients that never read: three connections, a write deadline of
/// one second, and headers given all the time they need.
pub fn never_reading_limits() -> Limits {
    Limits {
        max_connections: 3,
        write_timeout_secs: 1,
        header_timeout_secs: 30,
        ..Limits::default()
    }
}

/// Limits with short deadlines, for tests that wait them out.
pub fn quick_limits() -> Limits {
    Limits {
        header_timeout_secs: 1,
        body_timeout_secs: 1,
        ws_init_timeout_secs: 1,
        request_timeout_secs: 2,
        ..Limits::default()
    }
}
