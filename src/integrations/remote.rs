//! Live calls to an integration's platform: the connection test and the project listing.

use crate::access::{Actor, Role};
use crate::state::AppState;
use crate::{history, Error, Result};

use super::find;

#[derive(Clone, Debug)]
pub struct ConnectionTest {
    /// True when login and listing projects worked.
    pub ok: bool,
    /// Time taken, in milliseconds.
    pub latency_ms: u64,
    /// What happened, for a person.
    pub message: String,
    /// The error code when it failed (`PLATFORM_AUTH`, `PLATFORM_UNAVAILABLE`, ...).
    pub code: Option<&'static str>,
    /// Projects the user can see, when it worked.
    pub project_count: Option<u64>,
}

/// Logs in to the platform and counts projects; records the outcome in the history.
pub async fn test_connection(app: &AppState, actor: &Actor, id: i64) -> Result<ConnectionTest> {
    actor.require(Role::Admin)?;
    let db = &app.db;
    let row = find(db, id).await?;
    let started = std::time::Instant::now();
    // An address the policy refuses is a failed test, like any other unreachable platform.
    let outcome = match app.platform(&row) {
        Ok(platform) => platform.check().await,
        Err(e) => Err(e),
    };
    let latency_ms = started.elapsed().as_millis() as u64;
    let result = match outcome {
        Ok(check) => ConnectionTest {
            ok: true,
            latency_ms,
            message: format!("connected; {} project(s) visible", check.project_count),
            code: None,
            project_count: Some(check.project_count),
        },
        Err(Error::Internal(e)) => return Err(Error::Internal(e)),
        Err(e) => ConnectionTest {
            ok: false,
            latency_ms,
            message: crate::text::plain(&e.message()).into_owned(),
            code: Some(e.code()),
            project_count: None,
        },
    };
    history::record(
        db,
        Some(id),
        actor,
        crate::history::Action::IntegrationTested,
        if result.ok {
            format!("connection test passed in {latency_ms} ms")
        } else {
            format!("connection test failed: {}", result.message)
        },
        None,
        None,
    )
    .await?;
    Ok(result)
}

/// The most projects `remote_projects` answers (the first the platform lists).
pub const MAX_REMOTE_PROJECTS: usize = 1_000;

/// The projects the platform offers, read live, in its order, at most
/// [`MAX_REMOTE_PROJECTS`]; nothing is stored.
pub async fn remote_projects(
    app: &AppState,
    actor: &Actor,
    id: i64,
) -> Result<Vec<crate::platform::RemoteProject>> {
    actor.require(Role::Admin)?;
    let row = find(&app.db, id).await?;
    let mut projects = app.platform(&row)?.projects().await?;
    for p in &mut projects {
        crate::text::make_plain(&mut p.name);
    }
    projects.truncate(MAX_REMOTE_PROJECTS);
    Ok(projects)
}
