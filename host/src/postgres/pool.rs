//! One connection pool per database address, shared by every instance a
//! serving thread runs (each serving thread has its own).
//!
//! Guests "open" a connection per request (that is what spin-sdk's API looks
//! like); here that is a pool checkout, so a request pays no connect cost.
//! Each database also has the host's circuit breaker: while the database is
//! out of reach, checkouts fail at once instead of waiting on it.
//!
//! A database takes its connections from a [`ClientFactory`]: deadpool's
//! pool of tokio-postgres connections when serving ([`PooledClients`]), a
//! script in the unit tests below, so the checkout's retries and breaker are
//! tested without a server.

use super::failure::CheckoutFailure;
use super::password::{PasswordSource, RotatingPassword};
use chat_contract::circuit::{Admission, Circuit};
use chat_contract::retry::{COLD_START_RETRY_POLICY, NextStep};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;
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

/// One database: where its connections come from and its circuit breaker,
/// shared by every instance of every component.
pub struct Database<F = PooledClients> {
    clients: F,
    settings: PoolSettings,
    circuit: Mutex<Circuit>,
    /// The breaker's clock starts here (tokio's clock, which a test can
    /// pause and advance).
    origin: Instant,
}

/// A connection checked out of its pool.
pub struct Checkout<C = Object> {
    pub client: C,
    /// The pool created it for this checkout (rather than reusing one).
    pub fresh: bool,
}

/// Where a database's connections come from; one attempt each, as the
/// policy and the breaker around it are the database's.
pub trait ClientFactory: Send + Sync + 'static {
    type Client: Send + Sync + 'static;

    /// A connection: one idle in the pool, or one made for this checkout.
    fn get(&self) -> impl Future<Output = Result<Checkout<Self::Client>, CheckoutFailure>> + Send;
}

/// The host's connections: a deadpool pool of tokio-postgres connections.
pub struct PooledClients {
    pool: Pool,
    max_connections: usize,
    checkout_timeout: Duration,
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
            let status = database.clients.pool.status();
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
                let client = database.clients.pool.get().await.ok()?;
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
            database.clients.pool.close();
        }
    }
}

impl Database {
    fn new(
        address: &str,
        ca_root: Option<&str>,
        settings: PoolSettings,
    ) -> Result<Self, CheckoutFailure> {
        let clients = PooledClients::new(address, ca_root, &settings)?;
        Ok(Self::with_clients(clients, settings))
    }
}

impl PooledClients {
    fn new(
        address: &str,
        ca_root: Option<&str>,
        settings: &PoolSettings,
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
            max_connections: settings.max_connections,
            checkout_timeout: settings.checkout_timeout,
        })
    }
}

impl ClientFactory for PooledClients {
    type Client = Object;

    async fn get(&self) -> Result<Checkout, CheckoutFailure> {
        let client = self.pool.get().await.map_err(|error| {
            CheckoutFailure::from_pool(error, self.max_connections, self.checkout_timeout)
        })?;
        let fresh = Object::metrics(&client).recycle_count == 0;
        Ok(Checkout { client, fresh })
    }
}

