//! Assignor cost: how long the KIP-848 server-side assignors (`uniform`,
//! `range` in `src/assignor.rs`) take for 1,000 members × 50,000
//! partitions (issue "Consumer groups, part 2", goal ≤ 10 ms).
//!
//! For each subscription shape (50 topics × 1,000 partitions, and one topic
//! of 50,000 partitions; every member subscribed to everything) and each
//! assignor it times three computations:
//! - `fresh`: 1,000 members, no previous owners;
//! - `join`: the fresh result as the previous assignment, plus a 1,001st
//!   member with nothing;
//! - `leave`: the fresh result as the previous assignment, one member gone.
//!
//! Two figures per case: `assign` is the call to `assignor::assign` alone;
//! `specs+assign` also builds the `MemberSpec`s the way
//! `ConsumerGroup::maybe_assign` does (cloning every member's previous
//! target and its topic set), which is what the coordinator really pays.
//! Median and max over `ITERS` runs (default 20) after two warm-up runs.
//! Each result is checked (every partition owned exactly once); `moved`
//! counts partitions whose owner changed, `per member` the fewest..most
//! partitions one member got.
//!
//! ```sh
//! CARGO_TARGET_DIR=/var/cache/weir-dev/target-release \
//!   nice -n 19 cargo run --release -p weir-coordinator --example assignor_cost
//! ```
//!
//! `ONLY=range` or `ONLY=uniform` runs one assignor, `SHAPE=many` (50 topics) or
//! `SHAPE=one` one shape (handy under `perf record`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use weir_coordinator::assignor::{self, Assignment, MemberSpec};

const MEMBERS: usize = 1000;

/// A member id shaped like Kafka's (22 characters), derived from `i` with a
/// mixing function so the ids sort in no particular order of `i`.
fn member_id(i: u64) -> String {
    let mut x = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(22);
    let mut y = x;
    for k in 0..22 {
        if k == 11 {
            y = x.rotate_left(29) ^ i;
        }
        s.push(ALPHABET[(y & 63) as usize] as char);
        y >>= 6;
    }
    s
}

/// The coordinator's view of a member before specs are built: id and
/// previous target (what `maybe_assign` reads from the group).
struct Member {
    id: String,
    previous: Assignment,
}

