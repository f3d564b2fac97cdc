//! Kafka's predicates: `TopicNameMatches`, `HasHeaderKey`,
//! `RecordIsTombstone`.

use regex::Regex;

use super::BuildError;
use crate::config_def::{ConfigDef, ConfigType, Importance, Parsed, ParsedValue, Validator};
use crate::plugin::Predicate;
use crate::record::ConnectRecord;

/// A whole-string match of a Java-style regular expression.
pub(crate) fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Kafka's regex validator (the message after "Invalid value …").
pub(crate) fn valid_regex(v: &ParsedValue) -> Result<(), String> {
    match v {
        ParsedValue::String(s) => full_match(s)
            .map(|_| ())
            .map_err(|e| format!("entry must be a Java-compatible regular expression: {e}")),
        _ => Ok(()),
    }
}

pub fn topic_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "pattern",
            ConfigType::String,
            None,
            Importance::Medium,
            "A Java regular expression for matching against the name of a record's topic.",
        )
        .validate_with(Validator::Custom(|v| match v {
            ParsedValue::String(s) if s.is_empty() => Err("String must be non-empty".into()),
            _ => valid_regex(v),
        }))
}

struct TopicNameMatches(Regex);

impl Predicate for TopicNameMatches {
    fn test(&self, record: &ConnectRecord) -> bool {
        self.0.is_match(&record.topic)
    }
}

pub fn build_topic(p: &Parsed) -> Result<Box<dyn Predicate>, BuildError> {
    let pattern = p.string("pattern").unwrap_or_default();
    let re = full_match(pattern).map_err(|e| ("pattern", e.to_string()))?;
    Ok(Box::new(TopicNameMatches(re)))
}

pub fn header_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "name",
            ConfigType::String,
            None,
            Importance::Medium,
            "The header name.",
        )
        .validate_with(Validator::NonEmpty)
}

struct HasHeaderKey(String);

impl Predicate for HasHeaderKey {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.headers.iter().any(|h| h.key == self.0)
    }
}

pub fn build_header(p: &Parsed) -> Result<Box<dyn Predicate>, BuildError> {
    Ok(Box::new(HasHeaderKey(
        p.string("name").unwrap_or_default().to_string(),
    )))
}

struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, record: &ConnectRecord) -> bool {
        record.value.is_null()
    }
}

pub fn build_tombstone(_: &Parsed) -> Result<Box<dyn Predicate>, BuildError> {
    Ok(Box::new(RecordIsTombstone))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaAndValue, Value};
    use crate::record::Header;
    use crate::test_props as props;

    fn build(
        def: ConfigDef,
        f: fn(&Parsed) -> Result<Box<dyn Predicate>, BuildError>,
        kv: &[(&str, &str)],
    ) -> Box<dyn Predicate> {
        f(&def.parse(&props(kv)).unwrap()).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn topic_name_matches_the_whole_name() {
        let p = build(topic_def(), build_topic, &[("pattern", "my-.*")]);
        let r = |t: &str| ConnectRecord::new(t, SchemaAndValue::null());
        assert!(p.test(&r("my-topic")));
        assert!(!p.test(&r("not-my-topic")));
        let bad = topic_def().validate(&props(&[("pattern", "(")]));
        assert!(bad[0].errors[0].starts_with(
            "Invalid value ( for configuration pattern: entry must be a Java-compatible regular expression"
        ));
    }

    #[test]
    fn has_header_key_and_tombstone() {
        let p = build(header_def(), build_header, &[("name", "h")]);
        let mut r = ConnectRecord::new("t", SchemaAndValue::schemaless(Value::Int32(1)));
        assert!(!p.test(&r));
        r.headers.push(Header {
            key: "h".into(),
            schema: None,
            value: Value::Null,
        });
        assert!(p.test(&r));
        let t = build(ConfigDef::new(), build_tombstone, &[]);
        assert!(!t.test(&r));
        assert!(t.test(&ConnectRecord::new("t", SchemaAndValue::null())));
    }
}
