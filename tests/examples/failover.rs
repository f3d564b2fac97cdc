//! Failover benchmark: a three-broker cluster of `weir broker` processes,
//! one idempotent librdkafka producer writing acks=all to a replicated
//! partition one record at a time; the partition leader is killed (`kill -9`)
//! `TRIALS` times, and each time we measure from the kill to the first
//! acknowledgement of a write (the user-visible outage). Prints every
//! trial and the median. The killed broker is restarted and allowed back
//! into the ISR before the next trial.
//!
//! `WEIR_BIN=target/release/weir cargo run --release -p weir-e2e --example failover [TRIALS]`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_e2e::history::{create_topic, partition_state};
use weir_e2e::{ClusterProcesses, wait_until};

const TOPIC: &str = "failover";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let trials: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let mut cluster = ClusterProcesses::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, TOPIC, 1, 3, "2").await;
    wait_until(Duration::from_secs(30), "a full ISR", || {
        partition_state(&bootstrap, TOPIC).is_some_and(|(l, _, isr)| l >= 0 && isr.len() == 3)
    });

    // librdkafka defaults, except what makes a lost leader noticed sooner
    // on the client side too (documented beside the figures).
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "20")
        .set("retry.backoff.max.ms", "100")
        .set("topic.metadata.refresh.fast.interval.ms", "50")
        .set("reconnect.backoff.max.ms", "200")
        .set("topic.metadata.refresh.interval.ms", "250")
        .create()
        .expect("producer");
    // (sent, acknowledged) per write.
    let acks: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (producer, acks, stop) = (producer.clone(), acks.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let payload = n.to_string();
                let sent_at = Instant::now();
                let sent = producer
                    .send(
                        FutureRecord::<(), _>::to(TOPIC)
                            .partition(0)
                            .payload(&payload),
                        Duration::from_secs(30),
                    )
                    .await;
                if sent.is_ok() {
                    acks.lock().unwrap().push((sent_at, Instant::now()));
                }
            }
        })
    };

    let mut outages = Vec::new();
    for trial in 0..trials {
        let before = acks.lock().unwrap().len();
        wait_until(Duration::from_secs(30), "writes flowing", || {
            acks.lock().unwrap().len() > before + 50
        });
        let (leader, _, _) = partition_state(&bootstrap, TOPIC).expect("metadata");
        let killed_at = Instant::now();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        cluster.broker(leader).kill9();
        // A write sent before the kill may have been acknowledged by the dead
        // leader just before it died; the first write sent after the kill
        // cannot have been.
        let sent_after = |(sent, _): &(Instant, Instant)| *sent >= killed_at;
        wait_until(
            Duration::from_secs(60),
            "a write sent after the kill acknowledged",
            || acks.lock().unwrap().iter().any(sent_after),
        );
        let (_, first) = *acks
            .lock()
            .unwrap()
            .iter()
            .find(|a| sent_after(a))
            .expect("an ack after the kill");
        let outage = first - killed_at;
        println!(
            "trial {trial:2}: leader {leader} killed at unix {:.3}, first ack after {outage:?}",
            wall.as_secs_f64()
        );
        outages.push(outage);
        cluster.broker(leader).restart();
        wait_until(
            Duration::from_secs(60),
            "the restarted broker back in the ISR",
            || partition_state(&bootstrap, TOPIC).is_some_and(|(_, _, isr)| isr.len() == 3),
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = writer.await;
    outages.sort();
    let median = outages[outages.len() / 2];
    println!(
        "failover over {trials} trials: median {median:?}, min {:?}, max {:?}",
        outages[0],
        outages[outages.len() - 1]
    );
}
