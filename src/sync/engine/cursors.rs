//! Where a run's listings start (the cursors of the selected items) and moving those cursors
//! when the run succeeds, only for the items it listed.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use entity::{element_selection, sync_run};

use super::{Engine, Step};
use crate::catalog::ElementItem;
use crate::sync::Mode;

impl Engine<'_> {
    /// `changed_since` for a listing of these items: none (full) unless every one has a cursor.
    pub(super) fn since(&self, items: &[ElementItem]) -> Option<DateTime<Utc>> {
        let cursors: Vec<Option<DateTime<Utc>>> = items
            .iter()
            .map(|item| {
                self.selection
                    .iter()
                    .find(|s| s.item == *item)
                    .and_then(|s| s.cursor)
            })
            .collect();
        incremental_since(self.mode, &cursors, self.app.settings.sync.overlap)
    }

    /// Moves the cursor of every item this run listed to the platform clock at its start, in
    /// one transaction with the run's progress (fenced like every write of the run).
    pub(super) async fn advance_cursors(&mut self) -> Step {
        let clock = self.clock.unwrap_or_else(Utc::now);
        let txn = crate::db::write_txn(self.db).await?;
        element_selection::Entity::update_many()
            .col_expr(
                element_selection::Column::Cursor,
                sea_orm::sea_query::Expr::value(clock),
            )
            .filter(element_selection::Column::IntegrationId.eq(self.integration.id))
            // Only the items this run listed: one selected while it ran has no cursor yet, and
            // the next run lists it in full.
            .filter(element_selection::Column::Item.is_in(self.selection.iter().map(|s| s.item)))
            .exec(&txn)
            .await?;
        sync_run::Entity::update_many()
            .col_expr(
                sync_run::Column::CursorAfter,
                sea_orm::sea_query::Expr::value(clock),
            )
            .filter(sync_run::Column::Id.eq(self.run_id))
            .exec(&txn)
            .await?;
        self.save_progress_in(&txn).await?;
        txn.commit().await?;
        self.publish();
        Ok(())
    }
}

/// Where an incremental listing of items with these cursors starts: the oldest cursor minus the
/// overlap; none (a full listing) in other modes or when an item has no cursor yet (it was just
/// selected).
fn incremental_since(
    mode: Mode,
    cursors: &[Option<DateTime<Utc>>],
    overlap: std::time::Duration,
) -> Option<DateTime<Utc>> {
    if mode != Mode::Incremental || cursors.iter().any(Option::is_none) {
        return None;
    }
    let overlap = chrono::Duration::from_std(overlap).unwrap_or_default();
    cursors.iter().flatten().min().map(|c| *c - overlap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn incremental_listings_start_at_the_oldest_cursor_minus_the_overlap() {
        let at = |h| Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap();
        let five = std::time::Duration::from_secs(300);
        let since = incremental_since(Mode::Incremental, &[Some(at(4)), Some(at(3))], five);
        assert_eq!(since, Some(at(3) - chrono::Duration::minutes(5)));
        assert_eq!(
            incremental_since(Mode::Incremental, &[Some(at(4)), None], five),
            None
        );
        assert_eq!(incremental_since(Mode::Full, &[Some(at(4))], five), None);
        assert_eq!(incremental_since(Mode::Element, &[Some(at(4))], five), None);
    }
}
