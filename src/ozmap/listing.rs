//! What a listing asks OZmap for: the route and page of each request, and the filters and
//! sort it sends in the body of the GET (`{"filter": [...], "sort": [...]}`).

use serde_json::{json, Value};

use crate::platform::{ListPage, ListQuery};

/// The most records per page the client asks for (S4 pages by 500); the server may give fewer,
/// and the client trusts the answer's `rows`, never the number asked.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Ids asked for in one filter of records by id.
pub const IDS_PER_QUERY: usize = 100;

/// The routes a sync lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Projects,
    Boxes,
    BoxTypes,
    Pops,
    Poles,
    Splitters,
    Properties,
    Clients,
}

impl Route {
    /// The route's path segment.
    pub fn segment(self) -> &'static str {
        match self {
            Route::Projects => "projects",
            Route::Boxes => "boxes",
            Route::BoxTypes => "box-types",
            Route::Pops => "pops",
            Route::Poles => "poles",
            Route::Splitters => "splitters",
            Route::Properties => "properties",
            Route::Clients => "ftth-clients",
        }
    }

    /// Whether its records carry `project` (poles are not per project).
    fn per_project(self) -> bool {
        !matches!(
            self,
            Route::Poles | Route::BoxTypes | Route::Projects | Route::Clients
        )
    }
}

/// One condition of a listing's filter.
pub fn condition(property: &str, operator: &str, value: Value) -> Value {
    json!({ "property": property, "operator": operator, "value": value })
}

