//! Client quotas (KIP-13, KIP-55, KIP-124): produce and fetch byte rates
//! and request-handling time per user and client id, as set with
//! AlterClientQuotas and kept in the metadata image.
//!
//! A request whose sender is over a quota is still served, and its answer
//! carries the throttle time: the time without further requests that
//! brings the sender's rate back to its quota. The connection then reads
//! nothing more from the sender for that long (Kafka mutes the channel),
//! and the client, seeing the throttle time, holds off too (KIP-219). A
//! throttled fetch is answered without records, so the bytes it would
//! have sent do not count against the sender.
//!
//! Which quota applies and who shares it is `resolve`; rates and throttle
//! times are `rate`; both are pure. This module keeps the rates per sender
//! and measures handler time.

mod cpu;
mod rate;
mod resolve;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ResponseKind;
use weir_client::quota::QuotaKey;
use weir_quorum::image::ClientQuotas;

pub use cpu::cpu_timed;
use rate::{Rate, Sampling};
use resolve::Sharers;

/// Senders' rates beyond this many are pruned of idle ones.
const PRUNE_ABOVE: usize = 1024;

/// One quota that applies to a request's sender.
#[derive(Debug, Clone)]
pub struct Limit {
    key: QuotaKey,
    quota: f64,
    sharers: Sharers,
}

/// The quotas that apply to one request's sender, looked up once.
#[derive(Debug, Default)]
pub struct SenderQuotas {
    pub produce: Option<Limit>,
    pub fetch: Option<Limit>,
    pub request: Option<Limit>,
}

impl SenderQuotas {
    pub fn any(&self) -> bool {
        self.produce.is_some() || self.fetch.is_some() || self.request.is_some()
    }
}

/// Every sender's rates, per quota.
#[derive(Debug)]
pub struct QuotaManager {
    sampling: Sampling,
    epoch: Instant,
    rates: Mutex<HashMap<(QuotaKey, Sharers), Rate>>,
}

impl QuotaManager {
    /// `samples` of `span` each (`quota.window.num`, `quota.window.size.seconds`).
    pub fn new((samples, span): (usize, Duration)) -> Self {
        QuotaManager {
            sampling: Sampling::new(samples, span),
            epoch: Instant::now(),
            rates: Mutex::new(HashMap::new()),
        }
    }

    /// The quotas for `principal` (`User:<name>`) and `client_id`; none at
    /// all, at no cost, while no quota is configured.
    pub fn for_sender(
        &self,
        quotas: &ClientQuotas,
        principal: &str,
        client_id: &str,
    ) -> SenderQuotas {
        if quotas.is_empty() {
            return SenderQuotas::default();
        }
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let limit = |key| {
            resolve::applicable(quotas, user, client_id, key).map(|(quota, sharers)| Limit {
                key,
                quota,
                sharers,
            })
        };
        SenderQuotas {
            produce: limit(QuotaKey::ProducerByteRate),
            fetch: limit(QuotaKey::ConsumerByteRate),
            request: limit(QuotaKey::RequestPercentage),
        }
    }

    /// Records `amount` (bytes) against the limit; the throttle time, if
    /// the sender is now over its quota.
    pub fn record_bytes(&self, limit: &Limit, bytes: usize) -> Duration {
        self.record(limit, bytes as f64, Duration::MAX)
    }

    /// Records handler time against a request-percentage limit. As in
    /// Kafka, one throttle is at most one sample span, since time already
    /// spent handling cannot be refused.
    pub fn record_time(&self, limit: &Limit, used: Duration) -> Duration {
        // Percent of one thread, per second: 1 s of handling = 100.
        let percent_seconds = used.as_secs_f64() * 100.0;
        let cap = Duration::from_millis(self.sampling.span_ms);
        self.record(limit, percent_seconds, cap)
    }

