//! `TimestampConverter$Key` / `$Value`: converts a timestamp (the whole
//! key or value, or one `field`) between string (`format`, a
//! SimpleDateFormat pattern, UTC), unix (`unix.precision`), Date, Time and
//! Timestamp. Date is days since the epoch and Time milliseconds of the
//! day (Int32), Timestamp milliseconds (Int64), as Connect's logical types.

use std::sync::Arc;

use super::BuildError;
use super::datetime::DatePattern;
use super::routers::valid_date_pattern;
use super::util::{
    DATE_LOGICAL, Side, TIME_LOGICAL, TIMESTAMP_LOGICAL, java_class, map_get, map_put, require_map,
    require_struct,
};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, Validator};
use crate::data::{DataError, Schema, SchemaType, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "converting timestamp formats";
const DAY_MS: i64 = 86_400_000;

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "field",
            ConfigType::String,
            Some(""),
            Importance::High,
            "The field containing the timestamp, or empty if the entire value is a timestamp",
        )
        .define(
            "target.type",
            ConfigType::String,
            None,
            Importance::High,
            "The desired timestamp representation: string, unix, Date, Time, or Timestamp",
        )
        .validate_with(Validator::OneOf {
            values: vec!["string", "unix", "Date", "Time", "Timestamp"],
            ignore_case: false,
        })
        .define(
            "format",
            ConfigType::String,
            Some(""),
            Importance::Medium,
            "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string.",
        )
        .validate_with(Validator::Custom(valid_date_pattern))
        .define(
            "unix.precision",
            ConfigType::String,
            Some("milliseconds"),
            Importance::Low,
            "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds. Used to generate the output when type=unix or used to parse the input if the input is a Long.",
        )
        .validate_with(Validator::OneOf {
            values: vec!["nanoseconds", "microseconds", "milliseconds", "seconds"],
            ignore_case: false,
        })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    String,
    Unix,
    Date,
    Time,
    Timestamp,
}

struct TimestampConverter {
    side: Side,
    field: String,
    target: Kind,
    format: Option<DatePattern>,
    /// Milliseconds in one unix unit, or units in a millisecond (negative).
    unix_per_ms: (i64, i64),
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let target = match p.string("target.type").unwrap_or_default() {
        "string" => Kind::String,
        "unix" => Kind::Unix,
        "Date" => Kind::Date,
        "Time" => Kind::Time,
        _ => Kind::Timestamp,
    };
    let pattern = p.string("format").unwrap_or_default();
    let format = if pattern.trim().is_empty() {
        None
    } else {
        Some(DatePattern::compile(pattern).map_err(|e| {
            (
                "format",
                format!("TimestampConverter requires a SimpleDateFormat-compatible pattern for string timestamps: {pattern}: {e}"),
            )
        })?)
    };
    if target == Kind::String && format.is_none() {
        return Err((
            "format",
            "TimestampConverter requires format option to be specified when using string timestamps".into(),
        ));
    }
    // (multiply, divide) from unix units to milliseconds.
    let unix_per_ms = match p.string("unix.precision").unwrap_or("milliseconds") {
        "seconds" => (1000, 1),
        "microseconds" => (1, 1000),
        "nanoseconds" => (1, 1_000_000),
        _ => (1, 1),
    };
    Ok(Box::new(TimestampConverter {
        side,
        field: p.string("field").unwrap_or_default().to_string(),
        target,
        format,
        unix_per_ms,
    }))
}

fn logical(name: &str, ty: SchemaType) -> Schema {
    Schema::of(ty).named(name)
}

