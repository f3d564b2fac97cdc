//! Topic, config, offset and group administration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeConfigsRequest, GroupId,
    IncrementalAlterConfigsRequest, ListOffsetsRequest, ListPartitionReassignmentsRequest,
    OffsetFetchRequest, TopicName, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::{Decodable, Message};

mod acls;
mod groups;
mod quotas;
mod transactions;
mod users;

pub use groups::{GroupDescription, GroupListing, GroupType, MemberDescription, PartitionLag};
pub use quotas::{DescribedQuotas, QuotaChange};
pub use transactions::{ProducerDescription, TransactionDescription, TransactionListing};
pub use users::ScramUser;

use crate::cluster::{Cluster, TopicMetadata};
use crate::config::ClientConfig;
use crate::consumer::CommitOffset;
use crate::error::{Error, Result, check};
use crate::reassign::{DrainError, PartitionReplicas, plan_drain, plan_drains};
use crate::util::{millis_i32, sb};

/// Newest OffsetFetch that still names topics (v10 switched to topic ids).
pub(crate) const OFFSET_FETCH_MAX: i16 = 9;

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1 for the broker default.
    pub partitions: i32,
    /// -1 for the broker default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    pub fn new(name: impl Into<String>, partitions: i32, replication_factor: i16) -> Self {
        Self {
            name: name.into(),
            partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigResourceType {
    Topic = 2,
    Broker = 4,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigResource {
    pub kind: ConfigResourceType,
    /// Topic name, or the broker's node id as a string.
    pub name: String,
}

impl ConfigResource {
    pub fn topic(name: impl Into<String>) -> Self {
        Self {
            kind: ConfigResourceType::Topic,
            name: name.into(),
        }
    }
    pub fn broker(node_id: i32) -> Self {
        Self {
            kind: ConfigResourceType::Broker,
            name: node_id.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    Unknown,
    DynamicTopic,
    DynamicBroker,
    DynamicDefaultBroker,
    StaticBroker,
    Default,
    DynamicBrokerLogger,
    Other(i8),
}

impl ConfigSource {
    fn from_code(c: i8) -> Self {
        match c {
            0 => Self::Unknown,
            1 => Self::DynamicTopic,
            2 => Self::DynamicBroker,
            3 => Self::DynamicDefaultBroker,
            4 => Self::StaticBroker,
            5 => Self::Default,
            6 => Self::DynamicBrokerLogger,
            c => Self::Other(c),
        }
    }

    /// Kafka's spelling, as `kafka-configs.sh` prints it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Unknown => "UNKNOWN",
            Self::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
            Self::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
            Self::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
            Self::StaticBroker => "STATIC_BROKER_CONFIG",
            Self::Default => "DEFAULT_CONFIG",
            Self::DynamicBrokerLogger => "DYNAMIC_BROKER_LOGGER_CONFIG",
            Self::Other(_) => "OTHER",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    Set(String, String),
    Delete(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The first offset whose timestamp is at or after this (ms since epoch).
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedOffset {
    /// -1 when no record matches a timestamp query.
    pub offset: i64,
    pub timestamp: i64,
}

/// Admin client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Arc<Cluster>,
}

impl Admin {
    pub async fn connect(config: ClientConfig) -> Result<Admin> {
        Ok(Admin {
            cluster: Cluster::connect(config).await?,
        })
    }

    pub fn from_cluster(cluster: Arc<Cluster>) -> Admin {
        Admin { cluster }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    fn timeout_ms(&self) -> i32 {
        millis_i32(self.cluster.config().request_timeout)
    }

    pub async fn create_topic(&self, topic: NewTopic) -> Result<()> {
        self.create_topics(&[topic], false).await
    }

    /// Creates topics; fails with the first topic's error if any fails.
    pub async fn create_topics(&self, topics: &[NewTopic], validate_only: bool) -> Result<()> {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(validate_only)
            .with_topics(
                topics
                    .iter()
                    .map(|t| {
                        CreatableTopic::default()
                            .with_name(TopicName(sb(&t.name)))
                            .with_num_partitions(t.partitions)
                            .with_replication_factor(t.replication_factor)
                            .with_configs(
                                t.configs
                                    .iter()
                                    .map(|(k, v)| {
                                        CreatableTopicConfig::default()
                                            .with_name(sb(k))
                                            .with_value(Some(sb(v)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = self.cluster.controller().await?.send(&req).await?;
        for t in &resp.topics {
            check(t.error_code, t.error_message.as_ref(), || {
                format!("create topic {:?}", t.name.as_str())
            })?;
        }
        if !validate_only {
            let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
            let _ = self.cluster.refresh(Some(&names)).await;
        }
        Ok(())
    }

    /// Waits until every partition of `topic` has a leader, so producing
    /// right after creating it does not start with errors.
    pub async fn wait_for_topic(&self, topic: &str, timeout: Duration) -> Result<TopicMetadata> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.cluster.refresh(Some(&[topic.to_string()])).await?;
            match self.cluster.topic(topic) {
                Some(t)
                    if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0) =>
                {
                    return Ok(t);
                }
                other if tokio::time::Instant::now() >= deadline => {
                    return Err(match other {
                        None => Error::UnknownTopic(topic.to_string()),
                        Some(_) => Error::NoLeader {
                            topic: topic.to_string(),
                            partition: -1,
                        },
                    });
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    pub async fn delete_topics(&self, names: &[String]) -> Result<()> {
        let conn = self.cluster.controller().await?;
        let version = conn.version_for::<DeleteTopicsRequest>()?;
        let mut req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        if version >= 6 {
            req.topics = names
                .iter()
                .map(|n| DeleteTopicState::default().with_name(Some(TopicName(sb(n)))))
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| TopicName(sb(n))).collect();
        }
        let resp = conn.send(&req).await?;
        for r in &resp.responses {
            let name = r
                .name
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_else(|| r.topic_id.to_string());
            check(r.error_code, r.error_message.as_ref(), || {
                format!("delete topic {name:?}")
            })?;
        }
        for n in names {
            self.cluster.invalidate(n);
        }
        Ok(())
    }

    /// Topic names, sorted; internal topics only when asked for.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<TopicMetadata>> {
        self.cluster.refresh(None).await?;
        Ok(self
            .cluster
            .topics()
            .into_iter()
            .filter(|t| include_internal || !t.is_internal)
            .collect())
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicMetadata> {
        self.cluster.refresh(Some(&[name.to_string()])).await?;
        self.cluster
            .topic(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let conn = self.resource_conn(resource).await?;
        let req = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource.kind as i8)
                .with_resource_name(sb(&resource.name))
                .with_configuration_keys(None),
        ]);
        let resp = conn.send(&req).await?;
        let mut out = Vec::new();
        for r in resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("describe configs of {}", describe_resource(resource))
            })?;
            for c in r.configs {
                out.push(ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    source: ConfigSource::from_code(c.config_source),
                    read_only: c.read_only,
                    sensitive: c.is_sensitive,
                });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
    ) -> Result<()> {
        let conn = self.resource_conn(resource).await?;
        let configs = ops
            .iter()
            .map(|op| match op {
                AlterConfigOp::Set(k, v) => AlterableConfig::default()
                    .with_name(sb(k))
                    .with_config_operation(0)
                    .with_value(Some(sb(v))),
                AlterConfigOp::Delete(k) => AlterableConfig::default()
                    .with_name(sb(k))
                    .with_config_operation(1),
            })
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource.kind as i8)
                .with_resource_name(sb(&resource.name))
                .with_configs(configs),
        ]);
        let resp = conn.send(&req).await?;
        for r in &resp.responses {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("alter configs of {}", describe_resource(resource))
            })?;
        }
        Ok(())
    }

    async fn resource_conn(
        &self,
        resource: &ConfigResource,
    ) -> Result<Arc<crate::conn::Connection>> {
        match resource.kind {
            // Broker configs are answered by that broker itself.
            ConfigResourceType::Broker => match resource.name.parse::<i32>() {
                Ok(id) => self.cluster.broker(id).await,
                Err(_) => self.cluster.any().await,
            },
            ConfigResourceType::Topic => self.cluster.any().await,
        }
    }

    /// Grows `topic` to `total_partitions` partitions.
    pub async fn create_partitions(&self, topic: &str, total_partitions: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![
                CreatePartitionsTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_count(total_partitions)
                    // The default is an empty manual assignment; None lets
                    // the broker place the new partitions.
                    .with_assignments(None),
            ]);
        let resp = self.cluster.controller().await?.send(&req).await?;
        for r in &resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("grow topic {topic:?} to {total_partitions} partitions")
            })?;
        }
        self.cluster.invalidate(topic);
        Ok(())
    }

    /// Deletes records below the given offsets; returns the new low
    /// watermark per partition.
    pub async fn delete_records(
        &self,
        topic: &str,
        before: &[(i32, i64)],
    ) -> Result<Vec<(i32, i64)>> {
        let mut out = Vec::new();
        for (leader, parts) in self
            .by_leader(topic, before.iter().map(|(p, o)| (*p, *o)))
            .await?
        {
            let req = DeleteRecordsRequest::default()
                .with_timeout_ms(self.timeout_ms())
                .with_topics(vec![
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partitions(
                            parts
                                .iter()
                                .map(|(p, o)| {
                                    DeleteRecordsPartition::default()
                                        .with_partition_index(*p)
                                        .with_offset(*o)
                                })
                                .collect(),
                        ),
                ]);
            let resp = self.cluster.broker(leader).await?.send(&req).await?;
            for t in resp.topics {
                for p in t.partitions {
                    check(p.error_code, None, || {
                        format!("delete records of {topic}-{}", p.partition_index)
                    })?;
                    out.push((p.partition_index, p.low_watermark));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Groups partitions of one topic by their leader.
    async fn by_leader<T>(
        &self,
        topic: &str,
        items: impl Iterator<Item = (i32, T)>,
    ) -> Result<BTreeMap<i32, Vec<(i32, T)>>> {
        let meta = self.cluster.topic_or_fetch(topic).await?;
        let mut out: BTreeMap<i32, Vec<(i32, T)>> = BTreeMap::new();
        for (p, v) in items {
            let pm = meta.partition(p).ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_string(),
                partition: p,
            })?;
            if pm.leader < 0 {
                return Err(Error::NoLeader {
                    topic: topic.to_string(),
                    partition: p,
                });
            }
            out.entry(pm.leader).or_default().push((p, v));
        }
        Ok(out)
    }

    /// Offsets of every partition of `topic`.
    pub async fn list_offsets(
        &self,
        topic: &str,
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, ListedOffset>> {
        let meta = self.cluster.topic_or_fetch(topic).await?;
        let parts: Vec<(String, i32)> = meta
            .partitions
            .iter()
            .map(|p| (topic.to_string(), p.partition))
            .collect();
        Ok(self
            .list_offsets_for(&parts, spec)
            .await?
            .into_iter()
            .map(|((_, p), o)| (p, o))
            .collect())
    }

    /// Offsets of the given partitions, asking each partition's leader.
    pub async fn list_offsets_for(
        &self,
        partitions: &[(String, i32)],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<(String, i32), ListedOffset>> {
        list_offsets(&self.cluster, partitions, spec, 0).await
    }

    /// Starts, replaces or cancels partition reassignments (KIP-455): each
    /// partition moves to its `replicas` (the first is the preferred
    /// leader), or with `None` goes back to the replicas it had before its
    /// move. The replication factor may change. Fails with the first
    /// partition's error if any is refused; the others still apply.
    pub async fn alter_partition_reassignments(
        &self,
        reassignments: &[Reassignment],
    ) -> Result<()> {
        let mut req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_allow_replication_factor_change(true);
        for r in reassignments {
            let partition = ReassignablePartition::default()
                .with_partition_index(r.partition)
                .with_replicas(
                    r.replicas
                        .as_ref()
                        .map(|ids| ids.iter().copied().map(BrokerId).collect()),
                );
            match req.topics.iter_mut().find(|t| t.name.as_str() == r.topic) {
                Some(t) => t.partitions.push(partition),
                None => req.topics.push(
                    ReassignableTopic::default()
                        .with_name(TopicName(sb(&r.topic)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let resp = self.cluster.controller().await?.send(&req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            "reassign partitions".to_string()
        })?;
        for t in &resp.responses {
            for p in &t.partitions {
                check(p.error_code, p.error_message.as_ref(), || {
                    format!("reassign {}-{}", t.name.as_str(), p.partition_index)
                })?;
            }
        }
        for topic in reassignments.iter().map(|r| r.topic.as_str()) {
            self.cluster.invalidate(topic);
        }
        Ok(())
    }

    /// Forgets broker `node` (Kafka's UnregisterBroker): for a broker that
    /// left for good, once stopped and drained. Refused, naming why, while
    /// it runs or holds replicas.
    pub async fn unregister_broker(&self, node: i32) -> Result<()> {
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(node));
        let resp = self.cluster.controller().await?.send(&req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            format!("unregister broker {node}")
        })
    }

    /// The reassignments in progress, among `partitions` (topic, partition)
    /// if given, sorted by topic and partition.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<OngoingReassignment>> {
        let topics = partitions.map(|wanted| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (topic, p) in wanted {
                by_topic.entry(topic).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(topic, indexes)| {
                    ListPartitionReassignmentsTopics::default()
                        .with_name(TopicName(sb(topic)))
                        .with_partition_indexes(indexes)
                })
                .collect()
        });
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(topics);
        let resp = self.cluster.controller().await?.send(&req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            "list partition reassignments".to_string()
        })?;
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect();
        let mut out: Vec<OngoingReassignment> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| OngoingReassignment {
                    topic: t.name.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding_replicas: ids(&p.adding_replicas),
                    removing_replicas: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Moves every replica off broker `node` (a drain before scale-down):
    /// plans replacements with [`plan_drain`] from fresh metadata and the
    /// moves in progress, and submits them. Returns the reassignments made
    /// (empty when the node holds nothing, or everything is already moving
    /// off it). Progress is for the caller to watch ([`Self::replicas_on`]).
    pub async fn drain_broker(&self, node: i32) -> Result<Vec<Reassignment>> {
        self.drain_with(|brokers, partitions| plan_drain(brokers, partitions, node))
            .await
    }

    /// As [`Self::drain_broker`] for several brokers leaving together
    /// ([`plan_drains`]: nothing is moved onto another leaving broker).
    pub async fn drain_brokers(&self, nodes: &[i32]) -> Result<Vec<Reassignment>> {
        self.drain_with(|brokers, partitions| plan_drains(brokers, partitions, nodes))
            .await
    }

    /// Plans with `plan` over fresh metadata and the moves in progress, and
    /// submits the result.
    async fn drain_with(
        &self,
        plan: impl FnOnce(
            &[crate::cluster::BrokerMetadata],
            &[PartitionReplicas],
        ) -> std::result::Result<Vec<PartitionReplicas>, DrainError>,
    ) -> Result<Vec<Reassignment>> {
        let topics = self.list_topics(true).await?;
        let ongoing = self.list_partition_reassignments(None).await?;
        let removing: BTreeMap<(&str, i32), &[i32]> = ongoing
            .iter()
            .map(|o| {
                (
                    (o.topic.as_str(), o.partition),
                    o.removing_replicas.as_slice(),
                )
            })
            .collect();
        // A partition already moving is planned from its target, so a drain
        // keeps the move's intent and only swaps out the leaving brokers.
        let partitions: Vec<PartitionReplicas> = topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let leaving = removing
                        .get(&(t.name.as_str(), p.partition))
                        .copied()
                        .unwrap_or_default();
                    PartitionReplicas {
                        topic: t.name.clone(),
                        partition: p.partition,
                        replicas: p
                            .replicas
                            .iter()
                            .copied()
                            .filter(|r| !leaving.contains(r))
                            .collect(),
                    }
                })
            })
            .collect();
        let planned =
            plan(&self.cluster.brokers(), &partitions).map_err(|e| Error::Other(e.to_string()))?;
        let reassignments: Vec<Reassignment> = planned
            .into_iter()
            .map(|p| Reassignment {
                topic: p.topic,
                partition: p.partition,
                replicas: Some(p.replicas),
            })
            .collect();
        if !reassignments.is_empty() {
            self.alter_partition_reassignments(&reassignments).await?;
        }
        Ok(reassignments)
    }

    /// The partitions with a replica on broker `node`, from fresh metadata
    /// (replicas being added or removed included).
    pub async fn replicas_on(&self, node: i32) -> Result<Vec<(String, i32)>> {
        Ok(self
            .list_topics(true)
            .await?
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replicas.contains(&node))
                    .map(|p| (t.name.clone(), p.partition))
            })
            .collect())
    }
}

