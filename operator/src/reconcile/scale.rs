//! Scale-down decisions, as pure functions: which brokers leave, whether
//! the brokers that stay can still hold every topic's replicas, how to
//! keep the StatefulSets at their current size until the leaving brokers
//! are drained, and when to unregister the brokers that left.

use std::collections::BTreeSet;

use crate::desired::DesiredObject;
use crate::desired::cluster::PoolShape;
use crate::kafka::TopicReplication;

/// A broker StatefulSet as it exists now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentPool {
    pub statefulset: String,
    pub node_id_start: i32,
    pub replicas: i32,
}

impl CurrentPool {
    fn node_ids(&self) -> std::ops::Range<i32> {
        self.node_id_start..self.node_id_start.saturating_add(self.replicas)
    }
}

/// Node ids running now that the spec no longer asks for: the top of a
/// shrinking pool, or all of a removed pool.
pub fn leaving_brokers(current: &[CurrentPool], desired: &[PoolShape]) -> Vec<i32> {
    let wanted: BTreeSet<i32> = desired.iter().flat_map(PoolShape::node_ids).collect();
    let mut leaving: Vec<i32> = current
        .iter()
        .flat_map(CurrentPool::node_ids)
        .filter(|id| !wanted.contains(id))
        .collect();
    leaving.sort_unstable();
    leaving.dedup();
    leaving
}

/// The first topic that needs more brokers than `remaining`, as the
/// message of the refusal.
pub fn refusal(topics: &[TopicReplication], remaining: usize) -> Option<String> {
    let remaining = i64::try_from(remaining).unwrap_or(i64::MAX);
    topics
        .iter()
        .filter(|t| i64::from(t.replication_factor) > remaining)
        .max_by_key(|t| (t.replication_factor, std::cmp::Reverse(t.name.clone())))
        .map(|t| {
            format!(
                "scale-down refused: topic {:?} has replication factor {}, more than the {remaining} broker(s) that would remain",
                t.name, t.replication_factor
            )
        })
}

/// Keeps every StatefulSet at least at its current size, and returns the
/// StatefulSets of removed pools that must not be pruned yet.
pub fn hold(objects: &mut [DesiredObject], current: &[CurrentPool]) -> BTreeSet<String> {
    let mut desired_names = BTreeSet::new();
    for object in objects.iter_mut() {
        if let DesiredObject::StatefulSet(sts) = object {
            let name = sts.metadata.name.clone().unwrap_or_default();
            if let Some(now) = current.iter().find(|c| c.statefulset == name) {
                let replicas = sts.spec.replicas.get_or_insert(0);
                *replicas = (*replicas).max(now.replicas);
            }
            desired_names.insert(name);
        }
    }
    current
        .iter()
        .filter(|c| !desired_names.contains(&c.statefulset))
        .map(|c| c.statefulset.clone())
        .collect()
}

/// The retired brokers once a scale-down removes `leaving`: sorted, each once.
pub fn retire(retired: &[i32], leaving: &[i32]) -> Vec<i32> {
    let all: BTreeSet<i32> = retired.iter().chain(leaving).copied().collect();
    all.into_iter().collect()
}

/// The node id of a broker pod, `<statefulset>-<ordinal>` with ordinals
/// starting at the pool's first node id.
pub fn pod_node_id(pod: &str) -> Option<i32> {
    pod.rsplit_once('-')?.1.parse().ok()
}

/// What to do about the retired brokers on this reconcile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unregistering {
    /// Pod gone: unregister now.
    pub now: Vec<i32>,
    /// Pod still there (the broker may still run): ask again later.
    pub later: Vec<i32>,
}

