//! Moving every replica off the brokers a scale-down removes, all of them
//! in one plan.
//!
//! weir-client's [`plan_drain`] empties one broker, choosing replacements
//! among every other live broker, so draining the leaving brokers one by
//! one could park a replica on a broker that leaves next. Here each leaving
//! broker is planned against the brokers that stay only, over the replicas
//! as the previous broker's plan left them: a partition with replicas on
//! two leaving brokers gets two replacements, none of them leaving.

use std::collections::{BTreeMap, BTreeSet};

use weir_client::cluster::BrokerMetadata;
use weir_client::reassign::{DrainError, PartitionReplicas, plan_drain};

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
    use proptest::prelude::*;

    use super::*;

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
