//! A `redis-server` of the test's own (Debian's `redis-server` package;
//! `tests/install-test-tools.sh`) on a free loopback port, holding nothing on
//! disk; it can be stopped and started again on the same port, and is killed
//! when dropped. With the runtime config that makes it the `default`
//! key-value store, as Spin's `type = "redis"` declares one.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    port: u16,
    dir: PathBuf,
    server: Option<Child>,
}

impl TestRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("chat-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the Redis test directory");
        std::fs::write(
            dir.join("runtime-config.toml"),
            format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\n"
            ),
        )
        .expect("writing the runtime config");
        let mut redis = Self {
            port,
            dir,
            server: None,
        };
        redis.start_again();
        redis
    }

    /// The runtime-config file, for `HostConfig::runtime_config_file`.
    pub fn runtime_config(&self) -> PathBuf {
        self.dir.join("runtime-config.toml")
    }

    /// Stops the server at once (SIGKILL): clients find the port closed.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }

    /// Starts the server (empty) on its port and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "Redis is already running");
        let server = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (run tests/install-test-tools.sh to install it)");
        self.server = Some(server);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.connection().is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let mut connection =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?.get_connection()?;
        redis::cmd("PING").query::<String>(&mut connection)?;
        Ok(connection)
    }

    /// The keys the store holds that start with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query(&mut self.connection().expect("reaching the test's Redis"))
            .expect("KEYS")
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
