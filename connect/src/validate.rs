//! Validating a connector's configuration as Kafka Connect does: the keys
//! every connector has (Kafka's `ConnectorConfig`), the connector's own,
//! and its transforms; the result shaped as `config/validate` returns it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config_def::{ConfigDef, ConfigKeyInfo, ConfigType, Importance, Validator};
use crate::connector::{ConnectorPlugin, ConnectorType, Props};
use crate::transforms::{TransformChain, enriched_def};

pub fn common_def(kind: ConnectorType) -> ConfigDef {
    let def = ConfigDef::new()
        .define(
            "name",
            ConfigType::String,
            None,
            Importance::High,
            "Globally unique name to use for this connector.",
        )
        .in_group("Common")
        .define(
            "connector.class",
            ConfigType::String,
            None,
            Importance::High,
            "Name or alias of the class for this connector.",
        )
        .in_group("Common")
        .define(
            "tasks.max",
            ConfigType::Int,
            Some("1"),
            Importance::High,
            "Maximum number of tasks to use for this connector.",
        )
        .validate_with(Validator::Range {
            min: Some(1.0),
            max: None,
        })
        .in_group("Common")
        .define(
            "key.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for keys; the worker's when empty.",
        )
        .in_group("Common")
        .define(
            "value.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for values; the worker's when empty.",
        )
        .in_group("Common")
        .define(
            "header.converter",
            ConfigType::Class,
            Some(""),
            Importance::Low,
            "Converter class for header values; the worker's when empty.",
        )
        .in_group("Common")
        .define(
            "transforms",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases of the transformations to apply to records, in order.",
        )
        .in_group("Transforms")
        .define(
            "predicates",
            ConfigType::List,
            Some(""),
            Importance::Low,
            "Aliases of the predicates transformations use.",
        )
        .in_group("Predicates")
        .define(
            "errors.retry.timeout",
            ConfigType::Long,
            Some("0"),
            Importance::Medium,
            "How long to retry a failed operation, in milliseconds; -1 for ever.",
        )
        .in_group("Error Handling")
        .define(
            "errors.retry.delay.max.ms",
            ConfigType::Long,
            Some("60000"),
            Importance::Medium,
            "The longest wait between retries.",
        )
        .in_group("Error Handling")
        .define(
            "errors.tolerance",
            ConfigType::String,
            Some("none"),
            Importance::Medium,
            "none: an error fails the task; all: bad records are skipped.",
        )
        .validate_with(Validator::OneOf {
            values: vec!["none", "all"],
            ignore_case: true,
        })
        .in_group("Error Handling")
        .define(
            "errors.log.enable",
            ConfigType::Boolean,
            Some("false"),
            Importance::Medium,
            "Log each error and the failed record.",
        )
        .in_group("Error Handling")
        .define(
            "errors.log.include.messages",
            ConfigType::Boolean,
            Some("false"),
            Importance::Medium,
            "Include the record in the error log.",
        )
        .in_group("Error Handling");
    match kind {
        ConnectorType::Source => def,
        ConnectorType::Sink => def
            .define(
                "topics",
                ConfigType::List,
                Some(""),
                Importance::High,
                "Topics to consume.",
            )
            .in_group("Common")
            .define(
                "topics.regex",
                ConfigType::String,
                Some(""),
                Importance::High,
                "A regular expression of topics to consume.",
            )
            .in_group("Common")
            .define(
                "errors.deadletterqueue.topic.name",
                ConfigType::String,
                Some(""),
                Importance::Medium,
                "Topic for records that failed, when errors.tolerance=all.",
            )
            .in_group("Error Handling")
            .define(
                "errors.deadletterqueue.topic.replication.factor",
                ConfigType::Short,
                Some("-1"),
                Importance::Medium,
                "Replication factor of the dead letter queue topic when it is created; -1 for the broker's default.",
            )
            .in_group("Error Handling")
            .define(
                "errors.deadletterqueue.context.headers.enable",
                ConfigType::Boolean,
                Some("false"),
                Importance::Medium,
                "Add headers saying why a record failed.",
            )
            .in_group("Error Handling"),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigInfos {
    pub name: String,
    pub error_count: usize,
    pub groups: Vec<String>,
    pub configs: Vec<ConfigInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigInfo {
    pub definition: ConfigKeyInfo,
    pub value: ConfigValueInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigValueInfo {
    pub name: String,
    pub value: Option<String>,
    pub recommended_values: Vec<String>,
    pub errors: Vec<String>,
    pub visible: bool,
}

impl ConfigInfos {
    /// Every error message, in order.
    pub fn errors(&self) -> Vec<String> {
        self.configs
            .iter()
            .flat_map(|c| c.value.errors.iter().cloned())
            .collect()
    }
}

pub fn validate(plugin: &ConnectorPlugin, config: &Props) -> ConfigInfos {
    let connector = (plugin.connector)();
    // Kafka's `ConnectorConfig.enrich`: each transform's and predicate's
    // keys under its alias, in groups of their own.
    let def = common_def(plugin.kind)
        .merged(&connector.config_def())
        .merged(&enriched_def(config));
    let mut outcomes = def.validate(config);
    if plugin.kind == ConnectorType::Sink {
        let has = |k: &str| config.get(k).is_some_and(|v| !v.trim().is_empty());
        let message = match (has("topics"), has("topics.regex")) {
            (false, false) => Some("Must configure one of topics or topics.regex"),
            (true, true) => {
                Some("topics and topics.regex are mutually exclusive options, but both are set.")
            }
            _ => None,
        };
        if let Some(m) = message {
            for o in outcomes
                .iter_mut()
                .filter(|o| o.name == "topics" || o.name == "topics.regex")
            {
                o.errors.push(m.to_string());
            }
        }
    }
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    // The connector's own checks, beside the keys they name.
    for (key, message) in connector.validate_config(config) {
        match outcomes.iter_mut().find(|o| o.name == key) {
            Some(o) => o.errors.push(message),
            None => extra.entry(key).or_default().push(message),
        }
    }
    // The chain checks what no single key's definition can (duplicate
    // aliases, predicates nothing defines, keys that must agree); the
    // per-key errors it repeats are already in `outcomes`.
    if let Err(errors) = TransformChain::from_config(config) {
        for (key, message) in errors {
            match outcomes.iter_mut().find(|o| o.name == key) {
                Some(o) if o.errors.contains(&message) => {}
                Some(o) => o.errors.push(message),
                None => extra.entry(key).or_default().push(message),
            }
        }
    }
    let mut configs: Vec<ConfigInfo> = def
        .keys
        .iter()
        .zip(outcomes)
        .map(|(k, o)| ConfigInfo {
            definition: ConfigKeyInfo::from(k),
            value: ConfigValueInfo {
                name: o.name,
                value: o.value,
                recommended_values: Vec::new(),
                errors: o.errors,
                visible: true,
            },
        })
        .collect();
    for (key, errors) in extra {
        let k = ConfigDef::new().define(&key, ConfigType::String, Some(""), Importance::Low, "");
        configs.push(ConfigInfo {
            definition: ConfigKeyInfo::from(&k.keys[0]),
            value: ConfigValueInfo {
                value: config.get(&key).cloned(),
                name: key,
                recommended_values: Vec::new(),
                errors,
                visible: true,
            },
        });
    }
    let mut groups: Vec<String> = Vec::new();
    for c in &configs {
        if let Some(g) = &c.definition.group
            && !groups.contains(g)
        {
            groups.push(g.clone());
        }
    }
    ConfigInfos {
        name: plugin.class.to_string(),
        error_count: configs.iter().map(|c| c.value.errors.len()).sum(),
        groups,
        configs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connectors;
    use crate::test_props as p;

    #[test]
    fn per_field_errors_for_a_file_sink() {
        let plugin = connectors::find("FileStreamSink").unwrap();
        let out = validate(
            &plugin,
            &p(&[
                ("name", "s"),
                ("connector.class", "FileStreamSink"),
                ("tasks.max", "0"),
            ]),
        );
        let errs = |name: &str| {
            out.configs
                .iter()
                .find(|c| c.value.name == name)
                .unwrap()
                .value
                .errors
                .clone()
        };
        assert_eq!(
            errs("tasks.max"),
            ["Invalid value 0 for configuration tasks.max: Value must be at least 1"]
        );
        assert_eq!(
            errs("file"),
            ["Missing required configuration \"file\" which has no default value."]
        );
        assert_eq!(
            errs("topics"),
            ["Must configure one of topics or topics.regex"]
        );
        assert_eq!(out.error_count, 4);
        assert_eq!(
            out.name,
            "org.apache.kafka.connect.file.FileStreamSinkConnector"
        );
        assert!(out.groups.contains(&"Error Handling".to_string()));

        let ok = validate(
            &plugin,
            &p(&[
                ("name", "s"),
                ("connector.class", "FileStreamSink"),
                ("file", "/tmp/x"),
                ("topics", "a"),
            ]),
        );
        assert_eq!(ok.error_count, 0, "{:?}", ok.errors());
    }

    #[test]
    fn transforms_and_predicates_are_reported_per_alias() {
        let plugin = connectors::find("FileStreamSink").unwrap();
        let out = validate(
            &plugin,
            &p(&[
                ("name", "s"),
                ("connector.class", "FileStreamSink"),
                ("file", "/tmp/x"),
                ("topics", "a"),
                ("transforms", "ins,bad,hf"),
                ("transforms.ins.type", "InsertField$Value"),
                ("transforms.ins.topic.field", "topic"),
                ("transforms.ins.predicate", "isA"),
                ("transforms.bad.type", "com.example.Missing"),
                ("transforms.hf.type", "HoistField$Value"),
                ("predicates", "isA"),
                ("predicates.isA.type", "TopicNameMatches"),
                ("predicates.isA.pattern", "a"),
            ]),
        );
        let find = |name: &str| {
            out.configs
                .iter()
                .find(|c| c.value.name == name)
                .unwrap_or_else(|| panic!("{name} not reported"))
        };
        assert_eq!(
            find("transforms.ins.topic.field")
                .definition
                .group
                .as_deref(),
            Some("Transforms: ins")
        );
        assert_eq!(
            find("transforms.ins.topic.field").value.value.as_deref(),
            Some("topic")
        );
        assert!(find("transforms.ins.negate").value.errors.is_empty());
        assert!(find("transforms.ins.predicate").value.errors.is_empty());
        assert_eq!(
            find("predicates.isA.pattern").definition.group.as_deref(),
            Some("Predicates: isA")
        );
        assert_eq!(
            find("transforms.bad.type").value.errors,
            [
                "Invalid value com.example.Missing for configuration transforms.bad.type: \
              Class com.example.Missing could not be found."
            ]
        );
        assert_eq!(
            find("transforms.hf.field").value.errors,
            ["Missing required configuration \"transforms.hf.field\" which has no default value."]
        );
        assert_eq!(out.error_count, 2, "{:?}", out.errors());
        assert!(out.groups.contains(&"Transforms: hf".to_string()));
        assert!(out.groups.contains(&"Predicates: isA".to_string()));
    }

    #[test]
    fn a_connectors_own_checks_show_beside_their_key() {
        let plugin = connectors::find("weir.postgres.source").unwrap();
        let out = validate(
            &plugin,
            &p(&[
                ("name", "s"),
                ("connector.class", "weir.postgres.source"),
                ("connection.url", "postgresql://u@localhost/db"),
                ("table.whitelist", "t"),
                ("mode", "timestamp"),
                ("topic.prefix", "p-"),
            ]),
        );
        let with_errors: Vec<_> = out
            .configs
            .iter()
            .filter(|c| !c.value.errors.is_empty())
            .map(|c| (c.value.name.as_str(), c.value.errors[0].as_str()))
            .collect();
        assert_eq!(
            with_errors,
            [(
                "timestamp.column.name",
                "mode=timestamp requires timestamp.column.name: the column to read new rows by"
            )]
        );
    }
}
