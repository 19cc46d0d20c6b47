//! HTTP routing with the semantics of Spin's HTTP trigger:
//! which component handles a request path, what the route captured, and the
//! `spin-*` headers the component is told about it.

mod headers;
mod pattern;

use std::collections::BTreeMap;
use std::fmt;

pub use headers::spin_request_headers;
use pattern::Pattern;

use crate::manifest::{HttpRoute, HttpTrigger};

/// Paths under this prefix are answered by the Spin runtime itself
/// (`health`, `info`) before routing, so no component ever sees them.
pub const WELL_KNOWN_PREFIX: &str = "/.well-known/spin/";

/// A route that cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {route:?} of component `{component}` is invalid: {reason}")]
pub struct RouteError {
    /// The route as written in the manifest.
    pub route: String,
    /// The component the route belongs to.
    pub component: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Something Spin logs as an error at start-up but still runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteWarning {
    /// Two triggers have the same route; the later one wins and the earlier
    /// one is unreachable.
    Duplicate {
        route: String,
        unreachable_component: String,
        effective_component: String,
    },
    /// The route is under [`WELL_KNOWN_PREFIX`] and will never be reached.
    Reserved { route: String, component: String },
}

impl fmt::Display for RouteWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duplicate {
                route,
                unreachable_component,
                effective_component,
            } => write!(
                f,
                "route {route:?} of component `{unreachable_component}` duplicates that of \
                 `{effective_component}` and will never be used"
            ),
            Self::Reserved { route, component } => write!(
                f,
                "route {route:?} of component `{component}` is under {WELL_KNOWN_PREFIX}, \
                 which the runtime handles itself; it will never be reached"
            ),
        }
    }
}

/// Maps request paths to components.
#[derive(Debug, Clone)]
pub struct Router {
    /// Highest precedence first.
    routes: Vec<Route>,
    warnings: Vec<RouteWarning>,
}

#[derive(Debug, Clone)]
struct Route {
    component: String,
    /// As written in the manifest.
    raw: String,
    /// Normalised: absolute, one trailing slash dropped (so `/` becomes
    /// the empty string).
    normalized: String,
    pattern: Pattern,
}

impl Router {
    /// Compiles the routes of the given triggers. Private triggers
    /// (`route = { private = true }`) get no route.
    pub fn build(triggers: &[HttpTrigger]) -> Result<Self, RouteError> {
        // Like Spin, a repeated route (compared as written) keeps its first
        // position but the last trigger's component.
        let mut unique: Vec<(&str, &str)> = Vec::new();
        let mut warnings = Vec::new();
        for trigger in triggers {
            let HttpRoute::Path(raw) = &trigger.route else {
                continue;
            };
            match unique.iter_mut().find(|(route, _)| route == raw) {
                Some((_, component)) => {
                    warnings.push(RouteWarning::Duplicate {
                        route: display_route(&normalize(raw)).to_owned(),
                        unreachable_component: component.to_string(),
                        effective_component: trigger.component.clone(),
                    });
                    *component = &trigger.component;
                }
                None => unique.push((raw, &trigger.component)),
            }
        }

        let mut routes: Vec<Route> = Vec::with_capacity(unique.len());
        for (raw, component) in unique {
            let route = Route::compile(raw, component)?;
            if route.normalized.starts_with(WELL_KNOWN_PREFIX) {
                warnings.push(RouteWarning::Reserved {
                    route: route.normalized.clone(),
                    component: component.to_owned(),
                });
            }
            // Insert before the first route this one outranks; equally ranked
            // routes keep manifest order (as routefinder's ordered map does).
            let position = routes
                .iter()
                .position(|existing| route.pattern.outranks(&existing.pattern))
                .unwrap_or(routes.len());
            routes.insert(position, route);
        }
        Ok(Self { routes, warnings })
    }

