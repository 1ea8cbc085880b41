//! A connection whose writes have a deadline: a client that stops reading makes the socket's
//! send buffer fill and every write wait; once one has waited `WRITE_TIMEOUT_SECS`, the
//! connection fails with `TimedOut` and hyper closes it (and frees its slot), whatever protocol
//! runs on it: HTTP/1 with pipelined requests, HTTP/2, or a WebSocket after the upgrade.
//! Meanwhile the connection is told that it has output waiting, and when that output has all
//! been handed to the socket, so that a connection still writing is not taken for idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What a connection is told of its output.
pub trait Output {
    /// A write cannot proceed: the client has not read what came before.
    fn waiting(&self);
    /// Everything written so far has been handed to the socket (a flush succeeded).
    fn flushed(&self);
}

/// `inner` with a deadline on each write that cannot proceed.
pub struct WriteDeadline<S, O> {
    inner: S,
    limit: Duration,
    /// Armed when a write first waits; cleared by any progress.
    waiting: Option<Pin<Box<Sleep>>>,
    output: O,
}

impl<S, O: Output> WriteDeadline<S, O> {
    pub fn new(inner: S, limit: Duration, output: O) -> Self {
        WriteDeadline {
            inner,
            limit,
            waiting: None,
            output,
        }
    }

    /// Passes on a write's outcome; a write still waiting once the deadline has passed fails.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.waiting = None;
            return polled;
        }
        self.output.waiting();
        let limit = self.limit;
        let timer = self
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read for WRITE_TIMEOUT_SECS",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin, O: Output + Unpin> AsyncRead for WriteDeadline<S, O> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin, O: Output + Unpin> AsyncWrite for WriteDeadline<S, O> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = polled {
            self.output.flushed();
        }
        self.watch(cx, polled)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}
