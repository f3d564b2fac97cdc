//! Task groups against the real `weir broker`: weir-client members speak
//! the task-group gRPC service on the broker's Kafka listener, and a
//! simulated runtime runs what they are told, checking that no task ever
//! runs on two members at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weir_client::ClientConfig;
use weir_client::admin::{Admin, ConfigResource, NewTopic};
use weir_client::cluster::Cluster;
use weir_client::task_group::{
    self, MemberConfig, OffsetReporter, TaskEvent, TaskGroupMember, TaskId,
};
use weir_e2e::{BrokerProcess, ClusterProcesses};

use weir_e2e::{TASK_CHANGELOG as CHANGELOG, TASK_REPARTITION as REPARTITION};

/// Which member runs each active task; a second runner fails the test.
#[derive(Default)]
struct Runners {
    active: BTreeMap<TaskId, String>,
    violations: Vec<String>,
    /// Times a member was told it lost its place.
    lost: usize,
    /// Stateful tasks that have run somewhere: from then on a member may
    /// take one only with its state restored (as standby or warm-up).
    ran: BTreeSet<TaskId>,
    /// Per member, the tasks it held as standby or warm-up.
    replicas: BTreeMap<String, BTreeSet<TaskId>>,
}

fn stateful(t: &TaskId) -> bool {
    t.subtopology == "1"
}

/// Runs what a member is told: starts and stops tasks in `runners`, and
/// reports its standby and warm-up state as caught up (this runtime
/// restores instantly), so stateful tasks may move to it.
fn run_member(
    name: &str,
    reporter: OffsetReporter,
    mut events: tokio::sync::mpsc::UnboundedReceiver<TaskEvent>,
    runners: Arc<Mutex<Runners>>,
) {
    let name = name.to_owned();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let mut r = runners.lock().unwrap();
            match event {
                TaskEvent::Assigned(tasks) => {
                    let restored = r.replicas.entry(name.clone()).or_default();
                    restored.extend(tasks.standby.iter().chain(&tasks.warmup).cloned());
                    let restored = restored.clone();
                    for t in &tasks.active {
                        let owned_here = r.active.get(t) == Some(&name);
                        if stateful(t) && !owned_here && r.ran.contains(t) && !restored.contains(t)
                        {
                            r.violations
                                .push(format!("{t} moved to {name}, which has no state of it"));
                        }
                        if stateful(t) {
                            r.ran.insert(t.clone());
                        }
                        match r.active.get(t) {
                            Some(other) if *other != name => {
                                let v = format!("{t} started on {name} while {other} runs it");
                                r.violations.push(v);
                            }
                            _ => {
                                r.active.insert(t.clone(), name.clone());
                            }
                        }
                    }
                    let restored: HashMap<TaskId, i64> = tasks
                        .standby
                        .iter()
                        .chain(&tasks.warmup)
                        .map(|t| (t.clone(), 0))
                        .collect();
                    reporter.report(restored, HashMap::new());
                }
                TaskEvent::Revoked { tasks, done } => {
                    for t in &tasks {
                        r.active.remove(t);
                    }
                    let _ = done.send(());
                }
                TaskEvent::Lost(tasks) => {
                    r.lost += 1;
                    for t in &tasks {
                        if r.active.get(t) == Some(&name) {
                            r.active.remove(t);
                        }
                    }
                }
            }
        }
    });
}

fn join(cluster: &Arc<Cluster>, name: &str, runners: &Arc<Mutex<Runners>>) -> TaskGroupMember {
    join_with_session(cluster, name, runners, Duration::from_secs(2))
}

fn join_with_session(
    cluster: &Arc<Cluster>,
    name: &str,
    runners: &Arc<Mutex<Runners>>,
    session: Duration,
) -> TaskGroupMember {
    let mut config = MemberConfig::new("counting-app", weir_e2e::task_topology());
    config.member_id = name.into();
    config.session_timeout = Some(session);
    config.endpoint = Some((format!("{name}.local"), 8080));
    let (member, events) = TaskGroupMember::join(Arc::clone(cluster), config);
    run_member(name, member.reporter(), events, Arc::clone(runners));
    member
}

