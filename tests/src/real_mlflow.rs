//! The real, open-source MLflow (pip `mlflow`, pinned with hashes in
//! `tests/mlflow/requirements.txt`), installed into a cached virtual
//! environment by `tests/mlflow/install.sh`: a tracking server with a SQLite
//! store on a free loopback port, agents of ours served by MLflow's own
//! `AgentServer` (`tests/mlflow/agent.py`), and MLflow's own Python client
//! to read back what a trace holds (`tests/mlflow/read_assessments.py`).
//! A machine that cannot install it fails the tests that need it, loudly:
//! they are never skipped.

use crate::host::free_port;
use crate::process::ProcessGroup;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long MLflow's processes may take to start on a busy 2-core machine.
const START_PATIENCE: Duration = Duration::from_secs(120);

/// The virtual environment with MLflow, installed once per test process
/// (and cached across runs by the install script).
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| {
        let script = crate::repo_root().join("tests/mlflow/install.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/mlflow/install.sh");
        assert!(
            output.status.success(),
            "tests/mlflow/install.sh could not install MLflow ({}); the real-MLflow tests need it",
            output.status
        );
        let path = String::from_utf8(output.stdout).expect("a UTF-8 path");
        PathBuf::from(path.trim())
    })
}

/// The environment every MLflow process of the tests gets: no telemetry or
/// other calls to the internet (this machine reaches none).
fn quiet(command: &mut Command) -> &mut Command {
    command
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        // No job runner (and its seven worker processes, and a directory
        // in /dev/shm left behind): the server only answers REST calls.
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .env("DO_NOT_TRACK", "true")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
}

/// `mlflow server` with a SQLite store in a directory of its own; it can be
/// stopped and started again on the same port with the same data.
pub struct MlflowServer {
    pub port: u16,
    dir: PathBuf,
    server: Option<ProcessGroup>,
}

impl MlflowServer {
    /// Blocks until the server answers (run it on a blocking thread).
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("chat-mlflow-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("artifacts")).expect("creating MLflow's directory");
        let mut server = Self {
            port: free_port(),
            dir,
            server: None,
        };
        server.start_again();
        server
    }

    /// Where clients reach it (the app's `serving_endpoint_origin` when the
    /// app is to rate into it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server at once: its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server on its port and data, and waits until `/health`
    /// answers.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "MLflow is already running");
        let log = std::fs::File::create(self.dir.join("server.log")).expect("MLflow's log");
        let mut command = Command::new(venv().join("bin/mlflow"));
        command
            .arg("server")
            .arg("--backend-store-uri")
            .arg(format!(
                "sqlite:///{}",
                self.dir.join("mlflow.db").display()
            ))
            .arg("--default-artifact-root")
            .arg(self.dir.join("artifacts"))
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--workers", "1"])
            .stdout(log.try_clone().expect("MLflow's log"))
            .stderr(log);
        self.server =
            Some(ProcessGroup::spawn(quiet(&mut command)).expect("starting mlflow server"));
        let health = format!("{}/health", self.url());
        self.wait_until(|| get(&health).is_some_and(|(status, _)| status == 200));
    }

    fn wait_until(&mut self, ready: impl Fn() -> bool) {
        let deadline = Instant::now() + START_PATIENCE;
        while !ready() {
            if let Some(Some(status)) = self.server.as_mut().map(ProcessGroup::try_wait) {
                panic!("mlflow server exited with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "mlflow server did not answer within {START_PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for MlflowServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The trace's assessments as MLflow's own Python client reads them from
/// the server at `tracking_url` (`null` when it has no such trace). Blocks.
pub fn assessments_at(tracking_url: &str, trace_id: &str) -> Value {
    let output = quiet(&mut Command::new(venv().join("bin/python")))
        .arg(crate::repo_root().join("tests/mlflow/read_assessments.py"))
        .args(["--tracking-uri", tracking_url, trace_id])
        .stderr(Stdio::inherit())
        .output()
        .expect("running read_assessments.py");
    assert!(output.status.success(), "read_assessments.py failed");
    serde_json::from_slice(&output.stdout).expect("read_assessments.py prints JSON")
}

/// Logs one small trace with MLflow's own client and answers its id; the
/// trace is in the server when this returns. Blocks.
pub fn log_trace(tracking_url: &str) -> String {
    let output = quiet(&mut Command::new(venv().join("bin/python")))
        .arg(crate::repo_root().join("tests/mlflow/log_trace.py"))
        .args(["--tracking-uri", tracking_url])
        .stderr(Stdio::inherit())
        .output()
        .expect("running log_trace.py");
    assert!(output.status.success(), "log_trace.py failed");
    String::from_utf8(output.stdout)
        .expect("a trace id")
        .trim()
        .to_owned()
}

/// The request shape an agent takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentShape {
    /// MLflow's stock `ResponsesAgent` server: `{"input": [...]}`.
    Responses,
    /// A chat-completions agent: `{"messages": [...]}`.
    ChatCompletions,
}

/// `tests/mlflow/agent.py`: an agent served by MLflow's `AgentServer`,
/// answering "You said: <question>." and tracing each reply to `mlflow`.
pub struct Agent {
    pub port: u16,
    _process: ProcessGroup,
}

impl Agent {
    /// Blocks until the agent serves (run it on a blocking thread).
    pub fn start(mlflow: &MlflowServer, shape: AgentShape) -> Self {
        let port = free_port();
        let log_path = mlflow.dir.join(format!("agent-{port}.log"));
        let log = std::fs::File::create(&log_path).expect("the agent's log");
        let shape_arg = match shape {
            AgentShape::Responses => "responses",
            AgentShape::ChatCompletions => "chat",
        };
        let mut command = Command::new(venv().join("bin/python"));
        command
            .arg(crate::repo_root().join("tests/mlflow/agent.py"))
            .args(["--port", &port.to_string()])
            .args(["--tracking-uri", &mlflow.url()])
            .args(["--experiment", "chat-history-tests"])
            .args(["--shape", shape_arg])
            .stdout(log.try_clone().expect("the agent's log"))
            .stderr(log);
        let mut process = ProcessGroup::spawn(quiet(&mut command)).expect("starting agent.py");
        let ready = format!("agent ready on port {port}");
        let deadline = Instant::now() + START_PATIENCE;
        let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        while !read_log().contains(&ready) {
            if let Some(status) = process.try_wait() {
                panic!("agent.py exited with {status}:\n{}", read_log());
            }
            assert!(
                Instant::now() < deadline,
                "agent.py did not serve within {START_PATIENCE:?}:\n{}",
                read_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            port,
            _process: process,
        }
    }

    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The invocation URL the app's `serving_endpoint_url` names.
    pub fn invocations_url(&self) -> String {
        format!("{}/invocations", self.origin())
    }
}

/// A plain HTTP/1.1 GET on loopback: the status and the body, or `None`
/// when nothing answered.
fn get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split_whitespace().nth(1)?.parse().ok()?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}
