//! The partition log: an ordered list of segments, the last one active.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::batch::{self, BatchHeader, BatchHeaderMut, FramingError, HEADER_LEN};
use crate::cleaner::CleanerState;
use crate::config::{LogConfig, TimestampType};
use crate::epoch_cache::LeaderEpochCache;
use crate::error::{IoContext, LogError, Result};
use crate::producer::{PendingUpdates, ProducerStateManager, SequenceCheck};
use crate::segment::{self, BatchMeta, Recovery, Segment, Step};
use crate::txn_index::{self, AbortedIndex, AbortedTxn, CompletedTxn};

const LOG_START_FILE: &str = "log-start-offset";
pub(crate) const HIGH_WATERMARK_FILE: &str = "high-watermark";
pub(crate) const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";
const CLEAN_SHUTDOWN_FILE: &str = ".clean-shutdown";

/// Who is appending: clients may not write control batches, the transaction
/// coordinator's markers are exactly that.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batches, -1 unless the topic uses LogAppendTime.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// An idempotent retry of batches already in the log: nothing was written and the
    /// offsets are the original ones.
    pub duplicate: bool,
    /// Bytes written: all of them for a leader append, 0 for a duplicate, and for a
    /// follower append the whole batches before any trailing partial one.
    pub bytes_appended: usize,
}

#[derive(Clone, Debug)]
pub struct ReadInfo {
    /// Whole stored batches; the first may start below the requested offset.
    pub records: Bytes,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactionStats {
    pub segments_cleaned: usize,
    pub records_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Sorted by base offset, never empty; the last one takes appends.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_start_offset: i64,
    pub(crate) producers: ProducerStateManager,
    pub(crate) cleaner: CleanerState,
    pub(crate) epochs: LeaderEpochCache,
    pub(crate) high_watermark: i64,
    /// What the high-watermark file holds, so `flush` only rewrites it when it moved.
    pub(crate) persisted_high_watermark: Option<i64>,
    /// Aborted transactions, persisted per segment in `.txnindex` files.
    pub(crate) aborted: AbortedIndex,
    /// Transactions whose marker is in the log but not yet below the high
    /// watermark: until it is replicated, their data is not stable.
    pub(crate) unreplicated: Vec<CompletedTxn>,
    scratch: Vec<u8>,
}

/// Writes `bytes` to `path` via a temp file and rename, so readers see old or new, never half.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let write = || -> io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().ctx(|| format!("writing {}", path.display()))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx(|| format!("syncing directory {}", dir.display()))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx(|| format!("removing {}", path.display())),
    }
}

fn parse_base(stem: &str) -> Option<i64> {
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

/// Finishes or discards what a crash interrupted and lists segment base offsets.
///
/// A `.cleaned` file is a compaction output that was never committed: the original
/// is intact, so it goes. A `.log.swap` is a committed compaction output whose final
/// rename did not happen: it replaces the `.log` (its indexes are stale, rebuilt later).
fn resolve_leftovers(dir: &Path) -> Result<Vec<i64>> {
    let mut logs = Vec::new();
    let mut indexes = Vec::new();
    let entries = fs::read_dir(dir).ctx(|| format!("listing {}", dir.display()))?;
    for entry in entries {
        let entry = entry.ctx(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if name.ends_with(".tmp") || name.ends_with(".cleaned") {
            remove_if_exists(&path)?;
        } else if let Some(base) = name.strip_suffix(".log.swap").and_then(parse_base) {
            remove_if_exists(&segment::index_path(dir, base))?;
            remove_if_exists(&segment::time_index_path(dir, base))?;
            let target = segment::log_path(dir, base);
            fs::rename(&path, &target).ctx(|| format!("completing swap of {}", path.display()))?;
            tracing::info!(segment = base, "completed an interrupted compaction swap");
            logs.push(base);
        } else if let Some(base) = name.strip_suffix(".log").and_then(parse_base) {
            logs.push(base);
        } else if let Some(base) = name
            .strip_suffix(".index")
            .or_else(|| name.strip_suffix(".timeindex"))
            .or_else(|| name.strip_suffix(".txnindex"))
            .and_then(parse_base)
        {
            indexes.push((base, path));
        }
    }
    logs.sort_unstable();
    logs.dedup();
    for (base, path) in indexes {
        if logs.binary_search(&base).is_err() {
            remove_if_exists(&path)?;
        }
    }
    Ok(logs)
}

/// Reads a one-number checkpoint file; `None` when missing or unreadable.
pub(crate) fn read_offset_file(dir: &Path, name: &str) -> Result<Option<i64>> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().parse().ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("reading {}", path.display())),
    }
}

