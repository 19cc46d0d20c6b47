//! Background work: what the app must do without a user waiting for it
//! (today: delivering ratings to MLflow). One mechanism serves both
//! runtimes. The component that owns the work serves it at [`WORK_PATH`],
//! a path no public route reaches (only the host, or another component by
//! service chaining): chat-host calls it on a timer (declared in spin.toml,
//! `[component.<id>.tool.chat-host] background_work`); Spin has no timers,
//! so there the work rides on requests the app already serves, after their
//! answers, at most once per [`RIDE_INTERVAL`] across instances. Every run
//! is bounded ([`Budget`]) and every row it takes is leased, so replicas
//! and runs never do the same row twice.

use std::time::Duration;

/// Where a component serves its background work (`POST`).
pub const WORK_PATH: &str = "/internal/background-work";

/// Where the store keeps when a run last began (milliseconds since the
/// epoch), so requests ride along only when no timer or other request ran
/// the work lately.
pub const LAST_RUN_KEY: &str = "background-work/last-run";

/// A request's ride runs the work only when no run began this long ago
/// (longer than chat-host's timer, so there the timer's runs are enough).
pub const RIDE_INTERVAL: Duration = Duration::from_secs(10);

/// How much one run may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Items (say, ratings delivered) at most.
    pub items: usize,
    /// Time at most; an item under way when it runs out is finished.
    pub time: Duration,
}

/// A run the timer (or a ride's service-chained call) asked for.
pub const PER_RUN: Budget = Budget {
    items: 32,
    time: Duration::from_secs(20),
};

/// A run that follows a request of the component that owns the work (a
/// rating delivers itself at once).
pub const AFTER_REQUEST: Budget = Budget {
    items: 8,
    time: Duration::from_secs(10),
};

/// Whether a request should ride along: no run began within
/// [`RIDE_INTERVAL`] of `now_ms` (`last_run_ms`: when the last one began,
/// if the store knows).
pub fn ride_is_due(last_run_ms: Option<u64>, now_ms: u64) -> bool {
    last_run_ms.is_none_or(|last| now_ms.saturating_sub(last) >= RIDE_INTERVAL.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ride_is_due_when_no_run_began_in_the_last_ten_seconds() {
        assert!(ride_is_due(None, 1_000));
        assert!(!ride_is_due(Some(10_000), 19_999));
        assert!(ride_is_due(Some(10_000), 20_000));
        // A clock that went back is no reason to run.
        assert!(!ride_is_due(Some(20_000), 15_000));
    }
}
