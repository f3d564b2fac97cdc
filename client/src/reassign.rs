//! Planning a broker drain: moving every replica off one broker, or off
//! several at once (before a scale-down), as partition reassignments
//! computed here from Metadata.
//!
//! Kafka has no "drain" API, so planning on the client keeps the broker
//! surface Kafka's own (AlterPartitionReassignments does the moving) and
//! works against any Kafka-compatible cluster. The planner is pure.

use std::collections::{BTreeMap, BTreeSet};

use crate::cluster::BrokerMetadata;

/// A partition's replicas as a drain sees them: the ones it will end up
/// with (the target, for a partition being moved already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    #[error(
        "no broker can take node {node}'s replica of {topic}-{partition}: its replicas are {replicas:?} and every other live broker ({live:?}) already holds one; add a broker or lower the replication factor"
    )]
    NoReplacement {
        node: i32,
        topic: String,
        partition: i32,
        replicas: Vec<i32>,
        live: Vec<i32>,
    },
}

/// The new replica list of every partition that has a replica on `node`,
/// with that replica replaced in place (so a preferred leadership on `node`
/// goes to its replacement, keeping leaders spread).
///
/// Each replacement is, among live brokers not holding the partition, the
/// one whose rack the partition's other replicas use least (racks spread
/// first), then the one holding fewest replicas (counting this plan's
/// moves), then the lowest id. Brokers without a rack count as one shared
/// rack, as the controller's placement does.
pub fn plan_drain(
    brokers: &[BrokerMetadata],
    partitions: &[PartitionReplicas],
    node: i32,
) -> Result<Vec<PartitionReplicas>, DrainError> {
    let rack: BTreeMap<i32, Option<&str>> = brokers
        .iter()
        .map(|b| (b.node_id, b.rack.as_deref()))
        .collect();
    let candidates: Vec<i32> = rack.keys().copied().filter(|id| *id != node).collect();
    let mut load: BTreeMap<i32, usize> = candidates.iter().map(|id| (*id, 0)).collect();
    for r in partitions.iter().flat_map(|p| &p.replicas) {
        if let Some(n) = load.get_mut(r) {
            *n += 1;
        }
    }
    let mut sorted: Vec<&PartitionReplicas> = partitions
        .iter()
        .filter(|p| p.replicas.contains(&node))
        .collect();
    sorted.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let mut plan = Vec::with_capacity(sorted.len());
    for p in sorted {
        let rack_use = |candidate: i32| {
            let wanted = rack.get(&candidate).copied().flatten();
            p.replicas
                .iter()
                .filter(|r| **r != node)
                .filter(|r| rack.get(r).copied().flatten() == wanted)
                .count()
        };
        let chosen = candidates
            .iter()
            .copied()
            .filter(|c| !p.replicas.contains(c))
            .min_by_key(|c| (rack_use(*c), load[c], *c))
            .ok_or_else(|| DrainError::NoReplacement {
                node,
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                live: candidates.clone(),
            })?;
        *load.entry(chosen).or_default() += 1;
        plan.push(PartitionReplicas {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: p
                .replicas
                .iter()
                .map(|r| if *r == node { chosen } else { *r })
                .collect(),
        });
    }
    Ok(plan)
}

