//! The authorizer's cost per request with 10,000 ACLs (issue "Security",
//! goal: ≤ 1 µs median): `decide` alone, and a request's whole path through
//! `Authorizer::access` (finding the current index, deciding, remembering a
//! denial for the log).
//!
//! 1,000 users with ten ACLs each: six literal topics, two prefixed topic
//! patterns shared by teams, a group and a DENY. Questions mix a user's own
//! topics, topics under a team prefix, and topics no ACL names; users,
//! operations and names drawn at random, the same for every run (seeded).
//!
//! ```sh
//! cargo run --release -p weir-broker --example authorizer_cost
//! ```

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use weir_broker::authorizer::{AclIndex, Authorizer, AuthorizerConfig, decide};
use weir_client::acl::{AclBinding, Operation, Permission, ResourcePattern, ResourceType};

const USERS: usize = 1_000;
const BATCH: usize = 1_000;
const BATCHES: usize = 2_000;

fn acl(
    pattern: ResourcePattern,
    user: usize,
    operation: Operation,
    permission: Permission,
) -> AclBinding {
    AclBinding {
        pattern,
        principal: format!("User:user-{user}"),
        host: "*".into(),
        operation,
        permission,
    }
}

fn acls() -> BTreeSet<AclBinding> {
    let mut out = BTreeSet::new();
    for u in 0..USERS {
        for k in 0..6 {
            let op = if k % 2 == 0 {
                Operation::Read
            } else {
                Operation::Write
            };
            out.insert(acl(
                ResourcePattern::literal(ResourceType::Topic, format!("topic-{u}-{k}")),
                u,
                op,
                Permission::Allow,
            ));
        }
        for t in 0..2 {
            out.insert(acl(
                ResourcePattern::prefixed(ResourceType::Topic, format!("team-{}-{t}-", u % 100)),
                u,
                Operation::All,
                Permission::Allow,
            ));
        }
        out.insert(acl(
            ResourcePattern::literal(ResourceType::Group, format!("group-{u}")),
            u,
            Operation::Read,
            Permission::Allow,
        ));
        out.insert(acl(
            ResourcePattern::literal(ResourceType::Topic, format!("topic-{u}-0")),
            u,
            Operation::Write,
            Permission::Deny,
        ));
    }
    out
}

/// (principal, operation, topic) questions.
fn questions(rng: &mut StdRng) -> Vec<(String, Operation, String)> {
    let ops = [Operation::Read, Operation::Write, Operation::Describe];
    (0..BATCH)
        .map(|_| {
            let u = rng.random_range(0..USERS);
            let topic = match rng.random_range(0..3) {
                0 => format!("topic-{u}-{}", rng.random_range(0..6)),
                1 => format!(
                    "team-{}-{}-orders-{}",
                    u % 100,
                    rng.random_range(0..2),
                    rng.random_range(0..50)
                ),
                _ => format!("unnamed-{}", rng.random_range(0..10_000)),
            };
            (format!("User:user-{u}"), ops[rng.random_range(0..3)], topic)
        })
        .collect()
}

fn median_ns(mut per_call: Vec<f64>) -> (f64, f64) {
    per_call.sort_by(f64::total_cmp);
    (
        per_call[per_call.len() / 2],
        per_call[per_call.len() * 99 / 100],
    )
}

fn main() {
    let set = Arc::new(acls());
    assert_eq!(set.len(), USERS * 10);
    let built = Instant::now();
    let index = AclIndex::build(&set);
    let build_ms = built.elapsed().as_secs_f64() * 1e3;
    let config = AuthorizerConfig {
        enabled: true,
        ..Default::default()
    };
    let host: IpAddr = "10.0.0.7".parse().unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let batches: Vec<_> = (0..BATCHES).map(|_| questions(&mut rng)).collect();

    let mut allowed = 0usize;
    let mut decide_ns = Vec::with_capacity(BATCHES);
    for batch in &batches {
        let start = Instant::now();
        for (principal, op, topic) in batch {
            allowed += decide(
                &config,
                &index,
                principal,
                host,
                *op,
                ResourceType::Topic,
                topic,
            ) as usize;
        }
        decide_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }

    let authorizer = Authorizer::new(config);
    let mut access_ns = Vec::with_capacity(BATCHES);
    for batch in &batches {
        let start = Instant::now();
        for (principal, op, topic) in batch {
            let access = authorizer.access(|| set.clone(), principal, host);
            black_box(access.topic(*op, topic));
        }
        access_ns.push(start.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    let (decide_median, decide_p99) = median_ns(decide_ns);
    let (access_median, access_p99) = median_ns(access_ns);
    println!(
        "ACLs: {}  index built in {build_ms:.1} ms  allowed {:.1} % of {} questions",
        set.len(),
        100.0 * allowed as f64 / (BATCH * BATCHES) as f64,
        BATCH * BATCHES
    );
    println!("| path | median per request | p99 of batch means |");
    println!("| --- | --- | --- |");
    println!("| decide | {decide_median:.0} ns | {decide_p99:.0} ns |");
    println!(
        "| Authorizer::access + topic (denials logged once) | {access_median:.0} ns | {access_p99:.0} ns |"
    );
}
