//! A worker's settings: Kafka Connect's distributed-worker keys, given as
//! `--config key=value`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::store::log::TopicSpec;

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";

/// Keys a worker reads; any other (outside the prefixes below) is warned
/// about, as Kafka warns of a supplied but unknown config.
const KNOWN: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "config.storage.topic",
    "config.storage.replication.factor",
    "offset.storage.topic",
    "offset.storage.replication.factor",
    "offset.storage.partitions",
    "status.storage.topic",
    "status.storage.replication.factor",
    "status.storage.partitions",
    "key.converter",
    "value.converter",
    "header.converter",
    "offset.flush.interval.ms",
    "offset.flush.timeout.ms",
    "task.shutdown.graceful.timeout.ms",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "rebalance.timeout.ms",
    "scheduled.rebalance.max.delay.ms",
    "rest.advertised.host.name",
    "rest.advertised.port",
    "rest.advertised.listener",
    "listeners",
    "plugin.path",
    "client.id",
    "request.timeout.ms",
    "connector.client.config.override.policy",
    "exactly.once.source.support",
    "topic.creation.enable",
    "topic.tracking.enable",
    "topic.tracking.allow.reset",
];
const PREFIXES: &[&str] = &[
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "producer.",
    "consumer.",
    "admin.",
    "security.",
    "sasl.",
    "ssl.",
];

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub group_id: String,
    pub props: BTreeMap<String, String>,
    pub config_topic: TopicSpec,
    pub offset_topic: TopicSpec,
    pub status_topic: TopicSpec,
    pub key_converter: String,
    pub value_converter: String,
    pub offset_flush_interval: Duration,
    pub graceful_shutdown: Duration,
    pub session_timeout: Duration,
    /// KIP-558: record the topics each connector uses.
    pub topic_tracking: bool,
    pub topic_tracking_reset: bool,
}

fn boolean(props: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match props.get(key).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => bail!("invalid value {v:?} for worker config {key}: expected true or false"),
    }
}

fn number<T: std::str::FromStr>(
    props: &BTreeMap<String, String>,
    key: &str,
    default: T,
) -> Result<T> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            anyhow::anyhow!("invalid value {v:?} for worker config {key}: not a number")
        }),
    }
}

impl WorkerConfig {
    pub fn new(group_id: &str, props: BTreeMap<String, String>) -> Result<WorkerConfig> {
        if group_id.trim().is_empty() {
            bail!("--group-id can't be empty");
        }
        for key in props.keys() {
            if !KNOWN.contains(&key.as_str()) && !PREFIXES.iter().any(|p| key.starts_with(p)) {
                tracing::warn!("The configuration '{key}' was supplied but isn't a known config.");
            }
        }
        let topic = |name_key: &str,
                     default: &str,
                     partitions_key: Option<&str>,
                     partitions: i32,
                     rf_key: &str|
         -> Result<TopicSpec> {
            let name = props
                .get(name_key)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|| default.to_string());
            if name.is_empty() {
                bail!("worker config {name_key} can't be empty");
            }
            let partitions = match partitions_key {
                Some(k) => number(&props, k, partitions)?,
                None => partitions,
            };
            if partitions < 1 && partitions != -1 {
                bail!(
                    "worker config {} must be at least 1 (or -1 for the broker's default)",
                    partitions_key.unwrap_or(name_key)
                );
            }
            let replication_factor = number(&props, rf_key, -1i16)?;
            if replication_factor < 1 && replication_factor != -1 {
                bail!("worker config {rf_key} must be at least 1 (or -1 for the broker's default)");
            }
            Ok(TopicSpec {
                name,
                partitions,
                replication_factor,
            })
        };
        let config_topic = topic(
            "config.storage.topic",
            "connect-configs",
            None,
            1,
            "config.storage.replication.factor",
        )?;
        let offset_topic = topic(
            "offset.storage.topic",
            "connect-offsets",
            Some("offset.storage.partitions"),
            25,
            "offset.storage.replication.factor",
        )?;
        let status_topic = topic(
            "status.storage.topic",
            "connect-status",
            Some("status.storage.partitions"),
            5,
            "status.storage.replication.factor",
        )?;
        let names = [&config_topic.name, &offset_topic.name, &status_topic.name];
        if names[0] == names[1] || names[0] == names[2] || names[1] == names[2] {
            bail!("the config, offset and status storage topics must be three different topics");
        }
        let ms = |key: &str, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(number(&props, key, default)?))
        };
        Ok(WorkerConfig {
            group_id: group_id.to_string(),
            key_converter: props
                .get("key.converter")
                .cloned()
                .unwrap_or_else(|| JSON_CONVERTER.into()),
            value_converter: props
                .get("value.converter")
                .cloned()
                .unwrap_or_else(|| JSON_CONVERTER.into()),
            offset_flush_interval: ms("offset.flush.interval.ms", 60_000)?,
            graceful_shutdown: ms("task.shutdown.graceful.timeout.ms", 5_000)?,
            session_timeout: ms("session.timeout.ms", 10_000).context("session.timeout.ms")?,
            topic_tracking: boolean(&props, "topic.tracking.enable", true)?,
            topic_tracking_reset: boolean(&props, "topic.tracking.allow.reset", true)?,
            config_topic,
            offset_topic,
            status_topic,
            props,
        })
    }

    /// The keys under `prefix`, with it removed (`key.converter.schemas.enable`
    /// → `schemas.enable`).
    pub fn prefixed(props: &BTreeMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
        props
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as props;

    #[test]
    fn kafkas_defaults_and_overrides() {
        let c = WorkerConfig::new("g", props(&[])).unwrap();
        assert_eq!(c.config_topic.name, "connect-configs");
        assert_eq!(c.config_topic.partitions, 1);
        assert_eq!(c.offset_topic.name, "connect-offsets");
        assert_eq!(c.offset_topic.partitions, 25);
        assert_eq!(c.status_topic.name, "connect-status");
        assert_eq!(c.status_topic.partitions, 5);
        assert_eq!(c.value_converter, JSON_CONVERTER);
        let c = WorkerConfig::new(
            "g",
            props(&[
                ("offset.storage.topic", "offs"),
                ("offset.storage.replication.factor", "3"),
                ("offset.flush.interval.ms", "100"),
            ]),
        )
        .unwrap();
        assert_eq!(c.offset_topic.name, "offs");
        assert_eq!(c.offset_topic.replication_factor, 3);
        assert_eq!(c.offset_flush_interval, Duration::from_millis(100));
    }

    #[test]
    fn bad_values_name_the_key() {
        let err = WorkerConfig::new("g", props(&[("status.storage.partitions", "x")])).unwrap_err();
        assert!(
            err.to_string().contains("status.storage.partitions"),
            "{err}"
        );
        let err = WorkerConfig::new("g", props(&[("offset.storage.topic", "connect-configs")]))
            .unwrap_err();
        assert!(err.to_string().contains("three different topics"), "{err}");
        assert!(WorkerConfig::new(" ", props(&[])).is_err());
        let err = WorkerConfig::new("g", props(&[("topic.tracking.enable", "yes")])).unwrap_err();
        assert!(err.to_string().contains("topic.tracking.enable"), "{err}");
    }
}
