use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::*;

fn topics(spec: &[(&str, i32)]) -> BTreeMap<String, i32> {
    spec.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn group() -> ConsumerGroup {
    ConsumerGroup::new("g", ConsumerConfig::default())
}

fn join(id: &str, subscribed: &[&str]) -> HeartbeatInput {
    HeartbeatInput {
        member_id: id.into(),
        member_epoch: JOIN_EPOCH,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..Default::default()
    }
}

fn beat(id: &str, epoch: i32, owned: &Assignment) -> HeartbeatInput {
    HeartbeatInput {
        member_id: id.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..Default::default()
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// A member as its client sees it: what it owns and its epoch.
#[derive(Debug, Clone, Default)]
struct Client {
    epoch: i32,
    owned: Assignment,
}

impl Client {
    /// Applies a response as a consumer does: the assignment replaces what
    /// it owns (revoked partitions are dropped, new ones taken).
    fn absorb(&mut self, out: &HeartbeatOutput) {
        assert_eq!(out.error, NONE, "{out:?}");
        self.epoch = out.member_epoch;
        if let Some(a) = &out.assignment {
            self.owned = a.clone();
        }
    }
}

fn assert_no_double_owner(clients: &BTreeMap<String, Client>) {
    let mut seen = BTreeMap::new();
    for (id, c) in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                if let Some(other) = seen.insert((t.clone(), *p), id.clone()) {
                    panic!("{t}-{p} owned by {other} and {id}");
                }
            }
        }
    }
}

#[test]
fn a_lone_member_gets_every_partition_and_the_group_epoch() {
    let mut g = group();
    let now = Instant::now();
    let out = g.heartbeat(join("a", &["t"]), &topics(&[("t", 4)]), now);
    assert_eq!(out.error, NONE);
    assert_eq!(out.member_epoch, g.group_epoch());
    assert_eq!(count(out.assignment.as_ref().unwrap()), 4);
    assert_eq!(out.heartbeat_interval_ms, 5000);
    assert_eq!(g.state(), ConsumerGroupState::Stable);
}

#[test]
fn a_partition_moves_only_after_its_owner_revokes_it() {
    let mut g = group();
    let t = topics(&[("t", 4)]);
    let now = Instant::now();
    let mut a = Client::default();
    a.absorb(&g.heartbeat(join("a", &["t"]), &t, now));
    let epoch_a = a.epoch;
    // b joins: its share is still held by a, so it gets nothing yet.
    let mut b = Client::default();
    b.absorb(&g.heartbeat(join("b", &["t"]), &t, now));
    assert_eq!(count(&b.owned), 0);
    assert_eq!(g.state(), ConsumerGroupState::Reconciling);
    // a is asked to give up two partitions, keeping its epoch.
    let out = g.heartbeat(beat("a", a.epoch, &a.owned), &t, now);
    a.absorb(&out);
    assert_eq!(a.epoch, epoch_a);
    assert_eq!(count(&a.owned), 2);
    assert_eq!(
        g.member("a").unwrap().state,
        MemberState::UnrevokedPartitions
    );
    // Still nothing for b until a acknowledges.
    let out = g.heartbeat(beat("b", b.epoch, &b.owned), &t, now);
    b.absorb(&out);
    assert_eq!(count(&b.owned), 0);
    assert_eq!(
        g.member("b").unwrap().state,
        MemberState::UnreleasedPartitions
    );
    // a's next heartbeat lists only its two: it moves to the new epoch.
    a.absorb(&g.heartbeat(beat("a", a.epoch, &a.owned), &t, now));
    assert!(a.epoch > epoch_a);
    b.absorb(&g.heartbeat(beat("b", b.epoch, &b.owned), &t, now));
    assert_eq!(count(&b.owned), 2);
    assert_eq!(a.epoch, b.epoch);
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    assert_no_double_owner(&[("a".into(), a), ("b".into(), b)].into());
}

#[test]
fn a_wrong_epoch_is_fenced_and_an_unknown_member_told_so() {
    let mut g = group();
    let t = topics(&[("t", 2)]);
    let now = Instant::now();
    let out = g.heartbeat(join("a", &["t"]), &t, now);
    let fenced = g.heartbeat(beat("a", out.member_epoch + 5, &Assignment::new()), &t, now);
    assert_eq!(fenced.error, FENCED_MEMBER_EPOCH);
    let unknown = g.heartbeat(beat("z", 1, &Assignment::new()), &t, now);
    assert_eq!(unknown.error, UNKNOWN_MEMBER_ID);
}

