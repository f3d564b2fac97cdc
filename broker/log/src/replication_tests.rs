//! Tests of what replication needs from the log: follower appends, the leader epoch
//! cache and the high watermark.

use std::fs;

use kafka_protocol::records::Compression;

use crate::batch::{BatchHeader, check_header};
use crate::epoch_cache::LEADER_EPOCH_FILE;
use crate::log::HIGH_WATERMARK_FILE;
use crate::tests::{batch_offsets, read_all};
use crate::testutil::*;
use crate::{EpochEntry, LogConfig, LogError, PartitionLog, TimestampType};

fn open(dir: &std::path::Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config, 0).unwrap()
}

/// The stored bytes from `from` to the end, as a follower would fetch them.
fn fetch_all(log: &PartitionLog, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, i64::MAX).unwrap();
        assert!(!info.records.is_empty(), "nothing at {offset}");
        offset = batch_offsets(&info.records).last().unwrap().1 + 1;
        out.extend_from_slice(&info.records);
    }
    out
}

fn epochs(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.epoch_entries()
        .iter()
        .map(|e| (e.epoch, e.start_offset))
        .collect()
}

/// Byte length of the first `n` batches in `bytes`.
fn prefix_of_batches(bytes: &[u8], n: usize) -> usize {
    let mut pos = 0;
    for _ in 0..n {
        pos += check_header(&bytes[pos..]).unwrap();
    }
    pos
}

/// A leader log with batches in epochs 1, 1, 3 (one LogAppendTime topic, compressions
/// mixed) and its stored bytes.
fn leader_with_history(dir: &std::path::Path) -> (PartitionLog, Vec<u8>) {
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..small_config()
    };
    let mut leader = open(dir, config);
    leader
        .append(&simple(3, 100, Compression::None), 1, 5_000)
        .unwrap();
    leader.append(&idempotent(7, 0, 0, 2), 1, 5_001).unwrap();
    for (i, c) in ALL_COMPRESSIONS.iter().enumerate() {
        leader
            .append(&simple(2, 200, *c), 3, 6_000 + i as i64)
            .unwrap();
    }
    let bytes = fetch_all(&leader, 0);
    (leader, bytes)
}

#[test]
fn follower_append_stores_the_leaders_bytes_unchanged() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (leader, bytes) = leader_with_history(leader_dir.path());
    let dir = tempfile::tempdir().unwrap();
    // The follower's own topic config says CreateTime: it must still not re-stamp.
    let mut follower = open(dir.path(), small_config());

    let split = prefix_of_batches(&bytes, 3);
    let first = follower.append_as_follower(&bytes[..split], 9_999).unwrap();
    assert_eq!((first.base_offset, first.last_offset), (0, 6));
    assert_eq!(first.bytes_appended, split);
    assert!(!first.duplicate);
    // The rest, followed by the first half of a batch that did not fit the response.
    let partial = simple(4, 0, Compression::Gzip);
    let mut rest = bytes[split..].to_vec();
    rest.extend_from_slice(&stamped(partial.clone(), 17, 3)[..partial.len() / 2]);
    let second = follower.append_as_follower(&rest, 9_999).unwrap();
    assert_eq!(second.bytes_appended, bytes.len() - split);
    assert_eq!(
        (second.base_offset, second.last_offset),
        (7, leader.log_end_offset() - 1)
    );

    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(fetch_all(&follower, 0), bytes, "byte-for-byte copy");
    let h = BatchHeader::new(&bytes).unwrap();
    assert!(h.is_log_append_time());
    assert_eq!((h.max_timestamp(), h.partition_leader_epoch()), (5_000, 1));
    assert_eq!(read_all(&follower), read_all(&leader));
    assert_eq!(epochs(&follower), vec![(1, 0), (3, 5)]);
    assert_eq!(epochs(&follower), epochs(&leader));
    // Indexes were built for the replicated data: every offset resolves after a reopen.
    follower.close().unwrap();
    let follower = open(dir.path(), small_config());
    for off in 0..follower.log_end_offset() {
        let r = follower.read(off, 1, i64::MAX).unwrap();
        let (base, last) = batch_offsets(&r.records)[0];
        assert!(base <= off && off <= last, "offset {off}");
    }
    assert_eq!(epochs(&follower), vec![(1, 0), (3, 5)]);
}

