//! `spin:variables/variables@3.0.0`: a component reads the variables it
//! declares in spin.toml, resolved from the app's variables.

use chat_manifest::{VariableError, VariableResolver};
use std::sync::Arc;
use wasmtime::component::{Accessor, HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/deps/spin-variables@3.0.0",
        inline: "package chat-history:host-variables; world variables { import spin:variables/variables@3.0.0; }",
        imports: { default: async },
    });
    pub use spin::variables::variables::*;
}

use bindings::Error;

/// What a component's guests may read: its own variables, resolved from
/// the app's.
pub struct VariablesConfig {
    pub component: String,
    pub resolver: Arc<VariableResolver>,
}

/// One instance's slice of the store.
pub struct VariablesState {
    config: Arc<VariablesConfig>,
    /// Variables the guest read, for `call_counts`.
    pub reads: u64,
}

impl VariablesState {
    pub fn new(config: Arc<VariablesConfig>) -> Self {
        Self { config, reads: 0 }
    }

    fn get(&mut self, name: &str) -> Result<String, Error> {
        self.reads += 1;
        self.config
            .resolver
            .component_variable(&self.config.component, name)
            .map_err(|error| match error {
                VariableError::InvalidName(..) => Error::InvalidName(name.to_owned()),
                VariableError::Undefined(..) => Error::Undefined(name.to_owned()),
                other => Error::Provider(other.to_string()),
            })
    }
}

/// Store data that can lend the capability its slice.
pub trait VariablesView: Send {
    fn variables(&mut self) -> &mut VariablesState;
}

struct Variables;

impl HasData for Variables {
    type Data<'a> = &'a mut VariablesState;
}

impl<T> bindings::HostWithStore<T> for Variables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, Error> {
        accessor.with(|mut access| access.get().get(&name))
    }
}

impl bindings::Host for &mut VariablesState {}

pub fn add_to_linker<T: VariablesView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    bindings::add_to_linker::<T, Variables>(linker, T::variables)
}