/// The error a member gives up with (within 30 s).
async fn gives_up_with(member: &TaskGroupMember) -> weir_client::Error {
    let mut status = member.status();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if let Some(e) = status.borrow().error.clone() {
                return e;
            }
            status.changed().await.expect("member gone");
        }
    })
    .await
    .expect("the member gives up")
}

fn running(runners: &Arc<Mutex<Runners>>) -> BTreeMap<String, usize> {
    let mut by_member = BTreeMap::new();
    for m in runners.lock().unwrap().active.values() {
        *by_member.entry(m.clone()).or_insert(0) += 1;
    }
    by_member
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spread(runners: &Arc<Mutex<Runners>>, want: &[(&str, usize)]) -> bool {
    let want: BTreeMap<String, usize> = want.iter().map(|(m, n)| (m.to_string(), *n)).collect();
    running(runners) == want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_spread_move_on_crash_and_leave_and_never_run_twice() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("clicks", 6, 1))
        .await
        .expect("create clicks");
    let cluster = Cluster::connect(client.clone()).await.expect("cluster");
    let runners = Arc::new(Mutex::new(Runners::default()));

    let a = join(&cluster, "a", &runners);
    wait_for("a to run all 12 tasks", || spread(&runners, &[("a", 12)])).await;
    // The coordinator created the internal topics, one partition per task.
    let changelog = admin
        .wait_for_topic(CHANGELOG, Duration::from_secs(10))
        .await
        .expect("changelog created");
    assert_eq!(changelog.partitions.len(), 6);
    let configs = admin
        .describe_configs(&ConfigResource::topic(CHANGELOG))
        .await
        .expect("changelog configs");
    let policy = configs
        .iter()
        .find(|c| c.name == "cleanup.policy")
        .expect("cleanup.policy");
    assert_eq!(policy.value.as_deref(), Some("compact"));
    let repartition = admin
        .wait_for_topic(REPARTITION, Duration::from_secs(10))
        .await
        .expect("repartition topic created");
    assert_eq!(repartition.partitions.len(), 6);

    let b = join(&cluster, "b", &runners);
    wait_for("a and b to share", || {
        spread(&runners, &[("a", 6), ("b", 6)])
    })
    .await;
    let c = join(&cluster, "c", &runners);
    wait_for("three to share", || {
        spread(&runners, &[("a", 4), ("b", 4), ("c", 4)])
    })
    .await;

    let described = task_group::describe(&cluster, "counting-app")
        .await
        .expect("describe");
    assert_eq!(described.state, "Stable", "{described:?}");
    assert_eq!(described.members.len(), 3);
    let endpoints = a.status().borrow().endpoints.clone();
    assert_eq!(
        endpoints.len(),
        3,
        "every member's endpoint is known: {endpoints:?}"
    );
    let out = tokio::process::Command::new(weir_e2e::weir_bin())
        .args(["group", "describe", "counting-app", "--bootstrap-server"])
        .arg(broker.bootstrap())
        .output()
        .await
        .expect("weir group describe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("Group: counting-app\tType: task\tState: Stable"),
        "{text}"
    );
    for member in ["a", "b", "c"] {
        assert!(
            text.contains(&format!("\n{member}\t")),
            "{member} missing: {text}"
        );
    }
    assert_eq!(text.matches("\tactive\t").count(), 12, "{text}");

    // c crashes (it runs nothing from now on, and never says goodbye):
    // its tasks move once its 2 s session is over.
    runners.lock().unwrap().active.retain(|_, m| m != "c");
    c.abandon();
    wait_for("a and b to take c's tasks", || {
        spread(&runners, &[("a", 6), ("b", 6)])
    })
    .await;

    // b stops its tasks and leaves: they move at once.
    runners.lock().unwrap().active.retain(|_, m| m != "b");
    b.leave().await;
    wait_for("a to run everything again", || {
        spread(&runners, &[("a", 12)])
    })
    .await;
    let violations = runners.lock().unwrap().violations.clone();
    assert!(violations.is_empty(), "{violations:?}");
    a.leave().await;
}

