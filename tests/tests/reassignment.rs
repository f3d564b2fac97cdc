//! Partition reassignment and broker drain on a four-broker cluster of real
//! `weir broker` processes, driven by Weir's own client and the `weir`
//! binary: a replica moved to a new broker catches up and takes over the
//! leadership with every record, and `weir cluster drain --wait` empties a
//! broker without losing a record.

use std::future::Future;
use std::time::Duration;

use weir_client::ClientConfig;
use weir_client::admin::{Admin, NewTopic, Reassignment};
use weir_client::consumer::{Consumer, ConsumerConfig};
use weir_client::producer::{Producer, ProducerConfig, ProducerRecord};
use weir_e2e::{ClusterProcesses, weir_bin};

/// Polls `check` until it holds; fails the test naming `what` after `timeout`.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Produces `count` values `"<partition>:<i>"` (padded to `size` bytes) to
/// each partition, acks=all; returns them per partition, in order.
async fn produce(
    client: &ClientConfig,
    topic: &str,
    partitions: i32,
    count: usize,
    size: usize,
) -> Vec<Vec<String>> {
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .expect("producer");
    let mut sent = vec![Vec::new(); partitions as usize];
    let mut acks = Vec::new();
    for i in 0..count {
        for p in 0..partitions {
            let value = format!("{p}:{i:0>size$}");
            acks.push(producer.send(ProducerRecord::new(topic, value.clone()).with_partition(p)));
            sent[p as usize].push(value);
        }
    }
    producer.flush().await.expect("flush");
    for ack in acks {
        ack.await.expect("acknowledged");
    }
    producer.close().await.expect("close");
    sent
}

