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
//! It counts the socket's live operations: a subscribe id already live closes the socket with
//! 4409 (graphql-transport-ws), and one over `MAX_OPERATIONS_PER_SOCKET` is refused with an
//! `error` message for its id; an operation id over 128 bytes closes it with 4400. A message the client does not take within `WRITE_TIMEOUT_SECS`
//! closes the socket.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_graphql::http::{WebSocket as GraphQLStream, WebSocketProtocols, WsMessage};
use async_graphql::Data;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::{SinkExt, StreamExt};

use super::ws_budget::{Budget, PerKey, Refusal};
use crate::config::WsLimits;
use crate::state::AppState;
use crate::Error;

/// Close codes of the graphql-transport-ws protocol.
mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const BAD_MESSAGE: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const SUBSCRIBER_EXISTS: u16 = 4409;
}

/// What every socket of the server shares.
#[derive(Clone, Default)]
pub struct Shared {
    /// Cancelled when the server shuts down: sockets close with 1001.
    pub going_away: tokio_util::sync::CancellationToken,
    /// Live operations of each key over all sockets.
    pub per_key: Arc<PerKey>,
    /// The state operations run with: the server's, with the sockets' own database pool.
    pub app: Option<AppState>,
    /// Operations running at once, shared with HTTP requests.
    pub in_flight: Arc<crate::in_flight::InFlight>,
    /// One log line per operation (`ACCESS_LOG`).
    pub access_log: bool,
}

