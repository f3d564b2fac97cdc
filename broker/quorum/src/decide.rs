//! The controller service's decisions per request, as pure functions of the
//! image: validation, and the records to propose. The service (the async
//! shell in [`crate::service`]) proposes them and answers.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::controller::{
    PlacementBroker, PlacementError, begin_reassignment, change_to, complete_reassignment,
    elect_if_leaderless, place_replicas, preferred_leader_elections, unclean_allowed,
};
use crate::image::{BrokerRegistration, MetadataImage, PartitionRegistration};
use crate::records::{BrokerId, ConfigResource, MetadataRecord, PartitionChange, PartitionRecord};
use crate::rpc::{
    ControllerError, NewTopic, OngoingReassignment, PartitionReassignment, TopicInfo,
};

/// Kafka's defaults when a CreateTopics request leaves them at -1
/// (`num.partitions`, `default.replication.factor`).
const DEFAULT_PARTITIONS: i32 = 1;
const DEFAULT_REPLICATION_FACTOR: i16 = 1;

/// Kafka refuses producer-id blocks this large or larger.
const MAX_PRODUCER_ID_BLOCK: i64 = 1 << 20;

/// The broker `node_id`, if registered with `epoch`.
pub fn registered_broker(
    image: &MetadataImage,
    node_id: BrokerId,
    epoch: i64,
) -> Result<&BrokerRegistration, ControllerError> {
    let broker = image
        .broker(node_id)
        .ok_or(ControllerError::UnknownBroker(node_id))?;
    if broker.epoch != epoch {
        return Err(ControllerError::StaleBrokerEpoch {
            node_id,
            got: epoch,
            current: broker.epoch,
        });
    }
    Ok(broker)
}

/// Topic names that would share a metric name: Kafka replaces '.' with '_'
/// in metric names, so "a.b" and "a_b" may not coexist.
fn metric_name(topic: &str) -> String {
    topic.replace('.', "_")
}

fn check_new_topic_name(image: &MetadataImage, name: &str) -> Result<(), ControllerError> {
    if image.topic_by_name(name).is_some() {
        return Err(ControllerError::TopicExists(name.to_owned()));
    }
    let folded = metric_name(name);
    if let Some(other) = image.topics().find(|t| metric_name(&t.name) == folded) {
        return Err(ControllerError::InvalidTopic(format!(
            "topic '{name}' collides with existing topic '{}' ('.' and '_' are the same in metric names)",
            other.name
        )));
    }
    Ok(())
}

/// How many replicas each broker holds now.
fn replica_load(image: &MetadataImage) -> BTreeMap<BrokerId, usize> {
    let mut load = BTreeMap::new();
    for p in image.topics().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            *load.entry(*r).or_default() += 1;
        }
    }
    load
}

/// Places `partitions` new partitions of `rf` replicas on the unfenced
/// brokers, rack-aware and balancing against the current load.
fn place(
    image: &MetadataImage,
    partitions: i32,
    rf: i16,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    let rf = u16::try_from(rf)
        .ok()
        .filter(|rf| *rf >= 1)
        .ok_or_else(|| {
            ControllerError::InvalidReplicationFactor(format!("{rf} must be at least 1"))
        })?;
    let count = u32::try_from(partitions).map_err(|_| {
        ControllerError::InvalidPartitions(format!("{partitions} must be at least 1"))
    })?;
    let brokers: Vec<PlacementBroker> = image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .map(|b| PlacementBroker {
            id: b.node_id,
            rack: b.rack.clone(),
        })
        .collect();
    place_replicas(&brokers, count, rf, &replica_load(image)).map_err(|e| match e {
        PlacementError::ZeroReplicationFactor | PlacementError::NotEnoughBrokers { .. } => {
            ControllerError::InvalidReplicationFactor(e.to_string())
        }
        PlacementError::DuplicateBroker(_) => ControllerError::Internal(e.to_string()),
    })
}

