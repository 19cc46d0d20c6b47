//! The black-box contract suite: `openapi.yaml` checked against real answers.
//!
//! It runs against the app named by `CHAT_BASE_URL` (with `CHAT_DB_URL`, the
//! database that app uses, and optionally `CHAT_ADMIN_TOKEN`), or, without
//! them, against a `chat-host` it starts itself on a fresh database. Every
//! answer any test receives is validated against the description (see
//! `chat_tests::contract::client`).

mod authorization;
mod database_down;
mod document;
mod fuzz;
mod routes;
mod support;
mod transport;
