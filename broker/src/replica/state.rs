//! A partition's replication state on this broker and the pure rules that
//! move it: the high watermark, when a follower counts as caught up, which
//! followers fall out of the in-sync set and which may rejoin it. The async
//! shells (the leader's fetch handling, the ISR task, the follower fetchers)
//! only feed facts in and act on the answers.

use std::collections::BTreeMap;

/// A broker's node id.
pub type NodeId = i32;

/// What this broker is for a partition, as the metadata image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader,
    Follower {
        leader: NodeId,
    },
    /// A replica whose partition has no live leader (or is being removed):
    /// it serves neither produce nor fetch.
    Offline,
}

/// What the leader knows of one follower, from its fetches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset: the offset it asked for last. `None`
    /// until it fetched from this leader in this leader epoch.
    pub log_end_offset: Option<i64>,
    /// When the follower was last fully caught up (Kafka's lastCaughtUpTimeMs).
    pub last_caught_up_ms: i64,
    /// When the previous fetch arrived, and the leader's log end offset then.
    pub last_fetch_ms: i64,
    pub leader_end_at_last_fetch: i64,
}

/// A partition's replication state. Changed only under the partition's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    pub role: Role,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub replicas: Vec<NodeId>,
    /// The ISR as the metadata image has it (committed).
    pub isr: Vec<NodeId>,
    /// An ISR change sent to the controller and not yet seen in the image.
    pub pending_isr: Option<Vec<NodeId>>,
    /// Leader only: progress of each other replica.
    pub followers: BTreeMap<NodeId, FollowerProgress>,
    /// Leader only: the log end offset when this leader epoch began; a
    /// follower must reach it before it may rejoin the ISR.
    pub epoch_start_offset: i64,
}

