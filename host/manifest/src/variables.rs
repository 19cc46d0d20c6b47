//! Application and component variables with Spin's semantics: templates,
//! defaults, secrets and `SPIN_VARIABLE_*` environment values.
//!
//! An application variable's value comes from, first to last: the host's own
//! overrides (like `spin up --variable`), the `SPIN_VARIABLE_<NAME>`
//! environment variable (an empty value counts), the declared default.
//! Components never see application variables directly: each component
//! declares its own variables as templates over them.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::Manifest;
use crate::names::check_variable_key;
use crate::template::{Template, TemplateError};

/// The environment variable Spin reads an application variable from.
pub fn env_var_name(variable: &str) -> String {
    format!("SPIN_VARIABLE_{}", variable.to_ascii_uppercase())
}

/// Why a variable cannot be resolved. No message ever carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VariableError {
    /// A name that breaks Spin's rules: (name, reason). The guest sees
    /// `invalid-name`.
    #[error("invalid variable name {0:?}: {1}")]
    InvalidName(String, String),
    /// A well-formed name the component does not declare: (component,
    /// name). The guest sees `undefined`.
    #[error("component `{0}` has no variable `{1}`")]
    Undefined(String, String),
    /// A required application variable nobody supplied.
    #[error("required variable `{name}` has no value; set {env_var} in the environment")]
    MissingRequired { name: String, env_var: String },
    /// An override for a variable the manifest does not declare.
    #[error("cannot set variable `{0}`: it is not declared in [variables]")]
    UndeclaredOverride(String),
    /// A component variable whose template is unusable.
    #[error("component `{component}` variable `{variable}`: {error}")]
    ComponentTemplate {
        component: String,
        variable: String,
        error: TemplateError,
    },
}

/// A value the host keeps current while the app runs (a token it renews);
/// `None` until it has one.
pub type LiveValue = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Resolved application variables plus every component's variable
/// templates; built once at start-up.
#[derive(Clone)]
pub struct VariableResolver {
    values: BTreeMap<String, Value>,
    /// Variables whose value the host keeps current, read at each use.
    live: BTreeMap<String, LiveValue>,
    /// component id -> variable name -> template
    component_templates: BTreeMap<String, BTreeMap<String, Template>>,
    /// Every component id, for `*.spin.internal` in allowed hosts.
    component_ids: Vec<String>,
}

#[derive(Clone)]
struct Value {
    text: String,
    origin: Origin,
}

/// Where a value came from; all `Debug` shows, since values may be secret
/// (and `db_url` holds a password without being declared secret).
#[derive(Debug, Clone, Copy)]
enum Origin {
    Override,
    Environment,
    Default,
}

impl fmt::Debug for VariableResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origins: BTreeMap<_, _> = self
            .values
            .iter()
            .map(|(name, v)| (name, v.origin))
            .collect();
        f.debug_struct("VariableResolver")
            .field("values", &origins)
            .field("components", &self.component_ids)
            .finish()
    }
}

impl VariableResolver {
    /// Resolves every application variable of `manifest`. `env` is the
    /// process environment (only `SPIN_VARIABLE_*` entries are looked at);
    /// `overrides` are values the host sets itself and win over both.
    pub fn new(
        manifest: &Manifest,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: BTreeMap<String, String>,
    ) -> Result<Self, VariableError> {
        if let Some(undeclared) = overrides
            .keys()
            .find(|name| !manifest.variables.contains_key(*name))
        {
            return Err(VariableError::UndeclaredOverride(undeclared.clone()));
        }
        let wanted_env: BTreeMap<String, &str> = manifest
            .variables
            .keys()
            .map(|name| (env_var_name(name), name.as_str()))
            .collect();
        let mut from_env: BTreeMap<&str, String> = BTreeMap::new();
        for (key, text) in env {
            if let Some(name) = wanted_env.get(&key) {
                from_env.insert(name, text);
            }
        }

        let mut overrides = overrides;
        let mut values = BTreeMap::new();
        for (name, declaration) in &manifest.variables {
            let value = if let Some(text) = overrides.remove(name) {
                Value {
                    text,
                    origin: Origin::Override,
                }
            } else if let Some(text) = from_env.remove(name.as_str()) {
                Value {
                    text,
                    origin: Origin::Environment,
                }
            } else if let Some(text) = &declaration.default {
                Value {
                    text: text.clone(),
                    origin: Origin::Default,
                }
            } else {
                return Err(VariableError::MissingRequired {
                    name: name.clone(),
                    env_var: env_var_name(name),
                });
            };
            values.insert(name.clone(), value);
        }

        let mut component_templates = BTreeMap::new();
        for (component, declared) in &manifest.components {
            let mut templates = BTreeMap::new();
            for (variable, text) in &declared.variables {
                let template_error = |error| VariableError::ComponentTemplate {
                    component: component.clone(),
                    variable: variable.clone(),
                    error,
                };
                let template = Template::parse(text).map_err(template_error)?;
                if let Some(unknown) = template
                    .variables()
                    .find(|name| !values.contains_key(*name))
                {
                    return Err(template_error(TemplateError::UndeclaredVariable(
                        unknown.to_owned(),
                    )));
                }
                templates.insert(variable.clone(), template);
            }
            component_templates.insert(component.clone(), templates);
        }

        Ok(Self {
            values,
            live: BTreeMap::new(),
            component_templates,
            component_ids: manifest.components.keys().cloned().collect(),
        })
    }

    /// Makes `name` take `value`'s current value at each read, while it has
    /// one (its resolved value otherwise).
    pub fn with_live(mut self, name: &str, value: LiveValue) -> Result<Self, VariableError> {
        if !self.values.contains_key(name) {
            return Err(VariableError::UndeclaredOverride(name.to_owned()));
        }
        self.live.insert(name.to_owned(), value);
        Ok(self)
    }

    /// What the `spin:variables` `get` call returns to `component_id` for
    /// `name`.
    pub fn component_variable(
        &self,
        component_id: &str,
        name: &str,
    ) -> Result<String, VariableError> {
        check_variable_key(name)
            .map_err(|reason| VariableError::InvalidName(name.to_owned(), reason))?;
        let template = self
            .component_templates
            .get(component_id)
            .and_then(|templates| templates.get(name))
            .ok_or_else(|| VariableError::Undefined(component_id.to_owned(), name.to_owned()))?;
        self.render(template)
            .map_err(|error| VariableError::ComponentTemplate {
                component: component_id.to_owned(),
                variable: name.to_owned(),
                error,
            })
    }

    /// An application variable's value, for the host's own use (for example
    /// to see whether `db_url` is set).
    pub fn app_variable(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|value| value.text.as_str())
    }

    pub(crate) fn render(&self, template: &Template) -> Result<String, TemplateError> {
        let live: BTreeMap<&str, String> = template
            .variables()
            .filter_map(|name| Some((name, (self.live.get(name)?)()?)))
            .collect();
        template.render(|name| {
            live.get(name)
                .map(String::as_str)
                .or_else(|| self.app_variable(name))
        })
    }

    pub(crate) fn component_ids(&self) -> &[String] {
        &self.component_ids
    }
}

#[cfg(test)]
mod tests;