/// The coordinator's broker is killed -9 while a member is joining: the
/// new coordinator replays the group from `__consumer_offsets`, members
/// carry on with their epochs (nobody is told it lost its tasks), and the
/// rebalance completes with no task run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_carries_on_when_its_coordinator_is_killed_mid_rebalance() {
    let mut brokers = ClusterProcesses::start(3, &[]);
    let client = ClientConfig::new(brokers.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("clicks", 6, 3))
        .await
        .expect("create clicks");
    let cluster = Cluster::connect(client.clone()).await.expect("cluster");
    let runners = Arc::new(Mutex::new(Runners::default()));
    let session = Duration::from_secs(20);
    let a = join_with_session(&cluster, "a", &runners, session);
    let b = join_with_session(&cluster, "b", &runners, session);
    wait_for("a and b to share", || {
        spread(&runners, &[("a", 6), ("b", 6)])
    })
    .await;

    let (coordinator, _) = admin
        .cluster()
        .coordinator("counting-app", 0)
        .await
        .expect("coordinator");
    let c = join_with_session(&cluster, "c", &runners, session);
    // Mid-rebalance: c has joined and a and b are revoking.
    wait_for("c to join", || c.status().borrow().member_epoch > 0).await;
    brokers.broker(coordinator).kill9();
    wait_for("three to share after the failover", || {
        spread(&runners, &[("a", 4), ("b", 4), ("c", 4)])
    })
    .await;
    let (moved, _) = admin
        .cluster()
        .coordinator("counting-app", 0)
        .await
        .expect("coordinator after the kill");
    assert_ne!(moved, coordinator);
    let admin_port = brokers.broker(moved).admin_port.expect("admin port");
    let (_, metrics) = weir_e2e::http_get(admin_port, "/metrics").expect("/metrics");
    for line in [
        "weir_task_group_members{group=\"counting-app\"} 3",
        "weir_task_group_tasks{group=\"counting-app\",role=\"active\"} 12",
        "weir_task_group_tasks{group=\"counting-app\",role=\"standby\"} 6",
        "weir_task_group_state{group=\"counting-app\",state=\"Stable\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line} missing:\n{metrics}"
        );
    }
    let r = runners.lock().unwrap();
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert_eq!(r.lost, 0, "a member lost its place across the failover");
    drop(r);
    for m in [a, b, c] {
        m.leave().await;
    }
}

/// One line of a member process: when (wall clock, ns), who, what, which.
#[derive(Debug, Clone)]
struct Line {
    nanos: u128,
    member: String,
    kind: String,
    tasks: Vec<TaskId>,
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn parse_task(s: &str) -> TaskId {
    let (sub, p) = s.rsplit_once('_').expect("SUB_PARTITION");
    TaskId::new(sub, p.parse().expect("partition"))
}

/// `src/bin/weir-task-member.rs` running as its own process.
struct MemberProcess {
    name: String,
    child: std::process::Child,
}

impl MemberProcess {
    fn start(bootstrap: &str, name: &str, lines: &Arc<Mutex<Vec<Line>>>) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir-task-member"))
            .args([bootstrap, "counting-app", name, "2000"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start weir-task-member");
        let stdout = child.stdout.take().expect("stdout");
        let (lines, member) = (Arc::clone(lines), name.to_owned());
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let mut parts = l.split(' ');
                let (Some(nanos), Some(kind), Some(tasks)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                lines.lock().unwrap().push(Line {
                    nanos: nanos.parse().expect("nanos"),
                    member: member.clone(),
                    kind: kind.into(),
                    tasks: tasks.split(',').map(parse_task).collect(),
                });
            }
        });
        MemberProcess {
            name: name.into(),
            child,
        }
    }

