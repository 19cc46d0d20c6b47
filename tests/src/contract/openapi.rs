//! `openapi.yaml` as an oracle: for a request that was made, which statuses,
//! headers, content types and bodies the description allows, so every
//! response the contract suite receives can be checked against it.
//!
//! Besides plain OpenAPI 3.1 it reads four extensions the description
//! explains: `x-other-methods` (what a path answers to methods it has no
//! operation for), `x-unlisted-paths` (what other paths answer),
//! `x-implemented: false` (an operation not served yet, whose path then
//! answers like an unlisted one) and `x-rest-of-path: true` (the path's last
//! parameter takes one or more segments).

use boon::{Compiler, Draft, SchemaIndex, Schemas};
use http::HeaderMap;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Under this URL the whole description is given to the schema compiler, so
/// `$ref`s such as `#/components/schemas/Error` resolve inside it.
const DOCUMENT_URL: &str = "urn:chat-history:openapi";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// A response as the suite received it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    /// The path as sent (percent-encoded, no query).
    pub path: String,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// The loaded description with every response schema compiled.
pub struct ApiDescription {
    document: Value,
    schemas: Schemas,
    /// Compiled schemas by the JSON pointer of their location.
    compiled: HashMap<String, SchemaIndex>,
}

/// The responses a request may get, and where the description says so.
struct Allowed<'d> {
    /// JSON pointer of the responses object.
    pointer: String,
    responses: &'d Map<String, Value>,
    /// For messages: `GET /api/history`, `unlisted path under /admin`, ...
    label: String,
}

impl ApiDescription {
    /// The repository's `openapi.yaml`.
    pub fn load() -> Self {
        Self::from_file(&crate::repo_root().join("openapi.yaml"))
    }

