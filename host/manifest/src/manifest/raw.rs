//! The manifest exactly as written, deserialised with Spin's field names and
//! its refusal of unknown keys. Fields prefixed `_` are ones Spin accepts and
//! type-checks but chat-host has no use for.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::names::{check_kebab_case, check_lower_snake_case, check_store_label};

/// Just the version, read first so a version-1 or future manifest gets a
/// clear message rather than a list of unknown fields.
#[derive(Deserialize)]
pub(super) struct VersionProbe {
    #[serde(alias = "spin_version")]
    pub spin_manifest_version: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Manifest {
    #[serde(rename = "spin_manifest_version")]
    _version: toml::Value,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<LowerSnakeName, Variable>,
    /// Trigger type -> entries. Required, as in Spin.
    #[serde(rename = "trigger")]
    pub triggers: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default, rename = "component")]
    pub components: BTreeMap<KebabName, Component>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Application {
    pub name: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default, rename = "targets")]
    _targets: Vec<toml::Value>,
    /// `[application.trigger.<type>]`: trigger-wide settings.
    #[serde(default, rename = "trigger")]
    pub trigger_settings: BTreeMap<String, toml::Table>,
    #[serde(default, rename = "tool")]
    _tool: BTreeMap<String, toml::Table>,
}

/// `[application.trigger.http]`; only the deprecated `base` exists.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpSettings {
    pub base: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Variable {
    pub description: Option<String>,
    #[serde(default)]
    pub required: bool,
    pub default: Option<String>,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HttpTrigger {
    #[serde(default, rename = "id")]
    _id: Option<String>,
    pub component: Option<toml::Value>,
    #[serde(default)]
    pub components: toml::Table,
    #[serde(default)]
    pub dependencies: toml::Table,
    pub route: toml::Value,
    pub static_response: Option<toml::Value>,
    pub executor: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Component {
    pub source: toml::Value,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub variables: BTreeMap<LowerSnakeName, String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Any entry is refused: chat-host mounts no files. Not type-checked
    /// further, since any non-empty list is refused anyway.
    #[serde(default)]
    pub files: Vec<toml::Value>,
    /// Only narrows `files`, so it has nothing to do without them.
    #[serde(default, rename = "exclude_files")]
    _exclude_files: Vec<String>,
    #[serde(default)]
    pub allowed_http_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<StoreLabel>,
    #[serde(default)]
    pub sqlite_databases: Vec<String>,
    #[serde(default)]
    pub ai_models: Vec<String>,
    #[serde(default, rename = "targets")]
    _targets: Option<Vec<toml::Value>>,
    pub build: Option<Build>,
    /// Settings of tools other than Spin; chat-host reads its own
    /// ([`ChatHostTool`]) and leaves the others alone, as Spin does.
    #[serde(default)]
    pub tool: BTreeMap<String, toml::Table>,
    #[serde(default, rename = "dependencies_inherit_configuration")]
    _dependencies_inherit_configuration: Option<bool>,
    #[serde(default)]
    pub dependencies: toml::Table,
    /// Per-profile overrides, used only with `spin build/up --profile`.
    #[serde(default, rename = "profile")]
    _profile: BTreeMap<String, toml::Table>,
}

/// `[component.<id>.tool.chat-host]`: what chat-host does with the
/// component beyond serving its routes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatHostTool {
    pub background_work: Option<BackgroundWork>,
    #[serde(default)]
    pub gauges: Vec<Gauge>,
}

/// `gauges = [{ name = "...", help = "...", count = "SELECT count(*) ..." }]`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Gauge {
    pub name: String,
    pub help: String,
    pub count: String,
}

/// `background_work = { path = "/...", interval_seconds = N }`
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BackgroundWork {
    pub path: String,
    pub interval_seconds: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Build {
    pub command: Commands,
    pub workdir: Option<String>,
    /// What `spin watch` watches; chat-host has no watch command.
    #[serde(default, rename = "watch")]
    _watch: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Commands {
    One(String),
    Several(Vec<String>),
}

/// Defines a `String` newtype that only deserialises when `$check` passes,
/// so the TOML error points at the offending key.
macro_rules! checked_name {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Deserialize, PartialEq, Eq, PartialOrd, Ord)]
        #[serde(try_from = "String")]
        pub(super) struct $name(pub String);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(name: String) -> Result<Self, String> {
                $check(&name)?;
                Ok(Self(name))
            }
        }
    };
}

checked_name!(
    /// A component id.
    KebabName,
    check_kebab_case
);
checked_name!(
    /// A variable name.
    LowerSnakeName,
    check_lower_snake_case
);
checked_name!(
    /// A key-value store label.
    StoreLabel,
    check_store_label
);
