//! The history check shared by the cluster tests: one idempotent `acks=all`
//! producer writes increasing numbers to one partition while brokers are
//! stopped, cut off or restarted; at the end every acknowledged number must
//! be read back exactly once, and in order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Creates `name` with `partitions` partitions of `rf` replicas and the
/// given `min.insync.replicas`, retrying while the cluster settles.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32, min_isr: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf))
        .set("min.insync.replicas", min_isr);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let outcome = admin
            .create_topics(std::iter::once(&topic), &AdminOptions::new())
            .await
            .map_err(|e| e.to_string())
            .and_then(|mut results| {
                results
                    .remove(0)
                    .map(|_| ())
                    .map_err(|(_, code)| code.to_string())
            });
        match outcome {
            Ok(()) => return,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating topic {name} (retrying): {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("creating topic {name}: {e}"),
        }
    }
}

/// (leader, replicas, isr) of `topic`-0, from a fresh metadata request;
/// None when no broker answered in time.
pub fn partition_state(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(3))
        .ok()?;
    let t = metadata.topics().first()?;
    let p = t.partitions().first()?;
    Some((p.leader(), p.replicas().to_vec(), p.isr().to_vec()))
}

/// Whether `topic`-0 has a leader and three in-sync replicas.
pub fn full_isr(bootstrap: &str, topic: &str) -> bool {
    partition_state(bootstrap, topic).is_some_and(|(l, _, isr)| l >= 0 && isr.len() == 3)
}

/// An idempotent `acks=all` producer that keeps retrying through failovers.
pub fn history_producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "50")
        .set("topic.metadata.refresh.interval.ms", "500")
        // A leader that is frozen or cut off accepts the connection but
        // never answers: the broker gives up on acks=all after 5 s
        // (librdkafka's 30 s default)...
        .set("request.timeout.ms", "5000")
        // ...and on the client's side too (socket.timeout.ms, 60 s by
        // default, is what ends a request the broker never answers).
        .set("socket.timeout.ms", "6000")
        .create()
        .expect("producer")
}

/// Writes 1, 2, 3, … to `topic`-0 in the background, remembering which
/// numbers were acknowledged.
pub struct HistoryWriter {
    producer: FutureProducer,
    acked: Arc<Mutex<Vec<u64>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl HistoryWriter {
    /// Starts writing (on the current tokio runtime).
    pub fn start(bootstrap: &str, topic: &str) -> HistoryWriter {
        let producer = history_producer(bootstrap);
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (producer, acked, stop) = (producer.clone(), acked.clone(), stop.clone());
            let topic = topic.to_string();
            tokio::spawn(async move {
                let mut next = 0u64;
                let mut in_flight = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    next += 1;
                    let payload = next.to_string();
                    let delivery = producer
                        .send_result(
                            FutureRecord::<(), _>::to(&topic)
                                .partition(0)
                                .payload(&payload),
                        )
                        .expect("queue");
                    in_flight.push((next, delivery));
                    if in_flight.len() >= 50 {
                        for (value, delivery) in in_flight.drain(..) {
                            if let Ok(Ok(_)) = delivery.await {
                                acked.lock().unwrap().push(value);
                            }
                        }
                    }
                }
                for (value, delivery) in in_flight {
                    if let Ok(Ok(_)) = delivery.await {
                        acked.lock().unwrap().push(value);
                    }
                }
            })
        };
        HistoryWriter {
            producer,
            acked,
            stop,
            task,
        }
    }

    /// How many writes have been acknowledged so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Waits until `more` writes beyond those acknowledged now are
    /// acknowledged; panics naming `what` after `timeout`.
    pub async fn wait_for_progress(&self, more: usize, timeout: Duration, what: &str) {
        let target = self.acked() + more;
        let deadline = Instant::now() + timeout;
        while self.acked() < target {
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {more} acknowledged writes ({what}); {} so far",
                self.acked()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops writing, waits for every write in flight and returns the
    /// acknowledged values.
    pub async fn finish(self) -> Vec<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("writer task");
        self.producer.flush(Duration::from_secs(30)).expect("flush");
        self.acked.lock().unwrap().clone()
    }
}

/// Reads `topic`-0 from the beginning until at least `expected_at_least`
/// records arrived and the partition has been quiet for 2 s (or 60 s pass).
pub fn read_all(bootstrap: &str, topic: &str, expected_at_least: usize) -> Vec<u64> {
    read_payloads(bootstrap, topic, expected_at_least)
        .iter()
        .map(|payload| {
            let text = std::str::from_utf8(payload).expect("utf8");
            text.parse().expect("a number")
        })
        .collect()
}

/// The payloads of `topic`-0 from the beginning, read as [`read_all`] does.
pub fn read_payloads(bootstrap: &str, topic: &str, expected_at_least: usize) -> Vec<Vec<u8>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let mut payloads = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                payloads.push(m.payload().expect("payload").to_vec());
                quiet_since = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer error (retrying): {e}"),
            None if payloads.len() >= expected_at_least
                && quiet_since.elapsed() > Duration::from_secs(2) =>
            {
                break;
            }
            None => {}
        }
    }
    payloads
}

/// Every acknowledged value is read exactly once, and what is read is in
/// the order it was produced (one idempotent producer, one partition).
pub fn check_history(acked: &[u64], read: &[u64]) {
    let mut seen = HashSet::new();
    for v in read {
        assert!(seen.insert(*v), "value {v} was read twice");
    }
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "records are out of order"
    );
    let missing: Vec<_> = acked.iter().filter(|v| !seen.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records are missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

/// A partition's log on one broker as bytes: its segment files in offset
/// order, concatenated (None while the partition is not there).
pub fn log_bytes(data_dir: &std::path::Path, topic: &str, partition: i32) -> Option<Vec<u8>> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    // Named by their zero-padded base offset: name order is offset order.
    segments.sort();
    let mut bytes = Vec::new();
    for segment in segments {
        bytes.extend(std::fs::read(segment).ok()?);
    }
    Some(bytes)
}

/// Whether every replica holds byte-identical batches (offsets, leader
/// epochs, producer ids, CRCs). Followers truncate by leader epoch: had two
/// leaders ever accepted writes in one epoch, the one whose writes lost
/// would keep them past the truncation point and the replicas would differ.
pub fn replicas_identical(data_dirs: &[&std::path::Path], topic: &str, partition: i32) -> bool {
    let logs: Vec<Option<Vec<u8>>> = data_dirs
        .iter()
        .map(|d| log_bytes(d, topic, partition))
        .collect();
    logs.iter()
        .all(|l| l.as_ref().is_some_and(|b| !b.is_empty()))
        && logs.windows(2).all(|w| w[0] == w[1])
}

#[cfg(test)]
mod tests {
    use super::check_history;

    #[test]
    fn a_complete_ordered_history_passes() {
        check_history(&[1, 2, 4], &[1, 2, 3, 4]);
    }

    #[test]
    #[should_panic(expected = "missing")]
    fn a_lost_acknowledged_record_fails() {
        check_history(&[1, 2, 3], &[1, 3]);
    }

    #[test]
    #[should_panic(expected = "read twice")]
    fn a_duplicate_fails() {
        check_history(&[1, 2], &[1, 2, 2]);
    }

    #[test]
    #[should_panic(expected = "out of order")]
    fn reordering_fails() {
        check_history(&[1, 2], &[2, 1]);
    }
}