#[test]
fn follower_append_refuses_overlaps_and_bad_batches_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let b0 = stamped(simple(2, 0, Compression::None), 0, 0);
    log.append_as_follower(&b0, 0).unwrap();

    // Starting below the log end: the replica diverged.
    let err = log
        .append_as_follower(&stamped(simple(2, 0, Compression::None), 1, 0), 0)
        .unwrap_err();
    assert!(
        matches!(
            err,
            LogError::UnexpectedAppendOffset {
                base_offset: 1,
                log_end_offset: 2
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("starts at 1") && err.to_string().contains("end offset 2"));

    // Offsets going backwards inside the set: the good first batch is not written either.
    let mut set = stamped(simple(2, 0, Compression::None), 2, 0);
    set.extend_from_slice(&stamped(simple(1, 0, Compression::None), 3, 0));
    let err = log.append_as_follower(&set, 0).unwrap_err();
    assert_eq!(err.kafka_error_code(), 2, "{err}");
    assert!(err.to_string().contains("does not follow"), "{err}");

    // A flipped bit fails the CRC, again leaving the log untouched.
    let mut set = stamped(simple(2, 0, Compression::None), 2, 0);
    let mut bad = stamped(simple(1, 0, Compression::None), 4, 0);
    let n = bad.len();
    bad[n - 1] ^= 0x10;
    set.extend_from_slice(&bad);
    let err = log.append_as_follower(&set, 0).unwrap_err();
    assert!(err.to_string().contains("CRC mismatch"), "{err}");
    let mut bad_magic = stamped(simple(1, 0, Compression::None), 2, 0);
    bad_magic[16] = 1;
    assert_eq!(
        log.append_as_follower(&bad_magic, 0)
            .unwrap_err()
            .kafka_error_code(),
        2
    );
    assert_eq!(log.log_end_offset(), 2);
    assert_eq!(fetch_all(&log, 0), b0);

    // Nothing but part of a batch (or nothing at all): nothing appended, no error.
    let part = stamped(simple(3, 0, Compression::None), 2, 0);
    for cut in [0, 10, part.len() - 1] {
        let info = log.append_as_follower(&part[..cut], 0).unwrap();
        assert_eq!((info.bytes_appended, info.base_offset), (0, 2));
        assert_eq!(info.last_offset, 1, "nothing appended");
    }
    assert_eq!(log.log_end_offset(), 2);
}

#[test]
fn follower_append_accepts_gaps_a_compacted_leader_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), compact_config());
    log.append_as_follower(&stamped(simple(2, 0, Compression::None), 0, 0), 0)
        .unwrap();
    // Offsets 2..=9 were compacted away on the leader; 12..=14 too.
    let mut set = stamped(simple(2, 0, Compression::None), 10, 0);
    set.extend_from_slice(&stamped(simple(1, 0, Compression::None), 15, 0));
    let info = log.append_as_follower(&set, 0).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (10, 15));
    assert_eq!(log.log_end_offset(), 16);
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![0, 1, 10, 11, 15]);
    // A fetch inside a gap gets the next batch, as on the leader.
    assert_eq!(
        batch_offsets(&log.read(5, 1, i64::MAX).unwrap().records),
        vec![(10, 11)]
    );
}

