//! `chat-host up`: everything between the command line and a serving app —
//! the managed local database when `db_url` is unset, the start-up schema
//! migration, and the serving threads (one listener and app copy each) with
//! their drain on SIGTERM or Ctrl-C.

use crate::app::{AppOptions, CompiledApp, LoadedApp};
use crate::databricks::Platform;
use crate::http_server::Serving;
use crate::instances::ReusePolicy;
use crate::local_postgres::{Durability, LocalPostgres};
use crate::metrics::Metrics;
use crate::postgres::{PasswordSource, PoolSettings};
use crate::probes::Readiness;
use crate::runtime_config::RuntimeConfig;
use anyhow::{Context, Result, anyhow, bail};
use chat_manifest::Manifest;
use http_body_util::{BodyExt, Full};
use socket2::{Domain, Socket, Type};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The app variable that holds the Postgres connection string.
const DB_URL: &str = "db_url";
/// The app variable that guards the admin routes.
const ADMIN_TOKEN: &str = "admin_token";
/// The app variable naming the identity of requests without gateway headers.
const DEV_USER_EMAIL: &str = "dev_user_email";
/// That identity when chat-host runs everything on this machine itself.
const LOCAL_DEV_USER_EMAIL: &str = "dev@localhost";
/// The component that owns the schema, and its migration route.
const SCHEMA_COMPONENT: &str = "admin-schema";
const MIGRATE_PATH: &str = "/admin/schema/migrate";
/// The database the managed local cluster keeps the app's data in.
const LOCAL_DATABASE: &str = "chat_history";
/// Where the app listens when nothing says otherwise.
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 3000);
/// The app variable the components call the endpoint (and MLflow) with.
const SERVING_TOKEN: &str = "serving_token";
/// Connections the kernel queues per listening socket until accepted.
const LISTEN_BACKLOG: i32 = 1024;

pub struct UpOptions {
    pub manifest_path: PathBuf,
    /// `None`: Databricks Apps' port when the platform sets one, else
    /// [`DEFAULT_LISTEN`].
    pub listen: Option<SocketAddr>,
    pub runtime_config_file: Option<PathBuf>,
    pub serving_threads: NonZeroUsize,
    /// How long open requests may finish once SIGTERM or Ctrl-C came.
    pub drain_deadline: Duration,
    /// Where new database connections get their password, if not from `db_url`.
    pub db_password: Option<PasswordSource>,
    /// Where Prometheus metrics are served, if anywhere (not the public port).
    pub metrics_listen: Option<SocketAddr>,
}