/// One partition's wanted replicas, for
/// [`Admin::alter_partition_reassignments`]; `None` cancels its move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Option<Vec<i32>>,
}

/// A reassignment in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Target and current replicas together, target first.
    pub replicas: Vec<i32>,
    pub adding_replicas: Vec<i32>,
    pub removing_replicas: Vec<i32>,
}

fn describe_resource(r: &ConfigResource) -> String {
    match r.kind {
        ConfigResourceType::Topic => format!("topic {:?}", r.name),
        ConfigResourceType::Broker => format!("broker {}", r.name),
    }
}

/// ListOffsets for many partitions, one request per leader.
pub(crate) async fn list_offsets(
    cluster: &Cluster,
    partitions: &[(String, i32)],
    spec: OffsetSpec,
    isolation_level: i8,
) -> Result<BTreeMap<(String, i32), ListedOffset>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<i32>>> = BTreeMap::new();
    for (topic, p) in partitions {
        let meta = cluster.topic_or_fetch(topic).await?;
        let pm = meta.partition(*p).ok_or_else(|| Error::UnknownPartition {
            topic: topic.clone(),
            partition: *p,
        })?;
        if pm.leader < 0 {
            return Err(Error::NoLeader {
                topic: topic.clone(),
                partition: *p,
            });
        }
        by_leader
            .entry(pm.leader)
            .or_default()
            .entry(topic.clone())
            .or_default()
            .push(*p);
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let req = ListOffsetsRequest::default()
            .with_replica_id((-1).into())
            .with_isolation_level(isolation_level)
            .with_timeout_ms(millis_i32(cluster.config().request_timeout))
            .with_topics(
                topics
                    .iter()
                    .map(|(t, ps)| {
                        ListOffsetsTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(*p)
                                            .with_current_leader_epoch(-1)
                                            .with_timestamp(spec.wire())
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let resp = cluster.broker(leader).await?.send(&req).await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    cluster.invalidate(t.name.as_str());
                }
                check(p.error_code, None, || {
                    format!("list offsets of {}-{}", t.name.as_str(), p.partition_index)
                })?;
                out.insert(
                    (t.name.to_string(), p.partition_index),
                    ListedOffset {
                        offset: p.offset,
                        timestamp: p.timestamp,
                    },
                );
            }
        }
    }
    Ok(out)
}

