//! `weir bench tasks`: how fast a task group moves its tasks when a member
//! joins, leaves or crashes — the time from the event until every task
//! runs again, on exactly one member, balanced within one task.
//!
//! Members are weir-client `TaskGroupMember`s in this process, each with a
//! runtime that starts a task the moment it is assigned and stops one the
//! moment it is revoked: what is measured is the coordinator and the
//! protocol, not a task's start-up. The tasks are a Connect-style
//! subtopology (a fixed count, stateless).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use weir_client::cluster::Cluster;
use weir_client::task_group::{MemberConfig, TaskEvent, TaskGroupMember, TaskId, proto};

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct TasksBench {
    /// Tasks in the group.
    #[arg(long, env = "WEIR_TASKS", default_value_t = 64)]
    tasks: i32,
    /// Members before the join (one more joins, then one leaves and one
    /// crashes).
    #[arg(long, env = "WEIR_MEMBERS", default_value_t = 3)]
    members: usize,
    #[arg(long, env = "WEIR_ROUNDS", default_value_t = 5)]
    rounds: usize,
    /// The members' session timeout: how long a crash goes unnoticed.
    #[arg(long, env = "WEIR_SESSION_TIMEOUT_MS", default_value_t = 2000)]
    session_timeout_ms: u64,
    /// Print the results as JSON on stdout.
    #[arg(long, env = "WEIR_JSON")]
    json: bool,
}

/// Who runs each task now.
type Running = Arc<Mutex<BTreeMap<TaskId, Vec<String>>>>;

fn spawn_member(
    cluster: &Arc<Cluster>,
    group: &str,
    name: &str,
    tasks: i32,
    session: Duration,
    running: &Running,
) -> TaskGroupMember {
    let topology = proto::Topology {
        epoch: 1,
        subtopologies: vec![proto::Subtopology {
            id: "bench".into(),
            task_count: tasks,
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut config = MemberConfig::new(group, topology);
    config.member_id = name.into();
    config.session_timeout = Some(session);
    let (member, mut events) = TaskGroupMember::join(Arc::clone(cluster), config);
    let (name, running) = (name.to_owned(), Arc::clone(running));
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mut r = running.lock().unwrap_or_else(|p| p.into_inner());
            let mut stop = |tasks: &std::collections::BTreeSet<TaskId>| {
                for t in tasks {
                    if let Some(on) = r.get_mut(t) {
                        on.retain(|m| *m != name);
                    }
                }
            };
            match event {
                TaskEvent::Assigned(tasks) => {
                    for t in tasks.active {
                        let on = r.entry(t).or_default();
                        if !on.contains(&name) {
                            on.push(name.clone());
                        }
                    }
                }
                TaskEvent::Revoked { tasks, done } => {
                    stop(&tasks);
                    let _ = done.send(());
                }
                TaskEvent::Lost(tasks) => stop(&tasks),
            }
        }
    });
    member
}

/// Every task runs on exactly one of `members`, balanced within one.
fn settled(running: &Running, tasks: i32, members: &[String]) -> bool {
    let r = running.lock().unwrap_or_else(|p| p.into_inner());
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.as_str(), 0)).collect();
    for t in 0..tasks {
        let on = r
            .get(&TaskId::new("bench", t))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let [one] = on else { return false };
        match load.get_mut(one.as_str()) {
            Some(n) => *n += 1,
            None => return false,
        }
    }
    let (min, max) = (load.values().min(), load.values().max());
    matches!((min, max), (Some(a), Some(b)) if b - a <= 1)
}

async fn until_settled(
    running: &Running,
    tasks: i32,
    members: &[String],
    since: Instant,
) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(120);
    while !settled(running, tasks, members) {
        if Instant::now() > deadline {
            bail!("tasks did not settle on {members:?} within 120 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(since.elapsed())
}

/// Takes the first member out: its runtime stops every task it runs.
fn stop_first(
    names: &mut Vec<String>,
    members: &mut Vec<TaskGroupMember>,
    running: &Running,
) -> TaskGroupMember {
    let name = names.remove(0);
    for on in running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values_mut()
    {
        on.retain(|m| *m != name);
    }
    members.remove(0)
}

pub async fn run(client: &ClientArgs, b: TasksBench) -> anyhow::Result<()> {
    if b.members < 2 || b.tasks < 1 {
        bail!("--members must be at least 2 and --tasks at least 1");
    }
    let cluster = Cluster::connect(client.config("weir-bench-tasks")?).await?;
    let session = Duration::from_millis(b.session_timeout_ms);
    let mut results: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for round in 0..b.rounds {
        let group = format!("weir-bench-tasks-{}-{round}", std::process::id());
        let running: Running = Arc::default();
        let mut names: Vec<String> = (0..b.members).map(|i| format!("m{i}")).collect();
        let mut members: Vec<TaskGroupMember> = names
            .iter()
            .map(|n| spawn_member(&cluster, &group, n, b.tasks, session, &running))
            .collect();
        until_settled(&running, b.tasks, &names, Instant::now()).await?;

        let start = Instant::now();
        names.push(format!("m{}", b.members));
        members.push(spawn_member(
            &cluster,
            &group,
            names.last().expect("pushed"),
            b.tasks,
            session,
            &running,
        ));
        results
            .entry("join")
            .or_default()
            .push(until_settled(&running, b.tasks, &names, start).await?);

        // A graceful leave: the runtime stops its tasks, then leaves.
        let member = stop_first(&mut names, &mut members, &running);
        let start = Instant::now();
        member.leave().await;
        results
            .entry("leave")
            .or_default()
            .push(until_settled(&running, b.tasks, &names, start).await?);

        // A crash: it runs nothing from now on and never says goodbye.
        let member = stop_first(&mut names, &mut members, &running);
        let start = Instant::now();
        member.abandon();
        results
            .entry("crash")
            .or_default()
            .push(until_settled(&running, b.tasks, &names, start).await?);
        for m in members {
            m.leave().await;
        }
        eprintln!("round {} of {} done", round + 1, b.rounds);
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    if b.json {
        let json: BTreeMap<&str, Vec<f64>> = results
            .iter()
            .map(|(k, v)| (*k, v.iter().map(ms).collect()))
            .collect();
        println!("{}", serde_json::to_string(&json)?);
        return Ok(());
    }
    println!(
        "{} tasks, {} → {} → {} members, session timeout {} ms, {} rounds",
        b.tasks,
        b.members,
        b.members + 1,
        b.members,
        b.session_timeout_ms,
        b.rounds
    );
    for (event, mut times) in results {
        times.sort();
        println!(
            "{event:<6} median {:>8.1} ms   min {:>8.1} ms   max {:>8.1} ms",
            ms(&times[times.len() / 2]),
            ms(&times[0]),
            ms(times.last().expect("one round at least"))
        );
    }
    Ok(())
}
