//! A three-broker cluster of real `weir broker` processes on 127.0.0.1,
//! driven by librdkafka (the `rdkafka` crate): replication, leader
//! failover under `kill -9` and a rolling restart under load, each with a
//! history check; controlled shutdown; min.insync.replicas; a restarted
//! broker rejoining the in-sync set.
//!
//! The kill loop runs `WEIR_KILLS` times (default 3 here; `WEIR_KILLS=20`
//! is the full run, about 80 s).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_e2e::history::{
    HistoryWriter, check_history, create_topic, full_isr, history_producer, partition_state,
    read_all,
};
use weir_e2e::{ClusterProcesses, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_leader_kills() {
    let kills: usize = std::env::var("WEIR_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "history", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "history")
    });

    let writer = HistoryWriter::start(&bootstrap, "history");
    for round in 0..kills {
        writer
            .wait_for_progress(100, Duration::from_secs(30), "writes before the kill")
            .await;
        let (leader, _, _) = partition_state(&bootstrap, "history").expect("metadata");
        eprintln!("round {round}: killing leader {leader}");
        cluster.broker(leader).kill9();
        writer
            .wait_for_progress(100, Duration::from_secs(30), "a new leader acknowledging")
            .await;
        let (new_leader, _, _) = partition_state(&bootstrap, "history").expect("metadata");
        assert_ne!(new_leader, leader, "a killed broker cannot lead");
        cluster.broker(leader).restart();
        wait_until(
            Duration::from_secs(60),
            "the restarted broker to rejoin the ISR",
            || full_isr(&bootstrap, "history"),
        );
    }
    let acked = writer.finish().await;
    assert!(
        acked.len() > 100 * kills,
        "only {} writes acknowledged",
        acked.len()
    );
    let read = read_all(&bootstrap, "history", acked.len());
    check_history(&acked, &read);
    // No leader epoch ever had two leaders' writes: once caught up, the
    // three replicas are byte for byte the same log.
    cluster.wait_replicas_identical("history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_loses_nothing() {
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "rolling", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "rolling")
    });
    let writer = HistoryWriter::start(&bootstrap, "rolling");
    for node in 1..=3 {
        writer
            .wait_for_progress(100, Duration::from_secs(30), "writes before the restart")
            .await;
        // SIGTERM: a controlled shutdown, as Kubernetes stops a pod.
        cluster.broker(node).stop();
        writer
            .wait_for_progress(
                100,
                Duration::from_secs(30),
                "writes while a broker is down",
            )
            .await;
        cluster.broker(node).restart();
        cluster.wait_ready(Duration::from_secs(60));
        wait_until(
            Duration::from_secs(60),
            "the restarted broker to rejoin the ISR",
            || full_isr(&bootstrap, "rolling"),
        );
    }
    let acked = writer.finish().await;
    let read = read_all(&bootstrap, "rolling", acked.len());
    check_history(&acked, &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_the_leader_and_a_stopped_broker_hands_over_leadership() {
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "replicated", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "replicated")
    });
    let producer = history_producer(&bootstrap);
    for i in 0..500u64 {
        producer
            .send(
                FutureRecord::<(), _>::to("replicated").payload(&i.to_string()),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged");
    }
    // A clean stop (SIGTERM) moves leadership away first: the partition
    // keeps a leader throughout, and the ISR loses only the stopped broker.
    let (leader, _, _) = partition_state(&bootstrap, "replicated").expect("metadata");
    cluster.broker(leader).stop();
    // The other brokers' images follow the controller's within moments.
    wait_until(
        Duration::from_secs(10),
        "metadata without the stopped broker",
        || {
            partition_state(&bootstrap, "replicated")
                .is_some_and(|(l, _, isr)| l >= 0 && l != leader && !isr.contains(&leader))
        },
    );
    for i in 500..600u64 {
        producer
            .send(
                FutureRecord::<(), _>::to("replicated").payload(&i.to_string()),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged by the new leader");
    }
    cluster.broker(leader).restart();
    wait_until(
        Duration::from_secs(60),
        "the restarted broker to rejoin the ISR",
        || full_isr(&bootstrap, "replicated"),
    );
    // Rejoining the ISR needs the restarted broker's log to reach the high
    // watermark; the history as read from the leader is complete and in order.
    let read = read_all(&bootstrap, "replicated", 600);
    check_history(&(0..600).collect::<Vec<_>>(), &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_without_enough_in_sync_replicas() {
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "strict", 1, 3, "3").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "strict")
    });
    let (leader, replicas, _) = partition_state(&bootstrap, "strict").expect("metadata");
    let follower = *replicas.iter().find(|&&r| r != leader).expect("a follower");
    cluster.broker(follower).kill9();
    wait_until(
        Duration::from_secs(20),
        "the dead follower to leave the ISR",
        || partition_state(&bootstrap, "strict").is_some_and(|(_, _, isr)| isr.len() == 2),
    );
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("retries", "0")
        .set("message.timeout.ms", "5000")
        .create()
        .expect("producer");
    let result = producer
        .send(
            FutureRecord::<(), _>::to("strict").payload("x"),
            Duration::from_secs(5),
        )
        .await;
    let (error, _) = result.expect_err("min.insync.replicas=3 with two in sync must refuse");
    assert!(error.to_string().contains("NotEnoughReplicas"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_back_after_the_leaders_log_start_passed_it_rejoins_the_isr() {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::{Offset, TopicPartitionList};

    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "trimmed", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "trimmed")
    });
    let producer = history_producer(&bootstrap);
    let send = |i: u64| {
        let producer = &producer;
        async move {
            let payload = i.to_string();
            producer
                .send(
                    FutureRecord::<(), _>::to("trimmed").payload(&payload),
                    Duration::from_secs(10),
                )
                .await
        }
    };
    for i in 0..100u64 {
        send(i).await.expect("acknowledged");
    }
    let (leader, replicas, _) = partition_state(&bootstrap, "trimmed").expect("metadata");
    let away = *replicas.iter().find(|&&r| r != leader).expect("a follower");
    cluster.broker(away).kill9();
    wait_until(
        Duration::from_secs(20),
        "the dead follower to leave the ISR",
        || partition_state(&bootstrap, "trimmed").is_some_and(|(_, _, isr)| isr.len() == 2),
    );
    for i in 100..300u64 {
        send(i).await.expect("acknowledged");
    }
    // While it is away, the leader's log start moves past its log end.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let mut trim = TopicPartitionList::new();
    trim.add_partition_offset("trimmed", 0, Offset::Offset(250))
        .expect("offset");
    let result = admin
        .delete_records(&trim, &AdminOptions::new())
        .await
        .expect("delete records");
    assert_eq!(
        result.find_partition("trimmed", 0).map(|p| p.offset()),
        Some(Offset::Offset(250))
    );
    cluster.broker(away).restart();
    wait_until(
        Duration::from_secs(60),
        "the returning broker to rejoin the ISR",
        || full_isr(&bootstrap, "trimmed"),
    );
    // The old leader goes: whichever replica leads now holds 250..300.
    cluster.broker(leader).stop();
    for i in 300..320u64 {
        send(i).await.expect("acknowledged");
    }
    let read = read_all(&bootstrap, "trimmed", 70);
    check_history(&(250..320).collect::<Vec<_>>(), &read);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offset_commit_is_acknowledged_only_once_replicated() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let mut cluster = ClusterProcesses::start(3, &["offsets.topic.num.partitions=1"]);
    // One partition (as a data directory from before sharding has): the
    // group's coordinator is the leader of partition 0, whose followers
    // this test freezes.
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "tracked", 1, 3, "2").await;
    let consumer = |b: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", b)
            .set("group.id", "committer")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer")
    };
    let commit_at = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("tracked", 0, Offset::Offset(offset))
            .expect("offset");
        tpl
    };
    // The first commit creates __consumer_offsets (RF 3) with everyone up.
    let first = consumer(&bootstrap);
    first
        .commit(&commit_at(1), CommitMode::Sync)
        .expect("first commit");
    wait_until(
        Duration::from_secs(30),
        "__consumer_offsets fully in sync",
        || full_isr(&bootstrap, "__consumer_offsets"),
    );
    let (coordinator, replicas, _) =
        partition_state(&bootstrap, "__consumer_offsets").expect("metadata");
    let followers: Vec<i32> = replicas.into_iter().filter(|r| *r != coordinator).collect();

    // Followers frozen: nothing can replicate the next commit.
    for f in &followers {
        cluster.broker(*f).freeze(true);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let committer = std::thread::spawn({
        let c = consumer(&bootstrap);
        move || {
            let result = c.commit(&commit_at(2), CommitMode::Sync);
            let _ = tx.send(result.is_ok());
        }
    });
    let early = rx.recv_timeout(Duration::from_secs(4));
    assert_ne!(
        early,
        Ok(true),
        "a commit was acknowledged while no follower could replicate it"
    );
    for f in &followers {
        cluster.broker(*f).freeze(false);
    }
    committer.join().expect("committer thread");
    // Once the followers are back the commit goes through (retried here if
    // the client gave up meanwhile) and is readable from the coordinator.
    let again = consumer(&bootstrap);
    wait_until(Duration::from_secs(60), "the commit to go through", || {
        again.commit(&commit_at(2), CommitMode::Sync).is_ok()
    });
    let committed = again
        .committed_offsets(commit_at(0), Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        committed.find_partition("tracked", 0).map(|p| p.offset()),
        Some(Offset::Offset(2))
    );
}

