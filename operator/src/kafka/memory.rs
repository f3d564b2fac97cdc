//! An in-memory cluster for reconciler tests: topics with replicas and ISR,
//! an active controller, drain requests, registered and stopped brokers,
//! and a record of every change the operator asked for, so tests can
//! assert on what was and was not done.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;
use weir_client::ResponseError;
use weir_client::cluster::BrokerMetadata;
use weir_client::reassign::PartitionReplicas;

use super::{
    BrokerFacts, ClusterFacts, ConfigChange, KafkaConnector, KafkaOps, NewTopicSpec, ObservedTopic,
    TopicAdmin, TopicReplication,
};
use crate::reconcile::plan::PartitionState;
use crate::{Error, Result};
use weir_client::reassign::plan_drains;

#[derive(Debug, Clone, PartialEq, Eq)]
struct MemPartition {
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

#[derive(Debug, Clone)]
struct MemTopic {
    id: String,
    partitions: Vec<MemPartition>,
    overrides: BTreeMap<String, String>,
}

/// A change the operator made, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    CreateTopic(String),
    CreatePartitions(String, i32),
    AlterTopicConfig(String, Vec<ConfigChange>),
    DeleteTopic(String),
    Drain(Vec<i32>),
    BrokerConfig(Vec<String>),
    Unregister(i32),
}

#[derive(Debug, Default)]
struct State {
    cluster_id: String,
    brokers: Vec<i32>,
    controller: Option<i32>,
    topics: BTreeMap<String, MemTopic>,
    next_id: u64,
    broker_config: BTreeMap<String, String>,
    /// Brokers asked to drain; they count as drained once the test says so.
    draining: BTreeSet<i32>,
    /// Where the drains move each partition, applied by `finish_drain`.
    moves: BTreeMap<(String, i32), Vec<i32>>,
    /// Brokers in the cluster metadata, running or not.
    registered: BTreeSet<i32>,
    /// Registered brokers whose process has stopped (fenced).
    stopped: BTreeSet<i32>,
    calls: Vec<Call>,
}

/// One in-memory cluster. Cheap to clone; clones share state.
#[derive(Debug, Clone, Default)]
pub struct InMemoryKafka {
    state: Arc<Mutex<State>>,
}

impl InMemoryKafka {
    /// A cluster of these brokers; new topics' replicas go round-robin over them.
    pub fn new(cluster_id: &str, brokers: &[i32]) -> Self {
        let kafka = InMemoryKafka::default();
        {
            let mut s = kafka.lock();
            s.cluster_id = cluster_id.into();
            s.brokers = brokers.to_vec();
            s.registered = brokers.iter().copied().collect();
        }
        kafka
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker's process stops, as when its pod is deleted; it stays
    /// registered (fenced) until unregistered.
    pub fn stop_broker(&self, node_id: i32) {
        self.lock().stopped.insert(node_id);
    }

    /// The brokers in the cluster metadata.
    pub fn registered(&self) -> Vec<i32> {
        self.lock().registered.iter().copied().collect()
    }

    pub fn set_controller(&self, node_id: Option<i32>) {
        self.lock().controller = node_id;
    }

    /// Replaces the ISR of one partition (a broker falling behind or catching up).
    pub fn set_isr(&self, topic: &str, partition: usize, isr: &[i32]) {
        if let Some(p) = self
            .lock()
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(partition))
        {
            p.isr = isr.to_vec();
        }
    }

    /// Every partition's ISR back to all its replicas.
    pub fn heal_isr(&self) {
        for t in self.lock().topics.values_mut() {
            for p in &mut t.partitions {
                p.isr = p.replicas.clone();
            }
        }
    }

    /// Moves the replicas of the drained brokers where the drains planned,
    /// as finished reassignments would.
    pub fn finish_drain(&self) {
        let mut s = self.lock();
        let moves = std::mem::take(&mut s.moves);
        for ((topic, partition), replicas) in moves {
            if let Some(p) = s.topics.get_mut(&topic).and_then(|t| {
                t.partitions
                    .get_mut(usize::try_from(partition).unwrap_or(usize::MAX))
            }) {
                p.replicas = replicas.clone();
                p.isr = replicas;
            }
        }
        let draining = s.draining.clone();
        s.brokers.retain(|b| !draining.contains(b));
    }

