//! One connection pool per database address, shared by every instance a
//! serving thread runs (each serving thread has its own).
//!
//! Guests "open" a connection per request (that is what spin-sdk's API looks
//! like); here that is a pool checkout, so a request pays no connect cost.
//! Each database also has the host's circuit breaker: while the database is
//! out of reach, checkouts fail at once instead of waiting on it.

use super::failure::CheckoutFailure;
use super::password::{PasswordSource, RotatingPassword};
use chat_contract::circuit::{Admission, Circuit};
use chat_contract::retry::{COLD_START_RETRY_POLICY, NextStep};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Limits that keep a slow or absent database from hanging requests.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// How long establishing one connection may take.
    pub connect_timeout: Duration,
    /// How long a request waits for a free connection before it fails.
    pub checkout_timeout: Duration,
    /// How long one statement may go without an answer.
    pub statement_timeout: Duration,
    /// Where each new connection's password comes from, when not from the
    /// address.
    pub password: Option<PasswordSource>,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 32,
            connect_timeout: Duration::from_secs(5),
            checkout_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            password: None,
        }
    }
}

impl PoolSettings {
    /// The settings for each pool when `threads` serving threads keep one
    /// of their own: the connection budget is shared out, four at least.
    pub fn shared_by(&self, threads: usize) -> Self {
        Self {
            max_connections: (self.max_connections / threads.max(1)).max(4),
            ..self.clone()
        }
    }
}

/// What the pools hold right now, summed over their databases.
#[derive(Debug, Default, Clone, Copy)]
pub struct PoolStatus {
    pub in_use: usize,
    pub idle: usize,
    pub waiting: usize,
    pub breakers_open: usize,
}

/// Pools are keyed by address and by the extra CA root a guest supplied.
type PoolKey = (String, Option<String>);

pub struct Pools {
    settings: PoolSettings,
    by_address: Mutex<HashMap<PoolKey, Arc<Database>>>,
}

/// One database: its pool of connections and its circuit breaker, shared by
/// every instance of every component.
pub struct Database {
    pool: Pool,
    settings: PoolSettings,
    circuit: Mutex<Circuit>,
    /// The breaker's clock starts here.
    origin: Instant,
}

/// A connection checked out of its pool.
pub struct Checkout {
    pub client: Object,
    /// The pool created it for this checkout (rather than reusing one).
    pub fresh: bool,
}