    /// The component that handles `path` (the request path without query
    /// string, not percent-decoded), or `None` for a 404. Does not treat
    /// [`WELL_KNOWN_PREFIX`] specially: the server answers those first.
    pub fn route(&self, path: &str) -> Option<RouteMatch> {
        self.routes.iter().find_map(|route| {
            let captures = route.pattern.matches(path)?;
            let path_info = match captures.wildcard {
                // Spin keeps the slashes around the wildcard part that
                // routefinder drops.
                Some(rest) => match (rest.is_empty(), path.ends_with('/')) {
                    (true, false) => String::new(),
                    (true, true) => "/".to_owned(),
                    (false, false) => format!("/{rest}"),
                    (false, true) => format!("/{rest}/"),
                },
                None => String::new(),
            };
            Some(RouteMatch {
                component_id: route.component.clone(),
                raw_route: route.raw.clone(),
                normalized_route: route.normalized.clone(),
                params: captures
                    .params
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), value.to_owned()))
                    .collect(),
                path_info,
            })
        })
    }

    /// Problems Spin reports but tolerates; the host should log them.
    pub fn warnings(&self) -> &[RouteWarning] {
        &self.warnings
    }

    /// The routable routes in precedence order, as `(route, component)`.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.routes
            .iter()
            .map(|r| (display_route(&r.normalized), r.component.as_str()))
    }
}

impl Route {
    fn compile(raw: &str, component: &str) -> Result<Self, RouteError> {
        let normalized = normalize(raw);
        // `/...` is Spin's spelling of a trailing wildcard; `/*` works too.
        let pattern = match normalized.strip_suffix("/...") {
            Some(prefix) => format!("{prefix}/*"),
            None => normalized.clone(),
        };
        let pattern = Pattern::parse(&pattern).map_err(|reason| RouteError {
            route: raw.to_owned(),
            component: component.to_owned(),
            reason,
        })?;
        Ok(Self {
            component: component.to_owned(),
            raw: raw.to_owned(),
            normalized,
            pattern,
        })
    }
}

/// What Spin calls the "based route": made absolute, one trailing slash
/// removed (the application base is always `/` since Spin 3).
fn normalize(raw: &str) -> String {
    let absolute = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    match absolute.strip_suffix('/') {
        Some(stripped) => stripped.to_owned(),
        None => absolute,
    }
}

fn display_route(normalized: &str) -> &str {
    if normalized.is_empty() {
        "/"
    } else {
        normalized
    }
}

/// The result of routing a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    component_id: String,
    raw_route: String,
    normalized_route: String,
    params: BTreeMap<String, String>,
    path_info: String,
}

impl RouteMatch {
    /// The match Spin synthesises for a service-chaining request to
    /// `http://<component>.spin.internal/<path>`: as if the component had the
    /// route `/...`, so the whole path is path info.
    pub fn for_service_chaining(component_id: &str, path: &str) -> Self {
        Self {
            component_id: component_id.to_owned(),
            raw_route: "/...".to_owned(),
            normalized_route: "/...".to_owned(),
            params: BTreeMap::new(),
            path_info: path.to_owned(),
        }
    }

    /// The component that handles the request.
    pub fn component_id(&self) -> &str {
        &self.component_id
    }

    /// The route as written in the manifest (`spin-raw-component-route`).
    pub fn raw_route(&self) -> &str {
        &self.raw_route
    }

    /// The normalised route (`spin-matched-route`): absolute, without a
    /// trailing slash, so the root route `/` is the empty string.
    pub fn matched_route(&self) -> &str {
        &self.normalized_route
    }

    /// The route as written without its trailing `/...`
    /// (`spin-component-route`).
    pub fn component_route(&self) -> &str {
        self.raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
    }

    /// The named `:param` segments and what they captured. A name used twice
    /// keeps the last capture, as in Spin.
    pub fn params(&self) -> &BTreeMap<String, String> {
        &self.params
    }

