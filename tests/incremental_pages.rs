//! An incremental run writes the pages already fetched behind the one in hand in one transaction
//! (`sync::engine::listing::MERGED_RECORDS`): a listing that fails midway still leaves the pages
//! listed before the failure written, the later ones as they were, and the cursor where it stood.

mod common;

use std::collections::HashMap;

use common::world::*;
use common::{Engine, TestApp};
use mapping_gateway::simulator::{FailListPage, Faults};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// The change time each of these ports has locally, by platform fid.
async fn stamps(
    app: &TestApp,
    fids: &[i64],
) -> HashMap<String, Option<chrono::DateTime<chrono::Utc>>> {
    entity::port::Entity::find()
        .filter(entity::port::Column::Fid.is_in(fids.iter().map(i64::to_string)))
        .all(&app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|p| (p.fid, p.remote_updated_at))
        .collect()
}

on_both_engines! {
    async fn an_incremental_run_failing_midway_keeps_the_pages_listed_before(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let cursor = cursors(&app).await;
        // Five pages of 40 changed ports (the ports of unselected splitters are not kept).
        let mut local = fids(&w.sim, "portaSplitter", w.project, |_| true);
        local.sort_unstable();
        let kept = stamps(&app, &local).await;
        let edited: Vec<i64> = local
            .into_iter()
            .filter(|f| kept.contains_key(&f.to_string()))
            .take(200)
            .collect();
        assert_eq!(edited.len(), 200, "the world has the ports");
        let before = stamps(&app, &edited).await;
        for fid in &edited {
            w.save("portaSplitter", *fid, &[]);
        }
        w.sim.state.set_faults(Faults {
            fail_list_page: Some(FailListPage { feature: Some("portaSplitter".into()), page: 3 }),
            ..Default::default()
        });
        let run = sync(&app, &w.id, "INCREMENTAL").await;
        assert_eq!(run["status"], "FAILED", "{run}");
        assert_eq!(run["error"]["code"], "PLATFORM_UNAVAILABLE", "{run}");
        assert_eq!(cursors(&app).await, cursor, "the cursor stays");
        let after = stamps(&app, &edited).await;
        let written: Vec<&i64> = edited
            .iter()
            .filter(|f| after[&f.to_string()] != before[&f.to_string()])
            .collect();
        assert_eq!(written.len(), 80, "the two pages listed before the failure, no more");
        w.sim.state.set_faults(Faults::default());
        succeeded(&app, &w.id, "INCREMENTAL").await;
        let after = stamps(&app, &edited).await;
        assert!(
            edited.iter().all(|f| after[&f.to_string()] != before[&f.to_string()]),
            "the next run writes the rest"
        );
    }
}
