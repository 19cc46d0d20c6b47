//! `--runtime-config-file`: the platform-specific settings of a run, in
//! Spin's runtime-config format (TOML, `[key_value_store.<label>]` tables).

use anyhow::{Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Key-value stores by label. `default` exists even when not listed.
    #[serde(default)]
    pub key_value_store: BTreeMap<String, KeyValueStoreConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyValueStoreConfig {
    /// Lives in the host's memory; gone when the host stops.
    Memory,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self::parse("").expect("the empty runtime config is valid")
    }
}

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid runtime config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let mut config: Self = toml::from_str(text)?;
        config
            .key_value_store
            .entry("default".to_owned())
            .or_insert(KeyValueStoreConfig::Memory);
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_store_always_exists() {
        let config =
            RuntimeConfig::parse("[key_value_store.journal]\ntype = \"memory\"\n").unwrap();
        assert_eq!(config.key_value_store.len(), 2);
        assert_eq!(
            config.key_value_store["default"],
            KeyValueStoreConfig::Memory
        );
    }

    #[test]
    fn unsupported_settings_are_refused_by_name() {
        let error = RuntimeConfig::parse("[key_value_store.x]\ntype = \"redis\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("redis"), "{error:#}");
        let error = RuntimeConfig::parse("[llm_compute]\ntype = \"spin\"\n").unwrap_err();
        assert!(format!("{error:#}").contains("llm_compute"), "{error:#}");
    }
}
