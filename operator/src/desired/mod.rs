//! Desired state: plain Kubernetes objects built from a spec by pure
//! functions. Reconcilers diff and apply these; `weir operator render` prints
//! them. Nothing here talks to a cluster.

pub mod cluster;
#[cfg(test)]
mod golden;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ObjectMeta;
use serde::Serialize;

pub use cluster::ClusterModel;

/// `app.kubernetes.io/managed-by` on everything the operator creates.
pub const MANAGED_BY: &str = "weir-operator";
/// Names the Cluster an object belongs to; reconcilers list children by it.
pub const CLUSTER_LABEL: &str = "weir.dev/cluster";
/// Names the broker pool of a broker pod.
pub const POOL_LABEL: &str = "weir.dev/pool";
/// Hash of the broker settings a pod was started with; the roll planner
/// compares it with the desired one.
pub const CONFIG_HASH_ANNOTATION: &str = "weir.dev/config-hash";

/// One object the operator wants to exist.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DesiredObject {
    ServiceAccount(ServiceAccount),
    ConfigMap(ConfigMap),
    Service(Service),
    StatefulSet(StatefulSet),
    PodDisruptionBudget(PodDisruptionBudget),
    Deployment(Deployment),
}

impl DesiredObject {
    pub fn kind(&self) -> &'static str {
        match self {
            DesiredObject::ServiceAccount(_) => <ServiceAccount as k8s_openapi::Resource>::KIND,
            DesiredObject::ConfigMap(_) => <ConfigMap as k8s_openapi::Resource>::KIND,
            DesiredObject::Service(_) => <Service as k8s_openapi::Resource>::KIND,
            DesiredObject::StatefulSet(_) => <StatefulSet as k8s_openapi::Resource>::KIND,
            DesiredObject::PodDisruptionBudget(_) => {
                <PodDisruptionBudget as k8s_openapi::Resource>::KIND
            }
            DesiredObject::Deployment(_) => <Deployment as k8s_openapi::Resource>::KIND,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            DesiredObject::ServiceAccount(o) => &o.metadata,
            DesiredObject::ConfigMap(o) => &o.metadata,
            DesiredObject::Service(o) => &o.metadata,
            DesiredObject::StatefulSet(o) => &o.metadata,
            DesiredObject::PodDisruptionBudget(o) => &o.metadata,
            DesiredObject::Deployment(o) => &o.metadata,
        }
    }

    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object as YAML, `apiVersion` and `kind` included.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(self)
    }
}
