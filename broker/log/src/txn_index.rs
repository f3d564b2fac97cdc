//! Transactions as the log sees them: control records (commit/abort markers),
//! the aborted-transactions index that read_committed fetches return, and the
//! transactions still open, which hold the last stable offset back.
//!
//! The aborted index is kept per segment in `<base>.txnindex`, Kafka's layout:
//! 34-byte entries `[version i16 = 0, producer id i64, first offset i64,
//! last offset i64, last stable offset i64]`, big-endian. Each entry is written
//! (and synced) when its abort marker is appended; on open the files are read
//! back and whatever the producer-state replay finds beyond them is added.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::segment::file_stem;

const ENTRY_LEN: usize = 34;
const ENTRY_VERSION: i16 = 0;

pub fn txn_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{}.txnindex", file_stem(base_offset)))
}

/// What a control record says: the transaction's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

impl ControlType {
    /// The type in a control record's key (`[version i16, type i16]`); other
    /// control types (KRaft's) end no transaction.
    pub fn from_key(key: &[u8]) -> Option<Self> {
        if key.len() < 4 {
            return None;
        }
        match i16::from_be_bytes([key[2], key[3]]) {
            0 => Some(ControlType::Abort),
            1 => Some(ControlType::Commit),
            _ => None,
        }
    }

    pub fn key(self) -> [u8; 4] {
        let kind: i16 = match self {
            ControlType::Abort => 0,
            ControlType::Commit => 1,
        };
        let [a, b] = kind.to_be_bytes();
        [0, 0, a, b]
    }
}

/// The marker type of a whole control batch, `None` for one that ends no
/// transaction or cannot be read.
pub(crate) fn marker_type(batch: &[u8]) -> Option<ControlType> {
    let records = crate::log::decode_batch(batch).ok()?;
    ControlType::from_key(records.first()?.key.as_deref()?)
}

/// A transaction whose marker reached this partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// First offset the transaction wrote here.
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// One aborted transaction, as read_committed consumers need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&ENTRY_VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        (b.len() == ENTRY_LEN && i16::from_be_bytes([b[0], b[1]]) == ENTRY_VERSION).then(|| {
            AbortedTxn {
                producer_id: i64_at(2),
                first_offset: i64_at(10),
                last_offset: i64_at(18),
                last_stable_offset: i64_at(26),
            }
        })
    }
}

/// Every aborted transaction of the log, ordered by marker offset.
#[derive(Debug, Default)]
pub struct AbortedIndex {
    entries: Vec<AbortedTxn>,
}