pub async fn run(mut options: UpOptions) -> Result<()> {
    let manifest = Manifest::load(&options.manifest_path)?;
    let state_dir = manifest.base_dir.join(".chat-host");
    let runtime_config =
        RuntimeConfig::for_app(options.runtime_config_file.as_deref(), &state_dir)?;
    let mut overrides = BTreeMap::new();
    let mut live_variables = BTreeMap::new();

    // On Databricks Apps, the platform's environment settles what no
    // explicit setting does.
    let platform = Platform::from_env(|name| std::env::var(name).ok())
        .context("reading the Databricks Apps environment")?;
    let listen = options
        .listen
        .or(platform
            .port
            .map(|port| SocketAddr::from(([0, 0, 0, 0], port))))
        .unwrap_or(DEFAULT_LISTEN);
    for (name, value) in &platform.variables {
        if manifest.variables.contains_key(name) && configured(name).is_none() {
            overrides.insert(name.clone(), value.clone());
        }
    }
    if let Some(db_url) = platform
        .db_url
        .clone()
        .filter(|_| configured(DB_URL).is_none())
    {
        overrides.insert(DB_URL.to_owned(), db_url);
        options.db_password = options.db_password.or(platform.db_password.clone());
    }
    if manifest.variables.contains_key(SERVING_TOKEN)
        && configured(SERVING_TOKEN).is_none()
        && let Some(token) = platform.live_token()
    {
        let current: chat_manifest::LiveValue = Arc::new(move || token.current());
        live_variables.insert(SERVING_TOKEN.to_owned(), current);
    }

    // Zero configuration: no db_url means a local PostgreSQL we run
    // ourselves, except on Databricks Apps, whose app folder has none to run
    // and keeps nothing across a redeployment.
    let no_database = manifest.variables.contains_key(DB_URL)
        && configured(DB_URL).is_none()
        && !overrides.contains_key(DB_URL);
    if no_database && platform.port.is_some() {
        bail!(
            "no database: on Databricks Apps (DATABRICKS_APP_PORT is set) the chats live in a \
             Lakebase database bound to the app as a resource (databricks.yml's `postgres`, \
             which sets PGHOST); bind one, or set db_url"
        );
    }
    let _local_postgres = if no_database {
        let data_dir = state_dir.join("postgres");
        let cluster = start_local_postgres(&data_dir).await?;
        overrides.insert(DB_URL.to_owned(), cluster.url(LOCAL_DATABASE));
        default_local_identity(&manifest, listen, &mut overrides);
        Some(cluster)
    } else {
        None
    };

    // The start-up migration calls the admin route like any client; without a
    // configured token, a random one known only to this process opens it.
    let admin_token = match configured(ADMIN_TOKEN) {
        Some(token) => token,
        None => {
            let token = random_token();
            if manifest.variables.contains_key(ADMIN_TOKEN) {
                overrides.insert(ADMIN_TOKEN.to_owned(), token.clone());
            }
            token
        }
    };

    let has_schema_component = manifest.components.contains_key(SCHEMA_COMPONENT);
    let timers = crate::background::timers(&manifest);
    let metrics = options.metrics_listen.map(|_| {
        Metrics::new(
            manifest
                .components
                .values()
                .flat_map(|component| component.gauges.iter().cloned())
                .collect(),
        )
    });
    let app = CompiledApp::load(AppOptions {
        manifest,
        variable_overrides: overrides,
        live_variables,
        runtime_config,
        reuse: ReusePolicy::default(),
        metrics: metrics.clone(),
    })?;
    let threads = options.serving_threads.get();
    let pools = PoolSettings {
        password: options.db_password,
        ..PoolSettings::default()
    }
    .shared_by(threads);
    let copies = (0..threads)
        .map(|_| app.serving_copy(pools.clone()))
        .collect::<Result<Vec<_>>>()?;

    if has_schema_component {
        migrate_schema(&copies[0], &admin_token).await;
    }

    release_compilation_memory();
    let listeners =
        bind_listeners(listen, threads).with_context(|| format!("cannot listen on {listen}"))?;
    // Every listener is bound before "Serving" is announced: whoever waits
    // for that line may scrape the metrics at once.
    let metrics_listener = match options.metrics_listen {
        Some(address) => Some(
            tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot serve metrics on {address}"))?,
        ),
        None => None,
    };
    let address = listeners[0].local_addr()?;
    println!("Serving http://{address}");
    println!("Available routes:");
    for (route, component) in copies[0].routes() {
        println!("  {component}: http://{address}{route}");
    }
    let serving = Serving {
        readiness: Readiness::default(),
        drain_deadline: options.drain_deadline,
        metrics: metrics.clone(),
    };
    if let (Some(listener), Some(metrics)) = (metrics_listener, metrics) {
        println!("Metrics at http://{}/metrics", listener.local_addr()?);
        let sources = Arc::new(crate::metrics::Sources {
            pools: copies.iter().map(|copy| copy.pools()).collect(),
            key_value: app.key_value(),
            readiness: serving.readiness.clone(),
        });
        tokio::spawn(async move {
            if let Err(error) = crate::metrics::serve(listener, metrics, sources).await {
                tracing::error!("the metrics listener stopped: {error:#}");
            }
        });
    }
    serve_on_threads(copies.into_iter().zip(listeners).collect(), serving, timers).await
}

/// Compiling the components leaves tens of MiB free but held in the heaps
/// of the threads that compiled them (26 MiB of an idle host's 88 MiB),
/// where no serving thread allocates again: glibc hands them back to the
/// system only when asked.
fn release_compilation_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages of the heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One listening socket per serving thread, all on `address` with
/// `SO_REUSEPORT`, so the kernel spreads new connections over the threads.
/// The address is first bound once without that option: one that another
/// process serves is refused here rather than shared with it.
fn bind_listeners(address: SocketAddr, count: usize) -> Result<Vec<std::net::TcpListener>> {
    let address = std::net::TcpListener::bind(address)?.local_addr()?;
    (0..count)
        .map(|_| {
            let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            socket.set_nonblocking(true)?;
            socket.bind(&address.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(socket.into())
        })
        .collect()
}

/// Serves each copy of the app on a thread of its own with a
/// single-threaded runtime (the first on this one, which also runs the
/// background work's timers) until SIGTERM or Ctrl-C, then lets every
/// thread finish its open requests.
async fn serve_on_threads(
    copies: Vec<(Arc<LoadedApp>, std::net::TcpListener)>,
    serving: Serving,
    timers: Vec<crate::background::Timer>,
) -> Result<()> {
    let (stop, stopping) = tokio::sync::watch::channel(());
    let mut copies = copies.into_iter();
    let (own_app, own_listener) = copies.next().context("no serving thread")?;
    let mut threads = Vec::new();
    for (index, (app, listener)) in copies.enumerate() {
        let stopping = stopping.clone();
        let serving = serving.clone();
        let thread = std::thread::Builder::new()
            .name(format!("serve-{}", index + 1))
            .spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting a serving thread's runtime")?
                    .block_on(serve_until_stopped(
                        app,
                        listener,
                        serving,
                        stopping,
                        Vec::new(),
                    ))
            })
            .context("starting a serving thread")?;
        threads.push(thread);
    }
    let readiness = serving.readiness.clone();
    let signal = async move {
        shutdown_signal().await;
        readiness.begin_draining();
        let _ = stop.send(());
    };
    let (served, ()) = tokio::join!(
        serve_until_stopped(own_app, own_listener, serving, stopping, timers),
        signal
    );
    let others = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a serving thread panicked")))
            })
            .collect::<Result<Vec<()>>>()
    })
    .await?;
    served.and(others.map(drop))
}

