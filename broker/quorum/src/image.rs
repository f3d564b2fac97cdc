//! The metadata image: what the cluster knows after replaying the metadata log
//! up to some index. Pure and deterministic — ordered maps only, no clocks, no
//! randomness — so every node that replays the same records holds an equal
//! image, and a snapshot is just the image serialized.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use weir_client::acl::AclBinding;
use weir_client::quota::{QuotaEntity, QuotaKey, QuotaValue};

use crate::records::{
    BrokerId, ConfigResource, Endpoint, MetadataRecord, NO_LEADER, PartitionChange,
    PartitionRecord, ScramCredential, ScramMechanism,
};

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: BrokerId,
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

/// A partition's replicas, in-sync replicas, leader and epochs.
///
/// While a reassignment is in progress, `replicas` is the union of the
/// target and the original replicas, target first (so the preferred leader
/// is the target's); `adding_replicas` are target replicas that were not
/// original ones, `removing_replicas` original ones not in the target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRegistration {
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<BrokerId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    /// The replica Kafka tries to make leader when all are well: the first one.
    pub fn preferred_leader(&self) -> BrokerId {
        self.replicas.first().copied().unwrap_or(NO_LEADER)
    }

    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes
    /// (all of them when none is in progress).
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        without(&self.replicas, &self.removing_replicas)
    }

    /// The replicas the partition had before its reassignment began.
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        without(&self.replicas, &self.adding_replicas)
    }
}

/// `ids` in order, minus those in `remove`.
fn without(ids: &[BrokerId], remove: &[BrokerId]) -> Vec<BrokerId> {
    ids.iter()
        .copied()
        .filter(|r| !remove.contains(r))
        .collect()
}

/// A topic and its partitions (index = partition number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionRegistration>,
}

/// The whole replayed metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    brokers: BTreeMap<BrokerId, BrokerRegistration>,
    topics: BTreeMap<Uuid, TopicImage>,
    topic_ids: BTreeMap<String, Uuid>,
    // Three maps rather than one keyed by `ConfigResource`: JSON object keys
    // must be strings or numbers, and snapshots are JSON.
    cluster_configs: BTreeMap<String, String>,
    broker_configs: BTreeMap<BrokerId, BTreeMap<String, String>>,
    topic_configs: BTreeMap<String, BTreeMap<String, String>>,
    next_producer_id: i64,
    /// SCRAM credentials per user and mechanism; absent from snapshots
    /// written before there were any.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram_credentials: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// The ACLs. Shared, because the image is copied on every applied
    /// batch and ACLs change rarely; and the pointer says whether they
    /// changed, so a broker rebuilds its authorizer only when they did.
    #[serde(default, skip_serializing_if = "is_empty_set")]
    acls: Arc<BTreeSet<AclBinding>>,
    /// Client quotas per entity; shared for the same reasons as the ACLs.
    #[serde(default, skip_serializing_if = "is_empty_map", with = "quota_list")]
    quotas: Arc<ClientQuotas>,
}

