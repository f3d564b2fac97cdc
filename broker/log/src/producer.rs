//! Idempotent-producer state: per producer id its epoch and its last few batches,
//! used to drop retried duplicates and to refuse gaps in sequence numbers.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::batch::{BatchHeader, sequence_add};
use crate::error::{IoContext, LogError, Result};
use crate::txn_index::{CompletedTxn, ControlType};

/// How many recent batches per producer are remembered for duplicate detection,
/// matching the producer's `max.in.flight.requests.per.connection` limit of 5.
pub const RETAINED_BATCHES: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub batches: VecDeque<BatchMetadata>,
    /// Last offset written by this producer (data or control), to expire it with retention.
    pub last_offset: i64,
    /// First offset of this producer's transaction still open on the partition:
    /// the last stable offset cannot pass it until a marker ends it.
    #[serde(default)]
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerEntry {
    fn new(producer_id: i64, epoch: i16) -> Self {
        ProducerEntry {
            producer_id,
            epoch,
            batches: VecDeque::new(),
            last_offset: -1,
            current_txn_first_offset: None,
        }
    }

    fn record(&mut self, epoch: i16, meta: Option<BatchMetadata>, last_offset: i64) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if let Some(meta) = meta {
            self.batches.push_back(meta);
            while self.batches.len() > RETAINED_BATCHES {
                self.batches.pop_front();
            }
        }
        self.last_offset = self.last_offset.max(last_offset);
    }
}

/// Outcome of checking one batch against producer state.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data, in sequence.
    Accept,
    /// A retry of a batch already in the log.
    Duplicate(BatchMetadata),
}

#[derive(Debug, Default)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset (-> producer id), for the last stable offset.
    ongoing: BTreeMap<i64, i64>,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Log end offset when the snapshot was taken: replay starts here.
    end_offset: i64,
    producers: Vec<ProducerEntry>,
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    next_seq == sequence_add(last_seq, 1)
}

/// Changes an append would make, kept aside until the write succeeds so a
/// rejected append leaves the state untouched.
#[derive(Default)]
pub struct PendingUpdates {
    entries: HashMap<i64, ProducerEntry>,
    completed: Vec<CompletedTxn>,
}