/// Serves one copy until `stopping` changes, with `timers` beside it, and
/// releases the copy's database connections once both are done.
async fn serve_until_stopped(
    app: Arc<LoadedApp>,
    listener: std::net::TcpListener,
    serving: Serving,
    stopping: tokio::sync::watch::Receiver<()>,
    timers: Vec<crate::background::Timer>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let background = crate::background::run(
        app.clone(),
        timers,
        stopping.clone(),
        serving.drain_deadline,
    );
    let mut stopping = stopping;
    let stopped = async move {
        let _ = stopping.changed().await;
    };
    let (served, ()) = tokio::join!(
        crate::http_server::serve(app.clone(), listener, serving, stopped),
        background
    );
    app.shut_down();
    served
}

/// An app variable's value from the environment, as Spin reads it; empty
/// counts as unset.
fn configured(variable: &str) -> Option<String> {
    std::env::var(format!("SPIN_VARIABLE_{}", variable.to_ascii_uppercase()))
        .ok()
        .filter(|value| !value.is_empty())
}

/// With the managed local database there is no gateway in front of the app
/// either, so requests carry no identity; unless `dev_user_email` is set, a
/// local one lets the person at this machine use the web UI with no 401.
/// Only while the app listens on a loopback address: reachable from other
/// machines, it would hand that identity to anyone on the network.
fn default_local_identity(
    manifest: &Manifest,
    listen: SocketAddr,
    overrides: &mut BTreeMap<String, String>,
) {
    if !manifest.variables.contains_key(DEV_USER_EMAIL) || configured(DEV_USER_EMAIL).is_some() {
        return;
    }
    if listen.ip().is_loopback() {
        overrides.insert(DEV_USER_EMAIL.to_owned(), LOCAL_DEV_USER_EMAIL.to_owned());
        tracing::info!(
            "dev_user_email not set: requests without gateway headers act as {LOCAL_DEV_USER_EMAIL}"
        );
    } else {
        tracing::warn!(
            "listening on {listen}, which is not a loopback address: requests without gateway \
             headers are refused (401); set SPIN_VARIABLE_DEV_USER_EMAIL to use the app without a gateway"
        );
    }
}

async fn start_local_postgres(data_dir: &Path) -> Result<LocalPostgres> {
    let data_dir = data_dir.to_path_buf();
    let cluster =
        tokio::task::spawn_blocking(move || LocalPostgres::start(&data_dir, Durability::Durable))
            .await?
            .context(
                "db_url is not set, so chat-host runs a local PostgreSQL, which failed to start",
            )?;
    create_database(&cluster.url("postgres"), LOCAL_DATABASE).await?;
    tracing::info!(
        "db_url not set: using the local PostgreSQL at {}",
        chat_contract::redact::url_credentials(&cluster.url(LOCAL_DATABASE))
    );
    Ok(cluster)
}

/// Creates `database` unless it exists.
pub async fn create_database(admin_url: &str, database: &str) -> Result<()> {
    let (client, connection) = tokio_postgres::connect(admin_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the local PostgreSQL")?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await?
        .is_some();
    if !exists {
        // Identifiers cannot be bound as parameters; `database` is our constant or a test's own name.
        client
            .batch_execute(&format!(
                "CREATE DATABASE \"{}\"",
                database.replace('"', "\"\"")
            ))
            .await
            .with_context(|| format!("creating database {database}"))?;
    }
    Ok(())
}

/// Applies pending schema migrations through the admin-schema component, and
/// says in one log line whether the chat schema is ready.
async fn migrate_schema(app: &Arc<LoadedApp>, admin_token: &str) {
    let request = http::Request::post(format!("http://localhost{MIGRATE_PATH}"))
        .header(http::header::AUTHORIZATION, format!("Bearer {admin_token}"))
        .body(
            Full::new(bytes::Bytes::new())
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a valid request");
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    let response = app.handle(request, local).await;
    let status = response.status();
    let body = match response.into_body().collect().await {
        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        Err(error) => format!("(unreadable response: {error})"),
    };
    if status.is_success() {
        tracing::info!("chat schema initialised: {body}");
    } else {
        tracing::warn!("chat schema not initialised ({status}): {body}");
    }
}

fn random_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
