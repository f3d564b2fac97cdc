//! Behaviour tests of `PartitionLog` against real files in temp dirs.

use std::fs;
use std::path::Path;

use kafka_protocol::records::Compression;

use crate::batch::{BatchHeader, BatchHeaderMut, check_header};
use crate::testutil::*;
use crate::{CleanupPolicy, LogConfig, LogError, PartitionLog, TimestampType};

pub(crate) type Row = (i64, Option<String>, Option<String>, i64);

/// Every record from the log start to the end, fetching as a consumer would.
pub(crate) fn read_all(log: &PartitionLog) -> Vec<Row> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, i64::MAX).unwrap();
        if info.records.is_empty() {
            break;
        }
        let mut last = offset;
        let mut pos = 0;
        while pos < info.records.len() {
            let size = check_header(&info.records[pos..]).unwrap();
            last = BatchHeader::new(&info.records[pos..])
                .unwrap()
                .last_offset();
            pos += size;
        }
        out.extend(
            decode_all(&info.records)
                .into_iter()
                .filter(|r| r.0 >= offset),
        );
        offset = last + 1;
    }
    out
}

pub(crate) fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let h = BatchHeader::new(&bytes[pos..]).unwrap();
        out.push((h.base_offset(), h.last_offset()));
        pos += check_header(&bytes[pos..]).unwrap();
    }
    out
}

fn segment_files(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Appends 60 batches of 1..=5 records cycling through every compression.
fn fill(log: &mut PartitionLog, batches: usize) -> Vec<Row> {
    let mut expected = Vec::new();
    for i in 0..batches {
        let n = 1 + i % 5;
        let ts = 1_000 + i as i64 * 10;
        let info = log
            .append(&simple(n, ts, ALL_COMPRESSIONS[i % 5]), 3, 10_000)
            .unwrap();
        assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
        for j in 0..n {
            expected.push((
                info.base_offset + j as i64,
                Some(format!("k{j}")),
                Some(format!("v{j}")),
                ts + j as i64,
            ));
        }
    }
    expected
}

#[test]
fn round_trip_across_many_segment_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    let expected = fill(&mut log, 60);
    assert!(
        log.segment_count() > 5,
        "only {} segments",
        log.segment_count()
    );
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    let offsets: Vec<i64> = expected.iter().map(|r| r.0).collect();
    assert_eq!(offsets, (0..expected.len() as i64).collect::<Vec<_>>());
    assert_eq!(read_all(&log), expected);
    // Leader epoch written into every stored batch.
    let info = log.read(0, 1 << 20, i64::MAX).unwrap();
    assert_eq!(
        BatchHeader::new(&info.records)
            .unwrap()
            .partition_leader_epoch(),
        3
    );
    // Every offset is found, including ones in the middle of a batch.
    for off in 0..log.log_end_offset() {
        let info = log.read(off, 1, i64::MAX).unwrap();
        let batches = batch_offsets(&info.records);
        assert_eq!(batches.len(), 1);
        assert!(
            batches[0].0 <= off && off <= batches[0].1,
            "offset {off}: {batches:?}"
        );
    }
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(read_all(&log), expected);
}

#[test]
fn read_respects_max_bytes_max_offset_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 0,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    let b = simple(3, 100, Compression::None);
    for _ in 0..4 {
        log.append(&b, 0, 0).unwrap();
    }
    let size = b.len();
    // KIP-74: the first batch comes whole even when larger than max_bytes.
    let r = log.read(4, 1, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&r.records), vec![(3, 5)]);
    let r = log.read(3, 2 * size + 1, i64::MAX).unwrap();
    assert_eq!(batch_offsets(&r.records), vec![(3, 5), (6, 8)]);
    // Nothing at or above the high watermark.
    let r = log.read(0, 1 << 20, 6).unwrap();
    assert_eq!(batch_offsets(&r.records), vec![(0, 2), (3, 5)]);
    let r = log.read(0, 1 << 20, 5).unwrap();
    assert_eq!(batch_offsets(&r.records), vec![(0, 2)]);
    assert!(log.read(3, 1 << 20, 5).unwrap().records.is_empty());
    let r = log.read(12, 1 << 20, i64::MAX).unwrap();
    assert!(r.records.is_empty());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 12));
    let err = log.read(13, 1 << 20, i64::MAX).unwrap_err();
    assert_eq!(err.kafka_error_code(), 1, "{err}");
    log.delete_records_before(4).unwrap();
    assert_eq!(log.read(3, 1, i64::MAX).unwrap_err().kafka_error_code(), 1);
}