/// Checks caller-chosen replica sets: each non-empty, distinct, of registered
/// brokers, all of one size (`rf` if given).
fn check_assignments(
    image: &MetadataImage,
    assignments: &[Vec<BrokerId>],
    rf: Option<usize>,
) -> Result<(), ControllerError> {
    let bad = |msg: String| Err(ControllerError::InvalidReplicaAssignment(msg));
    let Some(first) = assignments.first() else {
        return bad("must list at least one partition".into());
    };
    let rf = rf.unwrap_or(first.len());
    for (p, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return bad(format!("partition {p} has no replicas"));
        }
        if replicas.len() != rf {
            return bad(format!(
                "partition {p} has {} replicas; every partition must have {rf}",
                replicas.len()
            ));
        }
        if replicas.iter().collect::<BTreeSet<_>>().len() != replicas.len() {
            return bad(format!("partition {p} lists a broker twice: {replicas:?}"));
        }
        if let Some(unknown) = replicas.iter().find(|r| image.broker(**r).is_none()) {
            return bad(format!("partition {p}: broker {unknown} is not registered"));
        }
    }
    Ok(())
}

/// `Partition` records for new partitions `first..` with these replica sets:
/// the ISR is the unfenced replicas, the leader the first of them (so the
/// preferred leader when placed by us, as every placed replica is unfenced).
fn partition_records(
    image: &MetadataImage,
    topic_id: Uuid,
    first: i32,
    replica_sets: Vec<Vec<BrokerId>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let live = image.live_brokers();
    (first..)
        .zip(replica_sets)
        .map(|(partition, replicas)| {
            let isr: Vec<BrokerId> = replicas
                .iter()
                .copied()
                .filter(|r| live.contains(r))
                .collect();
            let Some(&leader) = isr.first() else {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "every broker of partition {partition} ({replicas:?}) is fenced"
                )));
            };
            Ok(MetadataRecord::Partition(PartitionRecord {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch: 0,
                partition_epoch: 0,
            }))
        })
        .collect()
}

/// The records creating `topic` with id `topic_id`.
pub fn create_topic(
    image: &MetadataImage,
    topic: &NewTopic,
    topic_id: Uuid,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    check_new_topic_name(image, &topic.name)?;
    let replica_sets = match &topic.assignments {
        Some(assignments) => {
            let count = assignments.len();
            if topic.partitions != -1 && usize::try_from(topic.partitions) != Ok(count) {
                return Err(ControllerError::InvalidPartitions(format!(
                    "{} partitions requested but {count} assigned; give -1 with assignments",
                    topic.partitions
                )));
            }
            let rf = match topic.replication_factor {
                -1 => None,
                rf => Some(usize::try_from(rf).map_err(|_| {
                    ControllerError::InvalidReplicationFactor(format!("{rf} must be at least 1"))
                })?),
            };
            check_assignments(image, assignments, rf)?;
            assignments.clone()
        }
        None => {
            let partitions = match topic.partitions {
                -1 => DEFAULT_PARTITIONS,
                n => n,
            };
            let rf = match topic.replication_factor {
                -1 => DEFAULT_REPLICATION_FACTOR,
                n => n,
            };
            if partitions < 1 {
                return Err(ControllerError::InvalidPartitions(format!(
                    "{partitions} must be at least 1"
                )));
            }
            place(image, partitions, rf)?
        }
    };
    let mut records = vec![MetadataRecord::CreateTopic {
        name: topic.name.clone(),
        topic_id,
        configs: topic.configs.clone(),
    }];
    records.extend(partition_records(image, topic_id, 0, replica_sets)?);
    Ok(records)
}

/// The records growing `topic` to `count` partitions, with the replication
/// factor of its existing partitions.
pub fn create_partitions(
    image: &MetadataImage,
    topic: &str,
    count: i32,
    assignments: Option<&[Vec<BrokerId>]>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let t = image
        .topic_by_name(topic)
        .ok_or_else(|| ControllerError::UnknownTopic(topic.to_owned()))?;
    let current = i32::try_from(t.partitions.len()).unwrap_or(i32::MAX);
    if count <= current {
        return Err(ControllerError::InvalidPartitions(format!(
            "topic '{topic}' has {current} partitions; the count can only grow (asked {count})"
        )));
    }
    // A partition being reassigned has more replicas only for the move.
    let rf = t
        .partitions
        .first()
        .map_or(1, |p| p.target_replicas().len());
    let replica_sets = match assignments {
        Some(a) => {
            let adding = usize::try_from(count - current).unwrap_or(0);
            if a.len() != adding {
                return Err(ControllerError::InvalidReplicaAssignment(format!(
                    "{} assignments given for the {adding} new partitions",
                    a.len()
                )));
            }
            check_assignments(image, a, Some(rf))?;
            a.to_vec()
        }
        None => place(
            image,
            count - current,
            i16::try_from(rf).unwrap_or(i16::MAX),
        )?,
    };
    partition_records(image, t.id, current, replica_sets)
}

