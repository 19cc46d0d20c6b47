//! One benchmark run: a PostgreSQL of its own, the data set, chat-host and
//! the native ceiling side by side, every measurement, and the report.

use crate::load::{self, Get, Measured};
use crate::plans::{self, HotStatements};
use crate::report::{self, HttpRow, Machine, Report, ScalingRow, StreamRow};
use crate::seed::{self, Scale};
use crate::streams::{self, ReplyShape, Route, Upstream};
use anyhow::{Context, Result, bail};
use chat_host::local_postgres::{Durability, LocalPostgres};
use chat_tests::host::{HostConfig, TestHost};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Durations and sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub scale: Scale,
    /// Connections of the throughput runs: chat-host's pool size, so neither
    /// server queues for connections nor leaves any idle.
    pub connections: usize,
    pub warm_up: Duration,
    pub measure: Duration,
    /// Each server is measured this many times per route, alternating which
    /// goes first, so drifting background load hits both alike.
    pub rounds: usize,
    /// The single-connection latency runs of the scaling table.
    pub scaling_measure: Duration,
    pub reply: ReplyShape,
    /// Replies each stream client reads one after another.
    pub stream_rounds: usize,
}

impl Settings {
    pub const FULL: Settings = Settings {
        scale: Scale::FULL,
        connections: 32,
        warm_up: Duration::from_secs(2),
        measure: Duration::from_secs(10),
        rounds: 2,
        scaling_measure: Duration::from_secs(5),
        reply: ReplyShape {
            chunks: 20,
            spacing: Duration::from_millis(50),
        },
        stream_rounds: 2,
    };

    pub const QUICK: Settings = Settings {
        scale: Scale::QUICK,
        connections: 32,
        warm_up: Duration::from_secs(1),
        measure: Duration::from_secs(3),
        rounds: 1,
        scaling_measure: Duration::from_secs(2),
        reply: ReplyShape {
            chunks: 20,
            spacing: Duration::from_millis(50),
        },
        stream_rounds: 1,
    };
}

pub struct Options {
    pub settings: Settings,
    pub profile: bool,
    pub out: PathBuf,
}

/// The page the deep-page benchmarks read: this many chats from the oldest,
/// so it is a full page of 20 with more beyond it.
const DEEP_PAGE_FROM_OLDEST: i64 = 30;

/// How long perf samples chat-host.
const PROFILE_DURATION: Duration = Duration::from_secs(10);

