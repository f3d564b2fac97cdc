//! Follower fetchers: one task per leader broker copies the leader's log
//! for every partition this broker follows there, with Kafka's own Fetch
//! API (replica id set, so the leader reads past its high watermark and
//! tracks our progress).
//!
//! Before fetching in a new leader epoch a follower truncates what the
//! leader does not have (OffsetForLeaderEpoch, KIP-101/279), so a record a
//! dead leader wrote but never committed cannot survive on a follower.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};
use weir_client::conn::Connection;
use weir_log::LogError;

use super::NodeId;
use crate::broker::BrokerState;
use crate::clock::now_ms;
use crate::handlers::str_bytes;
use crate::partitions::Partition;

const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
/// Pause after a failed round, so a dead leader is not hammered.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// The running fetchers, by leader.
#[derive(Default)]
pub struct Fetchers {
    running: Mutex<HashMap<NodeId, Fetcher>>,
    /// The replication throttle, shared by every fetcher: the rate bounds
    /// what this broker copies for moves, whichever leaders it copies from.
    throttle: Mutex<Option<ByteThrottle>>,
}

/// Kafka's replication throttles, as broker settings (bytes/s).
const THROTTLE_KEYS: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// The rate at which replicas being added by a reassignment may copy, or
/// `None` for unlimited (Kafka's default, Long.MAX_VALUE). Both keys bound
/// it: the follower rate is this broker's own limit; the leader rate, read
/// from this broker's settings too, bounds each follower's share of what it
/// copies — with the same settings on every broker (as the operator renders
/// them) it caps each follower-to-leader stream. A limit across all of one
/// leader's followers would have to live in the leader's fetch handling.
pub fn throttle_rate(settings: &BTreeMap<String, String>) -> Option<u64> {
    THROTTLE_KEYS
        .iter()
        .filter_map(|k| settings.get(*k)?.parse::<u64>().ok())
        .filter(|rate| *rate < i64::MAX as u64)
        .min()
}

/// A token bucket over fetched bytes. It holds at most one second's worth;
/// a fetch response may overdraw it (its size is known only once it
/// arrives), and throttled partitions then wait until the debt is repaid,
/// so the average stays at the rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ByteThrottle {
    /// Bytes per second, at least 1 (a rate of 0 would stall a move forever).
    rate: u64,
    tokens: f64,
    last_ms: i64,
}

impl ByteThrottle {
    pub fn new(rate: u64, now_ms: i64) -> Self {
        let rate = rate.max(1);
        ByteThrottle {
            rate,
            tokens: rate as f64,
            last_ms: now_ms,
        }
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed_ms = (now_ms - self.last_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed_ms * self.rate as f64 / 1000.0).min(self.rate as f64);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// How long throttled partitions must wait before the next fetch.
    pub fn delay(&mut self, now_ms: i64) -> Duration {
        self.refill(now_ms);
        if self.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_millis((-self.tokens * 1000.0 / self.rate as f64).ceil() as u64)
    }

    /// Counts `bytes` fetched for throttled partitions.
    pub fn record(&mut self, bytes: u64, now_ms: i64) {
        self.refill(now_ms);
        self.tokens -= bytes as f64;
    }
}

/// What one throttled partition may ask for per fetch: at most a second's
/// worth at `rate`, so a low rate is not overshot by one large response.
pub fn throttled_max_bytes(rate: u64, configured: i32) -> i32 {
    configured.min(i32::try_from(rate.max(1)).unwrap_or(i32::MAX))
}

struct Fetcher {
    partitions: watch::Sender<Vec<Arc<Partition>>>,
    task: JoinHandle<()>,
}

impl Fetchers {
    /// Points fetchers at the partitions followed per leader; stops those
    /// with nothing left to fetch.
    pub fn assign(
        &self,
        state: &Arc<BrokerState>,
        mut follows: BTreeMap<NodeId, Vec<Arc<Partition>>>,
    ) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.retain(|leader, fetcher| {
            let keep = follows.contains_key(leader) && !fetcher.task.is_finished();
            if !keep {
                fetcher.task.abort();
            }
            keep
        });
        for (leader, partitions) in std::mem::take(&mut follows) {
            match running.get(&leader) {
                Some(fetcher) => {
                    fetcher.partitions.send_replace(partitions);
                }
                None => {
                    let (tx, rx) = watch::channel(partitions);
                    let task = tokio::spawn(run(Arc::clone(state), leader, rx));
                    running.insert(
                        leader,
                        Fetcher {
                            partitions: tx,
                            task,
                        },
                    );
                }
            }
        }
    }

