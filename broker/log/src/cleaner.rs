//! Log compaction: keep the latest record per key in closed segments.
//!
//! Each cleanable segment is rewritten on its own (no merging of small segments),
//! keeping its base offset, so offsets never move and gaps appear instead.
//! Tombstones survive until `delete.retention.ms` after the segment holding them
//! was first cleaned; the first-cleaned time is kept per segment in
//! `cleaner-state.json` (simpler than Kafka's per-batch delete horizon, same
//! guarantee: a reader who starts within that window sees the tombstone).
//!
//! Crash safety: the output goes to `<base>.log.cleaned` (discarded on open),
//! is fsynced and renamed to `<base>.log.swap` (the commit point; completed on open),
//! then renamed over `<base>.log`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions};
use serde::{Deserialize, Serialize};

use crate::batch::{self, BatchHeader, BatchHeaderMut};
use crate::error::{IoContext, LogError, Result};
use crate::log::{CompactionStats, PartitionLog, decode_batch, empty_batch_like, sync_dir};
use crate::segment::{self, Recovery, Segment, Step};

const CLEANER_STATE_FILE: &str = "cleaner-state.json";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CleanerState {
    /// Everything below this offset has been cleaned at least once.
    first_dirty_offset: i64,
    /// Segment base offset -> when it was first cleaned.
    cleaned_at: BTreeMap<i64, i64>,
    /// Segments that still held tombstones after their last cleaning.
    with_tombstones: BTreeSet<i64>,
}

impl CleanerState {
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CLEANER_STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                tracing::warn!(path = %path.display(), "ignoring unreadable cleaner state");
                CleanerState::default()
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(CleanerState::default()),
            Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec(self)
            .map_err(|e| LogError::CorruptStorage(format!("encoding cleaner state: {e}")))?;
        crate::log::write_atomically(&dir.join(CLEANER_STATE_FILE), &bytes)
    }

    pub fn forget_segment(&mut self, base: i64) {
        self.cleaned_at.remove(&base);
        self.with_tombstones.remove(&base);
    }

    pub fn truncate(&mut self, log_end_offset: i64) {
        self.first_dirty_offset = self.first_dirty_offset.min(log_end_offset);
    }

    fn horizon_passed(&self, base: i64, now_ms: i64, delete_retention_ms: i64) -> bool {
        self.cleaned_at
            .get(&base)
            .is_some_and(|&t| now_ms >= t.saturating_add(delete_retention_ms.max(0)))
    }
}

fn compression_of(code: u8) -> Result<Compression> {
    Ok(match code {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        other => {
            return Err(LogError::CorruptStorage(format!(
                "stored batch uses unknown compression codec {other}"
            )));
        }
    })
}

