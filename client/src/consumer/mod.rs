//! Consumer: classic consumer groups (JoinGroup/SyncGroup with client-side
//! assignment, a heartbeat task) or manual assignment, long-poll Fetch,
//! offset commits.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    FetchRequest, FetchResponse, GroupId, LeaveGroupRequest, OffsetCommitRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::admin::{OffsetSpec, fetch_committed_full, list_offsets};
use crate::assignor::AssignmentStrategy;
use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{Error, Result};
use crate::util::{millis_i32, sb};

/// Newest Fetch that still names topics (v13 switched to topic ids).
const FETCH_MAX_VERSION: i16 = 12;
/// First Fetch with incremental sessions (KIP-227).
const FETCH_SESSIONS_VERSION: i16 = 7;
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

/// Which group protocol a subscribing consumer speaks (`group.protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup; a rebalance stops the whole group.
    #[default]
    Classic,
    /// KIP-848: the coordinator assigns, members reconcile one by one.
    Consumer,
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
    /// `group.protocol`: classic (JoinGroup/SyncGroup) or consumer (KIP-848).
    pub group_protocol: GroupProtocol,
    /// Classic groups: the assignment computed by the leader member.
    pub assignment_strategy: AssignmentStrategy,
    /// Consumer groups: the coordinator's assignor (`group.remote.assignor`,
    /// e.g. `uniform`, `range`); None lets the broker choose.
    pub group_remote_assignor: Option<String>,
    /// Most records one `poll` returns (`max.poll.records`); the rest wait
    /// for the next poll, their offsets not yet counted as consumed.
    pub max_poll_records: usize,
    /// How long `commit` keeps retrying a coordinator that moved, is
    /// loading or is unreachable (`default.api.timeout.ms`).
    pub default_api_timeout: Duration,
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
            group_protocol: GroupProtocol::Classic,
            assignment_strategy: AssignmentStrategy::Range,
            group_remote_assignor: None,
            max_poll_records: 500,
            default_api_timeout: Duration::from_secs(60),
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
    /// Epoch of the leader that wrote the record's batch (KIP-101), when
    /// the batch carries one.
    pub leader_epoch: Option<i32>,
}

/// An offset to commit: the next one to read, with the leader epoch of the
/// last record read (so a later reader can detect a truncated log) and
/// free-form metadata the application reads back with `committed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: Option<String>,
}

impl CommitOffset {
    pub fn new(topic: impl Into<String>, partition: i32, offset: i64) -> Self {
        CommitOffset {
            topic: topic.into(),
            partition,
            offset,
            leader_epoch: None,
            metadata: None,
        }
    }

    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = Some(metadata.into());
        self
    }

    pub fn with_leader_epoch(mut self, epoch: i32) -> Self {
        self.leader_epoch = Some(epoch);
        self
    }
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
    kip848: kip848::Reconciliation,
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
    buffer: FetchBuffer,
    paused: BTreeSet<Tp>,
    /// Leader epoch of the last record returned per partition, committed
    /// with its position.
    epochs: HashMap<Tp, i32>,
    /// The leader epoch each position was last checked against for log
    /// truncation (`truncation.rs`).
    validated: HashMap<Tp, i32>,
    listener: Box<dyn RebalanceListener>,
    /// Wakes the KIP-848 heartbeat task to report a reconciliation now.
    wake: Arc<tokio::sync::Notify>,
    /// One incremental fetch session per leader.
    sessions: HashMap<i32, FetchSession>,
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
    }
}

