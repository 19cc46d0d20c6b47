//! Prometheus metrics, served with `chat-host up --metrics-listen ADDR` on a
//! listener of their own (never the public port): `GET /metrics` in the
//! OpenMetrics text format, and the readiness route beside it, which stays
//! reachable while the public listener is closed for a drain.
//!
//! Counted as requests are served: requests by route and status, the time to
//! each response's head by route, event streams open, the time to an event
//! stream's first bytes, and what each component's instances asked of the
//! host (reported at each instance's next request, and when it retires).
//! Read when scraped: database connections in use, idle and waited for, open
//! host breakers, write-behind journal entries waiting in the app's store,
//! whether the process drains, and the counts the app declares in spin.toml
//! (`[component.<id>.tool.chat-host] gauges`, such as the ratings waiting
//! for MLflow), each run on the app's database: the host itself knows no
//! table of the app.

use crate::call_counts::CallCounts;
use crate::key_value::KeyValueStores;
use crate::postgres::Pools;
use crate::probes::Readiness;
use anyhow::Result;
use bytes::Bytes;
use chat_contract::stores;
use chat_manifest::Gauge as DeclaredGauge;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, SizeHint};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::WasiBody;

/// How long a scrape waits for the database to answer a declared count.
const SAMPLE_LIMIT: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    component: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    active_streams: Gauge,
    first_chunk: Histogram,
    host_calls: Family<CallLabels, Counter>,
    connections: Family<StateLabels, Gauge>,
    breakers_open: Gauge,
    journal_depth: Gauge,
    /// The app's own counts, each with the statement that counts it.
    declared: Vec<(DeclaredGauge, Gauge)>,
    draining: Gauge,
}

impl Metrics {
    /// The host's metrics and the `declared` counts of the app.
    pub fn new(declared: Vec<DeclaredGauge>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("chat_host");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, by route (as spin.toml names it) and status",
            requests.clone(),
        );
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register(
            "response_head_seconds",
            "Time from a request's arrival to its response head, by route",
            latency.clone(),
        );
        let active_streams = Gauge::default();
        registry.register(
            "active_streams",
            "Event-stream responses still open",
            active_streams.clone(),
        );
        let first_chunk = latency_histogram();
        registry.register(
            "first_chunk_seconds",
            "Time from a request's arrival to the first bytes of its event stream",
            first_chunk.clone(),
        );
        let host_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "host_calls",
            "What component instances asked of the host, by kind (requests counts the requests they served)",
            host_calls.clone(),
        );
        let connections = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_connections",
            "Database pool connections (in_use, idle) and requests waiting for one, over every serving thread",
            connections.clone(),
        );
        let breakers_open = Gauge::default();
        registry.register(
            "db_breakers_open",
            "Host circuit breakers open (one per database and serving thread)",
            breakers_open.clone(),
        );
        let journal_depth = Gauge::default();
        registry.register(
            "journal_depth",
            "Writes waiting in the write-behind journal (the default store)",
            journal_depth.clone(),
        );
        let declared = declared
            .into_iter()
            .map(|declaration| {
                let gauge = Gauge::default();
                registry.register(&declaration.name, &declaration.help, gauge.clone());
                (declaration, gauge)
            })
            .collect();
        let draining = Gauge::default();
        registry.register(
            "draining",
            "1 while the process drains after SIGTERM or Ctrl-C",
            draining.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            latency,
            active_streams,
            first_chunk,
            host_calls,
            connections,
            breakers_open,
            journal_depth,
            declared,
            draining,
        })
    }

    /// Counts a response and, for an event stream, follows its body.
    pub fn observe(
        self: &Arc<Self>,
        route: String,
        arrived: Instant,
        response: http::Response<WasiBody>,
    ) -> http::Response<WasiBody> {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(arrived.elapsed().as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                status: response.status().as_str().to_owned(),
            })
            .inc();
        let is_event_stream = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        if !is_event_stream {
            return response;
        }
        self.active_streams.inc();
        let metrics = self.clone();
        response.map(|body| {
            FollowedStream {
                body,
                metrics,
                arrived: Some(arrived),
            }
            .boxed_unsync()
        })
    }

    /// Adds what an instance asked of the host since its last report.
    pub fn add_host_calls(&self, component: &str, calls: CallCounts) {
        for (kind, count) in [
            ("requests", calls.requests),
            ("postgres_opens", calls.postgres_opens),
            ("postgres_statements", calls.postgres_statements),
            ("key_value_operations", calls.key_value_operations),
            ("variable_reads", calls.variable_reads),
        ] {
            self.host_calls
                .get_or_create(&CallLabels {
                    component: component.to_owned(),
                    kind,
                })
                .inc_by(count);
        }
    }

    /// The metrics as OpenMetrics text, with the sampled ones read now.
    async fn render(&self, sources: &Sources) -> String {
        let mut in_use = 0;
        let mut idle = 0;
        let mut waiting = 0;
        let mut breakers_open = 0;
        for pools in &sources.pools {
            let status = pools.status();
            in_use += status.in_use;
            idle += status.idle;
            waiting += status.waiting;
            breakers_open += status.breakers_open;
        }
        for (state, count) in [("in_use", in_use), ("idle", idle), ("waiting", waiting)] {
            self.connections
                .get_or_create(&StateLabels { state })
                .set(gauge_value(count));
        }
        self.breakers_open.set(gauge_value(breakers_open));
        // A store out of reach shows as -1 rather than as an empty journal.
        let journal = sources
            .key_value
            .count_keys(stores::LABEL, stores::JOURNAL_PREFIX)
            .await
            .map_or(-1, gauge_value);
        self.journal_depth.set(journal);
        // A count the database did not answer shows as -1.
        for (declaration, gauge) in &self.declared {
            let count = match sources.pools.first() {
                Some(pools) => pools.count_on_each(&declaration.count, SAMPLE_LIMIT).await,
                None => None,
            };
            gauge.set(count.unwrap_or(-1));
        }
        self.draining
            .set(i64::from(sources.readiness.is_draining()));
        let mut text = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!("encoding the metrics failed: {error}");
        }
        text
    }
}

