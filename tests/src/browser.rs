//! A real headless Chromium, driven over WebDriver through its chromedriver
//! (Debian's `chromium` and `chromium-driver`; `tests/install-test-tools.sh`
//! installs them).
//!
//! Each [`Browser`] runs a chromedriver of its own on a free port, with a
//! fresh profile. Pages are read with small scripts (one round trip, no
//! stale element handles) and driven with real clicks and key presses.

use crate::process::ProcessGroup;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Long enough for anything a test waits for on a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(30);
/// How often a condition is checked while waiting for it.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// WebDriver's codes for special keys, as typed by [`Browser::type_into`].
pub mod keys {
    pub const ENTER: char = '\u{E007}';
    pub const ESCAPE: char = '\u{E00C}';
    /// Held down until [`RELEASE`].
    pub const SHIFT: char = '\u{E008}';
    /// Releases the modifier keys held down.
    pub const RELEASE: char = '\u{E000}';
}

/// A chromedriver process of its own, with the profile directory its
/// browser uses; both are removed when dropped.
struct Chromedriver {
    process: ProcessGroup,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let profile = std::env::temp_dir().join(format!("chat-ui-chromium-{port}"));
        // Dropping it also ends the browser it started, even when a test
        // panics mid-session.
        let process = ProcessGroup::spawn(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("starting chromedriver (run tests/install-test-tools.sh to install it)");
        Self {
            process,
            port,
            profile,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until chromedriver answers `/status` as ready.
    async fn wait_until_ready(&mut self) {
        let status = format!("{}/status", self.url());
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = match reqwest::get(&status).await {
                Ok(answer) => answer
                    .json::<Value>()
                    .await
                    .is_ok_and(|body| body["value"]["ready"] == true),
                Err(_) => false,
            };
            if ready {
                return;
            }
            if let Some(exit) = self.process.try_wait() {
                panic!("chromedriver exited with {exit} before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver was not ready within {PATIENCE:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        self.process.stop();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A headless Chromium session.
pub struct Browser {
    client: Client,
    /// Where the browser saves downloads: a folder of its profile.
    downloads: PathBuf,
    // Dropped after the client: it ends the browser.
    _driver: Chromedriver,
}

impl Browser {
    /// A browser with a desktop-sized window.
    pub async fn start() -> Self {
        Self::with_window(1280, 860).await
    }

    pub async fn with_window(width: u32, height: u32) -> Self {
        let mut driver = Chromedriver::start();
        driver.wait_until_ready().await;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            "--no-first-run".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", driver.profile.display()),
        ];
        // Chromium refuses to run as root with its sandbox on.
        if running_as_root() {
            args.push("--no-sandbox".to_owned());
        }
        let downloads = driver.profile.join("downloads");
        let mut options = json!({
            "args": args,
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
            },
        });
        if let Some(binary) = chromium_binary() {
            options["binary"] = json!(binary);
        }
        let capabilities = json!({ "goog:chromeOptions": options });
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities.as_object().expect("an object").clone())
            .connect(&driver.url())
            .await
            .expect("a Chromium session from chromedriver");
        Self {
            client,
            downloads,
            _driver: driver,
        }
    }

    /// Waits until the browser saved a download whose name starts with
    /// `prefix` whole (Chromium writes it under another name until it is)
    /// as the one file it downloaded, and answers its path.
    pub async fn downloaded(&self, prefix: &str) -> PathBuf {
        let name = crate::eventually(
            &format!("a whole download named {prefix}..."),
            PATIENCE,
            async || {
                let names: Vec<String> = std::fs::read_dir(&self.downloads)
                    .ok()?
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .collect();
                match &names[..] {
                    [name] if name.starts_with(prefix) && !name.ends_with(".crdownload") => {
                        Some(name.clone())
                    }
                    _ => None,
                }
            },
        )
        .await;
        self.downloads.join(name)
    }

    /// Chooses `file` in the file input matching `css`, as a person does
    /// in the dialog its button opens (the input itself may be hidden).
    pub async fn choose_file(&self, css: &str, file: &Path) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("finding {css}: {error}"))
            .send_keys(&file.display().to_string())
            .await
            .unwrap_or_else(|error| panic!("choosing {} in {css}: {error}", file.display()));
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|error| panic!("opening {url}: {error}"));
    }

    pub async fn reload(&self) {
        self.client.refresh().await.expect("reloading the page");
    }

    pub async fn back(&self) {
        self.client.back().await.expect("going back");
    }

    /// The page's path (`/chat/<id>`).
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("the current URL");
        url.path().to_owned()
    }

    /// The value of a JavaScript function body run in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|error| panic!("running {script:?}: {error}"))
    }

    /// Waits until `script` (a function body) returns something other than
    /// null, undefined or false, and returns that.
    pub async fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.eval(script).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {what}; the page shows:\n{}",
                self.visible_text().await
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until an element matching `css` is displayed.
    pub async fn wait_for_visible(&self, css: &str) {
        self.wait_for(&format!("{css} to be visible"), &is_visible_script(css))
            .await;
    }

    /// Whether an element matching `css` is displayed now.
    pub async fn is_visible(&self, css: &str) -> bool {
        self.eval(&is_visible_script(css)).await == true
    }

    /// The text content of every element matching `css`, in document order.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let script = format!(
            "return [...document.querySelectorAll({})].map((e) => e.textContent);",
            json!(css)
        );
        serde_json::from_value(self.eval(&script).await).expect("a list of texts")
    }

    /// Clicks the (first) element matching `css`, once it is visible.
    pub async fn click(&self, css: &str) {
        self.wait_for_visible(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("finding {css}: {error}"))
            .click()
            .await
            .unwrap_or_else(|error| panic!("clicking {css}: {error}"));
    }

    /// Types into the element matching `css` as a user would, key by key
    /// ([`keys`] for Enter and Shift).
    pub async fn type_into(&self, css: &str, text: &str) {
        self.wait_for_visible(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("finding {css}: {error}"))
            .send_keys(text)
            .await
            .unwrap_or_else(|error| panic!("typing into {css}: {error}"));
    }

    /// What the page shows, for failure messages.
    pub async fn visible_text(&self) -> String {
        self.client
            .execute("return document.body.innerText;", Vec::new())
            .await
            .ok()
            .and_then(|text| text.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// Saves a PNG of the window to `target/test-artifacts/<name>.png` and
    /// answers its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = crate::repo_root().join("target").join("test-artifacts");
        std::fs::create_dir_all(&dir).expect("creating target/test-artifacts");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        path
    }

    /// Ends the session, so the browser exits cleanly.
    pub async fn quit(self) {
        let _ = self.client.close().await;
    }
}

/// A script answering whether the first element matching `css` is rendered
/// and not `visibility: hidden` (it may still be scrolled out of view).
fn is_visible_script(css: &str) -> String {
    format!(
        "const e = document.querySelector({}); \
         return e !== null && e.checkVisibility({{ visibilityProperty: true }});",
        json!(css)
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// Debian's Chromium, where chromedriver may not look for it by itself.
fn chromium_binary() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists())
}