    /// Every partition's replicas, by topic and partition.
    pub fn replicas(&self) -> BTreeMap<(String, i32), Vec<i32>> {
        let s = self.lock();
        s.topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions.iter().enumerate().map(move |(i, p)| {
                    (
                        (name.clone(), i32::try_from(i).unwrap_or(i32::MAX)),
                        p.replicas.clone(),
                    )
                })
            })
            .collect()
    }

    /// Changes a topic behind the operator's back.
    pub fn set_config_out_of_band(&self, topic: &str, key: &str, value: &str) {
        if let Some(t) = self.lock().topics.get_mut(topic) {
            t.overrides.insert(key.into(), value.into());
        }
    }

    /// Adds partitions behind the operator's back.
    pub fn grow_out_of_band(&self, topic: &str, total: usize) {
        let mut s = self.lock();
        let brokers = s.brokers.clone();
        if let Some(t) = s.topics.get_mut(topic) {
            let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
            while t.partitions.len() < total {
                let p = assign(&brokers, t.partitions.len(), rf);
                t.partitions.push(p);
            }
        }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn topic_names(&self) -> Vec<String> {
        self.lock().topics.keys().cloned().collect()
    }

    pub fn topic_partitions(&self, topic: &str) -> Option<usize> {
        self.lock().topics.get(topic).map(|t| t.partitions.len())
    }

    pub fn topic_config(&self, topic: &str) -> Option<BTreeMap<String, String>> {
        self.lock().topics.get(topic).map(|t| t.overrides.clone())
    }

    pub fn broker_config(&self) -> BTreeMap<String, String> {
        self.lock().broker_config.clone()
    }

    fn create(&self, topic: &NewTopicSpec, record: bool) -> Result<()> {
        let mut s = self.lock();
        if s.topics.contains_key(&topic.name) {
            return Err(Error::Unsupported(format!(
                "topic {:?} already exists",
                topic.name
            )));
        }
        let rf = usize::try_from(topic.replication_factor).unwrap_or(0);
        if rf > s.brokers.len() {
            return Err(Error::Unsupported(format!(
                "replication factor {rf} is more than the {} brokers",
                s.brokers.len()
            )));
        }
        s.next_id += 1;
        let id = format!("00000000-0000-0000-0000-{:012}", s.next_id);
        let partitions = (0..usize::try_from(topic.partitions).unwrap_or(0))
            .map(|p| assign(&s.brokers, p, rf))
            .collect();
        s.topics.insert(
            topic.name.clone(),
            MemTopic {
                id,
                partitions,
                overrides: topic.config.clone(),
            },
        );
        if record {
            s.calls.push(Call::CreateTopic(topic.name.clone()));
        }
        Ok(())
    }

    /// Creates a topic as someone other than the operator would.
    pub fn create_out_of_band(&self, topic: &NewTopicSpec) -> Result<()> {
        self.create(topic, false)
    }
}

fn assign(brokers: &[i32], partition: usize, rf: usize) -> MemPartition {
    let replicas: Vec<i32> = (0..rf.min(brokers.len()))
        .map(|i| brokers[(partition + i) % brokers.len()])
        .collect();
    MemPartition {
        isr: replicas.clone(),
        replicas,
    }
}

fn ready<T: Send + 'static>(value: Result<T>) -> BoxFuture<'static, Result<T>> {
    futures::future::ready(value).boxed()
}

