//! The circuit breaker behind ephemeral mode. It opens when the database is
//! out of reach (the retry budget is spent, or a connection is refused); while
//! it is open, requests skip the database at once instead of waiting on it;
//! after a short cool-down one request probes the database again, and the
//! first success closes it: the app recovers by itself, with no restart.
//!
//! Application errors never open it. The state is a plain value, so it can
//! live wherever every instance sees it: in a host's memory, or in the
//! key-value store.

use std::time::Duration;

/// How long an open breaker keeps requests away from the database before
/// one of them probes it again.
pub const COOL_DOWN: Duration = Duration::from_secs(5);

/// The breaker, at a time measured in milliseconds on a clock the owner
/// chooses (wall clock in the key-value store, a monotonic one in a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Circuit {
    /// The database is believed reachable.
    Closed,
    /// The database was out of reach; requests skip it until `probe_at`.
    Open { probe_at: u64 },
}

/// What a request may do with the database now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Use it.
    Pass,
    /// Use it as the probe: the cool-down is over. The owner records
    /// [`Circuit::probing`] first, so that concurrent requests keep skipping
    /// the database while this one finds out.
    Probe,
    /// Skip it: ephemeral mode, for about this long still.
    Skip { for_about: Duration },
}

impl Circuit {
    pub fn admit(self, now: u64) -> Admission {
        match self {
            Circuit::Closed => Admission::Pass,
            Circuit::Open { probe_at } if now >= probe_at => Admission::Probe,
            Circuit::Open { probe_at } => Admission::Skip {
                for_about: Duration::from_millis(probe_at - now),
            },
        }
    }

    /// The breaker after the database was found out of reach at `now`.
    pub fn tripped(now: u64) -> Self {
        Circuit::Open {
            probe_at: now.saturating_add(COOL_DOWN.as_millis() as u64),
        }
    }

    /// The breaker while a probe started at `now` is under way: the others
    /// skip the database until it answers or another cool-down has passed.
    pub fn probing(now: u64) -> Self {
        Self::tripped(now)
    }

    pub fn is_open(self) -> bool {
        matches!(self, Circuit::Open { .. })
    }

    /// The state as stored in a key-value store: the probe time, in
    /// milliseconds of the wall clock; absent means closed.
    pub fn encode(self) -> Option<String> {
        match self {
            Circuit::Closed => None,
            Circuit::Open { probe_at } => Some(probe_at.to_string()),
        }
    }

    /// Reads [`Circuit::encode`]'s form; anything unreadable counts as
    /// closed, so a damaged entry never locks the database away.
    pub fn decode(stored: Option<&[u8]>) -> Self {
        stored
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .and_then(|text| text.trim().parse().ok())
            .map_or(Circuit::Closed, |probe_at| Circuit::Open { probe_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOL_DOWN_MS: u64 = COOL_DOWN.as_millis() as u64;

    #[test]
    fn a_closed_breaker_lets_requests_through() {
        assert_eq!(Circuit::Closed.admit(0), Admission::Pass);
        assert!(!Circuit::Closed.is_open());
    }

    #[test]
    fn an_open_breaker_skips_the_database_until_the_cool_down_is_over() {
        let open = Circuit::tripped(1_000);
        assert!(open.is_open());
        assert_eq!(
            open.admit(1_000),
            Admission::Skip {
                for_about: COOL_DOWN
            }
        );
        assert_eq!(
            open.admit(1_000 + COOL_DOWN_MS - 1),
            Admission::Skip {
                for_about: Duration::from_millis(1)
            }
        );
        assert_eq!(open.admit(1_000 + COOL_DOWN_MS), Admission::Probe);
    }

    #[test]
    fn a_probe_keeps_the_others_away_for_another_cool_down() {
        let probing = Circuit::probing(10_000);
        assert!(matches!(probing.admit(10_001), Admission::Skip { .. }));
        assert_eq!(probing.admit(10_000 + COOL_DOWN_MS), Admission::Probe);
    }

    #[test]
    fn the_stored_form_round_trips_and_damage_means_closed() {
        let open = Circuit::tripped(42);
        let stored = open.encode().unwrap();
        assert_eq!(Circuit::decode(Some(stored.as_bytes())), open);
        assert_eq!(Circuit::Closed.encode(), None);
        assert_eq!(Circuit::decode(None), Circuit::Closed);
        assert_eq!(Circuit::decode(Some(b"garbage")), Circuit::Closed);
        assert_eq!(Circuit::decode(Some(&[0xff, 0xfe])), Circuit::Closed);
    }
}
