//! Client-side partition assignment for classic consumer groups: the group
//! leader runs one of these over every member's subscription.

use std::collections::{BTreeMap, BTreeSet};

mod cooperative;

pub use cooperative::cooperative_sticky;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignmentStrategy {
    /// Per topic, contiguous ranges of partitions (Kafka's `range`).
    #[default]
    Range,
    /// All partitions dealt out in turn (Kafka's `roundrobin`).
    RoundRobin,
    /// Kafka's `cooperative-sticky` (KIP-429): members keep their
    /// partitions across rebalances and give up only those that move.
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// The protocol name members agree on in JoinGroup.
    pub fn protocol_name(self) -> &'static str {
        match self {
            AssignmentStrategy::Range => "range",
            AssignmentStrategy::RoundRobin => "roundrobin",
            AssignmentStrategy::CooperativeSticky => "cooperative-sticky",
        }
    }

    pub fn from_protocol_name(name: &str) -> Option<Self> {
        match name {
            "range" => Some(AssignmentStrategy::Range),
            "roundrobin" => Some(AssignmentStrategy::RoundRobin),
            "cooperative-sticky" => Some(AssignmentStrategy::CooperativeSticky),
            _ => None,
        }
    }

    /// Whether members keep their partitions through a rebalance and
    /// revoke only what moves (else: everything before rejoining).
    pub fn is_cooperative(self) -> bool {
        self == AssignmentStrategy::CooperativeSticky
    }

    /// `owned`: what each member reports owning (used by sticky strategies).
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, Vec<String>>,
        owned: &BTreeMap<String, Vec<(String, i32)>>,
        partitions_per_topic: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, Vec<(String, i32)>> {
        match self {
            AssignmentStrategy::Range => range(subscriptions, partitions_per_topic),
            AssignmentStrategy::RoundRobin => round_robin(subscriptions, partitions_per_topic),
            AssignmentStrategy::CooperativeSticky => {
                cooperative_sticky(subscriptions, owned, partitions_per_topic)
            }
        }
    }
}

/// Member id → assigned (topic, partition), every member present (maybe
/// with nothing) so each gets a SyncGroup answer.
pub type Assignment = BTreeMap<String, Vec<(String, i32)>>;

/// For each topic, sort its subscribers by member id; the first
/// `partitions % members` get one extra partition.
pub fn range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (member, topics) in subscriptions {
        for t in topics.iter().collect::<BTreeSet<_>>() {
            subscribers.entry(t).or_default().push(member);
        }
    }
    for (topic, members) in subscribers {
        let Some(&n) = partitions_per_topic.get(topic) else {
            continue;
        };
        let n = n.max(0) as usize;
        let per = n / members.len();
        let extra = n % members.len();
        let mut next = 0usize;
        for (i, m) in members.iter().enumerate() {
            let count = per + usize::from(i < extra);
            if let Some(v) = out.get_mut(*m) {
                v.extend((next..next + count).map(|p| (topic.to_string(), p as i32)));
            }
            next += count;
        }
    }
    out
}

