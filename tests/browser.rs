//! GraphiQL in a real browser: Debian's headless Chromium, driven over the DevTools protocol
//! with `chromiumoxide` (async on tokio like the rest of the suite, and it exposes the raw
//! protocol commands the test needs: `Input.insertText`, network events, screenshots).
//!
//! The gateway is served behind a `BASE_PATH`, and Chromium resolves no host name but the
//! loopback address: the page must load from the gateway alone. The test enters a key in the
//! headers editor, runs a tree query, then a `syncProgress` subscription while a sync runs.
//! On failure a screenshot is saved under `target/browser/`.
//!
//! Without Chromium (`/usr/bin/chromium`, or `CHROMIUM`), the test says so and passes, unless
//! `REQUIRE_BROWSER` is set, as `.ci/run` does after installing it.

#[path = "common/browser.rs"]
mod chromium;
mod common;

use std::sync::{Arc, Mutex};

use chromium::{
    chromium, docs_list_the_root_types, enter, launch, navigate, open, result_contains, run_button,
    shut, target_dir, until, value, HEADERS, QUERY, RESULT,
};
use chromiumoxide::cdp::browser_protocol::network::EventRequestWillBeSent;
use chromiumoxide::page::ScreenshotParams;
use common::*;
use futures::StreamExt;
use serde_json::json;

const BASE: &str = "/isp/gateway";
/// What a browser's navigation accepts.
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

async fn graphiql_runs_queries_and_subscriptions(engine: Engine) {
    let Some(executable) = chromium() else {
        return;
    };
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let (_sim, integration) = world::synced(&app, 30, &["SERVICE", "CTO"]).await;
    let first_fid = app
        .ok(
            "query($i: ID!) { elements(integrationId: $i, first: 1) { edges { node { fid } } } }",
            json!({ "i": integration }),
        )
        .await["elements"]["edges"][0]["node"]["fid"]
        .as_str()
        .expect("an element")
        .to_owned();

    // The same state served behind a path prefix, as a reverse proxy would forward it.
    let origin = app
        .serve_surface(mapping_gateway::http::Surface {
            base_path: BASE.to_owned(),
            ..Default::default()
        })
        .await;

    let (browser, events, profile) = launch(executable).await;
    let page = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        browser.new_page("about:blank"),
    )
    .await
    .expect("a tab within 30 s")
    .expect("a page");
    let requested = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut requests = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .expect("network events");
    let recorder = {
        let requested = requested.clone();
        tokio::spawn(async move {
            while let Some(event) = requests.next().await {
                requested.lock().unwrap().push(event.request.url.clone());
            }
        })
    };

    let steps = async {
        navigate(&page, &format!("{origin}{BASE}/graphql")).await?;
        until(
            &page,
            "GraphiQL has rendered its editors",
            &format!(
                "!!document.querySelector({QUERY:?}) && !!document.querySelector({HEADERS:?})"
            ),
        )
        .await?;

        // The headers editor starts as the template users fill in.
        let template: String = value(
            &page,
            format!("document.querySelector({HEADERS:?}).CodeMirror.getValue()"),
        )
        .await?;
        if !template.contains("\"Authorization\": \"Bearer \"") {
            return Err(format!("the headers start as {template:?}"));
        }
        // The first screen says where the key goes, and shows no refusal.
        until(
            &page,
            "the welcome shows",
            "!!document.querySelector('.mgw-welcome[data-state=\"no-key\"]')",
        )
        .await?;
        let refused: bool =
            value(&page, "document.body.innerText.includes('UNAUTHENTICATED')").await?;
        if refused {
            return Err("the first screen shows a refusal".into());
        }
        let _ = std::fs::create_dir_all(target_dir());
        let _ = page
            .save_screenshot(
                ScreenshotParams::builder().build(),
                target_dir().join("graphiql-welcome.png"),
            )
            .await;
        enter(
            &page,
            HEADERS,
            &format!("{{\"Authorization\": \"Bearer {}\"}}", app.admin_key),
        )
        .await?;
        // The schema loads as soon as the key is typed: the documentation lists the root types.
        docs_list_the_root_types(&page).await?;

        // A tree query over HTTP.
        enter(
            &page,
            QUERY,
            &format!(
                "query Tree {{\n  elements(integrationId: \"{integration}\", first: 5) {{\n    \
                 edges {{\n      node {{\n        fid\n        name\n        splitters {{\n          \
                 kind\n          ports {{ number status }}\n        }}\n      }}\n    }}\n  }}\n}}"
            ),
        )
        .await?;
        run_button(&page).await?;
        until(&page, "the tree result shows", &result_contains(&first_fid)).await?;
        // The picture in the README, with the key left out of it.
        let key = format!("{{\"Authorization\": \"Bearer {}\"}}", app.admin_key);
        enter(&page, HEADERS, "{\"Authorization\": \"Bearer mgw_...\"}").await?;
        let _ = std::fs::create_dir_all(target_dir());
        let _ = page
            .save_screenshot(
                ScreenshotParams::builder().build(),
                target_dir().join("graphiql-tree.png"),
            )
            .await;
        enter(&page, HEADERS, &key).await?;

        // A subscription over the WebSocket, with the key sent in connection_init.
        enter(
            &page,
            QUERY,
            &format!(
                "subscription Progress {{ syncProgress(integrationId: \"{integration}\") {{ \
                   runId phase status processed }} }}"
            ),
        )
        .await?;
        let before = app.state.events.subscribers();
        run_button(&page).await?;
        app.wait_subscribers(before + 1).await;
        let run = world::start(&app, &integration, "INCREMENTAL", false).await;
        let run_id = run["id"].as_str().expect("run id").to_owned();
        until(
            &page,
            "the subscription shows the run's end",
            &format!(
                "({}) && ({})",
                result_contains(&run_id),
                result_contains("FINISHED")
            ),
        )
        .await?;

        let violations: Vec<String> = value(&page, "window.mgwCspViolations").await?;
        if !violations.is_empty() {
            return Err(format!("Content-Security-Policy refusals: {violations:?}"));
        }
        Ok::<(), String>(())
    };
    let outcome = steps.await;
    if let Err(failure) = &outcome {
        let _ = std::fs::create_dir_all(target_dir());
        let shot = target_dir().join(format!("graphiql-failure-{engine:?}.png"));
        let _ = page
            .save_screenshot(ScreenshotParams::builder().build(), &shot)
            .await;
        eprintln!(
            "browser test failed ({failure}); screenshot: {}",
            shot.display()
        );
    }
    recorder.abort();
    shut(browser, events, profile).await;
    outcome.expect("GraphiQL works in the browser");

    let requested = requested.lock().unwrap().clone();
    assert!(
        requested.iter().any(|u| u.ends_with("/boot.js")),
        "the page's requests were seen: {requested:?}"
    );
    let foreign: Vec<&String> = requested
        .iter()
        .filter(|u| {
            !(u.starts_with(&format!("{origin}{BASE}/"))
                || u.starts_with(&format!("ws://{}{BASE}/", &origin["http://".len()..]))
                || u.starts_with("data:")
                || u.as_str() == "about:blank")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "requests outside the gateway: {foreign:?}"
    );
}

