//! `/graphql/ws`: both GraphQL WebSocket protocols, authenticated in `connection_init`.
//!
//! async-graphql's socket has no deadline for `connection_init` and answers a refused init with
//! close code 1002; this loop drives its message stream itself to add what the
//! graphql-transport-ws spec asks for: 4408 when no `connection_init` arrives in time, 4403 when
//! the key is refused, 4401 when an operation comes before the handshake, and 1009 for a message
//! over `MAX_BODY_BYTES` (enforced by the WebSocket codec while reading, before any parse).
//! It also keeps the connection alive (a WebSocket ping, plus the protocol's own keep-alive
//! message, every `WS_KEEPALIVE_SECS`) and holds its key in the state's `KeyWatch`: a key
//! revoked (or given another role) closes its sockets, and their subscriptions, with 4403.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::{WebSocket as GraphQLStream, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use crate::state::AppState;
use crate::Error;

/// Close codes of the graphql-transport-ws protocol.
mod close {
    pub const TOO_BIG: u16 = 1009;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve<E: async_graphql::Executor>(
    socket: WebSocket,
    schema: E,
    app: AppState,
    protocol: WebSocketProtocols,
    init_timeout: Duration,
    keepalive: Duration,
    slot: Option<super::serve::ConnectionSlot>,
) {
    let _open = crate::metrics::get().ws_connections.guard();
    let (mut sink, stream) = socket.split();
    // The key's hold in the state's key watch, handed over by the handshake.
    let (hold_tx, mut hold_rx) = tokio::sync::mpsc::channel::<crate::access::KeyHold>(1);
    let mut hold: Option<crate::access::KeyHold> = None;
    let too_big = Arc::new(AtomicBool::new(false));
    let authenticated = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicBool::new(false));
    let input = {
        let too_big = too_big.clone();
        stream
            .take_while(|message| futures::future::ready(!matches!(message, Ok(Message::Close(_)))))
            .filter_map(move |message| {
                let bytes = match message {
                    Ok(Message::Text(text)) => Some(axum::body::Bytes::from(text)),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    Ok(_) => None,
                    Err(e) => {
                        // The codec stops reading at the size limit; any other error ends the
                        // socket too.
                        if e.to_string().contains("too long") || e.to_string().contains("size") {
                            too_big.store(true, Ordering::Relaxed);
                        }
                        tracing::debug!(error = %e, "websocket read failed");
                        None
                    }
                };
                futures::future::ready(bytes.map(|b| b.to_vec()))
            })
    };
    let on_init = {
        let (authenticated, refused) = (authenticated.clone(), refused.clone());
        let app = app.clone();
        move |payload: serde_json::Value| async move {
            // The key travels in the connection_init payload, since browsers cannot set
            // headers on a WebSocket.
            let authorization = payload
                .get("authorization")
                .or_else(|| payload.get("Authorization"))
                .and_then(|v| v.as_str());
            match super::actor_from(&app, authorization).await {
                Ok(Some(actor)) => {
                    if let Some(id) = actor.key_id {
                        let _ = hold_tx.try_send(app.keys.hold(id, actor.role));
                    }
                    authenticated.store(true, Ordering::Relaxed);
                    let mut data = Data::default();
                    data.insert(actor);
                    Ok(data)
                }
                Ok(None) => {
                    refused.store(true, Ordering::Relaxed);
                    Err(Error::Unauthenticated.into())
                }
                Err(e) => {
                    refused.store(true, Ordering::Relaxed);
                    Err(e.into())
                }
            }
        }
    };
    let mut messages = GraphQLStream::new(schema, input, protocol)
        .on_connection_init(on_init)
        .keepalive_timeout(None);
    let deadline = tokio::time::sleep(init_timeout);
    tokio::pin!(deadline);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    // The protocol's own keep-alive: `ka` in the legacy protocol, `ping` (answered with `pong`)
    // in graphql-transport-ws.
    let keepalive_message = match protocol {
        WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
    };
    let close_with = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        }))
    };
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            () = &mut deadline, if !authenticated.load(Ordering::Relaxed) => {
                let _ = sink
                    .send(close_with(close::INIT_TIMEOUT, "Connection initialisation timeout"))
                    .await;
                break;
            }
            _ = ping.tick() => {
                let mut alive = sink.send(Message::Ping(Default::default())).await.is_ok();
                if alive && authenticated.load(Ordering::Relaxed) {
                    alive = sink.send(Message::Text(keepalive_message.into())).await.is_ok();
                }
                if !alive {
                    break;
                }
                continue;
            }
            Some(held) = hold_rx.recv(), if hold.is_none() => {
                hold = Some(held);
                continue;
            }
            () = async { hold.as_mut().expect("held").invalidated().await }, if hold.is_some() => {
                let _ = sink
                    .send(close_with(close::FORBIDDEN, "Forbidden: the key was revoked"))
                    .await;
                break;
            }
        };
        let outgoing = match message {
            Some(WsMessage::Text(text)) => Message::Text(text.into()),
            Some(WsMessage::Close(code, reason)) => {
                let (code, reason) = match code {
                    1002 if refused.load(Ordering::Relaxed) => {
                        (close::FORBIDDEN, "Forbidden".to_owned())
                    }
                    1011 if !authenticated.load(Ordering::Relaxed) => {
                        (close::UNAUTHORIZED, "Unauthorized".to_owned())
                    }
                    _ => (code, reason),
                };
                let _ = sink.send(close_with(code, &reason)).await;
                break;
            }
            None => {
                if too_big.load(Ordering::Relaxed) {
                    let _ = sink
                        .send(close_with(close::TOO_BIG, "message over MAX_BODY_BYTES"))
                        .await;
                }
                break;
            }
        };
        if sink.send(outgoing).await.is_err() {
            break;
        }
    }
    drop(slot);
}
