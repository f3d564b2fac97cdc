//! A Cluster's status from what the reconciler saw and decided, as pure
//! functions: broker pods → per-broker and per-pool state, and the four
//! conditions with the reasons users read.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::conditions::{self, Wanted};
use super::plan::{BrokerPod, RestartReason};
use crate::crd::cluster::{BrokerRestart, BrokerStatus, ClusterStatus, ListenerStatus, PoolStatus};
use crate::desired::cluster::BrokerIdentity;
use crate::desired::{CONFIG_HASH_ANNOTATION, ClusterModel};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const ROLLING_RESTART: &str = "RollingRestart";
pub const DEGRADED: &str = "Degraded";

/// A broker pod as far as the status and the roll planner care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub ready: bool,
    pub config_hash: String,
    pub image: String,
}

/// Ready means the kubelet says so and the pod is not on its way out.
pub fn pod_view(pod: &Pod) -> PodView {
    let ready = pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    let image = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "broker"))
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    PodView {
        ready,
        config_hash: pod
            .annotations()
            .get(CONFIG_HASH_ANNOTATION)
            .cloned()
            .unwrap_or_default(),
        image,
    }
}

/// The planner's view of each desired broker. A missing pod is not ready
/// and, since the StatefulSet will create it from the current template,
/// needs no restart.
pub fn broker_pods(
    model: &ClusterModel,
    identities: &[BrokerIdentity],
    pods: &BTreeMap<String, PodView>,
    active_controller: Option<i32>,
) -> Vec<BrokerPod> {
    let hash = model.config_hash();
    let image = model.image().to_string();
    identities
        .iter()
        .map(|b| {
            let view = pods.get(&b.pod);
            BrokerPod {
                node_id: b.node_id,
                pod: b.pod.clone(),
                ready: view.is_some_and(|v| v.ready),
                config_hash: view.map_or_else(|| hash.clone(), |v| v.config_hash.clone()),
                image: view.map_or_else(|| image.clone(), |v| v.image.clone()),
                active_controller: active_controller == Some(b.node_id),
            }
        })
        .collect()
}

/// Why a broker runs something other than the spec asks for.
pub fn restart_reason(model: &ClusterModel, broker: &BrokerPod) -> Option<RestartReason> {
    if broker.image != model.image() {
        Some(RestartReason::ImageChanged)
    } else if broker.config_hash != model.config_hash() {
        Some(RestartReason::ConfigChanged)
    } else {
        None
    }
}

/// Where the rolling restart stands after this reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollState {
    UpToDate,
    /// A pod was deleted now, or is coming back.
    Restarting(String),
    Blocked(String),
}

/// Where a scale-down stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScaleState {
    Steady,
    Draining(String),
    /// Would leave a topic with fewer brokers than its replication factor.
    Refused(String),
    /// The brokers could not be asked or could not drain.
    Failed(String),
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub model: &'a ClusterModel,
    pub identities: &'a [BrokerIdentity],
    pub brokers: &'a [BrokerPod],
    pub roll: RollState,
    pub scale: ScaleState,
    /// Live broker settings the brokers refused.
    pub dynamic_config_error: Option<String>,
    pub cluster_id: Option<String>,
    /// Ready over desired Connect workers, when Connect is enabled.
    pub connect: Option<(i32, i32)>,
    pub generation: Option<i64>,
    /// The operator's last broker restart, as recorded after this reconcile.
    pub last_restart: Option<BrokerRestart>,
    /// Brokers a scale-down removed that are still to be unregistered.
    pub retired_brokers: Vec<i32>,
}

