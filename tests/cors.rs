//! Browser pages of other origins: `CORS_ALLOWED_ORIGINS`. Preflights and headers are checked
//! over HTTP; then a real headless Chromium loads a front-end page from an allowed origin that
//! runs a query with `fetch` and a subscription over `graphql-transport-ws` (ten lines of plain
//! JavaScript, as the README shows), and the same page from an origin not allowed, whose
//! `fetch` the browser refuses.

#[path = "common/browser.rs"]
mod chromium;
mod common;

use axum::http::HeaderMap;
use chromium::{chromium, launch, open, shut, until};
use common::*;
use mapping_gateway::http::Surface;
use serde_json::{json, Value};

const FRONT_END: &str = "http://localhost:3000";

fn surface(origins: &[&str]) -> Surface {
    Surface {
        cors_allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
        ..Default::default()
    }
}

/// A preflight of a POST with the key and a JSON body, from `origin`.
async fn preflight(gateway: &str, origin: &str) -> (u16, HeaderMap) {
    let response = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{gateway}/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The status line of a WebSocket upgrade of `/graphql/ws` sent with these extra headers.
async fn upgrade_status(gateway: &str, extra: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = gateway.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let request = format!(
        "GET /graphql/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Protocol: graphql-transport-ws\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut answer))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

on_both_engines! {
    /// `CORS_ALLOWED_ORIGINS` holds for `/graphql/ws` too: a page of another origin cannot open
    /// a socket; the allowed origins, the gateway's own pages (GraphiQL) and clients that send
    /// no `Origin` can.
    async fn sockets_follow_the_allowed_origins(app: TestApp) {
        let gateway = app.serve_surface(surface(&[FRONT_END])).await;
        let host = gateway.trim_start_matches("http://").trim_end_matches('/').to_owned();
        assert!(upgrade_status(&gateway, "Origin: http://evil.example\r\n").await.contains(" 403 "));
        assert!(upgrade_status(&gateway, &format!("Origin: {FRONT_END}\r\n")).await.contains(" 101 "));
        assert!(upgrade_status(&gateway, &format!("Origin: http://{host}\r\n")).await.contains(" 101 "));
        assert!(upgrade_status(&gateway, "").await.contains(" 101 "));
        // With no origin allowed, only the gateway's own pages and non-browser clients.
        let closed = app.serve_surface(surface(&[])).await;
        assert!(upgrade_status(&closed, &format!("Origin: {FRONT_END}\r\n")).await.contains(" 403 "));
        assert!(upgrade_status(&closed, "").await.contains(" 101 "));
    }

    /// A preflight asking for tracing and client headers (`traceparent`, `sentry-trace`,
    /// `x-request-id`, Apollo's `apollo-require-preflight` and `x-apollo-operation-name`) is
    /// allowed them.
    async fn preflights_allow_the_headers_a_page_asks_for(app: TestApp) {
        let gateway = app.serve_surface(surface(&[FRONT_END])).await;
        let asked = "authorization,content-type,traceparent,sentry-trace,x-request-id,apollo-require-preflight,x-apollo-operation-name";
        let response = reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, format!("{gateway}/graphql"))
            .header("origin", FRONT_END)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", asked)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let allowed = header(response.headers(), "access-control-allow-headers")
            .unwrap_or_default()
            .to_ascii_lowercase();
        for name in asked.split(',') {
            assert!(allowed.contains(name), "{name} not in {allowed}");
        }
    }
}

on_both_engines! {
    async fn allowed_origins_get_preflights_and_headers_others_nothing(app: TestApp) {
        let gateway = app.serve_surface(surface(&[FRONT_END, "https://app.example.com"])).await;
        let (status, headers) = preflight(&gateway, FRONT_END).await;
        assert!((200..300).contains(&status), "{status}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(FRONT_END));
        let allowed = header(&headers, "access-control-allow-headers").unwrap().to_ascii_lowercase();
        assert!(allowed.contains("authorization") && allowed.contains("content-type"), "{allowed}");
        assert!(header(&headers, "access-control-allow-methods").unwrap().contains("POST"));
        assert_eq!(header(&headers, "access-control-max-age"), Some("3600"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
        assert!(header(&headers, "vary").unwrap_or_default().to_ascii_lowercase().contains("origin"));

        let (_, denied) = preflight(&gateway, "http://evil.example").await;
        assert_eq!(header(&denied, "access-control-allow-origin"), None);

        // The request itself carries the header for the allowed origin only.
        let call = |origin: &'static str| {
            reqwest::Client::new()
                .post(format!("{gateway}/graphql"))
                .header("origin", origin)
                .header("content-type", "application/json")
                .bearer_auth(&app.admin_key)
                .body(json!({ "query": "{ integrations { id } }" }).to_string())
                .send()
        };
        let ok = call(FRONT_END).await.unwrap();
        assert_eq!(ok.status(), 200);
        assert_eq!(header(ok.headers(), "access-control-allow-origin"), Some(FRONT_END));
        let other = call("http://evil.example").await.unwrap();
        assert_eq!(header(other.headers(), "access-control-allow-origin"), None);
        // So does a 401: the page can read why it was refused.
        let anonymous = reqwest::Client::new()
            .post(format!("{gateway}/graphql"))
            .header("origin", FRONT_END)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(anonymous.status(), 401);
        assert_eq!(header(anonymous.headers(), "access-control-allow-origin"), Some(FRONT_END));
    }

    async fn no_origin_is_allowed_by_default_and_any_with_a_star(app: TestApp) {
        let closed = app.serve_surface(Surface::default()).await;
        let (_, headers) = preflight(&closed, FRONT_END).await;
        assert_eq!(header(&headers, "access-control-allow-origin"), None);
        let open = app.serve_surface(surface(&["*"])).await;
        let (_, headers) = preflight(&open, "http://anywhere.example:8081").await;
        assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    }
}

/// The settings' check of an origin.
#[test]
fn origins_are_checked_when_read() {
    use mapping_gateway::config::parse_origin;
    assert_eq!(
        parse_origin("https://app.example.com/").unwrap(),
        "https://app.example.com"
    );
    assert_eq!(
        parse_origin("http://localhost:3000").unwrap(),
        "http://localhost:3000"
    );
    assert_eq!(parse_origin("*").unwrap(), "*");
    for bad in [
        "app.example.com",
        "https://app.example.com/path",
        "ftp://x.example",
        "",
    ] {
        assert!(parse_origin(bad).is_err(), "{bad}");
    }
}

/// The front-end page: a query with `fetch`, then a subscription over the WebSocket; what
/// happens is left in `window.outcome`.
fn front_end(gateway: &str, key: &str, integration: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>front-end</title><script>
const api = "{gateway}/graphql", key = "{key}";
window.outcome = {{ events: [] }};
fetch(api, {{ method: "POST", headers: {{ "Content-Type": "application/json", Authorization: `Bearer ${{key}}` }},
  body: JSON.stringify({{ query: "{{ integrations {{ id }} }}" }}) }})
  .then(r => r.json()).then(b => window.outcome.query = b, e => window.outcome.query = "refused: " + e);
const ws = new WebSocket(api.replace(/^http/, "ws") + "/ws", "graphql-transport-ws");
ws.onopen = () => ws.send(JSON.stringify({{ type: "connection_init", payload: {{ Authorization: `Bearer ${{key}}` }} }}));
ws.onmessage = ({{ data }}) => {{ const m = JSON.parse(data);
  if (m.type === "connection_ack") ws.send(JSON.stringify({{ id: "1", type: "subscribe",
    payload: {{ query: 'subscription {{ syncProgress(integrationId: "{integration}") {{ runId status }} }}' }} }}));
  if (m.type === "next") window.outcome.events.push(m.payload.data.syncProgress); }};
</script>"#
    )
}

/// A port for a page server, and its origin.
async fn page_port() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    (listener, origin)
}

/// Serves `page` at `/` on `listener`.
fn serve_page(listener: tokio::net::TcpListener, page: String) {
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await.ok() });
}

