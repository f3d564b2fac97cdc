//! Kafka's `cooperative-sticky` for classic groups (KIP-429): the leader
//! keeps every member's partitions where balance allows, deals out the
//! rest to the least loaded, and withholds a partition that changes hands
//! until its old owner has revoked it — the old owner rejoins at once, and
//! the next generation hands it over. No partition is ever owned twice.

use std::collections::{BTreeMap, BTreeSet};

use super::Assignment;

type Tp = (String, i32);

/// `owned`: what each member says it owns (from its subscription).
pub fn cooperative_sticky(
    subscriptions: &BTreeMap<String, Vec<String>>,
    owned: &BTreeMap<String, Vec<Tp>>,
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Assignment {
    let current = current_owners(subscriptions, owned);
    let mut target = sticky(subscriptions, &current, partitions_per_topic);
    for (member, parts) in target.iter_mut() {
        parts.retain(|tp| current.get(tp).is_none_or(|owner| owner == member));
    }
    target
}

/// Each partition's owner as members report it; a partition two members
/// claim (a stale member) goes to the first by member id.
fn current_owners(
    subscriptions: &BTreeMap<String, Vec<String>>,
    owned: &BTreeMap<String, Vec<Tp>>,
) -> BTreeMap<Tp, String> {
    let mut out = BTreeMap::new();
    for (member, parts) in owned {
        if !subscriptions.contains_key(member) {
            continue;
        }
        for tp in parts {
            out.entry(tp.clone()).or_insert_with(|| member.clone());
        }
    }
    out
}

/// A balanced assignment that moves as few partitions as it can.
fn sticky(
    subscriptions: &BTreeMap<String, Vec<String>>,
    current: &BTreeMap<Tp, String>,
    partitions_per_topic: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = subscriptions
        .keys()
        .map(|m| (m.clone(), Vec::new()))
        .collect();
    let subscribed: BTreeMap<&str, BTreeSet<&str>> = subscriptions
        .iter()
        .map(|(m, ts)| (m.as_str(), ts.iter().map(String::as_str).collect()))
        .collect();
    let all: Vec<Tp> = subscribed
        .values()
        .flatten()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter_map(|t| partitions_per_topic.get(*t).map(|n| (*t, *n)))
        .flat_map(|(t, n)| (0..n.max(0)).map(move |p| (t.to_string(), p)))
        .collect();
    if out.is_empty() {
        return out;
    }
    let max = all.len().div_ceil(out.len());
    // Keep what each member owns and may still read, up to the quota.
    let mut unassigned = Vec::new();
    for tp in all {
        match current.get(&tp) {
            Some(owner)
                if subscribed[owner.as_str()].contains(tp.0.as_str()) && out[owner].len() < max =>
            {
                out.get_mut(owner).expect("a member").push(tp);
            }
            _ => unassigned.push(tp),
        }
    }
    // The rest to the least loaded member that subscribes to the topic.
    for tp in unassigned {
        let Some(member) = out
            .iter()
            .filter(|(m, _)| subscribed[m.as_str()].contains(tp.0.as_str()))
            .min_by_key(|(m, v)| (v.len(), (*m).clone()))
            .map(|(m, _)| m.clone())
        else {
            continue;
        };
        out.get_mut(&member).expect("a member").push(tp);
    }
    // Even out what subscriptions that differ left uneven.
    for _ in 0..out.values().map(Vec::len).sum::<usize>() {
        let Some((from, to, i)) = one_balancing_move(&out, &subscribed) else {
            break;
        };
        let tp = out.get_mut(&from).expect("a member").remove(i);
        out.get_mut(&to).expect("a member").push(tp);
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// A partition to move from a member to one with two or more fewer that
/// could read it: (from, to, index in from's list).
fn one_balancing_move(
    out: &Assignment,
    subscribed: &BTreeMap<&str, BTreeSet<&str>>,
) -> Option<(String, String, usize)> {
    let mut by_load: Vec<(&String, &Vec<Tp>)> = out.iter().collect();
    by_load.sort_by_key(|(m, v)| (std::cmp::Reverse(v.len()), (*m).clone()));
    for (from, parts) in &by_load {
        for (to, theirs) in by_load.iter().rev() {
            if theirs.len() + 1 >= parts.len() {
                break;
            }
            // The last ones: the most recently dealt, not the long-kept.
            if let Some(i) = parts
                .iter()
                .rposition(|tp| subscribed[to.as_str()].contains(tp.0.as_str()))
            {
                return Some(((*from).clone(), (*to).clone(), i));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tps(t: &str, ps: &[i32]) -> Vec<Tp> {
        ps.iter().map(|p| (t.to_string(), *p)).collect()
    }

    #[test]
    fn a_joining_member_gets_nothing_until_the_owner_has_revoked() {
        let subs: BTreeMap<String, Vec<String>> = [("a", "t"), ("b", "t")]
            .iter()
            .map(|(m, t)| (m.to_string(), vec![t.to_string()]))
            .collect();
        let counts = BTreeMap::from([("t".to_string(), 4)]);
        let owned = BTreeMap::from([("a".to_string(), tps("t", &[0, 1, 2, 3]))]);
        // First generation: a keeps two, the other two are withheld.
        let first = cooperative_sticky(&subs, &owned, &counts);
        assert_eq!(first["a"].len(), 2);
        assert!(first["b"].is_empty(), "{first:?}");
        // a revoked them and rejoined: b gets them.
        let owned = BTreeMap::from([("a".to_string(), first["a"].clone())]);
        let second = cooperative_sticky(&subs, &owned, &counts);
        assert_eq!(second["a"], first["a"]);
        assert_eq!(second["b"].len(), 2);
    }

    proptest! {
        /// Whatever members claim to own: no partition goes to a member
        /// while another owns it, a partition goes to at most one member,
        /// and once the withheld ones are revoked, the next generation
        /// assigns every partition, balanced within one, and a member
        /// within its share keeps what it had.
        #[test]
        fn cooperative_rounds_never_double_assign_and_converge_balanced(
            members in 1usize..6,
            count in 0i32..30,
            claims in proptest::collection::vec((0usize..6, 0i32..30), 0..40),
        ) {
            let subs: BTreeMap<String, Vec<String>> =
                (0..members).map(|m| (format!("m{m}"), vec!["t".to_string()])).collect();
            let counts = BTreeMap::from([("t".to_string(), count)]);
            let mut owned: BTreeMap<String, Vec<Tp>> = BTreeMap::new();
            for (m, p) in claims {
                if m < members && p < count {
                    owned.entry(format!("m{m}")).or_default().push(("t".to_string(), p));
                }
            }
            let first = cooperative_sticky(&subs, &owned, &counts);
            let current = current_owners(&subs, &owned);
            let mut seen = BTreeSet::new();
            for (m, parts) in &first {
                for tp in parts {
                    prop_assert!(seen.insert(tp.clone()), "twice: {:?}", tp);
                    prop_assert!(current.get(tp).is_none_or(|o| o == m), "{:?} still owned elsewhere", tp);
                }
            }
            // Everyone takes up the first generation (revoking the rest).
            let second = cooperative_sticky(&subs, &first, &counts);
            let total: usize = second.values().map(Vec::len).sum();
            prop_assert_eq!(total, count as usize);
            let loads: Vec<usize> = second.values().map(Vec::len).collect();
            prop_assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{:?}", loads);
            for (m, parts) in &first {
                let kept: BTreeSet<&Tp> = second[m].iter().collect();
                // A member at or below its fair share keeps everything.
                if parts.len() <= count as usize / members {
                    prop_assert!(parts.iter().all(|tp| kept.contains(tp)), "{} lost a partition it could keep", m);
                }
            }
        }
    }
}
