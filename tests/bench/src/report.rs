//! The results as Markdown: the machine, one table per benchmark, each
//! figure next to the target for it.

use crate::load::Measured;
use crate::plans::Plan;
use crate::run::Settings;
use crate::streams::StreamRun;
use anyhow::{Context, Result};
use std::fmt::Write;
use std::time::Duration;

/// The machine and how busy it is.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub load_average: String,
}

impl Machine {
    pub fn now() -> Result<Self> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo")?;
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split(':').nth(1))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo")?;
        let memory_kib = proc_field(&meminfo, "MemTotal:")?;
        let loadavg = std::fs::read_to_string("/proc/loadavg")?;
        Ok(Self {
            cpus: std::thread::available_parallelism()?.get(),
            cpu_model,
            memory_gib: memory_kib as f64 / (1024.0 * 1024.0),
            load_average: loadavg
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        })
    }

    pub fn describe(&self) -> String {
        format!(
            "{} CPUs ({}), {:.1} GiB memory, load average {}",
            self.cpus, self.cpu_model, self.memory_gib, self.load_average
        )
    }
}

/// A process's resident memory now and at its peak.
pub struct Memory {
    pub peak_mib: f64,
    pub resident_mib: f64,
}

impl Memory {
    pub fn of(pid: u32) -> Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading /proc/{pid}/status"))?;
        Ok(Self {
            peak_mib: proc_field(&status, "VmHWM:")? as f64 / 1024.0,
            resident_mib: proc_field(&status, "VmRSS:")? as f64 / 1024.0,
        })
    }

    /// The sum over the processes of the group `group` leads: `spin up`
    /// serves from a `spin trigger http` child of its own. The peaks are
    /// each process's own, so their sum is an upper bound of the group's.
    pub fn of_process_group(group: u32) -> Result<Self> {
        let mut total = Memory {
            peak_mib: 0.0,
            resident_mib: 0.0,
        };
        for process in chat_tests::process::running().context("listing /proc")? {
            if process.group == group {
                let member = Memory::of(process.pid)?;
                total.peak_mib += member.peak_mib;
                total.resident_mib += member.resident_mib;
            }
        }
        Ok(total)
    }
}

/// A `Name:   1234 kB` line's number.
fn proc_field(text: &str, name: &str) -> Result<u64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .with_context(|| format!("no {name} line"))
}

pub struct HttpRow {
    pub route: String,
    pub native: Measured,
    pub host: Measured,
    /// None when Spin is not measured.
    pub spin: Option<Measured>,
    /// None when the seed's app on AppKit is not measured.
    pub appkit: Option<Measured>,
    /// None without a candidate chat-host (`CHAT_BENCH_CANDIDATE_HOST`).
    pub candidate: Option<Measured>,
}

/// `GET /api/history?q=` for [`crate::seed::SEARCH_WORD`], one connection.
pub struct SearchRow {
    /// Messages holding the word, and all messages.
    pub matching: i64,
    pub messages: i64,
    pub host: Measured,
    pub native: Measured,
}

/// Issue 15's target for a search's p50 (ms).
const SEARCH_P50_TARGET_MS: f64 = 20.0;

pub struct ScalingRow {
    pub chats: i64,
    pub host_first: Measured,
    pub host_deep: Measured,
    pub native_first: Measured,
    pub native_deep: Measured,
}

/// Streams through one host's `POST /api/chat`, and how many of their
/// replies it stored complete.
pub struct ProxiedStreams {
    pub run: StreamRun,
    pub stored: i64,
}

pub struct StreamRow {
    pub concurrency: usize,
    /// How long the endpoint waited before its first chunk.
    pub first_chunk_after: Duration,
    pub direct: StreamRun,
    pub host: ProxiedStreams,
    /// None when Spin is not measured, or not at this many streams.
    pub spin: Option<ProxiedStreams>,
}

