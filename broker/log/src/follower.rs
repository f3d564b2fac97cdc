//! Appending batches fetched from the leader: they are stored exactly as the leader
//! wrote them (offsets, timestamps, leader epochs), so replicas stay byte-identical.

use crate::batch::{self, BatchHeader, FramingError};
use crate::error::{LogError, Result};
use crate::log::{AppendInfo, PartitionLog, corrupt_at};
use crate::producer::PendingUpdates;
use crate::segment::BatchMeta;

impl PartitionLog {
    /// Appends batches a follower fetched from its leader, keeping every header field
    /// as the leader wrote it. All or nothing, with one write.
    ///
    /// Each batch's CRC is checked; a trailing partial batch (a fetch response cut at
    /// its byte limit) is ignored and `bytes_appended` says where the whole ones ended.
    /// The first batch may not start below the log end (the replica diverged: truncate
    /// first); it may start above it, and batches may leave gaps between them, because
    /// compaction on the leader removes whole batches (Kafka's rule too). Producer state
    /// is updated without sequence checks so that this replica de-duplicates retries
    /// correctly once it leads, and new leader epochs enter the epoch cache.
    pub fn append_as_follower(&mut self, records: &[u8], now_ms: i64) -> Result<AppendInfo> {
        let log_end_offset = self.log_end_offset();
        let mut metas: Vec<BatchMeta> = Vec::new();
        let mut epochs = Vec::new();
        let mut pending = PendingUpdates::default();
        let mut next = log_end_offset;
        let mut pos = 0usize;
        while pos < records.len() {
            let size = match batch::check_framing(&records[pos..], true) {
                Ok(size) => size,
                Err(FramingError::Truncated { .. }) => break,
                Err(e) => return Err(corrupt_at(pos, &e)),
            };
            let header = BatchHeader::new(&records[pos..pos + size]).expect("framing checked");
            Self::check_replicated_batch(&header, pos)?;
            if header.base_offset() < next {
                return Err(match metas.last() {
                    None => LogError::UnexpectedAppendOffset {
                        base_offset: header.base_offset(),
                        log_end_offset,
                    },
                    Some(prev) => LogError::CorruptMessage(format!(
                        "batch at byte {pos}: base offset {} does not follow the previous batch's last offset {}",
                        header.base_offset(),
                        prev.last_offset
                    )),
                });
            }
            let marker = header
                .is_control()
                .then(|| crate::txn_index::marker_type(&records[pos..pos + size]))
                .flatten();
            self.producers
                .stage_replicated(&mut pending, &header, marker);
            epochs.push((header.partition_leader_epoch(), header.base_offset()));
            metas.push(BatchMeta::of(&header));
            next = header.last_offset() + 1;
            pos += size;
        }
        let Some(first) = metas.first().map(|m| m.base_offset) else {
            return Ok(AppendInfo {
                base_offset: log_end_offset,
                last_offset: log_end_offset - 1,
                log_append_time: -1,
                log_start_offset: self.log_start_offset,
                duplicate: false,
                bytes_appended: 0,
            });
        };
        let last = next - 1;
        if last - first > i64::from(i32::MAX) {
            // One segment indexes offsets relative to its base in 32 bits.
            return Err(LogError::CorruptMessage(format!(
                "replicated batches span offsets {first}..={last}, too many for one append"
            )));
        }
        // Persisted before the data, so the checkpoint never lacks an epoch the log
        // holds; should the write then fail, the new entry starts at the log end and
        // holds no data, which later appends or recovery supersede.
        let new_epochs = self.checkpoint_epochs(epochs)?;
        self.maybe_roll(pos as u64, first, last, now_ms)?;
        let interval = self.config.index_interval_bytes;
        let active = self.segments.last_mut().expect("log has a segment");
        active.append(&records[..pos], &metas, interval, now_ms)?;
        let completed = self.producers.commit(pending);
        self.txns_completed(completed, true)?;
        if let Some(cache) = new_epochs {
            self.epochs = cache;
        }
        Ok(AppendInfo {
            base_offset: first,
            last_offset: last,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
            bytes_appended: pos,
        })
    }

    /// What a follower still checks in a batch the leader accepted: enough to store,
    /// index and later serve it. Record counts are not checked, since compaction on
    /// the leader leaves batches with fewer records than offsets, or none.
    fn check_replicated_batch(header: &BatchHeader<'_>, pos: usize) -> Result<()> {
        if header.compression() > 4 {
            return Err(LogError::CorruptMessage(format!(
                "batch at byte {pos}: unknown compression codec {}",
                header.compression()
            )));
        }
        if header.base_offset() < 0 || header.last_offset_delta() < 0 {
            return Err(LogError::CorruptMessage(format!(
                "batch at byte {pos}: invalid offsets (base {}, last delta {})",
                header.base_offset(),
                header.last_offset_delta()
            )));
        }
        Ok(())
    }
}
