//! The live side end to end: `syncProgress` over both WebSocket protocols (joining snapshot,
//! order, completion), many subscribers, a lagging subscriber, revoked keys, keep-alive, two
//! gateway processes on one PostgreSQL, and `/metrics`; the runs followed are of both platforms.

mod common;

use mapping_gateway::simulator::SimPlatform;

use common::{Engine, Subscription, TestApp, LEGACY_WS, TRANSPORT_WS};
use mapping_gateway::access::Role;
use mapping_gateway::simulator::Faults;
use serde_json::{json, Value};

const PROGRESS: &str = "subscription($r: ID, $i: ID) {
  syncProgress(runId: $r, integrationId: $i) {
    runId integrationId sequence lagged mode status phase item page pages processed total
    created updated deleted unchanged orphaned message at
  }
}";

/// The `syncProgress` payload of a subscription result, which must not be an error.
fn progress(result: &Value) -> Value {
    assert!(result.get("errors").is_none(), "{result}");
    result["data"]["syncProgress"].clone()
}

/// Events strictly ordered by sequence number, ending with the run's end.
fn assert_ordered_to_the_end(events: &[Value], run_id: &str) {
    assert!(!events.is_empty());
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["sequence"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(events.iter().all(|e| e["runId"] == run_id));
    let last = events.last().unwrap();
    assert_eq!(last["phase"], "FINISHED", "{last}");
    assert_eq!(last["status"], "SUCCEEDED", "{last}");
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e["phase"] != "FINISHED" && e["status"] == "RUNNING"));
}

async fn start_full(app: &TestApp, id: &str) -> String {
    start(app, id, "FULL").await
}

