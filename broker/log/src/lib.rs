//! Weir's partition log: segment files with sparse offset and time indexes,
//! crash recovery that truncates a torn tail, retention, compaction and
//! idempotent-producer state.
//!
//! Replication: followers store fetched batches unchanged
//! ([`PartitionLog::append_as_follower`]); the leader epoch cache answers
//! OffsetForLeaderEpoch ([`PartitionLog::end_offset_for_epoch`]).
//!
//! The API is synchronous std I/O: the broker owns one [`PartitionLog`] per
//! topic-partition behind a mutex and calls it from `spawn_blocking`.
//! Batches are stored exactly as the producer sent them apart from the header
//! fields the broker owns (base offset, leader epoch, LogAppendTime), so the
//! produce path never decodes or re-encodes records.
//!
//! Files in a partition directory:
//! - `<base>.log`, `<base>.index`, `<base>.timeindex`: segments named by their
//!   20-digit base offset; index entries are `[relative offset u32, position u32]`
//!   and `[timestamp i64, relative offset u32]`, big-endian, every
//!   `index.interval.bytes`. Indexes are hints: open checks and rebuilds them.
//! - `log-start-offset`: the log start offset (DeleteRecords, retention).
//! - `high-watermark`: the high watermark as of the last `flush`/`close` (or truncation).
//! - `leader-epoch-checkpoint`: leader epoch -> start offset, Kafka's text format
//!   (`0`, entry count, then `<epoch> <offset>` lines); rebuilt from batch headers if lost.
//! - `producer-state.json`: idempotent-producer snapshot (with each producer's open
//!   transaction) and the offset it covers.
//! - `<base>.txnindex`: the segment's aborted transactions, Kafka's layout (see
//!   `txn_index.rs`); with the open transactions they give the last stable offset.
//! - `cleaner-state.json`: compaction progress and per-segment first-cleaned times.
//! - `.clean-shutdown`: written by `close`, removed by `open`; without it the last
//!   segment is CRC-checked in full on open.
//! - `*.log.cleaned` / `*.log.swap`: compaction output before / after its commit point.

pub mod batch;
mod cleaner;
mod config;
mod epoch_cache;
mod error;
mod follower;
mod index;
mod log;
mod producer;
mod replica_state;
mod segment;
mod txn_index;

#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
#[cfg(test)]
mod txn_tests;

pub use config::{CleanupPolicy, LogConfig, TimestampType};
pub use epoch_cache::{EpochEntry, UNDEFINED_EPOCH_END};
pub use error::{LogError, Result};
pub use log::{AppendInfo, AppendOrigin, CompactionStats, PartitionLog, ReadInfo};
pub use producer::ProducerEntry;
pub use txn_index::{AbortedTxn, ControlType};
