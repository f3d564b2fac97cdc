//! Transactions, as `kafka-transactions.sh` sees them: list and describe
//! them on their coordinators, the producers with state on a partition
//! (with their open transactions), and aborting a hanging transaction by
//! writing its abort marker on the partition it holds.

use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId,
    TopicName, TransactionalId, WriteTxnMarkersRequest,
};

use super::Admin;
use crate::error::{Error, Result, check};
use crate::util::sb;

/// One transactional id, as ListTransactions answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: String,
    pub coordinator: i32,
}

/// A transactional id's state on its coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    pub transactional_id: String,
    pub coordinator: i32,
    pub state: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    /// -1 before the first transaction.
    pub start_time_ms: i64,
    pub partitions: Vec<(String, i32)>,
}

/// A producer with state on one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerDescription {
    pub producer_id: i64,
    pub producer_epoch: i32,
    pub last_sequence: i32,
    /// First offset of its open transaction on the partition, if any.
    pub current_txn_start_offset: Option<i64>,
}

impl Admin {
    /// Every transactional id on every broker's coordinators.
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        self.cluster.refresh(Some(&[])).await?;
        let mut out = Vec::new();
        for b in self.cluster.brokers() {
            let resp = self
                .cluster
                .broker(b.node_id)
                .await?
                .send(&ListTransactionsRequest::default().with_duration_filter(-1))
                .await?;
            check(resp.error_code, None, || {
                format!("list transactions on broker {}", b.node_id)
            })?;
            out.extend(
                resp.transaction_states
                    .into_iter()
                    .map(|t| TransactionListing {
                        transactional_id: t.transactional_id.to_string(),
                        producer_id: t.producer_id.0,
                        state: t.transaction_state.to_string(),
                        coordinator: b.node_id,
                    }),
            );
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    pub async fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<TransactionDescription> {
        let (node, conn) = self.cluster.coordinator(transactional_id, 1).await?;
        let resp = conn
            .send(
                &DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(sb(transactional_id))]),
            )
            .await?;
        let t = resp
            .transaction_states
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other("empty DescribeTransactions answer".into()))?;
        check(t.error_code, None, || {
            format!("describe transaction {transactional_id:?}")
        })?;
        Ok(TransactionDescription {
            transactional_id: transactional_id.to_owned(),
            coordinator: node,
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .into_iter()
                .flat_map(|topic| {
                    let name = topic.topic.to_string();
                    topic.partitions.into_iter().map(move |p| (name.clone(), p))
                })
                .collect(),
        })
    }

    /// The producers the leader of `topic`/`partition` holds state for.
    pub async fn describe_producers(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ProducerDescription>> {
        let conn = self.partition_leader(topic, partition).await?;
        let resp = conn
            .send(&DescribeProducersRequest::default().with_topics(vec![
                TopicRequest::default()
                    .with_name(TopicName(sb(topic)))
                    .with_partition_indexes(vec![partition]),
            ]))
            .await?;
        let p = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| Error::Other("empty DescribeProducers answer".into()))?;
        check(p.error_code, p.error_message.as_ref(), || {
            format!("describe producers of {topic}-{partition}")
        })?;
        let mut out: Vec<ProducerDescription> = p
            .active_producers
            .into_iter()
            .map(|s| ProducerDescription {
                producer_id: s.producer_id.0,
                producer_epoch: s.producer_epoch,
                last_sequence: s.last_sequence,
                current_txn_start_offset: (s.current_txn_start_offset >= 0)
                    .then_some(s.current_txn_start_offset),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        Ok(out)
    }

    /// Aborts the transaction open on `topic`/`partition` that started at
    /// `start_offset` (as `kafka-transactions.sh abort --start-offset`):
    /// the partition's leader writes its abort marker, so the last stable
    /// offset moves past it. Returns the producer id it belonged to.
    pub async fn abort_transaction(
        &self,
        topic: &str,
        partition: i32,
        start_offset: i64,
    ) -> Result<i64> {
        let producers = self.describe_producers(topic, partition).await?;
        let producer = producers
            .iter()
            .find(|p| p.current_txn_start_offset == Some(start_offset))
            .ok_or_else(|| {
                Error::Other(format!(
                    "no transaction open on {topic}-{partition} starts at offset {start_offset}"
                ))
            })?;
        let epoch = i16::try_from(producer.producer_epoch).map_err(|_| {
            Error::Other(format!(
                "producer epoch {} out of range",
                producer.producer_epoch
            ))
        })?;
        let conn = self.partition_leader(topic, partition).await?;
        let resp = conn
            .send(&WriteTxnMarkersRequest::default().with_markers(vec![
                WritableTxnMarker::default()
                    .with_producer_id(ProducerId(producer.producer_id))
                    .with_producer_epoch(epoch)
                    .with_transaction_result(false)
                    .with_coordinator_epoch(-1)
                    .with_topics(vec![
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(sb(topic)))
                            .with_partition_indexes(vec![partition]),
                    ]),
            ]))
            .await?;
        let code = resp
            .markers
            .iter()
            .flat_map(|m| &m.topics)
            .flat_map(|t| &t.partitions)
            .map(|p| p.error_code)
            .find(|&c| c != 0)
            .unwrap_or(0);
        check(code, None, || {
            format!("abort the transaction on {topic}-{partition}")
        })?;
        Ok(producer.producer_id)
    }

    async fn partition_leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<std::sync::Arc<crate::conn::Connection>> {
        self.cluster.refresh(Some(&[topic.to_owned()])).await?;
        let leader = self
            .cluster
            .leader(topic, partition)
            .ok_or_else(|| Error::NoLeader {
                topic: topic.to_owned(),
                partition,
            })?;
        self.cluster.broker(leader).await
    }
}
