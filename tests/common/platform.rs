//! The platform side of the tests: the simulator, Geosite client options, listings.

use super::loopback_allowed;

/// Geosite client options for tests: quick retries, a short deadline, loopback admitted.
pub fn fast_client_options() -> mapping_gateway::geosite::ClientOptions {
    mapping_gateway::geosite::ClientOptions {
        min_delay: std::time::Duration::from_millis(10),
        max_delay: std::time::Duration::from_millis(50),
        max_attempts: 4,
        deadline: std::time::Duration::from_secs(20),
        network: loopback_allowed(),
        ..Default::default()
    }
}

/// A simulator on a free loopback port.
pub async fn simulator(
    config: mapping_gateway::simulator::SimConfig,
) -> mapping_gateway::simulator::RunningSimulator {
    mapping_gateway::simulator::spawn(config, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap()
}

/// Every page of a listing.
pub async fn all_pages<T>(
    listing: mapping_gateway::platform::Listing<T>,
) -> Vec<mapping_gateway::platform::ListPage<T>> {
    futures::TryStreamExt::try_collect(listing).await.unwrap()
}

/// A listing of one project's records.
pub fn project_query(project: i64) -> mapping_gateway::platform::ListQuery {
    mapping_gateway::platform::ListQuery {
        project_id: Some(project.to_string()),
        ..Default::default()
    }
}