impl Pools {
    pub fn new(settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            by_address: Mutex::new(HashMap::new()),
        })
    }

    fn by_address(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Arc<Database>>> {
        // A map of pools is never left half-changed by a panic.
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The database at `address`, creating its pool on first use.
    pub fn database(
        &self,
        address: &str,
        ca_root: Option<&str>,
    ) -> Result<Arc<Database>, CheckoutFailure> {
        let key = (address.to_owned(), ca_root.map(str::to_owned));
        let mut pools = self.by_address();
        if let Some(database) = pools.get(&key) {
            return Ok(database.clone());
        }
        let database = Arc::new(Database::new(address, ca_root, self.settings.clone())?);
        pools.insert(key, database.clone());
        Ok(database)
    }

    /// Connections and breakers over every database.
    pub fn status(&self) -> PoolStatus {
        let pools = self.by_address();
        let mut total = PoolStatus::default();
        for database in pools.values() {
            let status = database.pool.status();
            total.in_use += status.size.saturating_sub(status.available);
            total.idle += status.available;
            total.waiting += status.waiting;
            total.breakers_open += usize::from(database.circuit().is_open());
        }
        total
    }

    /// The sum of `count` (a query answering one bigint) over every
    /// database, each given `limit` to answer; `None` when one cannot (its
    /// breaker open, no connection, no answer) or none has been opened yet.
    /// Bypasses the breaker and the retry policy: a scrape must neither trip
    /// nor wait on them.
    pub async fn count_on_each(&self, count: &str, limit: Duration) -> Option<i64> {
        let databases: Vec<Arc<Database>> = self.by_address().values().cloned().collect();
        if databases.is_empty() {
            return None;
        }
        let mut total = 0;
        for database in databases {
            if database.circuit().is_open() {
                return None;
            }
            let counted = tokio::time::timeout(limit, async {
                let client = database.pool.get().await.ok()?;
                client
                    .query_one(count, &[])
                    .await
                    .ok()?
                    .try_get::<_, i64>(0)
                    .ok()
            });
            total += counted.await.ok().flatten()?;
        }
        Some(total)
    }

    /// Closes every pool, so no connection outlives the host (or sees its
    /// managed database stop under it).
    pub fn close_all(&self) {
        let pools = self.by_address();
        for database in pools.values() {
            database.pool.close();
        }
    }
}

impl Database {
    fn new(
        address: &str,
        ca_root: Option<&str>,
        settings: PoolSettings,
    ) -> Result<Self, CheckoutFailure> {
        let mut config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| CheckoutFailure::InvalidAddress(e.to_string()))?;
        config.connect_timeout(settings.connect_timeout);
        let tls = MakeRustlsConnect::new(tls_config(ca_root)?);
        let manager_config = ManagerConfig {
            // A connection the server closed while it sat in the pool is
            // noticed here and replaced, at no cost to the request.
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match settings.password.clone() {
            Some(source) => {
                Manager::from_connect(config, RotatingPassword { source, tls }, manager_config)
            }
            None => Manager::from_config(config, tls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.max_connections)
            .wait_timeout(Some(settings.checkout_timeout))
            .create_timeout(Some(settings.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| CheckoutFailure::InvalidAddress(e.to_string()))?;
        Ok(Self {
            pool,
            settings,
            circuit: Mutex::new(Circuit::Closed),
            origin: Instant::now(),
        })
    }

    pub fn statement_timeout(&self) -> Duration {
        self.settings.statement_timeout
    }

    pub fn max_connections(&self) -> usize {
        self.settings.max_connections
    }

    /// A connection, behind the breaker and under the retry policy: a server
    /// that is still starting (57P03) gets the policy's backoff; one that is
    /// not there at all opens the breaker at once. The error says whether
    /// the policy was applied (`true`: the guest must not retry it again).
    pub async fn checkout(&self) -> Result<Checkout, (CheckoutFailure, bool)> {
        self.admit().map_err(|failure| (failure, true))?;
        let mut attempt = 1;
        loop {
            let failure = match self.pool.get().await {
                Ok(client) => {
                    self.reached();
                    let fresh = Object::metrics(&client).recycle_count == 0;
                    return Ok(Checkout { client, fresh });
                }
                Err(error) => CheckoutFailure::from_pool(
                    error,
                    self.settings.max_connections,
                    self.settings.checkout_timeout,
                ),
            };
            if matches!(failure, CheckoutFailure::Unreachable(_)) {
                self.trip(&failure);
                return Err((failure, true));
            }
            let code = failure.code().map(str::to_owned);
            match COLD_START_RETRY_POLICY.next_step(attempt, code.as_deref()) {
                NextStep::RetryAfter(wait) => {
                    tracing::warn!(
                        "database cold-start retry {attempt}/{} after {failure}: waiting {wait:?}",
                        COLD_START_RETRY_POLICY.max_attempts
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                NextStep::GiveUp => {
                    let retried = code.is_some_and(|code| COLD_START_RETRY_POLICY.retries(&code));
                    if retried {
                        self.trip(&failure);
                    }
                    return Err((failure, retried));
                }
            }
        }
    }

    /// Whether the breaker lets a request use the database now.
    fn admit(&self) -> Result<(), CheckoutFailure> {
        let now = self.now();
        let mut circuit = self.circuit();
        match circuit.admit(now) {
            Admission::Pass => Ok(()),
            Admission::Probe => {
                *circuit = Circuit::probing(now);
                Ok(())
            }
            Admission::Skip { for_about } => Err(CheckoutFailure::CircuitOpen(for_about)),
        }
    }

    /// The database answered: closes an open breaker.
    pub fn reached(&self) {
        let mut circuit = self.circuit();
        if circuit.is_open() {
            *circuit = Circuit::Closed;
            tracing::info!("the database answers again: leaving ephemeral mode");
        }
    }

    /// The database is out of reach: opens the breaker for a cool-down.
    pub fn trip(&self, why: &dyn std::fmt::Display) {
        let mut circuit = self.circuit();
        if !circuit.is_open() {
            tracing::warn!(
                "the database is out of reach ({why}): ephemeral mode; probing it again in {:?}",
                chat_contract::circuit::COOL_DOWN
            );
        }
        *circuit = Circuit::tripped(self.now());
    }

    fn circuit(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.circuit
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }
}

/// TLS for managed Postgres such as Lakebase (`sslmode=require`): the public
/// web roots, plus the CA a guest supplied with `set-ca-root`.
fn tls_config(ca_root: Option<&str>) -> Result<rustls::ClientConfig, CheckoutFailure> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_root {
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let certificate = certificate.map_err(|e| {
                CheckoutFailure::InvalidAddress(format!("invalid CA root certificate: {e}"))
            })?;
            roots.add(certificate).map_err(|e| {
                CheckoutFailure::InvalidAddress(format!("unusable CA root certificate: {e}"))
            })?;
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// A connection error with its SQLSTATE when the server sent one.
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut text = error.to_string();
            if let Some(source) = std::error::Error::source(error) {
                text = format!("{text}: {source}");
            }
            text
        }
    }
}