    pub fn from_file(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
        let document: Value = serde_norway::from_str(&text)
            .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()));
        Self::new(document)
    }

    pub fn new(document: Value) -> Self {
        let mut description = Self {
            document,
            schemas: Schemas::new(),
            compiled: HashMap::new(),
        };
        description.compile_response_schemas();
        description
    }

    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Checks one response against the description; the error says what is
    /// wrong and which part of the description was used.
    pub fn check(&self, exchange: &Exchange) -> Result<(), String> {
        let allowed = self.allowed_responses(&exchange.method, &exchange.path)?;
        let status = exchange.status.to_string();
        let Some(response) = allowed.responses.get(&status) else {
            let documented: Vec<&String> = allowed.responses.keys().collect();
            return Err(format!(
                "status {status} is not documented for {} (documented: {documented:?})",
                allowed.label
            ));
        };
        let (pointer, response) = self.resolve(
            &format!("{}/{}", allowed.pointer, escape(&status)),
            response,
        );
        let context = format!("{} {status}", allowed.label);
        self.check_headers(response, exchange, &context)?;
        self.check_content(&pointer, response, exchange, &context)
    }

    /// The same as [`check`](Self::check), panicking with the exchange shown.
    pub fn assert_conforms(&self, exchange: &Exchange) {
        if let Err(violation) = self.check(exchange) {
            panic!(
                "response does not match openapi.yaml: {violation}\n  request: {} {}\n  response: {} {:?}\n  body: {}",
                exchange.method,
                exchange.path,
                exchange.status,
                exchange.headers,
                String::from_utf8_lossy(&exchange.body[..exchange.body.len().min(600)]),
            );
        }
    }

    /// Whether `path` has a served operation for `method` (`GET`, as sent).
    pub fn has_operation(&self, method: &str, path: &str) -> bool {
        self.path_item(path)
            .and_then(|(_, item)| served_operation(item, method))
            .is_some()
    }

    /// Every served operation as (method, path template), e.g. ("GET", "/api/history").
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (template, item) in self.paths() {
            for key in METHODS {
                let method = key.to_ascii_uppercase();
                if served_operation(item, &method).is_some() {
                    operations.push((method, template.clone()));
                }
            }
        }
        operations
    }

    fn paths(&self) -> &Map<String, Value> {
        self.document["paths"]
            .as_object()
            .expect("openapi.yaml has paths")
    }

    /// The listed path whose template matches `path` segment by segment, if
    /// it has any served operation.
    fn path_item(&self, path: &str) -> Option<(&String, &Value)> {
        self.paths().iter().find(|(template, item)| {
            let rest_of_path = item.get("x-rest-of-path") == Some(&Value::Bool(true));
            template_matches(template, path, rest_of_path)
                && METHODS
                    .iter()
                    .any(|key| served_operation(item, &key.to_ascii_uppercase()).is_some())
        })
    }

    fn allowed_responses(&self, method: &str, path: &str) -> Result<Allowed<'_>, String> {
        if let Some((template, item)) = self.path_item(path) {
            let path_pointer = format!("/paths/{}", escape(template));
            if let Some(key) = operation_key(method)
                && let Some(operation) = served_operation(item, method)
            {
                return Ok(Allowed {
                    pointer: format!("{path_pointer}/{key}/responses"),
                    responses: responses_of(operation)?,
                    label: format!("{method} {template}"),
                });
            }
            let other = item.get("x-other-methods").ok_or_else(|| {
                format!("{template} has no operation for {method} and no x-other-methods")
            })?;
            return Ok(Allowed {
                pointer: format!("{path_pointer}/x-other-methods/responses"),
                responses: responses_of(other)?,
                label: format!("{method} {template} (x-other-methods)"),
            });
        }
        let unlisted = self.document["x-unlisted-paths"]
            .as_array()
            .ok_or("openapi.yaml has no x-unlisted-paths")?;
        let (index, rule) = unlisted
            .iter()
            .enumerate()
            .find(|(_, rule)| {
                rule["prefix"]
                    .as_str()
                    .is_some_and(|prefix| has_segment_prefix(path, prefix))
            })
            .ok_or_else(|| format!("no x-unlisted-paths rule covers {path}"))?;
        Ok(Allowed {
            pointer: format!("/x-unlisted-paths/{index}/responses"),
            responses: responses_of(rule)?,
            label: format!(
                "unlisted path {path} (prefix {})",
                rule["prefix"].as_str().unwrap_or("?")
            ),
        })
    }

    /// Follows `$ref`s (local ones only) from `value` found at `pointer`.
    fn resolve<'d>(&'d self, pointer: &str, mut value: &'d Value) -> (String, &'d Value) {
        let mut pointer = pointer.to_owned();
        while let Some(reference) = value.get("$ref").and_then(Value::as_str) {
            let target = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
            value = self
                .document
                .pointer(target)
                .unwrap_or_else(|| panic!("$ref {reference} points at nothing"));
            pointer = target.to_owned();
        }
        (pointer, value)
    }

    fn check_headers(
        &self,
        response: &Value,
        exchange: &Exchange,
        context: &str,
    ) -> Result<(), String> {
        let Some(headers) = response.get("headers").and_then(Value::as_object) else {
            return Ok(());
        };
        for (name, header) in headers {
            let required = header
                .get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let present = exchange
                .headers
                .get(name.as_str())
                .is_some_and(|value| !value.as_bytes().is_empty());
            if required && !present {
                return Err(format!("{context}: the required header {name} is missing"));
            }
        }
        Ok(())
    }

    fn check_content(
        &self,
        response_pointer: &str,
        response: &Value,
        exchange: &Exchange,
        context: &str,
    ) -> Result<(), String> {
        let head = exchange.method.eq_ignore_ascii_case("HEAD");
        let Some(content) = response.get("content").and_then(Value::as_object) else {
            if exchange.body.is_empty() {
                return Ok(());
            }
            return Err(format!(
                "{context}: documented without a body, but {} bytes came",
                exchange.body.len()
            ));
        };
        let media_type = media_type(&exchange.headers).ok_or_else(|| {
            format!(
                "{context}: no content-type, expected one of {:?}",
                content.keys()
            )
        })?;
        if !content.contains_key(&media_type) {
            return Err(format!(
                "{context}: content-type {media_type} is not one of {:?}",
                content.keys().collect::<Vec<_>>()
            ));
        }
        // A HEAD answer carries the headers of the body it does not send.
        if head || media_type != "application/json" {
            return Ok(());
        }
        let body: Value = serde_json::from_slice(&exchange.body)
            .map_err(|error| format!("{context}: the body is not JSON ({error})"))?;
        let schema_pointer = format!("{response_pointer}/content/{}/schema", escape(&media_type));
        let index = self
            .compiled
            .get(&schema_pointer)
            .ok_or_else(|| format!("{context}: no compiled schema at {schema_pointer}"))?;
        self.schemas.validate(&body, *index).map_err(|error| {
            let mut message = format!("{context}: the body does not match its schema:");
            let _ = write!(message, "\n{error}");
            message
        })
    }

    /// Compiles the schema of every JSON response the description mentions.
    fn compile_response_schemas(&mut self) {
        let mut compiler = Compiler::new();
        compiler.set_default_draft(Draft::V2020_12);
        compiler.enable_format_assertions();
        compiler
            .add_resource(DOCUMENT_URL, self.document.clone())
            .expect("the document URL is absolute");
        for responses_pointer in self.all_responses_pointers() {
            let responses = self.document.pointer(&responses_pointer).cloned();
            let Some(Value::Object(responses)) = responses else {
                panic!("{responses_pointer} is not a responses object");
            };
            for (status, response) in &responses {
                let (pointer, response) =
                    self.resolve(&format!("{responses_pointer}/{}", escape(status)), response);
                let Some(content) = response.get("content").and_then(Value::as_object) else {
                    continue;
                };
                if !content.contains_key("application/json") {
                    continue;
                }
                let schema_pointer = format!("{pointer}/content/application~1json/schema");
                if self.compiled.contains_key(&schema_pointer) {
                    continue;
                }
                let index = compiler
                    .compile(
                        &format!("{DOCUMENT_URL}#{schema_pointer}"),
                        &mut self.schemas,
                    )
                    .unwrap_or_else(|error| panic!("compiling {schema_pointer}: {error:#}"));
                self.compiled.insert(schema_pointer, index);
            }
        }
    }

    /// JSON pointers of every responses object: operations (served or not),
    /// x-other-methods and x-unlisted-paths.
    fn all_responses_pointers(&self) -> Vec<String> {
        let mut pointers = Vec::new();
        for (template, item) in self.paths() {
            let base = format!("/paths/{}", escape(template));
            for method in METHODS {
                if item.get(method).is_some() {
                    pointers.push(format!("{base}/{method}/responses"));
                }
            }
            if item.get("x-other-methods").is_some() {
                pointers.push(format!("{base}/x-other-methods/responses"));
            }
        }
        let unlisted = self.document["x-unlisted-paths"]
            .as_array()
            .map_or(0, Vec::len);
        pointers.extend((0..unlisted).map(|index| format!("/x-unlisted-paths/{index}/responses")));
        pointers
    }
}

