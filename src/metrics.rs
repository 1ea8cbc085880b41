//! Prometheus metrics of the process, served at `/metrics` in the text format by the
//! `prometheus` crate (no hand-written exposition).
//!
//! One registry per process: every layer counts into it (HTTP, sync runs, platform calls, the
//! event bus), and nothing reads it but the exporter. Label values that a client chooses (the
//! GraphQL operation name) are bounded: at most [`MAX_OPERATION_NAMES`] distinct names are kept,
//! later ones are counted as `other`, so a client cannot grow the registry without bound.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use std::time::{Duration, Instant};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// How long the gauges read from the database (`mgw_deliveries`, `mgw_sync_last_*`) are kept
/// before a scrape reads them again.
pub const HEALTH_TTL: Duration = Duration::from_secs(5);

/// One integration's health as exported: its opaque id and what the database says.
pub struct IntegrationHealth {
    /// The integration's opaque id (the `integration` label).
    pub integration: String,
    /// When its last successful run ended; before its first, when it was created.
    pub last_success_at: chrono::DateTime<chrono::Utc>,
    /// Status of its last ended run, if any.
    pub last_status: Option<String>,
    /// When that run ended.
    pub last_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Deliveries pending (not held), held and failed.
    pub pending: i64,
    /// Held on a conflict.
    pub held: i64,
    /// Given up or refused.
    pub failed: i64,
    /// Age of the oldest pending delivery, in seconds (0 without one).
    pub oldest_pending_age: f64,
}

/// Distinct GraphQL operation names kept as label values.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Every metric of the gateway.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route, GraphQL operation name and outcome (`ok` or the first error code).
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route and operation name.
    pub http_latency: HistogramVec,
    /// Sync runs ended, by mode and status.
    pub sync_runs: IntCounterVec,
    /// Sync run duration by mode.
    pub sync_duration: HistogramVec,
    /// Records of sync runs, by what happened to them (fetched, created, updated, deleted,
    /// unchanged, orphaned).
    pub sync_records: IntCounterVec,
    /// Platform requests by endpoint, HTTP status (or `error`) and whether it was a retry.
    pub platform_requests: IntCounterVec,
    /// Platform request latency by endpoint.
    pub platform_latency: HistogramVec,
    /// Open WebSocket connections.
    pub ws_connections: Gauge,
    /// Open subscriptions.
    pub subscriptions: Gauge,
    /// Events published on the bus.
    pub events_published: IntCounter,
    /// Events lagging subscribers lost (each was told, and re-read the run).
    pub events_dropped: IntCounter,
    /// Scheduled slots skipped because they were older than the catch-up window.
    pub sync_slots_missed: IntCounterVec,
    /// When each integration's last successful run ended (from the database).
    sync_last_success: GaugeVec,
    /// 1 for the status of each integration's last ended run, 0 for the others.
    sync_last_status: IntGaugeVec,
    /// When each integration's last run ended.
    sync_last_run: GaugeVec,
    /// Deliveries by integration and status (pending, held, failed), from the database.
    deliveries: IntGaugeVec,
    /// Age of each integration's oldest pending delivery.
    delivery_oldest_pending: GaugeVec,
    /// 1 while the database answers and has no pending migration (what `/readyz` says).
    ready: IntGauge,
    /// SQLite's own heap in this process, read when scraped.
    sqlite_memory: IntGauge,
    /// When the database's gauges were last read.
    health_read: Mutex<Option<Instant>>,
    /// `process_*` metrics, without the `mgw_` prefix.
    process: Registry,
    operation_names: Mutex<HashSet<String>>,
}

/// A gauge counted up while a guard lives.
pub struct Gauge(IntGauge);

/// Counts one open thing until dropped.
pub struct GaugeGuard(IntGauge);

impl Gauge {
    /// One more, until the guard is dropped.
    pub fn guard(&self) -> GaugeGuard {
        self.0.inc();
        GaugeGuard(self.0.clone())
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.get()
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("metric")
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("metric")
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    GaugeVec::new(Opts::new(name, help), labels).expect("metric")
}

fn int_gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("metric")
}

/// The statuses `mgw_sync_last_run_status` has a series for.
const ENDED: [&str; 3] = ["SUCCEEDED", "FAILED", "CANCELLED"];