pub fn delete_topic(image: &MetadataImage, name: &str) -> Result<MetadataRecord, ControllerError> {
    image
        .topic_by_name(name)
        .map(|t| MetadataRecord::RemoveTopic { topic_id: t.id })
        .ok_or_else(|| ControllerError::UnknownTopic(name.to_owned()))
}

pub fn alter_configs(
    image: &MetadataImage,
    resource: &ConfigResource,
    changes: &BTreeMap<String, Option<String>>,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    match resource {
        ConfigResource::Topic(name) if image.topic_by_name(name).is_none() => {
            return Err(ControllerError::UnknownTopic(name.clone()));
        }
        ConfigResource::Broker(id) if *id < 0 => {
            return Err(ControllerError::InvalidRequest(format!(
                "broker id {id} is invalid: must be >= 0"
            )));
        }
        _ => {}
    }
    Ok(changes
        .iter()
        .map(|(name, value)| MetadataRecord::Config {
            resource: resource.clone(),
            name: name.clone(),
            value: value.clone(),
        })
        .collect())
}

/// The first id of a new block of `count` producer ids and its record.
pub fn allocate_producer_ids(
    image: &MetadataImage,
    count: i64,
) -> Result<(i64, MetadataRecord), ControllerError> {
    if !(1..=MAX_PRODUCER_ID_BLOCK).contains(&count) {
        return Err(ControllerError::InvalidRequest(format!(
            "producer id block size {count} must be between 1 and {MAX_PRODUCER_ID_BLOCK}"
        )));
    }
    let first = image.next_producer_id();
    let next = first.checked_add(count).ok_or_else(|| {
        ControllerError::InvalidRequest("the producer id space is exhausted".into())
    })?;
    Ok((
        first,
        MetadataRecord::ProducerIds {
            next_producer_id: next,
        },
    ))
}

/// A partition leader's ISR change (Kafka's AlterPartition).
#[derive(Debug, Clone)]
pub struct IsrChange {
    pub node_id: BrokerId,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
}

/// The record for an ISR change, or `None` when the ISR is already so.
/// The sender must lead the partition at the epochs it states; a replica
/// joining the ISR must be unfenced; the leader stays in the ISR.
///
/// This is where a reassignment completes: the ISR expansion that brings
/// its last adding replica in sync also finishes the move, in the same
/// record (as KRaft's partition change builder does), so no committed state
/// has every new replica in sync yet the move still pending.
pub fn alter_partition(
    image: &MetadataImage,
    change: &IsrChange,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let current = image.partition(&change.topic_id, change.partition).ok_or(
        ControllerError::UnknownPartition {
            topic_id: change.topic_id,
            partition: change.partition,
        },
    )?;
    if current.leader != change.node_id {
        return Err(ControllerError::NotLeader {
            sender: change.node_id,
            leader: current.leader,
        });
    }
    if change.leader_epoch != current.leader_epoch {
        return Err(ControllerError::FencedLeaderEpoch {
            got: change.leader_epoch,
            current: current.leader_epoch,
        });
    }
    if change.partition_epoch != current.partition_epoch {
        return Err(ControllerError::InvalidUpdateVersion {
            got: change.partition_epoch,
            current: current.partition_epoch,
        });
    }
    let isr = &change.new_isr;
    if !isr.contains(&change.node_id) {
        return Err(ControllerError::InvalidRequest(format!(
            "the leader {} must be in the new ISR {isr:?}",
            change.node_id
        )));
    }
    if isr.iter().collect::<BTreeSet<_>>().len() != isr.len() {
        return Err(ControllerError::InvalidRequest(format!(
            "the new ISR {isr:?} lists a broker twice"
        )));
    }
    let live = image.live_brokers();
    for r in isr {
        if !current.replicas.contains(r) {
            return Err(ControllerError::IneligibleReplica(format!(
                "broker {r} is not a replica of the partition ({:?})",
                current.replicas
            )));
        }
        if !current.isr.contains(r) && !live.contains(r) {
            return Err(ControllerError::IneligibleReplica(format!(
                "broker {r} is fenced and cannot join the ISR"
            )));
        }
    }
    if *isr == current.isr {
        return Ok(None);
    }
    let next = PartitionRegistration {
        isr: isr.clone(),
        ..current.clone()
    };
    let next = complete_reassignment(&next, &live).unwrap_or(next);
    Ok(change_to(change.topic_id, change.partition, current, &next))
}