fn wanted_conditions(o: &Observation<'_>) -> Vec<Wanted> {
    let total = o.brokers.len();
    let ready = o.brokers.iter().filter(|b| b.ready).count();
    let all_ready = ready == total;
    let degraded = match (&o.scale, &o.dynamic_config_error) {
        (ScaleState::Refused(m), _) => Some(("ScaleDownRefused", m.clone())),
        (ScaleState::Failed(m), _) => Some(("ScaleDownFailed", m.clone())),
        (_, Some(m)) => Some(("DynamicConfigRejected", m.clone())),
        _ => None,
    };
    let rolling = match &o.roll {
        RollState::UpToDate => Wanted::new(
            ROLLING_RESTART,
            false,
            "UpToDate",
            "every broker runs the desired config and image",
        ),
        RollState::Restarting(m) => Wanted::new(ROLLING_RESTART, true, "Restarting", m.clone()),
        RollState::Blocked(m) => Wanted::new(ROLLING_RESTART, true, "Blocked", m.clone()),
    };
    let busy: Option<(&str, String)> = if !all_ready {
        Some(("BrokersNotReady", format!("{ready}/{total} brokers ready")))
    } else if let ScaleState::Draining(m) = &o.scale {
        Some(("Draining", m.clone()))
    } else if o.roll != RollState::UpToDate {
        Some(("RollingRestart", "a rolling restart is in progress".into()))
    } else {
        None
    };
    let reconciling = match &busy {
        Some((reason, message)) => Wanted::new(RECONCILING, true, *reason, message.clone()),
        None => Wanted::new(
            RECONCILING,
            false,
            "Reconciled",
            "the cluster matches its spec",
        ),
    };
    let ready_condition = match (&degraded, &busy) {
        (Some((reason, message)), _) => Wanted::new(READY, false, *reason, message.clone()),
        (None, Some((reason, message))) => Wanted::new(READY, false, *reason, message.clone()),
        (None, None) => Wanted::new(
            READY,
            true,
            "Ready",
            format!("{ready}/{total} brokers ready"),
        ),
    };
    let degraded = match degraded {
        Some((reason, message)) => Wanted::new(DEGRADED, true, reason, message),
        None => Wanted::new(DEGRADED, false, "AsExpected", ""),
    };
    vec![ready_condition, reconciling, rolling, degraded]
}

/// The status to write, keeping transition times from `old`.
pub fn cluster_status(o: &Observation<'_>, old: &ClusterStatus, now: Timestamp) -> ClusterStatus {
    let brokers: Vec<BrokerStatus> = o
        .identities
        .iter()
        .zip(o.brokers)
        .map(|(id, b)| {
            let reason = restart_reason(o.model, b);
            BrokerStatus {
                node_id: b.node_id,
                pod: b.pod.clone(),
                pool: id.pool.clone(),
                ready: b.ready,
                needs_restart: reason.is_some(),
                restart_reason: reason.map(|r| r.to_string()),
            }
        })
        .collect();
    let pools = o
        .model
        .pools()
        .into_iter()
        .map(|p| PoolStatus {
            ready_replicas: i32::try_from(
                brokers
                    .iter()
                    .filter(|b| b.pool == p.pool && b.ready)
                    .count(),
            )
            .unwrap_or(i32::MAX),
            name: p.pool,
            node_id_start: p.node_id_start,
            replicas: p.replicas,
        })
        .collect();
    let ready = brokers.iter().filter(|b| b.ready).count();
    ClusterStatus {
        observed_generation: o.generation,
        conditions: conditions::merge(&old.conditions, &wanted_conditions(o), o.generation, now),
        cluster_id: o.cluster_id.clone().or_else(|| old.cluster_id.clone()),
        ready_brokers: Some(format!("{ready}/{}", brokers.len())),
        ready_connect: o.connect.map(|(r, d)| format!("{r}/{d}")),
        pools,
        brokers,
        roll_blocked_reason: match &o.roll {
            RollState::Blocked(m) => Some(m.clone()),
            _ => None,
        },
        listeners: vec![ListenerStatus {
            name: "internal".into(),
            bootstrap_servers: o.model.bootstrap_servers(),
        }],
        last_broker_restart: o.last_restart.clone(),
        retired_brokers: o.retired_brokers.clone(),
    }
}
