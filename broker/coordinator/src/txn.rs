//! The transaction coordinator's decisions, as pure functions: a transactional
//! id's stored state, how each producer request changes it, and the
//! `__transaction_state` record formats.
//!
//! The broker's shell (broker/src/txn.rs) writes the state a decision returns
//! to `__transaction_state` and waits for the in-sync replicas before it acts
//! on it or answers, so whichever broker next leads the partition resumes
//! from the same state.
//!
//! Records are Kafka's `TransactionLogKey` v0 (`transactional_id`) and
//! `TransactionLogValue` v0 (producer id, epoch, timeout, status, partitions,
//! last update and start times), classic non-flexible encoding.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::records::RecordError;

/// Kafka's error codes the decisions answer with.
pub mod code {
    pub const NONE: i16 = 0;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const PRODUCER_FENCED: i16 = 90;
}

/// A transaction's status, with Kafka's ids (stored in the value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name DescribeTransactions/ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Decided, with markers still to be written.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }

    /// No transaction in progress: a new one may begin.
    pub fn is_idle(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }
}

/// One topic-partition of a transaction.
pub type TxnPartition = (String, i32);

/// What is stored for one transactional id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub last_update_ms: i64,
    /// When the current (or last) transaction began; -1 before the first.
    pub start_ms: i64,
}

/// Epochs are int16; at the top the producer gets a new id (Kafka's rule).
const MAX_EPOCH: i16 = i16::MAX - 1;

/// An InitProducerId for a transactional id, decided.
#[derive(Debug, PartialEq, Eq)]
pub enum InitDecision {
    Error(i16),
    /// None stored yet, or the epoch is exhausted: allocate a producer id,
    /// then [`init_with_new_id`].
    NeedProducerId,
    /// Store this (epoch bumped, no transaction) and answer with it.
    Ready(TxnMetadata),
    /// A transaction is open: store this (PrepareAbort, epoch bumped so the
    /// old producer is fenced), write abort markers, and answer
    /// CONCURRENT_TRANSACTIONS so the producer retries once it is aborted.
    AbortFirst(TxnMetadata),
}

/// InitProducerId: `expected` is the producer id and epoch a producer that
/// already has one sends to recover (KIP-360), `None` for a fresh start.
pub fn init_producer_id(
    current: Option<&TxnMetadata>,
    timeout_ms: i32,
    max_timeout_ms: i32,
    expected: Option<(i64, i16)>,
    now_ms: i64,
) -> InitDecision {
    if timeout_ms <= 0 || timeout_ms > max_timeout_ms {
        return InitDecision::Error(code::INVALID_TRANSACTION_TIMEOUT);
    }
    let Some(current) = current else {
        return InitDecision::NeedProducerId;
    };
    if let Some((pid, epoch)) = expected
        && (pid != current.producer_id || epoch != current.producer_epoch)
    {
        return InitDecision::Error(code::PRODUCER_FENCED);
    }
    match current.state {
        TxnState::PrepareCommit
        | TxnState::PrepareAbort
        | TxnState::PrepareEpochFence
        | TxnState::Dead => InitDecision::Error(code::CONCURRENT_TRANSACTIONS),
        TxnState::Ongoing => {
            if current.producer_epoch >= MAX_EPOCH {
                // Abort under the current epoch; the retry gets a new id.
                return InitDecision::AbortFirst(TxnMetadata {
                    state: TxnState::PrepareAbort,
                    last_update_ms: now_ms,
                    ..current.clone()
                });
            }
            InitDecision::AbortFirst(fence(current, now_ms))
        }
        TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
            if current.producer_epoch >= MAX_EPOCH {
                return InitDecision::NeedProducerId;
            }
            InitDecision::Ready(TxnMetadata {
                producer_id: current.producer_id,
                producer_epoch: current.producer_epoch + 1,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: current.start_ms,
            })
        }
    }
}

/// The state for a freshly allocated producer id.
pub fn init_with_new_id(producer_id: i64, timeout_ms: i32, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        producer_id,
        producer_epoch: 0,
        timeout_ms,
        state: TxnState::Empty,
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        start_ms: -1,
    }
}

