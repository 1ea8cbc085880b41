//! Run events routed to the subscribers that want them.
//!
//! One channel for every subscriber would wake each of them for every event of every run, to
//! throw most away: the cost of an event would grow with all the subscribers of the instance.
//! Instead each subscription takes the narrowest route its filter allows (one run, one
//! integration, or everything), and an event is sent on the three routes it belongs to. An
//! event then costs in proportion to the subscribers that want it. A route's channel is made by
//! its first subscriber and removed when its last one goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{Filter, Progress};

/// Where a subscription listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Route {
    /// Every run (no filter).
    All,
    /// The runs of one integration.
    Integration(i64),
    /// One run.
    Run(i64),
}

impl Route {
    /// The narrowest route that carries every event `filter` admits.
    fn of(filter: Filter) -> Route {
        match (filter.run_id, filter.integration_id) {
            (Some(run), _) => Route::Run(run),
            (None, Some(integration)) => Route::Integration(integration),
            (None, None) => Route::All,
        }
    }
}

type Channels = HashMap<Route, broadcast::Sender<Arc<Progress>>>;

/// The routes of one bus.
pub(super) struct Routes {
    capacity: usize,
    channels: Arc<Mutex<Channels>>,
}

impl Routes {
    /// Routes whose subscribers may each fall `capacity` events of their route behind.
    pub(super) fn new(capacity: usize) -> Self {
        Routes {
            capacity: capacity.max(1),
            channels: Arc::default(),
        }
    }

    /// Sends an event to the subscribers of its run, of its integration and of every run; never
    /// waits.
    pub(super) fn send(&self, progress: Progress) {
        let routes = [
            Route::Run(progress.run_id),
            Route::Integration(progress.integration_id),
            Route::All,
        ];
        let progress = Arc::new(progress);
        let channels = self.channels.lock().expect("routes lock");
        for route in routes {
            if let Some(sender) = channels.get(&route) {
                // A channel whose last receiver is going has none: nothing to tell.
                let _ = sender.send(progress.clone());
            }
        }
    }

    /// The events `filter` may admit, from now on. The receiver may carry events of other
    /// integrations only when the filter names a run and an integration it does not belong to.
    pub(super) fn subscribe(&self, filter: Filter) -> Subscription {
        let route = Route::of(filter);
        let mut channels = self.channels.lock().expect("routes lock");
        let receiver = channels
            .entry(route)
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe();
        Subscription {
            receiver: Some(receiver),
            route,
            channels: self.channels.clone(),
        }
    }

    /// Routes with at least one subscriber.
    pub(super) fn len(&self) -> usize {
        self.channels.lock().expect("routes lock").len()
    }
}

/// One subscriber's receiver; its route's channel goes with the route's last subscriber.
pub(super) struct Subscription {
    receiver: Option<broadcast::Receiver<Arc<Progress>>>,
    route: Route,
    channels: Arc<Mutex<Channels>>,
}

impl Subscription {
    /// The next event of the route (see `broadcast::Receiver::recv`).
    pub(super) async fn recv(&mut self) -> Result<Arc<Progress>, broadcast::error::RecvError> {
        self.receiver.as_mut().expect("live receiver").recv().await
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Under the lock, so that a subscriber joining the route now either finds the channel
        // with its receiver counted or makes a new one.
        let mut channels = self.channels.lock().expect("routes lock");
        drop(self.receiver.take());
        if channels
            .get(&self.route)
            .is_some_and(|sender| sender.receiver_count() == 0)
        {
            channels.remove(&self.route);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(run_id: i64, integration_id: i64) -> Progress {
        Progress {
            run_id,
            integration_id,
            seq: 1,
            mode: entity::sync_run::SyncMode::Full,
            status: entity::sync_run::SyncStatus::Running,
            phase: super::super::Phase::Starting,
            step: None,
            item: None,
            page: 0,
            pages: None,
            processed: 0,
            total: None,
            created: 0,
            updated: 0,
            deleted: 0,
            unchanged: 0,
            orphaned: 0,
            message: None,
            at: chrono::Utc::now(),
        }
    }

    fn filter(integration_id: Option<i64>, run_id: Option<i64>) -> Filter {
        Filter {
            integration_id,
            run_id,
        }
    }

    #[tokio::test]
    async fn an_event_reaches_its_run_its_integration_and_everyone_but_no_other() {
        let routes = Routes::new(16);
        let mut run = routes.subscribe(filter(None, Some(7)));
        let mut integration = routes.subscribe(filter(Some(1), None));
        let mut all = routes.subscribe(filter(None, None));
        let mut other_run = routes.subscribe(filter(None, Some(8)));
        let mut other_integration = routes.subscribe(filter(Some(2), None));
        routes.send(event(7, 1));
        for subscription in [&mut run, &mut integration, &mut all] {
            assert_eq!(subscription.recv().await.unwrap().run_id, 7);
        }
        for subscription in [&mut other_run, &mut other_integration] {
            assert!(matches!(
                subscription.receiver.as_mut().unwrap().try_recv(),
                Err(broadcast::error::TryRecvError::Empty)
            ));
        }
    }

    #[tokio::test]
    async fn a_route_goes_with_its_last_subscriber() {
        let routes = Routes::new(16);
        let first = routes.subscribe(filter(Some(1), None));
        let second = routes.subscribe(filter(Some(1), None));
        let run = routes.subscribe(filter(Some(1), Some(3)));
        assert_eq!(routes.len(), 2);
        drop(first);
        assert_eq!(routes.len(), 2);
        drop(second);
        drop(run);
        assert_eq!(routes.len(), 0);
        // A route made again after it went still delivers.
        let mut again = routes.subscribe(filter(Some(1), None));
        routes.send(event(3, 1));
        assert_eq!(again.recv().await.unwrap().run_id, 3);
    }
}
