//! `Flatten$Key` / `$Value`: nested structs (or, without schema, maps)
//! become top-level fields named `outer<delimiter>inner`. A field under an
//! optional struct becomes optional.

use std::sync::Arc;

use super::BuildError;
use super::util::{Side, copy_basics, java_class, key_string, push_field, require_map};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "flattening";

pub fn def() -> ConfigDef {
    ConfigDef::new().define(
        "delimiter",
        ConfigType::String,
        Some("."),
        Importance::Medium,
        "Delimiter to insert between field names from the input record when generating field names for the output record",
    )
}

struct Flatten {
    side: Side,
    delimiter: String,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(Flatten {
        side,
        delimiter: p.string("delimiter").unwrap_or(".").to_string(),
    }))
}

impl Flatten {
    fn name(&self, prefix: &str, name: &str) -> String {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}{}{name}", self.delimiter)
        }
    }

    fn flatten_map(
        &self,
        prefix: &str,
        entries: Vec<(Value, Value)>,
        out: &mut Vec<(Value, Value)>,
    ) -> Result<(), DataError> {
        for (k, v) in entries {
            let name = self.name(prefix, &key_string(&k));
            match v {
                Value::Map(inner) => self.flatten_map(&name, inner, out)?,
                Value::Struct(_) => {
                    return Err(DataError::new(format!(
                        "Flatten transformation does not support {} for record without schemas (for field {name}).",
                        java_class(&v)
                    )));
                }
                other => out.push((Value::String(name), other)),
            }
        }
        Ok(())
    }

    fn flatten_schema(&self, prefix: &str, schema: &Schema, optional: bool, out: &mut Schema) {
        for f in &schema.fields {
            let name = self.name(prefix, &f.name);
            let optional = optional || f.schema.optional;
            if f.schema.ty == SchemaType::Struct {
                self.flatten_schema(&name, &f.schema, optional, out);
            } else {
                let mut s = (*f.schema).clone();
                s.optional = optional;
                push_field(out, &name, Arc::new(s));
            }
        }
    }

    fn flatten_values(&self, schema: &Schema, value: Option<&Struct>, out: &mut Vec<Value>) {
        for f in &schema.fields {
            let v = value.map(|s| &s.values[f.index]);
            match (&f.schema.ty, v) {
                (SchemaType::Struct, Some(Value::Struct(inner))) => {
                    self.flatten_values(&f.schema, Some(inner), out)
                }
                (SchemaType::Struct, _) => self.flatten_values(&f.schema, None, out),
                (_, v) => out.push(v.cloned().unwrap_or(Value::Null)),
            }
        }
    }
}

impl Transformation for Flatten {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let (schema, value) = self.side.take(&mut record);
        match schema {
            None => {
                if value.is_null() {
                    return Ok(Some(self.side.with(record, None, value)));
                }
                let mut out = Vec::new();
                self.flatten_map("", require_map(value, PURPOSE)?, &mut out)?;
                Ok(Some(self.side.with(record, None, Value::Map(out))))
            }
            Some(schema) => {
                let old = match value {
                    Value::Struct(s) => Some(s),
                    Value::Null => None,
                    other => {
                        return Err(DataError::new(format!(
                            "Only Struct objects supported for [{PURPOSE}], found: {}",
                            java_class(&other)
                        )));
                    }
                };
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                updated.optional = schema.optional;
                self.flatten_schema("", &schema, schema.optional, &mut updated);
                let updated = Arc::new(updated);
                let value = match old {
                    None => Value::Null,
                    Some(s) => {
                        let mut values = Vec::new();
                        self.flatten_values(&schema, Some(&s), &mut values);
                        Value::Struct(Struct {
                            schema: updated.clone(),
                            values,
                        })
                    }
                };
                Ok(Some(self.side.with(record, Some(updated), value)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn flatten(kv: &[(&str, &str)]) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), Side::Value).unwrap()
    }

    #[test]
    fn schemaful_nested_structs_become_prefixed_fields() {
        let (inner_schema, inner) =
            record_struct(vec![("b", Schema::of(SchemaType::Int32), Value::Int32(2))]);
        let mut optional_inner = (*inner_schema).clone();
        optional_inner.optional = true;
        let (schema, value) = record_struct(vec![
            ("a", optional_inner, inner),
            ("c", Schema::of(SchemaType::String), string("x")),
        ]);
        let out = flatten(&[("delimiter", "_")])
            .apply(schemaful(schema, value))
            .unwrap()
            .unwrap();
        let s = out.value_schema.unwrap();
        let names: Vec<_> = s.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["a_b", "c"]);
        assert!(s.fields[0].schema.optional, "under an optional struct");
        assert!(!s.fields[1].schema.optional);
        assert_eq!(as_struct(&out.value).get("a_b"), Some(&Value::Int32(2)));
    }

    #[test]
    fn schemaless_nested_maps() {
        let v = map(vec![
            (
                "a",
                map(vec![
                    ("b", Value::Int64(1)),
                    ("c", map(vec![("d", Value::Null)])),
                ]),
            ),
            ("e", Value::Array(vec![Value::Int64(1)])),
        ]);
        let out = flatten(&[]).apply(schemaless(v)).unwrap().unwrap();
        assert_eq!(
            out.value,
            map(vec![
                ("a.b", Value::Int64(1)),
                ("a.c.d", Value::Null),
                ("e", Value::Array(vec![Value::Int64(1)])),
            ])
        );
        assert!(
            flatten(&[])
                .apply(schemaless(string("s")))
                .unwrap_err()
                .0
                .contains("[flattening]")
        );
    }
}