#[test]
fn a_v0_member_gets_a_generated_id() {
    let mut g = group();
    let mut input = join("", &["t"]);
    input.generated_member_id = "gen-1".into();
    let out = g.heartbeat(input, &topics(&[("t", 1)]), Instant::now());
    assert_eq!(out.member_id, "gen-1");
    assert!(g.member("gen-1").is_some());
}

#[test]
fn leaving_frees_partitions_for_the_others() {
    let mut g = group();
    let t = topics(&[("t", 4)]);
    let now = Instant::now();
    let mut clients: BTreeMap<String, Client> = BTreeMap::new();
    for id in ["a", "b"] {
        let mut c = Client::default();
        c.absorb(&g.heartbeat(join(id, &["t"]), &t, now));
        clients.insert(id.into(), c);
    }
    settle(&mut g, &mut clients, &t, now);
    let out = g.heartbeat(beat("a", LEAVE_EPOCH, &Assignment::new()), &t, now);
    assert_eq!(out.member_epoch, LEAVE_EPOCH);
    clients.remove("a");
    settle(&mut g, &mut clients, &t, now);
    assert_eq!(count(&clients["b"].owned), 4);
}

#[test]
fn an_expired_session_removes_the_member() {
    let mut g = group();
    let t = topics(&[("t", 2)]);
    let now = Instant::now();
    g.heartbeat(join("a", &["t"]), &t, now);
    let later = now + Duration::from_millis(45_001);
    assert_eq!(g.next_deadline(), Some(now + Duration::from_millis(45_000)));
    assert_eq!(g.on_timer(later), vec!["a".to_string()]);
    assert!(g.is_empty());
    assert_eq!(g.state(), ConsumerGroupState::Empty);
}

#[test]
fn a_member_that_never_revokes_is_fenced_after_its_rebalance_timeout() {
    let mut g = group();
    let t = topics(&[("t", 2)]);
    let now = Instant::now();
    let mut a = Client::default();
    a.absorb(&g.heartbeat(join("a", &["t"]), &t, now));
    g.heartbeat(join("b", &["t"]), &t, now);
    // a is told to revoke but keeps listing everything.
    let held = a.owned.clone();
    g.heartbeat(beat("a", a.epoch, &held), &t, now);
    g.heartbeat(beat("a", a.epoch, &held), &t, now + Duration::from_secs(10));
    assert!(
        g.on_timer(now + Duration::from_millis(30_001))
            .contains(&"a".to_string())
    );
    let b = g.heartbeat(
        beat("b", g.member("b").unwrap().member_epoch, &Assignment::new()),
        &t,
        now + Duration::from_secs(31),
    );
    let mut bc = Client::default();
    bc.absorb(&b);
    let b = g.heartbeat(
        beat("b", bc.epoch, &bc.owned),
        &t,
        now + Duration::from_secs(31),
    );
    bc.absorb(&b);
    assert_eq!(count(&bc.owned), 2);
}

#[test]
fn a_static_member_coming_back_keeps_its_partitions() {
    let mut g = group();
    let t = topics(&[("t", 4)]);
    let now = Instant::now();
    let mut first = join("a1", &["t"]);
    first.instance_id = Some("i".into());
    let out = g.heartbeat(first, &t, now);
    let epoch = out.member_epoch;
    let owned = out.assignment.unwrap();
    let left = g.heartbeat(beat("a1", STATIC_LEAVE_EPOCH, &owned), &t, now);
    assert_eq!(left.member_epoch, STATIC_LEAVE_EPOCH);
    // Another process with the same instance id is refused while one is active…
    let mut other = join("x", &["t"]);
    other.instance_id = Some("i".into());
    let mut back = join("a2", &["t"]);
    back.instance_id = Some("i".into());
    let out = g.heartbeat(back, &t, now);
    assert_eq!(out.error, NONE);
    assert_eq!(out.member_epoch, epoch);
    assert_eq!(out.assignment.unwrap(), owned);
    assert_eq!(g.group_epoch(), epoch, "no rebalance");
    assert_eq!(g.heartbeat(other, &t, now).error, UNRELEASED_INSTANCE_ID);
}

