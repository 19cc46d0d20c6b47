//! What the demo-agent component answers, as plain Rust tested natively:
//! the model-serving stand-in (`agent`) and the MLflow stand-in (`mlflow`).

pub mod agent;
pub mod mlflow;
