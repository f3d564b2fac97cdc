//! `weir cluster …`: operations on the cluster as a whole — drain a broker
//! before removing it, unregister it once it is gone, list the partition
//! reassignments in progress.
//!
//! A drain is planned here, on the client, from Metadata (see
//! `weir_client::reassign`) and carried out with Kafka's own
//! AlterPartitionReassignments, so it needs no API beyond Kafka's.

use std::time::Duration;

use anyhow::bail;
use weir_client::admin::{Admin, OngoingReassignment};

use super::client_args::ClientArgs;

/// How often `drain --wait` looks at the cluster.
const POLL: Duration = Duration::from_millis(500);

#[derive(clap::Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ClusterCommand {
    /// Move every replica off a broker (before scaling it away), placing
    /// each on another live broker, rack-aware.
    Drain {
        /// Node id of the broker to empty.
        #[arg(long, env = "WEIR_NODE")]
        node: i32,
        /// Wait until the broker holds no replicas, printing progress.
        #[arg(long, env = "WEIR_WAIT")]
        wait: bool,
        /// With --wait, fail after this many seconds (0: wait for ever).
        #[arg(long, env = "WEIR_TIMEOUT_SECS", default_value_t = 0)]
        timeout_secs: u64,
    },
    /// Forget a broker that left for good (stopped, and drained first):
    /// Kafka's UnregisterBroker. The controller stops replicating the
    /// metadata log to it.
    Unregister {
        /// Node id of the broker to forget.
        #[arg(long, env = "WEIR_NODE")]
        node: i32,
    },
    /// List the partition reassignments in progress.
    Reassignments,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    match args.command {
        ClusterCommand::Drain {
            node,
            wait,
            timeout_secs,
        } => {
            let moves = admin.drain_broker(node).await?;
            if moves.is_empty() {
                println!("node {node}: no replicas to move");
            } else {
                println!("node {node}: moving {} replica(s)", moves.len());
                for m in &moves {
                    let to = m.replicas.as_deref().unwrap_or_default();
                    println!("  {}-{} -> {}", m.topic, m.partition, ids(to));
                }
            }
            if wait {
                let timeout = (timeout_secs > 0).then(|| Duration::from_secs(timeout_secs));
                wait_drained(&admin, node, timeout).await?;
            }
            Ok(())
        }
        ClusterCommand::Unregister { node } => {
            admin.unregister_broker(node).await?;
            println!("node {node}: unregistered");
            Ok(())
        }
        ClusterCommand::Reassignments => {
            let ongoing = admin.list_partition_reassignments(None).await?;
            print!("{}", reassignment_table(&ongoing));
            Ok(())
        }
    }
}

/// Polls until `node` holds no replica, printing each change in the count.
/// Transient errors (a broker restarting) are reported and retried.
async fn wait_drained(admin: &Admin, node: i32, timeout: Option<Duration>) -> anyhow::Result<()> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut last = None;
    loop {
        match admin.replicas_on(node).await {
            Ok(left) if left.is_empty() => {
                println!("node {node} holds no replicas");
                return Ok(());
            }
            Ok(left) => {
                if last != Some(left.len()) {
                    println!("node {node}: {} replica(s) left", left.len());
                    last = Some(left.len());
                }
            }
            Err(e) if e.is_retriable() => eprintln!("retrying: {e}"),
            Err(e) => return Err(e.into()),
        }
        if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
            bail!(
                "node {node} still holds replicas after {}s",
                timeout.unwrap_or_default().as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

fn ids(ids: &[i32]) -> String {
    let list: Vec<String> = ids.iter().map(i32::to_string).collect();
    format!("[{}]", list.join(","))
}

/// The reassignments as an aligned table, or a line saying there are none.
fn reassignment_table(ongoing: &[OngoingReassignment]) -> String {
    if ongoing.is_empty() {
        return "no reassignments in progress\n".to_string();
    }
    let rows: Vec<[String; 4]> = ongoing
        .iter()
        .map(|o| {
            [
                format!("{}-{}", o.topic, o.partition),
                ids(&o.replicas),
                ids(&o.adding_replicas),
                ids(&o.removing_replicas),
            ]
        })
        .collect();
    let header = ["PARTITION", "REPLICAS", "ADDING", "REMOVING"].map(String::from);
    let width = |i: usize| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].len())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2)];
    std::iter::once(&header)
        .chain(&rows)
        .map(|r| {
            format!(
                "{:w0$}  {:w1$}  {:w2$}  {}\n",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reassignments_print_as_a_table() {
        assert_eq!(reassignment_table(&[]), "no reassignments in progress\n");
        let table = reassignment_table(&[OngoingReassignment {
            topic: "orders".into(),
            partition: 3,
            replicas: vec![4, 2, 3, 1],
            adding_replicas: vec![4],
            removing_replicas: vec![1],
        }]);
        assert_eq!(
            table,
            "PARTITION  REPLICAS   ADDING  REMOVING\n\
             orders-3   [4,2,3,1]  [4]     [1]\n"
        );
    }
}
