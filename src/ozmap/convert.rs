//! OZmap's records in the gateway's terms (`platform::Remote*`), by the rules of
//! [`super::assumed`].

use std::collections::HashMap;

use crate::catalog::ElementItem;
use crate::platform::{RemoteCustomer, RemoteElement, RemotePort, RemoteSplitter};

use super::assumed;
use super::wire::{BoxType, Place, Property, Splitter};

/// A box, POP or pole as an element.
pub fn element(place: &Place) -> RemoteElement {
    RemoteElement {
        fid: place.id.clone(),
        name: place.name.clone(),
        project_id: place.project.clone(),
        latitude: place.latitude,
        longitude: place.longitude,
        updated_at: place.updated_at,
    }
}

/// The item of a box, from its box type (read once per sync) and the name the project's
/// `hierarchyLevels.box` gives its level.
pub fn box_item(
    place: &Place,
    box_types: &HashMap<String, BoxType>,
    level_names: &HashMap<i64, String>,
) -> Option<ElementItem> {
    let box_type = place.box_type.as_ref().and_then(|t| box_types.get(t));
    let code = box_type.and_then(|t| t.code.as_deref().or(t.prefix.as_deref()));
    let level = place
        .hierarchy_level
        .and_then(|l| level_names.get(&l))
        .map(String::as_str);
    assumed::box_item(code, level)
}

/// A splitter in the gateway's terms.
pub fn splitter(s: &Splitter) -> RemoteSplitter {
    let (ratio, port_count) = assumed::ratio(s.ratio, s.outputs.len());
    RemoteSplitter {
        fid: s.id.clone(),
        name: s.name.clone(),
        project_id: s.project.clone(),
        box_fid: s.parent.clone(),
        kind: assumed::splitter_kind(s.is_drop),
        ratio,
        port_count,
        updated_at: s.updated_at,
    }
}

/// The ports of a splitter: one per output, its status from what is plugged and blocked, and
/// the customer of the property connected to it (`properties` may hold any; those connected
/// elsewhere are ignored). A port's change time is its property's.
pub fn ports(s: &Splitter, properties: &[Property]) -> Vec<RemotePort> {
    let mut on_port: HashMap<i32, &Property> = HashMap::new();
    for property in properties {
        for (splitter, port) in &property.connections {
            if *splitter == s.id {
                on_port.entry(*port).or_insert(property);
            }
        }
    }
    s.outputs
        .iter()
        .enumerate()
        .map(|(i, plugged)| {
            let number = i32::try_from(i + 1).unwrap_or(i32::MAX);
            let blocked = s.blocked.get(i).copied().unwrap_or(false);
            let property = on_port.get(&number);
            let customer = property
                .and_then(|p| p.client.as_ref())
                .map(|c| RemoteCustomer {
                    contract: c.code.clone(),
                    name: c.name.clone(),
                    document: c
                        .observation
                        .as_deref()
                        .and_then(assumed::customer_document),
                });
            // A port has no record of its own: its change time is its property's. The
            // splitter's moves with every port of it, which would mark them all changed.
            let updated_at = property.and_then(|p| p.updated_at);
            RemotePort {
                fid: assumed::port_fid(&s.id, number),
                splitter_fid: s.id.clone(),
                project_id: s.project.clone(),
                number,
                status: assumed::port_status(*plugged, blocked),
                customer,
                updated_at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::{PortStatus, SplitterKind};
    use serde_json::json;

    #[test]
    fn a_splitter_its_ports_and_their_customers() {
        let s = Splitter::read(&json!({
            "id": "s1", "name": "SPL-01", "isDrop": true, "project": "p1", "parent": "b1",
            "updatedAt": "2024-05-01T03:55:00.000Z",
            "connectables": { "output": [null, "f1", "f2", null] },
            "ports": [{}, {}, {}, { "blocked": true }]
        }))
        .unwrap();
        let remote = splitter(&s);
        assert_eq!(
            (remote.kind, remote.ratio.as_str(), remote.port_count),
            (SplitterKind::Service, "1:4", 4)
        );
        assert_eq!(remote.box_fid.as_deref(), Some("b1"));
        let maria = Property::read(&json!({
            "id": "pr1", "updatedAt": "2024-06-01T00:00:00.000Z",
            "client": { "id": "c1", "code": "990001", "name": "Maria", "observation": "CPF/CNPJ 529.982.247-25" },
            "connections": [{ "id": "s1", "port": 2 }]
        }))
        .unwrap();
        let elsewhere = Property::read(&json!({
            "id": "pr2", "client": { "id": "c2", "code": "x" }, "connections": [{ "id": "s9", "port": 1 }]
        }))
        .unwrap();
        let ports = ports(&s, &[elsewhere, maria]);
        let statuses: Vec<PortStatus> = ports.iter().map(|p| p.status).collect();
        assert_eq!(
            statuses,
            [
                PortStatus::Free,
                PortStatus::Occupied,
                PortStatus::Occupied,
                PortStatus::Reserved
            ]
        );
        assert_eq!(ports[1].fid, "s1:2");
        let customer = ports[1].customer.clone().unwrap();
        assert_eq!(customer.contract.as_deref(), Some("990001"));
        assert_eq!(customer.document.as_deref(), Some("52998224725"));
        assert!(
            ports[2].customer.is_none(),
            "plugged, with no property: no customer"
        );
        assert_eq!(
            ports[1].updated_at.unwrap().to_rfc3339(),
            "2024-06-01T00:00:00+00:00"
        );
        assert_eq!(
            ports[0].updated_at, None,
            "no property: no change time of its own"
        );
    }

    #[test]
    fn boxes_take_their_item_from_their_type_or_level() {
        let types: HashMap<String, BoxType> = [
            BoxType {
                id: "t1".into(),
                code: Some("CTO16".into()),
                prefix: None,
            },
            BoxType {
                id: "t2".into(),
                code: None,
                prefix: Some("CEO".into()),
            },
            BoxType {
                id: "t3".into(),
                code: Some("CTX".into()),
                prefix: None,
            },
        ]
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
        let levels: HashMap<i64, String> = [(2, "CE".to_owned()), (3, "CTO".to_owned())].into();
        let place = |box_type: Option<&str>, level: Option<i64>| {
            let mut record = json!({ "id": "b", "name": "b", "boxType": box_type });
            if let Some(level) = level {
                record["hierarchyLevel"] = json!(level);
            }
            Place::read("boxes", &record).unwrap()
        };
        assert_eq!(
            box_item(&place(Some("t1"), None), &types, &levels),
            Some(ElementItem::Cto)
        );
        assert_eq!(
            box_item(&place(Some("t2"), Some(3)), &types, &levels),
            Some(ElementItem::Ceo)
        );
        assert_eq!(
            box_item(&place(Some("t3"), Some(2)), &types, &levels),
            Some(ElementItem::Ceo)
        );
        assert_eq!(
            box_item(&place(None, Some(3)), &types, &levels),
            Some(ElementItem::Cto)
        );
        assert_eq!(box_item(&place(Some("t3"), Some(1)), &types, &levels), None);
        let e = element(&place(None, None));
        assert_eq!((e.fid.as_str(), e.latitude), ("b", None));
    }
}