/// Writes a one-number checkpoint file atomically.
pub(crate) fn write_offset_file(dir: &Path, name: &str, offset: i64) -> Result<()> {
    write_atomically(&dir.join(name), offset.to_string().as_bytes())
}

pub(crate) fn decode_batch(bytes: &[u8]) -> Result<Vec<Record>> {
    let mut buf = Bytes::copy_from_slice(bytes);
    RecordBatchDecoder::decode(&mut buf)
        .map(|set| set.records)
        .map_err(|e| LogError::CorruptMessage(format!("cannot decode batch: {e}")))
}

impl PartitionLog {
    /// Opens (creating if absent) the log in `dir` and recovers it.
    ///
    /// After an unclean shutdown the last segment is checked batch by batch (length,
    /// magic, CRC) and cut at the first bad one; other segments are checked from their
    /// last index entry on. Indexes that do not match the data are rebuilt. Producer
    /// state comes from the last snapshot plus a replay of the batch headers after it.
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig, now_ms: i64) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let bases = resolve_leftovers(&dir)?;
        let checkpoint = read_offset_file(&dir, LOG_START_FILE)?;
        let interval = config.index_interval_bytes;
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        for (i, &base) in bases.iter().enumerate() {
            let last = i + 1 == bases.len();
            let recovery = if last && !clean {
                Recovery::Full
            } else {
                Recovery::Tail
            };
            let (mut seg, invalid) = Segment::open(&dir, base, interval, recovery)?;
            if let Some((pos, reason)) = invalid {
                tracing::warn!(
                    dir = %dir.display(),
                    segment = base,
                    position = pos,
                    %reason,
                    "truncating the log at an invalid batch"
                );
                seg.truncate_at(pos, interval)?;
                segments.push(seg);
                // Data after a hole cannot be served in order; Kafka drops it too.
                for &later in &bases[i + 1..] {
                    tracing::warn!(
                        segment = later,
                        "deleting a segment after the truncation point"
                    );
                    remove_if_exists(&segment::log_path(&dir, later))?;
                    remove_if_exists(&segment::index_path(&dir, later))?;
                    remove_if_exists(&segment::time_index_path(&dir, later))?;
                }
                break;
            }
            segments.push(seg);
        }
        if segments.is_empty() {
            segments.push(Segment::create(&dir, checkpoint.unwrap_or(0).max(0))?);
        }
        let leo = segments.last().map_or(0, Segment::next_offset);
        let first_base = segments[0].base_offset();
        let log_start_offset = checkpoint.unwrap_or(first_base).max(first_base).min(leo);
        let cleaner = CleanerState::load(&dir)?;
        let bases: Vec<i64> = segments.iter().map(Segment::base_offset).collect();
        let mut aborted = AbortedIndex::load(&dir, &bases)?;
        let index_cut = aborted.truncate_from(leo);
        let mut log = PartitionLog {
            dir,
            config,
            segments,
            log_start_offset,
            producers: ProducerStateManager::default(),
            cleaner,
            epochs: LeaderEpochCache::default(),
            high_watermark: log_start_offset,
            persisted_high_watermark: None,
            aborted,
            unreplicated: Vec::new(),
            scratch: Vec::new(),
        };
        let replayed = log.load_producer_state()?;
        log.load_epochs()?;
        log.load_high_watermark()?;
        let hw = log.high_watermark;
        log.unreplicated.retain(|t| t.last_offset >= hw);
        if replayed || index_cut {
            log.rewrite_txn_index()?;
        }
        for seg in &mut log.segments {
            seg.flush(false)?;
        }
        remove_if_exists(&marker)?;
        let _ = now_ms;
        Ok(log)
    }

    /// Returns whether the replay found aborted transactions the index files lacked.
    fn load_producer_state(&mut self) -> Result<bool> {
        let leo = self.log_end_offset();
        let path = self.dir.join(PRODUCER_SNAPSHOT_FILE);
        let snapshot = ProducerStateManager::read_snapshot(&path)?;
        let stale = matches!(snapshot, Some((end, _)) if end > leo);
        let from = match snapshot {
            Some((end, state)) if end <= leo => {
                self.producers = state;
                end
            }
            _ => {
                self.producers.clear();
                i64::MIN
            }
        };
        let added = self.replay_producers_from(from)?;
        self.producers.expire_below(self.log_start_offset);
        if stale {
            // The snapshot describes batches recovery cut off; once the log grows past
            // its offset again it would look valid, so replace it now.
            self.producers.write_snapshot(&path, leo)?;
        }
        Ok(added)
    }

    /// Replays producer state from `from`; returns whether aborted transactions
    /// were found that the index did not hold yet.
    fn replay_producers_from(&mut self, from: i64) -> Result<bool> {
        let producers = &mut self.producers;
        let mut completed = Vec::new();
        for seg in &self.segments {
            if seg.next_offset() <= from {
                continue;
            }
            seg.walk_batches(seg.index_position(from), false, |pos, bytes| {
                let header = BatchHeader::new(bytes).expect("walk yields whole headers");
                if header.last_offset() >= from {
                    let marker = if header.is_control() && header.producer_id() >= 0 {
                        txn_index::marker_type(&seg.read_at(pos, header.total_size())?)
                    } else {
                        None
                    };
                    completed.extend(producers.replay(&header, marker));
                }
                Ok(Step::Continue)
            })?;
        }
        self.txns_completed(completed, false)
    }

    /// Records transactions ended by markers just written or replayed: aborted
    /// ones enter the index (and, with `persist`, their segment's file), all wait
    /// for the high watermark to pass their marker. Returns whether the index grew.
    pub(crate) fn txns_completed(
        &mut self,
        done: Vec<CompletedTxn>,
        persist: bool,
    ) -> Result<bool> {
        let mut added = false;
        for txn in done {
            if txn.aborted {
                let entry = AbortedTxn {
                    producer_id: txn.producer_id,
                    first_offset: txn.first_offset,
                    last_offset: txn.last_offset,
                    last_stable_offset: self.last_stable_offset(),
                };
                if self.aborted.add(entry) {
                    added = true;
                    if persist {
                        let seg = &self.segments[self.segment_index_for(txn.last_offset)];
                        AbortedIndex::persist_one(&self.dir, seg.base_offset(), &entry)?;
                    }
                }
            }
            if txn.last_offset >= self.high_watermark {
                self.unreplicated.push(txn);
            }
        }
        Ok(added)
    }

    pub(crate) fn rewrite_txn_index(&self) -> Result<()> {
        let bases: Vec<i64> = self.segments.iter().map(Segment::base_offset).collect();
        self.aborted.rewrite(&self.dir, &bases)
    }

    /// The first offset of a transaction not yet decided and replicated, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let open = self.producers.first_unstable_offset();
        let pending = self.unreplicated.iter().map(|t| t.first_offset).min();
        open.into_iter().chain(pending).min()
    }

    /// The last stable offset: read_committed consumers read below it. Every
    /// transaction with data below it is decided and its marker replicated.
    pub fn last_stable_offset(&self) -> i64 {
        self.first_unstable_offset()
            .map_or(self.high_watermark, |f| f.min(self.high_watermark))
    }

    /// Aborted transactions whose data may lie in `[from, upper)`, for a
    /// read_committed fetch.
    pub fn aborted_transactions(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.aborted.overlapping(from, upper)
    }

    /// Producers with state here (DescribeProducers).
    pub fn producer_entries(&self) -> Vec<crate::producer::ProducerEntry> {
        self.producers.entries().cloned().collect()
    }

    /// Validates every batch in `records`, checks idempotent-producer sequences, assigns
    /// offsets and appends them with one write. All or nothing.
    pub fn append(&mut self, records: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.append_with_origin(records, leader_epoch, now_ms, AppendOrigin::Client)
    }

    /// [`PartitionLog::append`] for a given origin; only the coordinator may write
    /// control batches.
    pub fn append_with_origin(
        &mut self,
        records: &[u8],
        leader_epoch: i32,
        now_ms: i64,
        origin: AppendOrigin,
    ) -> Result<AppendInfo> {
        if records.is_empty() {
            return Err(LogError::InvalidRecord("empty record set".into()));
        }
        let log_append_time = self.config.message_timestamp_type == TimestampType::LogAppendTime;
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut metas = Vec::new();
        let mut pending = PendingUpdates::default();
        let mut pos = 0usize;
        while pos < records.len() {
            let rest = &records[pos..];
            let size = batch::check_header(rest).map_err(|e| corrupt_at(pos, &e))?;
            if size > self.config.max_message_bytes {
                return Err(LogError::MessageTooLarge(format!(
                    "batch at byte {pos} is {size} bytes, above max.message.bytes {}",
                    self.config.max_message_bytes
                )));
            }
            batch::check_framing(rest, true).map_err(|e| corrupt_at(pos, &e))?;
            let bytes = &rest[..size];
            let header = BatchHeader::new(bytes).expect("framing checked");
            self.validate_batch(&header, bytes, pos, origin)?;
            let marker = header
                .is_control()
                .then(|| txn_index::marker_type(bytes))
                .flatten();
            if header.is_control() && marker.is_none() {
                return Err(LogError::InvalidRecord(format!(
                    "batch at byte {pos}: a control batch must hold a commit or abort marker"
                )));
            }
            if header.producer_id() >= 0 {
                // Markers carry no data sequence to check, nor do a coordinator's
                // transactional writes.
                let check = if header.is_control() {
                    SequenceCheck::Accept
                } else if origin == AppendOrigin::Coordinator {
                    self.producers.check_epoch(&pending, &header)?;
                    SequenceCheck::Accept
                } else {
                    self.producers.check(&pending, &header)?
                };
                if let SequenceCheck::Duplicate(dup) = check {
                    return Ok(AppendInfo {
                        base_offset: dup.first_offset,
                        last_offset: dup.last_offset,
                        log_append_time: -1,
                        log_start_offset: self.log_start_offset,
                        duplicate: true,
                        bytes_appended: 0,
                    });
                }
                self.producers.stage(&mut pending, &header, next, marker);
            }
            let last = next + i64::from(header.last_offset_delta());
            metas.push(BatchMeta {
                base_offset: next,
                last_offset: last,
                max_timestamp: if log_append_time {
                    now_ms
                } else {
                    header.max_timestamp()
                },
                size: size as u64,
            });
            next = last + 1;
            pos += size;
        }
        let epochs = self.checkpoint_epochs([(leader_epoch, first_offset)])?;
        self.maybe_roll(records.len() as u64, first_offset, next - 1, now_ms)?;

        self.scratch.clear();
        self.scratch.extend_from_slice(records);
        let mut at = 0usize;
        for meta in &metas {
            let end = at + meta.size as usize;
            let mut header =
                BatchHeaderMut::new(&mut self.scratch[at..end]).expect("validated batch");
            header.set_base_offset(meta.base_offset);
            header.set_partition_leader_epoch(leader_epoch);
            if log_append_time {
                header.set_max_timestamp(now_ms);
                header.set_log_append_time(true);
                header.update_crc();
            }
            at = end;
        }
        let interval = self.config.index_interval_bytes;
        let active = self.segments.last_mut().expect("log has a segment");
        active.append(&self.scratch, &metas, interval, now_ms)?;
        let completed = self.producers.commit(pending);
        self.txns_completed(completed, true)?;
        if let Some(epochs) = epochs {
            self.epochs = epochs;
        }
        if self.scratch.capacity() > 4 * self.config.max_message_bytes.max(1 << 20) {
            // Do not pin a one-off huge buffer for the log's lifetime.
            self.scratch = Vec::new();
        }
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: next - 1,
            log_append_time: if log_append_time { now_ms } else { -1 },
            log_start_offset: self.log_start_offset,
            duplicate: false,
            bytes_appended: records.len(),
        })
    }

    fn validate_batch(
        &self,
        header: &BatchHeader<'_>,
        bytes: &[u8],
        pos: usize,
        origin: AppendOrigin,
    ) -> Result<()> {
        if header.compression() > 4 {
            return Err(LogError::CorruptMessage(format!(
                "batch at byte {pos}: unknown compression codec {}",
                header.compression()
            )));
        }
        let count = header.records_count();
        if count < 1 {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: recordsCount {count}, a batch needs at least one record"
            )));
        }
        if i64::from(header.last_offset_delta()) + 1 != i64::from(count) {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: lastOffsetDelta {} does not match recordsCount {count}",
                header.last_offset_delta()
            )));
        }
        if header.is_control() && origin == AppendOrigin::Client {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: clients may not write control batches"
            )));
        }
        if header.producer_id() >= 0
            && (header.producer_epoch() < 0
                || (header.base_sequence() < 0 && origin == AppendOrigin::Client))
        {
            return Err(LogError::InvalidRecord(format!(
                "batch at byte {pos}: producer id {} needs a producer epoch and base sequence >= 0 (got {} and {})",
                header.producer_id(),
                header.producer_epoch(),
                header.base_sequence()
            )));
        }
        if self.config.cleanup_policy.compacts() && !header.is_control() {
            // Compacted topics key every record; this is the one case where the
            // produce path has to look inside a batch, as Kafka does.
            let records = decode_batch(bytes)
                .map_err(|e| LogError::CorruptMessage(format!("batch at byte {pos}: {e}")))?;
            if let Some(r) = records.iter().find(|r| r.key.is_none()) {
                return Err(LogError::InvalidRecord(format!(
                    "batch at byte {pos}: record at offset delta {} has a null key, which a compacted topic cannot keep",
                    r.offset - header.base_offset()
                )));
            }
        }
        Ok(())
    }

    /// Rolls before appending `incoming` bytes holding offsets `first_offset..=last_offset`
    /// if the active segment is full, old, or could not index them.
    pub(crate) fn maybe_roll(
        &mut self,
        incoming: u64,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<()> {
        let active = self.segments.last().expect("log has a segment");
        // Index entries hold offsets relative to the segment base in 32 bits.
        let offsets_due = last_offset - active.base_offset() > i64::from(i32::MAX);
        if active.is_empty() {
            if offsets_due {
                // Only a follower skipping a huge compacted gap gets here: rebase the
                // empty segment onto the incoming data instead of rolling.
                let seg = Segment::create(&self.dir, first_offset)?;
                let old = std::mem::replace(self.segments.last_mut().expect("non-empty"), seg);
                self.cleaner.forget_segment(old.base_offset());
                old.delete_files()?;
            }
            return Ok(());
        }
        let size_due = active.size() + incoming > self.config.segment_bytes
            // Index positions are 32-bit.
            || active.size() + incoming > i32::MAX as u64;
        let time_due = active
            .roll_basis_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms);
        if size_due || offsets_due || time_due {
            self.roll(first_offset)?;
        }
        Ok(())
    }

    /// Starts a new segment at `base_offset`: the log end, or above it when a follower
    /// receives data after a gap that compaction left on the leader.
    fn roll(&mut self, base_offset: i64) -> Result<()> {
        let active = self.segments.last_mut().expect("log has a segment");
        active.flush(false)?;
        let seg = Segment::create(&self.dir, base_offset)?;
        self.segments.push(seg);
        Ok(())
    }

    /// Rolls a non-empty active segment once `segment.ms` has passed since it started filling.
    pub fn roll_if_due(&mut self, now_ms: i64) -> Result<bool> {
        let active = self.segments.last().expect("log has a segment");
        let due = !active.is_empty()
            && active
                .roll_basis_ms()
                .is_some_and(|t| now_ms.saturating_sub(t) > self.config.segment_ms);
        if due {
            self.roll(self.log_end_offset())?;
        }
        Ok(due)
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    /// Whole batches from the one containing `offset`, below `max_offset` (exclusive),
    /// up to `max_bytes` but always the first batch if it is below `max_offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, max_offset: i64) -> Result<ReadInfo> {
        let leo = self.log_end_offset();
        let lso = self.log_start_offset;
        if offset < lso || offset > leo {
            return Err(LogError::OffsetOutOfRange(format!(
                "offset {offset} is outside the log [{lso}, {leo}]"
            )));
        }
        let info = |records: Bytes| ReadInfo {
            records,
            log_start_offset: lso,
            log_end_offset: leo,
        };
        if offset == leo || offset >= max_offset {
            return Ok(info(Bytes::new()));
        }
        for seg in &self.segments[self.segment_index_for(offset)..] {
            let Some((pos, head)) = seg.find_batch(offset)? else {
                continue;
            };
            let first = BatchHeader::new(&head).expect("header-sized");
            if first.last_offset() >= max_offset {
                return Ok(info(Bytes::new()));
            }
            let avail = seg.size() - pos;
            let want = (first.total_size().max(max_bytes) as u64).min(avail) as usize;
            let mut buf = seg.read_at(pos, want)?;
            let mut end = 0usize;
            while end < buf.len() {
                let Ok(size) = batch::check_header(&buf[end..]) else {
                    break;
                };
                let header = BatchHeader::new(&buf[end..]).expect("header checked");
                if end + size > buf.len()
                    || header.last_offset() >= max_offset
                    || (end > 0 && end + size > max_bytes)
                {
                    break;
                }
                end += size;
            }
            buf.truncate(end);
            return Ok(info(Bytes::from(buf)));
        }
        Ok(info(Bytes::new()))
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.segments.last().map_or(0, Segment::next_offset)
    }

    /// First record at or after the log start whose timestamp is >= `ts`, as
    /// (offset, timestamp).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>> {
        let lso = self.log_start_offset;
        for seg in &self.segments {
            if seg.next_offset() <= lso || seg.max_timestamp() < ts {
                continue;
            }
            let from = seg.time_search_start(ts).max(seg.index_position(lso));
            let mut found = None;
            seg.walk_batches(from, false, |pos, bytes| {
                let header = BatchHeader::new(bytes).expect("walk yields whole headers");
                if header.max_timestamp() < ts || header.last_offset() < lso || header.is_control()
                {
                    return Ok(Step::Continue);
                }
                let whole = seg.read_at(pos, header.total_size())?;
                let append_time = header.is_log_append_time().then(|| header.max_timestamp());
                for r in decode_batch(&whole)? {
                    let rts = append_time.unwrap_or(r.timestamp);
                    if r.offset >= lso && rts >= ts {
                        found = Some((r.offset, rts));
                        return Ok(Step::Break);
                    }
                }
                Ok(Step::Continue)
            })?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the first record carrying the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>> {
        let lso = self.log_start_offset;
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.next_offset() <= lso || seg.max_timestamp_offset() < 0 {
                continue;
            }
            if best.is_none_or(|b| seg.max_timestamp() > b.max_timestamp()) {
                best = Some(seg);
            }
        }
        let Some(seg) = best else {
            return Ok(None);
        };
        let target = seg.max_timestamp();
        let Some((pos, head)) = seg.find_batch(seg.max_timestamp_offset())? else {
            return Ok(None);
        };
        let header = BatchHeader::new(&head).expect("header-sized");
        let whole = seg.read_at(pos, header.total_size())?;
        let records = decode_batch(&whole)?;
        let hit = if header.is_log_append_time() {
            records.first()
        } else {
            records.iter().find(|r| r.timestamp == target)
        };
        Ok(hit.map(|r| (r.offset, target)))
    }

    fn write_log_start(&self) -> Result<()> {
        write_offset_file(&self.dir, LOG_START_FILE, self.log_start_offset)
    }

    /// Drops closed segments that lie wholly below the log start offset.
    fn delete_segments_below_start(&mut self) -> Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 && self.segments[1].base_offset() <= self.log_start_offset {
            self.delete_oldest_segment()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    fn delete_oldest_segment(&mut self) -> Result<()> {
        let seg = self.segments.remove(0);
        self.cleaner.forget_segment(seg.base_offset());
        seg.delete_files()
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the log end),
    /// persists it and drops segments wholly below it. Returns the log start offset.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64> {
        let leo = self.log_end_offset();
        let target = if offset == -1 { leo } else { offset };
        if target < 0 || target > leo {
            return Err(LogError::OffsetOutOfRange(format!(
                "cannot delete records before {offset}: the log ends at {leo}"
            )));
        }
        if target <= self.log_start_offset {
            return Ok(self.log_start_offset);
        }
        self.log_start_offset = target;
        self.write_log_start()?;
        self.delete_segments_below_start()?;
        self.producers.expire_below(self.log_start_offset);
        self.aborted.truncate_below(self.segments[0].base_offset());
        self.log_start_moved()?;
        Ok(self.log_start_offset)
    }

    /// Drops every record at or above `offset`. A batch straddling `offset` goes
    /// whole (batches are atomic), so the log may end below `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange(format!(
                "cannot truncate to negative offset {offset}"
            )));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.cut(offset, offset <= self.log_start_offset)
    }

    /// Drops every record and restarts the log, empty, at `offset` (which
    /// may lie above its end). For a follower that fell behind its leader's
    /// log start while away: what it lacks no longer exists anywhere, so it
    /// starts over where the leader's log begins (Kafka's
    /// truncateFullyAndStartAt).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange(format!(
                "cannot restart the log at negative offset {offset}"
            )));
        }
        self.cut(offset, true)
    }

    /// Truncation proper: `reset` empties the log and restarts it at
    /// `offset`; otherwise everything at or above `offset` goes.
    fn cut(&mut self, offset: i64, reset: bool) -> Result<()> {
        let interval = self.config.index_interval_bytes;
        if reset {
            while let Some(seg) = self.segments.pop() {
                self.cleaner.forget_segment(seg.base_offset());
                seg.delete_files()?;
            }
            self.segments.push(Segment::create(&self.dir, offset)?);
            self.log_start_offset = offset;
            self.write_log_start()?;
        } else {
            while self.segments.len() > 1
                && self
                    .segments
                    .last()
                    .is_some_and(|s| s.base_offset() >= offset)
            {
                let seg = self.segments.pop().expect("checked non-empty");
                self.cleaner.forget_segment(seg.base_offset());
                seg.delete_files()?;
            }
            let active = self.segments.last_mut().expect("log has a segment");
            if let Some((pos, _)) = active.find_batch(offset)? {
                active.truncate_at(pos, interval)?;
            }
        }
        self.cleaner.truncate(self.log_end_offset());
        self.cleaner.save(&self.dir)?;
        self.truncated(reset)?;
        self.producers.clear();
        self.unreplicated.clear();
        self.aborted.truncate_from(self.log_end_offset());
        self.replay_producers_from(i64::MIN)?;
        self.rewrite_txn_index()?;
        self.producers.expire_below(self.log_start_offset);
        // A snapshot from before the truncation would describe batches that are gone.
        self.producers.write_snapshot(
            &self.dir.join(PRODUCER_SNAPSHOT_FILE),
            self.log_end_offset(),
        )?;
        self.segments
            .last_mut()
            .expect("log has a segment")
            .flush(false)
    }

    /// Delete policy: drops closed segments older than `retention.ms` (by their largest
    /// timestamp) or beyond `retention.bytes`, oldest first, never the active one; also
    /// segments wholly below the log start offset under any policy. Returns how many
    /// segments went.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        if self.config.cleanup_policy.deletes() {
            let retention_ms = self.config.retention_ms;
            if retention_ms >= 0 {
                while self.segments.len() > 1
                    && now_ms.saturating_sub(self.segments[0].max_timestamp()) > retention_ms
                {
                    self.delete_oldest_segment()?;
                    deleted += 1;
                }
            }
            if self.config.retention_bytes >= 0 {
                let mut excess = self.size_bytes() as i64 - self.config.retention_bytes;
                while self.segments.len() > 1 && excess >= self.segments[0].size() as i64 {
                    excess -= self.segments[0].size() as i64;
                    self.delete_oldest_segment()?;
                    deleted += 1;
                }
            }
        }
        deleted += self.delete_segments_below_start()?;
        if deleted > 0 {
            let first_base = self.segments[0].base_offset();
            if first_base > self.log_start_offset {
                self.log_start_offset = first_base;
                self.write_log_start()?;
            }
            self.producers.expire_below(self.log_start_offset);
            self.aborted.truncate_below(first_base);
            self.cleaner.save(&self.dir)?;
            self.log_start_moved()?;
        }
        Ok(deleted)
    }

    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Number of segments, oldest included (for metrics and tests).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// fsyncs data and indexes and writes the producer-state snapshot and the high
    /// watermark.
    pub fn flush(&mut self) -> Result<()> {
        for seg in &mut self.segments {
            seg.flush(true)?;
        }
        self.persist_high_watermark()?;
        self.producers.write_snapshot(
            &self.dir.join(PRODUCER_SNAPSHOT_FILE),
            self.log_end_offset(),
        )
    }

    /// Flushes and marks the shutdown clean, so the next open skips the full CRC check.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        write_atomically(&self.dir.join(CLEAN_SHUTDOWN_FILE), b"")
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

pub(crate) fn corrupt_at(pos: usize, e: &FramingError) -> LogError {
    LogError::CorruptMessage(format!("batch at byte {pos}: {e}"))
}

/// Header-only batch (no records) keeping `bytes`' offsets and producer fields; what
/// compaction leaves when it empties a producer's last batch.
pub(crate) fn empty_batch_like(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes[..HEADER_LEN].to_vec();
    let mut header = BatchHeaderMut::new(&mut out).expect("header-sized");
    header.set_batch_length((HEADER_LEN - batch::LOG_OVERHEAD) as i32);
    header.set_records_count(0);
    header.set_compression(0);
    header.update_crc();
    out
}
