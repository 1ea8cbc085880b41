//! The OZmap client against a scripted server: the list envelope's endings (`nextUrl`'s paging
//! with the client's own limit and the same body, `hasNextPage: false`, an empty page on servers older than
//! mid-2025), the API key sent raw, box items from a box type or the project's level names,
//! and records or answers the client cannot read.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use mapping_gateway::catalog::ElementItem;
use mapping_gateway::ozmap::OzmapClient;
use mapping_gateway::platform::{ListQuery, Platform};
use serde_json::{json, Value};

/// A client with quick retries and pages of 40.
fn client(url: &str, user: &str, secret: &str) -> OzmapClient {
    let options = mapping_gateway::transport::ClientOptions {
        page_size: 40,
        ..common::fast_client_options()
    };
    OzmapClient::new(url, user, secret, options).unwrap()
}

/// A scripted OZmap: answers `/api/v2/boxes` from a list of pages keyed by the request's path
/// and query, and records each request (path, query, Authorization, body).
async fn scripted(
    pages: Vec<(&'static str, Value)>,
) -> (String, Arc<Mutex<Vec<(String, String, Value)>>>) {
    use axum::extract::{OriginalUri, State};
    use axum::http::HeaderMap;
    type Log = Arc<Mutex<Vec<(String, String, Value)>>>;
    let log: Log = Default::default();
    let pages: Arc<HashMap<&'static str, Value>> = Arc::new(pages.into_iter().collect());
    async fn answer(
        State((pages, log)): State<(Arc<HashMap<&'static str, Value>>, Log)>,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: axum::body::Bytes,
    ) -> axum::response::Response {
        use axum::response::IntoResponse;
        let target = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        log.lock().unwrap().push((
            target.clone(),
            auth,
            serde_json::from_slice(&body).unwrap_or(Value::Null),
        ));
        match pages.get(target.as_str()) {
            Some(page) => axum::Json(page.clone()).into_response(),
            None => (
                axum::http::StatusCode::NOT_FOUND,
                axum::Json(json!({ "message": target })),
            )
                .into_response(),
        }
    }
    let app = axum::Router::new()
        .fallback(answer)
        .with_state((pages, log.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, log)
}

fn boxes(ids: &[&str], box_type: Value, level: i64) -> Value {
    Value::Array(ids.iter().map(|id| json!({ "id": id, "name": format!("B-{id}"), "project": "p1", "boxType": box_type, "hierarchyLevel": level, "coords": [-38.5, -3.7], "extra": { "x": 1 } })).collect())
}

#[tokio::test]
async fn list_envelopes_end_on_has_next_page_false_or_an_empty_page_and_follow_next_url() {
    let common_pages = [
        (
            "/api/v2/box-types?page=1&limit=40",
            json!({ "rows": [{ "id": "t1", "code": "CTX", "prefix": "CTX" }], "hasNextPage": false }),
        ),
        (
            "/api/v2/projects/p1",
            json!({ "id": "p1", "name": "P", "hierarchyLevels": { "box": { "CE": 2, "CTO": 3 } } }),
        ),
    ];
    // A current server: the answer's nextUrl gives the paging (its cursor, opaque), the client
    // its own limit (and populate), as the official SDK does, with the same body; hasNextPage
    // false ends the listing without another request.
    let mut pages = common_pages.to_vec();
    pages.push(("/api/v2/boxes?page=1&limit=40", json!({ "total": 3, "count": 2, "start": 0, "limit": 2, "rows": boxes(&["a1", "a2"], json!("t1"), 3), "hasNextPage": true, "nextUrl": "/api/v2/boxes?cursor=opaque-7" })));
    pages.push(("/api/v2/boxes?cursor=opaque-7&limit=40", json!({ "total": 3, "count": 1, "rows": boxes(&["a3"], Value::Null, 3), "hasNextPage": false, "nextUrl": null })));
    let (url, log) = scripted(pages).await;
    let oz = client(&url, "apikey", "k-1");
    let q = ListQuery {
        project_id: Some("p1".into()),
        ..Default::default()
    };
    let got: Vec<String> = common::all_pages(oz.elements(ElementItem::Cto, q.clone()))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .map(|e| e.fid)
        .collect();
    // CTX is no box type name: the level (3 → "CTO" in the project's hierarchyLevels) decides.
    assert_eq!(got, ["a1", "a2", "a3"]);
    let log = log.lock().unwrap().clone();
    let boxes_asked: Vec<&(String, String, Value)> = log
        .iter()
        .filter(|(p, ..)| p.starts_with("/api/v2/boxes"))
        .collect();
    assert_eq!(boxes_asked.len(), 2, "{log:?}");
    assert_eq!(boxes_asked[1].0, "/api/v2/boxes?cursor=opaque-7&limit=40");
    assert!(
        log.iter().all(|(_, auth, _)| auth == "k-1"),
        "the key as is, no prefix"
    );
    assert_eq!(
        boxes_asked[0].2["filter"],
        json!([{ "property": "project", "operator": "=", "value": "p1" }])
    );
    assert_eq!(boxes_asked[1].2, boxes_asked[0].2, "the same body again");

    // An older server: no hasNextPage, no nextUrl: pages by number until an empty one.
    let mut pages = common_pages.to_vec();
    pages.push((
        "/api/v2/boxes?page=1&limit=40",
        json!({ "total": 2, "rows": boxes(&["c1"], json!("t1"), 2) }),
    ));
    pages.push((
        "/api/v2/boxes?page=2&limit=40",
        json!({ "total": 2, "rows": boxes(&["c2"], json!("t1"), 2) }),
    ));
    pages.push((
        "/api/v2/boxes?page=3&limit=40",
        json!({ "total": 2, "rows": [] }),
    ));
    let (url, log) = scripted(pages).await;
    let oz = client(&url, "apikey", "k-1");
    let got: Vec<String> = common::all_pages(oz.elements(ElementItem::Ceo, q.clone()))
        .await
        .into_iter()
        .flat_map(|p| p.records)
        .map(|e| e.fid)
        .collect();
    assert_eq!(got, ["c1", "c2"], "level 2 is CE: a CEO");
    assert_eq!(
        log.lock()
            .unwrap()
            .iter()
            .filter(|(p, ..)| p.starts_with("/api/v2/boxes"))
            .count(),
        3
    );

    // A record without an id is reported unreadable, never dropped silently; an answer that
    // is no list is an error.
    let mut pages = common_pages.to_vec();
    pages.push((
        "/api/v2/boxes?page=1&limit=40",
        json!({ "rows": [{ "name": "sem id" }], "hasNextPage": false }),
    ));
    pages.push(("/api/v2/pops?page=1&limit=40", json!({ "data": [] })));
    let (url, _) = scripted(pages).await;
    let oz = client(&url, "apikey", "k-1");
    let pages = common::all_pages(oz.elements(ElementItem::Cto, q.clone())).await;
    assert_eq!(pages[0].unreadable.len(), 1);
    let err = futures::TryStreamExt::try_collect::<Vec<_>>(oz.elements(ElementItem::Pop, q))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "PLATFORM_UNAVAILABLE");
}
