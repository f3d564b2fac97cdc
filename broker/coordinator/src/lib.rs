//! Weir's group coordinator: Kafka's classic consumer-group protocol
//! (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), KIP-848 consumer groups
//! ([`consumer_group`], with the server-side [`assignor`]s) and committed
//! offsets, plus the transaction coordinator's decisions ([`txn`]).
//!
//! The crate is layered so the decisions can be tested without a runtime:
//! - [`group`]: a pure state machine per group; methods take inputs and `now`
//!   and return responses plus [`group::Effect`]s.
//! - [`records`]: the `__consumer_offsets` key/value formats, byte-compatible
//!   with Kafka's so its tools can read our internal topic.
//! - [`coordinator`]: the async shell — per-group locks, held join/sync
//!   responses, timers, persistence through [`GroupStore`].

pub mod assignor;
pub mod consumer_group;
pub mod coordinator;
pub mod errors;
pub mod group;
pub mod offsets;
pub mod records;
pub mod tasks;
pub mod txn;

use std::time::Duration;

pub use coordinator::{GroupCoordinator, TaskHeartbeat};

/// Broker-wide settings of the coordinator, named after Kafka's broker configs.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an
    /// empty group waits for more members (extended as members join, capped
    /// at the rebalance timeout).
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout: Duration,
    /// `offsets.retention.minutes`
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are
    /// looked for.
    pub offsets_retention_check_interval: Duration,
    /// `group.max.size`
    pub max_group_size: usize,
    /// KIP-848 consumer groups' settings.
    pub consumer: consumer_group::ConsumerConfig,
    /// Task groups' settings.
    pub tasks: tasks::group::TaskGroupConfig,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(3000),
            min_session_timeout: Duration::from_millis(6000),
            max_session_timeout: Duration::from_millis(1_800_000),
            offsets_retention: Duration::from_secs(7 * 24 * 3600),
            offsets_retention_check_interval: Duration::from_secs(600),
            max_group_size: i32::MAX as usize,
            consumer: consumer_group::ConsumerConfig::default(),
            tasks: tasks::group::TaskGroupConfig::default(),
        }
    }
}

/// A failure of the durable store behind the coordinator.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("group store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("group store failed: {0}")]
    Other(String),
    /// A transactional write from a producer epoch older than the partition's.
    #[error("producer fenced: {0}")]
    Fenced(String),
}

/// Stored records, key and value (None = tombstone).
pub type StoredRecords = Vec<(bytes::Bytes, Option<bytes::Bytes>)>;

/// Durable storage for group metadata and committed offsets — the broker
/// implements it over the compacted internal topic `__consumer_offsets`.
///
/// Synchronous because the broker's implementation appends to a log under a
/// mutex; the coordinator always calls it through
/// `tokio::task::spawn_blocking`, never on a runtime worker thread.
pub trait GroupStore: Send + Sync + 'static {
    /// Appends records durably (key, value; value None = tombstone) in order.
    fn append(&self, records: Vec<(bytes::Bytes, Option<bytes::Bytes>)>) -> Result<(), StoreError>;
    /// Every record stored so far, oldest first (replayed at start-up). A
    /// transaction's records come at its commit marker; aborted ones never.
    fn load(&self) -> Result<Vec<(bytes::Bytes, Option<bytes::Bytes>)>, StoreError>;
    /// Appends records as part of `producer_id`'s transaction: they count
    /// only once its commit marker is written.
    fn append_transactional(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        records: StoredRecords,
    ) -> Result<(), StoreError> {
        let _ = (producer_id, producer_epoch, records);
        Err(StoreError::Other("this store keeps no transactions".into()))
    }
    /// The records of transactions the last `load` found still open, per
    /// producer id.
    fn load_pending(&self) -> Result<Vec<(i64, StoredRecords)>, StoreError> {
        Ok(Vec::new())
    }
}

/// What the coordinator needs to know about topics (the broker's metadata).
pub trait TopicCatalog: Send + Sync + 'static {
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// OffsetCommit/OffsetFetch v10 name topics by id.
    fn topic_name(&self, id: uuid::Uuid) -> Option<String>;
    fn topic_id(&self, name: &str) -> Option<uuid::Uuid>;
    /// Every topic a consumer may subscribe to (internal ones left out),
    /// with its partition count.
    fn topics(&self) -> std::collections::BTreeMap<String, i32>;
    /// One topic's partition count.
    fn partitions(&self, topic: &str) -> Option<i32> {
        self.topics().get(topic).copied()
    }
    /// The end of a partition's log, if this broker holds a replica.
    fn end_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        let _ = (topic, partition);
        None
    }
}
