//! Weir's own client (`weir-client`) against the real `weir broker`
//! process: admin, idempotent producer, group consumer, committed offsets
//! and lag, and that keys land where Java's partitioner puts them.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_client::ClientConfig;
use weir_client::admin::{Admin, ConfigResource, NewTopic, OffsetSpec};
use weir_client::consumer::{Consumer, ConsumerConfig, OffsetReset};
use weir_client::producer::{Producer, ProducerConfig, ProducerRecord};
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
