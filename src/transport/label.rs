//! Metrics and log labels of platform endpoints, from a fixed set.

/// A path as a metrics and log label, from a fixed set: the query string dropped, at most
/// [`LABEL_SEGMENTS`] segments, each one of the platform's route words (`routes`) or `:id`. No
/// text a platform sends (a `nextUrl`, an id) can add a label value.
pub(super) fn endpoint_label(path: &str, routes: &[&str]) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .take(LABEL_SEGMENTS)
        .map(|segment| {
            if routes.contains(&segment) {
                segment
            } else {
                ":id"
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// The most segments a label keeps.
const LABEL_SEGMENTS: usize = 5;

#[cfg(test)]
mod tests {
    #[test]
    fn labels_hide_ids_and_queries() {
        let routes = &["api", "v2", "splitters", "cto", "list", "portaSplitter"];
        let label = |path| super::endpoint_label(path, routes);
        assert_eq!(label("cto/list"), "/cto/list");
        assert_eq!(label("portaSplitter/12"), "/portaSplitter/:id");
        assert_eq!(
            label("/api/v2/splitters/65a1f0c2e4b0a1b2c3d4e5f7?populate=client"),
            "/api/v2/splitters/:id"
        );
        assert_eq!(
            label("/api/v2/anything-a-platform-says/x"),
            "/api/v2/:id/:id"
        );
        assert_eq!(label("/a/b/c/d/e/f/g"), "/:id/:id/:id/:id/:id");
    }
}
