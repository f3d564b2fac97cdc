//! `ExtractField$Key` / `$Value`: replaces the key or value with one of
//! its fields (nested with `field.syntax.version=V2`).

use super::BuildError;
use super::field_path::{FieldPath, define_syntax_version};
use super::util::{Side, java_class};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed};
use crate::data::{DataError, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "field extraction";

pub fn def() -> ConfigDef {
    define_syntax_version(ConfigDef::new().define(
        "field",
        ConfigType::String,
        None,
        Importance::Medium,
        "Field name to extract.",
    ))
}

struct ExtractField {
    side: Side,
    original: String,
    path: FieldPath,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let field = p.string("field").unwrap_or_default();
    let v2 = p
        .string("field.syntax.version")
        .is_some_and(|v| v.eq_ignore_ascii_case("V2"));
    Ok(Box::new(ExtractField {
        side,
        original: field.to_string(),
        path: FieldPath::parse(field, v2),
    }))
}

impl Transformation for ExtractField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let (schema, value) = self.side.take(&mut record);
        match schema {
            None => {
                if !matches!(value, Value::Map(_) | Value::Null) {
                    return Err(DataError::new(format!(
                        "Only Map objects supported in absence of schema for [{PURPOSE}], found: {}",
                        java_class(&value)
                    )));
                }
                let out = self.path.value_in(&value).cloned().unwrap_or(Value::Null);
                Ok(Some(self.side.with(record, None, out)))
            }
            Some(schema) => {
                if !matches!(value, Value::Struct(_) | Value::Null) {
                    return Err(DataError::new(format!(
                        "Only Struct objects supported for [{PURPOSE}], found: {}",
                        java_class(&value)
                    )));
                }
                let field_schema = self
                    .path
                    .schema_in(&schema)
                    .ok_or_else(|| DataError::new(format!("Unknown field: {}", self.original)))?;
                let out = self.path.value_in(&value).cloned().unwrap_or(Value::Null);
                Ok(Some(self.side.with(record, Some(field_schema), out)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Schema, SchemaType};
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn extract(kv: &[(&str, &str)]) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), Side::Value).unwrap()
    }

    #[test]
    fn schemaful_field_and_its_schema() {
        let (inner_schema, inner) =
            record_struct(vec![("b", Schema::of(SchemaType::String), string("deep"))]);
        let (schema, value) = record_struct(vec![
            ("a", (*inner_schema).clone(), inner),
            ("n", Schema::of(SchemaType::Int64), Value::Int64(3)),
        ]);
        let out = extract(&[("field", "n")])
            .apply(schemaful(schema.clone(), value.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Value::Int64(3));
        assert_eq!(out.value_schema.unwrap().ty, SchemaType::Int64);

        let nested = extract(&[("field", "a.b"), ("field.syntax.version", "V2")]);
        let out = nested
            .apply(schemaful(schema.clone(), value.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, string("deep"));
        // V1 reads "a.b" as one name.
        let err = extract(&[("field", "a.b")])
            .apply(schemaful(schema, value))
            .unwrap_err();
        assert_eq!(err.0, "Unknown field: a.b");
    }

    #[test]
    fn schemaless_map_entry_or_null() {
        let v = map(vec![("a", map(vec![("b", Value::Int64(1))]))]);
        let out = extract(&[("field", "a")])
            .apply(schemaless(v.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, map(vec![("b", Value::Int64(1))]));
        let out = extract(&[("field", "a.b"), ("field.syntax.version", "v2")])
            .apply(schemaless(v))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Value::Int64(1));
        let out = extract(&[("field", "a")])
            .apply(schemaless(Value::Null))
            .unwrap()
            .unwrap();
        assert_eq!(out.value, Value::Null);
        assert_eq!(
            extract(&[("field", "a")])
                .apply(schemaless(Value::Int32(1)))
                .unwrap_err()
                .0,
            "Only Map objects supported in absence of schema for [field extraction], found: java.lang.Integer"
        );
    }
}
