//! Transactions in the log: the last stable offset, the aborted index, and
//! both surviving restarts, recovery, truncation and replication.

use crate::testutil::*;
use crate::{AbortedTxn, AppendOrigin, LogConfig, PartitionLog};

fn marker(log: &mut PartitionLog, pid: i64, commit: bool) -> i64 {
    let epoch = log.latest_epoch().unwrap_or(0);
    log.append_with_origin(
        &txn_marker(pid, 0, commit),
        epoch,
        1_000,
        AppendOrigin::Coordinator,
    )
    .unwrap()
    .base_offset
}

fn all_replicated(log: &mut PartitionLog) {
    let end = log.log_end_offset();
    log.set_high_watermark(end);
}

fn aborted(pid: i64, first: i64, last: i64) -> (i64, i64, i64) {
    (pid, first, last)
}

fn shape(list: Vec<AbortedTxn>) -> Vec<(i64, i64, i64)> {
    list.into_iter()
        .map(|t| (t.producer_id, t.first_offset, t.last_offset))
        .collect()
}

#[test]
fn an_open_transaction_holds_the_last_stable_offset_until_its_marker_is_replicated() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(
        &simple(2, 1_000, kafka_protocol::records::Compression::None),
        0,
        1_000,
    )
    .unwrap(); // 0..=1
    log.append(&transactional(7, 0, 0, 3), 0, 1_000).unwrap(); // 2..=4
    log.append(
        &simple(1, 1_000, kafka_protocol::records::Compression::None),
        0,
        1_000,
    )
    .unwrap(); // 5
    all_replicated(&mut log);
    assert_eq!(log.high_watermark(), 6);
    assert_eq!(
        log.last_stable_offset(),
        2,
        "held at the open transaction's first offset"
    );
    let at = marker(&mut log, 7, true); // 6
    assert_eq!(at, 6);
    assert_eq!(
        log.last_stable_offset(),
        2,
        "a marker not yet replicated does not make the transaction stable"
    );
    all_replicated(&mut log);
    assert_eq!(log.last_stable_offset(), 7);
    assert!(
        log.aborted_transactions(0, 7).is_empty(),
        "a commit is no abort"
    );
}

#[test]
fn aborted_transactions_are_indexed_and_come_back_after_a_clean_or_unclean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    log.append(&transactional(7, 0, 0, 2), 0, 1_000).unwrap(); // 0..=1
    log.append(&transactional(8, 0, 0, 2), 0, 1_000).unwrap(); // 2..=3
    marker(&mut log, 7, false); // 4
    log.append(&transactional(9, 0, 0, 1), 0, 1_000).unwrap(); // 5, left open
    marker(&mut log, 8, true); // 6
    all_replicated(&mut log);
    let want = vec![aborted(7, 0, 4)];
    assert_eq!(shape(log.aborted_transactions(0, 7)), want);
    assert!(
        log.aborted_transactions(5, 7).is_empty(),
        "nothing of 7's abort lies past 4"
    );
    assert_eq!(log.last_stable_offset(), 5);
    log.close().unwrap();

    let mut log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(shape(log.aborted_transactions(0, 7)), want);
    assert_eq!(
        log.last_stable_offset(),
        5,
        "the open transaction is still open"
    );
    // Unclean: the producer snapshot is gone and the index files too; a full
    // replay of the batches rebuilds both.
    marker(&mut log, 9, false); // 7
    all_replicated(&mut log);
    log.flush().unwrap();
    drop(log);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".txnindex") || name == "producer-state.json" {
            std::fs::remove_file(path).unwrap();
        }
    }
    let log = PartitionLog::open(dir.path(), small_config(), 0).unwrap();
    assert_eq!(
        shape(log.aborted_transactions(0, 8)),
        vec![aborted(7, 0, 4), aborted(9, 5, 7)]
    );
    assert_eq!(log.last_stable_offset(), 8);
}

#[test]
fn truncation_below_a_marker_reopens_its_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    log.append(&transactional(7, 0, 0, 2), 0, 1_000).unwrap(); // 0..=1
    marker(&mut log, 7, false); // 2
    all_replicated(&mut log);
    assert_eq!(
        shape(log.aborted_transactions(0, 3)),
        vec![aborted(7, 0, 2)]
    );
    log.truncate_to(2).unwrap();
    assert!(
        log.aborted_transactions(0, 3).is_empty(),
        "the abort went with its marker"
    );
    all_replicated(&mut log);
    assert_eq!(log.last_stable_offset(), 0, "the transaction is open again");
    drop(log);
    let log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(
        log.aborted_transactions(0, 3).is_empty(),
        "and its index entry is gone on disk"
    );
}

