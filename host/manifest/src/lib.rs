//! chat-host's model of a Spin application manifest (`spin.toml`, manifest
//! version 2), with Spin's own semantics so that `chat-host up` and
//! `spin up` read the same file the same way:
//!
//! * [`Manifest`]: load and validate the file;
//! * [`Router`]: which component serves a request path, and the `spin-*`
//!   headers it is given ([`spin_request_headers`]);
//! * [`VariableResolver`]: application and component variables;
//! * [`AllowedHosts`]: a component's `allowed_outbound_hosts`.
//!
//! Pure and synchronous: no Wasm, no I/O beyond reading the manifest.

mod allowed_hosts;
mod manifest;
mod names;
mod routing;
mod template;
mod variables;

pub use allowed_hosts::{AllowedHosts, AllowedHostsError, service_chaining_target};
pub use manifest::{
    Application, BackgroundWork, BuildConfig, Component, Gauge, HttpRoute, HttpTrigger, Manifest,
    ManifestError, ManifestErrorKind, VariableDecl,
};
pub use routing::{
    RouteError, RouteMatch, RouteWarning, Router, WELL_KNOWN_PREFIX, spin_request_headers,
};
pub use template::TemplateError;
pub use variables::{LiveValue, VariableError, VariableResolver, env_var_name};

/// The project's own manifest, which every module's tests use.
#[cfg(test)]
const PROJECT_MANIFEST: &str = include_str!("../../../spin.toml");
