//! A store in Redis, laid out as Spin's `type = "redis"` store lays it out:
//! each key as the guest names it, its value a Redis string, in the database
//! the URL names. So replicas, chat-host and Spin alike, share one store.
//!
//! Redis out of reach must not hold requests up: every operation has a
//! deadline, and after a failure operations fail at once for a short while
//! (the guests then fall back as they do when the store fails). The outage
//! is logged once when it begins and once when Redis answers again.

use super::Error;
use anyhow::{Context, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError, RedisResult};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long connecting, and then one command, may take.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failure, how long operations fail without trying.
const RETRY_AFTER: Duration = Duration::from_secs(1);

pub struct RedisStore {
    connection: ConnectionManager,
    /// Where the store is, without credentials, for the logs.
    address: String,
    /// While Redis is out of reach: when the next operation may try it.
    outage: Mutex<Option<Instant>>,
}

impl RedisStore {
    /// Connects lazily: Redis may be down when the host starts.
    pub fn new(url: &str) -> Result<Self> {
        let address = chat_contract::redact::url_credentials(url).into_owned();
        let client =
            redis::Client::open(url).with_context(|| format!("invalid Redis URL {address}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OPERATION_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            // Reconnect once per operation that finds the connection gone,
            // rather than hold it through a backoff.
            .set_number_of_retries(0);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .with_context(|| format!("cannot set up a connection to Redis at {address}"))?;
        Ok(Self {
            connection,
            address,
            outage: Mutex::new(None),
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        self.run(|mut connection| async move { connection.get(key).await })
            .await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, Error> {
        self.run(|mut connection| async move { connection.exists(key).await })
            .await
    }

    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        self.run(|mut connection| async move { connection.keys("*").await })
            .await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.run(|mut connection| async move { connection.set(key, value).await })
            .await
    }

    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.run(|mut connection| async move { connection.del(key).await })
            .await
    }

    /// Runs one command unless Redis was found out of reach moments ago,
    /// and keeps track of the outage.
    async fn run<T, F>(&self, command: impl Fn(ConnectionManager) -> F) -> Result<T, Error>
    where
        F: Future<Output = RedisResult<T>>,
    {
        if self
            .outage()
            .is_some_and(|retry_at| Instant::now() < retry_at)
        {
            return Err(Error::Other(format!(
                "Redis at {} is out of reach",
                self.address
            )));
        }
        let attempt = async || {
            tokio::time::timeout(OPERATION_TIMEOUT, command(self.connection.clone()))
                .await
                .unwrap_or_else(|_| {
                    Err(RedisError::from(std::io::Error::from(
                        std::io::ErrorKind::TimedOut,
                    )))
                })
        };
        // A connection lost earlier answers with that old failure once and
        // reconnects: the second attempt is the one that finds out.
        let outcome = match attempt().await {
            Err(error) if !reaches_redis(&error) => attempt().await,
            outcome => outcome,
        };
        match outcome {
            Ok(value) => {
                if self.outage().is_some() && self.outage_lock().take().is_some() {
                    tracing::info!("Redis at {} answers again", self.address);
                }
                Ok(value)
            }
            Err(error) if reaches_redis(&error) => {
                // Redis answered: the command itself was refused.
                Err(Error::Other(format!("Redis at {}: {error}", self.address)))
            }
            Err(error) => {
                let began = self
                    .outage_lock()
                    .replace(Instant::now() + RETRY_AFTER)
                    .is_none();
                if began {
                    tracing::warn!(
                        "Redis at {} is out of reach ({error}); key-value operations fail until it \
                         answers, and the components go on without their shared state",
                        self.address
                    );
                }
                Err(Error::Other(format!(
                    "Redis at {} is out of reach: {error}",
                    self.address
                )))
            }
        }
    }

    fn outage_lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // An Option<Instant> cannot be left half-written by a panic.
        self.outage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn outage(&self) -> Option<Instant> {
        *self.outage_lock()
    }
}

/// Whether the error is Redis's answer, rather than no answer at all.
fn reaches_redis(error: &RedisError) -> bool {
    !(error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal())
}
