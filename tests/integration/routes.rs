//! The route table (`components/domain/src/http/routes.rs`) is the one
//! place routes are declared; spin.toml and openapi.yaml must agree with
//! it. Spin's own routing (chat-manifest's `Router`, which follows Spin's
//! rules) must send every public route to the component that serves it and
//! no public request to an internal one, and the description must list
//! exactly the table's public methods and paths.

use chat_domain::http::routes::{ROUTES, Route, Segment, segments};
use chat_manifest::{HttpRoute, Manifest, Router};
use chat_tests::contract::openapi::ApiDescription;
use std::collections::BTreeSet;

const SOME_ID: &str = "123e4567-e89b-12d3-a456-426614174000";

fn manifest() -> Manifest {
    Manifest::load(&chat_tests::repo_root().join("spin.toml")).expect("spin.toml loads")
}

/// A concrete path for the route, as a client would send it.
fn example_path(route: &Route) -> String {
    let mut path = String::new();
    for segment in segments(route.path) {
        path.push('/');
        path.push_str(match segment {
            Segment::Literal(literal) => literal,
            Segment::Any(_) => "app.js",
            Segment::Rest(_) => "vendor/marked.esm.js",
            Segment::Uuid(_) => SOME_ID,
        });
    }
    if path.is_empty() {
        "/".to_owned()
    } else {
        path
    }
}

/// The route's path as openapi.yaml writes it: `{chatId}` for any kind.
fn documented_path(route: &Route) -> String {
    route.path.replace(":uuid}", "}").replace("...}", "}")
}

#[test]
fn spin_toml_sends_every_public_route_to_the_component_that_serves_it() {
    let manifest = manifest();
    let router = Router::build(&manifest.http_triggers).expect("spin.toml's routes build");
    for route in ROUTES.iter().filter(|route| route.public) {
        let path = example_path(route);
        let reached = router
            .route(&path)
            .map(|found| found.component_id().to_owned());
        assert_eq!(
            reached.as_deref(),
            Some(route.handler.component()),
            "{} {} ({path}): spin.toml routes it elsewhere",
            route.method,
            route.path
        );
    }
}

#[test]
fn no_public_request_reaches_an_internal_route() {
    let manifest = manifest();
    let router = Router::build(&manifest.http_triggers).expect("spin.toml's routes build");
    let internal: Vec<&Route> = ROUTES.iter().filter(|route| !route.public).collect();
    assert!(
        !internal.is_empty(),
        "the background work's route is internal"
    );
    for route in internal {
        let reached = router
            .route(&example_path(route))
            .map(|found| found.component_id().to_owned());
        assert_ne!(
            reached.as_deref(),
            Some(route.handler.component()),
            "{} is internal, yet a public route reaches {}",
            route.path,
            route.handler.component()
        );
    }
}

/// chat-host runs the background work at the path spin.toml declares; it
/// must be the table's internal route of that component.
#[test]
fn the_declared_background_work_is_a_route_of_its_component() {
    let manifest = manifest();
    let declared: Vec<(&str, &str)> = manifest
        .components
        .iter()
        .filter_map(|(id, component)| {
            Some((
                id.as_str(),
                component.background_work.as_ref()?.path.as_str(),
            ))
        })
        .collect();
    assert!(!declared.is_empty(), "spin.toml declares background work");
    for (component, path) in declared {
        assert!(
            ROUTES.iter().any(|route| route.method == "POST"
                && route.path == path
                && !route.public
                && route.handler.component() == component),
            "spin.toml's background work POST {path} of {component} is no internal route of it"
        );
    }
}

/// Every component spin.toml routes requests to serves at least one of the
/// table's routes, except the demo agent (a stand-in for services outside
/// the app, reached only by service chaining).
#[test]
fn every_routed_component_serves_a_route_of_the_table() {
    let manifest = manifest();
    let served: BTreeSet<&str> = ROUTES
        .iter()
        .map(|route| route.handler.component())
        .collect();
    for trigger in &manifest.http_triggers {
        if let HttpRoute::Path(path) = &trigger.route {
            assert!(
                served.contains(trigger.component.as_str()),
                "spin.toml routes {path} to {}, which serves no route of the table",
                trigger.component
            );
        }
    }
}

#[test]
fn openapi_yaml_documents_exactly_the_public_routes() {
    let documented: BTreeSet<(String, String)> =
        ApiDescription::load().operations().into_iter().collect();
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .filter(|route| route.public)
        .map(|route| (route.method.to_owned(), documented_path(route)))
        .collect();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "routes openapi.yaml does not document: {undocumented:?}; \
         operations it documents that no route serves: {not_served:?}"
    );
}
