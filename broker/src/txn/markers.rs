//! Transaction markers: the control batch that ends a transaction on one
//! partition. The coordinator writes its own partitions' markers directly
//! and sends WriteTxnMarkers to the leaders of the others, retrying until
//! every partition has its marker (or the coordinator loses its shard, and
//! its successor takes over).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    EndTxnMarker, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::Encodable;
use tracing::{debug, warn};
use weir_coordinator::txn::TxnPartition;
use weir_log::{AppendOrigin, ControlType};

use crate::broker::BrokerState;
use crate::clock::now_ms;
use crate::cluster::CONSUMER_OFFSETS_TOPIC;
use crate::handlers::str_bytes;

/// How long one marker write may wait for the partition's in-sync replicas.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What a marker says and for whom.
#[derive(Clone, Copy, Debug)]
pub struct Marker {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub coordinator_epoch: i32,
}

/// The control batch: one record, key `[version 0, type]`, value
/// `[version 0, EndTxnMarker]`.
fn marker_batch(marker: &Marker) -> Result<BytesMut, String> {
    let kind = if marker.commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let mut value = BytesMut::new();
    value.put_i16(0);
    EndTxnMarker::default()
        .with_coordinator_epoch(marker.coordinator_epoch)
        .encode(&mut value, 0)
        .map_err(|e| e.to_string())?;
    crate::group_store::encode_batch(
        vec![(Bytes::copy_from_slice(&kind.key()), Some(value.freeze()))],
        Some((marker.producer_id, marker.producer_epoch, true)),
        true,
        now_ms(),
    )
}

/// Writes `marker` on this broker's replica of `topic`/`index`, which it
/// must lead, and waits for the in-sync replicas; 0 or an error code.
pub async fn write_local(
    state: &Arc<BrokerState>,
    marker: &Marker,
    topic: &str,
    index: i32,
) -> i16 {
    let Some(partition) = state.logs.get(topic, index) else {
        return if state.cluster.partition(topic, index).is_some() {
            ResponseError::NotLeaderOrFollower.code()
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
    };
    let leader_epoch = {
        let replica = partition.replica();
        if let Err(e) = crate::handlers::check_leader(&replica, -1) {
            return e.code();
        }
        replica.leader_epoch
    };
    let batch = match marker_batch(marker) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = %e, "encoding a transaction marker failed");
            return ResponseError::UnknownServerError.code();
        }
    };
    let writer = Arc::clone(&partition);
    let appended = tokio::task::spawn_blocking(move || {
        writer
            .log()
            .append_with_origin(&batch, leader_epoch, now_ms(), AppendOrigin::Coordinator)
    })
    .await;
    match appended {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            warn!(%topic, partition = index, error = %e, "writing a transaction marker failed");
            return e.kafka_error_code();
        }
        Err(e) => {
            warn!(error = %e, "marker task failed");
            return ResponseError::UnknownServerError.code();
        }
    }
    state.logs.notify_appended();
    let written_up_to = partition.log().log_end_offset();
    crate::replica::advance_high_watermark(state, &partition);
    let deadline = tokio::time::Instant::now() + MARKER_TIMEOUT;
    // Markers follow the in-sync replicas as they are, like Kafka's: a
    // partition short of min.insync.replicas must still be able to end its
    // transactions.
    if let Err(e) =
        crate::replica::wait_for_replication(state, &partition, written_up_to, 1, deadline).await
    {
        return e.code();
    }
    if topic == CONSUMER_OFFSETS_TOPIC {
        state
            .groups
            .complete_txn(index, marker.producer_id, marker.commit)
            .await;
    }
    0
}

