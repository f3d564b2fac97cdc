//! Between PostgreSQL columns and Connect data. Reading, every column is
//! selected as a type the client decodes natively (dates, times and
//! timestamps turned into Connect's numbers by the server, numerics and
//! everything else as text); writing, every value is sent as text for the
//! server to parse by the column's own type.

use std::error::Error as StdError;
use std::sync::Arc;

use bytes::BytesMut;
use tokio_postgres::Row;
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};

use super::quote;
use crate::data::{Schema, SchemaType, Value};

pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

/// How one selected column is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    I16,
    I32,
    I64,
    F32,
    F64,
    Bool,
    Bytes,
    Text,
    /// Text, as a Decimal of this scale.
    Decimal(u32),
}

/// A column's Connect schema, the select-list expression that reads it, and
/// how to decode it.
pub fn column(name: &str, ty: &Type, type_modifier: i32, optional: bool) -> (Schema, String, Read) {
    let q = quote(name);
    let (schema, expr, read) = if *ty == Type::INT2 {
        (Schema::of(SchemaType::Int16), q, Read::I16)
    } else if *ty == Type::INT4 {
        (Schema::of(SchemaType::Int32), q, Read::I32)
    } else if *ty == Type::INT8 {
        (Schema::of(SchemaType::Int64), q, Read::I64)
    } else if *ty == Type::FLOAT4 {
        (Schema::of(SchemaType::Float32), q, Read::F32)
    } else if *ty == Type::FLOAT8 {
        (Schema::of(SchemaType::Float64), q, Read::F64)
    } else if *ty == Type::BOOL {
        (Schema::of(SchemaType::Boolean), q, Read::Bool)
    } else if *ty == Type::BYTEA {
        (Schema::of(SchemaType::Bytes), q, Read::Bytes)
    } else if *ty == Type::NUMERIC && type_modifier >= 4 {
        // numeric(p, s): the modifier is ((p << 16) | s) + 4.
        let scale = ((type_modifier - 4) & 0xffff) as u32;
        let mut s = Schema::of(SchemaType::Bytes).named(DECIMAL);
        s.version = Some(1);
        s.parameters.insert("scale".into(), scale.to_string());
        s.parameters.insert(
            "connect.decimal.precision".into(),
            (((type_modifier - 4) >> 16) & 0xffff).to_string(),
        );
        (s, format!("{q}::text"), Read::Decimal(scale))
    } else if *ty == Type::DATE {
        let mut s = Schema::of(SchemaType::Int32).named(DATE);
        s.version = Some(1);
        (s, format!("({q} - DATE '1970-01-01')::int4"), Read::I32)
    } else if *ty == Type::TIME {
        let mut s = Schema::of(SchemaType::Int32).named(TIME);
        s.version = Some(1);
        (
            s,
            format!("floor(extract(epoch from {q}) * 1000)::int4"),
            Read::I32,
        )
    } else if *ty == Type::TIMESTAMP || *ty == Type::TIMESTAMPTZ {
        let mut s = Schema::of(SchemaType::Int64).named(TIMESTAMP);
        s.version = Some(1);
        (
            s,
            format!("floor(extract(epoch from {q}) * 1000)::int8"),
            Read::I64,
        )
    } else {
        // text, varchar, char, json(b), uuid, an unconstrained numeric (no
        // fixed scale for a Decimal), and whatever else: as the server
        // prints it.
        (
            Schema::of(SchemaType::String),
            format!("{q}::text"),
            Read::Text,
        )
    };
    let schema = if optional { schema.optional() } else { schema };
    (schema, expr, read)
}

