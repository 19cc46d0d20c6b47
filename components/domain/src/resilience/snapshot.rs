//! Shared state (the breaker, the journal marker) lives in the key-value
//! store so every instance sees it, but reading it on every request costs a
//! store open and a read or two. An instance keeps what it last read and
//! trusts it for [`TRUSTED_FOR`]: another instance's change reaches it within
//! that time, and this instance's own changes reach it at once (it records
//! them as it writes them).

use std::time::Duration;

/// How long an instance trusts what it read from the store. Short next to
/// the breaker's cool-down, so a breaker another instance opened keeps this
/// one away for most of it.
pub const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// A value as last read or written, at a time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot<T> {
    value: T,
    taken_at: u64,
}

impl<T: Copy> Snapshot<T> {
    pub fn taken(value: T, at: u64) -> Self {
        Self {
            value,
            taken_at: at,
        }
    }

    /// The value while it may still be trusted at `now`; `None` once it must
    /// be read again. A clock that went backwards means "read it again".
    pub fn trusted(&self, now: u64) -> Option<T> {
        let age = now.checked_sub(self.taken_at)?;
        (age < TRUSTED_FOR.as_millis() as u64).then_some(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUSTED_MS: u64 = TRUSTED_FOR.as_millis() as u64;

    #[test]
    fn a_snapshot_is_trusted_for_a_while_and_then_read_again() {
        let snapshot = Snapshot::taken(7, 1_000);
        assert_eq!(snapshot.trusted(1_000), Some(7));
        assert_eq!(snapshot.trusted(1_000 + TRUSTED_MS - 1), Some(7));
        assert_eq!(snapshot.trusted(1_000 + TRUSTED_MS), None);
    }

    #[test]
    fn a_clock_that_went_backwards_means_read_again() {
        assert_eq!(Snapshot::taken(true, 5_000).trusted(4_999), None);
    }
}
