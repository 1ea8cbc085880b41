//! Typed configuration, from flags and environment variables (flags win).

use std::net::SocketAddr;
use std::time::Duration;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Settings shared by every command that opens the database.
#[derive(Clone, Debug, clap::Args)]
pub struct DbConfig {
    /// Database URL: `sqlite://FILE` (created if missing), `sqlite::memory:` or
    /// `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://mapping-gateway.db"
    )]
    pub database_url: String,

    /// Base64 of 32 random bytes; encrypts platform passwords at rest. Required with PostgreSQL.
    /// With a SQLite file and no key, one is generated into `<database>.master-key` (mode 0600).
    #[arg(long, env = "MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
}

/// Limits applied to every GraphQL operation and connection. The `Default` impl holds the
/// documented defaults; the flags read theirs from it.
#[derive(Clone, Debug, clap::Args)]
pub struct Limits {
    /// Deepest selection nesting an operation may have.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = Limits::default().max_depth)]
    pub max_depth: usize,

    /// Highest cost an operation may have: every field counts one, a connection counts its
    /// selection `first` times, a box's splitters 4 times and a splitter's ports 16 times.
    /// Every answer reports its cost in `extensions.cost`.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = Limits::default().max_complexity)]
    pub max_complexity: usize,

    /// Largest request body and WebSocket message, in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = Limits::default().max_body_bytes)]
    pub max_body_bytes: usize,

    /// Most selections (fields, fragments, spreads) an operation may have with its fragments
    /// expanded; measured before validation.
    #[arg(long, env = "MAX_QUERY_NODES", default_value_t = Limits::default().max_nodes)]
    pub max_nodes: u64,

    /// Seconds a client has to send a request's headers (also how long a kept-alive connection
    /// may sit idle between requests).
    #[arg(long, env = "HEADER_TIMEOUT_SECS", default_value_t = Limits::default().header_timeout_secs)]
    pub header_timeout_secs: u64,

    /// Seconds a client has to send a request's body.
    #[arg(long, env = "BODY_TIMEOUT_SECS", default_value_t = Limits::default().body_timeout_secs)]
    pub body_timeout_secs: u64,

    /// Seconds a GraphQL operation may run before it is answered with a timeout. Above the
    /// platform client's own 90 s budget, so `testIntegration` reports a slow platform itself.
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = Limits::default().request_timeout_secs)]
    pub request_timeout_secs: u64,

    /// Seconds a WebSocket has to send `connection_init` before it is closed with 4408.
    #[arg(long, env = "WS_INIT_TIMEOUT_SECS", default_value_t = Limits::default().ws_init_timeout_secs)]
    pub ws_init_timeout_secs: u64,

    /// Seconds between keep-alive pings on an open WebSocket (a WebSocket ping frame and the
    /// protocol's own keep-alive message).
    #[arg(long, env = "WS_KEEPALIVE_SECS", default_value_t = Limits::default().ws_keepalive_secs)]
    pub ws_keepalive_secs: u64,

    /// Seconds a response or WebSocket message may wait to be written to a client that does not
    /// read before its connection is closed.
    #[arg(long, env = "WRITE_TIMEOUT_SECS", default_value_t = Limits::default().write_timeout_secs)]
    pub write_timeout_secs: u64,

    /// Most operations (subscriptions and queries) live at once on one WebSocket; more are
    /// refused with an `error` message for their id.
    #[arg(long, env = "MAX_OPERATIONS_PER_SOCKET", default_value_t = Limits::default().max_operations_per_socket)]
    pub max_operations_per_socket: usize,

    /// Most operations live at once over all the WebSockets of one API key (on this
    /// instance); more are refused with an `error` message for their id.
    #[arg(long, env = "MAX_SUBSCRIPTIONS_PER_KEY", default_value_t = Limits::default().max_subscriptions_per_key)]
    pub max_subscriptions_per_key: usize,

    /// Most connections (HTTP and WebSocket) open at once; more are closed on arrival.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = Limits::default().max_connections)]
    pub max_connections: usize,

    /// Most of those one peer address may hold; more from it are closed on arrival.
    #[arg(long, env = "MAX_CONNECTIONS_PER_PEER", default_value_t = Limits::default().max_connections_per_peer)]
    pub max_connections_per_peer: usize,

    /// Most operations one HTTP request may carry as a JSON array (a batch); each is held to
    /// every other limit on its own, and they run one after the other.
    #[arg(long, env = "MAX_BATCH", default_value_t = Limits::default().max_batch)]
    pub max_batch: usize,

    /// Most operations running at once over all requests and sockets (each operation of a batch
    /// counts); more wait 2 s, then get 503 with `Retry-After`.
    #[arg(long, env = "MAX_OPERATIONS_IN_FLIGHT", default_value_t = Limits::default().max_operations_in_flight)]
    pub max_operations_in_flight: usize,

    /// Most of those one API key may have running at once; more wait 2 s, then get 429.
    #[arg(long, env = "MAX_OPERATIONS_PER_KEY", default_value_t = Limits::default().max_operations_per_key)]
    pub max_operations_per_key: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 15,
            // A unit is about 0.25 to 0.45 µs of work (docs/BENCHMARKS.md, "Cost of database
            // work"): one page at the 500-box cap with every field of the tree costs 416,101 and
            // answers in about 100 ms, so it is admitted; two such pages aliased, 100 searches
            // by name or 500 wide freePorts searches are refused.
            max_complexity: 500_000,
            max_body_bytes: 256 * 1024,
            max_nodes: 1_000,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            request_timeout_secs: 120,
            ws_init_timeout_secs: 10,
            ws_keepalive_secs: 15,
            write_timeout_secs: 30,
            max_operations_per_socket: 100,
            max_subscriptions_per_key: 1_000,
            max_connections: 1024,
            max_connections_per_peer: 256,
            max_batch: 10,
            // The heaviest admitted page (`cost::EVERY_FIELD_PAGE` at 500 boxes) holds about
            // 7.6 MB while it runs and until its answer is written: 32 of them stay under the
            // memory budget of docs/SECURITY.md.
            max_operations_in_flight: 32,
            max_operations_per_key: 16,
        }
    }
}

