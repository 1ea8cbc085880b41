//! Automatic persisted queries over HTTP, as Apollo's clients send them: the hash alone first,
//! `PERSISTED_QUERY_NOT_FOUND`, then the text with its hash once, then the hash alone again.

mod common;

use common::{Engine, TestApp};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn persisted(hash: &str, query: Option<&str>) -> String {
    let mut body = json!({
        "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } },
        "variables": {},
    });
    if let Some(q) = query {
        body["query"] = Value::from(q);
    }
    body.to_string()
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

on_both_engines! {
    /// A hash is run once its text has been sent with it; before, it is not found.
    async fn a_query_is_run_by_its_hash_once_registered(app: TestApp) {
        let id = app.create_integration("apq", "https://geo.example/api/").await;
        // A text of its own: the sqlite and postgres variants may share one process (and its
        // cache of persisted texts).
        let query = format!("query {} {{ integrations {{ id name }} }}", common::unique("Apq_"));
        let query = query.as_str();
        let hash = hex::encode(Sha256::digest(query.as_bytes()));
        let key = app.admin_key.clone();

        let (status, answer) = app.post_body(Some(&key), persisted(&hash, None)).await;
        // Refused before anything runs, like the other request-level refusals.
        assert_eq!(status, 400, "{answer}");
        assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");
        assert_eq!(answer["errors"][0]["message"], "PersistedQueryNotFound");

        let (_, answer) = app.post_body(Some(&key), persisted(&hash, Some(query))).await;
        assert!(answer["errors"].is_null(), "{answer}");
        let listed = answer["data"]["integrations"].as_array().unwrap();
        assert!(listed.iter().any(|i| i["id"] == id.as_str()), "{answer}");

        let (_, by_hash) = app.post_body(Some(&key), persisted(&hash.to_uppercase(), None)).await;
        assert_eq!(by_hash["data"], answer["data"], "{by_hash}");

        // The key is still checked: the hash is not a way around it.
        let (status, anonymous) = app.post_body(None, persisted(&hash, None)).await;
        assert!(status == 401 || code(&anonymous) == "UNAUTHENTICATED", "{anonymous}");
    }

    /// Each key has a store of its own: another key can neither tell that a text was
    /// registered (it gets NOT_FOUND, as for a text never seen) nor push it out by registering
    /// hundreds of its own.
    async fn each_key_has_a_store_of_its_own(app: TestApp) {
        let owner = app.admin_key.clone();
        let other = app.key(mapping_gateway::access::Role::Viewer).await;
        let query = format!("query {} {{ gateways {{ kind }} }}", common::unique("Own_"));
        let hash = hex::encode(Sha256::digest(query.as_bytes()));
        let (_, answer) = app.post_body(Some(&owner), persisted(&hash, Some(&query))).await;
        assert!(answer["errors"].is_null(), "{answer}");
        let (_, probe) = app.post_body(Some(&other), persisted(&hash, None)).await;
        assert_eq!(code(&probe), "PERSISTED_QUERY_NOT_FOUND", "{probe}");
        for n in 0..300 {
            let flood = format!("query Flood{n} {{ gateways {{ kind }} }}");
            let flood_hash = hex::encode(Sha256::digest(flood.as_bytes()));
            let (_, answer) = app.post_body(Some(&other), persisted(&flood_hash, Some(&flood))).await;
            assert!(answer["errors"].is_null(), "{answer}");
        }
        let (_, still) = app.post_body(Some(&owner), persisted(&hash, None)).await;
        assert_eq!(still["data"]["gateways"][0]["kind"], "GEOSITE", "{still}");
    }

    /// A text that does not hash to its claim is refused and not registered.
    async fn a_text_that_does_not_match_its_hash_is_refused(app: TestApp) {
        let key = app.admin_key.clone();
        let query = format!("query {} {{ integrations {{ id }} }}", common::unique("Apq_"));
        let query = query.as_str();
        let other = format!("query {} {{ integrations {{ name }} }}", common::unique("Other_"));
        let other = hex::encode(Sha256::digest(other.as_bytes()));
        let (_, answer) = app.post_body(Some(&key), persisted(&other, Some(query))).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
        assert!(answer["data"].is_null(), "{answer}");
        let (_, answer) = app.post_body(Some(&key), persisted(&other, None)).await;
        assert_eq!(code(&answer), "PERSISTED_QUERY_NOT_FOUND", "{answer}");

        let body = json!({ "query": query, "extensions": { "persistedQuery": { "version": 2, "sha256Hash": other } } });
        let (_, answer) = app.post_body(Some(&key), body.to_string()).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
    }
}
