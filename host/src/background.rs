//! Background work on timers: a component that declares
//! `[component.<id>.tool.chat-host] background_work = { path, interval_seconds }`
//! is called at that path (`POST`, as a service-chained request, so no
//! public route reaches it) every interval, from one serving thread. The
//! host knows nothing of the work itself; the component does it within its
//! own bounds and leases, so replicas running the same timers never do the
//! same item twice. A run under way when the host drains may finish within
//! the drain deadline.

use crate::app::LoadedApp;
use chat_manifest::Manifest;
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// The most of a run's answer that is kept for the log.
const LOGGED_ANSWER_BYTES: usize = 1024;

/// One component's background work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub component: String,
    pub path: String,
    pub interval: Duration,
}

/// The timers the manifest declares.
pub fn timers(manifest: &Manifest) -> Vec<Timer> {
    manifest
        .components
        .iter()
        .filter_map(|(id, component)| {
            let work = component.background_work.as_ref()?;
            Some(Timer {
                component: id.clone(),
                path: work.path.clone(),
                interval: work.interval,
            })
        })
        .collect()
}

/// Runs every timer on `app` until `stopping` changes; a run under way then
/// gets up to `drain_deadline` to finish.
pub async fn run(
    app: Arc<LoadedApp>,
    timers: Vec<Timer>,
    stopping: watch::Receiver<()>,
    drain_deadline: Duration,
) {
    let runs = timers.into_iter().map(|timer| {
        let app = app.clone();
        let mut stopping = stopping.clone();
        async move {
            let mut ticks = tokio::time::interval(timer.interval);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            // The first tick is at once; the first run waits one interval,
            // after the start-up migration and the first requests.
            ticks.tick().await;
            loop {
                tokio::select! {
                    _ = stopping.changed() => return,
                    _ = ticks.tick() => {}
                }
                let mut once = std::pin::pin!(run_once(&app, &timer));
                tokio::select! {
                    () = &mut once => continue,
                    _ = stopping.changed() => {}
                }
                // Draining: the run under way may finish within the deadline.
                if tokio::time::timeout(drain_deadline, once).await.is_err() {
                    tracing::warn!(component = %timer.component, "background work cut at the drain deadline");
                }
                return;
            }
        }
    });
    futures::future::join_all(runs).await;
}

/// One run: the component's answer is logged at debug, a failure as a
/// warning.
async fn run_once(app: &LoadedApp, timer: &Timer) {
    let request = http::Request::post(format!(
        "http://{}.spin.internal{}",
        timer.component, timer.path
    ))
    .header(http::header::CONTENT_LENGTH, 0)
    .body(
        Full::new(bytes::Bytes::new())
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
    .expect("a valid request");
    let response = app.handle_chained(&timer.component, request).await;
    let status = response.status();
    let answer = match response.into_body().collect().await {
        Ok(body) => {
            let bytes = body.to_bytes();
            String::from_utf8_lossy(&bytes[..bytes.len().min(LOGGED_ANSWER_BYTES)]).into_owned()
        }
        Err(error) => format!("(unreadable answer: {error})"),
    };
    if status.is_success() {
        tracing::debug!(component = %timer.component, "background work: {answer}");
    } else {
        tracing::warn!(component = %timer.component, %status, "background work failed: {answer}");
    }
}
