//! The host capabilities as a component sees them, through the
//! capability-probe fixture: outbound HTTP and Postgres limited to
//! `allowed_outbound_hosts` (a denied request is an error to the guest and
//! never leaves the host), service chaining, and key-value stores limited to
//! `key_value_stores`.

use chat_tests::database::TestDatabase;
use chat_tests::host::{HostConfig, TestHost};
use chat_tests::runtime::Runtime;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP server on loopback that counts the connections it gets.
async fn counting_server() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    (port, connections)
}

async fn probe(host: &TestHost, path: &str) -> (u16, Value) {
    let response = reqwest::get(host.url(path)).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn only_allowed_hosts_are_reachable() {
    let (allowed_port, allowed_hits) = counting_server().await;
    let (denied_port, denied_hits) = counting_server().await;
    let db = TestDatabase::create().await;
    let manifest = chat_tests::repo_root().join("tests/fixtures/probe.spin.toml");
    let host = TestHost::start(
        HostConfig::new(&db.url)
            .manifest(manifest)
            .variable("allowed_host", &format!("http://127.0.0.1:{allowed_port}")),
    );

    let (status, body) = probe(
        &host,
        &format!("/probe/http?url=http://127.0.0.1:{allowed_port}/x"),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(200)),
        "{body}"
    );
    assert_eq!(allowed_hits.load(Ordering::SeqCst), 1);

    let (status, body) = probe(
        &host,
        &format!("/probe/http?url=http://127.0.0.1:{denied_port}/x"),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("HttpRequestDenied"),
        "{body}"
    );
    assert_eq!(
        denied_hits.load(Ordering::SeqCst),
        0,
        "a denied request must never be sent"
    );

    // Service chaining: served in-process by the named component.
    let (status, body) = probe(
        &host,
        "/probe/http?url=http://probe.spin.internal/probe/echo",
    )
    .await;
    assert_eq!(
        (status, body["status"].as_u64()),
        (200, Some(200)),
        "{body}"
    );
    let echoed: Value = serde_json::from_str(
        body["body"]
            .as_str()
            .unwrap_or_else(|| panic!("no body: {body}")),
    )
    .unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(echoed["path"], "/probe/echo");
    let (status, body) = probe(&host, "/probe/http?url=http://nobody.spin.internal/x").await;
    assert_eq!(
        status, 502,
        "a component not in allowed_outbound_hosts: {body}"
    );

    // Postgres is outbound too: this component may not reach the database.
    // Each runtime words the refusal, and its log line, its own way.
    let (refusal, logged) = match host.runtime {
        Runtime::ChatHost => ("allowed_outbound_hosts", "denied"),
        Runtime::Spin => ("is not permitted", "not allowed"),
    };
    let (status, body) = probe(&host, "/probe/postgres").await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"].as_str().unwrap().contains(refusal), "{body}");
    assert!(
        !host.log_lines_containing(logged).is_empty(),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn key_value_stores_work_and_only_declared_ones_open() {
    let db = TestDatabase::create().await;
    let manifest = chat_tests::repo_root().join("tests/fixtures/probe.spin.toml");
    let host = TestHost::start(
        HostConfig::new(&db.url)
            .manifest(manifest)
            .variable("allowed_host", "http://127.0.0.1:1"),
    );
    let (status, body) = probe(&host, "/probe/kv?store=default").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], "hello");
    assert_eq!(body["keys"], serde_json::json!(["greeting"]));
    assert_eq!(body["existed"], true);
    assert_eq!(body["exists_after_delete"], false);

    // A label the component does not declare is refused.
    let (status, body) = probe(&host, "/probe/kv?store=other").await;
    assert_eq!(status, 502, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("AccessDenied"),
        "{body}"
    );
}
