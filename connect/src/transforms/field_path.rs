//! Field paths as Kafka's `field.syntax.version` reads them (KIP-821): V1
//! takes the name as it is; V2 splits nested names on dots, a name with
//! dots in it wrapped in backticks (a backtick inside escaped with `\`).

use std::sync::Arc;

use super::util::map_get;
use crate::config_def::{ConfigDef, ConfigType, Importance, Validator};
use crate::data::{Schema, SchemaType, Value};

/// A parsed path: the field names from the outermost in.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    pub steps: Vec<String>,
}

/// Adds `field.syntax.version` (V1 default, V2) to a transform's keys.
pub fn define_syntax_version(def: ConfigDef) -> ConfigDef {
    def.define(
        "field.syntax.version",
        ConfigType::String,
        Some("V1"),
        Importance::High,
        "Defines the version of the syntax to access fields. V1: field names as they are; V2: dots separate nested fields, backticks wrap names with dots.",
    )
    .validate_with(Validator::OneOf {
        values: vec!["V1", "V2"],
        ignore_case: true,
    })
}

impl FieldPath {
    pub fn parse(path: &str, v2: bool) -> FieldPath {
        if !v2 {
            return FieldPath {
                steps: vec![path.to_string()],
            };
        }
        let mut steps = Vec::new();
        let chars: Vec<char> = path.chars().collect();
        let mut i = 0;
        loop {
            let mut name = String::new();
            if chars.get(i) == Some(&'`') {
                // Quoted: up to a backtick followed by a dot or the end.
                i += 1;
                while i < chars.len() {
                    match chars[i] {
                        '\\' if chars.get(i + 1) == Some(&'`') => {
                            name.push('`');
                            i += 2;
                        }
                        '`' if matches!(chars.get(i + 1), None | Some('.')) => {
                            i += 1;
                            break;
                        }
                        c => {
                            name.push(c);
                            i += 1;
                        }
                    }
                }
            } else {
                while i < chars.len() && chars[i] != '.' {
                    name.push(chars[i]);
                    i += 1;
                }
            }
            steps.push(name);
            if i >= chars.len() {
                break;
            }
            i += 1; // the dot
        }
        FieldPath { steps }
    }

    /// The schema of the field the path names in a struct schema.
    pub fn schema_in(&self, schema: &Schema) -> Option<Arc<Schema>> {
        let mut current: Option<Arc<Schema>> = None;
        for step in &self.steps {
            let s: &Schema = current.as_deref().unwrap_or(schema);
            if s.ty != SchemaType::Struct {
                return None;
            }
            current = Some(s.field(step)?.schema.clone());
        }
        current
    }

    /// The value the path names in a struct or map; `None` when absent
    /// (or under a null).
    pub fn value_in<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        let mut current = value;
        for step in &self.steps {
            current = match current {
                Value::Struct(s) => s.get(step)?,
                Value::Map(m) => map_get(m, step)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_splits_on_dots_and_honours_backticks() {
        assert_eq!(FieldPath::parse("a.b", false).steps, ["a.b"]);
        assert_eq!(FieldPath::parse("a.b.c", true).steps, ["a", "b", "c"]);
        assert_eq!(FieldPath::parse("`a.b`.c", true).steps, ["a.b", "c"]);
        assert_eq!(FieldPath::parse("a.`x\\`y`", true).steps, ["a", "x`y"]);
    }
}