/// A leader frozen (SIGSTOP) under load is, to the others, a leader cut
/// off: it is fenced and replaced. Thawed, it still believes it leads in
/// the old epoch until it sees the new image; nothing it accepts then may
/// survive, and it must rejoin as a follower of the new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_leader_is_replaced_and_rejoins_without_a_trace_of_its_old_epoch() {
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "frozen", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "frozen")
    });
    let writer = HistoryWriter::start(&bootstrap, "frozen");
    writer
        .wait_for_progress(100, Duration::from_secs(30), "writes before the freeze")
        .await;
    let (leader, _, _) = partition_state(&bootstrap, "frozen").expect("metadata");
    cluster.broker(leader).freeze(true);
    writer
        .wait_for_progress(100, Duration::from_secs(30), "a new leader acknowledging")
        .await;
    // Metadata may be asked of the frozen broker too: ask until a live one answers.
    wait_until(Duration::from_secs(30), "a new leader in metadata", || {
        partition_state(&bootstrap, "frozen").is_some_and(|(l, _, _)| l >= 0 && l != leader)
    });
    cluster.broker(leader).freeze(false);
    wait_until(
        Duration::from_secs(60),
        "the thawed broker to rejoin the ISR",
        || full_isr(&bootstrap, "frozen"),
    );
    writer
        .wait_for_progress(100, Duration::from_secs(30), "writes after the thaw")
        .await;
    let acked = writer.finish().await;
    let read = read_all(&bootstrap, "frozen", acked.len());
    check_history(&acked, &read);
    cluster.wait_replicas_identical("frozen");
}

