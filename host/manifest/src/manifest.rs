//! The application manifest (`spin.toml`, manifest version 2), checked as
//! strictly as Spin's loader checks it, and refusing up front the Spin
//! features chat-host does not implement rather than ignoring them.

mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize as _;

use crate::allowed_hosts;
use crate::routing::{RouteError, Router};
use crate::template::{Template, TemplateError};

/// A parsed and validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The absolute directory the manifest is in; relative paths in it are
    /// relative to this.
    pub base_dir: PathBuf,
    pub application: Application,
    /// Application variables by name.
    pub variables: BTreeMap<String, VariableDecl>,
    /// Components by id.
    pub components: BTreeMap<String, Component>,
    /// `[[trigger.http]]` entries in manifest order (order matters for
    /// duplicate and equally specific routes).
    pub http_triggers: Vec<HttpTrigger>,
}

/// `[application]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Application {
    pub name: String,
    pub version: String,
    pub description: String,
    pub authors: Vec<String>,
}

/// A `[variables]` entry. Spin requires exactly one of `required = true` and
/// a `default`.
#[derive(Clone, PartialEq, Eq)]
pub struct VariableDecl {
    pub description: Option<String>,
    /// `None` exactly when the variable is required.
    pub default: Option<String>,
    /// Marks the value as sensitive: it must never be logged.
    pub secret: bool,
}

/// Keeps a secret variable's default out of logs.
impl fmt::Debug for VariableDecl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = match (&self.default, self.secret) {
            (Some(_), true) => Some("<secret>"),
            (default, _) => default.as_deref(),
        };
        f.debug_struct("VariableDecl")
            .field("description", &self.description)
            .field("default", &default)
            .field("secret", &self.secret)
            .finish()
    }
}

/// A `[component.<id>]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The Wasm file, absolute.
    pub source: PathBuf,
    pub description: String,
    /// Entries as written (they may contain `{{ variable }}` templates);
    /// see [`crate::AllowedHosts::parse`].
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value store labels the component may open.
    pub key_value_stores: Vec<String>,
    /// Component variable name -> template over application variables.
    pub variables: BTreeMap<String, String>,
    /// Environment variables for the guest.
    pub environment: BTreeMap<String, String>,
    pub build: Option<BuildConfig>,
    /// Work chat-host runs on a timer by calling the component
    /// (`[component.<id>.tool.chat-host] background_work`); Spin ignores it.
    pub background_work: Option<BackgroundWork>,
    /// Counts chat-host's metrics report for the component
    /// (`[component.<id>.tool.chat-host] gauges`); Spin ignores them.
    pub gauges: Vec<Gauge>,
}

/// A number the app asks chat-host's metrics to report: the result of
/// `count`, a statement answering one integer, run on the app's database
/// at each scrape. The app declares it, so the host runs no SQL of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gauge {
    /// The metric's name: lower-case letters, digits and `_`.
    pub name: String,
    pub help: String,
    pub count: String,
}

/// A path of the component that chat-host calls (`POST`, as a
/// service-chained request) every `interval`: the component's background
/// work, which no user request waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundWork {
    pub path: String,
    pub interval: std::time::Duration,
}

/// The tool table chat-host reads in a component.
const CHAT_HOST_TOOL: &str = "chat-host";
/// The longest interval `background_work` may have, in seconds.
const MAX_BACKGROUND_INTERVAL_SECONDS: u64 = 3600;

/// `[component.<id>.build]`, what `spin build` runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildConfig {
    /// Shell commands, run in order (`command` may be a string or a list).
    pub commands: Vec<String>,
    /// Absolute directory to run them in: `workdir` resolved against the
    /// manifest directory, or the manifest directory itself.
    pub workdir: PathBuf,
}

/// A `[[trigger.http]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTrigger {
    pub route: HttpRoute,
    /// The id of the component that handles it.
    pub component: String,
}

/// Where an HTTP trigger is reachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpRoute {
    /// A route pattern as written, such as `/api/chat/:chatId` or `/admin/...`.
    Path(String),
    /// `route = { private = true }`: only reachable by service chaining.
    Private,
}

/// A manifest that cannot be used, and the file it came from.
#[derive(Debug, thiserror::Error)]
#[error("{}: {kind}", file.display())]
pub struct ManifestError {
    pub file: PathBuf,
    pub kind: ManifestErrorKind,
}