impl<F: ClientFactory> Database<F> {
    fn with_clients(clients: F, settings: PoolSettings) -> Self {
        Self {
            clients,
            settings,
            circuit: Mutex::new(Circuit::Closed),
            origin: Instant::now(),
        }
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
    pub async fn checkout(&self) -> Result<Checkout<F::Client>, (CheckoutFailure, bool)> {
        self.admit().map_err(|failure| (failure, true))?;
        let mut attempt = 1;
        loop {
            let failure = match self.clients.get().await {
                Ok(checkout) => {
                    self.reached();
                    return Ok(checkout);
                }
                Err(failure) => failure,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::bindings::DbError;
    use chat_contract::circuit::COOL_DOWN;
    use std::collections::VecDeque;

    /// SQLSTATE cannot_connect_now: the server is still starting.
    const STARTING: &str = "57P03";

    /// Connections as a test scripts them: each checkout takes the next
    /// answer (a connection once the script is spent), and is counted.
    #[derive(Default)]
    struct Script {
        answers: Mutex<VecDeque<CheckoutFailure>>,
        asked: Mutex<Vec<Instant>>,
    }

    impl ClientFactory for Script {
        type Client = ();

        async fn get(&self) -> Result<Checkout<()>, CheckoutFailure> {
            self.asked.lock().unwrap().push(Instant::now());
            match self.answers.lock().unwrap().pop_front() {
                Some(failure) => Err(failure),
                None => Ok(Checkout {
                    client: (),
                    fresh: true,
                }),
            }
        }
    }

    fn database(answers: impl IntoIterator<Item = CheckoutFailure>) -> Database<Script> {
        let script = Script {
            answers: Mutex::new(answers.into_iter().collect()),
            ..Script::default()
        };
        Database::with_clients(script, PoolSettings::default())
    }

    impl Database<Script> {
        /// The times of the checkouts that reached the script.
        fn asked(&self) -> Vec<Instant> {
            self.clients.asked.lock().unwrap().clone()
        }
    }

    fn refused(code: &str) -> CheckoutFailure {
        CheckoutFailure::Refused(Box::new(DbError {
            as_text: format!("refused ({code})"),
            severity: "FATAL".to_owned(),
            code: code.to_owned(),
            message: "refused".to_owned(),
            detail: None,
            extras: Vec::new(),
        }))
    }

    fn unreachable() -> CheckoutFailure {
        CheckoutFailure::Unreachable("connection refused".to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_still_starting_is_asked_again_after_the_policys_waits() {
        let database = database([refused(STARTING), refused(STARTING)]);
        let start = Instant::now();
        assert!(database.checkout().await.is_ok());
        let waits: Vec<_> = database.asked().iter().map(|at| *at - start).collect();
        assert_eq!(
            waits,
            [0, 5, 15].map(Duration::from_secs),
            "three attempts, 5 s and then 10 s apart"
        );
        assert!(!database.circuit().is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_stays_starting_opens_the_breaker_and_the_error_is_marked() {
        let database = database([refused(STARTING), refused(STARTING), refused(STARTING)]);
        let Err((failure, retried)) = database.checkout().await else {
            panic!("the third refusal is the last attempt");
        };
        assert_eq!(failure.code(), Some(STARTING));
        assert!(retried, "the guest must not retry it again");
        assert_eq!(database.asked().len(), 3);
        assert!(database.circuit().is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_fails_checkouts_at_once_until_one_probes_after_the_cool_down() {
        let database = database([unreachable()]);
        assert!(matches!(
            database.checkout().await,
            Err((CheckoutFailure::Unreachable(_), true))
        ));
        assert!(matches!(
            database.checkout().await,
            Err((CheckoutFailure::CircuitOpen(_), true))
        ));
        assert_eq!(database.asked().len(), 1, "an open breaker asks nobody");

        tokio::time::advance(COOL_DOWN).await;
        assert!(database.checkout().await.is_ok(), "the probe");
        assert!(
            !database.circuit().is_open(),
            "the answer closes the breaker"
        );
        assert_eq!(database.asked().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn while_a_probe_is_under_way_the_others_keep_skipping() {
        let database = database([unreachable()]);
        let _ = database.checkout().await;
        tokio::time::advance(COOL_DOWN).await;
        database.admit().expect("the probe");
        assert!(matches!(
            database.admit(),
            Err(CheckoutFailure::CircuitOpen(_))
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_pool_or_a_refusal_outside_the_policy_is_neither_retried_nor_trips() {
        let busy = CheckoutFailure::Busy {
            max: 4,
            waited: Duration::from_secs(10),
        };
        // 28P01: invalid_password.
        for failure in [busy, refused("28P01")] {
            let database = database([failure]);
            assert!(matches!(database.checkout().await, Err((_, false))));
            assert_eq!(database.asked().len(), 1);
            assert!(!database.circuit().is_open());
        }
    }
}
