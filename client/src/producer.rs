//! Batching, idempotent producer.
//!
//! `send` only hands the record to a background task, which keeps one
//! accumulator queue per partition, closes a batch when it is full or its
//! linger expired, and sends one Produce request per broker carrying the
//! ready batch of each of its partitions. Sequence numbers are assigned when
//! a batch is first sent and kept across retries, so the broker can drop
//! duplicates and reject reordering.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::config::ClientConfig;
use crate::error::{Error, Result};
use crate::partitioner::{StickyPartitioner, partition_for_key};
use crate::transaction::{self, GroupMetadata, ProducerIdentity};
use crate::util::{millis_i32, now_millis, sb};

/// Newest Produce version that still names topics (v13 uses topic ids).
const PRODUCE_MAX_VERSION: i16 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// Do not wait for the broker at all.
    None,
    /// The leader wrote it.
    Leader,
    /// Every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl std::str::FromStr for Acks {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            _ => Err(Error::Config(format!(
                "acks must be 0, 1 or all, not {s:?}"
            ))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub acks: Acks,
    pub linger: Duration,
    /// Bytes of records per partition batch before it is sent without
    /// waiting for `linger`.
    pub batch_size: usize,
    pub compression: Compression,
    /// Idempotent delivery (no duplicates on retry); forces `acks = All`.
    pub enable_idempotence: bool,
    /// Batches per partition awaiting an answer at once.
    pub max_in_flight: usize,
    pub retries: u32,
    pub retry_backoff: Duration,
    /// Upper bound from `send` to success or failure, retries included.
    pub delivery_timeout: Duration,
    /// `transactional.id`: makes this a transactional producer (idempotent
    /// too); sends then belong to the transaction begun last.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: the coordinator aborts a transaction left
    /// open longer.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16 * 1024,
            compression: Compression::None,
            enable_idempotence: true,
            max_in_flight: 5,
            retries: i32::MAX as u32,
            retry_backoff: Duration::from_millis(100),
            delivery_timeout: Duration::from_secs(120),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

pub fn parse_compression(s: &str) -> Result<Compression> {
    match s {
        "none" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        _ => Err(Error::Config(format!(
            "compression must be none, gzip, snappy, lz4 or zstd, not {s:?}"
        ))),
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    /// None: by key hash, or sticky when there is no key.
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Milliseconds since the epoch; None for now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            value: Some(value.into()),
            ..Self::default()
        }
    }
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn with_header(mut self, name: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((name.into(), value));
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    /// -1 with acks=0, where the broker never says.
    pub offset: i64,
    pub timestamp: i64,
}

/// Resolves once the record is acknowledged (or failed for good).
pub struct DeliveryFuture(oneshot::Receiver<Result<RecordMetadata>>);

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed("producer"))))
    }
}

type Ack = oneshot::Sender<Result<RecordMetadata>>;

enum Command {
    Send(ProducerRecord, Ack),
    Flush(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
    Begin(oneshot::Sender<Result<()>>),
    SendOffsets(
        GroupMetadata,
        Vec<(String, i32, i64)>,
        oneshot::Sender<Result<()>>,
    ),
    /// Commit (true) or abort once everything sent is answered.
    End(bool, oneshot::Sender<Result<()>>),
}

/// A transactional producer's state in its sender task.
struct TxnState {
    id: String,
    producer: ProducerIdentity,
    /// Between begin and commit/abort.
    open: bool,
    /// Partitions already added to the open transaction.
    partitions: BTreeSet<TopicPartition>,
    /// Why the open transaction can only be aborted (a send failed).
    failed: Option<Error>,
    /// Once fenced, every later call fails.
    fenced: Option<Error>,
    /// Offsets were sent in the open transaction (its EndTxn is needed even
    /// with no records).
    offsets_sent: bool,
}

pub struct Producer {
    tx: mpsc::UnboundedSender<Command>,
    cluster: Arc<Cluster>,
}

impl Producer {
    pub async fn connect(client: ClientConfig, config: ProducerConfig) -> Result<Producer> {
        let cluster = Cluster::connect(client).await?;
        Self::with_cluster(cluster, config).await
    }

    pub async fn with_cluster(
        cluster: Arc<Cluster>,
        mut config: ProducerConfig,
    ) -> Result<Producer> {
        if config.enable_idempotence {
            config.acks = Acks::All;
            // More than 5 in flight can reorder on the broker's dedup window.
            config.max_in_flight = config.max_in_flight.clamp(1, 5);
        }
        if let Some(id) = &config.transactional_id
            && id.is_empty()
        {
            return Err(Error::Config("transactional.id must not be empty".into()));
        }
        if config.transactional_id.is_some() {
            config.enable_idempotence = true;
            config.acks = Acks::All;
            config.max_in_flight = config.max_in_flight.clamp(1, 5);
        }
        config.max_in_flight = config.max_in_flight.max(1);
        config.batch_size = config.batch_size.max(1);
        let txn = match &config.transactional_id {
            Some(id) => Some(TxnState {
                id: id.clone(),
                producer: transaction::init(&cluster, id, config.transaction_timeout).await?,
                open: false,
                partitions: BTreeSet::new(),
                failed: None,
                fenced: None,
                offsets_sent: false,
            }),
            None => None,
        };
        let (producer_id, producer_epoch) = match &txn {
            Some(t) => (t.producer.id, t.producer.epoch),
            None if config.enable_idempotence => init_producer_id(&cluster).await?,
            None => (-1, -1),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let sender = SenderTask {
            cluster: cluster.clone(),
            acc: Accumulator::new(config.batch_size, config.linger, config.max_in_flight),
            partitioner: StickyPartitioner::default(),
            config,
            producer_id,
            producer_epoch,
            done_tx,
            flush_waiters: Vec::new(),
            flushing: false,
            unacked: 0,
            txn,
            ending: None,
            needs_new_producer_id: false,
        };
        tokio::spawn(sender.run(rx, done_rx));
        Ok(Producer { tx, cluster })
    }

    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Enqueues the record; the returned future resolves when the broker
    /// acknowledged it. Records to one partition are delivered in `send`
    /// order.
    pub fn send(&self, record: ProducerRecord) -> DeliveryFuture {
        let (ack, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(Command::Send(_, ack))) =
            self.tx.send(Command::Send(record, ack))
        {
            let _ = ack.send(Err(Error::Closed("producer")));
        }
        DeliveryFuture(rx)
    }

    /// Sends everything buffered now and waits until all of it is answered.
    pub async fn flush(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .map_err(|_| Error::Closed("producer"))?;
        rx.await.map_err(|_| Error::Closed("producer"))
    }

    async fn ask(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Command) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(make(tx))
            .map_err(|_| Error::Closed("producer"))?;
        rx.await.map_err(|_| Error::Closed("producer"))?
    }

