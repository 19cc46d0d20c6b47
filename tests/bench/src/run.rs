//! One benchmark run: a PostgreSQL of its own, the data set, chat-host, the
//! native ceiling and (when found) Spin and the seed's app on AppKit side by
//! side, every measurement, and the report.

use crate::appkit::{self, AppKitUnderTest};
use crate::load::{self, Get, Measured, Server};
use crate::plans::{self, HotStatements};
use crate::report::{
    self, AppKitColumn, HttpRow, Machine, Memory, ProxiedStreams, Report, ScalingRow, SearchRow,
    SpinColumn, StreamRow,
};
use crate::seed::{self, Scale};
use crate::streams::{self, ReplyShape, Route, Upstream};
use anyhow::{Context, Result, anyhow, bail};
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
    /// Each server is measured this many times per route, alternating the
    /// order of the servers, so drifting background load hits all alike.
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
            first_chunk_after: Duration::ZERO,
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
            first_chunk_after: Duration::ZERO,
        },
        stream_rounds: 1,
    };
}

pub struct Options {
    pub settings: Settings,
    pub profile: bool,
    pub out: PathBuf,
    /// Leave Spin out even when it is found.
    pub without_spin: bool,
    /// Leave the seed's app on AppKit out even when it is prepared.
    pub without_appkit: bool,
}

/// The servers' names in messages, and which column their figures go to.
const NATIVE: &str = "native";
const CHAT_HOST: &str = "chat-host";
const SPIN: &str = "spin";
const CANDIDATE: &str = "candidate";