/// Retired brokers whose pod is gone are unregistered now; those with a pod
/// wait; those the spec asks for again are not retired any more and are
/// dropped.
pub fn unregistering(
    retired: &[i32],
    desired: &BTreeSet<i32>,
    pods: &BTreeSet<i32>,
) -> Unregistering {
    let mut plan = Unregistering::default();
    for &id in retired.iter().filter(|id| !desired.contains(id)) {
        if pods.contains(&id) {
            plan.later.push(id);
        } else {
            plan.now.push(id);
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::cluster::ReclaimPolicy;

    fn shape(sts: &str, start: i32, replicas: i32) -> PoolShape {
        PoolShape {
            pool: sts.into(),
            statefulset: sts.into(),
            node_id_start: start,
            replicas,
            reclaim: ReclaimPolicy::Retain,
        }
    }

    fn current(sts: &str, start: i32, replicas: i32) -> CurrentPool {
        CurrentPool {
            statefulset: sts.into(),
            node_id_start: start,
            replicas,
        }
    }

    #[test]
    fn leaving_brokers_are_the_top_of_a_shrinking_pool_and_all_of_a_removed_one() {
        let now = [current("a", 0, 3), current("b", 1000, 2)];
        assert_eq!(
            leaving_brokers(&now, &[shape("a", 0, 3), shape("b", 1000, 2)]),
            Vec::<i32>::new()
        );
        assert_eq!(
            leaving_brokers(&now, &[shape("a", 0, 1), shape("b", 1000, 2)]),
            vec![1, 2]
        );
        assert_eq!(leaving_brokers(&now, &[shape("a", 0, 4)]), vec![1000, 1001]);
    }

    #[test]
    fn refusal_names_the_topic_with_the_largest_replication_factor() {
        let topics = [
            TopicReplication {
                name: "small".into(),
                replication_factor: 1,
            },
            TopicReplication {
                name: "orders".into(),
                replication_factor: 3,
            },
            TopicReplication {
                name: "payments".into(),
                replication_factor: 2,
            },
        ];
        assert_eq!(refusal(&topics, 3), None);
        let why = refusal(&topics, 2).expect("refused");
        assert!(
            why.contains("\"orders\"") && why.contains("replication factor 3"),
            "{why}"
        );
    }

    #[test]
    fn hold_keeps_current_sizes_and_removed_pools() {
        use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
        use kube::api::ObjectMeta;
        let sts = |name: &str, replicas| {
            DesiredObject::StatefulSet(StatefulSet {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                spec: StatefulSetSpec {
                    replicas: Some(replicas),
                    ..StatefulSetSpec::default()
                },
                ..StatefulSet::default()
            })
        };
        let mut objects = vec![sts("a", 1), sts("c", 2)];
        let kept = hold(&mut objects, &[current("a", 0, 3), current("b", 1000, 2)]);
        assert_eq!(kept, BTreeSet::from(["b".to_string()]));
        let sizes: Vec<Option<i32>> = objects
            .iter()
            .map(|o| match o {
                DesiredObject::StatefulSet(s) => s.spec.replicas,
                _ => None,
            })
            .collect();
        assert_eq!(sizes, vec![Some(3), Some(2)]);
    }

    #[test]
    fn retire_adds_the_leaving_brokers_once() {
        assert_eq!(retire(&[], &[3, 4]), vec![3, 4]);
        assert_eq!(retire(&[4, 7], &[3, 4]), vec![3, 4, 7]);
        assert_eq!(retire(&[2], &[]), vec![2]);
    }

    #[test]
    fn pod_node_id_is_the_ordinal() {
        assert_eq!(pod_node_id("demo-main-2"), Some(2));
        assert_eq!(pod_node_id("demo-big-pool-1001"), Some(1001));
        assert_eq!(pod_node_id("demo-main"), None);
        assert_eq!(pod_node_id("demo"), None);
    }

    #[test]
    fn retired_brokers_are_unregistered_once_their_pod_is_gone() {
        let desired = BTreeSet::from([0, 1]);
        let pods = BTreeSet::from([0, 1, 3]);
        assert_eq!(
            unregistering(&[2, 3], &desired, &pods),
            Unregistering {
                now: vec![2],
                later: vec![3],
            }
        );
        assert_eq!(
            unregistering(&[], &desired, &pods),
            Unregistering::default()
        );
    }

    #[test]
    fn a_retired_broker_the_spec_wants_back_is_not_unregistered() {
        // Scaled back up before the pod went: broker 2 is coming back.
        let desired = BTreeSet::from([0, 1, 2]);
        assert_eq!(
            unregistering(&[2], &desired, &BTreeSet::new()),
            Unregistering::default()
        );
        assert_eq!(
            unregistering(&[2], &desired, &BTreeSet::from([2])),
            Unregistering::default()
        );
    }
}