    /// Starts a transaction (transactional producers only): what is sent
    /// from now on is committed or aborted together.
    pub async fn begin_transaction(&self) -> Result<()> {
        self.ask(Command::Begin).await
    }

    /// Makes `offsets` (topic, partition, next offset to read) the group's
    /// committed offsets if, and only if, the open transaction commits: a
    /// consume-transform-produce step then happens exactly once.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: Vec<(String, i32, i64)>,
        group: GroupMetadata,
    ) -> Result<()> {
        self.ask(|tx| Command::SendOffsets(group, offsets, tx))
            .await
    }

    /// Sends everything buffered, then commits the open transaction.
    /// [`Error::AbortableTransaction`] if a send in it failed (abort instead),
    /// [`Error::Fenced`] if another instance took over.
    pub async fn commit_transaction(&self) -> Result<()> {
        self.ask(|tx| Command::End(true, tx)).await
    }

    /// Aborts the open transaction: read_committed consumers never see it.
    pub async fn abort_transaction(&self) -> Result<()> {
        self.ask(|tx| Command::End(false, tx)).await
    }

    /// Flushes, then stops the background task.
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Close(tx)).is_err() {
            return Ok(());
        }
        let _ = rx.await;
        Ok(())
    }
}

async fn init_producer_id(cluster: &Cluster) -> Result<(i64, i16)> {
    let mut attempts = 0;
    loop {
        let conn = cluster.any().await?;
        // The default carries an empty transactional id, which asks for a
        // transactional producer.
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(-1)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1);
        let resp = conn.send(&req).await?;
        match crate::error::check(resp.error_code, None, || "get a producer id".into()) {
            Ok(()) => return Ok((*resp.producer_id, resp.producer_epoch)),
            Err(e) if e.is_retriable() && attempts < 10 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

pub(crate) struct PendingRecord {
    record: Record,
    ack: Option<Ack>,
}

pub(crate) struct ProducerBatch {
    tp: TopicPartition,
    records: Vec<PendingRecord>,
    size: usize,
    created: Instant,
    /// Set when first sent; no record may join afterwards.
    base_sequence: Option<i32>,
    attempts: u32,
    not_before: Option<Instant>,
    encoded: Option<Bytes>,
}

impl ProducerBatch {
    fn fail(self, err: &Error) {
        for r in self.records {
            if let Some(ack) = r.ack {
                let _ = ack.send(Err(err.clone()));
            }
        }
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    next_sequence: i32,
    in_flight: usize,
    /// A batch came back for retry: hold later ones until everything in
    /// flight is answered, so the retry goes out first and order holds.
    retrying: bool,
    /// The next sequence the broker expects, as far as its answers tell:
    /// an OUT_OF_ORDER_SEQUENCE_NUMBER for exactly this batch is a real gap.
    acked_up_to: i32,
}

/// Per-partition batching with no I/O, so its rules are unit-testable.
pub(crate) struct Accumulator {
    batch_size: usize,
    linger: Duration,
    max_in_flight: usize,
    queues: BTreeMap<TopicPartition, PartitionQueue>,
}

/// Rough wire size of a record, for deciding when a batch is full.
fn record_size(r: &Record) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()) + 4)
        .sum();
    21 + r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + headers
}

impl Accumulator {
    pub(crate) fn new(batch_size: usize, linger: Duration, max_in_flight: usize) -> Self {
        Self {
            batch_size,
            linger,
            max_in_flight,
            queues: BTreeMap::new(),
        }
    }

    /// Adds a record; returns true if it started a new batch.
    pub(crate) fn append(
        &mut self,
        tp: TopicPartition,
        mut record: PendingRecord,
        now: Instant,
    ) -> bool {
        let size = record_size(&record.record);
        let q = self.queues.entry(tp.clone()).or_default();
        if let Some(b) = q.batches.back_mut()
            && b.base_sequence.is_none()
            && b.size + size <= self.batch_size
        {
            record.record.offset = b.records.len() as i64;
            b.size += size;
            b.records.push(record);
            return false;
        }
        record.record.offset = 0;
        q.batches.push_back(ProducerBatch {
            tp,
            records: vec![record],
            size,
            created: now,
            base_sequence: None,
            attempts: 0,
            not_before: None,
            encoded: None,
        });
        true
    }

    fn front_ready(&self, q: &PartitionQueue, now: Instant, flush: bool) -> bool {
        let Some(b) = q.batches.front() else {
            return false;
        };
        if b.not_before.is_some_and(|t| t > now) {
            return false;
        }
        if q.in_flight >= self.max_in_flight || (q.retrying && q.in_flight > 0) {
            return false;
        }
        flush
            || b.base_sequence.is_some()
            || q.batches.len() > 1
            || b.size >= self.batch_size
            || now >= b.created + self.linger
    }

