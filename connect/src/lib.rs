//! Kafka Connect-compatible worker runtime: the data model connectors,
//! converters and transforms share, and (as they land) workers, the REST
//! API and built-in connectors. See docs/architecture.md.

pub mod config_def;
pub mod connector;
pub mod connectors;
pub mod converter;
pub mod data;
pub mod errors;
pub mod loggers;
pub mod offset_request;
pub mod plugin;
pub mod record;
pub mod rest;
pub mod store;
pub mod transforms;
pub mod validate;
pub mod worker;

/// `[(key, value)]` as a property map, for tests.
#[cfg(test)]
pub(crate) fn test_props(kv: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
