//! One task group, free of I/O: members heartbeat with their topology,
//! the tasks they own and how far their state is; the group answers with
//! their target tasks and reconciles each member towards its target one
//! heartbeat at a time.
//!
//! As in KIP-848 and KIP-1071, an active task is never given to a member
//! while another still holds it: its holder first revokes it and keeps its
//! epoch until a heartbeat no longer lists it, then the new owner takes it.
//! Standby and warm-up tasks only read state, so they change at once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::assignor::{self, AssignorConfig, MemberSpec};
use super::topology::{self, Configured, Status, StatusCode, Topology};
use super::{TaskId, Tasks};
use crate::errors::*;

/// Broker settings of task groups (`group.tasks.*`).
#[derive(Debug, Clone)]
pub struct TaskGroupConfig {
    /// Session timeout of a member that does not ask for one.
    pub session_timeout: Duration,
    /// Bounds of what a member may ask for.
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_size: usize,
    pub assignor: AssignorConfig,
}

impl Default for TaskGroupConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_millis(45_000),
            min_session_timeout: Duration::from_millis(1_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            heartbeat_interval: Duration::from_millis(1_000),
            max_size: i32::MAX as usize,
            assignor: AssignorConfig::default(),
        }
    }
}

pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;

/// Where a member serves interactive queries.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

/// One heartbeat; the optional fields are `None` when unchanged.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub process_id: Option<String>,
    pub endpoint: Option<Endpoint>,
    /// Threads (tasks are shared in proportion); `None` = unchanged.
    pub weight: Option<u32>,
    /// How long it may take to revoke tasks; <= 0: unchanged or default.
    pub rebalance_timeout_ms: i32,
    /// Asked for on joining; <= 0: the broker's default.
    pub session_timeout_ms: i32,
    pub topology: Option<Topology>,
    pub owned: Option<Tasks>,
    /// Per task, how far the member's local state is: the sum of its
    /// changelog offsets.
    pub offsets: Option<HashMap<TaskId, i64>>,
    /// Per active task, the end of its changelogs as its owner sees them
    /// (the coordinator may host none of them).
    pub end_offsets: Option<HashMap<TaskId, i64>>,
    /// The endpoint map version the member has.
    pub endpoint_epoch: i32,
    pub client_id: String,
    pub client_host: String,
}

/// The partitions one endpoint serves, for routing queries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPartitions {
    pub endpoint: Endpoint,
    pub active: Vec<(String, i32)>,
    pub standby: Vec<(String, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatOutput {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// When it changed or the member reported what it owns.
    pub assignment: Option<Tasks>,
    pub statuses: Vec<Status>,
    pub endpoint_epoch: i32,
    /// When the member's endpoint epoch is not the group's.
    pub endpoints: Option<Vec<EndpointPartitions>>,
}

impl HeartbeatOutput {
    fn error(code: i16, message: impl Into<String>) -> Self {
        Self {
            error: code,
            message: Some(message.into()),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to acknowledge revoking active tasks.
    UnrevokedTasks,
    /// Waiting for other members to release tasks this one is to get.
    UnreleasedTasks,
}

impl MemberState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stable => "Stable",
            Self::UnrevokedTasks => "UnrevokedTasks",
            Self::UnreleasedTasks => "UnreleasedTasks",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskGroupState {
    Empty,
    /// Its topology cannot run yet (missing or mispartitioned topics).
    NotReady,
    Assigning,
    Reconciling,
    Stable,
}

impl TaskGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::NotReady => "NotReady",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

/// What is persisted of a member: everything but its timers and its
/// state reports (members report those again to a new coordinator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub process_id: String,
    pub endpoint: Option<Endpoint>,
    pub weight: u32,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: u64,
    pub topology_epoch: i32,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    /// What the member has been told it runs.
    pub assigned: Tasks,
    /// Active tasks it has been asked to give up and has not yet.
    pub revoking: BTreeSet<TaskId>,
}

#[derive(Debug, Clone)]
pub struct TaskMember {
    pub record: MemberRecord,
    /// Its last report of its local state per task.
    pub offsets: HashMap<TaskId, i64>,
    /// Warm-ups that caught up since the last assignment.
    warm: BTreeSet<TaskId>,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
}

/// A member reads as its record; the rest is the coordinator's own.
impl std::ops::Deref for TaskMember {
    type Target = MemberRecord;
    fn deref(&self) -> &MemberRecord {
        &self.record
    }
}

impl std::ops::DerefMut for TaskMember {
    fn deref_mut(&mut self) -> &mut MemberRecord {
        &mut self.record
    }
}

impl TaskMember {
    fn new(record: MemberRecord, now: Instant, revoke_deadline: Option<Instant>) -> Self {
        let session_deadline = now + record.session_timeout();
        Self {
            record,
            offsets: HashMap::new(),
            warm: BTreeSet::new(),
            session_deadline,
            revoke_deadline,
        }
    }
}

impl MemberRecord {
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(self.session_timeout_ms)
    }
}

/// What the coordinator reads of topics: partition counts and log ends.
pub trait TopicView {
    fn partitions(&self, topic: &str) -> Option<i32>;
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64>;
}

/// A member's record as stored, with its target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTaskMember {
    #[serde(flatten)]
    pub member: MemberRecord,
    pub target: Tasks,
}

