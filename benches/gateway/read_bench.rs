//! The read benchmark: element trees against hand-written SQL, nearest free ports, and HTTP
//! throughput against `/healthz`.

use std::process::Command;
use std::time::Instant;

use sea_orm::{ConnectionTrait, EntityTrait};
use serde_json::{json, Value};

use mapping_gateway::access::Actor;
use mapping_gateway::catalog::ElementItem;
use mapping_gateway::config::DbConfig;
use mapping_gateway::server;
use mapping_gateway::sync::Mode;

use super::common::*;

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn p95(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() * 95 / 100).min(v.len() - 1)]
}

/// The tree of the first `n` elements, read with joins and shaped like the GraphQL answer.
pub(crate) async fn handwritten_tree(
    db: &sea_orm::DatabaseConnection,
    integration: i64,
    n: usize,
) -> anyhow::Result<String> {
    let sql = format!(
        "SELECT e.id AS eid, e.fid AS efid, e.name AS ename, s.id AS sid, s.fid AS sfid, s.kind AS kind, \
                p.number AS number, p.status AS status, b.id AS bid \
         FROM elements e \
         LEFT JOIN splitters s ON s.element_id = e.id \
         LEFT JOIN ports p ON p.splitter_id = s.id \
         LEFT JOIN bindings b ON b.port_id = p.id AND b.status IN ('PENDING', 'CONFIRMED') \
         WHERE e.id IN (SELECT id FROM elements WHERE integration_id = {integration} ORDER BY id LIMIT {n}) \
         ORDER BY e.id, s.fid_num, s.fid, p.number"
    );
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await?;
    let mut edges: Vec<Value> = Vec::new();
    let (mut last_e, mut last_s) = (None::<i64>, None::<i64>);
    for row in rows {
        let eid: i64 = row.try_get("", "eid")?;
        if last_e != Some(eid) {
            edges.push(json!({ "node": { "fid": row.try_get::<String>("", "efid")?, "name": row.try_get::<String>("", "ename")?, "splitters": [] } }));
            last_e = Some(eid);
            last_s = None;
        }
        let Some(sid) = row.try_get::<Option<i64>>("", "sid")? else {
            continue;
        };
        let splitters = edges.last_mut().unwrap()["node"]["splitters"]
            .as_array_mut()
            .unwrap();
        if last_s != Some(sid) {
            splitters.push(json!({ "fid": row.try_get::<String>("", "sfid")?, "kind": row.try_get::<String>("", "kind")?, "ports": [] }));
            last_s = Some(sid);
        }
        if let Some(number) = row.try_get::<Option<i32>>("", "number")? {
            let bid: Option<i64> = row.try_get("", "bid")?;
            splitters.last_mut().unwrap()["ports"]
                .as_array_mut()
                .unwrap()
                .push(json!({
                    "number": number, "status": row.try_get::<String>("", "status")?,
                    "binding": bid.map(|b| json!({ "id": b })),
                }));
        }
    }
    Ok(serde_json::to_string(
        &json!({ "data": { "elements": { "edges": edges } } }),
    )?)
}

pub(crate) fn wrk(url: &str, script: &str, seconds: u64) -> anyhow::Result<f64> {
    let path = std::env::temp_dir().join(format!("mgw-wrk-{}.lua", std::process::id()));
    std::fs::write(&path, script)?;
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-s"])
        .arg(&path)
        .arg(url)
        .output()
        .map_err(|e| anyhow::anyhow!("wrk is needed (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Refusals (busy, rate limits, errors) are answered fast: counted as throughput they would
    // flatter the number, so a run with any is not a measurement.
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx")) {
        anyhow::bail!("wrk saw answers other than 200 ({}): {text}", line.trim());
    }
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse::<f64>())
        })
        .ok_or_else(|| anyhow::anyhow!("no Requests/sec in wrk output: {text}"))?
        .map_err(Into::into)
}

/// A wrk script that POSTs `body` as JSON with the key.
fn script_for(body: &str, key: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {key}\"\n"
    )
}

