//! `SetSchemaMetadata$Key` / `$Value`: sets the schema's name and/or
//! version (and the struct's schema with it).

use std::sync::Arc;

use super::BuildError;
use super::util::{Side, require_schema};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed};
use crate::data::{DataError, Schema, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "schema.name",
            ConfigType::String,
            None,
            Importance::High,
            "Schema name to set.",
        )
        .nullable()
        .define(
            "schema.version",
            ConfigType::Int,
            None,
            Importance::High,
            "Schema version to set.",
        )
        .nullable()
}

struct SetSchemaMetadata {
    side: Side,
    name: Option<String>,
    version: Option<i32>,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let name = p.string("schema.name").map(str::to_string);
    let version = p.int("schema.version").map(|v| v as i32);
    if name.is_none() && version.is_none() {
        return Err((
            "schema.name",
            "Neither schema name nor version configured".into(),
        ));
    }
    Ok(Box::new(SetSchemaMetadata {
        side,
        name,
        version,
    }))
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, mut record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let schema = require_schema(self.side.schema(&record), "updating schema metadata")?;
        let mut updated: Schema = (**schema).clone();
        if let Some(n) = &self.name {
            updated.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            updated.version = Some(v);
        }
        let updated = Arc::new(updated);
        let (_, value) = self.side.take(&mut record);
        let value = match value {
            Value::Struct(s) => Value::Struct(Struct {
                schema: updated.clone(),
                values: s.values,
            }),
            other => other,
        };
        Ok(Some(self.side.with(record, Some(updated), value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaType;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    #[test]
    fn sets_name_and_version_on_schema_and_struct() {
        let t = build(
            &def()
                .parse(&props(&[
                    ("schema.name", "com.example.User"),
                    ("schema.version", "3"),
                ]))
                .unwrap(),
            Side::Value,
        )
        .unwrap();
        let (schema, value) =
            record_struct(vec![("a", Schema::of(SchemaType::Int32), Value::Int32(1))]);
        let out = t.apply(schemaful(schema, value)).unwrap().unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(s.name.as_deref(), Some("com.example.User"));
        assert_eq!(s.version, Some(3));
        assert_eq!(as_struct(&out.value).schema, s);
        assert_eq!(
            t.apply(schemaless(map(vec![]))).unwrap_err().0,
            "Schema required for [updating schema metadata]"
        );
        assert!(build(&def().parse(&props(&[])).unwrap(), Side::Value).is_err());
    }
}
