//! [`BrokerFacts`] and [`TopicAdmin`] over weir-client's `Admin`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use weir_client::admin::Admin;
use weir_client::admin::{AlterConfigOp, ConfigResource, ConfigSource, NewTopic};
use weir_client::{ClientConfig, ResponseError};

use super::{
    BrokerFacts, ClusterFacts, ConfigChange, KafkaConnector, KafkaOps, NewTopicSpec, ObservedTopic,
    TopicAdmin, TopicReplication,
};
use crate::reconcile::plan::PartitionState;
use crate::{Error, Result};

/// Kafka's default when a topic and its broker set nothing.
const DEFAULT_MIN_INSYNC: i32 = 1;

/// Connects `Admin` clients, one per bootstrap address, reused while they work.
#[derive(Default)]
pub struct AdminConnector {
    admins: Mutex<HashMap<String, Admin>>,
    request_timeout: Option<Duration>,
}

impl AdminConnector {
    pub fn new(request_timeout: Duration) -> Self {
        AdminConnector {
            admins: Mutex::default(),
            request_timeout: Some(request_timeout),
        }
    }

    fn cached(&self, bootstrap: &str) -> Option<Admin> {
        let admins = self.admins.lock().unwrap_or_else(|p| p.into_inner());
        admins.get(bootstrap).cloned()
    }
}

impl KafkaConnector for AdminConnector {
    fn connect<'a>(&'a self, bootstrap: &'a str) -> BoxFuture<'a, Result<Arc<dyn KafkaOps>>> {
        async move {
            let admin = match self.cached(bootstrap) {
                Some(admin) => admin,
                None => {
                    let mut config = ClientConfig::new(bootstrap);
                    config.client_id = "weir-operator".into();
                    if let Some(t) = self.request_timeout {
                        config.request_timeout = t;
                    }
                    let admin = Admin::connect(config).await?;
                    self.admins
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(bootstrap.to_string(), admin.clone());
                    admin
                }
            };
            Ok(Arc::new(AdminKafka { admin }) as Arc<dyn KafkaOps>)
        }
        .boxed()
    }
}

/// One cluster through its `Admin` client.
pub struct AdminKafka {
    admin: Admin,
}

impl AdminKafka {
    pub fn new(admin: Admin) -> Self {
        AdminKafka { admin }
    }

    async fn topic_configs(&self, name: &str) -> Result<Vec<weir_client::admin::ConfigEntry>> {
        Ok(self
            .admin
            .describe_configs(&ConfigResource::topic(name))
            .await?)
    }
}

fn is_unknown_topic(e: &weir_client::Error) -> bool {
    match e {
        weir_client::Error::UnknownTopic(_) => true,
        weir_client::Error::Kafka { code, .. } => {
            *code == ResponseError::UnknownTopicOrPartition.code()
        }
        _ => false,
    }
}

/// UnregisterBroker's answer for an id the controller does not know:
/// already unregistered, or never was.
fn is_not_registered(e: &weir_client::Error) -> bool {
    matches!(e, weir_client::Error::Kafka { code, .. }
        if *code == ResponseError::BrokerIdNotRegistered.code())
}

impl BrokerFacts for AdminKafka {
    fn facts(&self) -> BoxFuture<'_, Result<ClusterFacts>> {
        async move {
            let topics = self.admin.list_topics(true).await?;
            let mut facts = ClusterFacts {
                cluster_id: self.admin.cluster().cluster_id(),
                // Metadata names the active controller; -1 while there is none.
                controller_id: Some(self.admin.cluster().controller_id()).filter(|id| *id >= 0),
                ..ClusterFacts::default()
            };
            for topic in topics {
                let min_insync = self
                    .topic_configs(&topic.name)
                    .await?
                    .iter()
                    .find(|c| c.name == "min.insync.replicas")
                    .and_then(|c| c.value.as_deref()?.parse().ok())
                    .unwrap_or(DEFAULT_MIN_INSYNC);
                let rf = topic
                    .partitions
                    .iter()
                    .map(|p| p.replicas.len())
                    .max()
                    .unwrap_or(0);
                facts.topics.push(TopicReplication {
                    name: topic.name.clone(),
                    replication_factor: i16::try_from(rf).unwrap_or(i16::MAX),
                });
                facts
                    .partitions
                    .extend(topic.partitions.iter().map(|p| PartitionState {
                        topic: topic.name.clone(),
                        partition: p.partition,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                        min_insync_replicas: min_insync,
                    }));
            }
            Ok(facts)
        }
        .boxed()
    }

    fn drain<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<()>> {
        async move {
            self.admin.drain_brokers(node_ids).await?;
            Ok(())
        }
        .boxed()
    }

    fn is_drained<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<bool>> {
        async move {
            let facts = self.facts().await?;
            Ok(facts
                .partitions
                .iter()
                .all(|p| !p.replicas.iter().any(|r| node_ids.contains(r))))
        }
        .boxed()
    }

    fn apply_broker_config<'a>(
        &'a self,
        settings: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        async move {
            let Some(broker) = self.admin.cluster().brokers().first().map(|b| b.node_id) else {
                return Ok(Vec::new());
            };
            let current: BTreeMap<String, String> = self
                .admin
                .describe_configs(&ConfigResource::broker(broker))
                .await?
                .into_iter()
                .filter_map(|c| Some((c.name, c.value?)))
                .collect();
            let ops: Vec<AlterConfigOp> = settings
                .iter()
                .filter(|(k, v)| current.get(*k) != Some(*v))
                .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
                .collect();
            if ops.is_empty() {
                return Ok(Vec::new());
            }
            // An empty broker name is Kafka's cluster-wide default resource.
            let all = ConfigResource {
                kind: weir_client::admin::ConfigResourceType::Broker,
                name: String::new(),
            };
            self.admin.incremental_alter_configs(&all, &ops).await?;
            Ok(ops
                .into_iter()
                .filter_map(|op| match op {
                    AlterConfigOp::Set(k, _) => Some(k),
                    AlterConfigOp::Delete(_) => None,
                })
                .collect())
        }
        .boxed()
    }

    fn unregister<'a>(&'a self, node_id: i32) -> BoxFuture<'a, Result<()>> {
        async move {
            match self.admin.unregister_broker(node_id).await {
                Err(e) if is_not_registered(&e) => Ok(()),
                other => Ok(other?),
            }
        }
        .boxed()
    }
}