impl TimestampConverter {
    fn kind_of_schema(schema: &Schema) -> Result<Kind, DataError> {
        Ok(match (schema.name.as_deref(), schema.ty) {
            (Some(TIMESTAMP_LOGICAL), _) => Kind::Timestamp,
            (Some(DATE_LOGICAL), _) => Kind::Date,
            (Some(TIME_LOGICAL), _) => Kind::Time,
            (_, SchemaType::String) => Kind::String,
            (_, SchemaType::Int64) => Kind::Unix,
            _ => {
                return Err(DataError::new(format!(
                    "Schema {} does not correspond to a known timestamp type format",
                    schema.name.as_deref().unwrap_or(schema.ty.name())
                )));
            }
        })
    }

    fn kind_of_value(v: &Value) -> Result<Kind, DataError> {
        match v {
            Value::String(_) => Ok(Kind::String),
            Value::Int64(_) => Ok(Kind::Unix),
            other => Err(DataError::new(format!(
                "TimestampConverter does not support class {} objects as timestamps",
                java_class(other)
            ))),
        }
    }

    fn target_schema(&self, optional: bool) -> Arc<Schema> {
        let mut s = match self.target {
            Kind::String => Schema::of(SchemaType::String),
            Kind::Unix => Schema::of(SchemaType::Int64),
            Kind::Date => logical(DATE_LOGICAL, SchemaType::Int32),
            Kind::Time => logical(TIME_LOGICAL, SchemaType::Int32),
            Kind::Timestamp => logical(TIMESTAMP_LOGICAL, SchemaType::Int64),
        };
        s.optional = optional;
        Arc::new(s)
    }

    fn to_millis(&self, v: &Value, from: Kind) -> Result<i64, DataError> {
        let n = |v: &Value| match v {
            Value::Int64(n) => Some(*n),
            Value::Int32(n) => Some(*n as i64),
            _ => None,
        };
        let wrong = || DataError::new(format!("Expected a timestamp, found: {}", java_class(v)));
        Ok(match from {
            Kind::String => {
                let s = v.as_str().ok_or_else(wrong)?;
                let p = self.format.as_ref().ok_or_else(|| {
                    DataError::new("Could not parse timestamp: format is not configured")
                })?;
                p.parse(s).ok_or_else(|| {
                    DataError::new(format!(
                        "Could not parse timestamp: value ({s}) does not match pattern"
                    ))
                })?
            }
            Kind::Unix => {
                let (mul, div) = self.unix_per_ms;
                n(v).ok_or_else(wrong)? * mul / div
            }
            Kind::Date => n(v).ok_or_else(wrong)? * DAY_MS,
            Kind::Time | Kind::Timestamp => n(v).ok_or_else(wrong)?,
        })
    }

    fn from_millis(&self, ms: i64) -> Value {
        match self.target {
            Kind::String => Value::String(
                self.format
                    .as_ref()
                    .map(|p| p.format(ms))
                    .unwrap_or_default(),
            ),
            Kind::Unix => {
                let (mul, div) = self.unix_per_ms;
                Value::Int64(ms * div / mul)
            }
            Kind::Date => Value::Int32(ms.div_euclid(DAY_MS) as i32),
            Kind::Time => Value::Int32(ms.rem_euclid(DAY_MS) as i32),
            Kind::Timestamp => Value::Int64(ms),
        }
    }

