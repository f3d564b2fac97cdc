//! Consumer: classic consumer groups (JoinGroup/SyncGroup with client-side
//! assignment, a heartbeat task) or manual assignment, long-poll Fetch,
//! offset commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, FetchRequest, FetchResponse, GroupId,
    HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, SyncGroupRequest,
    TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{
    OffsetSpec, decode_assignment, decode_subscription, fetch_committed, list_offsets,
};
use crate::assignor::AssignmentStrategy;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{Error, Result};
use crate::util::{millis_i32, sb};

/// Newest Fetch that still names topics (v13 switched to topic ids).
const FETCH_MAX_VERSION: i16 = 12;
/// Newest OffsetCommit that still names topics.
const OFFSET_COMMIT_MAX_VERSION: i16 = 9;
/// Version of the consumer-protocol blobs we write.
const CONSUMER_PROTOCOL_VERSION: i16 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    Earliest,
    #[default]
    Latest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    #[default]
    ReadUncommitted,
    /// Only committed transactional records (aborted ones are skipped).
    ReadCommitted,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Needed for `subscribe` and for committing.
    pub group_id: Option<String>,
    /// Where to start without a committed offset (or when it is out of range).
    pub auto_offset_reset: OffsetReset,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub fetch_max_wait: Duration,
    pub fetch_min_bytes: i32,
    pub fetch_max_bytes: i32,
    pub max_partition_fetch_bytes: i32,
    pub isolation_level: IsolationLevel,
    pub assignment_strategy: AssignmentStrategy,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: None,
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 * 1024 * 1024,
            max_partition_fetch_bytes: 1024 * 1024,
            isolation_level: IsolationLevel::ReadUncommitted,
            assignment_strategy: AssignmentStrategy::Range,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    At(i64),
    /// Start from the committed offset, else the reset policy.
    Committed,
    /// Start from the reset policy.
    Reset,
    /// Start from the log start (`seek_to_beginning`), whatever the policy.
    Earliest,
}

type Tp = (String, i32);

/// What the heartbeat task and the consumer share.
#[derive(Default)]
struct Membership {
    member_id: String,
    generation: i32,
    coordinator: Option<Arc<Connection>>,
    /// Set by the heartbeat on a rebalance; the next poll rejoins.
    rejoin: bool,
    /// The coordinator no longer knows us (unknown member, old generation):
    /// someone else may have owned our partitions since, so the next
    /// assignment starts from the committed offsets, not our positions.
    lost: bool,
}

pub struct Consumer {
    cluster: Arc<Cluster>,
    config: ConsumerConfig,
    subscription: Vec<String>,
    positions: BTreeMap<Tp, Position>,
    membership: Arc<Mutex<Membership>>,
    heartbeat: Option<JoinHandle<()>>,
    last_commit: Instant,
    /// Assigned partitions changed since the last commit.
    dirty: bool,
    /// An error met after some records of the same fetch were collected:
    /// those are returned first, the error by the next poll (as Kafka's
    /// clients do), so no record whose position advanced is dropped.
    pending_error: Option<Error>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

fn lock(m: &Mutex<Membership>) -> std::sync::MutexGuard<'_, Membership> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Consumer {
    pub async fn connect(client: ClientConfig, config: ConsumerConfig) -> Result<Consumer> {
        let cluster = Cluster::connect(client).await?;
        Ok(Self::with_cluster(cluster, config))
    }