/// Quotas are written as a list of (entity, quotas) pairs: an entity is a
/// struct, and JSON map keys must be strings.
mod quota_list {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serializer};

    use super::ClientQuotas;

    pub fn serialize<S: Serializer>(quotas: &Arc<ClientQuotas>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(quotas.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<ClientQuotas>, D::Error> {
        let pairs: Vec<(_, _)> = Vec::deserialize(d)?;
        Ok(Arc::new(pairs.into_iter().collect()))
    }
}

/// Every entity's quotas.
pub type ClientQuotas = BTreeMap<QuotaEntity, BTreeMap<QuotaKey, QuotaValue>>;

fn is_empty_set(acls: &Arc<BTreeSet<AclBinding>>) -> bool {
    acls.is_empty()
}

fn is_empty_map(quotas: &Arc<ClientQuotas>) -> bool {
    quotas.is_empty()
}

/// Why a record cannot be applied to the image. Serializable because the
/// outcome of applying a batch is part of the replicated state machine's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ImageError {
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {node_id}: epoch {got} is stale (current {current})")]
    StaleBrokerEpoch {
        node_id: BrokerId,
        got: i64,
        current: i64,
    },
    #[error("broker id {0} is invalid: must be >= 0")]
    InvalidBrokerId(BrokerId),
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic id {0} already exists")]
    TopicIdExists(Uuid),
    #[error("topic name '{0}' is invalid: {1}")]
    InvalidTopicName(String, String),
    #[error("topic id {0} does not exist")]
    UnknownTopic(Uuid),
    #[error("topic '{0}' does not exist")]
    UnknownTopicName(String),
    #[error("partition {topic_id}/{partition} does not exist")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error(
        "partition {topic_id}/{partition}: partitions must be added in order, next is {expected}"
    )]
    PartitionOutOfOrder {
        topic_id: Uuid,
        partition: i32,
        expected: i32,
    },
    #[error("partition {topic_id}/{partition}: {rule}")]
    InvalidPartition {
        topic_id: Uuid,
        partition: i32,
        rule: String,
    },
    #[error("partition {topic_id}/{partition}: leader {leader} is not in the ISR {isr:?}")]
    LeaderNotInIsr {
        topic_id: Uuid,
        partition: i32,
        leader: BrokerId,
        isr: Vec<BrokerId>,
    },
    #[error("partition {topic_id}/{partition}: {which} epoch {got} is not valid after {current}")]
    EpochNotAdvancing {
        topic_id: Uuid,
        partition: i32,
        which: EpochKind,
        got: i32,
        current: i32,
    },
    #[error("producer id block {got} does not advance past {current}")]
    ProducerIdsNotAdvancing { got: i64, current: i64 },
    #[error("user {user:?} has no {mechanism:?} credential")]
    UnknownScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    #[error("a SCRAM credential needs a user name")]
    EmptyScramUser,
    #[error("invalid ACL {acl}: {why}")]
    InvalidAcl { acl: String, why: String },
    #[error("invalid client quota for {entity}: {why}")]
    InvalidQuota { entity: String, why: String },
}

/// Which of a partition's epochs a change got wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpochKind {
    Leader,
    Partition,
}

impl std::fmt::Display for EpochKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EpochKind::Leader => "leader",
            EpochKind::Partition => "partition",
        })
    }
}

impl MetadataImage {
    pub fn brokers(&self) -> &BTreeMap<BrokerId, BrokerRegistration> {
        &self.brokers
    }

    pub fn broker(&self, id: BrokerId) -> Option<&BrokerRegistration> {
        self.brokers.get(&id)
    }

