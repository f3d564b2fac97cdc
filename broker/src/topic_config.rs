//! Topic-level configuration: the keys Kafka defines, their types, defaults
//! and validation, and the translation into the log's own `LogConfig`.
//!
//! Keys and defaults follow Kafka's, so tools that set `retention.ms` or
//! `cleanup.policy` work unchanged. Broker-wide defaults use Kafka's broker
//! names (`log.retention.ms`, …) and can be overridden with `--config`.

use std::collections::BTreeMap;

use weir_log::{CleanupPolicy, LogConfig, TimestampType};

/// How a config value is checked.
#[derive(Debug, Clone, Copy)]
pub enum ConfigType {
    /// A 64-bit integer at least `min`.
    Long {
        min: i64,
    },
    /// A 32-bit integer at least `min`.
    Int {
        min: i64,
    },
    /// A floating point number in `[min, max]`.
    Double {
        min: f64,
        max: f64,
    },
    Boolean,
    /// One of the listed words.
    Choice(&'static [&'static str]),
    /// A comma-separated list, each item one of the listed words.
    ChoiceList(&'static [&'static str]),
    /// Anything (lists of replicas and the like we accept but do not act on yet).
    Text,
}

/// One topic config key Kafka defines.
#[derive(Debug)]
pub struct ConfigDef {
    pub name: &'static str,
    /// The broker-level key whose value is the default (Kafka's synonym).
    pub broker_key: Option<&'static str>,
    pub default: &'static str,
    pub kind: ConfigType,
    /// Whether the value changes what Weir does (the rest are accepted for
    /// compatibility and reported as set).
    pub effective: bool,
}

const DAY_MS: &str = "86400000";
const WEEK_MS: &str = "604800000";
const LONG_MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $broker:expr, $default:expr, $kind:expr, $effective:expr) => {
        ConfigDef {
            name: $name,
            broker_key: $broker,
            default: $default,
            kind: $kind,
            effective: $effective,
        }
    };
}

/// Every topic config key, sorted by name.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        Some("log.cleanup.policy"),
        "delete",
        ConfigType::ChoiceList(&["delete", "compact"]),
        true
    ),
    def!(
        "compression.type",
        Some("compression.type"),
        "producer",
        ConfigType::Choice(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        false
    ),
    def!(
        "delete.retention.ms",
        Some("log.cleaner.delete.retention.ms"),
        DAY_MS,
        ConfigType::Long { min: 0 },
        true
    ),
    def!(
        "file.delete.delay.ms",
        Some("log.segment.delete.delay.ms"),
        "60000",
        ConfigType::Long { min: 0 },
        false
    ),
    def!(
        "flush.messages",
        Some("log.flush.interval.messages"),
        LONG_MAX,
        ConfigType::Long { min: 1 },
        false
    ),
    def!(
        "flush.ms",
        Some("log.flush.interval.ms"),
        LONG_MAX,
        ConfigType::Long { min: 0 },
        false
    ),
    def!(
        "follower.replication.throttled.replicas",
        None,
        "",
        ConfigType::Text,
        false
    ),
    def!(
        "index.interval.bytes",
        Some("log.index.interval.bytes"),
        "4096",
        ConfigType::Int { min: 0 },
        true
    ),
    def!(
        "leader.replication.throttled.replicas",
        None,
        "",
        ConfigType::Text,
        false
    ),
    def!(
        "local.retention.bytes",
        Some("log.local.retention.bytes"),
        "-2",
        ConfigType::Long { min: -2 },
        false
    ),
    def!(
        "local.retention.ms",
        Some("log.local.retention.ms"),
        "-2",
        ConfigType::Long { min: -2 },
        false
    ),
    def!(
        "max.compaction.lag.ms",
        Some("log.cleaner.max.compaction.lag.ms"),
        LONG_MAX,
        ConfigType::Long { min: 1 },
        false
    ),
    def!(
        "max.message.bytes",
        Some("message.max.bytes"),
        "1048588",
        ConfigType::Int { min: 0 },
        true
    ),
    def!(
        "message.timestamp.after.max.ms",
        Some("log.message.timestamp.after.max.ms"),
        "3600000",
        ConfigType::Long { min: 0 },
        false
    ),
    def!(
        "message.timestamp.before.max.ms",
        Some("log.message.timestamp.before.max.ms"),
        LONG_MAX,
        ConfigType::Long { min: 0 },
        false
    ),
    def!(
        "message.timestamp.type",
        Some("log.message.timestamp.type"),
        "CreateTime",
        ConfigType::Choice(&["CreateTime", "LogAppendTime"]),
        true
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Some("log.cleaner.min.cleanable.ratio"),
        "0.5",
        ConfigType::Double { min: 0.0, max: 1.0 },
        true
    ),
    def!(
        "min.compaction.lag.ms",
        Some("log.cleaner.min.compaction.lag.ms"),
        "0",
        ConfigType::Long { min: 0 },
        true
    ),
    def!(
        "min.insync.replicas",
        Some("min.insync.replicas"),
        "1",
        ConfigType::Int { min: 1 },
        true
    ),
    def!(
        "preallocate",
        Some("log.preallocate"),
        "false",
        ConfigType::Boolean,
        false
    ),
    def!(
        "remote.storage.enable",
        None,
        "false",
        ConfigType::Boolean,
        false
    ),
    def!(
        "retention.bytes",
        Some("log.retention.bytes"),
        "-1",
        ConfigType::Long { min: -1 },
        true
    ),
    def!(
        "retention.ms",
        Some("log.retention.ms"),
        WEEK_MS,
        ConfigType::Long { min: -1 },
        true
    ),
    def!(
        "segment.bytes",
        Some("log.segment.bytes"),
        "1073741824",
        ConfigType::Int { min: 14 },
        true
    ),
    def!(
        "segment.index.bytes",
        Some("log.index.size.max.bytes"),
        "10485760",
        ConfigType::Int { min: 4 },
        false
    ),
    def!(
        "segment.jitter.ms",
        Some("log.roll.jitter.ms"),
        "0",
        ConfigType::Long { min: 0 },
        false
    ),
    def!(
        "segment.ms",
        Some("log.roll.ms"),
        WEEK_MS,
        ConfigType::Long { min: 1 },
        true
    ),
    def!(
        "unclean.leader.election.enable",
        Some("unclean.leader.election.enable"),
        "false",
        ConfigType::Boolean,
        false
    ),
];

