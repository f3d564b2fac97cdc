//! `ValueToKey`: the record key becomes the listed fields of the value (a
//! struct with their schemas, or a map without schema).

use std::sync::Arc;

use super::BuildError;
use super::util::{Side, map_get, non_empty_list, push_field, require_map, require_struct};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, Validator};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "copying fields from value to key";

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "fields",
            ConfigType::List,
            None,
            Importance::High,
            "Field names on the record value to extract as the record key.",
        )
        .validate_with(Validator::Custom(non_empty_list))
}

struct ValueToKey {
    fields: Vec<String>,
}

pub fn build(p: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(ValueToKey {
        fields: p.list("fields"),
    }))
}

impl Transformation for ValueToKey {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let value = record.value.clone();
        match record.value_schema.clone() {
            None => {
                let map = require_map(value, PURPOSE)?;
                let key = self
                    .fields
                    .iter()
                    .map(|f| {
                        let v = map_get(&map, f).cloned().unwrap_or(Value::Null);
                        (Value::String(f.clone()), v)
                    })
                    .collect();
                record.key_schema = None;
                record.key = Value::Map(key);
            }
            Some(schema) => {
                let value = require_struct(value, PURPOSE)?;
                let mut key_schema = Schema::of(SchemaType::Struct);
                for f in &self.fields {
                    let field = schema
                        .field(f)
                        .ok_or_else(|| DataError::new(format!("Field does not exist: {f}")))?;
                    push_field(&mut key_schema, f, field.schema.clone());
                }
                let key_schema = Arc::new(key_schema);
                let values = self
                    .fields
                    .iter()
                    .map(|f| value.get(f).cloned().unwrap_or(Value::Null))
                    .collect();
                record.key = Value::Struct(Struct {
                    schema: key_schema.clone(),
                    values,
                });
                record.key_schema = Some(key_schema);
            }
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn to_key(fields: &str) -> Box<dyn Transformation> {
        build(
            &def().parse(&props(&[("fields", fields)])).unwrap(),
            Side::Value,
        )
        .unwrap()
    }

    #[test]
    fn schemaful_key_struct() {
        let (schema, value) = record_struct(vec![
            ("a", Schema::of(SchemaType::Int32), Value::Int32(1)),
            ("b", Schema::of(SchemaType::String), string("x")),
        ]);
        let out = to_key("b")
            .apply(schemaful(schema.clone(), value.clone()))
            .unwrap()
            .unwrap();
        let ks = out.key_schema.unwrap();
        assert_eq!(ks.fields.len(), 1);
        assert_eq!(ks.fields[0].schema.ty, SchemaType::String);
        assert_eq!(as_struct(&out.key).get("b"), Some(&string("x")));
        assert_eq!(out.value, value);
        let err = to_key("zz").apply(schemaful(schema, value)).unwrap_err();
        assert_eq!(err.0, "Field does not exist: zz");
    }

    #[test]
    fn schemaless_key_map() {
        let v = map(vec![("a", Value::Int64(1)), ("b", Value::Int64(2))]);
        let out = to_key("b,a").apply(schemaless(v)).unwrap().unwrap();
        assert_eq!(
            out.key,
            map(vec![("b", Value::Int64(2)), ("a", Value::Int64(1))])
        );
        assert_eq!(
            to_key("a").apply(schemaless(Value::Null)).unwrap_err().0,
            "Only Map objects supported in absence of schema for [copying fields from value to key], found: null"
        );
    }
}