    /// Takes the ready front batch of every partition, assigning sequence
    /// numbers to batches sent for the first time (`idempotent`).
    pub(crate) fn drain(
        &mut self,
        now: Instant,
        flush: bool,
        idempotent: bool,
    ) -> Vec<ProducerBatch> {
        let mut out = Vec::new();
        let keys: Vec<TopicPartition> = self.queues.keys().cloned().collect();
        for tp in keys {
            let ready = self
                .queues
                .get(&tp)
                .is_some_and(|q| self.front_ready(q, now, flush));
            if !ready {
                continue;
            }
            let Some(q) = self.queues.get_mut(&tp) else {
                continue;
            };
            let Some(mut b) = q.batches.pop_front() else {
                continue;
            };
            if b.base_sequence.is_none() {
                let base = if idempotent { q.next_sequence } else { -1 };
                if idempotent {
                    q.next_sequence = wrapping_sequence(q.next_sequence, b.records.len());
                }
                b.base_sequence = Some(base);
            }
            if q.in_flight == 0 {
                q.retrying = false;
            }
            q.in_flight += 1;
            out.push(b);
        }
        out
    }

    /// An answer (or failure) arrived for one batch of `tp`.
    pub(crate) fn completed(&mut self, tp: &TopicPartition) {
        if let Some(q) = self.queues.get_mut(tp) {
            q.in_flight = q.in_flight.saturating_sub(1);
        }
    }

    /// Puts a batch back for another attempt, before every later batch.
    pub(crate) fn requeue(&mut self, batch: ProducerBatch) {
        let q = self.queues.entry(batch.tp.clone()).or_default();
        q.retrying = true;
        let seq = batch.base_sequence.unwrap_or(-1);
        let pos = q
            .batches
            .iter()
            .position(|b| b.base_sequence.is_none_or(|s| s > seq))
            .unwrap_or(q.batches.len());
        q.batches.insert(pos, batch);
    }