#[test]
fn follower_append_keeps_producer_state_for_a_later_leadership() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), LogConfig::default());
    leader.append(&idempotent(7, 0, 0, 3), 4, 0).unwrap();
    leader
        .append(&simple(1, 0, Compression::None), 4, 0)
        .unwrap();
    leader.append(&idempotent(7, 0, 3, 2), 4, 0).unwrap();
    let bytes = fetch_all(&leader, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    log.append_as_follower(&bytes, 0).unwrap();
    // What the leader accepted is not re-checked: an older producer epoch, a sequence
    // gap and a transaction marker (base sequence -1) all go in.
    let mut odd = stamped(idempotent(9, 2, 0, 1), 6, 4);
    odd.extend_from_slice(&stamped(idempotent(9, 1, 40, 1), 7, 4));
    odd.extend_from_slice(&stamped(idempotent(9, 2, 10, 1), 8, 4));
    odd.extend_from_slice(&stamped(control_marker(9, 2), 9, 4));
    let info = log.append_as_follower(&odd, 0).unwrap();
    assert_eq!(info.last_offset, 9);

    // Now this replica leads (epoch 5): retries of replicated batches are duplicates
    // with the leader's offsets, and the producer's next sequence is accepted.
    assert!(log.assign_epoch(5, log.log_end_offset()).unwrap());
    let dup = log.append(&idempotent(7, 0, 3, 2), 5, 0).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (4, 5));
    assert!(log.append(&idempotent(7, 0, 0, 3), 5, 0).unwrap().duplicate);
    let next = log.append(&idempotent(7, 0, 5, 1), 5, 0).unwrap();
    assert!(!next.duplicate);
    assert_eq!(next.base_offset, 10);
    assert_eq!(
        log.append(&idempotent(7, 0, 9, 1), 5, 0)
            .unwrap_err()
            .kafka_error_code(),
        45
    );
    // Producer 9 is at epoch 2 (the older-epoch batch did not roll it back) and its
    // last data sequence is 10.
    assert!(
        log.append(&idempotent(9, 2, 10, 1), 5, 0)
            .unwrap()
            .duplicate
    );
    assert_eq!(
        log.append(&idempotent(9, 1, 41, 1), 5, 0)
            .unwrap_err()
            .kafka_error_code(),
        47
    );
    log.append(&idempotent(9, 2, 11, 1), 5, 0).unwrap();
    assert_eq!(epochs(&log), vec![(4, 0), (5, 10)]);
}

/// Appends one 2-record batch per epoch in `epochs` (as leader) and returns the log.
fn log_with_epochs(dir: &std::path::Path, config: LogConfig, epochs: &[i32]) -> PartitionLog {
    let mut log = open(dir, config);
    for &e in epochs {
        log.append(&simple(2, 0, Compression::None), e, 0).unwrap();
    }
    log
}

#[test]
fn end_offset_for_epoch_table() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs(dir.path(), LogConfig::default(), &[0, 2, 2, 5, 5, 5]);
    assert_eq!(epochs(&log), vec![(0, 0), (2, 2), (5, 6)]);
    assert_eq!(log.latest_epoch(), Some(5));
    let leo = log.log_end_offset();
    assert_eq!(leo, 12);
    for (requested, expected) in [
        (-1, (-1, -1)),
        (0, (0, 2)),
        (1, (0, 2)),
        (2, (2, 6)),
        (3, (2, 6)),
        (4, (2, 6)),
        (5, (5, leo)),
        (6, (-1, -1)),
    ] {
        assert_eq!(
            log.end_offset_for_epoch(requested),
            expected,
            "requested {requested}"
        );
    }
    let empty_dir = tempfile::tempdir().unwrap();
    let empty = open(empty_dir.path(), LogConfig::default());
    assert_eq!(empty.latest_epoch(), None);
    assert_eq!(empty.end_offset_for_epoch(0), (-1, -1));

    // After DeleteRecords the history before the start is gone: a request below every
    // known epoch gets the first known start offset (Kafka's answer).
    let mut log = log;
    log.delete_records_before(7).unwrap();
    assert_eq!(epochs(&log), vec![(5, 7)]);
    assert_eq!(log.end_offset_for_epoch(2), (2, 7));
    assert_eq!(log.end_offset_for_epoch(5), (5, leo));
}

#[test]
fn epoch_cache_survives_reopen_and_is_rebuilt_when_lost() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 300,
        ..small_config()
    };
    let log = log_with_epochs(dir.path(), config.clone(), &[1, 1, 3, 3, 3, 3, 4, 7, 7]);
    let expected = vec![(1, 0), (3, 4), (4, 12), (7, 14)];
    assert_eq!(epochs(&log), expected);
    assert!(log.segment_count() > 1);
    let path = dir.path().join(LEADER_EPOCH_FILE);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "0\n4\n1 0\n3 4\n4 12\n7 14\n"
    );
    drop(log); // no close: the checkpoint is written when an epoch starts
    let log = open(dir.path(), config.clone());
    assert_eq!(epochs(&log), expected);
    drop(log);

    fs::remove_file(&path).unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(epochs(&log), expected);
    assert!(path.exists(), "the rebuilt cache is written back");
    drop(log);

    fs::write(&path, "0\n4\n1 0\n3 x\n").unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(epochs(&log), expected);
    assert_eq!(log.end_offset_for_epoch(3), (3, 12));
}