    /// The member stops its tasks now (as its runtime would), and leaves
    /// (stdin closed) or is killed -9.
    fn stop(mut self, lines: &Arc<Mutex<Vec<Line>>>, kill: bool) {
        let tasks = replay(&lines.lock().unwrap())
            .0
            .into_iter()
            .filter(|(_, on)| on.contains(&self.name))
            .map(|(t, _)| t)
            .collect();
        lines.lock().unwrap().push(Line {
            nanos: now_nanos(),
            member: self.name.clone(),
            kind: "stop".into(),
            tasks,
        });
        if kill {
            self.child.kill().expect("kill -9");
        } else {
            drop(self.child.stdin.take());
        }
        let _ = self.child.wait();
    }
}

/// Replays the members' lines in time order: who runs each task at the
/// end, and every moment a task ran twice or moved to a member without its
/// state.
fn replay(lines: &[Line]) -> (BTreeMap<TaskId, Vec<String>>, Vec<String>) {
    let mut sorted = lines.to_vec();
    sorted.sort_by_key(|l| l.nanos);
    let mut running: BTreeMap<TaskId, Vec<String>> = BTreeMap::new();
    let mut replicas: BTreeMap<&str, BTreeSet<TaskId>> = BTreeMap::new();
    let mut ran = BTreeSet::new();
    let mut violations = Vec::new();
    for l in &sorted {
        for t in &l.tasks {
            match l.kind.as_str() {
                "start" => {
                    let on = running.entry(t.clone()).or_default();
                    if let Some(other) = on.iter().find(|m| **m != l.member) {
                        violations
                            .push(format!("{t} started on {} while {other} runs it", l.member));
                    }
                    let restored = replicas
                        .get(l.member.as_str())
                        .is_some_and(|r| r.contains(t));
                    if stateful(t) && ran.contains(t) && !restored {
                        violations.push(format!(
                            "{t} moved to {}, which has no state of it",
                            l.member
                        ));
                    }
                    ran.insert(t.clone());
                    on.push(l.member.clone());
                }
                "stop" => {
                    if let Some(on) = running.get_mut(t) {
                        on.retain(|m| *m != l.member);
                    }
                }
                _ => {
                    replicas.entry(&l.member).or_default().insert(t.clone());
                }
            }
        }
    }
    running.retain(|_, on| !on.is_empty());
    (running, violations)
}

fn spread_of(lines: &Arc<Mutex<Vec<Line>>>) -> BTreeMap<String, usize> {
    let (running, _) = replay(&lines.lock().unwrap());
    let mut by_member = BTreeMap::new();
    for on in running.values() {
        for m in on {
            *by_member.entry(m.clone()).or_insert(0) += 1;
        }
    }
    by_member
}

/// Members in their own processes against three brokers: they join one
/// by one and the tasks spread; one is killed -9 and its tasks reach the
/// others after its session; one leaves. Replayed in time order, no task
/// ever ran on two processes at once, and none moved without its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_processes_spread_tasks_and_survive_a_kill() {
    let brokers = ClusterProcesses::start(3, &[]);
    let bootstrap = brokers.bootstrap();
    let admin = Admin::connect(ClientConfig::new(bootstrap.clone()))
        .await
        .expect("admin");
    admin
        .create_topic(NewTopic::new("clicks", 6, 3))
        .await
        .expect("create clicks");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let want = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
        pairs.iter().map(|(m, n)| (m.to_string(), *n)).collect()
    };
    let a = MemberProcess::start(&bootstrap, "a", &lines);
    wait_for("a to run all 12 tasks", || {
        spread_of(&lines) == want(&[("a", 12)])
    })
    .await;
    let b = MemberProcess::start(&bootstrap, "b", &lines);
    wait_for("a and b to share", || {
        spread_of(&lines) == want(&[("a", 6), ("b", 6)])
    })
    .await;
    let c = MemberProcess::start(&bootstrap, "c", &lines);
    wait_for("three to share", || {
        spread_of(&lines) == want(&[("a", 4), ("b", 4), ("c", 4)])
    })
    .await;
    c.stop(&lines, true);
    wait_for("a and b to take the killed member's tasks", || {
        spread_of(&lines) == want(&[("a", 6), ("b", 6)])
    })
    .await;
    b.stop(&lines, false);
    wait_for("a to run everything", || {
        spread_of(&lines) == want(&[("a", 12)])
    })
    .await;
    let (_, violations) = replay(&lines.lock().unwrap());
    assert!(violations.is_empty(), "{violations:?}");
    a.stop(&lines, false);
}

