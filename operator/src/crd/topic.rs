//! `Topic`: one Kafka topic on the cluster its `clusterRef` names.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Kafka topic, kept as the spec says on the brokers of one Cluster.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Topic",
    namespaced,
    status = "TopicStatus",
    derive = "PartialEq",
    shortname = "wt",
    category = "weir",
    doc = "A Kafka topic on the Weir Cluster named by clusterRef.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Partitions", type_ = "integer", json_path = ".spec.partitions"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicationFactor"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// On the spec, not the field: a field's transition rule does not run when
// the field is added or removed, and either would rename the topic.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.topicName) ? self.topicName : '') == (has(oldSelf.topicName) ? oldSelf.topicName : '')",
    "message": "topicName is immutable"
}]))]
pub struct TopicSpec {
    /// Name of the Cluster in this namespace; the topic is never touched on any other.
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "clusterRef is immutable: create a new Topic for the other cluster"
    }]))]
    pub cluster_ref: String,
    /// Topic name on the brokers; defaults to the resource's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 249), pattern(r"^[a-zA-Z0-9._-]+$"))]
    pub topic_name: Option<String>,
    #[schemars(range(min = 1, max = 100000))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self >= oldSelf",
        "message": "partitions can only be increased (Kafka cannot remove partitions)"
    }]))]
    pub partitions: i32,
    #[schemars(range(min = 1, max = 32767), with = "i32")]
    pub replication_factor: i16,
    /// Topic settings, e.g. `retention.ms: "86400000"`. Unknown keys are reported, never applied.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub management_policy: ManagementPolicy,
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

impl Topic {
    /// The topic's name on the brokers.
    pub fn topic_name(&self) -> &str {
        self.spec
            .topic_name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// How much the operator may change on the brokers.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    /// Create the topic and keep it as the spec says.
    #[default]
    Managed,
    /// Report the topic's state and drift; never change it.
    Observe,
    /// Take over a topic that already exists, then manage it.
    Adopt,
}

/// What deleting the resource does to the topic (Observe never deletes).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready and DriftDetected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Every setting as the brokers report it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub effective_config: BTreeMap<String, String>,
    /// Where the brokers differ from the spec.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftEntry>,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftEntry {
    /// A config key, or `partitions` / `replicationFactor`.
    pub field: String,
    pub desired: String,
    pub actual: String,
}