/// Aborting an open transaction on behalf of the coordinator (timeout, or a
/// new producer instance): the epoch goes up, so the old producer's next
/// request is fenced, and the markers carry the new epoch.
pub fn fence(current: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        producer_epoch: current.producer_epoch.saturating_add(1),
        state: TxnState::PrepareAbort,
        last_update_ms: now_ms,
        ..current.clone()
    }
}

/// Checks that a request's producer id and epoch are the transactional id's.
fn check_producer(
    current: Option<&TxnMetadata>,
    pid: i64,
    epoch: i16,
) -> Result<&TxnMetadata, i16> {
    let current = current.ok_or(code::INVALID_PRODUCER_ID_MAPPING)?;
    if current.producer_id != pid {
        return Err(code::INVALID_PRODUCER_ID_MAPPING);
    }
    if current.producer_epoch != epoch {
        return Err(code::PRODUCER_FENCED);
    }
    Ok(current)
}

/// AddPartitionsToTxn / AddOffsetsToTxn: `Ok(None)` when every partition is
/// already in the open transaction (nothing to store).
pub fn add_partitions(
    current: Option<&TxnMetadata>,
    pid: i64,
    epoch: i16,
    partitions: &[TxnPartition],
    now_ms: i64,
) -> Result<Option<TxnMetadata>, i16> {
    let current = check_producer(current, pid, epoch)?;
    match current.state {
        TxnState::Ongoing => {
            if partitions.iter().all(|p| current.partitions.contains(p)) {
                return Ok(None);
            }
            let mut next = current.clone();
            next.partitions.extend(partitions.iter().cloned());
            next.last_update_ms = now_ms;
            Ok(Some(next))
        }
        s if s.is_idle() => Ok(Some(TxnMetadata {
            state: TxnState::Ongoing,
            partitions: partitions.iter().cloned().collect(),
            last_update_ms: now_ms,
            start_ms: now_ms,
            ..current.clone()
        })),
        TxnState::Dead => Err(code::INVALID_TXN_STATE),
        _ => Err(code::CONCURRENT_TRANSACTIONS),
    }
}

/// An EndTxn, decided.
#[derive(Debug, PartialEq, Eq)]
pub enum EndDecision {
    /// Store this prepared state, answer, then write the markers.
    Prepare(TxnMetadata),
    /// Already ended this way (a retry): answer success.
    AlreadyDone,
}

pub fn end_txn(
    current: Option<&TxnMetadata>,
    pid: i64,
    epoch: i16,
    commit: bool,
    now_ms: i64,
) -> Result<EndDecision, i16> {
    let current = check_producer(current, pid, epoch)?;
    match (current.state, commit) {
        (TxnState::Ongoing, _) => Ok(EndDecision::Prepare(TxnMetadata {
            state: if commit {
                TxnState::PrepareCommit
            } else {
                TxnState::PrepareAbort
            },
            last_update_ms: now_ms,
            ..current.clone()
        })),
        (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
            Ok(EndDecision::AlreadyDone)
        }
        (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
            Err(code::CONCURRENT_TRANSACTIONS)
        }
        _ => Err(code::INVALID_TXN_STATE),
    }
}

/// Once every marker is written: the transaction is complete and holds no
/// partitions any more.
pub fn complete(prepared: &TxnMetadata, now_ms: i64) -> TxnMetadata {
    TxnMetadata {
        state: if prepared.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        },
        partitions: BTreeSet::new(),
        last_update_ms: now_ms,
        ..prepared.clone()
    }
}

/// An open transaction past its timeout, to be aborted by the coordinator.
pub fn timed_out(m: &TxnMetadata, now_ms: i64) -> bool {
    m.state == TxnState::Ongoing && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
}

/// An idle transactional id unused for `expiration_ms`, to be forgotten.
pub fn expired(m: &TxnMetadata, now_ms: i64, expiration_ms: i64) -> bool {
    m.state.is_idle() && now_ms.saturating_sub(m.last_update_ms) > expiration_ms
}

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;

