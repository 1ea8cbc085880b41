//! Demo mode (`serve --demo`): the Geosite simulator in-process with a generated network, an
//! integration named "Demo" pointed at it (idempotently, across restarts), one full sync of its
//! project on the first start, and an ADMIN key that stays the same across restarts of the same
//! database (kept in a 0600 file beside it, like the master key), so that a key pasted into
//! GraphiQL keeps working.

use std::path::PathBuf;

use crate::access;
use crate::config::DbConfig;
use crate::gateways::GatewayKind;
use crate::simulator::SimPlatform;
use crate::state::AppState;

/// Name of the integration demo mode keeps pointed at its simulator: "Demo" on Geosite, "Demo
/// OZmap" on OZmap (an integration keeps its platform).
pub fn demo_integration(platform: SimPlatform) -> String {
    match platform {
        SimPlatform::Geosite => "Demo".into(),
        p => format!("Demo {}", p.name()),
    }
}
const DEMO_KEY_NAME: &str = "demo admin";

/// Credentials of the demo simulator.
fn demo_simulator_config(boxes: usize, platform: SimPlatform) -> crate::simulator::SimConfig {
    crate::simulator::SimConfig {
        platform,
        seed: 7,
        boxes,
        ..Default::default()
    }
}

/// Starts the in-process simulator of demo mode on a free loopback port.
pub async fn spawn_simulator(
    boxes: usize,
    platform: SimPlatform,
) -> anyhow::Result<crate::simulator::RunningSimulator> {
    let config = demo_simulator_config(boxes, platform);
    Ok(crate::simulator::spawn(config, ([127, 0, 0, 1], 0).into()).await?)
}

/// Points the "Demo" integration at the simulator (creating it the first time); returns it.
async fn link(
    state: &AppState,
    sim: &crate::simulator::RunningSimulator,
) -> anyhow::Result<entity::integration::Model> {
    use crate::integrations::{self, IntegrationChanges, NewIntegration};
    let defaults = crate::simulator::SimConfig::default();
    let (username, password) = (defaults.username, defaults.password);
    let actor = access::Actor::system("demo");
    let existing = integrations::list(&state.db)
        .await
        .map_err(crate::Error::into_anyhow)?
        .into_iter()
        .find(|i| i.name == demo_integration(sim.platform));
    let result = match existing {
        Some(row) => {
            integrations::set_active(&state.db, &actor, row.id, true)
                .await
                .map_err(crate::Error::into_anyhow)?;
            integrations::update(
                &state.db,
                &state.master,
                &state.settings.network,
                &actor,
                row.id,
                IntegrationChanges {
                    api_url: Some(sim.url.clone()),
                    username: Some(username),
                    password: Some(password),
                    name: None,
                    allow_insecure: true,
                    schedule: None,
                },
            )
            .await
        }
        None => {
            integrations::create(
                &state.db,
                &state.master,
                &state.settings.network,
                &actor,
                NewIntegration {
                    name: demo_integration(sim.platform),
                    gateway: GatewayKind::parse(sim.platform.gateway())
                        .unwrap_or(GatewayKind::Geosite),
                    api_url: sim.url.clone(),
                    username,
                    password,
                },
                (
                    &state.settings.sync.default_cron,
                    &state.settings.sync.default_timezone,
                ),
            )
            .await
        }
    };
    result.map_err(crate::Error::into_anyhow)
}

/// Where the demo key is kept: `DEMO_KEY_FILE`, else beside a SQLite database file
/// (`<database>.demo-key`); with neither, each start makes a new key.
fn key_file(db: &DbConfig, configured: Option<&PathBuf>) -> Option<PathBuf> {
    configured.cloned().or_else(|| {
        crate::db::sqlite_file(&db.database_url).map(|path| {
            let mut name = path.into_os_string();
            name.push(".demo-key");
            PathBuf::from(name)
        })
    })
}

