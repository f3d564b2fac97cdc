//! The `rdkafka` crate (librdkafka 2.12) against the real `weir broker`
//! process: round trips in every compression, consumer groups that
//! rebalance on join and leave, and offsets that survive a restart.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use weir_e2e::{BrokerProcess, history, wait_until};

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create_topics");
    for r in results {
        r.expect("topic created");
    }
}

fn producer(bootstrap: &str, compression: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", compression)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .expect("consumer")
}

#[derive(Debug, PartialEq, Eq, Clone)]
struct Seen {
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    timestamp: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_in_every_compression() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    let base_ts = 1_700_000_000_000i64;
    let mut sent = Vec::new();
    for (c, compression) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let topic = format!("rt-{compression}");
        create_topic(&bootstrap, &topic, 1).await;
        let producer = producer(&bootstrap, compression);
        let mut expected = Vec::new();
        let mut pending = Vec::new();
        for i in 0..200i64 {
            let key = format!("key-{c}-{i}");
            // Repetitive values so every codec really compresses.
            let value = format!("value {i} {}", "abc".repeat(20));
            let ts = base_ts + i;
            let headers = OwnedHeaders::new()
                .insert(Header {
                    key: "trace",
                    value: Some(format!("t{i}").as_bytes()),
                })
                .insert(Header {
                    key: "codec",
                    value: Some(compression.as_bytes()),
                });
            let record = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(headers)
                .timestamp(ts);
            // Queue them all (so they batch), and check the acks below.
            pending.push(
                producer
                    .send_result(record)
                    .map_err(|(e, _)| e)
                    .expect("queued"),
            );
            expected.push(Seen {
                key: key.into_bytes(),
                value: value.into_bytes(),
                headers: vec![
                    ("trace".into(), format!("t{i}").into_bytes()),
                    ("codec".into(), compression.as_bytes().to_vec()),
                ],
                timestamp: ts,
            });
        }
        for (i, delivery) in pending.into_iter().enumerate() {
            let delivery = delivery
                .await
                .expect("not cancelled")
                .map_err(|(e, _)| e)
                .expect("delivered");
            assert_eq!(delivery.partition, 0);
            assert_eq!(
                delivery.offset, i as i64,
                "offsets are assigned densely from 0"
            );
        }
        sent.push((topic, expected));
    }

    for (topic, expected) in sent {
        let consumer = consumer(&bootstrap, &format!("reader-{topic}"));
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = Vec::new();
        wait_until(
            Duration::from_secs(30),
            "all records to be consumed",
            || {
                // Drain everything available before the next check.
                while let Some(message) = consumer.poll(Duration::from_millis(100)) {
                    let m = message.expect("consume");
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default();
                    got.push(Seen {
                        key: m.key().unwrap_or_default().to_vec(),
                        value: m.payload().unwrap_or_default().to_vec(),
                        headers,
                        timestamp: m.timestamp().to_millis().unwrap_or(-1),
                    });
                }
                got.len() >= expected.len()
            },
        );
        assert_eq!(
            got, expected,
            "{topic}: consumed records differ from produced ones"
        );
    }
}

