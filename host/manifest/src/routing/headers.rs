//! The request headers Spin's HTTP trigger adds to tell a component how it was
//! reached.

use std::net::SocketAddr;

use super::RouteMatch;

/// The `spin-*` headers for a routed request, lower-case names first.
///
/// `uri` is the request URI as received (usually origin-form: path and
/// query) and `request_headers` the client's headers, of which only `Host`
/// is read (`localhost` when absent or not UTF-8). Spin appends these after
/// the client's own headers without removing client-sent `spin-*` ones;
/// replacing them instead is the host's choice.
pub fn spin_request_headers(
    route_match: &RouteMatch,
    uri: &http::Uri,
    request_headers: &http::HeaderMap,
    client_addr: SocketAddr,
) -> Vec<(String, String)> {
    // An origin-form URI has no scheme; Spin then says `http` even on TLS.
    let scheme = uri.scheme_str().unwrap_or("http");
    let host = request_headers
        .get(http::header::HOST)
        .and_then(|host| std::str::from_utf8(host.as_bytes()).ok())
        .unwrap_or("localhost");
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());

    let mut headers = vec![
        (
            "spin-path-info".to_owned(),
            route_match.path_info().to_owned(),
        ),
        (
            "spin-full-url".to_owned(),
            format!("{scheme}://{host}{path_and_query}"),
        ),
        (
            "spin-matched-route".to_owned(),
            route_match.matched_route().to_owned(),
        ),
        ("spin-base-path".to_owned(), "/".to_owned()),
        (
            "spin-raw-component-route".to_owned(),
            route_match.raw_route().to_owned(),
        ),
        (
            "spin-component-route".to_owned(),
            route_match.component_route().to_owned(),
        ),
        ("spin-client-addr".to_owned(), client_addr.to_string()),
    ];
    // Spin spells these SPIN_PATH_MATCH_<NAME> and turns `_` into `-`.
    headers.extend(route_match.params().iter().map(|(name, value)| {
        let name = name.to_ascii_lowercase().replace('_', "-");
        (format!("spin-path-match-{name}"), value.clone())
    }));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{HttpRoute, HttpTrigger};
    use crate::routing::Router;

    fn headers_for(route: &str, uri: &str, path: &str) -> Vec<(String, String)> {
        let trigger = HttpTrigger {
            route: HttpRoute::Path(route.into()),
            component: "c".into(),
        };
        let router = Router::build(&[trigger]).unwrap();
        let route_match = router.route(path).unwrap();
        let uri: http::Uri = uri.parse().unwrap();
        let mut request_headers = http::HeaderMap::new();
        request_headers.insert(http::header::HOST, "fermyon.dev".parse().unwrap());
        spin_request_headers(
            &route_match,
            &uri,
            &request_headers,
            "127.0.0.1:8777".parse().unwrap(),
        )
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        let found = headers.iter().find(|(n, _)| n == name);
        &found.unwrap_or_else(|| panic!("no {name} header")).1
    }

    #[test]
    fn wildcard_route_headers_match_spins() {
        let headers = headers_for(
            "/foo/...",
            "https://fermyon.dev/foo/bar?key1=value1&key2=value2",
            "/foo/bar",
        );
        assert_eq!(
            header(&headers, "spin-full-url"),
            "https://fermyon.dev/foo/bar?key1=value1&key2=value2"
        );
        assert_eq!(header(&headers, "spin-path-info"), "/bar");
        assert_eq!(header(&headers, "spin-matched-route"), "/foo/...");
        assert_eq!(header(&headers, "spin-base-path"), "/");
        assert_eq!(header(&headers, "spin-raw-component-route"), "/foo/...");
        assert_eq!(header(&headers, "spin-component-route"), "/foo");
        assert_eq!(header(&headers, "spin-client-addr"), "127.0.0.1:8777");
        assert_eq!(headers.len(), 7);
    }

    #[test]
    fn named_parameters_become_path_match_headers() {
        let headers = headers_for("/foo/:user_id/...", "/foo/42/bar?x=1", "/foo/42/bar");
        assert_eq!(header(&headers, "spin-path-match-user-id"), "42");
        assert_eq!(
            header(&headers, "spin-full-url"),
            "http://fermyon.dev/foo/42/bar?x=1"
        );
        assert_eq!(header(&headers, "spin-component-route"), "/foo/:user_id");
        assert_eq!(header(&headers, "spin-path-info"), "/bar");
    }

    #[test]
    fn missing_host_header_means_localhost() {
        let route_match = RouteMatch::for_service_chaining("c", "/x");
        let headers = spin_request_headers(
            &route_match,
            &"/x".parse().unwrap(),
            &http::HeaderMap::new(),
            "0.0.0.0:0".parse().unwrap(),
        );
        assert_eq!(header(&headers, "spin-full-url"), "http://localhost/x");
        assert_eq!(header(&headers, "spin-client-addr"), "0.0.0.0:0");
    }
}
