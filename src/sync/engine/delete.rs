//! What a run deletes: rows found gone, held until the listing is complete, then deleted (their
//! bindings orphaned first) in one transaction behind the mass-deletion guard; and the records of
//! items no longer selected.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use entity::{element, splitter};

use super::listing::Table;
use super::{Engine, Step, Stop};
use crate::catalog::ElementItem;
use crate::store::bindings::PortScope;
use crate::store::plant;
use crate::Result;

/// Local rows the platform no longer has, deleted once the listing is complete.
#[derive(Default)]
pub(super) struct Doomed {
    pub(super) elements: Vec<i64>,
    pub(super) splitters: Vec<i64>,
    pub(super) ports: Vec<i64>,
}

impl Doomed {
    /// Each id once, in order: a row can be found gone by two pages, or by a page and the kind
    /// check.
    fn normalize(&mut self) {
        for list in [&mut self.elements, &mut self.splitters, &mut self.ports] {
            list.sort_unstable();
            list.dedup();
        }
    }

    /// The ids doomed in one table.
    pub(super) fn of(&mut self, table: Table) -> &mut Vec<i64> {
        match table {
            Table::Elements => &mut self.elements,
            Table::Splitters => &mut self.splitters,
            Table::Ports => &mut self.ports,
        }
    }

    fn is_empty(&self) -> bool {
        self.elements.is_empty() && self.splitters.is_empty() && self.ports.is_empty()
    }
}

impl<'a> Engine<'a> {
    pub(super) fn doom(&mut self, table: Table, ids: Vec<i64>) {
        self.doomed.of(table).extend(ids);
    }
    /// Purges records of items no longer selected (any mode). The phase is entered (and told)
    /// only when there is something to purge.
    pub(super) async fn purge_deselected(&mut self) -> Step {
        let integration = self.integration.id;
        // By the items not selected, each an index range of its own (usually empty), not by
        // the items kept: that read every row of the integration (46 ms at 200,000 boxes).
        let gone_items: Vec<ElementItem> = ElementItem::ALL
            .into_iter()
            .filter(|i| i.is_element() && !self.selected(*i))
            .collect();
        let gone_kinds: Vec<entity::splitter::SplitterKind> = [
            entity::splitter::SplitterKind::Service,
            entity::splitter::SplitterKind::Distribution,
        ]
        .into_iter()
        .filter(|k| !self.selected(super::write::kind_item(*k)))
        .collect();
        let mut splitters: Vec<i64> = if gone_kinds.is_empty() {
            Vec::new()
        } else {
            splitter::Entity::find()
                .select_only()
                .column(splitter::Column::Id)
                .filter(splitter::Column::IntegrationId.eq(integration))
                .filter(splitter::Column::Kind.is_in(gone_kinds))
                .into_tuple()
                .all(self.db)
                .await?
        };
        let elements: Vec<i64> = if gone_items.is_empty() {
            Vec::new()
        } else {
            element::Entity::find()
                .select_only()
                .column(element::Column::Id)
                .filter(element::Column::IntegrationId.eq(integration))
                .filter(element::Column::Item.is_in(gone_items))
                .into_tuple()
                .all(self.db)
                .await?
        };
        if splitters.is_empty() && elements.is_empty() {
            return Ok(());
        }
        self.set_phase("PURGING", None).await?;
        self.spare_bound_splitters(&mut splitters).await?;
        if splitters.is_empty() && elements.is_empty() {
            return Ok(());
        }
        let doomed = Doomed {
            elements,
            splitters,
            ports: Vec::new(),
        };
        // Asked for by whoever changed the selection, so not behind the guard; counted apart.
        let deleted = self.delete(&doomed).await?;
        self.counts.purged += deleted as i64;
        tracing::info!(deleted, "purged records of deselected items");
        Ok(())
    }
    /// Takes out of a purge the bound splitters whose kind the platform now says is selected:
    /// the local kind may be stale (the splitter changed back while its kind was deselected).
    /// They are asked for by fid and updated in place, keeping their ports and bindings; the
    /// rest stay purged, and are not doomed a second time behind the guard.
    async fn spare_bound_splitters(&mut self, splitters: &mut Vec<i64>) -> Step {
        let bound = crate::store::bindings::bound_splitters(self.db, splitters).await?;
        if bound.is_empty() {
            return Ok(());
        }
        let fids: Vec<String> = bound.iter().map(|(_, fid)| fid.clone()).collect();
        let doomed_before = self.doomed.splitters.len();
        let back = self.relist(Table::Splitters, &fids).await?;
        self.doomed.splitters.truncate(doomed_before);
        let spared: HashSet<i64> = bound
            .into_iter()
            .filter(|(_, fid)| back.contains(fid))
            .map(|(id, _)| id)
            .collect();
        if !spared.is_empty() {
            tracing::info!(
                spared = spared.len(),
                "bound splitters back in the selection kept"
            );
        }
        splitters.retain(|id| !spared.contains(id));
        Ok(())
    }
    /// Deletes what the listings found gone, behind the mass-deletion guard (every mode: a
    /// FULL run, an INCREMENTAL run that listed an item in full, an element sync). The phase is
    /// entered (and told) only when something was found gone.
    pub(super) async fn apply_deletions(&mut self) -> Step {
        self.checkpoint()?;
        let mut doomed = std::mem::take(&mut self.doomed);
        doomed.normalize();
        if doomed.is_empty() {
            return Ok(());
        }
        self.set_phase("DELETING", None).await?;
        if !self.allow_mass_deletion {
            let share = self.app.settings.sync.mass_deletion_share;
            for level in self.levels(&doomed).await? {
                if let Some(refusal) = level.refusal(share) {
                    return Err(Stop::Guard(refusal));
                }
            }
        }
        self.delete(&doomed).await?;
        Ok(())
    }
    /// What a deletion takes from each level of the project, each row counted once: the ports
    /// of a doomed splitter count with the ports found gone, not on top of them.
    async fn levels(&self, doomed: &Doomed) -> Result<[Level; 3]> {
        let project = format!("project_id = {}", self.project.id);
        let mut ports: HashSet<i64> = doomed.ports.iter().copied().collect();
        ports.extend(
            plant::ports_of_splitters(self.db, &doomed.splitters)
                .await?
                .into_iter()
                .map(|(id, ..)| id),
        );
        Ok([
            Level {
                name: "boxes and points",
                local: plant::count(self.db, "elements", &project).await?,
                going: doomed.elements.len() as u64,
            },
            Level {
                name: "splitters",
                local: plant::count(self.db, "splitters", &project).await?,
                going: doomed.splitters.len() as u64,
            },
            Level {
                name: "ports",
                local: plant::count(self.db, "ports", &project).await?,
                going: ports.len() as u64,
            },
        ])
    }
    /// Orphans bindings, then deletes ports, splitters and elements, in one transaction.
    pub(super) async fn delete(&mut self, doomed: &Doomed) -> Result<u64> {
        let txn = crate::db::page_txn(self.db).await?;
        let mut orphaned =
            crate::store::bindings::orphan_bindings(&txn, &PortScope::Ports(doomed.ports.clone()))
                .await?;
        orphaned.extend(
            crate::store::bindings::orphan_bindings(
                &txn,
                &PortScope::Splitters(doomed.splitters.clone()),
            )
            .await?,
        );
        crate::bindings::record_orphaned(&txn, self.actor, &orphaned).await?;
        let mut deleted = plant::delete_ids(&txn, "ports", &doomed.ports).await?;
        deleted += plant::delete_ports_of_splitters(&txn, &doomed.splitters).await?;
        deleted += plant::delete_ids(&txn, "splitters", &doomed.splitters).await?;
        deleted += plant::delete_ids(&txn, "elements", &doomed.elements).await?;
        self.counts.deleted += deleted as i64;
        self.counts.orphaned += orphaned.len() as i64;
        self.save_progress_in(&txn).await?;
        txn.commit().await?;
        self.publish();
        crate::bindings::announce_all(self.app, &orphaned).await;
        Ok(deleted)
    }
}

