//! The `mapping-gateway` command line: serve, sync, integrations, migrate, schema, keys.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mapping_gateway::access::{self, Role};
use mapping_gateway::config::{DbConfig, LogConfig, ServeConfig};
use mapping_gateway::server::{self, cli};
use mapping_gateway::{telemetry, Error};

/// mimalloc rather than the system allocator: reading a 1,000-box tree spent about a third of its
/// CPU in glibc's malloc and free (docs/BENCHMARKS.md, the tree's profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// GraphQL gateway between an ISP's management system and FTTH network-mapping platforms.
#[derive(Parser)]
#[command(name = "mapping-gateway", version)]
struct Cli {
    #[command(flatten)]
    log: LogConfig,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (GraphQL, GraphiQL, WebSocket, health).
    Serve(Box<ServeConfig>),
    /// Apply pending database migrations and exit.
    Migrate(DbConfig),
    /// Print the GraphQL schema (SDL); `schema.graphql` is this output.
    Schema,
    /// Run a platform simulator alone, Geosite or OZmap (for demos, tests and benchmarks).
    Simulate(SimulateArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Run a sync now, with a progress bar, and print its counts (exit 1 when it does not
    /// succeed, 3 when another run of the integration is going).
    Sync(SyncArgs),
    /// Re-seal every stored secret with a new master key: the current one from `MASTER_KEY` (or
    /// the key file beside a SQLite database), the new one from `NEW_MASTER_KEY`.
    RotateMasterKey(RotateArgs),
    /// Look at integrations.
    Integrations {
        #[command(subcommand)]
        command: IntegrationsCommand,
    },
}

#[derive(clap::Args)]
struct RotateArgs {
    #[command(flatten)]
    db: DbConfig,
    /// The new key: base64 of 32 random bytes (`openssl rand -base64 32`).
    #[arg(long, env = "NEW_MASTER_KEY", hide_env_values = true)]
    new_master_key: String,
    /// Say what would be re-sealed, and change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
struct SyncArgs {
    /// The integration: its name, or its id (as the API shows it, or the database number).
    #[arg(long)]
    integration: String,
    /// FULL or INCREMENTAL.
    #[arg(long, default_value = "INCREMENTAL", value_parser = parse_mode)]
    mode: mapping_gateway::sync::Mode,
    /// Sync only this box (by platform fid), with its splitters and ports.
    #[arg(long)]
    element: Option<String>,
    /// Let a full sync delete more than the mass-deletion share.
    #[arg(long)]
    allow_mass_deletion: bool,
    /// Networks (CIDRs, comma-separated) a platform URL may point at although they are
    /// internal, as for `serve`.
    #[arg(long, env = "ALLOWED_PLATFORM_NETWORKS", value_delimiter = ',')]
    allowed_platform_networks: Vec<String>,
    /// Largest platform answer read, in bytes, as for `serve`.
    #[arg(long, env = "PLATFORM_MAX_BODY_BYTES", default_value_t = mapping_gateway::transport::DEFAULT_MAX_BODY_BYTES)]
    platform_max_body_bytes: usize,
    #[command(flatten)]
    db: DbConfig,
}

#[derive(Subcommand)]
enum IntegrationsCommand {
    /// One line per integration: id, gateway, state, last run, name.
    List {
        #[command(flatten)]
        db: DbConfig,
    },
}

fn parse_mode(text: &str) -> Result<mapping_gateway::sync::Mode, String> {
    match text.to_ascii_uppercase().as_str() {
        "FULL" => Ok(mapping_gateway::sync::Mode::Full),
        "INCREMENTAL" => Ok(mapping_gateway::sync::Mode::Incremental),
        _ => Err(format!(
            "unknown mode {text:?}: use FULL or INCREMENTAL (or --element FID)"
        )),
    }
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Port to listen on (loopback).
    #[arg(long, default_value_t = 9090)]
    port: u16,
    /// Seed of the generated network.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Boxes to generate.
    #[arg(long, default_value_t = 1000)]
    boxes: usize,
    /// Accepted user.
    #[arg(long, default_value = "integracao")]
    username: String,
    /// Accepted password.
    #[arg(long, default_value = "geosite")]
    password: String,
    /// Token lifetime in seconds.
    #[arg(long, default_value_t = 1800)]
    token_ttl_secs: u64,
    /// The contract it serves: `geosite` or `ozmap`.
    #[arg(long, default_value = "geosite",
          value_parser = clap::builder::PossibleValuesParser::new(["geosite", "ozmap"]))]
    platform: String,
    /// OZmap: an API key accepted besides login tokens (user `apikey` in an integration).
    #[arg(long, default_value = "")]
    api_key: String,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key and print it (shown only once).
    Create {
        /// ADMIN, OPERATOR or VIEWER.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// A name telling who or what uses the key.
        #[arg(long)]
        name: String,
        /// How long the key works, e.g. `90d` or `12h` (never expires when absent).
        #[arg(long, value_parser = mapping_gateway::config::parse_duration, conflicts_with = "expires_at")]
        expires_in: Option<std::time::Duration>,
        /// When the key stops working, RFC 3339 (e.g. `2027-06-30T00:00:00Z`).
        #[arg(long, value_parser = parse_time)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
        /// Whether the key reads customers' CPF/CNPJ and names (default: false for VIEWER,
        /// true for OPERATOR and ADMIN).
        #[arg(long)]
        personal_data: Option<bool>,
        #[command(flatten)]
        db: DbConfig,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        db: DbConfig,
    },
    /// Revoke a key by id (see `keys list`).
    Revoke {
        /// Id of the key, as `keys list` and `apiKeys` show it.
        id: String,
        #[command(flatten)]
        db: DbConfig,
    },
}

fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}), e.g. 2027-06-30T00:00:00Z"))
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: use ADMIN, OPERATOR or VIEWER"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
    mapping_gateway::memory::no_huge_pages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(run(cli.command));
    // `serve` has already waited for what it may; a task still busy (a request that ignores its
    // deadline) must not keep the process alive, as dropping the runtime would.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => code,
        Err(e) => {
            // One clear line, not a panic trace.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(config) => server::serve(*config).await?,
        Command::Migrate(db) => {
            server::migrate(&db).await?;
            println!("migrations applied");
        }
        Command::Schema => print!("{}", mapping_gateway::graphql::sdl()),
        Command::RotateMasterKey(args) => {
            cli::rotate_master_key(&args.db, &args.new_master_key, args.dry_run).await?
        }
        Command::Keys { command } => keys(command).await?,
        Command::Simulate(args) => simulate(args).await?,
        Command::Integrations {
            command: IntegrationsCommand::List { db },
        } => cli::integrations_list(&db).await?,
        Command::Sync(args) => {
            let command = cli::SyncCommand {
                integration: args.integration,
                mode: args.mode,
                element: args.element,
                allow_mass_deletion: args.allow_mass_deletion,
                allowed_platform_networks: args.allowed_platform_networks,
                platform_max_body_bytes: args.platform_max_body_bytes,
            };
            return Ok(match cli::sync(&args.db, command).await? {
                cli::SyncOutcome::Succeeded => ExitCode::SUCCESS,
                cli::SyncOutcome::Failed => ExitCode::from(1),
                cli::SyncOutcome::AlreadyRunning => ExitCode::from(3),
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let platform =
        mapping_gateway::simulator::SimPlatform::parse(&args.platform).unwrap_or_default();
    let config = mapping_gateway::simulator::SimConfig {
        platform,
        api_key: args.api_key,
        seed: args.seed,
        boxes: args.boxes,
        username: args.username,
        password: args.password,
        token_ttl: std::time::Duration::from_secs(args.token_ttl_secs),
        ..Default::default()
    };
    let sim = mapping_gateway::simulator::spawn(config, ([127, 0, 0, 1], args.port).into()).await?;
    let s = &sim.state.summary;
    let projects: Vec<String> = s
        .projects
        .iter()
        .map(|p| sim.remote_fid("projeto", *p))
        .collect();
    println!(
        "{} simulator at {} ({} boxes, {} splitters, {} ports; projects {:?})",
        platform.name(),
        sim.url,
        s.boxes,
        s.splitters,
        s.ports,
        projects
    );
    server::shutdown_signal().await;
    Ok(())
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create {
            role,
            name,
            expires_in,
            expires_at,
            personal_data,
            db,
        } => {
            let db = server::open_database(&db).await?;
            let expires_at = expires_at.or(expires_in.map(|d| {
                chrono::Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
            }));
            let spec = access::KeySpec {
                name,
                role,
                expires_at,
                personal_data,
            };
            let new = access::create(&db, &spec)
                .await
                .map_err(Error::into_anyhow)?;
            println!("{}", new.secret);
            eprintln!(
                "created {} key {} ({}, personal data {}); it is shown only now",
                role.as_str(),
                mapping_gateway::ids::api_key(new.key.id),
                new.key.name,
                if new.key.personal_data { "yes" } else { "no" }
            );
        }
        KeysCommand::List { db } => {
            let db = server::open_database(&db).await?;
            let keys = access::list_keys(&db).await.map_err(Error::into_anyhow)?;
            print!("{}", access::table(&keys, chrono::Utc::now()));
        }
        KeysCommand::Revoke { id, db } => {
            let db = server::open_database(&db).await?;
            let Some(number) = id.parse::<i64>().ok().filter(|n| *n > 0).or_else(|| {
                mapping_gateway::ids::decode_tagged(mapping_gateway::ids::API_KEY, &id)
            }) else {
                anyhow::bail!("{id:?} is not a key id (see keys list)");
            };
            let key = access::revoke_key(&db, number)
                .await
                .map_err(Error::into_anyhow)?;
            println!(
                "revoked key {} ({})",
                mapping_gateway::ids::api_key(key.id),
                key.name
            );
        }
    }
    Ok(())
}
