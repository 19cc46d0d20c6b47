//! One component on its own under wasmtime: its `.wasm` file instantiated
//! with chat-host's capability linker and its `wasi:http` handler called
//! directly in a store, with no manifest file, router or HTTP server in
//! between. The test declares what the component may use (variables,
//! key-value stores, outbound hosts), as its `[component]` table in
//! spin.toml would, and chat-host's own capability implementations serve it.
//!
//! Each call runs in a fresh instance; the database pools and key-value
//! stores outlive it, shared by every call, as in the host.

use crate::sse::EventReader;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use chat_host::app::AppLink;
use chat_host::component::ComponentContext;
use chat_host::engine::anyhow_error;
use chat_host::key_value::KeyValueStores;
use chat_host::postgres::{PoolSettings, Pools};
use chat_host::runtime_config::{DEFAULT_STORE, KeyValueStoreConfig};
use chat_host::state::HostState;
use chat_manifest::{Application, Component, Manifest, VariableDecl, VariableResolver};
use http::{HeaderMap, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// Where `chat-host build` puts the components.
const COMPONENTS_DIR: &str = "target/wasm32-wasip2/release";

/// One engine and linker for every component, as in the host: the pooling
/// allocator reserves its address space once, not once per test.
fn engine_and_linker() -> &'static (Engine, Linker<HostState>) {
    static ENGINE_AND_LINKER: OnceLock<(Engine, Linker<HostState>)> = OnceLock::new();
    ENGINE_AND_LINKER.get_or_init(|| {
        let engine = chat_host::engine::engine().expect("creating the wasmtime engine");
        let linker = chat_host::engine::linker(&engine).expect("linking chat-host's capabilities");
        (engine, linker)
    })
}

/// A request to a component; the authority is what a local client would send.
pub fn request(method: http::Method, path: &str) -> http::request::Builder {
    http::Request::builder()
        .method(method)
        .uri(format!("http://localhost{path}"))
}

/// A compiled component and what it is allowed to use.
pub struct SoloComponent {
    id: String,
    source: PathBuf,
    pre: ServicePre<HostState>,
    /// Component variable name -> value.
    variables: BTreeMap<String, String>,
    key_value_labels: Vec<String>,
    allowed_outbound_hosts: Vec<String>,
    postgres: Arc<Pools>,
    key_value: Arc<KeyValueStores>,
}

impl SoloComponent {
    /// Compiles `target/wasm32-wasip2/release/<wasm_file>` as component `id`,
    /// allowed nothing yet: no variables, stores or outbound hosts.
    pub fn new(wasm_file: &str, id: &str) -> Result<Self> {
        let (engine, linker) = engine_and_linker();
        let source = crate::repo_root().join(COMPONENTS_DIR).join(wasm_file);
        Ok(Self {
            id: id.to_owned(),
            pre: chat_host::engine::prepare(engine, linker, &source)?,
            source,
            variables: BTreeMap::new(),
            key_value_labels: Vec::new(),
            allowed_outbound_hosts: Vec::new(),
            postgres: Pools::new(PoolSettings::default()),
            // One in-memory store, `default`.
            key_value: KeyValueStores::new(&BTreeMap::from([(
                DEFAULT_STORE.to_owned(),
                KeyValueStoreConfig::Memory,
            )]))
            .context("creating the in-memory key-value store")?,
        })
    }

    /// A variable the component reads through `spin:variables`.
    pub fn variable(mut self, name: &str, value: &str) -> Self {
        self.variables.insert(name.to_owned(), value.to_owned());
        self
    }

    /// A key-value store label the component may open (`default` exists).
    pub fn key_value_store(mut self, label: &str) -> Self {
        self.key_value_labels.push(label.to_owned());
        self
    }

    /// An `allowed_outbound_hosts` entry, such as `postgres://*:*`.
    pub fn allowed_outbound_host(mut self, entry: &str) -> Self {
        self.allowed_outbound_hosts.push(entry.to_owned());
        self
    }