fn put_string(buf: &mut BytesMut, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn need(buf: &Bytes, n: usize, what: &'static str) -> Result<(), RecordError> {
    if buf.remaining() < n {
        Err(RecordError::Truncated(what))
    } else {
        Ok(())
    }
}

fn get_string(buf: &mut Bytes, what: &'static str) -> Result<String, RecordError> {
    need(buf, 2, what)?;
    let len = buf.get_i16();
    if len < 0 {
        return Err(RecordError::InvalidLength(what, i64::from(len)));
    }
    need(buf, len as usize, what)?;
    let bytes = buf.split_to(len as usize);
    String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::InvalidUtf8(what))
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

pub fn decode_key(mut buf: Bytes) -> Result<String, RecordError> {
    need(&buf, 2, "transaction key version")?;
    let version = buf.get_i16();
    if version != KEY_VERSION {
        return Err(RecordError::UnsupportedVersion("transaction key", version));
    }
    get_string(&mut buf, "transactional id")
}

pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(m.producer_id);
    buf.put_i16(m.producer_epoch);
    buf.put_i32(m.timeout_ms);
    buf.put_i8(m.state.id());
    let mut by_topic: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &m.partitions {
        match by_topic.last_mut() {
            Some((t, ps)) if *t == topic.as_str() => ps.push(*partition),
            _ => by_topic.push((topic, vec![*partition])),
        }
    }
    buf.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut buf, topic);
        buf.put_i32(partitions.len() as i32);
        for p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i64(m.last_update_ms);
    buf.put_i64(m.start_ms);
    buf.freeze()
}

