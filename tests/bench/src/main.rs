//! chat-bench: measures chat-host against a native ceiling on one seeded
//! PostgreSQL, and its SSE proxy against calling the model endpoint
//! directly, with the same components under `spin up` as a third server
//! when a Spin CLI is found and the seed's own Node app (the recipe the app
//! began as, README) on the real AppKit as a fourth (throughput only) when `run.sh` prepared it, then prints the
//! results as Markdown tables.
//!
//! Run it with `bash tests/bench/run.sh`, which builds everything in release
//! first; see BENCHMARKS.md for what it measures and the last results.

mod appkit;
mod export;
mod load;
mod native;
mod plans;
mod replicas;
mod report;
mod run;
mod seed;
mod streams;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Benchmarks chat-host (and Spin and the seed's AppKit app, when found) against a native ceiling and its SSE proxy against the upstream"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// A tenth of the data and short runs, for working on the benchmark itself.
    #[arg(long)]
    quick: bool,
    /// Also record CPU profiles of chat-host (perf) under the history load
    /// and through each of its stream runs.
    #[arg(long)]
    profile: bool,
    /// Where the results, query plans and profile are written.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Leave Spin out even when it is found (SPIN_BIN, PATH, or
    /// ../shared/tools/spin/spin beside the repository).
    #[arg(long)]
    without_spin: bool,
    /// Leave the seed's app on AppKit out even when run.sh prepared it
    /// (CHAT_BENCH_APPKIT_DIR, or target/bench/appkit-reference).
    #[arg(long)]
    without_appkit: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the native ceiling; the benchmark starts it as a child process
    /// so that it, like chat-host, has a process of its own.
    #[command(hide = true)]
    NativeCeiling {
        #[arg(long)]
        db_url: String,
        #[arg(long)]
        listen: SocketAddr,
    },
    /// GET /api/history through nginx in front of one chat-host, then three
    /// (one PostgreSQL, one Redis, all on this machine).
    Replicas {
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Rounds, alternating one and three replicas.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
    /// GET /api/export of a tenth of `chats`, then of all of them, with
    /// chat-host's peak resident memory during each.
    Export {
        #[arg(long, default_value_t = 10_000)]
        chats: i64,
        /// Rounds, alternating the small and the large export.
        #[arg(long, default_value_t = 2)]
        rounds: usize,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("starting tokio")?;
    match cli.command {
        Some(Command::NativeCeiling { db_url, listen }) => {
            runtime.block_on(native::serve(&db_url, listen))
        }
        Some(Command::Replicas { seconds, rounds }) => {
            runtime.block_on(until_stopped(replicas::run(seconds, rounds)))
        }
        Some(Command::Export { chats, rounds }) => {
            runtime.block_on(until_stopped(export::run(chats, rounds)))
        }
        None => runtime.block_on(until_stopped(run::run(run::Options {
            settings: if cli.quick {
                run::Settings::QUICK
            } else {
                run::Settings::FULL
            },
            profile: cli.profile,
            out: cli.out,
            without_spin: cli.without_spin,
            without_appkit: cli.without_appkit,
        }))),
    }
}

/// Runs the benchmark until it ends or is stopped (Ctrl-C or SIGTERM).
/// Stopped, it is dropped, and with it every server it started, instead of
/// leaving them running.
async fn until_stopped(benchmark: impl Future<Output = Result<()>>) -> Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        result = benchmark => result,
        signal = tokio::signal::ctrl_c() => {
            signal.context("listening for Ctrl-C")?;
            anyhow::bail!("stopped by Ctrl-C; the servers it started are stopped too")
        }
        _ = terminate.recv() => {
            anyhow::bail!("stopped by SIGTERM; the servers it started are stopped too")
        }
    }
}