    /// The throttle at `rate` (kept across calls while the rate holds).
    fn with_throttle<T>(
        &self,
        rate: u64,
        now_ms: i64,
        f: impl FnOnce(&mut ByteThrottle) -> T,
    ) -> T {
        let mut throttle = self.throttle.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = match throttle.as_mut() {
            Some(t) if t.rate() == rate.max(1) => t,
            _ => throttle.insert(ByteThrottle::new(rate, now_ms)),
        };
        f(bucket)
    }

    pub fn stop_all(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for (_, fetcher) in running.drain() {
            fetcher.task.abort();
        }
    }
}

/// Where a followed partition stands: the leader epoch it was last
/// truncated for (it must truncate again when the epoch changes).
type Truncated = HashMap<(String, i32), i32>;

async fn run(
    state: Arc<BrokerState>,
    leader: NodeId,
    mut partitions: watch::Receiver<Vec<Arc<Partition>>>,
) {
    let mut connection: Option<Arc<Connection>> = None;
    let mut truncated = Truncated::new();
    loop {
        let followed: Vec<Arc<Partition>> = partitions.borrow_and_update().clone();
        if followed.is_empty() {
            if partitions.changed().await.is_err() {
                return;
            }
            continue;
        }
        let conn = match &connection {
            Some(c) if c.is_alive() => Arc::clone(c),
            _ => match connect(&state, leader).await {
                Some(c) => {
                    connection = Some(Arc::clone(&c));
                    c
                }
                None => {
                    pause(&mut partitions).await;
                    continue;
                }
            },
        };
        let ok = match truncate_new_epochs(&state, &conn, &followed, &mut truncated).await {
            Ok(()) => fetch_round(&state, &conn, &followed, &truncated).await,
            Err(e) => Err(e),
        };
        if let Err(e) = ok {
            debug!(leader, error = %e, "replica fetch failed");
            connection = None;
            pause(&mut partitions).await;
        }
    }
}

async fn pause(partitions: &mut watch::Receiver<Vec<Arc<Partition>>>) {
    let _ = tokio::time::timeout(RETRY_BACKOFF, partitions.changed()).await;
}

async fn connect(state: &BrokerState, leader: NodeId) -> Option<Arc<Connection>> {
    let image = state.cluster.image();
    let addr = state.inter_broker_address(&image.broker(leader)?.endpoints)?;
    let client_id = format!("weir-replica-fetcher-{}", state.config.node_id);
    match state
        .peers
        .connect(&addr, &client_id, Duration::from_secs(2))
        .await
    {
        Ok(c) => Some(c),
        Err(e) => {
            debug!(leader, %addr, error = %e, "cannot reach the leader");
            None
        }
    }
}

/// Truncates every partition that has not yet been truncated for its
/// current leader epoch to the point where its log and the leader's agree.
async fn truncate_new_epochs(
    state: &BrokerState,
    conn: &Connection,
    followed: &[Arc<Partition>],
    truncated: &mut Truncated,
) -> Result<(), String> {
    let pending: Vec<(Arc<Partition>, i32, Option<i32>)> = followed
        .iter()
        .filter_map(|p| {
            let epoch = p.replica().leader_epoch;
            let key = (p.topic.clone(), p.index);
            (truncated.get(&key) != Some(&epoch))
                .then(|| (Arc::clone(p), epoch, p.log().latest_epoch()))
        })
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    // A log with no epochs recorded has nothing the leader could disagree
    // with above its high watermark: drop what is above it.
    let mut ask = OffsetForLeaderEpochRequest::default();
    ask.replica_id = BrokerId(state.config.node_id);
    for (p, current, latest) in &pending {
        let Some(latest) = latest else { continue };
        let mut part = OffsetForLeaderPartition::default();
        part.partition = p.index;
        part.current_leader_epoch = *current;
        part.leader_epoch = *latest;
        match ask.topics.iter_mut().find(|t| t.topic.as_str() == p.topic) {
            Some(t) => t.partitions.push(part),
            None => {
                let mut t = OffsetForLeaderTopic::default();
                t.topic = TopicName(str_bytes(p.topic.clone()));
                t.partitions.push(part);
                ask.topics.push(t);
            }
        }
    }
    let answers: HashMap<(String, i32), (i16, i32, i64)> = if ask.topics.is_empty() {
        HashMap::new()
    } else {
        let response = conn
            .send_version(
                &ask,
                OFFSET_FOR_LEADER_EPOCH_VERSION,
                Duration::from_secs(5),
            )
            .await
            .map_err(|e| e.to_string())?;
        response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| {
                    (
                        (t.topic.to_string(), p.partition),
                        (p.error_code, p.leader_epoch, p.end_offset),
                    )
                })
            })
            .collect()
    };
    for (p, current, latest) in pending {
        let key = (p.topic.clone(), p.index);
        let target = match (latest, answers.get(&key)) {
            (None, _) => Some(p.log().high_watermark()),
            (Some(_), Some(&(0, _, end))) if end >= 0 => Some(end),
            // The leader knows no epoch as old as ours: keep only what is committed.
            (Some(_), Some(&(0, _, _))) => Some(p.log().high_watermark()),
            (Some(_), Some(&(code, _, _))) => {
                debug!(topic = %p.topic, partition = p.index, code, "leader cannot answer for our epoch yet");
                None
            }
            (Some(_), None) => None,
        };
        let Some(target) = target else { continue };
        let result = p
            .with_log(move |log| {
                let end = log.log_end_offset();
                if target < end {
                    log.truncate_to(target)?;
                    return Ok(Some((end, log.log_end_offset())));
                }
                Ok(None)
            })
            .await;
        match result {
            Ok(Some((from, to))) => {
                info!(topic = %p.topic, partition = p.index, from, to, epoch = current, "truncated to the leader's log");
                truncated.insert(key, current);
            }
            Ok(None) => {
                truncated.insert(key, current);
            }
            Err(e) => warn!(topic = %p.topic, partition = p.index, error = %e, "truncation failed"),
        }
    }
    Ok(())
}

