//! The classic group membership state machine, free of I/O and clocks.
//!
//! Every method takes its inputs plus `now` and returns a response (or `None`
//! when the response is held until the rebalance progresses) and a list of
//! [`Effect`]s that the async shell carries out: completing held join/sync
//! responses, persisting group metadata, arming the group's timer.
//!
//! States and transitions follow Kafka's classic coordinator:
//! `Empty → PreparingRebalance → CompletingRebalance → Stable`, back to
//! `PreparingRebalance` whenever membership or a member's protocols change,
//! and `Dead` once deleted.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use indexmap::IndexMap;
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;
use tokio::time::Instant;

use crate::GroupConfig;
use crate::errors::*;
use crate::records::{GroupValue, MemberValue};

/// Protocol type of Kafka's consumer groups; only their subscriptions can be
/// decoded (for OffsetDelete's subscribed-topic check).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in ListGroups/DescribeGroups.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Work for the async shell, in the order it must be done.
#[derive(Debug)]
pub enum Effect {
    /// Send the held JoinGroup response of `member_id`.
    CompleteJoin {
        member_id: String,
        response: JoinResult,
    },
    /// Send the held SyncGroup response of `member_id`.
    CompleteSync {
        member_id: String,
        response: SyncResult,
    },
    /// Write the group's current metadata record (see [`Group::metadata_value`]).
    PersistMetadata,
    /// Call [`Group::on_timer`] at this instant; `None` = no timer needed.
    /// Firing early is harmless: `on_timer` only acts on expired deadlines.
    ArmTimer(Option<Instant>),
}

/// A JoinGroup request, with the values the shell derives from the wire.
#[derive(Debug, Clone)]
pub struct JoinInput {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    /// Already defaulted to the session timeout for JoinGroup v0.
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub version: i16,
    /// The id a new member gets (`{client_id}-{uuid}`, made by the shell, so
    /// the core stays deterministic).
    pub new_member_id: String,
}

/// A JoinGroup answer, before the shell puts it on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinResult {
    pub error_code: i16,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// KIP-814: the leader keeps its assignment (v9+).
    pub skip_assignment: bool,
    /// Every member's metadata for the chosen protocol: the leader's only.
    pub members: Vec<JoinedMember>,
    /// The JoinGroup version answered (fields differ between versions).
    pub version: i16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

impl JoinResult {
    /// A JoinGroup error for `member_id`.
    pub fn error(member_id: &str, code: i16, version: i16) -> JoinResult {
        JoinResult {
            error_code: code,
            generation_id: -1,
            member_id: member_id.to_owned(),
            version,
            ..JoinResult::default()
        }
    }
}

/// A SyncGroup request, as the shell reads it off the wire.
#[derive(Debug, Clone, Default)]
pub struct SyncInput {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    /// v5+: the protocol the member thinks was chosen.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's: (member id, assignment).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncResult {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(code: i16) -> SyncResult {
        SyncResult {
            error_code: code,
            ..SyncResult::default()
        }
    }
}

/// A classic group as DescribeGroups shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub protocol_type: String,
    /// The chosen protocol (Stable groups only; empty otherwise).
    pub protocol: String,
    pub members: Vec<DescribedMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Stable groups only (mid-rebalance both are in flux).
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub use crate::offsets::CommittedOffset;
use crate::offsets::Retention;

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    /// (name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: bool,
    /// JoinGroup version of the held join, for version-dependent fields.
    join_version: i16,
    awaiting_sync: bool,
    heartbeat_deadline: Instant,
}

impl Member {
    fn metadata_for(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(name, _)| name == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// A member with a response held in the coordinator is by definition
    /// talking to us, so its session cannot expire meanwhile.
    fn keeps_alive(&self) -> bool {
        self.awaiting_join || self.awaiting_sync
    }
}

/// The first rebalance of an empty group waits `delay` for more members,
/// extended while members keep arriving, within the rebalance timeout.
#[derive(Debug, Clone)]
struct InitialDelay {
    remaining: Duration,
    new_member_added: bool,
}

#[derive(Debug)]
pub struct Group {
    id: String,
    config: GroupConfig,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    /// Insertion order matters: the first member becomes leader.
    members: IndexMap<String, Member>,
    /// group.instance.id → current member id (KIP-345).
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, until they rejoin or
    /// their session timeout passes (KIP-394).
    pending_members: HashMap<String, Instant>,
    /// Members that received a join response but have not sent SyncGroup.
    pending_sync: HashSet<String>,
    join_deadline: Option<Instant>,
    sync_deadline: Option<Instant>,
    initial_delay: Option<InitialDelay>,
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Group {
    pub fn new(id: impl Into<String>, config: GroupConfig) -> Self {
        Self {
            id: id.into(),
            config,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            join_deadline: None,
            sync_deadline: None,
            initial_delay: None,
        }
    }

    /// Rebuilds a group from its stored metadata. A group stored with
    /// members comes back Stable and every member gets a fresh session: if
    /// it does not heartbeat in time, it expires and the group rebalances.
    pub fn from_stored(
        id: impl Into<String>,
        config: GroupConfig,
        value: GroupValue,
        now: Instant,
    ) -> Self {
        let mut group = Group::new(id, config);
        group.generation = value.generation;
        group.protocol_type = Some(value.protocol_type).filter(|p| !p.is_empty());
        for m in value.members {
            if let Some(instance) = &m.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let session_timeout = millis(m.session_timeout_ms);
            let protocols = value
                .protocol
                .iter()
                .map(|p| (p.clone(), m.subscription.clone()))
                .collect();
            group.members.insert(
                m.member_id.clone(),
                Member {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    session_timeout,
                    rebalance_timeout: millis(m.rebalance_timeout_ms),
                    protocol_type: group.protocol_type.clone().unwrap_or_default(),
                    protocols,
                    assignment: m.assignment,
                    awaiting_join: false,
                    join_version: 0,
                    awaiting_sync: false,
                    heartbeat_deadline: now + session_timeout,
                },
            );
        }
        if !group.members.is_empty() {
            group.state = GroupState::Stable;
            group.protocol = value.protocol;
            group.leader = value
                .leader
                .filter(|l| group.members.contains_key(l))
                .or_else(|| group.members.keys().next().cloned());
        }
        group
    }

    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }
    pub fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
    }

