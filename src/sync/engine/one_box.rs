//! ELEMENT mode: one box by fid, with its splitters and their ports. The box is doomed when the
//! platform no longer has it; a splitter or port no longer listed under it is asked for by fid,
//! since it may have moved (to another box, or another splitter): only what the platform says no
//! longer exists is doomed, and what moved is updated in place, keeping its id and bindings.

use std::collections::HashSet;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use entity::{element, port, splitter};

use super::listing::{Batch, Scope, Table};
use super::{Engine, Step};
use crate::catalog::ElementItem;
use crate::platform::{ListQuery, Listing, RemoteElement};

/// Records asked for by fid in one listing.
const FIDS_PER_QUERY: usize = 100;

impl<'a> Engine<'a> {
    /// ELEMENT mode: one box, its splitters and their ports.
    pub(super) async fn sync_one_box(&mut self) -> Step {
        let fid = self.element_fid.clone().unwrap_or_default();
        let mut found = false;
        for item in self.element_items() {
            let query = ListQuery {
                fid: Some(fid.clone()),
                ..self.in_project()
            };
            let listing = self.platform.elements(item, query);
            let before = self.counts.fetched;
            // Listed "in full" over a one-record scope: the local box of this item is doomed
            // when the platform no longer has it.
            self.sync_elements_of_fid(item, listing, &fid).await?;
            if self.counts.fetched > before {
                found = true;
                break;
            }
        }
        if !found {
            tracing::info!(fid, "the box is gone from the platform");
        }
        let listing = self.platform.splitters(ListQuery {
            box_fid: Some(fid.clone()),
            ..self.in_project()
        });
        self.set_phase("SPLITTERS", Some("SPLITTER")).await?;
        let listed = self
            .sync_listing(
                listing,
                Batch::Splitters,
                (Table::Splitters, Scope::Narrow),
                false,
                true,
            )
            .await?;
        let was_here: Vec<(i64, String)> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Id)
            .column(splitter::Column::Fid)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::BoxFid.eq(fid.clone()))
            .into_tuple()
            .all(self.db)
            .await?;
        let elsewhere: Vec<(i64, String)> = was_here
            .into_iter()
            .filter(|(_, f)| !listed.contains(f))
            .collect();
        self.confirm_gone(Table::Splitters, elsewhere).await?;
        if listed.is_empty() {
            return Ok(());
        }
        let listed: Vec<String> = listed.into_iter().collect();
        let listing = self.platform.ports(ListQuery {
            splitter_fids: Some(listed.clone()),
            ..self.in_project()
        });
        self.set_phase("PORTS", Some("PORT")).await?;
        let kept = self
            .sync_listing(
                listing,
                Batch::Ports,
                (Table::Ports, Scope::Narrow),
                false,
                true,
            )
            .await?;
        let splitter_ids: Vec<i64> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Id)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::Fid.is_in(listed))
            .into_tuple()
            .all(self.db)
            .await?;
        let ports: Vec<(i64, String)> = port::Entity::find()
            .select_only()
            .column(port::Column::Id)
            .column(port::Column::Fid)
            .filter(port::Column::SplitterId.is_in(splitter_ids))
            .into_tuple()
            .all(self.db)
            .await?;
        let elsewhere = ports
            .into_iter()
            .filter(|(_, f)| !kept.contains(f))
            .collect();
        self.confirm_gone(Table::Ports, elsewhere).await
    }
    /// Local rows (id, fid) a narrow listing no longer shows: asks the platform for them by fid,
    /// writes those it still has where they are now, and dooms only the rest. A port the
    /// platform still has under a splitter the copy lacks (the selection just widened to its
    /// kind, or the splitter is newer than the last listing) brings that splitter in first:
    /// the port is dropped only when its splitter is of a kind not selected.
    async fn confirm_gone(&mut self, table: Table, rows: Vec<(i64, String)>) -> Step {
        let fids: Vec<String> = rows.iter().map(|(_, f)| f.clone()).collect();
        let mut still = self.relist(table, &fids).await?;
        let missing: Vec<String> = fids.into_iter().filter(|f| !still.contains(f)).collect();
        if table == Table::Ports && !missing.is_empty() {
            let splitters = self.unknown_splitters_of(&missing).await?;
            if !self.relist(Table::Splitters, &splitters).await?.is_empty() {
                still.extend(self.relist(Table::Ports, &missing).await?);
            }
        }
        let gone = rows
            .into_iter()
            .filter(|(_, f)| !still.contains(f))
            .map(|(id, _)| id)
            .collect();
        self.doom(table, gone);
        Ok(())
    }
    /// Lists records of `table` by fid and writes them; returns the fids kept.
    pub(super) async fn relist(&mut self, table: Table, fids: &[String]) -> Step<HashSet<String>> {
        let mut still = HashSet::new();
        for chunk in fids.chunks(FIDS_PER_QUERY) {
            let query = ListQuery {
                fids: Some(chunk.to_vec()),
                ..self.in_project()
            };
            let target = (table, Scope::Narrow);
            let kept = match table {
                Table::Splitters => {
                    let listing = self.platform.splitters(query);
                    self.sync_listing(listing, Batch::Splitters, target, false, true)
                        .await?
                }
                Table::Ports => {
                    let listing = self.platform.ports(query);
                    self.sync_listing(listing, Batch::Ports, target, false, true)
                        .await?
                }
                Table::Elements => unreachable!("boxes are asked for by fid already"),
            };
            still.extend(kept);
        }
        Ok(still)
    }
    /// The splitters, unknown to the copy, that the platform now puts the given ports under.
    async fn unknown_splitters_of(&mut self, ports: &[String]) -> Step<Vec<String>> {
        let mut splitters = HashSet::new();
        for chunk in ports.chunks(FIDS_PER_QUERY) {
            let mut listing = self.platform.ports(ListQuery {
                fids: Some(chunk.to_vec()),
                ..self.in_project()
            });
            while let Some(page) = self.next_page(&mut listing).await? {
                splitters.extend(page.records.into_iter().map(|p| p.splitter_fid));
            }
        }
        let splitters: Vec<String> = splitters.into_iter().collect();
        let known: HashSet<String> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Fid)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::Fid.is_in(splitters.clone()))
            .into_tuple()
            .all(self.db)
            .await?
            .into_iter()
            .collect();
        Ok(splitters
            .into_iter()
            .filter(|f| !known.contains(f))
            .collect())
    }
    /// The ports of splitters an INCREMENTAL run created or saw change kind, listed by
    /// splitter: their ports may not have changed since the cursor, so the listing by change
    /// time does not bring them.
    pub(super) async fn ports_of_new_splitters(&mut self) -> Step {
        let fids = std::mem::take(&mut self.new_splitters);
        for chunk in fids.chunks(FIDS_PER_QUERY) {
            let listing = self.platform.ports(ListQuery {
                splitter_fids: Some(chunk.to_vec()),
                ..self.in_project()
            });
            self.sync_listing(
                listing,
                Batch::Ports,
                (Table::Ports, Scope::Narrow),
                false,
                false,
            )
            .await?;
        }
        Ok(())
    }
    /// A query of this run's project.
    fn in_project(&self) -> ListQuery {
        ListQuery {
            project_id: Some(self.project.remote_id.clone()),
            ..Default::default()
        }
    }
    pub(super) async fn sync_elements_of_fid(
        &mut self,
        item: ElementItem,
        listing: Listing<RemoteElement>,
        fid: &str,
    ) -> Step {
        let before = self.doomed.elements.len();
        let (fetched, unreadable) = (self.counts.fetched, self.counts.unreadable);
        self.set_phase("ELEMENTS", Some(item.as_str())).await?;
        self.sync_listing(
            listing,
            |r| Batch::Elements(item, r),
            (Table::Elements, Scope::Narrow),
            false,
            false,
        )
        .await?;
        if self.counts.fetched == fetched && self.counts.unreadable == unreadable {
            let gone: Vec<i64> = element::Entity::find()
                .select_only()
                .column(element::Column::Id)
                .filter(element::Column::IntegrationId.eq(self.integration.id))
                .filter(element::Column::Item.eq(item))
                .filter(element::Column::Fid.eq(fid))
                .into_tuple()
                .all(self.db)
                .await?;
            self.doomed.elements.truncate(before);
            self.doomed.elements.extend(gone);
        }
        Ok(())
    }
}