#[test]
fn a_log_from_before_epoch_tracking_opens() {
    let dir = tempfile::tempdir().unwrap();
    // Batches without a leader epoch (-1), as a single-node log may hold.
    let mut log = log_with_epochs(dir.path(), LogConfig::default(), &[-1, -1]);
    assert_eq!(log.latest_epoch(), None);
    log.append(&simple(1, 0, Compression::None), 2, 0).unwrap();
    log.close().unwrap();
    fs::remove_file(dir.path().join(LEADER_EPOCH_FILE)).unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(epochs(&log), vec![(2, 4)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 4));
    assert_eq!(read_all(&log).len(), 5);
}

#[test]
fn epoch_cache_follows_truncation_and_start_moves() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: simple(2, 0, Compression::None).len() as u64,
        retention_ms: 1_000,
        ..LogConfig::default()
    };
    // One batch (2 offsets) per segment.
    let mut log = log_with_epochs(dir.path(), config.clone(), &[1, 1, 2, 2, 3, 3, 4]);
    assert_eq!(epochs(&log), vec![(1, 0), (2, 4), (3, 8), (4, 12)]);

    // Truncating into epoch 3's second batch drops that batch and epoch 4.
    log.truncate_to(11).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(epochs(&log), vec![(1, 0), (2, 4), (3, 8)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 10));
    log.truncate_to(8).unwrap();
    assert_eq!(epochs(&log), vec![(1, 0), (2, 4)]);
    // Another leader's epoch-6 data follows.
    log.append_as_follower(&stamped(simple(2, 0, Compression::None), 8, 6), 0)
        .unwrap();
    assert_eq!(epochs(&log), vec![(1, 0), (2, 4), (6, 8)]);
    assert_eq!(log.end_offset_for_epoch(4), (2, 8));

    // DeleteRecords into epoch 1's data moves its start up.
    log.delete_records_before(3).unwrap();
    assert_eq!(epochs(&log), vec![(1, 3), (2, 4), (6, 8)]);
    // Retention (timestamps are 0, so every closed segment is old) drops to the active one.
    log.enforce_retention(10_000).unwrap();
    assert_eq!(log.log_start_offset(), 8);
    assert_eq!(epochs(&log), vec![(6, 8)]);
    drop(log);
    let mut log = open(dir.path(), config);
    assert_eq!(epochs(&log), vec![(6, 8)]);

    // Truncating below the log start empties the log: no epochs are left.
    log.truncate_to(5).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(
        fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE)).unwrap(),
        "0\n0\n"
    );
}

#[test]
fn assign_epoch_marks_leadership_before_any_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_epochs(dir.path(), LogConfig::default(), &[1]);
    assert!(log.assign_epoch(3, 2).unwrap());
    assert!(!log.assign_epoch(3, 2).unwrap(), "idempotent");
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 2));
    assert_eq!(log.end_offset_for_epoch(1), (1, 2));
    let err = log.assign_epoch(2, 2).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::FencedLeaderEpoch {
                epoch: 2,
                latest: 3
            }
        ),
        "{err}"
    );
    assert_eq!(err.kafka_error_code(), 74);
    assert_eq!(log.assign_epoch(4, 7).unwrap_err().kafka_error_code(), 1);

    // Writes in the assigned epoch add nothing; the same epoch assigned again after
    // writes is still a no-op.
    log.append(&simple(2, 0, Compression::None), 3, 0).unwrap();
    assert!(!log.assign_epoch(3, 4).unwrap());
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2)]);
    assert_eq!(log.end_offset_for_epoch(3), (3, 4));

    // Leadership that ends without writes is superseded by the next epoch's start.
    assert!(log.assign_epoch(4, 4).unwrap());
    assert!(log.assign_epoch(6, 4).unwrap());
    assert_eq!(epochs(&log), vec![(1, 0), (3, 2), (6, 4)]);
    // An assigned epoch with no data yet survives a reopen.
    drop(log);
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.latest_epoch(), Some(6));
    assert_eq!(
        log.epoch_entries().last(),
        Some(&EpochEntry {
            epoch: 6,
            start_offset: 4
        })
    );
}