/// One Fetch to the leader for every truncated partition, appending what
/// comes back.
async fn fetch_round(
    state: &BrokerState,
    conn: &Connection,
    followed: &[Arc<Partition>],
    truncated: &Truncated,
) -> Result<(), String> {
    let mut ready: Vec<&Arc<Partition>> = followed
        .iter()
        .filter(|p| {
            let epoch = p.replica().leader_epoch;
            truncated.get(&(p.topic.clone(), p.index)) == Some(&epoch)
        })
        .collect();
    if ready.is_empty() {
        tokio::time::sleep(RETRY_BACKOFF).await;
        return Ok(());
    }
    // Replicas this broker is being added as copy at the throttled rate;
    // the in-sync followers of the same partitions are not slowed.
    let rate = throttle_rate(&state.config.settings);
    let moving = match rate {
        Some(_) => moving_here(state, &ready),
        None => HashSet::new(),
    };
    let throttle = rate.filter(|_| !moving.is_empty());
    if let Some(rate) = throttle {
        let delay = state
            .fetchers
            .with_throttle(rate, now_ms(), |t| t.delay(now_ms()));
        if !delay.is_zero() {
            ready.retain(|p| !moving.contains(&(p.topic.clone(), p.index)));
            if ready.is_empty() {
                tokio::time::sleep(delay.min(RETRY_BACKOFF * 10)).await;
                return Ok(());
            }
        }
    }
    let config = &state.config;
    let wait = config.replica_fetch_wait_max();
    let mut req = FetchRequest::default();
    req.replica_id = BrokerId(config.node_id);
    req.max_wait_ms = wait.as_millis() as i32;
    req.min_bytes = 1;
    req.max_bytes = config.replica_fetch_response_max_bytes();
    req.session_id = 0;
    req.session_epoch = -1;
    for p in &ready {
        let (offset, log_start) = {
            let log = p.log();
            (log.log_end_offset(), log.log_start_offset())
        };
        let mut part = FetchPartition::default();
        part.partition = p.index;
        part.current_leader_epoch = p.replica().leader_epoch;
        part.fetch_offset = offset;
        part.log_start_offset = log_start;
        part.partition_max_bytes = config.replica_fetch_max_bytes();
        if let Some(rate) = throttle.filter(|_| moving.contains(&(p.topic.clone(), p.index))) {
            part.partition_max_bytes = throttled_max_bytes(rate, part.partition_max_bytes);
        }
        part.last_fetched_epoch = -1;
        match req.topics.iter_mut().find(|t| t.topic.as_str() == p.topic) {
            Some(t) => t.partitions.push(part),
            None => {
                let mut t = FetchTopic::default();
                t.topic = TopicName(str_bytes(p.topic.clone()));
                t.partitions.push(part);
                req.topics.push(t);
            }
        }
    }
    let response = conn
        .send_version(&req, FETCH_VERSION, wait + Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    if response.error_code != 0 {
        return Err(format!("fetch error code {}", response.error_code));
    }
    let mut appended_any = false;
    let mut retry = false;
    let mut throttled_bytes = 0u64;
    for topic in response.responses {
        for data in topic.partitions {
            let Some(p) = ready
                .iter()
                .find(|p| p.topic == topic.topic.as_str() && p.index == data.partition_index)
            else {
                continue;
            };
            if data.error_code == ResponseError::OffsetOutOfRange.code()
                && data.log_start_offset > p.log().log_end_offset()
            {
                // Away while the leader's retention (or DeleteRecords) moved
                // its log start past our end: restart empty at its start.
                let start = data.log_start_offset;
                match p
                    .with_log(move |log| log.truncate_fully_and_start_at(start))
                    .await
                {
                    Ok(()) => {
                        info!(topic = %p.topic, partition = p.index, start, "behind the leader's log start; restarted the replica there");
                        appended_any = true;
                    }
                    Err(e) => {
                        warn!(topic = %p.topic, partition = p.index, error = %e, "restarting the replica at the leader's log start failed");
                        retry = true;
                    }
                }
                continue;
            }
            if data.error_code != 0 {
                let error = ResponseError::try_from_code(data.error_code);
                debug!(topic = %p.topic, partition = p.index, ?error, "leader refused the fetch");
                retry = true;
                continue;
            }
            let records = data.records.unwrap_or_default();
            if moving.contains(&(p.topic.clone(), p.index)) {
                throttled_bytes += records.len() as u64;
            }
            let (hw, leader_start) = (data.high_watermark, data.log_start_offset);
            match append(p, records, hw, leader_start).await {
                Ok(appended) => appended_any |= appended,
                Err(e) => {
                    warn!(topic = %p.topic, partition = p.index, error = %e, "appending fetched records failed");
                    retry = true;
                }
            }
        }
    }
    if let Some(rate) = throttle {
        state
            .fetchers
            .with_throttle(rate, now_ms(), |t| t.record(throttled_bytes, now_ms()));
    }
    if retry && !appended_any {
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
    Ok(())
}

/// The followed partitions this broker is being added to by a
/// reassignment (its adding replicas), as the image says.
fn moving_here(state: &BrokerState, followed: &[&Arc<Partition>]) -> HashSet<(String, i32)> {
    let me = state.config.node_id;
    let image = state.cluster.image();
    followed
        .iter()
        .filter(|p| {
            image
                .topic_by_name(&p.topic)
                .and_then(|t| image.partition(&t.id, p.index))
                .is_some_and(|r| r.adding_replicas.contains(&me))
        })
        .map(|p| (p.topic.clone(), p.index))
        .collect()
}

/// Appends what the leader sent and follows its high watermark and log
/// start offset. Returns whether anything was appended.
async fn append(
    partition: &Arc<Partition>,
    records: Bytes,
    leader_hw: i64,
    leader_start: i64,
) -> Result<bool, LogError> {
    let size = records.len();
    let apply = move |log: &mut weir_log::PartitionLog| {
        let appended = if records.is_empty() {
            false
        } else {
            log.append_as_follower(&records, now_ms())?;
            true
        };
        if leader_start > log.log_start_offset() && leader_start <= log.log_end_offset() {
            log.delete_records_before(leader_start)?;
        }
        let hw = leader_hw.min(log.log_end_offset());
        if hw > log.high_watermark() {
            log.set_high_watermark(hw);
        }
        Ok(appended)
    };
    if size <= INLINE_APPEND_BYTES {
        partition.with_log_inline(apply)
    } else {
        partition.with_log(apply).await
    }
}

/// Replicated data up to this size is appended on the fetcher's own task:
/// a page-cache write of this size takes less than the hop to the blocking
/// pool, and on the acks=all path every hop is latency the producer waits.
const INLINE_APPEND_BYTES: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_throttle_holds_fetched_bytes_to_the_rate() {
        let mut t = ByteThrottle::new(1000, 0);
        assert_eq!(t.delay(0), Duration::ZERO);
        // A 3000-byte response overdraws a full bucket by 2000 bytes: two
        // seconds to repay at 1000 B/s.
        t.record(3000, 0);
        assert_eq!(t.delay(0), Duration::from_secs(2));
        assert_eq!(t.delay(1500), Duration::from_millis(500));
        assert_eq!(t.delay(2000), Duration::ZERO);
        // Idle time refills at most one second's worth.
        let mut idle = ByteThrottle::new(1000, 0);
        idle.record(1000, 0);
        assert_eq!(idle.delay(60_000), Duration::ZERO);
        idle.record(2000, 60_000);
        assert_eq!(idle.delay(60_000), Duration::from_secs(1));
        // Each fetch asks for at most a second's worth.
        assert_eq!(throttled_max_bytes(1000, 1 << 20), 1000);
        assert_eq!(throttled_max_bytes(u64::MAX, 1 << 20), 1 << 20);
    }

    #[test]
    fn the_throttle_rate_is_the_lower_of_the_two_keys_and_unlimited_by_default() {
        let settings = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert_eq!(throttle_rate(&settings(&[])), None);
        assert_eq!(
            throttle_rate(&settings(&[(THROTTLE_KEYS[0], "9223372036854775807")])),
            None
        );
        assert_eq!(
            throttle_rate(&settings(&[
                (THROTTLE_KEYS[0], "5000"),
                (THROTTLE_KEYS[1], "2000")
            ])),
            Some(2000)
        );
    }
}
