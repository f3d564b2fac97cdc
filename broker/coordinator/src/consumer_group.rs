//! KIP-848 consumer groups, free of I/O and wire structs: the coordinator
//! computes each member's target assignment and reconciles members towards
//! it one heartbeat at a time.
//!
//! Reconciliation never gives a partition to one member while another still
//! holds it: a member first gives up (revokes) what it must lose and keeps
//! its epoch until its heartbeat no longer lists those partitions; only
//! then does it move to the assignment epoch and take its new partitions,
//! each as soon as its previous holder has released it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use regex::Regex;
use tokio::time::Instant;

use crate::assignor::{self, Assignment, MemberSpec};
use crate::errors::*;

/// Broker settings of consumer groups (`group.consumer.*`).
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval: Duration,
    /// `group.consumer.assignors`: the first is the default.
    pub assignors: Vec<String>,
    /// `group.consumer.max.size`
    pub max_size: usize,
    /// Groups subscribed to at most this many partitions are assigned on
    /// the heartbeat that needs it; larger ones off it, on the blocking
    /// pool ([`ConsumerGroup::take_assignment_job`]), their members
    /// reconciling towards the previous target meanwhile.
    pub inline_assignment_partitions: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(5_000),
            assignors: vec![assignor::UNIFORM.into(), assignor::RANGE.into()],
            max_size: i32::MAX as usize,
            inline_assignment_partitions: 10_000,
        }
    }
}

/// Member epoch values with a meaning of their own.
pub const JOIN_EPOCH: i32 = 0;
pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// One ConsumerGroupHeartbeat, topic ids already resolved to names; the
/// optional fields are `None` when unchanged since the last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatInput {
    pub member_id: String,
    /// Used when `member_id` is empty (v0 clients let the coordinator choose).
    pub generated_member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns; `None` when unchanged.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatOutput {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment, when it changed or the member asked in full.
    pub assignment: Option<Assignment>,
}

impl HeartbeatOutput {
    fn error(code: i16, message: impl Into<String>) -> Self {
        Self {
            error: code,
            message: Some(message.into()),
            member_id: String::new(),
            member_epoch: 0,
            heartbeat_interval_ms: 0,
            assignment: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    Stable,
    /// Waiting for the member to acknowledge revoking partitions.
    UnrevokedPartitions,
    /// Waiting for other members to release partitions this one is to get.
    UnreleasedPartitions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "Empty",
            Self::Assigning => "Assigning",
            Self::Reconciling => "Reconciling",
            Self::Stable => "Stable",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConsumerMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topic_names: BTreeSet<String>,
    pub topic_regex: Option<String>,
    compiled: Option<Regex>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    previous_epoch: i32,
    pub state: MemberState,
    /// What the member has been told it owns.
    pub assigned: Assignment,
    /// Partitions it has been asked to give up and has not yet.
    pub revoking: Assignment,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
    /// Left with epoch -2: a static member expected back, keeping its
    /// partitions until its session times out.
    static_left: bool,
}

impl ConsumerMember {
    fn subscribes_to(&self, topic: &str) -> bool {
        self.topic_names.contains(topic)
            || self.compiled.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

/// Anchored as Kafka matches subscriptions: the whole name (RE2 syntax).
fn compile_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("Invalid regular expression {pattern:?}: {e}"))
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|bs| ps.is_subset(bs)))
}

fn disjoint(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| b.get(t).is_none_or(|bs| ps.is_disjoint(bs)))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

/// What ConsumerGroupDescribe reports of a member.
#[derive(Debug, Clone)]
pub struct DescribedMember {
    pub member: ConsumerMember,
    pub target: Assignment,
}

