//! `weir operator render`: the CRs in a YAML file → every Kubernetes object
//! the operator would create for them, from the same builders the
//! reconcilers use, so a user can review and diff before applying.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::crd::{API_VERSION, Cluster, Connector, StreamApp, Topic};
use crate::desired::{ClusterModel, DesiredObject};
use crate::validate::{FieldError, validate_connector, validate_stream_app, validate_topic};
use crate::{Error, Result};

/// Any of the four resources, as read from a file.
#[derive(Debug, Clone, PartialEq)]
pub enum WeirResource {
    Cluster(Box<Cluster>),
    Topic(Box<Topic>),
    Connector(Box<Connector>),
    StreamApp(Box<StreamApp>),
}

/// What a file renders to: the objects, and one line per resource that
/// creates nothing in Kubernetes (topics live on the brokers).
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub objects: Vec<DesiredObject>,
    pub notes: Vec<String>,
}

impl Rendered {
    /// Multi-document YAML, each object headed by the resource it comes from.
    pub fn to_yaml(&self) -> Result<String> {
        let mut out = String::new();
        for object in &self.objects {
            out.push_str("---\n");
            out.push_str(&object.to_yaml()?);
        }
        Ok(out)
    }
}

/// Reads every Weir resource in a multi-document YAML text. Documents of
/// other kinds are skipped with a note; a Weir document that does not parse,
/// or carries fields the CRD does not have, is an error naming the document.
pub fn parse_resources(yaml: &str) -> Result<(Vec<WeirResource>, Vec<String>)> {
    let mut resources = Vec::new();
    let mut notes = Vec::new();
    for (i, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let index = i + 1;
        let bad = |message: String| Error::BadDocument { index, message };
        let value = Value::deserialize(document).map_err(|e| bad(e.to_string()))?;
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version != API_VERSION {
            notes.push(format!(
                "document {index}: skipped {kind} ({api_version}): not a {API_VERSION} resource"
            ));
            continue;
        }
        let resource = match kind {
            "Cluster" => WeirResource::Cluster(Box::new(strict(&value).map_err(bad)?)),
            "Topic" => WeirResource::Topic(Box::new(strict(&value).map_err(bad)?)),
            "Connector" => WeirResource::Connector(Box::new(strict(&value).map_err(bad)?)),
            "StreamApp" => WeirResource::StreamApp(Box::new(strict(&value).map_err(bad)?)),
            other => {
                return Err(bad(format!(
                    "unknown kind {other:?}; {API_VERSION} has Cluster, Topic, Connector and StreamApp"
                )));
            }
        };
        resources.push(resource);
    }
    Ok((resources, notes))
}

/// Deserializes, then refuses fields the type dropped: the API server would
/// reject them (kubectl's strict field validation), so render must too.
fn strict<T: DeserializeOwned + Serialize>(value: &Value) -> Result<T, String> {
    let parsed: T = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    let mut unknown = Vec::new();
    unknown_fields(value, &back, "", &mut unknown);
    if unknown.is_empty() {
        Ok(parsed)
    } else {
        Err(format!("unknown field(s): {}", unknown.join(", ")))
    }
}

