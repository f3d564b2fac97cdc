//! Task-group membership: how a stream-app instance or a Connect worker
//! learns from the broker's coordinator which tasks to run.
//!
//! [`TaskGroupMember::join`] starts a heartbeat task that speaks the
//! `weir.tasks.v1.TaskGroups` gRPC service on the group coordinator's
//! Kafka listener. The runtime receives [`TaskEvent`]s: tasks to run, and
//! active tasks to stop — it answers a revocation once the task has
//! stopped (state flushed, offsets committed), and only then does the
//! coordinator give the task to another member. A member whose place is
//! gone (fenced, or no heartbeat got through for a session) is told to
//! drop everything at once, and rejoins.

pub mod proto;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use proto::task_groups_client::TaskGroupsClient;

/// Kafka's FindCoordinator key type of groups: task groups are sharded
/// over `__consumer_offsets` like any group.
const GROUP_KEY: i8 = 0;
const JOIN_EPOCH: i32 = 0;
const LEAVE_EPOCH: i32 = -1;

/// One task: a subtopology's partition, or a connector's task index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    pub subtopology: String,
    pub partition: i32,
}

impl TaskId {
    pub fn new(subtopology: impl Into<String>, partition: i32) -> Self {
        Self {
            subtopology: subtopology.into(),
            partition,
        }
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

impl From<proto::TaskId> for TaskId {
    fn from(t: proto::TaskId) -> Self {
        Self::new(t.subtopology, t.partition)
    }
}

impl From<&TaskId> for proto::TaskId {
    fn from(t: &TaskId) -> Self {
        proto::TaskId {
            subtopology: t.subtopology.clone(),
            partition: t.partition,
        }
    }
}

/// A member's tasks by role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tasks {
    pub active: BTreeSet<TaskId>,
    pub standby: BTreeSet<TaskId>,
    pub warmup: BTreeSet<TaskId>,
}

fn ids(ts: Vec<proto::TaskId>) -> BTreeSet<TaskId> {
    ts.into_iter().map(TaskId::from).collect()
}

impl From<proto::TaskSet> for Tasks {
    fn from(s: proto::TaskSet) -> Self {
        Tasks {
            active: ids(s.active),
            standby: ids(s.standby),
            warmup: ids(s.warmup),
        }
    }
}

impl From<&Tasks> for proto::TaskSet {
    fn from(t: &Tasks) -> Self {
        let list = |s: &BTreeSet<TaskId>| s.iter().map(proto::TaskId::from).collect();
        proto::TaskSet {
            active: list(&t.active),
            standby: list(&t.standby),
            warmup: list(&t.warmup),
        }
    }
}

/// How a member joins.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    pub group_id: String,
    /// Unique per member; a fresh UUID by default.
    pub member_id: String,
    pub instance_id: Option<String>,
    /// Members of one process share its state directory; defaults to the
    /// member id.
    pub process_id: String,
    pub rack_id: Option<String>,
    /// Where this member answers interactive queries.
    pub endpoint: Option<(String, u16)>,
    /// Threads (task slots): tasks are shared in proportion.
    pub threads: u32,
    /// `None`: the broker's default.
    pub session_timeout: Option<Duration>,
    /// How long revoking tasks may take before the member is fenced.
    pub rebalance_timeout: Duration,
    pub topology: proto::Topology,
}

impl MemberConfig {
    pub fn new(group_id: impl Into<String>, topology: proto::Topology) -> Self {
        let member_id = uuid::Uuid::new_v4().to_string();
        Self {
            group_id: group_id.into(),
            process_id: member_id.clone(),
            member_id,
            instance_id: None,
            rack_id: None,
            endpoint: None,
            threads: 1,
            session_timeout: None,
            rebalance_timeout: Duration::from_secs(300),
            topology,
        }
    }
}

