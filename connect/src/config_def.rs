//! Kafka's `ConfigDef`: the keys a connector, transform or converter
//! accepts, their types, defaults and validators; parsing a string map
//! against them, and the per-field results that the REST API's
//! `config/validate` returns, with Kafka's wording.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    pub fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// A check beyond the type.
#[derive(Clone)]
pub enum Validator {
    /// Numbers within these bounds (inclusive).
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// One of these strings (case-insensitively when `ignore_case`).
    OneOf {
        values: Vec<&'static str>,
        ignore_case: bool,
    },
    NonEmpty,
    /// Anything else: the error's text after "Invalid value V for configuration K: ".
    Custom(fn(&ParsedValue) -> Result<(), String>),
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Validator::Range { min, max } => write!(f, "Range({min:?}, {max:?})"),
            Validator::OneOf { values, .. } => write!(f, "OneOf({values:?})"),
            Validator::NonEmpty => f.write_str("NonEmpty"),
            Validator::Custom(_) => f.write_str("Custom"),
        }
    }
}

/// One key.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    pub name: String,
    pub ty: ConfigType,
    /// `None`: required, unless `nullable`.
    pub default: Option<String>,
    /// A null default (Kafka's `define(…, null, …)`): optional with no value.
    pub nullable: bool,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub display_name: String,
    pub validator: Option<Validator>,
}

/// A set of keys, in definition order.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

/// A value parsed by its type.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedValue {
    Boolean(bool),
    String(String),
    Int(i64),
    Double(f64),
    List(Vec<String>),
    Password(String),
}

impl ConfigDef {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key (builder style). `default` `None` makes it required.
    pub fn define(
        mut self,
        name: &str,
        ty: ConfigType,
        default: Option<&str>,
        importance: Importance,
        documentation: &str,
    ) -> Self {
        self.keys.push(ConfigKey {
            name: name.to_string(),
            ty,
            default: default.map(str::to_string),
            nullable: false,
            importance,
            documentation: documentation.to_string(),
            group: None,
            display_name: name.to_string(),
            validator: None,
        });
        self
    }

    /// Sets the validator of the key defined last.
    pub fn validate_with(mut self, validator: Validator) -> Self {
        if let Some(k) = self.keys.last_mut() {
            k.validator = Some(validator);
        }
        self
    }

    /// Gives the key defined last a null default: optional, no value.
    pub fn nullable(mut self) -> Self {
        if let Some(k) = self.keys.last_mut() {
            k.nullable = true;
        }
        self
    }

    /// Sets the group of the key defined last.
    pub fn in_group(mut self, group: &str) -> Self {
        if let Some(k) = self.keys.last_mut() {
            k.group = Some(group.to_string());
        }
        self
    }

    /// This definition followed by `other`'s keys (those it lacks).
    pub fn merged(mut self, other: &ConfigDef) -> Self {
        for k in &other.keys {
            if !self.keys.iter().any(|m| m.name == k.name) {
                self.keys.push(k.clone());
            }
        }
        self
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Every key's outcome: its value (given or default) and errors.
    pub fn validate(&self, props: &BTreeMap<String, String>) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|k| {
                let given = props.get(&k.name);
                let errors = match parse_key(k, given) {
                    Ok(_) => Vec::new(),
                    Err(e) => vec![e],
                };
                ConfigValue {
                    name: k.name.clone(),
                    value: given.cloned().or_else(|| k.default.clone()),
                    errors,
                }
            })
            .collect()
    }

    /// Parses every key, or the first error in Kafka's wording.
    pub fn parse(&self, props: &BTreeMap<String, String>) -> Result<Parsed, String> {
        let mut values = BTreeMap::new();
        for k in &self.keys {
            if let Some(v) = parse_key(k, props.get(&k.name))? {
                values.insert(k.name.clone(), v);
            }
        }
        Ok(Parsed { values })
    }
}

/// `Ok(None)`: an optional key with no value and a null default.
fn parse_key(key: &ConfigKey, given: Option<&String>) -> Result<Option<ParsedValue>, String> {
    let raw = match (given, &key.default) {
        (Some(v), _) => v.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) if key.nullable => return Ok(None),
        (None, None) => {
            return Err(format!(
                "Missing required configuration \"{}\" which has no default value.",
                key.name
            ));
        }
    };
    let invalid = |why: &str| {
        let shown = if key.ty == ConfigType::Password {
            "[hidden]"
        } else {
            raw.as_str()
        };
        format!(
            "Invalid value {shown} for configuration {}: {why}",
            key.name
        )
    };
    let trimmed = raw.trim();
    let value = match key.ty {
        ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
            "true" => ParsedValue::Boolean(true),
            "false" => ParsedValue::Boolean(false),
            _ => return Err(invalid("Expected value to be either true or false")),
        },
        ConfigType::String | ConfigType::Class => ParsedValue::String(trimmed.to_string()),
        ConfigType::Password => ParsedValue::Password(raw.clone()),
        ConfigType::Int | ConfigType::Short | ConfigType::Long => {
            let (lo, hi, name) = match key.ty {
                ConfigType::Short => (i16::MIN as i64, i16::MAX as i64, "SHORT"),
                ConfigType::Int => (i32::MIN as i64, i32::MAX as i64, "INT"),
                _ => (i64::MIN, i64::MAX, "LONG"),
            };
            match trimmed.parse::<i64>() {
                Ok(n) if (lo..=hi).contains(&n) => ParsedValue::Int(n),
                _ => return Err(invalid(&format!("Not a number of type {name}"))),
            }
        }
        ConfigType::Double => match trimmed.parse::<f64>() {
            Ok(n) => ParsedValue::Double(n),
            Err(_) => return Err(invalid("Not a number of type DOUBLE")),
        },
        ConfigType::List => ParsedValue::List(
            trimmed
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
    };
    if let Some(v) = &key.validator {
        check(v, &value).map_err(|why| invalid(&why))?;
    }
    Ok(Some(value))
}

