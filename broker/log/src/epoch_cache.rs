//! Leader epoch cache: for each leader epoch seen in the log, the first offset written
//! in it. Followers ask the leader where their last epoch ended (OffsetForLeaderEpoch)
//! and truncate there, which is how diverged tails are found after a leader change.
//!
//! Stored as `leader-epoch-checkpoint` in Kafka's text format:
//! a version line (`0`), a count line, then one `<epoch> <start offset>` line per entry.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{IoContext, Result};
use crate::log::write_atomically;

pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";
const FORMAT_VERSION: &str = "0";

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET answer.
pub const UNDEFINED_EPOCH_END: (i32, i64) = (-1, -1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// Entries sorted by epoch and by start offset, both strictly increasing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Notes a batch of leader epoch `epoch` written at `base_offset` (the log end).
    /// Returns whether the cache changed.
    ///
    /// Entries starting at or after `base_offset` hold no data (an epoch a leader
    /// assigned but never wrote in, or one whose data was never written before a
    /// crash), so the batch supersedes them. After that a new entry is recorded only
    /// for an epoch above the latest: a batch carrying an older epoch than data
    /// already in the log is left out rather than allowed to reorder the history.
    pub fn observe(&mut self, epoch: i32, base_offset: i64) -> bool {
        if !self.would_change(epoch, base_offset) {
            return false;
        }
        self.entries.retain(|e| e.start_offset < base_offset);
        if self.latest_epoch().is_none_or(|latest| epoch > latest) {
            self.entries.push(EpochEntry {
                epoch,
                start_offset: base_offset,
            });
        }
        true
    }

    /// Whether [`LeaderEpochCache::observe`] would change anything; lets the append
    /// path skip copying the cache for the common batch in the current epoch.
    pub fn would_change(&self, epoch: i32, base_offset: i64) -> bool {
        epoch >= 0
            && self.entries.last().is_none_or(|last| {
                if last.start_offset < base_offset {
                    epoch > last.epoch
                } else {
                    // Sorted strictly by start offset, so only the last entry can
                    // start here; re-observing exactly it is no change.
                    (last.epoch, last.start_offset) != (epoch, base_offset)
                }
            })
    }

    /// Drops entries starting at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        self.entries.len() != before
    }

    /// The log now starts at `start_offset`: entries that began before it collapse into
    /// the last of them, moved up to `start_offset` (its epoch still covers that data).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_below) = below.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if below == 1 && last_below.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..below);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last_below.epoch,
                start_offset,
            },
        );
        true
    }

    /// OffsetForLeaderEpoch: (epoch, end offset) for a follower or consumer that last
    /// saw `requested`. The latest epoch ends at the log end; an older one ends where
    /// the next larger known epoch starts, reported under the largest known epoch not
    /// above it. A request below every known epoch (the history was deleted from the
    /// start) gets the first known start offset under its own epoch, as Kafka answers;
    /// above every epoch, or with no epochs, the answer is undefined.
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested < 0 {
            return UNDEFINED_EPOCH_END;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED_EPOCH_END;
        };
        match higher.checked_sub(1) {
            Some(floor) => (self.entries[floor].epoch, next.start_offset),
            None => (requested, next.start_offset),
        }
    }

    /// Loads the checkpoint; `None` when it is missing or cannot be trusted (the caller
    /// rebuilds from batch headers).
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(path = %path.display(), "leader epoch checkpoint is not text; rebuilding");
                return Ok(None);
            }
            Err(e) => return Err(e).ctx(|| format!("reading {}", path.display())),
        };
        let cache = parse(&text);
        if cache.is_none() {
            tracing::warn!(path = %path.display(), "leader epoch checkpoint is corrupt; rebuilding");
        }
        Ok(cache)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let mut text = format!("{FORMAT_VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomically(&dir.join(LEADER_EPOCH_FILE), text.as_bytes())
    }
}