/// A malformed topology is refused with the reason, and the member stops
/// with that error instead of retrying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_topology_is_refused_with_its_reason() {
    let broker = BrokerProcess::start(&[]);
    let cluster = Cluster::connect(ClientConfig::new(broker.bootstrap()))
        .await
        .expect("cluster");
    let mut topology = weir_e2e::task_topology();
    topology.subtopologies[1].id = "0".into();
    let (member, _events) =
        TaskGroupMember::join(Arc::clone(&cluster), MemberConfig::new("bad-app", topology));
    let error = gives_up_with(&member).await;
    let text = error.to_string();
    assert!(text.contains("INVALID_REQUEST"), "{text}");
    assert!(text.contains("Subtopology 0 is declared twice"), "{text}");
}

/// With an authorizer, a task-group member (anonymous: gRPC is served on
/// PLAINTEXT listeners only) needs Read on its group: a denied group is
/// refused with GROUP_AUTHORIZATION_FAILED, an allowed one runs its tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_needs_read_on_its_group() {
    use weir_client::acl::{AclBinding, Operation, Permission, ResourcePattern, ResourceType};
    let broker = BrokerProcess::start(&[
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        // Until the first ACL exists, the anonymous admin may create it.
        "allow.everyone.if.no.acl.found=true",
    ]);
    let config = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(config.clone()).await.expect("admin");
    let anonymous = |pattern, operation, permission| AclBinding {
        pattern,
        principal: "User:ANONYMOUS".into(),
        host: "*".into(),
        operation,
        permission,
    };
    let outcomes = admin
        .create_acls(&[
            anonymous(
                ResourcePattern::prefixed(ResourceType::Group, "open-"),
                Operation::Read,
                Permission::Allow,
            ),
            // It may find its coordinator (Describe) but not join (Read):
            // the refusal comes from the task-group service itself.
            anonymous(
                ResourcePattern::literal(ResourceType::Group, "locked-app"),
                Operation::Describe,
                Permission::Allow,
            ),
            anonymous(
                ResourcePattern::literal(ResourceType::Group, "locked-app"),
                Operation::Read,
                Permission::Deny,
            ),
            // The member reads the topics' metadata; the test creates
            // its source topic.
            anonymous(
                ResourcePattern::literal(ResourceType::Topic, "*"),
                Operation::All,
                Permission::Allow,
            ),
        ])
        .await
        .expect("create ACLs");
    assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    admin
        .create_topic(NewTopic::new("clicks", 2, 1))
        .await
        .expect("create clicks");
    let cluster = Cluster::connect(config).await.expect("cluster");

    let (locked, _events) = TaskGroupMember::join(
        Arc::clone(&cluster),
        MemberConfig::new("locked-app", weir_e2e::task_topology()),
    );
    let error = gives_up_with(&locked).await;
    assert!(
        error.to_string().contains("GROUP_AUTHORIZATION_FAILED"),
        "{error}"
    );

    let runners = Arc::new(Mutex::new(Runners::default()));
    let mut config = MemberConfig::new("open-app", weir_e2e::task_topology());
    config.member_id = "open-1".into();
    let (open, events) = TaskGroupMember::join(Arc::clone(&cluster), config);
    run_member("open-1", open.reporter(), events, Arc::clone(&runners));
    wait_for("the allowed member runs tasks", || {
        !runners.lock().unwrap().active.is_empty()
    })
    .await;
}
