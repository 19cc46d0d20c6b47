//! `spin:key-value/key-value@3.0.0`: labelled stores, opened only by the
//! components that list the label in `key_value_stores`; in memory, or
//! durable in a SQLite file (Spin's `type = "spin"`), as the runtime config
//! says.

use crate::component::ComponentContext;
use crate::runtime_config::{KeyValueStoreConfig, RuntimeConfig};
use crate::state::HostState;
use anyhow::{Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin-key-value@3.0.0",
        inline: "package chat-history:host-key-value; world key-value { import spin:key-value/key-value@3.0.0; }",
        imports: { default: async | trappable },
        with: { "spin:key-value/key-value.store": super::OpenStore },
    });
    pub use spin::key_value::key_value::*;
}

use bindings::Error;

/// One store: its entries in memory (every read is served from there), and
/// for a durable store the SQLite file every write goes to before it counts.
/// One process owns a store file at a time.
pub struct Store {
    entries: Mutex<HashMap<String, Vec<u8>>>,
    file: Option<SqliteFile>,
}

/// A SQLite file in Spin's layout (table `spin_key_value`, one row per
/// store and key), so the same file opens under `spin up`.
struct SqliteFile {
    connection: Mutex<rusqlite::Connection>,
    label: String,
}

impl Store {
    fn in_memory() -> Self {
        Self {
            entries: Mutex::default(),
            file: None,
        }
    }

    /// Opens (or creates) the store `label` in the SQLite file at `path`
    /// and loads its entries.
    fn durable(label: &str, path: &Path) -> Result<Self> {
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

    fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries().get(key).cloned()
    }

    fn contains(&self, key: &str) -> bool {
        self.entries().contains_key(key)
    }

    fn keys(&self) -> Vec<String> {
        self.entries().keys().cloned().collect()
    }

    /// Stores `value`: in the file first (holding the entries' lock, so file
    /// and memory change in the same order), then in memory.
    fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
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

    fn delete(&self, key: &str) -> Result<(), Error> {
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

/// Every store the runtime config defines, by label; shared by all instances.
pub struct KeyValueStores {
    by_label: BTreeMap<String, Arc<Store>>,
}

impl KeyValueStores {
    pub fn new(config: &RuntimeConfig) -> Result<Arc<Self>> {
        let by_label = config
            .key_value_store
            .iter()
            .map(|(label, kind)| {
                let store = match kind {
                    KeyValueStoreConfig::Memory | KeyValueStoreConfig::Spin { path: None } => {
                        Store::in_memory()
                    }
                    KeyValueStoreConfig::Spin { path: Some(path) } => {
                        Store::durable(label, path)
                            .with_context(|| format!("key-value store `{label}`"))?
                    }
                };
                Ok((label.clone(), Arc::new(store)))
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(Self { by_label }))
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.by_label.keys().map(String::as_str)
    }
}

/// A store a guest has opened.
pub struct OpenStore(Arc<Store>);

pub struct KeyValueState {
    component: Arc<ComponentContext>,
    /// Opens and operations the guest asked for, for `call_counts`.
    pub operations: u64,
}

impl KeyValueState {
    pub fn new(component: &Arc<ComponentContext>) -> Self {
        Self {
            component: component.clone(),
            operations: 0,
        }
    }

    fn open(&self, label: &str) -> Result<Arc<Store>, Error> {
        if !self
            .component
            .key_value_labels
            .iter()
            .any(|allowed| allowed == label)
        {
            return Err(Error::AccessDenied);
        }
        self.component
            .key_value
            .by_label
            .get(label)
            .cloned()
            .ok_or(Error::NoSuchStore)
    }
}

pub struct KeyValueView<'a> {
    state: &'a mut KeyValueState,
    table: &'a mut ResourceTable,
}

struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// The open store for one operation (counted).
fn store_for_operation<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<Arc<Store>> {
    accessor.with(|mut access| {
        let view = access.get();
        view.state.operations += 1;
        Ok(view.table.get(store)?.0.clone())
    })
}

impl<T> bindings::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            view.state.operations += 1;
            match view.state.open(&label) {
                Ok(store) => Ok(Ok(view.table.push(OpenStore(store))?)),
                Err(error) => Ok(Err(error)),
            }
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, Error>> {
        Ok(Ok(store_for_operation(accessor, &store)?.get(&key)))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_for_operation(accessor, &store)?.set(key, value))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_for_operation(accessor, &store)?.delete(&key))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(store_for_operation(accessor, &store)?.contains(&key)))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let keys = store_for_operation(accessor, &store)?.keys();
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let done = FutureReader::new(&mut access, async { wasmtime::error::Ok(Ok(())) })?;
            Ok((keys, done))
        })
    }
}

impl bindings::HostStore for KeyValueView<'_> {
    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl bindings::Host for KeyValueView<'_> {}

pub fn add_to_linker(linker: &mut Linker<HostState>) -> Result<()> {
    bindings::add_to_linker::<_, KeyValue>(linker, |state| KeyValueView {
        state: &mut state.key_value,
        table: &mut state.table,
    })
    .map_err(crate::engine::anyhow_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_store_keeps_its_entries_across_reopening() {
        let dir = std::env::temp_dir().join(format!("kv-test-{}", rand::random::<u64>()));
        let path = dir.join("nested/kv.db");
        let store = Store::durable("default", &path).unwrap();
        store.set("journal/1".into(), b"first".to_vec()).unwrap();
        store.set("journal/2".into(), b"second".to_vec()).unwrap();
        store.set("journal/1".into(), b"replaced".to_vec()).unwrap();
        store.delete("journal/2").unwrap();
        let other_label = Store::durable("other", &path).unwrap();
        other_label
            .set("journal/1".into(), b"elsewhere".to_vec())
            .unwrap();
        drop((store, other_label));

        let reopened = Store::durable("default", &path).unwrap();
        assert_eq!(reopened.get("journal/1").as_deref(), Some(&b"replaced"[..]));
        assert!(!reopened.contains("journal/2"));
        assert_eq!(reopened.keys(), vec!["journal/1".to_owned()]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_memory_store_forgets_nothing_while_it_lives() {
        let store = Store::in_memory();
        store.set("k".into(), b"v".to_vec()).unwrap();
        assert_eq!(store.get("k").as_deref(), Some(&b"v"[..]));
        store.delete("k").unwrap();
        assert_eq!(store.get("k"), None);
    }
}
