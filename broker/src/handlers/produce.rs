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

use super::str_bytes;
use crate::broker::BrokerState;
use crate::clock::now_ms;

/// Replicas in sync for every partition while the broker runs alone.
const IN_SYNC_REPLICAS: i32 = 1;

/// One partition's part of a produce request.
struct PartitionWrite {
    topic: usize,
    response: PartitionProduceResponse,
    records: Option<bytes::Bytes>,
    partition: Option<Arc<crate::partitions::Partition>>,
}

pub async fn produce(
    state: &Arc<BrokerState>,
    req: ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let mut response = ProduceResponse::default();
    let mut writes = Vec::new();
    for (t, topic) in req.topic_data.into_iter().enumerate() {
        let mut topic_response = TopicProduceResponse::default();
        topic_response.name = topic.name.clone();
        response.responses.push(topic_response);
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
            if !matches!(acks, -1..=1) {
                r.error_code = ResponseError::InvalidRequiredAcks.code();
            } else if req.transactional_id.is_some() {
                r.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
                r.error_message = Some(str_bytes(
                    "transactions are not supported by this broker yet",
                ));
            } else if partition.is_none() {
                r.error_code = ResponseError::UnknownTopicOrPartition.code();
            } else if min_insync > IN_SYNC_REPLICAS {
                // One broker means one in-sync replica: acks=all cannot
                // promise more copies than that.
                r.error_code = ResponseError::NotEnoughReplicas.code();
                r.error_message = Some(str_bytes(format!(
                    "min.insync.replicas is {min_insync} but this partition has {IN_SYNC_REPLICAS} in-sync replica"
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
            });
        }
    }

    // One trip to the blocking pool for the whole request.
    let writes = tokio::task::spawn_blocking(move || {
        let now = now_ms();
        for w in writes.iter_mut().filter(|w| w.response.error_code == 0) {
            let (Some(partition), Some(records)) = (&w.partition, &w.records) else { continue };
            let result = partition.log().append(records, 0, now);
            match result {
                Ok(info) => {
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
            return (acks != 0).then_some(response);
        }
    };
    state.logs.notify_appended();
    if acks == 0 {
        return None;
    }
    for w in writes {
        response.responses[w.topic]
            .partition_responses
            .push(w.response);
    }
    Some(response)
}

/// Idempotent producers get a fresh producer id at epoch 0: ids are never
/// reused, so a restarted producer can never be mistaken for its old self.
pub async fn init_producer_id(
    state: &Arc<BrokerState>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if req.transactional_id.is_some() {
        response.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return response;
    }
    let metadata = Arc::clone(&state.metadata);
    match tokio::task::spawn_blocking(move || metadata.allocate_producer_id()).await {
        Ok(Ok(id)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Ok(Err(e)) => {
            warn!(error = %e, "allocating a producer id failed");
            response.error_code = ResponseError::KafkaStorageError.code();
        }
        Err(e) => {
            warn!(error = %e, "allocating a producer id failed");
            response.error_code = ResponseError::UnknownServerError.code();
        }
    }
    response
}