pub(crate) async fn read_bench(
    boxes: usize,
    seconds: u64,
    rounds: usize,
    engine: &str,
    postgres_url: Option<&str>,
) -> anyhow::Result<()> {
    use mapping_gateway::access::{self, Role};
    let (child, sim) = spawn_simulator(boxes * 5 / 4)?;
    let db = fresh_db(engine, postgres_url, "read").await?;
    let config = DbConfig {
        database_url: db,
        master_key: Some(mapping_gateway::crypto::MasterKey::generate().1),
    };
    let mut state = server::open_with(&config, local_settings()).await?;
    let profile = Profile::attach(&mut state.db);
    let id = integration(&state, &sim).await?;
    mapping_gateway::selection::set(
        &state.db,
        &Actor::system("bench"),
        id,
        &[ElementItem::Service, ElementItem::Cto, ElementItem::Ceo],
    )
    .await
    .map_err(mapping_gateway::Error::into_anyhow)?;
    let started = Instant::now();
    engine_run(&state, &sim, Mode::Full).await?;
    let elements = mapping_gateway::store::plant::count(&state.db, "elements", "1 = 1")
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    let ports = mapping_gateway::store::plant::count(&state.db, "ports", "1 = 1")
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    eprintln!(
        "synced {elements} boxes, {ports} ports in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop(child);

    let limits = mapping_gateway::config::Limits {
        max_complexity: 10_000_000,
        ..Default::default()
    };
    let schema = mapping_gateway::graphql::schema_builder(&limits)
        .data(state.clone())
        .finish();
    let admin = Actor {
        key_id: None,
        name: "bench".into(),
        role: Role::Admin,
        personal_data: true,
    };
    let gid = mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::INTEGRATION, id);
    let page = |after: Option<String>| json!({ "i": gid, "after": after });
    // The cursor after the first 500 elements, for the second half of the 1,000-box tree.
    let first = schema
        .execute(async_graphql::Request::new("query($i: ID!) { elements(integrationId: $i, first: 500) { pageInfo { endCursor } } }")
            .variables(async_graphql::Variables::from_json(page(None)))
            .data(admin.clone()))
        .await;
    let cursor = first.data.into_json()?["elements"]["pageInfo"]["endCursor"]
        .as_str()
        .map(str::to_owned);
    let tree = "query($i: ID!, $after: String) {
      a: elements(integrationId: $i, first: 500) { edges { node { fid name splitters { fid kind ports { number status binding { id } } } } } }
      b: elements(integrationId: $i, first: 500, after: $after) { edges { node { fid name splitters { fid kind ports { number status binding { id } } } } } }
    }";
    let (mut gql, mut base) = (Vec::new(), Vec::new());
    profile.reset();
    let mut sizes = (0, 0);
    for _ in 0..rounds.max(1) {
        let t = Instant::now();
        let response = schema
            .execute(
                async_graphql::Request::new(tree)
                    .variables(async_graphql::Variables::from_json(page(cursor.clone())))
                    .data(admin.clone()),
            )
            .await;
        anyhow::ensure!(response.errors.is_empty(), "{:?}", response.errors);
        sizes.0 = serde_json::to_string(&response)?.len();
        gql.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        sizes.1 = handwritten_tree(&state.db, id, 1000).await?.len();
        base.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    profile.print("tree, both sides, all rounds");
    println!("| tree of 1,000 boxes | gateway {:.1} ms | hand-written SQL {:.1} ms | ratio {:.2} | JSON {} vs {} bytes |",
        median(gql.clone()), median(base.clone()), median(gql) / median(base), sizes.0, sizes.1);

    cost_calibration(&schema, &admin, &gid, tree, page(cursor.clone()), rounds).await?;

    let mut rng_state = 12345u64;
    let mut next = || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        (rng_state % 1_000_000) as f64 / 1_000_000.0
    };
    let (min_lat, min_lng, max_lat, max_lng) = mapping_gateway::simulator::network::CITY_BBOX;
    for radius in [200.0, 1000.0] {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..200 {
            let lat = min_lat + next() * (max_lat - min_lat);
            let lng = min_lng + next() * (max_lng - min_lng);
            let t = Instant::now();
            let hits = mapping_gateway::store::lookup::free_ports(
                &state.db,
                mapping_gateway::store::lookup::Near {
                    integration_id: id,
                    latitude: lat,
                    longitude: lng,
                    first: 10,
                },
                radius,
            )
            .await
            .map_err(mapping_gateway::Error::into_anyhow)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            found += hits.len();
        }
        println!("| freePorts, {elements} boxes, radius {radius} m | median {:.2} ms | p95 {:.2} ms | {:.1} ports found on average |",
            median(times.clone()), p95(times), found as f64 / 200.0);
    }

    let key = access::create_key(&state.db, "bench", Role::Viewer)
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?
        .secret;
    let router = mapping_gateway::http::router(
        state.clone(),
        &Default::default(),
        &mapping_gateway::http::Surface {
            graphiql: false,
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, router).await });
    let port_row = entity::port::Entity::find()
        .one(&state.db)
        .await?
        .expect("a port");
    let pid =
        mapping_gateway::graphql::ids::encode(mapping_gateway::graphql::ids::PORT, port_row.id);
    let body = json!({ "query": "query($p: ID!) { port(id: $p) { id number status } }", "variables": { "p": pid } }).to_string();
    let script = script_for(&body, &key);
    let bare = json!({ "query": "{ __typename }" }).to_string();
    let bare = script_for(&bare, &key);
    // What wrk will repeat, once by hand: the port's own answer, not an error.
    let answer: Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        answer["data"]["port"]["id"] == json!(pid),
        "port(id) answered {answer}"
    );
    let health = wrk(&format!("http://{addr}/healthz"), "", seconds)?;
    let graphql = wrk(&format!("http://{addr}/graphql"), &script, seconds)?;
    let typename = wrk(&format!("http://{addr}/graphql"), &bare, seconds)?;
    println!("| HTTP, wrk -t2 -c32, {seconds} s | port(id) {graphql:.0} req/s | /healthz {health:.0} req/s | ratio {:.2} | `{{ __typename }}` {typename:.0} req/s |", graphql / health);
    port_stages(&schema, &state, port_row.id, &pid).await
}

