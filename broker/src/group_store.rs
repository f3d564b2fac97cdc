//! Adapters that give the group coordinator what it needs from the broker:
//! durable storage in the compacted internal topic `__consumer_offsets`, and
//! a view of which topics and partitions exist.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;
use weir_coordinator::{GroupStore, StoreError, StoredRecords, TopicCatalog};
use weir_log::{AppendOrigin, ControlType, LogError};

use crate::clock::now_ms;
use crate::cluster::ClusterMetadata;
use crate::partitions::{LogManager, Partition};

/// Coordinator records kept as ordinary records of one partition of an internal
/// topic (`__consumer_offsets`, `__transaction_state`).
pub struct InternalPartitionStore {
    partition: Arc<Partition>,
    logs: Arc<LogManager>,
    /// What the last load found of transactions still open.
    open_at_load: Mutex<Vec<(i64, StoredRecords)>>,
}

impl InternalPartitionStore {
    pub fn new(partition: Arc<Partition>, logs: Arc<LogManager>) -> Self {
        InternalPartitionStore {
            partition,
            logs,
            open_at_load: Mutex::new(Vec::new()),
        }
    }
}

fn store_error(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("__consumer_offsets {context}: {e}"))
}

/// A producer's identity on a batch: (producer id, epoch, transactional).
pub type BatchProducer = Option<(i64, i16, bool)>;

/// One uncompressed v2 batch of key/value records, stamped `now`, written by
/// `producer` if given (sequence -1: a coordinator writes it, not a client).
pub fn encode_batch(
    records: Vec<(Bytes, Option<Bytes>)>,
    producer: BatchProducer,
    control: bool,
    now: i64,
) -> Result<BytesMut, String> {
    let (producer_id, producer_epoch, transactional) = producer.unwrap_or((-1, -1, false));
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: now,
            key: Some(key),
            value,
            headers: Default::default(),
        })
        .collect();
    let mut batch = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut batch,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(batch)
}

impl InternalPartitionStore {
    fn write(
        &self,
        records: Vec<(Bytes, Option<Bytes>)>,
        producer: BatchProducer,
    ) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let batch =
            encode_batch(records, producer, false, now).map_err(|e| store_error("encoding", e))?;
        // Stamped with the leader epoch so followers' truncation works on
        // this partition as on any other.
        let epoch = self.partition.replica().leader_epoch.max(0);
        self.partition
            .log()
            .append_with_origin(&batch, epoch, now, AppendOrigin::Coordinator)
            .map_err(|e| match e {
                LogError::InvalidProducerEpoch(m) => StoreError::Fenced(m),
                e => store_error("append", e),
            })?;
        self.logs.notify_appended();
        Ok(())
    }
}

impl GroupStore for InternalPartitionStore {
    fn append(&self, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), StoreError> {
        self.write(records, None)
    }

    fn append_transactional(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        records: StoredRecords,
    ) -> Result<(), StoreError> {
        self.write(records, Some((producer_id, producer_epoch, true)))
    }

    /// Replays the partition: a transaction's records are held until its
    /// marker (commit: they count from there; abort: dropped); those still
    /// open at the end are kept for [`GroupStore::load_pending`].
    fn load(&self) -> Result<StoredRecords, StoreError> {
        let log = self.partition.log();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut out = Vec::new();
        let mut open: BTreeMap<i64, StoredRecords> = BTreeMap::new();
        while offset < end {
            let read = log
                .read(offset, 1 << 20, end)
                .map_err(|e| store_error("read", e))?;
            if read.records.is_empty() {
                break;
            }
            let mut buf = read.records;
            let sets =
                RecordBatchDecoder::decode_all(&mut buf).map_err(|e| store_error("decoding", e))?;
            let before = offset;
            for record in sets.into_iter().flat_map(|s| s.records) {
                if record.offset < offset {
                    continue;
                }
                offset = record.offset + 1;
                let Some(key) = record.key else { continue };
                if record.control {
                    let held = open.remove(&record.producer_id).unwrap_or_default();
                    if ControlType::from_key(&key) == Some(ControlType::Commit) {
                        out.extend(held);
                    }
                } else if record.transactional {
                    open.entry(record.producer_id)
                        .or_default()
                        .push((key, record.value));
                } else {
                    out.push((key, record.value));
                }
            }
            if offset == before {
                // A batch whose records were all compacted away still moves us on.
                offset += 1;
            }
        }
        *self.open_at_load.lock().unwrap_or_else(|p| p.into_inner()) = open.into_iter().collect();
        Ok(out)
    }

    fn load_pending(&self) -> Result<Vec<(i64, StoredRecords)>, StoreError> {
        Ok(std::mem::take(
            &mut *self.open_at_load.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// Which topics exist, from the broker's metadata.
pub struct TopicCatalogView {
    metadata: Arc<ClusterMetadata>,
}

impl TopicCatalogView {
    pub fn new(metadata: Arc<ClusterMetadata>) -> Self {
        TopicCatalogView { metadata }
    }
}

impl TopicCatalog for TopicCatalogView {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.metadata
            .topic(topic)
            .is_some_and(|t| partition >= 0 && partition < t.partitions)
    }

    fn topic_name(&self, id: Uuid) -> Option<String> {
        self.metadata.topic_by_id(id).map(|t| t.name)
    }

    fn topic_id(&self, name: &str) -> Option<Uuid> {
        self.metadata.topic(name).map(|t| t.id)
    }

    fn topics(&self) -> std::collections::BTreeMap<String, i32> {
        self.metadata
            .topics()
            .into_iter()
            .filter(|t| !t.internal)
            .map(|t| (t.name, t.partitions))
            .collect()
    }
}
