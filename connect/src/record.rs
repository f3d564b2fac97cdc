//! Records between connectors and the framework.

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use crate::data::{Schema, SchemaAndValue, Value};

/// A header with its (optional) schema, as Kafka Connect's `Header`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub schema: Option<Arc<Schema>>,
    pub value: Value,
}

/// What transforms and predicates see: Kafka's `ConnectRecord`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRecord {
    pub topic: String,
    pub kafka_partition: Option<i32>,
    pub key_schema: Option<Arc<Schema>>,
    pub key: Value,
    pub value_schema: Option<Arc<Schema>>,
    pub value: Value,
    /// Milliseconds since the epoch.
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
    /// The record's offset in its topic partition: set on records a sink
    /// task receives (Kafka's `SinkRecord.kafkaOffset()`), `None` on
    /// source records.
    pub kafka_offset: Option<i64>,
}

impl ConnectRecord {
    /// A schemaless record with a null key.
    pub fn new(topic: impl Into<String>, value: SchemaAndValue) -> Self {
        ConnectRecord {
            topic: topic.into(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema: value.schema,
            value: value.value,
            timestamp: None,
            headers: Vec::new(),
            kafka_offset: None,
        }
    }

    pub fn with_key(mut self, key: SchemaAndValue) -> Self {
        self.key_schema = key.schema;
        self.key = key.value;
        self
    }
}

/// A record a source task produced, with where it came from: Kafka
/// Connect's source partition and offset (JSON maps, stored in the offsets
/// topic under the connector's name).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub record: ConnectRecord,
    pub source_partition: Map<String, Json>,
    pub source_offset: Map<String, Json>,
}

/// A record a sink task receives, with its place in the topic.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub record: ConnectRecord,
    pub kafka_offset: i64,
}