    fn record(&self, limit: &Limit, value: f64, cap: Duration) -> Duration {
        let now = self.now_ms();
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let id = (limit.key, limit.sharers.clone());
        if rates.len() >= PRUNE_ABOVE && !rates.contains_key(&id) {
            let horizon = self.sampling.samples as u64 * self.sampling.span_ms;
            rates.retain(|_, r| r.last_ms().is_some_and(|t| t + horizon > now));
        }
        let rate = rates.entry(id).or_default();
        rate.record(self.sampling, value, now);
        let throttle = rate::throttle(
            rate.per_second(self.sampling, now),
            limit.quota,
            rate.window_ms(self.sampling, now),
        );
        throttle.min(cap)
    }

    /// Takes back bytes recorded for an answer that was not sent.
    pub fn unrecord_bytes(&self, limit: &Limit, bytes: usize) {
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rate) = rates.get_mut(&(limit.key, limit.sharers.clone())) {
            rate.unrecord(bytes as f64);
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// Puts the throttle time in a response (every response the broker sends
/// but SaslHandshake's has the field; versions without it leave it out
/// when encoding).
pub fn set_throttle_time(response: &mut ResponseKind, throttle: Duration) {
    let ms = throttle.as_millis().min(i32::MAX as u128) as i32;
    macro_rules! set {
        ($($variant:ident),+ $(,)?) => {
            match response {
                $(ResponseKind::$variant(r) => r.throttle_time_ms = r.throttle_time_ms.max(ms),)+
                _ => {}
            }
        };
    }
    set!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        DescribeConfigs,
        AlterConfigs,
        CreatePartitions,
        DeleteGroups,
        IncrementalAlterConfigs,
        OffsetDelete,
        DescribeCluster,
        OffsetForLeaderEpoch,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        UnregisterBroker,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeProducers,
        DescribeTransactions,
        ListTransactions,
        AlterUserScramCredentials,
        DescribeUserScramCredentials,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeClientQuotas,
        AlterClientQuotas,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
    );
}

/// The record bytes a fetch answer carries.
pub fn fetched_bytes(response: &ResponseKind) -> usize {
    match response {
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum(),
        _ => 0,
    }
}

/// Drops a fetch answer's records (kept: each partition's offsets and
/// errors), for a sender that is over its fetch quota.
pub fn drop_fetched_records(response: &mut ResponseKind) {
    if let ResponseKind::Fetch(r) = response {
        for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
            p.records = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::quota::{EntityName, QuotaEntity, QuotaValue};

    fn quotas(user: &str, key: QuotaKey, value: f64) -> ClientQuotas {
        let entity = QuotaEntity {
            user: Some(EntityName::Named(user.into())),
            ..Default::default()
        };
        [(entity, [(key, QuotaValue(value))].into())].into()
    }

    #[test]
    fn a_sender_over_its_byte_rate_is_throttled_and_others_are_not() {
        let manager = QuotaManager::new((2, Duration::from_secs(1)));
        let q = quotas("alice", QuotaKey::ProducerByteRate, 1000.0);
        let alice = manager.for_sender(&q, "User:alice", "app");
        let limit = alice.produce.expect("alice has a produce quota");
        assert!(alice.fetch.is_none() && alice.request.is_none());
        // Within the first second's allowance: no throttle.
        assert_eq!(manager.record_bytes(&limit, 500), Duration::ZERO);
        // Five times the allowance: about four seconds to wait.
        let throttle = manager.record_bytes(&limit, 4500);
        assert!(
            throttle >= Duration::from_millis(3500) && throttle <= Duration::from_millis(4500),
            "{throttle:?}"
        );
        let bob = manager.for_sender(&q, "User:bob", "app");
        assert!(!bob.any());
    }

    #[test]
    fn request_time_throttles_are_capped_at_one_span() {
        let manager = QuotaManager::new((2, Duration::from_secs(1)));
        let q = quotas("alice", QuotaKey::RequestPercentage, 10.0);
        let limit = manager.for_sender(&q, "User:alice", "").request.unwrap();
        let throttle = manager.record_time(&limit, Duration::from_secs(5));
        assert_eq!(throttle, Duration::from_secs(1));
    }

    #[test]
    fn no_quotas_cost_nothing() {
        let manager = QuotaManager::new((11, Duration::from_secs(1)));
        assert!(
            !manager
                .for_sender(&ClientQuotas::new(), "User:alice", "app")
                .any()
        );
    }
}
