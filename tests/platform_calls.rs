//! Platform calls end to end through the gateway: `testIntegration`, `remoteProjects`, and demo
//! mode through the binary.

mod common;

use common::{Engine, TestApp};
use mapping_gateway::simulator::SimConfig;
use serde_json::{json, Value};

const TEST: &str =
    "mutation($id: ID!) { testIntegration(id: $id) { ok latencyMs message code projectCount } }";

on_both_engines! {
    async fn test_integration_reports_platform_state(app: TestApp) {
        let sim = common::simulator(SimConfig { boxes: 10, ..Default::default() }).await;
        let good = app.create_integration_with("Boa", &sim.url, "geosite").await;
        let result = app.ok(TEST, json!({ "id": good })).await["testIntegration"].clone();
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["projectCount"], 3);
        assert_eq!(result["code"], Value::Null);

        let wrong = app.create_integration_with("Senha errada", &sim.url, "nope").await;
        let result = app.ok(TEST, json!({ "id": wrong })).await["testIntegration"].clone();
        assert_eq!(result["ok"], false);
        assert_eq!(result["code"], "PLATFORM_AUTH");

        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let down = app.create_integration_with("Fora do ar", &format!("http://{closed}"), "geosite").await;
        let result = app.ok(TEST, json!({ "id": down })).await["testIntegration"].clone();
        assert_eq!(result["ok"], false);
        assert_eq!(result["code"], "PLATFORM_UNAVAILABLE");

        // Only ADMIN may test, and the test is in the history.
        let viewer = app.key(mapping_gateway::access::Role::Viewer).await;
        assert_eq!(app.error_code(Some(&viewer), TEST, json!({ "id": good })).await, "FORBIDDEN");
        let history = app
            .ok("query($id: ID!) { history(integrationId: $id) { edges { node { action summary } } } }", json!({ "id": good }))
            .await;
        assert_eq!(history["history"]["edges"][0]["node"]["action"], "INTEGRATION_TESTED");
    }

    async fn remote_projects_are_listed_live_and_not_stored(app: TestApp) {
        let sim = common::simulator(SimConfig { boxes: 10, ..Default::default() }).await;
        let id = app.create_integration_with("Projetos", &sim.url, "geosite").await;
        let data = app
            .ok("query($id: ID!) { remoteProjects(integrationId: $id) { remoteId name updatedAt } }", json!({ "id": id }))
            .await;
        let names: Vec<&str> = data["remoteProjects"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Projeto Centro", "Projeto Aldeota", "Projeto Messejana"]);
        assert!(data["remoteProjects"][0]["updatedAt"].is_string());
        use sea_orm::{EntityTrait, PaginatorTrait};
        assert_eq!(entity::project::Entity::find().count(&app.state.db).await.unwrap(), 0);
        let wrong = app.create_integration_with("Errada", &sim.url, "nope").await;
        assert_eq!(
            app.error_code(Some(&app.admin_key), "query($id: ID!) { remoteProjects(integrationId: $id) { name } }", json!({ "id": wrong })).await,
            "PLATFORM_AUTH"
        );
    }
}

async fn post(url: &str, key: &str, query: &str, variables: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .bearer_auth(key)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn demo_mode_is_ready_and_idempotent(engine: Engine) {
    let Some(db) = common::fresh_database(engine).await else {
        return;
    };
    let mut env = vec![
        ("DATABASE_URL", db.database_url.clone()),
        ("RUST_LOG", "warn".to_string()),
    ];
    if let Some(key) = &db.master_key {
        env.push(("MASTER_KEY", key.clone()));
    }
    // PostgreSQL has no database file to keep the key beside.
    let key_file = std::env::temp_dir().join(common::unique("mgw-demo-key-"));
    if engine == Engine::Postgres {
        env.push(("DEMO_KEY_FILE", key_file.display().to_string()));
    }
    let mut keys = Vec::new();
    let mut running = Vec::new();
    // The second start listens on every address. GraphiQL's page never carries the key: the
    // start prints a link with it in the fragment, which browsers never send.
    for (start, listen) in ["127.0.0.1:0", "0.0.0.0:0"].into_iter().enumerate() {
        let args = ["serve", "--demo", "--demo-boxes", "40", "--listen", listen];
        // The first gateway stops before the second starts, as on a restart.
        running.clear();
        let gateway = common::Process::start(&args, &env);
        let mut lines = gateway.until("GraphiQL:");
        lines.extend(gateway.until("#key="));
        let key = common::last_word(&lines, "Demo ADMIN API key:");
        let url = common::last_word(&lines, "GraphiQL:")
            .trim_end_matches("/graphql")
            .to_owned();
        let list = post(&url, &key, "{ integrations { id name active } }", json!({})).await;
        let integrations = list["data"]["integrations"].as_array().unwrap().clone();
        assert_eq!(integrations.len(), 1, "{list}");
        assert_eq!(integrations[0]["name"], "Demo");
        let id = integrations[0]["id"].as_str().unwrap().to_owned();
        // The start says the integration's id and gives a first query for it, which has data
        // at once: the first start synced the demo project.
        assert!(
            lines.iter().any(|l| l.contains(&format!("(id {id})"))),
            "{lines:?}"
        );
        let first = lines
            .iter()
            .find(|l| l.trim_start().starts_with("{ elements(integrationId:"))
            .unwrap_or_else(|| panic!("a first query: {lines:?}"));
        assert!(first.contains(&id), "{first}");
        let data = post(&url, &key, first.trim(), json!({})).await;
        assert!(
            data["data"]["elements"]["totalCount"].as_u64().unwrap() > 0,
            "{data}"
        );
        assert_eq!(
            lines.iter().any(|l| l.contains("linked and synced")),
            start == 0,
            "only the first start syncs: {lines:?}"
        );
        let page = reqwest::Client::new()
            .get(format!("{url}/graphql"))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        assert!(!html.contains(&key), "the page never carries the key");
        let link = common::last_word(&lines, "GraphiQL with the demo key:");
        assert_eq!(link, format!("{url}/graphql#key={key}"));
        let test = post(&url, &key, TEST, json!({ "id": id })).await;
        assert_eq!(test["data"]["testIntegration"]["ok"], true, "{test}");
        keys.push((key, url));
        running.push(gateway);
    }
    // The key pasted after the first start still works after the restart: it is the same key.
    assert_eq!(
        keys[0].0, keys[1].0,
        "the demo key is stable across restarts"
    );
    let answer = post(&keys[1].1, &keys[0].0, "{ integrations { id } }", json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    drop(running);
    let file = match engine {
        Engine::Postgres => key_file,
        Engine::Sqlite => {
            let mut name = mapping_gateway::db::sqlite_file(&db.database_url)
                .unwrap()
                .into_os_string();
            name.push(".demo-key");
            name.into()
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key file is private");
    }
    let _ = std::fs::remove_file(&file);
    if engine == Engine::Postgres {
        common::drop_database(&db.database_url);
    }
}

each_engine!(demo_mode_is_ready_and_idempotent);