#[test]
fn corrupt_batches_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    let good = simple(2, 0, Compression::None);
    log.append(&good, 0, 0).unwrap();

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    // A good batch in front must not be written either: all or nothing.
    let mut set = good.clone();
    set.extend_from_slice(&bad_crc);
    let err = log.append(&set, 0, 0).unwrap_err();
    assert!(matches!(err, LogError::CorruptMessage(_)), "{err}");
    assert_eq!(err.kafka_error_code(), 2);
    assert!(
        err.to_string()
            .contains(&format!("batch at byte {}", good.len())),
        "{err}"
    );
    assert!(err.to_string().contains("CRC mismatch"), "{err}");

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    assert_eq!(
        log.append(&bad_magic, 0, 0).unwrap_err().kafka_error_code(),
        2
    );
    assert_eq!(
        log.append(&good[..good.len() - 3], 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        2
    );
    assert_eq!(
        log.append(&good[..20], 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        2
    );

    let mut bad_count = good.clone();
    {
        let mut h = BatchHeaderMut::new(&mut bad_count).unwrap();
        h.set_records_count(5);
        h.update_crc();
    }
    let err = log.append(&bad_count, 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 87, "{err}");

    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(read_all(&log).len(), 2);
}

#[test]
fn oversize_batch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_message_bytes: 200,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    let big = encode(
        &[Rec(Some("k"), Some(&"x".repeat(300)), 0)],
        Compression::None,
        None,
    );
    let err = log.append(&big, 0, 0).unwrap_err();
    assert!(matches!(err, LogError::MessageTooLarge(_)), "{err}");
    assert_eq!(err.kafka_error_code(), 10);
    assert_eq!(log.log_end_offset(), 0);
    log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
}

#[test]
fn log_append_time_rewrites_timestamps_with_a_valid_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    for (i, c) in ALL_COMPRESSIONS.iter().enumerate() {
        let info = log
            .append(&simple(3, 100, *c), 0, 5_000 + i as i64)
            .unwrap();
        assert_eq!(info.log_append_time, 5_000 + i as i64);
    }
    let info = log.read(0, 1 << 20, i64::MAX).unwrap();
    // The decoder verifies every CRC.
    assert_eq!(decode_all(&info.records).len(), 15);
    let mut pos = 0;
    let mut i = 0;
    while pos < info.records.len() {
        let h = BatchHeader::new(&info.records[pos..]).unwrap();
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp(), 5_000 + i);
        pos += h.total_size();
        i += 1;
    }
    assert_eq!(log.offset_for_timestamp(5_001).unwrap(), Some((3, 5_001)));
    assert_eq!(log.max_timestamp().unwrap(), Some((12, 5_004)));
}

#[test]
fn torn_tail_is_truncated_on_recovery() {
    for clean_close in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
        let expected = fill(&mut log, 12);
        let leo = log.log_end_offset();
        if clean_close {
            log.close().unwrap();
        } else {
            drop(log); // kill -9: no flush, no snapshot, no marker
        }
        let last = segment_files(dir.path(), "log").pop().unwrap();
        let half = simple(4, 0, Compression::Gzip);
        let mut bytes = fs::read(&last).unwrap();
        bytes.extend_from_slice(&half[..half.len() / 2]);
        fs::write(&last, &bytes).unwrap();

        let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
        assert_eq!(log.log_end_offset(), leo);
        assert_eq!(read_all(&log), expected);
        let info = log.append(&simple(2, 0, Compression::Lz4), 0, 0).unwrap();
        assert_eq!(info.base_offset, leo);
        assert_eq!(read_all(&log).len(), expected.len() + 2);
    }
}

#[test]
fn corrupt_last_batch_is_dropped_after_unclean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&simple(2, 0, Compression::None), 0, 0).unwrap();
    log.append(&simple(3, 0, Compression::None), 0, 0).unwrap();
    drop(log);
    let path = segment_files(dir.path(), "log").pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x55; // a flipped bit the length and magic checks cannot see
    fs::write(&path, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(read_all(&log).len(), 2);
}

