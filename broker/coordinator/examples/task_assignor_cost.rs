//! Task assignor cost: how long `tasks::assignor::assign` takes for 1,000
//! members × 10,000 tasks (issue "Task groups", goal ≤ 10 ms).
//!
//! Cases, each on the previous case's result where it says so:
//! - `stateless fresh`: no previous owners;
//! - `stateless join`: the fresh result, plus a 1,001st member with nothing;
//! - `stateless leave`: the fresh result, one member gone;
//! - `stateful fresh`: every task has a changelog, one standby each;
//! - `stateful join`: that result, every member reporting its standbys
//!   caught up, plus a new member without state (it gets warm-ups);
//! - `stateful crash`: one member gone, its standbys taking over.
//!
//! Median and max over `ITERS` runs (default 20) after two warm-up runs;
//! every result is checked (one active owner per task). `moved` counts
//! active tasks whose owner changed.
//!
//! ```sh
//! CARGO_TARGET_DIR=/var/cache/weir-dev/target-release \
//!   nice -n 19 cargo run --release -p weir-coordinator --example task_assignor_cost
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weir_coordinator::tasks::TaskId;
use weir_coordinator::tasks::assignor::{
    AssignorConfig, MemberSpec, TaskAssignment, TaskSpec, assign,
};

const MEMBERS: usize = 1000;
const TASKS: i32 = 10_000;

/// Member ids in no particular order of their index, as UUIDs are.
fn member(i: usize) -> MemberSpec {
    let scrambled = (i as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17);
    let id = format!("{scrambled:016x}-{i}");
    MemberSpec {
        member_id: id.clone(),
        process_id: id,
        rack: Some(format!("rack-{}", i % 3)),
        weight: 1,
        ..MemberSpec::default()
    }
}

fn tasks(stateful: bool) -> Vec<TaskSpec> {
    // Ten subtopologies of a thousand partitions each.
    (0..TASKS)
        .map(|t| TaskSpec {
            id: TaskId::new((t / 1000).to_string(), t % 1000),
            stateful,
        })
        .collect()
}

fn with_previous(
    members: &[MemberSpec],
    previous: &TaskAssignment,
    caught_up: bool,
) -> Vec<MemberSpec> {
    members
        .iter()
        .map(|m| {
            let mut m = m.clone();
            m.previous = previous.get(&m.member_id).cloned().unwrap_or_default();
            if caught_up {
                m.lags = m.previous.standby.iter().map(|t| (t.clone(), 0)).collect();
            }
            m
        })
        .collect()
}

fn check(tasks: &[TaskSpec], out: &TaskAssignment) {
    let mut owners: HashMap<&TaskId, usize> = HashMap::new();
    for t in out.values().flat_map(|a| &a.active) {
        *owners.entry(t).or_default() += 1;
    }
    assert_eq!(owners.len(), tasks.len(), "every task owned");
    assert!(owners.values().all(|&n| n == 1), "one owner per task");
}

fn moved(before: &TaskAssignment, after: &TaskAssignment) -> usize {
    let owner: HashMap<&TaskId, &String> = before
        .iter()
        .flat_map(|(m, a)| a.active.iter().map(move |t| (t, m)))
        .collect();
    after
        .iter()
        .flat_map(|(m, a)| a.active.iter().map(move |t| (t, m)))
        .filter(|(t, m)| owner.get(t) != Some(m))
        .count()
}

fn time(
    name: &str,
    tasks: &[TaskSpec],
    members: &[MemberSpec],
    config: &AssignorConfig,
    previous: Option<&TaskAssignment>,
) -> TaskAssignment {
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut samples = Vec::with_capacity(iters);
    let mut out = TaskAssignment::new();
    for i in 0..iters + 2 {
        let start = Instant::now();
        out = assign(tasks, members, config);
        if i >= 2 {
            samples.push(start.elapsed());
        }
    }
    check(tasks, &out);
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let warmups: usize = out.values().map(|a| a.warmup.len()).sum();
    let standbys: usize = out.values().map(|a| a.standby.len()).sum();
    println!(
        "{name:<16} median {:>7.2} ms  max {:>7.2} ms  moved {:>5}  standbys {:>5}  warm-ups {}",
        ms(samples[samples.len() / 2]),
        ms(*samples.last().expect("samples")),
        previous.map_or(0, |p| moved(p, &out)),
        standbys,
        warmups
    );
    out
}

fn main() {
    let members: Vec<MemberSpec> = (0..MEMBERS).map(member).collect();
    let plain = AssignorConfig::default();
    let stateless = tasks(false);
    let fresh = time("stateless fresh", &stateless, &members, &plain, None);
    let mut joined = with_previous(&members, &fresh, false);
    joined.push(member(MEMBERS));
    time("stateless join", &stateless, &joined, &plain, Some(&fresh));
    let left = with_previous(&members[1..], &fresh, false);
    time("stateless leave", &stateless, &left, &plain, Some(&fresh));

    let standby = AssignorConfig {
        num_standby_replicas: 1,
        ..AssignorConfig::default()
    };
    let stateful = tasks(true);
    let fresh = time("stateful fresh", &stateful, &members, &standby, None);
    let mut joined = with_previous(&members, &fresh, true);
    joined.push(member(MEMBERS));
    time("stateful join", &stateful, &joined, &standby, Some(&fresh));
    let crashed = with_previous(&members[1..], &fresh, true);
    time(
        "stateful crash",
        &stateful,
        &crashed,
        &standby,
        Some(&fresh),
    );
}