    /// When the next batch becomes ready by time alone.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter(|q| q.in_flight < self.max_in_flight && !(q.retrying && q.in_flight > 0))
            .filter_map(|q| q.batches.front())
            .map(|b| b.not_before.unwrap_or(b.created + self.linger))
            .min()
    }

    /// Batches sent and not yet answered, over every partition.
    fn in_flight(&self) -> usize {
        self.queues.values().map(|q| q.in_flight).sum()
    }

    /// `tp`'s broker acknowledged `batch` (idempotent): what it expects next.
    fn acknowledged(&mut self, batch: &ProducerBatch) {
        if let (Some(q), Some(base)) = (self.queues.get_mut(&batch.tp), batch.base_sequence) {
            q.acked_up_to = wrapping_sequence(base, batch.records.len());
        }
    }

    /// Whether `batch` is the one the broker should have taken next, so
    /// that OUT_OF_ORDER_SEQUENCE_NUMBER means the broker lost our state
    /// (not that an earlier batch is still being retried).
    fn is_next_expected(&self, batch: &ProducerBatch) -> bool {
        self.queues
            .get(&batch.tp)
            .is_some_and(|q| batch.base_sequence == Some(q.acked_up_to))
    }

    /// A new producer id: every queued batch is sent again from sequence 0
    /// under it. Only when nothing is in flight.
    fn restart_sequences(&mut self, producer_id: i64, epoch: i16) {
        for q in self.queues.values_mut() {
            q.next_sequence = 0;
            q.acked_up_to = 0;
            q.retrying = false;
            for b in &mut q.batches {
                b.base_sequence = None;
                b.encoded = None;
                for r in &mut b.records {
                    r.record.producer_id = producer_id;
                    r.record.producer_epoch = epoch;
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.queues.values().all(|q| q.batches.is_empty())
    }

    /// Fails every queued batch (used when the producer cannot continue).
    fn fail_all(&mut self, err: &Error) {
        for q in self.queues.values_mut() {
            for b in q.batches.drain(..) {
                b.fail(err);
            }
        }
    }
}

fn wrapping_sequence(seq: i32, n: usize) -> i32 {
    // Kafka wraps sequences from i32::MAX back to 0.
    ((seq as i64 + n as i64) % (i32::MAX as i64 + 1)) as i32
}

struct Done {
    batches: Vec<ProducerBatch>,
    result: Result<Option<ProduceResponse>>,
}

struct SenderTask {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    acc: Accumulator,
    partitioner: StickyPartitioner,
    producer_id: i64,
    producer_epoch: i16,
    done_tx: mpsc::UnboundedSender<Done>,
    flush_waiters: Vec<oneshot::Sender<()>>,
    flushing: bool,
    /// Records sent by the user and not yet acknowledged or failed.
    unacked: usize,
    txn: Option<TxnState>,
    /// A commit (true) or abort waiting for everything sent to be answered.
    ending: Option<(bool, oneshot::Sender<Result<()>>)>,
    /// The broker lost this idempotent producer's state (UNKNOWN_PRODUCER_ID,
    /// or a real sequence gap): get a new producer id once nothing is in flight.
    needs_new_producer_id: bool,
}

impl SenderTask {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Command>,
        mut done_rx: mpsc::UnboundedReceiver<Done>,
    ) {
        let mut closing: Option<Option<oneshot::Sender<()>>> = None;
        loop {
            let deadline = self.acc.next_deadline();
            tokio::select! {
                cmd = rx.recv(), if closing.is_none() => match cmd {
                    Some(Command::Send(record, ack)) => self.enqueue(record, ack).await,
                    Some(Command::Flush(tx)) => {
                        self.flushing = true;
                        self.flush_waiters.push(tx);
                    }
                    Some(Command::Close(tx)) => {
                        self.flushing = true;
                        closing = Some(Some(tx));
                    }
                    None => {
                        self.flushing = true;
                        closing = Some(None);
                    }
                    Some(Command::Begin(tx)) => {
                        let _ = tx.send(self.begin());
                    }
                    Some(Command::SendOffsets(group, offsets, tx)) => {
                        let _ = tx.send(self.send_offsets(&group, &offsets).await);
                    }
                    Some(Command::End(commit, tx)) => {
                        self.flushing = true;
                        self.ending = Some((commit, tx));
                    }
                },
                Some(done) = done_rx.recv() => self.on_done(done),
                _ = sleep_until(deadline), if deadline.is_some() => {}
            }
            self.send_ready().await;
            if self.unacked == 0
                && let Some((commit, tx)) = self.ending.take()
            {
                let _ = tx.send(self.end(commit).await);
            }
            if self.unacked == 0 {
                self.flushing = false;
                for w in self.flush_waiters.drain(..) {
                    let _ = w.send(());
                }
                if let Some(tx) = closing.take() {
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                    return;
                }
            }
        }
    }

    async fn enqueue(&mut self, record: ProducerRecord, ack: Ack) {
        let placed = match self.place(&record).await {
            Ok(partition) => self
                .join_transaction(&record.topic, partition)
                .await
                .map(|()| partition),
            Err(e) => Err(e),
        };
        match placed {
            Ok(partition) => {
                let timestamp = record.timestamp.unwrap_or_else(now_millis);
                let r = Record {
                    transactional: self.txn.is_some(),
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: self.producer_id,
                    producer_epoch: self.producer_epoch,
                    timestamp_type: TimestampType::Creation,
                    offset: 0,
                    sequence: 0,
                    timestamp,
                    key: record.key,
                    value: record.value,
                    headers: record
                        .headers
                        .into_iter()
                        .map(|(k, v)| (StrBytes::from_string(k), v))
                        .collect::<IndexMap<_, _>>(),
                };
                self.unacked += 1;
                let tp = TopicPartition {
                    topic: record.topic,
                    partition,
                };
                self.acc.append(
                    tp,
                    PendingRecord {
                        record: r,
                        ack: Some(ack),
                    },
                    Instant::now(),
                );
            }
            Err(e) => {
                let _ = ack.send(Err(e));
            }
        }
    }

    fn begin(&mut self) -> Result<()> {
        let Some(txn) = &mut self.txn else {
            return Err(Error::Config(
                "begin_transaction needs a transactional.id".into(),
            ));
        };
        if let Some(e) = &txn.fenced {
            return Err(e.clone());
        }
        if txn.open {
            return Err(Error::Other("a transaction is already open".into()));
        }
        txn.open = true;
        txn.partitions.clear();
        txn.failed = None;
        Ok(())
    }

    /// The open transaction, for a call that needs one.
    fn open_txn(&mut self) -> Result<&mut TxnState> {
        let Some(txn) = &mut self.txn else {
            return Err(Error::Config("transactions need a transactional.id".into()));
        };
        if let Some(e) = &txn.fenced {
            return Err(e.clone());
        }
        if !txn.open {
            return Err(Error::Other(
                "no transaction is open: call begin_transaction".into(),
            ));
        }
        Ok(txn)
    }

    /// Before a transactional producer's first record to a partition in a
    /// transaction, the coordinator must know the partition (it writes the
    /// partition's marker at the end).
    async fn join_transaction(&mut self, topic: &str, partition: i32) -> Result<()> {
        if self.txn.is_none() {
            return Ok(());
        }
        let cluster = Arc::clone(&self.cluster);
        let txn = self.open_txn()?;
        let tp = TopicPartition {
            topic: topic.to_owned(),
            partition,
        };
        if txn.partitions.contains(&tp) {
            return Ok(());
        }
        let added = transaction::add_partitions(
            &cluster,
            &txn.id,
            txn.producer,
            &[(topic.to_owned(), partition)],
        )
        .await;
        match added {
            Ok(()) => {
                txn.partitions.insert(tp);
                Ok(())
            }
            Err(e) => {
                if matches!(e, Error::Fenced(_)) {
                    txn.fenced = Some(e.clone());
                } else {
                    txn.failed.get_or_insert(e.clone());
                }
                Err(e)
            }
        }
    }

    async fn send_offsets(
        &mut self,
        group: &GroupMetadata,
        offsets: &[(String, i32, i64)],
    ) -> Result<()> {
        let cluster = Arc::clone(&self.cluster);
        let txn = self.open_txn()?;
        let sent = transaction::send_offsets(&cluster, &txn.id, txn.producer, group, offsets).await;
        match &sent {
            Ok(()) => txn.offsets_sent = true,
            Err(e @ Error::Fenced(_)) => txn.fenced = Some(e.clone()),
            Err(_) => {}
        }
        sent
    }

    /// Everything sent is answered: commit or abort.
    async fn end(&mut self, commit: bool) -> Result<()> {
        let cluster = Arc::clone(&self.cluster);
        let txn = self.open_txn()?;
        if commit && let Some(e) = &txn.failed {
            return Err(Error::AbortableTransaction(e.to_string()));
        }
        // A transaction that wrote nothing has nothing to end.
        let ended = if txn.partitions.is_empty() && !txn.offsets_sent {
            Ok(())
        } else {
            transaction::end(&cluster, &txn.id, txn.producer, commit).await
        };
        match &ended {
            Ok(()) => {
                txn.open = false;
                txn.partitions.clear();
                txn.failed = None;
                txn.offsets_sent = false;
            }
            Err(e @ Error::Fenced(_)) => txn.fenced = Some(e.clone()),
            Err(_) => {}
        }
        ended
    }

    async fn place(&mut self, record: &ProducerRecord) -> Result<i32> {
        let meta = self.cluster.topic_or_fetch(&record.topic).await?;
        let n = meta.partitions.len() as i32;
        if n == 0 {
            return Err(Error::NoLeader {
                topic: record.topic.clone(),
                partition: -1,
            });
        }
        Ok(match (record.partition, &record.key) {
            (Some(p), _) if p < 0 || p >= n => {
                return Err(Error::UnknownPartition {
                    topic: record.topic.clone(),
                    partition: p,
                });
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => self.partitioner.partition(&record.topic, n),
        })
    }

    /// Retrying into a producer state the broker no longer has would only
    /// fail until the delivery timeout: start over under a new producer id
    /// (Kafka's producer bumps its epoch the same way).
    async fn renew_producer_id(&mut self) -> bool {
        if !self.needs_new_producer_id {
            return true;
        }
        if self.acc.in_flight() > 0 {
            return false;
        }
        match init_producer_id(&self.cluster).await {
            Ok((id, epoch)) => {
                tracing::info!(
                    old = self.producer_id,
                    new = id,
                    "the broker lost this producer's sequence state; continuing under a new producer id"
                );
                self.producer_id = id;
                self.producer_epoch = epoch;
                self.acc.restart_sequences(id, epoch);
                self.needs_new_producer_id = false;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "getting a new producer id failed; retrying");
                false
            }
        }
    }

    async fn send_ready(&mut self) {
        if !self.renew_producer_id().await {
            return;
        }
        let now = Instant::now();
        let batches = self
            .acc
            .drain(now, self.flushing, self.config.enable_idempotence);
        if batches.is_empty() {
            return;
        }
        let mut by_leader: BTreeMap<i32, Vec<ProducerBatch>> = BTreeMap::new();
        let mut refreshed = false;
        for b in batches {
            if let Some(n) = self
                .cluster
                .topic(&b.tp.topic)
                .map(|t| t.partitions.len() as i32)
            {
                self.partitioner
                    .on_batch_sent(&b.tp.topic, b.tp.partition, n);
            }
            let mut leader = self.cluster.leader(&b.tp.topic, b.tp.partition);
            if leader.is_none() && !refreshed {
                refreshed = true;
                let topics: Vec<String> = vec![b.tp.topic.clone()];
                let _ = self.cluster.refresh(Some(&topics)).await;
                leader = self.cluster.leader(&b.tp.topic, b.tp.partition);
            }
            match leader {
                Some(l) => by_leader.entry(l).or_default().push(b),
                None => {
                    let err = Error::NoLeader {
                        topic: b.tp.topic.clone(),
                        partition: b.tp.partition,
                    };
                    self.acc.completed(&b.tp);
                    self.retry_or_fail(b, err);
                }
            }
        }
        for (leader, batches) in by_leader {
            self.send_to(leader, batches).await;
        }
    }

    async fn send_to(&mut self, leader: i32, mut batches: Vec<ProducerBatch>) {
        let conn = match self.cluster.broker(leader).await {
            Ok(c) => c,
            Err(e) => {
                let _ = self.done_tx.send(Done {
                    batches,
                    result: Err(e),
                });
                return;
            }
        };
        let version = match conn.capped_version::<ProduceRequest>(PRODUCE_MAX_VERSION) {
            Ok(v) => v,
            Err(e) => {
                let _ = self.done_tx.send(Done {
                    batches,
                    result: Err(e),
                });
                return;
            }
        };
        let mut topics: BTreeMap<String, Vec<PartitionProduceData>> = BTreeMap::new();
        let mut encode_err = None;
        for b in &mut batches {
            if b.encoded.is_none() {
                match encode_batch(b, self.config.compression) {
                    Ok(bytes) => b.encoded = Some(bytes),
                    Err(e) => {
                        encode_err = Some(e);
                        break;
                    }
                }
            }
            topics.entry(b.tp.topic.clone()).or_default().push(
                PartitionProduceData::default()
                    .with_index(b.tp.partition)
                    .with_records(b.encoded.clone()),
            );
        }
        if let Some(e) = encode_err {
            let _ = self.done_tx.send(Done {
                batches,
                result: Err(e),
            });
            return;
        }
        let req = ProduceRequest::default()
            .with_acks(self.config.acks.wire())
            .with_timeout_ms(millis_i32(self.cluster.config().request_timeout))
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        TopicProduceData::default()
                            .with_name(TopicName(sb(&t)))
                            .with_partition_data(parts)
                    })
                    .collect(),
            );
        if self.config.acks == Acks::None {
            let result = conn.send_no_response(&req, version).map(|_| None);
            let _ = self.done_tx.send(Done { batches, result });
            return;
        }
        // Begun here, in order, so batches of one partition hit the wire in
        // sequence order; the answer is awaited off the loop.
        let timeout = self.cluster.config().request_timeout + Duration::from_secs(5);
        match conn.begin(&req, version, timeout) {
            Ok(pending) => {
                let done_tx = self.done_tx.clone();
                tokio::spawn(async move {
                    let result = pending.wait().await.map(Some);
                    let _ = done_tx.send(Done { batches, result });
                });
            }
            Err(e) => {
                let _ = self.done_tx.send(Done {
                    batches,
                    result: Err(e),
                });
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        let resp = match done.result {
            Err(e) => {
                // The leader cannot be reached: it may have died, so ask
                // where the partition is led now before the retry.
                let unreachable = matches!(e, Error::Connect { .. } | Error::Disconnected { .. });
                for b in done.batches {
                    if unreachable {
                        self.cluster.invalidate(&b.tp.topic);
                    }
                    self.acc.completed(&b.tp);
                    self.retry_or_fail(b, e.clone());
                }
                return;
            }
            Ok(r) => r,
        };
        let mut answers: HashMap<(String, i32), _> = HashMap::new();
        if let Some(resp) = resp {
            for t in resp.responses {
                for p in t.partition_responses {
                    answers.insert((t.name.to_string(), p.index), p);
                }
            }
        }
        for b in done.batches {
            self.acc.completed(&b.tp);
            if self.config.acks == Acks::None {
                self.succeed(b, -1, -1);
                continue;
            }
            let Some(p) = answers.remove(&(b.tp.topic.clone(), b.tp.partition)) else {
                let err = Error::Other(format!(
                    "broker did not answer for {}-{}",
                    b.tp.topic, b.tp.partition
                ));
                self.retry_or_fail(b, err);
                continue;
            };
            if p.error_code == 0 || p.error_code == ResponseError::DuplicateSequenceNumber.code() {
                // A duplicate means an earlier attempt was written: success.
                self.acc.acknowledged(&b);
                self.succeed(b, p.base_offset, p.log_append_time_ms);
                continue;
            }
            let err = Error::kafka(
                p.error_code,
                p.error_message.map(|m| m.to_string()),
                format!("produce to {}-{}", b.tp.topic, b.tp.partition),
            );
            let stale_metadata = [
                ResponseError::NotLeaderOrFollower,
                ResponseError::UnknownTopicOrPartition,
                ResponseError::LeaderNotAvailable,
            ]
            .iter()
            .any(|e| e.code() == p.error_code);
            if stale_metadata {
                self.cluster.invalidate(&b.tp.topic);
            }
            self.retry_or_fail(b, err);
        }
    }

    fn succeed(&mut self, b: ProducerBatch, base_offset: i64, log_append_time: i64) {
        for (i, r) in b.records.into_iter().enumerate() {
            self.unacked = self.unacked.saturating_sub(1);
            if let Some(ack) = r.ack {
                let _ = ack.send(Ok(RecordMetadata {
                    topic: b.tp.topic.clone(),
                    partition: b.tp.partition,
                    offset: if base_offset >= 0 {
                        base_offset + i as i64
                    } else {
                        -1
                    },
                    timestamp: if log_append_time >= 0 {
                        log_append_time
                    } else {
                        r.record.timestamp
                    },
                }));
            }
        }
    }

    fn retry_or_fail(&mut self, mut b: ProducerBatch, err: Error) {
        let out_of_order = err.kafka_error() == Some(ResponseError::OutOfOrderSequenceNumber);
        // The broker forgot us, or has a real gap before this batch: this
        // batch fails, the rest go again under a new producer id. (A
        // transactional producer's state belongs to its transaction: it
        // must abort instead.)
        let state_lost = self.config.enable_idempotence
            && self.txn.is_none()
            && (err.kafka_error() == Some(ResponseError::UnknownProducerId)
                || (out_of_order && self.acc.is_next_expected(&b)));
        if state_lost {
            self.needs_new_producer_id = true;
            self.unacked = self.unacked.saturating_sub(b.records.len());
            b.fail(&err);
            return;
        }
        let retriable = err.is_retriable() || out_of_order;
        let now = Instant::now();
        if retriable
            && b.attempts < self.config.retries
            && now < b.created + self.config.delivery_timeout
        {
            b.attempts += 1;
            b.not_before = Some(now + self.config.retry_backoff);
            tracing::debug!(topic = %b.tp.topic, partition = b.tp.partition, attempt = b.attempts, error = %err, "retrying batch");
            self.acc.requeue(b);
            return;
        }
        self.unacked = self.unacked.saturating_sub(b.records.len());
        if let Some(txn) = &mut self.txn {
            if matches!(
                err.kafka_error(),
                Some(ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch)
            ) {
                txn.fenced = Some(Error::Fenced(err.to_string()));
            } else if txn.open {
                txn.failed.get_or_insert(err.clone());
            }
        }
        b.fail(&err);
    }
}