/// The value of selected column `i`.
pub fn read(row: &Row, i: usize, how: Read) -> Result<Value, tokio_postgres::Error> {
    Ok(match how {
        Read::I16 => row.try_get::<_, Option<i16>>(i)?.map(Value::Int16),
        Read::I32 => row.try_get::<_, Option<i32>>(i)?.map(Value::Int32),
        Read::I64 => row.try_get::<_, Option<i64>>(i)?.map(Value::Int64),
        Read::F32 => row.try_get::<_, Option<f32>>(i)?.map(Value::Float32),
        Read::F64 => row.try_get::<_, Option<f64>>(i)?.map(Value::Float64),
        Read::Bool => row.try_get::<_, Option<bool>>(i)?.map(Value::Boolean),
        Read::Bytes => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes),
        Read::Text => row.try_get::<_, Option<String>>(i)?.map(Value::String),
        Read::Decimal(scale) => {
            row.try_get::<_, Option<String>>(i)?
                .map(|t| match decimal_bytes(&t, scale) {
                    Some(b) => Value::Bytes(b),
                    // NaN has no Decimal: keep the text.
                    None => Value::String(t),
                })
        }
    }
    .unwrap_or(Value::Null))
}

/// A decimal's text as the unscaled value of a Decimal of `scale`: big
/// endian two's complement, as Kafka's Decimal holds it.
pub fn decimal_bytes(text: &str, scale: u32) -> Option<Vec<u8>> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut all: String = int.to_string();
    let scale = scale as usize;
    all.extend(frac.chars().chain(std::iter::repeat('0')).take(scale));
    if all.is_empty() || !all.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Magnitude, big endian, by repeated multiply-add.
    let mut mag: Vec<u8> = vec![0];
    for d in all.bytes() {
        let mut carry = u32::from(d - b'0');
        for byte in mag.iter_mut().rev() {
            let v = u32::from(*byte) * 10 + carry;
            *byte = (v & 0xff) as u8;
            carry = v >> 8;
        }
        while carry > 0 {
            mag.insert(0, (carry & 0xff) as u8);
            carry >>= 8;
        }
    }
    // Room for the sign bit.
    if mag[0] & 0x80 != 0 {
        mag.insert(0, 0);
    }
    if negative {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
    }
    while mag.len() > 1
        && ((mag[0] == 0 && mag[1] & 0x80 == 0) || (mag[0] == 0xff && mag[1] & 0x80 != 0))
    {
        mag.remove(0);
    }
    Some(mag)
}

/// A Decimal's unscaled bytes as decimal text with `scale` digits after the point.
pub fn decimal_text(bytes: &[u8], scale: u32) -> String {
    if bytes.is_empty() {
        return "0".into();
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut mag: Vec<u8> = bytes.to_vec();
    if negative {
        for b in mag.iter_mut() {
            *b = !*b;
        }
        for b in mag.iter_mut().rev() {
            let (v, overflow) = b.overflowing_add(1);
            *b = v;
            if !overflow {
                break;
            }
        }
    }
    let mut digits = Vec::new();
    while mag.iter().any(|b| *b != 0) {
        let mut rem = 0u32;
        for b in mag.iter_mut() {
            let v = (rem << 8) | u32::from(*b);
            *b = (v / 10) as u8;
            rem = v % 10;
        }
        digits.push(b'0' + rem as u8);
    }
    let scale = scale as usize;
    while digits.len() <= scale {
        digits.push(b'0');
    }
    digits.reverse();
    let (int, frac) = digits.split_at(digits.len() - scale);
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    s.push_str(std::str::from_utf8(int).unwrap_or("0"));
    if scale > 0 {
        s.push('.');
        s.push_str(std::str::from_utf8(frac).unwrap_or(""));
    }
    s
}

/// Days since 1970-01-01 as (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil(days);
    if y <= 0 {
        format!("{:04}-{m:02}-{d:02} BC", 1 - y)
    } else {
        format!("{y:04}-{m:02}-{d:02}")
    }
}