/// The operation for `method` (`GET`, as sent) unless it is marked
/// `x-implemented: false`.
fn served_operation<'d>(item: &'d Value, method: &str) -> Option<&'d Value> {
    item.get(operation_key(method)?)
        .filter(|operation| operation.get("x-implemented") != Some(&Value::Bool(false)))
}

/// The path item key of a method: `GET` is `get`. Methods are case-sensitive,
/// so `get` is an unregistered method, which no operation describes.
fn operation_key(method: &str) -> Option<&'static str> {
    METHODS
        .into_iter()
        .find(|key| key.to_ascii_uppercase() == method)
}

fn responses_of(holder: &Value) -> Result<&Map<String, Value>, String> {
    holder["responses"]
        .as_object()
        .ok_or_else(|| "an operation without responses".to_owned())
}

/// `/api/messages/{chatId}` matches `/api/messages/<any one non-empty segment>`;
/// with `rest_of_path`, the template's last parameter takes one or more
/// (`/assets/{asset}` matches `/assets/vendor/marked.esm.js`).
pub fn template_matches(template: &str, path: &str, rest_of_path: bool) -> bool {
    let is_parameter = |expected: &str| expected.starts_with('{') && expected.ends_with('}');
    let segment_matches = |(expected, actual): (&&str, &&str)| {
        if is_parameter(expected) {
            !actual.is_empty()
        } else {
            expected == actual
        }
    };
    let templates: Vec<&str> = template.split('/').collect();
    let segments: Vec<&str> = path.split('/').collect();
    match templates.split_last() {
        Some((last, before)) if rest_of_path && is_parameter(last) => {
            segments.len() > before.len()
                && before.iter().zip(&segments).all(segment_matches)
                && segments[before.len()..]
                    .iter()
                    .all(|actual| !actual.is_empty())
        }
        _ => {
            templates.len() == segments.len()
                && templates.iter().zip(&segments).all(segment_matches)
        }
    }
}

