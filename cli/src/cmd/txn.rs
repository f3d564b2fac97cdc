//! `weir txn …`: list and describe transactions, show a partition's
//! producers (to find a hanging transaction), and abort one, as
//! `kafka-transactions.sh list|describe|describe-producers|abort`.

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct TxnArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TxnCommand {
    /// Every transactional id with its producer id and state.
    List,
    /// A transactional id's state on its coordinator: epoch, timeout,
    /// start time and the partitions of its open transaction.
    Describe {
        /// The transactional id.
        transactional_id: String,
    },
    /// The producers with state on a partition, with the first offset of
    /// any transaction they hold open there.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Abort the transaction open on a partition from --start-offset (see
    /// describe-producers): its abort marker is written there, so
    /// read_committed consumers move past it.
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        start_offset: i64,
    },
}

pub async fn run(args: TxnArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    match args.command {
        TxnCommand::List => {
            let txns = admin.list_transactions().await?;
            let width = txns
                .iter()
                .map(|t| t.transactional_id.len())
                .max()
                .unwrap_or(15)
                .max(15);
            println!(
                "{:<width$}  {:>12}  {:<16}  COORDINATOR",
                "TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"
            );
            for t in txns {
                println!(
                    "{:<width$}  {:>12}  {:<16}  {}",
                    t.transactional_id, t.producer_id, t.state, t.coordinator
                );
            }
        }
        TxnCommand::Describe { transactional_id } => {
            let d = admin.describe_transaction(&transactional_id).await?;
            println!("Transactional id: {}", d.transactional_id);
            println!("Coordinator:      {}", d.coordinator);
            println!("State:            {}", d.state);
            println!(
                "Producer:         id {} epoch {}",
                d.producer_id, d.producer_epoch
            );
            println!("Timeout:          {} ms", d.timeout_ms);
            if d.start_time_ms >= 0 {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                let age = now.saturating_sub(d.start_time_ms);
                println!("Started:          {} ({} ms ago)", d.start_time_ms, age);
            }
            let parts: Vec<String> = d
                .partitions
                .iter()
                .map(|(t, p)| format!("{t}-{p}"))
                .collect();
            println!(
                "Partitions:       {}",
                if parts.is_empty() {
                    "-".to_string()
                } else {
                    parts.join(",")
                }
            );
        }
        TxnCommand::DescribeProducers { topic, partition } => {
            let producers = admin.describe_producers(&topic, partition).await?;
            println!("PRODUCER-ID\tEPOCH\tLAST-SEQUENCE\tCURRENT-TRANSACTION-START-OFFSET");
            for p in producers {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.producer_id,
                    p.producer_epoch,
                    p.last_sequence,
                    p.current_txn_start_offset
                        .map_or("-".to_string(), |o| o.to_string())
                );
            }
        }
        TxnCommand::Abort {
            topic,
            partition,
            start_offset,
        } => {
            let pid = admin
                .abort_transaction(&topic, partition, start_offset)
                .await?;
            println!(
                "Aborted producer {pid}'s transaction on {topic}-{partition} (from offset {start_offset})."
            );
        }
    }
    Ok(())
}