/// Checks a reassignment target: non-empty, distinct, registered brokers,
/// and, unless allowed, as many replicas as the partition has now.
fn check_target(
    image: &MetadataImage,
    request: &PartitionReassignment,
    current: &PartitionRegistration,
    target: &[BrokerId],
    allow_replication_factor_change: bool,
) -> Result<(), ControllerError> {
    let name = format!("{}-{}", request.topic, request.partition);
    let bad = |msg: String| Err(ControllerError::InvalidReplicaAssignment(msg));
    if target.is_empty() {
        return bad(format!("the target replicas of {name} are empty"));
    }
    if target.iter().collect::<BTreeSet<_>>().len() != target.len() {
        return bad(format!(
            "the target replicas of {name} list a broker twice: {target:?}"
        ));
    }
    if let Some(unknown) = target.iter().find(|r| image.broker(**r).is_none()) {
        return bad(format!("{name}: broker {unknown} is not registered"));
    }
    let original = current.original_replicas();
    if !allow_replication_factor_change && target.len() != original.len() {
        return Err(ControllerError::InvalidReplicationFactor(format!(
            "the target {target:?} of {name} has {} replicas but the partition has {}, and the request does not allow changing the replication factor",
            target.len(),
            original.len()
        )));
    }
    Ok(())
}

/// The record for one AlterPartitionReassignments entry, or `None` when it
/// changes nothing. A target starts (or replaces) a reassignment, which
/// completes at once when every adding replica is already in sync (a
/// reorder, or a smaller replica set). `None` cancels one in progress: back
/// to the original replicas, refused when none of them could lead.
pub fn alter_reassignment(
    image: &MetadataImage,
    request: &PartitionReassignment,
    allow_replication_factor_change: bool,
) -> Result<Option<MetadataRecord>, ControllerError> {
    let topic = image
        .topic_by_name(&request.topic)
        .ok_or_else(|| ControllerError::UnknownTopic(request.topic.clone()))?;
    let current =
        image
            .partition(&topic.id, request.partition)
            .ok_or(ControllerError::UnknownPartition {
                topic_id: topic.id,
                partition: request.partition,
            })?;
    let live = image.live_brokers();
    let next = match &request.target {
        None => {
            if !current.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress {
                    topic: request.topic.clone(),
                    partition: request.partition,
                });
            }
            let original = current.original_replicas();
            let reverted = begin_reassignment(current, &original);
            complete_reassignment(&reverted, &live).ok_or_else(|| {
                ControllerError::InvalidReplicaAssignment(format!(
                    "cannot cancel the reassignment of {}-{}: none of its original replicas {original:?} is live and in sync",
                    request.topic, request.partition
                ))
            })?
        }
        Some(target) => {
            check_target(
                image,
                request,
                current,
                target,
                allow_replication_factor_change,
            )?;
            let mut begun = begin_reassignment(current, target);
            // A leaderless partition may have gained a replica that can be
            // elected (unclean only: a new replica is not in sync).
            if let Some((leader, isr)) =
                elect_if_leaderless(&begun, &live, unclean_allowed(image, &topic.name))
            {
                begun.leader = leader;
                begun.isr = isr;
            }
            complete_reassignment(&begun, &live).unwrap_or(begun)
        }
    };
    Ok(change_to(topic.id, request.partition, current, &next))
}

/// Decides a whole AlterPartitionReassignments request: each entry against
/// the image as the entries before it leave it (so a partition named twice
/// is decided twice, in order), one outcome per entry, and the records of
/// those that succeeded, to propose as one batch.
pub fn alter_reassignments(
    image: &MetadataImage,
    requests: &[PartitionReassignment],
    allow_replication_factor_change: bool,
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut preview = image.clone();
    let mut records = Vec::new();
    let results = requests
        .iter()
        .map(|request| {
            let record = alter_reassignment(&preview, request, allow_replication_factor_change)?;
            if let Some(record) = record {
                preview.apply(&record).map_err(ControllerError::Rejected)?;
                records.push(record);
            }
            Ok(())
        })
        .collect();
    (records, results)
}