/// All (topic, partition) pairs in order, dealt to members in turn, skipping
/// members not subscribed to the topic.
pub fn round_robin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let members: Vec<&String> = subscriptions.keys().collect();
    if members.is_empty() {
        return out;
    }
    let all_topics: BTreeSet<&String> = subscriptions.values().flatten().collect();
    let mut cursor = 0usize;
    for topic in all_topics {
        let Some(&n) = partitions_per_topic.get(topic.as_str()) else {
            continue;
        };
        for p in 0..n.max(0) {
            // At least one member subscribes to `topic`, so this ends.
            for _ in 0..members.len() {
                let m = members[cursor % members.len()];
                cursor += 1;
                if subscriptions[m].contains(topic) {
                    if let Some(v) = out.get_mut(m) {
                        v.push((topic.clone(), p));
                    }
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn subs(v: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        v.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn parts(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn tp(t: &str, ps: &[i32]) -> Vec<(String, i32)> {
        ps.iter().map(|p| (t.to_string(), *p)).collect()
    }

    #[test]
    fn range_gives_extra_partitions_to_first_members() {
        let a = range(
            &subs(&[("c1", &["t"]), ("c2", &["t"]), ("c3", &["t"])]),
            &parts(&[("t", 7)]),
        );
        assert_eq!(a["c1"], tp("t", &[0, 1, 2]));
        assert_eq!(a["c2"], tp("t", &[3, 4]));
        assert_eq!(a["c3"], tp("t", &[5, 6]));
    }

    #[test]
    fn range_is_per_topic() {
        // Kafka's documented example: two topics of 3 partitions, 2 members.
        let a = range(
            &subs(&[("c0", &["t0", "t1"]), ("c1", &["t0", "t1"])]),
            &parts(&[("t0", 3), ("t1", 3)]),
        );
        let mut c0 = tp("t0", &[0, 1]);
        c0.extend(tp("t1", &[0, 1]));
        let mut c1 = tp("t0", &[2]);
        c1.extend(tp("t1", &[2]));
        assert_eq!(a["c0"], c0);
        assert_eq!(a["c1"], c1);
    }

    #[test]
    fn round_robin_interleaves_across_topics() {
        let a = round_robin(
            &subs(&[("c0", &["t0", "t1"]), ("c1", &["t0", "t1"])]),
            &parts(&[("t0", 3), ("t1", 3)]),
        );
        let c0 = vec![
            ("t0".to_string(), 0),
            ("t0".to_string(), 2),
            ("t1".to_string(), 1),
        ];
        let c1 = vec![
            ("t0".to_string(), 1),
            ("t1".to_string(), 0),
            ("t1".to_string(), 2),
        ];
        assert_eq!(a["c0"], c0);
        assert_eq!(a["c1"], c1);
    }

    #[test]
    fn unknown_topics_and_idle_members() {
        let a = range(
            &subs(&[("a", &["missing"]), ("b", &["t"]), ("c", &["t"])]),
            &parts(&[("t", 1)]),
        );
        assert!(a["a"].is_empty());
        assert_eq!(a["b"], tp("t", &[0]));
        assert!(a["c"].is_empty());
    }

    proptest! {
        /// Every partition of a subscribed topic goes to exactly one member
        /// that subscribed to it, and loads differ by at most one per topic
        /// (range) or overall (round robin with identical subscriptions).
        #[test]
        fn assignments_are_complete_exclusive_and_balanced(
            members in 1usize..8, counts in proptest::collection::vec(0i32..20, 1..4), rr in any::<bool>()
        ) {
            let topics: Vec<String> = (0..counts.len()).map(|i| format!("t{i}")).collect();
            let s: BTreeMap<String, Vec<String>> = (0..members).map(|m| (format!("m{m}"), topics.clone())).collect();
            let p: BTreeMap<String, i32> = topics.iter().cloned().zip(counts.iter().copied()).collect();
            let strategy = if rr { AssignmentStrategy::RoundRobin } else { AssignmentStrategy::Range };
            let a = strategy.assign(&s, &BTreeMap::new(), &p);
            prop_assert_eq!(a.len(), members);
            let mut seen = BTreeSet::new();
            for v in a.values() {
                for x in v {
                    prop_assert!(seen.insert(x.clone()), "assigned twice: {:?}", x);
                }
            }
            let total: i32 = counts.iter().sum();
            prop_assert_eq!(seen.len(), total as usize);
            let loads: Vec<usize> = a.values().map(|v| v.len()).collect();
            let (min, max) = (loads.iter().min().unwrap(), loads.iter().max().unwrap());
            if rr {
                prop_assert!(max - min <= 1);
            } else {
                for t in &topics {
                    let per: Vec<usize> = a.values().map(|v| v.iter().filter(|(x, _)| x == t).count()).collect();
                    prop_assert!(per.iter().max().unwrap() - per.iter().min().unwrap() <= 1);
                }
            }
        }
    }
}
