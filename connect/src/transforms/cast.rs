//! `Cast$Key` / `$Value`: casts fields (`spec=a:int32,b:string`) or the
//! whole key or value (`spec=int64`) to a primitive type.

use std::sync::Arc;

use super::BuildError;
use super::util::{
    Side, copy_basics, java_class, map_get, map_put, non_empty_list, primitive_like, push_field,
    require_map, require_struct, value_to_string,
};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, ParsedValue, Validator};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "cast types";

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "spec",
            ConfigType::List,
            None,
            Importance::High,
            "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value. Valid types are int8, int16, int32, int64, float32, float64, boolean, and string.",
        )
        .validate_with(Validator::Custom(|v| {
            non_empty_list(v)?;
            match v {
                ParsedValue::List(l) => parse_spec(l).map(|_| ()),
                _ => Ok(()),
            }
        }))
}

/// What the spec casts: the whole value, or named fields.
#[derive(Debug, Clone, PartialEq)]
enum Casts {
    Whole(SchemaType),
    Fields(Vec<(String, SchemaType)>),
}

fn target_type(name: &str) -> Result<SchemaType, String> {
    let ty = match name.trim() {
        "float32" => SchemaType::Float32,
        "float64" => SchemaType::Float64,
        other => SchemaType::from_name(other)
            .ok_or_else(|| format!("Invalid type found in casting spec: {other}"))?,
    };
    match ty {
        SchemaType::Int8
        | SchemaType::Int16
        | SchemaType::Int32
        | SchemaType::Int64
        | SchemaType::Float32
        | SchemaType::Float64
        | SchemaType::Boolean
        | SchemaType::String => Ok(ty),
        other => Err(format!(
            "Cast transformation does not support casting to {}; supported types are int8, int16, int32, int64, float32, float64, boolean, string",
            other.name().to_uppercase()
        )),
    }
}

fn parse_spec(spec: &[String]) -> Result<Casts, String> {
    if spec.len() == 1 && !spec[0].contains(':') {
        return Ok(Casts::Whole(target_type(&spec[0])?));
    }
    let mut fields = Vec::new();
    for mapping in spec {
        let mut parts = mapping.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(f), Some(t), None) => fields.push((f.trim().to_string(), target_type(t)?)),
            (Some(_), None, None) => {
                return Err("Cast transformations that specify a type to cast the entire value to may only specify a single cast in their spec".into());
            }
            _ => return Err(format!("Invalid cast mapping: {mapping}")),
        }
    }
    Ok(Casts::Fields(fields))
}

struct Cast {
    side: Side,
    casts: Casts,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let casts = parse_spec(&p.list("spec")).map_err(|e| ("spec", e))?;
    Ok(Box::new(Cast { side, casts }))
}

/// A number out of a value, for the numeric casts.
fn as_f64(v: &Value) -> Option<f64> {
    Some(match v {
        Value::Int8(n) => *n as f64,
        Value::Int16(n) => *n as f64,
        Value::Int32(n) => *n as f64,
        Value::Int64(n) => *n as f64,
        Value::Float32(n) => *n as f64,
        Value::Float64(n) => *n,
        Value::Boolean(b) => *b as i64 as f64,
        _ => return None,
    })
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Int64(n) => Some(*n),
        Value::Float32(_) | Value::Float64(_) => as_f64(v).map(|f| f as i64),
        other => as_f64(other).map(|f| f as i64),
    }
}

/// Kafka's `castValueToType`.
fn cast_value(v: &Value, to: SchemaType) -> Result<Value, DataError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let unsupported = || {
        DataError::new(format!(
            "Unexpected type in Cast transformation: {}",
            java_class(v)
        ))
    };
    let out_of_range = || {
        DataError::new(format!(
            "Value ({}) was out of range for requested data type",
            value_to_string(v)
        ))
    };
    if let Value::String(s) = v {
        let t = s.trim();
        return Ok(match to {
            SchemaType::String => v.clone(),
            SchemaType::Boolean => Value::Boolean(t.eq_ignore_ascii_case("true")),
            SchemaType::Int8 => Value::Int8(t.parse().map_err(|_| out_of_range())?),
            SchemaType::Int16 => Value::Int16(t.parse().map_err(|_| out_of_range())?),
            SchemaType::Int32 => Value::Int32(t.parse().map_err(|_| out_of_range())?),
            SchemaType::Int64 => Value::Int64(t.parse().map_err(|_| out_of_range())?),
            SchemaType::Float32 => Value::Float32(t.parse().map_err(|_| out_of_range())?),
            SchemaType::Float64 => Value::Float64(t.parse().map_err(|_| out_of_range())?),
            _ => return Err(unsupported()),
        });
    }
    if to == SchemaType::String {
        return match v {
            Value::Bytes(_) | Value::Struct(_) => Err(unsupported()),
            other => Ok(Value::String(value_to_string(other))),
        };
    }
    let n = as_i64(v).ok_or_else(unsupported)?;
    let f = as_f64(v).ok_or_else(unsupported)?;
    Ok(match to {
        // Java's narrowing conversions wrap.
        SchemaType::Int8 => Value::Int8(n as i8),
        SchemaType::Int16 => Value::Int16(n as i16),
        SchemaType::Int32 => Value::Int32(n as i32),
        SchemaType::Int64 => Value::Int64(n),
        SchemaType::Float32 => Value::Float32(f as f32),
        SchemaType::Float64 => Value::Float64(f),
        SchemaType::Boolean => Value::Boolean(f != 0.0),
        _ => return Err(unsupported()),
    })
}

