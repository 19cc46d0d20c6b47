//! The chat-history rules: plain Rust with no wasm dependency, so they are
//! unit-tested natively; the components only carry out what this crate
//! decides. Grouped by feature (`history`, `messages`, `chat`, `feedback`,
//! `admin`), with what every feature shares in rooms of its own: `http`
//! (paths, errors, bodies, events), `identity`, `access`, `database` (SQL,
//! migrations) and `resilience` (the journal, shared snapshots).
//!
//! "The seed", in these comments, is the Node.js recipe the app began as
//! (README): its schema, API and browser client, which this app keeps
//! working unchanged.

pub mod access;
pub mod admin;
pub mod background;
pub mod chat;
pub mod database;
pub mod feedback;
pub mod history;
pub mod http;
pub mod identity;
pub mod messages;
pub mod resilience;
pub mod transfer;

pub use http::error::ApiError;