#[test]
fn recovery_drops_epochs_whose_data_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with_epochs(dir.path(), LogConfig::default(), &[1, 2, 2]);
    assert_eq!(epochs(&log), vec![(1, 0), (2, 2)]);
    drop(log);
    // A crash tore the whole epoch-2 data off (the checkpoint had been written first).
    let seg = dir.path().join(format!("{:020}.log", 0));
    let keep = simple(2, 0, Compression::None).len() as u64;
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(keep + 10)
        .unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 2);
    // Epoch 2 starts at the end and holds nothing: kept, like an assigned epoch.
    assert_eq!(epochs(&log), vec![(1, 0), (2, 2)]);
    drop(log);
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(10)
        .unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(epochs(&log), vec![(1, 0)]);
}

#[test]
fn high_watermark_is_clamped_and_persisted_on_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_epochs(dir.path(), LogConfig::default(), &[0, 0, 0, 0]);
    assert_eq!(log.high_watermark(), 0, "defaults to the log start");
    assert_eq!(log.set_high_watermark(5), 5);
    assert_eq!(log.set_high_watermark(100), 8, "clamped to the log end");
    assert_eq!(log.set_high_watermark(-3), 0, "clamped to the log start");
    log.set_high_watermark(6);
    log.flush().unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join(HIGH_WATERMARK_FILE)).unwrap(),
        "6"
    );
    // Setting alone does not write: a crash brings back the flushed value.
    log.set_high_watermark(7);
    drop(log);
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.high_watermark(), 6);
    log.set_high_watermark(7);
    log.close().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.high_watermark(), 7);

    // Truncation lowers it, durably at once: the log grows past the old value again
    // (new data at offsets 4.. that was never committed) before a crash.
    log.truncate_to(5).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.high_watermark(), 4);
    log.append(&simple(6, 0, Compression::None), 1, 0).unwrap();
    drop(log);
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.high_watermark(), 4);

    // The log start moving past it lifts it.
    log.delete_records_before(5).unwrap();
    assert_eq!(log.high_watermark(), 5);

    // A stored value beyond the log (edited or stale) is clamped on open.
    log.close().unwrap();
    fs::write(dir.path().join(HIGH_WATERMARK_FILE), "1000").unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.high_watermark(), 10);
}

#[test]
fn follower_gap_beyond_32_bit_relative_offsets_starts_a_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let far = 3_000_000_000i64;
    // Empty active segment: it is rebased onto the data rather than left at 0.
    log.append_as_follower(&stamped(simple(2, 0, Compression::None), far, 1), 0)
        .unwrap();
    assert_eq!(log.segment_count(), 1);
    // Non-empty active segment: a roll at the incoming base offset.
    log.append_as_follower(&stamped(simple(1, 0, Compression::None), 2 * far, 1), 0)
        .unwrap();
    assert_eq!(log.segment_count(), 2);
    log.close().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.log_end_offset(), 2 * far + 1);
    let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![far, far + 1, 2 * far]);
    assert_eq!(
        batch_offsets(&log.read(far + 5, 1, i64::MAX).unwrap().records),
        vec![(2 * far, 2 * far)]
    );
}

#[test]
fn a_follower_behind_the_leaders_start_restarts_empty_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = log_with_epochs(dir.path(), LogConfig::default(), &[1, 1]);
    assert_eq!(log.log_end_offset(), 4);
    // The leader's log now starts at 10: offsets 4..10 exist nowhere.
    log.truncate_fully_and_start_at(10).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    assert_eq!(log.high_watermark(), 10);
    assert_eq!(log.latest_epoch(), None, "no epoch describes an empty log");
    assert!(read_all(&log).is_empty());
    // Fetching from the leader's start works from here, and survives a restart.
    log.append_as_follower(&stamped(simple(2, 0, Compression::None), 10, 3), 0)
        .unwrap();
    drop(log);
    let mut log = open(dir.path(), LogConfig::default());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 12));
    assert_eq!(epochs(&log), vec![(3, 10)]);
    assert!(log.truncate_fully_and_start_at(-1).is_err());
}