#[derive(Debug, Clone)]
pub struct DescribedConsumerGroup {
    pub state: ConsumerGroupState,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    id: String,
    config: ConsumerConfig,
    group_epoch: i32,
    assignment_epoch: i32,
    members: BTreeMap<String, ConsumerMember>,
    target: BTreeMap<String, Assignment>,
    /// Subscribed topics that exist, with their partition counts; a change
    /// bumps the group epoch.
    subscribed: BTreeMap<String, i32>,
    /// Who holds each partition (assigned or revoking); at most one member.
    holders: HashMap<(String, i32), String>,
    assignor: String,
    /// What changed since the shell last persisted the group.
    dirty: Dirty,
    /// An assignment job was handed out and has not come back.
    assigning: bool,
}

/// A target assignment to compute away from the heartbeat: a snapshot of
/// the group at `group_epoch`.
#[derive(Debug)]
pub struct AssignmentJob {
    group_epoch: i32,
    assignor: String,
    specs: Vec<MemberSpec>,
    topics: BTreeMap<String, i32>,
}

/// What an [`AssignmentJob`] computed.
#[derive(Debug)]
pub struct ComputedAssignment {
    group_epoch: i32,
    assignor: String,
    target: BTreeMap<String, Assignment>,
}

impl AssignmentJob {
    pub fn run(self) -> ComputedAssignment {
        ComputedAssignment {
            target: assignor::assign(&self.assignor, &self.specs, &self.topics),
            group_epoch: self.group_epoch,
            assignor: self.assignor,
        }
    }
}

/// What changed since the last [`ConsumerGroup::take_changes`].
#[derive(Debug, Clone, Default)]
struct Dirty {
    group_epoch: bool,
    assignment_epoch: bool,
    members: BTreeSet<String>,
    targets: BTreeSet<String>,
    removed: BTreeSet<String>,
}

/// A member as it is persisted: everything but its timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub topic_names: BTreeSet<String>,
    pub topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub member_epoch: i32,
    pub previous_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub revoking: Assignment,
    /// A static member that left with epoch -2 and is expected back.
    pub static_left: bool,
}

/// One change for the shell to persist, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    GroupEpoch(i32),
    AssignmentEpoch(i32),
    /// The member's metadata and current assignment.
    Member(StoredMember),
    Target {
        member_id: String,
        target: Assignment,
    },
    /// The member left: its member, target and assignment records go.
    Removed(String),
}

/// A consumer group as read back from its records.
#[derive(Debug, Clone, Default)]
pub struct StoredGroup {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: Vec<StoredMember>,
    pub targets: BTreeMap<String, Assignment>,
}

impl ConsumerMember {
    fn stored(&self) -> StoredMember {
        StoredMember {
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            topic_names: self.topic_names.clone(),
            topic_regex: self.topic_regex.clone(),
            server_assignor: self.server_assignor.clone(),
            member_epoch: self.member_epoch,
            previous_epoch: self.previous_epoch,
            state: self.state,
            assigned: self.assigned.clone(),
            revoking: self.revoking.clone(),
            static_left: self.static_left,
        }
    }
}

impl ConsumerGroup {
    pub fn new(id: impl Into<String>, config: ConsumerConfig) -> Self {
        let assignor = config
            .assignors
            .first()
            .cloned()
            .unwrap_or_else(|| assignor::UNIFORM.into());
        Self {
            id: id.into(),
            config,
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed: BTreeMap::new(),
            holders: HashMap::new(),
            assignor,
            dirty: Dirty::default(),
            assigning: false,
        }
    }