impl Drop for SenderTask {
    fn drop(&mut self) {
        self.acc.fail_all(&Error::Closed("producer"));
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn encode_batch(b: &mut ProducerBatch, compression: Compression) -> Result<Bytes> {
    let base = b.base_sequence.unwrap_or(-1);
    for (i, r) in b.records.iter_mut().enumerate() {
        r.record.offset = i as i64;
        // The encoder derives the base sequence from record 0 and splits the
        // batch when offset - sequence changes, so keep them in step.
        r.record.sequence = if base < 0 {
            (i as i32).wrapping_sub(1)
        } else {
            wrapping_sequence(base, i)
        };
    }
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        b.records.iter().map(|r| &r.record),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|e| {
        Error::Other(format!(
            "encoding a record batch for {}-{}: {e}",
            b.tp.topic, b.tp.partition
        ))
    })?;
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn rec(value: &str) -> PendingRecord {
        PendingRecord {
            record: Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: 7,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: 0,
                timestamp: 1000,
                key: None,
                value: Some(Bytes::from(value.to_string())),
                headers: IndexMap::new(),
            },
            ack: None,
        }
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn batches_wait_for_linger_unless_full() {
        let start = Instant::now();
        let mut acc = Accumulator::new(100, Duration::from_millis(5), 5);
        assert!(acc.append(tp(0), rec("a"), start));
        assert!(!acc.append(tp(0), rec("b"), start));
        assert!(
            acc.drain(start, false, true).is_empty(),
            "not full, linger not over"
        );
        assert_eq!(acc.next_deadline(), Some(start + Duration::from_millis(5)));
        let batches = acc.drain(start + Duration::from_millis(5), false, true);
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].records.len(), 2);