/// Where a `port(id)` request's time goes, stage by stage, one request at a time in this
/// process (no HTTP, no key check): the row's lookup alone, parsing the document, the whole
/// execution (parse, validation, the extensions, the lookup), and writing the answer as JSON.
/// Set against the HTTP rate, the rest is the transport, the key check and the handler.
async fn port_stages(
    schema: &mapping_gateway::graphql::AppSchema,
    state: &mapping_gateway::state::AppState,
    id: i64,
    pid: &str,
) -> anyhow::Result<()> {
    const N: u32 = 5000;
    let per = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / f64::from(N);
    let viewer = Actor {
        key_id: None,
        name: "bench".into(),
        role: mapping_gateway::access::Role::Viewer,
        personal_data: false,
    };
    let query = "query($p: ID!) { port(id: $p) { id number status } }";
    let t = Instant::now();
    for _ in 0..N {
        mapping_gateway::store::point::by_id::<entity::port::Entity>(
            &state.db,
            mapping_gateway::graphql::ids::PORT,
            id,
        )
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    }
    let lookup = per(t);
    // The same lookup as `port(id)` makes it: on the caller's thread where it can (SQLite).
    let t = Instant::now();
    for _ in 0..N {
        mapping_gateway::store::point::by_id_here::<entity::port::Entity>(
            state.points.as_deref(),
            &state.db,
            mapping_gateway::graphql::ids::PORT,
            id,
        )
        .await
        .map_err(mapping_gateway::Error::into_anyhow)?;
    }
    let here = per(t);
    let t = Instant::now();
    for _ in 0..N {
        async_graphql::parser::parse_query(query)?;
    }
    let parse = per(t);
    let request = || {
        async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(json!({ "p": pid })))
            .data(viewer.clone())
    };
    let t = Instant::now();
    for _ in 0..N {
        schema.execute(request()).await;
    }
    let execute = per(t);
    // The same pipeline with nothing to look up: what validation and the extensions cost.
    let t = Instant::now();
    for _ in 0..N {
        schema
            .execute(async_graphql::Request::new("query { __typename }").data(viewer.clone()))
            .await;
    }
    let bare = per(t);
    let answer = schema.execute(request()).await;
    anyhow::ensure!(answer.errors.is_empty(), "{:?}", answer.errors);
    let t = Instant::now();
    for _ in 0..N {
        serde_json::to_vec(&answer)?;
    }
    let write = per(t);
    println!("| port(id), one at a time in process | lookup through the pool {lookup:.1} µs | on the caller's thread {here:.1} µs | parse {parse:.1} µs | execute (parse, validation, extensions, lookup) {execute:.1} µs | `{{ __typename }}` {bare:.1} µs | answer as JSON {write:.1} µs |");
    Ok(())
}

