//! KIP-848's server-side assignors, as pure functions: `uniform` (balanced
//! and sticky) and `range` (contiguous ranges, co-partitioned topics get
//! the same partition numbers). The consumer group calls one whenever its
//! group epoch moves past its assignment epoch.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Partitions per topic name.
pub type Assignment = BTreeMap<String, BTreeSet<i32>>;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// What an assignor sees of one member.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    pub member_id: String,
    pub instance_id: Option<String>,
    /// Subscribed topics that exist (a regex already resolved).
    pub topics: BTreeSet<String>,
    /// The member's previous target assignment, for stickiness.
    pub previous: Assignment,
}

/// Computes the target assignment of every member; topics are the
/// subscribed topics that exist, with their partition counts.
pub fn assign(
    assignor: &str,
    members: &[MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        RANGE => range(members, topics),
        _ => uniform(members, topics),
    }
}

pub fn is_known(assignor: &str) -> bool {
    assignor == UNIFORM || assignor == RANGE
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Kafka's range assignor: per topic, its subscribers in a stable order
/// (instance id, else member id) take contiguous ranges, the first
/// `partitions % subscribers` one partition more.
pub fn range(
    members: &[MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut order: Vec<&MemberSpec> = members.iter().collect();
    fn key(m: &MemberSpec) -> (&str, &str) {
        (m.instance_id.as_deref().unwrap_or(""), &m.member_id)
    }
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    // Built by position in `order`, keyed by member id once at the end.
    let mut built: Vec<Assignment> = vec![Assignment::new(); order.len()];
    let mut subscribers: Vec<usize> = Vec::with_capacity(order.len());
    for (topic, &partitions) in topics {
        subscribers.clear();
        subscribers.extend((0..order.len()).filter(|&i| order[i].topics.contains(topic)));
        if subscribers.is_empty() || partitions <= 0 {
            continue;
        }
        let n = subscribers.len() as i32;
        let (base, extra) = (partitions / n, partitions % n);
        let mut next = 0;
        for (rank, &i) in subscribers.iter().enumerate() {
            let take = base + i32::from((rank as i32) < extra);
            if take > 0 {
                built[i].insert(topic.clone(), (next..next + take).collect());
            }
            next += take;
        }
    }
    order
        .into_iter()
        .zip(built)
        .map(|(m, a)| (m.member_id.clone(), a))
        .collect()
}

/// Balanced within one partition among the members that could own each
/// partition, and sticky: a partition stays with its previous owner unless
/// balance requires otherwise.
pub fn uniform(
    members: &[MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<&MemberSpec> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let homogeneous = sorted.windows(2).all(|w| w[0].topics == w[1].topics);
    let mut out = if homogeneous {
        uniform_homogeneous(&sorted, topics)
    } else {
        uniform_heterogeneous(&sorted, topics)
    };
    for a in out.values_mut() {
        a.retain(|_, ps| !ps.is_empty());
    }
    out
}

/// Everyone subscribes to the same topics: quotas are `base` or `base + 1`,
/// and each member keeps what it had up to its quota.
fn uniform_homogeneous(
    sorted: &[&MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let Some(first) = sorted.first() else {
        return BTreeMap::new();
    };
    // Topics by index, so claiming a partition allocates nothing.
    let names: Vec<&String> = first
        .topics
        .iter()
        .filter(|t| topics.contains_key(*t))
        .collect();
    let index: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut claimed: Vec<Vec<bool>> = names
        .iter()
        .map(|t| vec![false; topics[*t].max(0) as usize])
        .collect();
    let total: usize = claimed.iter().map(Vec::len).sum();
    let n = sorted.len();
    let (base, mut extras) = (total / n, total % n);
    let mut owned: Vec<Vec<(usize, i32)>> = vec![Vec::new(); n];
    let mut leftovers: Vec<Vec<(usize, i32)>> = vec![Vec::new(); n];
    for (i, m) in sorted.iter().enumerate() {
        for (topic, ps) in &m.previous {
            let Some(&t) = index.get(topic.as_str()) else {
                continue;
            };
            for &p in ps {
                let Some(slot) = usize::try_from(p).ok().and_then(|p| claimed[t].get_mut(p)) else {
                    continue;
                };
                if *slot {
                    continue;
                }
                if owned[i].len() < base {
                    *slot = true;
                    owned[i].push((t, p));
                } else {
                    leftovers[i].push((t, p));
                }
            }
        }
    }
    let mut has_extra = vec![false; n];
    for i in 0..n {
        if extras == 0 {
            break;
        }
        if let Some(&(t, p)) = leftovers[i].iter().find(|(t, p)| !claimed[*t][*p as usize]) {
            claimed[t][p as usize] = true;
            owned[i].push((t, p));
            has_extra[i] = true;
            extras -= 1;
        }
    }
    let mut free = claimed.iter().enumerate().flat_map(|(t, ps)| {
        ps.iter()
            .enumerate()
            .filter(|(_, c)| !**c)
            .map(move |(p, _)| (t, p as i32))
    });
    for mine in owned.iter_mut() {
        while mine.len() < base {
            let Some(tp) = free.next() else { break };
            mine.push(tp);
        }
    }
    for (mine, extra) in owned.iter_mut().zip(has_extra) {
        if extra {
            continue;
        }
        let Some(tp) = free.next() else { break };
        mine.push(tp);
    }
    sorted
        .iter()
        .zip(owned)
        .map(|(m, tps)| {
            let mut a = Assignment::new();
            for (t, p) in tps {
                a.entry(names[t].clone()).or_default().insert(p);
            }
            (m.member_id.clone(), a)
        })
        .collect()
}

/// Members subscribe to different topics: keep previous owners, give each
/// free partition to its least-loaded subscriber, then move partitions from
/// the most- to the least-loaded subscriber of their topic until no
/// subscriber has two more than another. Each move lowers the sum of
/// squared counts, so the loop ends.
fn uniform_heterogeneous(
    sorted: &[&MemberSpec],
    topics: &BTreeMap<String, i32>,
) -> BTreeMap<String, Assignment> {
    let index: HashMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, m)| (m.member_id.as_str(), i))
        .collect();
    let mut owned: Vec<Assignment> = vec![Assignment::new(); sorted.len()];
    let mut counts = vec![0usize; sorted.len()];
    let mut owner: HashMap<(String, i32), usize> = HashMap::new();
    for (i, m) in sorted.iter().enumerate() {
        for (topic, ps) in &m.previous {
            let Some(&n) = topics.get(topic) else {
                continue;
            };
            if !m.topics.contains(topic) {
                continue;
            }
            for &p in ps {
                if p < n && !owner.contains_key(&(topic.clone(), p)) {
                    owner.insert((topic.clone(), p), i);
                    owned[i].entry(topic.clone()).or_default().insert(p);
                    counts[i] += 1;
                }
            }
        }
    }
    let subscribers: BTreeMap<&String, Vec<usize>> = topics
        .keys()
        .map(|t| {
            let subs = sorted
                .iter()
                .filter(|m| m.topics.contains(t))
                .map(|m| index[m.member_id.as_str()])
                .collect();
            (t, subs)
        })
        .collect();
    // Topics with fewer subscribers first: their partitions have fewer homes.
    let mut by_constraint: Vec<(&String, &Vec<usize>)> =
        subscribers.iter().map(|(t, s)| (*t, s)).collect();
    by_constraint.sort_by_key(|(t, s)| (s.len(), (*t).clone()));
    for (topic, subs) in &by_constraint {
        if subs.is_empty() {
            continue;
        }
        for p in 0..topics[*topic].max(0) {
            if owner.contains_key(&((*topic).clone(), p)) {
                continue;
            }
            let &least = subs
                .iter()
                .min_by_key(|&&i| (counts[i], i))
                .expect("non-empty");
            owner.insert(((*topic).clone(), p), least);
            owned[least].entry((*topic).clone()).or_default().insert(p);
            counts[least] += 1;
        }
    }
    loop {
        let mut moved = false;
        for (topic, subs) in &by_constraint {
            loop {
                let most = subs
                    .iter()
                    .copied()
                    .filter(|&i| owned[i].get(*topic).is_some_and(|ps| !ps.is_empty()))
                    .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)));
                let least = subs.iter().copied().min_by_key(|&i| (counts[i], i));
                let (Some(most), Some(least)) = (most, least) else {
                    break;
                };
                if counts[most] <= counts[least] + 1 {
                    break;
                }
                let ps = owned[most].get_mut(*topic).expect("owns the topic");
                let p = *ps.iter().next_back().expect("non-empty");
                ps.remove(&p);
                counts[most] -= 1;
                owned[least].entry((*topic).clone()).or_default().insert(p);
                counts[least] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    sorted
        .iter()
        .zip(owned)
        .map(|(m, a)| (m.member_id.clone(), a))
        .collect()
}

/// How many partitions the assignment gives out, for callers' sanity checks.
pub fn total(assignment: &BTreeMap<String, Assignment>) -> usize {
    assignment.values().map(count).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: &str, topics: &[&str]) -> MemberSpec {
        MemberSpec {
            member_id: id.into(),
            instance_id: None,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            previous: Assignment::new(),
        }
    }

    fn with_previous(
        members: &[MemberSpec],
        previous: &BTreeMap<String, Assignment>,
    ) -> Vec<MemberSpec> {
        members
            .iter()
            .map(|m| MemberSpec {
                previous: previous.get(&m.member_id).cloned().unwrap_or_default(),
                ..m.clone()
            })
            .collect()
    }

    /// Every partition of a subscribed topic has exactly one owner, and
    /// that owner subscribes to it.
    fn check_owners(
        members: &[MemberSpec],
        topics: &BTreeMap<String, i32>,
        out: &BTreeMap<String, Assignment>,
    ) {
        let mut seen: BTreeMap<(String, i32), String> = BTreeMap::new();
        for (m, a) in out {
            let spec = members
                .iter()
                .find(|s| &s.member_id == m)
                .expect("known member");
            for (t, ps) in a {
                assert!(
                    spec.topics.contains(t),
                    "{m} got {t} it does not subscribe to"
                );
                for &p in ps {
                    assert!(p < topics[t], "{t}-{p} does not exist");
                    let previous = seen.insert((t.clone(), p), m.clone());
                    assert!(previous.is_none(), "{t}-{p} has two owners");
                }
            }
        }
        for (t, &n) in topics {
            if members.iter().any(|m| m.topics.contains(t)) {
                for p in 0..n {
                    assert!(seen.contains_key(&(t.clone(), p)), "{t}-{p} has no owner");
                }
            }
        }
    }

    /// No partition could go to a subscriber of its topic owning two fewer.
    fn check_balanced(members: &[MemberSpec], out: &BTreeMap<String, Assignment>) {
        let counts: BTreeMap<&String, usize> = out.iter().map(|(m, a)| (m, count(a))).collect();
        let count_of = |m: &String| counts.get(m).copied().unwrap_or(0);
        for (m, a) in out {
            for t in a.keys() {
                for other in members.iter().filter(|o| o.topics.contains(t)) {
                    assert!(
                        count_of(&other.member_id) + 1 >= count_of(m),
                        "{m} has {} while {} (also on {t}) has {}",
                        count_of(m),
                        other.member_id,
                        count_of(&other.member_id)
                    );
                }
            }
        }
    }

    fn topics_strategy() -> impl Strategy<Value = BTreeMap<String, i32>> {
        prop::collection::btree_map("[a-d]", 1..40i32, 1..4)
    }

    proptest! {
        #[test]
        fn uniform_same_subscription_is_valid_balanced_and_sticky(
            topics in topics_strategy(),
            n in 1usize..12,
            joiners in 0usize..4,
        ) {
            let names: Vec<&str> = topics.keys().map(String::as_str).collect();
            let members: Vec<MemberSpec> =
                (0..n).map(|i| member(&format!("m{i:02}"), &names)).collect();
            let first = uniform(&members, &topics);
            check_owners(&members, &topics, &first);
            check_balanced(&members, &first);
            // Nothing changed: nothing moves.
            let again = uniform(&with_previous(&members, &first), &topics);
            prop_assert_eq!(&again, &first);
            // Members join: the old ones only give partitions up.
            let mut grown = with_previous(&members, &first);
            grown.extend((0..joiners).map(|i| member(&format!("n{i:02}"), &names)));
            let after_join = uniform(&grown, &topics);
            check_owners(&grown, &topics, &after_join);
            check_balanced(&grown, &after_join);
            for m in &members {
                let before = &first[&m.member_id];
                let now = after_join.get(&m.member_id).cloned().unwrap_or_default();
                for (t, ps) in &now {
                    prop_assert!(ps.is_subset(before.get(t).unwrap_or(&BTreeSet::new())),
                        "{} gained {t} partitions when others joined", m.member_id);
                }
            }
            // One leaves: the others keep what they had, up to their new quota.
            if n > 1 {
                let shrunk: Vec<MemberSpec> = with_previous(&members[1..], &first);
                let after_leave = uniform(&shrunk, &topics);
                check_owners(&shrunk, &topics, &after_leave);
                let total: usize = topics.values().map(|&p| p as usize).sum();
                let base = total / (n - 1);
                for m in &shrunk {
                    let kept = m.previous.iter().map(|(t, ps)| {
                        after_leave[&m.member_id].get(t).map_or(0, |now| now.intersection(ps).count())
                    }).sum::<usize>();
                    prop_assert!(kept >= count(&m.previous).min(base));
                }
            }
        }

        #[test]
        fn uniform_mixed_subscriptions_are_valid_balanced_and_sticky(
            topics in topics_strategy(),
            subs in prop::collection::vec(prop::collection::btree_set(0usize..4, 1..4), 1..10),
        ) {
            let names: Vec<String> = topics.keys().cloned().collect();
            let members: Vec<MemberSpec> = subs.iter().enumerate().map(|(i, s)| {
                let picked: Vec<&str> =
                    s.iter().filter_map(|&k| names.get(k % names.len())).map(String::as_str).collect();
                member(&format!("m{i:02}"), &picked)
            }).collect();
            let first = uniform(&members, &topics);
            check_owners(&members, &topics, &first);
            check_balanced(&members, &first);
            let again = uniform(&with_previous(&members, &first), &topics);
            prop_assert_eq!(again, first);
        }

        #[test]
        fn range_is_valid_and_co_partitions(
            partitions in 1..30i32,
            n in 1usize..8,
        ) {
            let topics: BTreeMap<String, i32> =
                [("a".to_string(), partitions), ("b".to_string(), partitions)].into();
            let members: Vec<MemberSpec> =
                (0..n).map(|i| member(&format!("m{i}"), &["a", "b"])).collect();
            let out = range(&members, &topics);
            check_owners(&members, &topics, &out);
            for a in out.values() {
                prop_assert_eq!(a.get("a"), a.get("b"));
                let c = a.get("a").map_or(0, BTreeSet::len) as i32;
                prop_assert!(c == partitions / n as i32 || c == partitions / n as i32 + 1);
            }
            prop_assert_eq!(range(&with_previous(&members, &out), &topics), out);
        }
    }

    #[test]
    fn range_gives_the_first_members_the_extra_partitions() {
        let topics: BTreeMap<String, i32> = [("t".to_string(), 5)].into();
        let members = [member("b", &["t"]), member("a", &["t"])];
        let out = range(&members, &topics);
        assert_eq!(out["a"]["t"], BTreeSet::from([0, 1, 2]));
        assert_eq!(out["b"]["t"], BTreeSet::from([3, 4]));
    }

    #[test]
    fn large_homogeneous_assignment_gives_everyone_their_share() {
        let topics: BTreeMap<String, i32> = (0..50).map(|i| (format!("t{i}"), 1000)).collect();
        let names: Vec<&str> = topics.keys().map(String::as_str).collect();
        let members: Vec<MemberSpec> = (0..1000)
            .map(|i| member(&format!("m{i:04}"), &names))
            .collect();
        let out = uniform(&members, &topics);
        assert_eq!(total(&out), 50_000);
        assert!(out.values().all(|a| count(a) == 50));
    }
}
