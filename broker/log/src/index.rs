//! Sparse offset and time indexes, kept in memory for lookups and persisted
//! as Kafka-shaped files. A persisted index is only a hint: recovery checks it
//! and rebuilds whatever it cannot trust.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// `.index` entries: (offset relative to the segment base, byte position of a batch
/// whose base offset is exactly that offset).
#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
    persisted: usize,
    rewrite: bool,
}

/// `.timeindex` entries: (max timestamp of everything before the batch, that batch's
/// relative base offset). So every record below the entry's offset has a timestamp
/// <= the entry's timestamp.
#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
    persisted: usize,
    rewrite: bool,
}

const OFFSET_ENTRY: usize = 8;
const TIME_ENTRY: usize = 12;

fn read_optional(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Appends `new` to the file when it already holds exactly `persisted` entries,
/// otherwise rewrites it from `all` (after truncation or a torn write).
fn persist(path: &Path, all: &[u8], new_from: usize, rewrite: bool, fsync: bool) -> io::Result<()> {
    let current = match fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut file = if !rewrite && current == Some(new_from as u64) {
        let mut f = OpenOptions::new().append(true).open(path)?;
        f.write_all(&all[new_from..])?;
        f
    } else {
        let mut f = File::create(path)?;
        f.write_all(all)?;
        f
    };
    if fsync {
        file.flush()?;
        file.sync_data()?;
    }
    Ok(())
}

impl OffsetIndex {
    /// Loads entries, keeping only the prefix that is strictly increasing and whose
    /// positions lie inside a segment of `segment_size` bytes.
    pub fn load(path: &Path, segment_size: u64) -> io::Result<Self> {
        let bytes = read_optional(path)?;
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY);
        let mut clean = bytes.len() % OFFSET_ENTRY == 0;
        for chunk in bytes.chunks_exact(OFFSET_ENTRY) {
            let rel = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            let pos = u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let ordered = entries.last().is_none_or(|&(r, p)| rel > r && pos > p);
            if !ordered || u64::from(pos) >= segment_size {
                clean = false;
                break;
            }
            entries.push((rel, pos));
        }
        let persisted = entries.len();
        Ok(OffsetIndex {
            entries,
            persisted,
            rewrite: !clean,
        })
    }

    pub fn push(&mut self, rel: u32, pos: u32) {
        self.entries.push((rel, pos));
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    /// The greatest entry at or below `rel`.
    pub fn floor(&self, rel: u32) -> Option<(u32, u32)> {
        let idx = self.entries.partition_point(|&(r, _)| r <= rel);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.rewrite = true;
    }

    #[cfg(test)]
    pub fn entries_len(&self) -> usize {
        self.entries.len()
    }

    pub fn persist(&mut self, path: &Path, fsync: bool) -> io::Result<()> {
        if !self.rewrite && self.persisted == self.entries.len() && !fsync {
            return Ok(());
        }
        let mut all = Vec::with_capacity(self.entries.len() * OFFSET_ENTRY);
        for &(rel, pos) in &self.entries {
            all.extend_from_slice(&rel.to_be_bytes());
            all.extend_from_slice(&pos.to_be_bytes());
        }
        let from = (self.persisted * OFFSET_ENTRY).min(all.len());
        persist(path, &all, from, self.rewrite, fsync)?;
        self.persisted = self.entries.len();
        self.rewrite = false;
        Ok(())
    }
}

impl TimeIndex {
    /// Loads entries, keeping the prefix with strictly increasing timestamps and offsets.
    pub fn load(path: &Path) -> io::Result<Self> {
        let bytes = read_optional(path)?;
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY);
        let mut clean = bytes.len() % TIME_ENTRY == 0;
        for chunk in bytes.chunks_exact(TIME_ENTRY) {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&chunk[..8]);
            let ts = i64::from_be_bytes(ts);
            let rel = u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]);
            if !entries.last().is_none_or(|&(t, r)| ts > t && rel > r) {
                clean = false;
                break;
            }
            entries.push((ts, rel));
        }
        let persisted = entries.len();
        Ok(TimeIndex {
            entries,
            persisted,
            rewrite: !clean,
        })
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries.last().copied()
    }

    /// Adds an entry if it raises the timestamp.
    pub fn maybe_push(&mut self, ts: i64, rel: u32) {
        if self.entries.last().is_none_or(|&(t, r)| ts > t && rel > r) {
            self.entries.push((ts, rel));
        }
    }

    /// The last entry whose timestamp is strictly below `ts`: everything before its
    /// offset is older than `ts`, so a search can start there.
    pub fn last_below(&self, ts: i64) -> Option<(i64, u32)> {
        let idx = self.entries.partition_point(|&(t, _)| t < ts);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries whose offset is at or above `rel`.
    pub fn truncate_to_offset(&mut self, rel: u32) {
        let keep = self.entries.partition_point(|&(_, r)| r < rel);
        if keep < self.entries.len() {
            self.entries.truncate(keep);
            self.rewrite = true;
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.rewrite = true;
    }

    pub fn persist(&mut self, path: &Path, fsync: bool) -> io::Result<()> {
        if !self.rewrite && self.persisted == self.entries.len() && !fsync {
            return Ok(());
        }
        let mut all = Vec::with_capacity(self.entries.len() * TIME_ENTRY);
        for &(ts, rel) in &self.entries {
            all.extend_from_slice(&ts.to_be_bytes());
            all.extend_from_slice(&rel.to_be_bytes());
        }
        let from = (self.persisted * TIME_ENTRY).min(all.len());
        persist(path, &all, from, self.rewrite, fsync)?;
        self.persisted = self.entries.len();
        self.rewrite = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_index_round_trips_and_drops_bad_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 100);
        idx.persist(&path, false).unwrap();
        idx.push(20, 200);
        idx.persist(&path, true).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), 24);
        let loaded = OffsetIndex::load(&path, 1000).unwrap();
        assert_eq!(loaded.entries, vec![(0, 0), (10, 100), (20, 200)]);
        assert_eq!(loaded.floor(15), Some((10, 100)));
        assert_eq!(loaded.floor(9), Some((0, 0)));
        // A position past the segment end is not trusted, nor anything after it.
        let loaded = OffsetIndex::load(&path, 150).unwrap();
        assert_eq!(loaded.entries, vec![(0, 0), (10, 100)]);
        assert!(loaded.rewrite);
    }

    #[test]
    fn time_index_lookup_is_strictly_below() {
        let mut idx = TimeIndex::default();
        idx.maybe_push(100, 5);
        idx.maybe_push(90, 6); // not increasing: ignored
        idx.maybe_push(200, 10);
        assert_eq!(idx.last_below(100), None);
        assert_eq!(idx.last_below(101), Some((100, 5)));
        assert_eq!(idx.last_below(1000), Some((200, 10)));
    }
}
