//! The gateway binary as a process: its output lines, SIGTERM, its exit.

/// A gateway (or simulator) process of the binary whose stdout lines arrive on a channel;
/// killed on drop.
pub struct Process {
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    /// Its stderr lines so far (the log), read as they come.
    errors: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts the binary with these arguments and environment (and no inherited MASTER_KEY or
    /// ADMIN_API_KEY).
    pub fn start(args: &[&str], env: &[(&str, String)]) -> Process {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"));
        cmd.args(args)
            .env_remove("MASTER_KEY")
            .env_remove("ADMIN_API_KEY")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let errors = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr_reader = {
            let errors = errors.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    errors.lock().unwrap().push(line);
                }
            })
        };
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process {
            child,
            lines,
            errors,
            stderr_reader: Some(stderr_reader),
        }
    }

    /// Its stderr (log) lines so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.errors.lock().unwrap().clone()
    }

    /// Waits (60 s at most) for a log line that `matches`; returns it.
    pub async fn log_line(&self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            loop {
                if let Some(line) = self.log_lines().into_iter().find(|l| matches(l)) {
                    return line;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no log line {what} within 60 s: {:#?}", self.log_lines()))
    }

    /// Lines up to and including the first that contains `marker` (60 s at most).
    pub fn until(&self, marker: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no {marker:?} in the output: {seen:?}"));
            let done = line.contains(marker);
            seen.push(line);
            if done {
                return seen;
            }
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Waits (`limit` at most) for the process to exit; returns its status and stderr.
    pub async fn exited(
        &mut self,
        limit: std::time::Duration,
    ) -> (std::process::ExitStatus, String) {
        let status = tokio::time::timeout(limit, async {
            loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the process exits in time");
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let mut stderr = self.log_lines().join("\n");
        if !stderr.is_empty() {
            stderr.push('\n');
        }
        (status, stderr)
    }
}

/// The last word of the first line containing `marker`.
pub fn last_word(lines: &[String], marker: &str) -> String {
    lines
        .iter()
        .find(|l| l.contains(marker))
        .and_then(|l| l.split_whitespace().last())
        .unwrap()
        .to_owned()
}

/// Runs the binary to its end with this database; returns its output.
pub fn run_gateway(args: &[&str], db: &mapping_gateway::config::DbConfig) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"));
    cmd.args(args).env("DATABASE_URL", &db.database_url);
    match &db.master_key {
        Some(key) => cmd.env("MASTER_KEY", key),
        None => cmd.env_remove("MASTER_KEY"),
    };
    cmd.output().unwrap()
}

/// Runs an operation on a gateway at `base` (`http://host:port`) with `key`, expecting success;
/// returns `data`.
pub async fn graphql_at(
    base: &str,
    key: &str,
    query: &str,
    variables: serde_json::Value,
) -> serde_json::Value {
    let body = post_at(base, key, query, variables).await;
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// Runs an operation on a gateway at `base` with `key`; returns the whole answer.
pub async fn post_at(
    base: &str,
    key: &str,
    query: &str,
    variables: serde_json::Value,
) -> serde_json::Value {
    reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("a JSON answer")
}

/// `serve` on `db` with `admin` as its ADMIN_API_KEY, on a free loopback port, no scheduler,
/// loopback platforms admitted, plus `extra` settings; returns the process and its base URL
/// (`http://host:port`) once it listens.
pub fn serve_on(
    db: &mapping_gateway::config::DbConfig,
    admin: &str,
    extra: &[(&str, String)],
) -> (Process, String) {
    let mut env = vec![
        ("DATABASE_URL", db.database_url.clone()),
        ("ADMIN_API_KEY", admin.to_owned()),
        ("LISTEN", "127.0.0.1:0".into()),
        ("SCHEDULER", "false".into()),
        ("ALLOWED_PLATFORM_NETWORKS", "127.0.0.0/8".into()),
    ];
    if let Some(key) = &db.master_key {
        env.push(("MASTER_KEY", key.clone()));
    }
    env.extend(extra.iter().cloned());
    let process = Process::start(&["serve"], &env);
    let base = last_word(&process.until("GraphiQL:"), "GraphiQL:")
        .trim_end_matches("/graphql")
        .to_owned();
    (process, base)
}

/// What the tests of several served gateways on one PostgreSQL database start from: a fresh
/// database, a simulator of `boxes` boxes, and the ADMIN_API_KEY to serve them with. `None` when
/// PostgreSQL is not configured (outside CI).
pub async fn shared_postgres(
    boxes: usize,
    seed: u64,
) -> Option<(
    mapping_gateway::config::DbConfig,
    mapping_gateway::simulator::RunningSimulator,
    String,
)> {
    shared_postgres_on(Default::default(), boxes, seed).await
}

/// As [`shared_postgres`], the simulator playing `platform`.
pub async fn shared_postgres_on(
    platform: mapping_gateway::simulator::SimPlatform,
    boxes: usize,
    seed: u64,
) -> Option<(
    mapping_gateway::config::DbConfig,
    mapping_gateway::simulator::RunningSimulator,
    String,
)> {
    let db = super::fresh_database(super::Engine::Postgres).await?;
    let sim = super::simulator(mapping_gateway::simulator::SimConfig {
        platform,
        boxes,
        seed,
        ..Default::default()
    })
    .await;
    let admin = format!("mgw_{}", mapping_gateway::crypto::random_hex(16));
    Some((db, sim, admin))
}

/// Creates an integration on a served gateway, over its API, linked to the simulator's first
/// project; returns its id.
pub async fn link_over_http(
    base: &str,
    admin: &str,
    sim: &mapping_gateway::simulator::RunningSimulator,
) -> String {
    let id = graphql_at(
        base,
        admin,
        "mutation($input: CreateIntegrationInput!) { createIntegration(input: $input) { id } }",
        serde_json::json!({ "input": { "name": "Provedor", "gateway": sim.platform.gateway(), "apiUrl": sim.url, "username": "integracao", "password": "geosite" } }),
    )
    .await["createIntegration"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    graphql_at(
        base,
        admin,
        "mutation($i: ID!, $r: String!) { setProject(integrationId: $i, input: { remoteId: $r }) { id } }",
        serde_json::json!({ "i": id, "r": sim.remote_fid("projeto", sim.state.summary.projects[0]) }),
    )
    .await;
    id
}
