//! The contract suite's harness: `openapi.yaml` as an oracle, a client that
//! checks every answer against it, the app under test (external or started
//! here), and seeding and reading its database through SQL.

pub mod client;
pub mod openapi;
pub mod seed;
pub mod target;
