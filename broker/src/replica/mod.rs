//! Replication: makes the partitions this broker stores, and its role for
//! each, follow the metadata image; keeps the leader's high watermark and
//! in-sync set; and (in `fetcher`) copies the leaders' logs to followers.
//!
//! Decisions are the pure functions of `state`; this module is the shell
//! that applies them to logs and asks the controller for ISR changes.

pub mod fetcher;
mod state;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use tracing::{debug, info, warn};
use uuid::Uuid;
use weir_log::LogError;
use weir_quorum::MetadataImage;
use weir_quorum::image::PartitionRegistration;

pub use state::{FollowerProgress, NodeId, ReplicaState, Role};

use crate::broker::BrokerState;
use crate::clock::now_ms;
use crate::partitions::Partition;
use crate::topic_config;

/// A partition this broker should hold, as the image says.
struct Assignment {
    topic_id: Uuid,
    configs: BTreeMap<String, String>,
    registration: PartitionRegistration,
}

/// The partitions `image` assigns to broker `me`.
fn assignments(image: &MetadataImage, me: NodeId) -> BTreeMap<(String, i32), Assignment> {
    let mut wanted = BTreeMap::new();
    for topic in image.topics() {
        let configs = image
            .topic_configs(&topic.name)
            .cloned()
            .unwrap_or_default();
        for (index, registration) in topic.partitions.iter().enumerate() {
            if registration.replicas.contains(&me) {
                wanted.insert(
                    (topic.name.clone(), index as i32),
                    Assignment {
                        topic_id: topic.id,
                        configs: configs.clone(),
                        registration: registration.clone(),
                    },
                );
            }
        }
    }
    wanted
}

/// Names of the partitions `image` assigns to broker `me`.
pub fn assigned_partitions(image: &MetadataImage, me: NodeId) -> HashSet<(String, i32)> {
    assignments(image, me).into_keys().collect()
}

/// Makes local partitions and roles match `image`: opens partitions newly
/// assigned here, deletes those no longer assigned (or of a deleted topic),
/// takes or gives up leadership, and points the follower fetchers at the
/// current leaders. Returns how many partitions assigned here could not be
/// opened (their files unreadable, a full disk rewriting an index): the
/// caller tries again later.
pub async fn apply_image(state: &Arc<BrokerState>, image: &MetadataImage) -> usize {
    let me = state.config.node_id;
    let wanted = assignments(image, me);

    for partition in state.logs.all() {
        let key = (partition.topic.clone(), partition.index);
        let keep = wanted
            .get(&key)
            .is_some_and(|a| a.topic_id == partition.topic_id);
        if !keep {
            remove_partition(state, &partition).await;
        }
    }

    let now = now_ms();
    let settings = state.settings();
    let mut follows: BTreeMap<NodeId, Vec<Arc<Partition>>> = BTreeMap::new();
    let mut unopened = 0;
    for ((topic, index), assignment) in wanted {
        let partition = match state.logs.get(&topic, index) {
            Some(p) => p,
            None => match open_partition(state, &topic, index, &assignment).await {
                Ok(p) => p,
                Err(e) => {
                    warn!(%topic, partition = index, error = %e, "cannot open an assigned partition (retrying)");
                    unopened += 1;
                    continue;
                }
            },
        };
        // Every topic config is dynamic: apply the image's on every change.
        let log_config = topic_config::log_config(&assignment.configs, &settings);
        partition.log().set_config(log_config);
        let r = assignment.registration;
        if r.leader == me {
            let became = {
                let mut replica = partition.replica();
                let was = replica.is_leader() && replica.leader_epoch == r.leader_epoch;
                let mut log = partition.log();
                let end = log.log_end_offset();
                replica.become_leader(
                    r.leader_epoch,
                    r.partition_epoch,
                    r.replicas.clone(),
                    r.isr.clone(),
                    end,
                    now,
                );
                if !was && let Err(e) = log.assign_epoch(r.leader_epoch, end) {
                    warn!(%topic, partition = index, error = %e, "recording the leader epoch failed");
                }
                !was
            };
            if became {
                info!(%topic, partition = index, epoch = r.leader_epoch, "leading");
            }
            advance_high_watermark(state, &partition);
        } else {
            let leader = (r.leader >= 0).then_some(r.leader);
            {
                let mut replica = partition.replica();
                replica.become_follower(
                    leader,
                    r.leader_epoch,
                    r.partition_epoch,
                    r.replicas.clone(),
                    r.isr.clone(),
                );
            }
            if let Some(leader) = leader {
                follows.entry(leader).or_default().push(partition);
            }
        }
    }
    state.fetchers.assign(state, follows);
    state.groups.follow_leadership(state);
    state.txns.follow_leadership(state);
    // Fetches and produces waiting on a partition re-check its role.
    state.logs.notify_appended();
    unopened
}

