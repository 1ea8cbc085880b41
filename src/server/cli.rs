//! Commands that do one job against the configured database and exit: `sync` (a run with a
//! progress bar fed by the run's progress events) and `integrations list`.
//!
//! Exit codes of `sync`: 0 when the run succeeded, 1 when it ended otherwise (failed or
//! cancelled; the last good copy is intact), 3 when another run of the integration is going;
//! anything else that goes wrong (no such integration, a bad database URL) is 2, from `main`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crate::access::Actor;
use crate::config::DbConfig;
use crate::events::{Phase, Progress};
use crate::state::AppState;
use crate::sync::{Mode, RunRequest, SyncStatus, Trigger};
use crate::Error;

/// What `sync` was asked to run.
#[derive(Clone, Debug)]
pub struct SyncCommand {
    /// The integration's name or id (the API's opaque id, or the database id).
    pub integration: String,
    /// FULL or INCREMENTAL (ELEMENT with `element`).
    pub mode: Mode,
    /// The box of an element sync.
    pub element: Option<String>,
    /// Let a full sync delete more than the mass-deletion share.
    pub allow_mass_deletion: bool,
    /// Networks a platform URL may point at although they are internal.
    pub allowed_platform_networks: Vec<String>,
    /// Largest platform answer read, in bytes.
    pub platform_max_body_bytes: usize,
}

/// How a `sync` command ended.
pub enum SyncOutcome {
    /// The run succeeded.
    Succeeded,
    /// The run ended otherwise.
    Failed,
    /// Another run of the integration was going.
    AlreadyRunning,
}

/// Finds an integration by opaque id, database id or name (exact first, then ignoring case).
async fn find_integration(
    app: &AppState,
    wanted: &str,
) -> anyhow::Result<entity::integration::Model> {
    let all = crate::integrations::list(&app.db)
        .await
        .map_err(Error::into_anyhow)?;
    let by_id = super::integration_from_api_id(wanted).or_else(|| wanted.parse().ok());
    let found = by_id
        .and_then(|id| all.iter().find(|i| i.id == id))
        .or_else(|| all.iter().find(|i| i.name == wanted))
        .or_else(|| all.iter().find(|i| i.name.eq_ignore_ascii_case(wanted)));
    found.cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "no integration named or numbered {wanted:?} (`mapping-gateway integrations list` shows them)"
        )
    })
}

/// Opens the database for a sync from the command line: on PostgreSQL its progress also goes
/// to the other instances' subscribers.
async fn open_for_sync(db: &DbConfig, command: &SyncCommand) -> anyhow::Result<AppState> {
    let networks = &command.allowed_platform_networks;
    let network = crate::outbound::NetworkPolicy::with_networks(networks)?;
    let options = super::Options {
        platform: crate::transport::ClientOptions {
            network: Arc::new(network),
            max_body_bytes: command.platform_max_body_bytes,
            ..Default::default()
        },
        ..Default::default()
    };
    super::open_relaying(db, options).await
}

/// Runs a sync and follows it to its end, drawing a progress bar on a terminal (and one line
/// per listing otherwise); Ctrl-C cancels the run, which is then recorded as CANCELLED.
pub async fn sync(db: &DbConfig, command: SyncCommand) -> anyhow::Result<SyncOutcome> {
    crate::db::claim_sqlite_file(&db.database_url)?;
    let app = open_for_sync(db, &command).await?;
    let integration = find_integration(&app, &command.integration).await?;
    let mode = if command.element.is_some() {
        Mode::Element
    } else {
        command.mode
    };
    let actor = Actor::system("cli");
    let request = RunRequest {
        mode,
        trigger: Trigger::Manual,
        allow_mass_deletion: command.allow_mass_deletion,
        element_fid: command.element.clone(),
        scheduled_for: None,
    };
    let run = match crate::sync::start(&app, &actor, integration.id, request).await {
        Ok(run) => run,
        Err(Error::SyncAlreadyRunning { run_id }) => {
            eprintln!(
                "a sync of \"{}\" is already running (run {run_id}); wait for it or cancel it",
                integration.name
            );
            return Ok(SyncOutcome::AlreadyRunning);
        }
        Err(e) => return Err(e.into_anyhow()),
    };
    eprintln!(
        "{} sync of \"{}\" started (run {})",
        mode, integration.name, run.id
    );
    let bar = Arc::new(Bar::new());
    // Ctrl-C (or SIGTERM) cancels the run; it then ends as CANCELLED like any other.
    let cancel = {
        let (app, bar, run_id) = (app.clone(), bar.clone(), run.id);
        tokio::spawn(async move {
            super::shutdown_signal().await;
            bar.note("cancelling the run...");
            app.runner.cancel(run_id);
        })
    };
    let mut last: Option<Progress> = None;
    let row = crate::sync::follow_to_end(&app, run.id, |progress| {
        bar.show(progress);
        last = Some(progress.clone());
    })
    .await
    .map_err(Error::into_anyhow)?;
    cancel.abort();
    bar.finish();
    crate::events::relay::announce_run(&app.db, &row, &app.settings.sync.instance_id).await;
    let took = match (row.started_at, row.finished_at) {
        (Some(start), Some(end)) => format!(
            " in {:.1} s",
            (end - start).num_milliseconds() as f64 / 1000.0
        ),
        _ => String::new(),
    };
    println!(
        "{}{took}: {} processed, {} created, {} updated, {} deleted, {} unchanged, {} bindings orphaned, {} conflicts",
        row.status, row.processed, row.created, row.updated, row.deleted, row.unchanged, row.orphaned, row.conflicts
    );
    if let Some(message) = row
        .error_message
        .as_deref()
        .or(last.as_ref().and_then(|p| p.message.as_deref()))
    {
        if row.status != SyncStatus::Succeeded {
            println!("{message}");
        }
    }
    Ok(if row.status == SyncStatus::Succeeded {
        SyncOutcome::Succeeded
    } else {
        SyncOutcome::Failed
    })
}