impl ProducerStateManager {
    /// Checks `header` (a batch with producer id >= 0, not yet assigned offsets) against
    /// the committed state plus earlier batches of the same append.
    ///
    /// A producer id we hold no state for is accepted at any sequence: its state may
    /// have been expired with the segments that held it (retention, DeleteRecords),
    /// and refusing it would wedge a healthy producer. This is Kafka's rule too.
    pub fn check(
        &self,
        pending: &PendingUpdates,
        header: &BatchHeader<'_>,
    ) -> Result<SequenceCheck> {
        let pid = header.producer_id();
        let epoch = header.producer_epoch();
        let first_seq = header.base_sequence();
        let last_seq = header.last_sequence();
        let Some(entry) = pending
            .entries
            .get(&pid)
            .or_else(|| self.producers.get(&pid))
        else {
            return Ok(SequenceCheck::Accept);
        };
        if epoch < entry.epoch {
            return Err(LogError::InvalidProducerEpoch(format!(
                "producer {pid} sent epoch {epoch}, older than the current epoch {}",
                entry.epoch
            )));
        }
        if epoch > entry.epoch {
            if first_seq != 0 {
                return Err(LogError::OutOfOrderSequence(format!(
                    "producer {pid} started new epoch {epoch} at sequence {first_seq}, expected 0"
                )));
            }
            return Ok(SequenceCheck::Accept);
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(*dup));
        }
        // No remembered batch in this epoch (e.g. only a transaction marker so far)
        // means the epoch's data must start at 0.
        let last = entry.batches.back().map_or(-1, |b| b.last_seq);
        if !in_sequence(last, first_seq) {
            return Err(LogError::OutOfOrderSequence(format!(
                "producer {pid} epoch {epoch}: batch starts at sequence {first_seq}, expected {}",
                sequence_add(last, 1).max(0)
            )));
        }
        Ok(SequenceCheck::Accept)
    }

    /// A coordinator's write on a producer's behalf (transactional offsets)
    /// carries no sequence; only a fenced, older epoch is refused.
    pub fn check_epoch(&self, pending: &PendingUpdates, header: &BatchHeader<'_>) -> Result<()> {
        let pid = header.producer_id();
        let current = pending
            .entries
            .get(&pid)
            .or_else(|| self.producers.get(&pid))
            .map(|e| e.epoch);
        match current {
            Some(epoch) if header.producer_epoch() < epoch => {
                Err(LogError::InvalidProducerEpoch(format!(
                    "producer {pid} sent epoch {}, older than the current epoch {epoch}",
                    header.producer_epoch()
                )))
            }
            _ => Ok(()),
        }
    }

    /// Stages the effect of `header`, to be written at `base_offset`, into `pending`;
    /// `marker` is what a control batch says.
    pub fn stage(
        &self,
        pending: &mut PendingUpdates,
        header: &BatchHeader<'_>,
        base_offset: i64,
        marker: Option<ControlType>,
    ) {
        let entry = self.pending_entry(pending, header);
        if let Some(done) = Self::apply(entry, header, base_offset, marker) {
            pending.completed.push(done);
        }
    }

    /// The staged entry for `header`'s producer, starting from the committed one.
    fn pending_entry<'p>(
        &self,
        pending: &'p mut PendingUpdates,
        header: &BatchHeader<'_>,
    ) -> &'p mut ProducerEntry {
        let pid = header.producer_id();
        pending.entries.entry(pid).or_insert_with(|| {
            self.producers
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| ProducerEntry::new(pid, header.producer_epoch()))
        })
    }

    /// Applies one batch to its producer's entry; a marker that ends a
    /// transaction this partition saw data of returns it.
    fn apply(
        entry: &mut ProducerEntry,
        header: &BatchHeader<'_>,
        base_offset: i64,
        marker: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        let last_offset = base_offset + i64::from(header.last_offset_delta());
        // Control batches (transaction markers) carry the epoch but no data sequence.
        let meta = (!header.is_control()).then(|| BatchMetadata {
            first_seq: header.base_sequence(),
            last_seq: header.last_sequence(),
            first_offset: base_offset,
            last_offset,
        });
        entry.record(header.producer_epoch(), meta, last_offset);
        if header.is_control() {
            let kind = marker?;
            let first_offset = entry.current_txn_first_offset.take()?;
            return Some(CompletedTxn {
                producer_id: entry.producer_id,
                first_offset,
                last_offset: base_offset,
                aborted: kind == ControlType::Abort,
            });
        }
        if header.is_transactional() && entry.current_txn_first_offset.is_none() {
            entry.current_txn_first_offset = Some(base_offset);
        }
        None
    }

    /// Installs an updated entry, keeping the open-transaction index in step.
    fn install(&mut self, entry: ProducerEntry) {
        let old = self.producers.get(&entry.producer_id);
        let old_txn = old.and_then(|e| e.current_txn_first_offset);
        if old_txn != entry.current_txn_first_offset {
            if let Some(first) = old_txn {
                self.ongoing.remove(&first);
            }
            if let Some(first) = entry.current_txn_first_offset {
                self.ongoing.insert(first, entry.producer_id);
            }
        }
        self.producers.insert(entry.producer_id, entry);
    }

    /// Makes staged changes current; returns the transactions their markers ended.
    pub fn commit(&mut self, pending: PendingUpdates) -> Vec<CompletedTxn> {
        for (_, entry) in pending.entries {
            self.install(entry);
        }
        pending.completed
    }

    /// Replays a batch that is already in the log (recovery), without checks.
    pub fn replay(
        &mut self,
        header: &BatchHeader<'_>,
        marker: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        let pid = header.producer_id();
        if pid < 0 {
            return None;
        }
        let mut entry = self
            .producers
            .get(&pid)
            .cloned()
            .unwrap_or_else(|| ProducerEntry::new(pid, header.producer_epoch()));
        let done = Self::apply_unchecked(&mut entry, header, marker);
        self.install(entry);
        done
    }

    /// The first offset of the oldest transaction still open here.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.keys().next().copied()
    }

    /// Every producer with state here.
    pub fn entries(&self) -> impl Iterator<Item = &ProducerEntry> {
        self.producers.values()
    }

    /// Stages a batch the leader already accepted (replication) into `pending`: like
    /// [`ProducerStateManager::replay`], sequences and epochs are not checked, because
    /// refusing what the leader holds would only stall the follower.
    pub fn stage_replicated(
        &self,
        pending: &mut PendingUpdates,
        header: &BatchHeader<'_>,
        marker: Option<ControlType>,
    ) {
        if header.producer_id() < 0 {
            return;
        }
        let entry = self.pending_entry(pending, header);
        if let Some(done) = Self::apply_unchecked(entry, header, marker) {
            pending.completed.push(done);
        }
    }

    /// Applies a batch stored at its own base offset; one from an older producer epoch
    /// (a zombie's write the leader still took) must not roll the epoch back.
    fn apply_unchecked(
        entry: &mut ProducerEntry,
        header: &BatchHeader<'_>,
        marker: Option<ControlType>,
    ) -> Option<CompletedTxn> {
        if header.producer_epoch() >= entry.epoch {
            Self::apply(entry, header, header.base_offset(), marker)
        } else {
            None
        }
    }

    /// Forgets producers whose every write is below the log start offset: their
    /// batches are gone, so Kafka forgets them too.
    /// A producer with a transaction still open stays: its marker is yet to come.
    pub fn expire_below(&mut self, log_start_offset: i64) {
        self.producers.retain(|_, e| {
            e.last_offset >= log_start_offset || e.current_txn_first_offset.is_some()
        });
    }

    /// Forgets everything, before a full replay.
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
    }

    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Writes the snapshot atomically (temp file + rename).
    pub fn write_snapshot(&self, path: &Path, end_offset: i64) -> Result<()> {
        let mut producers: Vec<ProducerEntry> = self.producers.values().cloned().collect();
        producers.sort_by_key(|p| p.producer_id);
        let snapshot = Snapshot {
            end_offset,
            producers,
        };
        let bytes = serde_json::to_vec(&snapshot)
            .map_err(|e| LogError::CorruptStorage(format!("encoding producer snapshot: {e}")))?;
        crate::log::write_atomically(path, &bytes)
    }

    /// Loads a snapshot; `None` if absent or unreadable (the caller replays instead).
    pub fn read_snapshot(path: &Path) -> Result<Option<(i64, ProducerStateManager)>> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let Ok(snapshot) = serde_json::from_slice::<Snapshot>(&bytes) else {
            tracing::warn!(path = %path.display(), "ignoring unreadable producer snapshot");
            return Ok(None);
        };
        let mut state = ProducerStateManager::default();
        for entry in snapshot.producers {
            state.install(entry);
        }
        Ok(Some((snapshot.end_offset, state)))
    }
}
