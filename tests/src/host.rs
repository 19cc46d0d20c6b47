//! Runs the real `chat-host up` binary against a test database.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `chat-host up`, killed when dropped. Its output goes to a log
/// file, printed when a test fails.
pub struct TestHost {
    pub base_url: String,
    child: Child,
    log_path: PathBuf,
}

/// How to start the host: app variables (as `SPIN_VARIABLE_*`) and the manifest.
pub struct HostConfig {
    pub manifest: PathBuf,
    pub variables: BTreeMap<String, String>,
    pub runtime_config_file: Option<PathBuf>,
}

impl HostConfig {
    pub fn new(db_url: &str) -> Self {
        Self {
            manifest: crate::repo_root().join("spin.toml"),
            variables: BTreeMap::from([("db_url".to_owned(), db_url.to_owned())]),
            runtime_config_file: None,
        }
    }

    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn manifest(mut self, path: impl Into<PathBuf>) -> Self {
        self.manifest = path.into();
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
    pub fn start(config: HostConfig) -> Self {
        Self::start_binary(&host_binary(), config)
    }

    /// [`start`](Self::start) from async code: the start-up wait blocks, so
    /// it runs on a blocking thread, not on the test's runtime.
    pub async fn launch(config: HostConfig) -> Self {
        tokio::task::spawn_blocking(move || Self::start(config))
            .await
            .expect("starting chat-host")
    }

    /// Starts this `chat-host` binary (the benchmarks run a release build).
    pub fn start_binary(binary: &Path, config: HostConfig) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log_path = std::env::temp_dir().join(format!("chat-host-test-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("creating the host log");
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--from")
            .arg(&config.manifest)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info,tokio_postgres=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        // Each host gets its own stores: by default in memory, so no test
        // replays another's journal from a shared file.
        let runtime_config_file = config.runtime_config_file.clone().unwrap_or_else(|| {
            let file = log_path.with_extension("toml");
            std::fs::write(&file, "[key_value_store.default]\ntype = \"memory\"\n")
                .expect("writing the host's runtime config");
            file
        });
        command
            .arg("--runtime-config-file")
            .arg(runtime_config_file);
        for (name, value) in &config.variables {
            command.env(
                format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
                value,
            );
        }
        let child = command.spawn().expect("starting chat-host");
        let mut host = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            child,
            log_path,
        };
        host.wait_until_serving();
        host
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.log().contains("Serving http://") {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chat-host exited with {status} before serving:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "chat-host did not start within 60 s:\n{}",
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

    /// The host's process id, to read its memory use from /proc.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Kills the host at once (SIGKILL), as a crash or an out-of-memory
    /// kill would: no shutdown, no flushing, whatever it was doing.
    pub fn kill(&mut self) {
        self.child.kill().expect("killing chat-host");
        self.child.wait().expect("reaping chat-host");
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- chat-host output ----\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log_path);
        let _ = std::fs::remove_file(self.log_path.with_extension("toml"));
    }
}
