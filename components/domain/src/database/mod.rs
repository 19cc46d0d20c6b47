//! The database side every feature shares: statements with typed
//! parameters and rows, the schema's migrations, and timestamps as the
//! client reads them. Each feature's own statements live in its module.

pub mod migrations;
pub mod sql;
pub mod timestamp;
