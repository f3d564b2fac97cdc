//! This broker's view of the cluster: reads come from the metadata image
//! this node replays from the Raft metadata log; changes go to the active
//! controller as requests, and show up here once the image has applied them.
//!
//! Handlers see [`TopicMeta`] (a topic as clients know it) and the image;
//! only this module talks to the controller.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_client::acl::{AclBinding, AclFilter};
use weir_quorum::quotas::QuotaAlteration;

use uuid::Uuid;
use weir_quorum::image::{PartitionRegistration, TopicImage};
use weir_quorum::records::{ConfigResource, ScramCredentialRecord, ScramMechanism};
use weir_quorum::rpc::{
    ControllerError, ControllerRequest, ControllerResponse, NewTopic, OngoingReassignment,
    PartitionReassignment,
};
use weir_quorum::{ControllerClient, MetadataImage, MetadataQuorum};

pub use crate::metadata::{
    CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, TopicMeta, is_internal_topic,
    validate_topic_name,
};

/// How long a change may take to reach the controller and commit.
const CONTROLLER_DEADLINE: Duration = Duration::from_secs(10);
/// Producer ids are taken from the controller in blocks, as Kafka does.
const PRODUCER_ID_BLOCK: i64 = 1000;

/// The cluster as this broker sees it.
pub struct ClusterMetadata {
    node_id: i32,
    cluster_id: String,
    quorum: Arc<MetadataQuorum>,
    controller: ControllerClient,
    broker_epoch: AtomicI64,
    producer_ids: Mutex<(i64, i64)>,
}