impl Limits {
    /// Time to send a request's headers, or to start the next one on a kept-alive connection.
    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs)
    }
    /// Time to send a request's body.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs)
    }
    /// Time an operation may run.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }
    /// Time a WebSocket has to authenticate.
    pub fn ws_init_timeout(&self) -> Duration {
        Duration::from_secs(self.ws_init_timeout_secs)
    }
    /// Time between keep-alive pings on a WebSocket (at least a second).
    pub fn ws_keepalive(&self) -> Duration {
        Duration::from_secs(self.ws_keepalive_secs.max(1))
    }
    /// Time a write to a client may wait (the connection closes after it).
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs.max(1))
    }
    /// What one WebSocket may take.
    pub fn ws(&self) -> WsLimits {
        WsLimits {
            init_timeout: Duration::from_secs(self.ws_init_timeout_secs),
            keepalive: self.ws_keepalive(),
            write_timeout: self.write_timeout(),
            max_operations: self.max_operations_per_socket.max(1),
            max_subscriptions_per_key: self.max_subscriptions_per_key.max(1),
        }
    }
}

/// What one WebSocket may take (from [`Limits`]).
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    /// Time to send `connection_init` (4408 after it).
    pub init_timeout: Duration,
    /// Time between keep-alive pings.
    pub keepalive: Duration,
    /// Time a message may wait to be written (the socket closes after it).
    pub write_timeout: Duration,
    /// Operations live at once.
    pub max_operations: usize,
    /// Operations live at once over all the sockets of one key.
    pub max_subscriptions_per_key: usize,
}