impl StreamRow {
    /// How many streams, and the endpoint's thinking time when it had one.
    fn label(&self) -> String {
        match self.first_chunk_after.as_millis() {
            0 => self.concurrency.to_string(),
            ms => format!("{}, first chunk after {ms} ms", self.concurrency),
        }
    }
}

/// Whether the run measured the components under Spin as well.
pub enum SpinColumn {
    /// Not measured, and why.
    Skipped(String),
    Measured {
        /// What `spin --version` printed.
        version: String,
        memory: Memory,
        /// What happened beyond the tables (a stream run left out, and why).
        notes: Vec<String>,
    },
}

/// Whether the run measured the seed's Node app on AppKit as well (in the
/// throughput table only).
pub enum AppKitColumn {
    /// Not measured, and why.
    Skipped(String),
    Measured {
        /// The AppKit and node versions.
        version: String,
        /// The node process's.
        memory: Memory,
    },
}

pub struct Report {
    pub machine_at_start: Machine,
    pub machine_at_end: Machine,
    pub settings: Settings,
    pub http: Vec<HttpRow>,
    pub scaling: Vec<ScalingRow>,
    pub search: SearchRow,
    pub plans: Vec<Plan>,
    pub streams: Vec<StreamRow>,
    pub host_memory: Memory,
    pub native_memory: Memory,
    pub spin: SpinColumn,
    pub appkit: AppKitColumn,
}

/// Targets of issue 7.
const THROUGHPUT_RATIO_TARGET: f64 = 0.8;
const DEEP_PAGE_RATIO_TARGET: f64 = 1.2;
const ADDED_FIRST_CHUNK_P50_MS: f64 = 1.0;
const ADDED_FIRST_CHUNK_P99_MS: f64 = 5.0;
const ADDED_CHUNK_DELAY_P99_MS: f64 = 1.0;
/// At 1,000 streams (issue 12 lowered it from 256).
const HOST_MEMORY_MIB: f64 = 128.0;
/// Targets against the seed's app on AppKit.
const HOST_OVER_APPKIT_TARGET: f64 = 3.0;
const SPIN_OVER_APPKIT_TARGET: f64 = 1.5;

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**missed**" }
}

fn p50_p99(measured: &crate::load::Samples) -> String {
    format!(
        "{:.2} / {:.2}",
        measured.quantile_ms(0.5),
        measured.quantile_ms(0.99)
    )
}

/// What streaming through a host adds to calling the endpoint directly, at
/// the same percentiles, in milliseconds.
struct AddedByProxy {
    first_chunk_p50: f64,
    first_chunk_p99: f64,
    chunk_delay_p99: f64,
}