impl ClusterMetadata {
    pub fn new(
        node_id: i32,
        cluster_id: String,
        quorum: Arc<MetadataQuorum>,
        controller: ControllerClient,
    ) -> Self {
        ClusterMetadata {
            node_id,
            cluster_id,
            quorum,
            controller,
            broker_epoch: AtomicI64::new(-1),
            producer_ids: Mutex::new((0, 0)),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    pub fn cluster_id(&self) -> String {
        self.cluster_id.clone()
    }

    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        &self.quorum
    }

    pub fn controller(&self) -> &ControllerClient {
        &self.controller
    }

    /// The epoch the controller gave this broker's registration (-1 before).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::Acquire)
    }

    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::Release);
    }

    /// The latest image applied on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.quorum.image()
    }

    /// The controller id clients are told (Metadata, DescribeCluster): the
    /// active controller when it is also a live broker, else this broker.
    /// Clients send admin requests to that id, so it must be a broker they
    /// can reach — a dedicated controller is not (KRaft answers with a
    /// broker too); any broker forwards them to the active controller.
    pub fn controller_id(&self) -> i32 {
        let leader = self.quorum.leader().and_then(|id| i32::try_from(id).ok());
        match leader {
            Some(id) if self.image().broker(id).is_some_and(|b| !b.fenced) => id,
            _ => self.node_id,
        }
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        let image = self.image();
        image.topic_by_name(name).map(|t| topic_meta(&image, t))
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        let image = self.image();
        image.topic(&id).map(|t| topic_meta(&image, t))
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        let image = self.image();
        let mut all: Vec<_> = image.topics().map(|t| topic_meta(&image, t)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// One partition's registration (leader, replicas, ISR, epochs).
    pub fn partition(&self, topic: &str, index: i32) -> Option<PartitionRegistration> {
        let image = self.image();
        let t = image.topic_by_name(topic)?;
        usize::try_from(index)
            .ok()
            .and_then(|i| t.partitions.get(i))
            .cloned()
    }

    async fn send(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let deadline = tokio::time::Instant::now() + CONTROLLER_DEADLINE;
        self.controller.send(request, deadline).await
    }

    /// Creates topics; one result per topic, in order. A created topic is
    /// in this node's image before this returns, so a Metadata request
    /// right after sees it.
    pub async fn create_topics(
        &self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<(), ControllerError>> {
        let count = topics.len();
        let response = self
            .send(ControllerRequest::CreateTopics {
                topics,
                validate_only,
            })
            .await;
        match response {
            Ok(ControllerResponse::CreateTopics(results)) => {
                let created: Vec<Uuid> = results
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().map(|t| t.topic_id))
                    .collect();
                if !validate_only {
                    self.wait_for_image(|image| created.iter().all(|id| image.topic(id).is_some()))
                        .await;
                }
                results.into_iter().map(|(_, r)| r.map(|_| ())).collect()
            }
            Ok(other) => vec![Err(unexpected(other)); count],
            Err(e) => vec![Err(e); count],
        }
    }

    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<Result<(), ControllerError>> {
        let count = names.len();
        match self.send(ControllerRequest::DeleteTopics { names }).await {
            Ok(ControllerResponse::DeleteTopics(results)) => {
                let gone: Vec<Uuid> = results
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok().copied())
                    .collect();
                self.wait_for_image(|image| gone.iter().all(|id| image.topic(id).is_none()))
                    .await;
                results.into_iter().map(|(_, r)| r.map(|_| ())).collect()
            }
            Ok(other) => vec![Err(unexpected(other)); count],
            Err(e) => vec![Err(e); count],
        }
    }

    pub async fn create_partitions(
        &self,
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ControllerError> {
        let name = topic.clone();
        match self
            .send(ControllerRequest::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            })
            .await?
        {
            ControllerResponse::CreatePartitions(info) => {
                if !validate_only {
                    let want = info.partitions.len();
                    self.wait_for_image(|image| {
                        image
                            .topic_by_name(&name)
                            .is_some_and(|t| t.partitions.len() >= want)
                    })
                    .await;
                }
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// Sets (`Some`) or deletes (`None`) config keys of a topic; already validated.
    pub async fn alter_topic_configs(
        &self,
        topic: &str,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), ControllerError> {
        self.alter_configs(ConfigResource::Topic(topic.to_string()), changes)
            .await
    }

    /// Sets (`Some`) or deletes (`None`) config keys of any resource;
    /// already validated. Returns once this node's image has them.
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        changes: BTreeMap<String, Option<String>>,
    ) -> Result<(), ControllerError> {
        match self
            .send(ControllerRequest::AlterConfigs {
                resource: resource.clone(),
                changes: changes.clone(),
            })
            .await?
        {
            ControllerResponse::AlterConfigs => {
                self.wait_for_image(|image| {
                    let configs = match &resource {
                        ConfigResource::Topic(t) => image.topic_configs(t),
                        ConfigResource::Cluster => Some(image.cluster_configs()),
                        ConfigResource::Broker(id) => image.broker_configs(*id),
                    };
                    changes
                        .iter()
                        .all(|(k, v)| configs.and_then(|c| c.get(k)) == v.as_ref())
                })
                .await;
                Ok(())
            }
            other => Err(unexpected(other)),
        }
    }

    /// A producer id never handed out before, from a block this broker holds.
    pub async fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        {
            let mut block = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
            if block.0 < block.1 {
                block.0 += 1;
                return Ok(block.0 - 1);
            }
        }
        let response = self
            .send(ControllerRequest::AllocateProducerIds {
                node_id: self.node_id,
                broker_epoch: self.broker_epoch(),
                count: PRODUCER_ID_BLOCK,
            })
            .await?;
        let ControllerResponse::ProducerIds { first_id, count } = response else {
            return Err(unexpected(response));
        };
        let mut block = self.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
        *block = (first_id + 1, first_id + count);
        Ok(first_id)
    }

    /// Asks the controller to change a partition's ISR (this broker leads it).
    pub async fn alter_partition(
        &self,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<PartitionRegistration, ControllerError> {
        let response = self
            .send(ControllerRequest::AlterPartition {
                node_id: self.node_id,
                broker_epoch: self.broker_epoch(),
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            })
            .await?;
        match response {
            ControllerResponse::AlterPartition(partition) => Ok(partition),
            other => Err(unexpected(other)),
        }
    }

    /// Starts, replaces or cancels partition reassignments; one outcome per
    /// entry, in order. Accepted ones are in this node's image on return,
    /// so a ListPartitionReassignments or Metadata right after sees them.
    /// Forgets broker `node_id` (stopped and drained), once the image here
    /// shows it gone.
    pub async fn unregister_broker(&self, node_id: i32) -> Result<(), ControllerError> {
        match self
            .send(ControllerRequest::UnregisterBroker { node_id })
            .await?
        {
            ControllerResponse::UnregisterBroker => {
                self.wait_for_image(|image| image.broker(node_id).is_none())
                    .await;
                Ok(())
            }
            other => Err(ControllerError::Internal(format!(
                "unexpected controller answer {other:?}"
            ))),
        }
    }

    pub async fn alter_partition_reassignments(
        &self,
        reassignments: Vec<PartitionReassignment>,
        allow_replication_factor_change: bool,
    ) -> Vec<Result<(), ControllerError>> {
        let count = reassignments.len();
        let response = self
            .send(ControllerRequest::AlterPartitionReassignments {
                reassignments,
                allow_replication_factor_change,
            })
            .await;
        match response {
            Ok(ControllerResponse::AlterPartitionReassignments(results)) => {
                // Only the last accepted entry per partition shows in the end.
                let mut last: BTreeMap<(&str, i32), &PartitionReassignment> = BTreeMap::new();
                for (entry, _) in results.iter().filter(|(_, r)| r.is_ok()) {
                    last.insert((entry.topic.as_str(), entry.partition), entry);
                }
                self.wait_for_image(|image| {
                    last.values()
                        .all(|entry| reassignment_applied(image, entry))
                })
                .await;
                results.into_iter().map(|(_, r)| r).collect()
            }
            Ok(other) => vec![Err(unexpected(other)); count],
            Err(e) => vec![Err(e); count],
        }
    }

    /// The reassignments in progress, as the active controller knows them.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<OngoingReassignment>, ControllerError> {
        match self
            .send(ControllerRequest::ListPartitionReassignments { partitions })
            .await?
        {
            ControllerResponse::ListPartitionReassignments(ongoing) => Ok(ongoing),
            other => Err(unexpected(other)),
        }
    }

    /// Waits (briefly) until this node's image satisfies `done`: a change
    /// the controller committed reaches every node a moment later.
    /// Removes and sets SCRAM credentials; one outcome per user, in order
    /// of first mention. Accepted changes are in this node's image on
    /// return, so a login right after sees them.
    pub async fn alter_scram_credentials(
        &self,
        deletions: Vec<(String, ScramMechanism)>,
        upsertions: Vec<ScramCredentialRecord>,
    ) -> Result<Vec<(String, Result<(), ControllerError>)>, ControllerError> {
        let response = self
            .send(ControllerRequest::AlterScramCredentials {
                deletions: deletions.clone(),
                upsertions: upsertions.clone(),
            })
            .await?;
        let ControllerResponse::AlterScramCredentials(results) = response else {
            return Err(unexpected(response));
        };
        let accepted = |user: &str| results.iter().any(|(u, r)| u == user && r.is_ok());
        self.wait_for_image(|image| {
            deletions
                .iter()
                .filter(|(u, _)| accepted(u))
                .all(|(u, m)| image.scram_credential(u, *m).is_none())
                && upsertions
                    .iter()
                    .filter(|r| accepted(&r.user))
                    .all(|r| image.scram_credential(&r.user, r.mechanism) == Some(&r.credential))
        })
        .await;
        Ok(results)
    }

    /// Adds ACLs; one outcome per ACL, in order. Those added are in this
    /// node's image on return, so the next request is authorized by them.
    pub async fn create_acls(
        &self,
        acls: Vec<AclBinding>,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        let response = self
            .send(ControllerRequest::CreateAcls { acls: acls.clone() })
            .await?;
        let ControllerResponse::CreateAcls(results) = response else {
            return Err(unexpected(response));
        };
        self.wait_for_image(|image| {
            acls.iter()
                .zip(&results)
                .all(|(acl, r)| r.is_err() || image.acls().contains(acl))
        })
        .await;
        Ok(results)
    }

    /// Removes the ACLs each filter matches; per filter, those removed.
    pub async fn delete_acls(
        &self,
        filters: Vec<AclFilter>,
    ) -> Result<Vec<Vec<AclBinding>>, ControllerError> {
        let response = self.send(ControllerRequest::DeleteAcls { filters }).await?;
        let ControllerResponse::DeleteAcls(removed) = response else {
            return Err(unexpected(response));
        };
        self.wait_for_image(|image| removed.iter().flatten().all(|a| !image.acls().contains(a)))
            .await;
        Ok(removed)
    }

    /// Sets and removes client quotas; one outcome per entity, in order.
    /// Those changed are in this node's image on return, so the next
    /// request is throttled by them.
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<QuotaAlteration>,
        validate_only: bool,
    ) -> Result<Vec<Result<(), ControllerError>>, ControllerError> {
        let response = self
            .send(ControllerRequest::AlterClientQuotas {
                alterations: alterations.clone(),
                validate_only,
            })
            .await?;
        let ControllerResponse::AlterClientQuotas(results) = response else {
            return Err(unexpected(response));
        };
        if !validate_only {
            self.wait_for_image(|image| {
                alterations
                    .iter()
                    .zip(&results)
                    .filter(|(_, r)| r.is_ok())
                    .all(|(a, _)| quotas_show(image, a))
            })
            .await;
        }
        Ok(results)
    }

    pub async fn wait_for_image(&self, done: impl Fn(&MetadataImage) -> bool) {
        let mut watch = self.quorum.watch();
        let wait = watch.wait_for(|applied| done(&applied.image));
        let _ = tokio::time::timeout(CONTROLLER_DEADLINE, wait).await;
    }

    /// Waits (briefly) until this node has applied the log up to `index`.
    pub async fn wait_applied(&self, index: u64) {
        let mut watch = self.quorum.watch();
        let wait = watch.wait_for(|applied| applied.index >= index);
        let _ = tokio::time::timeout(CONTROLLER_DEADLINE, wait).await;
    }
}