#[test]
fn missing_or_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 100,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone(), 0).unwrap();
    let expected = fill(&mut log, 80);
    let entries: Vec<usize> = log.segments.iter().map(|s| s.index_entries()).collect();
    assert!(entries.iter().all(|&e| e > 3), "{entries:?}");
    let ts_answer = log.offset_for_timestamp(1_405).unwrap();
    assert!(ts_answer.is_some());
    log.close().unwrap();

    for p in segment_files(dir.path(), "index") {
        fs::remove_file(p).unwrap();
    }
    let garbage: Vec<u8> = (0..120u8).map(|b| b.wrapping_mul(37)).collect();
    for p in segment_files(dir.path(), "timeindex") {
        fs::write(p, &garbage).unwrap();
    }
    let log = PartitionLog::open(dir.path(), config.clone(), 0).unwrap();
    let rebuilt: Vec<usize> = log.segments.iter().map(|s| s.index_entries()).collect();
    assert_eq!(rebuilt, entries);
    assert_eq!(read_all(&log), expected);
    assert_eq!(log.offset_for_timestamp(1_405).unwrap(), ts_answer);
    log.close().unwrap();
    // Rebuilt indexes were persisted.
    assert!(
        segment_files(dir.path(), "index")
            .iter()
            .all(|p| fs::metadata(p).unwrap().len() > 0)
    );

    // An index pointing into the middle of a batch is not trusted either.
    let idx = segment_files(dir.path(), "index").pop().unwrap();
    let mut bytes = fs::read(&idx).unwrap();
    let n = bytes.len();
    bytes[n - 1] = bytes[n - 1].wrapping_add(3);
    fs::write(&idx, &bytes).unwrap();
    let log = PartitionLog::open(dir.path(), config, 0).unwrap();
    assert_eq!(read_all(&log), expected);
}

#[test]
fn retention_by_time_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let one_batch = simple(3, 0, Compression::None).len() as u64;
    let config = LogConfig {
        segment_bytes: one_batch,
        retention_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone(), 0).unwrap();
    // One batch per segment, timestamps 0, 100, 200, ...
    for i in 0..10 {
        log.append(&simple(3, i * 100, Compression::None), 0, 0)
            .unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(segments, 10);
    // At 1_450 the segments with largest timestamp < 450 are out: 0..=4.
    assert_eq!(log.enforce_retention(1_450).unwrap(), 5);
    assert_eq!(log.log_start_offset(), 15);
    assert_eq!(log.read(14, 1, i64::MAX).unwrap_err().kafka_error_code(), 1);
    // The active segment survives however old it is.
    assert_eq!(log.enforce_retention(1_000_000).unwrap(), 4);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_start_offset(), 27);
    assert_eq!(read_all(&log).len(), 3);

    let dir = tempfile::tempdir().unwrap();
    let seg_size = simple(3, 0, Compression::None).len() as i64;
    let config = LogConfig {
        retention_ms: -1,
        retention_bytes: 3 * seg_size,
        ..config
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    for i in 0..10 {
        log.append(&simple(3, i * 100, Compression::None), 0, 0)
            .unwrap();
    }
    assert_eq!(log.enforce_retention(i64::MAX).unwrap(), 7);
    assert_eq!(log.size_bytes() as i64, 3 * seg_size);
    assert_eq!(log.log_start_offset(), 21);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), log_config_default_small(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 21);
    assert_eq!(read_all(&log).len(), 9);
}

fn log_config_default_small() -> LogConfig {
    small_config()
}

#[test]
fn delete_records_before_moves_the_start_and_persists_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    fill(&mut log, 40);
    let segments = log.segment_count();
    let leo = log.log_end_offset();
    assert_eq!(log.delete_records_before(50).unwrap(), 50);
    assert!(log.segment_count() < segments);
    assert_eq!(
        log.delete_records_before(10).unwrap(),
        50,
        "never moves back"
    );
    let first = read_all(&log);
    assert_eq!(first[0].0, 50);
    let err = log.delete_records_before(leo + 1).unwrap_err();
    assert_eq!(err.kafka_error_code(), 1);
    drop(log);
    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_start_offset(), 50);
    assert_eq!(read_all(&log), first);
    assert_eq!(log.delete_records_before(-1).unwrap(), leo);
    assert!(read_all(&log).is_empty());
    let info = log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    assert_eq!(info.base_offset, leo);
    assert_eq!(info.log_start_offset, leo);
}

