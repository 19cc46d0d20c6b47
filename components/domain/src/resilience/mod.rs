//! Keeping the app useful without its database: the write-behind journal's
//! layout and the shared snapshots instances keep of the key-value store.
//! The retry policy and the circuit breaker are agreed with the host, so
//! they live in `chat-contract`.

pub mod journal;
pub mod snapshot;
