//! A component alone under wasmtime with chat-host's capability linker: no
//! spin.toml file, no router, no HTTP server — the component's own handler
//! called in a store, as an embedder would.

use bytes::Bytes;
use chat_host::component::{self, ComponentContext};
use chat_host::key_value::KeyValueStores;
use chat_host::postgres::{PoolSettings, Pools};
use chat_host::runtime_config::RuntimeConfig;
use chat_host::state::HostState;
use chat_manifest::{AllowedHosts, Manifest, VariableResolver};
use http_body_util::{BodyExt, Full};
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::Store;
use wasmtime_wasi_http::default_hooks;

/// What the component is given: one variable, no outbound hosts.
const COMPONENT_CONFIG: &str = r#"
spin_manifest_version = 2
[application]
name = "direct"
[variables]
dev_user_email = { default = "dev@example.com" }
[[trigger.http]]
route = "/..."
component = "history"
[component.history]
source = "history.wasm"
[component.history.variables]
dev_user_email = "{{ dev_user_email }}"
"#;

struct Answer {
    status: u16,
    allow: Option<String>,
    body: serde_json::Value,
}

async fn call(method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
    let wasm = chat_tests::repo_root().join("target/wasm32-wasip2/release/history.wasm");
    let config = Manifest::parse(COMPONENT_CONFIG, &chat_tests::repo_root()).unwrap();
    let variables = Arc::new(VariableResolver::new(&config, [], BTreeMap::new()).unwrap());
    let context = Arc::new(ComponentContext {
        id: "history".into(),
        environment: Vec::new(),
        allowed_hosts: AllowedHosts::parse(&[], &variables).unwrap(),
        variables,
        key_value_labels: Vec::new(),
        postgres: Pools::new(PoolSettings::default()),
        key_value: KeyValueStores::new(&RuntimeConfig::default()).expect("in-memory stores"),
        app: Default::default(),
    });
    let engine = chat_host::engine::engine().unwrap();
    let linker = chat_host::engine::linker(&engine).unwrap();
    let pre = component::prepare(&engine, &linker, &wasm).unwrap();
    let mut store = Store::new(&engine, HostState::new(&context));
    let service = pre.instantiate_async(&mut store).await.unwrap();

    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let (request, request_io) =
        wasmtime_wasi_http::p3::Request::from_http(default_hooks(), request);
    store
        .run_concurrent(async |accessor| {
            let response = service
                .handle(accessor, request)
                .await?
                .map_err(|code| wasmtime::format_err!("{code:?}"))?;
            let response = accessor.with(|access| response.into_http(access, request_io))?;
            let status = response.status().as_u16();
            let allow = response
                .headers()
                .get("allow")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = response.into_body().collect().await?.to_bytes();
            wasmtime::error::Ok(Answer {
                status,
                allow,
                body: serde_json::from_slice(&body)?,
            })
        })
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn the_history_component_answers_on_its_own() {
    let answer = call(
        "GET",
        "/api/session",
        &[("x-forwarded-email", "ada@example.com")],
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["user"]["email"], "ada@example.com");
    assert_eq!(answer.body["authenticated"], true);

    // No gateway headers: the dev identity, read through spin:variables.
    let answer = call("GET", "/api/session", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body["user"]["id"], "dev@example.com");
    assert_eq!(answer.body["authenticated"], false);

    let answer = call("POST", "/api/history", &[]).await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.allow.as_deref(), Some("GET"));
    assert!(answer.body["error"].is_string(), "{}", answer.body);

    let answer = call("GET", "/api/elsewhere", &[]).await;
    assert_eq!(answer.status, 404);
    assert!(
        answer.body["error"]
            .as_str()
            .unwrap()
            .contains("/api/elsewhere")
    );
}