fn check(validator: &Validator, value: &ParsedValue) -> Result<(), String> {
    match validator {
        Validator::Range { min, max } => {
            let n = match value {
                ParsedValue::Int(n) => *n as f64,
                ParsedValue::Double(n) => *n,
                _ => return Ok(()),
            };
            let show = |b: f64| {
                if b.fract() == 0.0 {
                    format!("{}", b as i64)
                } else {
                    b.to_string()
                }
            };
            if let Some(lo) = min
                && n < *lo
            {
                return Err(format!("Value must be at least {}", show(*lo)));
            }
            if let Some(hi) = max
                && n > *hi
            {
                return Err(format!("Value must be no more than {}", show(*hi)));
            }
            Ok(())
        }
        Validator::OneOf {
            values,
            ignore_case,
        } => {
            let s = match value {
                ParsedValue::String(s) => s,
                _ => return Ok(()),
            };
            let ok = values.iter().any(|v| {
                if *ignore_case {
                    v.eq_ignore_ascii_case(s)
                } else {
                    v == s
                }
            });
            if ok {
                Ok(())
            } else {
                Err(format!("String must be one of: {}", values.join(", ")))
            }
        }
        Validator::NonEmpty => match value {
            ParsedValue::String(s) if s.is_empty() => Err("String must be non-empty".into()),
            _ => Ok(()),
        },
        Validator::Custom(f) => f(value),
    }
}

/// Parsed keys with typed getters. A getter of a key the definition lacks
/// or of the wrong type panics: that is a bug in the definition's user.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    values: BTreeMap<String, ParsedValue>,
}

impl Parsed {
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(ParsedValue::String(s)) | Some(ParsedValue::Password(s)) => Some(s),
            None => None,
            Some(other) => panic!("config {name} is not a string: {other:?}"),
        }
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(ParsedValue::Int(n)) => Some(*n),
            None => None,
            Some(other) => panic!("config {name} is not a number: {other:?}"),
        }
    }

    pub fn double(&self, name: &str) -> Option<f64> {
        match self.values.get(name) {
            Some(ParsedValue::Double(n)) => Some(*n),
            Some(ParsedValue::Int(n)) => Some(*n as f64),
            None => None,
            Some(other) => panic!("config {name} is not a number: {other:?}"),
        }
    }

    pub fn boolean(&self, name: &str) -> Option<bool> {
        match self.values.get(name) {
            Some(ParsedValue::Boolean(b)) => Some(*b),
            None => None,
            Some(other) => panic!("config {name} is not a boolean: {other:?}"),
        }
    }

    pub fn list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(ParsedValue::List(l)) => l.clone(),
            None => Vec::new(),
            Some(other) => panic!("config {name} is not a list: {other:?}"),
        }
    }
}

/// One key's validation outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    pub errors: Vec<String>,
}

/// `GET /connector-plugins/{plugin}/config`'s entries (Kafka's
/// `PluginConfigKeyInfo` JSON).
#[derive(Debug, Clone, Serialize)]
pub struct ConfigKeyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub required: bool,
    pub default_value: Option<String>,
    pub importance: &'static str,
    pub documentation: String,
    pub group: Option<String>,
    pub order_in_group: i32,
    pub width: &'static str,
    pub display_name: String,
    pub dependents: Vec<String>,
}

impl From<&ConfigKey> for ConfigKeyInfo {
    fn from(k: &ConfigKey) -> Self {
        ConfigKeyInfo {
            name: k.name.clone(),
            ty: k.ty.name(),
            required: k.default.is_none() && !k.nullable,
            default_value: k.default.clone(),
            importance: k.importance.name(),
            documentation: k.documentation.clone(),
            group: k.group.clone(),
            order_in_group: -1,
            width: "NONE",
            display_name: k.display_name.clone(),
            dependents: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                ConfigType::String,
                None,
                Importance::High,
                "the file",
            )
            .define(
                "tasks.max",
                ConfigType::Int,
                Some("1"),
                Importance::High,
                "tasks",
            )
            .validate_with(Validator::Range {
                min: Some(1.0),
                max: None,
            })
            .define(
                "mode",
                ConfigType::String,
                Some("bulk"),
                Importance::Medium,
                "mode",
            )
            .validate_with(Validator::OneOf {
                values: vec!["bulk", "incrementing"],
                ignore_case: false,
            })
    }

    #[test]
    fn missing_required_and_bad_values_use_kafkas_words() {
        let out = def().validate(&props(&[("tasks.max", "0"), ("mode", "x")]));
        assert_eq!(
            out[0].errors,
            ["Missing required configuration \"file\" which has no default value."]
        );
        assert_eq!(
            out[1].errors,
            ["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
        );
        assert_eq!(
            out[2].errors,
            ["Invalid value x for configuration mode: String must be one of: bulk, incrementing"]
        );
        let err = def()
            .parse(&props(&[("file", "/f"), ("tasks.max", "many")]))
            .unwrap_err();
        assert_eq!(
            err,
            "Invalid value many for configuration tasks.max: Not a number of type INT"
        );
    }

    #[test]
    fn defaults_fill_what_is_not_given() {
        let p = def().parse(&props(&[("file", " /tmp/x ")])).unwrap();
        assert_eq!(p.string("file"), Some("/tmp/x"));
        assert_eq!(p.int("tasks.max"), Some(1));
        assert_eq!(p.string("mode"), Some("bulk"));
    }
}
