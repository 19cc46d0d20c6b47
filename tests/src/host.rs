//! Runs the app against a test database: the real `chat-host up` binary, or
//! the real `spin up` (see [`crate::runtime`]), on a free loopback port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::runtime::{self, Runtime};

/// A running `chat-host up` or `spin up`, killed with its process group when
/// dropped. Its output goes to a log file, printed when a test fails.
pub struct TestHost {
    pub base_url: String,
    pub runtime: Runtime,
    child: Child,
    log_path: PathBuf,
    /// A directory removed with the host: Spin's state directory (its
    /// key-value store, unless the test gave a runtime config of its own),
    /// or the app folder it was started in.
    state_dir: Option<PathBuf>,
}

/// How to start the host: app variables (as `SPIN_VARIABLE_*`) and the manifest.
#[derive(Clone)]
pub struct HostConfig {
    pub manifest: PathBuf,
    pub variables: BTreeMap<String, String>,
    pub runtime_config_file: Option<PathBuf>,
    /// The address the host listens on (its port is always a free one);
    /// loopback unless the test says otherwise. Tests reach it over loopback.
    pub listen_ip: std::net::IpAddr,
    /// More `chat-host up` options (chat-host only: Spin has none of them).
    pub host_args: Vec<String>,
    /// The port to listen on; a free one when `None`.
    pub port: Option<u16>,
    /// More environment for the process (such as `SSL_CERT_FILE`).
    pub env: BTreeMap<String, String>,
    /// Whether the port is given with `--listen` (else the host finds it in
    /// `DATABRICKS_APP_PORT`, as on Databricks Apps).
    pub listen_flag: bool,
}

impl HostConfig {
    pub fn new(db_url: &str) -> Self {
        Self {
            manifest: crate::repo_root().join("spin.toml"),
            variables: BTreeMap::from([("db_url".to_owned(), db_url.to_owned())]),
            runtime_config_file: None,
            listen_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            host_args: Vec::new(),
            port: None,
            env: BTreeMap::new(),
            listen_flag: true,
        }
    }

    /// Listens where Databricks Apps tells an app to: on every interface,
    /// at `DATABRICKS_APP_PORT` (chat-host only).
    pub fn on_databricks_apps_port(mut self) -> Self {
        let port = self.port.unwrap_or_else(free_port);
        self.port = Some(port);
        self.listen_flag = false;
        self.env("DATABRICKS_APP_PORT", port.to_string())
    }

    /// Sets an environment variable for the host process.
    pub fn env(mut self, name: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        let value = value.as_ref().to_str().expect("a UTF-8 value").to_owned();
        self.env.insert(name.to_owned(), value);
        self
    }

    /// Listens on this port (say, to start a replica again where it was).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Adds `chat-host up` options, such as `--drain-deadline 1`.
    pub fn host_args(mut self, args: &[&str]) -> Self {
        self.host_args
            .extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }

    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn manifest(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifest = path.into();
        self
    }

    /// Listens on `ip` (say, every interface) instead of loopback.
    pub fn listen_ip(mut self, ip: impl Into<std::net::IpAddr>) -> Self {
        self.listen_ip = ip.into();
        self
    }

    /// A runtime config file of the test's own (say, a durable store that
    /// outlives one host).
    pub fn runtime_config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.runtime_config_file = Some(path.into());
        self
    }
}

/// The chat-host binary cargo built next to this test binary.
pub fn host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let binary = target_dir.join("chat-host");
    assert!(
        binary.exists(),
        "{} is missing: build it first (`cargo build -p chat-host`), or run tests/run.sh",
        binary.display()
    );
    binary
}

impl TestHost {
    /// Starts the app under the runtime the suite runs against
    /// ([`Runtime::selected`]).
    pub fn start(config: HostConfig) -> Self {
        match Runtime::selected() {
            Runtime::ChatHost => Self::start_binary(&host_binary(), config),
            Runtime::Spin => Self::start_spin(&runtime::spin_binary(), config),
        }
    }

    /// [`start`](Self::start) from async code: the start-up wait blocks, so
    /// it runs on a blocking thread, not on the test's runtime.
    pub async fn launch(config: HostConfig) -> Self {
        tokio::task::spawn_blocking(move || Self::start(config))
            .await
            .expect("starting the app")
    }