impl Metrics {
    fn new() -> Metrics {
        let latency = vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let m = Metrics {
            registry: Registry::new_custom(Some("mgw".into()), None).expect("registry"),
            http_requests: counter(
                "http_requests_total",
                "HTTP requests by route, GraphQL operation and outcome code",
                &["route", "operation", "code"],
            ),
            http_latency: histogram(
                "http_request_duration_seconds",
                "HTTP request latency by route and GraphQL operation",
                &["route", "operation"],
                latency.clone(),
            ),
            sync_runs: counter(
                "sync_runs_total",
                "Sync runs ended on this instance, by integration, mode and status",
                &["integration", "mode", "status"],
            ),
            sync_duration: histogram(
                "sync_run_duration_seconds",
                "Sync run duration by integration and mode",
                &["integration", "mode"],
                vec![
                    0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
                ],
            ),
            sync_records: counter(
                "sync_records_total",
                "Records of sync runs by integration and what happened to them",
                &["integration", "kind"],
            ),
            platform_requests: counter(
                "platform_requests_total",
                "Requests to mapping platforms by endpoint, status and retry",
                &["endpoint", "status", "retry"],
            ),
            platform_latency: histogram(
                "platform_request_duration_seconds",
                "Latency of requests to mapping platforms by endpoint",
                &["endpoint"],
                latency,
            ),
            ws_connections: Gauge(
                IntGauge::new("websocket_connections", "Open WebSocket connections")
                    .expect("metric"),
            ),
            subscriptions: Gauge(
                IntGauge::new("subscriptions", "Open GraphQL subscriptions").expect("metric"),
            ),
            events_published: IntCounter::new(
                "events_published_total",
                "Run events published on this instance's bus",
            )
            .expect("metric"),
            events_dropped: IntCounter::new(
                "events_dropped_total",
                "Run events lost by subscribers that fell behind",
            )
            .expect("metric"),
            sync_slots_missed: counter(
                "sync_slots_missed_total",
                "Scheduled syncs skipped because their slot was older than SYNC_CATCH_UP",
                &["integration"],
            ),
            sync_last_success: gauge(
                "sync_last_success_timestamp_seconds",
                "When the integration's last successful sync ended (before its first: when it \
                 was created), from the database",
                &["integration"],
            ),
            sync_last_status: int_gauge(
                "sync_last_run_status",
                "1 for the status of the integration's last ended sync, 0 for the others",
                &["integration", "status"],
            ),
            sync_last_run: gauge(
                "sync_last_run_timestamp_seconds",
                "When the integration's last sync ended, from the database",
                &["integration"],
            ),
            deliveries: int_gauge(
                "deliveries",
                "Deliveries to the platform by integration and status (pending, held, failed), \
                 from the database",
                &["integration", "status"],
            ),
            delivery_oldest_pending: gauge(
                "delivery_oldest_pending_age_seconds",
                "Age of the integration's oldest pending (not held) delivery; 0 without one",
                &["integration"],
            ),
            ready: IntGauge::new(
                "ready",
                "1 while the database answers and no migration is pending (as /readyz), else 0",
            )
            .expect("metric"),
            sqlite_memory: IntGauge::new(
                "sqlite_memory_bytes",
                "Bytes SQLite has allocated in this process (page caches and prepared statements \
                 of every connection); 0 on PostgreSQL",
            )
            .expect("metric"),
            health_read: Mutex::new(None),
            process: Registry::new(),
            operation_names: Mutex::new(HashSet::new()),
        };
        let r = &m.registry;
        r.register(Box::new(m.http_requests.clone()))
            .expect("register");
        r.register(Box::new(m.http_latency.clone()))
            .expect("register");
        r.register(Box::new(m.sync_runs.clone())).expect("register");
        r.register(Box::new(m.sync_duration.clone()))
            .expect("register");
        r.register(Box::new(m.sync_records.clone()))
            .expect("register");
        r.register(Box::new(m.platform_requests.clone()))
            .expect("register");
        r.register(Box::new(m.platform_latency.clone()))
            .expect("register");
        r.register(Box::new(m.ws_connections.0.clone()))
            .expect("register");
        r.register(Box::new(m.subscriptions.0.clone()))
            .expect("register");
        r.register(Box::new(m.events_published.clone()))
            .expect("register");
        r.register(Box::new(m.events_dropped.clone()))
            .expect("register");
        for gauge in [
            &m.sync_last_success,
            &m.sync_last_run,
            &m.delivery_oldest_pending,
        ] {
            r.register(Box::new(gauge.clone())).expect("register");
        }
        r.register(Box::new(m.sync_last_status.clone()))
            .expect("register");
        r.register(Box::new(m.deliveries.clone()))
            .expect("register");
        r.register(Box::new(m.sync_slots_missed.clone()))
            .expect("register");
        r.register(Box::new(m.ready.clone())).expect("register");
        r.register(Box::new(m.sqlite_memory.clone()))
            .expect("register");
        let build = int_gauge(
            "build_info",
            "Always 1; the version of the running binary",
            &["version"],
        );
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        r.register(Box::new(build)).expect("register");
        #[cfg(target_os = "linux")]
        m.process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        m
    }