#[test]
fn a_regex_subscription_follows_new_topics() {
    let mut g = group();
    let now = Instant::now();
    let mut input = join("a", &[]);
    input.subscribed_topic_names = None;
    input.subscribed_topic_regex = Some("orders-.*".into());
    let out = g.heartbeat(input, &topics(&[("orders-eu", 1), ("payments", 1)]), now);
    let a = out.assignment.unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), ["orders-eu"]);
    let grown = topics(&[("orders-eu", 1), ("orders-us", 2), ("payments", 1)]);
    let out = g.heartbeat(beat("a", out.member_epoch, &a), &grown, now);
    assert_eq!(count(&out.assignment.unwrap()), 3);
    let mut bad = join("b", &[]);
    bad.subscribed_topic_regex = Some("(".into());
    assert_eq!(
        g.heartbeat(bad, &grown, now).error,
        INVALID_REGULAR_EXPRESSION
    );
    assert!(g.member("b").is_none());
}

#[test]
fn unknown_assignors_are_refused_and_known_ones_chosen() {
    let mut g = group();
    let t = topics(&[("t", 3), ("u", 3)]);
    let now = Instant::now();
    let mut bad = join("a", &["t"]);
    bad.server_assignor = Some("sticky".into());
    assert_eq!(g.heartbeat(bad, &t, now).error, UNSUPPORTED_ASSIGNOR);
    for id in ["a", "b"] {
        let mut input = join(id, &["t", "u"]);
        input.server_assignor = Some("range".into());
        g.heartbeat(input, &t, now);
    }
    let d = g.describe();
    assert_eq!(d.assignor, "range");
    let a = &d
        .members
        .iter()
        .find(|m| m.member.member_id == "a")
        .unwrap()
        .target;
    assert_eq!(a["t"], a["u"], "range co-partitions");
}

#[test]
fn commits_check_the_member_epoch() {
    let mut g = group();
    let out = g.heartbeat(join("a", &["t"]), &topics(&[("t", 1)]), Instant::now());
    assert_eq!(g.validate_commit("a", out.member_epoch, 9), Ok(()));
    assert_eq!(
        g.validate_commit("a", out.member_epoch - 1, 9),
        Err(STALE_MEMBER_EPOCH)
    );
    assert_eq!(g.validate_commit("b", 1, 9), Err(UNKNOWN_MEMBER_ID));
    assert_eq!(g.validate_commit("", -1, 9), Err(UNKNOWN_MEMBER_ID));
}

