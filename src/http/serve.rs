//! The connection loop: every connection is bounded in number and in time.
//!
//! `axum::serve` has no header timeout and no connection cap, so a client that sends half its
//! headers holds a connection (and its memory) for ever, and a few hundred of them exhaust the
//! process. This loop runs each accepted socket through hyper with a header read timeout (which
//! also closes a kept-alive connection that stays idle that long), refuses connections above
//! `MAX_CONNECTIONS` at once, fails a connection whose writes wait longer than
//! `WRITE_TIMEOUT_SECS` (a client that does not read), and shuts down gracefully: it stops accepting, lets requests in
//! flight finish, and returns when they have.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::Limits;

/// The connection's place under `MAX_CONNECTIONS`, carried by each of its requests so that a
/// WebSocket keeps holding it after the upgrade.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// Serves `router` on `listener` until `shutdown` resolves, then waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(64)
        .keep_alive_interval(Some(limits.header_timeout()))
        .keep_alive_timeout(limits.header_timeout());
    let write_timeout = limits.write_timeout();
    let graceful = GracefulShutdown::new();
    let mut refused_logged = tokio::time::Instant::now() - Duration::from_secs(60);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, most often: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Closed at once: a refusal the client sees, rather than a queue that grows.
            drop(stream);
            if refused_logged.elapsed() > Duration::from_secs(10) {
                refused_logged = tokio::time::Instant::now();
                tracing::warn!(%peer, limit = limits.max_connections, "connection limit reached");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let slot = ConnectionSlot(Arc::new(permit));
        let request_slot = slot.clone();
        let service = TowerToHyperService::new(router.clone().map_request(
            move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(request_slot.clone());
                request
            },
        ));
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(super::deadline::WriteDeadline::new(stream, write_timeout)),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