fn gauge_value(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// An event stream's body, timed to its first bytes and counted while open.
struct FollowedStream {
    body: WasiBody,
    metrics: Arc<Metrics>,
    /// Until the first bytes went out.
    arrived: Option<Instant>,
}

impl Body for FollowedStream {
    type Data = Bytes;
    type Error = <WasiBody as Body>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && frame.data_ref().is_some_and(|data| !data.is_empty())
            && let Some(arrived) = self.arrived.take()
        {
            self.metrics
                .first_chunk
                .observe(arrived.elapsed().as_secs_f64());
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for FollowedStream {
    fn drop(&mut self) {
        self.metrics.active_streams.dec();
    }
}

/// Where the sampled metrics are read.
pub struct Sources {
    /// Each serving thread's database pools.
    pub pools: Vec<Arc<Pools>>,
    pub key_value: Arc<KeyValueStores>,
    pub readiness: Readiness,
}

/// Serves `/metrics` and the readiness route on `listener` for as long as
/// the process runs.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    sources: Arc<Sources>,
) -> Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let (metrics, sources) = (metrics.clone(), sources.clone());
        let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
            let (metrics, sources) = (metrics.clone(), sources.clone());
            async move {
                let path = request.uri().path();
                let response = match sources.readiness.answer(path) {
                    Some(probe) => probe,
                    None if path == "/metrics" => {
                        let mut response = text_response(metrics.render(&sources).await);
                        response.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        response
                    }
                    None => {
                        let mut response = text_response("Not found: try /metrics".to_owned());
                        *response.status_mut() = http::StatusCode::NOT_FOUND;
                        response
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!("metrics connection ended with an error: {error}");
            }
        });
    }
}

fn text_response(text: String) -> http::Response<WasiBody> {
    http::Response::new(
        Full::new(Bytes::from(text))
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}
