//! The chat-history domain: identity, validation, pagination rules, SQL text and
//! JSON views. Plain Rust with no wasm dependency, so it is unit-tested natively;
//! the components only execute what this crate decides.
//!
//! "The seed", in these comments, is the Node.js recipe the app began as
//! (README): its schema, API and browser client, which this app keeps
//! working unchanged.

pub mod access;
pub mod admin;
pub mod assessment;
pub mod background;
pub mod chat;
pub mod chat_request;
pub mod context;
pub mod conversation;
pub mod csrf;
pub mod demo_agent;
pub mod demo_mlflow;
pub mod error;
pub mod feedback;
pub mod follow;
pub mod gateway;
pub mod history;
pub mod identity;
pub mod journal;
pub mod json_body;
pub mod messages;
pub mod migrations;
pub mod relay;
pub mod routes;
pub mod serving;
pub mod session;
pub mod snapshot;
pub mod sql;
pub mod sse;
pub mod stop;
pub mod timestamp;
pub mod users;
pub mod validate;

pub use error::ApiError;
