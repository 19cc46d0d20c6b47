//! A PostgreSQL server run from the system's binaries, for zero-configuration
//! start-up (`chat-host up` without `db_url`) and for the test suites.
//!
//! The server is our child process and dies with us (parent-death signal), so
//! a crashed host or test never leaves a stray cluster behind. PostgreSQL
//! refuses to run as root; as root we drop to the `postgres` OS user.

use anyhow::{Context, Result, bail};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How the cluster trades durability for speed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Normal fsync behaviour, for data a person keeps.
    Durable,
    /// No fsync: for throw-away test clusters.
    Ephemeral,
}

/// A running PostgreSQL server listening on 127.0.0.1.
pub struct LocalPostgres {
    data_dir: PathBuf,
    port: u16,
    bin_dir: PathBuf,
    owner: Option<OsUser>,
    durability: Durability,
    server: Option<ServerProcess>,
}

/// The server process and the thread that started it. Linux sends the
/// parent-death signal when the *thread* that forked exits, so a dedicated
/// thread lives exactly as long as the server (a test's or tokio's worker
/// thread would take the server down with it).
struct ServerProcess {
    pid: libc::pid_t,
    supervisor: std::thread::JoinHandle<std::io::Result<std::process::ExitStatus>>,
}

#[derive(Clone, Copy, Debug)]
struct OsUser {
    uid: libc::uid_t,
    gid: libc::gid_t,
}

impl LocalPostgres {
    /// Initialises `data_dir` if it holds no cluster yet, then starts the
    /// server on a free loopback port and waits until it accepts connections.
    pub fn start(data_dir: &Path, durability: Durability) -> Result<Self> {
        Self::start_on(data_dir, durability, free_port()?)
    }

    /// [`start`](Self::start) on `port`: the port a server of `data_dir` had
    /// before, so what connected to it finds it again.
    pub fn start_on(data_dir: &Path, durability: Durability, port: u16) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        let owner = server_user()?;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        if let Some(user) = owner {
            chown_recursive(data_dir, user)?;
        }
        let mut cluster = Self {
            data_dir: data_dir.to_path_buf(),
            port,
            bin_dir,
            owner,
            durability,
            server: None,
        };
        if !data_dir.join("PG_VERSION").exists() {
            cluster.init_db()?;
        }
        cluster.start_server()?;
        Ok(cluster)
    }

    /// Connection string for `database` as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server with a fast shutdown (clients are disconnected), as
    /// dropping it does, with the error, if any, to the caller.
    pub fn stop(&mut self) -> Result<()> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        // SIGINT = "fast" shutdown: roll back open transactions, checkpoint, exit.
        unsafe { libc::kill(server.pid, libc::SIGINT) };
        match server.supervisor.join() {
            Ok(result) => result.map(drop).context("waiting for PostgreSQL to stop"),
            Err(_) => bail!("the PostgreSQL supervisor thread panicked"),
        }
    }

    fn init_db(&self) -> Result<()> {
        let mut initdb = self.command("initdb");
        initdb
            .arg("--pgdata")
            .arg(&self.data_dir)
            .args([
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ])
            .arg("--no-instructions");
        if self.durability == Durability::Ephemeral {
            initdb.arg("--no-sync");
        }
        let output = initdb.output().context("running initdb")?;
        if !output.status.success() {
            bail!(
                "initdb failed for {}: {}",
                self.data_dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn start_server(&mut self) -> Result<()> {
        let log_path = self.data_dir.join("server.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        if let Some(user) = self.owner {
            chown(&log_path, user)?;
        }
        let mut postgres = self.command("postgres");
        postgres
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
            ])
            .args(["-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.durability == Durability::Ephemeral {
            postgres.args(["-c", "fsync=off", "-c", "synchronous_commit=off"]);
            postgres.args(["-c", "full_page_writes=off"]);
        }
        let (pid_tx, pid_rx) = std::sync::mpsc::channel();
        let supervisor = std::thread::Builder::new()
            .name(format!("postgres-{}", self.port))
            .spawn(move || {
                let mut child = postgres.spawn()?;
                let _ = pid_tx.send(child.id() as libc::pid_t);
                child.wait()
            })
            .context("starting the PostgreSQL supervisor thread")?;
        let Ok(pid) = pid_rx.recv() else {
            let error = supervisor.join().map_or_else(
                |_| "supervisor panicked".to_owned(),
                |result| format!("{:?}", result.err()),
            );
            bail!(
                "could not start postgres from {}: {error}",
                self.bin_dir.display()
            );
        };
        self.server = Some(ServerProcess { pid, supervisor });
        self.wait_until_ready(&log_path)
    }

    fn wait_until_ready(&mut self, log_path: &Path) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .server
                .as_ref()
                .is_some_and(|s| s.supervisor.is_finished())
            {
                self.server = None;
                bail!(
                    "postgres exited during start-up; its log says:\n{}",
                    log_tail(log_path)
                );
            }
            if pg_isready(&self.bin_dir, self.port) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "postgres did not become ready within 60 s; log:\n{}",
                    log_tail(log_path)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A command for one of the server binaries, run as the cluster's owner
    /// and bound to our lifetime.
    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin_dir.join(program));
        command.env("LC_ALL", "C");
        let owner = self.owner;
        // SAFETY: only async-signal-safe libc calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if let Some(user) = owner
                    && (libc::setgid(user.gid) != 0 || libc::setuid(user.uid) != 0)
                {
                    return Err(std::io::Error::last_os_error());
                }
                // After setuid, which clears it: die with the process that started us.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                // Our own process group: a Ctrl-C in the terminal reaches the
                // host, which then stops the server in order.
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        command
    }
}

impl Drop for LocalPostgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            tracing::warn!("stopping the local PostgreSQL: {error:#}");
        }
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with a server in it.
pub fn find_bin_dir() -> Result<PathBuf> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!(
            "no PostgreSQL server found under /usr/lib/postgresql/*/bin; install it \
             (Debian: `apt-get install -y postgresql`) or set the db_url variable"
        ),
    }
}

/// The OS user the server must run as: `postgres` when we are root.
fn server_user() -> Result<Option<OsUser>> {
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = c"postgres";
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        bail!("running as root, and PostgreSQL refuses to: no `postgres` OS user to run it as");
    }
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    Ok(Some(OsUser { uid, gid }))
}

fn chown(path: &Path, user: OsUser) -> Result<()> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .with_context(|| format!("cannot give {} to the postgres user", path.display()))
}

fn chown_recursive(dir: &Path, user: OsUser) -> Result<()> {
    chown(dir, user)?;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            chown_recursive(&path, user)?;
        } else {
            chown(&path, user)?;
        }
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

fn pg_isready(bin_dir: &Path, port: u16) -> bool {
    Command::new(bin_dir.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-t", "1"])
        .status()
        .is_ok_and(|status| status.success())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