#[test]
fn offset_for_timestamp_is_record_precise() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
    for (i, c) in ALL_COMPRESSIONS.iter().cycle().take(30).enumerate() {
        let base = i as i64 * 100;
        // Out of order inside a batch: base+10, base+50, base+30.
        let recs = [
            Rec(Some("a"), Some("1"), base + 10),
            Rec(Some("b"), Some("2"), base + 50),
            Rec(Some("c"), Some("3"), base + 30),
        ];
        log.append(&encode(&recs, *c, None), 0, 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 10)));
    assert_eq!(log.offset_for_timestamp(1_051).unwrap(), Some((33, 1_110)));
    assert_eq!(log.offset_for_timestamp(1_120).unwrap(), Some((34, 1_150)));
    assert_eq!(log.offset_for_timestamp(2_950).unwrap(), Some((88, 2_950)));
    assert_eq!(log.offset_for_timestamp(2_951).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), Some((88, 2_950)));
    log.delete_records_before(40).unwrap();
    // Records below the log start offset do not count.
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((40, 1_350)));
    assert_eq!(log.offset_for_timestamp(1_315).unwrap(), Some((40, 1_350)));
}

#[test]
fn idempotent_producer_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    let first = log.append(&idempotent(7, 0, 0, 3), 0, 0).unwrap();
    assert_eq!(
        (first.base_offset, first.last_offset, first.duplicate),
        (0, 2, false)
    );
    let dup = log.append(&idempotent(7, 0, 0, 3), 0, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (0, 2));
    assert_eq!(log.log_end_offset(), 3);
    let err = log.append(&idempotent(7, 0, 5, 1), 0, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 45, "{err}");
    log.append(&idempotent(7, 0, 3, 2), 0, 0).unwrap();
    // Other producers and non-idempotent batches are independent.
    log.append(&idempotent(8, 2, 40, 1), 0, 0).unwrap(); // unknown id: any sequence
    log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    for seq in [5, 6, 7, 8, 9] {
        log.append(&idempotent(7, 0, seq, 1), 0, 0).unwrap();
    }
    // Only the last five batches are remembered: seq 3..=4 is now out of order.
    assert_eq!(
        log.append(&idempotent(7, 0, 3, 2), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    let d = log.append(&idempotent(7, 0, 5, 1), 0, 0).unwrap();
    assert!(d.duplicate);
    assert_eq!(d.base_offset, 7);
    log.flush().unwrap();
    // Epochs: a new epoch starts at 0; an old one is fenced.
    assert_eq!(
        log.append(&idempotent(7, 1, 1, 1), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    log.append(&idempotent(7, 1, 0, 1), 0, 0).unwrap();
    assert_eq!(
        log.append(&idempotent(7, 0, 10, 1), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        47
    );

    // Survives a clean restart (snapshot) ...
    let leo = log.log_end_offset();
    log.close().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(log.append(&idempotent(7, 1, 0, 1), 0, 0).unwrap().duplicate);
    assert!(
        log.append(&idempotent(8, 2, 40, 1), 0, 0)
            .unwrap()
            .duplicate
    );
    assert_eq!(
        log.append(&idempotent(7, 0, 10, 1), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        47
    );
    log.append(&idempotent(7, 1, 1, 1), 0, 0).unwrap();
    // ... and a crash after the snapshot (replay of what came later) ...
    drop(log);
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(log.append(&idempotent(7, 1, 1, 1), 0, 0).unwrap().duplicate);
    // ... and a lost snapshot (full replay).
    drop(log);
    fs::remove_file(dir.path().join(crate::log::PRODUCER_SNAPSHOT_FILE)).unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), leo + 1);
    assert!(log.append(&idempotent(7, 1, 1, 1), 0, 0).unwrap().duplicate);
    assert_eq!(
        log.append(&idempotent(7, 1, 3, 1), 0, 0)
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    log.append(&idempotent(7, 1, 2, 1), 0, 0).unwrap();
}

#[test]
fn sequence_wraps_at_i32_max() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&idempotent(1, 0, i32::MAX - 1, 2), 0, 0)
        .unwrap();
    log.append(&idempotent(1, 0, 0, 1), 0, 0).unwrap();
}

#[test]
fn truncate_to_drops_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    let expected = fill(&mut log, 40);
    log.append(&idempotent(3, 0, 0, 2), 0, 0).unwrap();
    log.truncate_to(60).unwrap();
    // 60 falls inside a batch; the whole batch goes.
    let leo = log.log_end_offset();
    assert!(leo <= 60 && leo > 55, "{leo}");
    assert_eq!(read_all(&log), expected[..leo as usize].to_vec());
    // Producer state of truncated batches is gone: sequence 0 is new again.
    assert!(!log.append(&idempotent(3, 0, 0, 2), 0, 0).unwrap().duplicate);
    let info = log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    assert_eq!(info.base_offset, leo + 2);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(log.log_end_offset(), leo + 3);
}

#[test]
fn time_based_roll() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    assert!(
        !log.roll_if_due(10_000).unwrap(),
        "empty segments never roll"
    );
    log.append(&simple(1, 0, Compression::None), 0, 100)
        .unwrap();
    assert!(!log.roll_if_due(1_000).unwrap());
    assert!(log.roll_if_due(1_101).unwrap());
    assert_eq!(log.segment_count(), 2);
    log.append(&simple(1, 0, Compression::None), 0, 1_200)
        .unwrap();
    // Appends roll too once the active segment is due.
    log.append(&simple(1, 0, Compression::None), 0, 2_300)
        .unwrap();
    assert_eq!(log.segment_count(), 3);
}

