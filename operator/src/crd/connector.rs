//! `Connector`: one Kafka Connect connector on a Cluster's Connect workers.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A connector run by the Connect workers of the Cluster named by clusterRef.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "weir.dev",
    version = "v1alpha1",
    kind = "Connector",
    namespaced,
    status = "ConnectorStatus",
    derive = "PartialEq",
    shortname = "wcn",
    category = "weir",
    doc = "A Kafka Connect connector on the Connect workers of a Weir Cluster.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterRef"),
    printcolumn(name = "Class", type_ = "string", json_path = ".spec.class"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Tasks", type_ = "string", json_path = ".status.tasks"),
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
pub struct ConnectorSpec {
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == oldSelf",
        "message": "clusterRef is immutable"
    }]))]
    pub cluster_ref: String,
    /// Connector class or alias, e.g. `FileStreamSource` or `weir.postgres.source`.
    #[schemars(length(min = 1, max = 512))]
    pub class: String,
    #[serde(default = "default_tasks_max")]
    #[schemars(range(min = 1, max = 1000))]
    pub tasks_max: i32,
    /// Connector settings, passed to Connect as they are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(default)]
    pub state: ConnectorState,
}

fn default_tasks_max() -> i32 {
    1
}

/// The state the connector should be in.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ConnectorState {
    #[default]
    Running,
    Paused,
    Stopped,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The connector's state as Connect reports it, e.g. `RUNNING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Running over total tasks, e.g. `2/2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<String>,
}
