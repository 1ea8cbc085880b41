//! End-to-end tests of the foundation: access, integrations, history, WebSockets and
//! the key commands, over HTTP and the binary against a real database (SQLite and PostgreSQL).

mod common;

use common::{captured_logs, connect, next_json, send, unique, Engine, TestApp};
use mapping_gateway::access::Role;
use serde_json::{json, Value};

const CREATE: &str = "mutation($input: CreateIntegrationInput!) {
    createIntegration(input: $input) {
        id name gateway apiUrl username hasPassword key active
        schedule { cron timezone } createdAt updatedAt
    }
}";

const UPDATE: &str = "mutation($id: ID!, $input: UpdateIntegrationInput!) {
    updateIntegration(id: $id, input: $input) { id name apiUrl username hasPassword updatedAt }
}";

const LIST: &str = "{ integrations { id name active } }";

fn input(name: &str, password: &str) -> Value {
    json!({ "input": {
        "name": name, "gateway": "GEOSITE", "apiUrl": "https://geo.example/api/",
        "username": "integracao", "password": password,
    }})
}

async fn integration_count(app: &TestApp) -> usize {
    app.ok(LIST, json!({})).await["integrations"]
        .as_array()
        .unwrap()
        .len()
}

on_both_engines! {
    async fn requests_without_a_valid_key_are_refused(app: TestApp) {
        assert_eq!(app.error_code(None, LIST, json!({})).await, "UNAUTHENTICATED");
        assert_eq!(
            app.error_code(Some("mgw_00000000000000000000000000000000"), LIST, json!({})).await,
            "UNAUTHENTICATED"
        );
        let (_, body) = app.post(None, CREATE, input("x", "pw")).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert_eq!(integration_count(&app).await, 0);
    }

    async fn roles_are_enforced(app: TestApp) {
        let viewer = app.key(Role::Viewer).await;
        let operator = app.key(Role::Operator).await;
        // Reading is open to every role.
        app.ok_as(&viewer, LIST, json!({})).await;
        app.ok_as(&viewer, "{ gateways { kind } }", json!({})).await;
        // Creating needs ADMIN, and a refused mutation leaves nothing behind.
        for key in [&viewer, &operator] {
            assert_eq!(
                app.error_code(Some(key), CREATE, input("nope", "pw")).await,
                "FORBIDDEN"
            );
        }
        assert_eq!(integration_count(&app).await, 0);
        app.ok(CREATE, input("yes", "pw")).await;
        assert_eq!(integration_count(&app).await, 1);
    }

    async fn a_revoked_key_stops_working(app: TestApp) {
        let new = mapping_gateway::access::create_key(&app.state.db, "temp", Role::Admin)
            .await
            .unwrap();
        app.ok_as(&new.secret, LIST, json!({})).await;
        mapping_gateway::access::revoke_key(&app.state.db, new.key.id).await.unwrap();
        assert_eq!(app.error_code(Some(&new.secret), LIST, json!({})).await, "UNAUTHENTICATED");
    }

    /// Keys are verified from memory for a second: a key revoked where this process does not
    /// hear of it (another instance, `mapping-gateway keys revoke`) is refused once that second
    /// is over.
    async fn a_key_revoked_elsewhere_is_refused_within_the_cache_lifetime(app: TestApp) {
        use sea_orm::ConnectionTrait;
        let new = mapping_gateway::access::create_key(&app.state.db, "elsewhere", Role::Viewer)
            .await
            .unwrap();
        app.ok_as(&new.secret, LIST, json!({})).await;
        app.state
            .db
            .execute_unprepared(&format!("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE id = {}", new.key.id))
            .await
            .unwrap();
        let wait = mapping_gateway::access::KEY_CACHE_TTL * 5;
        tokio::time::timeout(wait, async {
            while app.post(Some(&new.secret), LIST, json!({})).await.0 != 401 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("refused once the cached entry expires");
    }

    async fn integrations_are_created_updated_and_deactivated(app: TestApp) {
        let password = unique("pw-");
        let created = app.ok(CREATE, input("Provedor Norte", &password)).await["createIntegration"].clone();
        assert_eq!(created["name"], "Provedor Norte");
        assert_eq!(created["gateway"], "GEOSITE");
        assert_eq!(created["apiUrl"], "https://geo.example/api");
        assert_eq!(created["hasPassword"], true);
        assert_eq!(created["active"], true);
        assert_eq!(created["schedule"], json!({ "cron": "0 4 * * *", "timezone": "America/Sao_Paulo" }));
        assert_eq!(created["key"].as_str().unwrap().len(), 32);
        let id = created["id"].as_str().unwrap().to_owned();

        // Any subset of fields can change; the rest stay.
        let updated = app
            .ok(UPDATE, json!({ "id": id, "input": { "username": "outro", "password": "novo" } }))
            .await["updateIntegration"]
            .clone();
        assert_eq!(updated["username"], "outro");
        assert_eq!(updated["name"], "Provedor Norte");
        let renamed = app
            .ok(UPDATE, json!({ "id": id, "input": { "name": "Provedor Sul", "apiUrl": "https://sul.example:8443/geo", "password": "novo" } }))
            .await["updateIntegration"]
            .clone();
        assert_eq!(renamed["name"], "Provedor Sul");
        assert_eq!(renamed["apiUrl"], "https://sul.example:8443/geo");

        let q = "mutation($id: ID!, $a: Boolean!) { setIntegrationActive(id: $id, active: $a) { active } }";
        let off = app.ok(q, json!({ "id": id, "a": false })).await;
        assert_eq!(off["setIntegrationActive"]["active"], false);
        // A deactivated integration stays readable.
        let one = app.ok("query($id: ID!) { integration(id: $id) { name active } }", json!({ "id": id })).await;
        assert_eq!(one["integration"], json!({ "name": "Provedor Sul", "active": false }));
        let on = app.ok(q, json!({ "id": id, "a": true })).await;
        assert_eq!(on["setIntegrationActive"]["active"], true);

        // Every change is in the history, newest first, with the actor and no secret.
        let history = app
            .ok(
                "query($id: ID!) { history(integrationId: $id) { totalCount edges { node { action actor summary before after } } } }",
                json!({ "id": id }),
            )
            .await["history"]
            .clone();
        assert_eq!(history["totalCount"], 5);
        let actions: Vec<&str> = history["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["action"].as_str().unwrap())
            .collect();
        assert_eq!(
            actions,
            [
                "INTEGRATION_ACTIVATED",
                "INTEGRATION_DEACTIVATED",
                "INTEGRATION_UPDATED",
                "INTEGRATION_UPDATED",
                "INTEGRATION_CREATED"
            ]
        );
        let rename = &history["edges"][2]["node"];
        assert_eq!(rename["actor"], "test admin");
        assert_eq!(rename["before"]["name"], "Provedor Norte");
        assert_eq!(rename["after"]["name"], "Provedor Sul");
        assert!(!history.to_string().contains(&password));
    }

    async fn invalid_input_gets_validation_and_conflict_codes(app: TestApp) {
        app.ok(CREATE, input("Único", "pw")).await;
        let cases = [
            (json!({ "name": "  " }), "VALIDATION", Some("name")),
            (json!({ "apiUrl": "geo.example/api" }), "VALIDATION", Some("apiUrl")),
            (json!({ "apiUrl": "ftp://geo.example" }), "VALIDATION", Some("apiUrl")),
            (json!({ "username": "" }), "VALIDATION", Some("username")),
            (json!({ "password": "" }), "VALIDATION", Some("password")),
            (json!({ "name": "Único" }), "CONFLICT", None),
        ];
        for (patch, code, field) in cases {
            let mut vars = input(&unique("n-"), "pw");
            for (k, v) in patch.as_object().unwrap() {
                vars["input"][k] = v.clone();
            }
            let (status, body) = app.post(Some(&app.admin_key), CREATE, vars).await;
            assert_eq!(status, 200);
            assert_eq!(body["errors"][0]["extensions"]["code"], code, "{patch}: {body}");
            if let Some(field) = field {
                assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
            }
        }
        assert_eq!(integration_count(&app).await, 1);
        // A wrong enum value or a missing field is a validation error too.
        let mut vars = input("x", "pw");
        vars["input"]["gateway"] = json!("ARCGIS");
        assert_eq!(app.error_code(Some(&app.admin_key), CREATE, vars).await, "VALIDATION");
        // Unknown ids are NOT_FOUND, renaming onto an existing name is CONFLICT.
        let other = app.create_integration("Outro", "https://x.example").await;
        assert_eq!(
            app.error_code(Some(&app.admin_key), UPDATE, json!({ "id": other, "input": { "name": "Único" } })).await,
            "CONFLICT"
        );
        assert_eq!(
            app.error_code(Some(&app.admin_key), UPDATE, json!({ "id": "bm9wZQ", "input": { "name": "z" } })).await,
            "NOT_FOUND"
        );
        assert_eq!(
            app.error_code(Some(&app.admin_key), UPDATE, json!({ "id": other, "input": {} })).await,
            "VALIDATION"
        );
    }

    async fn the_password_is_never_returned_or_logged(app: TestApp) {
        let password = unique("S3nha-");
        let (_, created) = app.post(Some(&app.admin_key), CREATE, input("Secreta", &password)).await;
        let id = created["data"]["createIntegration"]["id"].as_str().unwrap().to_owned();
        let new_password = unique("Nova-");
        let (_, updated) = app
            .post(Some(&app.admin_key), UPDATE, json!({ "id": id, "input": { "password": new_password } }))
            .await;
        let (_, listed) = app.post(Some(&app.admin_key), "{ integrations { id name hasPassword } }", json!({})).await;
        let (_, history) = app
            .post(Some(&app.admin_key), "query($id: ID!) { history(integrationId: $id) { edges { node { before after summary } } } }", json!({ "id": id }))
            .await;
        // Asking for a password field is a schema error, not a leak.
        let (_, asked) = app.post(Some(&app.admin_key), "{ integrations { password } }", json!({})).await;
        assert_eq!(asked["errors"][0]["extensions"]["code"], "VALIDATION");
        for body in [&created, &updated, &listed, &history, &asked] {
            let text = body.to_string();
            assert!(!text.contains(&password) && !text.contains(&new_password), "{text}");
        }
        // At rest it is ciphertext that decrypts with the master key and the row id.
        use sea_orm::EntityTrait;
        let row = entity::integration::Entity::find().one(&app.state.db).await.unwrap().unwrap();
        let sealed = row.password_ciphertext.clone().unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains(&new_password));
        assert_eq!(
            app.state.master.open_password(&row).unwrap().unwrap(),
            new_password
        );
        let logs = captured_logs();
        assert!(logs.contains("integration created"), "logs are captured");
        assert!(!logs.contains(&password) && !logs.contains(&new_password));
    }

    async fn pages_are_capped_and_cursors_checked(app: TestApp) {
        let id = app.create_integration("Paginada", "https://x.example").await;
        for i in 0..4 {
            app.ok(UPDATE, json!({ "id": id, "input": { "name": format!("Paginada {i}") } })).await;
        }
        let q = "query($id: ID!, $first: Int, $after: String) {
            history(integrationId: $id, first: $first, after: $after) {
                totalCount pageInfo { hasNextPage endCursor } edges { cursor node { summary } }
            }
        }";
        let (_, over) = app.post(Some(&app.admin_key), q, json!({ "id": id, "first": 501 })).await;
        let ext = &over["errors"][0]["extensions"];
        assert_eq!(ext["code"], "VALIDATION", "{over}");
        assert_eq!(ext["limit"], "pageSize", "the README promises extensions.limit: {over}");
        assert_eq!((ext["field"].as_str(), ext["max"].as_f64()), (Some("first"), Some(500.0)));
        app.ok(q, json!({ "id": id, "first": 500 })).await;
        let page1 = app.ok(q, json!({ "id": id, "first": 3 })).await["history"].clone();
        assert_eq!(page1["totalCount"], 5);
        assert_eq!(page1["pageInfo"]["hasNextPage"], true);
        let page2 = app
            .ok(q, json!({ "id": id, "first": 3, "after": page1["pageInfo"]["endCursor"] }))
            .await["history"]
            .clone();
        assert_eq!(page2["edges"].as_array().unwrap().len(), 2);
        assert_eq!(page2["pageInfo"]["hasNextPage"], false);
        assert_eq!(page2["edges"][1]["node"]["summary"], "created integration \"Paginada\"");
        // A cursor that is not one of this list's is refused.
        assert_eq!(
            app.error_code(Some(&app.admin_key), q, json!({ "id": id, "after": "Zm9vOjE" })).await,
            "VALIDATION"
        );
        let empty = app.ok(q, json!({ "id": id, "first": 0 })).await["history"].clone();
        assert_eq!(empty["edges"], json!([]));
    }

    async fn the_schedule_can_be_changed_and_is_checked(app: TestApp) {
        let id = app.create_integration("Agendada", "https://x.example").await;
        let q = "mutation($id: ID!, $s: ScheduleInput!) { updateIntegration(id: $id, input: { schedule: $s }) { schedule { cron timezone } } }";
        let data = app.ok(q, json!({ "id": id, "s": { "cron": "30 5 * * 1-5", "timezone": "America/Manaus" } })).await;
        assert_eq!(data["updateIntegration"]["schedule"], json!({ "cron": "30 5 * * 1-5", "timezone": "America/Manaus" }));
        for (s, field) in [
            (json!({ "cron": "61 * * * *", "timezone": "America/Manaus" }), "cron"),
            (json!({ "cron": "0 4 * * *", "timezone": "Mars/Olympus" }), "timezone"),
        ] {
            let (_, body) = app.post(Some(&app.admin_key), q, json!({ "id": id, "s": s })).await;
            assert_eq!(body["errors"][0]["extensions"]["code"], "VALIDATION");
            assert_eq!(body["errors"][0]["extensions"]["field"], field);
        }
    }

    async fn gateways_describe_their_parameters(app: TestApp) {
        let data = app
            .ok("{ gateways { kind name parameters { field required generated secret hint } } }", json!({}))
            .await;
        let geosite = &data["gateways"][0];
        assert_eq!(geosite["kind"], "GEOSITE");
        let params = geosite["parameters"].as_array().unwrap();
        let by_field = |f: &str| params.iter().find(|p| p["field"] == f).unwrap().clone();
        assert_eq!(by_field("password")["secret"], true);
        assert_eq!(by_field("apiUrl")["required"], true);
        assert_eq!(by_field("key")["generated"], true);
        assert!(params.iter().all(|p| !p["hint"].as_str().unwrap().is_empty()));
    }

    async fn health_and_readiness(app: TestApp) {
        let health = app.client.get(format!("{}/healthz", app.url)).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.client.get(format!("{}/readyz", app.url)).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let page = app.client.get(format!("{}/graphql", app.url)).header("accept", "text/html").send().await.unwrap();
        assert_eq!(page.status(), 200);
        assert!(page.text().await.unwrap().contains("/boot.js"));
        // A mutation over GET runs nothing: 405, and the method to use.
        let get = app
            .client
            .get(format!("{}/graphql?query=mutation%7BsetIntegrationActive(id%3A%22x%22%2Cactive%3Afalse)%7Bid%7D%7D", app.url))
            .bearer_auth(&app.admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(get.headers()["allow"], "POST");
        let body: serde_json::Value = get.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "METHOD_NOT_ALLOWED", "{body}");
        assert!(body.get("data").is_none(), "{body}");
        let wrong_type = app
            .client
            .post(format!("{}/graphql", app.url))
            .header("content-type", "text/plain")
            .body(r#"{"query":"{ integrations { id } }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(wrong_type.status(), 415);
    }

    async fn websockets_authenticate_in_connection_init(app: TestApp) {
        app.create_integration("Via WS", "https://x.example").await;
        let ws_url = app.url.replace("http://", "ws://") + "/graphql/ws";

        // graphql-transport-ws with a key: ack, then the operation's result.
        let mut socket = connect(&ws_url, "graphql-transport-ws").await;
        send(&mut socket, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
        assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
        send(&mut socket, json!({ "type": "subscribe", "id": "1", "payload": { "query": "{ integrations { name } }" } })).await;
        let msg = next_json(&mut socket).await;
        assert_eq!(msg["type"], "next");
        assert_eq!(msg["payload"]["data"]["integrations"][0]["name"], "Via WS");

        // The legacy graphql-ws protocol works too.
        let mut legacy = connect(&ws_url, "graphql-ws").await;
        send(&mut legacy, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
        assert_eq!(next_json(&mut legacy).await["type"], "connection_ack");
        send(&mut legacy, json!({ "type": "start", "id": "1", "payload": { "query": "{ integrations { name } }" } })).await;
        let msg = next_json(&mut legacy).await;
        assert_eq!(msg["type"], "data");
        assert_eq!(msg["payload"]["data"]["integrations"][0]["name"], "Via WS");

        // Without a valid key the connection is refused.
        for payload in [json!({}), json!({ "authorization": "Bearer mgw_wrong" })] {
            let mut refused = connect(&ws_url, "graphql-transport-ws").await;
            send(&mut refused, json!({ "type": "connection_init", "payload": payload })).await;
            let closed = common::close_code(&mut refused).await;
            // graphql-transport-ws: a refused connection_init is 4403 Forbidden.
            assert_eq!(closed, Some(4403));
        }
        // The legacy protocol has no codes of its own; its refusal still ends with a close
        // frame (not a dropped connection), and so does a message of no known type.
        let mut refused = connect(&ws_url, "graphql-ws").await;
        send(&mut refused, json!({ "type": "connection_init", "payload": {} })).await;
        assert_eq!(common::close_code(&mut refused).await, Some(4403));
        let mut odd = connect(&ws_url, "graphql-transport-ws").await;
        send(&mut odd, json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
        assert_eq!(next_json(&mut odd).await["type"], "connection_ack");
        send(&mut odd, json!({ "type": "no_such_type" })).await;
        assert_eq!(common::close_code(&mut odd).await, Some(4400), "an unknown message ends with 4400");
    }
}

on_both_engines! {
    /// A client's own close gets its close frame back (1000, or the client's code), on both
    /// protocols, before and after `connection_init`: clients see a clean close, not 1006.
    async fn a_client_s_close_is_echoed(app: TestApp) {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::protocol::CloseFrame;
        use tokio_tungstenite::tungstenite::Message;
        for protocol in [common::TRANSPORT_WS, common::LEGACY_WS] {
            for init in [false, true] {
                let mut socket = common::connect(&app.ws_url(), protocol).await;
                if init {
                    common::send(&mut socket, json!({ "type": "connection_init",
                        "payload": { "authorization": format!("Bearer {}", app.admin_key) } })).await;
                    assert_eq!(common::next_json(&mut socket).await["type"], "connection_ack");
                }
                socket
                    .send(Message::Close(Some(CloseFrame { code: 1000.into(), reason: "bye".into() })))
                    .await
                    .unwrap();
                let echoed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                    loop {
                        match socket.next().await {
                            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                            Some(Ok(_)) => continue,
                            None | Some(Err(_)) => return None,
                        }
                    }
                })
                .await
                .expect("an answer within 10 s");
                assert_eq!(echoed, Some(1000), "{protocol}, init {init}");
            }
        }
    }
}

on_both_engines! {
    async fn keys_are_managed_from_the_command_line(app: TestApp) {
        let out = common::run_gateway(&["keys", "create", "--role", "VIEWER", "--name", "erp"], &app.db_config);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(key.starts_with("mgw_") && key.len() == 36, "{key}");
        app.ok_as(&key, LIST, json!({})).await;
        assert_eq!(app.error_code(Some(&key), CREATE, input("x", "pw")).await, "FORBIDDEN");
        let out = common::run_gateway(&["keys", "list"], &app.db_config);
        let listing = String::from_utf8(out.stdout).unwrap();
        let row = listing.lines().find(|l| l.ends_with("erp")).expect("listed");
        assert!(row.contains("VIEWER") && row.contains("active") && !listing.contains(&key));
        let id = row.split_whitespace().next().unwrap();
        let out = common::run_gateway(&["keys", "revoke", id], &app.db_config);
        assert!(out.status.success());
        // Another process revoked it: refused once this process's cached entry expires.
        tokio::time::timeout(mapping_gateway::access::KEY_CACHE_TTL * 5, async {
            while app.post(Some(&key), LIST, json!({})).await.0 != 401 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("refused within the key cache's lifetime");
        assert_eq!(app.error_code(Some(&key), LIST, json!({})).await, "UNAUTHENTICATED");
        let out = common::run_gateway(&["keys", "create", "--role", "ROOT", "--name", "x"], &app.db_config);
        assert!(!out.status.success());
    }
}