    pub fn with_cluster(cluster: Arc<Cluster>, config: ConsumerConfig) -> Consumer {
        Consumer {
            cluster,
            config,
            subscription: Vec::new(),
            positions: BTreeMap::new(),
            membership: Arc::new(Mutex::new(Membership {
                generation: -1,
                ..Default::default()
            })),
            heartbeat: None,
            last_commit: Instant::now(),
            dirty: false,
            pending_error: None,
        }
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Joins the group (on the next poll) to share the topics' partitions
    /// with its other members.
    pub fn subscribe(&mut self, topics: &[&str]) -> Result<()> {
        if self.config.group_id.is_none() {
            return Err(Error::Config("subscribe needs a group id".into()));
        }
        if topics.is_empty() {
            return Err(Error::Config("subscribe needs at least one topic".into()));
        }
        self.subscription = topics.iter().map(|t| t.to_string()).collect();
        self.positions.clear();
        lock(&self.membership).rejoin = true;
        Ok(())
    }

    /// Reads exactly these partitions, without group membership.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        self.subscription.clear();
        self.positions = partitions
            .iter()
            .map(|(t, p)| ((t.to_string(), *p), Position::Committed))
            .collect();
    }

    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.positions.keys().cloned().collect()
    }

    /// Next offset to read, once known.
    pub fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        match self.positions.get(&(topic.to_string(), partition)) {
            Some(Position::At(o)) => Some(*o),
            _ => None,
        }
    }

    pub fn seek(&mut self, topic: &str, partition: i32, offset: i64) {
        self.positions
            .insert((topic.to_string(), partition), Position::At(offset));
    }

    pub fn seek_to_beginning(&mut self) {
        for p in self.positions.values_mut() {
            *p = Position::Earliest;
        }
    }

    /// Current group generation and member id (None outside a group).
    pub fn group_member(&self) -> Option<(i32, String)> {
        let m = lock(&self.membership);
        (m.generation >= 0).then(|| (m.generation, m.member_id.clone()))
    }

    /// Waits up to `timeout` for records; returns as soon as some arrive.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.poll_round(deadline).await {
                Ok(Some(records)) => return Ok(records),
                Ok(None) => {}
                // Brokers restarting or leaders moving are the normal life of
                // a cluster: keep trying until the caller's deadline.
                Err(e) if e.is_retriable() => {
                    tracing::debug!(error = %e, "poll: retrying");
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Ok(Vec::new());
                    }
                    tokio::time::sleep(remaining.min(Duration::from_millis(250))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt; `None` means nothing yet and time is left.
    async fn poll_round(&mut self, deadline: Instant) -> Result<Option<Vec<ConsumerRecord>>> {
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        if !self.subscription.is_empty() && lock(&self.membership).rejoin {
            self.join().await?;
        }
        self.resolve_positions().await?;
        self.maybe_auto_commit().await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if self.positions.is_empty() {
            if remaining.is_zero() {
                return Ok(Some(Vec::new()));
            }
            tokio::time::sleep(remaining.min(Duration::from_millis(100))).await;
            return Ok(None);
        }
        let wait = self.config.fetch_max_wait.min(remaining);
        let records = self.fetch_once(wait).await?;
        if !records.is_empty() || Instant::now() >= deadline {
            return Ok(Some(records));
        }
        Ok(None)
    }

    async fn maybe_auto_commit(&mut self) {
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && self.dirty
            && self.last_commit.elapsed() >= self.config.auto_commit_interval
            && let Err(e) = self.commit().await
        {
            tracing::warn!(error = %e, "auto-commit failed");
        }
    }

    /// Commits the current position of every assigned partition.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(String, i32, i64)> = self
            .positions
            .iter()
            .filter_map(|((t, p), pos)| match pos {
                Position::At(o) => Some((t.clone(), *p, *o)),
                _ => None,
            })
            .collect();
        self.commit_offsets(&offsets).await?;
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits the given next-offsets-to-read.
    pub async fn commit_offsets(&mut self, offsets: &[(String, i32, i64)]) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("committing needs a group id".into()))?;
        if offsets.is_empty() {
            return Ok(());
        }
        let (generation, member_id, conn) = {
            let m = lock(&self.membership);
            (m.generation, m.member_id.clone(), m.coordinator.clone())
        };
        let conn = match conn.filter(|c| c.is_alive()) {
            Some(c) => c,
            None => self.cluster.coordinator(&group, 0).await?.1,
        };
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (t, p, o) in offsets {
            topics.entry(t).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(*p)
                    .with_committed_offset(*o)
                    .with_committed_leader_epoch(-1),
            );
        }
        let version = conn.capped_version::<OffsetCommitRequest>(OFFSET_COMMIT_MAX_VERSION)?;
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(&group)))
            .with_generation_id_or_member_epoch(if self.subscription.is_empty() {
                -1
            } else {
                generation
            })
            .with_member_id(if self.subscription.is_empty() {
                StrBytes::default()
            } else {
                sb(&member_id)
            })
            .with_retention_time_ms(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn
            .send_version(&req, version, self.cluster.config().request_timeout)
            .await?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code == 0 {
                    continue;
                }
                let rebalancing = [
                    ResponseError::RebalanceInProgress,
                    ResponseError::IllegalGeneration,
                    ResponseError::UnknownMemberId,
                    ResponseError::NotCoordinator,
                ]
                .iter()
                .any(|e| e.code() == p.error_code);
                if rebalancing {
                    let mut m = lock(&self.membership);
                    m.rejoin = true;
                    m.lost |= membership_lost(p.error_code);
                }
                return Err(Error::kafka(
                    p.error_code,
                    None,
                    format!(
                        "commit offset of {}-{} for group {group:?}",
                        t.name.as_str(),
                        p.partition_index
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Commits (with auto-commit on) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        let mut result = Ok(());
        if self.config.enable_auto_commit && self.config.group_id.is_some() && self.dirty {
            result = self.commit().await;
        }
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        let (member_id, conn) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.coordinator.clone())
        };
        if let (Some(group), Some(conn), false) =
            (&self.config.group_id, conn, member_id.is_empty())
        {
            let version = conn.version_for::<LeaveGroupRequest>()?;
            let mut req = LeaveGroupRequest::default().with_group_id(GroupId(sb(group)));
            if version >= 3 {
                req.members = vec![
                    MemberIdentity::default()
                        .with_member_id(sb(&member_id))
                        .with_reason(Some(StrBytes::from_static_str("the consumer is closing"))),
                ];
            } else {
                req.member_id = sb(&member_id);
            }
            match conn.send(&req).await {
                Ok(resp) if resp.error_code != 0 => {
                    tracing::debug!(code = resp.error_code, "LeaveGroup failed");
                }
                Err(e) => tracing::debug!(error = %e, "LeaveGroup failed"),
                _ => {}
            }
        }
        result
    }

    /// Turns `Committed`/`Reset` positions into offsets.
    async fn resolve_positions(&mut self) -> Result<()> {
        let committed_wanted: Vec<Tp> = self
            .positions
            .iter()
            .filter(|(_, p)| **p == Position::Committed)
            .map(|(tp, _)| tp.clone())
            .collect();
        if !committed_wanted.is_empty() {
            let committed = match &self.config.group_id {
                Some(group) => {
                    // Bound first: the guard must not live across the await.
                    let known = lock(&self.membership)
                        .coordinator
                        .clone()
                        .filter(|c| c.is_alive());
                    let conn = match known {
                        Some(c) => c,
                        None => self.cluster.coordinator(group, 0).await?.1,
                    };
                    fetch_committed(&conn, group, Some(&committed_wanted)).await?
                }
                None => BTreeMap::new(),
            };
            for tp in committed_wanted {
                let pos = committed
                    .get(&tp)
                    .map_or(Position::Reset, |o| Position::At(*o));
                self.positions.insert(tp, pos);
            }
        }
        let policy = match self.config.auto_offset_reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
        };
        for (wanted, spec) in [
            (Position::Reset, policy),
            (Position::Earliest, OffsetSpec::Earliest),
        ] {
            let reset: Vec<Tp> = self
                .positions
                .iter()
                .filter(|(_, p)| **p == wanted)
                .map(|(tp, _)| tp.clone())
                .collect();
            if reset.is_empty() {
                continue;
            }
            let offsets = list_offsets(&self.cluster, &reset, spec, self.isolation()).await?;
            for (tp, o) in offsets {
                self.positions.insert(tp, Position::At(o.offset));
            }
        }
        Ok(())
    }

    fn isolation(&self) -> i8 {
        match self.config.isolation_level {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }

    /// One Fetch round to every leader of an assigned partition.
    async fn fetch_once(&mut self, max_wait: Duration) -> Result<Vec<ConsumerRecord>> {
        let mut by_leader: BTreeMap<i32, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
        let mut missing_leader = BTreeSet::new();
        for ((topic, partition), pos) in &self.positions {
            let Position::At(offset) = pos else { continue };
            match self.cluster.leader(topic, *partition) {
                Some(l) => by_leader
                    .entry(l)
                    .or_default()
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, *offset)),
                None => {
                    missing_leader.insert(topic.clone());
                }
            }
        }
        if !missing_leader.is_empty() {
            let topics: Vec<String> = missing_leader.into_iter().collect();
            if let Err(e) = self.cluster.refresh(Some(&topics)).await {
                tracing::debug!(error = %e, "metadata refresh failed");
            }
            if by_leader.is_empty() {
                tokio::time::sleep(max_wait.min(Duration::from_millis(100))).await;
                return Ok(Vec::new());
            }
        }
        let mut pending = Vec::new();
        for (leader, topics) in by_leader {
            let req = FetchRequest::default()
                .with_replica_id((-1).into())
                .with_max_wait_ms(millis_i32(max_wait))
                .with_min_bytes(self.config.fetch_min_bytes)
                .with_max_bytes(self.config.fetch_max_bytes)
                .with_isolation_level(self.isolation())
                .with_session_id(0)
                .with_session_epoch(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            FetchTopic::default()
                                .with_topic(TopicName(sb(&t)))
                                .with_partitions(
                                    ps.into_iter()
                                        .map(|(p, o)| {
                                            FetchPartition::default()
                                                .with_partition(p)
                                                .with_current_leader_epoch(-1)
                                                .with_fetch_offset(o)
                                                .with_last_fetched_epoch(-1)
                                                .with_log_start_offset(-1)
                                                .with_partition_max_bytes(
                                                    self.config.max_partition_fetch_bytes,
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let started = async {
                let conn = self.cluster.broker(leader).await?;
                let version = conn.capped_version::<FetchRequest>(FETCH_MAX_VERSION)?;
                conn.begin(
                    &req,
                    version,
                    self.cluster.config().request_timeout + max_wait,
                )
            }
            .await;
            pending.push(started);
        }
        let mut out = Vec::new();
        let mut failed = false;
        for p in pending {
            match p {
                Ok(p) => match p.wait().await {
                    Ok(resp) => {
                        if let Err(e) = self.absorb(resp, &mut out) {
                            self.pending_error.get_or_insert(e);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch failed");
                        failed = true;
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "fetch failed");
                    failed = true;
                }
            }
        }
        if failed {
            // Leaders may have moved; look again, without spinning.
            for t in self
                .positions
                .keys()
                .map(|(t, _)| t.clone())
                .collect::<BTreeSet<_>>()
            {
                self.cluster.invalidate(&t);
            }
            if out.is_empty() && self.pending_error.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        match self.pending_error.take() {
            Some(e) if out.is_empty() => Err(e),
            e => {
                self.pending_error = e;
                Ok(out)
            }
        }
    }

    /// Takes in one leader's response. A partition that fails does not stop
    /// the others: its position stays, its records (if any were decoded)
    /// are dropped, and the first such error is returned after the rest.
    fn absorb(&mut self, resp: FetchResponse, out: &mut Vec<ConsumerRecord>) -> Result<()> {
        if resp.error_code != 0 {
            let e = Error::kafka(resp.error_code, None, "fetch");
            if e.is_retriable() {
                return Ok(());
            }
            return Err(e);
        }
        let mut failed = None;
        for t in resp.responses {
            let topic = t.topic.to_string();
            for p in t.partitions {
                let tp = (topic.clone(), p.partition_index);
                let Some(Position::At(position)) = self.positions.get(&tp).copied() else {
                    continue;
                };
                if p.error_code != 0 {
                    let err = Error::kafka(
                        p.error_code,
                        None,
                        format!("fetch {topic}-{}", p.partition_index),
                    );
                    if err.kafka_error() == Some(ResponseError::OffsetOutOfRange) {
                        tracing::info!(topic = %topic, partition = p.partition_index, position, "offset out of range; resetting");
                        self.positions.insert(tp, Position::Reset);
                    } else if err.is_retriable() {
                        self.cluster.invalidate(&topic);
                    } else {
                        failed.get_or_insert(err);
                    }
                    continue;
                }
                let aborted: Vec<(i64, i64)> = p
                    .aborted_transactions
                    .unwrap_or_default()
                    .iter()
                    .map(|a| (*a.producer_id, a.first_offset))
                    .collect();
                let Some(records) = p.records else { continue };
                let read_committed = self.config.isolation_level == IsolationLevel::ReadCommitted;
                let before = out.len();
                let next = match decode_records(
                    &topic,
                    p.partition_index,
                    records,
                    position,
                    read_committed,
                    &aborted,
                    out,
                ) {
                    Ok(next) => next,
                    Err(e) => {
                        out.truncate(before);
                        failed.get_or_insert(e);
                        continue;
                    }
                };
                if next > position {
                    self.positions.insert(tp, Position::At(next));
                    self.dirty = true;
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Joins (or rejoins) the group and takes up the assignment.
    async fn join(&mut self) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("subscribe needs a group id".into()))?;
        if self.config.enable_auto_commit && self.dirty {
            // Hand over where we got to before our partitions move.
            if let Err(e) = self.commit().await {
                tracing::debug!(error = %e, "commit before rebalance failed");
            }
        }
        let mut member_id = lock(&self.membership).member_id.clone();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if attempts > 50 {
                return Err(Error::Other(format!("could not join group {group:?}")));
            }
            let (_, conn) = self.cluster.coordinator(&group, 0).await?;
            lock(&self.membership).coordinator = Some(conn.clone());
            let strategies = [
                self.config.assignment_strategy,
                other_strategy(self.config.assignment_strategy),
            ];
            let metadata = encode_subscription(&self.subscription);
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_session_timeout_ms(millis_i32(self.config.session_timeout))
                .with_rebalance_timeout_ms(millis_i32(self.config.rebalance_timeout))
                .with_member_id(sb(&member_id))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(
                    strategies
                        .iter()
                        .map(|s| {
                            JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_static_str(s.protocol_name()))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let timeout = self.config.rebalance_timeout + Duration::from_secs(5);
            let resp = match conn.send_timeout(&req, timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ResponseError::try_from_code(resp.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    // KIP-394: the broker hands out the id, we join again with it.
                    member_id = resp.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    member_id.clear();
                    lock(&self.membership).lost = true;
                    continue;
                }
                Some(
                    ResponseError::RebalanceInProgress
                    | ResponseError::CoordinatorLoadInProgress
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotCoordinator,
                ) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Some(_) => {
                    return Err(Error::kafka(
                        resp.error_code,
                        None,
                        format!("join group {group:?}"),
                    ));
                }
            }
            member_id = resp.member_id.to_string();
            let generation = resp.generation_id;
            let protocol = resp
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let assignments = if resp.leader == resp.member_id {
                self.lead(&protocol, &resp.members).await?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(sb(&protocol)))
                .with_assignments(assignments);
            let sresp = match conn.send_timeout(&sync, timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            match ResponseError::try_from_code(sresp.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    member_id.clear();
                    lock(&self.membership).lost = true;
                    continue;
                }
                Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                    continue;
                }
                Some(_) => {
                    return Err(Error::kafka(
                        sresp.error_code,
                        None,
                        format!("sync group {group:?}"),
                    ));
                }
            }
            let assigned = decode_assignment(sresp.assignment).unwrap_or_default();
            tracing::debug!(group = %group, generation, member = %member_id, partitions = assigned.len(), "joined group");
            // A partition we keep across the rebalance keeps our position:
            // nobody else owned it in between, and our position may be ahead
            // of what was committed. Unless we were out of the group: then
            // another member may have read (and committed) past it.
            let lost = std::mem::take(&mut lock(&self.membership).lost);
            let mut previous = std::mem::take(&mut self.positions);
            if lost {
                previous.clear();
            }
            self.positions = assigned
                .into_iter()
                .map(|tp| {
                    let pos = match previous.get(&tp) {
                        Some(Position::At(o)) => Position::At(*o),
                        _ => Position::Committed,
                    };
                    (tp, pos)
                })
                .collect();
            {
                let mut m = lock(&self.membership);
                m.member_id = member_id;
                m.generation = generation;
                m.rejoin = false;
                m.coordinator = Some(conn);
            }
            self.start_heartbeat(group);
            return Ok(());
        }
    }

    /// As group leader: assign partitions to every member.
    async fn lead(
        &self,
        protocol: &str,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let strategy = AssignmentStrategy::from_protocol_name(protocol)
            .unwrap_or(self.config.assignment_strategy);
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in members {
            let topics = decode_subscription(m.metadata.clone())
                .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                .unwrap_or_default();
            subscriptions.insert(m.member_id.to_string(), topics);
        }
        let all: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.cluster.refresh(Some(&all)).await?;
        let counts: BTreeMap<String, i32> = all
            .iter()
            .filter_map(|t| {
                self.cluster
                    .topic(t)
                    .map(|m| (t.clone(), m.partitions.len() as i32))
            })
            .collect();
        let plan = strategy.assign(&subscriptions, &counts);
        Ok(plan
            .into_iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(sb(&member))
                    .with_assignment(encode_assignment(&parts))
            })
            .collect())
    }

    fn start_heartbeat(&mut self, group: String) {
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let membership = self.membership.clone();
        let interval = self.config.heartbeat_interval;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let (conn, generation, member_id, rejoin) = {
                    let m = lock(&membership);
                    (
                        m.coordinator.clone(),
                        m.generation,
                        m.member_id.clone(),
                        m.rejoin,
                    )
                };
                let Some(conn) = conn else { continue };
                if rejoin || generation < 0 {
                    continue;
                }
                let req = HeartbeatRequest::default()
                    .with_group_id(GroupId(sb(&group)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&member_id));
                let code = match conn.send(&req).await {
                    Ok(r) => r.error_code,
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        let mut m = lock(&membership);
                        m.coordinator = None;
                        m.rejoin = true;
                        continue;
                    }
                };
                if code != 0 {
                    tracing::debug!(code, "heartbeat says rejoin");
                    let mut m = lock(&membership);
                    m.rejoin = true;
                    m.lost |= membership_lost(code);
                    if code == ResponseError::UnknownMemberId.code() {
                        m.member_id.clear();
                    }
                }
            }
        }));
    }
}

