//! ELEMENT mode: one box by fid, with its splitters and their ports; the box and what it held
//! are doomed when the platform no longer has them.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

use entity::{element, port, splitter};

use super::listing::{Batch, Scope, Table};
use super::{Engine, Step};
use crate::catalog::ElementItem;
use crate::platform::{ListQuery, Listing, RemoteElement};

impl<'a> Engine<'a> {
    /// ELEMENT mode: one box, its splitters and their ports.
    pub(super) async fn sync_one_box(&mut self) -> Step {
        let fid = self.element_fid.clone().unwrap_or_default();
        let mut found = false;
        for item in self.element_items() {
            let query = ListQuery {
                project_id: Some(self.project.remote_id.clone()),
                fid: Some(fid.clone()),
                ..Default::default()
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
        let query = ListQuery {
            project_id: Some(self.project.remote_id.clone()),
            box_fid: Some(fid.clone()),
            ..Default::default()
        };
        let listing = self.platform.splitters(query);
        self.set_phase("SPLITTERS", Some("SPLITTER")).await?;
        let listed: Vec<String> = self
            .sync_listing(
                listing,
                Batch::Splitters,
                (Table::Splitters, Scope::Narrow),
                false,
                true,
            )
            .await?
            .into_iter()
            .collect();
        let local: Vec<(i64, String)> = splitter::Entity::find()
            .select_only()
            .column(splitter::Column::Id)
            .column(splitter::Column::Fid)
            .filter(splitter::Column::IntegrationId.eq(self.integration.id))
            .filter(splitter::Column::BoxFid.eq(fid.clone()))
            .into_tuple()
            .all(self.db)
            .await?;
        for (id, sfid) in &local {
            if !listed.contains(sfid) {
                self.doomed.splitters.push(*id);
            }
        }
        if listed.is_empty() {
            return Ok(());
        }
        let listing = self.platform.ports(ListQuery {
            splitter_fids: Some(listed.clone()),
            ..Default::default()
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
        let splitter_ids: Vec<i64> = local
            .iter()
            .filter(|(_, f)| listed.contains(f))
            .map(|(id, _)| *id)
            .collect();
        let ports: Vec<(i64, String)> = port::Entity::find()
            .select_only()
            .column(port::Column::Id)
            .column(port::Column::Fid)
            .filter(port::Column::SplitterId.is_in(splitter_ids))
            .into_tuple()
            .all(self.db)
            .await?;
        self.doomed.ports.extend(
            ports
                .into_iter()
                .filter(|(_, f)| !kept.contains(f))
                .map(|(id, _)| id),
        );
        Ok(())
    }
    pub(super) async fn sync_elements_of_fid(
        &mut self,
        item: ElementItem,
        listing: Listing<RemoteElement>,
        fid: &str,
    ) -> Step {
        let before = self.doomed.elements.len();
        let fetched = self.counts.fetched;
        self.set_phase("ELEMENTS", Some(item.as_str())).await?;
        self.sync_listing(
            listing,
            |r| Batch::Elements(item, r),
            (Table::Elements, Scope::Narrow),
            false,
            false,
        )
        .await?;
        if self.counts.fetched == fetched {
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
