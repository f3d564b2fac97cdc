//! A librdkafka-based produce load for benchmarks (`scripts/bench.sh`):
//! the same client drives every broker compared, so the figures differ only
//! by the broker. Prints one JSON line with throughput and latency.
//!
//! cargo run --release -p weir-e2e --example rdkafka_load -- \
//!     BOOTSTRAP TOPIC RECORDS RECORD_SIZE ACKS [RATE_PER_SEC]

use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

/// Records each delivery's latency (send → acknowledgement) in microseconds.
struct Latencies {
    micros: Mutex<Vec<u32>>,
    failed: Mutex<u64>,
}

impl ClientContext for Latencies {}

impl ProducerContext for Latencies {
    type DeliveryOpaque = Box<Instant>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                let us = sent.elapsed().as_micros().min(u32::MAX as u128) as u32;
                self.micros.lock().unwrap().push(us);
            }
            Err(_) => *self.failed.lock().unwrap() += 1,
        }
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: rdkafka_load BOOTSTRAP TOPIC RECORDS RECORD_SIZE ACKS [RATE_PER_SEC]");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[1], &args[2]);
    let records: u64 = args[3].parse().expect("RECORDS");
    let size: usize = args[4].parse().expect("RECORD_SIZE");
    let acks = &args[5];
    let rate: Option<f64> = args.get(6).map(|r| r.parse().expect("RATE_PER_SEC"));

    let context = Latencies {
        micros: Mutex::new(Vec::with_capacity(records as usize)),
        failed: Mutex::new(0),
    };
    let producer: ThreadedProducer<Latencies> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("enable.idempotence", "false")
        .create_with_context(context)
        .expect("producer");

    let payload = vec![b'x'; size];
    let start = Instant::now();
    for i in 0..records {
        if let Some(rate) = rate {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        let mut record: BaseRecord<(), [u8], Box<Instant>> =
            BaseRecord::with_opaque_to(topic, Box::new(Instant::now())).payload(&payload[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let elapsed = start.elapsed().as_secs_f64();
    let context = producer.context();
    let mut micros = context.micros.lock().unwrap().clone();
    micros.sort_unstable();
    let delivered = micros.len() as f64;
    println!(
        "{{\"records\":{},\"failed\":{},\"seconds\":{:.3},\"msgs_per_s\":{:.0},\"mb_per_s\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"p999_ms\":{:.2}}}",
        micros.len(),
        context.failed.lock().unwrap(),
        elapsed,
        delivered / elapsed,
        delivered * size as f64 / elapsed / 1e6,
        percentile(&micros, 0.50),
        percentile(&micros, 0.99),
        percentile(&micros, 0.999),
    );
}