/// Errors that mean the coordinator has dropped us from the group (rather
/// than a rebalance we are still part of).
fn membership_lost(code: i16) -> bool {
    [
        ResponseError::UnknownMemberId,
        ResponseError::IllegalGeneration,
        ResponseError::FencedInstanceId,
    ]
    .iter()
    .any(|e| e.code() == code)
}

fn other_strategy(s: AssignmentStrategy) -> AssignmentStrategy {
    match s {
        AssignmentStrategy::Range => AssignmentStrategy::RoundRobin,
        AssignmentStrategy::RoundRobin => AssignmentStrategy::Range,
    }
}

pub(crate) fn encode_subscription(topics: &[String]) -> Bytes {
    let sub =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| sb(t)).collect());
    let mut b = BytesMut::new();
    b.put_i16(CONSUMER_PROTOCOL_VERSION);
    // Encoding a plain list of strings cannot fail.
    let _ = sub.encode(&mut b, CONSUMER_PROTOCOL_VERSION);
    b.freeze()
}

pub(crate) fn encode_assignment(parts: &[(String, i32)]) -> Bytes {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    let a = ConsumerProtocolAssignment::default().with_assigned_partitions(
        by_topic
            .into_iter()
            .map(|(t, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(sb(t)))
                    .with_partitions(ps)
            })
            .collect(),
    );
    let mut b = BytesMut::new();
    b.put_i16(CONSUMER_PROTOCOL_VERSION);
    let _ = a.encode(&mut b, CONSUMER_PROTOCOL_VERSION);
    b.freeze()
}