    /// Rebuilds a group from its records on a new coordinator. Every member
    /// gets a fresh session (and revocation deadline) from `now`; topics
    /// are matched against today's `topics` without a new epoch, so members
    /// carry on where they were.
    pub fn restore(
        id: impl Into<String>,
        config: ConsumerConfig,
        stored: StoredGroup,
        topics: &BTreeMap<String, i32>,
        now: Instant,
    ) -> Self {
        let mut group = Self::new(id, config);
        group.group_epoch = stored.group_epoch;
        group.assignment_epoch = stored.assignment_epoch;
        let session = group.config.session_timeout;
        for m in stored.members {
            let compiled = m.topic_regex.as_deref().and_then(|p| compile_regex(p).ok());
            for (t, ps) in m.assigned.iter().chain(&m.revoking) {
                for p in ps {
                    group.holders.insert((t.clone(), *p), m.member_id.clone());
                }
            }
            let revoke_deadline = (m.state == MemberState::UnrevokedPartitions)
                .then(|| now + Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64));
            group.members.insert(
                m.member_id.clone(),
                ConsumerMember {
                    member_id: m.member_id,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    topic_names: m.topic_names,
                    topic_regex: m.topic_regex,
                    compiled,
                    server_assignor: m.server_assignor,
                    member_epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    state: m.state,
                    assigned: m.assigned,
                    revoking: m.revoking,
                    session_deadline: now + session,
                    revoke_deadline,
                    static_left: m.static_left,
                },
            );
        }
        group.target = stored
            .targets
            .into_iter()
            .filter(|(id, _)| group.members.contains_key(id))
            .collect();
        group.assignor = group.choose_assignor();
        group.refresh_subscriptions(topics);
        group
    }

    /// Everything that changed since the last call, to be persisted in
    /// this order. Empty when a heartbeat changed nothing durable.
    pub fn take_changes(&mut self) -> Vec<GroupChange> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut out = Vec::new();
        if dirty.group_epoch {
            out.push(GroupChange::GroupEpoch(self.group_epoch));
        }
        for id in dirty.removed {
            if !self.members.contains_key(&id) {
                out.push(GroupChange::Removed(id));
            }
        }
        for id in &dirty.members {
            if let Some(m) = self.members.get(id) {
                out.push(GroupChange::Member(m.stored()));
            }
        }
        for id in dirty.targets {
            if self.members.contains_key(&id) {
                let target = self.target.get(&id).cloned().unwrap_or_default();
                out.push(GroupChange::Target {
                    member_id: id,
                    target,
                });
            }
        }
        if dirty.assignment_epoch {
            out.push(GroupChange::AssignmentEpoch(self.assignment_epoch));
        }
        out
    }

    /// After a failed write: the next [`Self::take_changes`] rewrites the
    /// whole group, so the store catches up with memory.
    pub fn mark_all_changed(&mut self) {
        self.dirty.group_epoch = true;
        self.dirty.assignment_epoch = true;
        self.dirty.members = self.members.keys().cloned().collect();
        self.dirty.targets = self.members.keys().cloned().collect();
    }

    fn bump_group_epoch(&mut self) {
        self.group_epoch += 1;
        self.dirty.group_epoch = true;
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

    pub fn member(&self, member_id: &str) -> Option<&ConsumerMember> {
        self.members.get(member_id)
    }

    pub fn members(&self) -> impl Iterator<Item = &ConsumerMember> {
        self.members.values()
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || m.state != MemberState::Stable)
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Topics any member subscribes to (for OffsetDelete's check).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.subscribed.keys().cloned().collect()
    }

    /// The earliest session or revocation deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revoke_deadline])
            .flatten()
            .min()
    }

    /// OffsetCommit from a member of this group (v9+ carry its epoch).
    pub fn validate_commit(
        &self,
        member_id: &str,
        member_epoch: i32,
        version: i16,
    ) -> Result<(), i16> {
        if member_id.is_empty() && member_epoch < 0 {
            // A commit from outside the group (admin tools): only while empty.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(UNKNOWN_MEMBER_ID)
            };
        }
        let member = self.members.get(member_id).ok_or(UNKNOWN_MEMBER_ID)?;
        if member_epoch == member.member_epoch {
            Ok(())
        } else if version >= 9 {
            Err(STALE_MEMBER_EPOCH)
        } else {
            Err(ILLEGAL_GENERATION)
        }
    }

    pub fn heartbeat(
        &mut self,
        input: HeartbeatInput,
        topics: &BTreeMap<String, i32>,
        now: Instant,
    ) -> HeartbeatOutput {
        match input.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => self.leave(&input, topics),
            JOIN_EPOCH => self.join(input, topics, now),
            e if e < 0 => {
                HeartbeatOutput::error(INVALID_REQUEST, format!("Invalid member epoch {e}."))
            }
            _ => self.beat(input, topics, now),
        }
    }

    fn leave(&mut self, input: &HeartbeatInput, topics: &BTreeMap<String, i32>) -> HeartbeatOutput {
        let Some(member) = self.members.get_mut(&input.member_id) else {
            return HeartbeatOutput::error(
                UNKNOWN_MEMBER_ID,
                format!("Member {} is not in group {}.", input.member_id, self.id),
            );
        };
        if input.member_epoch == STATIC_LEAVE_EPOCH && member.instance_id.is_some() {
            // Its partitions wait for it until the session times out.
            member.static_left = true;
            self.dirty.members.insert(input.member_id.clone());
        } else {
            self.remove_member(&input.member_id.clone());
            if self.refresh_subscriptions(topics) {
                self.bump_group_epoch();
            }
            self.maybe_assign();
        }
        self.respond(&input.member_id, input.member_epoch, None)
    }

    fn join(
        &mut self,
        input: HeartbeatInput,
        topics: &BTreeMap<String, i32>,
        now: Instant,
    ) -> HeartbeatOutput {
        if input.subscribed_topic_names.is_none() && input.subscribed_topic_regex.is_none() {
            return HeartbeatOutput::error(
                INVALID_REQUEST,
                "SubscribedTopicNames or SubscribedTopicRegex must be set in the first request.",
            );
        }
        if let Some(a) = input
            .server_assignor
            .as_deref()
            .filter(|a| !self.config.assignors.iter().any(|k| k == a))
        {
            return HeartbeatOutput::error(
                UNSUPPORTED_ASSIGNOR,
                format!(
                    "ServerAssignor {a} is not supported. Supported assignors: {}.",
                    self.config.assignors.join(", ")
                ),
            );
        }
        let member_id = if input.member_id.is_empty() {
            input.generated_member_id.clone()
        } else {
            input.member_id.clone()
        };
        if member_id.is_empty() {
            return HeartbeatOutput::error(INVALID_REQUEST, "MemberId can't be empty.");
        }
        let replaced = match input.instance_id.as_deref() {
            Some(instance) => match self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance))
            {
                Some(old) if old.member_id == member_id => None,
                Some(old) if old.static_left => Some(old.member_id.clone()),
                Some(_) => {
                    return HeartbeatOutput::error(
                        UNRELEASED_INSTANCE_ID,
                        format!(
                            "Static member with instance id {instance} is still in the group; it must leave first."
                        ),
                    );
                }
                None => None,
            },
            None => None,
        };
        let timeout = input.rebalance_timeout_ms;
        if let Some(old_id) = replaced {
            // A static member coming back takes over its predecessor's
            // place: same epoch, same partitions, no rebalance.
            let mut member = self.members.remove(&old_id).expect("found above");
            for holder in self.holders.values_mut().filter(|h| **h == old_id) {
                holder.clone_from(&member_id);
            }
            if let Some(t) = self.target.remove(&old_id) {
                self.target.insert(member_id.clone(), t);
            }
            member.member_id.clone_from(&member_id);
            member.static_left = false;
            self.members.insert(member_id.clone(), member);
            self.dirty.removed.insert(old_id);
            self.dirty.targets.insert(member_id.clone());
        } else {
            if self.members.contains_key(&member_id) {
                // Rejoining with epoch 0: the member has lost its partitions.
                self.release_all(&member_id);
            } else if self.members.len() >= self.config.max_size {
                return HeartbeatOutput::error(
                    GROUP_MAX_SIZE_REACHED,
                    format!(
                        "The consumer group has reached its maximum capacity of {} members.",
                        self.config.max_size
                    ),
                );
            }
            self.members.insert(
                member_id.clone(),
                ConsumerMember {
                    member_id: member_id.clone(),
                    instance_id: input.instance_id.clone(),
                    rack_id: None,
                    client_id: String::new(),
                    client_host: String::new(),
                    rebalance_timeout_ms: if timeout > 0 { timeout } else { 300_000 },
                    topic_names: BTreeSet::new(),
                    topic_regex: None,
                    compiled: None,
                    server_assignor: None,
                    member_epoch: JOIN_EPOCH,
                    previous_epoch: JOIN_EPOCH,
                    state: MemberState::Stable,
                    assigned: Assignment::new(),
                    revoking: Assignment::new(),
                    session_deadline: now,
                    revoke_deadline: None,
                    static_left: false,
                },
            );
        }
        self.dirty.members.insert(member_id.clone());
        let input = HeartbeatInput {
            member_id,
            owned: Some(input.owned.clone().unwrap_or_default()),
            ..input
        };
        self.beat_known(input, topics, now, true)
    }

    fn beat(
        &mut self,
        input: HeartbeatInput,
        topics: &BTreeMap<String, i32>,
        now: Instant,
    ) -> HeartbeatOutput {
        let Some(member) = self.members.get(&input.member_id) else {
            return HeartbeatOutput::error(
                UNKNOWN_MEMBER_ID,
                format!("Member {} is not in group {}.", input.member_id, self.id),
            );
        };
        if input.member_epoch != member.member_epoch {
            // A lost response: the member still acts on its previous epoch,
            // which is fine as long as it owns nothing it should not.
            let lost_response = input.member_epoch == member.previous_epoch
                && input
                    .owned
                    .as_ref()
                    .is_some_and(|o| is_subset(o, &member.assigned));
            if !lost_response {
                return HeartbeatOutput::error(
                    FENCED_MEMBER_EPOCH,
                    format!(
                        "The consumer group member has a member epoch ({}) different from the one known by the coordinator ({}).",
                        input.member_epoch, member.member_epoch
                    ),
                );
            }
        }
        self.beat_known(input, topics, now, false)
    }

    fn beat_known(
        &mut self,
        input: HeartbeatInput,
        topics: &BTreeMap<String, i32>,
        now: Instant,
        joined: bool,
    ) -> HeartbeatOutput {
        let id = input.member_id.clone();
        if let Some(a) = input
            .server_assignor
            .as_deref()
            .filter(|a| !self.config.assignors.iter().any(|k| k == a))
        {
            return HeartbeatOutput::error(
                UNSUPPORTED_ASSIGNOR,
                format!("ServerAssignor {a} is not supported."),
            );
        }
        let compiled = match input.subscribed_topic_regex.as_deref() {
            Some("") | None => None,
            Some(p) => match compile_regex(p) {
                Ok(r) => Some(r),
                Err(message) => {
                    if joined {
                        self.remove_member(&id);
                    }
                    return HeartbeatOutput::error(INVALID_REGULAR_EXPRESSION, message);
                }
            },
        };
        let session = self.config.session_timeout;
        let member = self.members.get_mut(&id).expect("caller checked");
        let before = member.stored();
        let mut subscription_changed = false;
        if let Some(names) = input.subscribed_topic_names {
            let names: BTreeSet<String> = names.into_iter().collect();
            subscription_changed |= names != member.topic_names;
            member.topic_names = names;
        }
        if let Some(pattern) = input.subscribed_topic_regex {
            let pattern = Some(pattern).filter(|p| !p.is_empty());
            subscription_changed |= pattern != member.topic_regex;
            member.topic_regex = pattern;
            member.compiled = compiled;
        }
        if let Some(a) = input.server_assignor {
            subscription_changed |= member.server_assignor.as_deref() != Some(a.as_str());
            member.server_assignor = Some(a);
        }
        if input.rack_id.is_some() {
            member.rack_id = input.rack_id;
        }
        if input.rebalance_timeout_ms > 0 {
            member.rebalance_timeout_ms = input.rebalance_timeout_ms;
        }
        member.client_id = input.client_id;
        member.client_host = input.client_host;
        member.session_deadline = now + session;
        // One bump for whatever this heartbeat changed.
        if self.refresh_subscriptions(topics) || subscription_changed {
            self.bump_group_epoch();
        }
        self.maybe_assign();
        let changed = self.reconcile(&id, input.owned.as_ref(), now);
        let member = &self.members[&id];
        if member.stored() != before {
            self.dirty.members.insert(id.clone());
        }
        let assignment =
            (changed || joined || input.owned.is_some()).then(|| member.assigned.clone());
        let epoch = member.member_epoch;
        self.respond(&id, epoch, assignment)
    }

    fn respond(
        &self,
        member_id: &str,
        epoch: i32,
        assignment: Option<Assignment>,
    ) -> HeartbeatOutput {
        HeartbeatOutput {
            error: NONE,
            message: None,
            member_id: member_id.to_owned(),
            member_epoch: epoch,
            heartbeat_interval_ms: i32::try_from(self.config.heartbeat_interval.as_millis())
                .unwrap_or(i32::MAX),
            assignment,
        }
    }

    /// Recomputes which existing topics are subscribed; returns whether
    /// that changed (a new topic matching a regex, added partitions), which
    /// calls for a new group epoch.
    fn refresh_subscriptions(&mut self, topics: &BTreeMap<String, i32>) -> bool {
        let subscribed: BTreeMap<String, i32> = topics
            .iter()
            .filter(|(t, _)| self.members.values().any(|m| m.subscribes_to(t)))
            .map(|(t, &n)| (t.clone(), n))
            .collect();
        if subscribed == self.subscribed {
            return false;
        }
        self.subscribed = subscribed;
        true
    }

    /// The assignor the members asked for most, else the default.
    fn choose_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for a in self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
        {
            *votes.entry(a).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by_key(|(name, n)| (*n, std::cmp::Reverse(*name)))
            .map(|(a, _)| a.to_owned())
            .unwrap_or_else(|| {
                self.config
                    .assignors
                    .first()
                    .cloned()
                    .unwrap_or_else(|| assignor::UNIFORM.into())
            })
    }

    /// Assigns now if the group epoch moved past the assignment epoch and
    /// the group is small enough; a larger one waits for the shell to run
    /// [`Self::take_assignment_job`].
    fn maybe_assign(&mut self) {
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        // The first assignment is always made here: a joining member's
        // epoch is the assignment epoch, which must not stay 0 (the epoch
        // that means "join").
        let partitions: usize = self.subscribed.values().map(|&n| n.max(0) as usize).sum();
        if self.assignment_epoch > 0 && partitions > self.config.inline_assignment_partitions {
            return;
        }
        let job = self.assignment_job();
        self.install(job.run());
    }

    fn assignment_job(&self) -> AssignmentJob {
        AssignmentJob {
            group_epoch: self.group_epoch,
            assignor: self.choose_assignor(),
            specs: self
                .members
                .values()
                .map(|m| MemberSpec {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    topics: self
                        .subscribed
                        .keys()
                        .filter(|t| m.subscribes_to(t))
                        .cloned()
                        .collect(),
                    previous: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
            topics: self.subscribed.clone(),
        }
    }

    /// An assignment for the shell to compute off the heartbeat, when one
    /// is due and none is already being computed.
    pub fn take_assignment_job(&mut self) -> Option<AssignmentJob> {
        if self.assigning || self.group_epoch <= self.assignment_epoch {
            return None;
        }
        self.assigning = true;
        Some(self.assignment_job())
    }

    /// Takes in a job's result (`None`: the job failed and may be handed
    /// out again). A result older than the current target is dropped;
    /// members that left meanwhile drop out of it, and members that joined
    /// meanwhile wait for the next job, which their join made due.
    pub fn install_assignment(&mut self, computed: Option<ComputedAssignment>) {
        self.assigning = false;
        if let Some(computed) = computed.filter(|c| c.group_epoch > self.assignment_epoch) {
            self.install(computed);
        }
    }

    fn install(&mut self, computed: ComputedAssignment) {
        let target: BTreeMap<String, Assignment> = computed
            .target
            .into_iter()
            .filter(|(id, _)| self.members.contains_key(id))
            .collect();
        for id in self.members.keys() {
            if target.get(id) != self.target.get(id) {
                self.dirty.targets.insert(id.clone());
            }
        }
        self.assignor = computed.assignor;
        self.target = target;
        self.assignment_epoch = computed.group_epoch;
        self.dirty.assignment_epoch = true;
    }

    /// Moves one member a step towards its target. Returns whether what the
    /// member was told changed.
    fn reconcile(&mut self, id: &str, owned: Option<&Assignment>, now: Instant) -> bool {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(id).expect("caller checked");
        if member.state == MemberState::UnrevokedPartitions {
            if !owned.is_some_and(|o| disjoint(o, &member.revoking)) {
                return false;
            }
            for (t, ps) in std::mem::take(&mut member.revoking) {
                for p in ps {
                    self.holders.remove(&(t.clone(), p));
                }
            }
            let member = self.members.get_mut(id).expect("caller checked");
            member.revoke_deadline = None;
            member.state = MemberState::Stable;
        }
        let member = self.members.get_mut(id).expect("caller checked");
        if member.member_epoch == assignment_epoch && member.state == MemberState::Stable {
            return false;
        }
        let revoke = minus(&member.assigned, &target);
        if !revoke.is_empty() {
            member.assigned = minus(&member.assigned, &revoke);
            member.revoking = revoke;
            member.state = MemberState::UnrevokedPartitions;
            member.revoke_deadline =
                Some(now + Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64));
            return true;
        }
        let mut changed = false;
        if member.member_epoch != assignment_epoch {
            member.previous_epoch = member.member_epoch;
            member.member_epoch = assignment_epoch;
            changed = true;
        }
        let mut missing = false;
        for (t, ps) in minus(&target, &member.assigned) {
            for p in ps {
                let key = (t.clone(), p);
                match self.holders.get(&key) {
                    Some(holder) if holder != id => missing = true,
                    _ => {
                        self.holders.insert(key, id.to_owned());
                        member.assigned.entry(t.clone()).or_default().insert(p);
                        changed = true;
                    }
                }
            }
        }
        member.state = if missing {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        changed
    }

    /// Frees everything the member holds.
    fn release_all(&mut self, id: &str) {
        if let Some(m) = self.members.get_mut(id) {
            m.assigned.clear();
            m.revoking.clear();
            m.revoke_deadline = None;
            m.state = MemberState::Stable;
            m.member_epoch = JOIN_EPOCH;
            m.previous_epoch = JOIN_EPOCH;
        }
        self.holders.retain(|_, holder| holder != id);
    }

    fn remove_member(&mut self, id: &str) {
        self.release_all(id);
        if self.members.remove(id).is_some() {
            self.target.remove(id);
            self.dirty.removed.insert(id.to_owned());
            self.dirty.members.remove(id);
            self.bump_group_epoch();
        }
    }

    /// Removes members whose session or revocation deadline has passed
    /// (the latter are fenced: they held partitions others are waiting
    /// for). Returns the removed member ids.
    pub fn on_timer(&mut self, now: Instant) -> Vec<String> {
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
            let known = self.subscribed.clone();
            self.refresh_subscriptions(&known);
            self.maybe_assign();
        }
        expired
    }

    pub fn describe(&self) -> DescribedConsumerGroup {
        DescribedConsumerGroup {
            state: self.state(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.clone(),
            members: self
                .members
                .values()
                .map(|m| DescribedMember {
                    member: m.clone(),
                    target: self.target.get(&m.member_id).cloned().unwrap_or_default(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
#[path = "consumer_group_tests.rs"]
mod tests;