    /// Instantiates the component and calls its handler with `request`;
    /// answers once the response head is there, while the body streams on.
    pub async fn call(&self, request: http::Request<Bytes>) -> Result<SoloResponse> {
        let (engine, _) = engine_and_linker();
        let mut store = Store::new(engine, HostState::new(&self.context()?));
        let service = self
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow_error)
            .with_context(|| format!("instantiating {}", self.id))?;
        // The request gets the store's outbound hooks, as in the host.
        let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(
            store.data_mut().http_view().hooks,
            request.map(Full::new),
        );
        let (head_sender, head) = oneshot::channel();
        let (chunk_sender, chunks) = mpsc::unbounded_channel();
        // The store runs on its own task so the test reads the body while
        // the component writes it, as a client of the host would.
        let run = tokio::spawn(async move {
            store
                .run_concurrent(async |accessor| {
                    let response = service
                        .handle(accessor, request)
                        .await?
                        .map_err(|code| wasmtime::format_err!("the handler failed: {code:?}"))?;
                    let response =
                        accessor.with(|access| response.into_http(access, request_io))?;
                    let (parts, body) = response.into_parts();
                    let _ = head_sender.send(parts);
                    forward_chunks(body, &chunk_sender).await;
                    // Work the component spawned may outlast the body.
                    std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await;
                    wasmtime::error::Ok(())
                })
                .await
                .and_then(|outcome| outcome)
                .map_err(anyhow_error)
        });
        let Ok(head) = head.await else {
            run.await.context("the component's store panicked")??;
            bail!("{} ended without a response", self.id);
        };
        Ok(SoloResponse {
            status: head.status,
            headers: head.headers,
            chunks,
            run,
            reader: Some(EventReader::new()),
            parsed: VecDeque::new(),
        })
    }

    /// What the host knows about the component, as chat-host's app loader
    /// builds it from spin.toml; there are no other components to chain to,
    /// and `SPIN_VARIABLE_*` in the environment are ignored: the test alone
    /// sets the variables.
    fn context(&self) -> Result<ComponentContext> {
        let manifest = self.manifest();
        let variables = Arc::new(
            VariableResolver::new(&manifest, [], self.variables.clone())
                .context("resolving the component's variables")?,
        );
        ComponentContext::declared(
            &self.id,
            &manifest.components[&self.id],
            variables,
            self.postgres.clone(),
            self.key_value.clone(),
            AppLink::default(),
            None,
        )
    }

    /// The app of this one component: each variable an app variable that the
    /// host sets, passed on as `name = "{{ name }}"`.
    fn manifest(&self) -> Manifest {
        let set_by_host = VariableDecl {
            description: None,
            default: None,
            secret: false,
        };
        let component = Component {
            source: self.source.clone(),
            description: String::new(),
            allowed_outbound_hosts: self.allowed_outbound_hosts.clone(),
            key_value_stores: self.key_value_labels.clone(),
            variables: self
                .variables
                .keys()
                .map(|name| (name.clone(), format!("{{{{ {name} }}}}")))
                .collect(),
            environment: BTreeMap::new(),
            build: None,
            background_work: None,
            gauges: Vec::new(),
        };
        Manifest {
            base_dir: crate::repo_root(),
            application: Application {
                name: "solo".to_owned(),
                version: String::new(),
                description: String::new(),
                authors: Vec::new(),
            },
            variables: self
                .variables
                .keys()
                .map(|name| (name.clone(), set_by_host.clone()))
                .collect(),
            components: BTreeMap::from([(self.id.clone(), component)]),
            http_triggers: Vec::new(),
        }
    }
}

type Chunk = Result<Bytes, String>;

/// Passes the body's chunks on as they come, until it ends or breaks off,
/// or the test drops the response: then it is a client that left.
async fn forward_chunks(
    mut body: impl Body<Data = Bytes, Error: std::fmt::Debug> + Unpin,
    chunks: &mpsc::UnboundedSender<Chunk>,
) {
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => Ok(data),
                Err(_trailers) => continue,
            },
            Err(error) => Err(format!("{error:?}")),
        };
        let broke_off = chunk.is_err();
        if chunks.send(chunk).is_err() || broke_off {
            return;
        }
    }
}

/// A component's response: the head at once, the body as it is written.
/// Read the body either chunk by chunk or event by event, not both.
pub struct SoloResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// The body's chunks in the order the component wrote them.
    chunks: mpsc::UnboundedReceiver<Chunk>,
    /// The store's run: it ends once every task of the component has.
    run: JoinHandle<Result<()>>,
    /// The tests' own reader, not the app's parser.
    reader: Option<EventReader>,
    parsed: VecDeque<String>,
}

impl SoloResponse {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The next chunk of the body as soon as it is written; `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.chunks.recv().await {
            Some(chunk) => chunk
                .map(Some)
                .map_err(|error| anyhow::anyhow!("the body broke off: {error}")),
            None => Ok(None),
        }
    }

    /// The data of the next server-sent event as soon as its bytes are in;
    /// `None` at the end of the body.
    pub async fn next_event(&mut self) -> Result<Option<String>> {
        loop {
            if let Some(event) = self.parsed.pop_front() {
                return Ok(Some(event));
            }
            if self.reader.is_none() {
                return Ok(None);
            }
            let chunk = self.next_chunk().await?;
            let reader = self.reader.as_mut().expect("checked above");
            let Some(chunk) = chunk else {
                let reader = self.reader.take().expect("checked above");
                let last = reader.finish().map_err(anyhow::Error::msg)?;
                self.parsed.extend(last);
                continue;
            };
            self.parsed.extend(reader.push(&chunk));
        }
    }

    /// Every event still to come, once the component has finished.
    pub async fn events(mut self) -> Result<Vec<String>> {
        let mut events = Vec::new();
        while let Some(event) = self.next_event().await? {
            events.push(event);
        }
        self.finished().await?;
        Ok(events)
    }

    /// The rest of the body, once the component has finished.
    pub async fn body(mut self) -> Result<Bytes> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            body.extend_from_slice(&chunk);
        }
        self.finished().await?;
        Ok(body.into())
    }

    pub async fn text(self) -> Result<String> {
        String::from_utf8(self.body().await?.to_vec()).context("a body that is not UTF-8")
    }

    pub async fn json(self) -> Result<serde_json::Value> {
        let body = self.body().await?;
        serde_json::from_slice(&body)
            .with_context(|| format!("not JSON: {}", String::from_utf8_lossy(&body)))
    }

    /// Waits until every task of the component has ended (work it spawned
    /// may go on after the body), and fails if the component trapped.
    async fn finished(self) -> Result<()> {
        self.run.await.context("the component's store panicked")?
    }
}
