//! `InsertField$Key` / `$Value`: adds the record's topic, partition,
//! offset, timestamp or a static string as fields. A field name ending in
//! `!` makes the field required in the new schema, `?` (or nothing)
//! optional.

use std::sync::Arc;

use super::BuildError;
use super::util::{
    Side, TIMESTAMP_LOGICAL, copy_basics, map_put, push_field, require_map, require_struct,
};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "field insertion";

pub fn def() -> ConfigDef {
    let key = |def: ConfigDef, name: &str, doc: &str| {
        def.define(name, ConfigType::String, None, Importance::Medium, doc)
            .nullable()
    };
    let def = key(
        ConfigDef::new(),
        "topic.field",
        "Field name for Kafka topic. Suffix with ! to make this a required field, or ? to keep it optional (the default).",
    );
    let def = key(
        def,
        "partition.field",
        "Field name for Kafka partition. Suffix with ! to make this a required field, or ? to keep it optional (the default).",
    );
    let def = key(
        def,
        "offset.field",
        "Field name for Kafka offset - only applicable to sink connectors. Suffix with ! to make this a required field, or ? to keep it optional (the default).",
    );
    let def = key(
        def,
        "timestamp.field",
        "Field name for record timestamp. Suffix with ! to make this a required field, or ? to keep it optional (the default).",
    );
    let def = key(
        def,
        "static.field",
        "Field name for static data field. Suffix with ! to make this a required field, or ? to keep it optional (the default).",
    );
    key(
        def,
        "static.value",
        "Static field value, if field name configured.",
    )
}

/// A configured field name and whether the new schema requires it.
#[derive(Debug, Clone)]
struct InsertionSpec {
    name: String,
    optional: bool,
}

impl InsertionSpec {
    fn parse(spec: Option<&str>) -> Option<InsertionSpec> {
        let spec = spec?;
        if spec.is_empty() {
            return None;
        }
        Some(if let Some(name) = spec.strip_suffix('!') {
            InsertionSpec {
                name: name.to_string(),
                optional: false,
            }
        } else {
            InsertionSpec {
                name: spec.strip_suffix('?').unwrap_or(spec).to_string(),
                optional: true,
            }
        })
    }
}

struct InsertField {
    side: Side,
    topic: Option<InsertionSpec>,
    partition: Option<InsertionSpec>,
    offset: Option<InsertionSpec>,
    timestamp: Option<InsertionSpec>,
    static_field: Option<InsertionSpec>,
    static_value: Option<String>,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let spec = |k: &str| InsertionSpec::parse(p.string(k));
    Ok(Box::new(InsertField {
        side,
        topic: spec("topic.field"),
        partition: spec("partition.field"),
        offset: spec("offset.field"),
        timestamp: spec("timestamp.field"),
        static_field: spec("static.field"),
        static_value: p.string("static.value").map(str::to_string),
    }))
}

impl InsertField {
    /// The (field, schema, value) triples to add, in Kafka's order; a
    /// `None` value is left out (schemaless) or null (schemaful).
    fn insertions(
        &self,
        r: &ConnectRecord,
    ) -> Result<Vec<(&InsertionSpec, Schema, Option<Value>)>, DataError> {
        let mut out = Vec::new();
        if let Some(f) = &self.topic {
            out.push((
                f,
                Schema::of(SchemaType::String),
                Some(Value::String(r.topic.clone())),
            ));
        }
        if let Some(f) = &self.partition {
            out.push((
                f,
                Schema::of(SchemaType::Int32),
                r.kafka_partition.map(Value::Int32),
            ));
        }
        if let Some(f) = &self.offset {
            let offset = r.kafka_offset.ok_or_else(|| {
                DataError::new(format!(
                    "Only SinkRecord supported for [{PURPOSE}], found: org.apache.kafka.connect.source.SourceRecord"
                ))
            })?;
            out.push((f, Schema::of(SchemaType::Int64), Some(Value::Int64(offset))));
        }
        if let Some(f) = &self.timestamp {
            out.push((
                f,
                Schema::of(SchemaType::Int64).named(TIMESTAMP_LOGICAL),
                r.timestamp.map(Value::Int64),
            ));
        }
        if let Some(f) = &self.static_field {
            out.push((
                f,
                Schema::of(SchemaType::String),
                self.static_value.clone().map(Value::String),
            ));
        }
        Ok(out)
    }
}