async fn open_partition(
    state: &Arc<BrokerState>,
    topic: &str,
    index: i32,
    assignment: &Assignment,
) -> Result<Arc<Partition>, LogError> {
    let log_config = topic_config::log_config(&assignment.configs, &state.settings());
    let logs = Arc::clone(&state.logs);
    let topic = topic.to_string();
    let topic_id = assignment.topic_id;
    tokio::task::spawn_blocking(move || logs.open_partition(&topic, index, topic_id, log_config))
        .await
        .map_err(|e| LogError::Io {
            context: "opening a partition".into(),
            source: std::io::Error::other(e.to_string()),
        })?
}

async fn remove_partition(state: &Arc<BrokerState>, partition: &Arc<Partition>) {
    info!(topic = %partition.topic, partition = partition.index, "partition no longer assigned here: removing its data");
    state
        .fetch_sessions
        .forget_partition(&partition.topic, partition.index);
    let logs = Arc::clone(&state.logs);
    let (topic, index) = (partition.topic.clone(), partition.index);
    let removed = tokio::task::spawn_blocking(move || logs.delete_partition(&topic, index)).await;
    if let Ok(Err(e)) | Err(e) = removed.map_err(|e| LogError::Io {
        context: "removing a partition".into(),
        source: std::io::Error::other(e.to_string()),
    }) {
        warn!(topic = %partition.topic, partition = partition.index, error = %e, "removing a partition failed");
    }
}

/// Moves the leader's high watermark as far as the ISR allows; wakes
/// waiting fetches and acks=all produces when it moved.
pub fn advance_high_watermark(state: &BrokerState, partition: &Partition) {
    let moved = {
        let replica = partition.replica();
        if !replica.is_leader() {
            return;
        }
        let mut log = partition.log();
        let current = log.high_watermark();
        let next = replica.next_high_watermark(state.config.node_id, log.log_end_offset(), current);
        if next > current {
            log.set_high_watermark(next);
            true
        } else {
            false
        }
    };
    if moved {
        state.logs.notify_appended();
    }
}

/// acks=all: waits until the high watermark passes `offset` (every in-sync
/// replica has the records), the leadership is lost, or the deadline.
/// Records the ISR had shrunk below `min_insync` under are not acknowledged
/// (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
pub async fn wait_for_replication(
    state: &BrokerState,
    partition: &Partition,
    offset: i64,
    min_insync: i32,
    deadline: tokio::time::Instant,
) -> Result<(), ResponseError> {
    loop {
        let woken = state.logs.appended().notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        {
            let replica = partition.replica();
            if !replica.is_leader() {
                return Err(ResponseError::NotLeaderOrFollower);
            }
            if partition.log().high_watermark() >= offset {
                return if (replica.isr.len() as i32) < min_insync {
                    Err(ResponseError::NotEnoughReplicasAfterAppend)
                } else {
                    Ok(())
                };
            }
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return Err(ResponseError::RequestTimedOut);
        }
    }
}

