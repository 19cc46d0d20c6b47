use anyhow::Result;
use chat_host::http_server::DEFAULT_DRAIN_DEADLINE;
use chat_host::postgres::PasswordSource;
use chat_host::up::UpOptions;
use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

/// Runs the chat-history Spin app natively: the same components and
/// spin.toml as `spin up`, plus a managed local Postgres and pooled,
/// resilient database access.
#[derive(Parser)]
#[command(name = "chat-host", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people, `json` for
    /// a log collector (one JSON object per line).
    #[arg(long, global = true, value_enum, env = "CHAT_HOST_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run each component's build command from the manifest (like `spin build`).
    Build {
        /// The application manifest.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
    },
    /// Compile every component ahead of time for any x86-64-v2 CPU, into
    /// OUT/components/, with OUT/spin.toml pointing at them: what a
    /// chat-host without a compiler serves.
    #[cfg(feature = "compiler")]
    Precompile {
        /// The application manifest (its components built).
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
        /// The directory to write to.
        #[arg(long = "out")]
        out_dir: PathBuf,
    },
    /// Serve the application (like `spin up`).
    Up {
        /// The application manifest.
        #[arg(short = 'f', long = "from", default_value = "spin.toml")]
        manifest: PathBuf,
        /// The address to listen on [default: 0.0.0.0 on
        /// DATABRICKS_APP_PORT when Databricks Apps sets it, else
        /// 127.0.0.1:3000].
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Runtime configuration (key-value stores), in Spin's TOML format.
        #[arg(long = "runtime-config-file")]
        runtime_config_file: Option<PathBuf>,
        /// Build the components first (like `spin up --build`).
        #[arg(long)]
        build: bool,
        /// Serving threads, each with its own listening socket, instances
        /// and database pool [default: the number of CPUs].
        #[arg(long)]
        threads: Option<NonZeroUsize>,
        /// Seconds open requests and streams may take to finish after
        /// SIGTERM or Ctrl-C; new connections are refused from the first.
        #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_DRAIN_DEADLINE.as_secs())]
        drain_deadline: u64,
        /// Read the database password from this file for every new
        /// connection (it may change while the app runs, as Lakebase's
        /// OAuth tokens do); it replaces any password in `db_url`.
        #[arg(
            long,
            env = "CHAT_HOST_DB_PASSWORD_FILE",
            conflicts_with = "db_password_command"
        )]
        db_password_file: Option<PathBuf>,
        /// Run this command (with `sh -c`) for every new connection and use
        /// what it prints as the database password.
        #[arg(long, env = "CHAT_HOST_DB_PASSWORD_COMMAND")]
        db_password_command: Option<String>,
        /// Serve Prometheus metrics at http://<ADDRESS>/metrics (and the
        /// readiness route there too); a listener of its own, never the
        /// app's.
        #[arg(long, value_name = "ADDRESS")]
        metrics_listen: Option<SocketAddr>,
    },
}

fn main() -> Result<()> {
    keep_error_values_cheap();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // tokio-postgres reports server NOTICEs ("already exists, skipping") at info.
        .unwrap_or_else(|_| "info,tokio_postgres=warn,wasmtime=warn,cranelift=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().with_current_span(false).init(),
    }
    match cli.command {
        Command::Build { manifest } => chat_host::build_command::build_all(&manifest),
        #[cfg(feature = "compiler")]
        Command::Precompile { manifest, out_dir } => {
            chat_host::precompile::precompile_app(&manifest, &out_dir)
        }
        Command::Up {
            manifest,
            listen,
            runtime_config_file,
            build,
            threads,
            drain_deadline,
            db_password_file,
            db_password_command,
            metrics_listen,
        } => {
            if build {
                chat_host::build_command::build_all(&manifest)?;
            }
            let serving_threads = threads
                .or_else(|| std::thread::available_parallelism().ok())
                .unwrap_or(NonZeroUsize::MIN);
            // This thread is the first serving thread; up::run starts the others.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(chat_host::up::run(UpOptions {
                manifest_path: manifest,
                listen,
                runtime_config_file,
                serving_threads,
                drain_deadline: Duration::from_secs(drain_deadline),
                db_password: db_password_file
                    .map(PasswordSource::File)
                    .or(db_password_command.map(PasswordSource::Command)),
                metrics_listen,
            }))
        }
    }
}

/// wasmtime makes an error value each time it drops a suspended fiber,
/// dozens of times per streamed reply. With `RUST_BACKTRACE` set, as it
/// often is, every such value would capture a backtrace: 6 % of chat-host's
/// CPU at 1,000 streams. Error values capture none unless
/// `RUST_LIB_BACKTRACE` asks for them; panics still follow `RUST_BACKTRACE`.
fn keep_error_values_cheap() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: called first thing in main, before any other thread
        // exists that could read the environment.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
}
