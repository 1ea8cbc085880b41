//! The connection loop: every connection is bounded in number and in time.
//!
//! `axum::serve` has no header timeout and no connection cap, so a client that sends half its
//! headers holds a connection (and its memory) for ever, and a few hundred of them exhaust the
//! process. This loop runs each accepted socket through hyper with a header read timeout (which
//! also closes a kept-alive connection that stays idle that long), refuses connections above
//! `MAX_CONNECTIONS` at once, fails a connection whose writes wait longer than
//! `WRITE_TIMEOUT_SECS` (a client that does not read), closes a connection (HTTP/1 or HTTP/2)
//! that has had no request in progress (nor answer left to write) for `HEADER_TIMEOUT_SECS`
//! whatever else it sends (an HTTP/2 client answering PINGs keeps no slot), and shuts down
//! gracefully: it stops accepting, lets requests in flight finish, and returns when they have.
//!
//! Pipelined HTTP/1 requests are answered one at a time, in order: hyper reads the next one only
//! once the answer before it is written into its buffer, and reads ahead, like it buffers
//! answers, at most `READ_AHEAD` bytes; a client that sends requests without reading the
//! answers fills those buffers and is then cut by the write deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::config::Limits;

/// The connection's place under `MAX_CONNECTIONS`, carried by each of its requests so that a
/// WebSocket keeps holding it after the upgrade.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<Held>);

/// What a slot holds: the permit, and the connection's entry among its peer's (both let go
/// when the connection, or the socket it was upgraded to, ends).
pub struct Held {
    _permit: tokio::sync::OwnedSemaphorePermit,
    registered: super::peers::Registered,
}

/// Bytes of pipelined requests read ahead, and of answers buffered, per connection.
pub const READ_AHEAD: usize = 64 * 1024;

/// Bytes of answers the kernel holds for a client before it has sent them (TCP_NOTSENT_LOWAT).
pub const UNSENT: usize = 16 * 1024;

/// Keeps at most [`UNSENT`] bytes of answers queued in the kernel for a client that does not
/// read (by default the send buffer grows to megabytes, thousands of pipelined answers), so
/// writes wait, and the write deadline counts, as soon as the client stops reading. What is in
/// flight is still sized by the network, so throughput is not capped.
fn queue_little(stream: &tokio::net::TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let value = UNSENT as libc::c_int;
        // SAFETY: the descriptor is the stream's own, open while it is borrowed; the option
        // value is a c_int whose size is passed along with it.
        let set = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                std::ptr::addr_of!(value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "TCP_NOTSENT_LOWAT not set");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// The requests of one connection being answered.
#[derive(Clone, Default)]
struct Activity(Arc<watch::Sender<usize>>);

/// One request being answered; counted in its connection's [`Activity`] while it lives.
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        (self.0).0.send_modify(|n| *n -= 1);
    }
}

/// An answer's body, counted as a request in progress until hyper has taken all of it (or
/// dropped it); each part it takes then counts as [`Unflushed`] output until it is flushed.
struct Tracked {
    body: axum::body::Body,
    unflushed: Unflushed,
    _busy: Busy,
}

/// Output the connection has taken from answers (or could not write) and not yet handed to
/// the socket: counted in its [`Activity`], so that a connection writing an answer to a slow
/// reader is not closed as idle (its write deadline decides instead). It errs on the busy
/// side: the flush that clears it follows the write that hands the last bytes over, so for a
/// moment after a client has its answer the connection may still count as writing it.
#[derive(Clone)]
struct Unflushed {
    activity: Activity,
    pending: Arc<std::sync::Mutex<Option<Busy>>>,
}

impl Unflushed {
    fn new(activity: Activity) -> Self {
        Unflushed {
            activity,
            pending: Default::default(),
        }
    }

    fn mark(&self) {
        let mut pending = self.pending.lock().expect("unflushed");
        if pending.is_none() {
            *pending = Some(self.activity.begin());
        }
    }
}

impl super::deadline::Output for Unflushed {
    fn waiting(&self) {
        self.mark();
    }