/// Reads `topic`-`partition` from the beginning until `expected` values came.
async fn read_partition(
    client: &ClientConfig,
    topic: &str,
    partition: i32,
    expected: usize,
) -> Vec<String> {
    let mut consumer = Consumer::connect(client.clone(), ConsumerConfig::default())
        .await
        .expect("consumer");
    consumer.assign(&[(topic, partition)]);
    consumer.seek_to_beginning();
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while values.len() < expected && tokio::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_secs(1)).await {
            Ok(records) => values.extend(
                records
                    .into_iter()
                    .map(|r| String::from_utf8(r.value.unwrap_or_default().to_vec()).unwrap()),
            ),
            Err(e) => eprintln!("poll failed (retrying): {e}"),
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_replica_catches_up_and_leads_with_every_record() {
    // A throttle slow enough that the move is still copying when listed:
    // about 1.5 MB at 300 kB/s.
    let cluster = ClusterProcesses::start(4, &["follower.replication.throttled.rate=300000"]);
    let client = ClientConfig::new(cluster.bootstrap());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    let mut topic = NewTopic::new("moved", 1, 3);
    topic
        .configs
        .push(("min.insync.replicas".into(), "2".into()));
    admin.create_topic(topic).await.expect("create");
    let before = admin
        .wait_for_topic("moved", Duration::from_secs(30))
        .await
        .expect("topic");
    let sent = produce(&client, "moved", 1, 1500, 1000).await;

    // The broker without a replica joins, first (the preferred leader);
    // the current leader leaves.
    let p = &before.partitions[0];
    let spare = (1..=4)
        .find(|id| !p.replicas.contains(id))
        .expect("a spare");
    let mut target = vec![spare];
    target.extend(p.replicas.iter().copied().filter(|r| *r != p.leader));
    admin
        .alter_partition_reassignments(&[Reassignment {
            topic: "moved".into(),
            partition: 0,
            replicas: Some(target.clone()),
        }])
        .await
        .expect("reassign");
    let ongoing = admin
        .list_partition_reassignments(None)
        .await
        .expect("list");
    assert_eq!(ongoing.len(), 1, "{ongoing:?}");
    assert_eq!(ongoing[0].adding_replicas, vec![spare]);
    assert_eq!(ongoing[0].removing_replicas, vec![p.leader]);
    assert_eq!(ongoing[0].replicas[..3], target[..]);

    // Done once the spare is in sync: the move is no longer listed, the
    // replicas are the target, the ISR is full, and the spare leads.
    eventually(Duration::from_secs(90), "the move to complete", || async {
        let listed = admin.list_partition_reassignments(None).await;
        let now = admin.describe_topic("moved").await;
        match (listed, now) {
            (Ok(listed), Ok(t)) => {
                let p = &t.partitions[0];
                let mut isr = p.isr.clone();
                isr.sort();
                let mut want = target.clone();
                want.sort();
                listed.is_empty() && p.replicas == target && isr == want && p.leader == spare
            }
            _ => false,
        }
    })
    .await;
    // Every record, in order, from the new leader.
    let read = read_partition(&client, "moved", 0, sent[0].len()).await;
    assert_eq!(read.len(), sent[0].len(), "records lost in the move");
    assert!(read == sent[0], "records differ after the move");

    let err = admin
        .alter_partition_reassignments(&[Reassignment {
            topic: "moved".into(),
            partition: 0,
            replicas: None,
        }])
        .await
        .expect_err("nothing to cancel");
    assert!(
        err.to_string().contains("NO_REASSIGNMENT_IN_PROGRESS"),
        "{err}"
    );
    let err = admin
        .alter_partition_reassignments(&[Reassignment {
            topic: "moved".into(),
            partition: 0,
            replicas: Some(vec![spare, 99]),
        }])
        .await
        .expect_err("unknown broker");
    assert!(
        err.to_string().contains("INVALID_REPLICA_ASSIGNMENT"),
        "{err}"
    );
}

/// Runs `weir cluster drain` with `args`; (success, stdout + stderr).
async fn weir_drain(bootstrap: &str, args: &[&str]) -> (bool, String) {
    weir_cluster("drain", bootstrap, args).await
}

/// Runs `weir cluster COMMAND` with `args`; (success, stdout + stderr).
async fn weir_cluster(command: &str, bootstrap: &str, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(weir_bin())
        .args(["cluster", command, "--bootstrap-server", bootstrap])
        .args(args)
        .env("WEIR_LOG", "warn")
        .output()
        .await
        .expect("running weir");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_broker_holds_no_replicas_and_nothing_is_lost() {
    let mut cluster = ClusterProcesses::start(4, &[]);
    let bootstrap = cluster.bootstrap();
    let client = ClientConfig::new(bootstrap.clone());
    let admin = Admin::connect(client.clone()).await.expect("admin");
    admin
        .create_topic(NewTopic::new("drained", 4, 3))
        .await
        .expect("create");
    admin
        .wait_for_topic("drained", Duration::from_secs(30))
        .await
        .expect("topic");
    let sent = produce(&client, "drained", 4, 300, 20).await;

    // A replica on every broker: nowhere to move node 2's, so the drain is
    // refused before anything moves, naming the partition.
    admin
        .create_topic(NewTopic::new("everywhere", 1, 4))
        .await
        .expect("create");
    admin
        .wait_for_topic("everywhere", Duration::from_secs(30))
        .await
        .expect("topic");
    let (ok, out) = weir_drain(&bootstrap, &["--node", "2"]).await;
    assert!(!ok, "a drain with nowhere to go succeeded: {out}");
    assert!(out.contains("everywhere-0"), "{out}");
    assert!(
        admin
            .list_partition_reassignments(None)
            .await
            .expect("list")
            .is_empty()
    );
    admin
        .delete_topics(&["everywhere".to_string()])
        .await
        .expect("delete");

    let (ok, out) = weir_drain(
        &bootstrap,
        &["--node", "2", "--wait", "--timeout-secs", "120"],
    )
    .await;
    assert!(ok, "drain failed: {out}");
    // Node 2 held replicas of "drained" (12 replicas on 4 brokers).
    assert!(out.contains("node 2: moving"), "{out}");
    assert!(out.contains("node 2 holds no replicas"), "{out}");

    let topics = admin.list_topics(true).await.expect("list");
    for t in &topics {
        for p in &t.partitions {
            assert!(
                !p.replicas.contains(&2),
                "{}-{} still on node 2: {:?}",
                t.name,
                p.partition,
                p.replicas
            );
        }
    }
    eventually(
        Duration::from_secs(60),
        "full ISRs after the drain",
        || async {
            admin.describe_topic("drained").await.is_ok_and(|t| {
                t.partitions
                    .iter()
                    .all(|p| p.replicas.len() == 3 && p.isr.len() == 3)
            })
        },
    )
    .await;
    for (partition, values) in sent.iter().enumerate() {
        let read = read_partition(&client, "drained", partition as i32, values.len()).await;
        assert_eq!(&read, values, "partition {partition} after the drain");
    }

    // Unregistering: refused while it runs; once stopped it goes, once.
    let (ok, out) = weir_cluster("unregister", &bootstrap, &["--node", "2"]).await;
    assert!(!ok, "a running broker was unregistered: {out}");
    assert!(out.contains("running"), "{out}");
    cluster.broker(2).stop();
    let (ok, out) = weir_cluster("unregister", &bootstrap, &["--node", "2"]).await;
    assert!(ok, "unregister failed: {out}");
    let (ok, out) = weir_cluster("unregister", &bootstrap, &["--node", "2"]).await;
    assert!(!ok && out.contains("not registered"), "{out}");
}
