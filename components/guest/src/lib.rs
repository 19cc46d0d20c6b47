//! Guest-side glue over spin-sdk shared by every component: HTTP answers,
//! request bodies, identity, app variables, Postgres and the schema runner.
//!
//! One component instance serves many requests at once, so nothing here keeps
//! per-request or per-user state in globals; the only global is the
//! request-independent "schema is current" flag in [`schema`].

pub mod access;
pub mod config;
pub mod db;
pub mod failure;
pub mod log;
pub mod reply;
pub mod request;
pub mod schema;

pub use db::{Db, DbError, DbRow};
pub use failure::Failure;