async fn start(app: &TestApp, id: &str, mode: &str) -> String {
    app.ok(
        "mutation($i: ID!, $m: SyncMode!) { startSync(integrationId: $i, mode: $m) { id } }",
        json!({ "i": id, "m": mode }),
    )
    .await["startSync"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Follows the integration's stream until the end of `run_id`.
async fn until_end(sub: &mut Subscription, run_id: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = progress(&sub.next().await.expect("the integration stream goes on"));
        if event["runId"] != run_id {
            continue;
        }
        let done = event["phase"] == "FINISHED";
        events.push(event);
        if done {
            return events;
        }
    }
}

on_every_platform! {
    async fn both_protocols_follow_a_run_from_a_joining_snapshot(app: TestApp) {
        let (sim, id, _) = common::linked_simulator(&app, 120, 31).await;
        // Slow listings, so that the run is well under way when the subscribers join.
        sim.state.set_faults(Faults { latency_ms: 15, ..Default::default() });
        let mut watcher = Subscription::start(&app.ws_url(), TRANSPORT_WS, &app.admin_key, PROGRESS, json!({ "i": id })).await;
        app.wait_subscribers(1).await;
        let run = start_full(&app, &id).await;
        // Wait for a written page, told by the integration's stream.
        let mut seen = Vec::new();
        loop {
            let event = progress(&watcher.next().await.unwrap());
            let applying = event["phase"] == "APPLYING";
            seen.push(event);
            if applying {
                break;
            }
        }
        let joined_at = seen.last().unwrap()["sequence"].as_i64().unwrap();
        let mut joiners = Vec::new();
        for protocol in [TRANSPORT_WS, LEGACY_WS] {
            joiners.push(Subscription::start(&app.ws_url(), protocol, &app.admin_key, PROGRESS, json!({ "r": run })).await);
        }
        let mut finals = Vec::new();
        for joiner in &mut joiners {
            // A run's stream completes after its terminal event.
            let events: Vec<Value> = joiner.collect().await.iter().map(progress).collect();
            assert!(events[0]["sequence"].as_i64().unwrap() >= joined_at, "starts from the current state");
            assert_ne!(events[0]["phase"], "STARTING", "joined mid-run: {}", events[0]);
            assert_ordered_to_the_end(&events, &run);
            finals.push(events.last().unwrap().clone());
        }
        seen.extend(until_end(&mut watcher, &run).await);
        assert_ordered_to_the_end(&seen, &run);
        assert_eq!(seen[0]["phase"], "STARTING", "the watcher saw the run begin");
        let applying = seen.iter().find(|e| e["phase"] == "APPLYING").unwrap();
        assert!(applying["page"].as_i64().unwrap() >= 1 && applying["item"].is_string(), "{applying}");
        assert!(applying["message"].as_str().unwrap().contains("page"), "{applying}");
        // The last event is the run's row, as syncRun reads it.
        let row = app.ok("query($r: ID!) { syncRun(id: $r) { counts { fetched created updated deleted unchanged orphaned } } }", json!({ "r": run })).await["syncRun"]["counts"].clone();
        for last in finals.iter().chain(seen.last()) {
            for field in ["created", "updated", "deleted", "unchanged", "orphaned"] {
                assert_eq!(last[field], row[field], "{field}: {last} vs {row}");
            }
            assert_eq!(last["processed"], row["fetched"]);
            assert_eq!(last["mode"], "FULL");
        }
        assert!(row["created"].as_i64().unwrap() > 100);
    }

    /// A run tells its subscribers it is deleting only when it deletes: runs with nothing gone
    /// and nothing deselected go from their listings to their end; a full run after a box went
    /// away on the platform, and a run after an item was deselected (its purge), say so.
    async fn a_run_tells_of_deleting_only_when_it_deletes(app: TestApp) {
        let w = common::world::world(&app, 20).await;
        let mut watcher = Subscription::start(&app.ws_url(), TRANSPORT_WS, &app.admin_key, PROGRESS, json!({ "i": w.id })).await;
        app.wait_subscribers(1).await;
        let mut follow = async |mode: &str| {
            let run = start(&app, &w.id, mode).await;
            let events = until_end(&mut watcher, &run).await;
            assert_ordered_to_the_end(&events, &run);
            let deleting = events.iter().find(|e| e["phase"] == "DELETING").cloned();
            (deleting, events.last().unwrap()["deleted"].as_i64().unwrap())
        };
        let set = "mutation($i: ID!, $items: [ElementItemKey!]!) { setElementSelection(integrationId: $i, items: $items) { elementSelection } }";
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "DISTRIBUTION", "CTO"] })).await;
        for mode in ["FULL", "INCREMENTAL", "FULL"] {
            assert_eq!(follow(mode).await, (None, 0), "{mode}: nothing gone");
        }
        let gone = common::world::pick(&w.sim, "cto", w.project, |_| true);
        w.delete("cto", gone);
        let (deleting, deleted) = follow("FULL").await;
        let deleting = deleting.expect("a full run that deletes says so");
        assert_eq!(deleting["message"], "deleting records gone from the platform", "{deleting}");
        assert!(deleted >= 1);
        app.ok(set, json!({ "i": w.id, "items": ["SERVICE", "CTO"] })).await;
        let (purging, purged) = follow("INCREMENTAL").await;
        assert!(purging.is_some() && purged >= 1, "a purge says so: {purging:?}, {purged}");
        assert_eq!(follow("INCREMENTAL").await, (None, 0), "nothing left to purge");
    }

    async fn two_hundred_subscribers_each_receive_every_event_in_order(app: TestApp) {
        let (_sim, id, _) = common::linked_simulator(&app, 40, 32).await;
        let mut subscribers = Vec::new();
        for _ in 0..200 {
            subscribers.push(Subscription::start(&app.ws_url(), TRANSPORT_WS, &app.admin_key, PROGRESS, json!({ "i": id })).await);
        }
        app.wait_subscribers(200).await;
        let run = start_full(&app, &id).await;
        let followed = futures::future::join_all(
            subscribers.iter_mut().map(|s| until_end(s, &run)),
        )
        .await;
        let first: Vec<i64> = followed[0].iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
        // Every event: from the run's creation (0) on, no number skipped.
        assert_eq!(first[0], 0);
        assert!(first.windows(2).all(|w| w[1] == w[0] + 1), "{first:?}");
        assert!(first.len() > 5, "{first:?}");
        for events in &followed {
            assert_ordered_to_the_end(events, &run);
            assert_eq!(events, &followed[0], "every subscriber saw the same events");
        }
    }

    async fn a_revoked_key_closes_its_subscriptions(app: TestApp) {
        let (_sim, id, _) = common::linked_simulator(&app, 5, 34).await;
        let key = app.key(Role::Viewer).await;
        let mut sub = Subscription::start(&app.ws_url(), TRANSPORT_WS, &key, PROGRESS, json!({ "i": id })).await;
        let key_id = mapping_gateway::access::authenticate(&app.state.db, &key).await.unwrap().unwrap().key_id.unwrap();
        mapping_gateway::access::revoke_key(&app.state.db, key_id).await.unwrap();
        assert_eq!(common::close_code(&mut sub.socket).await, Some(4403));
    }

    /// `mapping-gateway keys revoke` runs in a process of its own. On PostgreSQL it announces
    /// the change on the event bus and the serving instance ends the key's sockets at once (its
    /// periodic check runs only every 30 s, past this test's 10 s wait); on SQLite the check
    /// every 2 s finds it.
    async fn a_key_revoked_from_the_command_line_closes_its_subscriptions(app: TestApp) {
        let (_sim, id, _) = common::linked_simulator(&app, 5, 37).await;
        let key = app.key(Role::Viewer).await;
        let mut sub = Subscription::start(&app.ws_url(), TRANSPORT_WS, &key, PROGRESS, json!({ "i": id })).await;
        app.wait_subscribers(1).await;
        let key_id = mapping_gateway::access::authenticate(&app.state.db, &key).await.unwrap().unwrap().key_id.unwrap();
        let out = common::run_gateway(&["keys", "revoke", &key_id.to_string()], &app.db_config);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(common::close_code(&mut sub.socket).await, Some(4403));
    }

    async fn sync_progress_needs_a_run_or_an_integration(app: TestApp) {
        let mut none = Subscription::start(&app.ws_url(), TRANSPORT_WS, &app.admin_key, PROGRESS, json!({})).await;
        let answer = none.next().await.unwrap();
        assert_eq!(answer["errors"][0]["extensions"]["code"], "VALIDATION", "{answer}");
        let mut unknown = Subscription::start(&app.ws_url(), LEGACY_WS, &app.admin_key, PROGRESS, json!({ "r": mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::SYNC_RUN, 9999) })).await;
        let answer = unknown.next().await.unwrap();
        let code = answer["errors"][0]["extensions"]["code"].as_str().unwrap_or_default().to_owned();
        assert!(code == "NOT_FOUND" || code == "VALIDATION", "{answer}");
    }

    async fn metrics_count_requests_runs_and_platform_calls(app: TestApp) {
        let (_sim, id, _) = common::linked_simulator(&app, 10, 35).await;
        let before = scrape(&app.url, None).await;
        app.ok("query Probe { integrations { id } }", json!({})).await;
        let run = start_full(&app, &id).await;
        app.wait_run(&run, "id").await;
        let after = scrape(&app.url, None).await;
        let moved = |name: &str, labels: &[(&str, &str)]| metric(&after, name, labels) - metric(&before, name, labels);
        // Labelled by the root field, whatever the client named the operation; junk names and
        // fields the schema lacks cannot add labels.
        assert!(moved("mgw_http_requests_total", &[("operation", "integrations"), ("code", "ok")]) >= 1.0, "{after}");
        assert!(!after.contains("Probe"), "a client's operation name is no label");
        for n in 0..30 {
            app.post(Some(&app.admin_key), &format!("query Junk{n} {{ gateways {{ kind }} }}"), json!({})).await;
            app.post(Some(&app.admin_key), &format!("query {{ junk{n} }}"), json!({})).await;
        }
        let squatted = scrape(&app.url, None).await;
        assert!(!squatted.contains("Junk") && !squatted.contains("junk"), "{squatted}");
        assert!(metric(&squatted, "mgw_http_requests_total", &[("operation", "gateways"), ("code", "ok")]) >= 30.0);
        assert!(moved("mgw_sync_runs_total", &[("mode", "FULL"), ("status", "SUCCEEDED")]) >= 1.0, "{after}");
        assert!(moved("mgw_sync_records_total", &[("kind", "created")]) > 0.0);
        assert!(moved("mgw_platform_requests_total", &[("status", "200")]) > 0.0, "{after}");
        // Platform endpoints are labelled from a fixed set: route words and `:id`, no more
        // than five segments.
        for line in after.lines().filter(|l| l.starts_with("mgw_platform_requests_total{")) {
            let endpoint = line.split("endpoint=\"").nth(1).and_then(|r| r.split('"').next()).unwrap();
            let segments: Vec<&str> = endpoint.split('/').skip(1).collect();
            assert!(endpoint.starts_with('/') && segments.len() <= 5, "{line}");
            assert!(segments.iter().all(|s| *s == ":id" || s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')), "{line}");
        }
        assert!(moved("mgw_events_published_total", &[]) > 0.0);
        assert!(after.contains("mgw_websocket_connections") && after.contains("mgw_subscriptions"));
        assert!(after.contains("mgw_sync_run_duration_seconds_bucket"));
    }
}

/// A subscriber that stops reading loses the oldest events instead of slowing the sync: it is
/// told it lagged, given the current state, and the run ends meanwhile.
async fn a_slow_subscriber_is_told_it_lagged_and_never_slows_the_sync(engine: Engine) {
    let mut settings = common::test_settings();
    settings.sync.event_buffer = 4;
    let Some(app) = TestApp::start_configured(engine, Default::default(), settings).await else {
        return;
    };
    let (sim, id, _) = common::linked_simulator(&app, 60, 33).await;
    sim.state.set_faults(Faults {
        latency_ms: 5,
        ..Default::default()
    });
    let run = start_full(&app, &id).await;
    let run_id = mapping_gateway::graphql::ids::decode(
        mapping_gateway::graphql::ids::SYNC_RUN,
        &async_graphql::ID(run.clone()),
    )
    .unwrap();
    // A subscriber that reads its first event, then nothing while the run goes on.
    let mut slow = mapping_gateway::events::follow(
        app.state.db.clone(),
        app.state.events.clone(),
        mapping_gateway::events::Filter {
            integration_id: None,
            run_id: Some(run_id),
        },
    );
    use futures::StreamExt;
    let first = slow.next().await.unwrap().unwrap();
    assert!(!first.lagged);
    let dropped_before = app.state.events.dropped();
    // The run ends (told to another subscriber) while the slow one is stuck.
    let done = app.wait_run(&run, "counts { fetched }").await;
    assert_eq!(done["status"], "SUCCEEDED");
    assert!(done["counts"]["fetched"].as_i64().unwrap() > 0);
    let next = slow.next().await.unwrap().unwrap();
    assert!(next.lagged, "told it fell behind");
    assert!(
        next.progress.is_terminal(),
        "then given the current state: {:?}",
        next.progress
    );
    assert!(slow.next().await.is_none(), "and the run's stream ends");
    assert!(app.state.events.dropped() > dropped_before);
    let metrics = scrape(&app.url, None).await;
    assert!(
        metric(&metrics, "mgw_events_dropped_total", &[]) > 0.0,
        "{metrics}"
    );
}

each_engine!(a_slow_subscriber_is_told_it_lagged_and_never_slows_the_sync);

/// `/metrics` of the gateway at `base`, which must answer 200 in the text format.
async fn scrape(base: &str, token: Option<&str>) -> String {
    let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain"), "{kind}");
    response.text().await.unwrap()
}

/// The sum of a metric's samples whose labels include `labels`.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Keep-alive: a WebSocket ping and the protocol's own message, every `WS_KEEPALIVE_SECS`.
async fn keepalive_pings_arrive(engine: Engine) {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let limits = mapping_gateway::config::Limits {
        ws_keepalive_secs: 1,
        ..Default::default()
    };
    let Some(app) = TestApp::start_with(engine, limits).await else {
        return;
    };
    for (protocol, expected) in [(TRANSPORT_WS, "ping"), (LEGACY_WS, "ka")] {
        let mut socket = common::connect(&app.ws_url(), protocol).await;
        common::send(
            &mut socket,
            json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } }),
        )
        .await;
        let (mut frame, mut message) = (false, false);
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while !(frame && message) {
                match socket.next().await.unwrap().unwrap() {
                    Message::Ping(_) => frame = true,
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(&t).unwrap();
                        message |= v["type"] == expected;
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("keep-alive within 10 s");
    }
}