    /// Earliest instant at which [`Group::on_timer`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let heartbeats = self
            .members
            .values()
            .filter(|m| !m.keeps_alive())
            .map(|m| m.heartbeat_deadline);
        let sync = self.sync_deadline.filter(|_| !self.pending_sync.is_empty());
        heartbeats
            .chain(self.pending_members.values().copied())
            .chain(self.join_deadline)
            .chain(sync)
            .min()
    }

    fn finish(&self, fx: &mut Vec<Effect>) {
        fx.push(Effect::ArmTimer(self.next_deadline()));
    }

    // ---------------------------------------------------------------- join

    /// JoinGroup. A held response ([`JoinOutcome::Wait`]) arrives later as an
    /// [`Effect::CompleteJoin`] — possibly among this call's own effects, so
    /// the shell must register the waiter before applying them.
    pub fn join(&mut self, input: JoinInput, now: Instant) -> (JoinOutcome, Vec<Effect>) {
        let mut fx = Vec::new();
        let outcome = self.join_inner(input, now, &mut fx);
        self.finish(&mut fx);
        (outcome, fx)
    }

    fn join_inner(&mut self, j: JoinInput, now: Instant, fx: &mut Vec<Effect>) -> JoinOutcome {
        let session = millis(j.session_timeout_ms);
        if j.session_timeout_ms < 0
            || session < self.config.min_session_timeout
            || session > self.config.max_session_timeout
        {
            return self.join_error(&j.member_id, INVALID_SESSION_TIMEOUT, j.version);
        }
        if self.state == GroupState::Dead {
            return self.join_error(&j.member_id, COORDINATOR_NOT_AVAILABLE, j.version);
        }
        if !self.supports_protocols(&j.protocol_type, &j.protocols) {
            return self.join_error(&j.member_id, INCONSISTENT_GROUP_PROTOCOL, j.version);
        }
        if j.member_id.is_empty() {
            self.join_new_member(j, now, fx)
        } else {
            self.join_known_member(j, now, fx)
        }
    }

    fn is_full(&self) -> bool {
        self.members.len() + self.pending_members.len() >= self.config.max_group_size
    }

    fn join_new_member(&mut self, j: JoinInput, now: Instant, fx: &mut Vec<Effect>) -> JoinOutcome {
        let new_id = j.new_member_id.clone();
        if let Some(instance) = &j.group_instance_id
            && let Some(old_id) = self.static_members.get(instance).cloned()
        {
            return self.replace_static_member(old_id, new_id, j, now, fx);
        }
        if self.is_full() {
            return self.join_error(&j.member_id, GROUP_MAX_SIZE_REACHED, j.version);
        }
        // KIP-394: a dynamic member must come back with the id we hand out,
        // so a client that keeps retrying after timeouts cannot flood the
        // group with ghost members. Static members are identified already.
        if j.group_instance_id.is_none() && j.version >= 4 {
            self.pending_members
                .insert(new_id.clone(), now + millis(j.session_timeout_ms));
            return self.join_error(&new_id, MEMBER_ID_REQUIRED, j.version);
        }
        self.add_member_and_rebalance(new_id, j, now, fx)
    }

    fn join_known_member(
        &mut self,
        j: JoinInput,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> JoinOutcome {
        let id = j.member_id.clone();
        if self.pending_members.remove(&id).is_some() {
            return self.add_member_and_rebalance(id, j, now, fx);
        }
        if let Err(code) = self.check_member(&id, j.group_instance_id.as_deref()) {
            return self.join_error(&id, code, j.version);
        }
        let Some(member) = self.members.get(&id) else {
            return self.join_error(&id, UNKNOWN_MEMBER_ID, j.version);
        };
        let unchanged = member.protocols == j.protocols;
        let is_leader = self.leader.as_deref() == Some(id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(j, now, fx),
            // The member most likely lost its join response: resend it.
            GroupState::CompletingRebalance if unchanged => {
                JoinOutcome::Respond(self.join_response(&id, j.version))
            }
            // A follower with nothing new needs no rebalance; the leader
            // rejoining means it wants to reassign, so it gets one.
            GroupState::Stable if unchanged && !is_leader => {
                JoinOutcome::Respond(self.join_response(&id, j.version))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(j, now, fx)
            }
            GroupState::Empty | GroupState::Dead => {
                self.join_error(&id, UNKNOWN_MEMBER_ID, j.version)
            }
        }
    }

    /// KIP-345: a static member restarting gets a new member id and takes
    /// over the old one's place (and assignment); the old id is fenced.
    fn replace_static_member(
        &mut self,
        old_id: String,
        new_id: String,
        j: JoinInput,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> JoinOutcome {
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            // The mapping outlived its member; treat as a fresh static member.
            self.static_members
                .remove(j.group_instance_id.as_deref().unwrap_or_default());
            return self.add_member_and_rebalance(new_id, j, now, fx);
        };
        if member.awaiting_join {
            fx.push(Effect::CompleteJoin {
                member_id: old_id.clone(),
                response: self.error_join_response(
                    &old_id,
                    FENCED_INSTANCE_ID,
                    member.join_version,
                ),
            });
        }
        if member.awaiting_sync {
            fx.push(Effect::CompleteSync {
                member_id: old_id.clone(),
                response: SyncResult::error(FENCED_INSTANCE_ID),
            });
        }
        member.awaiting_join = false;
        member.awaiting_sync = false;
        let unchanged = member.protocols == j.protocols;
        member.member_id = new_id.clone();
        member.heartbeat_deadline = now + millis(j.session_timeout_ms);
        self.members.insert(new_id.clone(), member);
        if let Some(instance) = &j.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        let mut j = j;
        j.member_id = new_id.clone();
        match self.state {
            // KIP-814: v9+ lets the leader skip reassigning; older leaders
            // would wait for a member list they will not get, so rebalance.
            GroupState::Stable if unchanged && (!was_leader || j.version >= 9) => {
                fx.push(Effect::PersistMetadata);
                let mut response = self.join_response(&new_id, j.version);
                if was_leader {
                    response.skip_assignment = true;
                }
                JoinOutcome::Respond(response)
            }
            _ => self.update_member_and_rebalance(j, now, fx),
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        id: String,
        j: JoinInput,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> JoinOutcome {
        if self.members.is_empty() {
            self.protocol_type = Some(j.protocol_type.clone());
        }
        if let Some(instance) = &j.group_instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        let session_timeout = millis(j.session_timeout_ms);
        self.members.insert(
            id.clone(),
            Member {
                member_id: id.clone(),
                group_instance_id: j.group_instance_id,
                client_id: j.client_id,
                client_host: j.client_host,
                session_timeout,
                rebalance_timeout: millis(j.rebalance_timeout_ms),
                protocol_type: j.protocol_type,
                protocols: j.protocols,
                assignment: Bytes::new(),
                awaiting_join: true,
                join_version: j.version,
                awaiting_sync: false,
                heartbeat_deadline: now + session_timeout,
            },
        );
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if self.state == GroupState::PreparingRebalance {
            if let Some(delay) = &mut self.initial_delay {
                delay.new_member_added = true;
            }
        } else {
            self.prepare_rebalance(now, fx);
        }
        self.maybe_complete_join(now, fx);
        JoinOutcome::Wait { member_id: id }
    }

    fn update_member_and_rebalance(
        &mut self,
        j: JoinInput,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> JoinOutcome {
        let id = j.member_id.clone();
        if let Some(m) = self.members.get_mut(&id) {
            m.session_timeout = millis(j.session_timeout_ms);
            m.rebalance_timeout = millis(j.rebalance_timeout_ms);
            m.client_id = j.client_id;
            m.client_host = j.client_host;
            m.protocol_type = j.protocol_type;
            m.protocols = j.protocols;
            m.awaiting_join = true;
            m.join_version = j.version;
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, fx);
        }
        self.maybe_complete_join(now, fx);
        JoinOutcome::Wait { member_id: id }
    }

    fn prepare_rebalance(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        if self.state == GroupState::CompletingRebalance {
            // The assignment being computed is for membership that no longer
            // holds; followers waiting for it must rejoin instead.
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    fx.push(Effect::CompleteSync {
                        member_id: m.member_id.clone(),
                        response: SyncResult::error(REBALANCE_IN_PROGRESS),
                    });
                }
            }
        }
        self.pending_sync.clear();
        self.sync_deadline = None;
        let timeout = self.max_rebalance_timeout();
        if self.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay.min(timeout);
            self.initial_delay = Some(InitialDelay {
                remaining: timeout.saturating_sub(delay),
                new_member_added: false,
            });
            self.join_deadline = Some(now + delay);
        } else {
            self.initial_delay = None;
            self.join_deadline = Some(now + timeout);
        }
        self.state = GroupState::PreparingRebalance;
    }

    fn max_rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn maybe_complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let all_joined =
            self.members.values().all(|m| m.awaiting_join) && self.pending_members.is_empty();
        if self.state == GroupState::PreparingRebalance
            && self.initial_delay.is_none()
            && all_joined
        {
            self.complete_join(now, fx);
        }
    }

    /// Ends the join phase: members that did not rejoin are dropped, the
    /// generation advances and every waiting member gets its response.
    ///
    /// This is also where a future server-side assignor (Weir's Connect and
    /// streams runtimes) would compute assignments for its protocol type and
    /// move straight to Stable, instead of waiting for the leader's SyncGroup.
    fn complete_join(&mut self, now: Instant, fx: &mut Vec<Effect>) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for id in gone {
            self.forget_member(&id);
        }
        self.join_deadline = None;
        self.initial_delay = None;
        self.generation = self.generation.wrapping_add(1);
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            fx.push(Effect::PersistMetadata);
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.protocol = Some(self.select_protocol());
        self.state = GroupState::CompletingRebalance;
        self.sync_deadline = Some(now + self.max_rebalance_timeout());
        self.pending_sync = self.members.keys().cloned().collect();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let version = self.members.get(&id).map_or(0, |m| m.join_version);
            let response = self.join_response(&id, version);
            if let Some(m) = self.members.get_mut(&id) {
                m.awaiting_join = false;
                m.heartbeat_deadline = now + m.session_timeout;
            }
            fx.push(Effect::CompleteJoin {
                member_id: id,
                response,
            });
        }
    }

    /// Kafka's rule: among the protocols every member supports, each member
    /// votes for its most preferred one; most votes wins. Ties go to the
    /// earliest candidate in the first member's preference order.
    fn select_protocol(&self) -> String {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return String::new();
        };
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let mut best: Option<(&str, usize)> = None;
        for c in &candidates {
            let v = votes.get(c).copied().unwrap_or(0);
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((c, v));
            }
        }
        // Join validation keeps the candidate set non-empty; the fallback
        // only guards against a member changing protocols mid-rebalance.
        best.map(|(c, _)| c.to_owned())
            .or_else(|| first.protocols.first().map(|(n, _)| n.clone()))
            .unwrap_or_default()
    }

    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    fn join_response(&self, member_id: &str, version: i16) -> JoinResult {
        let is_leader = self.leader.as_deref() == Some(member_id);
        let members = if is_leader {
            self.members
                .values()
                .map(|m| JoinedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    metadata: m.metadata_for(self.protocol.as_deref()),
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinResult {
            error_code: 0,
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            skip_assignment: false,
            members,
            version,
        }
    }

    fn error_join_response(&self, member_id: &str, code: i16, version: i16) -> JoinResult {
        JoinResult::error(member_id, code, version)
    }

    fn join_error(&self, member_id: &str, code: i16, version: i16) -> JoinOutcome {
        JoinOutcome::Respond(JoinResult::error(member_id, code, version))
    }

    // ---------------------------------------------------------------- sync

    /// SyncGroup. `None` means held until the leader's assignment arrives
    /// (an [`Effect::CompleteSync`] for this member, possibly among this
    /// call's own effects).
    pub fn sync(&mut self, req: &SyncInput, now: Instant) -> (Option<SyncResult>, Vec<Effect>) {
        let mut fx = Vec::new();
        let response = match self.sync_inner(req, now, &mut fx) {
            Ok(response) => response,
            Err(code) => Some(SyncResult::error(code)),
        };
        self.finish(&mut fx);
        (response, fx)
    }

    fn sync_inner(
        &mut self,
        req: &SyncInput,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> Result<Option<SyncResult>, i16> {
        if self.state == GroupState::Dead {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        let id = req.member_id.as_str();
        self.check_member(id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation {
            return Err(ILLEGAL_GENERATION);
        }
        // v5+ clients say which protocol they think was chosen.
        if req
            .protocol_type
            .as_ref()
            .is_some_and(|t| Some(t.as_str()) != self.protocol_type.as_deref())
            || req
                .protocol_name
                .as_ref()
                .is_some_and(|n| Some(n.as_str()) != self.protocol.as_deref())
        {
            return Err(INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => Err(UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => Err(REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                self.pending_sync.remove(id);
                if let Some(m) = self.members.get_mut(id) {
                    m.awaiting_sync = true;
                }
                if self.leader.as_deref() == Some(id) {
                    let assignments: HashMap<&str, &Bytes> = req
                        .assignments
                        .iter()
                        .map(|(member, assignment)| (member.as_str(), assignment))
                        .collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments
                            .get(m.member_id.as_str())
                            .map(|b| (*b).clone())
                            .unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    // Persist before answering so a restart cannot hand out
                    // an assignment the members never saw.
                    fx.push(Effect::PersistMetadata);
                    let waiting: Vec<String> = self
                        .members
                        .values()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| m.member_id.clone())
                        .collect();
                    for member_id in waiting {
                        let response = self.sync_response(&member_id);
                        if let Some(m) = self.members.get_mut(&member_id) {
                            m.awaiting_sync = false;
                            m.heartbeat_deadline = now + m.session_timeout;
                        }
                        fx.push(Effect::CompleteSync {
                            member_id,
                            response,
                        });
                    }
                }
                Ok(None)
            }
            GroupState::Stable => {
                self.pending_sync.remove(id);
                if let Some(m) = self.members.get_mut(id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                }
                Ok(Some(self.sync_response(id)))
            }
        }
    }

    fn sync_response(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error_code: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    // ------------------------------------------------------- liveness/leave

    /// Heartbeat; returns the error code. Only extends deadlines, so no
    /// timer needs re-arming (an early timer just re-arms itself).
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(code) = self.check_member(member_id, group_instance_id) {
            return code;
        }
        if generation != self.generation {
            return ILLEGAL_GENERATION;
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.heartbeat_deadline = now + m.session_timeout;
        }
        match self.state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
            GroupState::CompletingRebalance | GroupState::Stable => NONE,
        }
    }

    /// LeaveGroup for a batch of (member id, group instance id); one error
    /// code per entry. An empty member id with an instance id names a
    /// static member by its instance (how admin tools remove them).
    pub fn leave(
        &mut self,
        leaving: &[(String, Option<String>)],
        now: Instant,
    ) -> (Vec<i16>, Vec<Effect>) {
        let mut fx = Vec::new();
        let codes = leaving
            .iter()
            .map(|(id, instance)| self.leave_one(id, instance.as_deref(), now, &mut fx))
            .collect();
        self.finish(&mut fx);
        (codes, fx)
    }

    fn leave_one(
        &mut self,
        member_id: &str,
        instance: Option<&str>,
        now: Instant,
        fx: &mut Vec<Effect>,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return COORDINATOR_NOT_AVAILABLE;
        }
        let id = match (member_id.is_empty(), instance) {
            (true, Some(instance)) => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return UNKNOWN_MEMBER_ID,
            },
            _ => member_id.to_owned(),
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now, fx);
            return NONE;
        }
        if let Err(code) = self.check_member(&id, instance) {
            return code;
        }
        self.remove_member(&id, now, fx);
        NONE
    }

    /// Acts on every deadline that has passed: expired sessions, the end of
    /// the join phase, members that never sent SyncGroup.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.pending_members.retain(|_, deadline| *deadline > now);
        if self.state == GroupState::PreparingRebalance
            && self.join_deadline.is_some_and(|d| d <= now)
        {
            let initial = self.config.initial_rebalance_delay;
            match &mut self.initial_delay {
                Some(delay) if delay.new_member_added && !delay.remaining.is_zero() => {
                    let step = initial.min(delay.remaining);
                    delay.remaining -= step;
                    delay.new_member_added = false;
                    self.join_deadline = Some(now + step);
                }
                _ => self.complete_join(now, &mut fx),
            }
        } else {
            // Pending members that just expired may have been the last
            // ones a rebalance was waiting for.
            self.maybe_complete_join(now, &mut fx);
        }
        if matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) && self.sync_deadline.is_some_and(|d| d <= now)
            && !self.pending_sync.is_empty()
        {
            let laggards: Vec<String> = self.pending_sync.iter().cloned().collect();
            for id in laggards {
                self.remove_member(&id, now, &mut fx);
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.keeps_alive() && m.heartbeat_deadline <= now)
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, now, &mut fx);
        }
        self.finish(&mut fx);
        fx
    }

    fn remove_member(&mut self, id: &str, now: Instant, fx: &mut Vec<Effect>) {
        let Some(m) = self.members.get(id) else {
            return;
        };
        if m.awaiting_join {
            fx.push(Effect::CompleteJoin {
                member_id: id.to_owned(),
                response: self.error_join_response(id, UNKNOWN_MEMBER_ID, m.join_version),
            });
        }
        if m.awaiting_sync {
            fx.push(Effect::CompleteSync {
                member_id: id.to_owned(),
                response: SyncResult::error(UNKNOWN_MEMBER_ID),
            });
        }
        self.forget_member(id);
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now, fx);
        }
        self.maybe_complete_join(now, fx);
    }

    fn forget_member(&mut self, id: &str) {
        if let Some(m) = self.members.shift_remove(id)
            && let Some(instance) = m.group_instance_id
            && self
                .static_members
                .get(&instance)
                .is_some_and(|current| current == id)
        {
            self.static_members.remove(&instance);
        }
        self.pending_sync.remove(id);
        if self.leader.as_deref() == Some(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// FENCED_INSTANCE_ID when the instance id belongs to another member
    /// id (a newer incarnation took over), else UNKNOWN_MEMBER_ID if absent.
    fn check_member(&self, member_id: &str, group_instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(current) = group_instance_id.and_then(|i| self.static_members.get(i))
            && current != member_id
        {
            return Err(FENCED_INSTANCE_ID);
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(UNKNOWN_MEMBER_ID)
        }
    }

    // ------------------------------------------------------------- offsets

    /// May this OffsetCommit write? Generation -1 with no member id is a
    /// "simple" commit by a client that manages partitions itself, allowed
    /// only while no group membership exists to conflict with it.
    pub fn validate_commit(
        &mut self,
        generation: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
        now: Instant,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0
            && member_id.is_empty()
            && group_instance_id.is_none()
            && self.state == GroupState::Empty
        {
            return Ok(());
        }
        self.check_member(member_id, group_instance_id)?;
        if generation != self.generation {
            return Err(ILLEGAL_GENERATION);
        }
        match self.state {
            // Commits during PreparingRebalance are how eager consumers save
            // progress before giving partitions up, so they must succeed.
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.heartbeat_deadline = now + m.session_timeout;
                }
                Ok(())
            }
            GroupState::CompletingRebalance => Err(REBALANCE_IN_PROGRESS),
            GroupState::Empty | GroupState::Dead => Err(UNKNOWN_MEMBER_ID),
        }
    }

    /// Which offsets OffsetDelete may remove: `Ok(None)` = any, `Ok(Some(t))`
    /// = any outside the subscribed topics `t`, `Err` = a group-level error.
    pub fn offset_delete_guard(&self) -> Result<Option<HashSet<String>>, i16> {
        match self.state {
            GroupState::Dead => Err(GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(None),
            _ if self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) => {
                Ok(Some(self.subscribed_topics()))
            }
            _ => Err(NON_EMPTY_GROUP),
        }
    }

    /// Which offsets may expire, as Kafka decides since KIP-211: an Empty
    /// group's count from when it became empty (`empty_since_ms`; a group
    /// that never had a protocol counts from each commit); a consumer group
    /// with members keeps the offsets of topics it subscribes to; a group
    /// mid-rebalance keeps everything.
    pub fn retention(&self, empty_since_ms: Option<i64>) -> Retention {
        match self.state {
            GroupState::Empty => Retention::Empty {
                since: empty_since_ms.filter(|_| self.protocol_type.is_some()),
            },
            GroupState::Stable if self.protocol_type.as_deref() == Some("consumer") => {
                // Subscriptions we cannot read keep everything, as in Kafka.
                self.known_subscriptions()
                    .map_or(Retention::KeepAll, Retention::KeepSubscribed)
            }
            _ => Retention::KeepAll,
        }
    }

    /// The members' subscribed topics, or `None` when any member's
    /// subscription cannot be decoded.
    fn known_subscriptions(&self) -> Option<HashSet<String>> {
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(self.subscription_of(m)?);
        }
        Some(topics)
    }

    /// Topics named in the members' consumer-protocol subscriptions. A
    /// subscription we cannot decode contributes nothing, as in Kafka.
    pub fn subscribed_topics(&self) -> HashSet<String> {
        self.members
            .values()
            .filter_map(|m| self.subscription_of(m))
            .flatten()
            .collect()
    }

    /// The topics in one member's subscription, if it decodes.
    fn subscription_of(&self, m: &Member) -> Option<Vec<String>> {
        let mut raw = m.metadata_for(self.protocol.as_deref());
        if raw.len() < 2 {
            return None;
        }
        let version = i16::from_be_bytes([raw[0], raw[1]]);
        let mut body = raw.split_off(2);
        // Newer subscription versions only append fields, so decode them as
        // the newest version we know.
        let sub = ConsumerProtocolSubscription::decode(&mut body, version.clamp(0, 3)).ok()?;
        Some(sub.topics.iter().map(|t| t.to_string()).collect())
    }

    // -------------------------------------------------- describe / persist

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let members = self
            .members
            .values()
            .map(|m| {
                let (metadata, assignment) = if stable {
                    (
                        m.metadata_for(self.protocol.as_deref()),
                        m.assignment.clone(),
                    )
                } else {
                    // Mid-rebalance metadata and assignments are in flux;
                    // Kafka reports them only for Stable groups.
                    (Bytes::new(), Bytes::new())
                };
                DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata,
                    assignment,
                }
            })
            .collect();
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                self.protocol.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members,
        }
    }

    /// The group's `GroupMetadataValue` as of now.
    pub fn metadata_value(&self, now_ms: i64) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    session_timeout_ms: i32::try_from(m.session_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    subscription: m.metadata_for(self.protocol.as_deref()),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Marks the group deleted; only an Empty group may be.
    pub fn delete(&mut self) -> Result<(), i16> {
        match self.state {
            GroupState::Empty => {
                self.state = GroupState::Dead;
                Ok(())
            }
            GroupState::Dead => Err(GROUP_ID_NOT_FOUND),
            _ => Err(NON_EMPTY_GROUP),
        }
    }
}

