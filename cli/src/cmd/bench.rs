//! `weir bench produce|consume`: throughput and latency (`tasks`, in
//! `bench_tasks.rs`: task-group moves), with a live
//! progress line on stderr and a summary (or JSON) at the end.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::sync::Semaphore;
use weir_client::admin::{Admin, NewTopic};
use weir_client::consumer::{Consumer, ConsumerConfig, IsolationLevel, OffsetReset};
use weir_client::producer::{Acks, Producer, ProducerConfig, ProducerRecord, parse_compression};

use super::client_args::{ClientArgs, thousands};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(clap::Subcommand, Debug)]
enum BenchCommand {
    /// Produce N records of B bytes as fast as possible.
    Produce(ProduceBench),
    /// Read N records from the start of a topic.
    Consume(ConsumeBench),
    /// Time a task group's moves: a member joining, leaving, crashing.
    Tasks(super::bench_tasks::TasksBench),
}

#[derive(clap::Args, Debug)]
struct ProduceBench {
    #[arg(long, env = "WEIR_TOPIC")]
    topic: String,
    #[arg(long, env = "WEIR_RECORDS", default_value_t = 1_000_000)]
    records: u64,
    /// Bytes per record value.
    #[arg(long, env = "WEIR_RECORD_SIZE", default_value_t = 1024)]
    record_size: usize,
    /// 0, 1 or all.
    #[arg(long, env = "WEIR_ACKS", default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "WEIR_COMPRESSION", default_value = "none")]
    compression: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long, env = "WEIR_PARTITIONS")]
    partitions: Option<i32>,
    /// Replication factor when creating the topic (default: the broker's).
    #[arg(long, env = "WEIR_REPLICATION_FACTOR")]
    replication_factor: Option<i16>,
    #[arg(long, env = "WEIR_LINGER_MS", default_value_t = 5)]
    linger_ms: u64,
    /// Bytes per partition batch.
    #[arg(long, env = "WEIR_BATCH_SIZE", default_value_t = 16 * 1024)]
    batch_size: usize,
    /// Most bytes of records awaiting acknowledgement at once.
    #[arg(long, env = "WEIR_BUFFER_MEMORY", default_value_t = 32 * 1024 * 1024)]
    buffer_memory: usize,
    /// Records per transaction: a transactional producer commits every N
    /// (0: an idempotent producer, no transactions).
    #[arg(long, env = "WEIR_TRANSACTION_SIZE", default_value_t = 0)]
    transaction_size: u64,
    /// Print the final summary as JSON on stdout.
    #[arg(long, env = "WEIR_JSON")]
    json: bool,
}

#[derive(clap::Args, Debug)]
struct ConsumeBench {
    #[arg(long, env = "WEIR_TOPIC")]
    topic: String,
    #[arg(long, env = "WEIR_RECORDS", default_value_t = 1_000_000)]
    records: u64,
    /// Give up when nothing arrives for this many ms.
    #[arg(long, env = "WEIR_TIMEOUT_MS", default_value_t = 10_000)]
    timeout_ms: u64,
    /// read_uncommitted or read_committed.
    #[arg(long, env = "WEIR_ISOLATION", default_value = "read_uncommitted")]
    isolation: String,
    /// Print the final summary as JSON on stdout.
    #[arg(long, env = "WEIR_JSON")]
    json: bool,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(b) => produce(&args.client, b).await,
        BenchCommand::Consume(b) => consume(&args.client, b).await,
        BenchCommand::Tasks(b) => super::bench_tasks::run(&args.client, b).await,
    }
}

/// Latencies in microseconds in log-spaced buckets 1% wide: constant memory
/// whatever the record count, percentiles within 1%.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const BUCKET_GROWTH: f64 = 1.01;

impl Histogram {
    fn new() -> Self {
        Self {
            counts: Vec::new(),
            total: 0,
            max: 0,
        }
    }

    fn bucket(us: u64) -> usize {
        if us == 0 {
            0
        } else {
            ((us as f64).ln() / BUCKET_GROWTH.ln()) as usize + 1
        }
    }

