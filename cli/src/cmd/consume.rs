//! `weir consume TOPIC`: print record values, one per line.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, bail};
use weir_client::assignor::AssignmentStrategy;
use weir_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, GroupProtocol, OffsetReset};

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Topic to read.
    topic: String,
    /// Consumer group to join (offsets are committed); without it, every
    /// partition is read and nothing is committed.
    #[arg(long, env = "WEIR_GROUP")]
    group: Option<String>,
    /// The group's protocol: `classic` (JoinGroup/SyncGroup) or `consumer`
    /// (KIP-848, the coordinator assigns), as Kafka's `group.protocol`.
    #[arg(
        long,
        env = "WEIR_GROUP_PROTOCOL",
        value_enum,
        default_value = "classic",
        requires = "group"
    )]
    group_protocol: Protocol,
    /// Classic groups: how the leader assigns partitions
    /// (`partition.assignment.strategy`); `cooperative-sticky` moves only
    /// the partitions that must move.
    #[arg(
        long,
        env = "WEIR_ASSIGNMENT_STRATEGY",
        value_enum,
        default_value = "range",
        requires = "group"
    )]
    partition_assignment_strategy: Strategy,
    /// Start at the oldest record when there is no committed offset.
    #[arg(long, env = "WEIR_FROM_BEGINNING")]
    from_beginning: bool,
    /// Exit after this many records.
    #[arg(long, env = "WEIR_MAX_MESSAGES")]
    max_messages: Option<u64>,
    /// Read only this partition.
    #[arg(long, env = "WEIR_PARTITION")]
    partition: Option<i32>,
    /// Start offset in --partition: a number, `earliest` or `latest`.
    #[arg(long, env = "WEIR_OFFSET", requires = "partition")]
    offset: Option<String>,
    /// Print KEY<TAB>VALUE.
    #[arg(long, env = "WEIR_PRINT_KEY")]
    print_key: bool,
    /// Print PARTITION:OFFSET<TAB> first.
    #[arg(long, env = "WEIR_PRINT_OFFSET")]
    print_offset: bool,
    /// Exit when nothing arrives for this many ms (default: wait forever).
    #[arg(long, env = "WEIR_TIMEOUT_MS")]
    timeout_ms: Option<u64>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Protocol {
    Classic,
    Consumer,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Strategy {
    Range,
    Roundrobin,
    CooperativeSticky,
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    if args.group.is_some() && args.partition.is_some() {
        bail!("--group and --partition cannot be combined: a group assigns partitions itself");
    }
    let config = ConsumerConfig {
        group_id: args.group.clone(),
        group_protocol: match args.group_protocol {
            Protocol::Classic => GroupProtocol::Classic,
            Protocol::Consumer => GroupProtocol::Consumer,
        },
        assignment_strategy: match args.partition_assignment_strategy {
            Strategy::Range => AssignmentStrategy::Range,
            Strategy::Roundrobin => AssignmentStrategy::RoundRobin,
            Strategy::CooperativeSticky => AssignmentStrategy::CooperativeSticky,
        },
        enable_auto_commit: args.group.is_some(),
        auto_offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(args.client.config("weir-consume")?, config).await?;
    let meta = consumer
        .cluster()
        .topic_or_fetch(&args.topic)
        .await
        .map_err(|e| match e {
            weir_client::Error::UnknownTopic(t) => anyhow::anyhow!("topic {t:?} does not exist"),
            e => e.into(),
        })?;
    if args.group.is_some() {
        consumer.subscribe(&[args.topic.as_str()])?;
    } else if let Some(p) = args.partition {
        if meta.partition(p).is_none() {
            bail!(
                "topic {:?} has no partition {p} (it has {})",
                args.topic,
                meta.partitions.len()
            );
        }
        consumer.assign(&[(args.topic.as_str(), p)]);
        match args.offset.as_deref() {
            None => {}
            Some("earliest") => consumer.seek_to_beginning(),
            Some("latest") => {}
            Some(o) => {
                let o: i64 = o.parse().with_context(|| {
                    format!("--offset {o:?} is not a number, earliest or latest")
                })?;
                consumer.seek(&args.topic, p, o);
            }
        }
    } else {
        let all: Vec<(&str, i32)> = meta
            .partitions
            .iter()
            .map(|p| (args.topic.as_str(), p.partition))
            .collect();
        consumer.assign(&all);
    }

    let mut printed = 0u64;
    let limit = args.max_messages.unwrap_or(u64::MAX);
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut idle = Duration::ZERO;
    let stdout = std::io::stdout();
    let result: anyhow::Result<()> = async {
        while printed < limit {
            let poll = Duration::from_millis(500);
            let records = tokio::select! {
                r = consumer.poll(poll) => r?,
                _ = tokio::signal::ctrl_c() => break,
            };
            if records.is_empty() {
                idle += poll;
                if idle_limit.is_some_and(|l| idle >= l) {
                    break;
                }
                continue;
            }
            idle = Duration::ZERO;
            let mut out = stdout.lock();
            for r in records {
                if printed >= limit {
                    // Not printed, so not consumed: rewind for the commit.
                    let next = consumer.position(&r.topic, r.partition).unwrap_or(r.offset);
                    if r.offset < next {
                        consumer.seek(&r.topic, r.partition, r.offset);
                    }
                    continue;
                }
                print_record(&mut out, &r, args.print_key, args.print_offset)?;
                printed += 1;
            }
            out.flush()?;
        }
        Ok(())
    }
    .await;
    let closed = consumer.close().await;
    result?;
    closed?;
    Ok(())
}

fn print_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    key: bool,
    offset: bool,
) -> std::io::Result<()> {
    if offset {
        write!(out, "{}:{}\t", r.partition, r.offset)?;
    }
    if key {
        match &r.key {
            Some(k) => write!(out, "{}\t", String::from_utf8_lossy(k))?,
            None => write!(out, "null\t")?,
        }
    }
    match &r.value {
        Some(v) => out.write_all(v)?,
        None => out.write_all(b"null")?,
    }
    out.write_all(b"\n")
}