/// Re-encodes the surviving records of a batch, keeping what the encoder cannot
/// know: LogAppendTime and its timestamp, the absent sequence of non-idempotent batches.
fn reencode(original: &BatchHeader<'_>, keep: &[&Record]) -> Result<Vec<u8>> {
    let options = RecordEncodeOptions {
        version: 2,
        compression: compression_of(original.compression())?,
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(&mut out, keep.iter().copied(), &options)
        .map_err(|e| LogError::CorruptStorage(format!("re-encoding a compacted batch: {e}")))?;
    let mut out = out.to_vec();
    let mut pos = 0;
    while pos < out.len() {
        let size = batch::check_header(&out[pos..])
            .map_err(|e| LogError::CorruptStorage(format!("encoder produced a bad batch: {e}")))?;
        let mut header = BatchHeaderMut::new(&mut out[pos..pos + size]).expect("checked");
        header.set_partition_leader_epoch(original.partition_leader_epoch());
        if original.is_log_append_time() {
            header.set_log_append_time(true);
            header.set_max_timestamp(original.max_timestamp());
        }
        if original.base_sequence() < 0 {
            header.set_base_sequence(original.base_sequence());
        }
        header.update_crc();
        pos += size;
    }
    Ok(out)
}

struct SegmentOutcome {
    changed: bool,
    removed: u64,
    has_tombstones: bool,
}

impl PartitionLog {
    /// Compacts the closed segments that `min.compaction.lag.ms` allows, if the dirty
    /// ratio reaches `min.cleanable.dirty.ratio` or tombstones are due for removal.
    /// Records with a null key are dropped (they cannot be appended to a compacted
    /// topic, but may predate a policy change). Transactions, as Kafka: nothing from
    /// the first unstable offset on is cleaned, aborted transactions' data is dropped
    /// (and supersedes nothing), abort markers go `delete.retention.ms` after their
    /// segment was first cleaned, commit markers stay.
    pub fn compact(&mut self, now_ms: i64) -> Result<CompactionStats> {
        let mut stats = CompactionStats::default();
        if !self.config.cleanup_policy.compacts() || self.segments.len() < 2 {
            return Ok(stats);
        }
        let lag = self.config.min_compaction_lag_ms.max(0);
        let closed = self.segments.len() - 1;
        // Nothing at or above the last stable offset is cleaned: an open
        // transaction's outcome decides which of its records count.
        let stable = self.first_unstable_offset().unwrap_or(i64::MAX);
        let end = self.segments[..closed]
            .iter()
            .position(|s| {
                (lag > 0 && s.max_timestamp() > now_ms.saturating_sub(lag))
                    || s.next_offset() > stable
            })
            .unwrap_or(closed);
        if end == 0 {
            return Ok(stats);
        }
        let first_dirty = self
            .cleaner
            .first_dirty_offset
            .max(self.segments[0].base_offset());
        let clean_end = self.segments[end].base_offset();
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        for seg in &self.segments[..end] {
            if seg.next_offset() <= first_dirty {
                clean_bytes += seg.size();
            } else {
                dirty_bytes += seg.size();
            }
        }
        let delete_retention = self.config.delete_retention_ms;
        let tombstones_due = self.segments[..end].iter().any(|s| {
            self.cleaner.with_tombstones.contains(&s.base_offset())
                && self
                    .cleaner
                    .horizon_passed(s.base_offset(), now_ms, delete_retention)
        });
        let total = clean_bytes + dirty_bytes;
        let ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let dirty_due = dirty_bytes > 0 && ratio >= self.config.min_cleanable_dirty_ratio;
        if !dirty_due && !tombstones_due {
            return Ok(stats);
        }

        // Latest offset per key in the dirty part; the clean part is already
        // deduplicated within itself. Aborted records supersede nothing.
        let aborted = AbortedRanges::of(self);
        let mut latest: HashMap<Bytes, i64> = HashMap::new();
        for seg in &self.segments[..end] {
            if seg.next_offset() <= first_dirty {
                continue;
            }
            seg.walk_batches(seg.index_position(first_dirty), true, |_, bytes| {
                let header = BatchHeader::new(bytes).expect("walk yields whole batches");
                if header.is_control()
                    || header.last_offset() < first_dirty
                    || aborted.holds(&header)
                {
                    return Ok(Step::Continue);
                }
                for r in decode_batch(bytes)? {
                    if let (Some(key), true) = (r.key, r.offset >= first_dirty) {
                        latest.insert(key, r.offset);
                    }
                }
                Ok(Step::Continue)
            })?;
        }

        for i in 0..end {
            let base = self.segments[i].base_offset();
            let horizon_passed = self.cleaner.horizon_passed(base, now_ms, delete_retention);
            let before = self.segments[i].size();
            let outcome = self.clean_segment(i, &latest, &aborted, horizon_passed)?;
            self.cleaner.cleaned_at.entry(base).or_insert(now_ms);
            if outcome.has_tombstones {
                self.cleaner.with_tombstones.insert(base);
            } else {
                self.cleaner.with_tombstones.remove(&base);
            }
            if outcome.changed {
                stats.segments_cleaned += 1;
                stats.records_removed += outcome.removed;
                stats.bytes_before += before;
                stats.bytes_after += self.segments[i].size();
            }
        }
        self.cleaner.first_dirty_offset = self.cleaner.first_dirty_offset.max(clean_end);
        self.cleaner.save(&self.dir)?;
        if stats.segments_cleaned > 0 {
            tracing::debug!(dir = %self.dir.display(), ?stats, "compacted");
        }
        Ok(stats)
    }

    fn clean_segment(
        &mut self,
        i: usize,
        latest: &HashMap<Bytes, i64>,
        aborted: &AbortedRanges,
        drop_tombstones: bool,
    ) -> Result<SegmentOutcome> {
        let base = self.segments[i].base_offset();
        let dir = self.dir.clone();
        let cleaned_path = segment::log_path(&dir, base).with_extension("log.cleaned");
        let file = fs::File::create(&cleaned_path)
            .ctx(|| format!("creating {}", cleaned_path.display()))?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut outcome = SegmentOutcome {
            changed: false,
            removed: 0,
            has_tombstones: false,
        };
        let producers = &self.producers;
        let write = |out: &mut BufWriter<fs::File>, bytes: &[u8]| {
            out.write_all(bytes)
                .ctx(|| format!("writing {}", cleaned_path.display()))
        };
        self.segments[i].walk_batches(0, true, |_, bytes| {
            let header = BatchHeader::new(bytes).expect("walk yields whole batches");
            if header.is_control() {
                // An abort marker outlives its transaction's data (dropped
                // below) by delete.retention.ms, like a tombstone; commit
                // markers stay, since the data they vouch for may.
                let abort = crate::txn_index::marker_type(bytes) == Some(crate::ControlType::Abort);
                if abort && drop_tombstones {
                    outcome.changed = true;
                    outcome.removed += 1;
                } else {
                    outcome.has_tombstones |= abort;
                    write(&mut out, bytes)?;
                }
                return Ok(Step::Continue);
            }
            if aborted.holds(&header) {
                outcome.changed = true;
                outcome.removed += header.records_count().max(0) as u64;
                return Ok(Step::Continue);
            }
            let records = decode_batch(bytes)?;
            let keep: Vec<&Record> = records
                .iter()
                .filter(|r| {
                    let Some(key) = &r.key else { return false };
                    let superseded = latest.get(key).is_some_and(|&o| o > r.offset);
                    let expired_tombstone = r.value.is_none() && drop_tombstones;
                    !superseded && !expired_tombstone
                })
                .collect();
            outcome.has_tombstones |= keep.iter().any(|r| r.value.is_none());
            if keep.len() == records.len() {
                write(&mut out, bytes)?;
                return Ok(Step::Continue);
            }
            outcome.changed = true;
            outcome.removed += (records.len() - keep.len()) as u64;
            if !keep.is_empty() {
                write(&mut out, &reencode(&header, &keep)?)?;
            } else if header.records_count() > 0
                && header.producer_id() >= 0
                && producers
                    .get(header.producer_id())
                    .is_some_and(|p| p.last_offset == header.last_offset())
            {
                // The producer's latest batch: keep its header so that a replay
                // of the log still knows the producer's last sequence.
                write(&mut out, &empty_batch_like(bytes))?;
            }
            Ok(Step::Continue)
        })?;
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .ctx(|| format!("writing {}", cleaned_path.display()))?;
        if !outcome.changed {
            drop(file);
            fs::remove_file(&cleaned_path)
                .ctx(|| format!("removing {}", cleaned_path.display()))?;
            return Ok(outcome);
        }
        file.sync_all()
            .ctx(|| format!("syncing {}", cleaned_path.display()))?;
        drop(file);
        self.swap_in(i, &cleaned_path)?;
        Ok(outcome)
    }

    /// Replaces segment `i` with the fully written file at `cleaned`.
    fn swap_in(&mut self, i: usize, cleaned: &Path) -> Result<()> {
        let base = self.segments[i].base_offset();
        let dir = self.dir.clone();
        let log = segment::log_path(&dir, base);
        let swap = log.with_extension("log.swap");
        fs::rename(cleaned, &swap).ctx(|| format!("renaming {}", cleaned.display()))?;
        sync_dir(&dir)?;
        // Stale indexes must not outlive the old data; they are rebuilt below.
        for path in [
            segment::index_path(&dir, base),
            segment::time_index_path(&dir, base),
        ] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).ctx(|| format!("removing {}", path.display())),
            }
        }
        fs::rename(&swap, &log).ctx(|| format!("renaming {}", swap.display()))?;
        sync_dir(&dir)?;
        let (mut seg, invalid) =
            Segment::open(&dir, base, self.config.index_interval_bytes, Recovery::Full)?;
        if let Some((pos, reason)) = invalid {
            return Err(LogError::CorruptStorage(format!(
                "compacted segment {base} is invalid at byte {pos}: {reason}"
            )));
        }
        seg.flush(true)?;
        self.segments[i] = seg;
        Ok(())
    }
}

/// The data of aborted transactions, per producer: `[first, marker)` offsets.
struct AbortedRanges(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedRanges {
    fn of(log: &PartitionLog) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in log.aborted_transactions(i64::MIN, i64::MAX) {
            by_producer
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedRanges(by_producer)
    }

    /// Whether `header` is a data batch of an aborted transaction.
    fn holds(&self, header: &BatchHeader<'_>) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.0.get(&header.producer_id()).is_some_and(|ranges| {
                let at = header.base_offset();
                ranges.iter().any(|&(first, last)| at >= first && at < last)
            })
    }
}
