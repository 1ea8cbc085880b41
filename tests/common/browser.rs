//! Debian's headless Chromium for the browser tests, driven over the DevTools protocol with
//! `chromiumoxide`. Without Chromium (`/usr/bin/chromium`, or `CHROMIUM`) a test says so and
//! passes, unless `REQUIRE_BROWSER` is set, as `.ci/run` does after installing it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::input::InsertTextParams;
use chromiumoxide::Page;
use futures::StreamExt;

pub fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("REQUIRE_BROWSER").is_none(),
        "REQUIRE_BROWSER is set but there is no Chromium at {}",
        path.display()
    );
    eprintln!(
        "no Chromium at {}: skipping the browser test",
        path.display()
    );
    None
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("browser")
}

/// Opens `url` in a new tab. chromiumoxide's `new_page(url)` and `goto` wait for the page's
/// load events, and now and then one never comes: the tab had loaded GraphiQL, and the test
/// waited on with no end (seen once in CI, in `a_shared_link_opens_its_query`). The tab opens
/// on `about:blank` within a bounded wait and the page itself is sent to `url`
/// ([`navigate`]); a test then waits on what the page shows ([`until`]).
pub async fn open(browser: &Browser, url: &str) -> Result<Page, String> {
    let page = tokio::time::timeout(Duration::from_secs(30), browser.new_page("about:blank"))
        .await
        .map_err(|_| "timed out opening a tab".to_owned())?
        .map_err(|e| e.to_string())?;
    navigate(&page, url).await?;
    Ok(page)
}

/// Sends the page to `url` from its own script, without waiting on navigation events (see
/// [`open`]); fails only if the page did not take the order.
pub async fn navigate(page: &Page, url: &str) -> Result<(), String> {
    let target = serde_json::to_string(url).map_err(|e| e.to_string())?;
    let sent = tokio::time::timeout(
        Duration::from_secs(30),
        page.evaluate(format!("window.location.assign({target}); true")),
    )
    .await
    .map_err(|_| format!("timed out sending the page to {url}"))?;
    match sent {
        Ok(_) => Ok(()),
        // The script's context went with the navigation it started: the order was taken.
        Err(e) if e.to_string().contains("context") => Ok(()),
        Err(e) => Err(format!("the page was not sent to {url}: {e}")),
    }
}

/// Waits (30 s at most) until `expression` evaluates to `true` in the page.
pub async fn until(page: &Page, what: &str, expression: &str) -> Result<(), String> {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Ok(result) = page.evaluate(expression).await {
                if result.into_value::<bool>().unwrap_or(false) {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    waited.map_err(|_| format!("timed out waiting until {what}"))
}

/// Starts Chromium with a fresh profile, resolving no host name but the loopback address (a
/// page that reached for a CDN fails); returns it, its event loop and the profile to remove.
pub async fn launch(executable: PathBuf) -> (Browser, tokio::task::JoinHandle<()>, PathBuf) {
    let profile = std::env::temp_dir().join(super::unique("mgw-chromium-"));
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(&profile)
        .window_size(1400, 900)
        .viewport(chromiumoxide::handler::viewport::Viewport {
            width: 1400,
            height: 900,
            ..Default::default()
        })
        .request_timeout(Duration::from_secs(30))
        .args([
            "disable-gpu",
            "disable-quic",
            "disable-component-update",
            "disable-extensions",
            // Nothing but the loopback address resolves: a page that reached for a CDN fails.
            "host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ])
        .build()
        .expect("browser config");
    let (browser, mut handler) = Browser::launch(config).await.expect("launch Chromium");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    (browser, events, profile)
}

/// Closes Chromium, ends its event loop and removes its profile.
pub async fn shut(mut browser: Browser, events: tokio::task::JoinHandle<()>, profile: PathBuf) {
    // A browser that does not close in 10 s is killed: a test must end, whatever it left open.
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = browser.close().await;
        let _ = browser.wait().await;
    })
    .await;
    if closed.is_err() {
        let _ = browser.kill().await;
    }
    events.abort();
    let _ = std::fs::remove_dir_all(&profile);
}

/// Replaces the text of the CodeMirror editor under `selector` as a user would: focus it, select
/// everything, and type the new text through the browser's input pipeline.
pub async fn enter(page: &Page, selector: &str, text: &str) -> Result<(), String> {
    let focused = page
        .evaluate(format!(
            "(() => {{ const e = document.querySelector({selector:?}); \
               if (!e || !e.CodeMirror) return false; \
               e.CodeMirror.focus(); e.CodeMirror.execCommand('selectAll'); return true; }})()"
        ))
        .await
        .map_err(|e| e.to_string())?
        .into_value::<bool>()
        .unwrap_or(false);
    if !focused {
        return Err(format!("no editor at {selector}"));
    }
    page.execute(InsertTextParams::new(text))
        .await
        .map_err(|e| e.to_string())?;
    let value: String = value(
        page,
        format!("document.querySelector({selector:?}).CodeMirror.getValue()"),
    )
    .await?;
    if value != text {
        return Err(format!("the editor at {selector} holds {value:?}"));
    }
    Ok(())
}

/// Opens the documentation explorer and waits until the schema's root types show in it (and
/// the welcome is gone).
pub async fn docs_list_the_root_types(page: &Page) -> Result<(), String> {
    until(
        page,
        "the welcome goes once the key is accepted",
        "!document.querySelector('.mgw-welcome')",
    )
    .await?;
    page.evaluate(
        "(() => { const b = [...document.querySelectorAll('button')].find(b => \
           (b.getAttribute('aria-label') || '').includes('Documentation Explorer')); \
           if (b && !document.querySelector('.graphiql-doc-explorer')) b.click(); return !!b; })()",
    )
    .await
    .map_err(|e| e.to_string())?;
    until(
        page,
        "the documentation explorer lists Query and Mutation",
        "(() => { const d = document.querySelector('.graphiql-doc-explorer'); \
           return !!d && d.innerText.includes('Query') && d.innerText.includes('Mutation'); })()",
    )
    .await
}

pub const HEADERS: &str = ".graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror";
pub const QUERY: &str = ".graphiql-query-editor .CodeMirror";
pub const RESULT: &str = ".result-window .CodeMirror";

pub fn result_contains(needle: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({RESULT:?}); \
           return !!e && !!e.CodeMirror && e.CodeMirror.getValue().includes({needle:?}); }})()"
    )
}

pub async fn run_button(page: &Page) -> Result<(), String> {
    page.find_element(".graphiql-execute-button")
        .await
        .map_err(|e| e.to_string())?
        .click()
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The value of `expression` evaluated in the page.
pub async fn value<T: serde::de::DeserializeOwned>(
    page: &Page,
    expression: impl Into<String>,
) -> Result<T, String> {
    page.evaluate(expression.into())
        .await
        .map_err(|e| e.to_string())?
        .into_value()
        .map_err(|e| e.to_string())
}