/// Heartbeats every client until nothing changes.
fn settle(
    g: &mut ConsumerGroup,
    clients: &mut BTreeMap<String, Client>,
    t: &BTreeMap<String, i32>,
    now: Instant,
) {
    for _ in 0..10 {
        let ids: Vec<String> = clients.keys().cloned().collect();
        for id in ids {
            let c = &clients[&id];
            let out = g.heartbeat(beat(&id, c.epoch, &c.owned), t, now);
            clients.get_mut(&id).unwrap().absorb(&out);
            assert_no_double_owner(clients);
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Join(u8),
    Leave(u8),
    Beat(u8),
    AddPartitions(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..6).prop_map(Step::Join),
        (0u8..6).prop_map(Step::Leave),
        (0u8..6).prop_map(Step::Beat),
        (0u8..6).prop_map(Step::Beat),
        (0u8..6).prop_map(Step::Beat),
        (1u8..4).prop_map(Step::AddPartitions),
    ]
}

proptest! {
    /// Whatever the order of joins, leaves, heartbeats and new partitions,
    /// no partition is ever owned by two clients, and once everyone keeps
    /// heartbeating the group is stable with every partition owned.
    #[test]
    fn no_partition_is_ever_owned_twice_and_the_group_settles(steps in prop::collection::vec(step(), 1..60)) {
        let mut g = group();
        let mut t = topics(&[("t", 6), ("u", 3)]);
        let now = Instant::now();
        let mut clients: BTreeMap<String, Client> = BTreeMap::new();
        for s in steps {
            match s {
                Step::Join(i) => {
                    let id = format!("m{i}");
                    if let std::collections::btree_map::Entry::Vacant(slot) = clients.entry(id.clone()) {
                        let subs: &[&str] = if i % 2 == 0 { &["t", "u"] } else { &["t"] };
                        let mut c = Client::default();
                        c.absorb(&g.heartbeat(join(&id, subs), &t, now));
                        slot.insert(c);
                    }
                }
                Step::Leave(i) => {
                    let id = format!("m{i}");
                    if let Some(c) = clients.remove(&id) {
                        let out = g.heartbeat(beat(&id, LEAVE_EPOCH, &c.owned), &t, now);
                        prop_assert_eq!(out.error, NONE);
                    }
                }
                Step::Beat(i) => {
                    let id = format!("m{i}");
                    if let Some(c) = clients.get(&id).cloned() {
                        let out = g.heartbeat(beat(&id, c.epoch, &c.owned), &t, now);
                        clients.get_mut(&id).unwrap().absorb(&out);
                    }
                }
                Step::AddPartitions(n) => {
                    *t.get_mut("t").unwrap() += i32::from(n);
                }
            }
            assert_no_double_owner(&clients);
        }
        settle(&mut g, &mut clients, &t, now);
        if !clients.is_empty() {
            prop_assert_eq!(g.state(), ConsumerGroupState::Stable);
            let owned: usize = clients.values().map(|c| count(&c.owned)).sum();
            let u_subscribed = clients.keys().any(|id| id.trim_start_matches('m').parse::<u8>().unwrap() % 2 == 0);
            let expected = t["t"] + if u_subscribed { t["u"] } else { 0 };
            prop_assert_eq!(owned, expected as usize);
        }
    }
}

/// A group above `inline_assignment_partitions` is assigned off the
/// heartbeat: the join is answered at once with nothing, the job the shell
/// takes computes the target, and the next heartbeat reconciles to it. A
/// job whose epoch was overtaken still installs (it is newer than the
/// current target) and the next one is due; only one job is out at a time.
#[test]
fn large_groups_are_assigned_off_the_heartbeat() {
    let t = topics(&[("t", 8)]);
    let now = Instant::now();
    let mut g = ConsumerGroup::new(
        "g",
        ConsumerConfig {
            inline_assignment_partitions: 4,
            ..ConsumerConfig::default()
        },
    );
    // The group's first assignment is made on the heartbeat, so the first
    // member's epoch is not 0.
    let mut a = Client::default();
    a.absorb(&g.heartbeat(join("a", &["t"]), &t, now));
    assert_eq!(count(&a.owned), 8);
    assert!(a.epoch > 0);
    assert!(g.take_assignment_job().is_none(), "nothing due");
    let mut b = Client::default();
    b.absorb(&g.heartbeat(join("b", &["t"]), &t, now));
    assert_eq!(count(&b.owned), 0, "not assigned on the heartbeat");
    assert!(b.epoch > 0, "the current assignment epoch: {b:?}");
    let job = g.take_assignment_job().expect("an assignment is due");
    assert!(g.take_assignment_job().is_none(), "one job at a time");
    // c joins while the job runs: the job's result predates it.
    let mut c = Client::default();
    c.absorb(&g.heartbeat(join("c", &["t"]), &t, now));
    g.install_assignment(Some(job.run()));
    a.absorb(&g.heartbeat(beat("a", a.epoch, &a.owned), &t, now));
    assert_eq!(count(&a.owned), 4, "the job's target: half to a");
    // c leaves again; the job its join made due still installs.
    g.heartbeat(beat("c", LEAVE_EPOCH, &c.owned), &t, now);
    let job = g.take_assignment_job().expect("c's join made another due");
    g.install_assignment(Some(job.run()));
    assert!(g.take_assignment_job().is_none());
    a.absorb(&g.heartbeat(beat("a", a.epoch, &a.owned), &t, now));
    assert_eq!(count(&a.owned), 4, "a gives up half");
    b.absorb(&g.heartbeat(beat("b", b.epoch, &b.owned), &t, now));
    a.absorb(&g.heartbeat(beat("a", a.epoch, &a.owned), &t, now));
    b.absorb(&g.heartbeat(beat("b", b.epoch, &b.owned), &t, now));
    assert_eq!((count(&a.owned), count(&b.owned)), (4, 4));
    assert_eq!(g.state(), ConsumerGroupState::Stable);
    // A failed job is handed out again.
    g.heartbeat(join("d", &["t"]), &t, now);
    assert!(g.take_assignment_job().is_some());
    g.install_assignment(None);
    assert!(g.take_assignment_job().is_some());
}
