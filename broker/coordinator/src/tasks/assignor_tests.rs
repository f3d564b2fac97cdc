use std::collections::{BTreeMap, BTreeSet, HashMap};

use proptest::prelude::*;

use super::*;

fn stateless(n: i32) -> Vec<TaskSpec> {
    (0..n)
        .map(|p| TaskSpec {
            id: TaskId::new("0", p),
            stateful: false,
        })
        .collect()
}

fn stateful(n: i32) -> Vec<TaskSpec> {
    (0..n)
        .map(|p| TaskSpec {
            id: TaskId::new("s", p),
            stateful: true,
        })
        .collect()
}

fn member(id: &str) -> MemberSpec {
    MemberSpec {
        member_id: id.into(),
        process_id: id.into(),
        weight: 1,
        ..MemberSpec::default()
    }
}

fn with_previous(mut m: MemberSpec, out: &TaskAssignment) -> MemberSpec {
    m.previous = out.get(&m.member_id).cloned().unwrap_or_default();
    m
}

fn owners(out: &TaskAssignment) -> BTreeMap<TaskId, Vec<String>> {
    let mut owners: BTreeMap<TaskId, Vec<String>> = BTreeMap::new();
    for (m, t) in out {
        for task in &t.active {
            owners.entry(task.clone()).or_default().push(m.clone());
        }
    }
    owners
}

/// Every task has exactly one active owner and no member holds a task in
/// two roles.
fn assert_valid(tasks: &[TaskSpec], out: &TaskAssignment) {
    let owners = owners(out);
    for t in tasks {
        assert_eq!(
            owners.get(&t.id).map(Vec::len),
            Some(1),
            "{} owners: {owners:?}",
            t.id
        );
    }
    assert_eq!(owners.len(), tasks.len());
    for (m, t) in out {
        assert!(t.active.is_disjoint(&t.standby), "{m}: {t:?}");
        assert!(t.active.is_disjoint(&t.warmup), "{m}: {t:?}");
        assert!(t.standby.is_disjoint(&t.warmup), "{m}: {t:?}");
    }
}

fn assert_balanced(tasks: usize, members: &[MemberSpec], out: &TaskAssignment) {
    let total: usize = members.iter().map(|m| m.weight.max(1) as usize).sum();
    for m in members {
        let share = tasks as f64 * m.weight.max(1) as f64 / total as f64;
        let got = out[&m.member_id].active.len() as f64;
        assert!(
            (got - share).abs() < 1.0,
            "{} has {got}, share {share}",
            m.member_id
        );
    }
}

fn config(standbys: u32) -> AssignorConfig {
    AssignorConfig {
        num_standby_replicas: standbys,
        ..AssignorConfig::default()
    }
}

#[test]
fn no_members_no_assignment_and_no_tasks_empty_targets() {
    assert!(assign(&stateless(4), &[], &config(0)).is_empty());
    let out = assign(&[], &[member("a")], &config(1));
    assert_eq!(out["a"], Tasks::default());
}

#[test]
fn weights_share_tasks_in_proportion() {
    let mut heavy = member("a");
    heavy.weight = 3;
    let members = [heavy, member("b")];
    let out = assign(&stateless(8), &members, &config(0));
    assert_eq!(out["a"].active.len(), 6);
    assert_eq!(out["b"].active.len(), 2);
}

#[test]
fn a_late_member_warms_up_before_it_takes_stateful_tasks() {
    let tasks = stateful(6);
    let first = assign(&tasks, &[member("a"), member("b")], &config(0));
    assert_balanced(6, &[member("a"), member("b")], &first);
    let members = [
        with_previous(member("a"), &first),
        with_previous(member("b"), &first),
        member("c"),
    ];
    let second = assign(&tasks, &members, &config(0));
    assert_valid(&tasks, &second);
    // Nothing moves to c yet; c restores two tasks (max.warmup.replicas).
    assert!(second["c"].active.is_empty(), "{second:?}");
    assert_eq!(second["c"].warmup.len(), 2);
    for m in ["a", "b"] {
        assert_eq!(second[m].active, first[m].active);
    }
    // c reports its warm-ups caught up: they become its active tasks.
    let mut c = with_previous(member("c"), &second);
    c.lags = second["c"].warmup.iter().map(|t| (t.clone(), 5)).collect();
    let members = [
        with_previous(member("a"), &second),
        with_previous(member("b"), &second),
        c,
    ];
    let third = assign(&tasks, &members, &config(0));
    assert_valid(&tasks, &third);
    assert_eq!(third["c"].active, second["c"].warmup);
    assert!(third["c"].warmup.is_empty());
    assert_balanced(6, &members, &third);
}