/// Looks a topic config key up.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a config was refused; the text goes back to the client as the error message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown topic config name: {0}")]
    Unknown(String),
    #[error("invalid value {value:?} for configuration {name}: {reason}")]
    InvalidValue {
        name: String,
        value: String,
        reason: String,
    },
}

/// Checks one value against its definition.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = topic_config_def(name).ok_or_else(|| ConfigError::Unknown(name.to_string()))?;
    validate_value(def, value)
}

fn validate_value(def: &ConfigDef, value: &str) -> Result<(), ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidValue {
        name: def.name.to_string(),
        value: value.to_string(),
        reason,
    };
    match def.kind {
        ConfigType::Long { min } | ConfigType::Int { min } => {
            let parsed: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a whole number".into()))?;
            if matches!(def.kind, ConfigType::Int { .. }) && i32::try_from(parsed).is_err() {
                return Err(invalid("out of range for a 32-bit integer".into()));
            }
            if parsed < min {
                return Err(invalid(format!("value must be at least {min}")));
            }
        }
        ConfigType::Double { min, max } => {
            let parsed: f64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("not a number".into()))?;
            if !(min..=max).contains(&parsed) {
                return Err(invalid(format!("value must be between {min} and {max}")));
            }
        }
        ConfigType::Boolean => {
            if !value.trim().eq_ignore_ascii_case("true")
                && !value.trim().eq_ignore_ascii_case("false")
            {
                return Err(invalid("expected true or false".into()));
            }
        }
        ConfigType::Choice(words) => {
            if !words.contains(&value.trim()) {
                return Err(invalid(format!("must be one of {}", words.join(", "))));
            }
        }
        ConfigType::ChoiceList(words) => {
            let items: Vec<&str> = value.split(',').map(str::trim).collect();
            if items.iter().any(|i| !words.contains(i)) || items.is_empty() {
                return Err(invalid(format!("must be a list of {}", words.join(", "))));
            }
        }
        ConfigType::Text => {}
    }
    Ok(())
}

/// Where a topic's effective value of a key comes from, as DescribeConfigs reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic (DYNAMIC_TOPIC_CONFIG = 1).
    Topic,
    /// Set on the broker's command line (STATIC_BROKER_CONFIG = 4).
    StaticBroker,
    /// Kafka's default (DEFAULT_CONFIG = 5).
    Default,
}

impl ConfigSource {
    pub fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
            ConfigSource::Default => 5,
        }
    }
}

/// Whether a broker key can change at run time: the topic defaults under
/// their broker names are Kafka's cluster-wide dynamic settings.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    TOPIC_CONFIGS.iter().any(|d| d.broker_key == Some(key))
}

