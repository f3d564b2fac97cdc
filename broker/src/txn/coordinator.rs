//! One transaction coordinator shard: the transactional ids whose
//! `__transaction_state` partition this broker leads. Every state change is
//! written there and replicated to the in-sync replicas before it is acted
//! on or answered; markers are written after a transaction is prepared, and
//! a shard loaded after a failover finishes what its predecessor prepared.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Mutex;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};
use weir_coordinator::GroupStore;
use weir_coordinator::txn::{
    self, EndDecision, InitDecision, TxnMetadata, TxnPartition, TxnState, code,
};

use crate::broker::BrokerState;
use crate::clock::now_ms;
use crate::cluster::TRANSACTION_STATE_TOPIC;
use crate::group_store::InternalPartitionStore;
use crate::partitions::Partition;

/// How long a state write may wait for the in-sync replicas.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// The broker settings a shard works with.
#[derive(Clone, Debug)]
pub struct TxnSettings {
    pub max_timeout_ms: i32,
    pub expiration_ms: i64,
    pub timeout_check: Duration,
    pub expiry_check: Duration,
}

/// What InitProducerId answers: producer id and epoch, or an error code.
pub type InitAnswer = Result<(i64, i16), i16>;

#[derive(Clone)]
pub struct TxnCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    partition: Arc<Partition>,
    store: Arc<InternalPartitionStore>,
    /// The partition's leader epoch when loaded; markers carry it.
    coordinator_epoch: i32,
    settings: TxnSettings,
    state: Weak<BrokerState>,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// Transactional ids whose markers are being written right now.
    completing: StdMutex<HashSet<String>>,
    stopped: AtomicBool,
    tasks: StdMutex<Vec<AbortHandle>>,
}