    fn record(&mut self, us: u64) {
        let i = Self::bucket(us);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// The latency below which a fraction `q` of samples fall, in µs.
    fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let target = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= target {
                let upper = if i == 0 {
                    0
                } else {
                    BUCKET_GROWTH.powi(i as i32) as u64
                };
                return upper.min(self.max);
            }
        }
        self.max
    }
}

#[derive(Default)]
struct Progress {
    done: AtomicU64,
    bytes: AtomicU64,
    failed: AtomicU64,
}

struct Stats {
    progress: Progress,
    hist: Mutex<Histogram>,
    first_error: Mutex<Option<String>>,
}

impl Stats {
    fn new() -> Arc<Self> {
        Arc::new(Stats {
            progress: Progress::default(),
            hist: Mutex::new(Histogram::new()),
            first_error: Mutex::new(None),
        })
    }

    fn hist(&self) -> Histogram {
        self.hist.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

fn mb_per_sec(bytes: u64, secs: f64) -> f64 {
    if secs <= 0.0 {
        0.0
    } else {
        bytes as f64 / (1024.0 * 1024.0) / secs
    }
}

/// Redraws the progress line a few times a second until dropped.
fn spawn_progress(stats: Arc<Stats>, total: u64, start: Instant) -> tokio::task::JoinHandle<()> {
    let tty = std::io::stderr().is_terminal();
    tokio::spawn(async move {
        let period = if tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(2)
        };
        loop {
            tokio::time::sleep(period).await;
            let line = progress_line(&stats, total, start);
            let mut err = std::io::stderr().lock();
            let _ = if tty {
                write!(err, "\r{line}\x1b[K")
            } else {
                writeln!(err, "{line}")
            };
            let _ = err.flush();
        }
    })
}

fn progress_line(stats: &Stats, total: u64, start: Instant) -> String {
    const WIDTH: usize = 12;
    let done = stats.progress.done.load(Ordering::Relaxed);
    let bytes = stats.progress.bytes.load(Ordering::Relaxed);
    let filled = if total == 0 {
        WIDTH
    } else {
        ((done as f64 / total as f64) * WIDTH as f64) as usize
    }
    .min(WIDTH);
    let h = stats.hist();
    format!(
        "▕{}{}▏ {} records  {:.0} MB/s  p50 {}  p99 {}",
        "█".repeat(filled),
        " ".repeat(WIDTH - filled),
        thousands(done),
        mb_per_sec(bytes, start.elapsed().as_secs_f64()),
        ms(h.percentile(0.5)),
        ms(h.percentile(0.99))
    )
}

fn finish(
    kind: &str,
    stats: &Stats,
    progress: tokio::task::JoinHandle<()>,
    elapsed: Duration,
    record_size: Option<usize>,
    json: bool,
) {
    progress.abort();
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    let done = stats.progress.done.load(Ordering::Relaxed);
    let bytes = stats.progress.bytes.load(Ordering::Relaxed);
    let failed = stats.progress.failed.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let h = stats.hist();
    let rps = if secs > 0.0 { done as f64 / secs } else { 0.0 };
    let mbps = mb_per_sec(bytes, secs);
    let latency = if kind == "produce" {
        "send→ack"
    } else {
        "end-to-end"
    };
    if json {
        let v = serde_json::json!({
            "benchmark": kind,
            "records": done,
            "failed": failed,
            "bytes": bytes,
            "record_size": record_size,
            "seconds": secs,
            "records_per_sec": rps,
            "mb_per_sec": mbps,
            "latency": latency,
            "latency_ms": {
                "p50": h.percentile(0.5) as f64 / 1000.0,
                "p99": h.percentile(0.99) as f64 / 1000.0,
                "p999": h.percentile(0.999) as f64 / 1000.0,
                "max": h.max as f64 / 1000.0,
            },
        });
        println!("{v}");
    } else {
        eprintln!(
            "{kind}: {} records in {:.2} s: {} records/s, {:.1} MB/s; {latency} latency p50 {}  p99 {}  p999 {}  max {}{}",
            thousands(done),
            secs,
            thousands(rps as u64),
            mbps,
            ms(h.percentile(0.5)),
            ms(h.percentile(0.99)),
            ms(h.percentile(0.999)),
            ms(h.max),
            if failed > 0 {
                format!("; {} FAILED", thousands(failed))
            } else {
                String::new()
            }
        );
    }
}

async fn ensure_topic(admin: &Admin, b: &ProduceBench) -> anyhow::Result<()> {
    match admin.describe_topic(&b.topic).await {
        Ok(_) => return Ok(()),
        Err(weir_client::Error::UnknownTopic(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(partitions) = b.partitions else {
        bail!(
            "topic {:?} does not exist; pass --partitions N to create it",
            b.topic
        );
    };
    let topic = NewTopic::new(&b.topic, partitions, b.replication_factor.unwrap_or(-1));
    match admin.create_topic(topic).await {
        Ok(()) => {}
        Err(e) if e.kafka_error() == Some(weir_client::ResponseError::TopicAlreadyExists) => {}
        Err(e) => return Err(e).context("creating the benchmark topic"),
    }
    admin
        .wait_for_topic(&b.topic, Duration::from_secs(30))
        .await?;
    Ok(())
}

/// Printable pseudo-random bytes: compressible about as much as text, not
/// as much as a repeated character.
fn payload(size: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

async fn produce(client: &ClientArgs, b: ProduceBench) -> anyhow::Result<()> {
    let acks: Acks = b.acks.parse()?;
    let admin = client.admin().await?;
    ensure_topic(&admin, &b).await?;
    let config = ProducerConfig {
        acks,
        enable_idempotence: acks == Acks::All,
        compression: parse_compression(&b.compression)?,
        linger: Duration::from_millis(b.linger_ms),
        batch_size: b.batch_size,
        transactional_id: (b.transaction_size > 0)
            .then(|| format!("weir-bench-{}", std::process::id())),
        ..ProducerConfig::default()
    };
    let producer = Producer::with_cluster(admin.cluster().clone(), config).await?;
    let mut commits = Histogram::new();
    let commit = async |commits: &mut Histogram| -> anyhow::Result<()> {
        let t = Instant::now();
        producer.commit_transaction().await?;
        commits.record(t.elapsed().as_micros() as u64);
        Ok(())
    };
    let value = payload(b.record_size);
    let window = (b.buffer_memory / b.record_size.max(1)).clamp(1, Semaphore::MAX_PERMITS) as u32;
    let slots = Arc::new(Semaphore::new(window as usize));
    let stats = Stats::new();
    let start = Instant::now();
    let progress = spawn_progress(stats.clone(), b.records, start);
    for i in 0..b.records {
        if b.transaction_size > 0 && i % b.transaction_size == 0 {
            if i > 0 {
                commit(&mut commits).await?;
            }
            producer.begin_transaction().await?;
        }
        let permit = slots
            .clone()
            .acquire_owned()
            .await
            .context("benchmark window closed")?;
        let sent_at = Instant::now();
        let ack = producer.send(ProducerRecord {
            topic: b.topic.clone(),
            value: Some(value.clone()),
            ..ProducerRecord::default()
        });
        let stats = stats.clone();
        let size = b.record_size as u64;
        tokio::spawn(async move {
            let result = ack.await;
            let us = sent_at.elapsed().as_micros() as u64;
            match result {
                Ok(_) => {
                    stats
                        .hist
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(us);
                    stats.progress.bytes.fetch_add(size, Ordering::Relaxed);
                    stats.progress.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.progress.failed.fetch_add(1, Ordering::Relaxed);
                    stats
                        .first_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e.to_string());
                }
            }
            drop(permit);
        });
    }
    if b.transaction_size > 0 && b.records > 0 {
        commit(&mut commits).await?;
    }
    producer.flush().await?;
    // Every ack task has run once all permits are back.
    let _all = slots
        .acquire_many(window)
        .await
        .context("benchmark window closed")?;
    let elapsed = start.elapsed();
    producer.close().await?;
    finish(
        "produce",
        &stats,
        progress,
        elapsed,
        Some(b.record_size),
        b.json,
    );
    if b.transaction_size > 0 {
        report_commits(&commits, b.transaction_size, b.json);
    }
    if let Some(e) = stats
        .first_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
    {
        bail!(
            "{} records failed; first error: {e}",
            thousands(stats.progress.failed.load(Ordering::Relaxed))
        );
    }
    Ok(())
}

/// Commit latency: `commit_transaction` from call to answer (flushing the
/// transaction's last records, then EndTxn).
fn report_commits(commits: &Histogram, size: u64, json: bool) {
    if json {
        let v = serde_json::json!({
            "benchmark": "transactions",
            "transactions": commits.total,
            "records_per_transaction": size,
            "commit_latency_ms": {
                "p50": commits.percentile(0.5) as f64 / 1000.0,
                "p99": commits.percentile(0.99) as f64 / 1000.0,
                "max": commits.max as f64 / 1000.0,
            },
        });
        println!("{v}");
    } else {
        eprintln!(
            "transactions: {} of {} records; commit latency p50 {}  p99 {}  max {}",
            thousands(commits.total),
            thousands(size),
            ms(commits.percentile(0.5)),
            ms(commits.percentile(0.99)),
            ms(commits.max)
        );
    }
}

async fn consume(client: &ClientArgs, b: ConsumeBench) -> anyhow::Result<()> {
    let isolation_level = match b.isolation.as_str() {
        "read_uncommitted" => IsolationLevel::ReadUncommitted,
        "read_committed" => IsolationLevel::ReadCommitted,
        other => bail!("--isolation must be read_uncommitted or read_committed, not {other:?}"),
    };
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        enable_auto_commit: false,
        isolation_level,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(client.config("weir-bench")?, config).await?;
    let meta = consumer
        .cluster()
        .topic_or_fetch(&b.topic)
        .await
        .map_err(|e| match e {
            weir_client::Error::UnknownTopic(t) => anyhow::anyhow!("topic {t:?} does not exist"),
            e => e.into(),
        })?;
    let all: Vec<(&str, i32)> = meta
        .partitions
        .iter()
        .map(|p| (b.topic.as_str(), p.partition))
        .collect();
    consumer.assign(&all);
    let stats = Stats::new();
    let start = Instant::now();
    let progress = spawn_progress(stats.clone(), b.records, start);
    let mut last_data = Instant::now();
    let mut done = 0u64;
    while done < b.records {
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            if last_data.elapsed() >= Duration::from_millis(b.timeout_ms) {
                break;
            }
            continue;
        }
        last_data = Instant::now();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut bytes = 0u64;
        {
            let mut h = stats.hist.lock().unwrap_or_else(|p| p.into_inner());
            for r in records.iter().take((b.records - done) as usize) {
                bytes += r.value.as_ref().map_or(0, |v| v.len()) as u64
                    + r.key.as_ref().map_or(0, |k| k.len()) as u64;
                h.record(((now_ms - r.timestamp).max(0) as u64) * 1000);
            }
        }
        let n = (records.len() as u64).min(b.records - done);
        done += n;
        stats.progress.done.fetch_add(n, Ordering::Relaxed);
        stats.progress.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    let elapsed = start.elapsed();
    finish("consume", &stats, progress, elapsed, None, b.json);
    consumer.close().await?;
    if done < b.records {
        bail!(
            "only {} of {} records arrived (nothing new for {} ms)",
            thousands(done),
            thousands(b.records),
            b.timeout_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_percentiles_within_one_percent() {
        let mut h = Histogram::new();
        for us in 1..=10_000 {
            h.record(us);
        }
        for (q, want) in [(0.5, 5_000.0), (0.99, 9_900.0), (0.999, 9_990.0)] {
            let got = h.percentile(q) as f64;
            assert!((got - want).abs() / want < 0.015, "p{q}: {got} vs {want}");
        }
        assert_eq!(h.percentile(1.0), 10_000);
        assert_eq!(Histogram::new().percentile(0.5), 0);
    }

    #[test]
    fn payload_has_requested_size() {
        assert_eq!(payload(1024).len(), 1024);
        assert!(payload(100).iter().all(|c| c.is_ascii_lowercase()));
    }
}
