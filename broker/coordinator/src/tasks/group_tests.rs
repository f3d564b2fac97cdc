use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::tasks::topology::{InternalTopic, Subtopology};

/// Topics as a broker would report them.
#[derive(Default)]
struct Topics {
    partitions: BTreeMap<String, i32>,
    ends: HashMap<(String, i32), i64>,
}

impl TopicView for Topics {
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.partitions.get(topic).copied()
    }
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.ends.get(&(topic.to_owned(), partition)).copied()
    }
}

const CHANGELOG: &str = "app-store-changelog";

/// Subtopology "0" counts `in` (8 partitions) in a store; "1" maps `in2`
/// (4 partitions) without state.
fn topology() -> Topology {
    Topology {
        epoch: 1,
        subtopologies: vec![
            Subtopology {
                id: "0".into(),
                source_topics: vec!["in".into()],
                changelogs: vec![InternalTopic {
                    name: CHANGELOG.into(),
                    replication_factor: -1,
                    ..InternalTopic::default()
                }],
                ..Subtopology::default()
            },
            Subtopology {
                id: "1".into(),
                source_topics: vec!["in2".into()],
                ..Subtopology::default()
            },
        ],
        ..Topology::default()
    }
}

fn topics() -> Topics {
    let mut t = Topics::default();
    t.partitions.insert("in".into(), 8);
    t.partitions.insert("in2".into(), 4);
    t.partitions.insert(CHANGELOG.into(), 8);
    for p in 0..8 {
        t.ends.insert((CHANGELOG.into(), p), 50_000);
    }
    t
}

fn config() -> TaskGroupConfig {
    TaskGroupConfig::default()
}

/// The same tasks, none with state.
fn stateless_topology() -> Topology {
    let mut t = topology();
    t.subtopologies[0].changelogs.clear();
    t
}

fn join(g: &mut TaskGroup, id: &str, topics: &Topics, now: Instant) -> HeartbeatOutput {
    join_with(g, id, topology(), topics, now)
}

fn join_with(
    g: &mut TaskGroup,
    id: &str,
    topology: Topology,
    topics: &Topics,
    now: Instant,
) -> HeartbeatOutput {
    g.heartbeat(
        HeartbeatInput {
            member_id: id.into(),
            member_epoch: JOIN_EPOCH,
            topology: Some(topology),
            rebalance_timeout_ms: 1_000_000_000,
            ..HeartbeatInput::default()
        },
        topics,
        now,
    )
}

fn beat(
    g: &mut TaskGroup,
    id: &str,
    epoch: i32,
    owned: &Tasks,
    topics: &Topics,
    now: Instant,
) -> HeartbeatOutput {
    g.heartbeat(
        HeartbeatInput {
            member_id: id.into(),
            member_epoch: epoch,
            owned: Some(owned.clone()),
            ..HeartbeatInput::default()
        },
        topics,
        now,
    )
}

#[test]
fn the_first_heartbeat_must_carry_a_valid_topology() {
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let out = g.heartbeat(
        HeartbeatInput {
            member_id: "a".into(),
            ..HeartbeatInput::default()
        },
        &topics(),
        now,
    );
    assert_eq!(out.error, INVALID_REQUEST);
    assert!(g.is_empty());
    let mut bad = topology();
    bad.subtopologies[1].id = "0".into();
    let out = g.heartbeat(
        HeartbeatInput {
            member_id: "a".into(),
            topology: Some(bad),
            ..HeartbeatInput::default()
        },
        &topics(),
        now,
    );
    assert_eq!(out.error, INVALID_REQUEST);
    assert!(out.message.unwrap().contains("declared twice"));
}