#[test]
fn null_keys_are_rejected_on_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), compact_config(), 0).unwrap();
    for c in ALL_COMPRESSIONS {
        let b = encode(
            &[Rec(Some("a"), Some("1"), 0), Rec(None, Some("2"), 0)],
            c,
            None,
        );
        let err = log.append(&b, 0, 0).unwrap_err();
        assert_eq!(err.kafka_error_code(), 87, "{err}");
        assert!(err.to_string().contains("offset delta 1"), "{err}");
    }
    assert_eq!(log.log_end_offset(), 0);
}

/// Appends rounds of values for keys k0..k4 so that every segment holds older values.
fn fill_compacted(log: &mut PartitionLog, compression: Compression) {
    for round in 0..8 {
        let vals: Vec<String> = (0..5).map(|k| format!("r{round}k{k}")).collect();
        let keys: Vec<String> = (0..5).map(|k| format!("k{k}")).collect();
        let recs: Vec<Rec<'_>> = (0..5)
            .map(|k| Rec(Some(&keys[k]), Some(&vals[k]), round * 10))
            .collect();
        log.append(&encode(&recs[..3], compression, None), 0, 0)
            .unwrap();
        log.append(&encode(&recs[3..], compression, None), 0, 0)
            .unwrap();
    }
}

#[test]
fn compaction_keeps_the_last_value_per_key() {
    for compression in ALL_COMPRESSIONS {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 250,
            ..compact_config()
        };
        let mut log = PartitionLog::open(dir.path(), config.clone(), 0).unwrap();
        fill_compacted(&mut log, compression);
        // A tombstone for k1 and a final value for k2, then roll so they are cleanable.
        log.append(
            &encode(&[Rec(Some("k1"), None, 100)], compression, None),
            0,
            0,
        )
        .unwrap();
        log.append(
            &encode(&[Rec(Some("k2"), Some("last"), 100)], compression, None),
            0,
            0,
        )
        .unwrap();
        log.roll_if_due(i64::MAX).unwrap();
        log.append(
            &encode(&[Rec(Some("k0"), Some("active"), 100)], compression, None),
            0,
            0,
        )
        .unwrap();
        let leo = log.log_end_offset();
        let before = read_all(&log);
        let stats = log.compact(1_000).unwrap();
        assert!(
            stats.records_removed > 0 && stats.bytes_after < stats.bytes_before,
            "{stats:?}"
        );
        assert_eq!(log.log_end_offset(), leo);
        let after = read_all(&log);
        // Closed segments hold one record per key; offsets are the originals.
        let closed: Vec<&Row> = after.iter().filter(|r| r.0 < leo - 1).collect();
        let keys: Vec<&str> = closed.iter().map(|r| r.1.as_deref().unwrap()).collect();
        let mut dedup = keys.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(keys.len(), dedup.len(), "{compression:?}: {after:?}");
        for row in &after {
            assert!(before.contains(row), "{row:?} was not in the log before");
        }
        let value = |k: &str| {
            after
                .iter()
                .rev()
                .find(|r| r.1.as_deref() == Some(k))
                .cloned()
        };
        assert_eq!(value("k2").unwrap().2.as_deref(), Some("last"));
        assert_eq!(
            value("k1").unwrap().2,
            None,
            "tombstone kept before delete.retention.ms"
        );
        assert_eq!(value("k3").unwrap().2.as_deref(), Some("r7k3"));
        assert_eq!(value("k0").unwrap().2.as_deref(), Some("active"));
        // The older k0 in the closed segments stays: the active segment is not cleaned.
        assert_eq!(
            after
                .iter()
                .filter(|r| r.1.as_deref() == Some("k0"))
                .count(),
            2
        );
        // Every offset still resolves, also inside the gaps.
        for off in 0..leo {
            log.read(off, 1, i64::MAX).unwrap();
        }
        // Idempotent: nothing left to remove.
        assert_eq!(log.compact(2_000).unwrap().records_removed, 0);
        // After delete.retention.ms since the first cleaning, the tombstone goes.
        let stats = log.compact(1_000 + config.delete_retention_ms).unwrap();
        assert_eq!(stats.records_removed, 1, "{stats:?}");
        let final_rows = read_all(&log);
        assert!(final_rows.iter().all(|r| r.1.as_deref() != Some("k1")));
        log.close().unwrap();
        let log = PartitionLog::open(dir.path(), config, 0).unwrap();
        assert_eq!(read_all(&log), final_rows);
    }
}

