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

/// The GraphQL WebSocket protocols, by their `Sec-WebSocket-Protocol` names.
pub const TRANSPORT_WS: &str = "graphql-transport-ws";
/// The legacy protocol of subscriptions-transport-ws.
pub const LEGACY_WS: &str = "graphql-ws";

/// A subscription over one socket: `connection_init` with the key, then one operation.
pub struct Subscription {
    pub socket: Socket,
    pub protocol: &'static str,
}

impl Subscription {
    /// Connects to `ws_url`, authenticates with `key` and subscribes to `query`.
    pub async fn start(
        ws_url: &str,
        protocol: &'static str,
        key: &str,
        query: &str,
        variables: Value,
    ) -> Subscription {
        let mut socket = connect(ws_url, protocol).await;
        send(
            &mut socket,
            serde_json::json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {key}") } }),
        )
        .await;
        let ack = next_json(&mut socket).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
        let start = if protocol == LEGACY_WS {
            "start"
        } else {
            "subscribe"
        };
        send(
            &mut socket,
            serde_json::json!({ "id": "1", "type": start, "payload": { "query": query, "variables": variables } }),
        )
        .await;
        Subscription { socket, protocol }
    }

    /// The next result of the operation (`{data}` or `{errors}`); `None` once it completed.
    /// Answers the server's protocol pings. Waits 60 s at most.
    pub async fn next(&mut self) -> Option<Value> {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                let message = match self.socket.next().await {
                    None => return None,
                    Some(Err(e)) => panic!("socket failed: {e}"),
                    Some(Ok(message)) => message,
                };
                let Message::Text(text) = message else {
                    continue;
                };
                let v: Value = serde_json::from_str(&text).unwrap();
                match v["type"].as_str() {
                    Some("ka") | Some("pong") => {}
                    Some("ping") => {
                        send(&mut self.socket, serde_json::json!({ "type": "pong" })).await
                    }
                    Some("next") | Some("data") => return Some(v["payload"].clone()),
                    Some("complete") => return None,
                    Some("error") => return Some(serde_json::json!({ "errors": v["payload"] })),
                    _ => panic!("unexpected message {v}"),
                }
            }
        })
        .await
        .expect("a subscription message within 60 s")
    }

    /// Every result until the operation completes.
    pub async fn collect(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        while let Some(v) = self.next().await {
            out.push(v);
        }
        out
    }
}
