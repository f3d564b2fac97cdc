//! Incremental fetch sessions (KIP-227), one per leader: after a full
//! Fetch that opens the session, a request names only the partitions whose
//! fetch offset or leader epoch changed since the broker last heard of them,
//! and the ones to forget; the broker answers only partitions with news.
//! With many partitions and little traffic this keeps both the requests and
//! the answers small.

use std::collections::BTreeMap;

use super::Tp;

/// What one Fetch of a partition asks: (fetch offset, current leader epoch).
pub(super) type Wanted = BTreeMap<Tp, (i64, i32)>;

/// The session fields and partitions of one Fetch request.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SessionRequest {
    pub session_id: i32,
    pub epoch: i32,
    pub send: Vec<(Tp, i64, i32)>,
    pub forget: Vec<Tp>,
}

/// Epoch -1: a Fetch outside any session (brokers before Fetch v7).
const SESSIONLESS: i32 = -1;
/// Epoch 0: open a new session with exactly the partitions sent.
const OPEN: i32 = 0;

#[derive(Debug, Default)]
pub(super) struct FetchSession {
    /// 0: none open (the next request is full).
    id: i32,
    next_epoch: i32,
    /// The partitions as the broker's session holds them.
    known: Wanted,
    /// What `known` becomes once the request in flight succeeds.
    pending: Option<(Wanted, bool)>,
}

impl FetchSession {
    /// The request for `wanted`. `sessions` is false for a broker too old
    /// to keep sessions.
    pub fn request(&mut self, wanted: &Wanted, sessions: bool) -> SessionRequest {
        let everything = || {
            wanted
                .iter()
                .map(|(tp, (o, e))| (tp.clone(), *o, *e))
                .collect()
        };
        if !sessions {
            self.reset();
            return SessionRequest {
                session_id: 0,
                epoch: SESSIONLESS,
                send: everything(),
                forget: Vec::new(),
            };
        }
        if self.id == 0 {
            self.pending = Some((wanted.clone(), true));
            return SessionRequest {
                session_id: 0,
                epoch: OPEN,
                send: everything(),
                forget: Vec::new(),
            };
        }
        let send = wanted
            .iter()
            .filter(|(tp, state)| self.known.get(*tp) != Some(state))
            .map(|(tp, (o, e))| (tp.clone(), *o, *e))
            .collect();
        let forget = self
            .known
            .keys()
            .filter(|tp| !wanted.contains_key(*tp))
            .cloned()
            .collect();
        self.pending = Some((wanted.clone(), false));
        SessionRequest {
            session_id: self.id,
            epoch: self.next_epoch,
            send,
            forget,
        }
    }

    /// The broker answered without a top-level error; `session_id` is the
    /// one it gave (0: it keeps none for us).
    pub fn answered(&mut self, session_id: i32) {
        let Some((wanted, opening)) = self.pending.take() else {
            return;
        };
        if opening {
            self.id = session_id;
            self.next_epoch = 1;
        } else {
            self.next_epoch = if self.next_epoch == i32::MAX {
                1
            } else {
                self.next_epoch + 1
            };
        }
        if self.id == 0 {
            self.known.clear();
        } else {
            self.known = wanted;
        }
    }

    /// The request failed or the broker lost the session (an unknown
    /// session id, a wrong epoch): the next request opens a new one.
    pub fn reset(&mut self) {
        *self = FetchSession::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(parts: &[(i32, i64)]) -> Wanted {
        parts
            .iter()
            .map(|(p, o)| (("t".to_string(), *p), (*o, 0)))
            .collect()
    }

    #[test]
    fn after_opening_only_changed_partitions_are_sent_and_dropped_ones_forgotten() {
        let mut s = FetchSession::default();
        let first = s.request(&wanted(&[(0, 5), (1, 7), (2, 9)]), true);
        assert_eq!((first.session_id, first.epoch, first.send.len()), (0, 0, 3));
        s.answered(42);

        // Partition 0 moved on; 1 and 2 did not; nothing to forget.
        let second = s.request(&wanted(&[(0, 8), (1, 7), (2, 9)]), true);
        assert_eq!((second.session_id, second.epoch), (42, 1));
        assert_eq!(second.send, vec![(("t".into(), 0), 8, 0)]);
        assert!(second.forget.is_empty());
        s.answered(42);

        // Partition 2 is no longer fetched (paused, revoked): forgotten.
        let third = s.request(&wanted(&[(0, 8), (1, 7)]), true);
        assert_eq!(third.epoch, 2);
        assert!(third.send.is_empty());
        assert_eq!(third.forget, vec![("t".to_string(), 2)]);
    }

    #[test]
    fn a_failed_request_opens_a_new_session_with_everything() {
        let mut s = FetchSession::default();
        s.request(&wanted(&[(0, 5)]), true);
        s.answered(42);
        s.request(&wanted(&[(0, 6)]), true);
        s.reset();
        let again = s.request(&wanted(&[(0, 6), (1, 0)]), true);
        assert_eq!((again.session_id, again.epoch, again.send.len()), (0, 0, 2));
    }

    #[test]
    fn a_broker_that_keeps_no_session_gets_full_requests() {
        let mut s = FetchSession::default();
        s.request(&wanted(&[(0, 5)]), true);
        s.answered(0);
        let next = s.request(&wanted(&[(0, 5)]), true);
        assert_eq!((next.session_id, next.epoch, next.send.len()), (0, 0, 1));
        let old = s.request(&wanted(&[(0, 5)]), false);
        assert_eq!((old.session_id, old.epoch, old.send.len()), (0, -1, 1));
    }

    #[test]
    fn the_epoch_wraps_to_one() {
        let mut s = FetchSession::default();
        s.request(&wanted(&[(0, 5)]), true);
        s.answered(42);
        s.next_epoch = i32::MAX;
        assert_eq!(s.request(&wanted(&[(0, 5)]), true).epoch, i32::MAX);
        s.answered(42);
        assert_eq!(s.request(&wanted(&[(0, 5)]), true).epoch, 1);
    }
}