#[test]
fn members_join_one_by_one_and_tasks_move_only_once_released() {
    let topics = topics();
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let a = join_with(&mut g, "a", stateless_topology(), &topics, now);
    assert_eq!(a.error, NONE, "{a:?}");
    let a_tasks = a.assignment.unwrap();
    assert_eq!(a_tasks.active.len(), 12);
    assert_eq!(g.state(), TaskGroupState::Stable);

    let b = join_with(&mut g, "b", stateless_topology(), &topics, now);
    // b's half is still a's: b waits for a to revoke it.
    assert!(b.assignment.unwrap().active.is_empty());
    let a2 = beat(&mut g, "a", a.member_epoch, &a_tasks, &topics, now);
    let a_kept = a2.assignment.unwrap();
    assert_eq!(a_kept.active.len(), 6);
    assert_eq!(
        a2.member_epoch, a.member_epoch,
        "epoch waits for the revocation"
    );
    // Not yet acknowledged: b still gets nothing, and asks again soon.
    let b2 = beat(&mut g, "b", b.member_epoch, &Tasks::default(), &topics, now);
    assert!(b2.assignment.unwrap().active.is_empty());
    assert_eq!(
        b2.heartbeat_interval_ms, 200,
        "a fifth of the interval while waiting"
    );
    assert_eq!(g.state(), TaskGroupState::Reconciling);
    let a3 = beat(&mut g, "a", a.member_epoch, &a_kept, &topics, now);
    assert_eq!(a3.member_epoch, b.member_epoch);
    let b3 = beat(&mut g, "b", b.member_epoch, &Tasks::default(), &topics, now);
    let b_tasks = b3.assignment.unwrap();
    assert_eq!(b_tasks.active.len(), 6);
    assert!(b_tasks.active.is_disjoint(&a_kept.active));
    assert_eq!(b3.heartbeat_interval_ms, 1000);
    assert_eq!(g.state(), TaskGroupState::Stable);
}

#[test]
fn a_member_that_misses_its_session_loses_its_tasks() {
    let topics = topics();
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let a = join_with(&mut g, "a", stateless_topology(), &topics, now);
    let b = join_with(&mut g, "b", stateless_topology(), &topics, now);
    let a_tasks = a.assignment.unwrap();
    let a2 = beat(&mut g, "a", a.member_epoch, &a_tasks, &topics, now);
    beat(
        &mut g,
        "a",
        a.member_epoch,
        &a2.assignment.unwrap(),
        &topics,
        now,
    );
    // b keeps beating, a goes silent.
    let later = now + Duration::from_secs(30);
    let b2 = beat(
        &mut g,
        "b",
        b.member_epoch,
        &Tasks::default(),
        &topics,
        later,
    );
    assert_eq!(b2.assignment.unwrap().active.len(), 6);
    let expired = g.on_timer(now + Duration::from_secs(46), &topics);
    assert_eq!(expired, ["a"]);
    let b3 = beat(
        &mut g,
        "b",
        b2.member_epoch,
        &Tasks::default(),
        &topics,
        now + Duration::from_secs(46),
    );
    assert_eq!(b3.assignment.unwrap().active.len(), 12);
    assert_eq!(
        beat(
            &mut g,
            "a",
            a.member_epoch,
            &Tasks::default(),
            &topics,
            later
        )
        .error,
        UNKNOWN_MEMBER_ID
    );
}

#[test]
fn a_zombie_epoch_is_fenced() {
    let topics = topics();
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let a = join(&mut g, "a", &topics, now);
    let out = beat(
        &mut g,
        "a",
        a.member_epoch + 5,
        &Tasks::default(),
        &topics,
        now,
    );
    assert_eq!(out.error, FENCED_MEMBER_EPOCH);
}

#[test]
fn missing_internal_topics_hold_the_group_until_created() {
    let mut topics = topics();
    topics.partitions.remove(CHANGELOG);
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let a = join(&mut g, "a", &topics, now);
    assert_eq!(a.statuses[0].code, StatusCode::MissingInternalTopics);
    assert!(a.assignment.unwrap().active.is_empty());
    assert_eq!(g.state(), TaskGroupState::NotReady);
    let missing = g.missing_internal_topics();
    assert_eq!(missing.len(), 1);
    assert_eq!(
        (missing[0].name.as_str(), missing[0].partitions),
        (CHANGELOG, 8)
    );
    topics.partitions.insert(CHANGELOG.into(), 8);
    let a2 = beat(&mut g, "a", a.member_epoch, &Tasks::default(), &topics, now);
    assert!(a2.statuses.is_empty(), "{:?}", a2.statuses);
    assert_eq!(a2.assignment.unwrap().active.len(), 12);
    assert!(a2.member_epoch > a.member_epoch);
}

