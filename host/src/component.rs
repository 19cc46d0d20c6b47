//! One component of the app as its host capabilities see it: each
//! capability's configuration, built from what spin.toml declares of it.

use crate::key_value::{KeyValueConfig, KeyValueStores};
use crate::metrics::Metrics;
use crate::outbound_http::{ChainedRequests, OutboundHttpConfig};
use crate::postgres::{Pools, PostgresConfig};
use crate::variables::VariablesConfig;
use anyhow::{Context, Result};
use chat_manifest::{AllowedHosts, VariableResolver};
use std::sync::Arc;

/// What a component's instances are given; shared by all of them.
pub struct ComponentContext {
    pub id: String,
    pub environment: Vec<(String, String)>,
    pub postgres: Arc<PostgresConfig>,
    pub key_value: Arc<KeyValueConfig>,
    pub variables: Arc<VariablesConfig>,
    pub outbound_http: Arc<OutboundHttpConfig>,
    /// Where its instances report what they asked of the host, if anywhere.
    pub metrics: Option<Arc<Metrics>>,
}

impl ComponentContext {
    /// The context of component `id` as spin.toml declares it, with the
    /// app's variables, pools, stores and way to the other components.
    pub fn declared(
        id: &str,
        declared: &chat_manifest::Component,
        variables: Arc<VariableResolver>,
        postgres: Arc<Pools>,
        key_value: Arc<KeyValueStores>,
        chained: impl ChainedRequests + 'static,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Self> {
        let allowed_hosts = Arc::new(
            AllowedHosts::parse(&declared.allowed_outbound_hosts, &variables)
                .with_context(|| format!("allowed_outbound_hosts of component {id}"))?,
        );
        Ok(Self {
            id: id.to_owned(),
            environment: declared.environment.clone().into_iter().collect(),
            postgres: Arc::new(PostgresConfig {
                component: id.to_owned(),
                allowed_hosts: allowed_hosts.clone(),
                pools: postgres,
            }),
            key_value: Arc::new(KeyValueConfig {
                stores: key_value,
                labels: declared.key_value_stores.clone(),
            }),
            variables: Arc::new(VariablesConfig {
                component: id.to_owned(),
                resolver: variables,
            }),
            outbound_http: Arc::new(OutboundHttpConfig {
                component: id.to_owned(),
                allowed_hosts,
                chained: Arc::new(chained),
            }),
            metrics,
        })
    }
}
