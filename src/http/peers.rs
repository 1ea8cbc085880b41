//! Who holds the connection slots: how many each peer address has (at most
//! `MAX_CONNECTIONS_PER_PEER`), and which connections are idle kept-alive ones that may be
//! closed to admit a new connection when every slot is taken (as nginx does), so that no client
//! can hold every slot by keeping idle connections open.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

use tokio_util::sync::CancellationToken;

/// One open connection, as the registry sees it.
struct Open {
    peer: IpAddr,
    /// Requests in progress on it, and output it has not yet handed to the socket.
    requests: tokio::sync::watch::Receiver<usize>,
    /// The connection's slot: held by the connection's task and its service while it serves
    /// HTTP (two references), by each request in progress, and by an upgraded socket (whose
    /// connection task has then ended). Exactly two: nothing but the connection holds it.
    slot: Weak<super::serve::Held>,
    /// Cancelled to close it.
    close: CancellationToken,
}

/// The open connections.
#[derive(Default)]
pub struct Peers {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    open: HashMap<u64, Open>,
    per_peer: HashMap<IpAddr, usize>,
}

/// A connection's place in the registry, left when dropped.
pub struct Registered {
    peers: Arc<Peers>,
    id: u64,
    peer: IpAddr,
    pub close: CancellationToken,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut inner = self.peers.inner.lock().expect("peers");
        inner.open.remove(&self.id);
        if let Some(n) = inner.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                inner.per_peer.remove(&self.peer);
            }
        }
    }
}

impl Peers {
    /// Whether `peer` may open one more connection.
    pub fn admits(&self, peer: IpAddr, max_per_peer: usize) -> bool {
        let inner = self.inner.lock().expect("peers");
        inner.per_peer.get(&peer).copied().unwrap_or(0) < max_per_peer.max(1)
    }

    /// Records an accepted connection; [`Peers::holds`] then names its slot.
    pub fn register(
        self: &Arc<Self>,
        peer: IpAddr,
        requests: tokio::sync::watch::Receiver<usize>,
    ) -> Registered {
        let close = CancellationToken::new();
        let mut inner = self.inner.lock().expect("peers");
        inner.next += 1;
        let id = inner.next;
        inner.open.insert(
            id,
            Open {
                peer,
                requests,
                slot: Weak::new(),
                close: close.clone(),
            },
        );
        *inner.per_peer.entry(peer).or_default() += 1;
        Registered {
            peers: self.clone(),
            id,
            peer,
            close,
        }
    }

    /// Names the slot a registered connection holds (it and its upgraded socket, if any).
    pub fn holds(&self, registered: &Registered, slot: &Arc<super::serve::Held>) {
        if let Some(open) = self
            .inner
            .lock()
            .expect("peers")
            .open
            .get_mut(&registered.id)
        {
            open.slot = Arc::downgrade(slot);
        }
    }

    /// Closes one idle kept-alive connection (no request in progress, no answer left to write,
    /// no upgraded socket), of the peer holding the most connections; false when there is none.
    pub fn close_an_idle_one(&self) -> bool {
        let inner = self.inner.lock().expect("peers");
        let idle = inner
            .open
            .values()
            .filter(|o| {
                !o.close.is_cancelled() && *o.requests.borrow() == 0 && o.slot.strong_count() == 2
            })
            .max_by_key(|o| inner.per_peer.get(&o.peer).copied().unwrap_or(0));
        match idle {
            Some(open) => {
                open.close.cancel();
                true
            }
            None => false,
        }
    }
}