#[test]
fn a_late_member_warms_up_then_takes_over_once_caught_up() {
    let topics = topics();
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let a = join(&mut g, "a", &topics, now);
    let a_tasks = a.assignment.unwrap();
    let b = join(&mut g, "b", &topics, now);
    // Stateless tasks move; stateful ones stay with a while b warms up.
    let a2 = beat(&mut g, "a", a.member_epoch, &a_tasks, &topics, now);
    let a_kept = a2.assignment.unwrap();
    beat(&mut g, "a", a.member_epoch, &a_kept, &topics, now);
    let b2 = beat(&mut g, "b", b.member_epoch, &Tasks::default(), &topics, now);
    let b_tasks = b2.assignment.unwrap();
    assert!(
        b_tasks.active.iter().all(|t| t.subtopology == "1"),
        "{b_tasks:?}"
    );
    assert_eq!(b_tasks.warmup.len(), 2, "{b_tasks:?}");
    // b reports its warm-ups restored to within the acceptable lag.
    let offsets: HashMap<TaskId, i64> =
        b_tasks.warmup.iter().map(|t| (t.clone(), 49_990)).collect();
    let b3 = g.heartbeat(
        HeartbeatInput {
            member_id: "b".into(),
            member_epoch: b2.member_epoch,
            owned: Some(b_tasks.clone()),
            offsets: Some(offsets),
            ..HeartbeatInput::default()
        },
        &topics,
        now,
    );
    assert!(b3.member_epoch >= b2.member_epoch);
    // a gives them up, then b runs them.
    let a3 = beat(&mut g, "a", a2.member_epoch, &a_kept, &topics, now);
    let a_now = a3.assignment.unwrap();
    for t in &b_tasks.warmup {
        assert!(!a_now.active.contains(t), "{t} still on a");
    }
    beat(&mut g, "a", a3.member_epoch, &a_now, &topics, now);
    let b4 = beat(
        &mut g,
        "b",
        b3.member_epoch,
        &b3.assignment.clone().unwrap_or(b_tasks.clone()),
        &topics,
        now,
    );
    let b_now = b4.assignment.unwrap();
    assert!(b_tasks.warmup.is_subset(&b_now.active), "{b_now:?}");
}

#[test]
fn members_learn_who_serves_which_partitions() {
    let topics = topics();
    let mut g = TaskGroup::new("app", config());
    let now = Instant::now();
    let out = g.heartbeat(
        HeartbeatInput {
            member_id: "a".into(),
            member_epoch: JOIN_EPOCH,
            topology: Some(topology()),
            endpoint: Some(Endpoint {
                host: "pod-a".into(),
                port: 8080,
            }),
            ..HeartbeatInput::default()
        },
        &topics,
        now,
    );
    let endpoints = out.endpoints.expect("a new member has no endpoint map");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0].endpoint.host, "pod-a");
    assert_eq!(endpoints[0].active.len(), 12);
    assert!(endpoints[0].active.contains(&("in".to_string(), 7)));
    let again = g.heartbeat(
        HeartbeatInput {
            member_id: "a".into(),
            member_epoch: out.member_epoch,
            endpoint_epoch: out.endpoint_epoch,
            ..HeartbeatInput::default()
        },
        &topics,
        now,
    );
    assert_eq!(again.endpoints, None, "unchanged map not resent");
}

/// A member as the property test drives it: what it really runs.
#[derive(Debug, Default)]
struct SimMember {
    epoch: i32,
    running: BTreeSet<TaskId>,
    told: Tasks,
    crashed: bool,
}

#[derive(Debug, Clone)]
enum Step {
    Join,
    /// Heartbeat member `n`; `ack` = stop revoked tasks first.
    Beat(usize, bool),
    Leave(usize),
    Crash(usize),
    /// Time passes beyond crashed members' sessions.
    Expire,
    Report(usize, i64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => Just(Step::Join),
        6 => (0usize..6, any::<bool>()).prop_map(|(n, ack)| Step::Beat(n, ack)),
        1 => (0usize..6).prop_map(Step::Leave),
        1 => (0usize..6).prop_map(Step::Crash),
        1 => Just(Step::Expire),
        1 => (0usize..6, 0i64..60_000).prop_map(|(n, o)| Step::Report(n, o)),
    ]
}

/// A simulated member takes in a heartbeat's answer; `ack` = it stops
/// revoked tasks at once.
fn apply(sim: &mut SimMember, out: &HeartbeatOutput, ack: bool) {
    if out.error != NONE {
        // Fenced or unknown: it stops everything and rejoins later.
        sim.running.clear();
        sim.epoch = -1;
        return;
    }
    sim.epoch = out.member_epoch;
    if let Some(a) = &out.assignment {
        sim.told = a.clone();
        sim.running.extend(a.active.iter().cloned());
    }
    if ack {
        sim.running.retain(|t| sim.told.active.contains(t));
    }
}

