//! One PostgreSQL cluster per test binary, one fresh database per test.

use anyhow::{Context, Result, bail};
use chat_host::local_postgres::{Durability, LocalPostgres};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The cluster, started on first use and stopped when the test binary exits
/// (it is our child process and dies with us).
fn cluster() -> &'static Mutex<LocalPostgres> {
    static CLUSTER: OnceLock<Mutex<LocalPostgres>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        remove_clusters_of_finished_runs();
        let dir = std::env::temp_dir().join(format!("{CLUSTER_DIR_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = LocalPostgres::start(&dir, Durability::Ephemeral)
            .expect("starting the test PostgreSQL");
        Mutex::new(cluster)
    })
}

/// Each test binary's cluster lives in `<temp>/chat-tests-pg-<pid>`.
const CLUSTER_DIR_PREFIX: &str = "chat-tests-pg-";

/// The cluster dies with its test binary but its folder stays; the next run
/// removes the folders of processes that are gone.
fn remove_clusters_of_finished_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(CLUSTER_DIR_PREFIX))
        else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// A PostgreSQL server of one test's own, which the test may stop, restart
/// and freeze, with one database (`db`) on it.
pub struct ControlledDatabase {
    pub cluster: ControlledCluster,
    pub db: TestDatabase,
    dir: PathBuf,
}

impl ControlledDatabase {
    pub async fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("chat-fault-pg-{}", uuid::Uuid::new_v4().simple()));
        let server = LocalPostgres::start(&dir, Durability::Ephemeral)
            .expect("starting the test's own PostgreSQL");
        let name = "chat".to_owned();
        chat_host::up::create_database(&server.url("postgres"), &name)
            .await
            .expect("creating the test database");
        let url = server.url(&name);
        Self {
            cluster: ControlledCluster {
                port: server.port(),
                server: Some(server),
                dir: dir.clone(),
            },
            db: TestDatabase { name, url },
            dir,
        }
    }
}

/// The server of a [`ControlledDatabase`], and the faults a test gives it.
pub struct ControlledCluster {
    /// `None` while stopped.
    server: Option<LocalPostgres>,
    dir: PathBuf,
    /// Kept across restarts, so the host under test finds the server again.
    port: u16,
}

impl ControlledCluster {
    /// Stops the server with a fast shutdown (clients are disconnected).
    pub fn stop(&mut self) -> Result<()> {
        // Thawed first: a frozen server would never hear the shutdown.
        let _ = self.thaw();
        match self.server.take() {
            Some(mut server) => server.stop(),
            None => Ok(()),
        }
    }

    /// Starts the server again, on the same port, after [`stop`](Self::stop).
    pub fn start_again(&mut self) -> Result<()> {
        if self.server.is_none() {
            self.server = Some(LocalPostgres::start_on(
                &self.dir,
                Durability::Ephemeral,
                self.port,
            )?);
        }
        Ok(())
    }

    /// What `pg_ctl restart -m fast` does: a fast shutdown (every client
    /// disconnected), then the server starts again on the same port.
    pub fn restart_fast(&mut self) -> Result<()> {
        self.stop()?;
        self.start_again()
    }

    /// Stops every process of the server where it stands (SIGSTOP to the
    /// postmaster and each of its children): connections stay open and the
    /// kernel still accepts new ones, but nothing answers. See
    /// [`thaw`](Self::thaw).
    pub fn freeze(&self) -> Result<()> {
        self.signal_all(libc::SIGSTOP)
    }

    pub fn thaw(&self) -> Result<()> {
        self.signal_all(libc::SIGCONT)
    }

    /// Signals the postmaster and its children: each backend runs in a
    /// session of its own, so signalling the process group is not enough.
    fn signal_all(&self, signal: libc::c_int) -> Result<()> {
        if self.server.is_none() {
            bail!("the server is not running");
        }
        let postmaster = postmaster_pid(&self.dir)?;
        let mut targets = vec![postmaster];
        targets.extend(children_of(postmaster)?);
        for pid in targets {
            // SAFETY: kill(2) only sends a signal, to our own server's processes.
            if unsafe { libc::kill(pid, signal) } != 0 {
                let error = std::io::Error::last_os_error();
                // A backend that just exited is fine.
                if error.raw_os_error() != Some(libc::ESRCH) {
                    return Err(error).context("signalling PostgreSQL");
                }
            }
        }
        Ok(())
    }
}

/// The running postmaster's pid: the first line of `postmaster.pid` in its
/// data folder.
fn postmaster_pid(data_dir: &Path) -> Result<libc::pid_t> {
    let file = data_dir.join("postmaster.pid");
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.lines()
        .next()
        .and_then(|line| line.trim().parse().ok())
        .with_context(|| format!("no pid in {}", file.display()))
}