pub async fn run(options: Options) -> Result<()> {
    let settings = options.settings;
    std::fs::create_dir_all(&options.out)
        .with_context(|| format!("creating {}", options.out.display()))?;
    let machine_at_start = Machine::now()?;
    println!("{}", machine_at_start.describe());

    println!("starting PostgreSQL, the model endpoint and chat-host");
    let data_dir = options.out.join("postgres");
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut postgres =
        LocalPostgres::start(&data_dir, Durability::Ephemeral).context("starting PostgreSQL")?;
    chat_host::up::create_database(&postgres.url("postgres"), "bench").await?;
    let db_url = postgres.url("bench");
    let (db, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);

    let upstream = Upstream::start(settings.reply).await?;
    let host = TestHost::start_binary(
        &sibling_binary("chat-host")?,
        HostConfig::new(&db_url)
            .variable("serving_endpoint_url", &upstream.url())
            .variable("serving_endpoint_origin", &upstream.origin()),
    );
    let host_addr = address_of(&host.base_url)?;

    println!("seeding (the host migrated the schema on start-up)");
    let seeded = seed::seed(&db, settings.scale).await?;
    let huge_chats = settings.scale.huge_history_chats;
    let thousand_deep = seed::chat_at(
        &db,
        seed::THOUSAND_CHATS_USER,
        seed::THOUSAND_CHATS - DEEP_PAGE_FROM_OLDEST,
    )
    .await?;
    let huge_deep = seed::chat_at(
        &db,
        seed::HUGE_HISTORY_USER,
        huge_chats - DEEP_PAGE_FROM_OLDEST,
    )
    .await?;

    let native = NativeCeiling::start(&db_url)?;
    native.wait_until_serving().await?;

    let history_first = Get::as_user("/api/history?limit=20", seed::THOUSAND_CHATS_USER);
    let history_deep = Get::as_user(
        format!("/api/history?limit=20&starting_after={thousand_deep}"),
        seed::THOUSAND_CHATS_USER,
    );
    let messages = Get::as_user(
        format!("/api/messages/{}", seeded.conversation),
        seed::READER,
    );
    for get in [&history_first, &history_deep, &messages] {
        load::expect_same_answer(host_addr, native.addr, get).await?;
    }
    println!("both servers give identical answers; measuring throughput");

    let mut http_rows = Vec::new();
    for (route, get) in [
        (
            format!(
                "GET /api/history, first page ({} chats)",
                seed::THOUSAND_CHATS
            ),
            &history_first,
        ),
        (
            format!(
                "GET /api/history, starting_after page {}",
                seed::THOUSAND_CHATS - DEEP_PAGE_FROM_OLDEST
            ),
            &history_deep,
        ),
        (
            format!(
                "GET /api/messages/:id ({} messages)",
                seed::CONVERSATION_MESSAGES
            ),
            &messages,
        ),
    ] {
        let (native_measured, host_measured) =
            side_by_side(&settings, host_addr, native.addr, get, settings.connections).await?;
        println!(
            "  {route}: native {:.0}/s, chat-host {:.0}/s",
            native_measured.per_second(),
            host_measured.per_second()
        );
        http_rows.push(HttpRow {
            route,
            native: native_measured,
            host: host_measured,
        });
    }

    println!("scaling: one connection, first and deep pages");
    let mut scaling_rows = Vec::new();
    for (user, chats, deep) in [
        (
            seed::THOUSAND_CHATS_USER,
            seed::THOUSAND_CHATS,
            thousand_deep,
        ),
        (seed::HUGE_HISTORY_USER, huge_chats, huge_deep),
    ] {
        let first = Get::as_user("/api/history?limit=20", user);
        let deep_get = Get::as_user(format!("/api/history?limit=20&starting_after={deep}"), user);
        load::expect_same_answer(host_addr, native.addr, &first).await?;
        load::expect_same_answer(host_addr, native.addr, &deep_get).await?;
        let scaling = Settings {
            measure: settings.scaling_measure,
            rounds: 1,
            ..settings
        };
        let (native_first, host_first) =
            side_by_side(&scaling, host_addr, native.addr, &first, 1).await?;
        let (native_deep, host_deep) =
            side_by_side(&scaling, host_addr, native.addr, &deep_get, 1).await?;
        scaling_rows.push(ScalingRow {
            chats,
            host_first,
            host_deep,
            native_first,
            native_deep,
        });
    }

    let plans = plans::explain(
        &db,
        &HotStatements {
            history_user: seed::HUGE_HISTORY_USER.to_owned(),
            deep_cursor: huge_deep,
            conversation: seeded.conversation,
        },
    )
    .await?;
    let plans_path = options.out.join("plans.txt");
    std::fs::write(&plans_path, report::plans_text(&plans))?;

    if options.profile {
        profile(
            &options.out,
            &host,
            host_addr,
            &history_first,
            settings.connections,
        )
        .await?;
    }

    println!("streams: direct and through POST /api/chat");
    let warm_up_route = Route::Proxy {
        host: host_addr,
        domain: "warm-up.bench.example".to_owned(),
    };
    streams::run(&warm_up_route, settings.reply, 10, 1).await?;
    let mut stream_rows = Vec::new();
    for concurrency in [100, 1_000] {
        let domain = format!("streams-{concurrency}.bench.example");
        let direct = streams::run(
            &Route::Direct(upstream.addr),
            settings.reply,
            concurrency,
            settings.stream_rounds,
        )
        .await?;
        let proxied = streams::run(
            &Route::Proxy {
                host: host_addr,
                domain: domain.clone(),
            },
            settings.reply,
            concurrency,
            settings.stream_rounds,
        )
        .await?;
        let stored = seed::complete_replies(&db, &domain).await?;
        println!(
            "  {concurrency} streams: {} through the proxy, {} replies stored",
            proxied.completed, stored
        );
        stream_rows.push(StreamRow {
            concurrency,
            direct,
            proxied,
            stored,
        });
    }

    let report = Report {
        machine_at_start,
        machine_at_end: Machine::now()?,
        settings,
        http: http_rows,
        scaling: scaling_rows,
        plans,
        streams: stream_rows,
        host_memory: report::Memory::of(host.pid())?,
        native_memory: report::Memory::of(native.child.id())?,
    };
    let markdown = report.markdown();
    println!("\n{markdown}");
    let results_path = options.out.join("results.md");
    std::fs::write(&results_path, &markdown)?;
    println!(
        "written to {} (query plans in {})",
        results_path.display(),
        plans_path.display()
    );
    drop(native);
    drop(host);
    postgres.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Measures `get` against both servers, `settings.rounds` times each with a
/// warm-up before every measurement, alternating which goes first.
async fn side_by_side(
    settings: &Settings,
    host: SocketAddr,
    native: SocketAddr,
    get: &Get,
    connections: usize,
) -> Result<(Measured, Measured)> {
    let mut native_total = Measured::default();
    let mut host_total = Measured::default();
    for round in 0..settings.rounds {
        let order = if round % 2 == 0 {
            [(native, true), (host, false)]
        } else {
            [(host, false), (native, true)]
        };
        for (addr, is_native) in order {
            load::run(addr, get, connections, settings.warm_up).await?;
            let measured = load::run(addr, get, connections, settings.measure).await?;
            if is_native {
                native_total.merge(measured);
            } else {
                host_total.merge(measured);
            }
        }
    }
    Ok((native_total, host_total))
}

/// Samples chat-host's stacks with perf while it serves the history load,
/// and writes perf's report beside the results.
async fn profile(
    out: &Path,
    host: &TestHost,
    host_addr: SocketAddr,
    get: &Get,
    connections: usize,
) -> Result<()> {
    println!("profiling chat-host under the history load for {PROFILE_DURATION:?}");
    let data = out.join("perf.data");
    let mut perf = Command::new("perf")
        .args(["record", "-F", "999", "-g", "-o"])
        .arg(&data)
        .args(["-p", &host.pid().to_string(), "--", "sleep"])
        .arg(PROFILE_DURATION.as_secs().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("running perf (apt-get install linux-perf)")?;
    let measured = load::run(host_addr, get, connections, PROFILE_DURATION).await?;
    let status = perf.wait()?;
    if !status.success() {
        bail!("perf record failed: {status}");
    }
    println!("  under perf: {:.0}/s", measured.per_second());
    for (name, sort) in [
        ("perf-by-dso.txt", "dso"),
        ("perf-by-symbol.txt", "dso,sym"),
    ] {
        let output = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--percent-limit",
                "0.5",
                "--sort",
                sort,
                "-g",
                "none",
                "-i",
            ])
            .arg(&data)
            .output()
            .context("perf report")?;
        std::fs::write(out.join(name), &output.stdout)?;
    }
    println!("  perf reports in {}", out.display());
    Ok(())
}

/// A binary cargo built next to this one (target/release/…).
fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let binary = exe.with_file_name(name);
    if !binary.exists() {
        bail!(
            "{} is missing: run tests/bench/run.sh, which builds it",
            binary.display()
        );
    }
    Ok(binary)
}

fn address_of(base_url: &str) -> Result<SocketAddr> {
    base_url
        .trim_start_matches("http://")
        .parse()
        .with_context(|| format!("an address in {base_url}"))
}

/// The native ceiling, in a child process of its own, killed when dropped.
struct NativeCeiling {
    child: Child,
    addr: SocketAddr,
}

impl NativeCeiling {
    fn start(db_url: &str) -> Result<Self> {
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let child = Command::new(std::env::current_exe()?)
            .args([
                "native-ceiling",
                "--db-url",
                db_url,
                "--listen",
                &addr.to_string(),
            ])
            .stdin(Stdio::null())
            .spawn()
            .context("starting the native ceiling")?;
        Ok(Self { child, addr })
    }

    async fn wait_until_serving(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(self.addr).await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "the native ceiling did not listen on {} within 10 s",
                    self.addr
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }
}

impl Drop for NativeCeiling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
