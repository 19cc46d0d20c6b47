//! App variables through `spin:variables`, each read at most every ten
//! seconds per instance.
//!
//! Deliberately cached in a global: a variable's value is
//! request-independent, and caching it spares every request a host call per
//! variable it needs. Most values never change while the app runs (Spin and
//! chat-host resolve them from spin.toml and the environment at start-up),
//! but one may: chat-host keeps the Databricks workspace's token current in
//! `serving_token`, renewing it minutes before it expires, so a value is
//! read again once it is [`FRESH_FOR`] old. Failed reads are not cached.

use spin_sdk::variables;
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How long a value read is used before it is read again.
pub const FRESH_FOR: Duration = Duration::from_secs(10);

pub const DB_URL: &str = "db_url";
pub const DEV_USER_EMAIL: &str = "dev_user_email";

/// The variables this instance has read so far, by name, with when each was
/// read (milliseconds since the epoch).
static READ_SO_FAR: Mutex<BTreeMap<String, (Option<String>, u64)>> = Mutex::new(BTreeMap::new());

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
    let now = crate::store::now_ms();
    let fresh = |read_at: u64| now.saturating_sub(read_at) < FRESH_FOR.as_millis() as u64;
    if let Some((value, _)) = read_so_far()
        .get(name)
        .filter(|(_, read_at)| fresh(*read_at))
    {
        return Ok(value.clone());
    }
    let value = read(name).await?;
    read_so_far().insert(name.to_owned(), (value.clone(), now));
    Ok(value)
}

/// The cache; never locked across an await, so a poisoned lock only means
/// a panic elsewhere, and its map is still whole.
fn read_so_far() -> MutexGuard<'static, BTreeMap<String, (Option<String>, u64)>> {
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