/// What `ConsumerGroup::maybe_assign` does before calling the assignor:
/// one spec per member, subscribed topics cloned from the group's set, the
/// previous target cloned.
fn build_specs(members: &[Member], topics: &BTreeMap<String, i32>) -> Vec<MemberSpec> {
    members
        .iter()
        .map(|m| MemberSpec {
            member_id: m.id.clone(),
            instance_id: None,
            topics: topics.keys().cloned().collect(),
            previous: m.previous.clone(),
        })
        .collect()
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// Every partition owned once; returns how many partitions changed owner
/// against the members' previous targets, and the fewest and most
/// partitions a member got (`range` balances per topic only, so with 50
/// topics its spread can be wide).
fn check(
    members: &[Member],
    topics: &BTreeMap<String, i32>,
    out: &BTreeMap<String, Assignment>,
) -> (usize, usize, usize) {
    let total: usize = topics.values().map(|&n| n as usize).sum();
    assert_eq!(
        assignor::total(out),
        total,
        "not every partition assigned once"
    );
    let mut seen: BTreeSet<(&str, i32)> = BTreeSet::new();
    for a in out.values() {
        for (t, ps) in a {
            for &p in ps {
                assert!(seen.insert((t.as_str(), p)), "{t}-{p} has two owners");
            }
        }
    }
    let counts: Vec<usize> = members
        .iter()
        .map(|m| out.get(&m.id).map_or(0, count))
        .collect();
    let (lo, hi) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
    let mut kept = 0;
    for m in members {
        if let Some(now) = out.get(&m.id) {
            for (t, ps) in &m.previous {
                kept += now.get(t).map_or(0, |n| n.intersection(ps).count());
            }
        }
    }
    let had: usize = members.iter().map(|m| count(&m.previous)).sum();
    (had - kept, lo, hi)
}

struct Stats {
    median: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2
    };
    Stats {
        median,
        max: v[n - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    shape: &'static str,
    assignor: &'static str,
    case: &'static str,
    members: usize,
    moved: usize,
    spread: (usize, usize),
    assign: Stats,
    full: Stats,
}

fn measure(
    shape: &'static str,
    name: &'static str,
    case: &'static str,
    members: &[Member],
    topics: &BTreeMap<String, i32>,
    iters: usize,
) -> Row {
    let specs = build_specs(members, topics);
    let out = assignor::assign(name, &specs, topics);
    let (moved, lo, hi) = check(members, topics, &out);
    drop(out);
    let mut assign_times = Vec::with_capacity(iters);
    let mut full_times = Vec::with_capacity(iters);
    for i in 0..iters + 2 {
        let t0 = Instant::now();
        let out = assignor::assign(name, &specs, topics);
        let d = t0.elapsed();
        // Dropping the result is not part of what is timed.
        drop(std::hint::black_box(out));
        let t0 = Instant::now();
        let specs2 = build_specs(members, topics);
        let out = assignor::assign(name, &specs2, topics);
        let d_full = t0.elapsed();
        drop(std::hint::black_box((out, specs2)));
        if i >= 2 {
            assign_times.push(d);
            full_times.push(d_full);
        }
    }
    Row {
        shape,
        assignor: name,
        case,
        members: members.len(),
        moved,
        spread: (lo, hi),
        assign: stats(assign_times),
        full: stats(full_times),
    }
}

fn main() {
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let shapes: [(&'static str, BTreeMap<String, i32>); 2] = [
        (
            "50 topics × 1,000",
            (0..50).map(|i| (format!("topic-{i:02}"), 1000)).collect(),
        ),
        (
            "1 topic × 50,000",
            [("topic-big".to_string(), 50_000)].into(),
        ),
    ];
    let only = std::env::var("ONLY").unwrap_or_default();
    let only_shape = std::env::var("SHAPE").unwrap_or_default();
    let mut rows = Vec::new();
    for (k, (shape, topics)) in shapes.iter().enumerate() {
        if (only_shape == "many" && k != 0) || (only_shape == "one" && k != 1) {
            continue;
        }
        for name in [assignor::UNIFORM, assignor::RANGE] {
            if !only.is_empty() && only != name {
                continue;
            }
            let fresh: Vec<Member> = (0..MEMBERS as u64)
                .map(|i| Member {
                    id: member_id(i),
                    previous: Assignment::new(),
                })
                .collect();
            let row = measure(shape, name, "fresh", &fresh, topics, iters);
            eprintln!(
                "{shape} {name} fresh: median {:.2} ms",
                ms(row.assign.median)
            );
            rows.push(row);

            let first = assignor::assign(name, &build_specs(&fresh, topics), topics);
            let with_previous = |m: &Member| Member {
                id: m.id.clone(),
                previous: first.get(&m.id).cloned().unwrap_or_default(),
            };
            let mut joined: Vec<Member> = fresh.iter().map(with_previous).collect();
            joined.push(Member {
                id: member_id(MEMBERS as u64),
                previous: Assignment::new(),
            });
            let row = measure(shape, name, "join (+1)", &joined, topics, iters);
            eprintln!(
                "{shape} {name} join: median {:.2} ms",
                ms(row.assign.median)
            );
            rows.push(row);

            // The member that leaves is one from the middle of the id order.
            let mut left: Vec<Member> = fresh.iter().map(with_previous).collect();
            let mut order: Vec<usize> = (0..left.len()).collect();
            order.sort_by(|&a, &b| left[a].id.cmp(&left[b].id));
            left.remove(order[order.len() / 2]);
            let row = measure(shape, name, "leave (−1)", &left, topics, iters);
            eprintln!(
                "{shape} {name} leave: median {:.2} ms",
                ms(row.assign.median)
            );
            rows.push(row);
        }
    }

    println!("{iters} iterations per row (after 2 warm-ups); times in ms.\n");
    println!(
        "| subscription | assignor | case | members | per member | moved | assign median | assign max | specs+assign median | specs+assign max |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in &rows {
        println!(
            "| {} | {} | {} | {} | {}..{} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.shape,
            r.assignor,
            r.case,
            r.members,
            r.spread.0,
            r.spread.1,
            r.moved,
            ms(r.assign.median),
            ms(r.assign.max),
            ms(r.full.median),
            ms(r.full.max)
        );
    }
}
