//! The async shell around [`Group`]: one tokio mutex per group, oneshot
//! channels for held JoinGroup/SyncGroup responses, one timer task per
//! group, and persistence through [`GroupStore`].
//!
//! Every operation locks its group, asks the state machine, then carries out
//! the returned [`Effect`]s in order while still holding the lock, so effects
//! of one group are never interleaved and records reach the store in the
//! order the state machine produced them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{Mutex, oneshot};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::consumer_group::ConsumerGroup;
use crate::errors::*;
use crate::group::{
    CommittedOffset, Effect, Group, GroupState, JoinInput, JoinOutcome, SyncInput, SyncResult,
};
use crate::records::{self, GroupValue, OffsetValue, RecordKey};
use crate::{GroupConfig, GroupStore, StoreError, TopicCatalog};

/// Kafka's default `offset.metadata.max.bytes`.
const MAX_OFFSET_METADATA_BYTES: usize = 4096;

type Records = Vec<(Bytes, Option<Bytes>)>;

fn committed_of(v: OffsetValue) -> CommittedOffset {
    CommittedOffset {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        expire_timestamp_ms: v.expire_timestamp_ms,
    }
}

mod classic_wire;
mod consumer;
mod slot;
mod tasks;
pub use tasks::TaskHeartbeat;
mod txn_offsets;

use slot::{Classic, GroupKind, Slot};

/// (partition, committed offset if any, error code)
type FetchedPartition = (i32, Option<CommittedOffset>, i16);

