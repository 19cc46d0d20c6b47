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
pub mod breaker;
pub mod config;
pub mod database;
pub mod db;
pub mod failure;
pub mod journal;
pub mod log;
pub mod reply;
pub mod request;
pub mod schema;
pub mod store;
pub mod writes;

pub use db::{Db, DbError, DbRow};
pub use failure::Failure;
