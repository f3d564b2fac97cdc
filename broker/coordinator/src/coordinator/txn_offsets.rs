//! Offsets committed inside a transaction (TxnOffsetCommit): written to the
//! store as part of the producer's transaction, held aside, and made the
//! group's committed offsets only when the commit marker reaches this
//! coordinator's partition (an abort marker drops them).

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use tokio::time::Instant;

use super::slot::GroupKind;
use super::{GroupCoordinator, committed_of, lock, wall_clock_ms};
use crate::StoreError;
use crate::errors::*;
use crate::group::CommittedOffset;
use crate::records::{self, OffsetValue, RecordKey};

/// One offset waiting for its transaction's outcome.
#[derive(Debug, Clone)]
pub(super) struct PendingOffset {
    group: String,
    topic: String,
    partition: i32,
    committed: CommittedOffset,
}

impl GroupCoordinator {
    pub async fn txn_offset_commit(&self, req: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
        let group_id = req.group_id.to_string();
        let generation = req.generation_id;
        // Producers without group metadata (generation -1) may commit for
        // any group, as Kafka allows; with it, the member must be current.
        let slot = self.commit_target(&group_id, generation);
        let validation = match &slot {
            None if group_id.is_empty() => Err(INVALID_GROUP_ID),
            None => Err(ILLEGAL_GENERATION),
            Some(_) if generation < 0 => Ok(()),
            Some(slot) => match &mut slot.lock().await.kind {
                // Transactional commits answer ILLEGAL_GENERATION for a
                // stale epoch, whatever the group's type.
                GroupKind::Consumer(consumer) => {
                    consumer.validate_commit(&req.member_id, generation, 0)
                }
                GroupKind::Tasks(tasks) => tasks
                    .validate_commit(&req.member_id, generation)
                    .map_err(|_| ILLEGAL_GENERATION),
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
        let mut writes: Vec<(usize, usize, PendingOffset)> = Vec::new();
        for (ti, t) in req.topics.iter().enumerate() {
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for (pi, p) in t.partitions.iter().enumerate() {
                let metadata = p.committed_metadata.as_deref().unwrap_or_default();
                let code = match validation {
                    Err(code) => code,
                    Ok(())
                        if !self
                            .inner
                            .catalog
                            .partition_exists(&t.name, p.partition_index) =>
                    {
                        UNKNOWN_TOPIC_OR_PARTITION
                    }
                    Ok(()) if metadata.len() > super::MAX_OFFSET_METADATA_BYTES => {
                        OFFSET_METADATA_TOO_LARGE
                    }
                    Ok(()) => {
                        writes.push((
                            ti,
                            pi,
                            PendingOffset {
                                group: group_id.clone(),
                                topic: t.name.to_string(),
                                partition: p.partition_index,
                                committed: CommittedOffset {
                                    offset: p.committed_offset,
                                    leader_epoch: p.committed_leader_epoch,
                                    metadata: metadata.to_owned(),
                                    commit_timestamp_ms: now_ms,
                                    expire_timestamp_ms: None,
                                },
                            },
                        ));
                        NONE
                    }
                };
                partitions.push(
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code),
                );
            }
            topics.push(
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        if !writes.is_empty() {
            let batch = writes
                .iter()
                .map(|(_, _, w)| {
                    let value = OffsetValue {
                        offset: w.committed.offset,
                        leader_epoch: w.committed.leader_epoch,
                        metadata: w.committed.metadata.clone(),
                        commit_timestamp_ms: w.committed.commit_timestamp_ms,
                        expire_timestamp_ms: None,
                    };
                    records::offset_record(&w.group, &w.topic, w.partition, Some(&value))
                })
                .collect();
            let store = self.inner.store.clone();
            let (pid, epoch) = (req.producer_id.0, req.producer_epoch);
            let appended =
                tokio::task::spawn_blocking(move || store.append_transactional(pid, epoch, batch))
                    .await
                    .map_err(|e| StoreError::Other(format!("append task failed: {e}")))
                    .and_then(|r| r);
            match appended {
                Ok(()) => {
                    let mut pending = lock(&self.inner.pending_txn);
                    let list = pending.entry(pid).or_default();
                    list.extend(writes.into_iter().map(|(_, _, w)| w));
                }
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "failed to persist a transactional offset commit");
                    let code = match e {
                        StoreError::Fenced(_) => INVALID_PRODUCER_EPOCH,
                        _ => COORDINATOR_NOT_AVAILABLE,
                    };
                    for (ti, pi, _) in writes {
                        topics[ti].partitions[pi].error_code = code;
                    }
                }
            }
        }
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    /// The transaction of `producer_id` ended on this coordinator's partition
    /// (its marker is written): its offsets become the groups' committed
    /// offsets, or are dropped on abort.
    pub async fn complete_txn(&self, producer_id: i64, committed: bool) {
        let Some(offsets) = lock(&self.inner.pending_txn).remove(&producer_id) else {
            return;
        };
        if !committed {
            return;
        }
        for p in offsets {
            let slot = self.get_or_create(&p.group);
            let mut slot = slot.lock().await;
            slot.offsets.put(&p.topic, p.partition, p.committed);
        }
    }

    /// Whether a transaction still holds an offset of `group` for this
    /// partition (OffsetFetch with require_stable answers UNSTABLE_OFFSET_COMMIT).
    pub(super) fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        lock(&self.inner.pending_txn)
            .values()
            .flatten()
            .any(|p| p.group == group && p.topic == topic && p.partition == partition)
    }

    /// Transactions the store found open at load: their offsets wait for
    /// the markers the transaction coordinator will write.
    pub(super) fn restore_pending(&self, open: Vec<(i64, super::Records)>) {
        let mut pending = lock(&self.inner.pending_txn);
        for (pid, stored) in open {
            for (key, value) in stored {
                let (
                    Ok(RecordKey::Offset {
                        group,
                        topic,
                        partition,
                    }),
                    Some(value),
                ) = (RecordKey::decode(&key), value)
                else {
                    continue;
                };
                let Ok(v) = OffsetValue::decode(&value) else {
                    continue;
                };
                pending.entry(pid).or_default().push(PendingOffset {
                    group,
                    topic,
                    partition,
                    committed: committed_of(v),
                });
            }
        }
    }
}
