//! The folder a Databricks App is deployed from, as
//! `deploy/databricks/build.sh` writes it. tests/run.sh builds it once and
//! names it in [`FOLDER_VARIABLE`]; the tests start copies of it as the
//! platform would.

use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where the built folder is.
pub const FOLDER_VARIABLE: &str = "CHAT_TEST_APP_FOLDER";
/// The most a file of a Databricks App may weigh: "10 MB", read as the
/// stricter 10,000,000 bytes.
pub const FILE_LIMIT_BYTES: u64 = 10_000_000;

/// The built folder; fails the test, saying how to build it, without one.
pub fn built() -> PathBuf {
    let folder = std::env::var_os(FOLDER_VARIABLE).map(PathBuf::from);
    match folder {
        Some(folder) if folder.join("app.yaml").is_file() => folder,
        _ => panic!(
            "no Databricks App folder: run `bash deploy/databricks/build.sh DIR` and set \
             {FOLDER_VARIABLE}=DIR (tests/run.sh does both)"
        ),
    }
}

/// Every file under `folder`, with its size, in path order.
pub fn files(folder: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in std::fs::read_dir(&directory).expect("reading the app folder") {
            let entry = entry.expect("an entry of the app folder");
            let metadata = entry.metadata().expect("an entry's metadata");
            if metadata.is_dir() {
                pending.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(folder).unwrap().to_path_buf();
                found.push((relative, metadata.len()));
            }
        }
    }
    found.sort();
    found
}

/// A copy of `folder` in a new, otherwise empty directory, with no file
/// executable: an upload need not keep the bits.
pub fn copy_without_executable_bits(folder: &Path) -> PathBuf {
    let copy =
        std::env::temp_dir().join(format!("chat-app-folder-{}", uuid::Uuid::new_v4().simple()));
    for (relative, _) in files(folder) {
        let target = copy.join(&relative);
        std::fs::create_dir_all(target.parent().unwrap()).expect("creating the copy");
        std::fs::copy(folder.join(&relative), &target).expect("copying the app folder");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .expect("clearing the executable bits");
    }
    copy
}

/// `command` (an `app.yaml` command) as the platform runs it: in `folder`,
/// without a shell, with no environment but `PATH` and `env`.
pub fn platform_command<'a>(
    folder: &Path,
    command: &[String],
    env: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> std::process::Command {
    let (program, args) = command.split_first().expect("a command");
    let mut process = std::process::Command::new(program);
    process
        .args(args)
        .current_dir(folder)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env);
    process
}

/// What `app.yaml` tells the platform: the command, and the environment
/// it adds (`name` with a `value`, or `valueFrom` naming an app resource).
pub struct AppYaml {
    pub command: Vec<String>,
    pub env: Vec<(String, EnvSource)>,
}

pub enum EnvSource {
    Value(String),
    Resource(String),
}

impl AppYaml {
    pub fn read(folder: &Path) -> Self {
        let text = std::fs::read_to_string(folder.join("app.yaml")).expect("reading app.yaml");
        let document: Value = serde_norway::from_str(&text).expect("app.yaml is YAML");
        let command = document["command"]
            .as_array()
            .expect("app.yaml's command is a list (the platform runs no shell)")
            .iter()
            .map(|part| part.as_str().expect("a command part").to_owned())
            .collect();
        let env = document["env"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                let name = entry["name"]
                    .as_str()
                    .expect("an env entry's name")
                    .to_owned();
                let source = match (entry["value"].as_str(), entry["valueFrom"].as_str()) {
                    (Some(value), None) => EnvSource::Value(value.to_owned()),
                    (None, Some(resource)) => EnvSource::Resource(resource.to_owned()),
                    _ => panic!("env entry {name} needs exactly one of value and valueFrom"),
                };
                (name, source)
            })
            .collect();
        Self { command, env }
    }
}