/// Groups are coordinated by the leaders of the `__consumer_offsets`
/// partitions their ids hash to (50 by default), so they spread over the
/// brokers; a coordinator killed with `kill -9` hands its groups to the new
/// leaders of its partitions, and their committed offsets survive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_spread_over_brokers_and_move_when_a_coordinator_dies() {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::{Offset, TopicPartitionList};

    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "spread", 1, 3, "2").await;
    let consumer = |group: &str| -> BaseConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer")
    };
    let at = |offset: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("spread", 0, Offset::Offset(offset))
            .expect("offset");
        tpl
    };
    let groups: Vec<String> = (0..12).map(|i| format!("spread-group-{i}")).collect();
    for (i, group) in groups.iter().enumerate() {
        let c = consumer(group);
        wait_until(Duration::from_secs(30), "a commit", || {
            c.commit(&at(i as i64 + 1), CommitMode::Sync).is_ok()
        });
    }

    let client = weir_client::ClientConfig::new(bootstrap.clone());
    let admin = weir_client::admin::Admin::connect(client)
        .await
        .expect("admin");
    let mut coordinators = std::collections::BTreeMap::new();
    for group in &groups {
        let (node, _) = admin
            .cluster()
            .coordinator(group, 0)
            .await
            .expect("coordinator");
        coordinators.insert(group.clone(), node);
    }
    let nodes: std::collections::BTreeSet<i32> = coordinators.values().copied().collect();
    assert!(
        nodes.len() > 1,
        "every group on one coordinator: {coordinators:?}"
    );

    let victim = coordinators[&groups[0]];
    cluster.broker(victim).kill9();
    for (i, group) in groups.iter().enumerate() {
        let c = consumer(group);
        wait_until(
            Duration::from_secs(60),
            "committed offsets after the kill",
            || {
                c.committed_offsets(at(0), Duration::from_secs(5))
                    .ok()
                    .and_then(|t| t.find_partition("spread", 0).map(|p| p.offset()))
                    == Some(Offset::Offset(i as i64 + 1))
            },
        );
    }
    let (moved, _) = admin
        .cluster()
        .coordinator(&groups[0], 0)
        .await
        .expect("coordinator after the kill");
    assert_ne!(moved, victim, "the killed broker still named coordinator");
}