/// What the runtime is told to do.
#[derive(Debug)]
pub enum TaskEvent {
    /// Everything the member is to run now: start the active tasks it does
    /// not run yet; keep exactly these standbys and warm-ups.
    Assigned(Tasks),
    /// Stop these active tasks (flush, commit), then send on `done`; they
    /// go to other members only after that.
    Revoked {
        tasks: BTreeSet<TaskId>,
        done: oneshot::Sender<()>,
    },
    /// The member lost its place: stop these tasks at once, without
    /// committing (another member may own them already). It rejoins.
    Lost(BTreeSet<TaskId>),
}

/// The member as the coordinator last answered.
#[derive(Debug, Clone, Default)]
pub struct MemberStatus {
    pub member_id: String,
    /// 0 until joined.
    pub member_epoch: i32,
    /// What the member runs (active tasks include ones being revoked).
    pub tasks: Tasks,
    /// Why tasks cannot run yet (missing topics…), as KIP-1071 reports it.
    pub statuses: Vec<proto::Status>,
    /// Who serves which partitions, for routing queries.
    pub endpoints: Vec<proto::EndpointPartitions>,
    /// Set when the member gave up (an error it cannot retry).
    pub error: Option<Error>,
}

enum Command {
    Offsets {
        offsets: HashMap<TaskId, i64>,
        ends: HashMap<TaskId, i64>,
    },
    Leave(oneshot::Sender<()>),
    Topology(proto::Topology),
}

/// A member of a task group. Dropping it leaves the group: the heartbeat
/// task sees its command channel close.
pub struct TaskGroupMember {
    status: watch::Receiver<MemberStatus>,
    commands: mpsc::UnboundedSender<Command>,
    task: Option<JoinHandle<()>>,
}

impl TaskGroupMember {
    /// Starts heartbeating; the first assignment arrives as an event.
    pub fn join(
        cluster: Arc<Cluster>,
        config: MemberConfig,
    ) -> (Self, mpsc::UnboundedReceiver<TaskEvent>) {
        let (events, events_rx) = mpsc::unbounded_channel();
        let (status_tx, status) = watch::channel(MemberStatus {
            member_id: config.member_id.clone(),
            ..MemberStatus::default()
        });
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let beater = Heartbeater {
            cluster,
            config,
            client: None,
            epoch: JOIN_EPOCH,
            owned: Tasks::default(),
            revoking: BTreeSet::new(),
            report_owned: true,
            full: true,
            offsets: None,
            ends: None,
            endpoint_epoch: -1,
            interval: Duration::from_secs(1),
            last_ok: Instant::now(),
            events,
            acks,
            status: status_tx,
        };
        let task = tokio::spawn(beater.run(commands_rx, acks_rx));
        (
            Self {
                status,
                commands,
                task: Some(task),
            },
            events_rx,
        )
    }

    pub fn member_id(&self) -> String {
        self.status.borrow().member_id.clone()
    }

    /// Follows the member's status.
    pub fn status(&self) -> watch::Receiver<MemberStatus> {
        self.status.clone()
    }

    /// How far this member's local state is per task (sums of changelog
    /// offsets), and for its active tasks the changelogs' ends; sent with
    /// the next heartbeat.
    pub fn report_offsets(&self, offsets: HashMap<TaskId, i64>, ends: HashMap<TaskId, i64>) {
        let _ = self.commands.send(Command::Offsets { offsets, ends });
    }

    /// A handle for reporting offsets from elsewhere (the runtime's
    /// threads); it does not keep the member in the group.
    pub fn reporter(&self) -> OffsetReporter {
        OffsetReporter(self.commands.downgrade())
    }

    /// Replaces the member's topology (a Connect worker's connectors
    /// changed); sent at once. A higher epoch than the group's replaces the
    /// group's topology.
    pub fn update_topology(&self, topology: proto::Topology) {
        let _ = self.commands.send(Command::Topology(topology));
    }

