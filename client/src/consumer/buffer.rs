//! Records fetched but not yet handed to the application. A poll returns
//! at most `max.poll.records`; the rest wait here, and the partition's
//! position (what a commit stores) only moves past records once they are
//! returned — a crash after a poll never commits what the application did
//! not see. A partition with records waiting is not fetched again.

use std::collections::{BTreeSet, VecDeque};

use super::{ConsumerRecord, Tp};

/// One partition's share of one Fetch answer.
#[derive(Debug)]
pub(super) struct Fetched {
    pub tp: Tp,
    pub records: VecDeque<ConsumerRecord>,
    /// Where reading resumes once every record is returned: past the
    /// batch's last offset, which may lie beyond the last record (control
    /// records, aborted transactions, compacted-away offsets).
    pub next: i64,
}

/// A partition's position after a poll took records from it.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Advanced {
    pub tp: Tp,
    pub position: i64,
    /// Leader epoch of the last record returned (KIP-320), for commits.
    pub leader_epoch: Option<i32>,
}

#[derive(Debug, Default)]
pub(super) struct FetchBuffer {
    chunks: VecDeque<Fetched>,
}

impl FetchBuffer {
    pub fn push(&mut self, chunk: Fetched) {
        self.chunks.push_back(chunk);
    }

    pub fn holds(&self, tp: &Tp) -> bool {
        self.chunks.iter().any(|c| &c.tp == tp)
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Drops what waits for partitions that `keep` refuses (revoked,
    /// sought elsewhere, unassigned).
    pub fn retain(&mut self, mut keep: impl FnMut(&Tp) -> bool) {
        self.chunks.retain(|c| keep(&c.tp));
    }

    /// Up to `max` records, oldest first, skipping paused partitions (their
    /// records wait for `resume`); with the positions they move to.
    pub fn take(
        &mut self,
        max: usize,
        paused: &BTreeSet<Tp>,
    ) -> (Vec<ConsumerRecord>, Vec<Advanced>) {
        let mut out = Vec::new();
        let mut advanced = Vec::new();
        let mut i = 0;
        while i < self.chunks.len() && out.len() < max {
            let chunk = &mut self.chunks[i];
            if paused.contains(&chunk.tp) {
                i += 1;
                continue;
            }
            let n = chunk.records.len().min(max - out.len());
            let before = out.len();
            out.extend(chunk.records.drain(..n));
            let last_epoch = out[before..].last().and_then(|r| r.leader_epoch);
            if chunk.records.is_empty() {
                let chunk = self.chunks.remove(i).expect("index in range");
                advanced.push(Advanced {
                    tp: chunk.tp,
                    position: chunk.next,
                    leader_epoch: last_epoch,
                });
            } else {
                let next = chunk
                    .records
                    .front()
                    .map(|r| r.offset)
                    .unwrap_or(chunk.next);
                advanced.push(Advanced {
                    tp: chunk.tp.clone(),
                    position: next,
                    leader_epoch: last_epoch,
                });
                i += 1;
            }
        }
        (out, advanced)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(p: i32, offset: i64) -> ConsumerRecord {
        ConsumerRecord {
            topic: "t".into(),
            partition: p,
            offset,
            timestamp: 0,
            key: None,
            value: None,
            headers: Vec::new(),
            leader_epoch: Some(3),
        }
    }

    fn chunk(p: i32, offsets: std::ops::Range<i64>, next: i64) -> Fetched {
        Fetched {
            tp: ("t".into(), p),
            records: offsets.map(|o| record(p, o)).collect(),
            next,
        }
    }

    #[test]
    fn a_poll_takes_at_most_max_and_positions_stop_at_what_it_returned() {
        let mut b = FetchBuffer::default();
        b.push(chunk(0, 0..5, 7));
        b.push(chunk(1, 10..12, 12));
        let (records, advanced) = b.take(3, &BTreeSet::new());
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(
            advanced,
            [Advanced {
                tp: ("t".into(), 0),
                position: 3,
                leader_epoch: Some(3)
            }]
        );
        assert!(b.holds(&("t".into(), 0)));
        let (records, advanced) = b.take(10, &BTreeSet::new());
        assert_eq!(
            records.iter().map(|r| r.offset).collect::<Vec<_>>(),
            [3, 4, 10, 11]
        );
        // Drained: the position jumps past the batch (a control record at 5–6).
        assert_eq!(advanced[0].position, 7);
        assert_eq!(advanced[1].position, 12);
        assert!(b.is_empty());
    }

    #[test]
    fn paused_partitions_keep_their_records_until_resumed() {
        let mut b = FetchBuffer::default();
        b.push(chunk(0, 0..2, 2));
        b.push(chunk(1, 0..2, 2));
        let paused: BTreeSet<Tp> = [("t".to_string(), 0)].into();
        let (records, _) = b.take(10, &paused);
        assert!(records.iter().all(|r| r.partition == 1));
        assert!(b.holds(&("t".into(), 0)));
        let (records, _) = b.take(10, &BTreeSet::new());
        assert_eq!(records.len(), 2);
        assert!(records.iter().all(|r| r.partition == 0));
    }

    #[test]
    fn retain_drops_a_revoked_partitions_records() {
        let mut b = FetchBuffer::default();
        b.push(chunk(0, 0..2, 2));
        b.push(chunk(1, 0..2, 2));
        b.retain(|tp| tp.1 != 0);
        assert!(!b.holds(&("t".into(), 0)));
        assert_eq!(b.take(10, &BTreeSet::new()).0.len(), 2);
    }
}
