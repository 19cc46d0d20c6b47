//! What every route shares on the HTTP side: the API's paths, the error
//! answer, JSON request bodies, server-sent events, cross-site write checks
//! and the checks on caller-supplied values.

pub mod csrf;
pub mod error;
pub mod json_body;
pub mod routes;
pub mod sse;
pub mod validate;
