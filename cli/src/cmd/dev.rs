//! `weir dev`: the whole platform on one machine, no Kubernetes: one broker,
//! or with `--brokers N` a cluster of N brokers (each also a metadata-quorum
//! voter, up to three) in this one process. Connect joins as it lands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use weir_broker::config::QuorumVoter;
use weir_broker::{Broker, BrokerConfig};

use super::broker::wait_for_shutdown_signal;

/// At most this many brokers vote in the metadata quorum, as in a typical
/// KRaft deployment; the others follow it.
const MAX_VOTERS: u16 = 3;

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Where the platform keeps its data.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./.weir")]
    pub data_dir: PathBuf,
    /// Kafka port of the first broker; the other listeners take the ports
    /// above it in order: the other brokers' Kafka ports, then one admin
    /// HTTP port per broker, then (with several brokers) one quorum port each.
    #[arg(long, env = "WEIR_PORT", default_value_t = 9092)]
    pub port: u16,
    /// Number of brokers.
    #[arg(long, env = "WEIR_BROKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=9))]
    pub brokers: u16,
}

/// The ports of broker `i` (0-based) of `n` starting at `base`: Kafka, admin, quorum.
fn ports(base: u16, n: u16, i: u16) -> Option<(u16, u16, u16)> {
    let kafka = base.checked_add(i)?;
    let admin = base.checked_add(n)?.checked_add(i)?;
    let quorum = base.checked_add(2 * n)?.checked_add(i)?;
    Some((kafka, admin, quorum))
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let n = args.brokers;
    let voters: Vec<QuorumVoter> = if n > 1 {
        (0..n.min(MAX_VOTERS))
            .map(|i| {
                let (_, _, quorum) = ports(args.port, n, i).context("--port leaves no room")?;
                Ok(QuorumVoter {
                    id: i32::from(i) + 1,
                    address: format!("127.0.0.1:{quorum}"),
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let mut brokers = Vec::new();
    for i in 0..n {
        let node_id = i32::from(i) + 1;
        let (kafka, admin, quorum) =
            ports(args.port, n, i).context("--port leaves no room for the listeners above it")?;
        let address = format!("127.0.0.1:{kafka}");
        let data_dir = args.data_dir.join(format!("broker-{node_id}"));
        // A laptop has no patience for Kafka's 3 s wait for more group members.
        let mut config = BrokerConfig::new(node_id, &data_dir, &address)
            .with_setting("group.initial.rebalance.delay.ms", "0")?;
        config.admin_listen = Some(format!("127.0.0.1:{admin}"));
        if n > 1 {
            config.controller_quorum = voters.clone();
            config.controller_listen = Some(format!("127.0.0.1:{quorum}"));
        }
        let broker = Broker::start(config).await.with_context(|| {
            format!("starting broker {node_id} on {address} (is another broker using the port?)")
        })?;
        brokers.push(broker);
    }
    wait_until_ready(&brokers).await?;
    for broker in &brokers {
        let admin = broker
            .admin_addr()
            .map(|a| format!(", admin http://{a}"))
            .unwrap_or_default();
        println!(
            "weir dev: broker {} on {}{admin}",
            broker.state().config.node_id,
            broker.local_addr(),
        );
    }
    println!(
        "weir dev: {n} broker{} ready (data in {})",
        if n == 1 { "" } else { "s" },
        args.data_dir.display()
    );
    wait_for_shutdown_signal().await?;
    for broker in brokers {
        broker.shutdown().await.context("stopping a broker")?;
    }
    println!("weir dev: stopped");
    Ok(())
}

async fn wait_until_ready(brokers: &[Broker]) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !brokers.iter().all(|b| b.state().is_ready()) {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the brokers did not become ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
