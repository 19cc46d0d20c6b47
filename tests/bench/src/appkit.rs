//! The seed's own Node app on the real AppKit 0.38.1 (the reference in
//! `../shared/anchors/appkit-reference`), started by its own scripts on the
//! bench's database with its serving mock beside it: one more server of the
//! throughput table. `tests/bench/run.sh` prepares a writable copy of the
//! reference (`npm ci`) and names it in [`DIR_VAR`].

use crate::load::{self, Get, Server};
use crate::report::Memory;
use anyhow::{Context, Result, anyhow, bail};
use http::StatusCode;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The prepared copy of the reference: `run.sh` sets it.
pub const DIR_VAR: &str = "CHAT_BENCH_APPKIT_DIR";
/// Why `run.sh` prepared no copy, when it did not.
pub const SKIPPED_VAR: &str = "CHAT_BENCH_APPKIT_SKIPPED";
/// Where `run.sh` puts the copy, under the results folder.
const COPY_NAME: &str = "appkit-reference";

/// The name of the server in messages and tables.
pub const NAME: &str = "appkit";

/// How long the app may take from `start-ref.sh` to listening: AppKit asks
/// the mock workspace who it is and creates the schema first.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const MOCK_START_TIMEOUT: Duration = Duration::from_secs(15);

/// The prepared copy of the seed's app to start, or why the AppKit column
/// is skipped.
pub fn locate(without_appkit: bool, out: &Path) -> Result<PathBuf, String> {
    if without_appkit {
        return Err("--without-appkit was given".to_owned());
    }
    if let Some(reason) = std::env::var(SKIPPED_VAR)
        .ok()
        .filter(|reason| !reason.trim().is_empty())
    {
        return Err(reason);
    }
    let dir = std::env::var_os(DIR_VAR)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| out.join(COPY_NAME));
    let installed = dir.join("node_modules/@databricks/appkit/package.json");
    if !dir.join("start-ref.sh").is_file() || !installed.is_file() {
        return Err(format!(
            "no prepared copy of the seed's app at {} (tests/bench/run.sh copies ../shared/anchors/appkit-reference there and runs npm ci when node and npm are found; or set {DIR_VAR})",
            dir.display()
        ));
    }
    Ok(dir)
}

/// The seed's app and its serving mock, each leading a process group of its
/// own; both groups are killed when this is dropped (the app first).
pub struct AppKitUnderTest {
    app: ProcessGroup,
    _mock: ProcessGroup,
    pub server: Server,
    /// The AppKit and node versions, for the report.
    pub version: String,
}

impl AppKitUnderTest {
    /// Starts the mock (`start-mock.sh`), then the app (`start-ref.sh`) on
    /// the database of `db_url`, which chat-host must have migrated: the app
    /// creates the schema with `CREATE … IF NOT EXISTS` before it listens,
    /// which then leaves ours as it is. Logs go to `out/appkit-*.log`.
    ///
    /// Call it from the task `run` runs on (the main thread): the children
    /// are also killed when the thread that started them ends.
    pub async fn start(dir: &Path, db_url: &str, out: &Path) -> Result<Self> {
        let version = version_of(dir)?;
        println!("starting the seed's app on {version} ({})", dir.display());
        let db = Database::of(db_url)?;

        let mock_port = free_port()?;
        let mut mock = ProcessGroup::spawn(
            "the seed's serving mock",
            Command::new(dir.join("start-mock.sh"))
                .arg(mock_port.to_string())
                .env("FOREGROUND", "1")
                .current_dir(dir),
            out.join("appkit-mock.log"),
        )?;
        let mock_addr = SocketAddr::from(([127, 0, 0, 1], mock_port));
        mock.wait_until_healthy(mock_addr, MOCK_START_TIMEOUT)
            .await?;

        let serving_base = format!("http://{mock_addr}");
        let mut app = ProcessGroup::spawn(
            "the seed's app",
            Command::new(dir.join("start-ref.sh"))
                .arg(free_port()?.to_string())
                .env("FOREGROUND", "1")
                .env("VARIANT", "appkit")
                .env("HOST", "127.0.0.1")
                .env("PGHOST", &db.host)
                .env("PGPORT", db.port.to_string())
                .env("PGUSER", &db.user)
                .env("PGDATABASE", &db.name)
                // The bench's cluster trusts local connections; AppKit needs
                // a password that is not empty all the same.
                .env("PGPASSWORD", "local-trust-auth")
                .env("PGSSLMODE", "disable")
                .env("MOCK_PORT", mock_port.to_string())
                .env("SERVING_BASE", &serving_base)
                // Set, so a workspace of the caller's environment is never
                // contacted.
                .env("DATABRICKS_HOST", &serving_base)
                .env("DATABRICKS_TOKEN", "dapi-local-mock-token")
                .env("NODE_ENV", "development")
                .current_dir(dir),
            out.join("appkit-app.log"),
        )?;
        // In development mode AppKit moves to the next port when its port
        // is taken, so where it listens is read from its log.
        let addr = app.wait_for_listening(START_TIMEOUT).await?;
        app.wait_until_healthy(addr, START_TIMEOUT).await?;
        println!("  listening on {addr} (logs in {})", out.display());
        Ok(Self {
            app,
            _mock: mock,
            server: Server { name: NAME, addr },
            version,
        })
    }

