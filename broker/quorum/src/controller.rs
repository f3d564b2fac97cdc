//! The active controller's decisions, as pure functions of the image: each
//! returns either a plan or the records to propose. Nothing here touches the
//! log; the caller proposes the records, and the image re-checks them on
//! replay, so a decision made against a stale image is refused, not applied.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::{MetadataImage, PartitionRegistration};
use crate::records::{BrokerId, MetadataRecord, NO_LEADER, PartitionChange};

/// The topic config that allows electing a leader outside the ISR.
pub const UNCLEAN_LEADER_ELECTION: &str = "unclean.leader.election.enable";

/// A broker that replicas may be placed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementBroker {
    pub id: BrokerId,
    pub rack: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    #[error("replication factor {rf} is larger than the {live} live brokers")]
    NotEnoughBrokers { rf: usize, live: usize },
    #[error("broker {0} is listed twice")]
    DuplicateBroker(BrokerId),
}

/// Chooses `rf` replicas for each of `partitions` new partitions.
///
/// Each replica slot takes, among brokers not yet chosen for the partition,
/// the one whose rack this partition uses least (so racks are spread before
/// any repeats), then the least loaded (`existing_load` plus what this call
/// placed), then the one leading least, then the one nearest a rotating start
/// so ties spread. The chosen replica leading least goes first, as preferred
/// leader. Without racks this keeps per-broker load within one of each other
/// when starting even (each partition takes the `rf` least loaded).
/// Brokers without a rack count as one shared rack, as Kafka's placer does
/// when racks are partly set.
pub fn place_replicas(
    brokers: &[PlacementBroker],
    partitions: u32,
    rf: u16,
    existing_load: &BTreeMap<BrokerId, usize>,
) -> Result<Vec<Vec<BrokerId>>, PlacementError> {
    let rf = usize::from(rf);
    if rf == 0 {
        return Err(PlacementError::ZeroReplicationFactor);
    }
    let mut seen = BTreeSet::new();
    for b in brokers {
        if !seen.insert(b.id) {
            return Err(PlacementError::DuplicateBroker(b.id));
        }
    }
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            rf,
            live: brokers.len(),
        });
    }
    // Sorted by id so the result does not depend on the caller's order.
    let mut brokers: Vec<&PlacementBroker> = brokers.iter().collect();
    brokers.sort_by_key(|b| b.id);
    let n = brokers.len();
    let mut load: Vec<usize> = brokers
        .iter()
        .map(|b| existing_load.get(&b.id).copied().unwrap_or(0))
        .collect();
    let mut sets: Vec<Vec<usize>> = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        let start = p % n;
        let mut chosen: Vec<usize> = Vec::with_capacity(rf);
        let mut rack_use: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        for _ in 0..rf {
            let best = (0..n).filter(|i| !chosen.contains(i)).min_by_key(|&i| {
                let rack = rack_use
                    .get(&brokers[i].rack.as_deref())
                    .copied()
                    .unwrap_or(0);
                (rack, load[i], (i + n - start) % n)
            });
            // `rf <= n` guarantees a candidate remains for every slot.
            let Some(i) = best else { break };
            chosen.push(i);
            *rack_use.entry(brokers[i].rack.as_deref()).or_default() += 1;
            load[i] += 1;
        }
        sets.push(chosen);
    }
    let leaders = spread_leaders(&sets, n);
    Ok(sets
        .into_iter()
        .zip(leaders)
        .map(|(mut set, leader)| {
            if let Some(pos) = set.iter().position(|&i| i == leader) {
                set[..=pos].rotate_right(1);
            }
            set.into_iter().map(|i| brokers[i].id).collect()
        })
        .collect())
}

