//! Helpers every transform shares: which side of the record it works on,
//! Kafka's `Requirements` checks with their wording, schema copying as
//! Kafka's `SchemaUtil` does it, and map access for schemaless values.

use std::sync::Arc;

use crate::config_def::ParsedValue;
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::record::ConnectRecord;

pub const TIMESTAMP_LOGICAL: &str = "org.apache.kafka.connect.data.Timestamp";
pub const DATE_LOGICAL: &str = "org.apache.kafka.connect.data.Date";
pub const TIME_LOGICAL: &str = "org.apache.kafka.connect.data.Time";

/// The part of the record a `$Key` or `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

impl Side {
    pub fn schema(self, r: &ConnectRecord) -> Option<&Arc<Schema>> {
        match self {
            Side::Key => r.key_schema.as_ref(),
            Side::Value => r.value_schema.as_ref(),
        }
    }

    pub fn value(self, r: &ConnectRecord) -> &Value {
        match self {
            Side::Key => &r.key,
            Side::Value => &r.value,
        }
    }

    /// Takes the schema and value out of the record (leaving nulls).
    pub fn take(self, r: &mut ConnectRecord) -> (Option<Arc<Schema>>, Value) {
        match self {
            Side::Key => (
                r.key_schema.take(),
                std::mem::replace(&mut r.key, Value::Null),
            ),
            Side::Value => (
                r.value_schema.take(),
                std::mem::replace(&mut r.value, Value::Null),
            ),
        }
    }

    /// The record with this side replaced (Kafka's `newRecord`).
    pub fn with(
        self,
        mut r: ConnectRecord,
        schema: Option<Arc<Schema>>,
        value: Value,
    ) -> ConnectRecord {
        match self {
            Side::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Side::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
        r
    }
}

/// The Java class Kafka's messages name for a value (`nullSafeClassName`).
pub fn java_class(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Boolean(_) => "java.lang.Boolean",
        Value::Int8(_) => "java.lang.Byte",
        Value::Int16(_) => "java.lang.Short",
        Value::Int32(_) => "java.lang.Integer",
        Value::Int64(_) => "java.lang.Long",
        Value::Float32(_) => "java.lang.Float",
        Value::Float64(_) => "java.lang.Double",
        Value::String(_) => "java.lang.String",
        Value::Bytes(_) => "[B",
        Value::Array(_) => "java.util.ArrayList",
        Value::Map(_) => "java.util.HashMap",
        Value::Struct(_) => "org.apache.kafka.connect.data.Struct",
    }
}

/// Kafka's `Requirements.requireStruct`.
pub fn require_struct(v: Value, purpose: &str) -> Result<Struct, DataError> {
    match v {
        Value::Struct(s) => Ok(s),
        other => Err(DataError::new(format!(
            "Only Struct objects supported for [{purpose}], found: {}",
            java_class(&other)
        ))),
    }
}

/// Kafka's `Requirements.requireMap`: schemaless values must be maps.
pub fn require_map(v: Value, purpose: &str) -> Result<Vec<(Value, Value)>, DataError> {
    match v {
        Value::Map(m) => Ok(m),
        other => Err(DataError::new(format!(
            "Only Map objects supported in absence of schema for [{purpose}], found: {}",
            java_class(&other)
        ))),
    }
}

/// Kafka's `Requirements.requireSchema`.
pub fn require_schema<'a>(
    s: Option<&'a Arc<Schema>>,
    purpose: &str,
) -> Result<&'a Arc<Schema>, DataError> {
    s.ok_or_else(|| DataError::new(format!("Schema required for [{purpose}]")))
}

/// Kafka's `SchemaUtil.copySchemaBasics`: name, version, doc and
/// parameters of `source` on a new schema of type `ty` (not its
/// optionality, nor its default).
pub fn copy_basics(source: &Schema, ty: SchemaType) -> Schema {
    let mut s = Schema::of(ty);
    s.name = source.name.clone();
    s.version = source.version;
    s.doc = source.doc.clone();
    s.parameters = source.parameters.clone();
    s
}

/// Appends a field to a struct schema under construction.
pub fn push_field(schema: &mut Schema, name: &str, field: Arc<Schema>) {
    let index = schema.fields.len();
    schema.fields.push(crate::data::Field {
        name: name.to_string(),
        index,
        schema: field,
    });
}

/// A schemaless map's entry under a string key.
pub fn map_get<'a>(m: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    m.iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// Java's `Map.put`: replaces the value of an existing key in place, or
/// appends.
pub fn map_put(m: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match m.iter_mut().find(|(k, _)| k.as_str() == Some(key)) {
        Some(entry) => entry.1 = value,
        None => m.push((Value::String(key.to_string()), value)),
    }
}

/// The string form of a map key, as Java's `String.valueOf` would give it
/// for the common cases.
pub fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => value_to_string(other),
    }
}

/// Java's `toString` of a primitive value (what `Values.convertToString`
/// gives for them).
pub fn value_to_string(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(f) => java_double(*f as f64),
        Value::Float64(f) => java_double(*f),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => format!("{b:?}"),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(value_to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}={}", value_to_string(k), value_to_string(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Struct(s) => format!(
            "Struct{{{}}}",
            s.schema
                .fields
                .iter()
                .zip(&s.values)
                .filter(|(_, v)| !v.is_null())
                .map(|(f, v)| format!("{}={}", f.name, value_to_string(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// Java's `Double.toString` for ordinary magnitudes: always a fraction.
fn java_double(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e7 {
        format!("{f:.1}")
    } else if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// Kafka's `NonEmptyListValidator` (the message after "Invalid value …").
pub fn non_empty_list(v: &ParsedValue) -> Result<(), String> {
    match v {
        ParsedValue::List(l) if l.is_empty() => Err("Empty list".into()),
        _ => Ok(()),
    }
}

/// A primitive schema of `ty`, optional as `like` is.
pub fn primitive_like(ty: SchemaType, optional: bool) -> Arc<Schema> {
    let mut s = Schema::of(ty);
    s.optional = optional;
    Arc::new(s)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A struct schema and a struct of (name, schema, value) triples.
    pub fn record_struct(fields: Vec<(&str, Schema, Value)>) -> (Arc<Schema>, Value) {
        let schema = Arc::new(Schema::structure(
            fields.iter().map(|(n, s, _)| (n.to_string(), s.clone())),
        ));
        let values = fields.into_iter().map(|(_, _, v)| v).collect();
        (schema.clone(), Value::Struct(Struct { schema, values }))
    }

    /// A schemaless map with string keys.
    pub fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::String(k.to_string()), v))
                .collect(),
        )
    }

    pub fn string(s: &str) -> Value {
        Value::String(s.to_string())
    }

    /// A schemaful value record on topic `t`, partition 0.
    pub fn schemaful(schema: Arc<Schema>, value: Value) -> ConnectRecord {
        let mut r = ConnectRecord::new(
            "t",
            crate::data::SchemaAndValue {
                schema: Some(schema),
                value,
            },
        );
        r.kafka_partition = Some(0);
        r
    }

    pub fn schemaless(value: Value) -> ConnectRecord {
        let mut r = ConnectRecord::new("t", crate::data::SchemaAndValue::schemaless(value));
        r.kafka_partition = Some(0);
        r
    }

    /// The struct inside a value; panics otherwise (tests only).
    pub fn as_struct(v: &Value) -> &Struct {
        match v {
            Value::Struct(s) => s,
            other => panic!("not a struct: {other:?}"),
        }
    }
}
