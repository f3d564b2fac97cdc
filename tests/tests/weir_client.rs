//! Weir's own client (`weir-client`) against the real `weir broker`
//! process: admin, idempotent producer, group consumer, committed offsets
//! and lag, and that keys land where Java's partitioner puts them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use weir_client::ClientConfig;
use weir_client::admin::{Admin, ConfigResource, NewTopic, OffsetSpec};
use weir_client::consumer::{
    CommitOffset, Consumer, ConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset,
    RebalanceListener,
};
use weir_client::producer::{Producer, ProducerConfig, ProducerRecord};
use weir_client::transaction::GroupMetadata;
use weir_e2e::BrokerProcess;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_commit_and_lag() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");

    let mut topic = NewTopic::new("payments", 3, 1);
    topic
        .configs
        .push(("retention.ms".into(), "3600000".into()));
    admin.create_topic(topic).await.expect("create");
    let err = admin
        .create_topic(NewTopic::new("payments", 3, 1))
        .await
        .expect_err("duplicate");
    assert!(err.to_string().contains("TOPIC_ALREADY_EXISTS"), "{err}");
    let meta = admin
        .wait_for_topic("payments", Duration::from_secs(10))
        .await
        .expect("metadata");
    assert_eq!(meta.partitions.len(), 3);
    let configs = admin
        .describe_configs(&ConfigResource::topic("payments"))
        .await
        .expect("configs");
    let retention = configs
        .iter()
        .find(|c| c.name == "retention.ms")
        .expect("retention.ms");
    assert_eq!(retention.value.as_deref(), Some("3600000"));

    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let mut pending = Vec::new();
    for i in 0..300 {
        let record = ProducerRecord::new("payments", format!("value-{i}"))
            .with_key(format!("key-{}", i % 11));
        pending.push(producer.send(record));
    }
    producer.flush().await.expect("flush");
    let mut partition_of_key = BTreeMap::new();
    for (i, ack) in pending.into_iter().enumerate() {
        let meta = ack.await.expect("acknowledged");
        let previous = partition_of_key.insert(i % 11, meta.partition);
        assert!(
            previous.is_none_or(|p| p == meta.partition),
            "a key moved between partitions"
        );
    }

    let group = "payments-readers";
    let mut consumer = Consumer::connect(
        client.clone(),
        ConsumerConfig {
            group_id: Some(group.into()),
            auto_offset_reset: OffsetReset::Earliest,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    consumer.subscribe(&["payments"]).expect("subscribe");
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < 300 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "consumed only {} of 300",
            seen.len()
        );
        for r in consumer.poll(Duration::from_secs(1)).await.expect("poll") {
            let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
            let n: usize = key.trim_start_matches("key-").parse().unwrap();
            assert_eq!(
                partition_of_key[&n], r.partition,
                "record read from another partition than acked"
            );
            seen.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    seen.sort();
    let mut expected: Vec<String> = (0..300).map(|i| format!("value-{i}")).collect();
    expected.sort();
    assert_eq!(seen, expected, "every record exactly once");
    consumer.commit().await.expect("commit");

    let lag = admin.group_lag(group).await.expect("lag");
    assert_eq!(lag.len(), 3);
    assert!(lag.iter().all(|p| p.lag == Some(0)), "{lag:?}");
    let latest = admin
        .list_offsets("payments", OffsetSpec::Latest)
        .await
        .expect("latest");
    assert_eq!(latest.values().map(|o| o.offset).sum::<i64>(), 300);
    let description = admin.describe_group(group).await.expect("describe");
    assert_eq!(description.members.len(), 1);
    consumer.close().await.expect("close");

    admin
        .delete_topics(&["payments".to_string()])
        .await
        .expect("delete");
    let listed = admin.list_topics(false).await.expect("list");
    assert!(
        listed.iter().all(|t| t.name != "payments"),
        "deleted topic still listed"
    );
}

/// `weir group reset-offsets`: a dry run changes nothing, `--execute`
/// commits the plan (shifts clamped to the log), and a group with an active
/// member is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_reset_offsets_moves_only_an_inactive_groups_offsets() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("resettable", 2, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("resettable", Duration::from_secs(10))
        .await
        .expect("metadata");
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    for i in 0..20 {
        let record = ProducerRecord::new("resettable", format!("v{i}")).with_partition(i % 2);
        drop(producer.send(record));
    }
    producer.flush().await.expect("flush");
    let mut committer = Consumer::connect(
        client.clone(),
        ConsumerConfig {
            group_id: Some("resets".into()),
            enable_auto_commit: false,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    // Retried as Kafka's clients retry a coordinator still loading.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Err(e) = committer
        .commit_offsets(&[("resettable".into(), 0, 8), ("resettable".into(), 1, 9)])
        .await
    {
        assert!(std::time::Instant::now() < deadline, "commit: {e}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let weir = |args: &[&str]| {
        let out = std::process::Command::new(weir_e2e::weir_bin())
            .args([
                "group",
                "reset-offsets",
                "--bootstrap-server",
                &broker.bootstrap(),
            ])
            .args(args)
            .env("WEIR_LOG", "warn")
            .output()
            .expect("running weir");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let committed = || async { admin.committed_offsets("resets").await.expect("committed") };
    let at = |m: &BTreeMap<(String, i32), i64>, p: i32| m[&("resettable".to_string(), p)];

    let (ok, text) = weir(&["resets", "--topic", "resettable", "--shift-by", "-3"]);
    assert!(ok, "{text}");
    assert!(text.contains("resets\tresettable\t0\t5"), "{text}");
    assert!(text.contains("dry run"), "{text}");
    assert_eq!(at(&committed().await, 0), 8, "a dry run commits nothing");

    let (ok, text) = weir(&["resets", "--all-topics", "--shift-by", "5", "--execute"]);
    assert!(ok, "{text}");
    let after = committed().await;
    assert_eq!(
        (at(&after, 0), at(&after, 1)),
        (10, 10),
        "clamped to the log end"
    );

    let (ok, text) = weir(&[
        "resets",
        "--topic",
        "resettable:1",
        "--to-earliest",
        "--execute",
    ]);
    assert!(ok, "{text}");
    let after = committed().await;
    assert_eq!((at(&after, 0), at(&after, 1)), (10, 0));

    let (ok, text) = weir(&["resets", "--topic", "resettable", "--shift-by", "x"]);
    assert!(!ok && text.contains("--shift-by"), "{text}");

    // An active member: refused, offsets untouched.
    let mut member = Consumer::connect(
        client.clone(),
        ConsumerConfig {
            group_id: Some("resets".into()),
            enable_auto_commit: false,
            ..Default::default()
        },
    )
    .await
    .expect("member");
    member.subscribe(&["resettable"]).expect("subscribe");
    let _ = member.poll(Duration::from_secs(5)).await;
    let (ok, text) = weir(&["resets", "--all-topics", "--to-latest", "--execute"]);
    assert!(!ok && text.contains("inactive"), "{text}");
    assert_eq!(at(&committed().await, 1), 0);
}

/// Reads `topic`'s partitions from the start until `want` records came or
/// a quiet second passes after the deadline for them.
async fn read_all(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
    isolation: IsolationLevel,
    want: usize,
) -> Vec<String> {
    let mut consumer = Consumer::connect(
        client.clone(),
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            isolation_level: isolation,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    let tps: Vec<(&str, i32)> = (0..partitions).map(|p| (topic, p)).collect();
    consumer.assign(&tps);
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let batch = consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll");
        let quiet = batch.is_empty();
        seen.extend(
            batch
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
        if (seen.len() >= want && quiet) || tokio::time::Instant::now() > deadline {
            break;
        }
    }
    seen.sort();
    seen
}

/// The transactional producer: a committed transaction is read by
/// read_committed consumers, an aborted one only by read_uncommitted ones,
/// offsets sent in a transaction count once it commits, and a second
/// instance with the same transactional.id fences the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactional_producer_commits_aborts_sends_offsets_and_is_fenced() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("ledger", 2, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("ledger", Duration::from_secs(10))
        .await
        .expect("metadata");
    let config = ProducerConfig {
        transactional_id: Some("ledger-writer".into()),
        ..Default::default()
    };
    let first = Producer::connect(client.clone(), config.clone())
        .await
        .expect("transactional producer");
    first.begin_transaction().await.expect("begin");
    for i in 0..10 {
        drop(first.send(ProducerRecord::new("ledger", format!("c{i}")).with_partition(i % 2)));
    }
    first.commit_transaction().await.expect("commit");
    first.begin_transaction().await.expect("begin");
    for i in 0..5 {
        drop(first.send(ProducerRecord::new("ledger", format!("a{i}")).with_partition(i % 2)));
    }
    first.flush().await.expect("flush");
    first.abort_transaction().await.expect("abort");

    let committed: Vec<String> = {
        let mut v: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        v.sort();
        v
    };
    assert_eq!(
        read_all(&client, "ledger", 2, IsolationLevel::ReadCommitted, 10).await,
        committed
    );
    assert_eq!(
        read_all(&client, "ledger", 2, IsolationLevel::ReadUncommitted, 15)
            .await
            .len(),
        15,
        "read_uncommitted sees the aborted records too"
    );

    let group = GroupMetadata::new("ledger-readers");
    first.begin_transaction().await.expect("begin");
    first
        .send_offsets_to_transaction(vec![("ledger".into(), 0, 4)], group.clone())
        .await
        .expect("send offsets");
    first.abort_transaction().await.expect("abort");
    let offsets = admin
        .committed_offsets("ledger-readers")
        .await
        .unwrap_or_default();
    assert_eq!(
        offsets.get(&("ledger".to_string(), 0)),
        None,
        "aborted offsets do not count"
    );
    first.begin_transaction().await.expect("begin");
    first
        .send_offsets_to_transaction(vec![("ledger".into(), 0, 3)], group)
        .await
        .expect("send offsets");
    first.commit_transaction().await.expect("commit");
    let mut offsets = BTreeMap::new();
    for _ in 0..100 {
        offsets = admin
            .committed_offsets("ledger-readers")
            .await
            .expect("offsets");
        if !offsets.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(offsets.get(&("ledger".to_string(), 0)), Some(&3));

    // A second instance takes over; the first is fenced.
    let second = Producer::connect(client.clone(), config)
        .await
        .expect("second instance");
    first.begin_transaction().await.expect("begin is local");
    let ack = first.send(ProducerRecord::new("ledger", "zombie").with_partition(0));
    assert!(ack.await.is_err(), "a fenced producer's record is refused");
    let fenced = first.commit_transaction().await.expect_err("fenced");
    assert!(matches!(fenced, weir_client::Error::Fenced(_)), "{fenced}");
    second.begin_transaction().await.expect("begin");
    drop(second.send(ProducerRecord::new("ledger", "c10").with_partition(1)));
    second.commit_transaction().await.expect("commit");
    let seen = read_all(&client, "ledger", 2, IsolationLevel::ReadCommitted, 11).await;
    assert_eq!(seen.len(), 11, "{seen:?}");
    assert!(
        !seen.iter().any(|v| v == "zombie" || v.starts_with('a')),
        "{seen:?}"
    );
}

/// `weir txn`: an open transaction is listed and described, its producer
/// shows the transaction's first offset on the partition, and aborting it
/// there lets read_committed consumers past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_txn_lists_describes_and_aborts_a_hanging_transaction() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("held", 1, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("held", Duration::from_secs(10))
        .await
        .expect("metadata");
    let plain = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    plain
        .send(ProducerRecord::new("held", "before"))
        .await
        .expect("before");
    let stuck = Producer::connect(
        client.clone(),
        ProducerConfig {
            transactional_id: Some("stuck-writer".into()),
            ..Default::default()
        },
    )
    .await
    .expect("transactional producer");
    stuck.begin_transaction().await.expect("begin");
    stuck
        .send(ProducerRecord::new("held", "in-doubt"))
        .await
        .expect("in-doubt");
    plain
        .send(ProducerRecord::new("held", "after"))
        .await
        .expect("after");
    assert_eq!(
        read_all(&client, "held", 1, IsolationLevel::ReadCommitted, 1).await,
        vec!["before".to_string()],
        "the open transaction holds read_committed readers back"
    );

    let weir = |args: &[&str]| {
        let out = std::process::Command::new(weir_e2e::weir_bin())
            .arg("txn")
            .args(args)
            .args(["--bootstrap-server", &broker.bootstrap()])
            .env("WEIR_LOG", "warn")
            .output()
            .expect("running weir");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "weir txn {args:?}: {text}");
        text
    };
    let listed = weir(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("stuck-writer") && l.contains("Ongoing")),
        "{listed}"
    );
    let described = weir(&["describe", "stuck-writer"]);
    assert!(described.contains("held-0"), "{described}");
    let producers = weir(&["describe-producers", "--topic", "held", "--partition", "0"]);
    assert!(
        producers.lines().any(|l| l.ends_with("\t1")),
        "the transaction started at offset 1: {producers}"
    );
    let aborted = weir(&[
        "abort",
        "--topic",
        "held",
        "--partition",
        "0",
        "--start-offset",
        "1",
    ]);
    assert!(aborted.contains("Aborted"), "{aborted}");
    assert_eq!(
        read_all(&client, "held", 1, IsolationLevel::ReadCommitted, 2).await,
        vec!["after".to_string(), "before".to_string()],
        "past the aborted transaction, without its record"
    );
}

async fn produce_to(client: &ClientConfig, topic: &str, partition: i32, n: usize) {
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let acks: Vec<_> = (0..n)
        .map(|i| {
            producer.send(
                ProducerRecord::new(topic, format!("{topic}-{partition}-{i}"))
                    .with_partition(partition),
            )
        })
        .collect();
    producer.flush().await.expect("flush");
    for a in acks {
        a.await.expect("acknowledged");
    }
}

fn find_dir(root: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == name) {
                return Some(path);
            }
            if let Some(found) = find_dir(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

/// A partition whose fetch fails (here: a record batch corrupted on disk,
/// so its CRC no longer matches) must not drop the records of the other
/// partitions fetched in the same round: their positions have advanced, so
/// dropping them would skip them for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_partition_does_not_drop_records_fetched_beside_it() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("torn", 2, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("torn", Duration::from_secs(10))
        .await
        .expect("metadata");
    produce_to(&client, "torn", 0, 10).await;
    produce_to(&client, "torn", 1, 10).await;

    // Flip the last byte of partition 1's log: inside its last batch.
    let dir = find_dir(&broker.data_dir, "torn-1").expect("partition directory");
    let log = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("segment");
    let mut bytes = std::fs::read(&log).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();

    let mut consumer = Consumer::connect(
        client,
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    consumer.assign(&[("torn", 0), ("torn", 1)]);
    let mut from_0 = Vec::new();
    let mut errors = Vec::new();
    for _ in 0..10 {
        match consumer.poll(Duration::from_millis(500)).await {
            Ok(records) => from_0.extend(
                records
                    .iter()
                    .filter(|r| r.partition == 0)
                    .map(|r| r.offset),
            ),
            Err(e) => errors.push(e.to_string()),
        }
    }
    assert!(
        errors.iter().any(|e| e.contains("torn-1")),
        "the corrupt partition's error is reported: {errors:?}"
    );
    assert_eq!(
        from_0,
        (0..10).collect::<Vec<i64>>(),
        "partition 0's records, each once"
    );
    assert_eq!(consumer.position("torn", 0), Some(10));
}

/// `seek_to_beginning` moves the positions it is asked to; it does not turn
/// the consumer's `auto.offset.reset` into earliest for partitions it gets
/// later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_to_beginning_leaves_the_reset_policy_alone() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("rewind", 2, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("rewind", Duration::from_secs(10))
        .await
        .expect("metadata");
    produce_to(&client, "rewind", 0, 5).await;
    produce_to(&client, "rewind", 1, 5).await;
    let mut consumer = Consumer::connect(
        client,
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    consumer.assign(&[("rewind", 0)]);
    consumer.seek_to_beginning();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let records = consumer.poll(Duration::from_secs(5)).await.expect("poll");
        assert!(!records.is_empty(), "partition 0 read from its beginning");
        seen.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    // A partition assigned afterwards follows auto.offset.reset=latest.
    consumer.assign(&[("rewind", 0), ("rewind", 1)]);
    consumer.seek("rewind", 0, 5);
    let records = consumer.poll(Duration::from_secs(1)).await.expect("poll");
    assert!(records.is_empty(), "read {records:?}");
    assert_eq!(consumer.position("rewind", 1), Some(5));
}

/// A member dropped from its group (it stopped polling past the rebalance
/// timeout while another joined) must not go on from its own positions when
/// it comes back: the other member read and committed past them meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dropped_from_its_group_resumes_from_the_committed_offsets() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("handover", 1, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic("handover", Duration::from_secs(10))
        .await
        .expect("metadata");
    produce_to(&client, "handover", 0, 10).await;
    let config = ConsumerConfig {
        group_id: Some("handover-readers".into()),
        auto_offset_reset: OffsetReset::Earliest,
        enable_auto_commit: false,
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(2),
        heartbeat_interval: Duration::from_millis(300),
        ..Default::default()
    };
    let mut first = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    first.subscribe(&["handover"]).expect("subscribe");
    let mut read = 0;
    while read < 10 {
        read += first
            .poll(Duration::from_secs(5))
            .await
            .expect("poll")
            .len();
    }
    assert_eq!(first.position("handover", 0), Some(10));

    // `first` stops polling; `second` joins, is alone once `first` misses
    // the rebalance, reads on and commits 15.
    produce_to(&client, "handover", 0, 10).await;
    let mut second = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    second.subscribe(&["handover"]).expect("subscribe");
    let mut offsets = Vec::new();
    while offsets.len() < 20 {
        let records = second.poll(Duration::from_secs(5)).await.expect("poll");
        offsets.extend(records.iter().map(|r| r.offset));
    }
    second.seek("handover", 0, 15);
    second.commit().await.expect("commit");
    second.close().await.expect("close");

    // `first` comes back: the coordinator no longer knows it, and it takes
    // the partition up at the committed 15, not its own 10.
    let records = first.poll(Duration::from_secs(20)).await.expect("poll");
    assert_eq!(records.first().map(|r| r.offset), Some(15), "resumed at");
}

async fn topic_with_records(client: &ClientConfig, topic: &str, partitions: i32, each: usize) {
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new(topic, partitions, 1))
        .await
        .expect("create");
    admin
        .wait_for_topic(topic, Duration::from_secs(10))
        .await
        .expect("metadata");
    for p in 0..partitions {
        produce_to(client, topic, p, each).await;
    }
}

/// `max.poll.records` bounds what one poll returns, and a commit after a
/// poll stores only the position past what that poll returned — not past
/// what was fetched and still waits in the consumer. The commit carries the
/// leader epoch of the last record returned, and metadata is stored and
/// read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_poll_records_bounds_a_poll_and_commits_only_what_was_returned() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "bounded", 1, 50).await;
    let mut consumer = Consumer::connect(
        client.clone(),
        ConsumerConfig {
            group_id: Some("bounded-readers".into()),
            auto_offset_reset: OffsetReset::Earliest,
            enable_auto_commit: false,
            max_poll_records: 7,
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    consumer.assign(&[("bounded", 0)]);
    let first = consumer.poll(Duration::from_secs(5)).await.expect("poll");
    assert!(
        !first.is_empty() && first.len() <= 7,
        "{} records",
        first.len()
    );
    let returned = first.len() as i64;
    assert_eq!(
        first.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (0..returned).collect::<Vec<_>>()
    );
    consumer.commit().await.expect("commit");
    let tp = ("bounded".to_string(), 0);
    let committed = consumer
        .committed(std::slice::from_ref(&tp))
        .await
        .expect("committed");
    assert_eq!(
        committed[&tp].offset, returned,
        "only what the poll returned"
    );
    let admin = Admin::connect(client.clone()).await.expect("admin");
    let leader_epoch = admin
        .describe_topic("bounded")
        .await
        .expect("describe")
        .partitions[0]
        .leader_epoch;
    assert_eq!(committed[&tp].leader_epoch, Some(leader_epoch));
    assert_eq!(first.last().unwrap().leader_epoch, Some(leader_epoch));

    let mut offsets: Vec<i64> = first.iter().map(|r| r.offset).collect();
    while offsets.len() < 50 {
        let records = consumer.poll(Duration::from_secs(5)).await.expect("poll");
        assert!(records.len() <= 7, "{} records in one poll", records.len());
        assert!(!records.is_empty(), "stalled at {}", offsets.len());
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(
        offsets,
        (0..50).collect::<Vec<i64>>(),
        "each record once, in order"
    );

    consumer
        .commit_offsets_with(&[CommitOffset::new("bounded", 0, 20).with_metadata("checkpoint-20")])
        .await
        .expect("commit with metadata");
    let committed = consumer
        .committed(std::slice::from_ref(&tp))
        .await
        .expect("committed");
    assert_eq!(committed[&tp].offset, 20);
    assert_eq!(committed[&tp].metadata.as_deref(), Some("checkpoint-20"));
}

/// A paused partition is not read (the others are) until it is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_partition_waits_until_resumed() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "paced", 2, 5).await;
    let mut consumer = Consumer::connect(
        client,
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            fetch_max_wait: Duration::from_millis(100),
            ..Default::default()
        },
    )
    .await
    .expect("consumer");
    consumer.assign(&[("paced", 0), ("paced", 1)]);
    consumer.pause(&[("paced", 0)]);
    assert_eq!(consumer.paused(), vec![("paced".to_string(), 0)]);
    let mut from = BTreeMap::<i32, usize>::new();
    for _ in 0..6 {
        for r in consumer
            .poll(Duration::from_millis(300))
            .await
            .expect("poll")
        {
            *from.entry(r.partition).or_default() += 1;
        }
    }
    assert_eq!(from, BTreeMap::from([(1, 5)]), "only the running partition");
    consumer.resume(&[("paced", 0)]);
    assert!(consumer.paused().is_empty());
    let mut resumed = 0;
    for _ in 0..10 {
        resumed += consumer
            .poll(Duration::from_millis(500))
            .await
            .expect("poll")
            .iter()
            .filter(|r| r.partition == 0)
            .count();
        if resumed == 5 {
            break;
        }
    }
    assert_eq!(resumed, 5, "the resumed partition's records");
}

type Events = std::sync::Arc<std::sync::Mutex<Vec<(&'static str, &'static str, Vec<i32>)>>>;

struct Recorder {
    name: &'static str,
    events: Events,
}

impl Recorder {
    fn push(&self, kind: &'static str, partitions: &[(String, i32)]) {
        let mut ps: Vec<i32> = partitions.iter().map(|(_, p)| *p).collect();
        ps.sort_unstable();
        self.events.lock().unwrap().push((self.name, kind, ps));
    }
}

impl RebalanceListener for Recorder {
    fn on_partitions_assigned(&mut self, partitions: &[(String, i32)]) {
        self.push("assigned", partitions);
    }
    fn on_partitions_revoked(&mut self, partitions: &[(String, i32)]) {
        self.push("revoked", partitions);
    }
    fn on_partitions_lost(&mut self, partitions: &[(String, i32)]) {
        self.push("lost", partitions);
    }
}

/// Polls on its own task until told to stop, then hands the consumer back.
fn keep_polling(
    mut consumer: Consumer,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Consumer> {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            consumer
                .poll(Duration::from_millis(200))
                .await
                .expect("poll");
        }
        consumer
    })
}