/// OffsetFetch for a group: all partitions (`None`) or the given ones.
pub(crate) async fn fetch_committed(
    conn: &crate::conn::Connection,
    group: &str,
    partitions: Option<&[(String, i32)]>,
) -> Result<BTreeMap<(String, i32), i64>> {
    Ok(fetch_committed_full(conn, group, partitions)
        .await?
        .into_iter()
        .map(|(tp, c)| (tp, c.offset))
        .collect())
}

/// Committed offsets with their leader epochs and metadata.
pub(crate) async fn fetch_committed_full(
    conn: &crate::conn::Connection,
    group: &str,
    partitions: Option<&[(String, i32)]>,
) -> Result<BTreeMap<(String, i32), CommitOffset>> {
    let version = conn.capped_version::<OffsetFetchRequest>(OFFSET_FETCH_MAX)?;
    let topics: Option<Vec<(String, Vec<i32>)>> = partitions.map(|ps| {
        let mut m: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (t, p) in ps {
            m.entry(t.clone()).or_default().push(*p);
        }
        m.into_iter().collect()
    });
    let mut req = OffsetFetchRequest::default();
    if version >= 8 {
        req.groups = vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(sb(group))).with_topics(topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partition_indexes(ps)
                })
                .collect()
        }))];
    } else {
        req.group_id = GroupId(sb(group));
        req.topics = topics.map(|ts| {
            ts.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(sb(&t)))
                        .with_partition_indexes(ps)
                })
                .collect()
        });
    }
    let resp = conn
        .send_version(&req, version, Duration::from_secs(30))
        .await?;
    let mut out = BTreeMap::new();
    let ctx = || format!("fetch committed offsets of group {group:?}");
    if version >= 8 {
        for g in resp.groups {
            check(g.error_code, None, ctx)?;
            for t in g.topics {
                for p in t.partitions {
                    check(p.error_code, None, ctx)?;
                    if p.committed_offset >= 0 {
                        out.insert(
                            (t.name.to_string(), p.partition_index),
                            committed_offset(
                                &t.name,
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_deref(),
                            ),
                        );
                    }
                }
            }
        }
    } else {
        check(resp.error_code, None, ctx)?;
        for t in resp.topics {
            for p in t.partitions {
                check(p.error_code, None, ctx)?;
                if p.committed_offset >= 0 {
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        committed_offset(
                            &t.name,
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            p.metadata.as_deref(),
                        ),
                    );
                }
            }
        }
    }
    Ok(out)
}