/// The reassignments in progress, by topic name and partition; only among
/// `wanted` if given (partitions that do not exist are not in progress).
pub fn list_reassignments(
    image: &MetadataImage,
    wanted: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    let mut ongoing: Vec<OngoingReassignment> = image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .zip(0..)
                .filter(|(p, _)| p.is_reassigning())
                .map(|(p, partition)| OngoingReassignment {
                    topic: t.name.clone(),
                    partition,
                    replicas: p.replicas.clone(),
                    adding_replicas: p.adding_replicas.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                })
        })
        .filter(|o| {
            wanted.is_none_or(|w| w.iter().any(|(t, p)| *t == o.topic && *p == o.partition))
        })
        .collect();
    ongoing.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    ongoing
}

/// Per partition, its new leader or why it has none.
pub type ElectionOutcomes = Vec<((Uuid, i32), Result<BrokerId, ControllerError>)>;

/// Preferred-leader elections for `wanted` partitions (all if `None`): the
/// records to propose and the outcome per partition.
pub fn elect_preferred(
    image: &MetadataImage,
    wanted: Option<&[(Uuid, i32)]>,
) -> (Vec<MetadataRecord>, ElectionOutcomes) {
    let elections: BTreeMap<(Uuid, i32), MetadataRecord> = preferred_leader_elections(image)
        .into_iter()
        .filter_map(|r| match &r {
            MetadataRecord::PartitionChange(c) => Some(((c.topic_id, c.partition), r)),
            _ => None,
        })
        .collect();
    let Some(wanted) = wanted else {
        let results = elections
            .iter()
            .map(|(key, r)| (*key, Ok(new_leader(r))))
            .collect();
        return (elections.into_values().collect(), results);
    };
    let mut records = Vec::new();
    let mut results = Vec::new();
    for &(topic_id, partition) in wanted {
        let key = (topic_id, partition);
        let result = match (image.partition(&topic_id, partition), elections.get(&key)) {
            (None, _) => Err(ControllerError::UnknownPartition {
                topic_id,
                partition,
            }),
            (Some(_), Some(record)) => {
                if !records.contains(record) {
                    records.push(record.clone());
                }
                Ok(new_leader(record))
            }
            (Some(p), None) if p.leader == p.preferred_leader() => {
                Err(ControllerError::ElectionNotNeeded)
            }
            (Some(_), None) => Err(ControllerError::PreferredLeaderNotAvailable),
        };
        results.push((key, result));
    }
    (records, results)
}

fn new_leader(record: &MetadataRecord) -> BrokerId {
    match record {
        MetadataRecord::PartitionChange(PartitionChange {
            leader: Some(l), ..
        }) => *l,
        _ => crate::records::NO_LEADER,
    }
}

/// A topic's current state as an answer.
pub fn topic_info(image: &MetadataImage, topic_id: &Uuid) -> Option<TopicInfo> {
    image.topic(topic_id).map(|t| TopicInfo {
        name: t.name.clone(),
        topic_id: t.id,
        partitions: t.partitions.clone(),
    })
}

/// Unregistering a broker that left for good (after a scale-down): only one
/// that is stopped (fenced) and holds no replica, so no partition is left
/// pointing at a broker that no longer exists. Kafka allows more; refusing
/// names what to do first.
pub fn unregister_broker(
    image: &MetadataImage,
    node: BrokerId,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let broker = image
        .broker(node)
        .ok_or(ControllerError::UnknownBroker(node))?;
    if !broker.fenced {
        return Err(ControllerError::InvalidRequest(format!(
            "broker {node} is running (registered and unfenced): stop it before unregistering it"
        )));
    }
    let held: Vec<String> = image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.replicas.contains(&node))
                .map(move |(i, _)| format!("{}-{i}", t.name))
        })
        .collect();
    if let Some(first) = held.first() {
        return Err(ControllerError::InvalidRequest(format!(
            "broker {node} still holds replicas of {} partition(s), e.g. {first}: drain it first (weir cluster drain --node {node})",
            held.len()
        )));
    }
    Ok(vec![MetadataRecord::UnregisterBroker {
        node_id: node,
        epoch: broker.epoch,
    }])
}