/// Draining several brokers one by one with [`plan_drain`] could park a
/// replica on a broker that leaves next, so here each leaving broker is
/// planned against the brokers that stay only, over the replicas as the
/// previous broker's plan left them: a partition with replicas on two
/// leaving brokers gets two replacements, none of them leaving.
///
/// The new replica list of every partition with a replica on a `leaving`
/// broker. Replicas on the leaving brokers not yet planned are treated as
/// rackless while another is planned, which only matters when some
/// brokers have a rack and some do not.
pub fn plan_drains(
    brokers: &[BrokerMetadata],
    partitions: &[PartitionReplicas],
    leaving: &[i32],
) -> Result<Vec<PartitionReplicas>, DrainError> {
    let leaving: BTreeSet<i32> = leaving.iter().copied().collect();
    let staying: Vec<BrokerMetadata> = brokers
        .iter()
        .filter(|b| !leaving.contains(&b.node_id))
        .cloned()
        .collect();
    let mut current: BTreeMap<(String, i32), Vec<i32>> = partitions
        .iter()
        .map(|p| ((p.topic.clone(), p.partition), p.replicas.clone()))
        .collect();
    let mut changed = BTreeSet::new();
    for node in &leaving {
        let view: Vec<PartitionReplicas> = current
            .iter()
            .map(|((topic, partition), replicas)| PartitionReplicas {
                topic: topic.clone(),
                partition: *partition,
                replicas: replicas.clone(),
            })
            .collect();
        for moved in plan_drain(&staying, &view, *node)? {
            let key = (moved.topic, moved.partition);
            current.insert(key.clone(), moved.replicas);
            changed.insert(key);
        }
    }
    Ok(changed
        .into_iter()
        .map(|key| {
            let replicas = current.get(&key).cloned().unwrap_or_default();
            PartitionReplicas {
                topic: key.0,
                partition: key.1,
                replicas,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn broker(node_id: i32, rack: Option<&str>) -> BrokerMetadata {
        BrokerMetadata {
            node_id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: rack.map(str::to_owned),
        }
    }

    fn partition(topic: &str, partition: i32, replicas: &[i32]) -> PartitionReplicas {
        PartitionReplicas {
            topic: topic.into(),
            partition,
            replicas: replicas.to_vec(),
        }
    }

    #[test]
    fn replacements_keep_racks_apart_and_the_slot_of_the_drained_replica() {
        let brokers = [
            broker(1, Some("a")),
            broker(2, Some("b")),
            broker(3, Some("a")),
            broker(4, Some("b")),
            broker(5, Some("c")),
        ];
        // Node 1 (rack a) leaves; 2 (b) and 3 (a) stay. Rack c (5) is
        // unused by the partition, so it wins over 4 (b again).
        let plan = plan_drain(&brokers, &[partition("t", 0, &[1, 2, 3])], 1).unwrap();
        assert_eq!(plan, vec![partition("t", 0, &[5, 2, 3])]);
        // Without racks, the least loaded broker takes it (4 over 3).
        let plain: Vec<_> = (1..=4).map(|id| broker(id, None)).collect();
        let plan = plan_drain(
            &plain,
            &[partition("t", 0, &[1, 2]), partition("u", 0, &[3, 2])],
            1,
        )
        .unwrap();
        assert_eq!(plan, vec![partition("t", 0, &[4, 2])]);
        // Partitions without a replica on the node are left alone.
        let plan = plan_drain(&brokers, &[partition("t", 0, &[2, 3])], 1).unwrap();
        assert!(plan.is_empty());
    }

    #[test]
    fn a_drain_with_nowhere_to_go_is_refused_naming_the_partition() {
        let brokers = [broker(1, None), broker(2, None), broker(3, None)];
        let err = plan_drain(&brokers, &[partition("t", 4, &[1, 2, 3])], 3).unwrap_err();
        assert!(err.to_string().contains("t-4"), "{err}");
        assert!(matches!(
            err,
            DrainError::NoReplacement { partition: 4, .. }
        ));
    }

    proptest! {
        #[test]
        fn a_drain_leaves_nothing_on_the_node_and_replaces_in_place(
            n in 3..8i32,
            sets in prop::collection::vec(prop::sample::subsequence((1..8).collect::<Vec<i32>>(), 1..3), 1..30),
            node in 1..8i32,
        ) {
            let brokers: Vec<_> = (1..=n).map(|id| broker(id, None)).collect();
            let partitions: Vec<_> = sets
                .iter()
                .enumerate()
                .filter(|(_, s)| s.iter().all(|r| *r <= n))
                .map(|(i, s)| partition("t", i as i32, s))
                .collect();
            let plan = plan_drain(&brokers, &partitions, node).unwrap();
            let moved: BTreeMap<i32, &PartitionReplicas> =
                plan.iter().map(|p| (p.partition, p)).collect();
            for p in &partitions {
                let after = moved.get(&p.partition).map_or(&p.replicas, |m| &m.replicas);
                prop_assert!(!after.contains(&node));
                prop_assert_eq!(after.len(), p.replicas.len());
                let distinct: std::collections::BTreeSet<_> = after.iter().collect();
                prop_assert_eq!(distinct.len(), after.len());
            }
            // The replacement takes the drained replica's slot, and only it.
            for m in &plan {
                let original = &partitions.iter().find(|p| p.partition == m.partition).unwrap().replicas;
                let slot = original.iter().position(|r| *r == node).unwrap();
                prop_assert!(!original.contains(&m.replicas[slot]));
                for (i, r) in original.iter().enumerate().filter(|(i, _)| *i != slot) {
                    prop_assert_eq!(m.replicas[i], *r);
                }
            }
        }
    }

    mod several {
        use proptest::prelude::*;
        use std::collections::BTreeSet;

        use super::super::*;

        fn broker(node_id: i32) -> BrokerMetadata {
            BrokerMetadata {
                node_id,
                host: String::new(),
                port: 0,
                rack: None,
            }
        }

        fn partition(partition: i32, replicas: &[i32]) -> PartitionReplicas {
            PartitionReplicas {
                topic: "orders".into(),
                partition,
                replicas: replicas.to_vec(),
            }
        }

        #[test]
        fn two_leaving_brokers_are_replaced_by_staying_ones_only() {
            let brokers: Vec<BrokerMetadata> = (0..5).map(broker).collect();
            let partitions = [
                partition(0, &[3, 4]),
                partition(1, &[0, 3]),
                partition(2, &[1, 2]),
            ];
            let plan = plan_drains(&brokers, &partitions, &[3, 4]).expect("plan");
            assert_eq!(plan.iter().map(|p| p.partition).collect::<Vec<_>>(), [0, 1]);
            for p in &plan {
                assert!(p.replicas.iter().all(|r| *r < 3), "{p:?}");
            }
        }

        #[test]
        fn too_few_staying_brokers_is_an_error() {
            let brokers: Vec<BrokerMetadata> = (0..3).map(broker).collect();
            let partitions = [partition(0, &[0, 1, 2])];
            assert!(plan_drains(&brokers, &partitions, &[1, 2]).is_err());
        }

        proptest! {
            #[test]
            fn nothing_lands_on_a_leaving_broker(
                n in 2i32..8,
                rf in 1usize..4,
                leave in 1i32..4,
                offsets in proptest::collection::vec(0i32..8, 1..12),
            ) {
                let leave = leave.min(n - 1);
                let brokers: Vec<BrokerMetadata> = (0..n).map(broker).collect();
                let leaving: Vec<i32> = (n - leave..n).collect();
                let rf = rf.min(usize::try_from(n).unwrap_or(1));
                let partitions: Vec<PartitionReplicas> = offsets
                    .iter()
                    .enumerate()
                    .map(|(i, o)| {
                        let replicas: Vec<i32> = (0..rf).map(|k| (o + k as i32) % n).collect();
                        partition(i as i32, &replicas)
                    })
                    .collect();
                let staying = usize::try_from(n - leave).unwrap_or(0);
                match plan_drains(&brokers, &partitions, &leaving) {
                    Ok(plan) => {
                        for p in &partitions {
                            let after = plan
                                .iter()
                                .find(|q| q.partition == p.partition)
                                .map_or(&p.replicas, |q| &q.replicas);
                            prop_assert_eq!(after.len(), p.replicas.len());
                            prop_assert!(after.iter().all(|r| !leaving.contains(r)), "{:?}", after);
                            let distinct: BTreeSet<&i32> = after.iter().collect();
                            prop_assert_eq!(distinct.len(), after.len());
                            // Replicas on staying brokers stay where they are.
                            for r in p.replicas.iter().filter(|r| !leaving.contains(r)) {
                                prop_assert!(after.contains(r));
                            }
                        }
                    }
                    Err(_) => prop_assert!(rf > staying),
                }
            }
        }
    }
}