impl TopicAdmin for AdminKafka {
    fn describe_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ObservedTopic>>> {
        async move {
            let meta = match self.admin.describe_topic(name).await {
                Ok(m) => m,
                Err(e) if is_unknown_topic(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let configs = match self.topic_configs(name).await {
                Ok(c) => c,
                Err(Error::Kafka(e)) if is_unknown_topic(&e) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut observed = ObservedTopic {
                id: meta.id.to_string(),
                partitions: i32::try_from(meta.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: meta
                    .partitions
                    .first()
                    .map_or(0, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)),
                ..ObservedTopic::default()
            };
            for c in configs {
                let Some(value) = c.value else { continue };
                if c.source == ConfigSource::DynamicTopic {
                    observed.overrides.insert(c.name.clone(), value.clone());
                }
                observed.effective.insert(c.name, value);
            }
            Ok(Some(observed))
        }
        .boxed()
    }

    fn create_topic<'a>(&'a self, topic: &'a NewTopicSpec) -> BoxFuture<'a, Result<()>> {
        async move {
            let mut new = NewTopic::new(&topic.name, topic.partitions, topic.replication_factor);
            new.configs = topic
                .config
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(self.admin.create_topic(new).await?)
        }
        .boxed()
    }

    fn create_partitions<'a>(&'a self, name: &'a str, total: i32) -> BoxFuture<'a, Result<()>> {
        async move { Ok(self.admin.create_partitions(name, total).await?) }.boxed()
    }

    fn alter_topic_config<'a>(
        &'a self,
        name: &'a str,
        changes: &'a [ConfigChange],
    ) -> BoxFuture<'a, Result<()>> {
        async move {
            let ops: Vec<AlterConfigOp> = changes
                .iter()
                .map(|c| match c {
                    ConfigChange::Set(k, v) => AlterConfigOp::Set(k.clone(), v.clone()),
                    ConfigChange::Delete(k) => AlterConfigOp::Delete(k.clone()),
                })
                .collect();
            Ok(self
                .admin
                .incremental_alter_configs(&ConfigResource::topic(name), &ops)
                .await?)
        }
        .boxed()
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            match self.admin.delete_topics(&[name.to_string()]).await {
                Err(e) if is_unknown_topic(&e) => Ok(()),
                other => Ok(other?),
            }
        }
        .boxed()
    }

    fn cluster_id(&self) -> BoxFuture<'_, Result<Option<String>>> {
        async move { Ok(self.admin.cluster().cluster_id()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kafka_error(code: ResponseError, message: &str) -> weir_client::Error {
        weir_client::Error::Kafka {
            code: code.code(),
            name: format!("{code:?}"),
            message: Some(message.into()),
            context: "unregister broker 3".into(),
        }
    }

    #[test]
    fn only_an_unknown_broker_counts_as_already_unregistered() {
        assert!(is_not_registered(&kafka_error(
            ResponseError::BrokerIdNotRegistered,
            "broker 3 is not registered"
        )));
        assert!(!is_not_registered(&kafka_error(
            ResponseError::InvalidRequest,
            "broker 3 is running"
        )));
        assert!(!is_not_registered(&weir_client::Error::Connect {
            addr: "x:9092".into(),
            reason: "refused".into(),
        }));
    }
}
