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

fn unclean_allowed(image: &MetadataImage, topic: &str) -> bool {
    image
        .effective_topic_config(topic, UNCLEAN_LEADER_ELECTION)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Builds the change record from `current` to `next`, or nothing if equal.
/// The leader epoch grows only when the leader changes.
fn change(
    topic_id: uuid::Uuid,
    partition: usize,
    current: &PartitionRegistration,
    leader: BrokerId,
    isr: Vec<BrokerId>,
) -> Option<MetadataRecord> {
    if leader == current.leader && isr == current.isr {
        return None;
    }
    let leader_changed = leader != current.leader;
    Some(MetadataRecord::PartitionChange(PartitionChange {
        topic_id,
        partition: i32::try_from(partition).ok()?,
        replicas: None,
        isr: (isr != current.isr).then_some(isr),
        leader: leader_changed.then_some(leader),
        leader_epoch: current.leader_epoch + i32::from(leader_changed),
        partition_epoch: current.partition_epoch + 1,
    }))
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
            records.extend(change(topic.id, index, p, leader, isr));
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
            if let Some(l) = elect_leader(p, &live, unclean) {
                let isr = if p.isr.contains(&l) {
                    p.isr.clone()
                } else {
                    vec![l]
                };
                records.extend(change(topic.id, index, p, l, isr));
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
                records.extend(change(topic.id, index, p, preferred, p.isr.clone()));
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
    }

    fn arb_event(n: i32) -> impl Strategy<Value = Event> {
        prop_oneof![
            (0..n).prop_map(Event::Fence),
            (0..n).prop_map(Event::Unfence),
            Just(Event::Preferred),
        ]
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
                let records = match &event {
                    Event::Fence(n) => on_broker_fenced(&image, *n),
                    Event::Unfence(n) => on_broker_unfenced(&image, *n),
                    Event::Preferred => preferred_leader_elections(&image),
                };
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
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let live = |ids: &[i32]| ids.iter().copied().collect::<BTreeSet<_>>();
        assert_eq!(elect_leader(&p, &live(&[1, 2, 3]), false), Some(1));
        assert_eq!(elect_leader(&p, &live(&[2, 3]), false), Some(2));
        assert_eq!(elect_leader(&p, &live(&[3]), false), None);
        assert_eq!(elect_leader(&p, &live(&[3]), true), Some(3));
    }
}