impl ReplicaState {
    /// A partition this broker holds but does not lead or follow (yet).
    pub fn offline() -> Self {
        ReplicaState {
            role: Role::Offline,
            leader_epoch: -1,
            partition_epoch: -1,
            replicas: Vec::new(),
            isr: Vec::new(),
            pending_isr: None,
            followers: BTreeMap::new(),
            epoch_start_offset: 0,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The set the high watermark must wait for. While an ISR change is in
    /// flight this is the union of old and new (Kafka's "maximal ISR",
    /// KIP-497): a follower being added must count before the controller
    /// commits it, and one being removed must not be dropped from the
    /// watermark before the removal is committed.
    pub fn maximal_isr(&self) -> Vec<NodeId> {
        let mut all = self.isr.clone();
        for id in self.pending_isr.iter().flatten() {
            if !all.contains(id) {
                all.push(*id);
            }
        }
        all
    }

    /// Records a fetch by follower `node` at `fetch_offset` when the leader's
    /// log ends at `leader_end`. Returns whether the follower is now caught up.
    ///
    /// Kafka's rule: a fetch at the leader's end means caught up now; a fetch
    /// at or past where the leader's log ended at the previous fetch means
    /// the follower was caught up as of that previous fetch.
    pub fn record_follower_fetch(
        &mut self,
        node: NodeId,
        fetch_offset: i64,
        leader_end: i64,
        now_ms: i64,
    ) {
        let progress = self.followers.entry(node).or_default();
        if fetch_offset >= leader_end {
            progress.last_caught_up_ms = now_ms;
        } else if fetch_offset >= progress.leader_end_at_last_fetch {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(progress.last_fetch_ms);
        }
        progress.log_end_offset = Some(fetch_offset);
        progress.last_fetch_ms = now_ms;
        progress.leader_end_at_last_fetch = leader_end;
    }

    /// The high watermark the ISR allows: the smallest log end offset among
    /// the (maximal) ISR, the leader's own included. A member that has not
    /// fetched in this epoch holds it where it was. Never moves backwards.
    pub fn next_high_watermark(&self, me: NodeId, leader_end: i64, current_hw: i64) -> i64 {
        let mut hw = leader_end;
        for id in self.maximal_isr() {
            if id == me {
                continue;
            }
            match self.followers.get(&id).and_then(|p| p.log_end_offset) {
                Some(end) => hw = hw.min(end),
                None => return current_hw,
            }
        }
        hw.max(current_hw)
    }

    /// Followers in the ISR that have not been caught up for longer than
    /// `lag_max_ms` (Kafka's replica.lag.time.max.ms): the ISR without them,
    /// or `None` if nobody is lagging.
    pub fn shrunk_isr(&self, me: NodeId, now_ms: i64, lag_max_ms: i64) -> Option<Vec<NodeId>> {
        let keep: Vec<NodeId> = self
            .isr
            .iter()
            .copied()
            .filter(|&id| {
                id == me
                    || self
                        .followers
                        .get(&id)
                        .is_some_and(|p| now_ms - p.last_caught_up_ms <= lag_max_ms)
            })
            .collect();
        (keep.len() < self.isr.len()).then_some(keep)
    }

    /// Whether follower `node` may rejoin the ISR: it has reached the high
    /// watermark and the start of this leader epoch (so it holds nothing the
    /// new leader would make it truncate).
    pub fn may_join_isr(&self, node: NodeId, high_watermark: i64) -> bool {
        if self.isr.contains(&node) || !self.replicas.contains(&node) {
            return false;
        }
        self.followers
            .get(&node)
            .and_then(|p| p.log_end_offset)
            .is_some_and(|end| end >= high_watermark && end >= self.epoch_start_offset)
    }

    /// Starts (or continues) the given leadership. A new leader epoch forgets
    /// what followers reported to an earlier one: their offsets may be from
    /// before a truncation. Followers start "caught up now", as in Kafka, so
    /// a new leader does not shrink the ISR before anyone could fetch.
    pub fn become_leader(
        &mut self,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
        leader_end: i64,
        now_ms: i64,
    ) {
        let new_epoch = self.role != Role::Leader || self.leader_epoch != leader_epoch;
        if new_epoch {
            self.followers.clear();
            self.epoch_start_offset = leader_end;
        }
        self.followers.retain(|id, _| replicas.contains(id));
        for &id in &replicas {
            self.followers
                .entry(id)
                .or_insert_with(|| FollowerProgress {
                    log_end_offset: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: leader_end,
                });
        }
        if self.pending_isr.as_ref() == Some(&isr) || new_epoch {
            self.pending_isr = None;
        }
        self.role = Role::Leader;
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
        self.replicas = replicas;
        self.isr = isr;
    }

    /// Follows `leader` (or goes offline when there is none).
    pub fn become_follower(
        &mut self,
        leader: Option<NodeId>,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<NodeId>,
        isr: Vec<NodeId>,
    ) {
        self.role = match leader {
            Some(leader) => Role::Follower { leader },
            None => Role::Offline,
        };
        self.leader_epoch = leader_epoch;
        self.partition_epoch = partition_epoch;
        self.replicas = replicas;
        self.isr = isr;
        self.pending_isr = None;
        self.followers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leader(isr: &[NodeId]) -> ReplicaState {
        let mut s = ReplicaState::offline();
        s.become_leader(1, 1, vec![1, 2, 3], isr.to_vec(), 10, 1_000);
        s
    }

    #[test]
    fn high_watermark_waits_for_every_isr_member() {
        let mut s = leader(&[1, 2, 3]);
        // Nobody fetched yet in this epoch: the watermark stays put.
        assert_eq!(s.next_high_watermark(1, 20, 10), 10);
        s.record_follower_fetch(2, 20, 20, 1_100);
        assert_eq!(s.next_high_watermark(1, 20, 10), 10);
        s.record_follower_fetch(3, 15, 20, 1_100);
        assert_eq!(s.next_high_watermark(1, 20, 10), 15);
        s.record_follower_fetch(3, 20, 20, 1_200);
        assert_eq!(s.next_high_watermark(1, 20, 15), 20);
    }

    #[test]
    fn high_watermark_never_goes_back() {
        let mut s = leader(&[1, 2]);
        s.record_follower_fetch(2, 5, 20, 1_100);
        assert_eq!(s.next_high_watermark(1, 20, 12), 12);
    }

    #[test]
    fn a_follower_outside_the_isr_does_not_hold_the_watermark() {
        let mut s = leader(&[1, 2]);
        s.record_follower_fetch(2, 20, 20, 1_100);
        s.record_follower_fetch(3, 0, 20, 1_100);
        assert_eq!(s.next_high_watermark(1, 20, 10), 20);
    }

    #[test]
    fn a_pending_addition_holds_the_watermark() {
        let mut s = leader(&[1, 2]);
        s.record_follower_fetch(2, 20, 20, 1_100);
        s.record_follower_fetch(3, 18, 20, 1_100);
        s.pending_isr = Some(vec![1, 2, 3]);
        assert_eq!(s.next_high_watermark(1, 20, 10), 18);
    }

    #[test]
    fn lagging_followers_leave_the_isr_and_caught_up_ones_stay() {
        let mut s = leader(&[1, 2, 3]);
        s.record_follower_fetch(2, 10, 10, 5_000);
        // 3 fetches, but always behind where the leader was.
        s.record_follower_fetch(3, 2, 10, 2_000);
        s.record_follower_fetch(3, 5, 12, 5_000);
        assert_eq!(s.shrunk_isr(1, 5_000, 10_000), None);
        assert_eq!(s.shrunk_isr(1, 12_000, 10_000), Some(vec![1, 2]));
    }

    #[test]
    fn a_follower_that_reaches_the_previous_end_was_caught_up_then() {
        let mut s = leader(&[1, 2]);
        s.record_follower_fetch(2, 4, 10, 3_000);
        s.record_follower_fetch(2, 10, 15, 9_000);
        assert_eq!(s.followers[&2].last_caught_up_ms, 3_000);
        assert!(s.shrunk_isr(1, 12_000, 10_000).is_none());
        assert_eq!(s.shrunk_isr(1, 13_001, 10_000), Some(vec![1]));
    }

    #[test]
    fn rejoining_needs_the_watermark_and_the_epoch_start() {
        let mut s = leader(&[1, 2]);
        assert_eq!(s.epoch_start_offset, 10);
        s.record_follower_fetch(3, 8, 20, 1_100);
        assert!(!s.may_join_isr(3, 8), "below the epoch start");
        s.record_follower_fetch(3, 12, 20, 1_200);
        assert!(!s.may_join_isr(3, 15), "below the high watermark");
        assert!(s.may_join_isr(3, 12));
        assert!(!s.may_join_isr(2, 0), "already in the ISR");
        assert!(!s.may_join_isr(7, 0), "not a replica");
    }

    #[test]
    fn a_new_leader_epoch_forgets_follower_offsets() {
        let mut s = leader(&[1, 2]);
        s.record_follower_fetch(2, 20, 20, 1_100);
        s.become_leader(1, 2, vec![1, 2, 3], vec![1, 2], 20, 1_200);
        assert_eq!(
            s.followers[&2].log_end_offset,
            Some(20),
            "same epoch keeps it"
        );
        s.become_leader(2, 3, vec![1, 2, 3], vec![1, 2], 20, 1_300);
        assert_eq!(s.followers[&2].log_end_offset, None);
        assert_eq!(s.epoch_start_offset, 20);
    }

    #[test]
    fn the_committed_isr_clears_the_pending_change() {
        let mut s = leader(&[1, 2, 3]);
        s.pending_isr = Some(vec![1, 2]);
        s.become_leader(1, 2, vec![1, 2, 3], vec![1, 2, 3], 10, 1_100);
        assert!(
            s.pending_isr.is_some(),
            "an unrelated change keeps it pending"
        );
        s.become_leader(1, 3, vec![1, 2, 3], vec![1, 2], 10, 1_200);
        assert_eq!(s.pending_isr, None);
    }
}