/// What is wrong with a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestErrorKind {
    /// The file (or its directory) cannot be read.
    #[error("{0}")]
    Io(std::io::Error),
    /// Bad TOML, a wrong type, a missing or unknown field, or a badly formed
    /// name; the message shows the line.
    #[error("{0}")]
    Toml(Box<toml::de::Error>),
    /// `spin_manifest_version` is not 2.
    #[error("{0}")]
    Version(String),
    /// A problem in `[application]` settings.
    #[error("[application]: {0}")]
    Application(String),
    /// A problem with an application variable declaration.
    #[error("variable `{name}`: {problem}")]
    Variable { name: String, problem: String },
    /// A problem with a component, or a Spin feature chat-host lacks.
    #[error("component `{id}`: {problem}")]
    Component { id: String, problem: String },
    /// `position` counts `[[trigger.http]]` entries from 1.
    #[error("[[trigger.http]] entry {position}: {problem}")]
    HttpTrigger { position: usize, problem: String },
    /// A trigger type other than `http` (redis, cron, ...).
    #[error("[[trigger.{0}]]: chat-host runs only HTTP triggers")]
    UnsupportedTriggerType(String),
    /// A route pattern that cannot be compiled.
    #[error("{0}")]
    Route(RouteError),
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let error = |kind| ManifestError {
            file: path.to_owned(),
            kind,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(ManifestErrorKind::Io(e)))?;
        let base_dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        Self::parse_file(&text, base_dir).map_err(error)
    }

    fn parse_file(text: &str, base_dir: &Path) -> Result<Self, ManifestErrorKind> {
        check_version(text)?;
        let raw: raw::Manifest =
            toml::from_str(text).map_err(|e| ManifestErrorKind::Toml(Box::new(e)))?;
        let base_dir = std::path::absolute(base_dir).map_err(ManifestErrorKind::Io)?;

        check_application_settings(&raw.application.trigger_settings)?;
        let application = Application {
            name: raw.application.name,
            version: raw.application.version,
            description: raw.application.description,
            authors: raw.application.authors,
        };

        let variables = raw
            .variables
            .into_iter()
            .map(|(name, variable)| {
                let name = name.0;
                let declaration =
                    convert_variable(variable).map_err(|problem| ManifestErrorKind::Variable {
                        name: name.clone(),
                        problem,
                    })?;
                Ok((name, declaration))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;

        let components = raw
            .components
            .into_iter()
            .map(|(id, component)| {
                let id = id.0;
                let component =
                    convert_component(component, &base_dir, &variables).map_err(|problem| {
                        ManifestErrorKind::Component {
                            id: id.clone(),
                            problem,
                        }
                    })?;
                Ok((id, component))
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?;

        let mut http_triggers = Vec::new();
        for (trigger_type, entries) in raw.triggers {
            if trigger_type != "http" {
                return Err(ManifestErrorKind::UnsupportedTriggerType(trigger_type));
            }
            for (index, entry) in entries.into_iter().enumerate() {
                let trigger = convert_http_trigger(entry, &components).map_err(|problem| {
                    ManifestErrorKind::HttpTrigger {
                        position: index + 1,
                        problem,
                    }
                })?;
                http_triggers.push(trigger);
            }
        }
        // Spin finds bad routes only when it starts serving; find them now.
        Router::build(&http_triggers).map_err(ManifestErrorKind::Route)?;

        Ok(Self {
            base_dir,
            application,
            variables,
            components,
            http_triggers,
        })
    }
}

fn check_version(text: &str) -> Result<(), ManifestErrorKind> {
    let probe: raw::VersionProbe =
        toml::from_str(text).map_err(|e| ManifestErrorKind::Toml(Box::new(e)))?;
    match probe.spin_manifest_version {
        toml::Value::Integer(2) => Ok(()),
        toml::Value::String(version) if version == "1" => Err(ManifestErrorKind::Version(
            "this is a version 1 manifest; chat-host reads only `spin_manifest_version = 2` \
             (`spin doctor` can upgrade it)"
                .to_owned(),
        )),
        other => Err(ManifestErrorKind::Version(format!(
            "unsupported manifest version {other}; expected `spin_manifest_version = 2`"
        ))),
    }
}

fn check_application_settings(
    settings: &BTreeMap<String, toml::Table>,
) -> Result<(), ManifestErrorKind> {
    let Some(http) = settings.get("http") else {
        return Ok(());
    };
    let http = raw::HttpSettings::deserialize(http.clone()).map_err(|e| {
        ManifestErrorKind::Application(format!("[application.trigger.http]: {}", e.message()))
    })?;
    match http.base.as_deref() {
        None | Some("/") => Ok(()),
        Some(_) => Err(ManifestErrorKind::Application(
            "the deprecated trigger `base` is not supported; prefix each [[trigger.http]] route \
             with it instead"
                .to_owned(),
        )),
    }
}

fn convert_variable(variable: raw::Variable) -> Result<VariableDecl, String> {
    match (variable.required, &variable.default) {
        (true, Some(_)) => Err("must be `required` OR have a `default`, not both".to_owned()),
        (false, None) => Err("must be `required` OR have a `default`".to_owned()),
        _ => Ok(VariableDecl {
            description: variable.description,
            default: variable.default,
            secret: variable.secret,
        }),
    }
}

/// What `[component.<id>.tool.chat-host]` asks of chat-host.
struct ChatHostTool {
    background_work: Option<BackgroundWork>,
    gauges: Vec<Gauge>,
}

fn convert_chat_host_tool(table: toml::Table) -> Result<ChatHostTool, String> {
    let tool = raw::ChatHostTool::deserialize(table)
        .map_err(|e| format!("[tool.{CHAT_HOST_TOOL}]: {}", e.message()))?;
    let gauges = tool
        .gauges
        .into_iter()
        .map(convert_gauge)
        .collect::<Result<_, _>>()?;
    let background_work = tool
        .background_work
        .map(convert_background_work)
        .transpose()?;
    Ok(ChatHostTool {
        background_work,
        gauges,
    })
}

fn convert_gauge(gauge: raw::Gauge) -> Result<Gauge, String> {
    let well_named = gauge.name.starts_with(|c: char| c.is_ascii_lowercase())
        && gauge
            .name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !well_named {
        return Err(format!(
            "[tool.{CHAT_HOST_TOOL}] gauges: a name is lower-case letters, digits and '_', \
             starting with a letter, not {:?}",
            gauge.name
        ));
    }
    if gauge.count.trim().is_empty() {
        return Err(format!(
            "[tool.{CHAT_HOST_TOOL}] gauges: {} has no `count` statement",
            gauge.name
        ));
    }
    Ok(Gauge {
        name: gauge.name,
        help: gauge.help,
        count: gauge.count,
    })
}

fn convert_background_work(work: raw::BackgroundWork) -> Result<BackgroundWork, String> {
    if !work.path.starts_with('/') {
        return Err(format!(
            "[tool.{CHAT_HOST_TOOL}] background_work: `path` must start with '/', not {:?}",
            work.path
        ));
    }
    if !(1..=MAX_BACKGROUND_INTERVAL_SECONDS).contains(&work.interval_seconds) {
        return Err(format!(
            "[tool.{CHAT_HOST_TOOL}] background_work: `interval_seconds` must be from 1 to \
             {MAX_BACKGROUND_INTERVAL_SECONDS}, not {}",
            work.interval_seconds
        ));
    }
    Ok(BackgroundWork {
        path: work.path,
        interval: std::time::Duration::from_secs(work.interval_seconds),
    })
}

fn convert_component(
    component: raw::Component,
    base_dir: &Path,
    variables: &BTreeMap<String, VariableDecl>,
) -> Result<Component, String> {
    let unsupported = |feature: &str| Err(format!("`{feature}` is not supported by chat-host"));
    if !component.files.is_empty() {
        return Err(
            "`files` is not supported: chat-host does not mount files into the guest \
             (`spin up` does); embed them in the component or run the app with `spin up`"
                .to_owned(),
        );
    }
    if !component.sqlite_databases.is_empty() {
        return unsupported("sqlite_databases");
    }
    if !component.ai_models.is_empty() {
        return unsupported("ai_models");
    }
    if !component.dependencies.is_empty() {
        return unsupported("dependencies");
    }
    if !component.allowed_http_hosts.is_empty() {
        return Err(
            "`allowed_http_hosts` is deprecated and not supported by chat-host; \
                    use `allowed_outbound_hosts` (e.g. \"https://example.com\")"
                .to_owned(),
        );
    }

    let source = match component.source {
        toml::Value::String(path) => base_dir.join(path),
        toml::Value::Table(table) if table.contains_key("url") => {
            return Err(
                "URL sources are not supported by chat-host; download the Wasm file and \
                        give its local path as `source`"
                    .to_owned(),
            );
        }
        toml::Value::Table(table) if table.contains_key("package") => {
            return Err(
                "registry sources are not supported by chat-host; give a local path as `source`"
                    .to_owned(),
            );
        }
        _ => return Err("`source` must be the path of a Wasm file".to_owned()),
    };

    allowed_hosts::validate(&component.allowed_outbound_hosts, variables)
        .map_err(|e| e.to_string())?;

    let component_variables = component
        .variables
        .into_iter()
        .map(|(name, template)| {
            check_template(&template, variables)
                .map_err(|error| format!("variable `{}`: {error}", name.0))?;
            Ok((name.0, template))
        })
        .collect::<Result<BTreeMap<_, _>, String>>()?;

    let build = component
        .build
        .map(|build| {
            let workdir = match build.workdir {
                None => base_dir.to_owned(),
                // Spin refuses absolute paths here (Path::has_root).
                Some(dir) if Path::new(&dir).has_root() => {
                    return Err(
                        "the build `workdir` must be relative to the manifest directory".to_owned(),
                    );
                }
                Some(dir) => base_dir.join(dir),
            };
            let commands = match build.command {
                raw::Commands::One(command) => vec![command],
                raw::Commands::Several(commands) => commands,
            };
            Ok(BuildConfig { commands, workdir })
        })
        .transpose()?;

    let tool = match component.tool.get(CHAT_HOST_TOOL) {
        Some(table) => convert_chat_host_tool(table.clone())?,
        None => ChatHostTool {
            background_work: None,
            gauges: Vec::new(),
        },
    };

    Ok(Component {
        source,
        background_work: tool.background_work,
        gauges: tool.gauges,
        description: component.description,
        allowed_outbound_hosts: component.allowed_outbound_hosts,
        key_value_stores: component
            .key_value_stores
            .into_iter()
            .map(|label| label.0)
            .collect(),
        variables: component_variables,
        environment: component.environment,
        build,
    })
}

/// A component variable's template must parse and name only declared
/// application variables.
fn check_template(
    text: &str,
    variables: &BTreeMap<String, VariableDecl>,
) -> Result<(), TemplateError> {
    let template = Template::parse(text)?;
    match template
        .variables()
        .find(|name| !variables.contains_key(*name))
    {
        Some(unknown) => Err(TemplateError::UndeclaredVariable(unknown.to_owned())),
        None => Ok(()),
    }
}

fn convert_http_trigger(
    entry: toml::Table,
    components: &BTreeMap<String, Component>,
) -> Result<HttpTrigger, String> {
    let trigger = raw::HttpTrigger::deserialize(entry).map_err(|e| e.message().to_owned())?;
    if trigger.static_response.is_some() {
        return Err("`static_response` is not supported by chat-host".to_owned());
    }
    if !trigger.components.is_empty() || !trigger.dependencies.is_empty() {
        return Err(
            "trigger `components` and `dependencies` (middleware) are not supported by chat-host"
                .to_owned(),
        );
    }
    if let Some(executor) = &trigger.executor {
        check_executor(executor)?;
    }

    let component = match trigger.component {
        Some(toml::Value::String(id)) => {
            crate::names::check_kebab_case(&id)
                .map_err(|reason| format!("component {id:?}: {reason}"))?;
            id
        }
        Some(toml::Value::Table(_)) => {
            return Err(
                "inline components are not supported by chat-host; define the component \
                        in a [component.<id>] table and name it in `component`"
                    .to_owned(),
            );
        }
        Some(_) => return Err("`component` must be a component id".to_owned()),
        None => return Err("missing `component`".to_owned()),
    };
    if !components.contains_key(&component) {
        return Err(format!(
            "component `{component}` is not defined (no [component.{component}] table)"
        ));
    }

    let route = match trigger.route {
        toml::Value::String(route) => HttpRoute::Path(route),
        toml::Value::Table(table) => match (table.get("private"), table.len()) {
            (Some(toml::Value::Boolean(true)), 1) => HttpRoute::Private,
            (Some(toml::Value::Boolean(false)), 1) => {
                return Err(format!(
                    "route must be a string pattern or '{{ private = true }}': '{component}' has {{ private = false }}"
                ));
            }
            _ => return Err("route must be a string pattern or '{ private = true }'".to_owned()),
        },
        _ => return Err("route must be a string pattern or '{ private = true }'".to_owned()),
    };
    Ok(HttpTrigger { route, component })
}

/// Spin's `executor = { type = "http" }` (alias `spin`) is the default; Wagi
/// is a different calling convention chat-host does not implement.
fn check_executor(executor: &toml::Table) -> Result<(), String> {
    match executor.get("type").and_then(toml::Value::as_str) {
        Some("http" | "spin") if executor.len() == 1 => Ok(()),
        Some("http" | "spin") => Err("the `http` executor takes no other settings".to_owned()),
        Some("wagi") => Err("the `wagi` executor is not supported by chat-host".to_owned()),
        _ => Err("`executor` must be { type = \"http\" } or { type = \"wagi\" }".to_owned()),
    }
}

#[cfg(test)]
mod tests;