/// Picks each partition's preferred leader among its replicas: greedily the
/// one leading least, then moves leaderships while some partition could hand
/// its leadership to one of its replicas leading at least two fewer. Each
/// move lowers the sum of squared leadership counts, so the loop ends.
fn spread_leaders(sets: &[Vec<usize>], n: usize) -> Vec<usize> {
    let mut leading = vec![0usize; n];
    let mut leaders: Vec<usize> = sets
        .iter()
        .map(|set| {
            let l = set.iter().copied().min_by_key(|&i| leading[i]).unwrap_or(0);
            leading[l] += 1;
            l
        })
        .collect();
    let mut moved = true;
    while moved {
        moved = false;
        for (p, set) in sets.iter().enumerate() {
            let current = leaders[p];
            let better = set
                .iter()
                .copied()
                .min_by_key(|&i| leading[i])
                .filter(|&b| leading[b] + 2 <= leading[current]);
            if let Some(better) = better {
                leading[current] -= 1;
                leading[better] += 1;
                leaders[p] = better;
                moved = true;
            }
        }
    }
    leaders
}

/// The leader a partition should have given which brokers are live: the first
/// replica (in replica order, so the preferred leader wins when it can) that
/// is live and in the ISR; failing that, only if `unclean` is allowed, the
/// first live replica — which may have lost acknowledged records.
pub fn elect_leader(
    partition: &PartitionRegistration,
    live: &BTreeSet<BrokerId>,
    unclean: bool,
) -> Option<BrokerId> {
    let live_replicas = || partition.replicas.iter().filter(|r| live.contains(r));
    live_replicas()
        .find(|r| partition.isr.contains(r))
        .or_else(|| {
            if unclean {
                live_replicas().next()
            } else {
                None
            }
        })
        .copied()
}

/// For a leaderless partition, the leader and ISR an election gives it now
/// (an unclean winner becomes the whole ISR), if anyone is eligible.
pub(crate) fn elect_if_leaderless(
    p: &PartitionRegistration,
    live: &BTreeSet<BrokerId>,
    unclean: bool,
) -> Option<(BrokerId, Vec<BrokerId>)> {
    if p.leader != NO_LEADER {
        return None;
    }
    let leader = elect_leader(p, live, unclean)?;
    let isr = if p.isr.contains(&leader) {
        p.isr.clone()
    } else {
        vec![leader]
    };
    Some((leader, isr))
}

