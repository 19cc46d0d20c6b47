//! `spin:key-value/key-value@3.0.0`: labelled stores, opened only by the
//! components that list the label in `key_value_stores`; in memory, durable
//! in a SQLite file (Spin's `type = "spin"`, in `local`), or in Redis
//! (Spin's `type = "redis"`, in `redis_store`), as the runtime config says.

use crate::runtime_config::KeyValueStoreConfig;
use anyhow::{Context, Result};
use local::LocalStore;
use redis_store::RedisStore;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::{
    Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader,
};

mod local;
mod redis_store;

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

/// One store, as the runtime config defines it.
enum Store {
    Local(LocalStore),
    Redis(RedisStore),
}

impl Store {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        match self {
            Self::Local(store) => Ok(store.get(key)),
            Self::Redis(store) => store.get(key).await,
        }
    }

    async fn exists(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Local(store) => Ok(store.contains(key)),
            Self::Redis(store) => store.exists(key).await,
        }
    }

    async fn keys(&self) -> Result<Vec<String>, Error> {
        match self {
            Self::Local(store) => Ok(store.keys()),
            Self::Redis(store) => store.keys().await,
        }
    }

    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), Error> {
        match self {
            Self::Local(store) => store.set(key, value),
            Self::Redis(store) => store.set(&key, &value).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        match self {
            Self::Local(store) => store.delete(key),
            Self::Redis(store) => store.delete(key).await,
        }
    }
}

/// Every store the runtime config defines, by label; shared by all instances.
pub struct KeyValueStores {
    by_label: BTreeMap<String, Arc<Store>>,
}

impl KeyValueStores {
    /// The stores the runtime config defines (its `key_value_store` tables).
    pub fn new(stores: &BTreeMap<String, KeyValueStoreConfig>) -> Result<Arc<Self>> {
        let by_label = stores
            .iter()
            .map(|(label, kind)| {
                let store = match kind {
                    KeyValueStoreConfig::Memory | KeyValueStoreConfig::Spin { path: None } => {
                        Store::Local(LocalStore::in_memory())
                    }
                    KeyValueStoreConfig::Spin { path: Some(path) } => Store::Local(
                        LocalStore::durable(label, path)
                            .with_context(|| format!("key-value store `{label}`"))?,
                    ),
                    KeyValueStoreConfig::Redis { url } => Store::Redis(
                        RedisStore::new(url)
                            .with_context(|| format!("key-value store `{label}`"))?,
                    ),
                };
                Ok((label.clone(), Arc::new(store)))
            })
            .collect::<Result<_>>()?;
        Ok(Arc::new(Self { by_label }))
    }

    /// How many keys of the store `label` start with `prefix`.
    pub async fn count_keys(&self, label: &str, prefix: &str) -> Result<usize> {
        let store = self
            .by_label
            .get(label)
            .with_context(|| format!("no key-value store {label:?}"))?;
        let keys = store
            .keys()
            .await
            .map_err(|error| anyhow::anyhow!("listing the keys of {label:?}: {error:?}"))?;
        Ok(keys.iter().filter(|key| key.starts_with(prefix)).count())
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.by_label.keys().map(String::as_str)
    }
}

/// A store a guest has opened.
pub struct OpenStore(Arc<Store>);

/// What a component's guests may open: the app's stores, and of them the
/// labels its `key_value_stores` lists.
pub struct KeyValueConfig {
    pub stores: Arc<KeyValueStores>,
    pub labels: Vec<String>,
}

/// One instance's slice of the store.
pub struct KeyValueState {
    config: Arc<KeyValueConfig>,
    /// Opens and operations the guest asked for, for `call_counts`.
    pub operations: u64,
}

impl KeyValueState {
    pub fn new(config: Arc<KeyValueConfig>) -> Self {
        Self {
            config,
            operations: 0,
        }
    }

    fn open(&self, label: &str) -> Result<Arc<Store>, Error> {
        if !self.config.labels.iter().any(|allowed| allowed == label) {
            return Err(Error::AccessDenied);
        }
        self.config
            .stores
            .by_label
            .get(label)
            .cloned()
            .ok_or(Error::NoSuchStore)
    }
}

/// What the capability borrows of the store for one call.
pub struct KeyValueCtxView<'a> {
    pub state: &'a mut KeyValueState,
    pub table: &'a mut ResourceTable,
}

/// Store data that can lend the capability its slice.
pub trait KeyValueView: Send {
    fn key_value(&mut self) -> KeyValueCtxView<'_>;
}

struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueCtxView<'a>;
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
        Ok(store_for_operation(accessor, &store)?.get(&key).await)
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_for_operation(accessor, &store)?.set(key, value).await)
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        Ok(store_for_operation(accessor, &store)?.delete(&key).await)
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(store_for_operation(accessor, &store)?.exists(&key).await)
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        // A store that cannot list its keys sends none, then the error.
        let (keys, outcome) = match store_for_operation(accessor, &store)?.keys().await {
            Ok(keys) => (keys, Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        };
        accessor.with(|mut access| {
            let keys = StreamReader::new(&mut access, keys)?;
            let done = FutureReader::new(&mut access, async { wasmtime::error::Ok(outcome) })?;
            Ok((keys, done))
        })
    }
}

impl bindings::HostStore for KeyValueCtxView<'_> {
    async fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl bindings::Host for KeyValueCtxView<'_> {}

pub fn add_to_linker<T: KeyValueView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::add_to_linker::<T, KeyValue>(linker, T::key_value)
}