/// Writes `marker` on every partition in `partitions`, wherever they are led,
/// until each has it. A partition whose topic is gone needs none. `false`
/// if `stopped` was raised first (the shard moved away).
pub async fn write_all(
    state: &Arc<BrokerState>,
    marker: &Marker,
    partitions: &BTreeSet<TxnPartition>,
    stopped: &AtomicBool,
) -> bool {
    let mut left = partitions.clone();
    let mut backoff = Duration::from_millis(20);
    while !left.is_empty() {
        if stopped.load(Ordering::SeqCst) {
            return false;
        }
        let image = state.cluster.image();
        let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
        for (topic, index) in left.clone() {
            match image
                .topic_by_name(&topic)
                .and_then(|t| t.partitions.get(index as usize))
            {
                None => {
                    debug!(%topic, partition = index, "no marker for a deleted partition");
                    left.remove(&(topic, index));
                }
                Some(p) if p.leader < 0 => {}
                Some(p) => by_leader.entry(p.leader).or_default().push((topic, index)),
            }
        }
        for (leader, group) in by_leader {
            let results = if leader == state.config.node_id {
                let mut out = Vec::with_capacity(group.len());
                for (topic, index) in group {
                    let code = write_local(state, marker, &topic, index).await;
                    out.push(((topic, index), code));
                }
                out
            } else {
                send(state, leader, marker, group).await
            };
            for (tp, code) in results {
                if code == 0 || code == ResponseError::UnknownTopicOrPartition.code() {
                    left.remove(&tp);
                } else {
                    debug!(topic = %tp.0, partition = tp.1, code, "marker not written yet; retrying");
                }
            }
        }
        if !left.is_empty() {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    true
}

/// WriteTxnMarkers to broker `leader` for `partitions`; per partition its
/// error code (a broker that cannot be reached: NOT_LEADER_OR_FOLLOWER,
/// retried).
async fn send(
    state: &BrokerState,
    leader: i32,
    marker: &Marker,
    partitions: Vec<TxnPartition>,
) -> Vec<(TxnPartition, i16)> {
    let unreachable = |partitions: Vec<TxnPartition>| {
        partitions
            .into_iter()
            .map(|tp| (tp, ResponseError::NotLeaderOrFollower.code()))
            .collect()
    };
    let image = state.cluster.image();
    let Some(addr) = image
        .broker(leader)
        .and_then(|b| state.inter_broker_address(&b.endpoints))
    else {
        return unreachable(partitions);
    };
    let client_id = format!("weir-txn-markers-{}", state.config.node_id);
    let conn = match state
        .peers
        .connect(&addr, &client_id, Duration::from_secs(2))
        .await
    {
        Ok(c) => c,
        Err(e) => {
            debug!(leader, %addr, error = %e, "cannot reach a partition leader for markers");
            return unreachable(partitions);
        }
    };
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, index) in &partitions {
        by_topic.entry(topic).or_default().push(*index);
    }
    let request = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(marker.producer_id))
            .with_producer_epoch(marker.producer_epoch)
            .with_transaction_result(marker.commit)
            .with_coordinator_epoch(marker.coordinator_epoch)
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(topic, indexes)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(str_bytes(topic)))
                            .with_partition_indexes(indexes)
                    })
                    .collect(),
            ),
    ]);
    let response = match conn
        .send_timeout(&request, MARKER_TIMEOUT + Duration::from_secs(5))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            debug!(leader, error = %e, "WriteTxnMarkers failed");
            return unreachable(partitions);
        }
    };
    let mut codes: BTreeMap<TxnPartition, i16> = BTreeMap::new();
    for m in response.markers {
        for t in m.topics {
            for p in t.partitions {
                codes.insert((t.name.to_string(), p.partition_index), p.error_code);
            }
        }
    }
    partitions
        .into_iter()
        .map(|tp| {
            let code = codes
                .get(&tp)
                .copied()
                .unwrap_or(ResponseError::UnknownServerError.code());
            (tp, code)
        })
        .collect()
}

/// WriteTxnMarkers from a transaction coordinator: each marker on each
/// partition this broker leads.
pub async fn write_txn_markers(
    state: &Arc<BrokerState>,
    access: &crate::authorizer::Access<'_>,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    // Only brokers write markers: ClusterAction, else every partition is
    // refused.
    let allowed = access.cluster(weir_client::acl::Operation::ClusterAction);
    for m in req.markers {
        let marker = Marker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            commit: m.transaction_result,
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut result = WritableTxnMarkerResult::default().with_producer_id(m.producer_id);
        for t in m.topics {
            let mut topic = WritableTxnMarkerTopicResult::default().with_name(t.name.clone());
            for index in t.partition_indexes {
                let code = if allowed {
                    write_local(state, &marker, &t.name, index).await
                } else {
                    kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code()
                };
                topic.partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code),
                );
            }
            result.topics.push(topic);
        }
        response.markers.push(result);
    }
    response
}
