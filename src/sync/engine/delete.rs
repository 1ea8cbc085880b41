//! What a run deletes: rows found gone, held until the listing is complete, then deleted (their
//! bindings orphaned first) in one transaction behind the mass-deletion guard; and the records of
//! items no longer selected.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use entity::{element, splitter};

use super::listing::Table;
use super::{Engine, Mode, Step, Stop};
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

    fn is_empty(&self) -> bool {
        self.elements.is_empty() && self.splitters.is_empty() && self.ports.is_empty()
    }
}

impl<'a> Engine<'a> {
    pub(super) fn doom(&mut self, table: Table, ids: Vec<i64>) {
        match table {
            Table::Elements => self.doomed.elements.extend(ids),
            Table::Splitters => self.doomed.splitters.extend(ids),
            Table::Ports => self.doomed.ports.extend(ids),
        }
    }
    /// Purges records of items no longer selected (any mode).
    pub(super) async fn purge_deselected(&mut self) -> Step {
        self.set_phase("PURGING", None).await?;
        let integration = self.integration.id;
        let keep_items = self.element_items();
        let keep_kinds: Vec<entity::splitter::SplitterKind> = [
            entity::splitter::SplitterKind::Service,
            entity::splitter::SplitterKind::Distribution,
        ]
        .into_iter()
        .filter(|k| self.selected(super::write::kind_item(*k)))
        .collect();
        let splitters: Vec<i64> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Id)
            .filter(splitter::Column::IntegrationId.eq(integration))
            .filter(splitter::Column::Kind.is_not_in(keep_kinds))
            .into_tuple()
            .all(self.db)
            .await?;
        let elements: Vec<i64> = element::Entity::find()
            .select_only()
            .column(element::Column::Id)
            .filter(element::Column::IntegrationId.eq(integration))
            .filter(element::Column::Item.is_not_in(keep_items))
            .into_tuple()
            .all(self.db)
            .await?;
        if splitters.is_empty() && elements.is_empty() {
            return Ok(());
        }
        let doomed = Doomed {
            elements,
            splitters,
            ports: Vec::new(),
        };
        let deleted = self.delete(&doomed).await?;
        tracing::info!(deleted, "purged records of deselected items");
        Ok(())
    }
    /// Deletes what the listing found gone, after the mass-deletion guard.
    pub(super) async fn apply_deletions(&mut self) -> Step {
        self.checkpoint()?;
        self.set_phase("DELETING", None).await?;
        let mut doomed = std::mem::take(&mut self.doomed);
        doomed.normalize();
        if doomed.is_empty() {
            return Ok(());
        }
        if self.mode == Mode::Full && !self.allow_mass_deletion {
            let local = plant::count_project_plant(self.db, self.project.id).await?;
            let mut going = (doomed.elements.len() + doomed.splitters.len()) as u64;
            going += doomed.ports.len() as u64;
            going += plant::count_ports_of_splitters(self.db, &doomed.splitters).await?;
            if let Some(refusal) =
                mass_deletion_refusal(local, going, self.app.settings.sync.mass_deletion_share)
            {
                return Err(Stop::Guard(refusal));
            }
        }
        self.delete(&doomed).await?;
        Ok(())
    }
    /// Orphans bindings, then deletes ports, splitters and elements, in one transaction.
    pub(super) async fn delete(&mut self, doomed: &Doomed) -> Result<u64> {
        let txn = crate::db::write_txn(self.db).await?;
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

/// Why a full sync that would delete `going` of the project's `local` records must stop, when
/// that is more than `share` of them.
fn mass_deletion_refusal(local: u64, going: u64, share: f64) -> Option<String> {
    (local > 0 && going as f64 > share * local as f64).then(|| {
        format!(
            "this full sync would delete {going} of the project's {local} records (over {:.0}%); \
             nothing was deleted. Check the platform, then run again with allowMassDeletion if it \
             is right",
            share * 100.0
        )
    })
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
        assert!(
            mass_deletion_refusal(100, 50, 0.5).is_none(),
            "exactly the share passes"
        );
        let refusal = mass_deletion_refusal(100, 51, 0.5).unwrap();
        assert!(refusal.contains("51 of the project's 100") && refusal.contains("50%"));
        assert!(
            mass_deletion_refusal(0, 10, 0.5).is_none(),
            "an empty project has nothing to guard"
        );
        assert!(mass_deletion_refusal(10, 10, 1.0).is_none());
        assert!(mass_deletion_refusal(10, 1, 0.0).is_some());
    }
}
