//! The four custom resources in `weir.dev/v1alpha1`. Types only: no I/O, so
//! the CRD YAML, the builders and the reconcilers all read the same shapes.

// Clippy reads repeated `type_ = "string"` inside several `printcolumn(...)`
// as one attribute given twice; each column is its own.
#[allow(clippy::duplicated_attributes)]
pub mod cluster;
#[allow(clippy::duplicated_attributes)]
pub mod connector;
#[allow(clippy::duplicated_attributes)]
pub mod streamapp;
#[allow(clippy::duplicated_attributes)]
pub mod topic;

use kube::CustomResourceExt;

pub use cluster::{Cluster, ClusterSpec, ClusterStatus};
pub use connector::{Connector, ConnectorSpec, ConnectorStatus};
pub use streamapp::{StreamApp, StreamAppSpec, StreamAppStatus};
pub use topic::{Topic, TopicSpec, TopicStatus};

/// The API group every Weir resource lives in.
pub const GROUP: &str = "weir.dev";
/// The one served and stored version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of every Weir resource.
pub const API_VERSION: &str = "weir.dev/v1alpha1";

/// Header of every generated CRD file, so nobody edits one by hand.
const GENERATED_HEADER: &str =
    "# Generated from operator/src/crd by `weir operator crds --out crds/`; do not edit.\n";

/// One generated CRD manifest: the file it lives in under `crds/` and its YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrdFile {
    pub file_name: &'static str,
    pub yaml: String,
}

/// Every CRD as the YAML committed under `crds/` and `charts/weir/crds/`.
pub fn crd_files() -> Result<Vec<CrdFile>, crate::Error> {
    let crds = [
        ("cluster.yaml", Cluster::crd()),
        ("topic.yaml", Topic::crd()),
        ("connector.yaml", Connector::crd()),
        ("streamapp.yaml", StreamApp::crd()),
    ];
    crds.into_iter()
        .map(|(file_name, crd)| {
            let yaml = serde_yaml::to_string(&crd)?;
            Ok(CrdFile {
                file_name,
                yaml: format!("{GENERATED_HEADER}{yaml}"),
            })
        })
        .collect()
}