pub fn decode_value(mut buf: Bytes) -> Result<TxnMetadata, RecordError> {
    need(&buf, 2 + 8 + 2 + 4 + 1 + 4, "transaction value")?;
    let version = buf.get_i16();
    if version != VALUE_VERSION {
        return Err(RecordError::UnsupportedVersion(
            "transaction value",
            version,
        ));
    }
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let status = buf.get_i8();
    let state = TxnState::from_id(status).ok_or(RecordError::InvalidLength(
        "transaction status",
        i64::from(status),
    ))?;
    let topics = buf.get_i32();
    let mut partitions = BTreeSet::new();
    for _ in 0..topics.max(0) {
        let topic = get_string(&mut buf, "transaction topic")?;
        need(&buf, 4, "transaction partitions")?;
        let count = buf.get_i32();
        for _ in 0..count.max(0) {
            need(&buf, 4, "transaction partition")?;
            partitions.insert((topic.clone(), buf.get_i32()));
        }
    }
    need(&buf, 16, "transaction timestamps")?;
    Ok(TxnMetadata {
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        last_update_ms: buf.get_i64(),
        start_ms: buf.get_i64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TxnPartition {
        (t.to_owned(), p)
    }

    fn empty(pid: i64, epoch: i16) -> TxnMetadata {
        TxnMetadata {
            producer_id: pid,
            producer_epoch: epoch,
            timeout_ms: 60_000,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: 0,
            start_ms: -1,
        }
    }

    #[test]
    fn a_new_id_needs_a_producer_id_and_a_known_one_bumps_its_epoch() {
        assert_eq!(
            init_producer_id(None, 60_000, 900_000, None, 5),
            InitDecision::NeedProducerId
        );
        let InitDecision::Ready(next) =
            init_producer_id(Some(&empty(7, 3)), 1000, 900_000, None, 5)
        else {
            panic!("expected an epoch bump")
        };
        assert_eq!(
            (next.producer_id, next.producer_epoch, next.timeout_ms),
            (7, 4, 1000)
        );
        assert_eq!(
            init_producer_id(Some(&empty(7, MAX_EPOCH)), 1000, 900_000, None, 5),
            InitDecision::NeedProducerId,
            "an exhausted epoch gets a new producer id"
        );
        assert_eq!(
            init_producer_id(Some(&empty(7, 3)), 1_000_000, 900_000, None, 5),
            InitDecision::Error(code::INVALID_TRANSACTION_TIMEOUT)
        );
    }

    #[test]
    fn re_init_during_a_transaction_aborts_it_under_a_higher_epoch() {
        let open = add_partitions(Some(&empty(7, 3)), 7, 3, &[tp("a", 0)], 10)
            .unwrap()
            .unwrap();
        let InitDecision::AbortFirst(abort) =
            init_producer_id(Some(&open), 1000, 900_000, None, 20)
        else {
            panic!("expected the open transaction to be aborted first")
        };
        assert_eq!(abort.state, TxnState::PrepareAbort);
        assert_eq!(abort.producer_epoch, 4);
        assert_eq!(abort.partitions, open.partitions);
        // The old producer is fenced from then on.
        assert_eq!(
            end_txn(Some(&abort), 7, 3, true, 30),
            Err(code::PRODUCER_FENCED)
        );
        assert_eq!(
            init_producer_id(Some(&abort), 1000, 900_000, None, 30),
            InitDecision::Error(code::CONCURRENT_TRANSACTIONS)
        );
    }

    #[test]
    fn recovery_with_a_stale_epoch_is_fenced() {
        assert_eq!(
            init_producer_id(Some(&empty(7, 5)), 1000, 900_000, Some((7, 4)), 1),
            InitDecision::Error(code::PRODUCER_FENCED)
        );
        assert!(matches!(
            init_producer_id(Some(&empty(7, 5)), 1000, 900_000, Some((7, 5)), 1),
            InitDecision::Ready(m) if m.producer_epoch == 6
        ));
    }

    #[test]
    fn a_transaction_runs_from_first_partition_to_complete() {
        let start = empty(7, 0);
        assert_eq!(
            add_partitions(Some(&start), 8, 0, &[tp("a", 0)], 1),
            Err(code::INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(
            add_partitions(Some(&start), 7, 1, &[tp("a", 0)], 1),
            Err(code::PRODUCER_FENCED)
        );
        let open = add_partitions(Some(&start), 7, 0, &[tp("a", 0)], 100)
            .unwrap()
            .unwrap();
        assert_eq!((open.state, open.start_ms), (TxnState::Ongoing, 100));
        assert_eq!(
            add_partitions(Some(&open), 7, 0, &[tp("a", 0)], 150),
            Ok(None)
        );
        let wider = add_partitions(Some(&open), 7, 0, &[tp("b", 2)], 200)
            .unwrap()
            .unwrap();
        assert_eq!(wider.partitions.len(), 2);
        assert_eq!(
            wider.start_ms, 100,
            "the start time stays the first partition's"
        );
        let Ok(EndDecision::Prepare(prepared)) = end_txn(Some(&wider), 7, 0, true, 300) else {
            panic!("expected a prepared commit")
        };
        assert_eq!(prepared.state, TxnState::PrepareCommit);
        assert_eq!(
            add_partitions(Some(&prepared), 7, 0, &[tp("c", 0)], 310),
            Err(code::CONCURRENT_TRANSACTIONS)
        );
        let done = complete(&prepared, 400);
        assert_eq!(done.state, TxnState::CompleteCommit);
        assert!(done.partitions.is_empty());
        assert_eq!(
            end_txn(Some(&done), 7, 0, true, 410),
            Ok(EndDecision::AlreadyDone)
        );
        assert_eq!(
            end_txn(Some(&done), 7, 0, false, 410),
            Err(code::INVALID_TXN_STATE)
        );
    }

    #[test]
    fn only_open_transactions_time_out_and_only_idle_ids_expire() {
        let open = add_partitions(Some(&empty(7, 0)), 7, 0, &[tp("a", 0)], 1_000)
            .unwrap()
            .unwrap();
        assert!(!timed_out(&open, 61_000));
        assert!(timed_out(&open, 61_001));
        assert!(!expired(&open, 10_000_000, 1000));
        let fenced = fence(&open, 61_001);
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        let done = complete(&fenced, 61_002);
        assert!(expired(&done, 62_003, 1000));
        assert!(!expired(&done, 62_002, 1000));
    }

    #[test]
    fn records_round_trip() {
        let m = TxnMetadata {
            partitions: [tp("a", 0), tp("a", 3), tp("b", 1)].into_iter().collect(),
            state: TxnState::PrepareCommit,
            last_update_ms: 1234,
            start_ms: 1000,
            ..empty(42, 7)
        };
        assert_eq!(decode_value(encode_value(&m)), Ok(m));
        assert_eq!(decode_key(encode_key("my-txn")), Ok("my-txn".to_owned()));
        let truncated = encode_value(&empty(1, 1)).slice(..10);
        assert!(decode_value(truncated).is_err());
    }
}
