//! ListOffsets (earliest, latest, max timestamp, by timestamp),
//! DeleteRecords (move a partition's log start forward) and
//! OffsetForLeaderEpoch (where a leader epoch ended, for follower and
//! consumer truncation). All are answered by the partition's leader only;
//! "latest" is the high watermark, as clients reading committed data expect.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};
use weir_log::{LogError, PartitionLog};

use weir_client::acl::Operation;

use crate::authorizer::Access;
use crate::broker::BrokerState;

/// ListOffsets' special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The offset (and its timestamp) a ListOffsets timestamp asks for.
/// read_committed readers see the log end at the last stable offset.
fn lookup(
    log: &PartitionLog,
    timestamp: i64,
    read_committed: bool,
) -> Result<(i64, i64), LogError> {
    Ok(match timestamp {
        LATEST | LATEST_TIERED if read_committed => (log.last_stable_offset(), -1),
        LATEST | LATEST_TIERED => (log.high_watermark(), -1),
        EARLIEST | EARLIEST_LOCAL => (log.log_start_offset(), -1),
        MAX_TIMESTAMP => log.max_timestamp()?.unwrap_or((-1, -1)),
        ts => log.offset_for_timestamp(ts)?.unwrap_or((-1, -1)),
    })
}

pub async fn list_offsets(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let read_committed = req.isolation_level == 1;
    let mut jobs = Vec::new();
    for topic in req.topics {
        let allowed = access.topic(Operation::Describe, &topic.name);
        for p in topic.partitions {
            jobs.push((
                topic.name.clone(),
                p.partition_index,
                p.timestamp,
                p.current_leader_epoch,
                allowed.then(|| state.logs.get(&topic.name, p.partition_index)),
            ));
        }
    }
    let answers = tokio::task::spawn_blocking(move || {
        jobs.into_iter()
            .map(|(name, index, timestamp, current_epoch, partition)| {
                let mut r = ListOffsetsPartitionResponse::default();
                r.partition_index = index;
                r.timestamp = -1;
                r.offset = -1;
                let Some(partition) = partition else {
                    r.error_code = ResponseError::TopicAuthorizationFailed.code();
                    return (name, r);
                };
                match partition {
                    None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                    Some(partition) => {
                        let replica = partition.replica().clone();
                        match super::check_leader(&replica, current_epoch) {
                            Err(e) => r.error_code = e.code(),
                            Ok(()) => match lookup(&partition.log(), timestamp, read_committed) {
                                Ok((offset, ts)) => {
                                    r.offset = offset;
                                    r.timestamp = ts;
                                    // The field exists from v4; older versions must leave it at its default.
                                    if version >= 4 {
                                        r.leader_epoch = replica.leader_epoch;
                                    }
                                }
                                Err(e) => r.error_code = e.kafka_error_code(),
                            },
                        }
                    }
                }
                (name, r)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut response = ListOffsetsResponse::default();
    for (name, r) in answers {
        match response.topics.last_mut() {
            Some(t) if t.name == name => t.partitions.push(r),
            _ => {
                let mut t = ListOffsetsTopicResponse::default();
                t.name = name;
                t.partitions.push(r);
                response.topics.push(t);
            }
        }
    }
    response
}

pub async fn delete_records(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for topic in req.topics {
        let mut t = DeleteRecordsTopicResult::default();
        t.name = topic.name.clone();
        let allowed = access.topic(Operation::Delete, &topic.name);
        for p in topic.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            if !allowed {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                t.partitions.push(r);
                continue;
            }
            match state.logs.get(&topic.name, p.partition_index) {
                None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(partition) => {
                    let leading = super::check_leader(&partition.replica(), -1);
                    match leading {
                        Err(e) => r.error_code = e.code(),
                        Ok(()) => match partition
                            .with_log(move |log| {
                                // -1 means "up to the high watermark"; beyond it
                                // is not committed yet.
                                let hw = log.high_watermark();
                                let offset = if p.offset == -1 { hw } else { p.offset };
                                if offset > hw {
                                    return Err(LogError::OffsetOutOfRange(format!(
                                        "offset {offset} is above the high watermark {hw}"
                                    )));
                                }
                                log.delete_records_before(offset)
                            })
                            .await
                        {
                            Ok(low) => r.low_watermark = low,
                            Err(e) => r.error_code = e.kafka_error_code(),
                        },
                    }
                }
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    response
}

/// Where each asked-for leader epoch ends in this leader's log (KIP-101):
/// the largest epoch not above the one asked for, and the start offset of
/// the next epoch (or the log end for the latest one).
pub fn offset_for_leader_epoch(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    // A follower needs ClusterAction, a consumer Describe on the topic.
    let follower = req.replica_id.0 >= 0;
    let follower_allowed = !follower || access.cluster(Operation::ClusterAction);
    for topic in req.topics {
        let mut t = OffsetForLeaderTopicResult::default();
        t.topic = topic.topic.clone();
        let allowed =
            follower_allowed && (follower || access.topic(Operation::Describe, &topic.topic));
        for p in topic.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            if !allowed {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                t.partitions.push(r);
                continue;
            }
            match state.logs.get(&topic.topic, p.partition) {
                None => r.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(partition) => {
                    let leading = super::check_leader(&partition.replica(), p.current_leader_epoch);
                    match leading {
                        Err(e) => r.error_code = e.code(),
                        Ok(()) => {
                            let (epoch, end) = partition.log().end_offset_for_epoch(p.leader_epoch);
                            r.leader_epoch = epoch;
                            r.end_offset = end;
                        }
                    }
                }
            }
            t.partitions.push(r);
        }
        response.topics.push(t);
    }
    response
}