#[test]
fn a_follower_tracks_transactions_as_its_leader_does() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = PartitionLog::open(leader_dir.path(), LogConfig::default(), 0).unwrap();
    let mut follower = PartitionLog::open(follower_dir.path(), LogConfig::default(), 0).unwrap();
    leader.append(&transactional(7, 0, 0, 2), 0, 1_000).unwrap();
    leader.append(&transactional(8, 0, 0, 1), 0, 1_000).unwrap();
    marker(&mut leader, 7, false);
    let end = leader.log_end_offset();
    let read = leader.read(0, 1 << 20, end).unwrap();
    follower.append_as_follower(&read.records, 1_000).unwrap();
    all_replicated(&mut follower);
    assert_eq!(
        shape(follower.aborted_transactions(0, end)),
        vec![aborted(7, 0, 3)]
    );
    assert_eq!(
        follower.last_stable_offset(),
        2,
        "8's transaction is open on the follower too"
    );
}

#[test]
fn clients_cannot_write_markers_and_a_fenced_epoch_cannot_write_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), 0).unwrap();
    assert!(log.append(&txn_marker(7, 0, true), 0, 1_000).is_err());
    log.append(&transactional(7, 0, 0, 1), 0, 1_000).unwrap();
    // The coordinator aborts under a bumped epoch (a timeout, a new instance).
    log.append_with_origin(
        &txn_marker(7, 1, false),
        0,
        1_000,
        AppendOrigin::Coordinator,
    )
    .unwrap();
    let zombie = log.append(&transactional(7, 0, 1, 1), 0, 1_000);
    assert!(
        matches!(zombie, Err(crate::LogError::InvalidProducerEpoch(_))),
        "{zombie:?}"
    );
}

#[test]
fn compaction_drops_aborted_data_and_keeps_abort_markers_until_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        ..compact_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, 0).unwrap();
    let keyed = |pid: i64, seq: i32, key: &str, value: &str| {
        let mut batch = encode(
            &[Rec(Some(key), Some(value), 1_000)],
            kafka_protocol::records::Compression::None,
            Some(&Producer {
                id: pid,
                epoch: 0,
                base_sequence: seq,
            }),
        );
        let mut header = crate::batch::BatchHeaderMut::new(&mut batch).unwrap();
        let attrs = header.view().attributes();
        header.set_attributes(attrs | (1 << 4));
        header.update_crc();
        batch
    };
    log.append(&keyed(7, 0, "k", "committed"), 0, 1_000)
        .unwrap(); // 0
    marker(&mut log, 7, true); // 1
    log.append(&keyed(8, 0, "k", "aborted"), 0, 1_000).unwrap(); // 2
    marker(&mut log, 8, false); // 3
    // Fill segments so the ones above are closed.
    for _ in 0..20 {
        log.append(
            &simple(5, 1_000, kafka_protocol::records::Compression::None),
            0,
            1_000,
        )
        .unwrap();
    }
    all_replicated(&mut log);
    log.compact(2_000).unwrap();
    let end = log.log_end_offset();
    let values: Vec<(i64, Option<String>)> =
        decode_all(&log.read(0, 1 << 20, end).unwrap().records)
            .into_iter()
            .filter(|r| r.0 < 4)
            .map(|r| (r.0, r.2))
            .collect();
    assert!(
        values
            .iter()
            .any(|(o, v)| *o == 0 && v.as_deref() == Some("committed")),
        "the aborted record must not supersede the committed one: {values:?}"
    );
    assert!(
        !values.iter().any(|(o, _)| *o == 2),
        "aborted data is dropped: {values:?}"
    );
    assert!(
        values.iter().any(|(o, _)| *o == 3),
        "the abort marker stays for now"
    );
    // Past delete.retention.ms after the first cleaning, the marker goes too.
    log.compact(2_000 + 1_001).unwrap();
    let offsets: Vec<i64> = decode_all(&log.read(0, 1 << 20, end).unwrap().records)
        .into_iter()
        .map(|r| r.0)
        .filter(|o| *o < 4)
        .collect();
    assert_eq!(
        offsets,
        vec![0, 1],
        "committed record and commit marker remain"
    );
}
