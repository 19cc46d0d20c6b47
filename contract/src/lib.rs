//! What chat-host and the components agree on beyond the WIT interfaces
//! (`wit/`), so that the host's native database access and the guests'
//! behave as one. The host depends on this crate and on no rules of the
//! app; the components reach it through `chat-domain` and `chat-guest`.
//!
//! - [`retry`]: the policy both sides retry a cold or failed database with,
//!   and the mark by which a guest knows the host already retried;
//! - [`sqlstate`]: the codes both sides give failures that PostgreSQL never
//!   names (a timeout, a closed pool, a reset connection) and what a code
//!   means for a request;
//! - [`circuit`]: the breaker both sides keep in front of the database;
//! - [`stores`]: the key-value store's label and the key prefixes whose
//!   entries the host counts;
//! - [`redact`]: how credentials in URLs are hidden from every log line;
//! - [`error_body`]: the JSON body of every error answer.

pub mod circuit;
pub mod error_body;
pub mod redact;
pub mod retry;
pub mod sqlstate;
pub mod stores;
