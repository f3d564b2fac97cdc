//! Kafka Connect's single message transforms and predicates: the chain a
//! connector's `transforms` / `predicates` keys describe (`chain.rs`), the
//! keys `config/validate` reports for them (`enriched_def`), and the
//! transforms Kafka ships, by Kafka's class names and simple aliases.
//!
//! Transforms with `$Key` / `$Value` variants take a [`Side`]; each module
//! has a `def()` (its own keys) and a `build()` (parsed keys → transform).

mod cast;
mod chain;
mod datetime;
mod extract_field;
mod field_path;
mod flatten;
mod headers;
mod hoist_field;
mod insert_field;
mod mask_field;
mod predicates;
mod replace_field;
mod routers;
mod set_schema_metadata;
mod timestamp_converter;
pub(crate) mod util;
mod value_to_key;

pub use chain::{TransformChain, enriched_def};
pub use util::Side;

use crate::config_def::{ConfigDef, Parsed};
use crate::plugin::{PluginInfo, PluginKind, Predicate, Transformation};

/// A transform's configuration problem: its own key (without the
/// `transforms.<alias>.` prefix) and the message.
pub(crate) type BuildError = (&'static str, String);

/// One transform class: what it is called, its keys, how to build it.
pub(crate) struct TransformKind {
    pub info: PluginInfo,
    pub side: Side,
    pub build: fn(&Parsed, Side) -> Result<Box<dyn Transformation>, BuildError>,
}

/// One predicate class.
pub(crate) struct PredicateKind {
    pub info: PluginInfo,
    pub build: fn(&Parsed) -> Result<Box<dyn Predicate>, BuildError>,
}

/// `$Key` and `$Value` variants of `org.apache.kafka.connect.transforms.<name>`.
macro_rules! key_and_value {
    ($name:literal, $module:ident) => {
        [
            TransformKind {
                info: PluginInfo {
                    class: concat!("org.apache.kafka.connect.transforms.", $name, "$Key"),
                    aliases: &[concat!($name, "$Key")],
                    kind: PluginKind::Transformation,
                    config_def: $module::def,
                },
                side: Side::Key,
                build: $module::build,
            },
            TransformKind {
                info: PluginInfo {
                    class: concat!("org.apache.kafka.connect.transforms.", $name, "$Value"),
                    aliases: &[concat!($name, "$Value")],
                    kind: PluginKind::Transformation,
                    config_def: $module::def,
                },
                side: Side::Value,
                build: $module::build,
            },
        ]
    };
}

/// A transform without variants, `org.apache.kafka.connect.transforms.<name>`.
macro_rules! whole_record {
    ($name:literal, $def:path, $build:path) => {
        [TransformKind {
            info: PluginInfo {
                class: concat!("org.apache.kafka.connect.transforms.", $name),
                aliases: &[$name],
                kind: PluginKind::Transformation,
                config_def: $def,
            },
            side: Side::Value,
            build: $build,
        }]
    };
}

macro_rules! predicate {
    ($name:literal, $def:path, $build:path) => {
        PredicateKind {
            info: PluginInfo {
                class: concat!("org.apache.kafka.connect.transforms.predicates.", $name),
                aliases: &[$name],
                kind: PluginKind::Predicate,
                config_def: $def,
            },
            build: $build,
        }
    };
}

pub(crate) fn transform_kinds() -> Vec<TransformKind> {
    let mut all = Vec::new();
    all.extend(key_and_value!("InsertField", insert_field));
    all.extend(key_and_value!("ReplaceField", replace_field));
    all.extend(key_and_value!("MaskField", mask_field));
    all.extend(whole_record!(
        "ValueToKey",
        value_to_key::def,
        value_to_key::build
    ));
    all.extend(key_and_value!("HoistField", hoist_field));
    all.extend(key_and_value!("ExtractField", extract_field));
    all.extend(key_and_value!("Cast", cast));
    all.extend(key_and_value!("TimestampConverter", timestamp_converter));
    all.extend(whole_record!(
        "TimestampRouter",
        routers::timestamp_def,
        routers::build_timestamp
    ));
    all.extend(whole_record!(
        "RegexRouter",
        routers::regex_def,
        routers::build_regex
    ));
    all.extend(key_and_value!("Flatten", flatten));
    all.extend(whole_record!(
        "Filter",
        ConfigDef::new,
        headers::build_filter
    ));
    all.extend(whole_record!(
        "InsertHeader",
        headers::insert_def,
        headers::build_insert
    ));
    all.extend(whole_record!(
        "DropHeaders",
        headers::drop_def,
        headers::build_drop
    ));
    all.extend(key_and_value!("HeaderFrom", headers));
    all.extend(key_and_value!("SetSchemaMetadata", set_schema_metadata));
    all
}

pub(crate) fn predicate_kinds() -> Vec<PredicateKind> {
    vec![
        predicate!(
            "TopicNameMatches",
            predicates::topic_def,
            predicates::build_topic
        ),
        predicate!(
            "HasHeaderKey",
            predicates::header_def,
            predicates::build_header
        ),
        predicate!(
            "RecordIsTombstone",
            ConfigDef::new,
            predicates::build_tombstone
        ),
    ]
}

pub(crate) fn find_transform(name: &str) -> Option<TransformKind> {
    transform_kinds()
        .into_iter()
        .find(|k| k.info.answers_to(name.trim()))
}

pub(crate) fn find_predicate(name: &str) -> Option<PredicateKind> {
    predicate_kinds()
        .into_iter()
        .find(|k| k.info.answers_to(name.trim()))
}

/// Every transform and predicate, as `GET /connector-plugins` lists them.
pub fn plugins() -> Vec<PluginInfo> {
    transform_kinds()
        .into_iter()
        .map(|k| k.info)
        .chain(predicate_kinds().into_iter().map(|k| k.info))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kafka_transform_and_predicate_is_listed_by_class_and_alias() {
        let all = plugins();
        for name in [
            "org.apache.kafka.connect.transforms.InsertField$Value",
            "InsertField$Key",
            "ReplaceField$Value",
            "MaskField$Key",
            "org.apache.kafka.connect.transforms.ValueToKey",
            "HoistField$Value",
            "ExtractField$Key",
            "Cast$Value",
            "TimestampConverter$Value",
            "TimestampRouter",
            "org.apache.kafka.connect.transforms.RegexRouter",
            "Flatten$Value",
            "Filter",
            "InsertHeader",
            "DropHeaders",
            "HeaderFrom$Value",
            "SetSchemaMetadata$Value",
            "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            "HasHeaderKey",
            "RecordIsTombstone",
        ] {
            assert!(all.iter().any(|p| p.answers_to(name)), "{name}");
        }
        let kinds: Vec<_> = all.iter().map(|p| p.kind).collect();
        assert!(kinds.contains(&PluginKind::Predicate));
        let insert = all
            .iter()
            .find(|p| p.answers_to("InsertField$Value"))
            .unwrap();
        assert!((insert.config_def)().key("static.value").is_some());
    }
}
