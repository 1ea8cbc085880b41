//! The OZmap records a listing of changes reads: one at a time for the change index, one by id
//! for the records it names (see [`crate::simulator::changes`]).

use serde_json::Value;

use super::records::{fid_of, Tag, View};

impl View<'_> {
    /// Every record of a route, one at a time, in no promised order: the routes of one record
    /// per port are rendered one by one (at 200,000 boxes, 2.65 million of them), others as
    /// [`View::all`] lists them.
    pub fn each(&self, route: &str, mut f: impl FnMut(Value)) {
        let ports = self.store.tables["portaSplitter"].rows.keys();
        match route {
            "properties" => ports
                .filter_map(|fid| self.property(*fid, false))
                .for_each(f),
            "ftth-clients" => {
                ports.filter_map(|fid| self.client(*fid)).for_each(&mut f);
                self.loose_clients.values().cloned().for_each(f);
            }
            _ => self.all(route).into_iter().for_each(f),
        }
    }

    /// A record by its id as [`View::all`] lists it (a property without its client populated).
    pub fn listed(&self, route: &str, id: &str) -> Option<Value> {
        match route {
            "properties" => self.property(fid_of(Tag::Property, id)?, false),
            _ => self.by_id(route, id),
        }
    }
}