impl AddedByProxy {
    fn of(proxied: &StreamRun, direct: &StreamRun) -> Self {
        let first_chunk = |run: &StreamRun, quantile| run.time_to_first_chunk.quantile_ms(quantile);
        let chunk_delay = |run: &StreamRun, quantile| run.chunk_delay.quantile_ms(quantile);
        Self {
            first_chunk_p50: first_chunk(proxied, 0.5) - first_chunk(direct, 0.5),
            first_chunk_p99: first_chunk(proxied, 0.99) - first_chunk(direct, 0.99),
            chunk_delay_p99: chunk_delay(proxied, 0.99) - chunk_delay(direct, 0.99),
        }
    }
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let _ = writeln!(
            out,
            "Machine: {}. Load average (1, 5, 15 min) at the start {}, at the end {}.\n",
            self.machine_at_start.describe(),
            self.machine_at_start.load_average,
            self.machine_at_end.load_average
        );
        let _ = writeln!(
            out,
            "Data: {} users, {} chats, {} messages, plus a 50-message chat, a user with {} chats and a user with {} chats.\n",
            s.scale.users,
            s.scale.users * s.scale.chats_per_user,
            s.scale.users * s.scale.chats_per_user * s.scale.messages_per_chat,
            crate::seed::THOUSAND_CHATS,
            s.scale.huge_history_chats
        );
        self.http_table(&mut out);
        self.scaling_table(&mut out);
        self.search_table(&mut out);
        self.plans_table(&mut out);
        self.streams_table(&mut out);
        self.spin_streams_table(&mut out);
        self.memory_line(&mut out);
        out
    }

    /// Every measured server side by side: one table of rates and their
    /// ratios, one of latencies and failures. Spin's and AppKit's columns
    /// are there when they were measured.
    fn http_table(&self, out: &mut String) {
        let s = &self.settings;
        let _ = writeln!(
            out,
            "### Throughput: chat-host against the native ceiling, Spin and the seed's app on AppKit\n\n{} keep-alive connections, {} rounds of {:?} per server (after a {:?} warm-up each), alternating which server goes first.\n",
            s.connections, s.rounds, s.measure, s.warm_up
        );
        let spin = match &self.spin {
            SpinColumn::Skipped(reason) => {
                let _ = writeln!(out, "Spin: skipped, {reason}.\n");
                false
            }
            SpinColumn::Measured { version, .. } => {
                let _ = writeln!(
                    out,
                    "Spin: `spin up` ({version}) serving the same .wasm files on the same database.\n"
                );
                true
            }
        };
        let appkit = match &self.appkit {
            AppKitColumn::Skipped(reason) => {
                let _ = writeln!(out, "AppKit: skipped, {reason}.\n");
                false
            }
            AppKitColumn::Measured { version, .. } => {
                let _ = writeln!(
                    out,
                    "AppKit: the seed's Node app on {version}, started by its own `start-ref.sh` on the same database; its pages were checked for as many rows and the same `hasMore` as the native ceiling's (not byte for byte: Express's JSON, timestamps in milliseconds).\n"
                );
                true
            }
        };

        let mut rates = vec![
            Column::right("native req/s", |row| rate(Some(&row.native))),
            Column::right("chat-host req/s", |row| rate(Some(&row.host))),
        ];
        if spin {
            rates.push(Column::right("Spin req/s", |row| rate(row.spin.as_ref())));
        }
        if appkit {
            rates.push(Column::right("AppKit req/s", |row| {
                rate(row.appkit.as_ref())
            }));
        }
        rates.push(Column::left(
            format!("chat-host ÷ native (target ≥ {THROUGHPUT_RATIO_TARGET})"),
            |row| {
                ratio(
                    Some(&row.host),
                    Some(&row.native),
                    Some(THROUGHPUT_RATIO_TARGET),
                )
            },
        ));
        if appkit {
            rates.push(Column::left(
                format!("chat-host ÷ AppKit (target ≥ {HOST_OVER_APPKIT_TARGET})"),
                |row| {
                    ratio(
                        Some(&row.host),
                        row.appkit.as_ref(),
                        Some(HOST_OVER_APPKIT_TARGET),
                    )
                },
            ));
        }
        if self.http.iter().any(|row| row.candidate.is_some()) {
            rates.push(Column::right("candidate req/s", |row| {
                rate(row.candidate.as_ref())
            }));
            rates.push(Column::right("candidate ÷ chat-host", |row| {
                ratio(row.candidate.as_ref(), Some(&row.host), None)
            }));
        }
        if spin {
            rates.push(Column::right("chat-host ÷ Spin", |row| {
                ratio(Some(&row.host), row.spin.as_ref(), None)
            }));
        }
        if spin && appkit {
            rates.push(Column::left(
                format!("Spin ÷ AppKit (target ≥ {SPIN_OVER_APPKIT_TARGET})"),
                |row| {
                    ratio(
                        row.spin.as_ref(),
                        row.appkit.as_ref(),
                        Some(SPIN_OVER_APPKIT_TARGET),
                    )
                },
            ));
        }
        http_columns(out, &self.http, &rates);

        let mut latencies = vec![
            Column::right("native p50 / p99 ms", |row| latency(Some(&row.native))),
            Column::right("chat-host p50 / p99 ms", |row| latency(Some(&row.host))),
        ];
        let mut failed_names = vec!["native", "chat-host"];
        if spin {
            latencies.push(Column::right("Spin p50 / p99 ms", |row| {
                latency(row.spin.as_ref())
            }));
            failed_names.push("Spin");
        }
        if appkit {
            latencies.push(Column::right("AppKit p50 / p99 ms", |row| {
                latency(row.appkit.as_ref())
            }));
            failed_names.push("AppKit");
        }
        latencies.push(Column::right(
            format!("failed ({})", failed_names.join(" / ")),
            |row| {
                [
                    Some(&row.native),
                    Some(&row.host),
                    row.spin.as_ref(),
                    row.appkit.as_ref(),
                ]
                .into_iter()
                .flatten()
                .map(|measured| measured.failed.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
            },
        ));
        http_columns(out, &self.http, &latencies);
    }

    fn scaling_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "### Scaling: one user's history, first page and a page 30 chats from the oldest\n\nOne connection, {:?} per page and server: latency without queueing.\n",
            self.settings.scaling_measure
        );
        let _ = writeln!(
            out,
            "| chats of the user | chat-host first p50 / p99 ms | chat-host deep p50 / p99 ms | deep ÷ first p50 (target ≤ {DEEP_PAGE_RATIO_TARGET}) | native first p50 / p99 ms | native deep p50 / p99 ms |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---|---:|---:|");
        for row in &self.scaling {
            let ratio = row.host_deep.latencies.quantile_ms(0.5)
                / row.host_first.latencies.quantile_ms(0.5);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2}× {} | {} | {} |",
                row.chats,
                p50_p99(&row.host_first.latencies),
                p50_p99(&row.host_deep.latencies),
                ratio,
                verdict(ratio <= DEEP_PAGE_RATIO_TARGET),
                p50_p99(&row.native_first.latencies),
                p50_p99(&row.native_deep.latencies)
            );
        }
        out.push('\n');
    }

    fn search_table(&self, out: &mut String) {
        let search = &self.search;
        let _ = writeln!(
            out,
            "### Search: `GET /api/history?q={}` as {}\n\n{} chats of {} messages each; the word is in {} of all {} messages ({:.2} %). One connection, {:?} per server.\n",
            crate::seed::SEARCH_WORD,
            crate::seed::THOUSAND_CHATS_USER,
            crate::seed::THOUSAND_CHATS,
            crate::seed::SEARCHED_MESSAGES_PER_CHAT,
            search.matching,
            search.messages,
            100.0 * search.matching as f64 / search.messages.max(1) as f64,
            self.settings.scaling_measure
        );
        let p50 = search.host.latencies.quantile_ms(0.5);
        let _ = writeln!(
            out,
            "| chat-host p50 / p99 ms | p50 target < {SEARCH_P50_TARGET_MS} ms | native p50 / p99 ms |"
        );
        let _ = writeln!(out, "|---:|---|---:|");
        let _ = writeln!(
            out,
            "| {} | {} | {} |\n",
            p50_p99(&search.host.latencies),
            verdict(p50 < SEARCH_P50_TARGET_MS),
            p50_p99(&search.native.latencies)
        );
    }

    fn plans_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "### Query plans (EXPLAIN ANALYZE, BUFFERS; the user with {} chats)\n",
            self.settings.scale.huge_history_chats
        );
        let _ = writeln!(out, "| statement | indexes | sequential scan | execution |");
        let _ = writeln!(out, "|---|---|---|---|");
        for plan in &self.plans {
            let execution = plan
                .text
                .lines()
                .find_map(|line| line.trim().strip_prefix("Execution Time: "))
                .unwrap_or("?");
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                plan.name,
                plan.indexes().join(", "),
                if plan.has_seq_scan() { "**yes**" } else { "no" },
                execution
            );
        }
        out.push('\n');
    }

    fn streams_table(&self, out: &mut String) {
        let reply = self.settings.reply;
        let _ = writeln!(
            out,
            "### SSE proxy: POST /api/chat against calling the endpoint directly\n\nEach reply: {} chunks {:?} apart, the first at once unless the row names the endpoint's time to its first chunk; each client reads {} replies in a row (a new chat each). \"Added\" is the proxied figure minus the direct one at the same percentile. Chunk delay: from the endpoint writing a chunk to the client reading it.\n",
            reply.chunks, reply.spacing, self.settings.stream_rounds
        );
        let _ = writeln!(
            out,
            "| streams at once | first chunk p50 / p99 ms, direct | first chunk p50 / p99 ms, proxied | added p50 (< {ADDED_FIRST_CHUNK_P50_MS} ms) / p99 (< {ADDED_FIRST_CHUNK_P99_MS} ms) | chunk delay p50 / p99 ms, direct | chunk delay p50 / p99 ms, proxied | added chunk p99 (< {ADDED_CHUNK_DELAY_P99_MS} ms) | replies (ok / failed) | stored complete |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---|---:|---:|---|---:|---:|");
        for row in &self.streams {
            let proxied = &row.host.run;
            let added = AddedByProxy::of(proxied, &row.direct);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.2} / {:.2} {} | {} | {} | {:.2} {} | {} / {} | {} {} |",
                row.label(),
                p50_p99(&row.direct.time_to_first_chunk),
                p50_p99(&proxied.time_to_first_chunk),
                added.first_chunk_p50,
                added.first_chunk_p99,
                verdict(
                    added.first_chunk_p50 < ADDED_FIRST_CHUNK_P50_MS
                        && added.first_chunk_p99 < ADDED_FIRST_CHUNK_P99_MS
                ),
                p50_p99(&row.direct.chunk_delay),
                p50_p99(&proxied.chunk_delay),
                added.chunk_delay_p99,
                verdict(added.chunk_delay_p99 < ADDED_CHUNK_DELAY_P99_MS),
                proxied.completed,
                proxied.failed,
                row.host.stored,
                verdict(row.host.stored == proxied.completed as i64 && proxied.failed == 0)
            );
        }
        out.push('\n');
    }

    /// The SSE proxy through Spin, beside chat-host's added figures from the
    /// table above (the same direct run is the baseline of both).
    fn spin_streams_table(&self, out: &mut String) {
        let notes = match &self.spin {
            SpinColumn::Skipped(_) => return,
            SpinColumn::Measured { notes, .. } => notes,
        };
        let _ = writeln!(
            out,
            "### SSE proxy under Spin\n\nThe same clients and replies through Spin's `POST /api/chat`, right after chat-host's run at the same number of streams. \"Added\" as above: through Spin minus direct; chat-host's figure for comparison.\n"
        );
        let _ = writeln!(
            out,
            "| streams at once | first chunk p50 / p99 ms, through Spin | added first chunk p50 / p99 ms, Spin | the same, chat-host | chunk delay p50 / p99 ms, through Spin | added chunk p99 ms, Spin | the same, chat-host | replies through Spin (ok / failed) | stored complete |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in &self.streams {
            let Some(spin) = &row.spin else { continue };
            let through_spin = AddedByProxy::of(&spin.run, &row.direct);
            let through_host = AddedByProxy::of(&row.host.run, &row.direct);
            let _ = writeln!(
                out,
                "| {} | {} | {:.2} / {:.2} | {:.2} / {:.2} | {} | {:.2} | {:.2} | {} / {} | {} |",
                row.label(),
                p50_p99(&spin.run.time_to_first_chunk),
                through_spin.first_chunk_p50,
                through_spin.first_chunk_p99,
                through_host.first_chunk_p50,
                through_host.first_chunk_p99,
                p50_p99(&spin.run.chunk_delay),
                through_spin.chunk_delay_p99,
                through_host.chunk_delay_p99,
                spin.run.completed,
                spin.run.failed,
                spin.stored
            );
        }
        for note in notes {
            let _ = writeln!(out, "\n{note}");
        }
        out.push('\n');
    }

    fn memory_line(&self, out: &mut String) {
        let _ = write!(
            out,
            "chat-host memory over the whole run: peak (VmHWM) {:.1} MiB (target < {HOST_MEMORY_MIB} MiB: {}), resident at the end {:.1} MiB. The native ceiling: peak {:.1} MiB.",
            self.host_memory.peak_mib,
            verdict(self.host_memory.peak_mib < HOST_MEMORY_MIB),
            self.host_memory.resident_mib,
            self.native_memory.peak_mib
        );
        if let SpinColumn::Measured { memory, .. } = &self.spin {
            let _ = write!(
                out,
                " Spin (`spin up` and its trigger process, each one's peak summed): peak {:.1} MiB, resident at the end {:.1} MiB.",
                memory.peak_mib, memory.resident_mib
            );
        }
        if let AppKitColumn::Measured { memory, .. } = &self.appkit {
            let _ = write!(
                out,
                " The seed's app on AppKit (node): peak {:.1} MiB, resident at the end {:.1} MiB.",
                memory.peak_mib, memory.resident_mib
            );
        }
        out.push('\n');
    }
}