/// The filter (a flat list: its items combine with AND) and sort of a listing. Changed-since
/// listings are sorted by `updatedAt`, others by id, so that pages do not shift while read.
pub fn body(route: Route, query: &ListQuery) -> Value {
    let mut filter = Vec::new();
    if route.per_project() {
        if let Some(project) = &query.project_id {
            filter.push(condition("project", "=", json!(project)));
        }
    }
    if let Some(since) = query.changed_since {
        filter.push(condition(
            "updatedAt",
            ">=",
            json!(since.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        ));
    }
    if let Some(fid) = &query.fid {
        filter.push(condition("id", "=", json!(fid)));
    }
    if let Some(fids) = &query.fids {
        filter.push(condition("id", "in", json!(fids)));
    }
    if route == Route::Splitters {
        if let Some(parent) = &query.box_fid {
            filter.push(condition("parent", "=", json!(parent)));
        }
    }
    if route == Route::Properties {
        if let Some(splitters) = &query.splitter_fids {
            filter.push(condition("connections.id", "in", json!(splitters)));
        }
    }
    let sort = if query.changed_since.is_some() {
        json!([{ "property": "updatedAt", "direction": 1 }, { "property": "id", "direction": 1 }])
    } else {
        json!([{ "property": "id", "direction": 1 }])
    };
    json!({ "filter": filter, "sort": sort })
}

/// A page cut into pages of at most `size` records (its unreadable records with the first).
pub fn split<T>(page: ListPage<T>, size: usize) -> Vec<ListPage<T>> {
    let ListPage {
        mut records,
        total,
        clock,
        unreadable,
    } = page;
    let mut out = vec![ListPage {
        records: Vec::new(),
        total,
        clock,
        unreadable,
    }];
    let size = size.max(1);
    while records.len() > size {
        let rest = records.split_off(size);
        out.last_mut().expect("one page").records = std::mem::replace(&mut records, rest);
        out.push(ListPage {
            records: Vec::new(),
            total,
            clock,
            unreadable: Vec::new(),
        });
    }
    out.last_mut().expect("one page").records = records;
    out
}

/// `query` narrowed to these ids, chunk by chunk.
pub fn by_ids(query: &ListQuery, ids: &[String]) -> Vec<ListQuery> {
    ids.chunks(IDS_PER_QUERY)
        .map(|chunk| ListQuery {
            fid: None,
            fids: Some(chunk.to_vec()),
            ..query.clone()
        })
        .collect()
}

/// The path and query of page `page` (1-based) of a route; properties come with their client.
pub fn page_path(route: Route, page: u32, limit: u32) -> String {
    with_own_parameters(route, &format!("page={page}"), limit)
}

/// The route's path with `paging` (query parameters) and the client's own `limit` and
/// `populate`.
fn with_own_parameters(route: Route, paging: &str, limit: u32) -> String {
    let limit = limit.clamp(1, MAX_PAGE_SIZE);
    let populate = if route == Route::Properties {
        "&populate=client"
    } else {
        ""
    };
    let paging = if paging.is_empty() {
        String::new()
    } else {
        format!("{paging}&")
    };
    format!(
        "/api/v2/{}?{paging}limit={limit}{populate}",
        route.segment()
    )
}

/// Query parameters of a `nextUrl` that are the client's own, never taken from the server.
const OWN_PARAMETERS: [&str; 3] = ["limit", "populate", "select"];

/// The next page's path, as the official SDK builds it: the paging parameters of the answer's
/// `nextUrl` (`page`, `skip`, a cursor, whatever the server uses) on the route's own path, with
/// the client's own `limit` and `populate` (a server whose `nextUrl` drops `populate` would
/// otherwise send clients as bare ids). Without a `nextUrl` under `/api/`, the following page
/// number.
pub fn next_path(route: Route, page: u32, limit: u32, next_url: Option<&str>) -> String {
    // A path of this API only: never another host (`//host/...` is one).
    let Some(url) = next_url.filter(|u| u.starts_with("/api/")) else {
        return page_path(route, page + 1, limit);
    };
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let paging: Vec<String> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| !OWN_PARAMETERS.contains(&k.as_ref()))
        .map(|(k, v)| {
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair(&k, &v)
                .finish()
        })
        .collect();
    if paging.is_empty() {
        return page_path(route, page + 1, limit);
    }
    with_own_parameters(route, &paging.join("&"), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_the_query_and_the_route() {
        let since = "2024-05-01T03:55:00Z".parse().unwrap();
        let q = ListQuery {
            project_id: Some("p1".into()),
            changed_since: Some(since),
            box_fid: Some("b1".into()),
            ..Default::default()
        };
        assert_eq!(
            body(Route::Splitters, &q),
            json!({
                "filter": [
                    { "property": "project", "operator": "=", "value": "p1" },
                    { "property": "updatedAt", "operator": ">=", "value": "2024-05-01T03:55:00.000Z" },
                    { "property": "parent", "operator": "=", "value": "b1" },
                ],
                "sort": [{ "property": "updatedAt", "direction": 1 }, { "property": "id", "direction": 1 }],
            })
        );
        // Poles have no project; a box filter means nothing to boxes.
        assert_eq!(
            body(Route::Poles, &q)["filter"].as_array().unwrap().len(),
            1
        );
        let q = ListQuery {
            fids: Some(vec!["a".into(), "b".into()]),
            splitter_fids: Some(vec!["s1".into()]),
            ..Default::default()
        };
        assert_eq!(
            body(Route::Properties, &q),
            json!({
                "filter": [
                    { "property": "id", "operator": "in", "value": ["a", "b"] },
                    { "property": "connections.id", "operator": "in", "value": ["s1"] },
                ],
                "sort": [{ "property": "id", "direction": 1 }],
            })
        );
    }

    #[test]
    fn pages_are_numbered_or_follow_next_url() {
        assert_eq!(
            page_path(Route::Boxes, 1, 200),
            "/api/v2/boxes?page=1&limit=200"
        );
        assert_eq!(
            page_path(Route::Properties, 2, 200),
            "/api/v2/properties?page=2&limit=200&populate=client"
        );
        assert_eq!(
            next_path(
                Route::Boxes,
                1,
                200,
                Some("/api/v2/boxes?after=xyz&limit=200")
            ),
            "/api/v2/boxes?after=xyz&limit=200"
        );
        // The client's own limit and populate, whatever the server's nextUrl says.
        assert_eq!(
            next_path(
                Route::Properties,
                1,
                200,
                Some("/api/v2/properties?skip=200&limit=50&select=id")
            ),
            "/api/v2/properties?skip=200&limit=200&populate=client"
        );
        assert_eq!(
            next_path(
                Route::Properties,
                1,
                200,
                Some("/api/v2/properties?limit=200")
            ),
            "/api/v2/properties?page=2&limit=200&populate=client"
        );
        assert_eq!(
            next_path(Route::Pops, 3, 200, None),
            "/api/v2/pops?page=4&limit=200"
        );
        assert_eq!(
            next_path(
                Route::Pops,
                1,
                200,
                Some("//elsewhere.example/api/v2/pops?page=2")
            ),
            "/api/v2/pops?page=2&limit=200"
        );
        // Only a path is followed: never another host.
        assert_eq!(
            next_path(
                Route::Pops,
                1,
                200,
                Some("http://elsewhere.example/api/v2/pops?page=2")
            ),
            "/api/v2/pops?page=2&limit=200"
        );
    }
}

#[cfg(test)]
mod routes {
    #[test]
    fn every_route_is_a_route_word() {
        use super::Route::*;
        for r in [
            Projects, Boxes, BoxTypes, Pops, Poles, Splitters, Properties, Clients,
        ] {
            assert!(
                super::super::client::ROUTES.contains(&r.segment()),
                "{}",
                r.segment()
            );
        }
    }
}