/// Time passes beyond crashed members' sessions (the live ones beat in
/// between) and the crashed ones are dropped.
fn expire(g: &mut TaskGroup, sims: &mut BTreeMap<String, SimMember>, now: &mut Instant) {
    let topics = topics();
    *now += Duration::from_secs(30);
    for (id, sim) in sims.iter_mut().filter(|(_, s)| !s.crashed && s.epoch > 0) {
        let owned = Tasks {
            active: sim.running.clone(),
            ..sim.told.clone()
        };
        let out = beat(g, id, sim.epoch, &owned, &topics, *now);
        apply(sim, &out, false);
    }
    *now += Duration::from_secs(20);
    g.on_timer(*now, &topics);
    sims.retain(|_, s| !s.crashed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn no_task_ever_runs_twice(steps in prop::collection::vec(step(), 1..120)) {
        let topics = topics();
        let mut config = config();
        config.assignor.num_standby_replicas = 1;
        let mut g = TaskGroup::new("app", config);
        let mut now = Instant::now();
        let mut sims: BTreeMap<String, SimMember> = BTreeMap::new();
        let mut next = 0;
        for s in steps {
            let ids: Vec<String> = sims.keys().cloned().collect();
            let pick = |n: usize| ids.get(n % ids.len().max(1)).cloned();
            match s {
                Step::Join => {
                    let id = format!("m{next}");
                    next += 1;
                    let out = join(&mut g, &id, &topics, now);
                    let mut sim = SimMember::default();
                    apply(&mut sim, &out, true);
                    sims.insert(id, sim);
                }
                Step::Beat(n, ack) => {
                    let Some(id) = pick(n) else { continue };
                    let sim = sims.get_mut(&id).unwrap();
                    if sim.crashed {
                        continue;
                    }
                    let out = if sim.epoch < 0 {
                        sim.running.clear();
                        join(&mut g, &id, &topics, now)
                    } else {
                        let owned = Tasks { active: sim.running.clone(), ..sim.told.clone() };
                        beat(&mut g, &id, sim.epoch, &owned, &topics, now)
                    };
                    apply(sim, &out, ack);
                }
                Step::Leave(n) => {
                    let Some(id) = pick(n) else { continue };
                    if sims[&id].crashed {
                        continue;
                    }
                    sims.remove(&id);
                    g.heartbeat(HeartbeatInput { member_id: id, member_epoch: LEAVE_EPOCH, ..HeartbeatInput::default() }, &topics, now);
                }
                Step::Crash(n) => {
                    let Some(id) = pick(n) else { continue };
                    let sim = sims.get_mut(&id).unwrap();
                    sim.crashed = true;
                    sim.running.clear();
                }
                Step::Expire => expire(&mut g, &mut sims, &mut now),
                Step::Report(n, offset) => {
                    let Some(id) = pick(n) else { continue };
                    let sim = sims.get_mut(&id).unwrap();
                    if sim.crashed || sim.epoch <= 0 {
                        continue;
                    }
                    let offsets = sim.told.warmup.iter().chain(&sim.told.standby).map(|t| (t.clone(), offset)).collect();
                    let out = g.heartbeat(HeartbeatInput {
                        member_id: id.clone(),
                        member_epoch: sim.epoch,
                        owned: Some(Tasks { active: sim.running.clone(), ..sim.told.clone() }),
                        offsets: Some(offsets),
                        ..HeartbeatInput::default()
                    }, &topics, now);
                    apply(sim, &out, true);
                }
            }
            let mut seen: BTreeMap<&TaskId, &str> = BTreeMap::new();
            for (id, sim) in &sims {
                for t in &sim.running {
                    if let Some(other) = seen.insert(t, id) {
                        prop_assert!(false, "{t} runs on {other} and {id}");
                    }
                }
            }
        }
        // Crashed members expire; then everyone beating and acknowledging
        // converges: every task runs once.
        expire(&mut g, &mut sims, &mut now);
        if !sims.is_empty() {
            for _ in 0..8 {
                for (id, sim) in sims.iter_mut().filter(|(_, s)| !s.crashed) {
                    let out = if sim.epoch < 0 {
                        join(&mut g, id, &topics, now)
                    } else {
                        let owned = Tasks { active: sim.running.clone(), ..sim.told.clone() };
                        beat(&mut g, id, sim.epoch, &owned, &topics, now)
                    };
                    apply(sim, &out, true);
                }
            }
            let running: usize = sims.values().map(|s| s.running.len()).sum();
            prop_assert_eq!(running, 12, "{:?}", sims);
            prop_assert_eq!(g.state(), TaskGroupState::Stable);
        }
    }
}