#[test]
fn compaction_respects_lag_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 250,
        min_compaction_lag_ms: 1_000,
        ..compact_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    fill_compacted(&mut log, Compression::None);
    let before = read_all(&log);
    // Newest record timestamp is 70: nothing is old enough at 1_000.
    assert_eq!(log.compact(1_000).unwrap().records_removed, 0);
    assert_eq!(read_all(&log), before);
    assert!(log.compact(1_100).unwrap().records_removed > 0);

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 250,
        cleanup_policy: CleanupPolicy::Delete,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    fill_compacted(&mut log, Compression::None);
    assert_eq!(log.compact(i64::MAX).unwrap(), Default::default());
}

#[test]
fn compaction_preserves_producer_state_and_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 200,
        message_timestamp_type: TimestampType::LogAppendTime,
        ..compact_config()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone(), 0).unwrap();
    let p = Producer {
        id: 9,
        epoch: 0,
        base_sequence: 0,
    };
    log.append(
        &encode(
            &[Rec(Some("x"), Some("1"), 0), Rec(Some("y"), Some("1"), 0)],
            Compression::Gzip,
            Some(&p),
        ),
        0,
        500,
    )
    .unwrap();
    let p = Producer {
        id: 9,
        epoch: 0,
        base_sequence: 2,
    };
    log.append(
        &encode(&[Rec(Some("x"), Some("2"), 0)], Compression::Gzip, Some(&p)),
        0,
        600,
    )
    .unwrap();
    // A non-idempotent write supersedes all of producer 9's last batch.
    log.append(
        &encode(&[Rec(Some("x"), Some("3"), 0)], Compression::None, None),
        0,
        700,
    )
    .unwrap();
    log.roll_if_due(i64::MAX).unwrap();
    log.append(&simple(1, 0, Compression::None), 0, 800)
        .unwrap();
    log.compact(1_000).unwrap();
    let rows = read_all(&log);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 3, 4]);
    let info = log.read(0, 1 << 20, i64::MAX).unwrap();
    let h = BatchHeader::new(&info.records).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp(), 500);
    assert_eq!(
        (h.producer_id(), h.base_offset(), h.base_sequence()),
        (9, 1, 1)
    );
    // Full replay after a lost snapshot still knows producer 9 is at sequence 2.
    drop(log);
    let _ = fs::remove_file(dir.path().join(crate::log::PRODUCER_SNAPSHOT_FILE));
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    let p = Producer {
        id: 9,
        epoch: 0,
        base_sequence: 2,
    };
    let again = encode(&[Rec(Some("x"), Some("2"), 0)], Compression::Gzip, Some(&p));
    assert!(log.append(&again, 0, 900).unwrap().duplicate);
}

