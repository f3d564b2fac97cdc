//! `MaskField$Key` / `$Value`: replaces the listed fields with their type's
//! "empty" value (0, false, "", empty array or map), or with
//! `replacement` parsed as the field's type (numbers and strings only).

use super::BuildError;
use super::util::{
    Side, java_class, map_get, map_put, non_empty_list, require_map, require_struct,
};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, Validator};
use crate::data::{DataError, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "mask fields";

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "fields",
            ConfigType::List,
            None,
            Importance::High,
            "Names of fields to mask.",
        )
        .validate_with(Validator::Custom(non_empty_list))
        .define(
            "replacement",
            ConfigType::String,
            None,
            Importance::Low,
            "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).",
        )
        .nullable()
        .validate_with(Validator::NonEmpty)
}

struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(MaskField {
        side,
        fields: p.list("fields"),
        replacement: p.string("replacement").map(str::to_string),
    }))
}

impl MaskField {
    fn masked(&self, v: &Value) -> Result<Value, DataError> {
        match &self.replacement {
            None => empty_of(v),
            Some(r) => replaced(v, r),
        }
    }
}

/// The type's "empty" value, as Kafka's `PRIMITIVE_VALUE_MAPPING`.
fn empty_of(v: &Value) -> Result<Value, DataError> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Boolean(_) => Value::Boolean(false),
        Value::Int8(_) => Value::Int8(0),
        Value::Int16(_) => Value::Int16(0),
        Value::Int32(_) => Value::Int32(0),
        Value::Int64(_) => Value::Int64(0),
        Value::Float32(_) => Value::Float32(0.0),
        Value::Float64(_) => Value::Float64(0.0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        Value::Map(_) => Value::Map(Vec::new()),
        other => {
            return Err(DataError::new(format!(
                "Cannot mask value of type: class {}",
                java_class(other)
            )));
        }
    })
}

/// `replacement` as the value's type.
fn replaced(v: &Value, r: &str) -> Result<Value, DataError> {
    let bad = || {
        DataError::new(format!(
            "Unable to convert {r} ({}) to number",
            java_class(&Value::String(r.into()))
        ))
    };
    Ok(match v {
        Value::Null => Value::Null,
        Value::Int8(_) => Value::Int8(r.parse().map_err(|_| bad())?),
        Value::Int16(_) => Value::Int16(r.parse().map_err(|_| bad())?),
        Value::Int32(_) => Value::Int32(r.parse().map_err(|_| bad())?),
        Value::Int64(_) => Value::Int64(r.parse().map_err(|_| bad())?),
        Value::Float32(_) => Value::Float32(r.parse().map_err(|_| bad())?),
        Value::Float64(_) => Value::Float64(r.parse().map_err(|_| bad())?),
        Value::String(_) => Value::String(r.to_string()),
        other => {
            return Err(DataError::new(format!(
                "Cannot mask value of type class {} with custom replacement.",
                java_class(other)
            )));
        }
    })
}

impl Transformation for MaskField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let mut record = record;
        let (schema, value) = self.side.take(&mut record);
        let value = match &schema {
            None => {
                let mut map = require_map(value, PURPOSE)?;
                for f in &self.fields {
                    if let Some(v) = map_get(&map, f) {
                        let m = self.masked(v)?;
                        map_put(&mut map, f, m);
                    }
                }
                Value::Map(map)
            }
            Some(_) => {
                let mut s = require_struct(value, PURPOSE)?;
                for f in &self.fields {
                    let v = s
                        .get(f)
                        .ok_or_else(|| DataError::new(format!("{f} is not a valid field name")))?;
                    let m = self.masked(v)?;
                    s.put(f, m);
                }
                Value::Struct(s)
            }
        };
        Ok(Some(self.side.with(record, schema, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType};
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn mask(kv: &[(&str, &str)]) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), Side::Value).unwrap()
    }

    #[test]
    fn schemaful_masks_by_type() {
        let (schema, value) = record_struct(vec![
            ("n", Schema::of(SchemaType::Int32), Value::Int32(5)),
            ("s", Schema::of(SchemaType::String), string("secret")),
            ("b", Schema::of(SchemaType::Boolean), Value::Boolean(true)),
            ("keep", Schema::of(SchemaType::String), string("k")),
        ]);
        let out = mask(&[("fields", "n,s,b")])
            .apply(schemaful(schema.clone(), value))
            .unwrap()
            .unwrap();
        assert_eq!(out.value_schema, Some(schema));
        let v = as_struct(&out.value);
        assert_eq!(v.get("n"), Some(&Value::Int32(0)));
        assert_eq!(v.get("s"), Some(&string("")));
        assert_eq!(v.get("b"), Some(&Value::Boolean(false)));
        assert_eq!(v.get("keep"), Some(&string("k")));
    }

    #[test]
    fn schemaless_with_a_replacement() {
        let v = map(vec![("n", Value::Int64(5)), ("s", string("secret"))]);
        let out = mask(&[("fields", "n,s"), ("replacement", "9")])
            .apply(schemaless(v))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value,
            map(vec![("n", Value::Int64(9)), ("s", string("9"))])
        );
        let err = mask(&[("fields", "b"), ("replacement", "x")])
            .apply(schemaless(map(vec![("b", Value::Boolean(true))])))
            .unwrap_err();
        assert!(err.0.contains("with custom replacement"), "{err}");
    }

    #[test]
    fn fields_are_required_and_non_empty() {
        let out = def().validate(&props(&[("fields", "")]));
        assert_eq!(
            out[0].errors,
            ["Invalid value  for configuration fields: Empty list"]
        );
        assert!(
            mask(&[("fields", "x")])
                .apply(schemaless(string("s")))
                .unwrap_err()
                .0
                .contains("[mask fields]")
        );
    }
}
