//! Bounding a wait on something outside (an HTTP answer, a body frame).

use futures::future::{Either, select};
use std::pin::pin;
use std::time::Duration;

/// `work`'s outcome, or `None` when it takes longer than `limit` (it is then
/// dropped, which cancels it).
pub async fn within<T>(limit: Duration, work: impl Future<Output = T>) -> Option<T> {
    match select(pin!(work), pin!(spin_sdk::time::sleep(limit))).await {
        Either::Left((outcome, _)) => Some(outcome),
        Either::Right(_) => None,
    }
}
