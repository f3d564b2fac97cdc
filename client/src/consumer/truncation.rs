//! Log truncation detection (KIP-320). A position comes with the leader
//! epoch of the record before it (or of the committed offset). When the
//! partition's leader epoch differs from the one the position was last
//! checked under, the consumer asks the leader where that epoch ended
//! (OffsetForLeaderEpoch); a position past that end was truncated away by
//! a leader change, and the consumer resumes where the logs diverge rather
//! than being reset by `auto.offset.reset` (or, worse, skipping the
//! records written at those offsets since).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Consumer, Position, Tp};
use crate::error::Error;

/// What the leader's answer means for a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Validation {
    /// The log still holds everything before the position.
    Valid,
    /// The log diverged at `offset`, last written in `epoch`: resume there.
    Truncated { offset: i64, epoch: i32 },
}

/// `end_offset`/`end_epoch`: where the leader says the position's epoch
/// (or the last epoch before it) ended; -1 when it does not know.
pub(super) fn validate(position: i64, end_offset: i64, end_epoch: i32) -> Validation {
    if end_offset >= 0 && end_offset < position {
        Validation::Truncated {
            offset: end_offset,
            epoch: end_epoch,
        }
    } else {
        Validation::Valid
    }
}

/// (topic-partition, position, position's epoch, leader's current epoch)
type Check = (Tp, i64, i32, i32);

impl Consumer {
    /// Fetchable partitions whose position must be checked before the next
    /// fetch, grouped by leader. Partitions without a position epoch (a
    /// reset, or records from a broker that sends none) have nothing to
    /// check and are marked checked under the current leader epoch.
    pub(super) fn positions_to_validate(&mut self) -> BTreeMap<i32, Vec<Check>> {
        let mut out: BTreeMap<i32, Vec<Check>> = BTreeMap::new();
        // Usually empty: only partitions whose leader epoch moved are cloned.
        let mut nothing_to_check: Vec<(Tp, i32)> = Vec::new();
        for (tp, offset) in self.fetchable() {
            let Some((leader, leader_epoch)) = self.cluster.topic(&tp.0).and_then(|t| {
                t.partitions
                    .iter()
                    .find(|p| p.partition == tp.1)
                    .map(|p| (p.leader, p.leader_epoch))
            }) else {
                continue;
            };
            if leader < 0 || leader_epoch < 0 || self.validated.get(tp) == Some(&leader_epoch) {
                continue;
            }
            match self.epochs.get(tp) {
                Some(&epoch) if epoch >= 0 => {
                    out.entry(leader)
                        .or_default()
                        .push((tp.clone(), offset, epoch, leader_epoch))
                }
                _ => nothing_to_check.push((tp.clone(), leader_epoch)),
            }
        }
        self.validated.extend(nothing_to_check);
        out
    }

    /// Asks each leader where the positions' epochs ended and moves a
    /// truncated position back to the divergence point. A partition whose
    /// check fails stays unchecked (and unfetched) until the next round.
    pub(super) async fn validate_positions(&mut self, checks: BTreeMap<i32, Vec<Check>>) {
        for (leader, checks) in checks {
            if let Err(e) = self.validate_on(leader, &checks).await {
                tracing::debug!(leader, error = %e, "position validation failed; retrying");
                for (tp, ..) in &checks {
                    self.cluster.invalidate(&tp.0);
                }
            }
        }
    }

    async fn validate_on(&mut self, leader: i32, checks: &[Check]) -> Result<(), Error> {
        let conn = self.cluster.broker(leader).await?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
        for ((topic, partition), _, epoch, current) in checks {
            by_topic.entry(topic).or_default().push(
                OffsetForLeaderPartition::default()
                    .with_partition(*partition)
                    .with_current_leader_epoch(*current)
                    .with_leader_epoch(*epoch),
            );
        }
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id((-1).into())
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetForLeaderTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.send(&req).await?;
        for t in resp.topics {
            let topic = t.topic.to_string();
            for p in t.partitions {
                let tp = (topic.clone(), p.partition);
                let Some((_, position, _, current)) = checks.iter().find(|c| c.0 == tp) else {
                    continue;
                };
                if p.error_code != 0 {
                    let e = Error::kafka(
                        p.error_code,
                        None,
                        format!("validate {topic}-{}", p.partition),
                    );
                    if !matches!(
                        e.kafka_error(),
                        Some(ResponseError::FencedLeaderEpoch | ResponseError::UnknownLeaderEpoch)
                    ) && !e.is_retriable()
                    {
                        self.pending_error.get_or_insert(e);
                    }
                    self.cluster.invalidate(&topic);
                    continue;
                }
                // Moved meanwhile (seek, rebalance): nothing to correct.
                if self.positions.get(&tp) != Some(&Position::At(*position)) {
                    continue;
                }
                if let Validation::Truncated { offset, epoch } =
                    validate(*position, p.end_offset, p.leader_epoch)
                {
                    tracing::warn!(%topic, partition = p.partition, position, truncated_to = offset, "log truncation detected; resuming where the logs diverge");
                    self.positions.insert(tp.clone(), Position::At(offset));
                    self.epochs.insert(tp.clone(), epoch);
                    self.dirty = true;
                }
                self.validated.insert(tp, *current);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_past_the_epochs_end_was_truncated() {
        assert_eq!(
            validate(10, 10, 3),
            Validation::Valid,
            "at the end: nothing lost"
        );
        assert_eq!(validate(10, 25, 3), Validation::Valid);
        assert_eq!(
            validate(10, 7, 2),
            Validation::Truncated {
                offset: 7,
                epoch: 2
            }
        );
        assert_eq!(
            validate(10, -1, -1),
            Validation::Valid,
            "unknown epoch: no verdict"
        );
    }
}
