//! `ReplaceField$Key` / `$Value`: keeps (`include`), drops (`exclude`) and
//! renames (`renames=old:new,…`) top-level fields. Kafka's older names
//! `whitelist` / `blacklist` are read when the new ones are not set.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::BuildError;
use super::util::{Side, copy_basics, key_string, push_field, require_map, require_struct};
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, ParsedValue, Validator};
use crate::data::{DataError, SchemaType, Struct, Value};
use crate::plugin::Transformation;
use crate::record::ConnectRecord;

const PURPOSE: &str = "field replacement";

pub fn def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "exclude",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to exclude. This takes precedence over the fields to include.",
        )
        .define(
            "include",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to include. If specified, only these fields will be used.",
        )
        .define(
            "renames",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Field rename mappings.",
        )
        .validate_with(Validator::Custom(valid_renames))
        .define(
            "blacklist",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Deprecated. Use exclude instead.",
        )
        .define(
            "whitelist",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Deprecated. Use include instead.",
        )
}

fn valid_renames(v: &ParsedValue) -> Result<(), String> {
    if let ParsedValue::List(l) = v {
        for m in l {
            if parse_rename(m).is_none() {
                return Err(format!("Invalid rename mapping: {m}"));
            }
        }
    }
    Ok(())
}

fn parse_rename(m: &str) -> Option<(String, String)> {
    let mut parts = m.split(':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), None) => Some((a.to_string(), b.to_string())),
        _ => None,
    }
}

struct ReplaceField {
    side: Side,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: BTreeMap<String, String>,
}

pub fn build(p: &Parsed, side: Side) -> Result<Box<dyn Transformation>, BuildError> {
    let either = |new: &str, old: &str| {
        let v = p.list(new);
        if v.is_empty() { p.list(old) } else { v }
    };
    let mut renames = BTreeMap::new();
    for m in p.list("renames") {
        let (from, to) =
            parse_rename(&m).ok_or_else(|| ("renames", format!("Invalid rename mapping: {m}")))?;
        renames.insert(from, to);
    }
    Ok(Box::new(ReplaceField {
        side,
        exclude: either("exclude", "blacklist"),
        include: either("include", "whitelist"),
        renames,
    }))
}

impl ReplaceField {
    fn keeps(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames.get(name).map(String::as_str).unwrap_or(name)
    }
}

impl Transformation for ReplaceField {
    fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        if self.side.value(&record).is_null() {
            return Ok(Some(record));
        }
        let mut record = record;
        let (schema, value) = self.side.take(&mut record);
        match schema {
            None => {
                let map = require_map(value, PURPOSE)?;
                let out = map
                    .into_iter()
                    .filter(|(k, _)| self.keeps(&key_string(k)))
                    .map(|(k, v)| {
                        let name = key_string(&k);
                        (Value::String(self.renamed(&name).to_string()), v)
                    })
                    .collect();
                Ok(Some(self.side.with(record, None, Value::Map(out))))
            }
            Some(schema) => {
                let old = require_struct(value, PURPOSE)?;
                let mut updated = copy_basics(&schema, SchemaType::Struct);
                let mut values = Vec::new();
                for (f, v) in schema.fields.iter().zip(old.values) {
                    if self.keeps(&f.name) {
                        push_field(&mut updated, self.renamed(&f.name), f.schema.clone());
                        values.push(v);
                    }
                }
                let updated = Arc::new(updated);
                let new = Struct {
                    schema: updated.clone(),
                    values,
                };
                Ok(Some(self.side.with(
                    record,
                    Some(updated),
                    Value::Struct(new),
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Schema;
    use crate::test_props as props;
    use crate::transforms::util::fixtures::*;

    fn replace(kv: &[(&str, &str)]) -> Box<dyn Transformation> {
        build(&def().parse(&props(kv)).unwrap(), Side::Value).unwrap()
    }

    #[test]
    fn schemaful_include_exclude_rename() {
        let (schema, value) = record_struct(vec![
            ("a", Schema::of(SchemaType::Int32), Value::Int32(1)),
            ("b", Schema::of(SchemaType::String), string("x")),
            ("c", Schema::of(SchemaType::Boolean), Value::Boolean(true)),
        ]);
        let t = replace(&[("include", "a,b"), ("exclude", "b"), ("renames", "a:alpha")]);
        let out = t.apply(schemaful(schema, value)).unwrap().unwrap();
        let s = out.value_schema.unwrap();
        assert_eq!(s.fields.len(), 1);
        assert_eq!(s.fields[0].name, "alpha");
        assert_eq!(as_struct(&out.value).get("alpha"), Some(&Value::Int32(1)));
    }

    #[test]
    fn schemaless_and_old_key_names() {
        let v = map(vec![
            ("a", Value::Int64(1)),
            ("b", Value::Int64(2)),
            ("c", Value::Int64(3)),
        ]);
        let t = replace(&[("blacklist", "c"), ("renames", "b:bee")]);
        let out = t.apply(schemaless(v.clone())).unwrap().unwrap();
        assert_eq!(
            out.value,
            map(vec![("a", Value::Int64(1)), ("bee", Value::Int64(2))])
        );
        let t = replace(&[("whitelist", "a")]);
        let out = t.apply(schemaless(v)).unwrap().unwrap();
        assert_eq!(out.value, map(vec![("a", Value::Int64(1))]));
    }

    #[test]
    fn bad_renames_and_types() {
        let out = def().validate(&props(&[("renames", "a:b,c")]));
        let errs: Vec<_> = out.iter().flat_map(|o| o.errors.clone()).collect();
        assert_eq!(
            errs,
            ["Invalid value a:b,c for configuration renames: Invalid rename mapping: c"]
        );
        let t = replace(&[]);
        assert_eq!(
            t.apply(schemaless(Value::Int32(1))).unwrap_err().0,
            "Only Map objects supported in absence of schema for [field replacement], found: java.lang.Integer"
        );
    }
}
