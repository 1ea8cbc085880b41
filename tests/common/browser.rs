//! Debian's headless Chromium for the browser tests, driven over the DevTools protocol with
//! `chromiumoxide`. Without Chromium (`/usr/bin/chromium`, or `CHROMIUM`) a test says so and
//! passes, unless `REQUIRE_BROWSER` is set, as `.ci/run` does after installing it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
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
    let _ = browser.close().await;
    let _ = browser.wait().await;
    events.abort();
    let _ = std::fs::remove_dir_all(&profile);
}