/// The progress display: an `indicatif` bar on a terminal, plain lines elsewhere (one per
/// listing and phase, so a log file shows where a run was).
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    shown: std::sync::Mutex<Option<(Phase, Option<String>)>>,
}

impl Bar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg:<28} [{bar:30}] {pos}/{len} ({elapsed})",
                )
                .expect("progress template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Bar {
            bar,
            shown: std::sync::Mutex::new(None),
        }
    }

    fn show(&self, p: &Progress) {
        let what = match &p.item {
            Some(item) => format!("{} {item}", p.phase),
            None => p.phase.to_string(),
        };
        match &self.bar {
            Some(bar) => {
                bar.set_message(what);
                bar.set_length(p.total.unwrap_or(0).max(p.processed) as u64);
                bar.set_position(p.processed as u64);
            }
            None => {
                let key = (p.phase, p.item.clone());
                let mut shown = self.shown.lock().expect("bar lock");
                if shown.as_ref() != Some(&key) {
                    let pages = match p.pages {
                        Some(pages) => format!(" page {}/{pages}", p.page),
                        None => String::new(),
                    };
                    eprintln!("{what}{pages}: {} processed", p.processed);
                    *shown = Some(key);
                }
            }
        }
    }

    fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `integrations list`: one line per integration.
pub async fn integrations_list(db: &DbConfig) -> anyhow::Result<()> {
    let db = super::open_database(db).await?;
    let all = crate::integrations::list(&db)
        .await
        .map_err(Error::into_anyhow)?;
    println!(
        "{:<24}  {:>4}  {:<8}  {:<8}  {:<44}  {:<20}  NAME",
        "ID", "DB", "GATEWAY", "STATE", "LAST RUN", "LAST SUCCESS"
    );
    let ids: Vec<i64> = all.iter().map(|i| i.id).collect();
    let health = crate::store::health::of(&db, Some(&ids))
        .await
        .map_err(Error::into_anyhow)?;
    let when =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for integration in all {
        let newest = crate::store::paging::PageRequest {
            limit: 1,
            ..Default::default()
        };
        let last = crate::sync::page(&db, integration.id, newest)
            .await
            .map_err(Error::into_anyhow)?
            .items
            .into_iter()
            .next();
        let last = match last {
            Some(run) => format!(
                "{} {} {}",
                run.mode,
                run.status,
                when(run.finished_at.or(run.started_at).unwrap_or(run.created_at))
            ),
            None => "never".to_owned(),
        };
        let success = health
            .get(&integration.id)
            .and_then(|h| h.last_success_at)
            .map_or_else(|| "never".to_owned(), when);
        println!(
            "{:<24}  {:>4}  {:<8}  {:<8}  {:<44}  {:<20}  {}",
            super::integration_api_id(integration.id),
            integration.id,
            integration.gateway,
            if integration.active {
                "active"
            } else {
                "inactive"
            },
            last,
            success,
            integration.name
        );
    }
    Ok(())
}

/// `rotate-master-key`: re-seals every stored secret from the current master key (`MASTER_KEY`,
/// or the key file beside a SQLite database) to `NEW_MASTER_KEY`, in one transaction; with the
/// key file, the file then holds the new key.
pub async fn rotate_master_key(db: &DbConfig, new: &str, dry_run: bool) -> anyhow::Result<()> {
    use crate::master_key::Rotation;
    let new_key = crate::crypto::MasterKey::from_base64(new)
        .map_err(|e| anyhow::anyhow!("NEW_MASTER_KEY: {e}"))?;
    let old = super::resolve_master_key(db)?;
    let conn = crate::db::connect(&db.database_url)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the database: {e}"))?;
    crate::db::require_current(&conn).await?;
    let rotation = crate::master_key::rotate(&conn, &old, &new_key, dry_run)
        .await
        .map_err(|e| match e {
            Error::MasterKeyMismatch => anyhow::anyhow!(
                "{} does not open this database's secrets, and neither does NEW_MASTER_KEY: give \
                 the key they are stored with",
                super::master_key_source(db)
            ),
            other => other.into_anyhow(),
        })?;
    let key_file = match (&db.master_key, crate::db::sqlite_file(&db.database_url)) {
        (None, Some(path)) => Some(crate::crypto::key_file_for(&path)),
        _ => None,
    };
    match (rotation, dry_run) {
        (Rotation::AlreadyDone, _) => {
            println!("the stored secrets already open with NEW_MASTER_KEY: nothing to re-seal")
        }
        (Rotation::Resealed { passwords }, true) => println!(
            "dry run: would re-seal {passwords} platform password(s) and the master key check; \
             nothing changed"
        ),
        (Rotation::Resealed { passwords }, false) => println!(
            "re-sealed {passwords} platform password(s) and the master key check with \
             NEW_MASTER_KEY"
        ),
    }
    if dry_run {
        return Ok(());
    }
    match key_file {
        Some(path) => {
            let staged = path.with_extension("master-key.new");
            let _ = std::fs::remove_file(&staged);
            crate::crypto::write_private(&staged, new.trim())?;
            std::fs::rename(&staged, &path)?;
            println!("{} now holds the new key", path.display());
        }
        None => println!("start the gateway with MASTER_KEY set to the new key from now on"),
    }
    Ok(())
}
