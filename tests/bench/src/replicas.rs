//! `chat-bench replicas`: GET /api/history through nginx in front of one
//! chat-host, then in front of three, on one PostgreSQL and one Redis, all on
//! this machine. The replicas share its cores, so this shows what the extra
//! hop and the shared store cost, not what more machines would add.

use crate::load::{self, Get, Measured};
use crate::run::sibling_binary;
use anyhow::{Context, Result, anyhow};
use chat_host::local_postgres::{Durability, LocalPostgres};
use chat_tests::host::{HostConfig, TestHost, free_port};
use chat_tests::nginx::TestNginx;
use chat_tests::redis_server::TestRedis;
use std::net::SocketAddr;
use std::time::Duration;

const USER: &str = "replicas@bench.example";
const CHATS: i64 = 50;
const CONNECTIONS: usize = 32;
const REPLICAS: usize = 3;

pub async fn run(seconds: u64, rounds: usize) -> Result<()> {
    let data_dir = crate::run::postgres_data_dir("replicas-postgres");
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut postgres =
        LocalPostgres::start(&data_dir, Durability::Ephemeral).context("starting PostgreSQL")?;
    chat_host::up::create_database(&postgres.url("postgres"), "bench").await?;
    let db_url = postgres.url("bench");
    let redis = TestRedis::start();
    let binary = sibling_binary("chat-host")?;
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let mut replicas = Vec::new();
    for &port in &ports {
        let config = HostConfig::new(&db_url)
            .runtime_config_file(redis.runtime_config())
            .port(port);
        let binary = binary.clone();
        replicas.push(
            tokio::task::spawn_blocking(move || TestHost::start_binary(&binary, config))
                .await
                .map_err(|failure| anyhow!("a replica did not start: {failure}"))?,
        );
    }
    seed(&db_url).await?;
    let one = TestNginx::start(&ports[..1]);
    let three = TestNginx::start(&ports);
    let get = Get::as_user("/api/history?limit=20", USER);
    let duration = Duration::from_secs(seconds);
    let (mut through_one, mut through_three) = (Measured::default(), Measured::default());
    for _ in 0..rounds {
        through_one.merge(load::run(address(&one)?, &get, CONNECTIONS, duration).await?);
        through_three.merge(load::run(address(&three)?, &get, CONNECTIONS, duration).await?);
    }
    println!(
        "GET /api/history (a 20-chat page), {CONNECTIONS} connections, {rounds} rounds of {seconds} s, alternating"
    );
    println!("| behind nginx | req/s | p50 / p99 ms | failed |");
    println!("|---|---:|---:|---:|");
    for (name, measured) in [("1 replica", &through_one), ("3 replicas", &through_three)] {
        println!(
            "| {name} | {:.0} | {:.2} / {:.2} | {} |",
            measured.per_second(),
            measured.latencies.quantile_ms(0.5),
            measured.latencies.quantile_ms(0.99),
            measured.failed
        );
    }
    println!(
        "3 ÷ 1: {:.2}× (the replicas share this machine's {} cores)",
        through_three.per_second() / through_one.per_second(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    drop(replicas);
    postgres.stop()?;
    Ok(())
}

fn address(nginx: &TestNginx) -> Result<SocketAddr> {
    nginx
        .base_url
        .trim_start_matches("http://")
        .parse()
        .context("nginx's address")
}

/// One user with a page's worth of chats.
async fn seed(db_url: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .execute(
            r#"INSERT INTO chat."User" (id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING"#,
            &[&USER, &USER],
        )
        .await?;
    client
        .execute(
            r#"INSERT INTO chat."Chat" (id, title, "userId", "createdAt", "lastActivityAt")
               SELECT gen_random_uuid(), 'chat ' || n, $1, now() - make_interval(secs => n), now() - make_interval(secs => n)
               FROM generate_series(1, $2::bigint) AS n"#,
            &[&USER, &CHATS],
        )
        .await?;
    Ok(())
}
