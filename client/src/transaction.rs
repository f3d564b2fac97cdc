//! The transactional producer's requests to its transaction coordinator
//! (and, for offsets, the group coordinator), each retried while the answer
//! says "try again" (coordinator moving or loading, a previous transaction
//! still completing) until the request timeout.
//!
//! A fenced producer — another instance initialised the same
//! `transactional.id`, or the coordinator aborted a transaction past its
//! timeout — gets [`Error::Fenced`]: it must stop and be replaced, not retry.

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId,
    InitProducerIdRequest, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use crate::cluster::Cluster;
use crate::error::{Error, Result};

const TXN_COORDINATOR: i8 = 1;
const GROUP_COORDINATOR: i8 = 0;
const BACKOFF: Duration = Duration::from_millis(50);

/// The producer identity a transactional id was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub id: i64,
    pub epoch: i16,
}

/// A consumer's group membership, sent with offsets so the group
/// coordinator can refuse a zombie consumer's commit (KIP-447).
#[derive(Clone, Debug, Default)]
pub struct GroupMetadata {
    pub group_id: String,
    /// -1 when unknown: the offsets are then accepted for any member.
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    pub fn new(group_id: impl Into<String>) -> Self {
        GroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            ..Default::default()
        }
    }
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// How an error code from a transaction request is to be taken.
fn classify(code: i16, context: impl Into<String>) -> Step {
    if code == 0 {
        return Step::Done;
    }
    let err = Error::kafka(code, None, context);
    match ResponseError::try_from_code(code) {
        Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch) => {
            Step::Fail(Error::Fenced(err.to_string()))
        }
        Some(
            ResponseError::ConcurrentTransactions
            | ResponseError::CoordinatorLoadInProgress
            | ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable,
        ) => Step::Retry(err),
        _ if err.is_retriable() => Step::Retry(err),
        _ => Step::Fail(err),
    }
}

enum Step {
    Done,
    Retry(Error),
    Fail(Error),
}

/// Runs `attempt` until it succeeds, fails for good, or `timeout` passes.
async fn retrying<T, F, Fut>(timeout: Duration, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<T, i16>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut backoff = BACKOFF;
    loop {
        let err = match attempt().await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(code)) => match classify(code, "transaction request") {
                Step::Done => unreachable!("code 0 is Ok"),
                Step::Retry(e) => e,
                Step::Fail(e) => return Err(e),
            },
            Err(e) if e.is_retriable() => e,
            Err(e) => return Err(e),
        };
        if tokio::time::Instant::now() + backoff >= deadline {
            return Err(err);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// InitProducerId for `transactional_id`: aborts whatever an earlier
/// instance left open and fences it.
pub async fn init(
    cluster: &Cluster,
    transactional_id: &str,
    transaction_timeout: Duration,
) -> Result<ProducerIdentity> {
    let timeout_ms = i32::try_from(transaction_timeout.as_millis()).unwrap_or(i32::MAX);
    retrying(init_timeout(cluster, transaction_timeout), || async {
        let (_, conn) = cluster
            .coordinator(transactional_id, TXN_COORDINATOR)
            .await?;
        let req = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(sb(transactional_id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = conn.send(&req).await?;
        Ok(if resp.error_code == 0 {
            Ok(ProducerIdentity {
                id: resp.producer_id.0,
                epoch: resp.producer_epoch,
            })
        } else {
            Err(resp.error_code)
        })
    })
    .await
}

/// How long one transactional call may keep retrying (Kafka's producer
/// bounds them by `max.block.ms`, 60 s): long enough for a coordinator to
/// move, even when an attempt first waits out an unanswering broker.
fn op_timeout(cluster: &Cluster) -> Duration {
    Duration::from_secs(60).max(cluster.config().request_timeout)
}

/// Re-initialising may first have to wait for an earlier instance's
/// transaction to be aborted.
fn init_timeout(cluster: &Cluster, transaction_timeout: Duration) -> Duration {
    op_timeout(cluster).max(transaction_timeout.min(Duration::from_secs(900)))
}

pub async fn add_partitions(
    cluster: &Cluster,
    transactional_id: &str,
    producer: ProducerIdentity,
    partitions: &[(String, i32)],
) -> Result<()> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for (topic, p) in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(*p),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    retrying(op_timeout(cluster), || async {
        let (_, conn) = cluster
            .coordinator(transactional_id, TXN_COORDINATOR)
            .await?;
        let version = conn.capped_version::<AddPartitionsToTxnRequest>(3)?;
        let req = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(sb(transactional_id)))
            .with_v3_and_below_producer_id(ProducerId(producer.id))
            .with_v3_and_below_producer_epoch(producer.epoch)
            .with_v3_and_below_topics(topics.clone());
        let resp = conn
            .send_version(&req, version, cluster.config().request_timeout)
            .await?;
        let code = resp
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| &t.results_by_partition)
            .map(|p| p.partition_error_code)
            .find(|&c| c != 0 && c != ResponseError::OperationNotAttempted.code())
            .unwrap_or(resp.error_code);
        Ok(if code == 0 { Ok(()) } else { Err(code) })
    })
    .await
}