/// What a JoinGroup gets right away.
#[derive(Debug)]
pub enum JoinOutcome {
    Respond(JoinResult),
    /// Held: an [`Effect::CompleteJoin`] for `member_id` will carry it.
    Wait {
        member_id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Ids the shell would generate: distinct, and predictable here.
    static NEXT_MEMBER: AtomicUsize = AtomicUsize::new(1);

    fn str_bytes(s: &str) -> StrBytes {
        StrBytes::from_string(s.to_owned())
    }

    const SESSION_MS: i32 = 10_000;
    const REBALANCE_MS: i32 = 30_000;
    const DELAY: Duration = Duration::from_secs(3);

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: DELAY,
            ..GroupConfig::default()
        }
    }

    fn input(member_id: &str, instance: Option<&str>, protocols: &[(&str, &[u8])]) -> JoinInput {
        JoinInput {
            member_id: member_id.into(),
            group_instance_id: instance.map(Into::into),
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
            protocols: protocols
                .iter()
                .map(|(n, m)| (n.to_string(), Bytes::copy_from_slice(m)))
                .collect(),
            version: 9,
            new_member_id: format!("client-{}", NEXT_MEMBER.fetch_add(1, Ordering::Relaxed)),
        }
    }

    fn range() -> Vec<(&'static str, &'static [u8])> {
        vec![("range", b"r")]
    }

    fn joins(fx: &[Effect]) -> HashMap<String, JoinResult> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::CompleteJoin {
                    member_id,
                    response,
                } => Some((member_id.clone(), response.clone())),
                _ => None,
            })
            .collect()
    }

    fn syncs(fx: &[Effect]) -> HashMap<String, SyncResult> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::CompleteSync {
                    member_id,
                    response,
                } => Some((member_id.clone(), response.clone())),
                _ => None,
            })
            .collect()
    }

    /// KIP-394 handshake: returns the member id handed out with error 79.
    fn member_id_for(g: &mut Group, now: Instant) -> String {
        match g.join(input("", None, &range()), now).0 {
            JoinOutcome::Respond(r) => {
                assert_eq!(r.error_code, MEMBER_ID_REQUIRED);
                assert!(
                    r.member_id.starts_with("client-"),
                    "the member id the shell generated"
                );
                r.member_id.to_string()
            }
            JoinOutcome::Wait { .. } => panic!("v4+ dynamic member must get MEMBER_ID_REQUIRED"),
        }
    }

    fn join_waiting(g: &mut Group, id: &str, now: Instant) -> Vec<Effect> {
        let (outcome, fx) = g.join(input(id, None, &range()), now);
        assert!(matches!(outcome, JoinOutcome::Wait { .. }), "{outcome:?}");
        fx
    }

    fn sync_req(id: &str, generation: i32, assignments: &[(&str, &[u8])]) -> SyncInput {
        SyncInput {
            member_id: id.into(),
            generation_id: generation,
            assignments: assignments
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
                .collect(),
            ..SyncInput::default()
        }
    }

    /// Fires the timer every initial delay until the join phase completes
    /// (each member arriving during the delay extends it once).
    fn run_initial_delay(g: &mut Group, t0: Instant) -> (HashMap<String, JoinResult>, Instant) {
        for step in 1..=10 {
            let now = t0 + DELAY * step;
            let done = joins(&g.on_timer(now));
            if !done.is_empty() {
                return (done, now);
            }
        }
        panic!("join phase never completed")
    }

    /// A Stable group of `n` dynamic members at generation 1 (ids in join
    /// order), and the instant it became Stable.
    fn stable_group(n: usize, t0: Instant) -> (Group, Vec<String>, Instant) {
        let mut g = Group::new("g", config());
        let ids: Vec<String> = (0..n).map(|_| member_id_for(&mut g, t0)).collect();
        for id in &ids {
            join_waiting(&mut g, id, t0);
        }
        let (responses, ready) = run_initial_delay(&mut g, t0);
        assert_eq!(responses.len(), n);
        let assignments: Vec<(&str, &[u8])> =
            ids.iter().map(|id| (id.as_str(), id.as_bytes())).collect();
        for id in ids.iter().skip(1) {
            assert!(
                g.sync(&sync_req(id, 1, &[]), ready).0.is_none(),
                "followers wait for the leader"
            );
        }
        let (resp, fx) = g.sync(&sync_req(&ids[0], 1, &assignments), ready);
        assert!(resp.is_none());
        assert_eq!(syncs(&fx).len(), n);
        assert_eq!(g.state(), GroupState::Stable);
        (g, ids, ready)
    }

    #[test]
    fn single_member_join_waits_initial_delay_then_syncs() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        let id = member_id_for(&mut g, t0);
        assert_eq!(
            g.state(),
            GroupState::Empty,
            "a pending member does not start a rebalance"
        );
        let fx = join_waiting(&mut g, &id, t0);
        assert!(
            joins(&fx).is_empty(),
            "held for group.initial.rebalance.delay.ms"
        );
        assert!(
            fx.iter()
                .any(|e| matches!(e, Effect::ArmTimer(Some(at)) if *at == t0 + DELAY))
        );
        assert!(joins(&g.on_timer(t0 + DELAY - Duration::from_millis(1))).is_empty());

        let fx = g.on_timer(t0 + DELAY);
        let r = &joins(&fx)[&id];
        assert_eq!((r.error_code, r.generation_id), (NONE, 1));
        assert_eq!(r.leader.as_str(), id);
        assert_eq!(r.protocol_name.as_deref(), Some("range"));
        assert_eq!(r.members.len(), 1);
        assert_eq!(r.members[0].metadata.as_ref(), b"r");
        assert_eq!(g.state(), GroupState::CompletingRebalance);

        let (resp, fx) = g.sync(&sync_req(&id, 1, &[(&id, b"mine")]), t0 + DELAY);
        assert!(resp.is_none());
        assert_eq!(syncs(&fx)[&id].assignment.as_ref(), b"mine");
        assert!(
            matches!(fx.first(), Some(Effect::PersistMetadata)),
            "persisted before answering"
        );
        assert_eq!(g.state(), GroupState::Stable);
    }

    #[test]
    fn three_members_share_a_generation_and_only_the_leader_gets_metadata() {
        let t0 = Instant::now();
        let (g, ids, _) = stable_group(3, t0);
        assert_eq!(g.generation(), 1);
        assert_eq!(g.leader(), Some(ids[0].as_str()));
        for id in &ids {
            assert_eq!(g.member(id).unwrap().assignment.as_ref(), id.as_bytes());
        }
    }

    #[test]
    fn join_responses_carry_leader_member_list() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        let ids: Vec<String> = (0..3).map(|_| member_id_for(&mut g, t0)).collect();
        for id in &ids {
            join_waiting(&mut g, id, t0);
        }
        let (responses, _) = run_initial_delay(&mut g, t0);
        assert!(
            responses
                .values()
                .all(|r| r.generation_id == 1 && r.leader.as_str() == ids[0])
        );
        assert_eq!(responses[&ids[0]].members.len(), 3);
        assert!(responses[&ids[1]].members.is_empty() && responses[&ids[2]].members.is_empty());
    }

    #[test]
    fn initial_delay_extends_while_members_arrive_up_to_rebalance_timeout() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        let a = member_id_for(&mut g, t0);
        let mut short = input(&a, None, &range());
        short.rebalance_timeout_ms = 5_000;
        g.join(short, t0);
        let b = member_id_for(&mut g, t0);
        join_waiting(&mut g, &b, t0 + Duration::from_secs(1));
        assert!(
            joins(&g.on_timer(t0 + DELAY)).is_empty(),
            "a new member extended the delay"
        );
        // Extension is capped by the 5s rebalance timeout: 3s + min(3s, 2s).
        assert!(joins(&g.on_timer(t0 + Duration::from_millis(4_999))).is_empty());
        assert_eq!(joins(&g.on_timer(t0 + Duration::from_secs(5))).len(), 2);
    }

    #[test]
    fn new_member_makes_everyone_rejoin_and_completes_once_all_have() {
        let t0 = Instant::now();
        let (mut g, ids, _) = stable_group(2, t0);
        let t1 = t0 + Duration::from_secs(5);
        let c = member_id_for(&mut g, t1);
        join_waiting(&mut g, &c, t1);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(g.heartbeat(&ids[0], None, 1, t1), REBALANCE_IN_PROGRESS);
        assert!(joins(&join_waiting(&mut g, &ids[0], t1)).is_empty());
        let fx = join_waiting(&mut g, &ids[1], t1);
        let responses = joins(&fx);
        assert_eq!(
            responses.len(),
            3,
            "completes without waiting for the timeout"
        );
        assert!(responses.values().all(|r| r.generation_id == 2));
        assert_eq!(responses[&ids[0]].members.len(), 3, "leader is kept");
    }

    #[test]
    fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
        let t0 = Instant::now();
        let (mut g, ids, ready) = stable_group(2, t0);
        // The leader rejoining starts a rebalance; the follower never rejoins.
        join_waiting(&mut g, &ids[0], ready);
        let timeout = Duration::from_millis(REBALANCE_MS as u64);
        let mut t = ready;
        while t + Duration::from_secs(5) < ready + timeout {
            t += Duration::from_secs(5);
            assert_eq!(g.heartbeat(&ids[1], None, 1, t), REBALANCE_IN_PROGRESS);
            assert!(joins(&g.on_timer(t)).is_empty());
        }
        let fx = g.on_timer(ready + timeout);
        let r = &joins(&fx)[&ids[0]];
        assert_eq!((r.generation_id, r.members.len()), (2, 1));
        assert!(
            g.member(&ids[1]).is_none(),
            "heartbeats alone do not keep a member in the group"
        );
    }

    #[test]
    fn leave_triggers_rebalance_and_last_leave_empties_the_group() {
        let t0 = Instant::now();
        let (mut g, ids, _) = stable_group(2, t0);
        let (codes, _) = g.leave(&[(ids[1].clone(), None)], t0);
        assert_eq!(codes, vec![NONE]);
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        let fx = join_waiting(&mut g, &ids[0], t0);
        assert_eq!(joins(&fx)[&ids[0]].generation_id, 2);
        assert_eq!(joins(&fx)[&ids[0]].members.len(), 1);

        let (codes, fx) = g.leave(&[(ids[0].clone(), None), ("nobody".into(), None)], t0);
        assert_eq!(codes, vec![NONE, UNKNOWN_MEMBER_ID]);
        assert_eq!(g.state(), GroupState::Empty);
        assert!(fx.iter().any(|e| matches!(e, Effect::PersistMetadata)));
    }

    #[test]
    fn session_expiry_removes_member_and_rebalances() {
        let (mut g, ids, t1) = stable_group(2, Instant::now());
        let session = Duration::from_millis(SESSION_MS as u64);
        assert_eq!(g.heartbeat(&ids[0], None, 1, t1 + session / 2), NONE);
        g.on_timer(t1 + session - Duration::from_millis(1));
        assert_eq!(g.state(), GroupState::Stable, "nobody expired yet");
        g.on_timer(t1 + session);
        assert!(g.member(&ids[1]).is_none(), "silent member expired");
        assert!(g.member(&ids[0]).is_some(), "heartbeating member survives");
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn member_waiting_in_join_does_not_expire() {
        let t0 = Instant::now();
        let (mut g, ids, ready) = stable_group(2, t0);
        join_waiting(&mut g, &ids[0], ready);
        // Far past the session timeout, but before the rebalance timeout.
        g.on_timer(ready + Duration::from_secs(20));
        assert!(g.member(&ids[0]).is_some());
        assert!(
            g.member(&ids[1]).is_none(),
            "the member that did not rejoin did expire"
        );
    }

    #[test]
    fn illegal_generation_and_unknown_member() {
        let t0 = Instant::now();
        let (mut g, ids, _) = stable_group(2, t0);
        assert_eq!(g.heartbeat(&ids[0], None, 7, t0), ILLEGAL_GENERATION);
        assert_eq!(g.heartbeat("ghost", None, 1, t0), UNKNOWN_MEMBER_ID);
        assert_eq!(
            g.sync(&sync_req(&ids[1], 0, &[]), t0).0.unwrap().error_code,
            ILLEGAL_GENERATION
        );
        assert_eq!(
            g.sync(&sync_req("ghost", 1, &[]), t0).0.unwrap().error_code,
            UNKNOWN_MEMBER_ID
        );
        match g.join(input("ghost", None, &range()), t0).0 {
            JoinOutcome::Respond(r) => assert_eq!(r.error_code, UNKNOWN_MEMBER_ID),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            g.validate_commit(0, &ids[0], None, t0),
            Err(ILLEGAL_GENERATION)
        );
        assert_eq!(g.validate_commit(1, &ids[0], None, t0), Ok(()));
    }

    #[test]
    fn stable_follower_gets_its_assignment_again_without_rebalance() {
        let t0 = Instant::now();
        let (mut g, ids, _) = stable_group(2, t0);
        match g.join(input(&ids[1], None, &range()), t0).0 {
            JoinOutcome::Respond(r) => assert_eq!((r.error_code, r.generation_id), (NONE, 1)),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.state(), GroupState::Stable);
        assert_eq!(
            g.sync(&sync_req(&ids[1], 1, &[]), t0)
                .0
                .unwrap()
                .assignment
                .as_ref(),
            ids[1].as_bytes()
        );
    }

    #[test]
    fn static_member_rejoin_replaces_old_id_without_rebalance() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        for instance in ["i-0", "i-1"] {
            // Static members skip the MEMBER_ID_REQUIRED round trip.
            assert!(matches!(
                g.join(input("", Some(instance), &range()), t0).0,
                JoinOutcome::Wait { .. }
            ));
        }
        let (responses, _) = run_initial_delay(&mut g, t0);
        let leader = g.leader().unwrap().to_owned();
        let follower = responses.keys().find(|id| **id != leader).unwrap().clone();
        g.sync(&sync_req(&follower, 1, &[]), t0);
        g.sync(
            &sync_req(&leader, 1, &[(&leader, b"L"), (&follower, b"F")]),
            t0,
        );
        assert_eq!(g.state(), GroupState::Stable);

        let instance = g
            .member(&follower)
            .unwrap()
            .group_instance_id
            .clone()
            .unwrap();
        let (outcome, fx) = g.join(input("", Some(&instance), &range()), t0);
        let JoinOutcome::Respond(r) = outcome else {
            panic!("no rebalance expected: {outcome:?}")
        };
        assert_eq!((r.error_code, r.generation_id), (NONE, 1));
        let new_id = r.member_id.to_string();
        assert_ne!(new_id, follower);
        assert_eq!(g.state(), GroupState::Stable);
        assert!(
            fx.iter().any(|e| matches!(e, Effect::PersistMetadata)),
            "new member id is recorded"
        );
        assert_eq!(
            g.heartbeat(&follower, Some(&instance), 1, t0),
            FENCED_INSTANCE_ID
        );
        assert_eq!(g.heartbeat(&new_id, Some(&instance), 1, t0), NONE);
        assert_eq!(
            g.sync(&sync_req(&new_id, 1, &[]), t0)
                .0
                .unwrap()
                .assignment
                .as_ref(),
            b"F"
        );

        // Changed subscription: the replacement has to rebalance.
        let (outcome, _) = g.join(input("", Some(&instance), &[("range", b"other")]), t0);
        assert!(matches!(outcome, JoinOutcome::Wait { .. }));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn protocol_choice_and_validation() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        let both: &[(&str, &[u8])] = &[("range", b""), ("roundrobin", b"")];
        let rr_first: &[(&str, &[u8])] = &[("roundrobin", b""), ("range", b"")];
        for protocols in [both, rr_first, rr_first] {
            let mut j = input("", None, protocols);
            j.version = 3; // pre-KIP-394 clients join directly
            assert!(matches!(g.join(j, t0).0, JoinOutcome::Wait { .. }));
        }
        let (responses, _) = run_initial_delay(&mut g, t0);
        assert!(
            responses
                .values()
                .all(|r| r.protocol_name.as_deref() == Some("roundrobin")),
            "two votes beat one"
        );

        let JoinOutcome::Respond(r) = g.join(input("", None, &[("sticky", b"")]), t0).0 else {
            panic!()
        };
        assert_eq!(r.error_code, INCONSISTENT_GROUP_PROTOCOL);
        let mut bad = input("", None, &range());
        bad.session_timeout_ms = 1_000;
        let JoinOutcome::Respond(r) = g.join(bad, t0).0 else {
            panic!()
        };
        assert_eq!(r.error_code, INVALID_SESSION_TIMEOUT);
        let mut bad = input("", None, &range());
        bad.session_timeout_ms = -5;
        let JoinOutcome::Respond(r) = g.join(bad, t0).0 else {
            panic!()
        };
        assert_eq!(r.error_code, INVALID_SESSION_TIMEOUT);
    }

    #[test]
    fn group_size_is_capped() {
        let t0 = Instant::now();
        let mut g = Group::new(
            "g",
            GroupConfig {
                max_group_size: 1,
                ..config()
            },
        );
        member_id_for(&mut g, t0);
        let JoinOutcome::Respond(r) = g.join(input("", None, &range()), t0).0 else {
            panic!()
        };
        assert_eq!(r.error_code, GROUP_MAX_SIZE_REACHED);
    }

    #[test]
    fn simple_commits_only_without_membership() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        assert_eq!(g.validate_commit(-1, "", None, t0), Ok(()));
        let (mut g, _, _) = stable_group(1, t0);
        assert_eq!(g.validate_commit(-1, "", None, t0), Err(UNKNOWN_MEMBER_ID));
    }

    fn subscription(topics: &[&str]) -> Bytes {
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| str_bytes(t)).collect())
            .encode(&mut buf, 1)
            .unwrap();
        buf.freeze()
    }

    #[test]
    fn offset_delete_is_guarded_by_subscriptions() {
        let t0 = Instant::now();
        let mut g = Group::new("g", config());
        assert_eq!(g.offset_delete_guard(), Ok(None), "Empty: anything goes");
        let meta = subscription(&["orders"]);
        let id = member_id_for(&mut g, t0);
        g.join(input(&id, None, &[("range", meta.as_ref())]), t0);
        g.on_timer(t0 + DELAY);
        g.sync(&sync_req(&id, 1, &[]), t0);
        let protected = g.offset_delete_guard().unwrap().unwrap();
        assert!(protected.contains("orders") && !protected.contains("payments"));

        let mut other = Group::new("h", config());
        let mut j = input("", None, &range());
        j.protocol_type = "connect".into();
        j.version = 3;
        other.join(j, t0);
        assert_eq!(other.offset_delete_guard(), Err(NON_EMPTY_GROUP));
    }

    #[test]
    fn stored_stable_group_comes_back_with_fresh_sessions() {
        let (g, ids, t0) = stable_group(2, Instant::now());
        let value = g.metadata_value(1234);
        let t1 = t0 + Duration::from_secs(3600);
        let mut loaded = Group::from_stored("g", config(), value, t1);
        assert_eq!(
            (loaded.state(), loaded.generation(), loaded.leader()),
            (GroupState::Stable, 1, Some(ids[0].as_str()))
        );
        assert_eq!(
            loaded.member(&ids[1]).unwrap().assignment.as_ref(),
            ids[1].as_bytes()
        );
        assert_eq!(
            loaded.heartbeat(&ids[0], None, 1, t1 + Duration::from_secs(5)),
            NONE
        );
        loaded.on_timer(t1 + Duration::from_millis(SESSION_MS as u64));
        assert!(
            loaded.member(&ids[1]).is_none(),
            "member that never came back expires"
        );
        assert_eq!(loaded.state(), GroupState::PreparingRebalance);
    }

    #[test]
    fn delete_only_when_empty() {
        let t0 = Instant::now();
        let (mut g, _, _) = stable_group(1, t0);
        assert_eq!(g.delete(), Err(NON_EMPTY_GROUP));
        let mut empty = Group::new("e", config());
        assert_eq!(empty.delete(), Ok(()));
        assert_eq!(empty.state(), GroupState::Dead);
        assert_eq!(empty.delete(), Err(GROUP_ID_NOT_FOUND));
    }
}
