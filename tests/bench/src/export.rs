//! `chat-bench export`: `GET /api/export` of a user with a tenth of the
//! chats, then of one with all of them (10,000 by default), from one
//! chat-host (release), read as fast as the connection goes, with
//! chat-host's resident memory before each export and its peak during it
//! (the kernel's high-water mark, reset before each through
//! `/proc/<pid>/clear_refs`). The export streams a chat at a time, so the
//! peak must not grow with the history.

use crate::report::Memory;
use crate::run::{postgres_data_dir, sibling_binary};
use crate::seed::messages_of_random_words;
use anyhow::{Context, Result, anyhow, bail};
use chat_host::local_postgres::{Durability, LocalPostgres};
use chat_tests::host::{HostConfig, TestHost};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

const MESSAGES_PER_CHAT: i64 = 10;

fn user(chats: i64) -> String {
    format!("export-{chats}@bench.example")
}

pub async fn run(chats: i64, rounds: usize) -> Result<()> {
    let small = chats / 10;
    let data_dir = postgres_data_dir("export-postgres");
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut postgres =
        LocalPostgres::start(&data_dir, Durability::Ephemeral).context("starting PostgreSQL")?;
    chat_host::up::create_database(&postgres.url("postgres"), "bench").await?;
    let db_url = postgres.url("bench");
    let binary = sibling_binary("chat-host")?;
    let config = HostConfig::new(&db_url);
    let host = tokio::task::spawn_blocking(move || TestHost::start_binary(&binary, config))
        .await
        .map_err(|failure| anyhow!("chat-host did not start (its log is above): {failure}"))?;
    for count in [small, chats] {
        seed(&db_url, count).await?;
    }
    // The component's instance and the connections are made once, by a
    // first export, before anything is measured.
    export(&host, small).await?;

    println!(
        "GET /api/export, {MESSAGES_PER_CHAT} messages per chat, read as fast as it comes; \
         chat-host's resident memory (MiB) before each export and its peak during it"
    );
    println!(
        "| chats | MiB exported | s | MiB/s | resident before | peak during | peak − before |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for _ in 0..rounds {
        for count in [small, chats] {
            reset_peak(host.pid())?;
            let before = Memory::of(host.pid())?;
            let started = Instant::now();
            let bytes = export(&host, count).await?;
            let elapsed = started.elapsed();
            let during = Memory::of(host.pid())?;
            let mib = bytes as f64 / f64::from(1 << 20);
            println!(
                "| {count} | {mib:.1} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
                elapsed.as_secs_f64(),
                mib / elapsed.as_secs_f64(),
                before.resident_mib,
                during.peak_mib,
                during.peak_mib - before.resident_mib
            );
        }
    }
    drop(host);
    postgres.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// `chats` chats of their own user, each with [`MESSAGES_PER_CHAT`]
/// messages of random words.
async fn seed(db_url: &str, chats: i64) -> Result<()> {
    let (db, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let user = user(chats);
    db.execute(
        r#"INSERT INTO chat."User" (id, email) VALUES ($1, $1::text)"#,
        &[&user],
    )
    .await?;
    db.execute(
        r#"INSERT INTO chat."Chat" ("createdAt", "lastActivityAt", title, "userId")
           SELECT timestamp '2024-01-01' + g * interval '1 minute', timestamp '2024-01-01' + g * interval '1 minute',
                  'Chat ' || g, $1
           FROM generate_series(1, $2::bigint) AS g"#,
        &[&user, &chats],
    )
    .await?;
    let chats_of_user = r#"SELECT id, "createdAt" FROM chat."Chat" WHERE "userId" = $2"#;
    db.execute(
        &messages_of_random_words(chats_of_user),
        &[&MESSAGES_PER_CHAT, &user],
    )
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    Ok(())
}

/// Downloads the export of the user with `chats` chats whole; checks it
/// ends with its end line counting them, and answers its size in bytes.
async fn export(host: &TestHost, chats: i64) -> Result<u64> {
    let response = reqwest::Client::new()
        .get(host.url("/api/export"))
        .header("x-forwarded-email", user(chats))
        .timeout(Duration::from_secs(600))
        .send()
        .await?
        .error_for_status()?;
    let mut body = response.bytes_stream();
    let mut bytes = 0;
    // The last line, kept whole: the end line.
    let mut tail = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("reading the export")?;
        bytes += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if let Some(newline) = tail[..tail.len().saturating_sub(1)]
            .iter()
            .rposition(|&byte| byte == b'\n')
        {
            tail.drain(..=newline);
        }
    }
    let end: serde_json::Value = serde_json::from_slice(&tail).context("the end line")?;
    if end["type"] != "end" || end["chats"] != chats {
        bail!("the export of {chats} chats ended with {end}");
    }
    Ok(bytes)
}

/// Resets the process's peak resident memory (`VmHWM`) to what it holds now.
fn reset_peak(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("resetting the peak memory of process {pid}"))
}