/// The coordinator moved, is loading its partition, or cannot be reached:
/// find it again and retry.
fn coordinator_unavailable(e: &Error) -> bool {
    match e.kafka_error() {
        Some(k) => matches!(
            k,
            ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress
        ),
        None => matches!(
            e,
            Error::Connect { .. }
                | Error::Disconnected { .. }
                | Error::Timeout { .. }
                | Error::NoCoordinator(_)
        ),
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
            buffer: FetchBuffer::default(),
            paused: BTreeSet::new(),
            epochs: HashMap::new(),
            validated: HashMap::new(),
            listener: Box::new(NoListener),
            wake: Arc::new(tokio::sync::Notify::new()),
            sessions: HashMap::new(),
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
        self.forget_unassigned();
        lock(&self.membership).rejoin = true;
        Ok(())
    }

    /// `subscribe`, with callbacks for each change of the assignment.
    pub fn subscribe_with(
        &mut self,
        topics: &[&str],
        listener: impl RebalanceListener + 'static,
    ) -> Result<()> {
        self.subscribe(topics)?;
        self.listener = Box::new(listener);
        Ok(())
    }

    /// Reads exactly these partitions, without group membership.
    pub fn assign(&mut self, partitions: &[(&str, i32)]) {
        self.subscription.clear();
        self.positions = partitions
            .iter()
            .map(|(t, p)| ((t.to_string(), *p), Position::Committed))
            .collect();
        self.forget_unassigned();
    }

    /// Stops fetching these partitions (records already fetched for them
    /// wait) until `resume`; polls go on returning the others' records, and
    /// group membership is kept. An assignment change forgets the pause of
    /// a partition that is given up.
    pub fn pause(&mut self, partitions: &[(&str, i32)]) {
        self.paused
            .extend(partitions.iter().map(|(t, p)| (t.to_string(), *p)));
    }

    pub fn resume(&mut self, partitions: &[(&str, i32)]) {
        for (t, p) in partitions {
            self.paused.remove(&(t.to_string(), *p));
        }
    }

    pub fn paused(&self) -> Vec<(String, i32)> {
        self.paused.iter().cloned().collect()
    }

    /// Drops buffered records, pauses and epochs of partitions no longer
    /// assigned.
    fn forget_unassigned(&mut self) {
        let positions = &self.positions;
        self.buffer.retain(|tp| positions.contains_key(tp));
        self.paused.retain(|tp| positions.contains_key(tp));
        self.epochs.retain(|tp, _| positions.contains_key(tp));
        self.validated.retain(|tp, _| positions.contains_key(tp));
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
        let tp = (topic.to_string(), partition);
        self.buffer.retain(|b| b != &tp);
        self.epochs.remove(&tp);
        self.positions.insert(tp, Position::At(offset));
    }

    pub fn seek_to_beginning(&mut self) {
        for p in self.positions.values_mut() {
            *p = Position::Earliest;
        }
        self.buffer.retain(|_| false);
        self.epochs.clear();
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
        if let (false, Some(group)) = (self.subscription.is_empty(), self.config.group_id.clone()) {
            match self.config.group_protocol {
                GroupProtocol::Classic if lock(&self.membership).rejoin => self.join().await?,
                GroupProtocol::Classic => {}
                GroupProtocol::Consumer => {
                    self.ensure_kip848_heartbeat(&group);
                    self.reconcile_kip848().await?;
                }
            }
        }
        let buffered = self.take_buffered();
        if !buffered.is_empty() {
            return Ok(Some(buffered));
        }
        if let Some(e) = self.pending_error.take() {
            return Err(e);
        }
        self.resolve_positions().await?;
        self.maybe_auto_commit().await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if self.fetchable().next().is_none() {
            if remaining.is_zero() {
                return Ok(Some(Vec::new()));
            }
            tokio::time::sleep(remaining.min(Duration::from_millis(100))).await;
            return Ok(None);
        }
        let wait = self.config.fetch_max_wait.min(remaining);
        self.fetch_once(wait).await?;
        let records = self.take_buffered();
        if !records.is_empty() || Instant::now() >= deadline {
            return Ok(Some(records));
        }
        match self.pending_error.take() {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }

    /// Hands out buffered records (`max.poll.records` at most) and moves
    /// their partitions' positions past them.
    fn take_buffered(&mut self) -> Vec<ConsumerRecord> {
        let (records, advanced) = self
            .buffer
            .take(self.config.max_poll_records.max(1), &self.paused);
        for a in advanced {
            if let Some(pos) = self.positions.get_mut(&a.tp) {
                *pos = Position::At(a.position);
                self.dirty = true;
                if let Some(epoch) = a.leader_epoch {
                    self.epochs.insert(a.tp, epoch);
                }
            }
        }
        records
    }

    /// Partitions to fetch now: known position, not paused, nothing
    /// waiting in the buffer.
    fn fetchable(&self) -> impl Iterator<Item = (&Tp, i64)> {
        self.positions.iter().filter_map(|(tp, pos)| match pos {
            Position::At(o) if !self.paused.contains(tp) && !self.buffer.holds(tp) => {
                Some((tp, *o))
            }
            _ => None,
        })
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

    /// Commits the current position of every assigned partition, with the
    /// leader epoch of the last record returned from it.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: Vec<CommitOffset> = self
            .positions
            .iter()
            .filter_map(|(tp, pos)| match pos {
                Position::At(o) => {
                    let c = CommitOffset::new(tp.0.clone(), tp.1, *o);
                    Some(match self.epochs.get(tp) {
                        Some(e) => c.with_leader_epoch(*e),
                        None => c,
                    })
                }
                _ => None,
            })
            .collect();
        self.commit_offsets_with(&offsets).await?;
        self.dirty = false;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Commits the given next-offsets-to-read.
    pub async fn commit_offsets(&mut self, offsets: &[(String, i32, i64)]) -> Result<()> {
        let offsets: Vec<CommitOffset> = offsets
            .iter()
            .map(|(t, p, o)| CommitOffset::new(t.clone(), *p, *o))
            .collect();
        self.commit_offsets_with(&offsets).await
    }

    /// Commits offsets with their leader epochs and metadata. A coordinator
    /// that moved, is still loading its groups or cannot be reached is
    /// looked up again and the commit retried, for up to
    /// `default_api_timeout`, as Kafka's clients do. A rebalance error is
    /// returned (the next poll rejoins).
    pub async fn commit_offsets_with(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("committing needs a group id".into()))?;
        if offsets.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.config.default_api_timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.commit_once(&group, offsets).await {
                Err(e) if coordinator_unavailable(&e) && Instant::now() < deadline => {
                    tracing::debug!(error = %e, "commit: finding the coordinator again");
                    lock(&self.membership).coordinator = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }

    async fn commit_once(&mut self, group: &str, offsets: &[CommitOffset]) -> Result<()> {
        let (generation, member_id, known) = {
            let m = lock(&self.membership);
            (m.generation, m.member_id.clone(), m.coordinator.clone())
        };
        let conn = match known.filter(|c| c.is_alive()) {
            Some(c) => c,
            None => {
                let conn = self.cluster.coordinator(group, 0).await?.1;
                // The heartbeat goes to the same, new coordinator.
                if !self.subscription.is_empty() {
                    lock(&self.membership).coordinator = Some(conn.clone());
                }
                conn
            }
        };
        let mut topics: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for c in offsets {
            topics.entry(&c.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(c.partition)
                    .with_committed_offset(c.offset)
                    .with_committed_leader_epoch(c.leader_epoch.unwrap_or(-1))
                    .with_committed_metadata(c.metadata.as_deref().map(sb)),
            );
        }
        let version = conn.capped_version::<OffsetCommitRequest>(OFFSET_COMMIT_MAX_VERSION)?;
        let in_group = !self.subscription.is_empty();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_generation_id_or_member_epoch(if in_group { generation } else { -1 })
            .with_member_id(if in_group {
                sb(&member_id)
            } else {
                StrBytes::default()
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
                ]
                .iter()
                .any(|e| e.code() == p.error_code);
                // A KIP-848 member learns of its fencing from its heartbeat.
                if rebalancing && self.config.group_protocol == GroupProtocol::Classic {
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

    /// The group's committed offsets for these partitions, with their leader
    /// epochs and metadata (partitions without one are absent).
    pub async fn committed(
        &self,
        partitions: &[(String, i32)],
    ) -> Result<BTreeMap<Tp, CommitOffset>> {
        let group = self
            .config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::Config("committed offsets need a group id".into()))?;
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        fetch_committed_full(&conn, group, Some(partitions)).await
    }

    /// Commits (with auto-commit on), revokes the assignment (the listener
    /// hears it) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        let mut result = Ok(());
        if self.config.enable_auto_commit && self.config.group_id.is_some() && self.dirty {
            result = self.commit().await;
        }
        if let Some(h) = self.heartbeat.take() {
            h.abort();
        }
        // Leaving gives up every partition, as a rebalance would.
        let owned: Vec<Tp> = self.positions.keys().cloned().collect();
        if !self.subscription.is_empty() && !owned.is_empty() {
            self.listener.on_partitions_revoked(&owned);
        }
        if self.config.group_protocol == GroupProtocol::Consumer {
            if let (Some(group), false) =
                (self.config.group_id.clone(), self.subscription.is_empty())
            {
                self.leave_kip848(&group).await;
            }
            return result;
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
                    fetch_committed_full(&conn, group, Some(&committed_wanted)).await?
                }
                None => BTreeMap::new(),
            };
            for tp in committed_wanted {
                // The committed epoch lets the first fetch check that the
                // log still holds what was committed (truncation.rs).
                let pos = match committed.get(&tp) {
                    Some(c) => {
                        match c.leader_epoch {
                            Some(e) => self.epochs.insert(tp.clone(), e),
                            None => self.epochs.remove(&tp),
                        };
                        Position::At(c.offset)
                    }
                    None => Position::Reset,
                };
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
                self.epochs.remove(&tp);
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

    /// One Fetch round to every leader of a fetchable partition; what
    /// arrives goes to the buffer.
    async fn fetch_once(&mut self, max_wait: Duration) -> Result<()> {
        let checks = self.positions_to_validate();
        if !checks.is_empty() {
            self.validate_positions(checks).await;
        }
        let mut by_leader: BTreeMap<i32, Wanted> = BTreeMap::new();
        let mut missing_leader = BTreeSet::new();
        for (tp, offset) in self.fetchable() {
            let (topic, partition) = tp;
            let meta = self.cluster.topic(topic).and_then(|t| {
                t.partitions
                    .iter()
                    .find(|p| p.partition == *partition)
                    .cloned()
            });
            // Not yet checked for truncation under this leader epoch.
            let unchecked = |m: &crate::cluster::PartitionMetadata| {
                m.leader_epoch >= 0 && self.validated.get(tp) != Some(&m.leader_epoch)
            };
            if meta.as_ref().is_some_and(|m| m.leader >= 0 && unchecked(m)) {
                continue;
            }
            match meta.filter(|m| m.leader >= 0) {
                // The leader epoch we know lets the broker refuse the fetch
                // if it is no longer (or not yet) that leader (KIP-320).
                Some(m) => {
                    by_leader
                        .entry(m.leader)
                        .or_default()
                        .insert((topic.clone(), *partition), (offset, m.leader_epoch));
                }
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
                return Ok(());
            }
        }
        let mut pending = Vec::new();
        for (leader, wanted) in by_leader {
            let started = async {
                let conn = self.cluster.broker(leader).await?;
                let version = conn.capped_version::<FetchRequest>(FETCH_MAX_VERSION)?;
                let session = self.sessions.entry(leader).or_default();
                let plan = session.request(&wanted, version >= FETCH_SESSIONS_VERSION);
                let req = self.fetch_request(max_wait, plan);
                conn.begin(
                    &req,
                    version,
                    self.cluster.config().request_timeout + max_wait,
                )
            }
            .await;
            pending.push((leader, started));
        }
        let mut failed = false;
        for (leader, p) in pending {
            match p {
                Ok(p) => match p.wait().await {
                    Ok(resp) => {
                        let session = self.sessions.entry(leader).or_default();
                        if resp.error_code == 0 {
                            session.answered(resp.session_id);
                        } else {
                            // FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH
                            // or anything else: start over with a full fetch.
                            session.reset();
                        }
                        if let Err(e) = self.absorb(resp) {
                            self.pending_error.get_or_insert(e);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "fetch failed");
                        self.sessions.remove(&leader);
                        failed = true;
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "fetch failed");
                    self.sessions.remove(&leader);
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
            if self.buffer.is_empty() && self.pending_error.is_none() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// A Fetch for what a session plan says to send and forget.
    fn fetch_request(&self, max_wait: Duration, plan: SessionRequest) -> FetchRequest {
        let mut send: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
        for ((topic, partition), offset, epoch) in plan.send {
            send.entry(topic).or_default().push(
                FetchPartition::default()
                    .with_partition(partition)
                    .with_current_leader_epoch(epoch)
                    .with_fetch_offset(offset)
                    .with_last_fetched_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(self.config.max_partition_fetch_bytes),
            );
        }
        let mut forget: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in plan.forget {
            forget.entry(topic).or_default().push(partition);
        }
        FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(millis_i32(max_wait))
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_isolation_level(self.isolation())
            .with_session_id(plan.session_id)
            .with_session_epoch(plan.epoch)
            .with_topics(
                send.into_iter()
                    .map(|(t, ps)| {
                        FetchTopic::default()
                            .with_topic(TopicName(sb(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
            .with_forgotten_topics_data(
                forget
                    .into_iter()
                    .map(|(t, ps)| {
                        ForgottenTopic::default()
                            .with_topic(TopicName(sb(&t)))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
    }

    /// Takes in one leader's response. A partition that fails does not stop
    /// the others: its position stays, its records (if any were decoded)
    /// are dropped, and the first such error is returned after the rest.
    fn absorb(&mut self, resp: FetchResponse) -> Result<()> {
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
                let mut decoded = Vec::new();
                let next = match decode_records(
                    &topic,
                    p.partition_index,
                    records,
                    position,
                    read_committed,
                    &aborted,
                    &mut decoded,
                ) {
                    Ok(next) => next,
                    Err(e) => {
                        failed.get_or_insert(e);
                        continue;
                    }
                };
                if next > position {
                    self.buffer.push(Fetched {
                        tp,
                        records: decoded.into(),
                        next,
                    });
                }
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

mod buffer;
mod classic;
mod fetch_session;
mod kip848;
mod listener;
mod records;
#[cfg(test)]
mod tests;
mod truncation;

use buffer::{FetchBuffer, Fetched};
use classic::membership_lost;
use fetch_session::{FetchSession, SessionRequest, Wanted};
use listener::NoListener;
pub use listener::RebalanceListener;
use records::decode_records;