/// The demo's ADMIN key: the one in the key file while it is active, else a new one (written
/// to the file, 0600). Earlier demo keys are revoked when a new one is made.
async fn demo_key(state: &AppState, file: Option<&PathBuf>) -> anyhow::Result<String> {
    if let Some(path) = file {
        crate::crypto::narrow_private(path)?;
        if let Ok(text) = std::fs::read_to_string(path) {
            let secret = text.trim();
            if !secret.is_empty()
                && access::keep_secret(&state.db, DEMO_KEY_NAME, access::Role::Admin, secret)
                    .await
                    .map_err(crate::Error::into_anyhow)?
            {
                return Ok(secret.to_owned());
            }
        }
    }
    for key in access::list_keys(&state.db)
        .await
        .map_err(crate::Error::into_anyhow)?
    {
        if key.name == DEMO_KEY_NAME && key.revoked_at.is_none() {
            access::revoke_key(&state.db, key.id)
                .await
                .map_err(crate::Error::into_anyhow)?;
        }
    }
    let key = access::create_key(&state.db, DEMO_KEY_NAME, access::Role::Admin)
        .await
        .map_err(crate::Error::into_anyhow)?;
    if let Some(path) = file {
        let _ = std::fs::remove_file(path);
        crate::crypto::write_private(path, &key.secret).map_err(|e| {
            anyhow::anyhow!("cannot write the demo key file {}: {e}", path.display())
        })?;
    }
    Ok(key.secret)
}

/// Links the demo integration, syncs its project on the first start, and prints what to do
/// next: the integration's id, the key and a first query.
/// Links and syncs the demo integration and returns the demo's ADMIN key.
pub async fn start(
    state: &AppState,
    sim: &crate::simulator::RunningSimulator,
    db: &DbConfig,
    key_file_setting: Option<&PathBuf>,
) -> anyhow::Result<String> {
    let integration = link(state, sim).await?;
    let id = super::integration_api_id(integration.id);
    let file = key_file(db, key_file_setting);
    let key = demo_key(state, file.as_ref()).await?;
    println!(
        "Demo: {} simulator at {} ({} boxes, {} splitters, {} ports); integration \"{}\" \
         (id {}) points at it.",
        sim.platform.name(),
        sim.url,
        sim.state.summary.boxes,
        sim.state.summary.splitters,
        sim.state.summary.ports,
        demo_integration(sim.platform),
        id,
    );
    let actor = access::Actor::system("demo");
    if crate::projects::of(&state.db, integration.id)
        .await
        .map_err(crate::Error::into_anyhow)?
        .is_none()
    {
        let project = sim.state.summary.projects[0];
        crate::projects::set(
            state,
            &actor,
            integration.id,
            crate::projects::ProjectChoice::Existing(sim.remote_fid("projeto", project)),
        )
        .await
        .map_err(crate::Error::into_anyhow)?;
        let request = crate::sync::RunRequest {
            mode: crate::sync::Mode::Full,
            trigger: crate::sync::Trigger::Manual,
            allow_mass_deletion: false,
            element_fid: None,
            scheduled_for: None,
        };
        let run = crate::sync::start(state, &actor, integration.id, request)
            .await
            .map_err(crate::Error::into_anyhow)?;
        let row = crate::sync::follow_to_end(state, run.id, |_| {})
            .await
            .map_err(crate::Error::into_anyhow)?;
        println!(
            "Demo: project {project} linked and synced ({} run: {} records, {} created).",
            row.status, row.processed, row.created
        );
    }
    println!("Demo ADMIN API key: {key}");
    match &file {
        Some(path) => println!("  (kept in {}: the same on every start)", path.display()),
        None => println!("  (new on every start: set DEMO_KEY_FILE to keep one)"),
    }
    println!(
        "First query: open GraphiQL, put {{\"Authorization\": \"Bearer {key}\"}} in Headers, and run\n\n    \
         {{ elements(integrationId: \"{}\", first: 5) {{ totalCount edges {{ node {{ fid name \
         splitters {{ kind ports {{ number status }} }} }} }} }} }}\n",
        id
    );
    Ok(key)
}