fn lock<T>(m: &StdMutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl TxnCoordinator {
    /// Replays the shard's partition, then finishes prepared transactions
    /// and starts the timeout and expiry sweeps.
    pub async fn load(
        state: &Arc<BrokerState>,
        partition: Arc<Partition>,
        settings: TxnSettings,
    ) -> Result<Self, String> {
        let store = Arc::new(InternalPartitionStore::new(
            Arc::clone(&partition),
            Arc::clone(&state.logs),
        ));
        let coordinator_epoch = partition.replica().leader_epoch;
        let reader = Arc::clone(&store);
        let records = tokio::task::spawn_blocking(move || reader.load())
            .await
            .map_err(|e| format!("load task failed: {e}"))?
            .map_err(|e| e.to_string())?;
        let txns = replay(records);
        let coordinator = TxnCoordinator {
            inner: Arc::new(Inner {
                partition,
                store,
                coordinator_epoch,
                settings,
                state: Arc::downgrade(state),
                txns: Mutex::new(txns),
                completing: StdMutex::new(HashSet::new()),
                stopped: AtomicBool::new(false),
                tasks: StdMutex::new(Vec::new()),
            }),
        };
        let prepared: Vec<String> = {
            let txns = coordinator.inner.txns.lock().await;
            txns.iter()
                .filter(|(_, m)| m.state.is_prepared())
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in prepared {
            info!(transactional_id = %id, "finishing a transaction prepared by an earlier coordinator");
            coordinator.spawn_completion(id);
        }
        coordinator.start_sweeps();
        Ok(coordinator)
    }

    pub fn stop(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        for task in lock(&self.inner.tasks).drain(..) {
            task.abort();
        }
    }

    fn stopped(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Writes `id`'s new state (None: forget it) and waits for the in-sync
    /// replicas; an error code to answer with if that fails.
    async fn persist(&self, id: &str, value: Option<&TxnMetadata>) -> Result<(), i16> {
        let Some(state) = self.inner.state.upgrade() else {
            return Err(NOT_COORDINATOR);
        };
        {
            let replica = self.inner.partition.replica();
            if self.stopped()
                || !replica.is_leader()
                || replica.leader_epoch != self.inner.coordinator_epoch
            {
                return Err(NOT_COORDINATOR);
            }
        }
        let record = (txn::encode_key(id), value.map(txn::encode_value));
        let store = Arc::clone(&self.inner.store);
        let written = tokio::task::spawn_blocking(move || store.append(vec![record]))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = written {
            warn!(transactional_id = %id, error = %e, "writing transaction state failed");
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        let deadline = tokio::time::Instant::now() + WRITE_TIMEOUT;
        crate::replica::await_written(
            &state,
            &self.inner.partition,
            TRANSACTION_STATE_TOPIC,
            deadline,
        )
        .await
        .map_err(|e| {
            warn!(transactional_id = %id, error = ?e, "transaction state not replicated");
            match e {
                kafka_protocol::error::ResponseError::NotLeaderOrFollower => NOT_COORDINATOR,
                _ => COORDINATOR_NOT_AVAILABLE,
            }
        })
    }

    pub async fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> InitAnswer {
        let Some(state) = self.inner.state.upgrade() else {
            return Err(NOT_COORDINATOR);
        };
        let mut txns = self.inner.txns.lock().await;
        let now = now_ms();
        let decision = txn::init_producer_id(
            txns.get(id),
            timeout_ms,
            self.inner.settings.max_timeout_ms,
            expected,
            now,
        );
        let next = match decision {
            InitDecision::Error(c) => return Err(c),
            InitDecision::NeedProducerId => {
                let pid = state.cluster.allocate_producer_id().await.map_err(|e| {
                    warn!(error = %e, "allocating a producer id failed");
                    COORDINATOR_NOT_AVAILABLE
                })?;
                txn::init_with_new_id(pid, timeout_ms, now)
            }
            InitDecision::Ready(m) => m,
            InitDecision::AbortFirst(m) => {
                self.persist(id, Some(&m)).await?;
                txns.insert(id.to_owned(), m);
                drop(txns);
                self.spawn_completion(id.to_owned());
                return Err(code::CONCURRENT_TRANSACTIONS);
            }
        };
        self.persist(id, Some(&next)).await?;
        let answer = (next.producer_id, next.producer_epoch);
        txns.insert(id.to_owned(), next);
        Ok(answer)
    }

    pub async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[TxnPartition],
    ) -> i16 {
        let mut txns = self.inner.txns.lock().await;
        match txn::add_partitions(txns.get(id), producer_id, epoch, partitions, now_ms()) {
            Err(c) => c,
            Ok(None) => 0,
            Ok(Some(next)) => match self.persist(id, Some(&next)).await {
                Ok(()) => {
                    txns.insert(id.to_owned(), next);
                    0
                }
                Err(c) => c,
            },
        }
    }

    /// EndTxn: answered once the decision is stored; the markers follow.
    pub async fn end_txn(&self, id: &str, producer_id: i64, epoch: i16, commit: bool) -> i16 {
        let mut txns = self.inner.txns.lock().await;
        match txn::end_txn(txns.get(id), producer_id, epoch, commit, now_ms()) {
            Err(c) => c,
            Ok(EndDecision::AlreadyDone) => 0,
            Ok(EndDecision::Prepare(next)) => {
                if let Err(c) = self.persist(id, Some(&next)).await {
                    return c;
                }
                txns.insert(id.to_owned(), next);
                drop(txns);
                self.spawn_completion(id.to_owned());
                0
            }
        }
    }

    /// Writes the markers of `id`'s prepared transaction, then stores it
    /// complete; at most one such task per id.
    fn spawn_completion(&self, id: String) {
        if !lock(&self.inner.completing).insert(id.clone()) {
            return;
        }
        let this = self.clone();
        let task = tokio::spawn(async move {
            this.complete(&id).await;
            lock(&this.inner.completing).remove(&id);
        });
        lock(&self.inner.tasks).push(task.abort_handle());
    }

    async fn complete(&self, id: &str) {
        let Some(state) = self.inner.state.upgrade() else {
            return;
        };
        let Some(prepared) = self.inner.txns.lock().await.get(id).cloned() else {
            return;
        };
        if !prepared.state.is_prepared() {
            return;
        }
        let commit = prepared.state == TxnState::PrepareCommit;
        let started = std::time::Instant::now();
        let written = super::markers::write_all(
            &state,
            &super::markers::Marker {
                producer_id: prepared.producer_id,
                producer_epoch: prepared.producer_epoch,
                commit,
                coordinator_epoch: self.inner.coordinator_epoch,
            },
            &prepared.partitions,
            &self.inner.stopped,
        )
        .await;
        if !written {
            return;
        }
        debug!(transactional_id = %id, commit, elapsed = ?started.elapsed(), "markers written");
        let mut txns = self.inner.txns.lock().await;
        if txns.get(id) != Some(&prepared) {
            return;
        }
        let done = txn::complete(&prepared, now_ms());
        match self.persist(id, Some(&done)).await {
            Ok(()) => {
                debug!(transactional_id = %id, commit, "transaction complete");
                txns.insert(id.to_owned(), done);
            }
            // Left prepared: the sweep tries again.
            Err(c) => {
                warn!(transactional_id = %id, code = c, "storing a completed transaction failed")
            }
        }
    }

    fn start_sweeps(&self) {
        let this = self.clone();
        let timeouts = tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.settings.timeout_check);
            loop {
                tick.tick().await;
                this.abort_timed_out().await;
            }
        });
        let this = self.clone();
        let expiry = tokio::spawn(async move {
            let mut tick = tokio::time::interval(this.inner.settings.expiry_check);
            tick.tick().await;
            loop {
                tick.tick().await;
                this.expire_ids().await;
            }
        });
        lock(&self.inner.tasks).extend([timeouts.abort_handle(), expiry.abort_handle()]);
    }

    /// Aborts open transactions past their timeout under a bumped epoch (the
    /// stuck producer is fenced), and retries completions that failed.
    pub async fn abort_timed_out(&self) {
        let now = now_ms();
        let (stuck, prepared): (Vec<(String, TxnMetadata)>, Vec<String>) = {
            let txns = self.inner.txns.lock().await;
            let stuck = txns
                .iter()
                .filter(|(_, m)| txn::timed_out(m, now))
                .map(|(id, m)| (id.clone(), m.clone()))
                .collect();
            let prepared = txns
                .iter()
                .filter(|(_, m)| m.state.is_prepared())
                .map(|(id, _)| id.clone())
                .collect();
            (stuck, prepared)
        };
        for id in prepared {
            self.spawn_completion(id);
        }
        for (id, open) in stuck {
            let mut txns = self.inner.txns.lock().await;
            if txns.get(&id) != Some(&open) {
                continue;
            }
            let fenced = txn::fence(&open, now);
            if self.persist(&id, Some(&fenced)).await.is_ok() {
                info!(transactional_id = %id, timeout_ms = open.timeout_ms, "aborting a transaction past its timeout");
                txns.insert(id.clone(), fenced);
                drop(txns);
                self.spawn_completion(id);
            }
        }
    }

    /// Forgets transactional ids idle past `transactional.id.expiration.ms`.
    async fn expire_ids(&self) {
        let now = now_ms();
        let expiration = self.inner.settings.expiration_ms;
        let mut txns = self.inner.txns.lock().await;
        let expired: Vec<String> = txns
            .iter()
            .filter(|(_, m)| txn::expired(m, now, expiration))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if self.persist(&id, None).await.is_ok() {
                info!(transactional_id = %id, "transactional id expired");
                txns.remove(&id);
            }
        }
    }

    /// The stored state of `id` (DescribeTransactions).
    pub async fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.inner.txns.lock().await.get(id).cloned()
    }

    /// Every transactional id here with its state (ListTransactions).
    pub async fn list(&self) -> Vec<(String, TxnMetadata)> {
        self.inner
            .txns
            .lock()
            .await
            .iter()
            .map(|(id, m)| (id.clone(), m.clone()))
            .collect()
    }
}

/// The latest state per transactional id from the partition's records.
fn replay(records: Vec<(Bytes, Option<Bytes>)>) -> HashMap<String, TxnMetadata> {
    let mut txns = HashMap::new();
    for (key, value) in records {
        let id = match txn::decode_key(key) {
            Ok(id) => id,
            Err(e) => {
                warn!(error = %e, "skipping an undecodable transaction state key");
                continue;
            }
        };
        match value.map(txn::decode_value) {
            None => {
                txns.remove(&id);
            }
            Some(Ok(m)) => {
                txns.insert(id, m);
            }
            Some(Err(e)) => {
                warn!(transactional_id = %id, error = %e, "skipping undecodable transaction state")
            }
        }
    }
    txns
}
