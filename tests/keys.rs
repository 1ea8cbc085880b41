//! API keys over GraphQL and the CLI (made, listed, used, expired, revoked) and personal data
//! by permission (LGPD): a key without `personalData` reads no CPF/CNPJ, name or address.

mod common;

use common::bindings::*;
use common::world;
use common::*;
use serde_json::{json, Value};

const CREATE: &str = "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret
    key { id name role prefix personalData createdAt lastUsedAt expiresAt revokedAt active } } }";
const KEYS: &str = "{ apiKeys { id name role prefix personalData createdAt lastUsedAt expiresAt
    revokedAt active } }";
const REVOKE: &str = "mutation($i: ID!) { revokeApiKey(id: $i) { id revokedAt active } }";
const GATEWAYS: &str = "{ gateways { kind } }";

/// Makes a key over GraphQL with the test's ADMIN key; returns (secret, key).
async fn create(app: &TestApp, input: Value) -> (String, Value) {
    let made = app.ok(CREATE, json!({ "i": input })).await["createApiKey"].clone();
    (
        made["secret"].as_str().unwrap().to_owned(),
        made["key"].clone(),
    )
}

/// The key with this id as `apiKeys` lists it.
async fn listed(app: &TestApp, id: &Value) -> Value {
    app.ok(KEYS, json!({})).await["apiKeys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == *id)
        .cloned()
        .expect("listed")
}

/// Runs the binary with the app's database; exit code and standard output.
async fn cli(app: &TestApp, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mapping-gateway"))
        .args(args)
        .env("DATABASE_URL", &app.db_config.database_url)
        .env_remove("MASTER_KEY")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

on_both_engines! {
    /// ADMIN makes keys over GraphQL: the secret is answered once, `apiKeys` lists every
    /// column but the secret, a VIEWER is made without personal data unless asked, a revoked
    /// key is refused like an unknown one, and only ADMIN manages keys.
    async fn keys_are_made_listed_and_revoked_over_graphql(app: TestApp) {
        let (secret, key) = create(&app, json!({ "name": "painel", "role": "VIEWER" })).await;
        assert!(secret.starts_with("mgw_") && secret.len() == 36, "{secret}");
        assert_eq!(key["prefix"].as_str().unwrap(), &secret[..8]);
        assert_eq!(key["role"], "VIEWER");
        assert_eq!(key["personalData"], false, "a VIEWER made today reads no CPF");
        assert_eq!(key["active"], true);
        assert!(key["expiresAt"].is_null() && key["lastUsedAt"].is_null());
        app.ok_as(&secret, GATEWAYS, json!({})).await;
        let keys = app.ok(KEYS, json!({})).await.to_string();
        assert!(!keys.contains(&secret[8..]), "no secret in apiKeys");

        let (_, operator) = create(&app, json!({ "name": "atendimento", "role": "OPERATOR" })).await;
        assert_eq!(operator["personalData"], true);
        let (viewer_with, with) = create(
            &app,
            json!({ "name": "auditoria", "role": "VIEWER", "personalData": true }),
        )
        .await;
        assert_eq!(with["personalData"], true);
        for key in [&secret, &viewer_with] {
            assert_eq!(app.error_code(Some(key), KEYS, json!({})).await, "FORBIDDEN");
            assert_eq!(
                app.error_code(Some(key), CREATE, json!({ "i": { "name": "x", "role": "ADMIN" } }))
                    .await,
                "FORBIDDEN"
            );
        }

        let revoked = app.ok(REVOKE, json!({ "i": key["id"] })).await["revokeApiKey"].clone();
        assert_eq!(revoked["active"], false);
        assert!(revoked["revokedAt"].is_string());
        assert_eq!(app.error_code(Some(&secret), GATEWAYS, json!({})).await, "UNAUTHENTICATED");
        // Twice is harmless and keeps the first time.
        let again = app.ok(REVOKE, json!({ "i": key["id"] })).await["revokeApiKey"].clone();
        assert_eq!(again["revokedAt"], revoked["revokedAt"]);
        assert_eq!(
            app.error_code(None, REVOKE, json!({ "i": "QXBpS2V5Ojk5OTk" })).await,
            "UNAUTHENTICATED"
        );
        assert_eq!(
            app.error_code(Some(&app.admin_key), REVOKE, json!({ "i": "QXBpS2V5Ojk5OTk" })).await,
            "NOT_FOUND"
        );
    }

    /// A key past its `expiresAt` is refused like an unknown one; an expiry in the past is
    /// refused when the key is made.
    async fn an_expired_key_is_refused_like_an_unknown_one(app: TestApp) {
        let past = (chrono::Utc::now() - chrono::Duration::minutes(1)).to_rfc3339();
        assert_eq!(
            app.error_code(
                Some(&app.admin_key),
                CREATE,
                json!({ "i": { "name": "velha", "role": "VIEWER", "expiresAt": past } })
            )
            .await,
            "VALIDATION"
        );
        let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
        let (secret, key) = create(
            &app,
            json!({ "name": "temporaria", "role": "OPERATOR", "expiresAt": soon.to_rfc3339() }),
        )
        .await;
        app.ok_as(&secret, GATEWAYS, json!({})).await;
        tokio::time::timeout(std::time::Duration::from_secs(20), async {
            while app.post(Some(&secret), GATEWAYS, json!({})).await.0 != 401 {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("refused once expired");
        assert!(chrono::Utc::now() >= soon, "not refused before its time");
        assert_eq!(app.error_code(Some(&secret), GATEWAYS, json!({})).await, "UNAUTHENTICATED");
        let listed = listed(&app, &key["id"]).await;
        assert_eq!(listed["active"], false);
        assert!(listed["revokedAt"].is_null());
    }

    /// `lastUsedAt` is written on use, then at most once a minute however often the key is
    /// used (past the verification cache too).
    async fn last_use_is_written_at_most_once_a_minute(app: TestApp) {
        let (secret, key) = create(&app, json!({ "name": "uso", "role": "VIEWER" })).await;
        app.ok_as(&secret, GATEWAYS, json!({})).await;
        let first = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                let k = listed(&app, &key["id"]).await;
                if k["lastUsedAt"].is_string() {
                    return k["lastUsedAt"].clone();
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("lastUsedAt written");
        // Uses spread past the cache's lifetime, each verified again by the database.
        let until = std::time::Instant::now() + mapping_gateway::access::KEY_CACHE_TTL * 2;
        while std::time::Instant::now() < until {
            app.ok_as(&secret, GATEWAYS, json!({})).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(listed(&app, &key["id"]).await["lastUsedAt"], first);
    }

    /// The CLI makes keys with an expiry and a say on personal data, lists the columns
    /// `apiKeys` answers, and revokes by the id it shows.
    async fn the_cli_shows_what_api_keys_shows(app: TestApp) {
        let (code, secret) = cli(
            &app,
            &["keys", "create", "--role", "VIEWER", "--name", "relatorios", "--expires-in", "30d"],
        )
        .await;
        assert_eq!(code, 0);
        let secret = secret.trim().to_owned();
        app.ok_as(&secret, GATEWAYS, json!({})).await;
        let (code, table) = cli(&app, &["keys", "list"]).await;
        assert_eq!(code, 0);
        let header = table.lines().next().unwrap();
        for column in ["ID", "ROLE", "PREFIX", "STATE", "PERSONAL", "CREATED", "LAST USED", "EXPIRES", "REVOKED", "NAME"] {
            assert!(header.contains(column), "{header}");
        }
        let line = table.lines().find(|l| l.ends_with("relatorios")).expect("listed");
        assert!(line.contains(&secret[..8]) && line.contains("VIEWER") && line.contains(" no "), "{line}");
        let expires = (chrono::Utc::now() + chrono::Duration::days(30)).format("%Y-%m-%d").to_string();
        assert!(line.contains(&expires), "{line}");
        let id = line.split_whitespace().next().unwrap().to_owned();
        let key = listed(&app, &json!(id)).await;
        assert_eq!(key["name"], "relatorios");

        let (code, _) = cli(&app, &["keys", "create", "--role", "VIEWER", "--name", "x", "--personal-data", "true"]).await;
        assert_eq!(code, 0);
        let (_, table) = cli(&app, &["keys", "list"]).await;
        let line = table.lines().find(|l| l.ends_with("  x")).expect("listed");
        assert!(line.contains(" yes "), "{line}");

        let (code, out) = cli(&app, &["keys", "revoke", &id]).await;
        assert_eq!(code, 0, "{out}");
        let (_, table) = cli(&app, &["keys", "list"]).await;
        let line = table.lines().find(|l| l.ends_with("relatorios")).unwrap();
        assert!(line.contains("revoked"), "{line}");
        // Another process revoked it: refused once the verification cache forgets it.
        tokio::time::timeout(mapping_gateway::access::KEY_CACHE_TTL * 5, async {
            while app.post(Some(&secret), GATEWAYS, json!({})).await.0 != 401 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
        .await
        .expect("refused within the cache's lifetime");
        let (code, _) = cli(&app, &["keys", "revoke", "nada"]).await;
        assert_ne!(code, 0);
    }

    /// A VIEWER key made today reads no CPF/CNPJ, name or address anywhere: bindings, their
    /// customer and conflict, the platform's customer on a port, history snapshots; searching by
    /// document is FORBIDDEN. A key given `personalData` reads them all.
    async fn a_key_without_personal_data_reads_no_cpf(app: TestApp) {
        let w = synced_world(&app).await;
        let ports = free_ports_apart(&app, 2).await;
        let mine = bind_port(&app, &ports[0].0, customer("540001", CPF)).await;
        change(&app, "confirmBinding", &mine["id"]).await;
        delivery(&app, &mine["id"], "DELIVERED").await;
        // A binding whose port someone else takes on the platform: a conflict and a platform
        // customer with a CNPJ and a name.
        let theirs = bind_port(&app, &ports[1].0, customer("540002", CNPJ)).await;
        change(&app, "confirmBinding", &theirs["id"]).await;
        delivery(&app, &theirs["id"], "DELIVERED").await;
        someone_else_on(&w, &ports[1].1, "PERSON-9").await;
        world::succeeded(&app, &w.id, "FULL").await;

        let read = "query($i: ID!) {
                bindings(first: 10) { edges { node { document name address contract
                    customer { document name address contract }
                    conflict { platformContract platformDocument }
                    port { platformCustomer { contract document name } } } } }
                history(integrationId: $i, first: 50) { edges { node { action summary before after } } }
            }";
        let vars = json!({ "i": w.id });
        let (viewer, _) = create(&app, json!({ "name": "painel", "role": "VIEWER" })).await;
        let seen = app.ok_as(&viewer, read, vars.clone()).await;
        let text = seen.to_string();
        for personal in ["52998224725", "529.982.247-25", "11222333000181", "Maria", "Silva", "Outro Provedor", "Flores"] {
            assert!(!text.contains(personal), "{personal} shown to a key without personal data: {text}");
        }
        let nodes = seen["bindings"]["edges"].as_array().unwrap();
        let node = |contract: &str| {
            nodes
                .iter()
                .map(|e| &e["node"])
                .find(|n| n["contract"] == contract)
                .unwrap()
                .clone()
        };
        let m = node("540001");
        assert_eq!(m["document"], "***.982.247-**");
        assert_eq!(m["customer"]["document"], "***.982.247-**");
        assert_eq!(m["name"], "M. S.");
        assert_eq!(m["customer"]["name"], "M. S.");
        assert_eq!(m["address"], "***");
        assert_eq!(m["customer"]["contract"], "540001", "contracts stay readable");
        assert_eq!(m["port"]["platformCustomer"]["document"], "***.982.247-**");
        let t = node("540002");
        assert_eq!(t["document"], "**.222.333/0001-**");
        assert_eq!(t["conflict"]["platformContract"], "PERSON-9");
        assert_eq!(t["conflict"]["platformDocument"], "**.222.333/0001-**");
        assert_eq!(t["port"]["platformCustomer"]["name"], "O. P.");
        let history = seen["history"]["edges"].as_array().unwrap();
        assert!(
            history.iter().any(|e| e["node"]["after"]["document"] == "***.982.247-**"),
            "{history:?}"
        );

        let search = "query($d: String!) { bindings(filter: { document: $d }) { edges { node { id } } } }";
        assert_eq!(
            app.error_code(Some(&viewer), search, json!({ "d": CPF })).await,
            "FORBIDDEN"
        );

        // A key with personal data reads it all, and searches by document.
        let (auditor, _) = create(
            &app,
            json!({ "name": "auditoria", "role": "VIEWER", "personalData": true }),
        )
        .await;
        let (operator, _) = create(&app, json!({ "name": "atendimento", "role": "OPERATOR" })).await;
        for key in [&auditor, &operator] {
            let text = app.ok_as(key, read, vars.clone()).await.to_string();
            for personal in ["52998224725", "11222333000181", "Maria da Silva", "Outro Provedor", "Rua das Flores, 10"] {
                assert!(text.contains(personal), "{personal} hidden from a key with personal data");
            }
            let found = app.ok_as(key, search, json!({ "d": CPF })).await;
            assert_eq!(found["bindings"]["edges"].as_array().unwrap().len(), 1);
        }
    }

    /// A key made from `ADMIN_API_KEY` before prefixes came from the digest showed the secret's
    /// first characters: the next start rewrites its prefix.
    async fn a_chosen_secret_s_old_prefix_is_rewritten(app: TestApp) {
        use sea_orm::ConnectionTrait;
        let secret = "escolhido-pelo-operador-0123456789abcdef";
        mapping_gateway::access::ensure_admin_secret(&app.state.db, secret).await.unwrap();
        app.state
            .db
            .execute_unprepared(&format!(
                "UPDATE api_keys SET prefix = '{}' WHERE name = 'ADMIN_API_KEY'",
                &secret[..8]
            ))
            .await
            .unwrap();
        mapping_gateway::access::ensure_admin_secret(&app.state.db, secret).await.unwrap();
        let keys = app.ok(KEYS, json!({})).await;
        let key = keys["apiKeys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["name"] == "ADMIN_API_KEY")
            .unwrap()
            .clone();
        let prefix = key["prefix"].as_str().unwrap();
        assert!(prefix.starts_with("mgw_") && prefix != &secret[..8], "{prefix}");
        app.ok_as(secret, GATEWAYS, json!({})).await;
    }
}