async fn wait_for(events: &Events, what: impl Fn(&[(&str, &str, Vec<i32>)]) -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !what(&events.lock().unwrap()) {
        assert!(
            std::time::Instant::now() < deadline,
            "events so far: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The rebalance listener hears every change of assignment: a member
/// joining makes the first give up its partitions (revoked) before both
/// get their share (assigned), and the shares never overlap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_listener_hears_partitions_revoked_before_they_move() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "shared", 4, 1).await;
    let config = ConsumerConfig {
        group_id: Some("listeners".into()),
        auto_offset_reset: OffsetReset::Earliest,
        session_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_millis(200),
        rebalance_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let events: Events = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut first = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    first
        .subscribe_with(
            &["shared"],
            Recorder {
                name: "first",
                events: events.clone(),
            },
        )
        .expect("subscribe");
    let first = keep_polling(first, stop.clone());
    wait_for(&events, |e| {
        e.contains(&("first", "assigned", vec![0, 1, 2, 3]))
    })
    .await;

    let mut second = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    second
        .subscribe_with(
            &["shared"],
            Recorder {
                name: "second",
                events: events.clone(),
            },
        )
        .expect("subscribe");
    let second = keep_polling(second, stop.clone());
    let settled = |e: &[(&str, &str, Vec<i32>)], name: &str| {
        e.iter()
            .rev()
            .find(|(n, kind, _)| *n == name && *kind == "assigned")
            .map(|(_, _, ps)| ps.len())
            == Some(2)
    };
    wait_for(&events, |e| settled(e, "first") && settled(e, "second")).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let first = first.await.expect("first");
    let second = second.await.expect("second");

    let events = events.lock().unwrap().clone();
    let of = |name: &str| -> Vec<(&str, Vec<i32>)> {
        events
            .iter()
            .filter(|(n, ..)| *n == name)
            .map(|(_, k, ps)| (*k, ps.clone()))
            .collect()
    };
    let first_events = of("first");
    assert_eq!(
        first_events[0],
        ("assigned", vec![0, 1, 2, 3]),
        "{events:?}"
    );
    assert_eq!(first_events[1], ("revoked", vec![0, 1, 2, 3]), "{events:?}");
    let mut owned: Vec<i32> = first.assignment().iter().map(|(_, p)| *p).collect();
    owned.extend(second.assignment().iter().map(|(_, p)| *p));
    owned.sort_unstable();
    assert_eq!(owned, vec![0, 1, 2, 3], "every partition, once: {events:?}");
    assert_eq!(
        first_events.last().unwrap().1,
        first
            .assignment()
            .iter()
            .map(|(_, p)| *p)
            .collect::<Vec<_>>()
    );
    assert!(
        of("second").iter().all(|(kind, _)| *kind != "lost"),
        "{events:?}"
    );
}

/// Replays listener events in the order they happened (one process, one
/// lock): no partition is assigned while another member still owns it.
fn assert_never_owned_twice(events: &[(&str, &str, Vec<i32>)]) {
    let mut owner: BTreeMap<i32, &str> = BTreeMap::new();
    for (name, kind, partitions) in events {
        for p in partitions {
            match *kind {
                "assigned" => {
                    if let Some(other) = owner.insert(*p, name) {
                        panic!("partition {p} given to {name} while {other} owns it: {events:?}");
                    }
                }
                _ => {
                    owner.remove(p);
                }
            }
        }
    }
}

/// weir-client with `group.protocol=consumer` (KIP-848): a second member
/// joining takes half the partitions only after the first has revoked
/// them (and committed where it got to), leaving gives them back, and every
/// record is read exactly once across the hand-overs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_members_hand_partitions_over_without_overlap_or_loss() {
    let config = ConsumerConfig {
        group_protocol: GroupProtocol::Consumer,
        group_remote_assignor: Some("uniform".into()),
        ..Default::default()
    };
    let group_type = hand_partitions_over(config).await;
    assert_eq!(group_type, weir_client::admin::GroupType::Consumer);
}

/// The same with a classic group and `cooperative-sticky` (KIP-429): the
/// first member keeps half its partitions through the rebalance and
/// revokes only the half that moves, which the joining member gets in the
/// follow-up rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_members_hand_partitions_over_without_overlap_or_loss() {
    let config = ConsumerConfig {
        assignment_strategy: weir_client::assignor::AssignmentStrategy::CooperativeSticky,
        heartbeat_interval: Duration::from_millis(200),
        session_timeout: Duration::from_secs(10),
        rebalance_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let group_type = hand_partitions_over(config).await;
    assert_eq!(group_type, weir_client::admin::GroupType::Classic);
}

/// Two members of `protocol`'s group over four partitions: the second
/// joins, then leaves. Returns the group's type as described.
async fn hand_partitions_over(protocol: ConsumerConfig) -> weir_client::admin::GroupType {
    let broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.min.heartbeat.interval.ms=200",
        "group.initial.rebalance.delay.ms=0",
    ]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "reconciled", 4, 5).await;
    let config = ConsumerConfig {
        group_id: Some("handing-over".into()),
        auto_offset_reset: OffsetReset::Earliest,
        auto_commit_interval: Duration::from_millis(100),
        ..protocol
    };
    let events: Events = Default::default();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<(i32, i64)>>> = Default::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let member = |name: &'static str, stop: std::sync::Arc<std::sync::atomic::AtomicBool>| {
        let (config, client, events, seen) =
            (config.clone(), client.clone(), events.clone(), seen.clone());
        tokio::spawn(async move {
            let mut consumer = Consumer::connect(client, config).await.expect("consumer");
            consumer
                .subscribe_with(&["reconciled"], Recorder { name, events })
                .expect("subscribe");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let records = consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .expect("poll");
                seen.lock()
                    .unwrap()
                    .extend(records.iter().map(|r| (r.partition, r.offset)));
            }
            let member = consumer.group_member();
            consumer.close().await.expect("close");
            member
        })
    };
    let owns = |e: &[(&str, &str, Vec<i32>)], name: &str| -> BTreeSet<i32> {
        let mut owned = BTreeSet::new();
        for (_, kind, ps) in e.iter().filter(|(n, ..)| *n == name) {
            for p in ps {
                if *kind == "assigned" {
                    owned.insert(*p);
                } else {
                    owned.remove(p);
                }
            }
        }
        owned
    };
    let first = member("first", stop.clone());
    wait_for(&events, |e| owns(e, "first").len() == 4).await;
    wait_for(&events, |_| seen.lock().unwrap().len() == 20).await;

    produce_round(&client, "reconciled", 4, 5).await;
    let stop_second = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let second = member("second", stop_second.clone());
    wait_for(&events, |e| {
        owns(e, "first").len() == 2 && owns(e, "second").len() == 2
    })
    .await;
    produce_round(&client, "reconciled", 4, 5).await;
    wait_for(&events, |_| seen.lock().unwrap().len() >= 60).await;

    stop_second.store(true, std::sync::atomic::Ordering::Relaxed);
    let (epoch, member_id) = second.await.expect("second").expect("was a member");
    assert!(epoch > 0 && !member_id.is_empty(), "{epoch} {member_id}");
    wait_for(&events, |e| owns(e, "first").len() == 4).await;
    produce_round(&client, "reconciled", 4, 5).await;
    wait_for(&events, |_| seen.lock().unwrap().len() >= 80).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    first.await.expect("first");

    let events = events.lock().unwrap().clone();
    assert_never_owned_twice(&events);
    // Incremental, not eager: when the second joins, the first gives up
    // only the two partitions that move.
    assert!(
        events
            .iter()
            .find(|(n, k, _)| *n == "first" && *k == "revoked")
            .is_some_and(|(.., ps)| ps.len() == 2),
        "the first member gave up two partitions, not all: {events:?}"
    );
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    let before = seen.len();
    seen.dedup();
    assert_eq!(before, seen.len(), "a record read twice across a hand-over");
    let expected: Vec<(i32, i64)> = (0..4).flat_map(|p| (0..20).map(move |o| (p, o))).collect();
    assert_eq!(seen, expected, "every record once");
    let admin = Admin::connect(client).await.expect("admin");
    let committed = admin
        .committed_offsets("handing-over")
        .await
        .expect("committed");
    assert_eq!(
        committed.values().copied().collect::<Vec<_>>(),
        vec![20; 4],
        "{committed:?}"
    );
    admin
        .describe_group("handing-over")
        .await
        .expect("describe")
        .group_type
}

