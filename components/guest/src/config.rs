//! App variables through `spin:variables`, each read once per instance.
//!
//! Deliberately cached in a global: a variable's value cannot change while
//! the app runs (Spin and chat-host resolve them from spin.toml and the
//! environment at start-up), so it is request-independent, and caching it
//! spares every request a host call per variable it needs. Failed reads are
//! not cached.

use spin_sdk::variables;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

pub const DB_URL: &str = "db_url";
pub const DEV_USER_EMAIL: &str = "dev_user_email";

/// The variables this instance has read so far, by name.
static READ_SO_FAR: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());

/// A variable that exists but could not be read.
#[derive(Debug, thiserror::Error)]
#[error("could not read the {name} variable: {detail}")]
pub struct ConfigError {
    name: String,
    detail: String,
}

/// The variable's value, trimmed; `None` when it is empty or blank, or not
/// declared for this component (both mean "not set").
pub async fn variable(name: &str) -> Result<Option<String>, ConfigError> {
    if let Some(value) = read_so_far().get(name) {
        return Ok(value.clone());
    }
    let value = read(name).await?;
    read_so_far().insert(name.to_owned(), value.clone());
    Ok(value)
}

/// The cache; never locked across an await, so a poisoned lock only means
/// a panic elsewhere, and its map is still whole.
fn read_so_far() -> MutexGuard<'static, BTreeMap<String, Option<String>>> {
    READ_SO_FAR.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn read(name: &str) -> Result<Option<String>, ConfigError> {
    match variables::get(name).await {
        Ok(value) => {
            let value = value.trim();
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(error) => Err(ConfigError {
            name: name.to_owned(),
            detail: format!("{error:?}"),
        }),
    }
}