#[test]
fn a_caught_up_standby_takes_over_a_lost_members_task() {
    let tasks = stateful(4);
    let members = [member("a"), member("b"), member("c")];
    let first = assign(&tasks, &members, &config(1));
    assert_valid(&tasks, &first);
    // a dies; whoever had standbys of a's tasks reports them caught up.
    let lost = first["a"].active.clone();
    assert!(!lost.is_empty());
    let survivors: Vec<MemberSpec> = ["b", "c"]
        .iter()
        .map(|id| {
            let mut m = with_previous(member(id), &first);
            m.lags = m.previous.standby.iter().map(|t| (t.clone(), 0)).collect();
            m
        })
        .collect();
    let second = assign(&tasks, &survivors, &config(1));
    assert_valid(&tasks, &second);
    for task in &lost {
        let standby_of = survivors
            .iter()
            .find(|m| m.previous.standby.contains(task))
            .expect("every stateful task had a standby");
        assert!(
            second[&standby_of.member_id].active.contains(task),
            "{task} should go to its standby {}: {second:?}",
            standby_of.member_id
        );
    }
    assert!(second.values().all(|t| t.warmup.is_empty()));
}

#[test]
fn standbys_spread_across_racks() {
    let tasks = stateful(6);
    let members: Vec<MemberSpec> = (0..6)
        .map(|i| {
            let mut m = member(&format!("m{i}"));
            m.rack = Some(format!("rack{}", i % 3));
            m
        })
        .collect();
    let out = assign(&tasks, &members, &config(2));
    assert_valid(&tasks, &out);
    let rack_of: HashMap<&str, &str> = members
        .iter()
        .map(|m| (m.member_id.as_str(), m.rack.as_deref().unwrap()))
        .collect();
    for t in &tasks {
        let racks: BTreeSet<&str> = out
            .iter()
            .filter(|(_, a)| a.active.contains(&t.id) || a.standby.contains(&t.id))
            .map(|(m, _)| rack_of[m.as_str()])
            .collect();
        assert_eq!(racks.len(), 3, "{}: {out:?}", t.id);
    }
}

#[test]
fn standbys_never_share_the_actives_process() {
    let tasks = stateful(4);
    let mut members = vec![member("a1"), member("a2"), member("b")];
    members[0].process_id = "pa".into();
    members[1].process_id = "pa".into();
    let out = assign(&tasks, &members, &config(1));
    for (m, t) in &out {
        for task in &t.standby {
            let active = owners(&out)[task][0].clone();
            let process = |id: &str| {
                members
                    .iter()
                    .find(|m| m.member_id == id)
                    .unwrap()
                    .process_id
                    .clone()
            };
            assert_ne!(process(m), process(&active), "{task}: {out:?}");
        }
    }
}

fn members_strategy() -> impl Strategy<Value = Vec<(u32, u8)>> {
    prop::collection::vec((1u32..4, 0u8..3), 1..9)
}