async fn produce_round(client: &ClientConfig, topic: &str, partitions: i32, each: usize) {
    for p in 0..partitions {
        produce_to(client, topic, p, each).await;
    }
}

/// A KIP-848 member that does not take up its reconciliation (it stopped
/// polling, so never acknowledges the revocation) is fenced once its
/// rebalance timeout passes: the other member gets every partition, and
/// when the first polls again its listener hears them lost before it joins
/// anew and is given its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip848_member_that_stops_reconciling_loses_its_partitions_and_rejoins() {
    let broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.min.heartbeat.interval.ms=200",
    ]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "fenced", 4, 1).await;
    let config = ConsumerConfig {
        group_id: Some("kip848-fenced".into()),
        group_protocol: GroupProtocol::Consumer,
        auto_offset_reset: OffsetReset::Earliest,
        rebalance_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let events: Events = Default::default();
    let mut first = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    first
        .subscribe_with(
            &["fenced"],
            Recorder {
                name: "first",
                events: events.clone(),
            },
        )
        .expect("subscribe");
    while first.assignment().len() < 4 {
        first.poll(Duration::from_millis(100)).await.expect("poll");
    }
    // `first` stops polling; `second` joins and ends up with everything.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut second = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    second
        .subscribe_with(
            &["fenced"],
            Recorder {
                name: "second",
                events: events.clone(),
            },
        )
        .expect("subscribe");
    let second = keep_polling(second, stop.clone());
    let holds = |e: &[(&str, &str, Vec<i32>)], name: &str, kind: &str, n: usize| {
        e.iter()
            .any(|(who, k, ps)| *who == name && *k == kind && ps.len() == n)
    };
    wait_for(&events, |e| holds(e, "second", "assigned", 4)).await;
    assert_eq!(
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|(who, ..)| *who == "first")
            .count(),
        1,
        "callbacks run only inside poll: first heard nothing since its assignment"
    );
    // `first` polls again: lost, then a share of its own after rejoining.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while first.assignment().len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            events.lock().unwrap()
        );
        first.poll(Duration::from_millis(100)).await.expect("poll");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let second = second.await.expect("second");
    let events = events.lock().unwrap().clone();
    let of_first: Vec<(&str, Vec<i32>)> = events
        .iter()
        .filter(|(n, ..)| *n == "first")
        .map(|(_, k, ps)| (*k, ps.clone()))
        .collect();
    assert_eq!(of_first[0], ("assigned", vec![0, 1, 2, 3]), "{events:?}");
    assert_eq!(of_first[1], ("lost", vec![0, 1, 2, 3]), "{events:?}");
    assert_eq!(of_first.last().unwrap().0, "assigned", "{events:?}");
    let mut all: Vec<(String, i32)> = first.assignment();
    all.extend(second.assignment());
    all.sort();
    assert_eq!(all.len(), 4, "{all:?}");
    all.dedup();
    assert_eq!(all.len(), 4, "a partition owned by both: {events:?}");
}

