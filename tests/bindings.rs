//! Bindings end to end: bind, confirm (pushed), release (freed), cancel, retry; every rule of
//! `bindPort`; failed and retried deliveries, given up after the horizon; history. Both engines
//! and both platforms, the simulator over HTTP.

mod common;

use common::bindings::*;
use common::world;
use common::{Engine, TestApp};
use mapping_gateway::access::Role;
use mapping_gateway::graphql::ids;
use mapping_gateway::simulator::{Faults, SimPlatform};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Value};

on_every_platform! {
    async fn a_confirmed_binding_is_pushed_and_a_released_one_freed(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("990001", CPF)).await;
        assert_eq!(b["status"], "PENDING");
        assert_eq!(b["customer"]["document"], "52998224725", "stored as digits");
        assert_eq!(b["port"]["fid"], fid.as_str());
        assert!(b["pushStatus"].is_null(), "nothing queued before confirmation");
        let on_port = app.ok("query($p: ID!) { port(id: $p) { binding { id } } }", json!({ "p": port })).await;
        assert_eq!(on_port["port"]["binding"]["id"], b["id"], "the port is taken at once");
        assert!(writes_to(&w, &fid).is_empty(), "nothing written before confirmation");

        let confirmed = change(&app, "confirmBinding", &b["id"]).await;
        assert_eq!(confirmed["status"], "CONFIRMED");
        assert!(confirmed["confirmedAt"].is_string());
        let delivered = delivery(&app, &b["id"], "DELIVERED").await;
        assert_eq!(delivered["attempts"], 1);
        assert!(delivered["deliveredAt"].is_string());
        let key = app.ok("query($i: ID!) { integration(id: $i) { key } }", json!({ "i": w.id })).await["integration"]["key"].clone();
        let pushed = writes_to(&w, &fid);
        assert_eq!(pushed.len(), 1, "{pushed:?}");
        assert_eq!(pushed[0]["status"], "OCUPADA");
        assert_eq!(pushed[0]["contrato"], "990001");
        assert_eq!(pushed[0]["documento"], "52998224725");
        assert_eq!(pushed[0]["nomeCliente"], "Maria da Silva");
        assert_eq!(pushed[0]["origem"], key);

        let released = change(&app, "releaseBinding", &b["id"]).await;
        assert_eq!(released["status"], "RELEASED");
        assert!(released["releasedAt"].is_string());
        delivery(&app, &b["id"], "DELIVERED").await;
        let writes = writes_to(&w, &fid);
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes[1]["status"], "LIVRE");
        for field in ["contrato", "documento", "nomeCliente"] {
            assert!(writes[1][field].is_null(), "{field} cleared: {}", writes[1]);
        }
        // The port takes a customer again, and the contract may be bound again.
        let again = bind_port(&app, &port, customer("990001", CNPJ)).await;
        assert_eq!(again["customer"]["document"], "11222333000181");
        let cancelled = change(&app, "cancelBinding", &again["id"]).await;
        assert_eq!(cancelled["status"], "CANCELLED");

        let history = app.ok("query($i: ID!) { history(integrationId: $i, first: 50) { edges { node { action actor } } } }", json!({ "i": w.id })).await;
        let actions: Vec<String> = history["history"]["edges"].as_array().unwrap().iter()
            .map(|e| e["node"]["action"].as_str().unwrap().to_owned())
            .filter(|a| a.starts_with("BINDING_"))
            .collect();
        for expected in ["BINDING_CREATED", "BINDING_CONFIRMED", "BINDING_RELEASED", "BINDING_CANCELLED"] {
            assert!(actions.iter().any(|a| a == expected), "{expected} in {actions:?}");
        }
        let actors: Vec<&Value> = history["history"]["edges"].as_array().unwrap().iter()
            .filter(|e| e["node"]["action"].as_str().unwrap().starts_with("BINDING_"))
            .map(|e| &e["node"]["actor"])
            .collect();
        assert!(actors.iter().all(|a| *a == "test admin"), "{actors:?}");
    }

    async fn bind_port_names_each_rule_it_refuses(app: TestApp) {
        let w = world::world(&app, 30).await;
        // Distribution splitters too, to try binding one of their ports.
        app.ok(
            "mutation($i: ID!) { setElementSelection(integrationId: $i, items: [SERVICE, DISTRIBUTION, CTO]) { id } }",
            json!({ "i": w.id }),
        )
        .await;
        world::succeeded(&app, &w.id, "FULL").await;
        let ports = free_service_ports(&app, 3).await;
        let bind = "mutation($p: ID!, $c: BindingCustomerInput!) { bindPort(portId: $p, customer: $c) { id } }";
        let refused = |port: String, c: Value| {
            let app = &app;
            async move {
                let (_, body) = app.post(Some(&app.admin_key), bind, json!({ "p": port, "c": c })).await;
                assert!(body["data"].is_null() || body["data"]["bindPort"].is_null(), "{body}");
                (
                    body["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_owned(),
                    body["errors"][0]["message"].as_str().unwrap_or_default().to_owned(),
                )
            }
        };
        for bad in ["529.982.247-24", "111.111.111-11", "11111111111111", "11.222.333/0001-80", "123", "12345678901234567", "5299822472a"] {
            let (code, message) = refused(ports[0].0.clone(), customer("c1", bad)).await;
            assert_eq!(code, "VALIDATION", "{bad}: {message}");
            assert!(message.contains("CPF") || message.contains("CNPJ"), "{message}");
        }
        let (code, message) = refused(ports[0].0.clone(), json!({ "document": CPF, "contract": " ", "name": "x" })).await;
        assert_eq!(code, "VALIDATION");
        assert!(message.contains("contract"), "{message}");
        let (code, message) = refused(ports[0].0.clone(), json!({ "document": CPF, "contract": "c1", "name": "" })).await;
        assert_eq!(code, "VALIDATION");
        assert!(message.contains("name"), "{message}");

        // A port of a distribution splitter, and a port the platform has OCCUPIED.
        let distribution = entity::splitter::Entity::find()
            .filter(entity::splitter::Column::Kind.eq(entity::splitter::SplitterKind::Distribution))
            .one(&app.state.db).await.unwrap().expect("a distribution splitter");
        let dist_port = entity::port::Entity::find()
            .filter(entity::port::Column::SplitterId.eq(distribution.id))
            .one(&app.state.db).await.unwrap().expect("a port");
        let (code, message) = refused(ids::encode(ids::PORT, dist_port.id).0, customer("c1", CPF)).await;
        assert_eq!(code, "VALIDATION");
        assert!(message.contains("SERVICE"), "{message}");
        let occupied = entity::port::Entity::find()
            .filter(entity::port::Column::Status.eq(entity::port::PortStatus::Occupied))
            .filter(entity::port::Column::CustomerContract.is_not_null())
            .one(&app.state.db).await.unwrap();
        if let Some(occupied) = occupied {
            let (code, _) = refused(ids::encode(ids::PORT, occupied.id).0, customer("c-other", CPF)).await;
            assert_eq!(code, "CONFLICT");
        }

        let first = bind_port(&app, &ports[0].0, customer("c1", CPF)).await;
        let (code, message) = refused(ports[0].0.clone(), customer("c2", CPF)).await;
        assert_eq!(code, "CONFLICT");
        let first_id = first["id"].as_str().unwrap();
        assert!(message.contains(&format!("binding {first_id}")), "names the other binding by its API id: {message}");
        let (code, message) = refused(ports[1].0.clone(), customer("c1", CPF)).await;
        assert_eq!(code, "CONFLICT");
        assert!(message.contains("contract") && message.contains(first_id), "{message}");
        // What a person reads as the same contract is the same contract: invisible marks,
        // a soft hyphen and fullwidth letters are normalised away before the unique index.
        for alike in ["\u{200B}c1", "c1\u{200B}", "c\u{2060}1", "c\u{00AD}1", "\u{FEFF}c1", "ｃ1", "c１"] {
            let (code, message) = refused(ports[1].0.clone(), customer(alike, CPF)).await;
            assert_eq!(code, "CONFLICT", "{alike:?}: {message}");
        }
        let (code, _) = refused(ports[1].0.clone(), customer("c 1", CPF)).await;
        assert_eq!(code, "VALIDATION", "a space inside a contract");
        // The same document in fullwidth digits is the same document.
        let listed = app
            .ok("query($d: String!) { bindings(filter: { document: $d, contract: \"c\u{200B}1\" }) { totalCount } }", json!({ "d": "５２９.９８２.２４７-２５" }))
            .await;
        assert_eq!(listed["bindings"]["totalCount"], 1, "{listed}");

        // Transitions that do not apply name the current status.
        let (_, body) = app.post(Some(&app.admin_key), "mutation($i: ID!) { releaseBinding(id: $i) { id } }", json!({ "i": first["id"] })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("PENDING"), "{body}");
        change(&app, "confirmBinding", &first["id"]).await;
        for mutation in ["confirmBinding", "cancelBinding"] {
            let (_, body) = app.post(Some(&app.admin_key), &format!("mutation($i: ID!) {{ {mutation}(id: $i) {{ id }} }}"), json!({ "i": first["id"] })).await;
            assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION", "{mutation}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains("CONFIRMED"), "{body}");
        }

        // Roles: a VIEWER may not bind; an inactive integration takes no binding.
        let viewer = app.key(Role::Viewer).await;
        let code = app.error_code(Some(&viewer), bind, json!({ "p": ports[2].0, "c": customer("c3", CPF) })).await;
        assert_eq!(code, "FORBIDDEN");
        app.ok("mutation($i: ID!) { setIntegrationActive(id: $i, active: false) { id } }", json!({ "i": w.id })).await;
        let (code, _) = refused(ports[2].0.clone(), customer("c3", CPF)).await;
        assert_eq!(code, "INACTIVE_INTEGRATION");
    }

    async fn failed_deliveries_are_retried_with_backoff_or_marked_failed(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 2).await;
        // The platform answers 500 for a while: the delivery waits and tries again.
        w.sim.state.set_faults(Faults { error_rate: 1.0, ..Default::default() });
        let b = bind_port(&app, &ports[0].0, customer("880001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        let waiting = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let now = binding(&app, &b["id"]).await;
                if now["attempts"].as_i64().unwrap() >= 1 && now["lastError"].is_string() {
                    return now;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("an attempt within 20 s");
        assert_eq!(waiting["pushStatus"], "PENDING", "still queued: {waiting}");
        w.sim.state.set_faults(Faults::default());
        let delivered = delivery(&app, &b["id"], "DELIVERED").await;
        assert!(delivered["attempts"].as_i64().unwrap() >= 2, "{delivered}");
        assert_eq!(writes_to(&w, &ports[0].1).iter().filter(|r| r["status"] == "OCUPADA").count(), 1);

        // A port the platform no longer has: its answer is final, the delivery FAILED with the
        // platform's message, and retryPush queues it again.
        let gone = bind_port(&app, &ports[1].0, customer("880002", CNPJ)).await;
        w.delete_port(&ports[1].1);
        change(&app, "confirmBinding", &gone["id"]).await;
        let failed = delivery(&app, &gone["id"], "FAILED").await;
        assert_eq!(failed["attempts"], 1, "not retried by itself: {failed}");
        assert!(failed["lastError"].as_str().unwrap().len() > 3, "{failed}");
        assert_eq!(failed["status"], "CONFIRMED", "the binding itself stands");
        let retried = change(&app, "retryPush", &gone["id"]).await;
        assert_eq!(retried["id"], gone["id"]);
        let again = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let now = binding(&app, &gone["id"]).await;
                if now["pushStatus"] == "FAILED" {
                    return now;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("tried again within 20 s");
        assert!(again["lastError"].is_string());
        // The retry is in the history with the key that asked, and the delivery before and after.
        let history = app
            .ok("query($i: ID!) { history(integrationId: $i, first: 50) { edges { node { action actor before after } } } }", json!({ "i": w.id }))
            .await;
        let retry = history["history"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .find(|n| n["action"] == "BINDING_RETRIED")
            .unwrap_or_else(|| panic!("{history}"))
            .clone();
        assert_eq!(retry["actor"], "test admin", "{retry}");
        assert_eq!(retry["before"]["pushStatus"], "FAILED", "{retry}");
        assert_eq!(retry["before"]["lastError"], failed["lastError"], "{retry}");
        assert_eq!(retry["after"]["pushStatus"], "PENDING", "{retry}");
        assert_eq!(retry["after"]["contract"], "880002", "{retry}");
        let code = app.error_code(Some(&app.admin_key), "mutation($i: ID!) { retryPush(bindingId: $i) { id } }", json!({ "i": b["id"] })).await;
        assert_eq!(code, "VALIDATION", "a delivered push is not retried");
    }

    async fn bindings_move_to_other_ports_and_survive_their_ports(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_ports_apart(&app, 3).await;
        let b = bind_port(&app, &ports[0].0, customer("550001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        let rebind = "mutation($i: ID!, $p: ID!) { rebindBinding(id: $i, portId: $p) { id status port { fid } } }";
        let moved = app.ok(rebind, json!({ "i": b["id"], "p": ports[1].0 })).await["rebindBinding"].clone();
        assert_eq!(moved["status"], "CONFIRMED");
        assert_eq!(moved["port"]["fid"], ports[1].1.as_str());
        delivery(&app, &b["id"], "DELIVERED").await;
        let old = writes_to(&w, &ports[0].1);
        assert_eq!(old.last().unwrap()["status"], "LIVRE", "the old port freed: {old:?}");
        assert_eq!(writes_to(&w, &ports[1].1)[0]["contrato"], "550001");

        // The port disappears from the platform: a full sync orphans the binding, never deletes it.
        w.delete_port(&ports[1].1);
        let run = world::succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["orphaned"], 1, "{run}");
        let orphan = binding(&app, &b["id"]).await;
        assert_eq!(orphan["status"], "ORPHANED");
        assert!(orphan["port"].is_null());
        assert!(orphan["orphanedFrom"]["boxFid"].is_string(), "{orphan}");
        let history = app.ok("query($i: ID!) { history(integrationId: $i, first: 50) { edges { node { action actor summary } } } }", json!({ "i": w.id })).await;
        let orphaned: Vec<&Value> = history["history"]["edges"].as_array().unwrap().iter()
            .map(|e| &e["node"])
            .filter(|n| n["action"] == "BINDING_ORPHANED")
            .collect();
        assert_eq!(orphaned.len(), 1, "{history}");
        assert_eq!(orphaned[0]["actor"], "test admin", "in the name of who started the sync");
        // Moved again: nothing to free on the platform, the new port gets the customer.
        let writes_before = common::port_writes(&w.sim).len();
        let moved = app.ok(rebind, json!({ "i": b["id"], "p": ports[2].0 })).await["rebindBinding"].clone();
        assert_eq!(moved["status"], "CONFIRMED");
        delivery(&app, &b["id"], "DELIVERED").await;
        let new_writes: Vec<_> = common::port_writes(&w.sim).into_iter().skip(writes_before).collect();
        assert_eq!(new_writes.len(), 1, "{new_writes:?}");
        assert_eq!(new_writes[0]["status"], "OCUPADA");
        // A PENDING binding cannot be moved.
        let pending = bind_port(&app, &ports[0].0, customer("550002", CNPJ)).await;
        let (_, body) = app.post(Some(&app.admin_key), rebind, json!({ "i": pending["id"], "p": ports[1].0 })).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION", "{body}");
    }

    async fn binding_events_tell_every_status_and_delivery_change(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, _) = free_service_ports(&app, 1).await.remove(0);
        let mut events = common::Subscription::start(
            &app.ws_url(),
            common::TRANSPORT_WS,
            &app.admin_key,
            "subscription($i: ID!) { bindingEvents(integrationId: $i) { bindingId integrationId status pushStatus attempts lastError at } }",
            json!({ "i": w.id }),
        )
        .await;
        app.wait_subscribers(1).await;
        let b = bind_port(&app, &port, customer("440001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        let mut seen = Vec::new();
        loop {
            let event = events.next().await.expect("the stream goes on");
            let e = event["data"]["bindingEvents"].clone();
            assert_eq!(e["bindingId"], b["id"], "{event}");
            assert_eq!(e["integrationId"], w.id.as_str());
            let delivered = e["pushStatus"] == "DELIVERED";
            seen.push((e["status"].as_str().unwrap().to_owned(), e["pushStatus"].as_str().map(str::to_owned)));
            if delivered {
                break;
            }
        }
        assert_eq!(seen[0], ("PENDING".to_owned(), None), "{seen:?}");
        assert!(seen.contains(&("CONFIRMED".to_owned(), Some("PENDING".to_owned()))), "{seen:?}");
        assert_eq!(seen.last().unwrap(), &("CONFIRMED".to_owned(), Some("DELIVERED".to_owned())));
    }

    async fn syncs_report_conflicts_and_settle_deliveries_without_overwriting(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        let b = bind_port(&app, &port, customer("330001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        delivery(&app, &b["id"], "DELIVERED").await;
        // Someone puts another customer on the port, on the platform.
        let fid_value = w.store_fid("portaSplitter", &fid);
        w.save("portaSplitter", fid_value, &[("status", json!("OCUPADA")), ("contrato", json!("OTHER-9")), ("documento", json!("11222333000181")), ("nomeCliente", json!("Outro"))]);
        let run = world::succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["conflicts"], 1, "{run}");
        let seen = binding(&app, &b["id"]).await;
        assert_eq!(seen["status"], "CONFIRMED", "the binding stands");
        assert_eq!(seen["customer"]["contract"], "330001", "and keeps its customer");
        assert_eq!(seen["conflict"]["platformContract"], "OTHER-9", "{seen}");
        let pushes = writes_to(&w, &fid).iter().filter(|r| r["contrato"] == "330001").count();
        assert_eq!(pushes, 1, "the gateway did not write over the platform");

        // The platform shows the binding's customer again: the conflict clears, and a pending
        // push of it is marked done by the sync.
        w.save("portaSplitter", fid_value, &[("status", json!("OCUPADA")), ("contrato", json!("330001")), ("documento", json!("52998224725")), ("nomeCliente", json!("Maria da Silva"))]);
        let binding_id = ids::decode(ids::BINDING, &async_graphql::ID(b["id"].as_str().unwrap().into())).unwrap();
        let integration_id = ids::decode(ids::INTEGRATION, &async_graphql::ID(w.id.clone())).unwrap();
        use sea_orm::{ActiveModelTrait, ActiveValue::Set};
        entity::push_outbox::ActiveModel {
            binding_id: Set(binding_id),
            integration_id: Set(integration_id),
            action: Set(entity::push_outbox::PushAction::Push),
            payload: Set(json!({ "contract": "330001", "document": "52998224725", "name": "Maria da Silva" })),
            status: Set(entity::push_outbox::PushStatus::Pending),
            attempts: Set(0),
            last_error: Set(None),
            next_attempt_at: Set(chrono::Utc::now() + chrono::Duration::hours(1)),
            created_at: Set(chrono::Utc::now()),
            delivered_at: Set(None),
            port_fid: Set(Some(fid.clone())),
            ..Default::default()
        }
        .insert(&app.state.db)
        .await
        .unwrap();
        assert_eq!(binding(&app, &b["id"]).await["pushStatus"], "PENDING");
        let run = world::succeeded(&app, &w.id, "FULL").await;
        assert_eq!(run["counts"]["conflicts"], 0, "{run}");
        let settled = binding(&app, &b["id"]).await;
        assert!(settled["conflict"].is_null(), "{settled}");
        assert_eq!(settled["pushStatus"], "DELIVERED", "{settled}");
        assert_eq!(settled["attempts"], 0, "settled by the sync, not by a new attempt");
    }

    async fn a_rate_limited_platform_still_gets_each_push_once(app: TestApp) {
        let w = synced_world(&app).await;
        let (port, fid) = free_service_ports(&app, 1).await.remove(0);
        // The next three platform calls are answered 429 with Retry-After: 1.
        w.sim.state.set_faults(Faults { burst_429: 3, retry_after_secs: 1, ..Default::default() });
        let b = bind_port(&app, &port, customer("220001", CPF)).await;
        change(&app, "confirmBinding", &b["id"]).await;
        let delivered = delivery(&app, &b["id"], "DELIVERED").await;
        assert!(delivered["lastError"].is_null(), "{delivered}");
        let pushes: Vec<Value> = writes_to(&w, &fid);
        assert_eq!(pushes.len(), 1, "one write after the 429s: {pushes:?}");
        assert_eq!(pushes[0]["contrato"], "220001");
    }

    /// The worker keeps one platform client (and its session) per integration, and delivers a
    /// burst several at a time: each push is one write, the round one read of its ports, and the
    /// burst one login.
    async fn a_burst_of_pushes_logs_in_once_and_costs_one_request_each(app: TestApp) {
        use rand::Rng;
        let w = synced_world(&app).await;
        let ports = free_service_ports(&app, 12).await;
        let mut made = Vec::new();
        for (i, (port, _)) in ports.iter().enumerate() {
            let document: cpf::Cpf = rand::thread_rng().gen();
            made.push(bind_port(&app, port, customer(&format!("23{i:04}"), document.as_str())).await);
        }
        // Confirmed while the integration is inactive, they wait, then go out in one round.
        let active = "mutation($i: ID!, $a: Boolean!) { setIntegrationActive(id: $i, active: $a) { id } }";
        app.ok(active, json!({ "i": w.id, "a": false })).await;
        for b in &made {
            change(&app, "confirmBinding", &b["id"]).await;
        }
        let (calls, logins) = (w.sim.state.calls(), w.sim.state.logins());
        app.ok(active, json!({ "i": w.id, "a": true })).await;
        for (b, (_, fid)) in made.iter().zip(&ports) {
            delivery(&app, &b["id"], "DELIVERED").await;
            assert_eq!(writes_to(&w, fid).len(), 1, "one write for {fid}");
        }
        let new_logins = w.sim.state.logins() - logins;
        assert!(new_logins <= 1, "one login for the burst: {new_logins}");
        // Geosite: 12 writes, one read of the round's ports, and the port feature's columns
        // (`desc`), asked once per client. OZmap: each push reads its port (splitter, property)
        // and the client by code before it writes; the round's read is of splitters and their
        // properties.
        let per_push = match app.platform {
            SimPlatform::Geosite => 1,
            SimPlatform::Ozmap => 4,
        };
        assert_eq!(w.sim.state.calls() - calls - new_logins, 12 * per_push + 2, "one write per push");
    }
}

/// A delivery that keeps failing for longer than the horizon is given up as FAILED, with the
/// reason; before that it backs off and stays PENDING.
async fn transient_failures_give_up_after_the_horizon(engine: Engine, platform: SimPlatform) {
    let mut settings = common::test_settings();
    settings.delivery.give_up_after = std::time::Duration::from_secs(2);
    let Some(app) = TestApp::start_configured(engine, Default::default(), settings).await else {
        return;
    };
    let app = app.on(platform);
    let w = synced_world(&app).await;
    let ports = free_service_ports(&app, 1).await;
    w.sim.state.set_faults(Faults {
        error_rate: 1.0,
        ..Default::default()
    });
    let b = bind_port(&app, &ports[0].0, customer("560001", CPF)).await;
    change(&app, "confirmBinding", &b["id"]).await;
    let failed = delivery(&app, &b["id"], "FAILED").await;
    assert!(
        failed["lastError"]
            .as_str()
            .unwrap()
            .starts_with("gave up after"),
        "{failed}"
    );
    assert!(failed["attempts"].as_i64().unwrap() >= 2, "{failed}");
}

each_engine_and_platform!(transient_failures_give_up_after_the_horizon);