    /// Starts this `chat-host` binary (the benchmarks run a release build).
    pub fn start_binary(binary: &Path, config: HostConfig) -> Self {
        let launch = Launch::new("chat-host", config.port);
        let mut command = Command::new(binary);
        command
            .arg("up")
            .args(&config.host_args)
            .env("RUST_LOG", "info,tokio_postgres=warn");
        // Each host gets its own stores: by default in memory, so no test
        // replays another's journal from a shared file.
        let runtime_config = launch.runtime_config(&config, "type = \"memory\"\n");
        launch.spawn(command, &config, &runtime_config, Runtime::ChatHost, None)
    }

    /// Starts an app folder as Databricks Apps does (chat-host only):
    /// `command` (its `app.yaml`'s) in `folder`, without a shell, with no
    /// environment but `PATH` and `config.env` (the platform's), listening
    /// where `DATABRICKS_APP_PORT` says. The folder is removed with the host.
    pub fn start_app_folder(folder: PathBuf, command: &[String], config: HostConfig) -> Self {
        let port = config
            .port
            .expect("a port: HostConfig::on_databricks_apps_port");
        let launch = Launch::new("app-folder", Some(port));
        let process = crate::app_folder::platform_command(&folder, command, &config.env);
        launch.spawn_as_is(process, Runtime::ChatHost, Some(folder))
    }

    /// Starts the app under this `spin` binary, as a Spin user runs it, with
    /// a state directory of its own. Like `chat-host up`, it then applies the
    /// schema migrations through the admin route (chat-host does that itself
    /// at start-up; under Spin the first request that needs the schema would).
    pub fn start_spin(spin: &Path, mut config: HostConfig) -> Self {
        assert!(
            config.host_args.is_empty(),
            "chat-host options {:?} given to spin up",
            config.host_args
        );
        let launch = Launch::new("spin", config.port);
        let state_dir = launch.log_path.with_extension("state");
        std::fs::create_dir_all(&state_dir).expect("creating Spin's state directory");
        let admin_token = config
            .variables
            .entry("admin_token".to_owned())
            .or_insert_with(|| uuid::Uuid::new_v4().simple().to_string())
            .clone();
        let store = format!(
            "type = \"spin\"\npath = \"{}\"\n",
            state_dir.join("key_value.db").display()
        );
        let runtime_config = launch.runtime_config(&config, &store);
        let mut command = Command::new(spin);
        command
            .arg("up")
            .arg("--state-dir")
            .arg(&state_dir)
            .arg("--log-dir")
            .arg(state_dir.join("logs"));
        let host = launch.spawn(
            command,
            &config,
            &runtime_config,
            Runtime::Spin,
            Some(state_dir),
        );
        host.migrate_schema(&admin_token);
        host
    }

