//! The rules a spec must follow. The CRD schema checks shapes and ranges on
//! the API server; these functions check the same ranges again (so `weir
//! operator render` needs no API server) plus what a schema cannot say: broker
//! config keys as the broker itself knows them, names that must fit in pod
//! names, node ids that must not overlap.

use std::collections::BTreeSet;
use std::fmt;

use crate::crd::cluster::{BrokerPool, Cluster, ClusterSpec};
use crate::crd::connector::ConnectorSpec;
use crate::crd::streamapp::StreamAppSpec;
use crate::crd::topic::Topic;
use crate::reconcile::rollout::RolloutPolicy;

/// One broken rule: where (`spec.brokerPools[1].replicas`) and which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, rule: impl Into<String>) -> Self {
        FieldError {
            path: path.into(),
            rule: rule.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.rule)
    }
}

/// Most pools a cluster may have (also the CRD's `maxItems`, which bounds the
/// cost of the uniqueness rule on the API server).
pub const MAX_POOLS: usize = 16;
/// Node ids a pool gets by default: pool `i` starts at `i * NODE_IDS_PER_POOL`.
pub const NODE_IDS_PER_POOL: i32 = 1000;
/// A StatefulSet's pods carry `controller-revision-hash: <name>-<10 chars>`,
/// a label value of at most 63 characters.
const MAX_STATEFULSET_NAME: usize = 52;
/// Service names are DNS labels.
const MAX_DNS_LABEL: usize = 63;

/// Whether brokers take `key` at run time. The topic defaults under their
/// broker names (`log.retention.ms`, …) are cluster-wide dynamic settings in
/// Kafka; the broker-only keys are read at start, so changing one restarts
/// the brokers.
pub fn is_dynamic_broker_key(key: &str) -> bool {
    weir_broker::topic_config::is_dynamic_broker_key(key)
}

