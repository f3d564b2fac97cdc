//! Kafka Connect's data model: schemas and the values they describe, as
//! connectors, converters and transforms exchange them.
//!
//! Logical types (Decimal, Date, Time, Timestamp) are named schemas over a
//! primitive, as in Kafka: a Date is an `Int32` of days since the epoch
//! under the schema name `org.apache.kafka.connect.data.Date`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

/// Kafka Connect's `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The name the JSON converter's envelope and Kafka's error messages use.
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float",
            SchemaType::Float64 => "double",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub index: usize,
    pub schema: Arc<Schema>,
}

/// Kafka Connect's `ConnectSchema`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub ty: SchemaType,
    pub optional: bool,
    pub default: Option<Value>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    /// Struct fields, in order.
    pub fields: Vec<Field>,
    /// Map keys.
    pub key_schema: Option<Arc<Schema>>,
    /// Map values and array elements.
    pub value_schema: Option<Arc<Schema>>,
}

impl Schema {
    pub fn of(ty: SchemaType) -> Self {
        Schema {
            ty,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }

    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn array(elements: Schema) -> Self {
        let mut s = Schema::of(SchemaType::Array);
        s.value_schema = Some(Arc::new(elements));
        s
    }

    pub fn map(keys: Schema, values: Schema) -> Self {
        let mut s = Schema::of(SchemaType::Map);
        s.key_schema = Some(Arc::new(keys));
        s.value_schema = Some(Arc::new(values));
        s
    }

    /// A struct schema with these fields, in order.
    pub fn structure(fields: impl IntoIterator<Item = (String, Schema)>) -> Self {
        let mut s = Schema::of(SchemaType::Struct);
        s.fields = fields
            .into_iter()
            .enumerate()
            .map(|(index, (name, schema))| Field {
                name,
                index,
                schema: Arc::new(schema),
            })
            .collect();
        s
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// A value as connectors and transforms see it. Without a schema a struct
/// is not possible (Kafka's schemaless records use maps).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Boolean(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    /// In insertion order (Java's LinkedHashMap for schemaless JSON).
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Schemaless data from JSON, as Kafka's JsonConverter reads it
    /// without schemas: integers as Int64, other numbers as Float64,
    /// objects as maps with string keys.
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            J::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::String(k.clone()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Kafka Connect's `Struct`: values in the schema's field order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub schema: Arc<Schema>,
    pub values: Vec<Value>,
}

impl Struct {
    /// Every field null; set them with [`Struct::put`].
    pub fn new(schema: Arc<Schema>) -> Self {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.field(name).map(|f| &self.values[f.index])
    }

    /// Sets a field; false when the schema has no field of that name.
    pub fn put(&mut self, name: &str, value: Value) -> bool {
        match self.schema.field(name) {
            Some(f) => {
                let i = f.index;
                self.values[i] = value;
                true
            }
            None => false,
        }
    }
}

/// A value with its schema, `None` for schemaless data.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaAndValue {
    pub schema: Option<Arc<Schema>>,
    pub value: Value,
}

impl SchemaAndValue {
    pub fn schemaless(value: Value) -> Self {
        SchemaAndValue {
            schema: None,
            value,
        }
    }

    pub fn null() -> Self {
        Self::schemaless(Value::Null)
    }
}

/// What a converter or transform says about data it cannot handle
/// (Kafka's `DataException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DataError(pub String);

impl DataError {
    pub fn new(message: impl Into<String>) -> Self {
        DataError(message.into())
    }
}