    /// `POST /admin/schema/migrate`, with its outcome in the host's log in
    /// the words chat-host logs its own start-up migration. A database that
    /// is down is no failure here: the app starts without it.
    fn migrate_schema(&self, admin_token: &str) {
        let line = match post_without_body(&self.base_url, "/admin/schema/migrate", admin_token) {
            Ok((status, body)) if status.starts_with('2') => {
                format!("chat schema initialised: {body}")
            }
            Ok((status, body)) => format!("chat schema not initialised ({status}): {body}"),
            Err(error) => format!("chat schema not initialised (no answer: {error})"),
        };
        let mut log = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .expect("the host log");
        use std::io::Write;
        writeln!(log, "[test harness] {line}").expect("writing the host log");
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let runtime = self.runtime.name();
        // What each prints once its listener is bound.
        let ready = match self.runtime {
            Runtime::ChatHost => "Serving http://",
            Runtime::Spin => "Available Routes:",
        };
        loop {
            if self.log().contains(ready) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{runtime} exited with {status} before serving:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{runtime} did not start within 60 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything the host printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Lines of the host's output that contain `needle`.
    pub fn log_lines_containing(&self, needle: &str) -> Vec<String> {
        let file = std::fs::File::open(&self.log_path).expect("host log");
        BufReader::new(file)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// Prints what the components wrote, for a failing test: under Spin
    /// their stdout and stderr go to files in the state directory's `logs`
    /// (one pair per component), not to the runtime's own output, and the
    /// state directory goes with the host.
    fn print_component_logs(&self) {
        let Some(logs) = self.state_dir.as_ref().map(|dir| dir.join("logs")) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(&logs) else {
            return;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            if text.is_empty() {
                continue;
            }
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            eprintln!(
                "---- {} component log {name} ----\n{text}",
                self.runtime.name()
            );
        }
    }

    /// The host's process id, to read its memory use from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Kills the host and its process group at once (SIGKILL), as a crash
    /// or an out-of-memory kill would: no shutdown, no flushing, whatever it
    /// was doing.
    pub fn kill(&mut self) {
        let group = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) with a negative pid signals the process group the
        // child leads (see `process_group(0)` in `Launch::spawn`).
        unsafe { libc::kill(-group, libc::SIGKILL) };
        self.child.wait().expect("reaping the host");
    }

    /// Sends SIGTERM to the host process alone, as Kubernetes or a process
    /// manager asks it to stop.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Stops the host process (SIGSTOP) until `thaw`: it runs nothing, while
    /// the kernel still completes connections to its listeners and queues
    /// them.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid fits pid_t");
        // SAFETY: kill(2) only sends a signal to the child we started.
        unsafe { libc::kill(pid, signal) };
    }

    /// Waits for the host to exit on its own and answers how it exited;
    /// panics (with its log) if it still runs after `limit`.
    pub async fn exited(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("the host's status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs {limit:?} after being asked to stop:\n{}",
                self.runtime.name(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
        if std::thread::panicking() {
            eprintln!("---- {} output ----\n{}", self.runtime.name(), self.log());
            self.print_component_logs();
        }
        let _ = std::fs::remove_file(&self.log_path);
        let _ = std::fs::remove_file(self.log_path.with_extension("toml"));
        if let Some(state_dir) = &self.state_dir {
            let _ = std::fs::remove_dir_all(state_dir);
        }
    }
}

/// What starting either runtime shares: a free port and a log file named
/// after it.
struct Launch {
    port: u16,
    log_path: PathBuf,
}

impl Launch {
    fn new(runtime: &str, port: Option<u16>) -> Self {
        let port = port.unwrap_or_else(free_port);
        // Unique even for a host started again on the same port.
        let log_path = std::env::temp_dir().join(format!(
            "chat-{runtime}-test-{port}-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        Self { port, log_path }
    }

    /// The test's runtime config file, or one of ours next to the log whose
    /// `default` key-value store is `store` (a TOML table body).
    fn runtime_config(&self, config: &HostConfig, store: &str) -> PathBuf {
        config.runtime_config_file.clone().unwrap_or_else(|| {
            let file = self.log_path.with_extension("toml");
            std::fs::write(&file, format!("[key_value_store.default]\n{store}"))
                .expect("writing the host's runtime config");
            file
        })
    }

    /// Starts `command` as it is, in a process group of its own, and waits
    /// until it serves.
    fn spawn_as_is(
        self,
        mut command: Command,
        runtime: Runtime,
        state_dir: Option<PathBuf>,
    ) -> TestHost {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(&self.log_path).expect("creating the host log");
        command
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("starting {}: {error}", runtime.name()));
        let mut host = TestHost {
            base_url: format!("http://127.0.0.1:{}", self.port),
            runtime,
            child,
            log_path: self.log_path,
            state_dir,
        };
        host.wait_until_serving();
        host
    }

    /// Adds what both `up` commands take (manifest, address, runtime config,
    /// variables), starts the process in a process group of its own and
    /// waits until it serves.
    fn spawn(
        self,
        mut command: Command,
        config: &HostConfig,
        runtime_config: &Path,
        runtime: Runtime,
        state_dir: Option<PathBuf>,
    ) -> TestHost {
        command.arg("--from").arg(&config.manifest);
        if config.listen_flag {
            command
                .arg("--listen")
                .arg(std::net::SocketAddr::new(config.listen_ip, self.port).to_string());
        }
        command.arg("--runtime-config-file").arg(runtime_config);
        for (name, value) in &config.variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        command.envs(&config.env);
        self.spawn_as_is(command, runtime, state_dir)
    }
}

/// A bodiless `POST` with a bearer token over a fresh connection; answers
/// the status code and the body. Plain std networking: this runs on a
/// blocking thread.
fn post_without_body(base_url: &str, path: &str, token: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let address = base_url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.split(' ').nth(1).unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
