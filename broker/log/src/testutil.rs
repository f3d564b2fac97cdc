//! Builders for test record batches, encoded by kafka-protocol as a client would.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::batch::BatchHeaderMut;
use crate::{CleanupPolicy, LogConfig};

pub const ALL_COMPRESSIONS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// One record to put in a batch: key, value (None = tombstone), timestamp.
pub struct Rec<'a>(pub Option<&'a str>, pub Option<&'a str>, pub i64);

pub struct Producer {
    pub id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

pub fn encode(
    records: &[Rec<'_>],
    compression: Compression,
    producer: Option<&Producer>,
) -> Vec<u8> {
    encode_with_control(records, compression, producer, false)
}

/// [`encode`], as a control batch (transactional too, like a transaction marker) if `control`.
pub fn encode_with_control(
    records: &[Rec<'_>],
    compression: Compression,
    producer: Option<&Producer>,
    control: bool,
) -> Vec<u8> {
    let (pid, epoch, seq) = producer.map_or((-1, -1, -1), |p| (p.id, p.epoch, p.base_sequence));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: control,
            control,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq.wrapping_add(i as i32),
            timestamp: r.2,
            key: r.0.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: r.1.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode test batch");
    buf.to_vec()
}

/// `n` keyed records `k{i}` = `v{i}` with timestamps `ts + i`.
pub fn simple(n: usize, ts: i64, compression: Compression) -> Vec<u8> {
    let keys: Vec<String> = (0..n).map(|i| format!("k{i}")).collect();
    let values: Vec<String> = (0..n).map(|i| format!("v{i}")).collect();
    let recs: Vec<Rec<'_>> = (0..n)
        .map(|i| Rec(Some(&keys[i]), Some(&values[i]), ts + i as i64))
        .collect();
    encode(&recs, compression, None)
}

pub fn idempotent(pid: i64, epoch: i16, base_sequence: i32, n: usize) -> Vec<u8> {
    let recs: Vec<Rec<'_>> = (0..n).map(|_| Rec(Some("k"), Some("v"), 1_000)).collect();
    encode(
        &recs,
        Compression::None,
        Some(&Producer {
            id: pid,
            epoch,
            base_sequence,
        }),
    )
}

/// A transaction marker of producer `pid` (the key and value are not a real marker's:
/// the log never decodes control records).
pub fn control_marker(pid: i64, epoch: i16) -> Vec<u8> {
    let producer = Producer {
        id: pid,
        epoch,
        base_sequence: -1,
    };
    encode_with_control(
        &[Rec(Some("marker"), Some("commit"), 1_000)],
        Compression::None,
        Some(&producer),
        true,
    )
}

/// `n` records of producer `pid`'s transaction, sequences from `base_sequence`.
pub fn transactional(pid: i64, epoch: i16, base_sequence: i32, n: usize) -> Vec<u8> {
    let mut batch = idempotent(pid, epoch, base_sequence, n);
    let mut header = BatchHeaderMut::new(&mut batch).expect("a whole batch");
    let attrs = header.view().attributes();
    header.set_attributes(attrs | (1 << 4));
    header.update_crc();
    batch
}

/// A real transaction marker (control record key `[0, type]`) ending `pid`'s
/// transaction, as the coordinator writes it.
pub fn txn_marker(pid: i64, epoch: i16, commit: bool) -> Vec<u8> {
    let key = String::from_utf8(
        crate::ControlType::key(if commit {
            crate::ControlType::Commit
        } else {
            crate::ControlType::Abort
        })
        .to_vec(),
    )
    .expect("ASCII-range control key");
    encode_with_control(
        &[Rec(Some(&key), Some("\0\0\0\0\0\0"), 1_000)],
        Compression::None,
        Some(&Producer {
            id: pid,
            epoch,
            base_sequence: -1,
        }),
        true,
    )
}

/// `batch` with the header fields a leader stamps: base offset and leader epoch
/// (neither is covered by the CRC).
pub fn stamped(mut batch: Vec<u8>, base_offset: i64, leader_epoch: i32) -> Vec<u8> {
    let mut header = BatchHeaderMut::new(&mut batch).expect("a whole batch");
    header.set_base_offset(base_offset);
    header.set_partition_leader_epoch(leader_epoch);
    batch
}

/// Decodes every batch (checking CRCs) and returns (offset, key, value, timestamp).
pub fn decode_all(bytes: &[u8]) -> Vec<(i64, Option<String>, Option<String>, i64)> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let sets = RecordBatchDecoder::decode_all(&mut buf).expect("stored batches decode");
    sets.into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            let s = |b: Option<Bytes>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
            (r.offset, s(r.key), s(r.value), r.timestamp)
        })
        .collect()
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

pub fn compact_config() -> LogConfig {
    LogConfig {
        cleanup_policy: CleanupPolicy::Compact,
        min_cleanable_dirty_ratio: 0.0,
        ..small_config()
    }
}
