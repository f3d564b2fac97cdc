//! `Cluster`: brokers in pools, optional Connect workers, and how they roll.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ResourceRequirements, Toleration, TopologySpreadConstraint,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Weir cluster: broker pools, listeners, optional Connect workers.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Cluster",
    namespaced,
    status = "ClusterStatus",
    derive = "PartialEq",
    shortname = "wcl",
    category = "weir",
    doc = "A Weir cluster: Kafka-compatible brokers in pools, plus optional Connect workers.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Brokers", type_ = "string", json_path = ".status.readyBrokers"),
    printcolumn(name = "Connect", type_ = "string", json_path = ".status.readyConnect"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// The `weir` image every broker and Connect pod runs.
    #[serde(default = "default_image")]
    pub image: String,
    /// Groups of brokers sharing resources, storage and placement. Pool names
    /// are part of pod names, so renaming a pool replaces its brokers.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
        "x-kubernetes-validations" = [{
            "rule": "self.all(p, self.exists_one(q, q.name == p.name))",
            "message": "broker pool names must be unique"
        }]
    ))]
    pub broker_pools: Vec<BrokerPool>,
    /// Kafka broker settings (`server.properties` keys), e.g.
    /// `log.retention.ms: "604800000"`. Unknown keys are rejected.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Spread brokers over failure domains and tell clients where each one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<Rack>,
    #[serde(default)]
    pub listeners: Listeners,
    /// Extra metadata and scheduling for broker and Connect pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplate>,
    /// When and how fast the operator restarts brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
    /// Connect workers for this cluster; none unless `replicas` is above 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<ConnectSpec>,
    #[serde(default)]
    pub metrics: Metrics,
    /// Stop reconciling this cluster (children are left as they are).
    #[serde(default)]
    pub paused: bool,
}

fn default_image() -> String {
    format!("weir:{}", env!("CARGO_PKG_VERSION"))
}

/// A group of identical brokers, run as one StatefulSet.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerPool {
    /// DNS label; `<cluster>-<pool>` names the StatefulSet and its pods.
    #[schemars(length(min = 1, max = 40), pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    #[schemars(range(min = 1, max = 1000))]
    pub replicas: i32,
    /// First node id of this pool; its brokers get `nodeIdStart`,
    /// `nodeIdStart + 1`, … Defaults to 1000 × the pool's position. Set it
    /// before reordering or removing pools so the other pools keep their ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub node_id_start: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    pub storage: Storage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
}

/// One persistent volume per broker.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Volume size as a Kubernetes quantity, e.g. `100Gi`.
    #[schemars(length(min = 1, max = 64))]
    pub size: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to a broker's volume when the pool shrinks. Retain keeps
    /// the data for a later scale-up; Delete frees the disk.
    #[serde(default)]
    pub reclaim_on_scale_down: ReclaimPolicy,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ReclaimPolicy {
    #[default]
    Retain,
    Delete,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rack {
    /// Node label whose value is the broker's rack. Only the zone and region
    /// labels reach pods (Kubernetes copies them from the node, 1.35+).
    #[serde(default = "default_topology_key")]
    #[schemars(extend("enum" = ["topology.kubernetes.io/zone", "topology.kubernetes.io/region"]))]
    pub topology_key: String,
}

fn default_topology_key() -> String {
    "topology.kubernetes.io/zone".into()
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// The in-cluster listener (port 9092) behind the bootstrap Service.
    #[serde(default)]
    pub internal: InternalListener,
    /// Access from outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalListener>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InternalListener {
    /// Annotations for the bootstrap Service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalListener {
    #[serde(rename = "type")]
    pub type_: ExternalListenerType,
    /// Annotations for the external Services (load-balancer settings and the like).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExternalListenerType {
    NodePort,
    LoadBalancer,
    ClusterIP,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Added to pods; the operator's own labels win on a clash.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// When restarts for config or image changes may start. Empty: any time.
    /// Outside every window no broker restart starts, also in the middle of
    /// a roll; the roll goes on when the next window opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub maintenance_windows: Vec<MaintenanceWindow>,
    /// How long to wait after a restarted broker is back in every ISR
    /// before restarting the next, e.g. `30s` or `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(r"^[0-9]+(s|m|h)$"))]
    pub pause_between_brokers: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceWindow {
    /// Start times as a five-field cron expression in UTC, e.g. `0 2 * * 6`.
    pub schedule: String,
    /// How long the window stays open, e.g. `4h`.
    #[schemars(pattern(r"^[0-9]+(s|m|h)$"))]
    pub duration: String,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectSpec {
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Worker settings (Kafka Connect worker keys).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Advertise `/metrics` on the admin port (9644) for Prometheus scraping.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// What the operator last saw and did; written only by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, RollingRestart and Degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Ready over desired brokers, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_brokers: Option<String>,
    /// Ready over desired Connect workers, e.g. `2/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_connect: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pools: Vec<PoolStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
    /// Why the rolling restart is waiting, e.g. "partition orders-3 would
    /// drop below min.insync.replicas".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roll_blocked_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerStatus>,
    /// The broker the operator restarted last, and when it was back; the
    /// pause between brokers runs from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_broker_restart: Option<BrokerRestart>,
    /// Node ids of brokers removed by a scale-down that the operator has yet
    /// to unregister from the cluster metadata (it does once their pods are
    /// gone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired_brokers: Vec<i32>,
}

/// One broker restart by the operator. Kept in the status, not in the
/// operator's memory, so `pauseBetweenBrokers` holds across operator restarts.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerRestart {
    pub node_id: i32,
    pub pod: String,
    /// When the operator deleted the pod.
    pub started_at: Time,
    /// When the broker was first seen back: ready, and in every ISR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolStatus {
    pub name: String,
    /// The node id this pool's brokers are numbered from, recorded so that
    /// editing the pool list never renumbers existing brokers.
    pub node_id_start: i32,
    pub replicas: i32,
    pub ready_replicas: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub node_id: i32,
    pub pod: String,
    pub pool: String,
    pub ready: bool,
    #[serde(default)]
    pub needs_restart: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_reason: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub name: String,
    /// `host:port` pairs clients bootstrap from.
    pub bootstrap_servers: String,
}
