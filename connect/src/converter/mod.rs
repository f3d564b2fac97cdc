//! TEMPORARY stand-in until the converters land (helper's work replaces this file).
use std::collections::BTreeMap;

use crate::data::{DataError, SchemaAndValue, Value};
use crate::plugin::{Converter, PluginInfo};

struct StringConverter;

impl Converter for StringConverter {
    fn configure(&mut self, _: &BTreeMap<String, String>, _: bool) -> Result<(), String> {
        Ok(())
    }
    fn from_connect(&self, _: &str, d: &SchemaAndValue) -> Result<Option<Vec<u8>>, DataError> {
        Ok(match &d.value {
            Value::Null => None,
            Value::String(s) => Some(s.clone().into_bytes()),
            Value::Bytes(b) => Some(b.clone()),
            v => Some(crate::connectors::file::display(v).into_bytes()),
        })
    }
    fn to_connect(&self, _: &str, b: Option<&[u8]>) -> Result<SchemaAndValue, DataError> {
        Ok(SchemaAndValue::schemaless(match b {
            None => Value::Null,
            Some(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        }))
    }
}

pub fn build(
    class: &str,
    _config: &BTreeMap<String, String>,
    _is_key: bool,
) -> Result<Box<dyn Converter>, String> {
    match class {
        "org.apache.kafka.connect.storage.StringConverter" | "StringConverter" => {
            Ok(Box::new(StringConverter))
        }
        _ => Err(format!("Class {class} could not be found.")),
    }
}

pub fn plugins() -> Vec<PluginInfo> {
    Vec::new()
}
