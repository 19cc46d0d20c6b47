//! An `nginx` of the test's own (Debian's `nginx` package;
//! `tests/install-test-tools.sh`) on a free loopback port, balancing over
//! replicas on loopback as a load balancer in front of a fleet would:
//! responses unbuffered (SSE), and a request is passed to the next replica
//! only when it could not be sent to one (nginx's default for POST: no
//! `proxy_next_upstream non_idempotent`), so no chat is ever sent twice.

use crate::process::ProcessGroup;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestNginx {
    pub base_url: String,
    dir: PathBuf,
    server: ProcessGroup,
}

impl TestNginx {
    pub fn start(replica_ports: &[u16]) -> Self {
        let port = crate::host::free_port();
        let dir =
            std::env::temp_dir().join(format!("chat-nginx-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("temp")).expect("creating nginx's directory");
        // Where nginx writes its log before it reads the configuration.
        std::fs::create_dir_all(dir.join("logs")).expect("creating nginx's log directory");
        // Run as root, nginx's workers run as `nobody`: let them write.
        std::fs::set_permissions(
            dir.join("temp"),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .expect("opening nginx's temp directory");
        let servers: String = replica_ports
            .iter()
            .map(|port| format!("    server 127.0.0.1:{port};\n"))
            .collect();
        let temp = dir.join("temp");
        let temp = temp.display();
        let config = format!(
            "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n\
               client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n\
               fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n\
               upstream replicas {{\n{servers}  }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location / {{\n      proxy_pass http://replicas;\n      proxy_buffering off;\n\
                   proxy_read_timeout 120s;\n      proxy_set_header Host $http_host;\n    }}\n  }}\n}}\n",
            dir = dir.display(),
        );
        std::fs::write(dir.join("nginx.conf"), config).expect("writing nginx.conf");
        // Debian puts nginx in /usr/sbin, which a normal user's PATH lacks.
        let binary = if std::path::Path::new("/usr/sbin/nginx").exists() {
            "/usr/sbin/nginx"
        } else {
            "nginx"
        };
        let server = ProcessGroup::spawn(
            Command::new(binary)
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(dir.join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("starting nginx (run tests/install-test-tools.sh to install it)");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port} within 30 s: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            base_url: format!("http://127.0.0.1:{port}"),
            dir,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// What nginx logged (warnings and errors), to explain a failed request.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for TestNginx {
    fn drop(&mut self) {
        // nginx and its workers.
        self.server.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
