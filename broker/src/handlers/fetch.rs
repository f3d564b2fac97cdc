//! Fetch with long polling: read what is there; if it is less than
//! `min_bytes`, wait for appends until `max_wait_ms`, then answer with what
//! there is. Stored batches go out as they are on disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use uuid::Uuid;

use std::collections::HashSet;

use weir_client::acl::Operation;

use super::str_bytes;
use crate::authorizer::Access;
use crate::broker::BrokerState;
use crate::fetch_session::{FetchPlan, RequestedPartition, SessionPartition};

impl PartitionRead {
    /// A read of nothing, answered with `error`.
    fn refused(key: (String, i32), sp: &SessionPartition, error: i16) -> Self {
        PartitionRead {
            key,
            topic_id: sp.topic_id,
            error,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start: -1,
            records: Bytes::new(),
            aborted: None,
        }
    }
}

/// One partition's read result.
struct PartitionRead {
    key: (String, i32),
    topic_id: Uuid,
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start: i64,
    records: Bytes,
    /// read_committed: the aborted transactions the records may hold.
    aborted: Option<Vec<weir_log::AbortedTxn>>,
}

pub async fn fetch(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: FetchRequest,
    version: i16,
) -> FetchResponse {
    let mut response = FetchResponse::default();
    // A follower reads up to the leader's log end; a consumer up to the
    // high watermark.
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let follower = (replica_id >= 0).then_some(replica_id);
    let mut epochs = std::collections::HashMap::new();
    let mut unknown_ids = Vec::new();
    let mut requested = Vec::new();
    for topic in &req.topics {
        let name = if version >= 13 {
            match state.cluster.topic_by_id(topic.topic_id) {
                Some(t) => t.name,
                None => {
                    unknown_ids.push((
                        topic.topic_id,
                        topic
                            .partitions
                            .iter()
                            .map(|p| p.partition)
                            .collect::<Vec<_>>(),
                    ));
                    continue;
                }
            }
        } else {
            topic.topic.to_string()
        };
        let topic_id = state.cluster.topic(&name).map(|t| t.id).unwrap_or_default();
        for p in &topic.partitions {
            epochs.insert((name.clone(), p.partition), p.current_leader_epoch);
            requested.push(RequestedPartition {
                topic: name.clone(),
                topic_id,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    let forgotten = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let name = if version >= 13 {
                state
                    .cluster
                    .topic_by_id(t.topic_id)
                    .map(|m| m.name)
                    .unwrap_or_default()
            } else {
                t.topic.to_string()
            };
            t.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();

    let plan = match state.fetch_sessions.plan(
        req.session_id,
        req.session_epoch,
        requested,
        forgotten,
        Instant::now(),
    ) {
        Ok(plan) => plan,
        Err(e) => {
            response.error_code = e.code();
            return response;
        }
    };
    response.session_id = plan.session_id;

    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    // The broker's fetch.max.bytes caps what a client may ask for.
    let max_bytes = match req.max_bytes {
        n if n > 0 => (n as usize).min(state.config.fetch_max_bytes()),
        _ => state.config.fetch_max_bytes(),
    };
    // A follower's fetch offset is its log end: record it on arrival, so
    // the high watermark (and waiting acks=all produces) move now rather
    // than when this fetch's long poll ends.
    if let Some(follower) = follower {
        for ((topic, index), sp) in &plan.partitions {
            if let Some(partition) = state.logs.get(topic, *index) {
                crate::replica::on_follower_fetch(state, &partition, follower, sp.fetch_offset);
            }
        }
    }
    // A follower needs ClusterAction on the cluster, a consumer Read on
    // each topic; a partition refused is answered TOPIC_AUTHORIZATION_FAILED
    // (checked per fetch, so a session outlives no revoked ACL).
    let mut denied: HashSet<String> = HashSet::new();
    if access.enforced() {
        let topics: HashSet<&String> = plan.partitions.iter().map(|((t, _), _)| t).collect();
        let follower_allowed = follower.is_some() && access.cluster(Operation::ClusterAction);
        denied = topics
            .into_iter()
            .filter(|t| match follower {
                Some(_) => !follower_allowed,
                None => !access.topic(Operation::Read, t),
            })
            .cloned()
            .collect();
    }
    let plan = Arc::new(plan);
    let epochs = Arc::new(epochs);
    let denied = Arc::new(denied);
    let read = || {
        read_all(
            state,
            Arc::clone(&plan),
            Arc::clone(&epochs),
            Arc::clone(&denied),
            follower,
            req.isolation_level == 1,
            max_bytes,
        )
    };
    let reads = loop {
        // Register for wake-ups before reading, so an append that lands
        // between the read and the wait is not missed.
        let appended = state.logs.appended().notified();
        tokio::pin!(appended);
        appended.as_mut().enable();

        let reads = read().await;
        let total: usize = reads.iter().map(|r| r.records.len()).sum();
        let any_error = reads.iter().any(|r| r.error != 0);
        if total >= min_bytes
            || any_error
            || Instant::now() >= deadline
            || plan.partitions.is_empty()
        {
            break reads;
        }
        if tokio::time::timeout_at(deadline.into(), appended)
            .await
            .is_err()
        {
            break read().await;
        }
    };

    for read in reads {
        let has_news = read.error != 0 || !read.records.is_empty();
        let include = !plan.incremental
            || state.fetch_sessions.record_sent(
                plan.session_id,
                &read.key,
                read.high_watermark,
                read.log_start,
                has_news,
            );
        if !plan.incremental && plan.session_id != 0 {
            state.fetch_sessions.record_sent(
                plan.session_id,
                &read.key,
                read.high_watermark,
                read.log_start,
                has_news,
            );
        }
        if !include {
            continue;
        }
        let mut data = PartitionData::default();
        data.partition_index = read.key.1;
        data.error_code = read.error;
        data.high_watermark = read.high_watermark;
        data.last_stable_offset = read.last_stable_offset;
        data.log_start_offset = read.log_start;
        data.records = Some(read.records);
        data.aborted_transactions = read.aborted.map(|list| {
            list.into_iter()
                .map(|t| {
                    let mut a = AbortedTransaction::default();
                    a.producer_id = ProducerId(t.producer_id);
                    a.first_offset = t.first_offset;
                    a
                })
                .collect()
        });
        push_partition(&mut response, &read.key.0, read.topic_id, data);
    }
    for (id, partitions) in unknown_ids {
        for p in partitions {
            let mut data = PartitionData::default();
            data.partition_index = p;
            data.error_code = ResponseError::UnknownTopicId.code();
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.log_start_offset = -1;
            push_partition(&mut response, "", id, data);
        }
    }
    response
}

fn push_partition(response: &mut FetchResponse, topic: &str, topic_id: Uuid, data: PartitionData) {
    match response.responses.last_mut() {
        Some(last) if last.topic.as_str() == topic && last.topic_id == topic_id => {
            last.partitions.push(data)
        }
        _ => {
            let mut t = FetchableTopicResponse::default();
            t.topic = TopicName(str_bytes(topic));
            t.topic_id = topic_id;
            t.partitions.push(data);
            response.responses.push(t);
        }
    }
}

/// Reads every planned partition in one trip to the blocking pool, keeping
/// the response under `max_bytes` except that the first batch found always
/// goes out whole (so a batch larger than the limit cannot stall a consumer).
async fn read_all(
    state: &Arc<BrokerState>,
    plan: Arc<FetchPlan>,
    epochs: Arc<std::collections::HashMap<(String, i32), i32>>,
    denied: Arc<HashSet<String>>,
    follower: Option<i32>,
    read_committed: bool,
    max_bytes: usize,
) -> Vec<PartitionRead> {
    let partitions: Vec<_> = plan
        .partitions
        .iter()
        .map(|(key, sp)| (key.clone(), sp.clone(), state.logs.get(&key.0, key.1)))
        .collect();
    let read = move || {
        let mut remaining = max_bytes;
        let mut any_data = false;
        partitions
            .into_iter()
            .map(|(key, sp, partition)| {
                if denied.contains(&key.0) {
                    return PartitionRead::refused(
                        key,
                        &sp,
                        ResponseError::TopicAuthorizationFailed.code(),
                    );
                }
                let epoch = epochs.get(&key).copied().unwrap_or(-1);
                read_one(
                    key,
                    &sp,
                    partition.as_deref(),
                    epoch,
                    Reader::of(follower.is_some(), read_committed),
                    &mut remaining,
                    &mut any_data,
                )
            })
            .collect::<Vec<_>>()
    };
    // A small read (a follower's or a consumer's usual few partitions) is a
    // page-cache copy, cheaper than the hop to the blocking pool and back,
    // which on the acks=all path is latency every producer waits for.
    let bound = plan
        .partitions
        .iter()
        .map(|(_, sp)| sp.max_bytes.max(0) as usize)
        .sum::<usize>()
        .min(max_bytes);
    if plan.partitions.len() <= INLINE_READ_PARTITIONS && bound <= INLINE_READ_BYTES {
        return read();
    }
    tokio::task::spawn_blocking(read).await.unwrap_or_default()
}

const INLINE_READ_PARTITIONS: usize = 4;
const INLINE_READ_BYTES: usize = 1 << 20;

/// Who reads, which decides how far: a follower to the log end, a consumer to
/// the high watermark, a read_committed consumer to the last stable offset.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reader {
    Follower,
    Uncommitted,
    Committed,
}

impl Reader {
    fn of(follower: bool, read_committed: bool) -> Self {
        match (follower, read_committed) {
            (true, _) => Reader::Follower,
            (false, true) => Reader::Committed,
            (false, false) => Reader::Uncommitted,
        }
    }
}

fn read_one(
    key: (String, i32),
    sp: &SessionPartition,
    partition: Option<&crate::partitions::Partition>,
    current_leader_epoch: i32,
    reader: Reader,
    remaining: &mut usize,
    any_data: &mut bool,
) -> PartitionRead {
    let Some(partition) = partition else {
        return PartitionRead::refused(key, sp, ResponseError::UnknownTopicOrPartition.code());
    };
    let mut read = PartitionRead::refused(key, sp, 0);
    if let Err(e) = super::check_leader(&partition.replica(), current_leader_epoch) {
        read.error = e.code();
        return read;
    }
    let log = partition.log();
    read.high_watermark = log.high_watermark();
    read.last_stable_offset = log.last_stable_offset();
    read.log_start = log.log_start_offset();
    if reader == Reader::Committed {
        read.aborted = Some(Vec::new());
    }
    if *remaining == 0 {
        return read;
    }
    let limit = (sp.max_bytes.max(0) as usize).min(*remaining);
    let upto = match reader {
        Reader::Follower => log.log_end_offset(),
        Reader::Uncommitted => read.high_watermark,
        Reader::Committed => read.last_stable_offset,
    };
    if reader != Reader::Follower
        && sp.fetch_offset > upto
        && sp.fetch_offset <= log.log_end_offset()
    {
        // Written but not yet committed (or stable): nothing to see yet, not an error.
        return read;
    }
    match log.read(sp.fetch_offset, limit, upto) {
        Ok(info) => {
            if info.records.len() > *remaining && *any_data {
                // Over the response limit: leave it for the next fetch.
                return read;
            }
            *remaining = remaining.saturating_sub(info.records.len());
            *any_data |= !info.records.is_empty();
            if reader == Reader::Committed && !info.records.is_empty() {
                read.aborted = Some(log.aborted_transactions(sp.fetch_offset, upto));
            }
            read.records = info.records;
        }
        Err(e) => read.error = e.kafka_error_code(),
    }
    read
}
