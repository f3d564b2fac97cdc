//! Incremental fetch sessions (KIP-227). A consumer that fetches many
//! partitions sends them once; later fetches carry only what changed, and the
//! broker answers only with partitions that have news. The decisions here are
//! pure; the fetch handler does the reading.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use uuid::Uuid;

/// Kafka's session limits: sessions idle longer than this are evicted.
const SESSION_IDLE: Duration = Duration::from_secs(120);
const MAX_SESSIONS: usize = 1000;

/// What the broker remembers of one partition in a session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPartition {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    /// High watermark and log start last sent, to tell whether there is news.
    pub last_high_watermark: i64,
    pub last_log_start: i64,
}

/// A partition the request names, with the topic name already resolved.
#[derive(Debug, Clone)]
pub struct RequestedPartition {
    pub topic: String,
    pub topic_id: Uuid,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
}

/// What to read for this request and how to answer.
#[derive(Debug)]
pub struct FetchPlan {
    /// The session id to put in the response (0 = none).
    pub session_id: i32,
    /// Whether only partitions with news go in the response.
    pub incremental: bool,
    pub partitions: Vec<((String, i32), SessionPartition)>,
}

/// Kafka error codes for session problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionError {
    /// FETCH_SESSION_ID_NOT_FOUND (70)
    NotFound,
    /// INVALID_FETCH_SESSION_EPOCH (71)
    InvalidEpoch,
}

impl SessionError {
    pub fn code(self) -> i16 {
        match self {
            SessionError::NotFound => 70,
            SessionError::InvalidEpoch => 71,
        }
    }
}

struct Session {
    next_epoch: i32,
    partitions: IndexMap<(String, i32), SessionPartition>,
    last_used: Instant,
}

#[derive(Default)]
struct Cache {
    sessions: HashMap<i32, Session>,
    next_id: i32,
}

/// The broker's fetch sessions.
#[derive(Default)]
pub struct FetchSessions {
    cache: Mutex<Cache>,
}

fn fresh(p: &RequestedPartition) -> SessionPartition {
    SessionPartition {
        topic_id: p.topic_id,
        fetch_offset: p.fetch_offset,
        max_bytes: p.max_bytes,
        last_high_watermark: -1,
        last_log_start: -1,
    }
}