    /// The app's memory (the node process; the mock is not counted).
    pub fn memory(&self) -> Result<Memory> {
        Memory::of(self.app.child.id()).context("reading the seed's app's memory")
    }
}

/// The installed AppKit and the node that runs it.
fn version_of(dir: &Path) -> Result<String> {
    let manifest = dir.join("node_modules/@databricks/appkit/package.json");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&manifest).with_context(|| format!("reading {}", manifest.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest.display()))?;
    let appkit = manifest["version"].as_str().unwrap_or("?");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .context("running node --version")?;
    Ok(format!(
        "@databricks/appkit {appkit}, node {}",
        String::from_utf8_lossy(&node.stdout).trim()
    ))
}

/// The parts of the bench's database URL the app reads from PG* variables.
struct Database {
    host: String,
    port: u16,
    user: String,
    name: String,
}

impl Database {
    fn of(db_url: &str) -> Result<Self> {
        let config: tokio_postgres::Config = db_url.parse().context("parsing the database URL")?;
        let host = match config.get_hosts() {
            [tokio_postgres::config::Host::Tcp(host)] => host.clone(),
            other => bail!("expected one TCP host in the database URL, found {other:?}"),
        };
        Ok(Self {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            user: config
                .get_user()
                .context("no user in the database URL")?
                .to_owned(),
            name: config
                .get_dbname()
                .context("no database in the database URL")?
                .to_owned(),
        })
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child leading a process group of its own, its output in a log file;
/// dropping it kills the group.
struct ProcessGroup {
    what: &'static str,
    child: Child,
    log: PathBuf,
}

impl ProcessGroup {
    fn spawn(what: &'static str, command: &mut Command, log: PathBuf) -> Result<Self> {
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0);
        // SAFETY: prctl(2) is async-signal-safe. A bench stopped by Ctrl-C
        // or killed runs no Drop; the kernel then kills the child when the
        // thread that started it (the main thread) ends. The scripts `exec`
        // node, which keeps the setting.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {what} ({:?})", command.get_program()))?;
        Ok(Self { what, child, log })
    }

    /// Fails, with the end of the log, when the child has exited.
    fn expect_running(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(anyhow!(
                "{} exited ({status}); the end of {}:\n{}",
                self.what,
                self.log.display(),
                self.log_tail()
            )),
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The address in the app's "listening on http://ADDR" line.
    async fn wait_for_listening(&mut self, timeout: Duration) -> Result<SocketAddr> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = log.lines().find_map(|line| {
                let (_, rest) = line.split_once("listening on http://")?;
                rest.split_whitespace().next()?.parse().ok()
            }) {
                return Ok(addr);
            }
            self.expect_running()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not say where it listens within {timeout:?}; the end of {}:\n{}",
                    self.what,
                    self.log.display(),
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `GET /health` at `addr` answers 200.
    async fn wait_until_healthy(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let health = Get {
            path_and_query: "/health".to_owned(),
            headers: Vec::new(),
        };
        loop {
            self.expect_running()?;
            match load::fetch(addr, &health).await {
                Ok((StatusCode::OK, _)) => return Ok(()),
                Ok(_) | Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok((status, body)) => bail!(
                    "{} answered GET /health on {addr} with {status} {:?}",
                    self.what,
                    String::from_utf8_lossy(&body)
                ),
                Err(failure) => {
                    return Err(failure.context(format!(
                        "{} did not serve GET /health on {addr} within {timeout:?}; the end of {}:\n{}",
                        self.what,
                        self.log.display(),
                        self.log_tail()
                    )));
                }
            }
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && let Ok(group) = libc::pid_t::try_from(self.child.id())
        {
            // SAFETY: kill(2) with a negative pid signals the process group
            // the child leads (see `process_group(0)` in `spawn`).
            unsafe { libc::kill(-group, libc::SIGKILL) };
        }
        let _ = self.child.wait();
    }
}
