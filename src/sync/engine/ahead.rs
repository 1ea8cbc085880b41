//! Fetching ahead: a listing's next pages are fetched by a task of their own while the engine
//! writes the current one, so that a run takes about the longer of fetching and writing instead
//! of their sum. At most `depth` pages wait per listing (memory stays flat whatever the
//! project's size), and every listing of a run shares one gate on the platform requests in
//! flight.

use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use crate::platform::{ListPage, Listing};
use crate::Result;

/// Aborts the fetching task when the listing is dropped (a cancelled or failed run).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `listing`, fetched up to `depth` pages ahead of its reader, each page fetch holding one
/// permit of `gate`. Pages come out in the listing's order; the first error ends it.
pub(super) fn ahead<T: Send + 'static>(
    mut listing: Listing<T>,
    depth: usize,
    gate: Arc<Semaphore>,
) -> Listing<T> {
    let (tx, rx) = mpsc::channel::<Result<ListPage<T>>>(depth.max(1));
    let task = tokio::spawn(async move {
        loop {
            // A page is only fetched once there is room for it, so at most `depth` wait.
            let Ok(room) = tx.reserve().await else {
                return;
            };
            let page = {
                let Ok(_permit) = gate.acquire().await else {
                    return;
                };
                listing.next().await
            };
            let Some(page) = page else {
                return;
            };
            let failed = page.is_err();
            room.send(page);
            if failed {
                return;
            }
        }
    });
    let guard = AbortOnDrop(task);
    Box::pin(futures::stream::unfold(
        (rx, guard),
        |(mut rx, guard)| async move {
            let page = rx.recv().await?;
            Some((page, (rx, guard)))
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counted(pages: usize, fetched: Arc<AtomicUsize>) -> Listing<usize> {
        Box::pin(futures::stream::iter(0..pages).then(move |i| {
            let fetched = fetched.clone();
            async move {
                fetched.fetch_add(1, Ordering::SeqCst);
                Ok(ListPage {
                    records: vec![i],
                    total: pages as u64,
                    clock: None,
                    unreadable: Vec::new(),
                })
            }
        }))
    }

    #[tokio::test]
    async fn pages_come_in_order_and_at_most_depth_wait() {
        let fetched = Arc::new(AtomicUsize::new(0));
        let mut listing = ahead(counted(10, fetched.clone()), 2, Arc::new(Semaphore::new(4)));
        let first = listing.next().await.unwrap().unwrap();
        assert_eq!(first.records, [0]);
        // The task fills the room it has, then waits: one page read, two waiting, and the one
        // it holds a reservation for is not fetched before there is room.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while fetched.load(Ordering::SeqCst) < 3 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("fetched ahead");
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            3,
            "at most depth pages wait"
        );
        let rest: Vec<usize> = listing
            .map(|p| p.unwrap().records[0])
            .collect::<Vec<_>>()
            .await;
        assert_eq!(rest, (1..10).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn listings_sharing_a_gate_never_exceed_its_requests_in_flight() {
        use std::time::Duration;
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let slow = |pages: usize| -> Listing<usize> {
            let (now, most) = (now.clone(), most.clone());
            Box::pin(futures::stream::iter(0..pages).then(move |i| {
                let (now, most) = (now.clone(), most.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    Ok(ListPage {
                        records: vec![i],
                        total: pages as u64,
                        clock: None,
                        unreadable: Vec::new(),
                    })
                }
            }))
        };
        let gate = Arc::new(Semaphore::new(2));
        let listings: Vec<_> = (0..4).map(|_| ahead(slow(20), 3, gate.clone())).collect();
        let read: Vec<usize> =
            futures::future::join_all(listings.into_iter().map(|l| async move { l.count().await }))
                .await;
        assert_eq!(read, [20, 20, 20, 20]);
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "two requests in flight at most, and used"
        );
    }

    #[tokio::test]
    async fn an_error_ends_the_listing_and_dropping_it_stops_the_fetching() {
        let failing: Listing<usize> = Box::pin(futures::stream::iter(vec![
            Ok(ListPage {
                records: vec![1],
                total: 2,
                clock: None,
                unreadable: Vec::new(),
            }),
            Err(crate::Error::PlatformUnavailable("down".into())),
            Ok(ListPage {
                records: vec![3],
                total: 2,
                clock: None,
                unreadable: Vec::new(),
            }),
        ]));
        let pages: Vec<_> = ahead(failing, 1, Arc::new(Semaphore::new(1)))
            .collect()
            .await;
        assert_eq!(pages.len(), 2, "nothing after the error");
        assert!(pages[1].is_err());

        let fetched = Arc::new(AtomicUsize::new(0));
        let listing = ahead(
            counted(1_000, fetched.clone()),
            1,
            Arc::new(Semaphore::new(1)),
        );
        drop(listing);
        tokio::task::yield_now().await;
        let after_drop = fetched.load(Ordering::SeqCst);
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            fetched.load(Ordering::SeqCst),
            after_drop,
            "fetching stopped"
        );
    }
}
