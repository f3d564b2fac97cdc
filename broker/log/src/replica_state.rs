//! Replication state kept with the log: the leader epoch cache and the high watermark,
//! and how truncation, log start moves and reopening keep them consistent with the data.

use crate::batch::BatchHeader;
use crate::epoch_cache::{EpochEntry, LeaderEpochCache};
use crate::error::{LogError, Result};
use crate::log::{HIGH_WATERMARK_FILE, PartitionLog, read_offset_file, write_offset_file};
use crate::segment::Step;

impl PartitionLog {
    /// The newest leader epoch in the log (or assigned to it), if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// OffsetForLeaderEpoch for this log, Kafka's answer: `(latest, log end)` for the
    /// latest epoch; for an older one, the largest known epoch not above it and the start
    /// offset of the next larger known epoch; `(requested, first known start offset)`
    /// when `requested` is below every known epoch (history deleted from the start);
    /// `(-1, -1)` above every epoch, for -1, or with no epochs.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        self.epochs.end_offset_for(requested, self.log_end_offset())
    }

    /// The epoch cache's entries, oldest first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        self.epochs.entries()
    }

    /// Records that leadership in `epoch` starts at `start_offset`, which must be the
    /// log end offset. Kafka does this on becoming leader so that the epoch answers
    /// OffsetForLeaderEpoch before anything is written in it. Assigning the latest
    /// epoch again is a no-op (returns `false`); an older epoch is fenced.
    pub fn assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<bool> {
        if epoch < 0 {
            return Err(LogError::InvalidRecord(format!(
                "leader epoch {epoch} is negative"
            )));
        }
        match self.epochs.latest_epoch() {
            Some(latest) if epoch < latest => {
                return Err(LogError::FencedLeaderEpoch { epoch, latest });
            }
            Some(latest) if epoch == latest => return Ok(false),
            _ => {}
        }
        let leo = self.log_end_offset();
        if start_offset != leo {
            return Err(LogError::OffsetOutOfRange(format!(
                "leader epoch {epoch} must start at the log end offset {leo}, not {start_offset}"
            )));
        }
        Ok(self
            .checkpoint_epochs([(epoch, start_offset)])?
            .is_some_and(|cache| {
                self.epochs = cache;
                true
            }))
    }

    /// Applies the leader epochs of batches about to be written at the log end, as
    /// `(epoch, base offset)`, to a copy of the cache and persists that copy if it
    /// changed; the caller installs it once the data is written.
    pub(crate) fn checkpoint_epochs(
        &self,
        batches: impl IntoIterator<Item = (i32, i64)>,
    ) -> Result<Option<LeaderEpochCache>> {
        let mut staged: Option<LeaderEpochCache> = None;
        for (epoch, base_offset) in batches {
            if staged
                .as_ref()
                .unwrap_or(&self.epochs)
                .would_change(epoch, base_offset)
            {
                staged
                    .get_or_insert_with(|| self.epochs.clone())
                    .observe(epoch, base_offset);
            }
        }
        if let Some(cache) = &staged {
            cache.save(&self.dir)?;
        }
        Ok(staged)
    }

    /// Loads the epoch checkpoint, or rebuilds it from batch headers when it is missing
    /// (a log from before epochs were tracked) or corrupt, and fits it to the log.
    pub(crate) fn load_epochs(&mut self) -> Result<()> {
        let leo = self.log_end_offset();
        let (mut cache, mut changed) = match LeaderEpochCache::load(&self.dir)? {
            // Entries past the end describe data recovery cut off. One starting exactly
            // at the end holds no data yet, like an epoch a leader assigned: it stays.
            Some(mut cache) => {
                let cut = cache.truncate_from_end(leo + 1);
                (cache, cut)
            }
            None => (self.rebuild_epochs()?, true),
        };
        changed |= cache.truncate_from_start(self.log_start_offset);
        if changed {
            cache.save(&self.dir)?;
        }
        self.epochs = cache;
        Ok(())
    }

    fn rebuild_epochs(&self) -> Result<LeaderEpochCache> {
        let mut cache = LeaderEpochCache::default();
        for seg in &self.segments {
            seg.walk_batches(0, false, |_, bytes| {
                let header = BatchHeader::new(bytes).expect("walk yields whole headers");
                cache.observe(header.partition_leader_epoch(), header.base_offset());
                Ok(Step::Continue)
            })?;
        }
        Ok(cache)
    }

    /// The high watermark: offsets below it are replicated to the whole ISR.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Sets the high watermark, clamped to `[log start, log end]`, and returns the value
    /// kept. Only memory changes: it moves on every fetch, so `flush` and `close` persist it.
    pub fn set_high_watermark(&mut self, high_watermark: i64) -> i64 {
        self.high_watermark = high_watermark.clamp(self.log_start_offset, self.log_end_offset());
        let hw = self.high_watermark;
        self.unreplicated.retain(|t| t.last_offset >= hw);
        self.high_watermark
    }

    pub(crate) fn load_high_watermark(&mut self) -> Result<()> {
        let stored = read_offset_file(&self.dir, HIGH_WATERMARK_FILE)?;
        self.persisted_high_watermark = stored;
        self.high_watermark = stored
            .unwrap_or(self.log_start_offset)
            .clamp(self.log_start_offset, self.log_end_offset());
        Ok(())
    }

    pub(crate) fn persist_high_watermark(&mut self) -> Result<()> {
        if self.persisted_high_watermark != Some(self.high_watermark) {
            write_offset_file(&self.dir, HIGH_WATERMARK_FILE, self.high_watermark)?;
            self.persisted_high_watermark = Some(self.high_watermark);
        }
        Ok(())
    }

    /// After the log start offset moved up (DeleteRecords, retention): the first epoch
    /// now starts there, and the high watermark cannot be below it.
    pub(crate) fn log_start_moved(&mut self) -> Result<()> {
        if self.epochs.truncate_from_start(self.log_start_offset) {
            self.epochs.save(&self.dir)?;
        }
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        Ok(())
    }

    /// After `truncate_to`; `reset` when it emptied the log and restarted it.
    pub(crate) fn truncated(&mut self, reset: bool) -> Result<()> {
        let changed = if reset {
            // Nothing is left for any epoch to describe (Kafka clears the cache too).
            let had = !self.epochs.entries().is_empty();
            self.epochs = LeaderEpochCache::default();
            had
        } else {
            self.epochs.truncate_from_end(self.log_end_offset())
        };
        if changed {
            self.epochs.save(&self.dir)?;
        }
        self.set_high_watermark(self.high_watermark);
        // Persisted now rather than at the next flush: after a crash a stale, higher
        // value on disk could cover offsets since rewritten with different data.
        self.persist_high_watermark()
    }
}
