//! The pluggable parts around a connector: converters (bytes ⇄ Connect
//! data), single message transforms and their predicates. Each is found by
//! Kafka's class name or an alias (see [`crate::plugins`]).

use std::collections::BTreeMap;

use crate::config_def::ConfigDef;
use crate::data::{DataError, SchemaAndValue};
use crate::record::ConnectRecord;

/// Kafka's `Converter` (with `HeaderConverter`'s role for header values).
pub trait Converter: Send + Sync {
    /// The converter's own keys, without the `key.converter.` prefix.
    fn configure(&mut self, config: &BTreeMap<String, String>, is_key: bool) -> Result<(), String>;
    /// `None`: a null (tombstone) value. Named as Kafka's `fromConnectData`.
    #[allow(clippy::wrong_self_convention)]
    fn from_connect(
        &self,
        topic: &str,
        data: &SchemaAndValue,
    ) -> Result<Option<Vec<u8>>, DataError>;
    fn to_connect(&self, topic: &str, bytes: Option<&[u8]>) -> Result<SchemaAndValue, DataError>;
}

/// Kafka's `Transformation`: `Ok(None)` drops the record.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError>;
}

/// Kafka's `Predicate`, deciding whether a transform applies.
pub trait Predicate: Send + Sync {
    fn test(&self, record: &ConnectRecord) -> bool;
}

/// What kind of plugin, as `GET /connector-plugins` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    Source,
    Sink,
    Converter,
    HeaderConverter,
    Transformation,
    Predicate,
}

impl PluginKind {
    pub fn name(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Sink => "sink",
            PluginKind::Converter => "converter",
            PluginKind::HeaderConverter => "header_converter",
            PluginKind::Transformation => "transformation",
            PluginKind::Predicate => "predicate",
        }
    }
}

/// One plugin's description: what `GET /connector-plugins` lists and
/// `GET /connector-plugins/{plugin}/config` shows.
#[derive(Clone)]
pub struct PluginInfo {
    /// Kafka's fully qualified class name (or `weir.…` for our own).
    pub class: &'static str,
    /// Other names it answers to (Kafka's simple class name and the like).
    pub aliases: &'static [&'static str],
    pub kind: PluginKind,
    pub config_def: fn() -> ConfigDef,
}

impl PluginInfo {
    pub fn answers_to(&self, name: &str) -> bool {
        self.class == name || self.aliases.contains(&name)
    }
}
