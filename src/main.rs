//! The `mapping-gateway` command line: serve, migrate, schema, keys.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use mapping_gateway::access::{self, Role};
use mapping_gateway::config::{DbConfig, LogConfig, ServeConfig};
use mapping_gateway::{server, telemetry, Error};

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
    /// Run the Geosite simulator alone (for demos, tests and benchmarks).
    Simulate(SimulateArgs),
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
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
        /// Id of the key.
        id: i64,
        #[command(flatten)]
        db: DbConfig,
    },
}

fn parse_role(text: &str) -> Result<Role, String> {
    Role::parse(text).ok_or_else(|| format!("unknown role {text:?}: use ADMIN, OPERATOR or VIEWER"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log.log_format);
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
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, not a panic trace.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(config) => server::serve(*config).await,
        Command::Migrate(db) => {
            server::open(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Schema => {
            print!("{}", mapping_gateway::graphql::sdl());
            Ok(())
        }
        Command::Keys { command } => keys(command).await,
        Command::Simulate(args) => simulate(args).await,
    }
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let config = mapping_gateway::simulator::SimConfig {
        seed: args.seed,
        boxes: args.boxes,
        username: args.username,
        password: args.password,
        token_ttl: std::time::Duration::from_secs(args.token_ttl_secs),
        ..Default::default()
    };
    let sim = mapping_gateway::simulator::spawn(config, ([127, 0, 0, 1], args.port).into()).await?;
    let s = &sim.state.summary;
    println!(
        "Geosite simulator at {} ({} boxes, {} splitters, {} ports; projects {:?})",
        sim.url, s.boxes, s.splitters, s.ports, s.projects
    );
    server::shutdown_signal().await;
    Ok(())
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, name, db } => {
            let state = server::open(&db).await?;
            let new = access::create_key(&state.db, &name, role)
                .await
                .map_err(Error::into_anyhow)?;
            println!("{}", new.secret);
            eprintln!(
                "created {} key {} ({}); it is shown only now",
                role.as_str(),
                new.key.id,
                new.key.name
            );
        }
        KeysCommand::List { db } => {
            let state = server::open(&db).await?;
            println!(
                "{:>4}  {:<9}  {:<14}  {:<8}  NAME",
                "ID", "ROLE", "PREFIX", "STATE"
            );
            for key in access::list_keys(&state.db)
                .await
                .map_err(Error::into_anyhow)?
            {
                let status = if key.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                println!(
                    "{:>4}  {:<9}  {:<14}  {:<8}  {}",
                    key.id, key.role, key.prefix, status, key.name
                );
            }
        }
        KeysCommand::Revoke { id, db } => {
            let state = server::open(&db).await?;
            let key = access::revoke_key(&state.db, id)
                .await
                .map_err(Error::into_anyhow)?;
            println!("revoked key {} ({})", key.id, key.name);
        }
    }
    Ok(())
}
