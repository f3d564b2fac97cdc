//! Adapters that give the group coordinator what it needs from the broker:
//! durable storage in the compacted internal topic `__consumer_offsets`, and
//! a view of which topics and partitions exist.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use uuid::Uuid;
use weir_coordinator::{GroupStore, StoreError, TopicCatalog};

use crate::clock::now_ms;
use crate::cluster::ClusterMetadata;
use crate::partitions::{LogManager, Partition};

/// Group records kept as ordinary records of `__consumer_offsets` partition 0.
pub struct OffsetsTopicStore {
    partition: Arc<Partition>,
    logs: Arc<LogManager>,
}

impl OffsetsTopicStore {
    pub fn new(partition: Arc<Partition>, logs: Arc<LogManager>) -> Self {
        OffsetsTopicStore { partition, logs }
    }
}

fn store_error(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("__consumer_offsets {context}: {e}"))
}

impl GroupStore for OffsetsTopicStore {
    fn append(&self, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let records: Vec<Record> = records
            .into_iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
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
        .map_err(|e| store_error("encoding", e))?;
        // Stamped with the leader epoch so followers' truncation works on
        // this partition as on any other.
        let epoch = self.partition.replica().leader_epoch.max(0);
        self.partition
            .log()
            .append(&batch, epoch, now)
            .map_err(|e| store_error("append", e))?;
        self.logs.notify_appended();
        Ok(())
    }

    fn load(&self) -> Result<Vec<(Bytes, Option<Bytes>)>, StoreError> {
        let log = self.partition.log();
        let end = log.log_end_offset();
        let mut offset = log.log_start_offset();
        let mut out = Vec::new();
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
                if record.offset >= offset {
                    offset = record.offset + 1;
                    if let Some(key) = record.key {
                        out.push((key, record.value));
                    }
                }
            }
            if offset == before {
                // A batch whose records were all compacted away still moves us on.
                offset += 1;
            }
        }
        Ok(out)
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
}