/// A column of the throughput tables: its header, whether its figures are
/// right-aligned, and its cell in a row.
struct Column<'a> {
    header: String,
    right: bool,
    cell: Box<dyn Fn(&HttpRow) -> String + 'a>,
}

impl<'a> Column<'a> {
    fn right(header: impl Into<String>, cell: impl Fn(&HttpRow) -> String + 'a) -> Self {
        Self {
            header: header.into(),
            right: true,
            cell: Box::new(cell),
        }
    }

    /// For a figure followed by its verdict.
    fn left(header: impl Into<String>, cell: impl Fn(&HttpRow) -> String + 'a) -> Self {
        Self {
            right: false,
            ..Self::right(header, cell)
        }
    }
}

/// One row per route, then a blank line.
fn http_columns(out: &mut String, rows: &[HttpRow], columns: &[Column]) {
    let headers: Vec<&str> = columns
        .iter()
        .map(|column| column.header.as_str())
        .collect();
    let _ = writeln!(out, "| route | {} |", headers.join(" | "));
    let alignments: Vec<&str> = columns
        .iter()
        .map(|column| if column.right { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "|---|{}|", alignments.join("|"));
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|column| (column.cell)(row)).collect();
        let _ = writeln!(out, "| {} | {} |", row.route, cells.join(" | "));
    }
    out.push('\n');
}

/// A dash where a server has no figure.
const NO_FIGURE: &str = "–";

fn rate(measured: Option<&Measured>) -> String {
    measured.map_or(NO_FIGURE.to_owned(), |measured| {
        format!("{:.0}", measured.per_second())
    })
}

fn latency(measured: Option<&Measured>) -> String {
    measured.map_or(NO_FIGURE.to_owned(), |measured| {
        p50_p99(&measured.latencies)
    })
}

/// One server's rate over another's, with the verdict when there is a target.
fn ratio(over: Option<&Measured>, under: Option<&Measured>, target: Option<f64>) -> String {
    let (Some(over), Some(under)) = (over, under) else {
        return NO_FIGURE.to_owned();
    };
    let ratio = over.per_second() / under.per_second();
    match target {
        Some(target) => format!("{ratio:.2}× {}", verdict(ratio >= target)),
        None => format!("{ratio:.2}×"),
    }
}

/// Every plan in full, for the record.
pub fn plans_text(plans: &[Plan]) -> String {
    plans
        .iter()
        .map(|plan| format!("== {} ==\n{}\n", plan.name, plan.text))
        .collect::<Vec<_>>()
        .join("\n")
}