/// Kafka's classic group coordinator for a single broker. Cheap to clone.
#[derive(Clone)]
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: GroupConfig,
    store: Arc<dyn GroupStore>,
    catalog: Arc<dyn TopicCatalog>,
    groups: StdMutex<HashMap<String, Arc<Mutex<Slot>>>>,
    /// Per group: the instant its timer task fires at, to abort it.
    timers: StdMutex<HashMap<String, (Instant, AbortHandle)>>,
    /// TxnOffsetCommit offsets per producer id, until its marker arrives.
    pending_txn: StdMutex<HashMap<i64, Vec<txn_offsets::PendingOffset>>>,
    shut_down: AtomicBool,
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The std mutexes guard plain maps with no panicking code inside, but a
/// poisoned lock must not take the coordinator down with it.
fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl GroupCoordinator {
    pub fn new(
        config: GroupConfig,
        store: Arc<dyn GroupStore>,
        catalog: Arc<dyn TopicCatalog>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                catalog,
                groups: StdMutex::new(HashMap::new()),
                timers: StdMutex::new(HashMap::new()),
                pending_txn: StdMutex::new(HashMap::new()),
                shut_down: AtomicBool::new(false),
            }),
        }
    }

    /// Replays the store: committed offsets and groups survive a restart.
    /// Records that cannot be decoded (other record kinds, newer versions)
    /// are skipped with a warning rather than failing the broker's start.
    pub async fn load(&self) -> Result<(), StoreError> {
        let store = self.inner.store.clone();
        let (stored, open) = tokio::task::spawn_blocking(move || {
            let stored = store.load()?;
            Ok::<_, StoreError>((stored, store.load_pending()?))
        })
        .await
        .map_err(|e| StoreError::Other(format!("load task failed: {e}")))??;
        self.restore_pending(open);
        let mut offsets: HashMap<String, BTreeMap<(String, i32), CommittedOffset>> = HashMap::new();
        let mut metadata: HashMap<String, GroupValue> = HashMap::new();
        let mut consumers = consumer::ReplayedConsumers::default();
        let mut task_records = tasks::ReplayedTasks::default();
        for (key, value) in stored {
            let key = match RecordKey::decode(&key) {
                Ok(key) => key,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping undecodable group store key");
                    continue;
                }
            };
            if consumers.absorb(&key, value.as_ref()) || task_records.absorb(&key, value.as_ref()) {
                continue;
            }
            match (key, value) {
                (
                    RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    },
                    Some(value),
                ) => match OffsetValue::decode(&value) {
                    Ok(v) => {
                        let committed = committed_of(v);
                        offsets
                            .entry(group)
                            .or_default()
                            .insert((topic, partition), committed);
                    }
                    Err(e) => {
                        tracing::warn!(%group, %topic, partition, error = %e, "skipping undecodable offset")
                    }
                },
                (
                    RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    },
                    None,
                ) => {
                    if let Some(o) = offsets.get_mut(&group) {
                        o.remove(&(topic, partition));
                    }
                }
                (RecordKey::Group { group }, Some(value)) => match GroupValue::decode(&value) {
                    Ok(v) => {
                        metadata.insert(group, v);
                    }
                    Err(e) => {
                        tracing::warn!(%group, error = %e, "skipping undecodable group metadata")
                    }
                },
                (RecordKey::Group { group }, None) => {
                    metadata.remove(&group);
                }
                (_, _) => unreachable!("consumer group records were absorbed above"),
            }
        }
        let mut consumer_groups = consumers.into_groups(self.inner.catalog.as_ref());
        let mut task_groups = task_records.into_groups();
        let topics = self.inner.catalog.topics();
        let now = Instant::now();
        let mut ids: Vec<String> = metadata.keys().cloned().collect();
        ids.extend(consumer_groups.keys().cloned());
        ids.extend(task_groups.keys().cloned());
        ids.extend(
            offsets
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(g, _)| g.clone()),
        );
        ids.sort();
        ids.dedup();
        for id in ids {
            let stored_tasks = task_groups.remove(&id);
            let mut slot = match (consumer_groups.remove(&id), metadata.remove(&id)) {
                _ if stored_tasks.is_some() => {
                    let (group, members) = stored_tasks.expect("checked");
                    self.restore_task_group(&id, group, members, now)
                }
                (Some(stored), _) => Slot::consumer(ConsumerGroup::restore(
                    id.clone(),
                    self.inner.config.consumer.clone(),
                    stored,
                    &topics,
                    now,
                )),
                (None, Some(value)) => Slot::classic(Group::from_stored(
                    id.clone(),
                    self.inner.config.clone(),
                    value,
                    now,
                )),
                (None, None) => Slot::new_classic(&id, &self.inner.config),
            };
            slot.note_state(wall_clock_ms());
            for ((topic, partition), committed) in offsets.remove(&id).unwrap_or_default() {
                slot.offsets.put(&topic, partition, committed);
            }
            let deadline = slot.next_deadline();
            lock(&self.inner.groups).insert(id.clone(), Arc::new(Mutex::new(slot)));
            self.arm_timer(&id, deadline);
        }
        Ok(())
    }

    /// Stops every timer; held responses stay unanswered.
    pub fn shutdown(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        for (_, (_, handle)) in lock(&self.inner.timers).drain() {
            handle.abort();
        }
    }

    fn get(&self, group_id: &str) -> Option<Arc<Mutex<Slot>>> {
        lock(&self.inner.groups).get(group_id).cloned()
    }

    /// The group a commit goes to: only a simple (generation < 0) commit may
    /// bring a group into being.
    fn commit_target(&self, group_id: &str, generation: i32) -> Option<Arc<Mutex<Slot>>> {
        if group_id.is_empty() {
            None
        } else if generation < 0 {
            Some(self.get_or_create(group_id))
        } else {
            self.get(group_id)
        }
    }

    fn get_or_create(&self, group_id: &str) -> Arc<Mutex<Slot>> {
        lock(&self.inner.groups)
            .entry(group_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Slot::new_classic(group_id, &self.inner.config)))
            })
            .clone()
    }

    async fn append(&self, records: Records) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || store.append(records))
            .await
            .map_err(|e| StoreError::Other(format!("append task failed: {e}")))?
    }

    /// Carries out the classic state machine's effects, in order, under the
    /// lock.
    async fn apply(&self, slot: &mut Slot, effects: Vec<Effect>) {
        if let Some(classic) = slot.classic_group() {
            self.apply_classic(classic, effects).await;
        }
        slot.note_state(wall_clock_ms());
    }

    async fn apply_classic(&self, slot: &mut Classic, effects: Vec<Effect>) {
        let mut store_failed = false;
        for effect in effects {
            match effect {
                Effect::CompleteJoin {
                    member_id,
                    response,
                } => {
                    if let Some(tx) = slot.joins.remove(&member_id) {
                        let _ = tx.send(response);
                    }
                }
                Effect::CompleteSync {
                    member_id,
                    mut response,
                } => {
                    // An assignment that could not be persisted is not
                    // handed out: the retriable error makes members rejoin.
                    if store_failed && response.error_code == NONE {
                        response = SyncResult::error(COORDINATOR_NOT_AVAILABLE);
                    }
                    if let Some(tx) = slot.syncs.remove(&member_id) {
                        let _ = tx.send(response);
                    }
                }
                Effect::PersistMetadata => {
                    let value = slot.group.metadata_value(wall_clock_ms());
                    let record = records::group_record(slot.group.id(), Some(&value));
                    if let Err(e) = self.append(vec![record]).await {
                        tracing::warn!(group = %slot.group.id(), error = %e, "failed to persist group metadata");
                        store_failed = true;
                    }
                }
                Effect::ArmTimer(at) => self.arm_timer(slot.group.id(), at),
            }
        }
    }

    /// Runs the offsets-retention sweep every
    /// `offsets.retention.check.interval.ms` until shut down.
    pub fn start_offset_expiry(&self) {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.config.offsets_retention_check_interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.shut_down.load(Ordering::SeqCst) {
                    return;
                }
                GroupCoordinator { inner }
                    .expire_offsets(wall_clock_ms())
                    .await;
            }
        });
    }

    /// Tombstones the offsets due to expire at `now_ms` (see
    /// [`Group::expired_offsets`]), and deletes Empty groups left with no
    /// offsets, as Kafka's cleanup does. Returns how many offsets went.
    pub async fn expire_offsets(&self, now_ms: i64) -> usize {
        let slots: Vec<(String, Arc<Mutex<Slot>>)> = lock(&self.inner.groups)
            .iter()
            .map(|(id, slot)| (id.clone(), Arc::clone(slot)))
            .collect();
        let mut removed = 0;
        for (id, slot_arc) in slots {
            let mut slot = slot_arc.lock().await;
            slot.note_state(now_ms);
            let retention_ms =
                i64::try_from(self.inner.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
            let expired = slot
                .offsets
                .expired(now_ms, retention_ms, &slot.retention());
            let delete_group =
                slot.is_empty() && !slot.is_dead() && expired.len() == slot.offsets.len();
            let mut tombstones: Records = expired
                .iter()
                .map(|(topic, partition)| records::offset_record(&id, topic, *partition, None))
                .collect();
            if delete_group {
                tombstones.extend(consumer::group_tombstones(&id));
            }
            if expired.is_empty() && !delete_group {
                continue;
            }
            if let Err(e) = self.append(tombstones).await {
                tracing::warn!(group = %id, error = %e, "failed to persist expired offsets");
                continue;
            }
            for (topic, partition) in &expired {
                slot.offsets.remove(topic, *partition);
            }
            removed += expired.len();
            tracing::info!(group = %id, offsets = expired.len(), deleted = delete_group, "expired offsets");
            if delete_group {
                slot.deleted = true;
                let mut groups = lock(&self.inner.groups);
                if groups.get(&id).is_some_and(|c| Arc::ptr_eq(c, &slot_arc)) {
                    groups.remove(&id);
                }
                drop(groups);
                self.arm_timer(&id, None);
            }
        }
        removed
    }

    fn arm_timer(&self, group_id: &str, at: Option<Instant>) {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            return;
        }
        let mut timers = lock(&self.inner.timers);
        if timers.get(group_id).map(|(when, _)| Some(*when)) == Some(at) {
            return;
        }
        if let Some((_, old)) = timers.remove(group_id) {
            old.abort();
        }
        let Some(at) = at else { return };
        // Weak: a pending timer must not keep a dropped coordinator alive.
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let id = group_id.to_owned();
        let task = tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            if let Some(inner) = weak.upgrade() {
                GroupCoordinator { inner }.fire_timer(&id, at).await;
            }
        });
        timers.insert(group_id.to_owned(), (at, task.abort_handle()));
    }

    async fn fire_timer(&self, group_id: &str, at: Instant) {
        {
            // Unregister first, so re-arming from inside this task never
            // aborts the task itself halfway through its effects.
            let mut timers = lock(&self.inner.timers);
            if timers.get(group_id).is_some_and(|(when, _)| *when == at) {
                timers.remove(group_id);
            }
        }
        let Some(slot) = self.get(group_id) else {
            return;
        };
        let mut slot = slot.lock().await;
        let now = Instant::now();
        match &mut slot.kind {
            GroupKind::Consumer(group) => self.expire_consumer_members(group, now).await,
            GroupKind::Tasks(group) => self.expire_task_members(group, now).await,
            GroupKind::Classic(classic) => {
                let effects = classic.group.on_timer(now);
                self.apply_classic(classic, effects).await;
            }
        }
        slot.note_state(wall_clock_ms());
        let next = slot.next_deadline();
        self.arm_timer(group_id, next);
    }

    // ------------------------------------------------------------ membership

    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let group_id = req.group_id.0.to_string();
        if group_id.is_empty() {
            return classic_wire::join_error(&req.member_id, INVALID_GROUP_ID, version);
        }
        // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout.
        let rebalance_timeout_ms = if version == 0 || req.rebalance_timeout_ms < 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        let input = JoinInput {
            member_id: req.member_id.to_string(),
            group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type: req.protocol_type.to_string(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.to_string(), p.metadata.clone()))
                .collect(),
            version,
            new_member_id: format!("{client_id}-{}", Uuid::new_v4()),
        };
        // A member id we never handed out cannot belong to a group we do not have.
        let slot = if input.member_id.is_empty() {
            self.get_or_create(&group_id)
        } else {
            match self.get(&group_id) {
                Some(slot) => slot,
                None => {
                    return classic_wire::join_error(&input.member_id, UNKNOWN_MEMBER_ID, version);
                }
            }
        };
        let requested_id = input.member_id.clone();
        let rx = {
            let mut slot = slot.lock().await;
            if slot.classic_group().is_none() {
                if !slot.is_empty() {
                    return classic_wire::join_error(
                        &requested_id,
                        INCONSISTENT_GROUP_PROTOCOL,
                        version,
                    );
                }
                // An empty consumer or task group becomes a classic one.
                if let Err(e) = self.append(consumer::group_tombstones(&group_id)).await {
                    tracing::warn!(group = %group_id, error = %e, "failed to convert a consumer group");
                    return classic_wire::join_error(
                        &requested_id,
                        COORDINATOR_NOT_AVAILABLE,
                        version,
                    );
                }
                slot.kind = GroupKind::Classic(Classic::new(Group::new(
                    group_id.clone(),
                    self.inner.config.clone(),
                )));
            }
            let classic = slot.classic_group().expect("made classic above");
            let (outcome, effects) = classic.group.join(input, Instant::now());
            match outcome {
                JoinOutcome::Respond(response) => {
                    self.apply(&mut slot, effects).await;
                    return classic_wire::join_response(response);
                }
                JoinOutcome::Wait { member_id } => {
                    let (tx, rx) = oneshot::channel();
                    // A client retrying its join replaces the older request;
                    // dropping that sender answers it with a retriable error.
                    classic.joins.insert(member_id, tx);
                    self.apply(&mut slot, effects).await;
                    rx
                }
            }
        };
        match rx.await {
            Ok(response) => classic_wire::join_response(response),
            Err(_) => classic_wire::join_error(&requested_id, COORDINATOR_NOT_AVAILABLE, version),
        }
    }

    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let input = classic_wire::sync_input(&req);
        classic_wire::sync_response(self.sync_group_inner(&req.group_id, input).await, version)
    }

    async fn sync_group_inner(&self, group_id: &str, req: SyncInput) -> SyncResult {
        let error = SyncResult::error;
        if group_id.is_empty() {
            return error(INVALID_GROUP_ID);
        }
        let Some(slot) = self.get(group_id) else {
            return error(UNKNOWN_MEMBER_ID);
        };
        let rx = {
            let mut slot = slot.lock().await;
            let Some(classic) = slot.classic_group() else {
                return error(UNKNOWN_MEMBER_ID);
            };
            let (response, effects) = classic.group.sync(&req, Instant::now());
            if let Some(response) = response {
                self.apply(&mut slot, effects).await;
                return response;
            }
            let (tx, rx) = oneshot::channel();
            classic.syncs.insert(req.member_id.clone(), tx);
            self.apply(&mut slot, effects).await;
            rx
        };
        rx.await
            .unwrap_or_else(|_| error(COORDINATOR_NOT_AVAILABLE))
    }

    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let code = if req.group_id.is_empty() {
            INVALID_GROUP_ID
        } else {
            match self.get(&req.group_id) {
                None => UNKNOWN_MEMBER_ID,
                Some(slot) => match slot.lock().await.classic_group() {
                    Some(classic) => classic.group.heartbeat(
                        &req.member_id,
                        req.group_instance_id.as_deref(),
                        req.generation_id,
                        Instant::now(),
                    ),
                    None => UNKNOWN_MEMBER_ID,
                },
            }
        };
        HeartbeatResponse::default().with_error_code(code)
    }

    /// v0–2 name one member by id; v3+ carry a batch with per-member errors.
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let leaving: Vec<(String, Option<String>)> = if version < 3 {
            vec![(req.member_id.to_string(), None)]
        } else {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|i| i.to_string()),
                    )
                })
                .collect()
        };
        let group_error = if req.group_id.is_empty() {
            Some(INVALID_GROUP_ID)
        } else if self.get(&req.group_id).is_none() {
            Some(UNKNOWN_MEMBER_ID)
        } else {
            None
        };
        if let Some(code) = group_error {
            return LeaveGroupResponse::default().with_error_code(code);
        }
        let codes = match self.get(&req.group_id) {
            Some(slot) => {
                let mut slot = slot.lock().await;
                match slot.classic_group() {
                    Some(classic) => {
                        let (codes, effects) = classic.group.leave(&leaving, Instant::now());
                        self.apply(&mut slot, effects).await;
                        codes
                    }
                    None => vec![UNKNOWN_MEMBER_ID; leaving.len()],
                }
            }
            None => vec![UNKNOWN_MEMBER_ID; leaving.len()],
        };
        if version < 3 {
            return LeaveGroupResponse::default()
                .with_error_code(codes.first().copied().unwrap_or(NONE));
        }
        let members = leaving
            .into_iter()
            .zip(codes)
            .map(|((member_id, instance), code)| {
                MemberResponse::default()
                    .with_member_id(StrBytes::from_string(member_id))
                    .with_group_instance_id(instance.map(StrBytes::from_string))
                    .with_error_code(code)
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    // --------------------------------------------------------------- offsets

    /// Commits are durable in the store before they are visible or answered.
    pub async fn offset_commit(
        &self,
        req: OffsetCommitRequest,
        version: i16,
    ) -> OffsetCommitResponse {
        let group_id = req.group_id.to_string();
        let generation = req.generation_id_or_member_epoch;
        let slot = self.commit_target(&group_id, generation);
        let mut guard = match &slot {
            Some(slot) => Some(slot.lock().await),
            None => None,
        };
        let validation = match guard.as_mut() {
            None if group_id.is_empty() => Err(INVALID_GROUP_ID),
            None => Err(ILLEGAL_GENERATION),
            Some(slot) if slot.deleted => Err(COORDINATOR_NOT_AVAILABLE),
            Some(slot) => match &mut slot.kind {
                GroupKind::Consumer(consumer) => {
                    consumer.validate_commit(&req.member_id, generation, version)
                }
                GroupKind::Tasks(tasks) => tasks.validate_commit(&req.member_id, generation),
                GroupKind::Classic(classic) => classic.group.validate_commit(
                    generation,
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                    Instant::now(),
                ),
            },
        };
        let now_ms = wall_clock_ms();
        let mut topics = Vec::with_capacity(req.topics.len());
        // (topic index, partition index, topic name, partition, value)
        let mut writes: Vec<(usize, usize, String, i32, OffsetValue)> = Vec::new();
        for (ti, t) in req.topics.iter().enumerate() {
            let name = self.resolve_topic_name(&t.name, t.topic_id);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for (pi, p) in t.partitions.iter().enumerate() {
                let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                let code = match (&validation, &name) {
                    (Err(code), _) => *code,
                    (Ok(()), None) => UNKNOWN_TOPIC_ID,
                    (Ok(()), Some(name))
                        if !self.inner.catalog.partition_exists(name, p.partition_index) =>
                    {
                        UNKNOWN_TOPIC_OR_PARTITION
                    }
                    (Ok(()), Some(_)) if metadata.len() > MAX_OFFSET_METADATA_BYTES => {
                        OFFSET_METADATA_TOO_LARGE
                    }
                    (Ok(()), Some(name)) => {
                        let value = OffsetValue {
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: metadata.to_owned(),
                            commit_timestamp_ms: now_ms,
                            // v2–v4 only; -1 (the default) means the broker's retention.
                            expire_timestamp_ms: (req.retention_time_ms >= 0)
                                .then(|| now_ms.saturating_add(req.retention_time_ms)),
                        };
                        writes.push((ti, pi, name.clone(), p.partition_index, value));
                        NONE
                    }
                };
                partitions.push(
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code),
                );
            }
            topics.push(
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        if let (Some(slot), false) = (guard.as_mut(), writes.is_empty()) {
            let batch = writes
                .iter()
                .map(|(_, _, topic, partition, v)| {
                    records::offset_record(&group_id, topic, *partition, Some(v))
                })
                .collect();
            match self.append(batch).await {
                Ok(()) => {
                    for (_, _, topic, partition, v) in writes {
                        let committed = committed_of(v);
                        slot.offsets.put(&topic, partition, committed);
                    }
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "failed to persist offset commit");
                    for (ti, pi, ..) in writes {
                        topics[ti].partitions[pi].error_code = COORDINATOR_NOT_AVAILABLE;
                    }
                }
            }
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// v10 clients name topics by id only; `None` when the id is unknown.
    fn resolve_topic_name(&self, name: &str, id: Uuid) -> Option<String> {
        if !name.is_empty() || id.is_nil() {
            Some(name.to_owned())
        } else {
            self.inner.catalog.topic_name(id)
        }
    }

    /// Offsets of one group: the requested (topic name, topic id,
    /// partitions), or all of them when `requested` is `None`. Unknown
    /// offsets come back as -1, as Kafka answers.
    async fn fetch_offsets(
        &self,
        group_id: &str,
        requested: Option<Vec<(String, Uuid, Vec<i32>)>>,
    ) -> Vec<FetchedTopic> {
        let slot = self.get(group_id);
        let guard = match &slot {
            Some(slot) => Some(slot.lock().await),
            None => None,
        };
        let group = guard.as_ref().filter(|s| !s.is_dead()).map(|s| &s.offsets);
        match requested {
            Some(topics) => topics
                .into_iter()
                .map(|(name, id, partitions)| {
                    let resolved = self.resolve_topic_name(&name, id);
                    let partitions = partitions
                        .into_iter()
                        .map(|p| match &resolved {
                            None => (p, None, UNKNOWN_TOPIC_ID),
                            Some(topic) => (p, group.and_then(|g| g.get(topic, p)).cloned(), NONE),
                        })
                        .collect();
                    FetchedTopic {
                        name,
                        id,
                        partitions,
                    }
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<&str, Vec<FetchedPartition>> = BTreeMap::new();
                for ((topic, partition), committed) in group.map(|g| g.iter()).into_iter().flatten()
                {
                    by_topic.entry(topic).or_default().push((
                        *partition,
                        Some(committed.clone()),
                        NONE,
                    ));
                }
                by_topic
                    .into_iter()
                    .map(|(topic, partitions)| FetchedTopic {
                        name: topic.to_owned(),
                        id: self.inner.catalog.topic_id(topic).unwrap_or(Uuid::nil()),
                        partitions,
                    })
                    .collect()
            }
        }
    }

    /// Serves both shapes: one group (v0–7) and a batch of groups (v8+).
    /// With `require_stable`, an offset an open transaction is about to
    /// change answers UNSTABLE_OFFSET_COMMIT (the consumer retries).
    pub async fn offset_fetch(&self, req: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
        let stable = |group: &str, topic: &str, p: i32, code: i16| {
            if code == NONE && req.require_stable && self.has_pending_offset(group, topic, p) {
                UNSTABLE_OFFSET_COMMIT
            } else {
                code
            }
        };
        if version < 8 {
            let requested = req.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), Uuid::nil(), t.partition_indexes))
                    .collect()
            });
            let topics = self
                .fetch_offsets(&req.group_id, requested)
                .await
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .into_iter()
                        .map(|(p, c, code)| {
                            let code = stable(&req.group_id, &t.name, p, code);
                            let (offset, epoch, metadata) = offset_fields(c);
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(code)
                        })
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(str_bytes(&t.name)))
                        .with_partitions(partitions)
                })
                .collect();
            return OffsetFetchResponse::default().with_topics(topics);
        }
        let mut groups = Vec::with_capacity(req.groups.len());
        for g in &req.groups {
            let requested = g.topics.clone().map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.to_string(), t.topic_id, t.partition_indexes))
                    .collect()
            });
            let topics = self
                .fetch_offsets(&g.group_id, requested)
                .await
                .into_iter()
                .map(|t| {
                    let partitions = t
                        .partitions
                        .into_iter()
                        .map(|(p, c, code)| {
                            let code = stable(&g.group_id, &t.name, p, code);
                            let (offset, epoch, metadata) = offset_fields(c);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(Some(metadata))
                                .with_error_code(code)
                        })
                        .collect();
                    // v10 identifies topics by id, older versions by name.
                    let (name, id) = if version >= 10 {
                        (String::new(), t.id)
                    } else {
                        (t.name, Uuid::nil())
                    };
                    OffsetFetchResponseTopics::default()
                        .with_name(TopicName(StrBytes::from_string(name)))
                        .with_topic_id(id)
                        .with_partitions(partitions)
                })
                .collect();
            groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_topics(topics),
            );
        }
        OffsetFetchResponse::default().with_groups(groups)
    }

    /// Deletes offsets of an Empty group, or of topics a consumer group is no
    /// longer subscribed to (GROUP_SUBSCRIBED_TO_TOPIC otherwise).
    pub async fn offset_delete(
        &self,
        req: OffsetDeleteRequest,
        _version: i16,
    ) -> OffsetDeleteResponse {
        let group_id = req.group_id.to_string();
        let error = |code| OffsetDeleteResponse::default().with_error_code(code);
        if group_id.is_empty() {
            return error(INVALID_GROUP_ID);
        }
        let Some(slot) = self.get(&group_id) else {
            return error(GROUP_ID_NOT_FOUND);
        };
        let mut slot = slot.lock().await;
        let protected = match slot.offset_delete_guard() {
            Ok(protected) => protected,
            Err(code) => return error(code),
        };
        let mut tombstones = Vec::new();
        let mut to_remove = Vec::new();
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let subscribed = protected
                    .as_ref()
                    .is_some_and(|p| p.contains(t.name.as_str()));
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = if subscribed {
                            GROUP_SUBSCRIBED_TO_TOPIC
                        } else {
                            if slot.offsets.get(&t.name, p.partition_index).is_some() {
                                tombstones.push(records::offset_record(
                                    &group_id,
                                    &t.name,
                                    p.partition_index,
                                    None,
                                ));
                                to_remove.push((t.name.to_string(), p.partition_index));
                            }
                            NONE
                        };
                        OffsetDeleteResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetDeleteResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions)
            })
            .collect();
        if !tombstones.is_empty() {
            if let Err(e) = self.append(tombstones).await {
                tracing::warn!(group = %group_id, error = %e, "failed to persist offset deletion");
                return error(COORDINATOR_NOT_AVAILABLE);
            }
            for (topic, partition) in to_remove {
                slot.offsets.remove(&topic, partition);
            }
        }
        OffsetDeleteResponse::default().with_topics(topics)
    }

    // ---------------------------------------------------------------- admin

    fn all_slots(&self) -> Vec<Arc<Mutex<Slot>>> {
        lock(&self.inner.groups).values().cloned().collect()
    }

    /// States filter (v4+) and types filter (v5+) compare case-insensitively,
    /// as Kafka does; an empty filter matches everything.
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let states: Vec<String> = if version >= 4 {
            req.states_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter.iter().map(|s| s.to_lowercase()).collect()
        } else {
            Vec::new()
        };
        let mut groups = Vec::new();
        for slot in self.all_slots() {
            let slot = slot.lock().await;
            let group_type = slot.type_name();
            let (state, protocol_type) = (slot.state_name(), slot.protocol_type());
            if state == GroupState::Dead.as_str()
                || (!states.is_empty() && !states.contains(&state.to_lowercase()))
                || (!types.is_empty() && !types.iter().any(|t| t == group_type))
            {
                continue;
            }
            groups.push(
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(slot.id())))
                    .with_protocol_type(str_bytes(protocol_type))
                    .with_group_state(StrBytes::from_static_str(state))
                    .with_group_type(StrBytes::from_static_str(group_type)),
            );
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        ListGroupsResponse::default().with_groups(groups)
    }

    /// Unknown groups are described as Dead with no error before v6 (as
    /// Kafka does); v6 (KIP-1043) reports GROUP_ID_NOT_FOUND instead.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut described = Vec::with_capacity(req.groups.len());
        for group_id in req.groups {
            let found = match self.get(&group_id) {
                Some(slot) => {
                    let mut slot = slot.lock().await;
                    if slot.deleted {
                        None
                    } else if let Some(classic) = slot.classic_group() {
                        Some(classic.group.describe())
                            .filter(|d| d.state != GroupState::Dead)
                            .map(classic_wire::described_group)
                    } else {
                        // The message field exists from v6 on: setting it
                        // for an older request would fail its encoding.
                        let message = (version >= 6).then(|| {
                            StrBytes::from_string(format!(
                                "Group {} is not a classic group.",
                                &*group_id
                            ))
                        });
                        described.push(
                            DescribedGroup::default()
                                .with_group_id(group_id.clone())
                                .with_group_state(StrBytes::from_static_str(
                                    GroupState::Dead.as_str(),
                                ))
                                .with_error_code(GROUP_ID_NOT_FOUND)
                                .with_error_message(message),
                        );
                        continue;
                    }
                }
                None => None,
            };
            let d = match found {
                Some(d) => d,
                None => {
                    let dead = DescribedGroup::default()
                        .with_group_id(group_id.clone())
                        .with_group_state(StrBytes::from_static_str(GroupState::Dead.as_str()));
                    if group_id.is_empty() {
                        dead.with_error_code(INVALID_GROUP_ID)
                    } else if version >= 6 {
                        dead.with_error_code(GROUP_ID_NOT_FOUND)
                            .with_error_message(Some(StrBytes::from_string(format!(
                                "Group {} not found.",
                                &*group_id
                            ))))
                    } else {
                        dead
                    }
                }
            };
            described.push(d);
        }
        DescribeGroupsResponse::default().with_groups(described)
    }

    /// Only Empty groups can be deleted; their offsets and metadata are
    /// tombstoned in the store first.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let mut results = Vec::with_capacity(req.groups_names.len());
        for group_id in req.groups_names {
            let code = self.delete_group(&group_id).await;
            results.push(
                DeletableGroupResult::default()
                    .with_group_id(group_id)
                    .with_error_code(code),
            );
        }
        DeleteGroupsResponse::default().with_results(results)
    }

    async fn delete_group(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return INVALID_GROUP_ID;
        }
        let Some(slot_arc) = self.get(group_id) else {
            return GROUP_ID_NOT_FOUND;
        };
        let mut slot = slot_arc.lock().await;
        if slot.is_dead() {
            return GROUP_ID_NOT_FOUND;
        }
        if !slot.is_empty() {
            return NON_EMPTY_GROUP;
        }
        let mut tombstones: Records = slot
            .offsets
            .iter()
            .map(|((topic, partition), _)| {
                records::offset_record(group_id, topic, *partition, None)
            })
            .collect();
        tombstones.extend(consumer::group_tombstones(group_id));
        if let Err(e) = self.append(tombstones).await {
            tracing::warn!(group = %group_id, error = %e, "failed to persist group deletion");
            return COORDINATOR_NOT_AVAILABLE;
        }
        slot.deleted = true;
        let mut groups = lock(&self.inner.groups);
        if groups
            .get(group_id)
            .is_some_and(|current| Arc::ptr_eq(current, &slot_arc))
        {
            groups.remove(group_id);
        }
        drop(groups);
        self.arm_timer(group_id, None);
        NONE
    }
}