/// One effective topic config value.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectiveConfig {
    pub name: &'static str,
    pub value: String,
    pub source: ConfigSource,
}

/// Resolves every key for a topic: its own overrides, else the broker's
/// static setting, else Kafka's default.
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker_settings: &BTreeMap<String, String>,
) -> Vec<EffectiveConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| {
            if let Some(v) = overrides.get(def.name) {
                EffectiveConfig {
                    name: def.name,
                    value: v.clone(),
                    source: ConfigSource::Topic,
                }
            } else if let Some(v) = def.broker_key.and_then(|k| broker_settings.get(k)) {
                EffectiveConfig {
                    name: def.name,
                    value: v.clone(),
                    source: ConfigSource::StaticBroker,
                }
            } else {
                EffectiveConfig {
                    name: def.name,
                    value: def.default.to_string(),
                    source: ConfigSource::Default,
                }
            }
        })
        .collect()
}

/// The log settings a topic's effective config asks for. Values were
/// validated when they were set, so a value that fails to parse here can only
/// come from a hand-edited file; it falls back to the default.
pub fn log_config(
    overrides: &BTreeMap<String, String>,
    broker_settings: &BTreeMap<String, String>,
) -> LogConfig {
    let effective = effective_topic_configs(overrides, broker_settings);
    let get = |name: &str| {
        effective
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.value.as_str())
            .unwrap_or("")
    };
    let defaults = LogConfig::default();
    let long = |name: &str, fallback: i64| get(name).trim().parse::<i64>().unwrap_or(fallback);
    let policy = get("cleanup.policy");
    let (compact, delete) = (policy.contains("compact"), policy.contains("delete"));
    LogConfig {
        segment_bytes: long("segment.bytes", defaults.segment_bytes as i64).max(14) as u64,
        segment_ms: long("segment.ms", defaults.segment_ms),
        index_interval_bytes: long("index.interval.bytes", defaults.index_interval_bytes as i64)
            .max(0) as u32,
        retention_ms: long("retention.ms", defaults.retention_ms),
        retention_bytes: long("retention.bytes", defaults.retention_bytes),
        cleanup_policy: match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        },
        delete_retention_ms: long("delete.retention.ms", defaults.delete_retention_ms),
        min_compaction_lag_ms: long("min.compaction.lag.ms", defaults.min_compaction_lag_ms),
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .trim()
            .parse()
            .unwrap_or(defaults.min_cleanable_dirty_ratio),
        message_timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        },
        max_message_bytes: long("max.message.bytes", defaults.max_message_bytes as i64).max(0)
            as usize,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn every_default_is_valid() {
        for def in TOPIC_CONFIGS {
            if !def.default.is_empty() {
                validate_value(def, def.default).unwrap_or_else(|e| panic!("{}: {e}", def.name));
            }
        }
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert_eq!(
            validate_topic_config("retention.msx", "1"),
            Err(ConfigError::Unknown("retention.msx".into()))
        );
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("segment.bytes", "99999999999").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,forever").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
    }

    #[test]
    fn effective_config_prefers_topic_then_broker_then_default() {
        let overrides = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let broker = BTreeMap::from([
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("log.segment.bytes".to_string(), "2048".to_string()),
        ]);
        let eff = effective_topic_configs(&overrides, &broker);
        let find = |n: &str| eff.iter().find(|e| e.name == n).unwrap().clone();
        assert_eq!(find("retention.ms").source, ConfigSource::Topic);
        assert_eq!(find("segment.bytes").value, "2048");
        assert_eq!(find("segment.bytes").source, ConfigSource::StaticBroker);
        assert_eq!(find("segment.ms").source, ConfigSource::Default);
        let log = log_config(&overrides, &broker);
        assert_eq!(log.retention_ms, 1000);
        assert_eq!(log.segment_bytes, 2048);
    }

    #[test]
    fn cleanup_policy_maps_to_log_policy() {
        let broker = BTreeMap::new();
        let with = |v: &str| {
            log_config(
                &BTreeMap::from([("cleanup.policy".to_string(), v.to_string())]),
                &broker,
            )
        };
        assert!(matches!(
            with("compact").cleanup_policy,
            CleanupPolicy::Compact
        ));
        assert!(matches!(
            with("compact,delete").cleanup_policy,
            CleanupPolicy::CompactDelete
        ));
        assert!(matches!(
            with("delete").cleanup_policy,
            CleanupPolicy::Delete
        ));
    }
}
