//! `spin:key-value/key-value@3.0.0`: labelled stores, opened only by the
//! components that list the label in `key_value_stores`.

use crate::component::ComponentContext;
use crate::runtime_config::{KeyValueStoreConfig, RuntimeConfig};
use crate::state::HostState;
use anyhow::Result;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
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

/// One store's contents.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Vec<u8>>>,
}

impl MemoryStore {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave a HashMap half-updated.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Every store the runtime config defines, by label; shared by all instances.
pub struct KeyValueStores {
    by_label: BTreeMap<String, Arc<MemoryStore>>,
}

impl KeyValueStores {
    pub fn new(config: &RuntimeConfig) -> Arc<Self> {
        let by_label = config
            .key_value_store
            .iter()
            .map(|(label, kind)| match kind {
                KeyValueStoreConfig::Memory => (label.clone(), Arc::default()),
            })
            .collect();
        Arc::new(Self { by_label })
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.by_label.keys().map(String::as_str)
    }
}

/// A store a guest has opened.
pub struct OpenStore(Arc<MemoryStore>);

pub struct KeyValueState {
    component: Arc<ComponentContext>,
}

impl KeyValueState {
    pub fn new(component: &Arc<ComponentContext>) -> Self {
        Self {
            component: component.clone(),
        }
    }

    fn open(&self, label: &str) -> Result<Arc<MemoryStore>, Error> {
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

fn store_of<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> wasmtime::Result<Arc<MemoryStore>> {
    accessor.with(|mut access| Ok(access.get().table.get(store)?.0.clone()))
}

impl<T> bindings::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<OpenStore>, Error>> {
        accessor.with(|mut access| {
            let view = access.get();
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
        Ok(Ok(store_of(accessor, &store)?.entries().get(&key).cloned()))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), Error>> {
        store_of(accessor, &store)?.entries().insert(key, value);
        Ok(Ok(()))
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<(), Error>> {
        store_of(accessor, &store)?.entries().remove(&key);
        Ok(Ok(()))
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> wasmtime::Result<Result<bool, Error>> {
        Ok(Ok(store_of(accessor, &store)?.entries().contains_key(&key)))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let keys: Vec<String> = store_of(accessor, &store)?
            .entries()
            .keys()
            .cloned()
            .collect();
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
