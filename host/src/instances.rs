//! Instance reuse, as Spin 4 does it for WASI 0.3 components: one instance
//! serves many requests, several at once, then retires. wasmtime's
//! `ProxyHandler` runs the workers; this module says when to create, reuse
//! and retire them.

use crate::call_counts;
use crate::component::ComponentContext;
use crate::state::HostState;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::GuestTaskId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Marks the process as shutting down, so cancelled workers are not
/// reported as failures.
pub fn begin_shutdown() {
    SHUTTING_DOWN.store(true, Ordering::Relaxed);
}

/// When an instance takes requests and when it is retired.
#[derive(Clone, Copy, Debug)]
pub struct ReusePolicy {
    pub max_requests_per_instance: usize,
    pub max_concurrent_requests_per_instance: usize,
    /// An idle instance is dropped after this long.
    pub idle_timeout: Duration,
    /// A request must produce its response head within this time (a streamed
    /// body may then take as long as it needs).
    pub response_timeout: Duration,
}

impl Default for ReusePolicy {
    fn default() -> Self {
        Self {
            max_requests_per_instance: 128,
            max_concurrent_requests_per_instance: 16,
            idle_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(120),
        }
    }
}

/// Creates the instances of one component.
pub struct ComponentInstances {
    engine: Engine,
    pre: ServicePre<HostState>,
    context: Arc<ComponentContext>,
    policy: ReusePolicy,
}

impl ComponentInstances {
    pub fn new(
        engine: Engine,
        pre: ServicePre<HostState>,
        context: Arc<ComponentContext>,
        policy: ReusePolicy,
    ) -> Self {
        Self {
            engine,
            pre,
            context,
            policy,
        }
    }
}

impl HandlerState for ComponentInstances {
    type StoreData = HostState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<HostState, Expiration, Worker>> {
        let mut store = Store::new(&self.engine, HostState::new(&self.context));
        let service = self.pre.instantiate_async(&mut store).await?;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: HostState::http_view,
            expiration: Expiration::new(self.policy),
            state: Worker {
                component: self.context.id.clone(),
                policy: self.policy,
            },
        })
    }
}

pub struct Worker {
    component: String,
    policy: ReusePolicy,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.policy.max_requests_per_instance {
            ShouldAccept::Never
        } else if concurrent >= self.policy.max_concurrent_requests_per_instance {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, HostState>,
        _request: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let state = store.data_mut();
        state.requests += 1;
        state.report_calls();
        Box::pin(tokio::time::sleep(self.policy.response_timeout))
    }

    fn drop(&self, mut store: Store<HostState>, result: wasmtime::Result<()>) {
        store.data_mut().report_calls();
        log_call_counts(&self.component, store.data());
        match result {
            // Shutting down cancels every worker; that is no failure.
            Err(_) if SHUTTING_DOWN.load(Ordering::Relaxed) => {}
            Err(error) => {
                tracing::error!(component = %self.component, "instance retired after a failure: {error:?}")
            }
            Ok(()) => {}
        }
    }
}

fn log_call_counts(component: &str, state: &HostState) {
    // Averaged and formatted only when someone reads them.
    if !tracing::enabled!(target: call_counts::TARGET, tracing::Level::DEBUG) {
        return;
    }
    let counts = state.call_counts();
    if let Some(per_request) = counts.per_request() {
        tracing::debug!(
            target: call_counts::TARGET,
            component,
            requests = counts.requests,
            "instance retired; {per_request}"
        );
    }
}

/// Retires idle instances, and instances whose requests overran the
/// response timeout (a guard the worker checks from outside the guest).
pub struct Expiration {
    policy: ReusePolicy,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl Expiration {
    fn new(policy: ReusePolicy) -> Self {
        Self {
            policy,
            timer: Box::pin(tokio::time::sleep(policy.idle_timeout)),
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        since: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match status {
            WorkerStatus::Idle => this.policy.idle_timeout,
            WorkerStatus::Requests => this.policy.response_timeout,
            // Streaming bodies and post-response work may run as long as they need.
            WorkerStatus::PostReturn => return Poll::Pending,
        };
        let deadline = since + limit;
        if Instant::now() >= deadline {
            return Poll::Ready(());
        }
        this.timer.as_mut().reset(deadline.into());
        this.timer.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> Worker {
        Worker {
            component: "test".into(),
            policy: ReusePolicy::default(),
        }
    }

    #[test]
    fn an_instance_takes_up_to_16_at_once_and_128_in_all() {
        let worker = worker();
        assert!(matches!(
            worker.should_accept_request(0, 0),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            worker.should_accept_request(15, 100),
            ShouldAccept::Yes
        ));
        assert!(matches!(
            worker.should_accept_request(16, 100),
            ShouldAccept::No
        ));
        assert!(matches!(
            worker.should_accept_request(3, 128),
            ShouldAccept::Never
        ));
    }

    #[tokio::test]
    async fn idle_and_overdue_instances_expire_but_streaming_ones_do_not() {
        let policy = ReusePolicy::default();
        let mut expiration = Box::pin(Expiration::new(policy));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let now = Instant::now();
        let long_ago = now - policy.response_timeout - Duration::from_secs(1);

        assert!(
            expiration
                .as_mut()
                .poll(&mut cx, WorkerStatus::Idle, now)
                .is_pending()
        );
        assert!(
            expiration
                .as_mut()
                .poll(&mut cx, WorkerStatus::Idle, long_ago)
                .is_ready()
        );
        assert!(
            expiration
                .as_mut()
                .poll(&mut cx, WorkerStatus::Requests, now)
                .is_pending()
        );
        assert!(
            expiration
                .as_mut()
                .poll(&mut cx, WorkerStatus::Requests, long_ago)
                .is_ready()
        );
        assert!(
            expiration
                .as_mut()
                .poll(&mut cx, WorkerStatus::PostReturn, long_ago)
                .is_pending()
        );
    }
}