proptest! {
    #[test]
    fn stateless_tasks_are_valid_balanced_and_sticky(
        n in 0i32..60,
        before in members_strategy(),
        keep in prop::collection::vec(any::<bool>(), 8),
        joiners in 0usize..3,
    ) {
        let tasks = stateless(n);
        let members: Vec<MemberSpec> = before
            .iter()
            .enumerate()
            .map(|(i, &(w, _))| MemberSpec { weight: w, ..member(&format!("m{i}")) })
            .collect();
        let first = assign(&tasks, &members, &config(0));
        assert_valid(&tasks, &first);
        assert_balanced(tasks.len(), &members, &first);
        // Stable: the same group again moves nothing.
        let again: Vec<MemberSpec> = members.iter().cloned().map(|m| with_previous(m, &first)).collect();
        prop_assert_eq!(&assign(&tasks, &again, &config(0)), &first);
        // Sticky: after leaves and joins, each survivor keeps as much as
        // its new share allows.
        let mut next: Vec<MemberSpec> = again
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep[*i % keep.len()] || *i == 0)
            .map(|(_, m)| m)
            .collect();
        next.extend((0..joiners).map(|j| member(&format!("new{j}"))));
        let second = assign(&tasks, &next, &config(0));
        assert_valid(&tasks, &second);
        assert_balanced(tasks.len(), &next, &second);
        for m in &next {
            let kept = m.previous.active.intersection(&second[&m.member_id].active).count();
            prop_assert_eq!(kept, m.previous.active.len().min(second[&m.member_id].active.len()));
        }
    }

    #[test]
    fn stateful_tasks_stay_with_caught_up_state(
        n in 1i32..30,
        shape in members_strategy(),
        lags in prop::collection::vec(prop::option::of(0i64..30_000), 0..240),
        owned in prop::collection::vec(prop::option::of(0usize..9), 30),
        standbys in 0u32..3,
        warmups in 0u32..4,
    ) {
        let tasks = stateful(n);
        let mut members: Vec<MemberSpec> = shape
            .iter()
            .enumerate()
            .map(|(i, &(w, rack))| MemberSpec {
                weight: w,
                rack: Some(format!("r{rack}")),
                ..member(&format!("m{i}"))
            })
            .collect();
        let k = members.len();
        for (t, o) in owned.iter().take(n as usize).enumerate() {
            if let Some(o) = o.filter(|o| *o < k) {
                members[o].previous.active.insert(TaskId::new("s", t as i32));
            }
        }
        for (i, lag) in lags.iter().enumerate() {
            if let Some(lag) = lag {
                let t = TaskId::new("s", (i / k) as i32 % n);
                members[i % k].lags.insert(t, *lag);
            }
        }
        let config = AssignorConfig {
            num_standby_replicas: standbys,
            acceptable_recovery_lag: 10_000,
            max_warmup_replicas: warmups,
        };
        let out = assign(&tasks, &members, &config);
        assert_valid(&tasks, &out);
        let caught_up = |m: &MemberSpec, t: &TaskId| {
            m.previous.active.contains(t) || m.lags.get(t).is_some_and(|l| *l <= 10_000)
        };
        let mut warm = 0;
        for m in &members {
            let a = &out[&m.member_id];
            warm += a.warmup.len();
            for t in &a.active {
                // On a member without its state only if nobody has it.
                if !caught_up(m, t) {
                    prop_assert!(!members.iter().any(|o| caught_up(o, t)), "{t} on {}: {out:?}", m.member_id);
                }
            }
            for t in &a.warmup {
                prop_assert!(!caught_up(m, t));
            }
        }
        prop_assert!(warm <= warmups as usize);
        for t in &tasks {
            let count = out.values().filter(|a| a.standby.contains(&t.id)).count();
            let spare = members.len() - 1 - out.values().filter(|a| a.warmup.contains(&t.id)).count();
            prop_assert_eq!(count, (standbys as usize).min(spare));
        }
        // Where every member is caught up, the result is also balanced.
        if tasks.iter().all(|t| members.iter().all(|m| caught_up(m, &t.id))) {
            assert_balanced(tasks.len(), &members, &out);
        }
    }
}

#[test]
fn a_thousand_members_ten_thousand_tasks() {
    // A correctness check at the benchmark's size (the timing is in
    // `examples/task_assignor_cost.rs`).
    let tasks = stateless(10_000);
    let members: Vec<MemberSpec> = (0..1000).map(|i| member(&format!("m{i:04}"))).collect();
    let out = assign(&tasks, &members, &config(0));
    assert_valid(&tasks, &out);
    assert_balanced(10_000, &members, &out);
}