        // 4 records of 21+40 bytes: a batch of 100 bytes holds one each.
        let big = "x".repeat(40);
        for _ in 0..4 {
            acc.append(tp(1), rec(&big), start);
        }
        // Full batches go at once, one per partition per drain.
        assert_eq!(acc.drain(start, false, true).len(), 1);
        assert_eq!(acc.drain(start, false, true).len(), 1);
        // Flush sends the last, still-open batch too.
        assert_eq!(acc.drain(start, false, true).len(), 1);
        assert_eq!(acc.drain(start, true, true).len(), 1);
        assert!(acc.is_empty());
    }

    #[test]
    fn sequences_are_per_partition_and_respect_in_flight_limit() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1, Duration::ZERO, 2);
        for _ in 0..3 {
            acc.append(tp(0), rec("a"), t0);
        }
        acc.append(tp(1), rec("b"), t0);
        let first = acc.drain(t0, false, true);
        let seqs: Vec<_> = first
            .iter()
            .map(|b| (b.tp.partition, b.base_sequence))
            .collect();
        assert_eq!(seqs, vec![(0, Some(0)), (1, Some(0))]);
        let second = acc.drain(t0, false, true);
        assert_eq!(
            second.iter().map(|b| b.base_sequence).collect::<Vec<_>>(),
            vec![Some(1)]
        );
        // Two in flight for partition 0: the third waits.
        assert!(acc.drain(t0, false, true).is_empty());
        acc.completed(&tp(0));
        let third = acc.drain(t0, false, true);
        assert_eq!(third[0].base_sequence, Some(2));
    }

    #[test]
    fn retried_batch_goes_first_with_its_sequence() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1, Duration::ZERO, 5);
        for _ in 0..3 {
            acc.append(tp(0), rec("a"), t0);
        }
        let mut sent: Vec<ProducerBatch> = Vec::new();
        for _ in 0..2 {
            sent.extend(acc.drain(t0, false, true));
        }
        assert_eq!(sent.len(), 2);
        // Batch 0 failed while batch 1 is still in flight.
        let failed = sent.remove(0);
        acc.completed(&failed.tp);
        acc.requeue(failed);
        assert!(
            acc.drain(t0, false, true).is_empty(),
            "held until batch 1 answers"
        );
        acc.completed(&tp(0));
        let retry = acc.drain(t0, false, true);
        assert_eq!(retry[0].base_sequence, Some(0));
        acc.completed(&tp(0));
        assert_eq!(acc.drain(t0, false, true)[0].base_sequence, Some(2));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(wrapping_sequence(i32::MAX, 1), 0);
        assert_eq!(wrapping_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(wrapping_sequence(5, 3), 8);
    }

    #[test]
    fn encoded_batch_carries_producer_and_sequence() {
        let t0 = Instant::now();
        let mut acc = Accumulator::new(1 << 20, Duration::ZERO, 5);
        for v in ["a", "b", "c"] {
            acc.append(tp(0), rec(v), t0);
        }
        acc.queues.get_mut(&tp(0)).unwrap().next_sequence = 41;
        let mut b = acc.drain(t0, true, true).pop().unwrap();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut bytes = encode_batch(&mut b, c).unwrap();
            let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
            assert_eq!(info.len(), 1, "one batch");
            assert_eq!(info[0].base_sequence, 41);
            assert_eq!(info[0].producer_id, 7);
            assert_eq!(info[0].record_count, 3);
            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
            let values: Vec<_> = set
                .records
                .iter()
                .map(|r| r.value.clone().unwrap())
                .collect();
            assert_eq!(
                values,
                vec![Bytes::from("a"), Bytes::from("b"), Bytes::from("c")]
            );
        }
        // Without idempotence the batch has no sequence.
        let mut acc = Accumulator::new(1 << 20, Duration::ZERO, 5);
        acc.append(tp(0), rec("a"), t0);
        acc.append(tp(0), rec("b"), t0);
        let mut b = acc.drain(t0, true, false).pop().unwrap();
        let bytes = encode_batch(&mut b, Compression::None).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
        assert_eq!((info.len(), info[0].base_sequence), (1, -1));
    }

    mod against_fake_broker {
        use super::*;
        use crate::conn::tests::{encode_msg, fake_tcp_broker};
        use kafka_protocol::messages::api_versions_response::ApiVersion;
        use kafka_protocol::messages::metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        };
        use kafka_protocol::messages::produce_response::{
            PartitionProduceResponse, TopicProduceResponse,
        };
        use kafka_protocol::messages::{
            ApiVersionsResponse, InitProducerIdResponse, MetadataResponse,
        };
        use kafka_protocol::protocol::Decodable;
        use std::sync::Mutex;

        #[derive(Default)]
        struct Log {
            produce_calls: usize,
            next_sequence: i32,
            /// base sequence -> base offset, for answering duplicates.
            offsets: HashMap<i32, i64>,
            next_offset: i64,
            /// Record values in log order.
            values: Vec<Bytes>,
        }

        /// ApiVersions and Metadata of a one-broker cluster with topic "t".
        fn cluster_answer(port: u16, api: i16, version: i16) -> Option<Bytes> {
            Some(match api {
                18 => {
                    let keys = [(18, 0, 4), (3, 0, 12), (0, 3, 12), (22, 0, 5)]
                        .iter()
                        .map(|&(k, min, max)| {
                            ApiVersion::default()
                                .with_api_key(k)
                                .with_min_version(min)
                                .with_max_version(max)
                        })
                        .collect();
                    encode_msg(&ApiVersionsResponse::default().with_api_keys(keys), version)
                }
                3 => {
                    let resp = MetadataResponse::default()
                        .with_brokers(vec![
                            MetadataResponseBroker::default()
                                .with_node_id(0.into())
                                .with_host(sb("127.0.0.1"))
                                .with_port(port as i32),
                        ])
                        .with_topics(vec![
                            MetadataResponseTopic::default()
                                .with_name(Some(TopicName(sb("t"))))
                                .with_partitions(vec![
                                    MetadataResponsePartition::default()
                                        .with_partition_index(0)
                                        .with_leader_id(0.into())
                                        .with_replica_nodes(vec![0.into()])
                                        .with_isr_nodes(vec![0.into()]),
                                ]),
                        ]);
                    encode_msg(&resp, version)
                }
                _ => return None,
            })
        }

        fn answer(
            port: u16,
            log: &Mutex<Log>,
            api: i16,
            version: i16,
            mut body: Bytes,
        ) -> Option<Bytes> {
            if let Some(bytes) = cluster_answer(port, api, version) {
                return Some(bytes);
            }
            Some(match api {
                22 => encode_msg(
                    &InitProducerIdResponse::default()
                        .with_producer_id(1000.into())
                        .with_producer_epoch(0),
                    version,
                ),
                0 => {
                    let req = ProduceRequest::decode(&mut body, version).unwrap();
                    let mut log = log.lock().unwrap();
                    log.produce_calls += 1;
                    let call = log.produce_calls;
                    let mut parts = Vec::new();
                    for t in &req.topic_data {
                        for p in &t.partition_data {
                            let mut bytes = p.records.clone().unwrap();
                            let info =
                                RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
                            let (seq, count) = (info[0].base_sequence, info[0].record_count);
                            let mut resp = PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_log_append_time_ms(-1);
                            if call == 1 {
                                // Leadership "moved": nothing written.
                                resp.error_code = ResponseError::NotLeaderOrFollower.code();
                            } else if seq < log.next_sequence {
                                resp.error_code = ResponseError::DuplicateSequenceNumber.code();
                                resp.base_offset = log.offsets[&seq];
                            } else if seq > log.next_sequence {
                                resp.error_code = ResponseError::OutOfOrderSequenceNumber.code();
                            } else {
                                let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                                let base = log.next_offset;
                                log.offsets.insert(seq, base);
                                log.next_offset += count as i64;
                                log.next_sequence += count;
                                log.values
                                    .extend(set.records.into_iter().map(|r| r.value.unwrap()));
                                resp.base_offset = base;
                                if call == 3 {
                                    // Written, but the answer "got lost": the
                                    // retry must be taken as a duplicate.
                                    resp.error_code = ResponseError::RequestTimedOut.code();
                                }
                            }
                            parts.push(resp);
                        }
                    }
                    let resp = ProduceResponse::default().with_responses(vec![
                        TopicProduceResponse::default()
                            .with_name(TopicName(sb("t")))
                            .with_partition_responses(parts),
                    ]);
                    encode_msg(&resp, version)
                }
                _ => return None,
            })
        }

        #[tokio::test]
        async fn retries_keep_order_and_duplicates_count_as_delivered() {
            let log = Arc::new(Mutex::new(Log::default()));
            let l = log.clone();
            let port = fake_tcp_broker(move |port| {
                move |api, version, body| answer(port, &l, api, version, body)
            })
            .await;
            let client = ClientConfig {
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::new(format!("127.0.0.1:{port}"))
            };
            let config = ProducerConfig {
                batch_size: 64,
                linger: Duration::ZERO,
                retry_backoff: Duration::from_millis(5),
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(client, config).await.unwrap();
            let acks: Vec<_> = (0..40)
                .map(|i| producer.send(ProducerRecord::new("t", format!("v{i:02}"))))
                .collect();
            let mut offsets = Vec::new();
            for a in acks {
                let md = tokio::time::timeout(Duration::from_secs(10), a)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(md.partition, 0);
                offsets.push(md.offset);
            }
            assert_eq!(
                offsets,
                (0..40).collect::<Vec<i64>>(),
                "offsets follow send order"
            );
            producer.close().await.unwrap();
            let log = log.lock().unwrap();
            let want: Vec<Bytes> = (0..40).map(|i| Bytes::from(format!("v{i:02}"))).collect();
            assert_eq!(log.values, want, "written once each, in order");
            assert!(log.produce_calls > 3);
        }

        /// A broker that forgets producer 1000 after ten records (its state
        /// expired): answers UNKNOWN_PRODUCER_ID to it, hands out 1001 next.
        /// Producer ids handed out, and (producer id, sequence, value) written.
        type ForgetfulLog = (i64, Vec<(i64, i32, Bytes)>);

        fn forgetful(
            port: u16,
            log: &Mutex<ForgetfulLog>,
            api: i16,
            version: i16,
            mut body: Bytes,
        ) -> Option<Bytes> {
            if let Some(bytes) = cluster_answer(port, api, version) {
                return Some(bytes);
            }
            Some(match api {
                22 => {
                    let mut l = log.lock().unwrap();
                    l.0 += 1;
                    encode_msg(
                        &InitProducerIdResponse::default()
                            .with_producer_id((999 + l.0).into())
                            .with_producer_epoch(0),
                        version,
                    )
                }
                0 => {
                    let req = ProduceRequest::decode(&mut body, version).unwrap();
                    let mut l = log.lock().unwrap();
                    let mut parts = Vec::new();
                    for p in req.topic_data.iter().flat_map(|t| &t.partition_data) {
                        let mut bytes = p.records.clone().unwrap();
                        let info =
                            RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
                        let (pid, seq) = (info[0].producer_id, info[0].base_sequence);
                        let mut resp = PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_log_append_time_ms(-1);
                        if pid == 1000 && l.1.len() >= 10 {
                            resp.error_code = ResponseError::UnknownProducerId.code();
                        } else {
                            let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
                            resp.base_offset = l.1.len() as i64;
                            for (i, r) in set.records.into_iter().enumerate() {
                                l.1.push((pid, seq + i as i32, r.value.unwrap()));
                            }
                        }
                        parts.push(resp);
                    }
                    encode_msg(
                        &ProduceResponse::default().with_responses(vec![
                            TopicProduceResponse::default()
                                .with_name(TopicName(sb("t")))
                                .with_partition_responses(parts),
                        ]),
                        version,
                    )
                }
                _ => return None,
            })
        }

        #[tokio::test]
        async fn a_lost_producer_state_is_left_behind_under_a_new_producer_id() {
            let log = Arc::new(Mutex::new((0i64, Vec::new())));
            let l = log.clone();
            let port = fake_tcp_broker(move |port| {
                move |api, version, body| forgetful(port, &l, api, version, body)
            })
            .await;
            let client = ClientConfig {
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::new(format!("127.0.0.1:{port}"))
            };
            let config = ProducerConfig {
                batch_size: 1,
                linger: Duration::ZERO,
                max_in_flight: 1,
                retry_backoff: Duration::from_millis(5),
                ..ProducerConfig::default()
            };
            let producer = Producer::connect(client, config).await.unwrap();
            for i in 0..10 {
                producer
                    .send(ProducerRecord::new("t", format!("a{i}")))
                    .await
                    .unwrap();
            }
            let lost = producer.send(ProducerRecord::new("t", "lost")).await;
            assert_eq!(
                lost.unwrap_err().kafka_error(),
                Some(ResponseError::UnknownProducerId),
                "the batch the broker refused fails with the broker's reason"
            );
            for i in 0..5 {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    producer.send(ProducerRecord::new("t", format!("b{i}"))),
                )
                .await
                .expect("delivered well before the delivery timeout")
                .expect("delivered under the new producer id");
            }
            producer.close().await.unwrap();
            let log = log.lock().unwrap();
            let after: Vec<(i64, i32)> = log.1[10..].iter().map(|(p, s, _)| (*p, *s)).collect();
            assert_eq!(
                after,
                (0..5).map(|s| (1001, s)).collect::<Vec<_>>(),
                "a new producer id, sequences from 0"
            );
        }
    }
}