/// Settings of `mapping-gateway serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbConfig,

    #[command(flatten)]
    pub limits: Limits,

    /// Address the HTTP server listens on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: SocketAddr,

    /// Secret of an ADMIN key that is ensured (created or re-enabled) at start.
    #[arg(long, env = "ADMIN_API_KEY", hide_env_values = true)]
    pub admin_api_key: Option<String>,

    /// Demo mode: also start a platform simulator (Geosite, or OZmap with `--demo-platform`) in-process with a generated network and a
    /// "Demo" integration pointing at it, and print a fresh ADMIN key.
    #[arg(long, env = "DEMO")]
    pub demo: bool,

    /// File that keeps the demo's ADMIN key across restarts (mode 0600); by default
    /// `<database>.demo-key` beside a SQLite file. Without one, each start makes a new key.
    #[arg(long, env = "DEMO_KEY_FILE")]
    pub demo_key_file: Option<std::path::PathBuf>,

    /// Boxes of the demo network.
    #[arg(long, env = "DEMO_BOXES", default_value_t = 300)]
    pub demo_boxes: usize,

    /// The platform the demo's simulator plays: `geosite` or `ozmap`.
    #[arg(long, env = "DEMO_PLATFORM", default_value = "geosite",
          value_parser = clap::builder::PossibleValuesParser::new(["geosite", "ozmap"]))]
    pub demo_platform: String,

    #[command(flatten)]
    pub sync: SyncConfig,

    /// Seconds a shutdown waits for requests and syncs in flight before the process exits
    /// anyway; syncs still running are recorded as CANCELLED.
    #[arg(long, env = "SHUTDOWN_TIMEOUT_SECS", default_value_t = 20)]
    pub shutdown_timeout_secs: u64,

    /// Seconds a claimed delivery is its instance's without renewal (renewed while in flight):
    /// a dead instance's deliveries resume this soon.
    #[arg(long, env = "DELIVERY_LEASE_SECS", default_value_t = crate::bindings::outbox::DEFAULT_LEASE.as_secs())]
    pub delivery_lease_secs: u64,

    /// Hours after its first attempt that a delivery still failing (platform down, rate
    /// limited) is given up as FAILED; refusals by the platform fail at once.
    #[arg(long, env = "DELIVERY_GIVE_UP_HOURS", default_value_t = 24.0)]
    pub delivery_give_up_hours: f64,

    /// Seconds this instance's clock is set ahead of the system's (behind when negative), for
    /// tests of instances whose clocks disagree; leases and due times never depend on it.
    #[arg(
        long,
        env = "CLOCK_OFFSET_SECS",
        default_value_t = 0,
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_offset_secs: i64,

    /// Networks (CIDRs, comma-separated) a platform URL may point at although they are
    /// loopback, private, link-local or otherwise internal, e.g. `10.20.0.0/16` for an
    /// on-premises Geosite.
    #[arg(long, env = "ALLOWED_PLATFORM_NETWORKS", value_delimiter = ',')]
    pub allowed_platform_networks: Vec<String>,

    /// Largest platform answer read, in bytes; a longer one fails the call.
    #[arg(long, env = "PLATFORM_MAX_BODY_BYTES", default_value_t = crate::transport::DEFAULT_MAX_BODY_BYTES)]
    pub platform_max_body_bytes: usize,

    /// Apply pending migrations at start. Set to false for a rolling upgrade: run
    /// `mapping-gateway migrate` once, then start the instances, which refuse a database with
    /// pending migrations instead of changing it under the others.
    #[arg(long, env = "MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,

    /// One log line per HTTP request and WebSocket operation (method, path, status, duration,
    /// key id, operation name; never variables), at INFO under `mapping_gateway::access`.
    #[arg(long, env = "ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Serve GraphiQL on `GET /graphql`.
    #[arg(long, env = "GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,

    /// Path prefix the gateway is reached under behind a reverse proxy that forwards the path
    /// as it is (e.g. `/gateway`: GraphiQL at `/gateway/graphql`); every route moves below it.
    /// Leave it empty when the proxy strips the prefix.
    #[arg(long, env = "BASE_PATH", default_value = "", value_parser = parse_base_path)]
    pub base_path: String,

    /// Bearer token that `/metrics` asks for; without one it is open (bind it to a private
    /// address, or set this).
    #[arg(long, env = "METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    /// Origins (scheme://host[:port], comma-separated) whose browser pages may call the API;
    /// `*` lets any origin call it (requests carry the key in `Authorization`, never cookies).
    /// None by default: only pages of the gateway's own origin.
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_allowed_origins: Vec<String>,
}

/// A duration written as a number and a unit: `90s`, `30m`, `1h`, `2d` (a bare number is
/// seconds).
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let seconds = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => 0,
    };
    match number.parse::<u64>() {
        Ok(n) if seconds > 0 && !number.is_empty() => n
            .checked_mul(seconds)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{value:?} is too long")),
        _ => Err(format!(
            "{value:?} is not a duration: write a number and s, m, h or d, e.g. 1h or 90m"
        )),
    }
}

/// `LISTEN`: an IP address and a port; `localhost:PORT` is read as `127.0.0.1:PORT`.
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    let value = value.trim();
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    if let Some(port) = value.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    Err(format!(
        "LISTEN (--listen) is an IP address and a port, e.g. 127.0.0.1:8080 (this machine only) or \
         0.0.0.0:8080 (every interface); got {value:?}"
    ))
}

/// One entry of `CORS_ALLOWED_ORIGINS`: `*`, or an origin as browsers send it
/// (`scheme://host[:port]`, no path, no trailing slash).
pub fn parse_origin(value: &str) -> Result<String, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(value.to_owned());
    }
    let url = url::Url::parse(value).map_err(|e| format!("{value:?} is not an origin: {e}"))?;
    let origin = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") || origin != value.trim_end_matches('/') {
        return Err(format!(
            "{value:?} is not an origin: write scheme://host[:port], e.g. https://app.example.com"
        ));
    }
    Ok(origin)
}

