//! A group's committed offsets, whatever the group's type: classic and
//! consumer groups (and a group id that changes type) share them, so they
//! live beside the group rather than inside it.

use std::collections::{BTreeMap, HashSet};

/// A committed offset as the group holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Set by an OffsetCommit v2–v4 `retention_time_ms`: this offset
    /// expires then, instead of by `offsets.retention.minutes`.
    pub expire_timestamp_ms: Option<i64>,
}

/// Which of its offsets a group lets expire (KIP-211), as its type and
/// state decide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retention {
    /// An empty group: offsets expire `offsets.retention.minutes` after
    /// `since` (when it became empty), or after their commit when the group
    /// never had members to become empty from.
    Empty { since: Option<i64> },
    /// A group with members keeps the offsets of the topics it subscribes
    /// to; others expire by commit time.
    KeepSubscribed(HashSet<String>),
    /// Nothing expires (a group mid-rebalance, or one whose subscriptions
    /// cannot be read).
    KeepAll,
}

#[derive(Debug, Clone, Default)]
pub struct GroupOffsets {
    committed: BTreeMap<(String, i32), CommittedOffset>,
}

impl GroupOffsets {
    pub fn put(&mut self, topic: &str, partition: i32, offset: CommittedOffset) {
        self.committed.insert((topic.to_owned(), partition), offset);
    }

    pub fn remove(&mut self, topic: &str, partition: i32) -> Option<CommittedOffset> {
        self.committed.remove(&(topic.to_owned(), partition))
    }

    pub fn get(&self, topic: &str, partition: i32) -> Option<&CommittedOffset> {
        self.committed.get(&(topic.to_owned(), partition))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&(String, i32), &CommittedOffset)> {
        self.committed.iter()
    }

    pub fn len(&self) -> usize {
        self.committed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.committed.is_empty()
    }

    /// The offsets due to expire at `now_ms` under `retention`, with
    /// `retention_ms` = `offsets.retention.minutes`. An offset committed
    /// with an explicit retention expires at that time.
    pub fn expired(
        &self,
        now_ms: i64,
        retention_ms: i64,
        retention: &Retention,
    ) -> Vec<(String, i32)> {
        let due = |o: &CommittedOffset, base: i64| match o.expire_timestamp_ms {
            Some(at) => now_ms >= at,
            None => now_ms.saturating_sub(base) >= retention_ms,
        };
        self.committed
            .iter()
            .filter(|((topic, _), o)| match retention {
                Retention::Empty { since } => due(o, since.unwrap_or(o.commit_timestamp_ms)),
                Retention::KeepSubscribed(subscribed) => {
                    !subscribed.contains(topic) && due(o, o.commit_timestamp_ms)
                }
                Retention::KeepAll => false,
            })
            .map(|(key, _)| key.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(commit_ms: i64, expire: Option<i64>) -> CommittedOffset {
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: commit_ms,
            expire_timestamp_ms: expire,
        }
    }

    fn offsets() -> GroupOffsets {
        let mut o = GroupOffsets::default();
        o.put("a", 0, at(0, None));
        o.put("b", 0, at(50, None));
        o.put("c", 0, at(90, Some(95)));
        o
    }

    #[test]
    fn empty_group_counts_from_when_it_emptied_else_from_each_commit() {
        let o = offsets();
        assert_eq!(
            o.expired(100, 60, &Retention::Empty { since: None }),
            vec![("a".into(), 0), ("c".into(), 0)]
        );
        assert_eq!(
            o.expired(100, 60, &Retention::Empty { since: Some(80) }),
            vec![("c".into(), 0)],
            "emptied at 80: only the explicit retention is due"
        );
        assert_eq!(
            o.expired(140, 60, &Retention::Empty { since: Some(80) })
                .len(),
            3
        );
    }

    #[test]
    fn members_keep_subscribed_topics_and_mid_rebalance_keeps_all() {
        let o = offsets();
        let keep = Retention::KeepSubscribed(["a".to_owned()].into());
        assert_eq!(
            o.expired(1000, 60, &keep),
            vec![("b".into(), 0), ("c".into(), 0)]
        );
        assert!(o.expired(1000, 60, &Retention::KeepAll).is_empty());
    }
}