impl BrokerFacts for InMemoryKafka {
    fn facts(&self) -> BoxFuture<'_, Result<ClusterFacts>> {
        let s = self.lock();
        let mut facts = ClusterFacts {
            cluster_id: Some(s.cluster_id.clone()),
            controller_id: s.controller,
            ..ClusterFacts::default()
        };
        for (name, t) in &s.topics {
            let min_insync = t
                .overrides
                .get("min.insync.replicas")
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
            facts.topics.push(TopicReplication {
                name: name.clone(),
                replication_factor: i16::try_from(rf).unwrap_or(i16::MAX),
            });
            for (i, p) in t.partitions.iter().enumerate() {
                facts.partitions.push(PartitionState {
                    topic: name.clone(),
                    partition: i32::try_from(i).unwrap_or(i32::MAX),
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    min_insync_replicas: min_insync,
                });
            }
        }
        ready(Ok(facts))
    }

    fn drain<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<()>> {
        let mut s = self.lock();
        let new: Vec<i32> = node_ids
            .iter()
            .copied()
            .filter(|n| !s.draining.contains(n))
            .collect();
        if new.is_empty() {
            return ready(Ok(()));
        }
        // Planned as the admin-backed drain plans, over the replicas as the
        // drains already asked for will leave them.
        let leaving: Vec<i32> = s
            .draining
            .iter()
            .copied()
            .chain(new.iter().copied())
            .collect();
        let brokers: Vec<BrokerMetadata> = s
            .brokers
            .iter()
            .map(|id| BrokerMetadata {
                node_id: *id,
                host: String::new(),
                port: 0,
                rack: None,
            })
            .collect();
        let partitions: Vec<PartitionReplicas> = s
            .topics
            .iter()
            .flat_map(|(name, t)| {
                let moves = &s.moves;
                t.partitions.iter().enumerate().map(move |(i, p)| {
                    let partition = i32::try_from(i).unwrap_or(i32::MAX);
                    PartitionReplicas {
                        topic: name.clone(),
                        partition,
                        replicas: moves
                            .get(&(name.clone(), partition))
                            .unwrap_or(&p.replicas)
                            .clone(),
                    }
                })
            })
            .collect();
        let plan = match plan_drains(&brokers, &partitions, &leaving) {
            Ok(plan) => plan,
            Err(e) => return ready(Err(weir_client::Error::Other(e.to_string()).into())),
        };
        for p in plan {
            s.moves.insert((p.topic, p.partition), p.replicas);
        }
        s.draining.extend(new.iter().copied());
        s.calls.push(Call::Drain(new));
        ready(Ok(()))
    }

    fn is_drained<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<bool>> {
        let s = self.lock();
        let holds_replica = s
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| p.replicas.iter().any(|r| node_ids.contains(r)));
        ready(Ok(!holds_replica))
    }

    fn apply_broker_config<'a>(
        &'a self,
        settings: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Vec<String>>> {
        let mut s = self.lock();
        let changed: Vec<String> = settings
            .iter()
            .filter(|(k, v)| s.broker_config.get(*k) != Some(*v))
            .map(|(k, _)| k.clone())
            .collect();
        if !changed.is_empty() {
            s.broker_config.extend(settings.clone());
            s.calls.push(Call::BrokerConfig(changed.clone()));
        }
        ready(Ok(changed))
    }

    fn unregister<'a>(&'a self, node_id: i32) -> BoxFuture<'a, Result<()>> {
        let mut s = self.lock();
        let refusal = |message: String| {
            Error::Kafka(weir_client::Error::Kafka {
                code: ResponseError::InvalidRequest.code(),
                name: "INVALID_REQUEST".into(),
                message: Some(message),
                context: format!("unregister broker {node_id}"),
            })
        };
        // Not registered: already forgotten, which is what was asked.
        if !s.registered.contains(&node_id) {
            return ready(Ok(()));
        }
        if !s.stopped.contains(&node_id) {
            return ready(Err(refusal(format!("broker {node_id} is running"))));
        }
        let holds_replica = s
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(|p| p.replicas.contains(&node_id));
        if holds_replica {
            return ready(Err(refusal(format!(
                "broker {node_id} still holds replicas; drain it first"
            ))));
        }
        s.registered.remove(&node_id);
        s.stopped.remove(&node_id);
        s.calls.push(Call::Unregister(node_id));
        ready(Ok(()))
    }
}

