//! The stores that live in this process: in memory, or durable in a SQLite
//! file in Spin's layout (`type = "spin"`).

use super::Error;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

/// One store: its entries in memory (every read is served from there), and
/// for a durable store the SQLite file every write goes to before it counts.
/// One process owns a store file at a time.
pub struct LocalStore {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    file: Option<SqliteFile>,
}

/// A SQLite file in Spin's layout (table `spin_key_value`, one row per
/// store and key), so the same file opens under `spin up`.
struct SqliteFile {
    connection: Mutex<rusqlite::Connection>,
    label: String,
}

impl LocalStore {
    pub fn in_memory() -> Self {
        Self {
            entries: Mutex::default(),
            file: None,
        }
    }

    /// Opens (or creates) the store `label` in the SQLite file at `path`
    /// and loads its entries.
    pub fn durable(label: &str, path: &Path) -> Result<Self> {
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create {}", folder.display()))?;
        }
        let connection = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open the key-value file {}", path.display()))?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 CREATE TABLE IF NOT EXISTS spin_key_value (
                   store TEXT NOT NULL,
                   key   TEXT NOT NULL,
                   value BLOB NOT NULL,
                   PRIMARY KEY (store, key)
                 );",
            )
            .with_context(|| format!("cannot prepare the key-value file {}", path.display()))?;
        let entries = {
            let mut rows =
                connection.prepare("SELECT key, value FROM spin_key_value WHERE store = ?1")?;
            rows.query_map([label], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<HashMap<String, Vec<u8>>>>()
                .with_context(|| format!("cannot read the key-value file {}", path.display()))?
        };
        Ok(Self {
            entries: Mutex::new(entries),
            file: Some(SqliteFile {
                connection: Mutex::new(connection),
                label: label.to_owned(),
            }),
        })
    }

    fn entries(&self) -> MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave a HashMap half-updated.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries().get(key).cloned()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries().contains_key(key)
    }

    pub fn keys(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    /// Stores `value`: in the file first (holding the entries' lock, so file
    /// and memory change in the same order), then in memory.
    pub fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        let mut entries = self.entries();
        if let Some(file) = &self.file {
            file.run(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                (&file.label, &key, &value),
            )?;
        }
        entries.insert(key, value);
        Ok(())
    }

    pub fn delete(&self, key: &str) -> Result<(), Error> {
        let mut entries = self.entries();
        if let Some(file) = &self.file {
            file.run(
                "DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2",
                (&file.label, key),
            )?;
        }
        entries.remove(key);
        Ok(())
    }
}

impl SqliteFile {
    fn run(&self, sql: &str, params: impl rusqlite::Params) -> Result<(), Error> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(params))
            .map(drop)
            .map_err(|error| Error::Other(format!("key-value store {}: {error}", self.label)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_store_keeps_its_entries_across_reopening() {
        let dir = std::env::temp_dir().join(format!("kv-test-{}", rand::random::<u64>()));
        let path = dir.join("nested/kv.db");
        let store = LocalStore::durable("default", &path).unwrap();
        store.set("journal/1".into(), b"first".to_vec()).unwrap();
        store.set("journal/2".into(), b"second".to_vec()).unwrap();
        store.set("journal/1".into(), b"replaced".to_vec()).unwrap();
        store.delete("journal/2").unwrap();
        let other_label = LocalStore::durable("other", &path).unwrap();
        other_label
            .set("journal/1".into(), b"elsewhere".to_vec())
            .unwrap();
        drop((store, other_label));

        let reopened = LocalStore::durable("default", &path).unwrap();
        assert_eq!(reopened.get("journal/1").as_deref(), Some(&b"replaced"[..]));
        assert!(!reopened.contains("journal/2"));
        assert_eq!(reopened.keys(), vec!["journal/1".to_owned()]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_memory_store_forgets_nothing_while_it_lives() {
        let store = LocalStore::in_memory();
        store.set("k".into(), b"v".to_vec()).unwrap();
        assert_eq!(store.get("k").as_deref(), Some(&b"v"[..]));
        store.delete("k").unwrap();
        assert_eq!(store.get("k"), None);
    }
}
