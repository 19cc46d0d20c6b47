//! The application: compiled once per process ([`CompiledApp`]), served by
//! one [`LoadedApp`] per serving thread with that thread's instances and
//! database pools.

use crate::component::ComponentContext;
use crate::engine;
use crate::instances::{ComponentInstances, ReusePolicy};
use crate::key_value::KeyValueStores;
use crate::metrics::Metrics;
use crate::outbound_http::ChainedRequests;
use crate::postgres::{PoolSettings, Pools};
use crate::runtime_config::RuntimeConfig;
use crate::state::HostState;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chat_manifest::{Manifest, RouteMatch, Router, VariableResolver};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock, Weak};
use wasmtime::Engine;
use wasmtime_wasi_http::WasiBody;
use wasmtime_wasi_http::handler::{ExpirationError, ProxyHandler};
use wasmtime_wasi_http::p3::bindings::ServicePre;

pub struct AppOptions {
    pub manifest: Manifest,
    /// Values the host sets for app variables (they win over the environment).
    pub variable_overrides: BTreeMap<String, String>,
    /// Variables whose value the host keeps current (a renewed token).
    pub live_variables: BTreeMap<String, chat_manifest::LiveValue>,
    pub runtime_config: RuntimeConfig,
    pub reuse: ReusePolicy,
    /// Where requests and host calls are counted, when metrics are served.
    pub metrics: Option<Arc<Metrics>>,
}

/// A component's way back to the app it belongs to, for service chaining.
/// Weak, so the app and its components do not keep each other alive.
#[derive(Clone, Default)]
pub struct AppLink(Arc<OnceLock<Weak<LoadedApp>>>);

impl AppLink {
    fn connect(&self, app: &Arc<LoadedApp>) {
        let _ = self.0.set(Arc::downgrade(app));
    }
}

impl ChainedRequests for AppLink {
    fn send(
        &self,
        component: String,
        request: http::Request<WasiBody>,
    ) -> BoxFuture<'static, Option<http::Response<WasiBody>>> {
        let app = self.0.get().and_then(Weak::upgrade);
        Box::pin(async move { Some(app?.handle_chained(&component, request).await) })
    }
}

/// The app as the process loads it once: its manifest, routes, variables,
/// key-value stores and compiled components. Each serving thread serves a
/// [`LoadedApp`] made from it.
pub struct CompiledApp {
    manifest: Manifest,
    router: Router,
    variables: Arc<VariableResolver>,
    key_value: Arc<KeyValueStores>,
    engine: Engine,
    components: BTreeMap<String, ServicePre<HostState>>,
    reuse: ReusePolicy,
    metrics: Option<Arc<Metrics>>,
}

impl CompiledApp {
    pub fn load(options: AppOptions) -> Result<Self> {
        let manifest = options.manifest;
        let mut variables =
            VariableResolver::new(&manifest, std::env::vars(), options.variable_overrides)?;
        for (name, value) in options.live_variables {
            variables = variables.with_live(&name, value)?;
        }
        let variables = Arc::new(variables);
        let router = Router::build(&manifest.http_triggers)?;
        for warning in router.warnings() {
            tracing::warn!("{warning}");
        }
        let engine = engine::engine()?;
        let linker = engine::linker(&engine)?;
        let key_value = KeyValueStores::new(&options.runtime_config.key_value_store)?;
        let mut components = BTreeMap::new();
        for (id, declared) in &manifest.components {
            for label in &declared.key_value_stores {
                if !key_value.labels().any(|known| known == label) {
                    bail!(
                        "component {id} uses key-value store {label:?}, which the runtime config does not define"
                    );
                }
            }
            let pre = engine::prepare(&engine, &linker, &declared.source)
                .with_context(|| format!("component {id}"))?;
            components.insert(id.clone(), pre);
        }
        Ok(Self {
            manifest,
            router,
            variables,
            key_value,
            engine,
            components,
            reuse: options.reuse,
            metrics: options.metrics,
        })
    }

    /// The stores every copy shares.
    pub fn key_value(&self) -> Arc<KeyValueStores> {
        self.key_value.clone()
    }