/// Work per unit of cost, by the shape of the operation: the tree (what the limit was set on)
/// and 100 aliased copies of each field that runs a query of its own. A shape whose
/// microseconds per unit are far above the tree's is under-counted.
async fn cost_calibration(
    schema: &mapping_gateway::graphql::AppSchema,
    admin: &Actor,
    integration: &str,
    tree: &str,
    tree_variables: Value,
    rounds: usize,
) -> anyhow::Result<()> {
    let (lat, lng) = {
        let (min_lat, min_lng, max_lat, max_lng) = mapping_gateway::simulator::network::CITY_BBOX;
        ((min_lat + max_lat) / 2.0, (min_lng + max_lng) / 2.0)
    };
    let fid = schema
        .execute(
            async_graphql::Request::new(
                "query($i: ID!) { elements(integrationId: $i, first: 1) { edges { node { fid } } } }",
            )
            .variables(async_graphql::Variables::from_json(json!({ "i": integration })))
            .data(admin.clone()),
        )
        .await
        .data
        .into_json()?["elements"]["edges"][0]["node"]["fid"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let aliased = |field: &str| {
        let body: String = (0..100).map(|n| format!("a{n}: {field} ")).collect();
        format!("query($i: ID!) {{ {body} }}")
    };
    let shapes = [
        ("tree of 1,000 boxes".to_owned(), tree.to_owned(), tree_variables),
        (
            "100 × freePorts 5 km, first 1".into(),
            aliased(&format!("freePorts(integrationId: $i, latitude: {lat}, longitude: {lng}, radiusMeters: 5000, first: 1) {{ port {{ id }} }}")),
            json!({ "i": integration }),
        ),
        (
            "100 × freePorts 200 m, first 10".into(),
            aliased(&format!("freePorts(integrationId: $i, latitude: {lat}, longitude: {lng}, radiusMeters: 200, first: 10) {{ port {{ id }} }}")),
            json!({ "i": integration }),
        ),
        (
            "100 × elements search, first 1".into(),
            aliased("elements(integrationId: $i, first: 1, filter: { search: \"no such name\" }) { edges { node { id } } }"),
            json!({ "i": integration }),
        ),
        (
            "100 × elements, first 1".into(),
            aliased("elements(integrationId: $i, first: 1) { edges { node { id } } }"),
            json!({ "i": integration }),
        ),
        (
            "100 × elementByFid".into(),
            aliased(&format!("elementByFid(integrationId: $i, fid: \"{fid}\") {{ id }}")),
            json!({ "i": integration }),
        ),
    ];
    // One page with every field of the tree (the front-end's worst single page), at three sizes.
    let every_field = mapping_gateway::graphql::cost::EVERY_FIELD_PAGE;
    let pages = [100, 250, 500].map(|first| {
        (
            format!("every-field page of {first}"),
            every_field.to_owned(),
            json!({ "i": integration, "first": first }),
        )
    });
    let mut tree_rate = None;
    for (name, query, variables) in shapes.into_iter().chain(pages) {
        let mut times = Vec::new();
        let mut cost = 0;
        for _ in 0..rounds.max(1) {
            let t = Instant::now();
            let response = schema
                .execute(
                    async_graphql::Request::new(query.clone())
                        .variables(async_graphql::Variables::from_json(variables.clone()))
                        .data(admin.clone()),
                )
                .await;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            anyhow::ensure!(response.errors.is_empty(), "{name}: {:?}", response.errors);
            cost = response
                .extensions
                .get("cost")
                .and_then(|c| c.clone().into_json().ok())
                .and_then(|c| c.as_u64())
                .unwrap_or(0);
        }
        let time = median(times);
        let rate = time / cost.max(1) as f64;
        let base = *tree_rate.get_or_insert(rate);
        println!(
            "| cost of {name} | {cost} units | {:.2} ms | {rate:.3} µs a unit | {:.2}× the tree's |",
            time / 1000.0,
            rate / base
        );
    }
    Ok(())
}