impl AbortedIndex {
    /// Reads the index files of the segments starting at `bases` (ascending);
    /// a torn trailing entry is dropped.
    pub fn load(dir: &Path, bases: &[i64]) -> Result<Self> {
        let mut entries = Vec::new();
        for &base in bases {
            let path = txn_index_path(dir, base);
            let bytes = match fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
            };
            entries.extend(bytes.chunks_exact(ENTRY_LEN).filter_map(AbortedTxn::decode));
        }
        entries.sort_by_key(|e| e.last_offset);
        entries.dedup_by_key(|e| e.last_offset);
        Ok(AbortedIndex { entries })
    }

    /// Adds an entry unless the index already holds it (markers come in offset
    /// order, so anything at or below the newest marker is known). Returns
    /// whether it was added.
    pub fn add(&mut self, entry: AbortedTxn) -> bool {
        if self
            .entries
            .last()
            .is_some_and(|last| last.last_offset >= entry.last_offset)
        {
            return false;
        }
        self.entries.push(entry);
        true
    }

    /// Appends `entry` to the file of the segment holding its marker.
    pub fn persist_one(dir: &Path, segment_base: i64, entry: &AbortedTxn) -> Result<()> {
        let path = txn_index_path(dir, segment_base);
        let mut bytes = Vec::with_capacity(ENTRY_LEN);
        entry.encode(&mut bytes);
        let write = || -> io::Result<()> {
            let mut f = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            f.write_all(&bytes)?;
            f.sync_data()
        };
        write().ctx(|| format!("writing {}", path.display()))
    }

    /// Rewrites every segment's file from memory (after truncation or recovery
    /// changed the entries); `bases` are the segments' base offsets, ascending.
    pub fn rewrite(&self, dir: &Path, bases: &[i64]) -> Result<()> {
        for (i, &base) in bases.iter().enumerate() {
            let end = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let mut bytes = Vec::new();
            for e in self
                .entries
                .iter()
                .filter(|e| e.last_offset >= base && e.last_offset < end)
            {
                e.encode(&mut bytes);
            }
            let path = txn_index_path(dir, base);
            if bytes.is_empty() {
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).ctx(|| format!("removing {}", path.display())),
                }
            } else {
                crate::log::write_atomically(&path, &bytes)?;
            }
        }
        Ok(())
    }

    /// Drops entries whose marker is at or above `end` (truncation, recovery).
    pub fn truncate_from(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.last_offset < end);
        before != self.entries.len()
    }

    /// Drops entries whose marker lies below `start` (their segments are gone).
    pub fn truncate_below(&mut self, start: i64) {
        self.entries.retain(|e| e.last_offset >= start);
    }

    /// Aborted transactions a fetch of `[from, upper)` must tell the consumer
    /// about: those whose data may lie in that range.
    pub fn overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.entries
            .iter()
            .filter(|e| e.last_offset >= from && e.first_offset < upper)
            .copied()
            .collect()
    }

    #[cfg(test)]
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: first,
        }
    }

    #[test]
    fn files_round_trip_and_a_torn_entry_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        AbortedIndex::persist_one(dir.path(), 0, &txn(7, 3, 9)).unwrap();
        AbortedIndex::persist_one(dir.path(), 100, &txn(8, 101, 120)).unwrap();
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(txn_index_path(dir.path(), 100))
            .unwrap();
        f.write_all(&[0, 0, 1, 2, 3]).unwrap();
        let index = AbortedIndex::load(dir.path(), &[0, 100]).unwrap();
        assert_eq!(index.entries(), &[txn(7, 3, 9), txn(8, 101, 120)]);
    }

    #[test]
    fn overlapping_picks_transactions_whose_data_may_be_in_range() {
        let mut index = AbortedIndex::default();
        assert!(index.add(txn(1, 0, 5)));
        assert!(index.add(txn(2, 3, 12)));
        assert!(index.add(txn(3, 20, 25)));
        assert!(
            !index.add(txn(4, 1, 12)),
            "a marker already known is not added twice"
        );
        let pids = |v: Vec<AbortedTxn>| v.iter().map(|e| e.producer_id).collect::<Vec<_>>();
        assert_eq!(pids(index.overlapping(6, 20)), vec![2]);
        assert_eq!(pids(index.overlapping(0, 4)), vec![1, 2]);
        assert_eq!(pids(index.overlapping(13, 30)), vec![3]);
        assert!(index.truncate_from(12));
        assert_eq!(pids(index.overlapping(0, 100)), vec![1]);
    }

    #[test]
    fn rewrite_splits_entries_by_segment_and_removes_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut index = AbortedIndex::default();
        index.add(txn(1, 0, 5));
        index.add(txn(2, 40, 60));
        AbortedIndex::persist_one(dir.path(), 100, &txn(9, 100, 110)).unwrap();
        index.rewrite(dir.path(), &[0, 50, 100]).unwrap();
        assert_eq!(
            AbortedIndex::load(dir.path(), &[0]).unwrap().entries(),
            &[txn(1, 0, 5)]
        );
        assert_eq!(
            AbortedIndex::load(dir.path(), &[50]).unwrap().entries(),
            &[txn(2, 40, 60)]
        );
        assert!(!txn_index_path(dir.path(), 100).exists());
    }
}