fn unknown_fields(input: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (input, parsed) {
        (Value::Object(given), Value::Object(kept)) => {
            for (key, value) in given {
                match kept.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, &join(key), out),
                    // Empty values are dropped on the way back out, not lost.
                    None if is_empty(value) => {}
                    None => out.push(join(key)),
                }
            }
        }
        (Value::Array(given), Value::Array(kept)) => {
            for (i, (value, kept_value)) in given.iter().zip(kept).enumerate() {
                unknown_fields(value, kept_value, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn invalid(kind: &str, name: Option<&String>, errors: Vec<FieldError>) -> Error {
    Error::Invalid {
        kind: kind.into(),
        name: name.cloned().unwrap_or_default(),
        errors,
    }
}

/// Validates every resource and builds what the operator would create.
/// `default_namespace` stands in for resources that name none.
pub fn render(resources: &[WeirResource], default_namespace: &str) -> Result<Rendered> {
    let mut rendered = Rendered::default();
    let mut clusters: BTreeMap<(String, String), &Cluster> = BTreeMap::new();
    let namespace_of = |meta: &kube::api::ObjectMeta| {
        meta.namespace
            .clone()
            .unwrap_or_else(|| default_namespace.to_string())
    };
    for resource in resources {
        if let WeirResource::Cluster(cluster) = resource {
            let model = ClusterModel::from_crd(cluster, default_namespace)
                .map_err(|e| invalid("Cluster", cluster.metadata.name.as_ref(), e))?;
            clusters.insert(
                (model.namespace().to_string(), model.name().to_string()),
                cluster,
            );
            rendered.objects.extend(model.desired_objects());
        }
    }
    for resource in resources {
        match resource {
            WeirResource::Cluster(_) => {}
            WeirResource::Topic(topic) => {
                let key = (
                    namespace_of(&topic.metadata),
                    topic.spec.cluster_ref.clone(),
                );
                let cluster = clusters.get(&key).copied();
                validate_topic(topic, cluster)
                    .map_err(|e| invalid("Topic", topic.metadata.name.as_ref(), e))?;
                rendered.notes.push(format!(
                    "Topic {:?}: topic {:?} ({} partitions, replication factor {}) on cluster {:?}, made through the brokers' admin API; no Kubernetes objects",
                    topic.metadata.name.as_deref().unwrap_or_default(),
                    topic.topic_name(),
                    topic.spec.partitions,
                    topic.spec.replication_factor,
                    topic.spec.cluster_ref,
                ));
            }
            WeirResource::Connector(connector) => {
                validate_connector(&connector.spec)
                    .map_err(|e| invalid("Connector", connector.metadata.name.as_ref(), e))?;
                rendered.notes.push(format!(
                    "Connector {:?}: valid; runs on the Connect workers of cluster {:?} through their REST API; no Kubernetes objects",
                    connector.metadata.name.as_deref().unwrap_or_default(),
                    connector.spec.cluster_ref,
                ));
            }
            WeirResource::StreamApp(app) => {
                validate_stream_app(&app.spec)
                    .map_err(|e| invalid("StreamApp", app.metadata.name.as_ref(), e))?;
                rendered.notes.push(format!(
                    "StreamApp {:?}: valid; its objects are not rendered yet (they come with its reconciler)",
                    app.metadata.name.as_deref().unwrap_or_default(),
                ));
            }
        }
    }
    Ok(rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "apiVersion: weir.dev/v1alpha1\nkind: Cluster\nmetadata: {name: demo}\nspec:\n  brokerPools: [{name: main, replicas: 1, storage: {size: 1Gi}}]\n";

    #[test]
    fn other_kinds_are_skipped_and_empty_documents_ignored() {
        let text = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: x}}\n---\n---\n{CLUSTER}"
        );
        let (resources, notes) = parse_resources(&text).expect("parses");
        assert_eq!(resources.len(), 1);
        assert!(notes[0].contains("skipped Namespace"), "{notes:?}");
    }

    #[test]
    fn unknown_fields_and_kinds_name_the_document() {
        let typo = CLUSTER.replace("replicas: 1", "replicas: 1, replica: 2");
        let err = parse_resources(&format!("{CLUSTER}---\n{typo}")).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "document 2: unknown field(s): spec.brokerPools[0].replica"
        );
        let err =
            parse_resources(&CLUSTER.replace("kind: Cluster", "kind: Broker")).expect_err("kind");
        assert!(
            err.to_string()
                .starts_with("document 1: unknown kind \"Broker\""),
            "{err}"
        );
        assert!(parse_resources("a: [").is_err());
    }

    #[test]
    fn topic_replication_is_checked_against_its_cluster_in_the_file() {
        let topic = "apiVersion: weir.dev/v1alpha1\nkind: Topic\nmetadata: {name: orders}\nspec: {clusterRef: demo, partitions: 3, replicationFactor: 3}\n";
        let (resources, _) = parse_resources(&format!("{CLUSTER}---\n{topic}")).expect("parses");
        let err = render(&resources, "default").expect_err("rf 3 on one broker");
        assert!(
            err.to_string()
                .contains("spec.replicationFactor: 3 is more than the 1 broker(s)"),
            "{err}"
        );
    }
}
