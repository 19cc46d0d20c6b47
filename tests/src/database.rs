//! One PostgreSQL cluster per test binary, one fresh database per test.

use chat_host::local_postgres::{Durability, LocalPostgres};
use std::sync::{Mutex, OnceLock};

/// The cluster, started on first use and stopped when the test binary exits
/// (it is our child process and dies with us).
fn cluster() -> &'static Mutex<LocalPostgres> {
    static CLUSTER: OnceLock<Mutex<LocalPostgres>> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("chat-tests-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cluster = LocalPostgres::start(&dir, Durability::Ephemeral)
            .expect("starting the test PostgreSQL");
        Mutex::new(cluster)
    })
}

/// A database of its own for one test.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = cluster().lock().unwrap().url("postgres");
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        chat_host::up::create_database(&admin_url, &name)
            .await
            .expect("creating a test database");
        let url = cluster().lock().unwrap().url(&name);
        Self { name, url }
    }

    /// The first column of every row a query returns.
    pub async fn column<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Vec<T>
    where
        T: for<'a> tokio_postgres::types::FromSql<'a>,
    {
        let rows = self
            .connect()
            .await
            .query(sql, params)
            .await
            .expect("querying the test database");
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// A direct connection, for seeding and checking rows.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .expect("connecting to the test database");
        tokio::spawn(connection);
        client
    }
}