fn parse(text: &str) -> Option<LeaderEpochCache> {
    let mut lines = text.lines();
    if lines.next()?.trim() != FORMAT_VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let mut fields = line.split_whitespace();
        let entry = EpochEntry {
            epoch: fields.next()?.parse().ok()?,
            start_offset: fields.next()?.parse().ok()?,
        };
        let ordered = entries
            .last()
            .is_none_or(|p| entry.epoch > p.epoch && entry.start_offset > p.start_offset);
        if fields.next().is_some() || entry.epoch < 0 || entry.start_offset < 0 || !ordered {
            return None;
        }
        entries.push(entry);
    }
    // A short file (torn write of an older format) or trailing garbage is not trusted.
    if entries.len() != count || lines.any(|l| !l.trim().is_empty()) {
        return None;
    }
    Some(LeaderEpochCache { entries })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        }
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn end_offset_for_follows_offset_for_leader_epoch() {
        let c = cache(&[(2, 10), (4, 25), (7, 40)]);
        let leo = 55;
        let table = [
            (-1, (-1, -1)),  // undefined request
            (0, (0, 10)),    // below every epoch: first known start
            (2, (2, 25)),    // known epoch: ends where the next starts
            (3, (2, 25)),    // between: the largest epoch below it
            (4, (4, 40)),    // known epoch in the middle
            (6, (4, 40)),    // between the last two
            (7, (7, 55)),    // latest: the log end
            (8, (-1, -1)),   // above every epoch
            (100, (-1, -1)), // far above
        ];
        for (requested, expected) in table {
            assert_eq!(
                c.end_offset_for(requested, leo),
                expected,
                "requested {requested}"
            );
        }
        assert_eq!(LeaderEpochCache::default().end_offset_for(0, leo), (-1, -1));
    }

    #[test]
    fn observe_records_only_newer_epochs_and_replaces_empty_ones() {
        let mut c = LeaderEpochCache::default();
        assert!(!c.observe(-1, 0), "no epoch stamped");
        assert!(c.observe(1, 0));
        assert!(!c.observe(1, 5), "same epoch");
        assert!(c.observe(3, 9));
        assert!(!c.observe(2, 12), "older epoch after newer data");
        assert_eq!(pairs(&c), vec![(1, 0), (3, 9)]);
        // Epoch 5 assigned at 20 but nothing written in it; data of epoch 4 arrives at 20.
        assert!(c.observe(5, 20));
        assert!(!c.observe(5, 20), "the same entry again");
        assert!(c.observe(4, 20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 9), (4, 20)]);
        // An older epoch over a data-less entry that leaves nothing newer to keep.
        assert!(c.observe(3, 20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 9)]);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert!(!c.truncate_from_end(21));
        assert!(c.truncate_from_end(20));
        assert_eq!(pairs(&c), vec![(1, 0), (3, 10)]);
        assert!(c.truncate_from_start(4));
        assert_eq!(pairs(&c), vec![(1, 4), (3, 10)]);
        assert!(!c.truncate_from_start(4));
        assert!(c.truncate_from_start(15));
        assert_eq!(pairs(&c), vec![(3, 15)]);
        assert!(!c.truncate_from_start(2), "never moves back");
    }

    #[test]
    fn file_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), None);
        let c = cache(&[(0, 0), (2, 17)]);
        c.save(dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
        assert_eq!(text, "0\n2\n0 0\n2 17\n");
        assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), Some(c));
        for bad in [
            "1\n1\n0 0\n",      // unknown version
            "0\n2\n0 0\n",      // count says more than there is
            "0\n1\n0 x\n",      // not a number
            "0\n2\n3 0\n2 5\n", // epochs going backwards
            "0\n1\n0 0 0\n",    // extra field
            "0\n1\n0 0\ngarbage\n",
            "",
        ] {
            fs::write(dir.path().join(LEADER_EPOCH_FILE), bad).unwrap();
            assert_eq!(LeaderEpochCache::load(dir.path()).unwrap(), None, "{bad:?}");
        }
    }
}
