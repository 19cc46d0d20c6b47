//! `--runtime-config-file`: the platform-specific settings of a run, in
//! Spin's runtime-config format (TOML, `[key_value_store.<label>]` tables).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The label every app may use without declaring a store.
pub const DEFAULT_STORE: &str = "default";

/// Where `chat-host up` keeps the default store when the runtime config does
/// not place it, relative to its state directory (Spin's file name, and its
/// table layout, so the file also opens under Spin).
const DEFAULT_STORE_FILE: &str = "sqlite_key_value.db";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Key-value stores by label.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KeyValueStoreConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyValueStoreConfig {
    /// Lives in the host's memory; gone when the host stops.
    Memory,
    /// Spin's built-in store: SQLite in the file at `path` (relative paths
    /// are resolved against the runtime config file's folder), which
    /// survives restarts; in memory when there is no path.
    Spin { path: Option<PathBuf> },
    /// Spin's Redis store: every key as it is, in the database `url` names
    /// (`redis://[user:password@]host:port[/db]`), shared by every replica.
    Redis { url: String },
}

impl RuntimeConfig {
    /// The settings of `chat-host up`: those of `file` if one is given; the
    /// default store, unless the file places it, is durable, in `state_dir`.
    pub fn for_app(file: Option<&Path>, state_dir: &Path) -> Result<Self> {
        let mut config = match file {
            Some(path) => Self::load(path)?,
            None => Self {
                key_value_store: BTreeMap::new(),
            },
        };
        config
            .key_value_store
            .entry(DEFAULT_STORE.to_owned())
            .or_insert_with(|| KeyValueStoreConfig::Spin {
                path: Some(state_dir.join(DEFAULT_STORE_FILE)),
            });
        Ok(config)
    }

    fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        let folder = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, folder)
            .with_context(|| format!("invalid runtime config {}", path.display()))
    }

    fn parse(text: &str, folder: &Path) -> Result<Self> {
        let mut config: Self = toml::from_str(text)?;
        for store in config.key_value_store.values_mut() {
            if let KeyValueStoreConfig::Spin { path: Some(path) } = store
                && path.is_relative()
            {
                *path = folder.join(&*path);
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("runtime-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("runtime-config.toml");
        std::fs::write(&file, text).unwrap();
        (dir, file)
    }

    #[test]
    fn the_default_store_is_durable_unless_placed() {
        let state = Path::new("/srv/app/.chat-host");
        let config = RuntimeConfig::for_app(None, state).unwrap();
        assert_eq!(
            config.key_value_store[DEFAULT_STORE],
            KeyValueStoreConfig::Spin {
                path: Some(state.join("sqlite_key_value.db"))
            }
        );
        let (dir, file) = write("[key_value_store.default]\ntype = \"memory\"\n");
        let config = RuntimeConfig::for_app(Some(&file), state).unwrap();
        assert_eq!(
            config.key_value_store[DEFAULT_STORE],
            KeyValueStoreConfig::Memory
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn spin_store_paths_are_relative_to_the_file() {
        let (dir, file) = write(
            "[key_value_store.journal]\ntype = \"spin\"\npath = \"data/kv.db\"\n\n\
             [key_value_store.scratch]\ntype = \"spin\"\n",
        );
        let config = RuntimeConfig::for_app(Some(&file), Path::new("/state")).unwrap();
        assert_eq!(
            config.key_value_store["journal"],
            KeyValueStoreConfig::Spin {
                path: Some(dir.join("data/kv.db"))
            }
        );
        assert_eq!(
            config.key_value_store["scratch"],
            KeyValueStoreConfig::Spin { path: None }
        );
        assert_eq!(config.key_value_store.len(), 3, "plus the default store");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_redis_store_is_read_as_spin_writes_it() {
        let config = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://cache:6379/2\"\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(
            config.key_value_store["default"],
            KeyValueStoreConfig::Redis {
                url: "redis://cache:6379/2".to_owned()
            }
        );
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let error = RuntimeConfig::parse(
            "[key_value_store.x]\ntype = \"azure_cosmos\"\n",
            Path::new("."),
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("azure_cosmos"), "{error:#}");
        let error = RuntimeConfig::parse("[key_value_store.x]\ntype = \"redis\"\n", Path::new("."))
            .unwrap_err();
        assert!(format!("{error:#}").contains("url"), "{error:#}");
        let error =
            RuntimeConfig::parse("[llm_compute]\ntype = \"spin\"\n", Path::new(".")).unwrap_err();
        assert!(format!("{error:#}").contains("llm_compute"), "{error:#}");
    }
}