/// A KIP-848 group outlives its coordinator: the broker is killed (-9) and
/// restarted on its data directory while the member keeps going. The
/// group replays from `__consumer_offsets`, so the member commits at its
/// old epoch on the new coordinator, heartbeats on as before, and its
/// listener hears nothing revoked or lost (without the records it would be
/// told UNKNOWN_MEMBER_ID and lose its partitions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kip848_group_outlives_a_coordinator_restart() {
    let mut broker = BrokerProcess::start(&[
        "group.consumer.heartbeat.interval.ms=200",
        "group.consumer.min.heartbeat.interval.ms=200",
    ]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "outlives", 4, 1).await;
    let config = ConsumerConfig {
        group_id: Some("kip848-outlives".into()),
        group_protocol: GroupProtocol::Consumer,
        auto_offset_reset: OffsetReset::Earliest,
        enable_auto_commit: false,
        ..Default::default()
    };
    let events: Events = Default::default();
    let mut consumer = Consumer::connect(client.clone(), config)
        .await
        .expect("consumer");
    consumer
        .subscribe_with(
            &["outlives"],
            Recorder {
                name: "member",
                events: events.clone(),
            },
        )
        .expect("subscribe");
    let mut seen = 0;
    while seen < 4 {
        seen += consumer
            .poll(Duration::from_millis(100))
            .await
            .expect("poll")
            .len();
    }
    let member = consumer.group_member().expect("a member");

    broker.kill9();
    broker.restart();
    consumer
        .commit()
        .await
        .expect("a commit at the old epoch on the restarted coordinator");
    for _ in 0..10 {
        consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll");
    }
    assert_eq!(consumer.group_member(), Some(member));
    assert_eq!(
        *events.lock().unwrap(),
        vec![("member", "assigned", vec![0, 1, 2, 3])]
    );
    let committed = Admin::connect(client)
        .await
        .expect("admin")
        .committed_offsets("kip848-outlives")
        .await
        .expect("committed");
    assert_eq!(
        committed.values().copied().collect::<Vec<i64>>(),
        vec![1; 4]
    );
}