/// Whether the non-empty segments of `path` start with those of `prefix`:
/// `/admin` covers `/admin`, `/admin/x` and `//admin/x`, not `/administrator`;
/// `/` covers every path.
fn has_segment_prefix(path: &str, prefix: &str) -> bool {
    let segments = |text: &'_ str| {
        text.split('/')
            .filter(|segment| !segment.is_empty())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    segments(path).starts_with(&segments(prefix))
}

/// The media type of `content-type`, lower-case, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next()?.trim().to_ascii_lowercase();
    (!essence.is_empty()).then_some(essence)
}

/// Escapes one JSON pointer token.
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_whole_segments() {
        let one = |template, path| template_matches(template, path, false);
        assert!(one("/api/messages/{chatId}", "/api/messages/x"));
        assert!(!one("/api/messages/{chatId}", "/api/messages/"));
        assert!(!one("/api/messages/{chatId}", "/api/messages/x/"));
        assert!(!one("/api/messages/{chatId}", "/api/messages/x/y"));
        assert!(!one("/api/history", "/api/history/"));
        assert!(one("/api/history", "/api/history"));
    }

    #[test]
    fn a_rest_of_path_parameter_takes_one_or_more_whole_segments() {
        let rest = |template, path| template_matches(template, path, true);
        assert!(rest("/assets/{asset}", "/assets/app.js"));
        assert!(rest("/assets/{asset}", "/assets/vendor/marked.esm.js"));
        assert!(!rest("/assets/{asset}", "/assets"));
        assert!(!rest("/assets/{asset}", "/assets/"));
        assert!(!rest("/assets/{asset}", "/assets/vendor/"));
        assert!(!rest("/assets/{asset}", "/assets//app.js"));
        assert!(!rest("/assets/{asset}", "/other/app.js"));
        // Only a template ending in a parameter has a rest.
        assert!(!rest("/api/history", "/api/history/x"));
    }

    #[test]
    fn an_operation_not_implemented_answers_like_an_unlisted_path() {
        let description = ApiDescription::new(serde_json::json!({
            "paths": {"/soon": {"post": {
                "x-implemented": false,
                "responses": {"200": {"description": "Later."}}
            }}},
            "x-unlisted-paths": [{"prefix": "/", "responses": {"404": {"description": "None."}}}]
        }));
        assert!(!description.has_operation("POST", "/soon"));
        let answer = |status| Exchange {
            method: "POST".into(),
            path: "/soon".into(),
            status,
            headers: HeaderMap::new(),
            body: bytes::Bytes::new(),
        };
        assert_eq!(description.check(&answer(404)), Ok(()));
        assert!(description.check(&answer(200)).is_err());
    }

    #[test]
    fn prefixes_are_whole_segments() {
        assert!(has_segment_prefix("/admin", "/admin"));
        assert!(has_segment_prefix("/admin/x", "/admin"));
        assert!(has_segment_prefix("//admin/x", "/admin"));
        assert!(!has_segment_prefix("/administrator", "/admin"));
        assert!(has_segment_prefix("/anything", "/"));
    }
}