/// The input types Kafka casts from (structs, maps and arrays only to
/// string, which Weir does not take from a schema).
fn check_input(schema: &Schema) -> Result<(), DataError> {
    match schema.ty {
        SchemaType::Array | SchemaType::Map | SchemaType::Struct | SchemaType::Bytes => {
            Err(DataError::new(format!(
                "Cast transformation does not support casting to/from {}",
                schema.ty.name().to_uppercase()
            )))
        }
        _ => Ok(()),
    }
}

fn cast_schema(from: &Schema, to: SchemaType) -> Result<Arc<Schema>, DataError> {
    check_input(from)?;
    let mut s = (*primitive_like(to, from.optional)).clone();
    if let Some(d) = &from.default {
        s.default = Some(cast_value(d, to)?);
    }
    Ok(Arc::new(s))
}

impl Transformation for Cast {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.side.take(&mut record);
        let (schema, value) = match (&self.casts, schema) {
            (Casts::Whole(to), None) => (None, cast_value(&value, *to)?),
            (Casts::Whole(to), Some(schema)) => {
                (Some(cast_schema(&schema, *to)?), cast_value(&value, *to)?)
            }
            (Casts::Fields(fields), None) => {
                let mut map = require_map(value, PURPOSE)?;
                for (f, to) in fields {
                    if let Some(v) = map_get(&map, f) {
                        let c = cast_value(v, *to)?;
                        map_put(&mut map, f, c);
                    }
                }
                (None, Value::Map(map))
            }
            (Casts::Fields(fields), Some(schema)) => {
                let old = require_struct(value, PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                let mut values = Vec::new();
                for (f, v) in schema.fields.iter().zip(old.values) {
                    match fields.iter().find(|(name, _)| *name == f.name) {
                        Some((_, to)) => {
                            push_field(&mut updated, &f.name, cast_schema(&f.schema, *to)?);
                            values.push(cast_value(&v, *to)?);
                        }
                        None => {
                            push_field(&mut updated, &f.name, f.schema.clone());
                            values.push(v);
                        }
                    }
                }
                let updated = Arc::new(updated);
                let s = Struct {
                    schema: updated.clone(),
                    values,
                };
                (Some(updated), Value::Struct(s))
            }
        };
        Ok(Some(self.side.with(record, schema, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn cast(spec: &str) -> Box<dyn Transformation> {
        build(
            &def().parse(&props(&[("spec", spec)])).unwrap(),
            Side::Value,
        )
        .unwrap()
    }

    #[test]
    fn schemaful_fields_change_type_and_schema() {
        let mut opt = Schema::of(SchemaType::Int64);
        opt.optional = true;
        let (schema, value) = record_struct(vec![
            ("a", Schema::of(SchemaType::String), string("42")),
            ("b", opt, Value::Int64(300)),
            ("c", Schema::of(SchemaType::Float64), Value::Float64(1.5)),
        ]);
        let out = cast("a:int32,b:string,c:boolean")
            .apply(schemaful(schema, value))
            .unwrap()
            .unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(s.field("a").unwrap().schema.ty, SchemaType::Int32);
        assert_eq!(s.field("b").unwrap().schema.ty, SchemaType::String);
        assert!(s.field("b").unwrap().schema.optional);
        let v = as_struct(&out.value);
        assert_eq!(v.get("a"), Some(&Value::Int32(42)));
        assert_eq!(v.get("b"), Some(&string("300")));
        assert_eq!(v.get("c"), Some(&Value::Boolean(true)));
    }

    #[test]
    fn whole_value_and_schemaless() {
        let r = schemaful(
            Arc::new(Schema::of(SchemaType::Float64)),
            Value::Float64(7.9),
        );
        let out = cast("int64").apply(r).unwrap().unwrap();
        assert_eq!(out.value, Value::Int64(7));
        assert_eq!(out.value_schema.unwrap().ty, SchemaType::Int64);
        let v = map(vec![("n", Value::Int64(1)), ("f", Value::Float64(2.0))]);
        let out = cast("n:boolean,f:string")
            .apply(schemaless(v))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.value,
            map(vec![("n", Value::Boolean(true)), ("f", string("2.0"))])
        );
        let err = cast("n:int8")
            .apply(schemaless(map(vec![("n", string("x"))])))
            .unwrap_err();
        assert_eq!(err.0, "Value (x) was out of range for requested data type");
    }

    #[test]
    fn bad_specs_are_config_errors() {
        let errs = |spec: &str| def().validate(&props(&[("spec", spec)]))[0].errors.clone();
        assert_eq!(
            errs("a:int33"),
            [
                "Invalid value a:int33 for configuration spec: Invalid type found in casting spec: int33"
            ]
        );
        assert!(errs("int8,a:int8")[0].contains("may only specify a single cast"));
        assert!(errs("a:b:c")[0].contains("Invalid cast mapping: a:b:c"));
        assert!(errs("a:int8").is_empty());
    }
}
