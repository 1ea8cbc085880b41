//! On PostgreSQL the plant tables leave room on each page (`fillfactor`): a port whose record
//! changes is rewritten on its own page, a heap-only update that writes no index entry. On a full
//! page the new version of the row went to another page, with an entry in each of the table's
//! four indexes (1,130 of a 1% incremental run's 2,400 ms at 200,000 boxes).

mod common;

use common::world::*;
use common::{Engine, TestApp};
use sea_orm::{ConnectionTrait, Statement};

/// The heap page of the port with this local id, and the number of its table's pages.
async fn page_of(app: &TestApp, id: i64) -> (i64, i64) {
    let row = app
        .state
        .db
        .query_one_raw(Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT (ctid::text::point)[0]::bigint AS page, \
                 (SELECT pg_relation_size('ports') / current_setting('block_size')::bigint) AS pages \
                 FROM ports WHERE id = {id}"
            ),
        ))
        .await
        .unwrap()
        .expect("the port is there");
    (
        row.try_get::<i64>("", "page").unwrap(),
        row.try_get::<i64>("", "pages").unwrap(),
    )
}

on_both_engines! {
    async fn a_changed_port_is_rewritten_on_its_own_page(app: TestApp) {
        let w = world(&app, 30).await;
        succeeded(&app, &w.id, "FULL").await;
        let Engine::Postgres = app.engine else {
            // SQLite rewrites a row in its B-tree leaf, with no index entry to touch.
            return;
        };
        // The first port written lies on the table's first page, which later ports filled.
        let first = app
            .state
            .db
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT id, fid FROM ports ORDER BY id LIMIT 1",
            ))
            .await
            .unwrap()
            .unwrap();
        let id: i64 = first.try_get("", "id").unwrap();
        let fid: String = first.try_get("", "fid").unwrap();
        let (page, pages) = page_of(&app, id).await;
        assert!(pages >= 3, "the ports fill pages ({pages})");
        let before = port_of(&app, w.store_fid("portaSplitter", &fid))
            .await
            .unwrap();
        w.save(
            "portaSplitter",
            w.store_fid("portaSplitter", &fid),
            &[],
        );
        succeeded(&app, &w.id, "INCREMENTAL").await;
        let after = port_of(&app, w.store_fid("portaSplitter", &fid))
            .await
            .unwrap();
        assert_ne!(
            after.remote_updated_at, before.remote_updated_at,
            "the run wrote the port"
        );
        assert_eq!(after.id, id);
        assert_eq!(
            page_of(&app, id).await.0,
            page,
            "the port's new version stays on its page"
        );
    }
}