/// KIP-320: a committed position past the end of its leader epoch — what a
/// leader change with truncation leaves behind — is caught before the
/// first fetch: the consumer resumes where the log holds that epoch up to
/// (its end here), not at `auto.offset.reset`, which (earliest here) would
/// replay the partition from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_past_its_epochs_end_resumes_where_the_log_diverges() {
    let broker = BrokerProcess::start(&[]);
    let client = ClientConfig::new(broker.bootstrap());
    topic_with_records(&client, "diverged", 1, 5).await;
    let config = ConsumerConfig {
        group_id: Some("diverged-readers".into()),
        auto_offset_reset: OffsetReset::Earliest,
        enable_auto_commit: false,
        ..Default::default()
    };
    let mut first = Consumer::connect(client.clone(), config.clone())
        .await
        .expect("consumer");
    first.assign(&[("diverged", 0)]);
    let epoch = loop {
        let records = first.poll(Duration::from_millis(200)).await.expect("poll");
        if let Some(r) = records.first() {
            break r.leader_epoch.expect("records carry their leader epoch");
        }
    };
    first
        .commit_offsets_with(&[CommitOffset::new("diverged", 0, 50).with_leader_epoch(epoch)])
        .await
        .expect("commit");

    let mut second = Consumer::connect(client.clone(), config)
        .await
        .expect("consumer");
    second.assign(&[("diverged", 0)]);
    let mut replayed = Vec::new();
    while second.position("diverged", 0) != Some(5) {
        for r in second.poll(Duration::from_millis(200)).await.expect("poll") {
            replayed.push(r.offset);
        }
    }
    assert_eq!(
        replayed,
        Vec::<i64>::new(),
        "resumed at the epoch's end, nothing replayed"
    );
    produce_to(&client, "diverged", 0, 1).await;
    let records = loop {
        let records = second.poll(Duration::from_millis(200)).await.expect("poll");
        if !records.is_empty() {
            break records;
        }
    };
    assert_eq!(records[0].offset, 5, "nothing replayed, nothing skipped");
}
