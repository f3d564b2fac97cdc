//! Produce and InitProducerId. Record batches are appended as the producer
//! sent them; the log validates them, assigns offsets and de-duplicates
//! idempotent retries.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
};
use tracing::{debug, warn};

use weir_client::acl::{Operation, ResourceType};

use super::str_bytes;
use crate::authorizer::Access;
use crate::broker::BrokerState;
use crate::clock::now_ms;

/// One partition's part of a produce request.
struct PartitionWrite {
    topic: usize,
    response: PartitionProduceResponse,
    records: Option<bytes::Bytes>,
    partition: Option<Arc<crate::partitions::Partition>>,
    leader_epoch: i32,
    /// The topic's min.insync.replicas (acks=all only; 1 otherwise).
    min_insync: i32,
    /// The offset the high watermark must pass before acks=all answers.
    wait_for: Option<i64>,
}

pub async fn produce(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: ProduceRequest,
    _version: i16,
) -> Produced {
    let acks = req.acks;
    // A transactional produce needs Write on its transactional id; without
    // it, no partition is written.
    let transaction_allowed = req
        .transactional_id
        .as_ref()
        .is_none_or(|id| access.transactional_id(Operation::Write, id));
    let timeout_ms = req.timeout_ms;
    let mut response = ProduceResponse::default();
    let mut writes = Vec::new();
    for (t, topic) in req.topic_data.into_iter().enumerate() {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        response.responses.push(topic_response);
        let topic_allowed = access.topic(Operation::Write, &topic.name);
        let min_insync = if acks == -1 {
            state.min_insync_replicas(topic.name.as_str())
        } else {
            1
        };
        for data in topic.partition_data {
            let mut r = PartitionProduceResponse::default();
            r.index = data.index;
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            r.log_start_offset = -1;
            let partition = state.logs.get(topic.name.as_str(), data.index);
            let (leader_check, isr_size, leader_epoch) = match &partition {
                Some(p) => {
                    let r = p.replica();
                    (
                        super::check_leader(&r, -1),
                        r.isr.len() as i32,
                        r.leader_epoch,
                    )
                }
                None => (Ok(()), 0, -1),
            };
            // Stored here, or at least in the cluster (then another broker leads it).
            let known = partition.is_some()
                || state
                    .cluster
                    .partition(topic.name.as_str(), data.index)
                    .is_some();
            if !matches!(acks, -1..=1) {
                r.error_code = ResponseError::InvalidRequiredAcks.code();
            } else if !transaction_allowed {
                r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
            } else if !topic_allowed {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if !known {
                r.error_code = ResponseError::UnknownTopicOrPartition.code();
            } else if partition.is_none() {
                r.error_code = ResponseError::NotLeaderOrFollower.code();
            } else if let Err(e) = leader_check {
                r.error_code = e.code();
            } else if min_insync > isr_size {
                // acks=all cannot promise more copies than are in sync.
                r.error_code = ResponseError::NotEnoughReplicas.code();
                r.error_message = Some(str_bytes(format!(
                    "min.insync.replicas is {min_insync} but this partition has {isr_size} in-sync replicas"
                )));
            } else if data.records.is_none() {
                r.error_code = ResponseError::InvalidRecord.code();
                r.error_message = Some(str_bytes("produce request carries no records"));
            }
            writes.push(PartitionWrite {
                topic: t,
                response: r,
                records: data.records,
                partition,
                leader_epoch,
                min_insync,
                wait_for: None,
            });
        }
    }

    // One trip to the blocking pool for the whole request.
    let writes = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        for w in writes.iter_mut().filter(|w| w.response.error_code == 0) {
            let (Some(partition), Some(records)) = (&w.partition, &w.records) else { continue };
            let result = partition.log().append(records, w.leader_epoch, now);
            match result {
                Ok(info) => {
                    w.wait_for = Some(info.last_offset + 1);
                    w.response.base_offset = info.base_offset;
                    w.response.log_append_time_ms = info.log_append_time;
                    w.response.log_start_offset = info.log_start_offset;
                    if info.duplicate {
                        debug!(topic = %partition.topic, partition = partition.index, "duplicate batch acknowledged again");
                    }
                }
                Err(e) => {
                    warn!(topic = %partition.topic, partition = partition.index, error = %e, "produce refused");
                    w.response.error_code = e.kafka_error_code();
                    w.response.error_message = Some(str_bytes(e.to_string()));
                }
            }
        }
        writes
    })
    .await;
    let writes = match writes {
        Ok(w) => w,
        Err(e) => {
            warn!(error = %e, "produce task failed");
            return Produced::Now((acks != 0).then_some(response));
        }
    };
    state.logs.notify_appended();
    for w in &writes {
        if let (Some(partition), Some(_)) = (&w.partition, w.wait_for) {
            crate::replica::advance_high_watermark(state, partition);
        }
    }
    if acks == 0 {
        return Produced::Now(None);
    }
    if acks != -1 {
        return Produced::Now(Some(assemble(response, writes)));
    }
    // acks=all: the records are in the log, in request order; waiting for
    // the followers happens off the connection's request loop, so the next
    // request is appended meanwhile (responses still go out in order).
    let state = Arc::clone(state);
    let mut writes = writes;
    Produced::Later(Box::pin(async move {
        let deadline = tokio::time::Instant::now()
            + std::time::Duration::from_millis(timeout_ms.max(0) as u64);
        for w in writes.iter_mut() {
            let (Some(partition), Some(offset)) = (&w.partition, w.wait_for) else {
                continue;
            };
            if let Err(e) = crate::replica::wait_for_replication(
                &state,
                partition,
                offset,
                w.min_insync,
                deadline,
            )
            .await
            {
                w.response.error_code = e.code();
                w.response.base_offset = -1;
            }
        }
        assemble(response, writes)
    }))
}

/// What a produce request gets: an answer now, none (acks=0), or one that
/// completes once the in-sync replicas have the records (acks=all).
pub enum Produced {
    Now(Option<ProduceResponse>),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = ProduceResponse> + Send>>),
}

fn assemble(mut response: ProduceResponse, writes: Vec<PartitionWrite>) -> ProduceResponse {
    for w in writes {
        response.responses[w.topic]
            .partition_responses
            .push(w.response);
    }
    response
}

/// Idempotent producers get a fresh producer id at epoch 0: ids are never
/// reused, so a restarted producer can never be mistaken for its old self.
/// (Transactional ones go to their transaction coordinator, `txn`.)
pub async fn init_producer_id(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    _req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    // Idempotence needs IdempotentWrite on the cluster, or (KIP-679) Write
    // on some topic.
    if !access.cluster(Operation::IdempotentWrite)
        && !access.any_of_type(Operation::Write, ResourceType::Topic)
    {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return response;
    }
    match state.cluster.allocate_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => {
            warn!(error = %e, "allocating a producer id failed");
            response.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    response
}