/// Decodes a Fetch answer's record batches into `out`, skipping records
/// below `position` (a batch is returned whole) and control records, and
/// returns the next position.
pub(crate) fn decode_records(
    topic: &str,
    partition: i32,
    mut data: Bytes,
    position: i64,
    read_committed: bool,
    aborted: &[(i64, i64)],
    out: &mut Vec<ConsumerRecord>,
) -> Result<i64> {
    // 8 offset + 4 length + 4 epoch + 1 magic + 4 crc + 2 attributes + 4 last offset delta.
    const HEADER: usize = 27;
    let mut next = position;
    let mut aborted: Vec<(i64, i64)> = aborted.to_vec();
    aborted.sort_by_key(|a| a.1);
    let mut aborting: HashMap<i64, ()> = HashMap::new();
    while data.len() >= 12 {
        let base_offset = (&data[0..8]).get_i64();
        let len = (&data[8..12]).get_i32();
        if len < 0 {
            return Err(Error::Other(format!(
                "negative batch length in {topic}-{partition}"
            )));
        }
        let total = 12 + len as usize;
        if data.len() < total {
            // The broker cuts the last batch at the size limit.
            break;
        }
        let mut batch = data.split_to(total);
        if total < HEADER {
            continue;
        }
        let last_offset = base_offset + (&batch[23..27]).get_i32() as i64;
        let set = RecordBatchDecoder::decode(&mut batch).map_err(|e| {
            Error::Other(format!(
                "decoding records of {topic}-{partition} at {base_offset}: {e}"
            ))
        })?;
        if read_committed {
            while aborted.first().is_some_and(|a| a.1 <= last_offset) {
                let a = aborted.remove(0);
                aborting.insert(a.0, ());
            }
        }
        for r in set.records {
            if r.control {
                if read_committed {
                    aborting.remove(&r.producer_id);
                }
                continue;
            }
            if r.offset < position {
                continue;
            }
            if read_committed && r.transactional && aborting.contains_key(&r.producer_id) {
                continue;
            }
            out.push(ConsumerRecord {
                topic: topic.to_string(),
                partition,
                offset: r.offset,
                timestamp: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            });
        }
        next = next.max(last_offset + 1);
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base: i64, values: &[&str], compression: Compression) -> BytesMut {
        let records: Vec<Record> = values
            .iter()
            .enumerate()
            .map(|(i, v)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1 + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(v.to_string())),
                headers: IndexMap::from([(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]),
            })
            .collect();
        let mut b = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut b,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        b
    }

    #[test]
    fn skips_records_below_position_and_truncated_tail() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut data = batch(10, &["a", "b", "c"], c);
            data.extend_from_slice(&batch(13, &["d", "e"], c));
            let third = batch(15, &["f"], c);
            data.extend_from_slice(&third[..third.len() - 3]);
            let mut out = Vec::new();
            let next = decode_records("t", 0, data.freeze(), 11, false, &[], &mut out).unwrap();
            let offsets: Vec<i64> = out.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![11, 12, 13, 14], "{c:?}");
            assert_eq!(next, 15);
            assert_eq!(out[0].value.as_deref(), Some(&b"b"[..]));
            assert_eq!(out[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(
                out[0].headers,
                vec![("h".to_string(), Some(Bytes::from_static(b"v")))]
            );
        }
    }

    #[test]
    fn empty_fetch_keeps_position() {
        let mut out = Vec::new();
        assert_eq!(
            decode_records("t", 0, Bytes::new(), 42, false, &[], &mut out).unwrap(),
            42
        );
        assert!(out.is_empty());
    }

    #[test]
    fn consumer_protocol_blobs_round_trip() {
        let sub = encode_subscription(&["a".to_string(), "b".to_string()]);
        let decoded = decode_subscription(sub).unwrap();
        assert_eq!(decoded.topics, vec![sb("a"), sb("b")]);
        let parts = vec![
            ("a".to_string(), 0),
            ("a".to_string(), 2),
            ("b".to_string(), 1),
        ];
        assert_eq!(decode_assignment(encode_assignment(&parts)).unwrap(), parts);
        assert_eq!(
            decode_assignment(Bytes::new()).unwrap(),
            Vec::<(String, i32)>::new()
        );
    }

    mod against_fake_broker {
        use super::*;
        use crate::conn::tests::{encode_msg, fake_tcp_broker};
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        use kafka_protocol::messages::find_coordinator_response::Coordinator;
        use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
        use kafka_protocol::messages::list_offsets_response::{
            ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
        };
        use kafka_protocol::messages::metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        };
        use kafka_protocol::messages::offset_fetch_response::{
            OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
        };
        use kafka_protocol::messages::*;
        use kafka_protocol::protocol::Decodable;
        use std::sync::Mutex;

        #[derive(Default)]
        struct Group {
            joins: usize,
            assignment: Bytes,
        }

        fn answer(port: u16, g: &Mutex<Group>, api: i16, v: i16, mut body: Bytes) -> Option<Bytes> {
            Some(match api {
                18 => {
                    let keys = [
                        (18, 0, 4),
                        (3, 0, 12),
                        (10, 0, 6),
                        (11, 0, 9),
                        (14, 0, 5),
                        (12, 0, 4),
                        (9, 1, 9),
                        (2, 1, 9),
                        (1, 4, 12),
                        (13, 0, 5),
                        (8, 2, 9),
                    ]
                    .iter()
                    .map(|&(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(k)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                    .collect();
                    encode_msg(&ApiVersionsResponse::default().with_api_keys(keys), v)
                }
                3 => encode_msg(
                    &MetadataResponse::default()
                        .with_brokers(vec![
                            MetadataResponseBroker::default()
                                .with_node_id(0.into())
                                .with_host(sb("127.0.0.1"))
                                .with_port(port as i32),
                        ])
                        .with_topics(vec![
                            MetadataResponseTopic::default()
                                .with_name(Some(TopicName(sb("t"))))
                                .with_partitions(
                                    (0..3)
                                        .map(|p| {
                                            MetadataResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_leader_id(0.into())
                                        })
                                        .collect(),
                                ),
                        ]),
                    v,
                ),
                10 => encode_msg(
                    &FindCoordinatorResponse::default().with_coordinators(vec![
                        Coordinator::default()
                            .with_key(sb("g"))
                            .with_node_id(0.into())
                            .with_host(sb("127.0.0.1"))
                            .with_port(port as i32),
                    ]),
                    v,
                ),
                11 => {
                    let req = JoinGroupRequest::decode(&mut body, v).unwrap();
                    let mut g = g.lock().unwrap();
                    g.joins += 1;
                    let resp = if req.member_id.is_empty() {
                        JoinGroupResponse::default()
                            .with_error_code(ResponseError::MemberIdRequired.code())
                            .with_member_id(sb("m-1"))
                    } else {
                        assert_eq!(req.member_id.as_str(), "m-1");
                        JoinGroupResponse::default()
                            .with_generation_id(1)
                            .with_protocol_type(Some(sb("consumer")))
                            .with_protocol_name(Some(req.protocols[0].name.clone()))
                            .with_leader(sb("m-1"))
                            .with_member_id(sb("m-1"))
                            .with_members(vec![
                                JoinGroupResponseMember::default()
                                    .with_member_id(sb("m-1"))
                                    .with_metadata(req.protocols[0].metadata.clone()),
                            ])
                    };
                    encode_msg(&resp, v)
                }
                14 => {
                    let req = SyncGroupRequest::decode(&mut body, v).unwrap();
                    let mut g = g.lock().unwrap();
                    if let Some(a) = req
                        .assignments
                        .iter()
                        .find(|a| a.member_id.as_str() == "m-1")
                    {
                        g.assignment = a.assignment.clone();
                    }
                    encode_msg(
                        &SyncGroupResponse::default().with_assignment(g.assignment.clone()),
                        v,
                    )
                }
                12 => encode_msg(&HeartbeatResponse::default(), v),
                9 => {
                    let parts = (0..3)
                        .map(|p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(if p == 0 { 5 } else { -1 })
                        })
                        .collect();
                    encode_msg(
                        &OffsetFetchResponse::default().with_groups(vec![
                            OffsetFetchResponseGroup::default()
                                .with_group_id(GroupId(sb("g")))
                                .with_topics(vec![
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(sb("t")))
                                        .with_partitions(parts),
                                ]),
                        ]),
                        v,
                    )
                }
                2 => {
                    let req = ListOffsetsRequest::decode(&mut body, v).unwrap();
                    let topics = req
                        .topics
                        .iter()
                        .map(|t| {
                            ListOffsetsTopicResponse::default()
                                .with_name(t.name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            ListOffsetsPartitionResponse::default()
                                                .with_partition_index(p.partition_index)
                                                .with_offset(2)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    encode_msg(&ListOffsetsResponse::default().with_topics(topics), v)
                }
                1 => {
                    let req = FetchRequest::decode(&mut body, v).unwrap();
                    let responses = req
                        .topics
                        .iter()
                        .map(|t| {
                            FetchableTopicResponse::default()
                                .with_topic(t.topic.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|p| {
                                            PartitionData::default()
                                                .with_partition_index(p.partition)
                                                .with_records(None)
                                        })
                                        .collect(),
                                )
                        })
                        .collect();
                    encode_msg(&FetchResponse::default().with_responses(responses), v)
                }
                13 => encode_msg(&LeaveGroupResponse::default(), v),
                _ => return None,
            })
        }

        #[tokio::test]
        async fn joins_with_member_id_required_and_leads_the_assignment() {
            let group = Arc::new(Mutex::new(Group::default()));
            let g = group.clone();
            let port =
                fake_tcp_broker(move |port| move |api, v, body| answer(port, &g, api, v, body))
                    .await;
            let client = ClientConfig::new(format!("127.0.0.1:{port}"));
            let config = ConsumerConfig {
                group_id: Some("g".into()),
                auto_offset_reset: OffsetReset::Earliest,
                fetch_max_wait: Duration::from_millis(20),
                ..ConsumerConfig::default()
            };
            let mut consumer = Consumer::connect(client, config).await.unwrap();
            consumer.subscribe(&["t"]).unwrap();
            let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
            assert!(records.is_empty());
            assert_eq!(
                group.lock().unwrap().joins,
                2,
                "first join only fetches a member id"
            );
            assert_eq!(consumer.group_member(), Some((1, "m-1".to_string())));
            let t = |p| ("t".to_string(), p);
            assert_eq!(consumer.assignment(), vec![t(0), t(1), t(2)]);
            // Partition 0 resumes at its committed offset, the others reset.
            assert_eq!(consumer.position("t", 0), Some(5));
            assert_eq!(consumer.position("t", 1), Some(2));
            consumer.close().await.unwrap();
        }
    }
}
