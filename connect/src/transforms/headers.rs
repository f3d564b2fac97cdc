//! Header transforms and `Filter`: `InsertHeader` (a literal, typed as
//! Kafka's `Values.parseString` would), `DropHeaders`, `HeaderFrom$Key` /
//! `$Value` (copy or move fields into headers), and `Filter` (drops every
//! record it is applied to; used with a predicate).

use std::sync::Arc;

use super::BuildError;
use super::util::{
    Side, copy_basics, map_get, non_empty_list, push_field, require_map, require_struct,
};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, Validator};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::{ConnectRecord, Header};

struct Filter;

impl Transformation for Filter {
    fn apply(&self, _: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        Ok(None)
    }
}

pub fn build_filter(_: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(Filter))
}

pub fn insert_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "header",
            ConfigType::String,
            None,
            Importance::High,
            "The name of the header.",
        )
        .define(
            "value.literal",
            ConfigType::String,
            None,
            Importance::High,
            "The literal value that is to be set as the header value on all records.",
        )
}

struct InsertHeader {
    header: String,
    schema: Arc<Schema>,
    value: Value,
}

/// A literal's schema and value: booleans, the narrowest integer type
/// that holds it, doubles, else a string.
fn parse_literal(s: &str) -> (Schema, Value) {
    let t = s.trim();
    if t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false") {
        return (
            Schema::of(SchemaType::Boolean),
            Value::Boolean(t.eq_ignore_ascii_case("true")),
        );
    }
    if let Ok(n) = t.parse::<i64>() {
        return if let Ok(n) = i8::try_from(n) {
            (Schema::of(SchemaType::Int8), Value::Int8(n))
        } else if let Ok(n) = i16::try_from(n) {
            (Schema::of(SchemaType::Int16), Value::Int16(n))
        } else if let Ok(n) = i32::try_from(n) {
            (Schema::of(SchemaType::Int32), Value::Int32(n))
        } else {
            (Schema::of(SchemaType::Int64), Value::Int64(n))
        };
    }
    if t.contains(['.', 'e', 'E'])
        && let Ok(f) = t.parse::<f64>()
        && f.is_finite()
    {
        return (Schema::of(SchemaType::Float64), Value::Float64(f));
    }
    (Schema::of(SchemaType::String), Value::String(s.to_string()))
}

pub fn build_insert(p: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let (schema, value) = parse_literal(p.string("value.literal").unwrap_or_default());
    Ok(Box::new(InsertHeader {
        header: p.string("header").unwrap_or_default().to_string(),
        schema: Arc::new(schema),
        value,
    }))
}

impl Transformation for InsertHeader {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        record.headers.push(Header {
            key: self.header.clone(),
            schema: Some(self.schema.clone()),
            value: self.value.clone(),
        });
        Ok(Some(record))
    }
}

pub fn drop_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "headers",
            ConfigType::List,
            None,
            Importance::High,
            "The name of the headers to be removed.",
        )
        .validate_with(Validator::Custom(non_empty_list))
}

struct DropHeaders(Vec<String>);

pub fn build_drop(p: &Parsed, _: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(DropHeaders(p.list("headers"))))
}

impl Transformation for DropHeaders {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        record.headers.retain(|h| !self.0.contains(&h.key));
        Ok(Some(record))
    }
}

/// `HeaderFrom`'s keys.
pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "fields",
            ConfigType::List,
            None,
            Importance::High,
            "Field names in the record whose values are to be copied or moved to headers.",
        )
        .validate_with(Validator::Custom(non_empty_list))
        .define(
            "headers",
            ConfigType::List,
            None,
            Importance::High,
            "Header names, in the same order as the field names listed in the fields configuration property.",
        )
        .validate_with(Validator::Custom(non_empty_list))
        .define(
            "operation",
            ConfigType::String,
            None,
            Importance::High,
            "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the fields are to be copied to the headers (retained in the key/value).",
        )
        .validate_with(Validator::OneOf {
            values: vec!["move", "copy"],
            ignore_case: false,
        })
}

const PURPOSE: &str = "header from";

struct HeaderFrom {
    side: Side,
    fields: Vec<String>,
    headers: Vec<String>,
    moving: bool,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let (fields, headers) = (p.list("fields"), p.list("headers"));
    if fields.len() != headers.len() {
        return Err((
            "headers",
            "'fields' config must have the same number of elements as 'headers' config.".into(),
        ));
    }
    Ok(Box::new(HeaderFrom {
        side,
        fields,
        headers,
        moving: p.string("operation") == Some("move"),
    }))
}