impl FetchSessions {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides what a fetch with this session id and epoch reads.
    pub fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<RequestedPartition>,
        forgotten: Vec<(String, i32)>,
        now: Instant,
    ) -> Result<FetchPlan, SessionError> {
        let mut cache = self.lock();
        cache
            .sessions
            .retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        let full = |requested: &[RequestedPartition]| {
            requested
                .iter()
                .map(|p| ((p.topic.clone(), p.partition), fresh(p)))
                .collect::<Vec<_>>()
        };
        match (session_id, epoch) {
            // Epoch -1: no session wanted (closing one if named).
            (id, -1) => {
                cache.sessions.remove(&id);
                Ok(FetchPlan {
                    session_id: 0,
                    incremental: false,
                    partitions: full(&requested),
                })
            }
            // Epoch 0: start a new session with exactly these partitions.
            (id, 0) => {
                cache.sessions.remove(&id);
                let partitions = full(&requested);
                if cache.sessions.len() >= MAX_SESSIONS {
                    return Ok(FetchPlan {
                        session_id: 0,
                        incremental: false,
                        partitions,
                    });
                }
                let new_id = loop {
                    cache.next_id = cache.next_id.wrapping_add(1).max(1);
                    if !cache.sessions.contains_key(&cache.next_id) {
                        break cache.next_id;
                    }
                };
                cache.sessions.insert(
                    new_id,
                    Session {
                        next_epoch: 1,
                        partitions: partitions.iter().cloned().collect(),
                        last_used: now,
                    },
                );
                Ok(FetchPlan {
                    session_id: new_id,
                    incremental: false,
                    partitions,
                })
            }
            (0, _) => Err(SessionError::NotFound),
            (id, epoch) => {
                let session = cache.sessions.get_mut(&id).ok_or(SessionError::NotFound)?;
                if session.next_epoch != epoch {
                    return Err(SessionError::InvalidEpoch);
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used = now;
                for key in forgotten {
                    session.partitions.shift_remove(&key);
                }
                for p in &requested {
                    let key = (p.topic.clone(), p.partition);
                    match session.partitions.get_mut(&key) {
                        Some(existing) => {
                            existing.fetch_offset = p.fetch_offset;
                            existing.max_bytes = p.max_bytes;
                        }
                        None => {
                            session.partitions.insert(key, fresh(p));
                        }
                    }
                }
                // Rotate so that every partition gets its turn at the front,
                // where the response size limit cannot starve it.
                if session.partitions.len() > 1 {
                    session
                        .partitions
                        .move_index(0, session.partitions.len() - 1);
                }
                let partitions = session
                    .partitions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Ok(FetchPlan {
                    session_id: id,
                    incremental: true,
                    partitions,
                })
            }
        }
    }

    /// Records what was sent for a partition of a session; returns whether
    /// an incremental response must include it.
    pub fn record_sent(
        &self,
        session_id: i32,
        key: &(String, i32),
        high_watermark: i64,
        log_start: i64,
        has_records_or_error: bool,
    ) -> bool {
        let mut cache = self.lock();
        let Some(p) = cache
            .sessions
            .get_mut(&session_id)
            .and_then(|s| s.partitions.get_mut(key))
        else {
            return true;
        };
        let news = has_records_or_error
            || p.last_high_watermark != high_watermark
            || p.last_log_start != log_start;
        p.last_high_watermark = high_watermark;
        p.last_log_start = log_start;
        news
    }

    /// Drops a deleted topic from every session.
    /// Drops a partition that left this broker from every session.
    pub fn forget_partition(&self, topic: &str, index: i32) {
        for session in self.lock().sessions.values_mut() {
            session
                .partitions
                .retain(|(t, i), _| !(t == topic && *i == index));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(topic: &str, partition: i32, offset: i64) -> RequestedPartition {
        RequestedPartition {
            topic: topic.into(),
            topic_id: Uuid::nil(),
            partition,
            fetch_offset: offset,
            max_bytes: 1024,
        }
    }

    #[test]
    fn sessionless_fetch_reads_what_is_asked() {
        let s = FetchSessions::new();
        let plan = s
            .plan(0, -1, vec![req("a", 0, 5)], vec![], Instant::now())
            .unwrap();
        assert_eq!(plan.session_id, 0);
        assert!(!plan.incremental);
        assert_eq!(plan.partitions.len(), 1);
    }

    #[test]
    fn incremental_fetch_keeps_partitions_and_applies_changes() {
        let s = FetchSessions::new();
        let now = Instant::now();
        let plan = s
            .plan(0, 0, vec![req("a", 0, 5), req("a", 1, 7)], vec![], now)
            .unwrap();
        let id = plan.session_id;
        assert!(id > 0);
        // Epoch 1 changes one offset and adds a partition.
        let plan = s
            .plan(id, 1, vec![req("a", 0, 9), req("b", 0, 0)], vec![], now)
            .unwrap();
        assert!(plan.incremental);
        let offsets: HashMap<_, _> = plan
            .partitions
            .iter()
            .map(|(k, v)| (k.clone(), v.fetch_offset))
            .collect();
        assert_eq!(offsets[&("a".to_string(), 0)], 9);
        assert_eq!(offsets[&("a".to_string(), 1)], 7);
        assert_eq!(offsets[&("b".to_string(), 0)], 0);
        // Epoch 2 forgets one.
        let plan = s.plan(id, 2, vec![], vec![("a".into(), 1)], now).unwrap();
        assert_eq!(plan.partitions.len(), 2);
    }

    #[test]
    fn wrong_epoch_or_unknown_session_is_refused() {
        let s = FetchSessions::new();
        let now = Instant::now();
        let id = s
            .plan(0, 0, vec![req("a", 0, 0)], vec![], now)
            .unwrap()
            .session_id;
        assert_eq!(
            s.plan(id, 2, vec![], vec![], now).unwrap_err(),
            SessionError::InvalidEpoch
        );
        assert_eq!(
            s.plan(id + 100, 1, vec![], vec![], now).unwrap_err(),
            SessionError::NotFound
        );
        assert!(s.plan(id, 1, vec![], vec![], now).is_ok());
    }

    #[test]
    fn only_news_is_sent_in_incremental_responses() {
        let s = FetchSessions::new();
        let id = s
            .plan(0, 0, vec![req("a", 0, 0)], vec![], Instant::now())
            .unwrap()
            .session_id;
        let key = ("a".to_string(), 0);
        assert!(s.record_sent(id, &key, 10, 0, false));
        assert!(!s.record_sent(id, &key, 10, 0, false));
        assert!(s.record_sent(id, &key, 11, 0, false));
        assert!(s.record_sent(id, &key, 11, 0, true));
    }

    #[test]
    fn idle_sessions_are_evicted() {
        let s = FetchSessions::new();
        let t0 = Instant::now();
        let id = s
            .plan(0, 0, vec![req("a", 0, 0)], vec![], t0)
            .unwrap()
            .session_id;
        let later = t0 + SESSION_IDLE + Duration::from_secs(1);
        assert_eq!(
            s.plan(id, 1, vec![], vec![], later).unwrap_err(),
            SessionError::NotFound
        );
    }
}