each_engine!(graphiql_runs_queries_and_subscriptions);

on_both_engines! {
    async fn the_page_and_its_files_are_served_under_the_base_path(app: TestApp) {
        let origin = app.serve_surface(
            mapping_gateway::http::Surface { base_path: BASE.to_owned(), ..Default::default() },
        )
        .await;
        let http = reqwest::Client::new();
        let page = http.get(format!("{origin}{BASE}/graphql")).header("accept", HTML).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
        let html = page.text().await.unwrap();
        let files: Vec<&str> = html
            .split(['"'])
            .filter(|part| part.starts_with(&format!("{BASE}/graphiql/")))
            .collect();
        assert_eq!(files.len(), 7, "two stylesheets and five scripts: {html}");
        for file in &files {
            let response = http.get(format!("{origin}{file}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{file}");
            assert_eq!(
                response.headers()["cache-control"],
                "public, max-age=31536000, immutable",
                "{file}"
            );
            assert!(!response.bytes().await.unwrap().is_empty());
        }
        // Another build's files, and paths outside the prefix, are not there.
        let stale = files[0].replace("/graphiql/", "/graphiql/0").to_owned();
        assert_eq!(http.get(format!("{origin}{stale}")).send().await.unwrap().status(), 404);
        assert_eq!(http.get(format!("{origin}/graphql")).header("accept", HTML).send().await.unwrap().status(), 404);
        assert_eq!(
            http.get(format!("{origin}{BASE}/healthz")).send().await.unwrap().text().await.unwrap(),
            "ok"
        );
        // The API answers under the prefix too.
        let data = graphql_at(
            &format!("{origin}{BASE}"),
            &app.admin_key,
            "{ integrations { id } }",
            json!({}),
        )
        .await;
        assert!(data["integrations"].is_array(), "{data}");

        // Turned off, neither the page nor its files are served.
        let off = app.serve_surface(
            mapping_gateway::http::Surface { graphiql: false, ..Default::default() },
        )
        .await;
        // A browser's GET then gets the API's answer (no key: 401), not a page.
        let no_page = http.get(format!("{off}/graphql")).header("accept", HTML).send().await.unwrap();
        assert_eq!(no_page.status(), 401);
        assert!(no_page.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let file = files[0].trim_start_matches(BASE);
        assert_eq!(http.get(format!("{off}{file}")).send().await.unwrap().status(), 404);
    }
}

/// Opened from the demo's link (`/graphql#key=…`), the page starts with the key in its headers
/// and takes it out of the address bar: the schema loads at once, and the first query runs
/// without typing anything.
async fn a_demo_page_starts_with_its_key(engine: Engine) {
    let Some(executable) = chromium() else {
        return;
    };
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let origin = app
        .serve_surface(mapping_gateway::http::Surface::default())
        .await;
    let (browser, events, profile) = launch(executable).await;
    let steps = async {
        let page = open(&browser, &format!("{origin}/graphql#key={}", app.admin_key)).await?;
        until(
            &page,
            "GraphiQL has rendered its editors",
            &format!("!!document.querySelector({HEADERS:?})"),
        )
        .await?;
        let headers: String = value(
            &page,
            format!("document.querySelector({HEADERS:?}).CodeMirror.getValue()"),
        )
        .await?;
        if !headers.contains(&app.admin_key) {
            return Err(format!("the headers start as {headers:?}"));
        }
        let address: String = value(&page, "window.location.href").await?;
        if address.contains(&app.admin_key) {
            return Err(format!("the key stays in the address bar: {address}"));
        }
        // The welcome says what is true (the key is there) and fits the editor: no line runs
        // past its edge.
        let welcome: String = value(
            &page,
            format!("document.querySelector({QUERY:?}).CodeMirror.getValue()"),
        )
        .await?;
        if !welcome.contains("Your key is in Headers") || welcome.contains("Put your API key") {
            return Err(format!("the welcome asks for a key it has: {welcome}"));
        }
        let fits: String = value(&page, format!(
                "(() => {{ const s = document.querySelector({QUERY:?}).CodeMirror.getScrollInfo(); \
                   return s.width <= s.clientWidth ? 'fits' : s.width + ' > ' + s.clientWidth; }})()"
            )).await?;
        if fits != "fits" {
            return Err(format!(
                "a line of the welcome runs past the editor's edge: {fits}"
            ));
        }
        docs_list_the_root_types(&page).await?;
        run_button(&page).await?;
        until(
            &page,
            "the first query answers",
            &result_contains("\"integrations\""),
        )
        .await
    };
    let outcome = steps.await;
    shut(browser, events, profile).await;
    outcome.expect("the demo's page starts with its key");
}

each_engine!(a_demo_page_starts_with_its_key);

/// A shared link (`/graphql?query=…&variables=…&operationName=…`) opens the linked operation
/// with its variables, and runs the operation it names.
async fn a_shared_link_opens_its_query(engine: Engine) {
    let Some(executable) = chromium() else {
        return;
    };
    let Some(app) = TestApp::start(engine).await else {
        return;
    };
    let origin = app
        .serve_surface(mapping_gateway::http::Surface::default())
        .await;
    let query = "query First { gateways { kind } }\nquery Second($n: Int!) { integrations(first: $n) { id } }";
    let variables = r#"{"n": 1}"#;
    let link = format!(
        "{origin}/graphql?query={}&variables={}&operationName=Second#key={}",
        url::form_urlencoded::byte_serialize(query.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(variables.as_bytes()).collect::<String>(),
        app.admin_key
    );
    let (browser, events, profile) = launch(executable).await;
    let steps = async {
        let page = open(&browser, &link).await?;
        until(
            &page,
            "GraphiQL shows the linked query",
            &format!(
                "(() => {{ const e = document.querySelector({QUERY:?}); \
                   return !!e && !!e.CodeMirror && e.CodeMirror.getValue() === {query:?}; }})()"
            ),
        )
        .await?;
        until(
            &page,
            "GraphiQL shows the linked variables",
            &format!(
                "[...document.querySelectorAll('.graphiql-editor-tool .CodeMirror')].some(e => \
                   e.CodeMirror.getValue() === {variables:?})"
            ),
        )
        .await?;
        docs_list_the_root_types(&page).await?;
        run_button(&page).await?;
        // The second operation ran: integrations, not gateways.
        until(
            &page,
            "the linked operation answers",
            &result_contains("\"integrations\""),
        )
        .await?;
        let text: String = value(
            &page,
            format!("document.querySelector({RESULT:?}).CodeMirror.getValue()"),
        )
        .await?;
        if text.contains("gateways") {
            return Err(format!("the first operation ran: {text}"));
        }
        Ok(())
    };
    let outcome = steps.await;
    shut(browser, events, profile).await;
    outcome.expect("a shared link opens its query");
}

each_engine!(a_shared_link_opens_its_query);
