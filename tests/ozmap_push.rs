//! OZmap writes over real HTTP, the client against the OZmap simulator: a push creates a
//! property (with the client found by code, or a new one) and is idempotent, another customer is
//! never written over, a release deletes only a property the gateway created (else detaches its
//! client), and clients outlive their properties without their ids ever being reused.

mod common;

use common::ozmap::*;
use mapping_gateway::ozmap::OzmapClient;
use mapping_gateway::platform::{
    CustomerRecord, ListQuery, Platform, PortChange, PortStatus, PortWrite,
};
use mapping_gateway::simulator::SimConfig;
use serde_json::{json, Value};

/// Writes a port as the gateway does, for integration key `chave1`.
async fn write(oz: &OzmapClient, fid: &str, change: PortChange<'_>) -> PortWrite {
    oz.set_port_customer(fid, change, "chave1").await.unwrap()
}

fn person(contract: &str, document: &str, name: &str) -> CustomerRecord {
    CustomerRecord {
        contract: contract.into(),
        document: document.into(),
        name: name.into(),
    }
}

#[tokio::test]
async fn pushes_create_properties_and_releases_delete_only_their_own() {
    let sim = ozmap_sim(SimConfig {
        boxes: 20,
        seed: 7,
        ..Default::default()
    })
    .await;
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
    let store_ports = rows(&sim, "portaSplitter");
    let free = store_ports
        .iter()
        .find(|(_, r)| r["status"] == "LIVRE")
        .unwrap()
        .0;
    let free = sim.remote_fid("portaSplitter", free);
    let maria = person("990001", "52998224725", "Maria");

    // Push: one property, connected to the port, its client made with the document.
    assert_eq!(
        write(&oz, &free, PortChange::Occupy(&maria)).await,
        PortWrite::Written
    );
    let writes = sim.state.writes();
    let created = writes
        .iter()
        .find(|w| w.feature == "properties" && w.action == "create")
        .unwrap();
    let (splitter, n) = free.rsplit_once(':').unwrap();
    assert_eq!(created.body["connector"], splitter);
    assert_eq!(created.body["port"].to_string(), n);
    assert_eq!(created.body["external_id"], "chave1:990001");
    assert_eq!(created.body["client"]["code"], "990001");
    assert_eq!(
        created.body["client"]["observation"],
        "CPF/CNPJ 52998224725"
    );
    assert_eq!(created.body["auto_connect"], false);
    // Idempotent: the port already shows Maria, nothing is written.
    let count = sim.state.writes().len();
    assert_eq!(
        write(&oz, &free, PortChange::Occupy(&maria)).await,
        PortWrite::Written
    );
    assert_eq!(sim.state.writes().len(), count);
    // Someone else is never written over.
    let joao = person("990002", "11222333000181", "João");
    match oz
        .set_port_customer(&free, PortChange::Occupy(&joao), "chave1")
        .await
        .unwrap()
    {
        PortWrite::Other(c) => assert_eq!(c.contract.as_deref(), Some("990001")),
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.state.writes().len(), count);
    // Release of ours: the property goes, the port is free.
    assert_eq!(
        write(&oz, &free, PortChange::Free(&maria)).await,
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert_eq!(
        (last.feature.as_str(), last.action.as_str()),
        ("properties", "delete")
    );
    let now = common::all_pages(oz.ports(ListQuery {
        fid: Some(free.clone()),
        ..Default::default()
    }))
    .await;
    assert_eq!(now[0].records[0].status, PortStatus::Free);
    assert_eq!(
        write(&oz, &free, PortChange::Free(&maria)).await,
        PortWrite::NothingThere
    );

    // A property the gateway did not create: the release only detaches its client; the drop
    // stays (OCCUPIED, nobody), and the client, on no property, can be put on another port.
    let (taken, r) = store_ports
        .iter()
        .find(|(_, r)| r["status"] == "OCUPADA")
        .unwrap();
    let taken = sim.remote_fid("portaSplitter", *taken);
    let theirs = CustomerRecord {
        contract: r["contrato"].as_str().unwrap().into(),
        document: r["documento"]
            .as_str()
            .unwrap()
            .chars()
            .filter(char::is_ascii_digit)
            .collect(),
        name: r["nomeCliente"].as_str().unwrap().into(),
    };
    assert_eq!(
        write(&oz, &taken, PortChange::Free(&theirs)).await,
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert_eq!(
        (last.action.as_str(), &last.body["client"]),
        ("update", &Value::Null)
    );
    let now = &common::all_pages(oz.ports(ListQuery {
        fid: Some(taken.clone()),
        ..Default::default()
    }))
    .await[0]
        .records[0];
    assert_eq!(
        (now.status, now.customer.is_none()),
        (PortStatus::Occupied, true)
    );
    assert_eq!(
        write(&oz, &free, PortChange::Occupy(&theirs)).await,
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert!(
        last.body["client"].is_string(),
        "the existing client, by id: {}",
        last.body
    );
    // A port gone from the platform cannot take a customer: a final NOT_FOUND.
    let gone = format!("{}:99", splitter);
    let err = oz
        .set_port_customer(&gone, PortChange::Occupy(&joao), "chave1")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND");
}

/// A customer released from a port keeps their client (on no property); someone else's client
/// put on that port later is another client, and the customer can still be pushed to another
/// port with theirs.
#[tokio::test]
async fn a_released_customer_s_client_is_never_confused_with_the_next_one_on_the_port() {
    let sim = ozmap_sim(SimConfig {
        boxes: 20,
        seed: 11,
        ..Default::default()
    })
    .await;
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
    let free: Vec<i64> = rows(&sim, "portaSplitter")
        .into_iter()
        .filter(|(_, r)| r["status"] == "LIVRE")
        .map(|(fid, _)| fid)
        .take(2)
        .collect();
    let first = sim.remote_fid("portaSplitter", free[0]);
    let second = sim.remote_fid("portaSplitter", free[1]);
    let ana = person("991001", "52998224725", "Ana");
    assert_eq!(
        write(&oz, &first, PortChange::Occupy(&ana)).await,
        PortWrite::Written
    );
    assert_eq!(
        write(&oz, &first, PortChange::Free(&ana)).await,
        PortWrite::Written
    );
    // Someone else puts their customer on the port Ana left, on the platform itself.
    common::edit(
        &sim,
        "portaSplitter",
        free[0],
        &[
            ("status", json!("OCUPADA")),
            ("contrato", json!("OUTRO-1")),
            ("documento", json!("11222333000181")),
            ("nomeCliente", json!("Outro")),
        ],
    );
    assert_eq!(
        write(&oz, &second, PortChange::Occupy(&ana)).await,
        PortWrite::Written
    );
    let last = sim.state.writes().last().unwrap().clone();
    assert!(
        last.body["client"].is_string(),
        "Ana's own client, by id: {}",
        last.body
    );
    let clients = oz.ports(ListQuery {
        fids: Some(vec![first.clone(), second.clone()]),
        ..Default::default()
    });
    let ports = common::all_pages(clients).await;
    let contracts: Vec<Option<String>> = ports[0]
        .records
        .iter()
        .map(|p| p.customer.as_ref().and_then(|c| c.contract.clone()))
        .collect();
    assert_eq!(
        contracts,
        vec![Some("OUTRO-1".into()), Some("991001".into())]
    );
    assert_eq!(ports[0].records[1].status, PortStatus::Occupied);
}

/// A person's client (code WP-T4, notes around its CPF in `observation`) is taken by a push
/// of the same contract: the property is written first and the client edited only where it
/// disagrees. The same document changes nothing; another document changes only the document
/// in the text, the notes kept; a push that fails leaves the client as it was.
#[tokio::test]
async fn an_existing_client_is_edited_in_place_never_replaced() {
    let sim = ozmap_sim(SimConfig {
        boxes: 20,
        seed: 9,
        ..Default::default()
    })
    .await;
    let oz = ozmap_client(&sim.url, "integracao", "geosite");
    let store_ports = rows(&sim, "portaSplitter");
    let (taken, row) = store_ports
        .iter()
        .find(|(_, r)| r["status"] == "OCUPADA" && r["contrato"].is_string())
        .unwrap();
    let notes = "CPF/CNPJ 529.982.247-25 | tel (85) 98877-6655 | portao azul | vencimento dia 10";
    sim.state.set_client_observation(*taken, notes);
    let contract = row["contrato"].as_str().unwrap().to_owned();
    let name = row["nomeCliente"].as_str().unwrap_or("Cliente").to_owned();
    let taken = sim.remote_fid("portaSplitter", *taken);
    let theirs = person(&contract, "52998224725", &name);
    // The person's property keeps its drop; the client, on no property now, keeps its notes.
    assert_eq!(
        write(&oz, &taken, PortChange::Free(&theirs)).await,
        PortWrite::Written
    );
    let mut free = store_ports
        .iter()
        .filter(|(_, r)| r["status"] == "LIVRE")
        .map(|(fid, _)| sim.remote_fid("portaSplitter", *fid));
    let (first, second) = (free.next().unwrap(), free.next().unwrap());
    let count = sim.state.writes().len();

    // The same document: the property is made with the client as it is; nothing is edited.
    assert_eq!(
        write(&oz, &first, PortChange::Occupy(&theirs)).await,
        PortWrite::Written
    );
    let since: Vec<_> = sim.state.writes()[count..].to_vec();
    assert_eq!(
        since
            .iter()
            .map(|w| (w.feature.as_str(), w.action.as_str()))
            .collect::<Vec<_>>(),
        [("properties", "create")],
        "no client edit: {since:?}"
    );
    assert_eq!(since[0].body["clientGot"]["observation"], notes);

    // Another document: only its part of the text changes, after the property is made.
    write(&oz, &first, PortChange::Free(&theirs)).await;
    let count = sim.state.writes().len();
    let moved = person(&contract, "11222333000181", &name);
    assert_eq!(
        write(&oz, &second, PortChange::Occupy(&moved)).await,
        PortWrite::Written
    );
    let since: Vec<_> = sim.state.writes()[count..].to_vec();
    assert_eq!(
        since
            .iter()
            .map(|w| (w.feature.as_str(), w.action.as_str()))
            .collect::<Vec<_>>(),
        [("properties", "create"), ("ftth-clients", "update")],
        "the property first: {since:?}"
    );
    assert_eq!(
        since[1].body["observation"],
        "CPF/CNPJ 11222333000181 | tel (85) 98877-6655 | portao azul | vencimento dia 10"
    );
    assert!(
        since[1].body.get("name").is_none(),
        "the name is the person's"
    );

    // A push that fails (its port refused) leaves the client untouched.
    write(&oz, &second, PortChange::Free(&moved)).await;
    let refusal = sim
        .state
        .refuse(axum::http::Method::POST, "/api/v2/properties", None);
    let count = sim.state.writes().len();
    let other = person(&contract, "52998224725", &name);
    assert!(oz
        .set_port_customer(&first, PortChange::Occupy(&other), "chave1")
        .await
        .is_err());
    refusal.release();
    assert!(
        sim.state.writes()[count..]
            .iter()
            .all(|w| w.feature != "ftth-clients"),
        "no client edit before the property"
    );
}
