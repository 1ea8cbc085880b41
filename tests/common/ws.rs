//! A GraphQL WebSocket client for the tests.

use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket client.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(url: &str, protocol: &str) -> Socket {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

pub async fn send(socket: &mut Socket, value: Value) {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

pub async fn next_json(socket: &mut Socket) -> Value {
    let wait = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match socket.next().await.expect("socket open").unwrap() {
                Message::Text(text) => {
                    let v: Value = serde_json::from_str(&text).unwrap();
                    if v["type"] != "ka" && v["type"] != "ping" {
                        return v;
                    }
                }
                _ => continue,
            }
        }
    });
    wait.await.expect("a message within 10 s")
}

/// Waits (10 s at most) for the server to close the socket; returns the close code, `None` when
/// the connection just ended. Fails if the server acknowledges the connection.
pub async fn close_code(socket: &mut Socket) -> Option<u16> {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap_or(Value::Null);
                    assert_ne!(
                        v["type"], "connection_ack",
                        "an unauthenticated socket was accepted"
                    );
                }
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the server closes the socket within 10 s")
}