impl Transformation for HeaderFrom {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let (schema, value) = self.side.take(&mut record);
        let pairs = self.fields.iter().zip(&self.headers);
        match schema {
            None => {
                let mut map = require_map(value, PURPOSE)?;
                for (f, h) in pairs {
                    let v = map_get(&map, f).cloned().unwrap_or(Value::Null);
                    record.headers.push(Header {
                        key: h.clone(),
                        schema: None,
                        value: v,
                    });
                }
                if self.moving {
                    map.retain(|(k, _)| {
                        !k.as_str()
                            .is_some_and(|k| self.fields.iter().any(|f| f == k))
                    });
                }
                Ok(Some(self.side.with(record, None, Value::Map(map))))
            }
            Some(schema) => {
                let s = require_struct(value, PURPOSE)?;
                for (f, h) in pairs {
                    let field = schema
                        .field(f)
                        .ok_or_else(|| DataError::new(format!("{f} is not a valid field name")))?;
                    record.headers.push(Header {
                        key: h.clone(),
                        schema: Some(field.schema.clone()),
                        value: s.values[field.index].clone(),
                    });
                }
                if !self.moving {
                    return Ok(Some(self.side.with(record, Some(schema), Value::Struct(s))));
                }
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                let mut values = Vec::new();
                for (f, v) in schema.fields.iter().zip(s.values) {
                    if !self.fields.contains(&f.name) {
                        push_field(&mut updated, &f.name, f.schema.clone());
                        values.push(v);
                    }
                }
                let updated = Arc::new(updated);
                let s = Struct {
                    schema: updated.clone(),
                    values,
                };
                Ok(Some(self.side.with(
                    record,
                    Some(updated),
                    Value::Struct(s),
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

    fn header(key: &str) -> Header {
        Header {
            key: key.into(),
            schema: None,
            value: Value::Null,
        }
    }

    #[test]
    fn filter_drops_and_headers_are_inserted_and_dropped() {
        assert_eq!(Filter.apply(schemaless(Value::Null)).unwrap(), None);
        let ins = build_insert(
            &insert_def()
                .parse(&props(&[("header", "n"), ("value.literal", "300")]))
                .unwrap(),
            Side::Value,
        )
        .unwrap();
        let out = ins.apply(schemaless(Value::Null)).unwrap().unwrap();
        assert_eq!(out.headers[0].value, Value::Int16(300));
        assert_eq!(
            out.headers[0].schema.as_ref().unwrap().ty,
            SchemaType::Int16
        );
        assert_eq!(parse_literal("hello").1, string("hello"));
        assert_eq!(parse_literal("true").1, Value::Boolean(true));
        let drop = build_drop(
            &drop_def().parse(&props(&[("headers", "a,b")])).unwrap(),
            Side::Value,
        )
        .unwrap();
        let mut r = schemaless(Value::Null);
        r.headers = vec![header("a"), header("c"), header("b"), header("a")];
        let out = drop.apply(r).unwrap().unwrap();
        assert_eq!(out.headers, vec![header("c")]);
    }

    fn header_from(op: &str) -> Box<dyn Transformation> {
        build(
            &def()
                .parse(&props(&[
                    ("fields", "id,name"),
                    ("headers", "h_id,h_name"),
                    ("operation", op),
                ]))
                .unwrap(),
            Side::Value,
        )
        .unwrap()
    }

    #[test]
    fn header_from_schemaful_move_and_copy() {
        let (schema, value) = record_struct(vec![
            ("id", Schema::of(SchemaType::Int32), Value::Int32(1)),
            ("name", Schema::of(SchemaType::String), string("n")),
            ("other", Schema::of(SchemaType::String), string("o")),
        ]);
        let out = header_from("move")
            .apply(schemaful(schema.clone(), value.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.headers.len(), 2);
        assert_eq!(out.headers[0].key, "h_id");
        assert_eq!(out.headers[0].value, Value::Int32(1));
        assert_eq!(
            out.headers[0].schema.as_ref().unwrap().ty,
            SchemaType::Int32
        );
        let s = out.value_schema.unwrap();
        assert_eq!(s.fields.len(), 1);
        assert_eq!(as_struct(&out.value).get("other"), Some(&string("o")));
        let out = header_from("copy")
            .apply(schemaful(schema.clone(), value.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.value_schema, Some(schema));
        assert_eq!(out.value, value);
    }

    #[test]
    fn header_from_schemaless_and_config_checks() {
        let v = map(vec![
            ("id", Value::Int64(1)),
            ("name", string("n")),
            ("x", Value::Null),
        ]);
        let out = header_from("move").apply(schemaless(v)).unwrap().unwrap();
        assert_eq!(out.value, map(vec![("x", Value::Null)]));
        assert_eq!(out.headers[1].value, string("n"));
        let mismatch = build(
            &def()
                .parse(&props(&[
                    ("fields", "a,b"),
                    ("headers", "h"),
                    ("operation", "copy"),
                ]))
                .unwrap(),
            Side::Value,
        );
        assert_eq!(
            mismatch.err().unwrap().1,
            "'fields' config must have the same number of elements as 'headers' config."
        );
        let bad_op = def().validate(&props(&[
            ("fields", "a"),
            ("headers", "h"),
            ("operation", "swap"),
        ]));
        assert_eq!(
            bad_op[2].errors,
            ["Invalid value swap for configuration operation: String must be one of: move, copy"]
        );
    }
}