struct FetchedTopic {
    name: String,
    id: Uuid,
    partitions: Vec<FetchedPartition>,
}

fn offset_fields(committed: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match committed {
        Some(c) => (c.offset, c.leader_epoch, StrBytes::from_string(c.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::leave_group_request::MemberIdentity;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
    use kafka_protocol::protocol::Encodable;
    use std::time::Duration;

    #[derive(Default)]
    struct MemStore(StdMutex<Records>);

    impl GroupStore for MemStore {
        fn append(&self, records: Records) -> Result<(), StoreError> {
            lock(&self.0).extend(records);
            Ok(())
        }
        fn load(&self) -> Result<Records, StoreError> {
            Ok(lock(&self.0).clone())
        }
    }

    /// Topic "t" with partitions 0..4.
    struct Catalog;
    const T_ID: Uuid = Uuid::from_u128(7);

    impl TopicCatalog for Catalog {
        fn partition_exists(&self, topic: &str, partition: i32) -> bool {
            topic == "t" && (0..4).contains(&partition)
        }
        fn topic_name(&self, id: Uuid) -> Option<String> {
            (id == T_ID).then(|| "t".to_owned())
        }
        fn topic_id(&self, name: &str) -> Option<Uuid> {
            (name == "t").then_some(T_ID)
        }
        fn topics(&self) -> BTreeMap<String, i32> {
            [("t".to_owned(), 4)].into()
        }
    }

    fn coordinator(store: Arc<MemStore>) -> GroupCoordinator {
        GroupCoordinator::new(GroupConfig::default(), store, Arc::new(Catalog))
    }

    fn encodes<M: Encodable>(message: &M, version: i16) {
        let mut buf = bytes::BytesMut::new();
        message
            .encode(&mut buf, version)
            .expect("response must encode at the request's version");
    }

    fn join_req(member_id: &str) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(str_bytes(member_id))
            .with_protocol_type(str_bytes("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(str_bytes("range"))
                    .with_metadata(Bytes::from_static(b"sub")),
            ])
    }

    async fn join(c: &GroupCoordinator, member_id: &str) -> JoinGroupResponse {
        let r = c
            .join_group(join_req(member_id), 9, "client", "/10.0.0.1")
            .await;
        encodes(&r, 9);
        r
    }

    /// A new consumer: the KIP-394 round trip, then the real join.
    async fn join_new(c: GroupCoordinator) -> JoinGroupResponse {
        let first = join(&c, "").await;
        assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
        join(&c, &first.member_id).await
    }

    async fn rejoin_all(c: &GroupCoordinator, ids: &[String]) -> Vec<JoinGroupResponse> {
        let tasks: Vec<_> = ids
            .iter()
            .map(|id| {
                let (c, id) = (c.clone(), id.clone());
                tokio::spawn(async move { join(&c, &id).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }

    async fn heartbeat(c: &GroupCoordinator, id: &str, generation: i32) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes(id))
            .with_generation_id(generation);
        c.heartbeat(req, 4).await.error_code
    }

    /// Everyone syncs concurrently; the leader assigns each member its own id.
    async fn sync_all(c: &GroupCoordinator, joined: &[JoinGroupResponse]) {
        let tasks: Vec<_> = joined
            .iter()
            .map(|r| {
                let c = c.clone();
                let assignments = r
                    .members
                    .iter()
                    .map(|m| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(m.member_id.clone())
                            .with_assignment(Bytes::from(m.member_id.to_string()))
                    })
                    .collect();
                let req = SyncGroupRequest::default()
                    .with_group_id(GroupId(str_bytes("g")))
                    .with_member_id(r.member_id.clone())
                    .with_generation_id(r.generation_id)
                    .with_assignments(assignments);
                let id = r.member_id.to_string();
                tokio::spawn(async move { (id, c.sync_group(req, 3).await) })
            })
            .collect();
        for t in tasks {
            let (id, response) = t.await.unwrap();
            encodes(&response, 3);
            assert_eq!(response.error_code, NONE);
            assert_eq!(
                response.assignment.as_ref(),
                id.as_bytes(),
                "each member gets what the leader assigned it"
            );
        }
    }

    fn ids(joined: &[JoinGroupResponse]) -> Vec<String> {
        joined.iter().map(|r| r.member_id.to_string()).collect()
    }

    fn assert_one_generation(joined: &[JoinGroupResponse], generation: i32, size: usize) {
        assert!(
            joined
                .iter()
                .all(|r| r.error_code == NONE && r.generation_id == generation),
            "{joined:?}"
        );
        let leader = &joined[0].leader;
        assert!(joined.iter().all(|r| &r.leader == leader));
        let with_members: Vec<_> = joined.iter().filter(|r| !r.members.is_empty()).collect();
        assert_eq!(
            with_members.len(),
            1,
            "only the leader gets the member list"
        );
        assert_eq!(&with_members[0].member_id, leader);
        assert_eq!(with_members[0].members.len(), size);
    }

    #[tokio::test(start_paused = true)]
    async fn consumers_join_rebalance_and_leave() {
        let c = coordinator(Arc::default());
        let tasks: Vec<_> = (0..3).map(|_| tokio::spawn(join_new(c.clone()))).collect();
        let mut joined = Vec::new();
        for t in tasks {
            joined.push(t.await.unwrap());
        }
        assert_one_generation(&joined, 1, 3);
        sync_all(&c, &joined).await;
        let first = ids(&joined);

        // A fourth consumer arrives: its join is held while the others
        // learn of the rebalance through their heartbeats and rejoin.
        let fourth = tokio::spawn(join_new(c.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!fourth.is_finished());
        for id in &first {
            assert_eq!(heartbeat(&c, id, 1).await, REBALANCE_IN_PROGRESS);
        }
        let mut joined = rejoin_all(&c, &first).await;
        joined.push(fourth.await.unwrap());
        assert_one_generation(&joined, 2, 4);
        sync_all(&c, &joined).await;

        // One leaves (v3+ batch form): the rest rebalance without it.
        let leaving = joined[1].member_id.clone();
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_members(vec![
                MemberIdentity::default().with_member_id(leaving.clone()),
            ]);
        let left = c.leave_group(req, 5).await;
        encodes(&left, 5);
        assert_eq!((left.error_code, left.members[0].error_code), (NONE, NONE));
        let rest: Vec<String> = ids(&joined)
            .into_iter()
            .filter(|id| *id != leaving.as_str())
            .collect();
        assert_eq!(heartbeat(&c, &rest[0], 2).await, REBALANCE_IN_PROGRESS);
        let joined = rejoin_all(&c, &rest).await;
        assert_one_generation(&joined, 3, 3);
        assert_eq!(heartbeat(&c, &leaving, 3).await, UNKNOWN_MEMBER_ID);
        c.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn silent_member_expires_through_the_timer() {
        let c = coordinator(Arc::default());
        let tasks: Vec<_> = (0..2).map(|_| tokio::spawn(join_new(c.clone()))).collect();
        let mut joined = Vec::new();
        for t in tasks {
            joined.push(t.await.unwrap());
        }
        sync_all(&c, &joined).await;
        let alive = joined[0].member_id.to_string();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(4)).await;
            if heartbeat(&c, &alive, 1).await != NONE {
                break;
            }
        }
        assert_eq!(
            heartbeat(&c, &alive, 1).await,
            REBALANCE_IN_PROGRESS,
            "the silent member's expiry rebalanced"
        );
        let d = c
            .describe_groups(
                DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes("g"))]),
                5,
            )
            .await;
        assert_eq!(d.groups[0].group_state.as_str(), "PreparingRebalance");
        assert_eq!(d.groups[0].members.len(), 1);
        c.shutdown();
    }

    fn commit_req(
        group: &str,
        generation: i32,
        member: &str,
        partitions: &[(i32, i64)],
    ) -> OffsetCommitRequest {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(str_bytes(member))
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|(p, o)| {
                                OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_metadata(Some(str_bytes("meta")))
                            })
                            .collect(),
                    ),
            ])
    }

    fn codes(r: &OffsetCommitResponse) -> Vec<i16> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn offsets_expire_after_retention_and_subscribed_ones_are_kept() {
        let store = Arc::new(MemStore::default());
        let c = coordinator(store.clone());
        let start = wall_clock_ms();
        let retention = GroupConfig::default().offsets_retention.as_millis() as i64;
        // A simple group (no members ever): offsets expire by commit time.
        c.offset_commit(commit_req("simple", -1, "", &[(0, 10)]), 8)
            .await;
        // A v2–v4 explicit retention of one minute.
        let mut short = commit_req("short", -1, "", &[(0, 3)]);
        short.retention_time_ms = 60_000;
        c.offset_commit(short, 2).await;
        // A consumer group with a member whose subscription cannot be
        // read: Kafka keeps all of its offsets.
        let joined = join_new(c.clone()).await;
        sync_all(&c, std::slice::from_ref(&joined)).await;
        let member = joined.member_id.to_string();
        c.offset_commit(commit_req("g", 1, &member, &[(2, 20)]), 8)
            .await;

        assert_eq!(c.expire_offsets(start + 1_000).await, 0, "nothing due yet");
        assert_eq!(
            c.expire_offsets(start + 61_000).await,
            1,
            "the one-minute offset"
        );
        assert_eq!(
            c.expire_offsets(start + retention + 1_000).await,
            1,
            "the simple group's"
        );
        let fetched = |group: &str| {
            OffsetFetchRequest::default()
                .with_group_id(GroupId(str_bytes(group)))
                .with_topics(None)
        };
        let r = c.offset_fetch(fetched("simple"), 7).await;
        assert!(r.topics.iter().all(|t| t.partitions.is_empty()), "{r:?}");
        let r = c.offset_fetch(fetched("g"), 7).await;
        assert_eq!(
            r.topics[0].partitions[0].committed_offset, 20,
            "unknown subscription: kept"
        );
        // Tombstones reached the store, so a restart does not bring them back.
        let restarted = coordinator(store.clone());
        restarted.load().await.unwrap();
        let r = restarted.offset_fetch(fetched("simple"), 7).await;
        assert!(r.topics.iter().all(|t| t.partitions.is_empty()), "{r:?}");
        c.shutdown();
        // An explicit retention survives a restart (stored as a v1 value).
        let mut kept = commit_req("again", -1, "", &[(0, 4)]);
        kept.retention_time_ms = 60_000;
        let now = wall_clock_ms();
        restarted.offset_commit(kept, 2).await;
        let reloaded = coordinator(store.clone());
        reloaded.load().await.unwrap();
        assert_eq!(reloaded.expire_offsets(now + 61_000).await, 1);
        restarted.shutdown();
        reloaded.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn commits_survive_a_restart() {
        let store = Arc::new(MemStore::default());
        let c = coordinator(store.clone());
        let simple = c
            .offset_commit(commit_req("simple", -1, "", &[(0, 10), (1, 11), (9, 1)]), 8)
            .await;
        encodes(&simple, 8);
        assert_eq!(codes(&simple), vec![NONE, NONE, UNKNOWN_TOPIC_OR_PARTITION]);

        let joined = join_new(c.clone()).await;
        sync_all(&c, std::slice::from_ref(&joined)).await;
        let member = joined.member_id.to_string();
        assert_eq!(
            codes(
                &c.offset_commit(commit_req("g", 1, &member, &[(2, 20)]), 8)
                    .await
            ),
            vec![NONE]
        );
        assert_eq!(
            codes(
                &c.offset_commit(commit_req("g", 5, &member, &[(2, 99)]), 8)
                    .await
            ),
            vec![ILLEGAL_GENERATION]
        );
        assert_eq!(
            codes(
                &c.offset_commit(commit_req("g", -1, "", &[(2, 99)]), 8)
                    .await
            ),
            vec![UNKNOWN_MEMBER_ID]
        );
        c.shutdown();

        let restarted = coordinator(store.clone());
        restarted.load().await.unwrap();
        // v7 shape, all partitions.
        let r = restarted
            .offset_fetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes("simple")))
                    .with_topics(None),
                7,
            )
            .await;
        encodes(&r, 7);
        let got: Vec<(i32, i64, String)> = r.topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![(0, 10, "meta".to_owned()), (1, 11, "meta".to_owned())]
        );

        // v8 shape, several groups, requested partitions (3 was never committed).
        let topics = Some(vec![
            OffsetFetchRequestTopics::default()
                .with_name(TopicName(str_bytes("t")))
                .with_partition_indexes(vec![2, 3]),
        ]);
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_topics(topics.clone()),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes("simple")))
                .with_topics(topics),
        ]);
        let r = restarted.offset_fetch(req, 8).await;
        encodes(&r, 8);
        let offsets: Vec<Vec<i64>> = r
            .groups
            .iter()
            .map(|g| {
                g.topics[0]
                    .partitions
                    .iter()
                    .map(|p| p.committed_offset)
                    .collect()
            })
            .collect();
        assert_eq!(offsets, vec![vec![20, -1], vec![-1, -1]]);

        // The Stable group came back with its member and assignment.
        let d = restarted
            .describe_groups(
                DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(str_bytes("g")), GroupId(str_bytes("nope"))]),
                5,
            )
            .await;
        encodes(&d, 5);
        assert_eq!(d.groups[0].group_state.as_str(), "Stable");
        assert_eq!(
            d.groups[0].members[0].member_assignment.as_ref(),
            member.as_bytes()
        );
        assert_eq!(
            (d.groups[1].error_code, d.groups[1].group_state.as_str()),
            (NONE, "Dead")
        );
        let l = restarted
            .list_groups(
                ListGroupsRequest::default().with_states_filter(vec![str_bytes("empty")]),
                4,
            )
            .await;
        encodes(&l, 4);
        assert_eq!(
            l.groups
                .iter()
                .map(|g| g.group_id.to_string())
                .collect::<Vec<_>>(),
            vec!["simple"]
        );

        let del = restarted
            .delete_groups(
                DeleteGroupsRequest::default().with_groups_names(vec![
                    GroupId(str_bytes("simple")),
                    GroupId(str_bytes("g")),
                    GroupId(str_bytes("nope")),
                ]),
                2,
            )
            .await;
        encodes(&del, 2);
        assert_eq!(
            del.results.iter().map(|r| r.error_code).collect::<Vec<_>>(),
            vec![NONE, NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND]
        );
        restarted.shutdown();

        let again = coordinator(store);
        again.load().await.unwrap();
        let r = again
            .offset_fetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes("simple")))
                    .with_topics(None),
                7,
            )
            .await;
        assert!(
            r.topics.is_empty(),
            "deleted group's offsets were tombstoned"
        );
        again.shutdown();
    }

    #[tokio::test]
    async fn offsets_by_topic_id_and_offset_delete() {
        let c = coordinator(Arc::default());
        let mut req = commit_req("simple", -1, "", &[(0, 5)]);
        req.topics[0].name = TopicName::default();
        req.topics[0].topic_id = T_ID;
        assert_eq!(
            codes(&c.offset_commit(req, 9).await),
            vec![NONE],
            "v10 commits name topics by id"
        );
        let mut unknown = commit_req("simple", -1, "", &[(0, 5)]);
        unknown.topics[0].name = TopicName::default();
        unknown.topics[0].topic_id = Uuid::from_u128(99);
        assert_eq!(
            codes(&c.offset_commit(unknown, 9).await),
            vec![UNKNOWN_TOPIC_ID]
        );

        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(str_bytes("simple")))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopics::default()
                        .with_topic_id(T_ID)
                        .with_partition_indexes(vec![0]),
                ])),
        ]);
        let r = c.offset_fetch(req, 10).await;
        encodes(&r, 10);
        assert_eq!(r.groups[0].topics[0].topic_id, T_ID);
        assert_eq!(r.groups[0].topics[0].partitions[0].committed_offset, 5);

        use kafka_protocol::messages::offset_delete_request::{
            OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
        };
        let del = OffsetDeleteRequest::default()
            .with_group_id(GroupId(str_bytes("simple")))
            .with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(str_bytes("t")))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0),
                    ]),
            ]);
        let r = c.offset_delete(del.clone(), 0).await;
        encodes(&r, 0);
        assert_eq!(
            (r.error_code, r.topics[0].partitions[0].error_code),
            (NONE, NONE)
        );
        let r = c
            .offset_fetch(
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(str_bytes("simple")))
                    .with_topics(None),
                7,
            )
            .await;
        assert!(r.topics.is_empty());
        let r = c
            .offset_delete(del.with_group_id(GroupId(str_bytes("nope"))), 0)
            .await;
        assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);
        c.shutdown();
    }

    #[tokio::test(start_paused = true)]
    async fn responses_encode_at_every_version() {
        let c = coordinator(Arc::default());
        for version in 0..=9 {
            let mut bad = join_req("");
            bad.group_id = GroupId::default();
            let r = c.join_group(bad, version, "client", "host").await;
            assert_eq!(r.error_code, INVALID_GROUP_ID);
            encodes(&r, version);
        }
        // Pre-KIP-394 join at v0 (no rebalance timeout on the wire) completes.
        let mut v0 = join_req("");
        v0.rebalance_timeout_ms = -1;
        let r = c.join_group(v0, 0, "client", "host").await;
        assert_eq!((r.error_code, r.generation_id), (NONE, 1));
        encodes(&r, 0);
        for version in 0..=5 {
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_member_id(r.member_id.clone())
                .with_generation_id(1);
            let s = c.sync_group(req, version).await;
            encodes(&s, version);
        }
        let l = c
            .leave_group(
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(str_bytes("g")))
                    .with_member_id(r.member_id.clone()),
                0,
            )
            .await;
        encodes(&l, 0);
        assert_eq!(l.error_code, NONE);
        c.shutdown();
    }

    /// A ConsumerGroupHeartbeat v1 from client "cli" at /10.0.0.2.
    async fn heartbeat_g(
        c: &GroupCoordinator,
        req: ConsumerGroupHeartbeatRequest,
    ) -> ConsumerGroupHeartbeatResponse {
        c.consumer_group_heartbeat(req, 1, "cli", "/10.0.0.2").await
    }

    /// ConsumerGroupDescribe of group "g".
    async fn describe_g(
        c: &GroupCoordinator,
    ) -> kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
        c.consumer_group_describe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(str_bytes("g"))]),
            0,
        )
        .await
        .groups
        .remove(0)
    }

    fn consumer_heartbeat(member_id: &str, epoch: i32) -> ConsumerGroupHeartbeatRequest {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(str_bytes("g")))
            .with_member_id(str_bytes(member_id))
            .with_member_epoch(epoch)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names((epoch == 0).then(|| vec![TopicName(str_bytes("t"))]))
            .with_topic_partitions((epoch == 0).then(Vec::new))
    }

    /// KIP-848 through the shell: a member joins by heartbeat and gets the
    /// topic's partitions by id; the group lists and describes as a
    /// consumer group; classic joins are refused while it has members and
    /// it commits against the member epoch.
    #[tokio::test(start_paused = true)]
    async fn consumer_groups_through_the_shell() {
        let c = coordinator(Arc::default());
        let r = heartbeat_g(&c, consumer_heartbeat("m1", 0)).await;
        assert_eq!(r.error_code, NONE, "{r:?}");
        encodes(&r, 1);
        let epoch = r.member_epoch;
        let assignment = r
            .assignment
            .expect("first heartbeat carries the assignment");
        assert_eq!(assignment.topic_partitions[0].topic_id, T_ID);
        assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1, 2, 3]);
        let classic = join(&c, "").await;
        assert_eq!(classic.error_code, INCONSISTENT_GROUP_PROTOCOL);
        let listed = c.list_groups(ListGroupsRequest::default(), 5).await;
        assert_eq!(listed.groups[0].group_type.as_str(), "consumer");
        assert_eq!(listed.groups[0].group_state.as_str(), "Stable");
        let d = c
            .consumer_group_describe(
                ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(str_bytes("g"))]),
                0,
            )
            .await;
        encodes(&d, 0);
        let g = &d.groups[0];
        assert_eq!(
            (g.error_code, g.group_epoch, g.assignor_name.as_str()),
            (NONE, epoch, "uniform")
        );
        assert_eq!(g.members[0].client_host.as_str(), "/10.0.0.2");
        assert_eq!(
            g.members[0].target_assignment.topic_partitions[0]
                .topic_name
                .as_str(),
            "t"
        );
        let commit = |generation: i32| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(str_bytes("g")))
                .with_member_id(str_bytes("m1"))
                .with_generation_id_or_member_epoch(generation)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(str_bytes("t")))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(5),
                        ]),
                ])
        };
        let stale = c.offset_commit(commit(epoch + 1), 9).await;
        assert_eq!(stale.topics[0].partitions[0].error_code, STALE_MEMBER_EPOCH);
        let ok = c.offset_commit(commit(epoch), 9).await;
        assert_eq!(ok.topics[0].partitions[0].error_code, NONE);
        // Silent past the session timeout: removed by the timer, and the
        // empty group can go back to being a classic one.
        tokio::time::sleep(Duration::from_secs(46)).await;
        assert_eq!(describe_g(&c).await.group_state.as_str(), "Empty");
        let r = heartbeat_g(&c, consumer_heartbeat("m1", epoch)).await;
        assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
        assert_eq!(join(&c, "").await.error_code, MEMBER_ID_REQUIRED);
        c.shutdown();
    }

    /// A consumer group moves to a new coordinator with its members: their
    /// epochs, assignments and targets replay from the store, so the next
    /// heartbeat carries on (no UNKNOWN_MEMBER_ID, no rebalance); a member
    /// that left stays gone, and an emptied, deleted group leaves nothing
    /// behind to replay.
    #[tokio::test(start_paused = true)]
    async fn consumer_groups_survive_a_coordinator_move() {
        let store: Arc<MemStore> = Arc::default();
        let c = coordinator(store.clone());
        let m1 = heartbeat_g(&c, consumer_heartbeat("m1", 0)).await;
        let m2 = heartbeat_g(&c, consumer_heartbeat("m2", 0)).await;
        assert_eq!((m1.error_code, m2.error_code), (NONE, NONE));
        // m1 gives up half its partitions and moves to the new epoch.
        let owned = |ps: Vec<i32>| {
            vec![
                consumer_group_heartbeat_request::TopicPartitions::default()
                    .with_topic_id(T_ID)
                    .with_partitions(ps),
            ]
        };
        let r = heartbeat_g(
            &c,
            consumer_heartbeat("m1", m1.member_epoch)
                .with_topic_partitions(Some(owned(vec![0, 1]))),
        )
        .await;
        assert_eq!(r.error_code, NONE);
        let m1_epoch = r.member_epoch;
        let steady_writes = lock(&store.0).len();
        let again = heartbeat_g(&c, consumer_heartbeat("m1", m1_epoch)).await;
        assert_eq!(again.error_code, NONE);
        assert_eq!(
            lock(&store.0).len(),
            steady_writes,
            "a heartbeat that changes nothing writes nothing"
        );
        c.shutdown();

        let moved = coordinator(store.clone());
        moved.load().await.unwrap();
        let d = describe_g(&moved).await;
        assert_eq!(d.error_code, NONE, "{d:?}");
        assert_eq!(d.members.len(), 2);
        let m1_described = d
            .members
            .iter()
            .find(|m| m.member_id.as_str() == "m1")
            .unwrap();
        assert_eq!(m1_described.member_epoch, m1_epoch);
        assert_eq!(
            m1_described.assignment.topic_partitions[0].partitions,
            vec![0, 1]
        );
        let r = heartbeat_g(&moved, consumer_heartbeat("m1", m1_epoch)).await;
        assert_eq!((r.error_code, r.member_epoch), (NONE, m1_epoch), "{r:?}");
        assert_eq!(
            describe_g(&moved).await.group_epoch,
            d.group_epoch,
            "no new epoch"
        );

        // m2 leaves; the move after that replays one member.
        let leave = heartbeat_g(&moved, consumer_heartbeat("m2", -1)).await;
        assert_eq!(leave.error_code, NONE);
        moved.shutdown();
        let third = coordinator(store.clone());
        third.load().await.unwrap();
        let d = describe_g(&third).await;
        let ids: Vec<&str> = d.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids, vec!["m1"]);
        let r = heartbeat_g(&third, consumer_heartbeat("m1", -1)).await;
        assert_eq!(r.error_code, NONE);
        let deleted = third
            .delete_groups(
                DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes("g"))]),
                2,
            )
            .await;
        assert_eq!(deleted.results[0].error_code, NONE);
        third.shutdown();
        let fourth = coordinator(store);
        fourth.load().await.unwrap();
        assert_eq!(describe_g(&fourth).await.error_code, GROUP_ID_NOT_FOUND);
        fourth.shutdown();
    }

    /// Past `inline_assignment_partitions` the shell computes the target on
    /// the blocking pool: the join is answered before it exists, the
    /// group describes as Assigning until it is installed, and the next
    /// heartbeats reconcile to it.
    #[tokio::test(start_paused = true)]
    async fn large_groups_are_assigned_off_the_heartbeat_by_the_shell() {
        let config = GroupConfig {
            consumer: crate::consumer_group::ConsumerConfig {
                inline_assignment_partitions: 2,
                ..Default::default()
            },
            ..GroupConfig::default()
        };
        let c = GroupCoordinator::new(config, Arc::new(MemStore::default()), Arc::new(Catalog));
        let m1 = heartbeat_g(&c, consumer_heartbeat("m1", 0)).await;
        let m2 = heartbeat_g(&c, consumer_heartbeat("m2", 0)).await;
        assert_eq!(m2.error_code, NONE);
        let assigned = |r: &ConsumerGroupHeartbeatResponse| {
            r.assignment.as_ref().map(|a| {
                a.topic_partitions
                    .iter()
                    .map(|t| t.partitions.len())
                    .sum::<usize>()
            })
        };
        assert_eq!(assigned(&m2), Some(0), "answered before the target exists");
        let mut tries = 0;
        while {
            let d = describe_g(&c).await;
            d.assignment_epoch < d.group_epoch
        } {
            tries += 1;
            assert!(tries < 1000, "the job never came back");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let r = heartbeat_g(&c, consumer_heartbeat("m1", m1.member_epoch)).await;
        assert_eq!(assigned(&r), Some(2), "m1 gives up half: {r:?}");
        c.shutdown();
    }

    /// A static member that left with epoch -2 is still expected back after
    /// its coordinator moves: the same instance id under a new member id
    /// takes its place and partitions (not UNRELEASED_INSTANCE_ID).
    #[tokio::test(start_paused = true)]
    async fn a_static_member_away_is_still_expected_after_a_move() {
        let store: Arc<MemStore> = Arc::default();
        let c = coordinator(store.clone());
        let r = heartbeat_g(
            &c,
            consumer_heartbeat("s1", 0).with_instance_id(Some(str_bytes("instance-a"))),
        )
        .await;
        assert_eq!(r.error_code, NONE);
        let left = heartbeat_g(
            &c,
            consumer_heartbeat("s1", -2).with_instance_id(Some(str_bytes("instance-a"))),
        )
        .await;
        assert_eq!(left.error_code, NONE);
        c.shutdown();
        let moved = coordinator(store);
        moved.load().await.unwrap();
        let back = heartbeat_g(
            &moved,
            consumer_heartbeat("s2", 0).with_instance_id(Some(str_bytes("instance-a"))),
        )
        .await;
        assert_eq!(
            (back.error_code, back.member_epoch),
            (NONE, r.member_epoch),
            "{back:?}"
        );
        let partitions: usize = back
            .assignment
            .map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum())
            .unwrap_or_default();
        assert_eq!(partitions, 4);
        moved.shutdown();
    }

    fn task_beat(
        member: &str,
        epoch: i32,
        owned: Option<crate::tasks::Tasks>,
    ) -> crate::tasks::group::HeartbeatInput {
        use crate::tasks::topology::{Subtopology, Topology};
        crate::tasks::group::HeartbeatInput {
            member_id: member.into(),
            member_epoch: epoch,
            topology: (epoch == 0).then(|| Topology {
                epoch: 1,
                subtopologies: vec![Subtopology {
                    id: "0".into(),
                    source_topics: vec!["t".into()],
                    ..Subtopology::default()
                }],
                ..Topology::default()
            }),
            owned,
            ..Default::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_task_group_continues_on_a_new_coordinator_mid_rebalance() {
        let store = Arc::new(MemStore::default());
        let first = coordinator(Arc::clone(&store));
        let a = first
            .task_group_heartbeat("app", task_beat("a", 0, None))
            .await
            .output;
        let a_tasks = a.assignment.clone().unwrap();
        assert_eq!(a_tasks.active.len(), 4);
        let b = first
            .task_group_heartbeat("app", task_beat("b", 0, None))
            .await
            .output;
        assert!(b.assignment.unwrap().active.is_empty());
        // a is asked to give up two tasks; the coordinator dies before it
        // acknowledges.
        let a2 = first
            .task_group_heartbeat("app", task_beat("a", a.member_epoch, Some(a_tasks.clone())))
            .await
            .output;
        let kept = a2.assignment.unwrap();
        assert_eq!(kept.active.len(), 2);
        first.shutdown();

        let second = coordinator(Arc::clone(&store));
        second.load().await.expect("load");
        let listed = second.list_groups(ListGroupsRequest::default(), 5).await;
        assert_eq!(&*listed.groups[0].group_type, "task");
        // b still may not take what a has not released.
        let b2 = second
            .task_group_heartbeat(
                "app",
                task_beat("b", b.member_epoch, Some(Default::default())),
            )
            .await
            .output;
        assert_eq!(b2.error, NONE, "{b2:?}");
        assert!(b2.assignment.unwrap().active.is_empty());
        let a3 = second
            .task_group_heartbeat("app", task_beat("a", a.member_epoch, Some(kept.clone())))
            .await
            .output;
        assert_eq!(a3.error, NONE, "{a3:?}");
        assert_eq!(a3.member_epoch, b.member_epoch);
        let b3 = second
            .task_group_heartbeat(
                "app",
                task_beat("b", b.member_epoch, Some(Default::default())),
            )
            .await
            .output;
        let b_tasks = b3.assignment.unwrap();
        assert_eq!(b_tasks.active.len(), 2);
        assert!(b_tasks.active.is_disjoint(&kept.active));
        let described = second.describe_task_group("app").await.expect("describe");
        assert_eq!(described.members.len(), 2);
        second.shutdown();
    }
}
