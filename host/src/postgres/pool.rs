//! One connection pool per database address, shared by every instance.
//!
//! Guests "open" a connection per request (that is what spin-sdk's API looks
//! like); here that is a pool checkout, so a request pays no connect cost.

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Limits that keep a slow or absent database from hanging requests.
#[derive(Clone, Debug)]
pub struct PoolSettings {
    pub max_connections: usize,
    /// How long establishing one connection may take.
    pub connect_timeout: Duration,
    /// How long a request waits for a free connection before it fails.
    pub checkout_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 32,
            connect_timeout: Duration::from_secs(5),
            checkout_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection could not be handed to the guest.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("invalid Postgres connection string: {0}")]
    InvalidAddress(String),
    #[error("timed out after {0:?} waiting for a database connection")]
    Timeout(Duration),
    #[error("could not connect to the database: {0}")]
    Connect(String),
}

/// Pools are keyed by address and by the extra CA root a guest supplied.
type PoolKey = (String, Option<String>);

pub struct Pools {
    settings: PoolSettings,
    by_address: Mutex<HashMap<PoolKey, Pool>>,
}

impl Pools {
    pub fn new(settings: PoolSettings) -> Arc<Self> {
        Arc::new(Self {
            settings,
            by_address: Mutex::new(HashMap::new()),
        })
    }

    /// Checks out a connection to `address`, creating its pool on first use.
    pub async fn checkout(
        &self,
        address: &str,
        ca_root: Option<&str>,
    ) -> Result<Object, CheckoutError> {
        let pool = self.pool_for(address, ca_root)?;
        pool.get().await.map_err(|error| match error {
            PoolError::Timeout(_) => CheckoutError::Timeout(self.settings.checkout_timeout),
            PoolError::Backend(e) => CheckoutError::Connect(describe(&e)),
            other => CheckoutError::Connect(other.to_string()),
        })
    }

    /// Closes every pool, so no connection outlives the host (or sees its
    /// managed database stop under it).
    pub fn close_all(&self) {
        let pools = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for pool in pools.values() {
            pool.close();
        }
    }

    fn pool_for(&self, address: &str, ca_root: Option<&str>) -> Result<Pool, CheckoutError> {
        let key = (address.to_owned(), ca_root.map(str::to_owned));
        let mut pools = self
            .by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let mut config: tokio_postgres::Config = address
            .parse()
            .map_err(|e: tokio_postgres::Error| CheckoutError::InvalidAddress(e.to_string()))?;
        config.connect_timeout(self.settings.connect_timeout);
        let manager = Manager::from_config(
            config,
            MakeRustlsConnect::new(tls_config(ca_root)?),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(self.settings.max_connections)
            .wait_timeout(Some(self.settings.checkout_timeout))
            .create_timeout(Some(self.settings.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| CheckoutError::InvalidAddress(e.to_string()))?;
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// TLS for managed Postgres such as Lakebase (`sslmode=require`): the public
/// web roots, plus the CA a guest supplied with `set-ca-root`.
fn tls_config(ca_root: Option<&str>) -> Result<rustls::ClientConfig, CheckoutError> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots =
        rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = ca_root {
        for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let certificate = certificate.map_err(|e| {
                CheckoutError::InvalidAddress(format!("invalid CA root certificate: {e}"))
            })?;
            roots.add(certificate).map_err(|e| {
                CheckoutError::InvalidAddress(format!("unusable CA root certificate: {e}"))
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