/// Puts the group's offsets partition in the transaction, then writes the
/// offsets there; they count once the transaction commits.
pub async fn send_offsets(
    cluster: &Cluster,
    transactional_id: &str,
    producer: ProducerIdentity,
    group: &GroupMetadata,
    offsets: &[(String, i32, i64)],
) -> Result<()> {
    let timeout = op_timeout(cluster);
    retrying(timeout, || async {
        let (_, conn) = cluster
            .coordinator(transactional_id, TXN_COORDINATOR)
            .await?;
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(transactional_id)))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_group_id(GroupId(sb(&group.group_id)));
        let resp = conn.send(&req).await?;
        Ok(if resp.error_code == 0 {
            Ok(())
        } else {
            Err(resp.error_code)
        })
    })
    .await?;
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (topic, p, offset) in offsets {
        let part = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*offset)
            .with_committed_leader_epoch(-1)
            .with_committed_metadata(Some(sb("")));
        match topics.iter_mut().find(|t| t.name.as_str() == topic) {
            Some(t) => t.partitions.push(part),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partitions(vec![part]),
            ),
        }
    }
    retrying(timeout, || async {
        let (_, conn) = cluster
            .coordinator(&group.group_id, GROUP_COORDINATOR)
            .await?;
        let req = TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(sb(transactional_id)))
            .with_group_id(GroupId(sb(&group.group_id)))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_generation_id(group.generation_id)
            .with_member_id(sb(&group.member_id))
            .with_group_instance_id(group.group_instance_id.as_deref().map(sb))
            .with_topics(topics.clone());
        let resp = conn.send(&req).await?;
        let code = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code)
            .find(|&c| c != 0)
            .unwrap_or(0);
        Ok(if code == 0 { Ok(()) } else { Err(code) })
    })
    .await
}

/// EndTxn: commit or abort. Answered once the coordinator has recorded the
/// decision; the markers follow, and the next transaction's requests wait
/// for them (CONCURRENT_TRANSACTIONS, retried).
pub async fn end(
    cluster: &Cluster,
    transactional_id: &str,
    producer: ProducerIdentity,
    commit: bool,
) -> Result<()> {
    retrying(op_timeout(cluster), || async {
        let (_, conn) = cluster
            .coordinator(transactional_id, TXN_COORDINATOR)
            .await?;
        let version = conn.capped_version::<EndTxnRequest>(4)?;
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(sb(transactional_id)))
            .with_producer_id(ProducerId(producer.id))
            .with_producer_epoch(producer.epoch)
            .with_committed(commit);
        let resp = conn
            .send_version(&req, version, cluster.config().request_timeout)
            .await?;
        Ok(if resp.error_code == 0 {
            Ok(())
        } else {
            Err(resp.error_code)
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fencing_is_its_own_error_and_coordinator_moves_are_retried() {
        assert!(matches!(
            classify(ResponseError::ProducerFenced.code(), "x"),
            Step::Fail(Error::Fenced(_))
        ));
        assert!(matches!(
            classify(ResponseError::InvalidProducerEpoch.code(), "x"),
            Step::Fail(Error::Fenced(_))
        ));
        for retried in [
            ResponseError::ConcurrentTransactions,
            ResponseError::NotCoordinator,
            ResponseError::CoordinatorLoadInProgress,
        ] {
            assert!(
                matches!(classify(retried.code(), "x"), Step::Retry(_)),
                "{retried:?}"
            );
        }
        assert!(matches!(
            classify(ResponseError::InvalidTxnState.code(), "x"),
            Step::Fail(Error::Kafka { .. })
        ));
    }
}
