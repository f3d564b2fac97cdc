//! `weir produce TOPIC`: one record per line of standard input.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use weir_client::producer::{Acks, Producer, ProducerConfig, ProducerRecord, parse_compression};

use super::client_args::{ClientArgs, parse_pairs};

/// Records awaiting their acknowledgement before reading more input, so a
/// huge stdin does not pile up in memory.
const WINDOW: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic to write to.
    topic: String,
    /// Split each line into KEY SEP VALUE at the first SEP (lines without it fail).
    #[arg(long, env = "WEIR_KEY_SEPARATOR")]
    key_separator: Option<String>,
    /// Write every record to this partition (default: by key hash, else sticky).
    #[arg(long, env = "WEIR_PARTITION")]
    partition: Option<i32>,
    /// Acknowledgement to wait for: 0, 1 or all.
    #[arg(long, env = "WEIR_ACKS", default_value = "all")]
    acks: String,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, env = "WEIR_COMPRESSION", default_value = "none")]
    compression: String,
    /// Header KEY=VALUE added to every record, repeatable.
    #[arg(long = "header", env = "WEIR_HEADER", value_delimiter = ',')]
    header: Vec<String>,
    /// How long to wait for more records before sending a batch, in ms.
    #[arg(long, env = "WEIR_LINGER_MS", default_value_t = 5)]
    linger_ms: u64,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let acks: Acks = args.acks.parse()?;
    let headers: Vec<(String, Option<Bytes>)> = parse_pairs(&args.header, "--header")?
        .into_iter()
        .map(|(k, v)| (k, Some(Bytes::from(v))))
        .collect();
    let config = ProducerConfig {
        acks,
        // Idempotence needs acks=all; with 0 or 1 the user chose speed.
        enable_idempotence: acks == Acks::All,
        compression: parse_compression(&args.compression)?,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(args.client.config("weir-produce")?, config).await?;
    // Fail before reading input if the topic is missing.
    producer
        .cluster()
        .topic_or_fetch(&args.topic)
        .await
        .map_err(|e| match e {
            weir_client::Error::UnknownTopic(t) => anyhow::anyhow!("topic {t:?} does not exist"),
            e => e.into(),
        })?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut pending = VecDeque::new();
    let mut line_no = 0u64;
    let mut sent = 0u64;
    while let Some(line) = lines.next_line().await.context("reading standard input")? {
        line_no += 1;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(Bytes::from(k.to_string())), v.to_string()),
                None => bail!("line {line_no} has no key separator {sep:?}"),
            },
            None => (None, line),
        };
        let record = ProducerRecord {
            topic: args.topic.clone(),
            partition: args.partition,
            key,
            value: Some(Bytes::from(value)),
            headers: headers.clone(),
            timestamp: None,
        };
        pending.push_back(producer.send(record));
        if pending.len() >= WINDOW
            && let Some(ack) = pending.pop_front()
        {
            ack.await
                .with_context(|| format!("producing to {:?}", args.topic))?;
            sent += 1;
        }
    }
    producer.flush().await?;
    for ack in pending {
        ack.await
            .with_context(|| format!("producing to {:?}", args.topic))?;
        sent += 1;
    }
    producer.close().await?;
    tracing::debug!(records = sent, "done");
    Ok(())
}
