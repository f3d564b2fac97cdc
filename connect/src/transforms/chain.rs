//! The transform chain a connector's configuration describes, as Kafka's
//! `ConnectorConfig` reads it: `transforms=a,b`, `transforms.a.type`,
//! `transforms.a.<key>`, `transforms.a.predicate` / `negate`,
//! `predicates=p`, `predicates.p.type`, `predicates.p.<key>`.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{PredicateKind, TransformKind, find_predicate, find_transform, transform_kinds};
use crate::config_def::{ConfigDef, ConfigType, Importance, ParsedValue, Validator};
use crate::data::DataError;
use crate::plugin::{Predicate, Transformation};
use crate::record::ConnectRecord;

type Props = BTreeMap<String, String>;

/// One transform, applied when its predicate (negated or not) holds.
struct Stage {
    transform: Box<dyn Transformation>,
    predicate: Option<(Arc<dyn Predicate>, bool)>,
}

/// The connector's transforms, in order.
pub struct TransformChain {
    stages: Vec<Stage>,
}

impl TransformChain {
    /// The chain, or every problem as (config key, Kafka's message).
    pub fn from_config(config: &Props) -> Result<TransformChain, Vec<(String, String)>> {
        let mut errors = structural_errors(config);
        for outcome in enriched_def(config).validate(config) {
            for e in outcome.errors {
                errors.push((outcome.name.clone(), e));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut predicates: BTreeMap<String, Arc<dyn Predicate>> = BTreeMap::new();
        let mut stages = Vec::new();
        for alias in dedup(aliases(config, "transforms")) {
            let prefix = format!("transforms.{alias}.");
            let predicate = match config.get(&format!("{prefix}predicate")) {
                Some(p) if !p.trim().is_empty() => {
                    let p = p.trim().to_string();
                    if !predicates.contains_key(&p) {
                        match build_predicate(config, &p) {
                            Ok(built) => {
                                predicates.insert(p.clone(), built);
                            }
                            Err(e) => {
                                errors.push(e);
                                continue;
                            }
                        }
                    }
                    let negate = config
                        .get(&format!("{prefix}negate"))
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
                    Some((predicates[&p].clone(), negate))
                }
                _ => None,
            };
            match build_transform(config, &prefix) {
                Ok(transform) => stages.push(Stage {
                    transform,
                    predicate,
                }),
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(TransformChain { stages })
        } else {
            Err(errors)
        }
    }

    /// The record through every stage; `None` once one drops it.
    pub fn apply(&self, record: ConnectRecord) -> Result<Option<ConnectRecord>, DataError> {
        let mut record = record;
        for stage in &self.stages {
            let applies = match &stage.predicate {
                None => true,
                Some((p, negate)) => p.test(&record) != *negate,
            };
            if !applies {
                continue;
            }
            match stage.transform.apply(record)? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}

/// The aliases a list key names, as Kafka's LIST type splits them.
fn aliases(config: &Props, key: &str) -> Vec<String> {
    config
        .get(key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn dedup(mut v: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    v.retain(|a| seen.insert(a.clone()));
    v
}

/// The keys under `prefix`, without it.
fn sub_config(config: &Props, prefix: &str) -> Props {
    config
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
        .collect()
}

/// Problems no single key's definition catches: duplicate aliases, a
/// negation with no predicate, a predicate alias nothing defines.
fn structural_errors(config: &Props) -> Vec<(String, String)> {
    let mut errors = Vec::new();
    for key in ["transforms", "predicates"] {
        let list = aliases(config, key);
        if dedup(list.clone()).len() < list.len() {
            errors.push((
                key.to_string(),
                format!(
                    "Invalid value [{}] for configuration {key}: Duplicate alias provided.",
                    list.join(", ")
                ),
            ));
        }
    }
    let listed = aliases(config, "predicates");
    for alias in dedup(aliases(config, "transforms")) {
        let prefix = format!("transforms.{alias}.");
        let predicate = config
            .get(&format!("{prefix}predicate"))
            .map(|p| p.trim())
            .filter(|p| !p.is_empty());
        let negated = config
            .get(&format!("{prefix}negate"))
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        match predicate {
            None if negated => errors.push((
                format!("{prefix}negate"),
                format!(
                    "Invalid value true for configuration {prefix}negate: there is no config \
                     '{prefix}predicate' defining a predicate to be negated."
                ),
            )),
            Some(p)
                if !listed.iter().any(|l| l == p)
                    && !config.contains_key(&format!("predicates.{p}.type")) =>
            {
                errors.push((
                    format!("{prefix}predicate"),
                    format!(
                        "Invalid value {p} for configuration {prefix}predicate: \
                         no predicate has the alias {p} (predicates.{p}.type is not set)"
                    ),
                ))
            }
            _ => {}
        }
    }
    errors
}

fn build_transform(
    config: &Props,
    prefix: &str,
) -> Result<Box<dyn Transformation>, (String, String)> {
    let type_key = format!("{prefix}type");
    let class = config.get(&type_key).map(String::as_str).unwrap_or("");
    let kind: TransformKind = find_transform(class).ok_or_else(|| {
        (
            type_key.clone(),
            format!("Class {class} could not be found."),
        )
    })?;
    let parsed = (kind.info.config_def)()
        .parse(&sub_config(config, prefix))
        .map_err(|e| (type_key.clone(), e))?;
    (kind.build)(&parsed, kind.side).map_err(|(key, m)| (format!("{prefix}{key}"), m))
}

fn build_predicate(config: &Props, alias: &str) -> Result<Arc<dyn Predicate>, (String, String)> {
    let prefix = format!("predicates.{alias}.");
    let type_key = format!("{prefix}type");
    let class = config.get(&type_key).map(String::as_str).unwrap_or("");
    let kind: PredicateKind = find_predicate(class).ok_or_else(|| {
        (
            type_key.clone(),
            format!("Invalid value {class} for configuration {type_key}: Not a Predicate"),
        )
    })?;
    let parsed = (kind.info.config_def)()
        .parse(&sub_config(config, &prefix))
        .map_err(|e| (type_key.clone(), e))?;
    (kind.build)(&parsed)
        .map(Arc::from)
        .map_err(|(key, m)| (format!("{prefix}{key}"), m))
}

/// Kafka's `ConnectorConfig.enrich`: for each transform alias its `type`,
/// `predicate`, `negate` and the transform's own keys, under
/// `transforms.<alias>.` in group "Transforms: <alias>"; for each predicate
/// alias its `type` and keys under `predicates.<alias>.`. Keys of a type
/// that does not resolve are left out (the type's error says why).
pub fn enriched_def(config: &Props) -> ConfigDef {
    let mut def = ConfigDef::new();
    for alias in dedup(aliases(config, "transforms")) {
        let prefix = format!("transforms.{alias}.");
        let group = format!("Transforms: {alias}");
        def = def
            .define(
                &format!("{prefix}type"),
                ConfigType::Class,
                None,
                Importance::High,
                &format!("Class for the '{alias}' transformation."),
            )
            .validate_with(Validator::Custom(check_transform_class))
            .in_group(&group)
            .define(
                &format!("{prefix}predicate"),
                ConfigType::String,
                None,
                Importance::Medium,
                "The alias of a predicate used to determine whether to apply this transformation.",
            )
            .nullable()
            .in_group(&group)
            .define(
                &format!("{prefix}negate"),
                ConfigType::Boolean,
                Some("false"),
                Importance::Medium,
                "Whether the configured predicate should be negated.",
            )
            .in_group(&group);
        if let Some(kind) = config
            .get(&format!("{prefix}type"))
            .and_then(|c| find_transform(c))
        {
            def = embed(def, &(kind.info.config_def)(), &prefix, &group);
        }
    }
    for alias in dedup(aliases(config, "predicates")) {
        let prefix = format!("predicates.{alias}.");
        let group = format!("Predicates: {alias}");
        def = def
            .define(
                &format!("{prefix}type"),
                ConfigType::Class,
                None,
                Importance::High,
                &format!("Class for the '{alias}' predicate."),
            )
            .validate_with(Validator::Custom(check_predicate_class))
            .in_group(&group);
        if let Some(kind) = config
            .get(&format!("{prefix}type"))
            .and_then(|c| find_predicate(c))
        {
            def = embed(def, &(kind.info.config_def)(), &prefix, &group);
        }
    }
    def
}

/// Kafka's `ConfigDef.embed`: `inner`'s keys under `prefix`, in `group`
/// (keys named as the chain's own, `predicate` and `negate`, are dropped).
fn embed(mut def: ConfigDef, inner: &ConfigDef, prefix: &str, group: &str) -> ConfigDef {
    for key in &inner.keys {
        if matches!(key.name.as_str(), "type" | "predicate" | "negate") {
            continue;
        }
        let mut k = key.clone();
        k.name = format!("{prefix}{}", key.name);
        k.display_name = k.name.clone();
        k.group = Some(group.to_string());
        def.keys.push(k);
    }
    def
}

fn class_name(v: &ParsedValue) -> &str {
    match v {
        ParsedValue::String(s) => s,
        _ => "",
    }
}

fn check_transform_class(v: &ParsedValue) -> Result<(), String> {
    let name = class_name(v);
    if find_transform(name).is_some() {
        return Ok(());
    }
    if find_predicate(name).is_some() || crate::connectors::find(name).is_some() {
        return Err("Not a Transformation".into());
    }
    // A class with `$Key` / `$Value` variants named without one.
    let variants: Vec<&str> = transform_kinds()
        .iter()
        .filter(|k| {
            k.info
                .class
                .strip_suffix("$Key")
                .or(k.info.class.strip_suffix("$Value"))
                .is_some_and(|base| base == name || base.rsplit('.').next() == Some(name))
        })
        .map(|k| k.info.class)
        .collect();
    if !variants.is_empty() {
        return Err(format!(
            "Transformation is abstract and cannot be created. Did you mean {}?",
            variants.join(", ")
        ));
    }
    Err(format!("Class {name} could not be found."))
}

fn check_predicate_class(v: &ParsedValue) -> Result<(), String> {
    let name = class_name(v);
    if find_predicate(name).is_some() {
        Ok(())
    } else if find_transform(name).is_some() || crate::connectors::find(name).is_some() {
        Err("Not a Predicate".into())
    } else {
        Err(format!("Class {name} could not be found."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{SchemaAndValue, Value};
    use crate::record::Header;
    use crate::test_props as p;
    use crate::transforms::util::fixtures::{map, string};

    fn record(topic: &str) -> ConnectRecord {
        ConnectRecord::new(
            topic,
            SchemaAndValue::schemaless(map(vec![("a", Value::Int64(1))])),
        )
    }

    fn errors_of(config: &Props) -> Vec<(String, String)> {
        match TransformChain::from_config(config) {
            Ok(_) => Vec::new(),
            Err(e) => e,
        }
    }

    #[test]
    fn no_transforms_is_an_empty_chain_that_passes_records() {
        let chain = TransformChain::from_config(&p(&[("name", "c")])).unwrap();
        assert!(chain.is_empty());
        assert_eq!(chain.apply(record("t")).unwrap(), Some(record("t")));
    }

    #[test]
    fn stages_run_in_order() {
        let chain = TransformChain::from_config(&p(&[
            ("transforms", "hoist, route"),
            ("transforms.hoist.type", "HoistField$Value"),
            ("transforms.hoist.field", "wrapped"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "(.*)"),
            ("transforms.route.replacement", "$1-out"),
        ]))
        .unwrap();
        assert!(!chain.is_empty());
        let out = chain.apply(record("t")).unwrap().unwrap();
        assert_eq!(out.topic, "t-out");
        assert_eq!(
            out.value,
            map(vec![("wrapped", map(vec![("a", Value::Int64(1))]))])
        );
    }

    #[test]
    fn filter_with_a_predicate_and_its_negation() {
        let config = |negate: &str| {
            p(&[
                ("transforms", "drop"),
                ("transforms.drop.type", "Filter"),
                ("transforms.drop.predicate", "isFoo"),
                ("transforms.drop.negate", negate),
                ("predicates", "isFoo"),
                ("predicates.isFoo.type", "TopicNameMatches"),
                ("predicates.isFoo.pattern", "foo.*"),
            ])
        };
        let plain = TransformChain::from_config(&config("false")).unwrap();
        assert_eq!(plain.apply(record("foo-1")).unwrap(), None);
        assert!(plain.apply(record("bar")).unwrap().is_some());
        let negated = TransformChain::from_config(&config("true")).unwrap();
        assert!(negated.apply(record("foo-1")).unwrap().is_some());
        assert_eq!(negated.apply(record("bar")).unwrap(), None);
    }

    #[test]
    fn header_and_tombstone_predicates_gate_transforms() {
        let chain = TransformChain::from_config(&p(&[
            ("transforms", "dropTombstones,dropMarked"),
            ("transforms.dropTombstones.type", "Filter"),
            ("transforms.dropTombstones.predicate", "tomb"),
            ("transforms.dropMarked.type", "Filter"),
            ("transforms.dropMarked.predicate", "marked"),
            ("predicates", "tomb,marked"),
            (
                "predicates.tomb.type",
                "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
            ),
            ("predicates.marked.type", "HasHeaderKey"),
            ("predicates.marked.name", "skip"),
        ]))
        .unwrap();
        let tomb = ConnectRecord::new("t", SchemaAndValue::null());
        assert_eq!(chain.apply(tomb).unwrap(), None);
        let mut marked = record("t");
        marked.headers.push(Header {
            key: "skip".into(),
            schema: None,
            value: string("1"),
        });
        assert_eq!(chain.apply(marked).unwrap(), None);
        assert!(chain.apply(record("t")).unwrap().is_some());
    }

    #[test]
    fn config_errors_name_the_key_with_kafkas_words() {
        let errs = errors_of(&p(&[
            ("transforms", "a,b,c,c"),
            ("transforms.a.type", "com.example.Nope"),
            ("transforms.c.type", "InsertField$Value"),
        ]));
        assert!(errs.contains(&(
            "transforms".into(),
            "Invalid value [a, b, c, c] for configuration transforms: Duplicate alias provided."
                .into()
        )));
        assert!(
            errs.contains(&(
                "transforms.a.type".into(),
                "Invalid value com.example.Nope for configuration transforms.a.type: \
             Class com.example.Nope could not be found."
                    .into()
            ))
        );
        assert!(
            errs.contains(&(
                "transforms.b.type".into(),
                "Missing required configuration \"transforms.b.type\" which has no default value."
                    .into()
            ))
        );

        let errs = errors_of(&p(&[
            ("transforms", "h"),
            ("transforms.h.type", "HoistField$Value"),
        ]));
        assert_eq!(
            errs,
            [(
                "transforms.h.field".to_string(),
                "Missing required configuration \"transforms.h.field\" which has no default value."
                    .to_string()
            )]
        );

        let errs = errors_of(&p(&[
            ("transforms", "h"),
            ("transforms.h.type", "InsertField"),
        ]));
        assert!(
            errs[0]
                .1
                .contains("Transformation is abstract and cannot be created")
        );
        assert!(errs[0].1.contains("InsertField$Value"));
    }

    #[test]
    fn predicate_errors() {
        let base = [("transforms", "f"), ("transforms.f.type", "Filter")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = base.to_vec();
            all.extend_from_slice(extra);
            errors_of(&p(&all))
        };
        assert_eq!(
            with(&[("transforms.f.negate", "true")]),
            [(
                "transforms.f.negate".to_string(),
                "Invalid value true for configuration transforms.f.negate: there is no config \
                 'transforms.f.predicate' defining a predicate to be negated."
                    .to_string()
            )]
        );
        let errs = with(&[("transforms.f.predicate", "p")]);
        assert_eq!(errs[0].0, "transforms.f.predicate");
        let errs = with(&[
            ("transforms.f.predicate", "p"),
            ("predicates", "p"),
            ("predicates.p.type", "Filter"),
        ]);
        assert_eq!(
            errs,
            [(
                "predicates.p.type".to_string(),
                "Invalid value Filter for configuration predicates.p.type: Not a Predicate"
                    .to_string()
            )]
        );
        let errs = with(&[
            ("transforms.f.predicate", "p"),
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
        ]);
        assert_eq!(
            errs,
            [(
                "predicates.p.pattern".to_string(),
                "Missing required configuration \"predicates.p.pattern\" which has no default value."
                    .to_string()
            )]
        );
        // Kafka reads a predicate's keys even when `predicates` omits it.
        assert!(
            with(&[
                ("transforms.f.predicate", "p"),
                ("predicates.p.type", "RecordIsTombstone"),
            ])
            .is_empty()
        );
    }

    #[test]
    fn enriched_def_groups_each_alias() {
        let def = enriched_def(&p(&[
            ("transforms", "ins"),
            ("transforms.ins.type", "InsertField$Value"),
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
        ]));
        let names: Vec<&str> = def.keys.iter().map(|k| k.name.as_str()).collect();
        for k in [
            "transforms.ins.type",
            "transforms.ins.predicate",
            "transforms.ins.negate",
            "transforms.ins.topic.field",
            "transforms.ins.static.value",
            "predicates.p.type",
            "predicates.p.pattern",
        ] {
            assert!(names.contains(&k), "{k} in {names:?}");
        }
        assert_eq!(
            def.key("transforms.ins.topic.field")
                .unwrap()
                .group
                .as_deref(),
            Some("Transforms: ins")
        );
        assert_eq!(
            def.key("predicates.p.pattern").unwrap().group.as_deref(),
            Some("Predicates: p")
        );
    }
}
