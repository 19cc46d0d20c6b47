//! Riding along: under a runtime with no timers (Spin), a served request
//! runs the app's background work after its answer
//! (`chat_domain::background`), by a service-chained `POST` to the
//! component that owns the work, when no run began lately. Under chat-host
//! the timer's runs keep the last run recent, so rides rarely happen there.

use bytes::Bytes;
use chat_domain::background::{self, LAST_RUN_KEY, WORK_PATH};
use http::header::CONTENT_LENGTH;
use http_body_util::Full;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// When this instance last looked at the store for a ride (milliseconds
/// since the epoch): request-independent, so most requests do not even
/// read the store.
static LAST_LOOK: AtomicU64 = AtomicU64::new(0);

/// The longest a ride waits for the owner's run (which is bounded itself).
const RIDE_PATIENCE: Duration = Duration::from_secs(60);

/// Runs `owner`'s background work (a component id, reached as
/// `http://<owner>.spin.internal`, which the caller's
/// `allowed_outbound_hosts` must list) if it is due. Call it spawned, after
/// the request's answer: it may take as long as a run does.
pub async fn ride(owner: &str) {
    let now = crate::store::now_ms();
    let looked = LAST_LOOK.load(Ordering::Relaxed);
    if !background::ride_is_due((looked > 0).then_some(looked), now) {
        return;
    }
    LAST_LOOK.store(now, Ordering::Relaxed);
    let Some(store) = crate::store::open().await else {
        return;
    };
    let last_run = match store.get(LAST_RUN_KEY).await {
        Ok(stamp) => stamp.and_then(|bytes| String::from_utf8(bytes).ok()?.parse().ok()),
        Err(_) => return, // the store is unwell; the next look tries again
    };
    if !background::ride_is_due(last_run, now) {
        return;
    }
    // Claimed before the run, so the other instances' rides stand back.
    if store
        .set(LAST_RUN_KEY, now.to_string().as_bytes())
        .await
        .is_err()
    {
        return;
    }
    let request = http::Request::post(format!("http://{owner}.spin.internal{WORK_PATH}"))
        .header(CONTENT_LENGTH, 0)
        .body(Full::new(Bytes::new()))
        .expect("a valid request");
    match crate::deadline::within(RIDE_PATIENCE, spin_sdk::http::send(request)).await {
        Some(Ok(response)) if response.status().is_success() => {}
        Some(Ok(response)) => crate::log::failure(
            &format!("background work of {owner}"),
            &format!("answered {}", response.status()),
        ),
        Some(Err(code)) => {
            crate::log::failure(&format!("background work of {owner}"), &format!("{code:?}"))
        }
        None => crate::log::failure(
            &format!("background work of {owner}"),
            &format!("no answer within {RIDE_PATIENCE:?}"),
        ),
    }
}
