//! What an answer to a GraphQL request looks like on the wire, per GraphQL over HTTP: the media
//! type follows `Accept`, and the status code follows the media type.
//!
//! - `application/graphql-response+json`: 200 when the operation ran; 400 (and no `data`) when
//!   the request was refused before it ran (not a GraphQL request, a document that does not
//!   parse or validate, a limit).
//! - `application/json` (also for `*/*`, `application/*` and no `Accept` at all): 200 for every
//!   well-formed request whatever its errors, 400 only when the body or its parameters are not
//!   a GraphQL request.
//!
//! Either way `data` is left out of an answer whose operation never ran, and answers the
//! gateway gives for its own reasons (401, 405, 408, 413, 415, 503) keep their status.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The two media types of GraphQL answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Media {
    GraphqlResponse,
    Json,
}

impl Media {
    fn content_type(self) -> &'static str {
        match self {
            Media::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Media::Json => "application/json; charset=utf-8",
        }
    }

    /// The status of an operation refused before it ran, although the request was well-formed.
    pub(super) fn refused(self) -> StatusCode {
        match self {
            Media::GraphqlResponse => StatusCode::BAD_REQUEST,
            Media::Json => StatusCode::OK,
        }
    }

    /// An answer with this media type.
    pub(super) fn answer(self, status: StatusCode, body: &impl serde::Serialize) -> Response {
        // Written straight from the response: a tree of 500 boxes is never copied into a
        // `serde_json::Value` first.
        let bytes = serde_json::to_vec(body).unwrap_or_else(|_| {
            error_body("the answer could not be written".into(), "INTERNAL", None)
                .to_string()
                .into_bytes()
        });
        let mut response = (status, bytes).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        response
    }

    /// A GraphQL-shaped error answer (no `data`) with this media type.
    pub(super) fn error(
        self,
        status: StatusCode,
        message: String,
        code: &str,
        limit: Option<&str>,
    ) -> Response {
        self.answer(status, &error_body(message, code, limit))
    }
}

/// `{"errors": [{"message", "extensions": {"code", "limit"?}}]}`.
pub(super) fn error_body(message: String, code: &str, limit: Option<&str>) -> serde_json::Value {
    let mut extensions = json!({ "code": code });
    if let Some(limit) = limit {
        extensions["limit"] = json!(limit);
    }
    json!({ "errors": [{ "message": message, "extensions": extensions }] })
}

/// The media type `Accept` prefers (by `q`, then by order), `application/json` when it names
/// none of ours but a wildcard or is absent; `None` when it rules both out (answered 406).
pub(super) fn negotiate(headers: &HeaderMap) -> Option<Media> {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if accept.iter().all(|v| v.trim().is_empty()) {
        return Some(Media::Json);
    }
    let mut best: Option<(f32, Media)> = None;
    for range in accept.iter().flat_map(|v| v.split(',')) {
        let mut parts = range.split(';');
        let media = match parts
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/graphql-response+json" => Media::GraphqlResponse,
            "application/json" | "application/*" | "*/*" => Media::Json,
            _ => continue,
        };
        let mut q = 1.0_f32;
        let mut utf8 = true;
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                "q" => q = value.parse().unwrap_or(0.0),
                "charset" => utf8 = value.eq_ignore_ascii_case("utf-8"),
                _ => {}
            }
        }
        if q > 0.0 && utf8 && best.is_none_or(|(b, _)| q > b) {
            best = Some((q, media));
        }
    }
    best.map(|(_, media)| media)
}

/// Whether `Accept` asks for a web page (a browser's navigation), which GraphiQL answers.
pub(super) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> Option<Media> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, value.parse().unwrap());
        negotiate(&headers)
    }

    #[test]
    fn accept_picks_the_media_type() {
        assert_eq!(negotiate(&HeaderMap::new()), Some(Media::Json));
        assert_eq!(accept("*/*"), Some(Media::Json));
        assert_eq!(accept("application/json"), Some(Media::Json));
        assert_eq!(
            accept("application/graphql-response+json"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/graphql-response+json, application/json;q=0.9"),
            Some(Media::GraphqlResponse)
        );
        assert_eq!(
            accept("application/json, application/graphql-response+json"),
            Some(Media::Json),
            "equal q: the first listed"
        );
        assert_eq!(
            accept("application/graphql-response+json;q=0.5, application/json"),
            Some(Media::Json)
        );
        assert_eq!(accept("text/plain"), None);
        assert_eq!(accept("application/json; charset=latin1"), None);
        assert_eq!(accept("application/json;q=0"), None);
    }
}