/// Consumer-protocol blobs start with their own i16 version.
fn committed_offset(
    topic: &str,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
    metadata: Option<&str>,
) -> CommitOffset {
    CommitOffset {
        topic: topic.to_string(),
        partition,
        offset,
        leader_epoch: (leader_epoch >= 0).then_some(leader_epoch),
        metadata: metadata.filter(|m| !m.is_empty()).map(str::to_string),
    }
}

pub(crate) fn decode_subscription(mut b: Bytes) -> Option<ConsumerProtocolSubscription> {
    if b.remaining() < 2 {
        return None;
    }
    let v = b
        .get_i16()
        .clamp(0, ConsumerProtocolSubscription::VERSIONS.max);
    ConsumerProtocolSubscription::decode(&mut b, v).ok()
}

pub(crate) fn decode_assignment(mut b: Bytes) -> Option<Vec<(String, i32)>> {
    if b.remaining() < 2 {
        return Some(Vec::new());
    }
    let v = b
        .get_i16()
        .clamp(0, ConsumerProtocolAssignment::VERSIONS.max);
    let a = ConsumerProtocolAssignment::decode(&mut b, v).ok()?;
    let mut out: Vec<(String, i32)> = a
        .assigned_partitions
        .iter()
        .flat_map(|tp| {
            tp.partitions
                .iter()
                .map(move |p| (tp.topic.to_string(), *p))
        })
        .collect();
    out.sort();
    Some(out)
}