impl Transformation for InsertField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        // Tombstones pass untouched.
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let insertions = self.insertions(&record)?;
        let mut record = record;
        let (schema, value) = self.side.take(&mut record);
        match schema {
            None => {
                let mut map = require_map(value, PURPOSE)?;
                for (f, _, v) in insertions {
                    if let Some(v) = v {
                        map_put(&mut map, &f.name, v);
                    }
                }
                Ok(Some(self.side.with(record, None, Value::Map(map))))
            }
            Some(schema) => {
                let old = require_struct(value, PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                for f in &schema.fields {
                    push_field(&mut updated, &f.name, f.schema.clone());
                }
                for (f, s, _) in &insertions {
                    let mut s = s.clone();
                    s.optional = f.optional;
                    push_field(&mut updated, &f.name, Arc::new(s));
                }
                let updated = Arc::new(updated);
                let mut new = Struct::new(updated.clone());
                for (f, v) in schema.fields.iter().zip(old.values) {
                    new.put(&f.name, v);
                }
                for (f, _, v) in insertions {
                    if let Some(v) = v {
                        new.put(&f.name, v);
                    }
                }
                Ok(Some(self.side.with(
                    record,
                    Some(updated),
                    Value::Struct(new),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn insert(kv: &[(&str, &str)], side: Side) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), side).unwrap()
    }

    fn all_fields() -> Box<dyn Transformation> {
        insert(
            &[
                ("topic.field", "topic!"),
                ("partition.field", "part"),
                ("offset.field", "off?"),
                ("timestamp.field", "ts"),
                ("static.field", "inst"),
                ("static.value", "42"),
            ],
            Side::Value,
        )
    }

    #[test]
    fn schemaful_adds_fields_and_rebuilds_the_schema() {
        let (schema, value) =
            record_struct(vec![("id", Schema::of(SchemaType::Int32), Value::Int32(7))]);
        let mut r = schemaful(schema, value);
        r.kafka_offset = Some(12);
        r.timestamp = Some(1000);
        let out = all_fields().apply(r).unwrap().unwrap();
        let s = out.value_schema.unwrap();
        let names: Vec<_> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "topic", "part", "off", "ts", "inst"]);
        assert!(!s.field("topic").unwrap().schema.optional);
        assert!(s.field("part").unwrap().schema.optional);
        assert_eq!(
            s.field("ts").unwrap().schema.name.as_deref(),
            Some(TIMESTAMP_LOGICAL)
        );
        let v = as_struct(&out.value);
        assert_eq!(v.get("id"), Some(&Value::Int32(7)));
        assert_eq!(v.get("topic"), Some(&string("t")));
        assert_eq!(v.get("part"), Some(&Value::Int32(0)));
        assert_eq!(v.get("off"), Some(&Value::Int64(12)));
        assert_eq!(v.get("ts"), Some(&Value::Int64(1000)));
        assert_eq!(v.get("inst"), Some(&string("42")));
    }

    #[test]
    fn schemaless_puts_into_the_map() {
        let mut r = schemaless(map(vec![("id", Value::Int64(1))]));
        r.kafka_offset = Some(3);
        let out = all_fields().apply(r).unwrap().unwrap();
        // No timestamp on the record: no `ts` entry.
        assert_eq!(
            out.value,
            map(vec![
                ("id", Value::Int64(1)),
                ("topic", string("t")),
                ("part", Value::Int32(0)),
                ("off", Value::Int64(3)),
                ("inst", string("42")),
            ])
        );
    }

    #[test]
    fn key_side_and_tombstones() {
        let t = insert(&[("topic.field", "topic")], Side::Key);
        let r =
            schemaless(Value::Null).with_key(crate::data::SchemaAndValue::schemaless(map(vec![])));
        let out = t.apply(r).unwrap().unwrap();
        assert_eq!(out.key, map(vec![("topic", string("t"))]));
        let tomb = insert(&[("topic.field", "topic")], Side::Value);
        let r = schemaless(Value::Null);
        assert_eq!(tomb.apply(r.clone()).unwrap(), Some(r));
    }

    #[test]
    fn wrong_types_and_source_offsets_use_kafkas_words() {
        let t = insert(&[("topic.field", "topic")], Side::Value);
        let err = t.apply(schemaless(string("x"))).unwrap_err();
        assert_eq!(
            err.0,
            "Only Map objects supported in absence of schema for [field insertion], found: java.lang.String"
        );
        let r = schemaful(Arc::new(Schema::of(SchemaType::String)), string("x"));
        assert_eq!(
            t.apply(r).unwrap_err().0,
            "Only Struct objects supported for [field insertion], found: java.lang.String"
        );
        let o = insert(&[("offset.field", "o")], Side::Value);
        let err = o.apply(schemaless(map(vec![]))).unwrap_err();
        assert!(
            err.0
                .starts_with("Only SinkRecord supported for [field insertion]")
        );
    }
}