/// Serves one upgraded socket until either side closes it.
pub async fn serve<E: async_graphql::Executor>(
    socket: WebSocket,
    schema: E,
    app: AppState,
    protocol: WebSocketProtocols,
    limits: WsLimits,
    shared: Shared,
    slot: Option<super::serve::ConnectionSlot>,
) {
    let Shared {
        going_away,
        per_key,
        app: socket_app,
        in_flight,
        access_log,
    } = shared;
    let _open = crate::metrics::get().ws_connections.guard();
    let (mut sink, stream) = socket.split();
    // The key's hold in the state's key watch, handed over by the handshake.
    let (hold_tx, mut hold_rx) = tokio::sync::mpsc::channel::<crate::access::KeyHold>(1);
    let mut hold: Option<crate::access::KeyHold> = None;
    let too_big = Arc::new(AtomicBool::new(false));
    let authenticated = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicBool::new(false));
    let live = Arc::new(Budget::new(per_key, limits, protocol, access_log));
    let (refusals_tx, mut refusals) = tokio::sync::mpsc::unbounded_channel::<Refusal>();
    let input = {
        let too_big = too_big.clone();
        let live = live.clone();
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
                let bytes = bytes.filter(|b| match live.admit(b) {
                    Ok(()) => true,
                    Err(refusal) => {
                        let _ = refusals_tx.send(refusal);
                        false
                    }
                });
                futures::future::ready(bytes.map(|b| b.to_vec()))
            })
    };
    let on_init = {
        let (authenticated, refused) = (authenticated.clone(), refused.clone());
        let app = app.clone();
        let live = live.clone();
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
                        live.set_key(id);
                    }
                    authenticated.store(true, Ordering::Relaxed);
                    let mut data = Data::default();
                    data.insert(crate::in_flight::SocketGate {
                        in_flight,
                        key: actor.key_id,
                    });
                    data.insert(actor);
                    // Resolvers and loaders read the connection's state before the schema's.
                    if let Some(socket_app) = socket_app {
                        data.insert(socket_app);
                    }
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
    let deadline = tokio::time::sleep(limits.init_timeout);
    tokio::pin!(deadline);
    let keepalive = limits.keepalive;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    // The protocol's own keep-alive: `ka` in the legacy protocol, `ping` (answered with `pong`)
    // in graphql-transport-ws.
    let keepalive_message = match protocol {
        WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
    };
    // A close frame's reason holds at most 123 bytes; a longer one would not be sent at all.
    let close_with = |code: u16, reason: &str| {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Message::Close(Some(CloseFrame {
            code,
            reason: reason[..end].to_owned().into(),
        }))
    };
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            () = &mut deadline, if !authenticated.load(Ordering::Relaxed) => {
                let _ = send(&mut sink, close_with(close::INIT_TIMEOUT, "Connection initialisation timeout"), limits).await;
                break;
            }
            _ = ping.tick() => {
                let mut alive = send(&mut sink, Message::Ping(Default::default()), limits).await;
                if alive && authenticated.load(Ordering::Relaxed) {
                    alive = send(&mut sink, Message::Text(keepalive_message.into()), limits).await;
                }
                if !alive {
                    break;
                }
                continue;
            }
            () = going_away.cancelled() => {
                let _ = send(&mut sink, close_with(close::GOING_AWAY, "the server is shutting down"), limits).await;
                break;
            }
            Some(refusal) = refusals.recv() => match refusal {
                Refusal::LongId => {
                    let reason = format!("operation id over {} bytes", super::ws_budget::MAX_ID_BYTES);
                    let _ = send(&mut sink, close_with(close::BAD_MESSAGE, &reason), limits).await;
                    break;
                }
                Refusal::Reused(id) => {
                    let reason = format!("Subscriber for {id} already exists");
                    let _ = send(&mut sink, close_with(close::SUBSCRIBER_EXISTS, &reason), limits).await;
                    break;
                }
                Refusal::OverBudget { id, why } => {
                    let error = serde_json::json!({
                        "id": id,
                        "type": "error",
                        "payload": [{
                            "message": why,
                            "extensions": { "code": "RATE_LIMITED" },
                        }],
                    });
                    if !send(&mut sink, Message::Text(error.to_string().into()), limits).await {
                        break;
                    }
                    continue;
                }
            },
            Some(held) = hold_rx.recv(), if hold.is_none() => {
                hold = Some(held);
                continue;
            }
            () = async { hold.as_mut().expect("held").invalidated().await }, if hold.is_some() => {
                let _ = send(&mut sink, close_with(close::FORBIDDEN, "Forbidden: the key was revoked"), limits).await;
                break;
            }
        };
        let outgoing = match message {
            Some(WsMessage::Text(text)) => {
                live.sent(&text);
                Message::Text(text.into())
            }
            Some(WsMessage::Close(code, reason)) => {
                let (code, reason) = match code {
                    1002 if refused.load(Ordering::Relaxed) => {
                        (close::FORBIDDEN, "Forbidden".to_owned())
                    }
                    1011 if !authenticated.load(Ordering::Relaxed) => {
                        (close::UNAUTHORIZED, "Unauthorized".to_owned())
                    }
                    // A message the protocol does not know: 4400, as graphql-transport-ws says.
                    1002 => (close::BAD_MESSAGE, reason),
                    _ => (code, reason),
                };
                let _ = send(&mut sink, close_with(code, &reason), limits).await;
                break;
            }
            None => {
                // Every end has a close frame: the client's close echoed, or why it ended.
                let (code, reason) = if too_big.load(Ordering::Relaxed) {
                    (close::TOO_BIG, "message over MAX_BODY_BYTES")
                } else if refused.load(Ordering::Relaxed) {
                    (close::FORBIDDEN, "Forbidden")
                } else {
                    (close::NORMAL, "")
                };
                let _ = send(&mut sink, close_with(code, reason), limits).await;
                break;
            }
        };
        if !send(&mut sink, outgoing, limits).await {
            break;
        }
    }
    // After the client's own close, tungstenite has queued the echo of its frame and refuses the
    // close sent above: closing the sink flushes that echo (and anything else still queued), so
    // the client sees its close answered instead of a dropped connection (1006).
    let _ = tokio::time::timeout(limits.write_timeout, sink.close()).await;
    drop(slot);
}

/// Sends one message within the write deadline; false when the socket is to be closed (the
/// client went away, or does not read).
async fn send<S>(sink: &mut S, message: Message, limits: WsLimits) -> bool
where
    S: futures::Sink<Message> + Unpin,
{
    match tokio::time::timeout(limits.write_timeout, sink.send(message)).await {
        Ok(sent) => sent.is_ok(),
        Err(_) => {
            tracing::info!("closed a WebSocket whose client did not read for WRITE_TIMEOUT_SECS");
            false
        }
    }
}