    fn flushed(&self) {
        let done = self.pending.lock().expect("unflushed").take();
        drop(done);
    }
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(_))) = &polled {
            self.unflushed.mark();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

impl Activity {
    fn watch(&self) -> watch::Receiver<usize> {
        self.0.subscribe()
    }

    fn begin(&self) -> Busy {
        self.0.send_modify(|n| *n += 1);
        Busy(self.clone())
    }

    /// Resolves once no request has been in progress for `limit`.
    async fn idle_for(&self, limit: Duration) {
        let mut changes = self.0.subscribe();
        loop {
            if *changes.borrow_and_update() == 0 {
                if tokio::time::timeout(limit, changes.changed())
                    .await
                    .is_err()
                {
                    return;
                }
            } else {
                // The sender lives as long as `self`: `changed` cannot fail.
                let _ = changes.changed().await;
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let peers = Arc::new(super::peers::Peers::default());
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout())
        .max_buf_size(READ_AHEAD);
    builder
        .http2()
        .timer(TokioTimer::new())
        // A connection carries no more requests at once than one key may run.
        .max_concurrent_streams(limits.max_operations_per_key.clamp(1, 64) as u32)
        .keep_alive_interval(Some(limits.header_timeout()))
        .keep_alive_timeout(limits.header_timeout());
    let write_timeout = limits.write_timeout();
    let idle_timeout = limits.header_timeout();
    let stopping = CancellationToken::new();
    let connections = TaskTracker::new();
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
        // No peer holds more than its share of the slots; when all are taken, an idle
        // kept-alive connection makes room (briefly awaited), else the new one is refused.
        let permit = if peers.admits(peer.ip(), limits.max_connections_per_peer) {
            match permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) if peers.close_an_idle_one() => {
                    tokio::time::timeout(Duration::from_secs(1), permits.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                }
                Err(_) => None,
            }
        } else {
            None
        };
        let Some(permit) = permit else {
            // Closed at once: a refusal the client sees, rather than a queue that grows.
            drop(stream);
            if refused_logged.elapsed() > Duration::from_secs(10) {
                refused_logged = tokio::time::Instant::now();
                tracing::warn!(%peer, limit = limits.max_connections, per_peer = limits.max_connections_per_peer, "connection limit reached");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        queue_little(&stream);
        let activity = Activity::default();
        let unflushed = Unflushed::new(activity.clone());
        let registered = peers.register(peer.ip(), activity.watch());
        let close = registered.close.clone();
        let held = Arc::new(Held {
            _permit: permit,
            registered,
        });
        peers.holds(&held.registered, &held);
        let slot = ConnectionSlot(held);
        let request_slot = slot.clone();
        let service = {
            let (router, activity) = (router.clone(), activity.clone());
            let unflushed = unflushed.clone();
            tower::service_fn(move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(request_slot.clone());
                let busy = activity.begin();
                let router = router.clone();
                let unflushed = unflushed.clone();
                async move {
                    // The request is in progress until its answer's body is written (or
                    // dropped): a connection streaming an answer is not idle.
                    let response = router.oneshot(request).await;
                    response.map(|r| {
                        r.map(|body| {
                            axum::body::Body::new(Tracked {
                                body,
                                unflushed,
                                _busy: busy,
                            })
                        })
                    })
                }
            })
        };
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(super::deadline::WriteDeadline::new(
                    stream,
                    write_timeout,
                    unflushed,
                )),
                TowerToHyperService::new(service),
            )
            .into_owned();
        let stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // Asked to end: requests in progress finish, then it closes (HTTP/2 says GOAWAY).
            let mut ending = false;
            loop {
                tokio::select! {
                    ended = connection.as_mut() => {
                        if let Err(e) = ended {
                            tracing::debug!(%peer, error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = stopping.cancelled(), if !ending => {
                        connection.as_mut().graceful_shutdown();
                        ending = true;
                    }
                    () = activity.idle_for(idle_timeout), if !ending => {
                        connection.as_mut().graceful_shutdown();
                        ending = true;
                    }
                    // Closed at once to admit another connection: it had no request in
                    // progress nor answer left to write when chosen (nginx closes idle
                    // kept-alive connections so).
                    () = close.cancelled() => break,
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}