/// Whether `image` reflects an accepted reassignment entry: the partition's
/// target is the one asked for (moving or done), or, for a cancellation,
/// nothing is moving any more.
fn reassignment_applied(image: &MetadataImage, entry: &PartitionReassignment) -> bool {
    let partition = image
        .topic_by_name(&entry.topic)
        .and_then(|t| image.partition(&t.id, entry.partition));
    match (partition, &entry.target) {
        (None, _) => true,
        (Some(p), Some(target)) => p.target_replicas() == *target,
        (Some(p), None) => !p.is_reassigning(),
    }
}

fn unexpected(response: ControllerResponse) -> ControllerError {
    ControllerError::Internal(format!("unexpected controller answer {response:?}"))
}

/// A topic as the Kafka APIs describe it.
pub fn topic_meta(image: &MetadataImage, topic: &TopicImage) -> TopicMeta {
    TopicMeta {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        replication_factor: topic
            .partitions
            .first()
            .map(|p| p.target_replicas().len() as i16)
            .unwrap_or(0),
        configs: image
            .topic_configs(&topic.name)
            .cloned()
            .unwrap_or_default(),
        internal: is_internal_topic(&topic.name),
    }
}

/// Whether the image holds what an accepted alteration asked for.
fn quotas_show(image: &MetadataImage, alteration: &QuotaAlteration) -> bool {
    let now = image.quotas().get(&alteration.entity);
    alteration.ops.iter().all(|(key, value)| {
        let set = weir_client::quota::QuotaKey::parse(key)
            .and_then(|k| now.and_then(|q| q.get(&k)))
            .map(|v| v.0);
        set == *value
    })
}
