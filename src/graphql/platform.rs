//! Calls that reach the platform live: the connection test and the remote project list.

use crate::graphql::scalars::DateTime;
use async_graphql::{Context, Object, SimpleObject, ID};

use crate::access::Role;
use crate::graphql::guard::{actor, RoleGuard};
use crate::graphql::ids::{self, INTEGRATION};
use crate::graphql::state;
use crate::integrations as domain;

/// The outcome of `testIntegration`. Platform failures are reported here, not as errors.
#[derive(SimpleObject)]
pub struct IntegrationTest {
    /// True when the gateway logged in and listed projects.
    pub ok: bool,
    /// Time the test took, in milliseconds.
    pub latency_ms: u64,
    /// What happened, for a person.
    pub message: String,
    /// Why it failed: `PLATFORM_AUTH` (credentials refused), `PLATFORM_UNAVAILABLE` (unreachable
    /// or failing), ...; null when it worked.
    pub code: Option<crate::graphql::scalars::ErrorCode>,
    /// Projects visible to the platform user; null when it failed.
    pub project_count: Option<u64>,
}

/// A project on the platform, as `remoteProjects` lists it.
#[derive(SimpleObject)]
pub struct RemoteProject {
    /// The platform's id of the project; pass it to `setProject`.
    pub remote_id: String,
    /// Its name on the platform.
    pub name: String,
    /// When it last changed on the platform, when the platform says.
    pub updated_at: Option<DateTime>,
}

/// Live platform queries.
#[derive(Default)]
pub struct PlatformQuery;

/// Live platform queries.
#[Object]
impl PlatformQuery {
    /// The projects the integration's platform user can see, read live (ADMIN), in the
    /// platform's order: at most 1,000, the first it lists. Nothing is stored.
    #[graphql(
        guard = "RoleGuard(Role::Admin)",
        complexity = "super::paging::PLATFORM + child_complexity"
    )]
    async fn remote_projects(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] integration_id: ID,
    ) -> async_graphql::Result<Vec<RemoteProject>> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &integration_id)?;
        let projects = domain::remote_projects(app, actor(ctx)?, id).await?;
        Ok(projects
            .into_iter()
            .map(|p| RemoteProject {
                remote_id: p.remote_id,
                name: p.name,
                updated_at: p.updated_at.map(DateTime),
            })
            .collect())
    }
}

/// Live platform mutations.
#[derive(Default)]
pub struct PlatformMutation;

/// Live platform mutations.
#[Object]
impl PlatformMutation {
    /// Logs in to the platform with the stored credentials and counts projects (ADMIN). The
    /// outcome is also written to the history.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn test_integration(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Id of the integration.")] id: ID,
    ) -> async_graphql::Result<IntegrationTest> {
        let app = state(ctx)?;
        let id = ids::decode(INTEGRATION, &id)?;
        let test = domain::test_connection(app, actor(ctx)?, id).await?;
        Ok(IntegrationTest {
            ok: test.ok,
            latency_ms: test.latency_ms,
            message: test.message,
            code: test.code.map(crate::graphql::scalars::ErrorCode::parse),
            project_count: test.project_count,
        })
    }
}