#[test]
fn interrupted_compaction_is_resolved_on_open() {
    let config = LogConfig {
        segment_bytes: 250,
        ..compact_config()
    };
    let original = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(original.path(), config.clone(), 0).unwrap();
    fill_compacted(&mut log, Compression::Snappy);
    log.close().unwrap();
    let copy_dir = |to: &Path| {
        for entry in fs::read_dir(original.path()).unwrap() {
            let p = entry.unwrap().path();
            fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    };
    let crashed = tempfile::tempdir().unwrap();
    copy_dir(crashed.path());

    let mut log = PartitionLog::open(original.path(), config.clone(), 0).unwrap();
    let before = read_all(&log);
    assert!(log.compact(1_000).unwrap().records_removed > 0);
    let compacted = read_all(&log);
    log.close().unwrap();

    // Crash before the commit point: a half-written .cleaned file is discarded.
    let first = segment_files(crashed.path(), "log")[0].clone();
    let cleaned = first.with_extension("log.cleaned");
    fs::write(&cleaned, b"half a segment").unwrap();
    let log = PartitionLog::open(crashed.path(), config.clone(), 0).unwrap();
    assert!(!cleaned.exists());
    assert_eq!(read_all(&log), before);
    drop(log);

    // Crash after the commit point: every .swap replaces its segment, stale indexes go.
    for seg in segment_files(original.path(), "log") {
        let name = seg.file_name().unwrap().to_str().unwrap().to_owned();
        let swap = crashed.path().join(format!("{name}.swap"));
        fs::copy(&seg, &swap).unwrap();
    }
    let log = PartitionLog::open(crashed.path(), config, 0).unwrap();
    assert_eq!(read_all(&log), compacted);
    assert!(fs::read_dir(crashed.path()).unwrap().all(|e| {
        let n = e.unwrap().file_name().into_string().unwrap();
        !n.ends_with(".swap") && !n.ends_with(".cleaned")
    }));
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let mut log = PartitionLog::open(&path, LogConfig::default(), 0).unwrap();
    log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    log.delete().unwrap();
    assert!(!path.exists());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Append { records: usize, compression: usize },
        Reopen { clean: bool },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (1usize..8, 0usize..5).prop_map(|(records, compression)| Op::Append { records, compression }),
            1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn appends_and_reopens_preserve_everything(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig { segment_bytes: 400, index_interval_bytes: 64, ..LogConfig::default() };
            let mut log = Some(PartitionLog::open(dir.path(), config.clone(), 0).unwrap());
            let mut expected: Vec<Row> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Append { records, compression } => {
                        let l = log.as_mut().unwrap();
                        let ts = i as i64 * 7;
                        let info = l.append(&simple(records, ts, ALL_COMPRESSIONS[compression]), 0, 0).unwrap();
                        prop_assert_eq!(info.base_offset, expected.len() as i64);
                        for j in 0..records {
                            expected.push((info.base_offset + j as i64, Some(format!("k{j}")), Some(format!("v{j}")), ts + j as i64));
                        }
                    }
                    Op::Reopen { clean } => {
                        let l = log.take().unwrap();
                        if clean { l.close().unwrap() } else { drop(l) }
                        log = Some(PartitionLog::open(dir.path(), config.clone(), 0).unwrap());
                    }
                }
            }
            let l = log.take().unwrap();
            prop_assert_eq!(l.log_end_offset(), expected.len() as i64);
            prop_assert_eq!(&read_all(&l), &expected);
            drop(l);
            let l = PartitionLog::open(dir.path(), config, 0).unwrap();
            prop_assert_eq!(&read_all(&l), &expected);
        }
    }
}

#[test]
fn stale_snapshot_after_recovery_truncation_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&idempotent(5, 0, 0, 1), 0, 0).unwrap();
    log.append(&idempotent(5, 0, 1, 1), 0, 0).unwrap();
    log.flush().unwrap(); // snapshot covers offsets < 2
    drop(log);
    let path = segment_files(dir.path(), "log").pop().unwrap();
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    log.append(&simple(1, 0, Compression::None), 0, 0).unwrap();
    drop(log);
    // The old snapshot (which saw sequence 1) must not come back now that the log is long again.
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(!log.append(&idempotent(5, 0, 1, 1), 0, 0).unwrap().duplicate);
}