    /// Registered, unfenced brokers: the ones that may lead or be in sync.
    pub fn live_brokers(&self) -> BTreeSet<BrokerId> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.node_id)
            .collect()
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    pub fn topic(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topics.get(id)
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn partition(&self, topic_id: &Uuid, partition: i32) -> Option<&PartitionRegistration> {
        let index = usize::try_from(partition).ok()?;
        self.topics.get(topic_id)?.partitions.get(index)
    }

    pub fn topic_configs(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.topic_configs.get(name)
    }

    pub fn broker_configs(&self, id: BrokerId) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&id)
    }

    pub fn cluster_configs(&self) -> &BTreeMap<String, String> {
        &self.cluster_configs
    }

    /// A topic config as the topic sees it: its override, else the cluster default.
    pub fn effective_topic_config(&self, topic: &str, key: &str) -> Option<&str> {
        self.topic_configs
            .get(topic)
            .and_then(|c| c.get(key))
            .or_else(|| self.cluster_configs.get(key))
            .map(String::as_str)
    }

    /// A user's SCRAM credential for `mechanism`.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// Every user with a SCRAM credential, and theirs.
    pub fn scram_users(&self) -> &BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>> {
        &self.scram_credentials
    }

    /// Every ACL, in a stable order.
    pub fn acls(&self) -> &Arc<BTreeSet<AclBinding>> {
        &self.acls
    }

    /// Every entity's client quotas.
    pub fn quotas(&self) -> &Arc<ClientQuotas> {
        &self.quotas
    }

    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Applies a batch all-or-nothing: on error the image is unchanged.
    pub fn apply_batch(&mut self, records: &[MetadataRecord]) -> Result<(), ImageError> {
        match records {
            [] => Ok(()),
            // `apply` is atomic per record, so a single record needs no copy.
            [one] => self.apply(one),
            many => {
                let mut next = self.clone();
                for record in many {
                    next.apply(record)?;
                }
                *self = next;
                Ok(())
            }
        }
    }

    /// Applies one record, or refuses it and leaves the image unchanged.
    /// Every check happens before the first mutation.
    pub fn apply(&mut self, record: &MetadataRecord) -> Result<(), ImageError> {
        match record {
            MetadataRecord::RegisterBroker {
                node_id,
                epoch,
                incarnation_id,
                endpoints,
                rack,
            } => {
                if *node_id < 0 {
                    return Err(ImageError::InvalidBrokerId(*node_id));
                }
                let current = self.brokers.get(node_id).map(|b| b.epoch);
                if let Some(current) = current.filter(|c| *epoch <= *c) {
                    return Err(ImageError::StaleBrokerEpoch {
                        node_id: *node_id,
                        got: *epoch,
                        current,
                    });
                }
                self.brokers.insert(
                    *node_id,
                    BrokerRegistration {
                        node_id: *node_id,
                        epoch: *epoch,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::UnregisterBroker { node_id, epoch } => {
                self.registered(*node_id, *epoch)?;
                self.brokers.remove(node_id);
                self.broker_configs.remove(node_id);
            }
            MetadataRecord::FenceBroker { node_id, epoch } => {
                self.registered(*node_id, *epoch)?;
                if let Some(b) = self.brokers.get_mut(node_id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker { node_id, epoch } => {
                self.registered(*node_id, *epoch)?;
                if let Some(b) = self.brokers.get_mut(node_id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::CreateTopic {
                name,
                topic_id,
                configs,
            } => {
                validate_topic_name(name)?;
                if self.topic_ids.contains_key(name) {
                    return Err(ImageError::TopicExists(name.clone()));
                }
                if self.topics.contains_key(topic_id) {
                    return Err(ImageError::TopicIdExists(*topic_id));
                }
                self.topic_ids.insert(name.clone(), *topic_id);
                self.topics.insert(
                    *topic_id,
                    TopicImage {
                        name: name.clone(),
                        id: *topic_id,
                        partitions: Vec::new(),
                    },
                );
                // A name reused after deletion must not inherit old overrides.
                self.topic_configs.remove(name);
                if !configs.is_empty() {
                    self.topic_configs.insert(name.clone(), configs.clone());
                }
            }
            MetadataRecord::Partition(p) => self.add_partition(p)?,
            MetadataRecord::PartitionChange(c) => self.change_partition(c)?,
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or(ImageError::UnknownTopic(*topic_id))?;
                self.topic_ids.remove(&topic.name);
                self.topic_configs.remove(&topic.name);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => {
                let map = match resource {
                    ConfigResource::Cluster => Some(&mut self.cluster_configs),
                    ConfigResource::Broker(id) => {
                        if *id < 0 {
                            return Err(ImageError::InvalidBrokerId(*id));
                        }
                        match value {
                            Some(_) => Some(self.broker_configs.entry(*id).or_default()),
                            None => self.broker_configs.get_mut(id),
                        }
                    }
                    ConfigResource::Topic(topic) => {
                        if !self.topic_ids.contains_key(topic) {
                            return Err(ImageError::UnknownTopicName(topic.clone()));
                        }
                        match value {
                            Some(_) => Some(self.topic_configs.entry(topic.clone()).or_default()),
                            None => self.topic_configs.get_mut(topic),
                        }
                    }
                };
                if let Some(map) = map {
                    match value {
                        Some(v) => {
                            map.insert(name.clone(), v.clone());
                        }
                        None => {
                            map.remove(name);
                        }
                    }
                }
                // Empty maps are dropped so that "never set" and "set then
                // deleted" give equal images.
                self.broker_configs.retain(|_, m| !m.is_empty());
                self.topic_configs.retain(|_, m| !m.is_empty());
            }
            MetadataRecord::ProducerIds { next_producer_id } => {
                if *next_producer_id <= self.next_producer_id {
                    return Err(ImageError::ProducerIdsNotAdvancing {
                        got: *next_producer_id,
                        current: self.next_producer_id,
                    });
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::ScramCredential(r) => {
                if r.user.is_empty() {
                    return Err(ImageError::EmptyScramUser);
                }
                self.scram_credentials
                    .entry(r.user.clone())
                    .or_default()
                    .insert(r.mechanism, r.credential.clone());
            }
            MetadataRecord::RemoveScramCredential { user, mechanism } => {
                let unknown = || ImageError::UnknownScramCredential {
                    user: user.clone(),
                    mechanism: *mechanism,
                };
                let of_user = self.scram_credentials.get_mut(user).ok_or_else(unknown)?;
                of_user.remove(mechanism).ok_or_else(unknown)?;
                if of_user.is_empty() {
                    self.scram_credentials.remove(user);
                }
            }
            MetadataRecord::Acl(acl) => {
                acl.validate().map_err(|why| ImageError::InvalidAcl {
                    acl: acl.to_string(),
                    why,
                })?;
                if !self.acls.contains(acl) {
                    Arc::make_mut(&mut self.acls).insert(acl.clone());
                }
            }
            MetadataRecord::RemoveAcl(acl) => {
                if self.acls.contains(acl) {
                    Arc::make_mut(&mut self.acls).remove(acl);
                }
            }
            MetadataRecord::ClientQuota { entity, key, value } => {
                let invalid = |why: String| ImageError::InvalidQuota {
                    entity: entity.to_string(),
                    why,
                };
                let allowed = entity.validate().map_err(invalid)?;
                if !allowed.contains(key) {
                    return Err(invalid(format!("{key} does not apply to it")));
                }
                match value {
                    Some(value) => {
                        key.check(value.0).map_err(invalid)?;
                        Arc::make_mut(&mut self.quotas)
                            .entry(entity.clone())
                            .or_default()
                            .insert(*key, *value);
                    }
                    None => {
                        if self.quotas.get(entity).is_some_and(|q| q.contains_key(key)) {
                            let quotas = Arc::make_mut(&mut self.quotas);
                            let of_entity = quotas.get_mut(entity).expect("checked above");
                            of_entity.remove(key);
                            if of_entity.is_empty() {
                                quotas.remove(entity);
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn registered(&self, node_id: BrokerId, epoch: i64) -> Result<(), ImageError> {
        let b = self
            .brokers
            .get(&node_id)
            .ok_or(ImageError::UnknownBroker(node_id))?;
        if b.epoch != epoch {
            return Err(ImageError::StaleBrokerEpoch {
                node_id,
                got: epoch,
                current: b.epoch,
            });
        }
        Ok(())
    }

    fn add_partition(&mut self, p: &PartitionRecord) -> Result<(), ImageError> {
        let topic = self
            .topics
            .get_mut(&p.topic_id)
            .ok_or(ImageError::UnknownTopic(p.topic_id))?;
        let expected = i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX);
        if p.partition != expected {
            return Err(ImageError::PartitionOutOfOrder {
                topic_id: p.topic_id,
                partition: p.partition,
                expected,
            });
        }
        let invalid = |rule: &str| ImageError::InvalidPartition {
            topic_id: p.topic_id,
            partition: p.partition,
            rule: rule.to_owned(),
        };
        if p.leader_epoch < 0 || p.partition_epoch < 0 {
            return Err(invalid("epochs must be >= 0"));
        }
        let registration = PartitionRegistration {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        check_partition(&registration, p.topic_id, p.partition)?;
        topic.partitions.push(registration);
        Ok(())
    }

    fn change_partition(&mut self, c: &PartitionChange) -> Result<(), ImageError> {
        let current =
            self.partition(&c.topic_id, c.partition)
                .ok_or(ImageError::UnknownPartition {
                    topic_id: c.topic_id,
                    partition: c.partition,
                })?;
        let epoch_error = |which, got, current| ImageError::EpochNotAdvancing {
            topic_id: c.topic_id,
            partition: c.partition,
            which,
            got,
            current,
        };
        if Some(c.partition_epoch) != current.partition_epoch.checked_add(1) {
            return Err(epoch_error(
                EpochKind::Partition,
                c.partition_epoch,
                current.partition_epoch,
            ));
        }
        let next = PartitionRegistration {
            replicas: c
                .replicas
                .clone()
                .unwrap_or_else(|| current.replicas.clone()),
            isr: c.isr.clone().unwrap_or_else(|| current.isr.clone()),
            leader: c.leader.unwrap_or(current.leader),
            leader_epoch: c.leader_epoch,
            partition_epoch: c.partition_epoch,
            adding_replicas: c
                .adding_replicas
                .clone()
                .unwrap_or_else(|| current.adding_replicas.clone()),
            removing_replicas: c
                .removing_replicas
                .clone()
                .unwrap_or_else(|| current.removing_replicas.clone()),
        };
        let leader_changed = next.leader != current.leader;
        if next.leader_epoch < current.leader_epoch
            || (leader_changed && next.leader_epoch == current.leader_epoch)
        {
            return Err(epoch_error(
                EpochKind::Leader,
                next.leader_epoch,
                current.leader_epoch,
            ));
        }
        check_partition(&next, c.topic_id, c.partition)?;
        let index = usize::try_from(c.partition).unwrap_or(usize::MAX);
        if let Some(slot) = self
            .topics
            .get_mut(&c.topic_id)
            .and_then(|t| t.partitions.get_mut(index))
        {
            *slot = next;
        }
        Ok(())
    }
}

/// The structural rules every partition state obeys.
fn check_partition(
    p: &PartitionRegistration,
    topic_id: Uuid,
    partition: i32,
) -> Result<(), ImageError> {
    let invalid = |rule: &str| ImageError::InvalidPartition {
        topic_id,
        partition,
        rule: rule.to_owned(),
    };
    if p.replicas.is_empty() {
        return Err(invalid("replicas must not be empty"));
    }
    if p.replicas.iter().any(|r| *r < 0) {
        return Err(invalid("replica ids must be >= 0"));
    }
    if !all_distinct(&p.replicas) {
        return Err(invalid("replicas must be distinct"));
    }
    if !all_distinct(&p.isr) {
        return Err(invalid("ISR members must be distinct"));
    }
    if p.isr.iter().any(|r| !p.replicas.contains(r)) {
        return Err(invalid("every ISR member must be a replica"));
    }
    let moving: Vec<BrokerId> = p
        .adding_replicas
        .iter()
        .chain(&p.removing_replicas)
        .copied()
        .collect();
    if !all_distinct(&moving) {
        return Err(invalid(
            "adding and removing replicas must be distinct and not overlap",
        ));
    }
    if moving.iter().any(|r| !p.replicas.contains(r)) {
        return Err(invalid(
            "every adding or removing replica must be a replica",
        ));
    }
    if p.target_replicas().is_empty() {
        return Err(invalid("a reassignment must keep at least one replica"));
    }
    if p.leader != NO_LEADER && !p.isr.contains(&p.leader) {
        return Err(ImageError::LeaderNotInIsr {
            topic_id,
            partition,
            leader: p.leader,
            isr: p.isr.clone(),
        });
    }
    Ok(())
}

fn all_distinct(ids: &[BrokerId]) -> bool {
    let set: BTreeSet<_> = ids.iter().collect();
    set.len() == ids.len()
}

fn validate_topic_name(name: &str) -> Result<(), ImageError> {
    let bad = |why: &str| {
        Err(ImageError::InvalidTopicName(
            name.to_owned(),
            why.to_owned(),
        ))
    };
    if name.is_empty() {
        return bad("must not be empty");
    }
    if name == "." || name == ".." {
        return bad("must not be '.' or '..'");
    }
    if name.len() > 249 {
        return bad("must be at most 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records drawn from small domains so that a good share of them apply.
    pub(crate) fn arb_record() -> impl Strategy<Value = MetadataRecord> {
        let node = 0..4i32;
        let topic_id = (0..3u128).prop_map(Uuid::from_u128);
        let name = prop::sample::select(vec!["a", "b", "c"]).prop_map(str::to_owned);
        let ids = prop::collection::vec(0..4i32, 0..4);
        prop_oneof![
            (node.clone(), 0..4i64, prop::option::of("r[12]")).prop_map(
                |(node_id, epoch, rack)| {
                    MetadataRecord::RegisterBroker {
                        node_id,
                        epoch,
                        incarnation_id: Uuid::from_u128(epoch as u128),
                        endpoints: vec![Endpoint {
                            listener: "PLAINTEXT".into(),
                            host: format!("b{node_id}"),
                            port: 9092,
                        }],
                        rack,
                    }
                }
            ),
            (node.clone(), 0..4i64)
                .prop_map(|(node_id, epoch)| MetadataRecord::FenceBroker { node_id, epoch }),
            (node.clone(), 0..4i64)
                .prop_map(|(node_id, epoch)| MetadataRecord::UnfenceBroker { node_id, epoch }),
            (node.clone(), 0..4i64)
                .prop_map(|(node_id, epoch)| MetadataRecord::UnregisterBroker { node_id, epoch }),
            (name.clone(), topic_id.clone()).prop_map(|(name, topic_id)| {
                MetadataRecord::CreateTopic {
                    name,
                    topic_id,
                    configs: BTreeMap::new(),
                }
            }),
            (
                topic_id.clone(),
                0..3i32,
                ids.clone(),
                ids.clone(),
                -1..4i32,
                0..3i32
            )
                .prop_map(
                    |(topic_id, partition, replicas, isr, leader, leader_epoch)| {
                        MetadataRecord::Partition(PartitionRecord {
                            topic_id,
                            partition,
                            replicas,
                            isr,
                            leader,
                            leader_epoch,
                            partition_epoch: 0,
                        })
                    }
                ),
            (
                topic_id.clone(),
                0..3i32,
                prop::option::of(ids.clone()),
                prop::option::of(ids.clone()),
                prop::option::of(-1..4i32),
                0..4i32,
                0..4i32,
                prop::option::of(ids.clone()),
                prop::option::of(ids),
            )
                .prop_map(
                    |(
                        topic_id,
                        partition,
                        replicas,
                        isr,
                        leader,
                        leader_epoch,
                        partition_epoch,
                        adding_replicas,
                        removing_replicas,
                    )| {
                        MetadataRecord::PartitionChange(PartitionChange {
                            topic_id,
                            partition,
                            replicas,
                            isr,
                            leader,
                            leader_epoch,
                            partition_epoch,
                            adding_replicas,
                            removing_replicas,
                        })
                    }
                ),
            topic_id.prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
            (name, "[xy]", prop::option::of("[01]")).prop_map(|(topic, name, value)| {
                MetadataRecord::Config {
                    resource: ConfigResource::Topic(topic),
                    name,
                    value,
                }
            }),
            (0..5i64).prop_map(|next_producer_id| MetadataRecord::ProducerIds { next_producer_id }),
            ("[ab]?", any::<bool>(), 4096..4100i32).prop_map(|(user, sha512, iterations)| {
                MetadataRecord::ScramCredential(crate::records::ScramCredentialRecord {
                    user,
                    mechanism: scram_mechanism(sha512),
                    credential: ScramCredential {
                        salt: vec![1, 2],
                        stored_key: vec![3],
                        server_key: vec![4],
                        iterations,
                    },
                })
            }),
            ("[ab]", any::<bool>()).prop_map(|(user, sha512)| {
                MetadataRecord::RemoveScramCredential {
                    user,
                    mechanism: scram_mechanism(sha512),
                }
            }),
            ("[ab]?", any::<bool>(), any::<bool>()).prop_map(|(name, add, deny)| {
                let acl = weir_client::acl::AclBinding {
                    pattern: weir_client::acl::ResourcePattern::literal(
                        weir_client::acl::ResourceType::Topic,
                        name,
                    ),
                    principal: "User:a".into(),
                    host: "*".into(),
                    operation: weir_client::acl::Operation::Read,
                    permission: if deny {
                        weir_client::acl::Permission::Deny
                    } else {
                        weir_client::acl::Permission::Allow
                    },
                };
                if add {
                    MetadataRecord::Acl(acl)
                } else {
                    MetadataRecord::RemoveAcl(acl)
                }
            }),
            ("[ab]?", any::<bool>(), 0u8..3).prop_map(|(user, produce, value)| {
                use weir_client::quota::{EntityName, QuotaEntity, QuotaKey, QuotaValue};
                MetadataRecord::ClientQuota {
                    entity: QuotaEntity {
                        // An empty name is refused: the image must say so.
                        user: Some(EntityName::Named(user)),
                        ..Default::default()
                    },
                    key: if produce {
                        QuotaKey::ProducerByteRate
                    } else {
                        QuotaKey::RequestPercentage
                    },
                    value: (value > 0).then(|| QuotaValue(f64::from(value) * 1024.0)),
                }
            }),
        ]
    }

    fn scram_mechanism(sha512: bool) -> ScramMechanism {
        if sha512 {
            ScramMechanism::Sha512
        } else {
            ScramMechanism::Sha256
        }
    }

    /// The invariants every reachable image holds.
    pub(crate) fn assert_invariants(image: &MetadataImage) {
        for topic in image.topics() {
            assert_eq!(image.topic_ids.get(&topic.name), Some(&topic.id));
            for (i, p) in topic.partitions.iter().enumerate() {
                assert!(
                    check_partition(p, topic.id, i as i32).is_ok(),
                    "partition {i} of {}: {p:?}",
                    topic.name
                );
            }
        }
        assert_eq!(image.topic_ids.len(), image.topics.len());
        assert!(
            image
                .scram_credentials
                .iter()
                .all(|(user, c)| !user.is_empty() && !c.is_empty())
        );
        assert!(image.acls.iter().all(|a| a.validate().is_ok()));
        assert!(
            image
                .quotas
                .iter()
                .all(|(e, q)| e.validate().is_ok() && !q.is_empty())
        );
    }

    proptest! {
        #[test]
        fn replay_is_deterministic_and_refusals_change_nothing(
            records in prop::collection::vec(arb_record(), 0..80)
        ) {
            let mut a = MetadataImage::default();
            let mut b = MetadataImage::default();
            for r in &records {
                let before = a.clone();
                let ra = a.apply(r);
                let rb = b.apply(r);
                prop_assert_eq!(&ra, &rb);
                if ra.is_err() {
                    prop_assert_eq!(&a, &before);
                }
                prop_assert_eq!(&a, &b);
                assert_invariants(&a);
            }
            let json = serde_json::to_vec(&a).unwrap();
            let back: MetadataImage = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(back, a);
        }

        #[test]
        fn batches_apply_all_or_nothing(
            batches in prop::collection::vec(prop::collection::vec(arb_record(), 0..4), 0..30)
        ) {
            let mut image = MetadataImage::default();
            for batch in &batches {
                let before = image.clone();
                let mut one_by_one = image.clone();
                let expected: Result<(), ImageError> =
                    batch.iter().try_for_each(|r| one_by_one.apply(r));
                let got = image.apply_batch(batch);
                prop_assert_eq!(&got, &expected);
                match got {
                    Ok(()) => prop_assert_eq!(&image, &one_by_one),
                    Err(_) => prop_assert_eq!(&image, &before),
                }
            }
        }

        #[test]
        fn records_round_trip(record in arb_record()) {
            let json = serde_json::to_vec(&record).unwrap();
            let back: MetadataRecord = serde_json::from_slice(&json).unwrap();
            prop_assert_eq!(back, record);
        }
    }

    fn topic(image: &mut MetadataImage, name: &str, id: u128) -> Uuid {
        let topic_id = Uuid::from_u128(id);
        image
            .apply(&MetadataRecord::CreateTopic {
                name: name.into(),
                topic_id,
                configs: BTreeMap::new(),
            })
            .unwrap();
        topic_id
    }

    fn partition(topic_id: Uuid, partition: i32, isr: Vec<i32>, leader: i32) -> MetadataRecord {
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition,
            replicas: vec![1, 2, 3],
            isr,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        })
    }

    #[test]
    fn refuses_what_cannot_happen() {
        let mut image = MetadataImage::default();
        let unknown = Uuid::from_u128(9);
        assert_eq!(
            image.apply(&partition(unknown, 0, vec![1], 1)),
            Err(ImageError::UnknownTopic(unknown))
        );
        let t = topic(&mut image, "t", 1);
        assert!(matches!(
            image.apply(&partition(t, 0, vec![1, 2], 3)),
            Err(ImageError::LeaderNotInIsr { leader: 3, .. })
        ));
        assert!(matches!(
            image.apply(&partition(t, 1, vec![1], 1)),
            Err(ImageError::PartitionOutOfOrder { expected: 0, .. })
        ));
        image.apply(&partition(t, 0, vec![1, 2], 1)).unwrap();
        let change = |leader, leader_epoch, partition_epoch| {
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: t,
                partition: 0,
                replicas: None,
                isr: None,
                leader: Some(leader),
                leader_epoch,
                partition_epoch,
                adding_replicas: None,
                removing_replicas: None,
            })
        };
        // A new leader in the same epoch would let two leaders share an epoch.
        assert!(matches!(
            image.apply(&change(2, 0, 1)),
            Err(ImageError::EpochNotAdvancing {
                which: EpochKind::Leader,
                ..
            })
        ));
        // A change computed against an older partition state.
        assert!(matches!(
            image.apply(&change(2, 1, 0)),
            Err(ImageError::EpochNotAdvancing {
                which: EpochKind::Partition,
                ..
            })
        ));
        image.apply(&change(2, 1, 1)).unwrap();
        assert!(matches!(
            image.apply(&change(1, 0, 2)),
            Err(ImageError::EpochNotAdvancing {
                which: EpochKind::Leader,
                ..
            })
        ));
        assert_eq!(image.partition(&t, 0).unwrap().leader, 2);
        assert!(matches!(
            image.apply(&MetadataRecord::CreateTopic {
                name: "bad/name".into(),
                topic_id: Uuid::from_u128(5),
                configs: BTreeMap::new()
            }),
            Err(ImageError::InvalidTopicName(..))
        ));
    }

    #[test]
    fn impossible_reassignment_states_are_refused() {
        let mut image = MetadataImage::default();
        let t = topic(&mut image, "t", 1);
        image.apply(&partition(t, 0, vec![1, 2, 3], 1)).unwrap();
        let moving = |replicas: Vec<i32>, adding: Vec<i32>, removing: Vec<i32>| {
            MetadataRecord::PartitionChange(PartitionChange {
                topic_id: t,
                partition: 0,
                replicas: Some(replicas),
                isr: None,
                leader: None,
                leader_epoch: 0,
                partition_epoch: 1,
                adding_replicas: Some(adding),
                removing_replicas: Some(removing),
            })
        };
        let refused = |image: &mut MetadataImage, record, rule: &str| {
            let before = image.clone();
            match image.apply(&record) {
                Err(ImageError::InvalidPartition { rule: got, .. }) => {
                    assert!(got.contains(rule), "{got}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(*image, before);
        };
        refused(
            &mut image,
            moving(vec![1, 2, 3], vec![4], vec![]),
            "must be a replica",
        );
        refused(
            &mut image,
            moving(vec![4, 1, 2, 3], vec![4], vec![4]),
            "not overlap",
        );
        refused(
            &mut image,
            moving(vec![1, 2, 3], vec![], vec![1, 2, 3]),
            "at least one",
        );
        image
            .apply(&moving(vec![4, 2, 3, 1], vec![4], vec![1]))
            .unwrap();
        let p = image.partition(&t, 0).unwrap();
        assert_eq!(
            (p.target_replicas(), p.original_replicas()),
            (vec![4, 2, 3], vec![2, 3, 1])
        );
        // An old snapshot without the reassignment fields still reads.
        let json = r#"{"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}"#;
        let old: PartitionRegistration = serde_json::from_str(json).unwrap();
        assert!(!old.is_reassigning());
    }

    #[test]
    fn brokers_register_fenced_and_stale_epochs_are_refused() {
        let mut image = MetadataImage::default();
        let register = |epoch| MetadataRecord::RegisterBroker {
            node_id: 1,
            epoch,
            incarnation_id: Uuid::from_u128(epoch as u128),
            endpoints: vec![],
            rack: Some("r1".into()),
        };
        image.apply(&register(5)).unwrap();
        assert!(image.broker(1).unwrap().fenced);
        assert!(image.live_brokers().is_empty());
        image
            .apply(&MetadataRecord::UnfenceBroker {
                node_id: 1,
                epoch: 5,
            })
            .unwrap();
        assert_eq!(image.live_brokers(), BTreeSet::from([1]));
        assert!(matches!(
            image.apply(&register(5)),
            Err(ImageError::StaleBrokerEpoch { .. })
        ));
        assert!(matches!(
            image.apply(&MetadataRecord::FenceBroker {
                node_id: 1,
                epoch: 4
            }),
            Err(ImageError::StaleBrokerEpoch { .. })
        ));
        image.apply(&register(6)).unwrap();
        assert!(image.broker(1).unwrap().fenced);
    }

    #[test]
    fn removed_topic_name_can_be_reused_without_old_configs() {
        let mut image = MetadataImage::default();
        let t = Uuid::from_u128(1);
        image
            .apply(&MetadataRecord::CreateTopic {
                name: "t".into(),
                topic_id: t,
                configs: BTreeMap::from([("retention.ms".into(), "1".into())]),
            })
            .unwrap();
        image
            .apply(&MetadataRecord::RemoveTopic { topic_id: t })
            .unwrap();
        topic(&mut image, "t", 2);
        assert_eq!(image.topic_configs("t"), None);
        assert_eq!(image.topic_by_name("t").unwrap().id, Uuid::from_u128(2));
    }
}