    /// Stops heartbeating without leaving, as a crashed process would: the
    /// coordinator gives its tasks away once its session times out.
    pub fn abandon(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Leaves the group: its tasks go to the others at once. Stop them
    /// before calling.
    pub async fn leave(mut self) {
        let (done, left) = oneshot::channel();
        if self.commands.send(Command::Leave(done)).is_ok() {
            let _ = left.await;
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Reports a member's offsets ([`TaskGroupMember::report_offsets`]).
#[derive(Clone)]
pub struct OffsetReporter(mpsc::WeakUnboundedSender<Command>);

impl OffsetReporter {
    /// Whether the member is still there to report to.
    pub fn report(&self, offsets: HashMap<TaskId, i64>, ends: HashMap<TaskId, i64>) -> bool {
        self.0
            .upgrade()
            .is_some_and(|c| c.send(Command::Offsets { offsets, ends }).is_ok())
    }
}

/// What to do after a heartbeat.
enum Next {
    Wait(Duration),
    Stop,
}

struct Heartbeater {
    cluster: Arc<Cluster>,
    config: MemberConfig,
    client: Option<(String, TaskGroupsClient<Channel>)>,
    epoch: i32,
    /// What the runtime runs; active includes tasks being revoked.
    owned: Tasks,
    revoking: BTreeSet<TaskId>,
    report_owned: bool,
    /// Send everything about the member (after joining or an error).
    full: bool,
    offsets: Option<HashMap<TaskId, i64>>,
    ends: Option<HashMap<TaskId, i64>>,
    endpoint_epoch: i32,
    interval: Duration,
    last_ok: Instant,
    events: mpsc::UnboundedSender<TaskEvent>,
    acks: mpsc::UnboundedSender<BTreeSet<TaskId>>,
    status: watch::Sender<MemberStatus>,
}

fn task_offsets(m: HashMap<TaskId, i64>) -> proto::TaskOffsets {
    proto::TaskOffsets {
        offsets: m
            .into_iter()
            .map(|(t, offset)| proto::TaskOffset {
                task: Some(proto::TaskId::from(&t)),
                offset,
            })
            .collect(),
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Heartbeater {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut acks: mpsc::UnboundedReceiver<BTreeSet<TaskId>>,
    ) {
        let mut leaving: Option<oneshot::Sender<()>> = None;
        loop {
            if let Some(done) = leaving.take() {
                self.leave().await;
                let _ = done.send(());
                return;
            }
            let delay = match self.beat().await {
                Next::Wait(d) => d,
                Next::Stop => return,
            };
            let wake = tokio::time::sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    Some(done) = acks.recv() => {
                        // Revoked tasks stopped: tell the coordinator now.
                        for t in &done {
                            self.owned.active.remove(t);
                            self.revoking.remove(t);
                        }
                        self.report_owned = true;
                        break;
                    }
                    command = commands.recv() => match command {
                        Some(Command::Offsets { offsets, ends }) => {
                            self.offsets = Some(offsets);
                            self.ends = Some(ends);
                        }
                        Some(Command::Leave(done)) => {
                            leaving = Some(done);
                            break;
                        }
                        Some(Command::Topology(t)) => {
                            self.config.topology = t;
                            self.full = true;
                            break;
                        }
                        None => {
                            self.leave().await;
                            return;
                        }
                    },
                }
            }
        }
    }

    fn request(&mut self) -> proto::HeartbeatRequest {
        let c = &self.config;
        let full = self.full || self.epoch == JOIN_EPOCH;
        let owned = (full || self.report_owned).then(|| proto::TaskSet::from(&self.owned));
        proto::HeartbeatRequest {
            group_id: c.group_id.clone(),
            member_id: c.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: c.instance_id.clone(),
            rack_id: c.rack_id.clone().filter(|_| full),
            process_id: full.then(|| c.process_id.clone()),
            endpoint: c
                .endpoint
                .as_ref()
                .filter(|_| full)
                .map(|(host, port)| proto::Endpoint {
                    host: host.clone(),
                    port: u32::from(*port),
                }),
            threads: full.then_some(c.threads),
            rebalance_timeout_ms: if full {
                millis(c.rebalance_timeout)
            } else {
                -1
            },
            session_timeout_ms: c.session_timeout.map_or(0, millis),
            topology: full.then(|| c.topology.clone()),
            owned,
            offsets: self.offsets.take().map(task_offsets),
            end_offsets: self.ends.take().map(task_offsets),
            endpoint_epoch: self.endpoint_epoch,
            client_id: self.cluster.config().client_id.clone(),
        }
    }

    async fn client(&mut self) -> Result<&mut TaskGroupsClient<Channel>> {
        if self.client.is_none() {
            let (_, conn) = self
                .cluster
                .coordinator(&self.config.group_id, GROUP_KEY)
                .await?;
            let addr = conn.addr().to_owned();
            let unreachable = |reason: String| Error::Connect {
                addr: addr.clone(),
                reason,
            };
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|e| unreachable(e.to_string()))?
                .connect_timeout(self.cluster.config().request_timeout)
                .connect()
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            self.client = Some((addr, TaskGroupsClient::new(channel)));
        }
        Ok(&mut self.client.as_mut().expect("set above").1)
    }

    async fn call(&mut self, req: proto::HeartbeatRequest) -> Result<proto::HeartbeatResponse> {
        let timeout = self.cluster.config().request_timeout;
        let client = self.client().await?;
        let answer = tokio::time::timeout(timeout, client.heartbeat(req)).await;
        let addr = self
            .client
            .as_ref()
            .map(|(a, _)| a.clone())
            .unwrap_or_default();
        match answer {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => {
                self.client = None;
                Err(Error::Disconnected {
                    addr,
                    reason: status.to_string(),
                })
            }
            Err(_) => {
                self.client = None;
                Err(Error::Timeout {
                    api: "TaskGroups.Heartbeat".into(),
                    addr,
                    millis: timeout.as_millis(),
                })
            }
        }
    }

    async fn beat(&mut self) -> Next {
        let sent_owned = self.full || self.epoch == JOIN_EPOCH || self.report_owned;
        let req = self.request();
        let response = match self.call(req).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() || matches!(e, Error::NoCoordinator(_)) => {
                tracing::debug!(group = %self.config.group_id, error = %e, "task-group heartbeat failed; retrying");
                self.full = true;
                self.check_session();
                return Next::Wait(Duration::from_millis(200));
            }
            Err(e) => return self.give_up(e),
        };
        let code = i16::try_from(response.error_code).unwrap_or(-1);
        if code != 0 {
            let error = Error::kafka(
                code,
                Some(response.error_message.clone()).filter(|m| !m.is_empty()),
                format!("task group {:?} heartbeat", self.config.group_id),
            );
            return match error.kafka_error() {
                Some(
                    ResponseError::NotCoordinator
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::CoordinatorLoadInProgress,
                ) => {
                    self.client = None;
                    self.full = true;
                    self.check_session();
                    Next::Wait(Duration::from_millis(100))
                }
                Some(ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId) => {
                    tracing::info!(group = %self.config.group_id, error = %error, "task-group member lost its place; rejoining");
                    self.lose_all();
                    Next::Wait(Duration::ZERO)
                }
                _ => self.give_up(error),
            };
        }
        self.last_ok = Instant::now();
        if sent_owned {
            self.report_owned = false;
        }
        self.full = false;
        self.epoch = response.member_epoch;
        if response.heartbeat_interval_ms > 0 {
            self.interval = Duration::from_millis(response.heartbeat_interval_ms as u64);
        }
        if let Some(map) = response.endpoints {
            self.endpoint_epoch = response.endpoint_epoch;
            self.status.send_modify(|s| s.endpoints = map.endpoints);
        }
        if let Some(assignment) = response.assignment {
            self.reconcile(Tasks::from(assignment));
        }
        let (epoch, tasks) = (self.epoch, self.owned.clone());
        self.status.send_modify(|s| {
            s.member_epoch = epoch;
            s.statuses = response.statuses;
            s.tasks = tasks;
        });
        Next::Wait(if self.report_owned {
            Duration::ZERO
        } else {
            self.interval
        })
    }

    /// Takes up a new assignment: revokes first, starts what is free.
    fn reconcile(&mut self, target: Tasks) {
        let revoke: BTreeSet<TaskId> = self
            .owned
            .active
            .difference(&target.active)
            .filter(|t| !self.revoking.contains(*t))
            .cloned()
            .collect();
        if !revoke.is_empty() {
            self.revoking.extend(revoke.iter().cloned());
            let (done, stopped) = oneshot::channel();
            let acks = self.acks.clone();
            let tasks = revoke.clone();
            // Dropping `done` counts as done: the runtime is gone.
            tokio::spawn(async move {
                let _ = stopped.await;
                let _ = acks.send(tasks);
            });
            let _ = self.events.send(TaskEvent::Revoked {
                tasks: revoke,
                done,
            });
        }
        let before = self.owned.clone();
        self.owned.active.extend(target.active.iter().cloned());
        self.owned.standby = target.standby;
        self.owned.warmup = target.warmup;
        if self.owned != before {
            self.report_owned = true;
        }
        if self.owned != before || !self.revoking.is_empty() {
            let mut running = self.owned.clone();
            running.active.retain(|t| !self.revoking.contains(t));
            let _ = self.events.send(TaskEvent::Assigned(running));
        }
    }

    /// No heartbeat got through for a whole session: the coordinator has
    /// given our tasks away, so stop them before anyone else runs them.
    fn check_session(&mut self) {
        let session = self
            .config
            .session_timeout
            .unwrap_or(Duration::from_secs(45));
        if self.epoch != JOIN_EPOCH && self.last_ok.elapsed() >= session {
            tracing::warn!(group = %self.config.group_id, "no heartbeat reached the coordinator for a session; dropping tasks");
            self.lose_all();
        }
    }

    fn lose_all(&mut self) {
        let mut lost = std::mem::take(&mut self.owned.active);
        lost.extend(std::mem::take(&mut self.revoking));
        self.owned = Tasks::default();
        self.epoch = JOIN_EPOCH;
        self.full = true;
        self.report_owned = true;
        self.endpoint_epoch = -1;
        if !lost.is_empty() {
            let _ = self.events.send(TaskEvent::Lost(lost));
        }
        self.status.send_modify(|s| {
            s.member_epoch = JOIN_EPOCH;
            s.tasks = Tasks::default();
        });
    }

    fn give_up(&mut self, error: Error) -> Next {
        tracing::warn!(group = %self.config.group_id, error = %error, "task-group member stopped");
        self.lose_all();
        self.status.send_modify(|s| s.error = Some(error));
        Next::Stop
    }

    async fn leave(&mut self) {
        if self.epoch == JOIN_EPOCH {
            return;
        }
        let req = proto::HeartbeatRequest {
            group_id: self.config.group_id.clone(),
            member_id: self.config.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            ..proto::HeartbeatRequest::default()
        };
        if let Err(e) = self.call(req).await {
            tracing::debug!(group = %self.config.group_id, error = %e, "leave heartbeat failed");
        }
        self.epoch = JOIN_EPOCH;
    }
}

/// Describes a task group on its coordinator.
pub async fn describe(cluster: &Cluster, group_id: &str) -> Result<proto::DescribedGroup> {
    let deadline = Instant::now() + cluster.config().request_timeout;
    loop {
        let (_, conn) = cluster.coordinator(group_id, GROUP_KEY).await?;
        let addr = conn.addr().to_owned();
        let failed = |reason: String| Error::Connect {
            addr: addr.clone(),
            reason,
        };
        let mut client = TaskGroupsClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let group = client
            .describe(proto::DescribeRequest {
                group_ids: vec![group_id.to_owned()],
            })
            .await
            .map_err(|e| failed(e.to_string()))?
            .into_inner()
            .groups
            .pop()
            .ok_or_else(|| failed("empty describe response".into()))?;
        let code = i16::try_from(group.error_code).unwrap_or(-1);
        if code == 0 {
            return Ok(group);
        }
        let error = Error::kafka(
            code,
            Some(group.error_message.clone()),
            format!("describe task group {group_id:?}"),
        );
        if !error.is_retriable() || Instant::now() >= deadline {
            return Err(error);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