    /// A copy of the app for one serving thread: instances and database
    /// pools of its own, so a request's work stays on that thread; the
    /// compiled code, variables and key-value stores are shared.
    pub fn serving_copy(&self, postgres: PoolSettings) -> Result<Arc<LoadedApp>> {
        let postgres = Pools::new(postgres);
        // Components reach each other (service chaining) through the app,
        // which exists only once they all do.
        let app_link = AppLink::default();
        let mut components = HashMap::new();
        for (id, pre) in &self.components {
            let context = Arc::new(ComponentContext::declared(
                id,
                &self.manifest.components[id],
                self.variables.clone(),
                postgres.clone(),
                self.key_value.clone(),
                app_link.clone(),
                self.metrics.clone(),
            )?);
            let instances =
                ComponentInstances::new(self.engine.clone(), pre.clone(), context, self.reuse);
            components.insert(id.clone(), ProxyHandler::new(instances));
        }
        let app = Arc::new(LoadedApp {
            postgres,
            router: self.router.clone(),
            components,
        });
        app_link.connect(&app);
        Ok(app)
    }
}

/// The app as one serving thread runs it; every request that thread
/// serves, from the network or from the host itself, goes through
/// [`LoadedApp::handle`].
pub struct LoadedApp {
    postgres: Arc<Pools>,
    router: Router,
    components: HashMap<String, ProxyHandler<ComponentInstances>>,
}

impl LoadedApp {
    /// Releases the app's database connections; call once serving stopped.
    pub fn shut_down(&self) {
        crate::instances::begin_shutdown();
        self.postgres.close_all();
    }

    /// The route, as spin.toml writes it, that `path` goes to, for metrics.
    pub fn route_of(&self, path: &str) -> String {
        self.router.route(path).map_or_else(
            || "unmatched".to_owned(),
            |matched| matched.raw_route().to_owned(),
        )
    }

    /// This copy's database pools, for metrics.
    pub fn pools(&self) -> Arc<Pools> {
        self.postgres.clone()
    }

    /// The public routes in precedence order, as `(route, component)`.
    pub fn routes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.router.routes()
    }

    /// Routes a request to its component and returns the component's
    /// response, or a JSON error when no component could produce one.
    pub async fn handle(
        &self,
        request: http::Request<WasiBody>,
        client: SocketAddr,
    ) -> http::Response<WasiBody> {
        match self.router.route(request.uri().path()) {
            Some(matched) => self.dispatch(matched, request, client).await,
            None => json_error(
                http::StatusCode::NOT_FOUND,
                &format!("No route matches {}", request.uri().path()),
            ),
        }
    }

    /// A service-chaining request (`http://<component>.spin.internal/...`)
    /// from one component to another, served in-process as Spin does.
    pub async fn handle_chained(
        &self,
        component: &str,
        request: http::Request<WasiBody>,
    ) -> http::Response<WasiBody> {
        let matched = RouteMatch::for_service_chaining(component, request.uri().path());
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        self.dispatch(matched, request, local).await
    }

    async fn dispatch(
        &self,
        matched: RouteMatch,
        mut request: http::Request<WasiBody>,
        client: SocketAddr,
    ) -> http::Response<WasiBody> {
        let component = matched.component_id().to_owned();
        let Some(instances) = self.components.get(&component) else {
            return json_error(
                http::StatusCode::NOT_FOUND,
                &format!("There is no component {component}"),
            );
        };
        let headers =
            chat_manifest::spin_request_headers(&matched, request.uri(), request.headers(), client);
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
        match instances.handle((), request).await {
            Ok(response) => response,
            Err(error) if error.is::<ExpirationError>() => {
                tracing::error!(%component, "no response within the response timeout");
                json_error(
                    http::StatusCode::GATEWAY_TIMEOUT,
                    "The request took too long to answer",
                )
            }
            Err(error) => {
                tracing::error!(%component, "request failed: {error:?}");
                json_error(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "The server failed to handle the request",
                )
            }
        }
    }
}

/// An error response in the API's shape, `{"error": "<sentence>"}`.
pub fn json_error(status: http::StatusCode, message: &str) -> http::Response<WasiBody> {
    let body = chat_contract::error_body::json(message);
    let mut response = http::Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