/// The processes whose parent is `parent`.
fn children_of(parent: libc::pid_t) -> Result<Vec<libc::pid_t>> {
    let parent = u32::try_from(parent).context("a pid")?;
    let running = crate::process::running().context("listing /proc")?;
    Ok(running
        .into_iter()
        .filter(|process| process.parent == parent)
        .filter_map(|process| libc::pid_t::try_from(process.pid).ok())
        .collect())
}

impl ControlledDatabase {
    /// Makes `role`'s connections over loopback TCP prove its password
    /// (the test cluster trusts everyone else), and applies that at once.
    pub async fn require_password_for(&self, role: &str) {
        let hba = self.dir.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("reading pg_hba.conf");
        std::fs::write(
            &hba,
            format!(
                "host all {role} 127.0.0.1/32 scram-sha-256\nhost all {role} ::1/128 scram-sha-256\n{rules}"
            ),
        )
        .expect("writing pg_hba.conf");
        self.db
            .connect()
            .await
            .execute("SELECT pg_reload_conf()", &[])
            .await
            .expect("reloading the server's configuration");
    }
}

impl Drop for ControlledDatabase {
    fn drop(&mut self) {
        let _ = self.cluster.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Which sessions [`TestDatabase::terminate_other_sessions`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    Idle,
    WaitingOnLocks,
}

/// A message as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub id: uuid::Uuid,
    pub role: String,
    pub text: String,
    pub trace_id: Option<String>,
    pub status: String,
}

/// A database of its own for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = cluster().lock().unwrap().url("postgres");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        chat_host::up::create_database(&admin_url, &name)
            .await
            .expect("creating a test database");
        let url = cluster().lock().unwrap().url(&name);
        Self { name, url }
    }

    /// The first column of every row a query returns.
    pub async fn column<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self
            .connect()
            .await
            .query(sql, params)
            .await
            .expect("querying the test database");
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// Terminates the other sessions on this database that are `which`;
    /// answers how many it ended, once they are gone.
    pub async fn terminate_other_sessions(&self, which: Sessions) -> usize {
        let client = self.connect().await;
        let condition = match which {
            // As a server closing idle connections does (Lakebase scaling
            // to zero); a session connecting or at work is left alone.
            Sessions::Idle => "state = 'idle'",
            Sessions::WaitingOnLocks => "wait_event_type = 'Lock'",
        };
        let others = format!(
            "FROM pg_stat_activity WHERE datname = current_database() \
             AND pid <> pg_backend_pid() AND {condition}"
        );
        let ended: Vec<bool> = client
            .query(&format!("SELECT pg_terminate_backend(pid) {others}"), &[])
            .await
            .expect("terminating sessions")
            .iter()
            .map(|row| row.get(0))
            .collect();
        // Wait until they are gone, so the next request meets closed connections.
        for _ in 0..200 {
            let left: i64 = client
                .query_one(&format!("SELECT count(*) {others}"), &[])
                .await
                .expect("counting sessions")
                .get(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        ended.into_iter().filter(|ended| *ended).count()
    }

    /// How many rows each table that a conversation, its owner or its
    /// ratings are written to holds, by name.
    pub async fn conversation_rows(&self) -> Vec<(&'static str, i64)> {
        let mut counts = Vec::new();
        for table in ["User", "Chat", "Message", "Vote", "FeedbackOutbox"] {
            let sql = format!(r#"SELECT count(*) FROM chat."{table}""#);
            counts.push((table, self.column::<i64>(&sql, &[]).await[0]));
        }
        counts
    }

    /// The chat's messages as the database holds them, in the order the
    /// API lists them.
    pub async fn stored_messages(&self, chat: uuid::Uuid) -> Vec<StoredMessage> {
        let rows = self
            .connect()
            .await
            .query(
                r#"SELECT id, role, parts::text, "traceId", status FROM chat."Message"
                   WHERE "chatId" = $1 ORDER BY "createdAt", "insertionOrder""#,
                &[&chat],
            )
            .await
            .expect("reading the chat's messages");
        rows.iter()
            .map(|row| {
                let parts: serde_json::Value =
                    serde_json::from_str(row.get::<_, &str>(2)).expect("parts are JSON");
                StoredMessage {
                    id: row.get(0),
                    role: row.get(1),
                    text: parts[0]["text"].as_str().expect("a text part").to_owned(),
                    trace_id: row.get(3),
                    status: row.get(4),
                }
            })
            .collect()
    }

    /// A direct connection, for seeding and checking rows.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client
    }
}