/// The path of another chat-host binary to measure beside the one built
/// here, in the throughput table only: a host change under trial, measured
/// side by side with the code it would replace.
pub const CANDIDATE_VAR: &str = "CHAT_BENCH_CANDIDATE_HOST";

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

    let spin_binary = locate_spin(options.without_spin);
    if let Err(reason) = &spin_binary {
        println!("the Spin column is skipped: {reason}");
    }
    let appkit_dir = appkit::locate(options.without_appkit, &options.out);
    if let Err(reason) = &appkit_dir {
        println!("the AppKit column is skipped: {reason}");
    }

    println!("starting PostgreSQL, the model endpoint and chat-host");
    let data_dir = postgres_data_dir("postgres");
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut postgres =
        LocalPostgres::start(&data_dir, Durability::Ephemeral).context("starting PostgreSQL")?;
    chat_host::up::create_database(&postgres.url("postgres"), "bench").await?;
    let db_url = postgres.url("bench");
    let (db, connection) = tokio_postgres::connect(&db_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);

    let upstream = Upstream::start(settings.reply).await?;
    let chat_host_binary = sibling_binary("chat-host")?;
    let host = start_off_runtime("chat-host", {
        let config = app_config(&db_url, &upstream);
        move || TestHost::start_binary(&chat_host_binary, config)
    })
    .await?;
    let host_addr = address_of(&host.base_url)?;
    let candidate = match std::env::var_os(CANDIDATE_VAR).filter(|path| !path.is_empty()) {
        Some(binary) => {
            println!("starting the candidate chat-host {}", binary.display());
            let config = app_config(&db_url, &upstream);
            let binary = PathBuf::from(binary);
            Some(
                start_off_runtime(CANDIDATE, move || TestHost::start_binary(&binary, config))
                    .await?,
            )
        }
        None => None,
    };
    let candidate_server = candidate
        .as_ref()
        .map(|candidate| {
            Ok::<_, anyhow::Error>(Server {
                name: CANDIDATE,
                addr: address_of(&candidate.base_url)?,
            })
        })
        .transpose()?;
    // Started before seeding, so a Spin that cannot start fails the run
    // early. Err: why the Spin column is skipped.
    let spin_or_skipped: Result<SpinUnderTest, String> = match spin_binary {
        Ok(binary) => Ok(SpinUnderTest::start(&binary, app_config(&db_url, &upstream)).await?),
        Err(reason) => Err(reason),
    };
    let spin = spin_or_skipped.as_ref().ok();
    // After chat-host migrated the schema (the app's CREATE … IF NOT EXISTS
    // then changes nothing) and, like Spin, before seeding, so an app that
    // cannot start fails the run early. Err: why the AppKit column is skipped.
    let appkit_or_skipped: Result<AppKitUnderTest, String> = match appkit_dir {
        Ok(dir) => Ok(AppKitUnderTest::start(&dir, &db_url, &options.out)
            .await
            .context("run with --without-appkit to leave the seed's app out")?),
        Err(reason) => Err(reason),
    };
    let appkit = appkit_or_skipped.as_ref().ok();

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
    let native_server = Server {
        name: NATIVE,
        addr: native.addr,
    };
    let host_server = Server {
        name: CHAT_HOST,
        addr: host_addr,
    };
    // The hosts running the components; the servers that must answer like
    // the native ceiling byte for byte, the ceiling first; and every server
    // of the throughput table, the seed's app last.
    let hosts: Vec<Server> = std::iter::once(host_server)
        .chain(spin.map(|spin| spin.server))
        .collect();
    let identical_servers: Vec<Server> = std::iter::once(native_server)
        .chain(hosts.iter().copied())
        .chain(candidate_server)
        .collect();
    let all_servers: Vec<Server> = identical_servers
        .iter()
        .copied()
        .chain(appkit.map(|appkit| appkit.server))
        .collect();

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
        load::expect_same_answer(&identical_servers, get).await?;
        if let Some(appkit) = appkit {
            load::expect_same_page(native_server, appkit.server, get).await?;
        }
    }
    println!(
        "{} give identical answers{}; measuring throughput",
        names_of(&identical_servers),
        match appkit {
            Some(appkit) => format!(
                ", {} the same numbers of rows and hasMore",
                appkit.server.name
            ),
            None => String::new(),
        }
    );

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
        let measured = side_by_side(&settings, &all_servers, get, settings.connections).await?;
        let rates: Vec<String> = all_servers
            .iter()
            .zip(&measured)
            .map(|(server, measured)| format!("{} {:.0}/s", server.name, measured.per_second()))
            .collect();
        println!("  {route}: {}", rates.join(", "));
        let columns = by_server(&all_servers, measured);
        http_rows.push(HttpRow {
            route,
            native: columns.native,
            host: columns.host,
            spin: columns.spin,
            appkit: columns.appkit,
            candidate: columns.candidate,
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
        // chat-host against the ceiling only: the scaling targets are
        // chat-host's, and another server would lengthen every run.
        let pair = [native_server, host_server];
        load::expect_same_answer(&pair, &first).await?;
        load::expect_same_answer(&pair, &deep_get).await?;
        let scaling = Settings {
            measure: settings.scaling_measure,
            rounds: 1,
            ..settings
        };
        let first_page = by_server(&pair, side_by_side(&scaling, &pair, &first, 1).await?);
        let deep_page = by_server(&pair, side_by_side(&scaling, &pair, &deep_get, 1).await?);
        scaling_rows.push(ScalingRow {
            chats,
            host_first: first_page.host,
            host_deep: deep_page.host,
            native_first: first_page.native,
            native_deep: deep_page.native,
        });
    }

    println!(
        "search: one connection, GET /api/history?q={}",
        seed::SEARCH_WORD
    );
    let search_get = Get::as_user(
        format!("/api/history?limit=20&q={}", seed::SEARCH_WORD),
        seed::THOUSAND_CHATS_USER,
    );
    let pair = [native_server, host_server];
    load::expect_same_answer(&pair, &search_get).await?;
    let one_connection = Settings {
        measure: settings.scaling_measure,
        rounds: 1,
        ..settings
    };
    let searched = by_server(
        &pair,
        side_by_side(&one_connection, &pair, &search_get, 1).await?,
    );
    let (matching, messages) = seed::search_word_share(&db).await?;
    let search = SearchRow {
        matching,
        messages,
        host: searched.host,
        native: searched.native,
    };

    let plans = plans::explain(
        &db,
        &HotStatements {
            search_user: seed::THOUSAND_CHATS_USER.to_owned(),
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
    for proxy in &hosts {
        let warm_up_route = Route::Proxy {
            host: proxy.addr,
            domain: format!("warm-up-{}.bench.example", proxy.name),
        };
        streams::run(&warm_up_route, settings.reply, 10, 1)
            .await
            .with_context(|| format!("warming up the streams of {}", proxy.name))?;
    }
    let mut spin_notes = Vec::new();
    let mut stream_rows = Vec::new();
    // At once, and after 20 ms of "thinking": the second shows whether the
    // user-message write hides behind the model's time to its first token.
    let thinking = settings
        .reply
        .with_first_chunk_after(Duration::from_millis(20));
    for (concurrency, shape) in [
        (100, settings.reply),
        (100, thinking),
        (1_000, settings.reply),
    ] {
        let direct = streams::run(
            &Route::Direct(upstream.addr),
            shape,
            concurrency,
            settings.stream_rounds,
        )
        .await?;
        let sampling = options
            .profile
            .then(|| {
                let thinks = shape.first_chunk_after.as_millis();
                let name = format!("streams-{concurrency}-first-chunk-after-{thinks}ms");
                Sampling::start(&options.out, name, host.pid())
            })
            .transpose()?;
        let host_streams = proxied_streams(&db, host_server, &settings, shape, concurrency).await?;
        if let Some(sampling) = sampling {
            sampling.finish()?;
        }
        let spin_streams = match spin {
            Some(spin) => match why_spin_skips_these_streams(&stream_rows) {
                Some(reason) => {
                    println!("  {concurrency} streams through spin: skipped, {reason}");
                    spin_notes.push(format!(
                        "{concurrency} streams through Spin: not run, because {reason}."
                    ));
                    None
                }
                None => {
                    Some(proxied_streams(&db, spin.server, &settings, shape, concurrency).await?)
                }
            },
            None => None,
        };
        stream_rows.push(StreamRow {
            concurrency,
            first_chunk_after: shape.first_chunk_after,
            direct,
            host: host_streams,
            spin: spin_streams,
        });
    }

    let report = Report {
        machine_at_start,
        machine_at_end: Machine::now()?,
        settings,
        http: http_rows,
        scaling: scaling_rows,
        search,
        plans,
        streams: stream_rows,
        host_memory: Memory::of(host.pid())?,
        native_memory: Memory::of(native.child.id())?,
        spin: match &spin_or_skipped {
            Ok(spin) => SpinColumn::Measured {
                version: spin.version.clone(),
                memory: Memory::of_process_group(spin.host.pid())
                    .context("reading Spin's memory")?,
                notes: spin_notes,
            },
            Err(reason) => SpinColumn::Skipped(reason.clone()),
        },
        appkit: match &appkit_or_skipped {
            Ok(appkit) => AppKitColumn::Measured {
                version: appkit.version.clone(),
                memory: appkit.memory()?,
            },
            Err(reason) => AppKitColumn::Skipped(reason.clone()),
        },
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
    drop(spin_or_skipped);
    drop(appkit_or_skipped);
    postgres.stop()?;
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}

/// Where a benchmark's PostgreSQL keeps its data: in the system's temporary
/// folder, not under the output folder, because PostgreSQL runs as its own
/// user, who cannot reach a build directory kept under a private home
/// (`target` linked to `~/.cache/...`).
pub fn postgres_data_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("chat-bench-{name}-{}", std::process::id()))
}

/// Measures `get` against every server, `settings.rounds` times each with a
/// warm-up before every measurement; the figures come back in the servers'
/// order. Odd rounds go through the servers in reverse, so over two rounds
/// every server has the same average place and drifting background load
/// hits all alike.
async fn side_by_side(
    settings: &Settings,
    servers: &[Server],
    get: &Get,
    connections: usize,
) -> Result<Vec<Measured>> {
    let mut totals = vec![Measured::default(); servers.len()];
    for round in 0..settings.rounds {
        let mut order: Vec<usize> = (0..servers.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let server = servers[index];
            let measure = async |duration| {
                load::run(server.addr, get, connections, duration)
                    .await
                    .with_context(|| format!("GET {} on {}", get.path_and_query, server.name))
            };
            measure(settings.warm_up).await?;
            totals[index].merge(measure(settings.measure).await?);
        }
    }
    Ok(totals)
}

/// Figures measured over some of the servers, by server: the columns of
/// the tables.
struct ByServer {
    native: Measured,
    host: Measured,
    /// None when Spin was not measured.
    spin: Option<Measured>,
    /// None when the seed's app on AppKit was not measured.
    appkit: Option<Measured>,
    /// None without a candidate chat-host.
    candidate: Option<Measured>,
}

/// Sorts what [`side_by_side`] measured over `servers` into their columns.
fn by_server(servers: &[Server], measured: Vec<Measured>) -> ByServer {
    let (mut native, mut host, mut spin, mut appkit, mut candidate) =
        (None, None, None, None, None);
    for (server, measured) in servers.iter().zip(measured) {
        let column = match server.name {
            NATIVE => &mut native,
            CHAT_HOST => &mut host,
            SPIN => &mut spin,
            appkit::NAME => &mut appkit,
            CANDIDATE => &mut candidate,
            other => unreachable!("no column for a server named {other}"),
        };
        *column = Some(measured);
    }
    ByServer {
        native: native.expect("the native ceiling is always measured"),
        host: host.expect("chat-host is always measured"),
        spin,
        appkit,
        candidate,
    }
}

fn names_of(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|server| server.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opens `concurrency` streams through `proxy`'s `POST /api/chat`, as users
/// of a domain of their own, and counts the replies it stored complete.
async fn proxied_streams(
    db: &tokio_postgres::Client,
    proxy: Server,
    settings: &Settings,
    shape: ReplyShape,
    concurrency: usize,
) -> Result<ProxiedStreams> {
    let thinking = shape.first_chunk_after.as_millis();
    let domain = format!(
        "streams-{concurrency}-{thinking}-{}.bench.example",
        proxy.name
    );
    let route = Route::Proxy {
        host: proxy.addr,
        domain: domain.clone(),
    };
    let run = streams::run(&route, shape, concurrency, settings.stream_rounds)
        .await
        .with_context(|| format!("{concurrency} streams through {}", proxy.name))?;
    let stored = seed::complete_replies(db, &domain).await?;
    println!(
        "  {concurrency} streams through {}: {} completed, {} failed, {stored} replies stored",
        proxy.name, run.completed, run.failed
    );
    Ok(ProxiedStreams { run, stored })
}

/// The app's variables, the same for chat-host and Spin: the bench's
/// database and its model endpoint.
fn app_config(db_url: &str, upstream: &Upstream) -> HostConfig {
    HostConfig::new(db_url)
        .variable("serving_endpoint_url", &upstream.url())
        .variable("serving_endpoint_origin", &upstream.origin())
}

/// Runs the harness' `start` on a blocking thread: it waits for the host
/// with sleeps, and panics (printing the host's log) when it cannot start.
async fn start_off_runtime(
    what: &str,
    start: impl FnOnce() -> TestHost + Send + 'static,
) -> Result<TestHost> {
    tokio::task::spawn_blocking(start)
        .await
        .map_err(|failure| anyhow!("{what} did not start (its log is above): {failure}"))
}

/// The Spin CLI to measure, or why there is none.
fn locate_spin(without_spin: bool) -> Result<PathBuf, String> {
    if without_spin {
        return Err("--without-spin was given".to_owned());
    }
    let Some(spin) = chat_tests::runtime::find_spin() else {
        return Err(format!(
            "no Spin CLI found (set {}, put `spin` on PATH, or install it at ../shared/tools/spin/spin beside the repository)",
            chat_tests::runtime::SPIN_BIN_VAR
        ));
    };
    if !spin.is_file() {
        return Err(format!(
            "{}={} does not name a file",
            chat_tests::runtime::SPIN_BIN_VAR,
            spin.display()
        ));
    }
    Ok(spin)
}

/// `spin up` serving the same .wasm files (spin.toml's release sources) on
/// the same database.
struct SpinUnderTest {
    host: TestHost,
    server: Server,
    version: String,
}

impl SpinUnderTest {
    async fn start(binary: &Path, config: HostConfig) -> Result<Self> {
        let version = Command::new(binary)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", binary.display()))?;
        let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        println!("starting {version} ({})", binary.display());
        let host = start_off_runtime("spin", {
            let binary = binary.to_owned();
            move || TestHost::start_spin(&binary, config)
        })
        .await
        .context("run with --without-spin to leave Spin out")?;
        let server = Server {
            name: SPIN,
            addr: address_of(&host.base_url)?,
        };
        Ok(Self {
            host,
            server,
            version,
        })
    }
}

/// Why Spin should not take the next, larger stream run: it failed or lost
/// replies in the previous one (or did not run it), so more streams would
/// measure its failures rather than its proxy.
fn why_spin_skips_these_streams(previous_rows: &[StreamRow]) -> Option<String> {
    let previous = previous_rows.last()?;
    let Some(spin) = &previous.spin else {
        return Some(format!(
            "it did not run {} streams either",
            previous.concurrency
        ));
    };
    let lost = spin.run.completed as i64 - spin.stored;
    (spin.run.failed > 0 || lost != 0).then(|| {
        format!(
            "at {} streams {} of its replies failed and {} were not stored complete",
            previous.concurrency, spin.run.failed, lost
        )
    })
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
    let sampling = Sampling::start(out, "history".to_owned(), host.pid())?;
    let measured = load::run(host_addr, get, connections, PROFILE_DURATION).await?;
    sampling.finish()?;
    println!("  under perf: {:.0}/s", measured.per_second());
    Ok(())
}

/// perf sampling one process's stacks from `start` to `finish`, whose
/// reports (by binary, and by binary and symbol) are written as
/// `perf-<name>-by-dso.txt` and `perf-<name>-by-symbol.txt`.
struct Sampling {
    perf: std::process::Child,
    data: PathBuf,
    out: PathBuf,
    name: String,
}

impl Sampling {
    fn start(out: &Path, name: String, pid: u32) -> Result<Self> {
        let data = out.join(format!("perf-{name}.data"));
        let perf = Command::new("perf")
            .args(["record", "-F", "999", "-g", "-o"])
            .arg(&data)
            .args(["-p", &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("running perf (apt-get install linux-perf)")?;
        Ok(Self {
            perf,
            data,
            out: out.to_owned(),
            name,
        })
    }

    /// Stops perf as Ctrl-C would (it then writes its data) and writes
    /// the reports.
    fn finish(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.perf.id())?;
        // SAFETY: kill(2) with perf's pid, a child this process still owns.
        if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
            bail!("stopping perf: {}", std::io::Error::last_os_error());
        }
        let status = self.perf.wait()?;
        // perf writes its data, then ends itself by the signal it was sent.
        let stopped_as_asked =
            std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGINT);
        if !status.success() && !stopped_as_asked {
            bail!("perf record failed: {status}");
        }
        for (kind, sort) in [("dso", "dso"), ("symbol", "dso,sym")] {
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
                .arg(&self.data)
                .output()
                .context("perf report")?;
            let report = self.out.join(format!("perf-{}-by-{kind}.txt", self.name));
            std::fs::write(&report, &output.stdout)?;
            println!("  perf report {}", report.display());
        }
        Ok(())
    }
}

/// A binary cargo built next to this one (target/release/…).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
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