fn assignment(consumer: &BaseConsumer) -> HashSet<i32> {
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_of_three_rebalances_on_join_and_leave() {
    let broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "orders", 6).await;

    let members: Vec<BaseConsumer> = (0..3).map(|_| consumer(&bootstrap, "g3")).collect();
    for m in &members {
        m.subscribe(&["orders"]).unwrap();
    }
    wait_until(
        Duration::from_secs(60),
        "three members with two partitions each",
        || {
            for m in &members {
                let _ = m.poll(Duration::from_millis(30));
            }
            let sets: Vec<_> = members.iter().map(assignment).collect();
            let all: HashSet<i32> = sets.iter().flatten().copied().collect();
            sets.iter().all(|s| s.len() == 2) && all.len() == 6
        },
    );

    // One leaves: the other two take over all six partitions.
    let mut members = members;
    let leaver = members.pop().unwrap();
    leaver.unsubscribe();
    drop(leaver);
    wait_until(
        Duration::from_secs(60),
        "two members covering all partitions",
        || {
            for m in &members {
                let _ = m.poll(Duration::from_millis(30));
            }
            let sets: Vec<_> = members.iter().map(assignment).collect();
            let all: HashSet<i32> = sets.iter().flatten().copied().collect();
            sets.iter().all(|s| s.len() == 3) && all.len() == 6
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_and_records_survive_restart() {
    let mut broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ledger", 2).await;
    let producer = producer(&bootstrap, "lz4");
    let mut acked: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let d = producer
            .send(
                FutureRecord::to("ledger").key(&key).payload("v"),
                Duration::from_secs(10),
            )
            .await
            .expect("delivered");
        acked.entry(d.partition).or_default().push(d.offset);
    }
    drop(producer);

    let c = consumer(&bootstrap, "ledger-readers");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset("ledger", 0, Offset::Offset(7))
        .unwrap();
    commit
        .add_partition_offset("ledger", 1, Offset::Offset(11))
        .unwrap();
    // A fresh __consumer_offsets partition may still be loading
    // (COORDINATOR_LOAD_IN_PROGRESS, retriable): commit as an app would.
    wait_until(Duration::from_secs(30), "a commit", || {
        c.commit(&commit, CommitMode::Sync).is_ok()
    });
    drop(c);

    broker.stop();
    broker.restart();

    let c = consumer(&bootstrap, "ledger-readers");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ledger", 0);
    tpl.add_partition("ledger", 1);
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    let offsets: HashMap<i32, Offset> = committed
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect();
    assert_eq!(offsets[&0], Offset::Offset(7));
    assert_eq!(offsets[&1], Offset::Offset(11));

    let (low, high) = c
        .fetch_watermarks("ledger", 0, Duration::from_secs(10))
        .expect("watermarks");
    let (low1, high1) = c
        .fetch_watermarks("ledger", 1, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, low1), (0, 0));
    assert_eq!(
        (high, high1),
        (
            acked.get(&0).map_or(0, |v| v.len() as i64),
            acked.get(&1).map_or(0, |v| v.len() as i64)
        )
    );
}

/// A partition that cannot be opened when the broker starts (its
/// directory moved away and a file in its place, as a bad mount or a
/// full disk would leave it) is opened as soon as it can be, without
/// waiting for a metadata change, with every record it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_cannot_be_opened_at_start_is_opened_once_it_can_be() {
    let mut broker = BrokerProcess::start(&[]);
    let bootstrap = broker.bootstrap();
    let topic = "blocked";
    history::create_topic(&bootstrap, topic, 1, 1, "1").await;
    let writer = history::HistoryWriter::start(&bootstrap, topic);
    writer
        .wait_for_progress(200, Duration::from_secs(60), "before the restart")
        .await;
    let acked = writer.finish().await;
    // Also creates __consumer_offsets (the reader's group), so that the
    // reads below change no metadata: only the retry can open the partition.
    let read = read_all_blocking(&bootstrap, topic, acked.len()).await;
    history::check_history(&acked, &read);
    broker.stop();

    let dir = broker.data_dir.join(format!("{topic}-0"));
    let aside = tempfile::tempdir().expect("temp dir");
    std::fs::rename(&dir, aside.path().join("moved")).expect("moving the partition away");
    std::fs::write(&dir, b"not a partition directory").expect("a file in its place");
    broker.restart();
    let c = consumer(&bootstrap, "blocked-watermarks");
    let blocked = c.fetch_watermarks(topic, 0, Duration::from_secs(2));
    assert!(
        blocked.is_err(),
        "an unopened partition answered {blocked:?}"
    );

    std::fs::remove_file(&dir).expect("removing the file");
    std::fs::rename(aside.path().join("moved"), &dir).expect("moving the partition back");
    // Served again once opened: its end offset is back (a consumer that
    // started reading before could have reset itself to the end).
    let expected_end = acked.len() as i64;
    wait_until(
        Duration::from_secs(60),
        "the partition to be opened",
        || {
            c.fetch_watermarks(topic, 0, Duration::from_secs(2))
                .is_ok_and(|(_, high)| high == expected_end)
        },
    );
    let read = read_all_blocking(&bootstrap, topic, acked.len()).await;
    history::check_history(&acked, &read);
}

async fn read_all_blocking(bootstrap: &str, topic: &str, at_least: usize) -> Vec<u64> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || history::read_all(&b, &t, at_least))
        .await
        .expect("reader task")
}

/// Named listeners: one broker serves PLAINTEXT on 127.0.0.1 and EXTERNAL
/// on another port, advertised as `localhost`. librdkafka bootstrapping
/// through each listener is told that listener's address in Metadata (and
/// so in FindCoordinator), and a group consumer reached only through
/// EXTERNAL's advertised address reads what a producer wrote through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_advertises_its_own_address() {
    let (internal, external) = (weir_e2e::free_port(), weir_e2e::free_port());
    let listeners =
        format!("listeners=PLAINTEXT://127.0.0.1:{internal},EXTERNAL://127.0.0.1:{external}");
    let advertised = format!(
        "advertised.listeners=PLAINTEXT://127.0.0.1:{internal},EXTERNAL://localhost:{external}"
    );
    let _broker = BrokerProcess::start_on(
        internal,
        &[
            &listeners,
            &advertised,
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT",
        ],
    );
    let advertised_to = |bootstrap: String| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("consumer");
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .expect("metadata");
        metadata
            .brokers()
            .iter()
            .map(|b| format!("{}:{}", b.host(), b.port()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        advertised_to(format!("127.0.0.1:{internal}")),
        vec![format!("127.0.0.1:{internal}")]
    );
    assert_eq!(
        advertised_to(format!("127.0.0.1:{external}")),
        vec![format!("localhost:{external}")]
    );

    let bootstrap = format!("localhost:{external}");
    create_topic(&bootstrap, "through-external", 1).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    producer
        .send(
            FutureRecord::to("through-external").key("k").payload("v"),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "external-readers")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer
        .subscribe(&["through-external"])
        .expect("subscribe");
    let mut got = None;
    wait_until(Duration::from_secs(30), "a record through EXTERNAL", || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            got = m.payload().map(<[u8]>::to_vec);
        }
        got.is_some()
    });
    assert_eq!(got.as_deref(), Some(&b"v"[..]));
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit through the coordinator EXTERNAL names");
}