async fn outcome(page: &chromiumoxide::Page, path: &str) -> Value {
    page.evaluate(format!("JSON.stringify(window.outcome{path})"))
        .await
        .ok()
        .and_then(|v| v.into_value::<String>().ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

async fn a_page_of_an_allowed_origin_queries_and_subscribes(engine: Engine) {
    let Some(executable) = chromium() else {
        return;
    };
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let (_sim, integration) = world::synced(&app, 20, &["SERVICE", "CTO"]).await;
    // The same page from two origins (two ports); the gateway allows the first only.
    let (allowed, allowed_origin) = page_port().await;
    let (other, other_origin) = page_port().await;
    let gateway = app.serve_surface(surface(&[&allowed_origin])).await;
    let html = front_end(&gateway, &app.admin_key, &integration);
    serve_page(allowed, html.clone());
    serve_page(other, html);

    let (browser, events, profile) = launch(executable).await;
    let before = app.state.events.subscribers();
    let steps = async {
        let page = open(&browser, &allowed_origin).await?;
        until(
            &page,
            "the query answers",
            "!!window.outcome && !!window.outcome.query",
        )
        .await?;
        let query = outcome(&page, ".query").await;
        if !query["data"]["integrations"][0]["id"].is_string() {
            return Err(format!("the page's query got {query}"));
        }
        app.wait_subscribers(before + 1).await;
        let run = world::start(&app, &integration, "INCREMENTAL", false).await;
        let run_id = run["id"].as_str().unwrap_or_default().to_owned();
        until(
            &page,
            "the subscription shows the run's end",
            &format!(
                "window.outcome.events.some(e => e.runId === {run_id:?} && e.status === 'SUCCEEDED')"
            ),
        )
        .await?;

        let refused = open(&browser, &other_origin).await?;
        until(
            &refused,
            "the other origin's fetch ends",
            "!!window.outcome && !!window.outcome.query",
        )
        .await?;
        let query = outcome(&refused, ".query").await;
        if !query.as_str().is_some_and(|q| q.starts_with("refused")) {
            return Err(format!("a page of another origin read {query}"));
        }
        Ok::<(), String>(())
    };
    let result = steps.await;
    shut(browser, events, profile).await;
    result.expect("a front-end of an allowed origin calls the gateway from a browser");
}

each_engine!(a_page_of_an_allowed_origin_queries_and_subscribes);
