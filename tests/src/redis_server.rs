//! A `redis-server` of the test's own (Debian's `redis-server` package;
//! `tests/install-test-tools.sh`) on a free loopback port, holding nothing on
//! disk; it can be stopped and started again on the same port, and is killed
//! when dropped. With the runtime config that makes it the `default`
//! key-value store, as Spin's `type = "redis"` declares one: over plain TCP,
//! or (`start_tls`) over TLS only, with a certificate from a certificate
//! authority of the test's own.

use crate::host::free_port;
use crate::process::ProcessGroup;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    /// Where the test itself reaches the server: plain TCP on loopback.
    port: u16,
    /// The port that serves TLS alone, when the apps reach the server so.
    tls_port: Option<u16>,
    dir: PathBuf,
    server: Option<ProcessGroup>,
}

impl TestRedis {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// A server the apps reach over TLS alone (`rediss://`), with a
    /// certificate for 127.0.0.1 signed by the
    /// [`certificate_authority`](Self::certificate_authority), which no
    /// system trusts.
    pub fn start_tls() -> Self {
        Self::start_with(Some(free_port()))
    }

    fn start_with(tls_port: Option<u16>) -> Self {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("chat-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("creating the Redis test directory");
        let url = match tls_port {
            Some(tls_port) => {
                write_certificates(&dir);
                format!("rediss://127.0.0.1:{tls_port}")
            }
            None => format!("redis://127.0.0.1:{port}"),
        };
        std::fs::write(
            dir.join("runtime-config.toml"),
            format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
        )
        .expect("writing the runtime config");
        let mut redis = Self {
            port,
            tls_port,
            dir,
            server: None,
        };
        redis.start_again();
        redis
    }

    /// The PEM file of the certificate authority that signed a TLS server's
    /// certificate, for `SSL_CERT_FILE`.
    pub fn certificate_authority(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The runtime-config file, for `HostConfig::runtime_config_file`.
    pub fn runtime_config(&self) -> PathBuf {
        self.dir.join("runtime-config.toml")
    }

    /// Stops the server at once (SIGKILL): clients find the port closed.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.stop();
        }
    }

    /// Starts the server (empty) on its port and waits until it answers.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "Redis is already running");
        let mut command = Command::new("redis-server");
        command
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir);
        if let Some(tls_port) = self.tls_port {
            command
                .args(["--tls-port", &tls_port.to_string()])
                .args([
                    "--tls-cert-file",
                    "server.pem",
                    "--tls-key-file",
                    "server.key",
                ])
                .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
                .current_dir(&self.dir);
        }
        let server = ProcessGroup::spawn(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
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

/// Writes a certificate authority (`ca.pem`) and a server certificate it
/// signed for 127.0.0.1 and localhost (`server.pem`, `server.key`).
fn write_certificates(dir: &std::path::Path) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let authority_key = KeyPair::generate().expect("a key");
    let mut authority = CertificateParams::new(Vec::<String>::new()).expect("parameters");
    authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    authority
        .distinguished_name
        .push(DnType::CommonName, "chat-tests Redis CA");
    let authority_pem = authority.self_signed(&authority_key).expect("the CA").pem();
    let issuer = Issuer::new(authority, authority_key);
    let server_key = KeyPair::generate().expect("a key");
    let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .expect("parameters")
        .signed_by(&server_key, &issuer)
        .expect("the server certificate");
    for (file, pem) in [
        ("ca.pem", authority_pem),
        ("server.pem", server.pem()),
        ("server.key", server_key.serialize_pem()),
    ] {
        std::fs::write(dir.join(file), pem).expect("writing a certificate");
    }
}