/// The group's own record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTaskGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology: Option<Topology>,
}

/// One change for the shell to persist, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskGroupChange {
    Group(StoredTaskGroup),
    Member(Box<StoredTaskMember>),
    /// The member left: its record goes.
    Removed(String),
}

/// What `/metrics` shows of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGroupStats {
    pub group_id: String,
    pub state: TaskGroupState,
    pub members: usize,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// Assignments computed by this coordinator.
    pub rebalances: u64,
    /// Tasks members run now, by role; `revoking` counts active tasks
    /// waiting for their holder to let go.
    pub active: usize,
    pub standby: usize,
    pub warmup: usize,
    pub revoking: usize,
}

#[derive(Debug, Clone)]
pub struct DescribedTaskMember {
    pub member: TaskMember,
    pub target: Tasks,
    /// Per stateful task it has state of: records behind the changelog end.
    pub lags: BTreeMap<TaskId, i64>,
}

#[derive(Debug, Clone)]
pub struct DescribedTaskGroup {
    pub state: TaskGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub topology_epoch: i32,
    pub statuses: Vec<Status>,
    pub members: Vec<DescribedTaskMember>,
}

#[derive(Debug, Clone)]
pub struct TaskGroup {
    id: String,
    config: TaskGroupConfig,
    group_epoch: i32,
    assignment_epoch: i32,
    topology: Option<Topology>,
    configured: Configured,
    members: BTreeMap<String, TaskMember>,
    target: BTreeMap<String, Tasks>,
    /// Who holds each active task (assigned or revoking): at most one.
    holders: HashMap<TaskId, String>,
    endpoint_epoch: i32,
    /// The furthest changelog end reported per task.
    ends: HashMap<TaskId, i64>,
    /// What changed since the shell last persisted the group.
    dirty_group: bool,
    dirty_members: BTreeSet<String>,
    removed: BTreeSet<String>,
    rebalances: u64,
}

impl TaskGroup {
    pub fn new(id: impl Into<String>, config: TaskGroupConfig) -> Self {
        Self {
            id: id.into(),
            config,
            group_epoch: 0,
            assignment_epoch: 0,
            topology: None,
            configured: Configured::default(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            holders: HashMap::new(),
            endpoint_epoch: 0,
            ends: HashMap::new(),
            dirty_group: false,
            dirty_members: BTreeSet::new(),
            removed: BTreeSet::new(),
            rebalances: 0,
        }
    }

    /// Rebuilds a group from its records on a new coordinator: members
    /// keep their epochs and tasks, with fresh sessions (and revocation
    /// deadlines) from `now`.
    pub fn restore(
        id: impl Into<String>,
        config: TaskGroupConfig,
        stored: StoredTaskGroup,
        members: Vec<StoredTaskMember>,
        topics: &dyn TopicView,
        now: Instant,
    ) -> Self {
        let mut group = Self::new(id, config);
        group.group_epoch = stored.group_epoch;
        group.assignment_epoch = stored.assignment_epoch;
        // Members learn the endpoint map again.
        group.endpoint_epoch = 1;
        if let Some(t) = &stored.topology {
            group.configured = topology::configure(t, &|name| topics.partitions(name));
        }
        group.topology = stored.topology;
        for StoredTaskMember { mut member, target } in members {
            for t in member.assigned.active.iter().chain(&member.revoking) {
                group.holders.insert(t.clone(), member.member_id.clone());
            }
            group.target.insert(member.member_id.clone(), target);
            member.weight = member.weight.max(1);
            let revoke_deadline = (member.state == MemberState::UnrevokedTasks)
                .then(|| now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64));
            let id = member.member_id.clone();
            group
                .members
                .insert(id, TaskMember::new(member, now, revoke_deadline));
        }
        group
    }