/// Waits until the in-sync replicas hold everything written to `partition`
/// so far (an internal topic's coordinator write: acks=all with `topic`'s
/// min.insync.replicas).
pub async fn await_written(
    state: &BrokerState,
    partition: &Partition,
    topic: &str,
    deadline: tokio::time::Instant,
) -> Result<(), ResponseError> {
    let written_up_to = partition.log().log_end_offset();
    advance_high_watermark(state, partition);
    let min_insync = state.min_insync_replicas(topic);
    wait_for_replication(state, partition, written_up_to, min_insync, deadline).await
}

/// The leader's side of a follower fetch: records the follower's position,
/// moves the high watermark, and asks for the follower's return to the ISR
/// once it has caught up.
pub fn on_follower_fetch(
    state: &Arc<BrokerState>,
    partition: &Arc<Partition>,
    follower: NodeId,
    fetch_offset: i64,
) {
    let join = {
        let mut replica = partition.replica();
        if !replica.is_leader() || !replica.replicas.contains(&follower) {
            return;
        }
        let (end, hw) = {
            let log = partition.log();
            (log.log_end_offset(), log.high_watermark())
        };
        replica.record_follower_fetch(follower, fetch_offset, end, now_ms());
        (replica.pending_isr.is_none() && replica.may_join_isr(follower, hw)).then(|| {
            let mut isr = replica.isr.clone();
            isr.push(follower);
            isr
        })
    };
    advance_high_watermark(state, partition);
    if let Some(isr) = join {
        propose_isr(state, partition, isr);
    }
}

/// Sends an ISR change to the controller unless one is already in flight;
/// the answer (or the next image) settles it.
pub fn propose_isr(state: &Arc<BrokerState>, partition: &Arc<Partition>, new_isr: Vec<NodeId>) {
    let (leader_epoch, partition_epoch) = {
        let mut replica = partition.replica();
        if !replica.is_leader() || replica.pending_isr.is_some() || replica.isr == new_isr {
            return;
        }
        replica.pending_isr = Some(new_isr.clone());
        (replica.leader_epoch, replica.partition_epoch)
    };
    let Some(topic_id) = state.cluster.topic(&partition.topic).map(|t| t.id) else {
        partition.replica().pending_isr = None;
        return;
    };
    let state = Arc::clone(state);
    let partition = Arc::clone(partition);
    tokio::spawn(async move {
        info!(topic = %partition.topic, partition = partition.index, isr = ?new_isr, "asking the controller to change the ISR");
        let result = state
            .cluster
            .alter_partition(
                topic_id,
                partition.index,
                leader_epoch,
                partition_epoch,
                new_isr,
            )
            .await;
        let mut replica = partition.replica();
        match result {
            Ok(r) if replica.is_leader() && replica.leader_epoch == r.leader_epoch => {
                replica.isr = r.isr;
                replica.partition_epoch = r.partition_epoch;
                replica.pending_isr = None;
            }
            Ok(_) => replica.pending_isr = None,
            Err(e) => {
                debug!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change refused");
                replica.pending_isr = None;
            }
        }
        drop(replica);
        advance_high_watermark(&state, &partition);
    });
}

/// Leader housekeeping: drops followers that stopped keeping up from the
/// ISR (Kafka's replica.lag.time.max.ms).
pub fn shrink_lagging_isrs(state: &Arc<BrokerState>) {
    let me = state.config.node_id;
    let lag_max = state.config.replica_lag_max().as_millis() as i64;
    let now = now_ms();
    for partition in state.logs.all() {
        let shrunk = {
            let replica = partition.replica();
            if !replica.is_leader() || replica.pending_isr.is_some() {
                continue;
            }
            replica.shrunk_isr(me, now, lag_max)
        };
        if let Some(isr) = shrunk {
            warn!(topic = %partition.topic, partition = partition.index, isr = ?isr, "followers fell behind: shrinking the ISR");
            propose_isr(state, &partition, isr);
        }
    }
}

/// Partitions this broker leads whose ISR is smaller than their replica set.
pub fn under_replicated(state: &BrokerState) -> usize {
    state
        .logs
        .all()
        .iter()
        .filter(|p| {
            let r = p.replica();
            r.is_leader() && r.isr.len() < r.replicas.len()
        })
        .count()
}