/// Every value of `topic` a read_committed reader sees once `last` (a
/// plain record written after the transaction) is visible: the transaction
/// has then ended one way or the other.
async fn committed_view(bootstrap: &str, topic: &str, partitions: i32, last: &str) -> Vec<String> {
    use weir_client::consumer::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        let mut consumer = Consumer::connect(
            weir_client::ClientConfig::new(bootstrap.to_string()),
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                isolation_level: IsolationLevel::ReadCommitted,
                ..Default::default()
            },
        )
        .await
        .expect("consumer");
        let tps: Vec<(&str, i32)> = (0..partitions).map(|p| (topic, p)).collect();
        consumer.assign(&tps);
        let mut seen = Vec::new();
        let round = tokio::time::Instant::now() + Duration::from_secs(5);
        while tokio::time::Instant::now() < round {
            if let Ok(batch) = consumer.poll(Duration::from_millis(300)).await {
                seen.extend(
                    batch
                        .into_iter()
                        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
                );
            }
            if seen.iter().any(|v| v == last) {
                seen.sort();
                return seen;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the transaction never ended: read_committed saw only {seen:?}"
        );
    }
}

/// The transaction coordinator is killed (kill -9) between the produce and
/// the commit, and in a second round right after EndTxn was answered
/// (before or while the markers are written): the transaction still ends,
/// committed or aborted as a whole, and read_committed readers never see
/// part of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_ends_whole_when_its_coordinator_is_killed() {
    use weir_client::producer::{Producer, ProducerConfig, ProducerRecord};
    let mut cluster = ClusterProcesses::start(3, &["transaction.state.log.num.partitions=3"]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "txn-ha", 2, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "txn-ha")
    });
    let client = weir_client::ClientConfig::new(bootstrap.clone());
    let plain = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    for (round, kill_after_commit) in [(0, false), (1, true)] {
        let txn_id = format!("ha-writer-{round}");
        let producer = Producer::connect(
            client.clone(),
            ProducerConfig {
                transactional_id: Some(txn_id.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("transactional producer");
        let admin = weir_client::admin::Admin::connect(client.clone())
            .await
            .expect("admin");
        let (coordinator, _) = admin
            .cluster()
            .coordinator(&txn_id, 1)
            .await
            .expect("transaction coordinator");
        producer.begin_transaction().await.expect("begin");
        let values: Vec<String> = (0..20).map(|i| format!("r{round}-{i}")).collect();
        for (i, v) in values.iter().enumerate() {
            drop(
                producer
                    .send(ProducerRecord::new("txn-ha", v.clone()).with_partition(i as i32 % 2)),
            );
        }
        producer.flush().await.expect("flush");
        if kill_after_commit {
            producer.commit_transaction().await.expect("commit");
            eprintln!("round {round}: killing coordinator {coordinator} after EndTxn");
            cluster.broker(coordinator).kill9();
        } else {
            eprintln!("round {round}: killing coordinator {coordinator} before EndTxn");
            cluster.broker(coordinator).kill9();
            // Committed by the next coordinator, or (should the client give
            // up) aborted at the transaction timeout: either is whole.
            let _ = producer.commit_transaction().await;
        }
        let last = format!("after-{round}");
        for p in 0..2 {
            plain
                .send(ProducerRecord::new("txn-ha", last.clone()).with_partition(p))
                .await
                .expect("a plain record after the transaction");
        }
        let seen = committed_view(&bootstrap, "txn-ha", 2, &last).await;
        let ours: Vec<&String> = seen
            .iter()
            .filter(|v| v.starts_with(&format!("r{round}-")))
            .collect();
        assert!(
            ours.is_empty() || ours.len() == values.len(),
            "round {round}: read_committed saw part of a transaction: {ours:?}"
        );
        if kill_after_commit {
            assert_eq!(
                ours.len(),
                values.len(),
                "an acknowledged commit is not lost"
            );
        }
        cluster.broker(coordinator).restart();
        cluster.wait_ready(Duration::from_secs(30));
    }
}

/// A transaction prepared (EndTxn answered) whose markers cannot be
/// written yet — the data partition's leader is frozen — when its
/// coordinator is killed: the coordinator that loads the state next (here
/// the same broker restarted; `__transaction_state` has one replica) finds
/// it PrepareCommit and finishes it, so read_committed readers get all of
/// it. Without that recovery the transaction would hold the partition's
/// last stable offset forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_transaction_is_finished_by_the_next_coordinator() {
    use weir_client::producer::{Producer, ProducerConfig, ProducerRecord};
    let mut cluster = ClusterProcesses::start(
        3,
        &[
            "transaction.state.log.num.partitions=3",
            "transaction.state.log.replication.factor=1",
        ],
    );
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, "txn-prep", 1, 3, "1").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "txn-prep")
    });
    let (leader, _, _) = partition_state(&bootstrap, "txn-prep").expect("metadata");
    // A request to the frozen broker is given up on soon, and goes elsewhere.
    let client = weir_client::ClientConfig {
        request_timeout: Duration::from_secs(3),
        ..weir_client::ClientConfig::new(bootstrap.clone())
    };
    let admin = weir_client::admin::Admin::connect(client.clone())
        .await
        .expect("admin");
    // A transactional id coordinated away from the data partition's leader.
    let mut chosen = None;
    for k in 0..50 {
        let id = format!("prep-writer-{k}");
        let probe = Producer::connect(
            client.clone(),
            ProducerConfig {
                transactional_id: Some(id.clone()),
                ..Default::default()
            },
        )
        .await
        .expect("transactional producer");
        let (coordinator, _) = admin
            .cluster()
            .coordinator(&id, 1)
            .await
            .expect("coordinator");
        if coordinator != leader {
            chosen = Some((id, coordinator, probe));
            break;
        }
    }
    let (txn_id, coordinator, producer) = chosen.expect("an id coordinated elsewhere");
    producer.begin_transaction().await.expect("begin");
    let values: Vec<String> = (0..10).map(|i| format!("prepared-{i}")).collect();
    for v in &values {
        producer
            .send(ProducerRecord::new("txn-prep", v.clone()).with_partition(0))
            .await
            .expect("sent");
    }
    cluster.broker(leader).freeze(true);
    producer
        .commit_transaction()
        .await
        .expect("commit is answered once prepared");
    eprintln!(
        "{txn_id}: prepared on {coordinator}; markers held by frozen {leader}; killing {coordinator}"
    );
    cluster.broker(coordinator).kill9();
    cluster.broker(leader).freeze(false);
    cluster.broker(coordinator).restart();
    cluster.wait_ready(Duration::from_secs(30));
    let plain = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    plain
        .send(ProducerRecord::new("txn-prep", "after").with_partition(0))
        .await
        .expect("a plain record after the transaction");
    let seen = committed_view(&bootstrap, "txn-prep", 1, "after").await;
    let ours: Vec<&String> = seen.iter().filter(|v| v.starts_with("prepared-")).collect();
    assert_eq!(
        ours.len(),
        values.len(),
        "the prepared commit was finished: {seen:?}"
    );
}