/// One level of the plant (boxes and points, splitters, ports): the project's rows and how many
/// a run would delete.
struct Level {
    name: &'static str,
    local: u64,
    going: u64,
}

impl Level {
    /// Why the run must stop when it would delete more than `share` of this level's rows.
    fn refusal(&self, share: f64) -> Option<String> {
        let Level { name, local, going } = *self;
        (local > 0 && going as f64 > share * local as f64).then(|| {
            format!(
                "this sync would delete {going} of the project's {local} {name} ({:.0}%, over the \
                 {:.0}% threshold); nothing was deleted. Check the platform, then run a FULL sync \
                 with allowMassDeletion if it is right",
                going as f64 * 100.0 / local as f64,
                share * 100.0
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doomed_ids_are_kept_once_each() {
        let mut doomed = Doomed {
            elements: vec![3, 1, 3],
            splitters: vec![],
            ports: vec![9, 9, 2],
        };
        doomed.normalize();
        assert_eq!(doomed.elements, [1, 3]);
        assert_eq!(doomed.ports, [2, 9]);
        assert!(!doomed.is_empty());
        assert!(Doomed::default().is_empty());
    }

    #[test]
    fn the_guard_stops_over_the_share_only() {
        let level = |local, going| Level {
            name: "ports",
            local,
            going,
        };
        assert!(
            level(100, 50).refusal(0.5).is_none(),
            "exactly the share passes"
        );
        let refusal = level(100, 51).refusal(0.5).unwrap();
        assert!(
            refusal.contains("51 of the project's 100 ports (51%, over the 50% threshold)"),
            "{refusal}"
        );
        assert!(
            level(0, 10).refusal(0.5).is_none(),
            "an empty level has nothing to guard"
        );
        assert!(level(10, 10).refusal(1.0).is_none());
        assert!(level(10, 1).refusal(0.0).is_some());
    }
}