    /// What a trailing wildcard matched, with its leading slash and any
    /// trailing slash of the request (`spin-path-info`); empty for exact
    /// routes. Route `/admin/...` and path `/admin/schema/` give `/schema/`.
    pub fn path_info(&self) -> &str {
        &self.path_info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(route: &str, component: &str) -> HttpTrigger {
        HttpTrigger {
            route: HttpRoute::Path(route.to_owned()),
            component: component.to_owned(),
        }
    }

    fn router(routes: &[(&str, &str)]) -> Router {
        let triggers: Vec<_> = routes.iter().map(|(r, c)| trigger(r, c)).collect();
        Router::build(&triggers).unwrap()
    }

    fn component(router: &Router, path: &str) -> Option<String> {
        router.route(path).map(|m| m.component_id().to_owned())
    }

    #[test]
    fn exact_routes() {
        let r = router(&[("/foo", "foo"), ("/foo/bar", "foobar")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/bar").as_deref(), Some("foobar"));
        assert_eq!(component(&r, "/foo/").as_deref(), Some("foo"));
        assert_eq!(component(&r, "/foo/baz"), None);
        assert_eq!(component(&r, "/"), None);
    }

    #[test]
    fn exact_beats_wildcard_whatever_the_order() {
        for routes in [
            [("/one", "exact"), ("/...", "all")],
            [("/...", "all"), ("/one", "exact")],
        ] {
            let r = router(&routes);
            assert_eq!(component(&r, "/one").as_deref(), Some("exact"));
            assert_eq!(component(&r, "/two").as_deref(), Some("all"));
            assert_eq!(component(&r, "/").as_deref(), Some("all"));
        }
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        let forwards = [
            ("/one/...", "one"),
            ("/one/two/...", "two"),
            ("/one/two/three/...", "three"),
        ];
        let mut backwards = forwards;
        backwards.reverse();
        for routes in [forwards, backwards] {
            let r = router(&routes);
            assert_eq!(
                component(&r, "/one/two/three/four").as_deref(),
                Some("three")
            );
            assert_eq!(component(&r, "/one/two/x").as_deref(), Some("two"));
            assert_eq!(component(&r, "/one/x").as_deref(), Some("one"));
            assert_eq!(component(&r, "/one").as_deref(), Some("one"));
        }
    }

    #[test]
    fn literal_segments_beat_parameters_which_beat_wildcards() {
        let r = router(&[
            ("/...", "catch-all"),
            ("/:greeting", "param"),
            ("/hello", "literal"),
            ("/hey/:world", "hey-param"),
            ("/hey/earth", "hey-earth"),
        ]);
        assert_eq!(component(&r, "/hello").as_deref(), Some("literal"));
        assert_eq!(component(&r, "/hey").as_deref(), Some("param"));
        assert_eq!(component(&r, "/hey/earth").as_deref(), Some("hey-earth"));
        assert_eq!(component(&r, "/hey/mars").as_deref(), Some("hey-param"));
        assert_eq!(component(&r, "/a/b/c").as_deref(), Some("catch-all"));
    }

    #[test]
    fn a_literal_prefix_wildcard_beats_a_parameter_at_the_same_position() {
        let r = router(&[
            ("/api/chat/:chatId", "by-id"),
            ("/api/chat/export/...", "export"),
        ]);
        assert_eq!(component(&r, "/api/chat/export").as_deref(), Some("export"));
        assert_eq!(component(&r, "/api/chat/42").as_deref(), Some("by-id"));
    }

    #[test]
    fn equally_specific_routes_keep_manifest_order() {
        let r = router(&[("/:a", "first"), ("/:b", "second")]);
        assert_eq!(component(&r, "/x").as_deref(), Some("first"));
        // Different spellings of one route are not duplicates; the first wins.
        let r = router(&[("/foo", "first"), ("/foo/", "second")]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("first"));
        assert!(r.warnings().is_empty());
    }

    #[test]
    fn named_parameters_are_captured() {
        let r = router(&[
            ("/api/chat/:chatId", "history"),
            ("/api/chat/:chatId/visibility", "history-visibility"),
            ("/api/messages/:chatId", "messages"),
            ("/users/:id/files/...", "files"),
        ]);
        let m = r.route("/api/chat/abc").unwrap();
        assert_eq!(m.component_id(), "history");
        assert_eq!(m.params()["chatId"], "abc");
        assert_eq!(m.path_info(), "");

        let m = r.route("/api/chat/abc/visibility").unwrap();
        assert_eq!(m.component_id(), "history-visibility");
        assert_eq!(m.params()["chatId"], "abc");

        let m = r.route("/users/7/files/a/b.txt").unwrap();
        assert_eq!(m.params()["id"], "7");
        assert_eq!(m.path_info(), "/a/b.txt");

        assert!(r.route("/api/chat/").is_none());
        assert!(r.route("/api/messages").is_none());
    }

    #[test]
    fn path_info_keeps_spins_slashes() {
        let r = router(&[("/test/...", "comp")]);
        let info = |path: &str| r.route(path).unwrap().path_info().to_owned();
        assert_eq!(info("/test"), "");
        assert_eq!(info("/test/"), "/");
        assert_eq!(info("/test/hello"), "/hello");
        assert_eq!(info("/test/hello/"), "/hello/");
        assert_eq!(info("/test/a/b/c"), "/a/b/c");
        assert!(r.route("/testing").is_none());

        let root = router(&[("/...", "all")]);
        assert_eq!(root.route("/1/2/3").unwrap().path_info(), "/1/2/3");
        assert_eq!(root.route("/").unwrap().path_info(), "/");
    }

    #[test]
    fn star_suffix_is_a_wildcard_too() {
        let r = router(&[("/static/*", "ui")]);
        let m = r.route("/static/app.js").unwrap();
        assert_eq!(m.path_info(), "/app.js");
        assert_eq!(m.component_route(), "/static/*");
    }

    #[test]
    fn route_strings_are_reported_like_spin() {
        let r = router(&[("/foo/:userid/...", "c"), ("/", "root"), ("bare", "bare")]);
        let m = r.route("/foo/42/bar").unwrap();
        assert_eq!(m.raw_route(), "/foo/:userid/...");
        assert_eq!(m.matched_route(), "/foo/:userid/...");
        assert_eq!(m.component_route(), "/foo/:userid");
        let root = r.route("/").unwrap();
        assert_eq!(root.component_id(), "root");
        assert_eq!(root.raw_route(), "/");
        assert_eq!(root.matched_route(), "");
        assert_eq!(root.component_route(), "/");
        let bare = r.route("/bare").unwrap();
        assert_eq!((bare.raw_route(), bare.matched_route()), ("bare", "/bare"));
    }

    #[test]
    fn duplicates_warn_and_the_last_one_wins() {
        let r = router(&[
            ("/", "root"),
            ("/foo", "first"),
            ("/foo", "second"),
            ("/whee/...", "whee"),
        ]);
        assert_eq!(component(&r, "/foo").as_deref(), Some("second"));
        assert_eq!(r.routes().count(), 3);
        assert_eq!(
            r.warnings(),
            [RouteWarning::Duplicate {
                route: "/foo".into(),
                unreachable_component: "first".into(),
                effective_component: "second".into(),
            }]
        );
        assert_eq!(
            r.warnings()[0].to_string(),
            "route \"/foo\" of component `first` duplicates that of `second` and will never be used"
        );
    }

    #[test]
    fn private_routes_are_not_routable() {
        let triggers = [
            trigger("/foo", "foo"),
            HttpTrigger {
                route: HttpRoute::Private,
                component: "internal".into(),
            },
        ];
        let r = Router::build(&triggers).unwrap();
        assert_eq!(r.routes().collect::<Vec<_>>(), [("/foo", "foo")]);
    }

    #[test]
    fn reserved_routes_warn() {
        let r = router(&[
            ("/.well-known/spin/...", "comp"),
            ("/.well-known/spindle/...", "ok"),
        ]);
        assert_eq!(
            r.warnings(),
            [RouteWarning::Reserved {
                route: "/.well-known/spin/...".into(),
                component: "comp".into()
            }]
        );
    }

    #[test]
    fn invalid_routes_name_the_component() {
        let err = Router::build(&[trigger("/a/*/b", "broken")]).unwrap_err();
        assert_eq!(err.component, "broken");
        assert_eq!(
            err.to_string(),
            "route \"/a/*/b\" of component `broken` is invalid: a wildcard (`*` or `...`) must be the last part of a route"
        );
        assert!(Router::build(&[trigger("/x/:", "c")]).is_err());
    }

    #[test]
    fn service_chaining_match_treats_the_whole_path_as_path_info() {
        let m = RouteMatch::for_service_chaining("history", "/api/history");
        assert_eq!(m.component_id(), "history");
        assert_eq!(m.path_info(), "/api/history");
        assert_eq!(m.raw_route(), "/...");
        assert_eq!(m.component_route(), "");
    }
}
