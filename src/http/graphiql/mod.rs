//! GraphiQL, served from the binary: the page at `GET {BASE_PATH}/graphql` and its files at
//! `{BASE_PATH}/graphiql/{version}/{file}`.
//!
//! The vendored files in `assets/graphiql/` (GraphiQL's UMD bundle and stylesheet, production
//! React, the graphql-ws client, their licences) are refreshed from the npm registry at pinned
//! versions by `scripts/graphiql-assets`, which checks them against `SHA256SUMS`; a test checks
//! the embedded bytes against the same file. The page loads nothing from another host: its
//! Content-Security-Policy allows scripts, styles and connections to this origin only (fonts
//! and the few icons of GraphiQL's stylesheet are `data:` URLs inside it).
//!
//! `{version}` is a digest of every file, so the files can be cached for a year: a new build
//! with other files answers under another path.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One file of the page.
pub struct Asset {
    pub name: &'static str,
    mime: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! vendored {
    ($name:literal, $mime:literal) => {
        Asset {
            name: $name,
            mime: $mime,
            bytes: include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/assets/graphiql/",
                $name
            )),
        }
    };
}

/// The vendored files, each listed in `assets/graphiql/SHA256SUMS`.
pub const VENDORED: &[Asset] = &[
    vendored!("react.production.min.js", "text/javascript; charset=utf-8"),
    vendored!(
        "react-dom.production.min.js",
        "text/javascript; charset=utf-8"
    ),
    vendored!("graphql-ws.min.js", "text/javascript; charset=utf-8"),
    vendored!("graphiql.min.js", "text/javascript; charset=utf-8"),
    vendored!("graphiql.min.css", "text/css; charset=utf-8"),
    vendored!("LICENSES.txt", "text/plain; charset=utf-8"),
];

/// The gateway's own files of the page.
const OWN: &[Asset] = &[
    Asset {
        name: "boot.js",
        mime: "text/javascript; charset=utf-8",
        bytes: include_bytes!("boot.js"),
    },
    Asset {
        name: "page.css",
        mime: "text/css; charset=utf-8",
        bytes: include_bytes!("page.css"),
    },
];

/// The digest that names this build's files.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    use sha2::Digest;
    let mut digest = sha2::Sha256::new();
    for asset in VENDORED.iter().chain(OWN) {
        digest.update(asset.name.as_bytes());
        digest.update((asset.bytes.len() as u64).to_le_bytes());
        digest.update(asset.bytes);
    }
    hex::encode(&digest.finalize()[..6])
});

/// Scripts and styles from this origin only, nothing framed, no forms, no plugins; fonts and
/// icons only as the `data:` URLs of GraphiQL's stylesheet. `connect-src 'self'` covers the
/// page's own `ws:`/`wss:` origin in CSP 3 browsers.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page; `base` is the validated `BASE_PATH` (empty or `/a/b`). It carries no key: a key
/// the headers start with comes in the URL's fragment (`#key=…`, the link the demo prints),
/// which the browser never sends, so no answer of this unauthenticated page holds one.
pub fn page(base: &str) -> Response {
    let files = format!("{base}/graphiql/{}", *VERSION);
    let html = format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mapping-gateway · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{files}/graphiql.min.css">
<link rel="stylesheet" href="{files}/page.css">
</head>
<body data-base="{base}">
<div id="graphiql"><p class="loading">Loading GraphiQL…</p></div>
<noscript>GraphiQL needs JavaScript; the API itself is at {base}/graphql (POST).</noscript>
<script src="{files}/react.production.min.js"></script>
<script src="{files}/react-dom.production.min.js"></script>
<script src="{files}/graphql-ws.min.js"></script>
<script src="{files}/graphiql.min.js"></script>
<script src="{files}/boot.js"></script>
</body>
</html>
"#
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

/// One file of the page, cached for a year under this build's version.
pub async fn asset(Path((version, name)): Path<(String, String)>) -> Response {
    let found = VENDORED
        .iter()
        .chain(OWN)
        .find(|a| a.name == name)
        .filter(|_| version == *VERSION);
    let Some(asset) = found else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.mime)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded files are the ones `scripts/graphiql-assets` verified.
    #[test]
    fn vendored_files_match_their_recorded_checksums() {
        use sha2::Digest;
        let sums = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/assets/graphiql/SHA256SUMS"
        ));
        let recorded: Vec<(&str, &str)> = sums
            .lines()
            .filter_map(|l| l.split_once("  "))
            .map(|(sum, name)| (name, sum))
            .collect();
        assert_eq!(
            recorded.len(),
            VENDORED.len(),
            "every listed file is embedded"
        );
        for asset in VENDORED {
            let want = recorded
                .iter()
                .find(|(name, _)| *name == asset.name)
                .unwrap_or_else(|| panic!("{} is not in SHA256SUMS", asset.name))
                .1;
            assert_eq!(
                hex::encode(sha2::Sha256::digest(asset.bytes)),
                want,
                "{}",
                asset.name
            );
        }
    }

    #[test]
    fn the_page_names_no_other_host() {
        let page = page("/gw");
        let body = page.into_body();
        let bytes = futures::executor::block_on(axum::body::to_bytes(body, usize::MAX)).unwrap();
        let html = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{html}"
        );
        assert!(html.contains(r#"data-base="/gw""#));
        assert!(html.contains(&format!("/gw/graphiql/{}/boot.js", *VERSION)));
    }
}