/// Checks a Cluster's spec on its own.
pub fn validate(spec: &ClusterSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    check_spec(spec, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks a whole Cluster: its spec, and that the names derived from its
/// own name fit where Kubernetes puts them.
pub fn validate_cluster(cluster: &Cluster) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    if name.is_empty() {
        errors.push(FieldError::new("metadata.name", "is required"));
    } else if !is_dns_label(name) {
        errors.push(FieldError::new(
            "metadata.name",
            "must be a DNS label (lower-case letters, digits and '-')",
        ));
    } else {
        let longest_suffix = "-bootstrap".len();
        if name.len() + longest_suffix > MAX_DNS_LABEL {
            errors.push(FieldError::new(
                "metadata.name",
                format!(
                    "must be at most {} characters so `{name}-bootstrap` is a valid Service name",
                    MAX_DNS_LABEL - longest_suffix
                ),
            ));
        }
        for (i, pool) in cluster.spec.broker_pools.iter().enumerate() {
            check_pod_names(name, i, pool, &mut errors);
        }
    }
    check_spec(&cluster.spec, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn check_pod_names(cluster: &str, index: usize, pool: &BrokerPool, errors: &mut Vec<FieldError>) {
    let sts = format!("{cluster}-{}", pool.name);
    if sts.len() > MAX_STATEFULSET_NAME {
        errors.push(FieldError::new(
            format!("spec.brokerPools[{index}].name"),
            format!(
                "`{sts}` (cluster name, '-', pool name) must be at most {MAX_STATEFULSET_NAME} characters"
            ),
        ));
        return;
    }
    let last_id = node_id_start(index, pool).saturating_add(pool.replicas.max(1) - 1);
    let pod = format!("{sts}-{last_id}");
    if pod.len() > MAX_DNS_LABEL {
        errors.push(FieldError::new(
            format!("spec.brokerPools[{index}]"),
            format!("pod name `{pod}` would be longer than {MAX_DNS_LABEL} characters"),
        ));
    }
}

/// The first node id of the pool at `index`: its `nodeIdStart`, else
/// `index * 1000`. The StatefulSet starts its ordinals there, so a broker's
/// node id, its pod's ordinal and its `apps.kubernetes.io/pod-index` label
/// are one number.
pub fn node_id_start(index: usize, pool: &BrokerPool) -> i32 {
    pool.node_id_start.unwrap_or_else(|| {
        i32::try_from(index)
            .unwrap_or(i32::MAX)
            .saturating_mul(NODE_IDS_PER_POOL)
    })
}

fn check_spec(spec: &ClusterSpec, errors: &mut Vec<FieldError>) {
    if spec.image.trim().is_empty() {
        errors.push(FieldError::new("spec.image", "must not be empty"));
    }
    check_pools(&spec.broker_pools, errors);
    let brokers: i64 = spec
        .broker_pools
        .iter()
        .map(|p| i64::from(p.replicas.max(0)))
        .sum();
    for (key, value) in &spec.config {
        let path = format!("spec.config[{key:?}]");
        if let Err(e) = weir_broker::config::validate_broker_setting(key, value) {
            errors.push(FieldError::new(path, e.to_string()));
            continue;
        }
        let needs_brokers = ["default.replication.factor", "min.insync.replicas"];
        if needs_brokers.contains(&key.as_str())
            && let Ok(n) = value.trim().parse::<i64>()
            && n > brokers
        {
            errors.push(FieldError::new(
                path,
                format!("{n} is more than the {brokers} broker(s) in brokerPools"),
            ));
        }
    }
    if let Some(rack) = &spec.rack
        && rack.topology_key.trim().is_empty()
    {
        errors.push(FieldError::new(
            "spec.rack.topologyKey",
            "must not be empty",
        ));
    }
    if spec.listeners.external.is_some() {
        // The broker advertises one address per listener; an external
        // listener needs a second one, which the broker does not have yet.
        errors.push(FieldError::new(
            "spec.listeners.external",
            "is not supported yet (brokers advertise only the internal listener); remove it",
        ));
    }
    // The same parse the reconciler acts on, so what passes here rolls.
    if let Err(rollout) = RolloutPolicy::from_spec(spec.rollout.as_ref()) {
        errors.extend(rollout);
    }
    if let Some(connect) = &spec.connect
        && !(0..=100).contains(&connect.replicas)
    {
        errors.push(FieldError::new(
            "spec.connect.replicas",
            "must be between 0 and 100",
        ));
    }
}

fn check_pools(pools: &[BrokerPool], errors: &mut Vec<FieldError>) {
    if pools.is_empty() {
        errors.push(FieldError::new(
            "spec.brokerPools",
            "must have at least one pool",
        ));
    }
    if pools.len() > MAX_POOLS {
        errors.push(FieldError::new(
            "spec.brokerPools",
            format!("must have at most {MAX_POOLS} pools"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut ranges: Vec<(i64, i64, usize)> = Vec::new();
    for (i, pool) in pools.iter().enumerate() {
        let path = |field: &str| format!("spec.brokerPools[{i}].{field}");
        if !is_dns_label(&pool.name) || pool.name.len() > 40 {
            errors.push(FieldError::new(
                path("name"),
                "must be a DNS label of at most 40 characters (lower-case letters, digits and '-')",
            ));
        }
        if !names.insert(pool.name.as_str()) {
            errors.push(FieldError::new(
                path("name"),
                format!(
                    "broker pool names must be unique; {:?} is used twice",
                    pool.name
                ),
            ));
        }
        if !(1..=1000).contains(&pool.replicas) {
            errors.push(FieldError::new(
                path("replicas"),
                "must be between 1 and 1000",
            ));
        }
        if pool.node_id_start.is_some_and(|s| s < 0) {
            errors.push(FieldError::new(path("nodeIdStart"), "must not be negative"));
        }
        if !is_positive_quantity(&pool.storage.size) {
            errors.push(FieldError::new(
                path("storage.size"),
                "must be a positive Kubernetes quantity, e.g. 100Gi",
            ));
        }
        let start = i64::from(node_id_start(i, pool));
        let end = start + i64::from(pool.replicas.max(1));
        if end > i64::from(i32::MAX) {
            errors.push(FieldError::new(
                path("nodeIdStart"),
                "node ids would overflow",
            ));
        }
        if let Some((_, _, other)) = ranges.iter().find(|(s, e, _)| start < *e && *s < end) {
            errors.push(FieldError::new(
                path("nodeIdStart"),
                format!(
                    "node ids {start}..{end} overlap those of brokerPools[{other}]; set nodeIdStart"
                ),
            ));
        }
        ranges.push((start, end, i));
    }
}

/// Checks a Topic, and its replication factor against its cluster when the
/// cluster is known.
pub fn validate_topic(topic: &Topic, cluster: Option<&Cluster>) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let spec = &topic.spec;
    if spec.cluster_ref.is_empty() {
        errors.push(FieldError::new("spec.clusterRef", "is required"));
    }
    let name = topic.topic_name();
    let name_path = if spec.topic_name.is_some() {
        "spec.topicName"
    } else {
        "metadata.name"
    };
    if name.is_empty()
        || name.len() > 249
        || name == "."
        || name == ".."
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        errors.push(FieldError::new(
            name_path,
            "topic names are 1 to 249 of [a-zA-Z0-9._-], and not '.' or '..'",
        ));
    }
    if !(1..=100_000).contains(&spec.partitions) {
        errors.push(FieldError::new(
            "spec.partitions",
            "must be between 1 and 100000",
        ));
    }
    if spec.replication_factor < 1 {
        errors.push(FieldError::new(
            "spec.replicationFactor",
            "must be at least 1",
        ));
    }
    if let Some(cluster) = cluster {
        let brokers: i64 = cluster
            .spec
            .broker_pools
            .iter()
            .map(|p| i64::from(p.replicas))
            .sum();
        if i64::from(spec.replication_factor) > brokers {
            errors.push(FieldError::new(
                "spec.replicationFactor",
                format!(
                    "{} is more than the {brokers} broker(s) of cluster {:?}",
                    spec.replication_factor, spec.cluster_ref
                ),
            ));
        }
    }
    for (key, value) in &spec.config {
        if let Err(e) = weir_broker::topic_config::validate_topic_config(key, value) {
            errors.push(FieldError::new(
                format!("spec.config[{key:?}]"),
                e.to_string(),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub fn validate_connector(spec: &ConnectorSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if spec.cluster_ref.is_empty() {
        errors.push(FieldError::new("spec.clusterRef", "is required"));
    }
    if spec.class.trim().is_empty() {
        errors.push(FieldError::new("spec.class", "must not be empty"));
    }
    if !(1..=1000).contains(&spec.tasks_max) {
        errors.push(FieldError::new(
            "spec.tasksMax",
            "must be between 1 and 1000",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

pub fn validate_stream_app(spec: &StreamAppSpec) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if spec.cluster_ref.is_empty() {
        errors.push(FieldError::new("spec.clusterRef", "is required"));
    }
    if !spec.pipeline.is_object() {
        errors.push(FieldError::new("spec.pipeline", "must be an object"));
    }
    if !(1..=1000).contains(&spec.replicas) {
        errors.push(FieldError::new(
            "spec.replicas",
            "must be between 1 and 1000",
        ));
    }
    if let Some(auto) = &spec.autoscaling {
        if !(1..=1000).contains(&auto.min_replicas) {
            errors.push(FieldError::new(
                "spec.autoscaling.minReplicas",
                "must be between 1 and 1000",
            ));
        }
        if auto.max_replicas < auto.min_replicas {
            errors.push(FieldError::new(
                "spec.autoscaling.maxReplicas",
                "maxReplicas must be at least minReplicas",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_DNS_LABEL
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A Kubernetes quantity above zero (`100Gi`, `1.5T`, `1e9`).
pub fn is_positive_quantity(s: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "m", "k", "M", "G", "T", "P", "E",
    ];
    let s = s.trim_start_matches('+');
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number_ok = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.bytes().any(|b| (b'1'..=b'9').contains(&b));
    let suffix_ok = suffix.is_empty()
        || SUFFIXES.contains(&suffix)
        || suffix
            .strip_prefix(['e', 'E'])
            .map(|exp| exp.trim_start_matches(['+', '-']))
            .is_some_and(|exp| !exp.is_empty() && exp.bytes().all(|b| b.is_ascii_digit()));
    number_ok && suffix_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::cluster::fixtures::{cluster, pool};

    fn paths(result: Result<(), Vec<FieldError>>) -> Vec<String> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect()
    }

    #[test]
    fn quantities() {
        for ok in ["10Gi", "1.5T", "100", "1e9", "500M", "+2Ki"] {
            assert!(is_positive_quantity(ok), "{ok}");
        }
        for bad in ["", "0", "lots", "10GB", "1..5Gi", "-1Gi", "Gi", "1e"] {
            assert!(!is_positive_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn overlapping_node_ids_are_refused() {
        let mut b = pool("b", 3);
        b.node_id_start = Some(2);
        let c = cluster("demo").pools(vec![pool("a", 3), b]).build();
        assert_eq!(
            paths(validate(&c.spec)),
            ["spec.brokerPools[1].nodeIdStart"]
        );
    }

    #[test]
    fn replication_beyond_the_brokers_is_refused() {
        let c = cluster("demo")
            .config("default.replication.factor", "4")
            .build();
        assert_eq!(
            paths(validate(&c.spec)),
            ["spec.config[\"default.replication.factor\"]"]
        );
    }

    #[test]
    fn names_must_fit_in_pod_names() {
        let long = "x".repeat(60);
        let c = cluster(&long).build();
        assert!(paths(validate_cluster(&c)).contains(&"metadata.name".to_string()));
        let c = cluster("demo")
            .pools(vec![pool(&"p".repeat(40), 1)])
            .build();
        assert!(validate_cluster(&c).is_ok());
        let c = cluster(&"d".repeat(20))
            .pools(vec![pool(&"p".repeat(40), 1)])
            .build();
        assert_eq!(paths(validate_cluster(&c)), ["spec.brokerPools[0].name"]);
    }

    #[test]
    fn rollout_durations_and_schedules() {
        use crate::crd::cluster::{MaintenanceWindow, Rollout};
        let mut c = cluster("demo").build();
        c.spec.rollout = Some(Rollout {
            maintenance_windows: vec![MaintenanceWindow {
                schedule: "*/5 1-3 * * MON".into(),
                duration: "4h".into(),
            }],
            pause_between_brokers: Some("30s".into()),
        });
        assert!(validate(&c.spec).is_ok());
        c.spec.rollout = Some(Rollout {
            maintenance_windows: vec![MaintenanceWindow {
                schedule: "0 2 * *".into(),
                duration: "4d".into(),
            }],
            pause_between_brokers: Some("5 minutes".into()),
        });
        assert_eq!(
            paths(validate(&c.spec)),
            [
                "spec.rollout.pauseBetweenBrokers",
                "spec.rollout.maintenanceWindows[0].schedule",
                "spec.rollout.maintenanceWindows[0].duration",
            ]
        );
    }
}
