//! `HoistField$Key` / `$Value`: wraps the whole key or value in a struct
//! (or, without schema, a map) with one field.

use std::sync::Arc;

use super::BuildError;
use super::util::{Side, push_field};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed};
use crate::data::{DataError, Schema, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

pub fn def() -> ConfigDef {
    ConfigDef::new().define(
        "field",
        ConfigType::String,
        None,
        Importance::Medium,
        "Field name for the single field that will be created in the resulting Struct or Map.",
    )
}

struct HoistField {
    side: Side,
    field: String,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    Ok(Box::new(HoistField {
        side,
        field: p.string("field").unwrap_or_default().to_string(),
    }))
}

impl Transformation for HoistField {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let (schema, value) = self.side.take(&mut record);
        Ok(Some(match schema {
            None => {
                let map = vec![(Value::String(self.field.clone()), value)];
                self.side.with(record, None, Value::Map(map))
            }
            Some(inner) => {
                let mut updated = Schema::of(SchemaType::Struct);
                push_field(&mut updated, &self.field, inner);
                let updated = Arc::new(updated);
                let s = Struct {
                    schema: updated.clone(),
                    values: vec![value],
                };
                self.side.with(record, Some(updated), Value::Struct(s))
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaAndValue;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn hoist(side: Side) -> Box<dyn Transformation> {
        build(&def().parse(&props(&[("field", "f")])).unwrap(), side).unwrap()
    }

    #[test]
    fn schemaful_wraps_in_a_struct() {
        let r = schemaful(Arc::new(Schema::of(SchemaType::Int32)), Value::Int32(4));
        let out = hoist(Side::Value).apply(r).unwrap().unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(s.ty, SchemaType::Struct);
        assert_eq!(s.fields[0].name, "f");
        assert_eq!(s.fields[0].schema.ty, SchemaType::Int32);
        assert_eq!(as_struct(&out.value).get("f"), Some(&Value::Int32(4)));
    }

    #[test]
    fn schemaless_wraps_the_key_in_a_map() {
        let r = schemaless(Value::Null).with_key(SchemaAndValue::schemaless(string("k")));
        let out = hoist(Side::Key).apply(r).unwrap().unwrap();
        assert_eq!(out.key, map(vec![("f", string("k"))]));
        assert_eq!(out.value, Value::Null);
    }
}