    fn convert(&self, v: &Value, from: Kind) -> Result<Value, DataError> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        Ok(self.from_millis(self.to_millis(v, from)?))
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let (schema, value) = self.side.take(&mut record);
        let (schema, value) = match (schema, self.field.is_empty()) {
            (None, true) => {
                let v = if value.is_null() {
                    Value::Null
                } else {
                    self.convert(&value, Self::kind_of_value(&value)?)?
                };
                (None, v)
            }
            (Some(schema), true) => {
                let from = Self::kind_of_schema(&schema)?;
                let v = self.convert(&value, from)?;
                (Some(self.target_schema(schema.optional)), v)
            }
            (None, false) => {
                if value.is_null() {
                    (None, Value::Null)
                } else {
                    let mut map = require_map(value, PURPOSE)?;
                    if let Some(v) = map_get(&map, &self.field).filter(|v| !v.is_null()) {
                        let c = self.convert(v, Self::kind_of_value(v)?)?;
                        map_put(&mut map, &self.field, c);
                    }
                    (None, Value::Map(map))
                }
            }
            (Some(schema), false) => {
                let field = schema.field(&self.field).ok_or_else(|| {
                    DataError::new(format!("{} is not a valid field name", self.field))
                })?;
                let from = Self::kind_of_schema(&field.schema)?;
                let mut updated = (*schema).clone();
                updated.fields[field.index].schema = self.target_schema(field.schema.optional);
                let updated = Arc::new(updated);
                let v = match value {
                    Value::Null => Value::Null,
                    v => {
                        let mut s = require_struct(v, PURPOSE)?;
                        s.values[field.index] = self.convert(&s.values[field.index], from)?;
                        s.schema = updated.clone();
                        Value::Struct(s)
                    }
                };
                (Some(updated), v)
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

    const T: i64 = 1_709_211_909_007; // 2024-02-29T13:05:09.007Z

    fn converter(kv: &[(&str, &str)]) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), Side::Value).unwrap()
    }

    #[test]
    fn schemaful_field_from_timestamp_to_string_and_date() {
        let (schema, value) = record_struct(vec![
            (
                "ts",
                logical(TIMESTAMP_LOGICAL, SchemaType::Int64),
                Value::Int64(T),
            ),
            ("id", Schema::of(SchemaType::Int32), Value::Int32(1)),
        ]);
        let out = converter(&[
            ("field", "ts"),
            ("target.type", "string"),
            ("format", "yyyy-MM-dd HH:mm"),
        ])
        .apply(schemaful(schema.clone(), value.clone()))
        .unwrap()
        .unwrap();
        assert_eq!(
            out.value_schema
                .as_ref()
                .unwrap()
                .field("ts")
                .unwrap()
                .schema
                .ty,
            SchemaType::String
        );
        assert_eq!(
            as_struct(&out.value).get("ts"),
            Some(&string("2024-02-29 13:05"))
        );
        let out = converter(&[("field", "ts"), ("target.type", "Date")])
            .apply(schemaful(schema, value))
            .unwrap()
            .unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(
            s.field("ts").unwrap().schema.name.as_deref(),
            Some(DATE_LOGICAL)
        );
        assert_eq!(as_struct(&out.value).get("ts"), Some(&Value::Int32(19782)));
    }

    #[test]
    fn schemaless_whole_value_and_unix_precision() {
        let to_unix = converter(&[
            ("target.type", "unix"),
            ("unix.precision", "seconds"),
            ("format", "yyyyMMddHHmmss"),
        ]);
        let out = to_unix
            .apply(schemaless(string("20240229130509")))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Value::Int64(T / 1000));
        let to_ts = converter(&[
            ("field", "at"),
            ("target.type", "Timestamp"),
            ("unix.precision", "microseconds"),
        ]);
        let out = to_ts
            .apply(schemaless(map(vec![("at", Value::Int64(T * 1000))])))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, map(vec![("at", Value::Int64(T))]));
        let err = to_ts
            .apply(schemaless(map(vec![("at", Value::Boolean(true))])))
            .unwrap_err();
        assert!(
            err.0.contains("does not support class java.lang.Boolean"),
            "{err}"
        );
    }

    #[test]
    fn string_target_needs_a_format() {
        let r = build(
            &def().parse(&props(&[("target.type", "string")])).unwrap(),
            Side::Value,
        );
        assert_eq!(
            r.err().unwrap().1,
            "TimestampConverter requires format option to be specified when using string timestamps"
        );
        let bad = def().validate(&props(&[("target.type", "date")]));
        assert_eq!(
            bad[1].errors,
            [
                "Invalid value date for configuration target.type: String must be one of: string, unix, Date, Time, Timestamp"
            ]
        );
    }
}