pub(crate) fn unclean_allowed(image: &MetadataImage, topic: &str) -> bool {
    image
        .effective_topic_config(topic, UNCLEAN_LEADER_ELECTION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Builds the change record moving a partition from `current` to the
/// leader and ISR given, or nothing if they are unchanged. A reassignment
/// that the new state lets complete (with `live` brokers) completes in the
/// same record, so no decision leaves a finished move pending.
fn change(
    topic_id: uuid::Uuid,
    partition: usize,
    current: &PartitionRegistration,
    leader: BrokerId,
    isr: Vec<BrokerId>,
    live: &BTreeSet<BrokerId>,
) -> Option<MetadataRecord> {
    let next = PartitionRegistration {
        leader,
        isr,
        ..current.clone()
    };
    let next = complete_reassignment(&next, live).unwrap_or(next);
    change_to(topic_id, i32::try_from(partition).ok()?, current, &next)
}

/// Builds the change record from `current` to `next` (only the fields that
/// differ), or nothing if equal. `next`'s epochs are ignored: the partition
/// epoch grows by one, the leader epoch only when the leader changes.
pub fn change_to(
    topic_id: uuid::Uuid,
    partition: i32,
    current: &PartitionRegistration,
    next: &PartitionRegistration,
) -> Option<MetadataRecord> {
    fn changed<T: PartialEq + Clone>(now: &T, next: &T) -> Option<T> {
        (now != next).then(|| next.clone())
    }
    let leader_changed = next.leader != current.leader;
    let record = PartitionChange {
        topic_id,
        partition,
        replicas: changed(&current.replicas, &next.replicas),
        isr: changed(&current.isr, &next.isr),
        leader: leader_changed.then_some(next.leader),
        leader_epoch: current.leader_epoch + i32::from(leader_changed),
        partition_epoch: current.partition_epoch + 1,
        adding_replicas: changed(&current.adding_replicas, &next.adding_replicas),
        removing_replicas: changed(&current.removing_replicas, &next.removing_replicas),
    };
    let unchanged = record.replicas.is_none()
        && record.isr.is_none()
        && record.leader.is_none()
        && record.adding_replicas.is_none()
        && record.removing_replicas.is_none();
    (!unchanged).then_some(MetadataRecord::PartitionChange(record))
}

/// The partition with a reassignment towards `target` begun, as KRaft
/// records one: the replicas become the target followed by the current
/// replicas not in it (so the target's first replica is the preferred
/// leader); `adding` are target replicas the partition did not originally
/// have, `removing` current replicas outside the target. A target that only
/// reorders the current replicas takes effect at once. Starting from a
/// partition already being reassigned replaces that reassignment; a target
/// equal to the original replicas is how a reassignment is cancelled.
/// The result may be complete already: pass it to [`complete_reassignment`].
pub fn begin_reassignment(
    current: &PartitionRegistration,
    target: &[BrokerId],
) -> PartitionRegistration {
    let original = current.original_replicas();
    let outside: Vec<BrokerId> = current
        .replicas
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    PartitionRegistration {
        replicas: target
            .iter()
            .copied()
            .chain(outside.iter().copied())
            .collect(),
        adding_replicas: target
            .iter()
            .copied()
            .filter(|r| !original.contains(r))
            .collect(),
        removing_replicas: outside,
        ..current.clone()
    }
}

/// The partition with its reassignment completed, if it can be now: every
/// adding replica is in the ISR. The replicas become the target, the ISR
/// keeps only target replicas, and a leader being removed hands over to the
/// first target replica that is live and in sync (the leader epoch then
/// grows, see [`change_to`]). `None` while the move is still catching up, or
/// when no target replica could lead yet (the next ISR change retries).
pub fn complete_reassignment(
    p: &PartitionRegistration,
    live: &BTreeSet<BrokerId>,
) -> Option<PartitionRegistration> {
    if !p.is_reassigning() || !p.adding_replicas.iter().all(|r| p.isr.contains(r)) {
        return None;
    }
    let target = p.target_replicas();
    let isr: Vec<BrokerId> = p
        .isr
        .iter()
        .copied()
        .filter(|r| target.contains(r))
        .collect();
    let leader = if target.contains(&p.leader) {
        p.leader
    } else {
        target
            .iter()
            .copied()
            .find(|r| isr.contains(r) && live.contains(r))?
    };
    Some(PartitionRegistration {
        replicas: target,
        isr,
        leader,
        adding_replicas: Vec::new(),
        removing_replicas: Vec::new(),
        ..p.clone()
    })
}

/// Records that fence `node`: the fence itself, then for every partition it
/// is in sync for, its removal from the ISR and, if it led, a new leader.
///
/// The ISR never becomes empty: when `node` is its last member it stays
/// there and the partition goes leaderless (-1), as in Kafka, so that the
/// one replica known to hold every acknowledged record can lead again when
/// it returns, instead of the partition needing an unclean election.
pub fn on_broker_fenced(image: &MetadataImage, node: BrokerId) -> Vec<MetadataRecord> {
    let Some(broker) = image.broker(node) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    if !broker.fenced {
        records.push(MetadataRecord::FenceBroker {
            node_id: node,
            epoch: broker.epoch,
        });
    }
    let mut live = image.live_brokers();
    live.remove(&node);
    for topic in image.topics() {
        let unclean = unclean_allowed(image, &topic.name);
        for (index, p) in topic.partitions.iter().enumerate() {
            if !p.isr.contains(&node) && p.leader != node {
                continue;
            }
            let shrunk: Vec<BrokerId> = p.isr.iter().copied().filter(|r| *r != node).collect();
            let (leader, isr) = if shrunk.is_empty() {
                // Last in-sync replica: only an unclean election can proceed.
                let candidate = PartitionRegistration {
                    isr: Vec::new(),
                    ..p.clone()
                };
                match elect_leader(&candidate, &live, unclean) {
                    Some(l) => (l, vec![l]),
                    None => (NO_LEADER, p.isr.clone()),
                }
            } else if p.leader == node || p.leader == NO_LEADER {
                let candidate = PartitionRegistration {
                    isr: shrunk.clone(),
                    ..p.clone()
                };
                match elect_leader(&candidate, &live, unclean) {
                    Some(l) if shrunk.contains(&l) => (l, shrunk),
                    Some(l) => (l, vec![l]),
                    None => (NO_LEADER, shrunk),
                }
            } else {
                (p.leader, shrunk)
            };
            records.extend(change(topic.id, index, p, leader, isr, &live));
        }
    }
    records
}

/// Records that unfence `node`, and give it the leadership of every partition
/// that is leaderless and can now elect it. It does not rejoin any ISR here:
/// that happens when it has caught up with the leader (AlterPartition).
pub fn on_broker_unfenced(image: &MetadataImage, node: BrokerId) -> Vec<MetadataRecord> {
    let Some(broker) = image.broker(node) else {
        return Vec::new();
    };
    let mut records = Vec::new();
    if broker.fenced {
        records.push(MetadataRecord::UnfenceBroker {
            node_id: node,
            epoch: broker.epoch,
        });
    }
    let mut live = image.live_brokers();
    live.insert(node);
    for topic in image.topics() {
        let unclean = unclean_allowed(image, &topic.name);
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader != NO_LEADER || !p.replicas.contains(&node) {
                continue;
            }
            if let Some((l, isr)) = elect_if_leaderless(p, &live, unclean) {
                records.extend(change(topic.id, index, p, l, isr, &live));
            }
        }
    }
    records
}

/// Records moving each partition's leadership to its preferred leader (the
/// first replica) where that replica is live, in the ISR, and not leading.
pub fn preferred_leader_elections(image: &MetadataImage) -> Vec<MetadataRecord> {
    let live = image.live_brokers();
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let preferred = p.preferred_leader();
            if p.leader != preferred && live.contains(&preferred) && p.isr.contains(&preferred) {
                records.extend(change(topic.id, index, p, preferred, p.isr.clone(), &live));
            }
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::tests::assert_invariants;
    use crate::records::{Endpoint, PartitionRecord};
    use proptest::prelude::*;
    use uuid::Uuid;

    fn arb_brokers() -> impl Strategy<Value = Vec<PlacementBroker>> {
        prop::collection::btree_map(0..20i32, prop::option::of(0..4u8), 1..10).prop_map(|m| {
            m.into_iter()
                .map(|(id, rack)| PlacementBroker {
                    id,
                    rack: rack.map(|r| format!("rack{r}")),
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn placement_is_valid_rack_aware_and_deterministic(
            brokers in arb_brokers(),
            partitions in 0..40u32,
            rf in 1..5u16,
        ) {
            let result = place_replicas(&brokers, partitions, rf, &BTreeMap::new());
            if usize::from(rf) > brokers.len() {
                prop_assert!(matches!(result, Err(PlacementError::NotEnoughBrokers { .. })), "{:?}", result);
                return Ok(());
            }
            let plan = result.unwrap();
            let mut reversed = brokers.clone();
            reversed.reverse();
            prop_assert_eq!(&place_replicas(&reversed, partitions, rf, &BTreeMap::new()).unwrap(), &plan);
            prop_assert_eq!(plan.len(), partitions as usize);
            let rack_of: BTreeMap<_, _> = brokers.iter().map(|b| (b.id, b.rack.clone())).collect();
            let racks: BTreeSet<_> = rack_of.values().collect();
            for replicas in &plan {
                prop_assert_eq!(replicas.len(), usize::from(rf));
                let distinct: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(distinct.len(), replicas.len());
                prop_assert!(replicas.iter().all(|r| rack_of.contains_key(r)));
                let used: BTreeSet<_> = replicas.iter().map(|r| &rack_of[r]).collect();
                prop_assert_eq!(used.len(), racks.len().min(usize::from(rf)));
            }
        }

        #[test]
        fn placement_without_racks_is_balanced(
            n in 1..12i32,
            partitions in 0..60u32,
            rf in 1..4u16,
            base in 0..5usize,
        ) {
            prop_assume!(usize::from(rf) <= n as usize);
            let brokers: Vec<_> = (0..n).map(|id| PlacementBroker { id, rack: None }).collect();
            let existing: BTreeMap<_, _> = (0..n).map(|id| (id, base)).collect();
            let plan = place_replicas(&brokers, partitions, rf, &existing).unwrap();
            let mut load = BTreeMap::new();
            let mut leaders = BTreeMap::new();
            for id in 0..n {
                load.insert(id, 0usize);
                leaders.insert(id, 0usize);
            }
            for replicas in &plan {
                for r in replicas { *load.get_mut(r).unwrap() += 1; }
                *leaders.get_mut(&replicas[0]).unwrap() += 1;
            }
            let spread = |m: &BTreeMap<i32, usize>| m.values().max().unwrap() - m.values().min().unwrap();
            prop_assert!(spread(&load) <= 1, "load {:?}", load);
            // No partition could hand its leadership to one of its replicas
            // leading two fewer: leadership is balanced as far as the
            // replica sets (chosen for load) allow.
            for replicas in &plan {
                let l = leaders[&replicas[0]];
                prop_assert!(replicas.iter().all(|r| leaders[r] + 2 > l), "leaders {:?}", leaders);
            }
            if rf == 1 || n as u32 <= rf as u32 {
                prop_assert!(spread(&leaders) <= 1, "leaders {:?}", leaders);
            }
        }
    }

    #[test]
    fn placement_fills_the_least_loaded_brokers_first() {
        let brokers: Vec<_> = (0..3)
            .map(|id| PlacementBroker { id, rack: None })
            .collect();
        let existing = BTreeMap::from([(0, 5), (1, 5), (2, 0)]);
        let plan = place_replicas(&brokers, 5, 1, &existing).unwrap();
        assert!(plan.iter().all(|r| r == &vec![2]));
        assert_eq!(
            place_replicas(&brokers, 1, 0, &existing),
            Err(PlacementError::ZeroReplicationFactor)
        );
    }

    /// A cluster of `n` unfenced brokers and topics placed by `place_replicas`,
    /// every replica in sync and led by its preferred leader.
    fn cluster(n: i32, topics: &[(u32, u16, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        let mut batch = Vec::new();
        for id in 0..n {
            batch.push(MetadataRecord::RegisterBroker {
                node_id: id,
                epoch: 1,
                incarnation_id: Uuid::from_u128(id as u128),
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092 + id as u16,
                }],
                rack: Some(format!("r{}", id % 2)),
            });
            batch.push(MetadataRecord::UnfenceBroker {
                node_id: id,
                epoch: 1,
            });
        }
        image.apply_batch(&batch).unwrap();
        let brokers: Vec<_> = image
            .brokers()
            .values()
            .map(|b| PlacementBroker {
                id: b.node_id,
                rack: b.rack.clone(),
            })
            .collect();
        for (t, &(partitions, rf, unclean)) in topics.iter().enumerate() {
            let topic_id = Uuid::from_u128(t as u128 + 1);
            let configs = if unclean {
                BTreeMap::from([(UNCLEAN_LEADER_ELECTION.to_owned(), "true".to_owned())])
            } else {
                BTreeMap::new()
            };
            let mut batch = vec![MetadataRecord::CreateTopic {
                name: format!("t{t}"),
                topic_id,
                configs,
            }];
            let plan = place_replicas(&brokers, partitions, rf, &BTreeMap::new()).unwrap();
            for (p, replicas) in plan.into_iter().enumerate() {
                batch.push(MetadataRecord::Partition(PartitionRecord {
                    topic_id,
                    partition: p as i32,
                    isr: replicas.clone(),
                    leader: replicas[0],
                    replicas,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }));
            }
            image.apply_batch(&batch).unwrap();
        }
        image
    }

    #[derive(Debug, Clone)]
    enum Event {
        Fence(i32),
        Unfence(i32),
        Preferred,
        /// Reassign partition `.1` of topic `t{.0}` (if they exist) to `.2`.
        Reassign(usize, i32, Vec<i32>),
        /// Every leader takes live replica `.0` into its ISR.
        CatchUp(i32),
    }

    fn arb_event(n: i32) -> impl Strategy<Value = Event> {
        prop_oneof![
            (0..n).prop_map(Event::Fence),
            (0..n).prop_map(Event::Unfence),
            Just(Event::Preferred),
            (0..4usize, 0..6i32, prop::collection::vec(0..n, 0..4))
                .prop_map(|(t, p, target)| Event::Reassign(t, p, target)),
            (0..n).prop_map(Event::CatchUp),
        ]
    }

    /// The records of the controller's decision for `event`.
    fn decide_event(image: &MetadataImage, event: &Event) -> Vec<MetadataRecord> {
        match event {
            Event::Fence(n) => on_broker_fenced(image, *n),
            Event::Unfence(n) => on_broker_unfenced(image, *n),
            Event::Preferred => preferred_leader_elections(image),
            Event::Reassign(t, partition, target) => {
                let request = crate::rpc::PartitionReassignment {
                    topic: format!("t{t}"),
                    partition: *partition,
                    // An empty target stands for a cancellation.
                    target: (!target.is_empty()).then(|| target.clone()),
                };
                let (records, _) = crate::decide::alter_reassignments(image, &[request], true);
                records
            }
            Event::CatchUp(node) => {
                // Decided one partition at a time, each against the image
                // the previous left, as the service does.
                let mut after = image.clone();
                let mut records = Vec::new();
                for topic in image.topics() {
                    for partition in 0..topic.partitions.len() as i32 {
                        let Some(p) = after.partition(&topic.id, partition) else {
                            continue;
                        };
                        if p.leader == NO_LEADER || p.isr.contains(node) {
                            continue;
                        }
                        let change = crate::decide::IsrChange {
                            node_id: p.leader,
                            topic_id: topic.id,
                            partition,
                            leader_epoch: p.leader_epoch,
                            partition_epoch: p.partition_epoch,
                            new_isr: p.isr.iter().copied().chain([*node]).collect(),
                        };
                        if let Ok(Some(record)) = crate::decide::alter_partition(&after, &change) {
                            after.apply(&record).unwrap();
                            records.push(record);
                        }
                    }
                }
                records
            }
        }
    }

    fn leader_epochs(image: &MetadataImage) -> BTreeMap<(Uuid, usize), (i32, i32)> {
        image
            .topics()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| ((t.id, i), (p.leader, p.leader_epoch)))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn failover_decisions_keep_the_partition_rules(
            topics in prop::collection::vec((1..6u32, 1..4u16, any::<bool>()), 1..4),
            events in prop::collection::vec(arb_event(4), 0..30),
        ) {
            let mut image = cluster(4, &topics);
            for event in events {
                let before = leader_epochs(&image);
                let records = decide_event(&image, &event);
                prop_assert_eq!(image.apply_batch(&records), Ok(()), "{:?}: {:?}", event, records);
                assert_invariants(&image);
                let live = image.live_brokers();
                for topic in image.topics() {
                    let unclean = unclean_allowed(&image, &topic.name);
                    for (i, p) in topic.partitions.iter().enumerate() {
                        prop_assert!(!p.isr.is_empty());
                        if p.leader != NO_LEADER {
                            prop_assert!(live.contains(&p.leader), "{:?} led by fenced", p);
                        } else {
                            // Leaderless only when nobody eligible is live.
                            prop_assert_eq!(elect_leader(p, &live, unclean), None, "{:?}", p);
                        }
                        if let Event::Fence(n) = &event {
                            prop_assert!(p.leader != *n);
                            prop_assert!(
                                !p.isr.contains(n) || (p.isr == vec![*n] && p.leader == NO_LEADER),
                                "{:?}", p
                            );
                        }
                        if matches!(event, Event::Reassign(..) | Event::CatchUp(_)) {
                            // A move whose new replicas are in sync and
                            // which has a leader to hand over to is done.
                            prop_assert_eq!(complete_reassignment(p, &live), None, "{:?}", p);
                        }
                        let (old_leader, old_epoch) = before[&(topic.id, i)];
                        prop_assert!(p.leader_epoch >= old_epoch);
                        if p.leader != old_leader {
                            prop_assert!(p.leader_epoch > old_epoch);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_move_unions_the_replicas_then_completes_once_the_new_ones_are_in_sync() {
        let p = PartitionRegistration {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 4,
            partition_epoch: 7,
            ..Default::default()
        };
        let live: BTreeSet<i32> = [1, 2, 3, 4].into();
        let moving = begin_reassignment(&p, &[4, 2, 3]);
        assert_eq!(moving.replicas, vec![4, 2, 3, 1]);
        assert_eq!(
            (
                moving.adding_replicas.clone(),
                moving.removing_replicas.clone()
            ),
            (vec![4], vec![1])
        );
        assert_eq!(moving.preferred_leader(), 4);
        assert_eq!(complete_reassignment(&moving, &live), None);
        let caught_up = PartitionRegistration {
            isr: vec![1, 2, 3, 4],
            ..moving.clone()
        };
        let done = complete_reassignment(&caught_up, &live).unwrap();
        // The leader was being removed: the first in-sync target replica
        // takes over, in a new leader epoch.
        assert_eq!(
            (done.replicas.clone(), done.isr.clone(), done.leader),
            (vec![4, 2, 3], vec![2, 3, 4], 4)
        );
        assert!(!done.is_reassigning());
        let Some(MetadataRecord::PartitionChange(c)) = change_to(Uuid::nil(), 0, &p, &done) else {
            panic!("no change record");
        };
        assert_eq!(
            (c.leader, c.leader_epoch, c.partition_epoch),
            (Some(4), 5, 8)
        );
        // Without a live in-sync target replica to lead, it waits.
        let dead: BTreeSet<i32> = [1].into();
        assert_eq!(complete_reassignment(&caught_up, &dead), None);
        // Moving again to the original replicas reverts: 4 is removed.
        let back = begin_reassignment(&moving, &[1, 2, 3]);
        assert_eq!(
            (back.adding_replicas.clone(), back.removing_replicas.clone()),
            (vec![], vec![4])
        );
        let reverted = complete_reassignment(&back, &live).unwrap();
        assert_eq!((reverted.replicas, reverted.leader), (vec![1, 2, 3], 1));
        // A pure reorder needs no catching up.
        let reordered = begin_reassignment(&p, &[3, 1, 2]);
        assert!(!reordered.is_reassigning());
        assert_eq!(reordered.replicas, vec![3, 1, 2]);
    }

    #[test]
    fn fencing_the_last_in_sync_replica_leaves_the_partition_leaderless() {
        let mut image = cluster(3, &[(1, 1, false)]);
        let t = Uuid::from_u128(1);
        let only = image.partition(&t, 0).unwrap().leader;
        let records = on_broker_fenced(&image, only);
        image.apply_batch(&records).unwrap();
        let p = image.partition(&t, 0).unwrap();
        assert_eq!(
            (p.leader, p.isr.clone(), p.leader_epoch),
            (NO_LEADER, vec![only], 1)
        );
        // It comes back and leads again, without an unclean election.
        let records = on_broker_unfenced(&image, only);
        image.apply_batch(&records).unwrap();
        let p = image.partition(&t, 0).unwrap();
        assert_eq!((p.leader, p.leader_epoch), (only, 2));
    }

    #[test]
    fn elect_leader_prefers_replica_order_and_respects_unclean() {
        let p = PartitionRegistration {
            replicas: vec![3, 1, 2],
            isr: vec![1, 2],
            leader: NO_LEADER,
            ..Default::default()
        };
        let live = |ids: &[i32]| ids.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(elect_leader(&p, &live(&[1, 2, 3]), false), Some(1));
        assert_eq!(elect_leader(&p, &live(&[2, 3]), false), Some(2));
        assert_eq!(elect_leader(&p, &live(&[3]), false), None);
        assert_eq!(elect_leader(&p, &live(&[3]), true), Some(3));
    }
}
