//! The description itself: it covers the product's routes (README, API), only routes spin.toml
//! serves, and the rules every error answer follows; and its checker rejects
//! answers that break it (so the suite's green means something).

use bytes::Bytes;
use chat_manifest::{Manifest, Router};
use chat_tests::contract::client::description;
use chat_tests::contract::openapi::Exchange;
use http::HeaderMap;
use serde_json::{Value, json};
use std::collections::BTreeSet;

const A_CHAT: &str = "123e4567-e89b-12d3-a456-426614174000";

/// The HTTP API and the admin routes, with the statuses each answers.
/// Every route refuses a body over 1 MiB first, so 413 is everywhere; every
/// write also refuses cross-site requests (403) and bodies that are not JSON
/// (415).
const OPERATIONS: [(&str, &str, &[u16]); 26] = [
    ("GET", "/api/session", &[200, 401, 413]),
    (
        "GET",
        "/api/history",
        &[200, 204, 400, 401, 404, 413, 500, 503],
    ),
    (
        "POST",
        "/api/history/delete",
        &[200, 400, 401, 403, 413, 415, 500, 503],
    ),
    ("GET", "/api/folders", &[200, 204, 401, 413, 500, 503]),
    (
        "POST",
        "/api/folders",
        &[201, 400, 401, 403, 409, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/folders/{folderId}",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "DELETE",
        "/api/folders/{folderId}",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/chat/{chatId}/pinned",
        &[200, 400, 401, 403, 404, 409, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/chat/{chatId}/archived",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/chat/{chatId}/folder",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "POST",
        "/api/chat",
        &[200, 400, 401, 403, 409, 413, 415, 500, 503],
    ),
    (
        "GET",
        "/api/messages/{chatId}",
        &[200, 400, 401, 403, 404, 413, 500, 503],
    ),
    (
        "DELETE",
        "/api/chat/{chatId}",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/chat/{chatId}/visibility",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "PATCH",
        "/api/chat/{chatId}/title",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "POST",
        "/api/chat/{chatId}/stop",
        &[202, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "GET",
        "/api/chat/{chatId}/stream",
        &[200, 204, 400, 401, 403, 404, 413, 500, 503],
    ),
    (
        "POST",
        "/api/chat/{chatId}/regenerate",
        &[200, 400, 401, 403, 404, 409, 413, 415, 500, 503],
    ),
    (
        "PUT",
        "/api/feedback",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    (
        "GET",
        "/api/feedback/{chatId}",
        &[200, 400, 401, 403, 404, 413, 500, 503],
    ),
    (
        "DELETE",
        "/api/feedback/{chatId}/{messageId}",
        &[200, 400, 401, 403, 404, 413, 415, 500, 503],
    ),
    ("GET", "/api/export", &[200, 401, 413, 500, 503]),
    (
        "GET",
        "/api/chat/{chatId}/export",
        &[200, 400, 401, 403, 404, 413, 500, 503],
    ),
    (
        "POST",
        "/api/import",
        &[200, 400, 401, 403, 413, 415, 500, 503],
    ),
    ("GET", "/admin/schema", &[200, 401, 403, 413, 500, 503]),
    (
        "POST",
        "/admin/schema/migrate",
        &[200, 401, 403, 413, 415, 500, 503],
    ),
];

/// Components whose routes are not part of the JSON API.
const NOT_API_COMPONENTS: [&str; 2] = ["ui", "demo-agent"];

fn document() -> &'static Value {
    description().document()
}

fn documented_statuses(method: &str, template: &str) -> BTreeSet<u16> {
    let key = method.to_ascii_lowercase();
    let responses = &document()["paths"][template][key.as_str()]["responses"];
    responses
        .as_object()
        .unwrap_or_else(|| panic!("{method} {template} is not described"))
        .keys()
        .map(|status| status.parse().expect("numeric statuses only"))
        .collect()
}

/// `template` with each `{param}` replaced by a chat id.
fn example_path(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                A_CHAT
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn router() -> Router {
    let manifest = Manifest::load(&chat_tests::repo_root().join("spin.toml")).expect("spin.toml");
    Router::build(&manifest.http_triggers).expect("spin.toml's routes")
}

#[test]
fn every_route_of_the_spec_is_described_with_its_statuses() {
    for (method, template, statuses) in OPERATIONS {
        assert_eq!(
            documented_statuses(method, template),
            statuses.iter().copied().collect(),
            "{method} {template}"
        );
        assert!(
            description().has_operation(method, &example_path(template)),
            "{method} {template} must be served, not marked x-implemented: false"
        );
    }
}

/// The list above is the whole API: an operation added to the description
/// is added there too, with its statuses.
#[test]
fn every_api_operation_of_the_description_is_listed() {
    let router = router();
    let described: BTreeSet<(String, String)> = description()
        .operations()
        .into_iter()
        .filter(|(_, template)| {
            router
                .route(&example_path(template))
                .is_none_or(|matched| !NOT_API_COMPONENTS.contains(&matched.component_id()))
        })
        .collect();
    let listed: BTreeSet<(String, String)> = OPERATIONS
        .iter()
        .map(|(method, template, _)| (method.to_string(), template.to_string()))
        .collect();
    assert_eq!(
        described.difference(&listed).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "described in openapi.yaml but not in OPERATIONS"
    );
}

#[test]
fn described_paths_and_spin_routes_agree() {
    let router = router();
    let operations = description().operations();
    for (method, template) in &operations {
        assert!(
            router.route(&example_path(template)).is_some(),
            "openapi.yaml describes {method} {template}, which spin.toml does not route"
        );
    }
    for (route, component) in router.routes() {
        if NOT_API_COMPONENTS.contains(&component) {
            continue;
        }
        let described = operations.iter().any(|(_, template)| {
            router
                .route(&example_path(template))
                .is_some_and(|matched| matched.raw_route() == route)
        });
        assert!(
            described,
            "spin.toml routes {route} to {component}, but openapi.yaml describes nothing there"
        );
    }
}

/// Every response object of the description, as (where, resolved response).
fn all_responses() -> Vec<(String, u16, &'static Value)> {
    let mut found = Vec::new();
    let mut collect = |place: String, responses: &'static Value| {
        for (status, response) in responses.as_object().expect("a responses object") {
            let response = match response.get("$ref").and_then(Value::as_str) {
                Some(reference) => document()
                    .pointer(reference.trim_start_matches('#'))
                    .unwrap_or_else(|| panic!("{place}: {reference} points at nothing")),
                None => response,
            };
            found.push((place.clone(), status.parse().unwrap(), response));
        }
    };
    for (template, item) in document()["paths"].as_object().unwrap() {
        for (key, operation) in item.as_object().unwrap() {
            if let Some(responses) = operation.get("responses") {
                collect(format!("{template} {key}"), responses);
            }
        }
    }
    for rule in document()["x-unlisted-paths"].as_array().unwrap() {
        collect(format!("unlisted {}", rule["prefix"]), &rule["responses"]);
    }
    found
}

#[test]
fn every_error_answer_is_the_error_object() {
    let error = &document()["components"]["schemas"]["Error"];
    assert_eq!(error["required"], json!(["error"]));
    assert_eq!(error["additionalProperties"], json!(false));
    assert_eq!(error["properties"]["error"]["type"], json!("string"));
    for (place, status, response) in all_responses().into_iter().filter(|r| r.1 >= 400) {
        let content = response["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{place} {status}: an error answer has a body"));
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/json"],
            "{place} {status}"
        );
        assert_eq!(
            content["application/json"]["schema"],
            json!({"$ref": "#/components/schemas/Error"}),
            "{place} {status}"
        );
    }
}

#[test]
fn every_path_names_its_method_in_allow_when_refusing_others() {
    for (place, status, response) in all_responses() {
        if status == 405 {
            assert_eq!(
                response["headers"]["Allow"]["required"],
                json!(true),
                "{place}"
            );
        }
    }
    for (template, item) in document()["paths"].as_object().unwrap() {
        assert!(
            item["x-other-methods"]["responses"]["405"].is_object(),
            "{template} says nothing about other methods"
        );
    }
}

fn exchange(
    method: &str,
    path: &str,
    status: u16,
    headers: &[(&str, &str)],
    body: &str,
) -> Exchange {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Exchange {
        method: method.into(),
        path: path.into(),
        status,
        headers: map,
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");

#[test]
fn the_checker_accepts_what_the_description_says() {
    let good = [
        exchange(
            "GET",
            "/api/history",
            200,
            &[JSON],
            r#"{"data":[],"hasMore":false}"#,
        ),
        exchange("GET", "/api/history", 204, &[], ""),
        exchange(
            "GET",
            "/nope",
            404,
            &[JSON],
            r#"{"error":"There is nothing at /nope."}"#,
        ),
        exchange("GET", "/admin/x", 401, &[JSON], r#"{"error":"Token."}"#),
        exchange(
            "PUT",
            "/api/history",
            405,
            &[JSON, ("allow", "GET")],
            r#"{"error":"Only GET."}"#,
        ),
        exchange(
            "GET",
            &format!("/api/messages/{A_CHAT}"),
            200,
            &[("content-type", "application/json; charset=utf-8")],
            r#"{"data":[],"source":"mock","hasMore":false}"#,
        ),
        exchange("HEAD", "/api/history", 405, &[JSON, ("allow", "GET")], ""),
        exchange(
            "POST",
            "/api/chat",
            200,
            &[("content-type", "text/event-stream")],
            "data: {\"type\":\"meta\"}\n\ndata: [DONE]\n\n",
        ),
        exchange(
            "POST",
            "/api/chat",
            409,
            &[JSON],
            r#"{"error":"That message id is taken."}"#,
        ),
        exchange(
            "GET",
            "/api/chat",
            405,
            &[JSON, ("allow", "POST")],
            r#"{"error":"Only POST."}"#,
        ),
    ];
    for exchange in good {
        if let Err(violation) = description().check(&exchange) {
            panic!(
                "{} {} {}: {violation}",
                exchange.method, exchange.path, exchange.status
            );
        }
    }
}

#[test]
fn the_checker_rejects_what_the_description_does_not_say() {
    let messages = format!("/api/messages/{A_CHAT}");
    let bad = [
        // An undocumented status (a 500 is documented only for what the
        // database refuses; the fuzz test allows none with it up).
        exchange("GET", "/api/history", 502, &[JSON], r#"{"error":"Oops."}"#),
        exchange("GET", "/api/session", 500, &[JSON], r#"{"error":"Oops."}"#),
        exchange("GET", "/api/session", 204, &[], ""),
        // Error bodies are exactly {"error": string}.
        exchange(
            "GET",
            "/nope",
            404,
            &[JSON],
            r#"{"error":"x","stack":"..."}"#,
        ),
        exchange("GET", "/nope", 404, &[JSON], r#"{"message":"x"}"#),
        exchange("GET", "/nope", 404, &[JSON], ""),
        exchange(
            "GET",
            "/nope",
            404,
            &[("content-type", "text/plain")],
            r#"{"error":"x"}"#,
        ),
        // Methods are case-sensitive: `get` is not GET.
        exchange(
            "get",
            "/api/history",
            200,
            &[JSON],
            r#"{"data":[],"hasMore":false}"#,
        ),
        // A 405 must name the allowed method.
        exchange(
            "PUT",
            "/api/history",
            405,
            &[JSON],
            r#"{"error":"Only GET."}"#,
        ),
        // Bodies must match their schema.
        exchange("GET", "/api/history", 200, &[JSON], r#"{"data":[]}"#),
        exchange(
            "GET",
            &messages,
            200,
            &[JSON],
            r#"{"data":[{"id":"x"}],"source":"mock","hasMore":false}"#,
        ),
        exchange(
            "GET",
            &messages,
            200,
            &[JSON],
            r#"{"data":[{"id":"not-a-uuid","role":"user","parts":[],"traceId":null,"createdAt":"2026-01-01T00:00:00.000Z"}],"source":"live","hasMore":false}"#,
        ),
        exchange("GET", "/api/history", 204, &[], "surprise"),
        // The stream is an event stream, and what can be refused is
        // refused before it, with the statuses described.
        exchange("POST", "/api/chat", 200, &[JSON], r#"{"data":[]}"#),
        exchange("POST", "/api/chat", 404, &[JSON], r#"{"error":"x"}"#),
        exchange("POST", "/api/chat", 502, &[JSON], r#"{"error":"x"}"#),
        // Unlisted paths outside /admin are 404, nothing else.
        exchange("GET", "/administrator", 401, &[JSON], r#"{"error":"x"}"#),
    ];
    for exchange in bad {
        assert!(
            description().check(&exchange).is_err(),
            "accepted: {} {} {} {:?}",
            exchange.method,
            exchange.path,
            exchange.status,
            exchange.body
        );
    }
}