each_engine!(keepalive_pings_arrive);

/// Two gateway processes on one PostgreSQL database: a run started on A is followed to its end
/// by subscribers on B, one that was there before it started and one that joins it.
async fn a_run_on_one_instance_is_followed_on_another(platform: SimPlatform) {
    let Some((db, sim, admin)) = common::shared_postgres_on(platform, 80, 36).await else {
        return;
    };
    sim.state.set_faults(Faults {
        latency_ms: 10,
        ..Default::default()
    });
    // One after the other: each migrates the database at start.
    let (a, base_a) = common::serve_on(&db, &admin, &[]);
    let (b, base_b) = common::serve_on(&db, &admin, &[("METRICS_TOKEN", "scrape-token".into())]);
    let ws_b = format!("{}/graphql/ws", base_b.replacen("http://", "ws://", 1));

    let on_a = |query: &'static str, variables: Value| {
        common::graphql_at(&base_a, &admin, query, variables)
    };
    let id = common::link_over_http(&base_a, &admin, &sim).await;
    let mut before =
        Subscription::start(&ws_b, TRANSPORT_WS, &admin, PROGRESS, json!({ "i": id })).await;
    // In place on B before the run starts on A (B's gauge of open subscriptions says so).
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let text = scrape(&base_b, Some("scrape-token")).await;
            if metric(&text, "mgw_subscriptions", &[]) >= 1.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the subscription is in place on B");
    let run = on_a(
        "mutation($i: ID!) { startSync(integrationId: $i, mode: FULL) { id } }",
        json!({ "i": id }),
    )
    .await["startSync"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut joiner =
        Subscription::start(&ws_b, LEGACY_WS, &admin, PROGRESS, json!({ "r": run })).await;
    let seen = until_end(&mut before, &run).await;
    assert_ordered_to_the_end(&seen, &run);
    // B reads the row when told, so it may see a later state than the one announced (states
    // coalesce), but it sees the run live, page by page, and its end.
    assert!(seen.iter().any(|e| e["phase"] == "APPLYING"), "{seen:?}");
    assert!(seen.len() > 3, "live events crossed instances: {seen:?}");
    let joined: Vec<Value> = joiner.collect().await.iter().map(progress).collect();
    assert_ordered_to_the_end(&joined, &run);
    let row = common::graphql_at(
        &base_b,
        &admin,
        "query($r: ID!) { syncRun(id: $r) { counts { created } } }",
        json!({ "r": run }),
    )
    .await;
    assert_eq!(
        seen.last().unwrap()["created"],
        row["syncRun"]["counts"]["created"]
    );

    // B's metrics need its token; B relayed A's events to its subscribers.
    for wrong in [None, Some("Bearer nope")] {
        let mut request = reqwest::Client::new().get(format!("{base_b}/metrics"));
        if let Some(header) = wrong {
            request = request.header("authorization", header);
        }
        assert_eq!(request.send().await.unwrap().status(), 401);
    }
    let text = scrape(&base_b, Some("scrape-token")).await;
    assert!(
        metric(&text, "mgw_events_published_total", &[]) > 3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "mgw_sync_runs_total", &[]),
        0.0,
        "B ran nothing itself"
    );
    drop((a, b));
    common::drop_database(&db.database_url);
}

each_platform!(a_run_on_one_instance_is_followed_on_another);