    /// Whether the gauges read from the database are older than [`HEALTH_TTL`]; when they are,
    /// the caller is the one to read them (the next callers see them fresh).
    pub fn health_due(&self) -> bool {
        let mut read = self.health_read.lock().expect("metrics lock");
        match *read {
            Some(at) if at.elapsed() < HEALTH_TTL => false,
            _ => {
                *read = Some(Instant::now());
                true
            }
        }
    }

    /// Sets `mgw_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// Sets the gauges read from the database; integrations no longer listed disappear.
    pub fn set_health(&self, all: &[IntegrationHealth]) {
        let seconds = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1000.0;
        self.sync_last_success.reset();
        self.sync_last_status.reset();
        self.sync_last_run.reset();
        self.deliveries.reset();
        self.delivery_oldest_pending.reset();
        for h in all {
            let i = h.integration.as_str();
            self.sync_last_success
                .with_label_values(&[i])
                .set(seconds(h.last_success_at));
            if let (Some(status), Some(at)) = (&h.last_status, h.last_run_at) {
                for each in ENDED {
                    self.sync_last_status
                        .with_label_values(&[i, each])
                        .set(i64::from(each == status));
                }
                self.sync_last_run.with_label_values(&[i]).set(seconds(at));
            }
            for (status, n) in [
                ("pending", h.pending),
                ("held", h.held),
                ("failed", h.failed),
            ] {
                self.deliveries.with_label_values(&[i, status]).set(n);
            }
            self.delivery_oldest_pending
                .with_label_values(&[i])
                .set(h.oldest_pending_age);
        }
    }

    /// The label value for a client's operation name: the name while fewer than
    /// [`MAX_OPERATION_NAMES`] are known (and it is a plain GraphQL name), `other` after,
    /// `anonymous` without one.
    pub fn operation_label(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".into();
        };
        let plain = name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !plain {
            return "other".into();
        }
        let mut known = self.operation_names.lock().expect("metrics lock");
        if known.contains(name) || known.len() < MAX_OPERATION_NAMES {
            known.insert(name.to_owned());
            name.to_owned()
        } else {
            "other".into()
        }
    }

    /// Counts a finished run and its records.
    pub fn record_run(&self, row: &entity::sync_run::Model, seconds: f64) {
        let mode = row.mode.to_string();
        let integration = crate::ids::integration(row.integration_id);
        let integration = integration.as_str();
        self.sync_runs
            .with_label_values(&[integration, mode.as_str(), &row.status.to_string()])
            .inc();
        self.sync_duration
            .with_label_values(&[integration, mode.as_str()])
            .observe(seconds);
        for (kind, n) in [
            ("fetched", row.fetched),
            ("created", row.created),
            ("updated", row.updated),
            ("deleted", row.deleted),
            ("unchanged", row.unchanged),
            ("orphaned", row.orphaned),
            ("conflicts", row.conflicts),
        ] {
            self.sync_records
                .with_label_values(&[integration, kind])
                .inc_by(n.max(0) as u64);
        }
    }

    /// Counts one platform request.
    pub fn record_platform(&self, endpoint: &str, status: Option<u16>, retry: bool, seconds: f64) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.platform_requests
            .with_label_values(&[
                endpoint,
                status.as_str(),
                if retry { "true" } else { "false" },
            ])
            .inc();
        self.platform_latency
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// The exposition, in Prometheus' text format.
    pub fn render(&self) -> String {
        // SAFETY: reads SQLite's global counter, which any thread may read at any time.
        self.sqlite_memory
            .set(unsafe { rusqlite::ffi::sqlite3_memory_used() });
        let mut out = Vec::new();
        let mut families = self.registry.gather();
        families.extend(self.process.gather());
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding of gathered metrics");
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_names_are_bounded() {
        let m = Metrics::new();
        assert_eq!(m.operation_label(None), "anonymous");
        assert_eq!(m.operation_label(Some("Tree")), "Tree");
        assert_eq!(m.operation_label(Some("a b")), "other");
        for i in 0..MAX_OPERATION_NAMES * 2 {
            m.operation_label(Some(&format!("op{i}")));
        }
        assert_eq!(m.operation_label(Some("late")), "other");
        assert_eq!(m.operation_label(Some("Tree")), "Tree");
        assert!(m.render().contains("mgw_events_dropped_total 0"));
    }
}