impl TopicAdmin for InMemoryKafka {
    fn describe_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ObservedTopic>>> {
        let s = self.lock();
        let observed = s.topics.get(name).map(|t| {
            let mut effective = BTreeMap::from([
                ("cleanup.policy".to_string(), "delete".to_string()),
                ("retention.ms".to_string(), "604800000".to_string()),
            ]);
            effective.extend(t.overrides.clone());
            ObservedTopic {
                id: t.id.clone(),
                partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
                replication_factor: t
                    .partitions
                    .first()
                    .map_or(0, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX)),
                overrides: t.overrides.clone(),
                effective,
            }
        });
        ready(Ok(observed))
    }

    fn create_topic<'a>(&'a self, topic: &'a NewTopicSpec) -> BoxFuture<'a, Result<()>> {
        ready(self.create(topic, true))
    }

    fn create_partitions<'a>(&'a self, name: &'a str, total: i32) -> BoxFuture<'a, Result<()>> {
        let mut s = self.lock();
        let brokers = s.brokers.clone();
        let result = match s.topics.get_mut(name) {
            None => Err(Error::Unsupported(format!("topic {name:?} does not exist"))),
            Some(t) if usize::try_from(total).unwrap_or(0) < t.partitions.len() => Err(
                Error::Unsupported("partitions can only be increased".into()),
            ),
            Some(t) => {
                let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
                while t.partitions.len() < usize::try_from(total).unwrap_or(0) {
                    let p = assign(&brokers, t.partitions.len(), rf);
                    t.partitions.push(p);
                }
                Ok(())
            }
        };
        if result.is_ok() {
            s.calls.push(Call::CreatePartitions(name.into(), total));
        }
        ready(result)
    }

    fn alter_topic_config<'a>(
        &'a self,
        name: &'a str,
        changes: &'a [ConfigChange],
    ) -> BoxFuture<'a, Result<()>> {
        let mut s = self.lock();
        let Some(t) = s.topics.get_mut(name) else {
            return ready(Err(Error::Unsupported(format!(
                "topic {name:?} does not exist"
            ))));
        };
        for c in changes {
            match c {
                ConfigChange::Set(k, v) => {
                    t.overrides.insert(k.clone(), v.clone());
                }
                ConfigChange::Delete(k) => {
                    t.overrides.remove(k);
                }
            }
        }
        s.calls
            .push(Call::AlterTopicConfig(name.into(), changes.to_vec()));
        ready(Ok(()))
    }

    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut s = self.lock();
        if s.topics.remove(name).is_some() {
            s.calls.push(Call::DeleteTopic(name.into()));
        }
        ready(Ok(()))
    }

    fn cluster_id(&self) -> BoxFuture<'_, Result<Option<String>>> {
        ready(Ok(Some(self.lock().cluster_id.clone())))
    }
}

/// Hands out in-memory clusters by bootstrap address, so a test can check
/// that each Topic talks only to the cluster its clusterRef names.
#[derive(Debug, Clone, Default)]
pub struct InMemoryConnector {
    clusters: Arc<Mutex<HashMap<String, InMemoryKafka>>>,
}

impl InMemoryConnector {
    pub fn add(&self, bootstrap: &str, kafka: InMemoryKafka) {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(bootstrap.into(), kafka);
    }
}

impl KafkaConnector for InMemoryConnector {
    fn connect<'a>(&'a self, bootstrap: &'a str) -> BoxFuture<'a, Result<Arc<dyn KafkaOps>>> {
        let found = self
            .clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(bootstrap)
            .cloned();
        ready(match found {
            Some(k) => Ok(Arc::new(k) as Arc<dyn KafkaOps>),
            None => Err(Error::Kafka(weir_client::Error::Connect {
                addr: bootstrap.into(),
                reason: "no such in-memory cluster".into(),
            })),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unregister_waits_for_a_stopped_drained_broker_then_forgets_it() {
        let kafka = InMemoryKafka::new("c", &[0, 1, 2]);
        kafka
            .create_out_of_band(&NewTopicSpec {
                name: "orders".into(),
                partitions: 3,
                replication_factor: 2,
                config: BTreeMap::new(),
            })
            .expect("topic");
        let running = kafka.unregister(2).await.expect_err("running");
        assert!(running.to_string().contains("running"), "{running}");
        kafka.stop_broker(2);
        let holds = kafka.unregister(2).await.expect_err("holds replicas");
        assert!(holds.to_string().contains("drain it first"), "{holds}");
        kafka.drain(&[2]).await.expect("drain");
        kafka.finish_drain();
        kafka.unregister(2).await.expect("unregistered");
        assert_eq!(kafka.registered(), [0, 1]);
        kafka
            .unregister(2)
            .await
            .expect("not registered is success");
        kafka.unregister(9).await.expect("never registered");
        assert_eq!(kafka.calls().last(), Some(&Call::Unregister(2)));
    }
}
