//! Guest-side glue over spin-sdk shared by every component: HTTP answers,
//! request bodies, identity, app variables, Postgres, the schema runner, and
//! the resilience around the database (circuit breaker, retry policy and the
//! write-behind journal, kept in the key-value store).
//!
//! One component instance serves many requests at once, so nothing here keeps
//! per-request or per-user state in globals; the only global is the
//! request-independent "schema is current" flag in [`schema`]. State shared
//! between requests (the breaker, the journal) lives in the key-value store.

pub mod access;
/// Background work riding on served requests (Spin has no timers).
pub mod background;
pub mod circuit;
pub mod config;
/// How components use the database: [`database::read`] and
/// [`database::write`] wrap the [`postgres`] client in the breaker, the
/// retry policy and the schema check; writes replay the journal first.
pub mod database;
pub mod deadline;
pub mod failure;
pub mod journal;
pub mod log;
/// The `spin:postgres` client: connections, statements, rows, errors.
pub mod postgres;
pub mod request;
/// HTTP answers (not the model's reply, which is chat-stream's).
pub mod response;
pub mod router;
pub mod schema;
pub mod store;
pub mod writes;

pub use failure::Failure;
pub use postgres::{Db, DbError, DbRow};