    fn stored_member(&self, m: &TaskMember) -> StoredTaskMember {
        StoredTaskMember {
            member: m.record.clone(),
            target: self.target.get(&m.member_id).cloned().unwrap_or_default(),
        }
    }

    /// Everything that changed since the last call, to be persisted in
    /// this order. Empty when a heartbeat changed nothing durable.
    pub fn take_changes(&mut self) -> Vec<TaskGroupChange> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.dirty_group) {
            out.push(TaskGroupChange::Group(StoredTaskGroup {
                group_epoch: self.group_epoch,
                assignment_epoch: self.assignment_epoch,
                topology: self.topology.clone(),
            }));
        }
        for id in std::mem::take(&mut self.removed) {
            if !self.members.contains_key(&id) {
                out.push(TaskGroupChange::Removed(id));
            }
        }
        for id in std::mem::take(&mut self.dirty_members) {
            if let Some(m) = self.members.get(&id) {
                out.push(TaskGroupChange::Member(Box::new(self.stored_member(m))));
            }
        }
        out
    }

    /// After a failed write: the next [`Self::take_changes`] rewrites the
    /// whole group.
    pub fn mark_all_changed(&mut self) {
        self.dirty_group = true;
        self.dirty_members = self.members.keys().cloned().collect();
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn members(&self) -> impl Iterator<Item = &TaskMember> {
        self.members.values()
    }

    pub fn member(&self, id: &str) -> Option<&TaskMember> {
        self.members.get(id)
    }

    /// Internal topics the topology needs and the coordinator is to create.
    pub fn missing_internal_topics(&self) -> &[topology::InternalTopic] {
        &self.configured.missing_internal
    }

    /// Source and internal topics the group reads (for offsets retention).
    pub fn source_topics(&self) -> BTreeSet<String> {
        self.topology
            .iter()
            .flat_map(|t| &t.subtopologies)
            .flat_map(|s| {
                s.source_topics
                    .iter()
                    .cloned()
                    .chain(s.repartition_sources.iter().map(|r| r.name.clone()))
            })
            .collect()
    }

    pub fn state(&self) -> TaskGroupState {
        if self.members.is_empty() {
            TaskGroupState::Empty
        } else if !self.configured.is_ready() {
            TaskGroupState::NotReady
        } else if self.group_epoch > self.assignment_epoch {
            TaskGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            TaskGroupState::Reconciling
        } else {
            TaskGroupState::Stable
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// OffsetCommit from a member: its epoch must be current.
    pub fn validate_commit(&self, member_id: &str, member_epoch: i32) -> Result<(), i16> {
        if member_id.is_empty() && member_epoch < 0 {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(UNKNOWN_MEMBER_ID)
            };
        }
        let member = self.members.get(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if member.member_epoch == member_epoch {
            Ok(())
        } else {
            Err(STALE_MEMBER_EPOCH)
        }
    }

    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        topics: &dyn TopicView,
        now: Instant,
    ) -> HeartbeatOutput {
        if input.member_id.is_empty() {
            return HeartbeatOutput::error(INVALID_REQUEST, "MemberId can't be empty.");
        }
        match input.member_epoch {
            LEAVE_EPOCH => self.leave(&input, topics),
            JOIN_EPOCH => self.join(input, topics, now),
            e if e < 0 => {
                HeartbeatOutput::error(INVALID_REQUEST, format!("Invalid member epoch {e}."))
            }
            _ => self.beat(input, topics, now),
        }
    }

    fn unknown(&self, member_id: &str) -> HeartbeatOutput {
        HeartbeatOutput::error(
            UNKNOWN_MEMBER_ID,
            format!("Member {member_id} is not in group {}.", self.id),
        )
    }

    fn leave(&mut self, input: &HeartbeatInput, topics: &dyn TopicView) -> HeartbeatOutput {
        if !self.members.contains_key(&input.member_id) {
            return self.unknown(&input.member_id);
        }
        self.remove_member(&input.member_id);
        self.maybe_assign(topics);
        HeartbeatOutput {
            member_id: input.member_id.clone(),
            member_epoch: LEAVE_EPOCH,
            ..HeartbeatOutput::default()
        }
    }

    fn join(
        &mut self,
        input: HeartbeatInput,
        topics: &dyn TopicView,
        now: Instant,
    ) -> HeartbeatOutput {
        let Some(topology) = input.topology.as_ref() else {
            return HeartbeatOutput::error(
                INVALID_REQUEST,
                "The first heartbeat of a member must carry its topology.",
            );
        };
        if let Err(message) = topology::validate(topology) {
            return HeartbeatOutput::error(INVALID_REQUEST, message);
        }
        if let Some(current) = &self.topology
            && current.epoch == topology.epoch
            && current != topology
        {
            return HeartbeatOutput::error(
                INVALID_REQUEST,
                format!(
                    "The topology differs from group {}'s at the same topology epoch {}.",
                    self.id, topology.epoch
                ),
            );
        }
        let requested = u64::try_from(input.session_timeout_ms).unwrap_or(0);
        let session_timeout = if requested == 0 {
            self.config.session_timeout
        } else {
            let asked = Duration::from_millis(requested);
            if asked < self.config.min_session_timeout || asked > self.config.max_session_timeout {
                return HeartbeatOutput::error(
                    INVALID_SESSION_TIMEOUT,
                    format!(
                        "Session timeout {requested} ms is outside the broker's bounds {}..{} ms.",
                        self.config.min_session_timeout.as_millis(),
                        self.config.max_session_timeout.as_millis()
                    ),
                );
            }
            asked
        };
        let id = input.member_id.clone();
        if self.members.contains_key(&id) {
            // Rejoining with epoch 0: the member has lost its tasks.
            self.release_all(&id);
        } else {
            if self.members.len() >= self.config.max_size {
                return HeartbeatOutput::error(
                    GROUP_MAX_SIZE_REACHED,
                    format!(
                        "The group has reached its maximum capacity of {} members.",
                        self.config.max_size
                    ),
                );
            }
            let record = MemberRecord {
                member_id: id.clone(),
                instance_id: input.instance_id.clone(),
                rack_id: None,
                process_id: id.clone(),
                endpoint: None,
                weight: 1,
                client_id: String::new(),
                client_host: String::new(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 0,
                topology_epoch: topology.epoch,
                member_epoch: JOIN_EPOCH,
                previous_epoch: JOIN_EPOCH,
                state: MemberState::Stable,
                assigned: Tasks::default(),
                revoking: BTreeSet::new(),
            };
            self.members
                .insert(id.clone(), TaskMember::new(record, now, None));
            self.bump();
        }
        self.members
            .get_mut(&id)
            .expect("inserted")
            .session_timeout_ms = u64::try_from(session_timeout.as_millis()).unwrap_or(u64::MAX);
        let input = HeartbeatInput {
            owned: Some(input.owned.clone().unwrap_or_default()),
            ..input
        };
        self.beat_known(input, topics, now, true)
    }

    fn beat(
        &mut self,
        input: HeartbeatInput,
        topics: &dyn TopicView,
        now: Instant,
    ) -> HeartbeatOutput {
        let Some(member) = self.members.get(&input.member_id) else {
            return self.unknown(&input.member_id);
        };
        if input.member_epoch != member.member_epoch {
            // A lost response: fine as long as it owns nothing it should not.
            let lost_response = input.member_epoch == member.previous_epoch
                && input
                    .owned
                    .as_ref()
                    .is_some_and(|o| o.active.is_subset(&member.assigned.active));
            if !lost_response {
                return HeartbeatOutput::error(
                    FENCED_MEMBER_EPOCH,
                    format!(
                        "The member's epoch ({}) is not the coordinator's ({}).",
                        input.member_epoch, member.member_epoch
                    ),
                );
            }
        }
        if let Some(t) = &input.topology
            && let Err(message) = topology::validate(t)
        {
            return HeartbeatOutput::error(INVALID_REQUEST, message);
        }
        self.beat_known(input, topics, now, false)
    }

    fn bump(&mut self) {
        self.group_epoch += 1;
        self.dirty_group = true;
    }

    fn beat_known(
        &mut self,
        input: HeartbeatInput,
        topics: &dyn TopicView,
        now: Instant,
        joined: bool,
    ) -> HeartbeatOutput {
        let id = input.member_id.clone();
        let acceptable = self.assignor_config().acceptable_recovery_lag;
        let before = self.stored_member(&self.members[&id]);
        let member = self.members.get_mut(&id).expect("caller checked");
        let mut changed = false;
        let mut endpoint_changed = false;
        if let Some(rack) = input.rack_id {
            changed |= member.rack_id.as_ref() != Some(&rack);
            member.rack_id = Some(rack);
        }
        if let Some(process) = input.process_id {
            changed |= member.process_id != process;
            member.process_id = process;
        }
        if let Some(weight) = input.weight {
            changed |= member.weight != weight.max(1);
            member.weight = weight.max(1);
        }
        if let Some(endpoint) = input.endpoint {
            endpoint_changed = member.endpoint.as_ref() != Some(&endpoint);
            member.endpoint = Some(endpoint);
        }
        if input.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = input.rebalance_timeout_ms;
        }
        if let Some(offsets) = input.offsets {
            member.offsets = offsets;
        }
        for (t, end) in input.end_offsets.into_iter().flatten() {
            let known = self.ends.entry(t).or_insert(end);
            *known = (*known).max(end);
        }
        let member = self.members.get_mut(&id).expect("caller checked");
        member.client_id = input.client_id;
        member.client_host = input.client_host;
        member.session_deadline = now + member.session_timeout();
        let mut topology_changed = false;
        if let Some(t) = input.topology {
            member.topology_epoch = t.epoch;
            if self.topology.as_ref().is_none_or(|c| t.epoch > c.epoch) {
                self.topology = Some(t);
                topology_changed = true;
            }
        }
        // Warm-ups that caught up call for a new assignment (a probe), once.
        let member = &self.members[&id];
        let ready: Vec<TaskId> = member
            .assigned
            .warmup
            .iter()
            .filter(|t| !member.warm.contains(*t))
            .filter(|t| {
                self.lag(topics, t, member.offsets.get(*t))
                    .is_some_and(|lag| lag <= acceptable)
            })
            .cloned()
            .collect();
        let member = self.members.get_mut(&id).expect("caller checked");
        member.warm.extend(ready.iter().cloned());
        if changed || topology_changed || !ready.is_empty() {
            self.bump();
        }
        if endpoint_changed {
            self.endpoint_epoch += 1;
        }
        self.maybe_assign(topics);
        let changed = self.reconcile(&id, input.owned.as_ref(), now);
        let member = &self.members[&id];
        if self.stored_member(member) != before {
            self.dirty_members.insert(id.clone());
        }
        let mut statuses = self.configured.statuses.clone();
        if let Some(t) = &self.topology
            && member.topology_epoch < t.epoch
        {
            statuses.push(Status {
                code: StatusCode::StaleTopology,
                detail: format!(
                    "The member's topology epoch {} is older than the group's {}.",
                    member.topology_epoch, t.epoch
                ),
            });
        }
        let endpoints = (input.endpoint_epoch != self.endpoint_epoch).then(|| self.endpoints());
        HeartbeatOutput {
            error: NONE,
            message: None,
            member_id: id,
            member_epoch: member.member_epoch,
            heartbeat_interval_ms: i32::try_from(self.heartbeat_interval(member).as_millis())
                .unwrap_or(i32::MAX),
            assignment: (changed || joined || input.owned.is_some())
                .then(|| member.assigned.clone()),
            statuses,
            endpoint_epoch: self.endpoint_epoch,
            endpoints,
        }
    }

    /// A member waiting for others to release its tasks asks again soon,
    /// so a move takes one revocation round trip, not several intervals.
    fn heartbeat_interval(&self, member: &TaskMember) -> Duration {
        let interval = self.config.heartbeat_interval;
        if member.state == MemberState::UnreleasedTasks {
            (interval / 5).max(Duration::from_millis(50)).min(interval)
        } else {
            interval
        }
    }

    fn assignor_config(&self) -> AssignorConfig {
        match &self.topology {
            Some(t) => t.assignor_config(&self.config.assignor),
            None => self.config.assignor.clone(),
        }
    }

    /// Reconfigures against today's topics and, when the group epoch moved
    /// past the assignment epoch, assigns.
    fn maybe_assign(&mut self, topics: &dyn TopicView) {
        if let Some(t) = &self.topology {
            let configured = topology::configure(t, &|name| topics.partitions(name));
            if configured != self.configured {
                self.configured = configured;
                self.bump();
            }
        }
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let tasks = self.configured.task_specs();
        let specs: Vec<MemberSpec> = self
            .members
            .values()
            .map(|m| MemberSpec {
                member_id: m.member_id.clone(),
                process_id: m.process_id.clone(),
                rack: m.rack_id.clone(),
                weight: m.weight,
                previous: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                lags: m
                    .offsets
                    .iter()
                    .filter_map(|(t, &offset)| {
                        Some((t.clone(), self.lag(topics, t, Some(&offset))?))
                    })
                    .collect(),
            })
            .collect();
        let target = assignor::assign(&tasks, &specs, &self.assignor_config());
        for (id, t) in &target {
            if self.target.get(id) != Some(t) {
                self.dirty_members.insert(id.clone());
            }
        }
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        self.rebalances += 1;
        self.dirty_group = true;
        for m in self.members.values_mut() {
            m.warm.clear();
        }
    }

    /// Moves one member a step towards its target; returns whether what it
    /// was told changed.
    fn reconcile(&mut self, id: &str, owned: Option<&Tasks>, now: Instant) -> bool {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(id).expect("caller checked");
        if member.state == MemberState::UnrevokedTasks {
            if !owned.is_some_and(|o| o.active.is_disjoint(&member.revoking)) {
                return false;
            }
            for t in std::mem::take(&mut member.revoking) {
                self.holders.remove(&t);
            }
            let member = self.members.get_mut(id).expect("caller checked");
            member.revoke_deadline = None;
            member.state = MemberState::Stable;
        }
        let member = self.members.get_mut(id).expect("caller checked");
        if member.member_epoch == assignment_epoch && member.state == MemberState::Stable {
            return false;
        }
        let before = member.assigned.clone();
        // Reading roles follow the target at once; they hold no task.
        member
            .assigned
            .standby
            .retain(|t| target.standby.contains(t));
        member.assigned.warmup.retain(|t| target.warmup.contains(t));
        let revoke: BTreeSet<TaskId> = member
            .assigned
            .active
            .difference(&target.active)
            .cloned()
            .collect();
        if !revoke.is_empty() {
            member.assigned.active.retain(|t| !revoke.contains(t));
            member.revoking = revoke;
            member.state = MemberState::UnrevokedTasks;
            member.revoke_deadline =
                Some(now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64));
            self.endpoint_epoch += 1;
            return true;
        }
        let epoch_moved = member.member_epoch != assignment_epoch;
        if epoch_moved {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
        }
        member.assigned.standby.clone_from(&target.standby);
        member.assigned.warmup.clone_from(&target.warmup);
        let mut missing = false;
        for t in target.active.difference(&before.active) {
            match self.holders.get(t) {
                Some(holder) if holder != id => missing = true,
                _ => {
                    self.holders.insert(t.clone(), id.to_owned());
                    member.assigned.active.insert(t.clone());
                }
            }
        }
        member.state = if missing {
            MemberState::UnreleasedTasks
        } else {
            MemberState::Stable
        };
        if member.assigned != before {
            self.endpoint_epoch += 1;
        }
        // The epoch itself is news to the member.
        member.assigned != before || epoch_moved
    }

    fn release_all(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.assigned = Tasks::default();
            m.revoking.clear();
            m.revoke_deadline = None;
            m.state = MemberState::Stable;
            m.member_epoch = JOIN_EPOCH;
            m.previous_epoch = JOIN_EPOCH;
            self.endpoint_epoch += 1;
            self.dirty_members.insert(id.to_owned());
        }
        self.holders.retain(|_, holder| holder != id);
    }

    fn remove_member(&mut self, id: &str) {
        self.release_all(id);
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.dirty_members.remove(id);
            self.removed.insert(id.to_owned());
            self.bump();
        }
    }

    /// Removes members whose session or revocation deadline passed; returns
    /// their ids.
    pub fn on_timer(&mut self, now: Instant, topics: &dyn TopicView) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline <= now || m.revoke_deadline.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in &expired {
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.maybe_assign(topics);
        }
        expired
    }

    /// How far a reported state offset sum is behind the end of task `t`'s
    /// changelogs — the furthest of what its owners reported and what this
    /// broker holds; `None` for a stateless task or no report.
    fn lag(&self, topics: &dyn TopicView, t: &TaskId, offset: Option<&i64>) -> Option<i64> {
        let offset = *offset?;
        let sub = self
            .topology
            .as_ref()?
            .subtopologies
            .iter()
            .find(|s| s.id == t.subtopology)?;
        if sub.changelogs.is_empty() {
            return None;
        }
        let here: i64 = sub
            .changelogs
            .iter()
            .map(|c| topics.end_offset(&c.name, t.partition).unwrap_or(0))
            .sum();
        let end = here.max(self.ends.get(t).copied().unwrap_or(0));
        Some((end - offset).max(0))
    }

    /// Who serves which source partitions, from what members run now.
    fn endpoints(&self) -> Vec<EndpointPartitions> {
        let sources: HashMap<&str, Vec<&str>> = self
            .topology
            .iter()
            .flat_map(|t| &t.subtopologies)
            .map(|s| {
                let topics = s
                    .source_topics
                    .iter()
                    .map(String::as_str)
                    .chain(s.repartition_sources.iter().map(|r| r.name.as_str()))
                    .collect();
                (s.id.as_str(), topics)
            })
            .collect();
        let partitions = |tasks: &BTreeSet<TaskId>| -> Vec<(String, i32)> {
            let mut out: Vec<(String, i32)> = tasks
                .iter()
                .flat_map(|t| {
                    sources
                        .get(t.subtopology.as_str())
                        .into_iter()
                        .flatten()
                        .map(|topic| (topic.to_string(), t.partition))
                })
                .collect();
            out.sort();
            out.dedup();
            out
        };
        self.members
            .values()
            .filter_map(|m| {
                Some(EndpointPartitions {
                    endpoint: m.endpoint.clone()?,
                    active: partitions(&m.assigned.active),
                    standby: partitions(&m.assigned.standby),
                })
            })
            .collect()
    }

    pub fn stats(&self) -> TaskGroupStats {
        let count = |f: fn(&TaskMember) -> usize| self.members.values().map(f).sum();
        TaskGroupStats {
            group_id: self.id.clone(),
            state: self.state(),
            members: self.members.len(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            rebalances: self.rebalances,
            active: count(|m| m.assigned.active.len()),
            standby: count(|m| m.assigned.standby.len()),
            warmup: count(|m| m.assigned.warmup.len()),
            revoking: count(|m| m.revoking.len()),
        }
    }

    pub fn describe(&self, topics: &dyn TopicView) -> DescribedTaskGroup {
        DescribedTaskGroup {
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            topology_epoch: self.topology.as_ref().map_or(-1, |t| t.epoch),
            statuses: self.configured.statuses.clone(),
            members: self
                .members
                .values()
                .map(|m| DescribedTaskMember {
                    member: m.clone(),
                    target: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                    lags: m
                        .offsets
                        .iter()
                        .filter_map(|(t, &o)| Some((t.clone(), self.lag(topics, t, Some(&o))?)))
                        .collect(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "group_tests.rs"]
mod tests;