/// The partitions `node` leads.
pub fn led_by(image: &MetadataImage, node: BrokerId) -> Vec<(Uuid, usize, &PartitionRegistration)> {
    image
        .topics()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(move |(_, p)| p.leader == node)
                .map(move |(i, p)| (t.id, i, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::Endpoint;

    fn image(brokers: &[(BrokerId, Option<&str>, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, rack, fenced) in brokers {
            let mut batch = vec![MetadataRecord::RegisterBroker {
                node_id: id,
                epoch: 1,
                incarnation_id: Uuid::from_u128(id as u128),
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: rack.map(str::to_owned),
            }];
            if !fenced {
                batch.push(MetadataRecord::UnfenceBroker {
                    node_id: id,
                    epoch: 1,
                });
            }
            image.apply_batch(&batch).unwrap();
        }
        image
    }

    fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignments: None,
            configs: BTreeMap::new(),
        }
    }

    fn created(image: &mut MetadataImage, topic: &NewTopic, id: u128) -> Uuid {
        let id = Uuid::from_u128(id);
        let records = create_topic(image, topic, id).unwrap();
        image.apply_batch(&records).unwrap();
        id
    }

    #[test]
    fn only_a_stopped_broker_holding_nothing_is_unregistered() {
        let mut img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        created(&mut img, &new_topic("t", 1, 2), 1);
        let held_by_1 = img.topics().next().unwrap().partitions[0]
            .replicas
            .contains(&1);
        let err = |r: Result<Vec<MetadataRecord>, ControllerError>| r.unwrap_err().to_string();
        assert!(err(unregister_broker(&img, 1)).contains("running"));
        assert_eq!(
            unregister_broker(&img, 9),
            Err(ControllerError::UnknownBroker(9))
        );
        // Fenced, 1 still holds a replica, which must be drained first.
        img.apply(&MetadataRecord::FenceBroker {
            node_id: 1,
            epoch: 1,
        })
        .unwrap();
        assert!(held_by_1, "RF 2 over the two live brokers");
        assert!(err(unregister_broker(&img, 1)).contains("drain it first"));
        let records = unregister_broker(&img, 3).unwrap();
        img.apply_batch(&records).unwrap();
        assert!(img.broker(3).is_none());
    }

    #[test]
    fn topics_are_placed_on_live_brokers_and_bad_ones_named() {
        let mut img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        let t = created(&mut img, &new_topic("a.b", 4, 2), 1);
        for p in &img.topic(&t).unwrap().partitions {
            assert_eq!(p.replicas.len(), 2);
            assert!(!p.replicas.contains(&3), "placed on a fenced broker");
            assert_eq!((p.leader, &p.isr), (p.replicas[0], &p.replicas));
        }
        let err = |topic: &NewTopic| create_topic(&img, topic, Uuid::from_u128(9)).unwrap_err();
        assert_eq!(
            err(&new_topic("a.b", 1, 1)),
            ControllerError::TopicExists("a.b".into())
        );
        assert!(matches!(
            err(&new_topic("a_b", 1, 1)),
            ControllerError::InvalidTopic(m) if m.contains("'a.b'")
        ));
        assert!(matches!(
            err(&new_topic("c", 1, 3)),
            ControllerError::InvalidReplicationFactor(m) if m.contains("2 live brokers")
        ));
        assert!(matches!(
            err(&new_topic("c", 0, 1)),
            ControllerError::InvalidPartitions(_)
        ));
        let mut assigned = new_topic("c", -1, -1);
        assigned.assignments = Some(vec![vec![1, 2], vec![2, 2]]);
        assert!(
            matches!(err(&assigned), ControllerError::InvalidReplicaAssignment(m) if m.contains("partition 1"))
        );
        // A fenced broker may be assigned but does not lead or join the ISR.
        assigned.assignments = Some(vec![vec![3, 2]]);
        let c = created(&mut img, &assigned, 2);
        let p = &img.topic(&c).unwrap().partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (2, vec![2]));
    }

    #[test]
    fn partitions_only_grow_with_the_topics_replication_factor() {
        let mut img = image(&[(1, None, false), (2, None, false), (3, None, false)]);
        let t = created(&mut img, &new_topic("t", 2, 2), 1);
        assert!(matches!(
            create_partitions(&img, "t", 2, None),
            Err(ControllerError::InvalidPartitions(_))
        ));
        assert_eq!(
            create_partitions(&img, "nope", 3, None),
            Err(ControllerError::UnknownTopic("nope".into()))
        );
        let records = create_partitions(&img, "t", 4, None).unwrap();
        img.apply_batch(&records).unwrap();
        let partitions = &img.topic(&t).unwrap().partitions;
        assert_eq!(partitions.len(), 4);
        assert!(partitions.iter().all(|p| p.replicas.len() == 2));
    }

    #[test]
    fn isr_changes_need_the_current_leader_and_epochs() {
        let mut img = image(&[(1, None, false), (2, None, false), (3, None, true)]);
        let mut topic = new_topic("t", -1, -1);
        topic.assignments = Some(vec![vec![1, 2, 3]]);
        let t = created(&mut img, &topic, 1);
        let change = |node_id, leader_epoch, partition_epoch, new_isr: Vec<i32>| IsrChange {
            node_id,
            topic_id: t,
            partition: 0,
            leader_epoch,
            partition_epoch,
            new_isr,
        };
        let shrink = alter_partition(&img, &change(1, 0, 0, vec![1]))
            .unwrap()
            .unwrap();
        assert!(matches!(
            alter_partition(&img, &change(2, 0, 0, vec![2])),
            Err(ControllerError::NotLeader {
                sender: 2,
                leader: 1
            })
        ));
        assert!(matches!(
            alter_partition(&img, &change(1, 0, 0, vec![1, 2, 3])),
            Err(ControllerError::IneligibleReplica(_))
        ));
        assert!(matches!(
            alter_partition(&img, &change(1, 0, 0, vec![2])),
            Err(ControllerError::InvalidRequest(_))
        ));
        img.apply(&shrink).unwrap();
        // The same change again is against an old partition epoch.
        assert_eq!(
            alter_partition(&img, &change(1, 0, 0, vec![1, 2])).unwrap_err(),
            ControllerError::InvalidUpdateVersion { got: 0, current: 1 }
        );
        assert_eq!(
            alter_partition(&img, &change(1, 7, 1, vec![1, 2])).unwrap_err(),
            ControllerError::FencedLeaderEpoch { got: 7, current: 0 }
        );
        let grow = alter_partition(&img, &change(1, 0, 1, vec![1, 2]))
            .unwrap()
            .unwrap();
        img.apply(&grow).unwrap();
        let p = img.partition(&t, 0).unwrap();
        assert_eq!((p.isr.clone(), p.partition_epoch), (vec![1, 2], 2));
    }

    #[test]
    fn preferred_elections_say_why_not() {
        let mut img = image(&[(1, None, false), (2, None, false)]);
        let mut topic = new_topic("t", -1, -1);
        topic.assignments = Some(vec![vec![1, 2], vec![2, 1]]);
        let t = created(&mut img, &topic, 1);
        // Move partition 0's leadership off its preferred leader.
        img.apply(&MetadataRecord::PartitionChange(PartitionChange {
            topic_id: t,
            partition: 0,
            replicas: None,
            isr: None,
            leader: Some(2),
            leader_epoch: 1,
            partition_epoch: 1,
            adding_replicas: None,
            removing_replicas: None,
        }))
        .unwrap();
        let wanted = [(t, 0), (t, 1), (t, 5)];
        let (records, results) = elect_preferred(&img, Some(&wanted));
        assert_eq!(records.len(), 1);
        assert_eq!(results[0].1, Ok(1));
        assert_eq!(results[1].1, Err(ControllerError::ElectionNotNeeded));
        assert!(matches!(
            results[2].1,
            Err(ControllerError::UnknownPartition { partition: 5, .. })
        ));
        let (all, _) = elect_preferred(&img, None);
        assert_eq!(all, records);
    }

    fn reassign(topic: &str, partition: i32, target: Option<Vec<i32>>) -> PartitionReassignment {
        PartitionReassignment {
            topic: topic.into(),
            partition,
            target,
        }
    }

    #[test]
    fn a_reassignment_completes_when_the_new_replica_joins_the_isr() {
        let mut img = image(&[
            (1, None, false),
            (2, None, false),
            (3, None, false),
            (4, None, false),
        ]);
        let mut topic = new_topic("t", -1, -1);
        topic.assignments = Some(vec![vec![1, 2, 3]]);
        let t = created(&mut img, &topic, 1);
        let (records, results) =
            alter_reassignments(&img, &[reassign("t", 0, Some(vec![4, 2, 3]))], false);
        assert_eq!(results, vec![Ok(())]);
        img.apply_batch(&records).unwrap();
        let p = img.partition(&t, 0).unwrap().clone();
        assert_eq!(p.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            list_reassignments(&img, None),
            vec![OngoingReassignment {
                topic: "t".into(),
                partition: 0,
                replicas: vec![4, 2, 3, 1],
                adding_replicas: vec![4],
                removing_replicas: vec![1],
            }]
        );
        assert!(list_reassignments(&img, Some(&[("t".into(), 1)])).is_empty());
        // The leader (1, being removed) takes 4 into the ISR: the move
        // completes in the same record and leadership passes to 4.
        let change = IsrChange {
            node_id: 1,
            topic_id: t,
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: vec![1, 2, 3, 4],
        };
        let record = alter_partition(&img, &change).unwrap().unwrap();
        img.apply(&record).unwrap();
        let done = img.partition(&t, 0).unwrap();
        assert_eq!(
            (done.replicas.clone(), done.isr.clone(), done.leader),
            (vec![4, 2, 3], vec![2, 3, 4], 4)
        );
        assert_eq!(done.leader_epoch, p.leader_epoch + 1);
        assert!(list_reassignments(&img, None).is_empty());
    }

    #[test]
    fn reassignments_name_what_is_wrong_and_cancel_back_to_the_original() {
        let mut img = image(&[
            (1, None, false),
            (2, None, false),
            (3, None, false),
            (4, None, false),
        ]);
        let mut topic = new_topic("t", -1, -1);
        topic.assignments = Some(vec![vec![1, 2]]);
        let t = created(&mut img, &topic, 1);
        let one = |r: PartitionReassignment, allow| {
            let (_, mut results) = alter_reassignments(&img, &[r], allow);
            results.remove(0)
        };
        assert_eq!(
            one(reassign("nope", 0, Some(vec![1])), true),
            Err(ControllerError::UnknownTopic("nope".into()))
        );
        assert!(matches!(
            one(reassign("t", 3, Some(vec![1])), true),
            Err(ControllerError::UnknownPartition { partition: 3, .. })
        ));
        assert_eq!(
            one(reassign("t", 0, None), true),
            Err(ControllerError::NoReassignmentInProgress {
                topic: "t".into(),
                partition: 0
            })
        );
        for bad in [vec![], vec![3, 3], vec![3, 9]] {
            assert!(
                matches!(
                    one(reassign("t", 0, Some(bad.clone())), true),
                    Err(ControllerError::InvalidReplicaAssignment(_))
                ),
                "{bad:?}"
            );
        }
        assert!(matches!(
            one(reassign("t", 0, Some(vec![3, 4, 1])), false),
            Err(ControllerError::InvalidReplicationFactor(m)) if m.contains("has 3 replicas")
        ));
        // Shrinking to an in-sync replica needs no catching up.
        let (records, _) = alter_reassignments(&img, &[reassign("t", 0, Some(vec![2]))], true);
        let mut shrunk = img.clone();
        shrunk.apply_batch(&records).unwrap();
        let p = shrunk.partition(&t, 0).unwrap();
        assert_eq!((p.replicas.clone(), p.leader), (vec![2], 2));
        // A move, then its cancellation: back to [1, 2], 3 and 4 gone.
        let (records, results) = alter_reassignments(
            &img,
            &[reassign("t", 0, Some(vec![3, 4])), reassign("t", 0, None)],
            false,
        );
        assert_eq!(results, vec![Ok(()), Ok(())]);
        img.apply_batch(&records).unwrap();
        let p = img.partition(&t, 0).unwrap();
        assert_eq!((p.replicas.clone(), p.leader), (vec![1, 2], 1));
        assert!(!p.is_reassigning());
        // Naming the current replicas again changes nothing.
        let (records, results) =
            alter_reassignments(&img, &[reassign("t", 0, Some(vec![1, 2]))], false);
        assert_eq!((records, results), (vec![], vec![Ok(())]));
    }

    #[test]
    fn producer_id_blocks_advance_and_configs_need_their_topic() {
        let img = image(&[]);
        let (first, record) = allocate_producer_ids(&img, 1000).unwrap();
        assert_eq!(first, 0);
        assert_eq!(
            record,
            MetadataRecord::ProducerIds {
                next_producer_id: 1000
            }
        );
        assert!(allocate_producer_ids(&img, 0).is_err());
        assert_eq!(
            alter_configs(
                &img,
                &ConfigResource::Topic("t".into()),
                &BTreeMap::from([("retention.ms".into(), Some("1".into()))])
            ),
            Err(ControllerError::UnknownTopic("t".into()))
        );
    }
}