/// Logging settings, common to every command.
#[derive(Clone, Debug, clap::Args)]
pub struct LogConfig {
    /// Log line format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,
}

/// Sync settings of `serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct SyncConfig {
    /// Cron (5 fields) of the daily sync of new integrations.
    #[arg(long = "sync-cron", env = "SYNC_CRON", default_value = crate::schedule::DEFAULT_CRON)]
    pub cron: String,

    /// IANA time zone the schedule is read in (weekend FULL runs follow it too).
    #[arg(
        long = "sync-timezone",
        env = "SYNC_TIMEZONE",
        default_value = crate::schedule::DEFAULT_TIMEZONE
    )]
    pub timezone: String,

    /// Seconds subtracted from the cursor to absorb clock skew.
    #[arg(long, env = "SYNC_OVERLAP_SECS", default_value_t = crate::sync::settings::DEFAULT_OVERLAP.as_secs())]
    pub overlap_secs: u64,

    /// A full sync that would delete more than this share of the project's records stops.
    #[arg(long, env = "MASS_DELETION_SHARE", default_value_t = crate::sync::settings::DEFAULT_MASS_DELETION_SHARE)]
    pub mass_deletion_share: f64,

    /// Platform requests a sync may have in flight (its listings are fetched concurrently).
    #[arg(long, env = "SYNC_REQUESTS_IN_FLIGHT", default_value_t = crate::sync::settings::DEFAULT_REQUESTS_IN_FLIGHT)]
    pub requests_in_flight: usize,

    /// Longest a sync run may take, in seconds; past it the run ends FAILED.
    #[arg(long, env = "SYNC_TIME_BUDGET_SECS", default_value_t = crate::sync::settings::DEFAULT_TIME_BUDGET.as_secs())]
    pub time_budget_secs: u64,

    /// How late a scheduled sync may still start (after a restart, or for an integration
    /// created just after its slot): `1h`, `30m`, `90s`, `2d`; at least a minute. A slot older
    /// than this is skipped, logged at WARN and counted in `mgw_sync_slots_missed_total`.
    #[arg(long = "sync-catch-up", env = "SYNC_CATCH_UP", default_value = "1h", value_parser = parse_duration)]
    pub catch_up: Duration,

    /// Run the scheduler in this instance.
    #[arg(long, env = "SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    pub scheduler: bool,
}

/// `BASE_PATH`: empty, or `/` followed by segments of letters, digits, `-`, `_`, `.` and `~`
/// (so that it is safe in the GraphiQL page as it is); a trailing `/` is dropped.
pub fn parse_base_path(value: &str) -> Result<String, String> {
    let trimmed = value.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let valid = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'))
        });
    if valid {
        Ok(trimmed.to_owned())
    } else {
        Err(format!(
            "{value:?} is not a path prefix: use `/name` or `/a/b` (letters, digits, - _ . ~)"
        ))
    }
}

#[cfg(test)]
mod base_path_tests {
    use super::{parse_base_path, parse_duration, parse_listen};

    #[test]
    fn durations_and_listen_addresses() {
        assert_eq!(parse_duration("1h").unwrap().as_secs(), 3600);
        assert_eq!(parse_duration("90m").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("45").unwrap().as_secs(), 45);
        assert_eq!(parse_duration("2d").unwrap().as_secs(), 172_800);
        for bad in ["", "h", "1w", "-1h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_listen("localhost:9000").unwrap().port(), 9000);
        assert_eq!(parse_listen("[::1]:80").unwrap().port(), 80);
        let refused = parse_listen("example.com:80").unwrap_err();
        assert!(refused.contains("LISTEN") && refused.contains("127.0.0.1:8080"));
    }

    #[test]
    fn base_paths() {
        assert_eq!(parse_base_path("").unwrap(), "");
        assert_eq!(parse_base_path("/").unwrap(), "");
        assert_eq!(parse_base_path("/gw/").unwrap(), "/gw");
        assert_eq!(parse_base_path("/isp/gateway-1").unwrap(), "/isp/gateway-1");
        for bad in ["gw", "/a//b", "/a/../b", "/a b", "/<script>", "/\"x"] {
            assert!(parse_base_path(bad).is_err(), "{bad}");
        }
    }
}
