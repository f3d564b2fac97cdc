//! One task-group member in its own process, for the cross-process tests
//! (`tests/tests/task_groups.rs`), until `weir streams` and `weir connect`
//! run members of their own.
//!
//! `weir-task-member BOOTSTRAP GROUP MEMBER SESSION_MS` joins GROUP with the
//! test topology and prints one line per change on stdout, stamped with the
//! wall clock in nanoseconds so the test can order lines from several
//! processes:
//!
//! ```text
//! <nanos> start 1_0,1_1    tasks it now runs
//! <nanos> stop 1_0         tasks it stopped (printed before acknowledging)
//! <nanos> replicas 1_2     standbys and warm-ups it now holds
//! ```
//!
//! Standbys and warm-ups are reported restored at once. Closing stdin makes
//! it leave the group; `kill -9` is a crash.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::AsyncReadExt;
use weir_client::ClientConfig;
use weir_client::cluster::Cluster;
use weir_client::task_group::{MemberConfig, TaskEvent, TaskGroupMember, TaskId};

fn line(what: &str, tasks: &BTreeSet<TaskId>) {
    if tasks.is_empty() {
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let list: Vec<String> = tasks.iter().map(ToString::to_string).collect();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{nanos} {what} {}", list.join(","));
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [bootstrap, group, member_id, session_ms] = args.as_slice() else {
        eprintln!("usage: weir-task-member BOOTSTRAP GROUP MEMBER SESSION_MS");
        std::process::exit(2);
    };
    let cluster = Cluster::connect(ClientConfig::new(bootstrap.clone()))
        .await
        .expect("connect");
    let mut config = MemberConfig::new(group.clone(), weir_e2e::task_topology());
    config.member_id = member_id.clone();
    config.session_timeout = Some(Duration::from_millis(
        session_ms.parse().expect("SESSION_MS"),
    ));
    let (member, mut events) = TaskGroupMember::join(Arc::clone(&cluster), config);
    let reporter = member.reporter();
    let runtime = tokio::spawn(async move {
        let mut running = BTreeSet::new();
        while let Some(event) = events.recv().await {
            match event {
                TaskEvent::Assigned(tasks) => {
                    let new: BTreeSet<TaskId> =
                        tasks.active.difference(&running).cloned().collect();
                    line("start", &new);
                    running.extend(new);
                    let replicas: BTreeSet<TaskId> =
                        tasks.standby.union(&tasks.warmup).cloned().collect();
                    line("replicas", &replicas);
                    let restored: HashMap<TaskId, i64> =
                        replicas.into_iter().map(|t| (t, 0)).collect();
                    reporter.report(restored, HashMap::new());
                }
                TaskEvent::Revoked { tasks, done } => {
                    line("stop", &tasks);
                    running.retain(|t| !tasks.contains(t));
                    let _ = done.send(());
                }
                TaskEvent::Lost(tasks) => {
                    line("stop", &tasks);
                    running.retain(|t| !tasks.contains(t));
                }
            }
        }
    });
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    member.leave().await;
    runtime.abort();
}
