//! `spin:variables/variables@3.0.0`: a component reads the variables it
//! declares in spin.toml, resolved from the app's variables.

use crate::component::ComponentContext;
use anyhow::Result;
use chat_manifest::VariableError;
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

pub struct VariablesState {
    component: Arc<ComponentContext>,
    /// Variables the guest read, for `call_counts`.
    pub reads: u64,
}

impl VariablesState {
    pub fn new(component: &Arc<ComponentContext>) -> Self {
        Self {
            component: component.clone(),
            reads: 0,
        }
    }

    fn get(&mut self, name: &str) -> Result<String, Error> {
        self.reads += 1;
        let component = &self.component;
        component
            .variables
            .component_variable(&component.id, name)
            .map_err(|error| match error {
                VariableError::InvalidName(..) => Error::InvalidName(name.to_owned()),
                VariableError::Undefined(..) => Error::Undefined(name.to_owned()),
                other => Error::Provider(other.to_string()),
            })
    }
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

pub fn add_to_linker(linker: &mut Linker<crate::state::HostState>) -> Result<()> {
    bindings::add_to_linker::<_, Variables>(linker, |state| &mut state.variables)
        .map_err(crate::engine::anyhow_error)
}