fn time_text(ms_of_day: i64) -> String {
    let ms = ms_of_day.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A value as the text PostgreSQL's input functions read; `None` for
/// NULL. `Err` names what cannot be written.
pub fn sql_text(schema: Option<&Schema>, value: &Value) -> Result<Option<String>, String> {
    let name = schema.and_then(|s| s.name.as_deref());
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Int32(d) if name == Some(DATE) => date_text(i64::from(*d)),
        Value::Int32(t) if name == Some(TIME) => time_text(i64::from(*t)),
        Value::Int64(ms) if name == Some(TIMESTAMP) => {
            let days = ms.div_euclid(86_400_000);
            let (y, m, d) = civil(days);
            let time = time_text(ms.rem_euclid(86_400_000));
            if y <= 0 {
                format!("{:04}-{m:02}-{d:02} {time}+00 BC", 1 - y)
            } else {
                format!("{y:04}-{m:02}-{d:02} {time}+00")
            }
        }
        Value::Bytes(b) if name == Some(DECIMAL) => {
            let scale = schema
                .and_then(|s| s.parameters.get("scale"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            decimal_text(b, scale)
        }
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(f) => float_text(f64::from(*f)),
        Value::Float64(f) => float_text(*f),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => {
            let mut s = String::from("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
            return Err(format!(
                "a {} value has no PostgreSQL column type here (only primitive and logical types are written)",
                match value {
                    Value::Array(_) => "array",
                    Value::Map(_) => "map",
                    _ => "struct",
                }
            ));
        }
    }))
}

fn float_text(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        f.to_string()
    }
}

/// The column type `auto.create` and `auto.evolve` give a field.
pub fn sql_type(schema: &Schema) -> Result<&'static str, String> {
    Ok(match (schema.name.as_deref(), schema.ty) {
        (Some(DECIMAL), _) => "NUMERIC",
        (Some(DATE), _) => "DATE",
        (Some(TIME), _) => "TIME",
        (Some(TIMESTAMP), _) => "TIMESTAMP",
        (_, SchemaType::Int8 | SchemaType::Int16) => "SMALLINT",
        (_, SchemaType::Int32) => "INT",
        (_, SchemaType::Int64) => "BIGINT",
        (_, SchemaType::Float32) => "REAL",
        (_, SchemaType::Float64) => "DOUBLE PRECISION",
        (_, SchemaType::Boolean) => "BOOLEAN",
        (_, SchemaType::String) => "TEXT",
        (_, SchemaType::Bytes) => "BYTEA",
        (_, t) => return Err(format!("a {t} field has no PostgreSQL column type")),
    })
}

/// A query parameter sent as text, whatever the column's type: the server
/// parses it as it would a literal.
#[derive(Debug)]
pub struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match &self.0 {
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            None => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A default for a field that `auto.evolve` adds (as SQL text).
pub fn sql_default(schema: &Arc<Schema>) -> Result<Option<String>, String> {
    match &schema.default {
        None => Ok(None),
        Some(v) => Ok(sql_text(Some(schema), v)?.map(|t| format!("'{}'", t.replace('\'', "''")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_round_trip() {
        for (text, scale, bytes) in [
            ("0.00", 2, vec![0u8]),
            ("1.27", 2, vec![0x7f]),
            ("1.28", 2, vec![0x00, 0x80]),
            ("-1.28", 2, vec![0x80]),
            ("-1.29", 2, vec![0xff, 0x7f]),
            ("12345678901234567890123456789012345678.5", 1, {
                let mut v = decimal_bytes("123456789012345678901234567890123456785", 0).unwrap();
                v.shrink_to_fit();
                v
            }),
        ] {
            assert_eq!(decimal_bytes(text, scale).unwrap(), bytes, "{text}");
            assert_eq!(decimal_text(&bytes, scale), text);
        }
        assert_eq!(
            decimal_bytes("5", 3).unwrap(),
            decimal_bytes("5000", 0).unwrap()
        );
        assert_eq!(decimal_bytes("NaN", 2), None);
    }

    #[test]
    fn dates_and_times_as_text() {
        assert_eq!(date_text(0), "1970-01-01");
        assert_eq!(date_text(19_723), "2024-01-01");
        assert_eq!(date_text(-1), "1969-12-31");
        assert_eq!(time_text(3_723_004), "01:02:03.004");
        let ts = Schema::of(SchemaType::Int64).named(TIMESTAMP);
        assert_eq!(
            sql_text(Some(&ts), &Value::Int64(1_704_067_200_123))
                .unwrap()
                .unwrap(),
            "2024-01-01 00:00:00.123+00"
        );
        assert_eq!(
            sql_text(None, &Value::Bytes(vec![1, 0xab]))
                .unwrap()
                .unwrap(),
            "\\x01ab"
        );
    }
}
