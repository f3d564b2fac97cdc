//! `weir dev`: the whole platform on one machine, no Kubernetes: one broker,
//! or with `--brokers N` a cluster of N brokers (each also a metadata-quorum
//! voter, up to three) in this one process; with `--controllers K` the
//! quorum is K dedicated controllers instead. Connect joins as it lands.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use weir_broker::config::QuorumVoter;
use weir_broker::{Broker, BrokerConfig, ControllerNode, ProcessRoles};

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
    /// Dedicated controllers (KRaft's process.roles=controller), node ids
    /// 101…, forming the metadata quorum instead of the first brokers. Their
    /// admin ports follow the brokers' quorum ports, then their quorum ports.
    #[arg(long, env = "WEIR_CONTROLLERS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=5))]
    pub controllers: u16,
}

/// Node id of dedicated controller `j` (0-based).
fn controller_id(j: u16) -> i32 {
    101 + i32::from(j)
}

/// The ports of dedicated controller `j` of `k`, after `n` brokers' ports
/// starting at `base`: admin, quorum.
fn controller_ports(base: u16, n: u16, k: u16, j: u16) -> Option<(u16, u16)> {
    let first = base.checked_add(3 * n)?;
    Some((first.checked_add(j)?, first.checked_add(k)?.checked_add(j)?))
}

/// The ports of broker `i` (0-based) of `n` starting at `base`: Kafka, admin, quorum.
fn ports(base: u16, n: u16, i: u16) -> Option<(u16, u16, u16)> {
    let kafka = base.checked_add(i)?;
    let admin = base.checked_add(n)?.checked_add(i)?;
    let quorum = base.checked_add(2 * n)?.checked_add(i)?;
    Some((kafka, admin, quorum))
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let (n, k) = (args.brokers, args.controllers);
    let room = "--port leaves no room for the listeners above it";
    let voters: Vec<QuorumVoter> = if k > 0 {
        (0..k)
            .map(|j| {
                let (_, quorum) = controller_ports(args.port, n, k, j).context(room)?;
                Ok(QuorumVoter {
                    id: controller_id(j),
                    address: format!("127.0.0.1:{quorum}"),
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else if n > 1 {
        (0..n.min(MAX_VOTERS))
            .map(|i| {
                let (_, _, quorum) = ports(args.port, n, i).context(room)?;
                Ok(QuorumVoter {
                    id: i32::from(i) + 1,
                    address: format!("127.0.0.1:{quorum}"),
                })
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        Vec::new()
    };
    let mut controllers = Vec::new();
    for j in 0..k {
        let (admin, quorum) = controller_ports(args.port, n, k, j).context(room)?;
        let node_id = controller_id(j);
        let data_dir = args.data_dir.join(format!("controller-{node_id}"));
        let mut config = BrokerConfig::new(node_id, &data_dir, "127.0.0.1:0");
        config.admin_listen = Some(format!("127.0.0.1:{admin}"));
        config.controller_quorum = voters.clone();
        config.controller_listen = Some(format!("127.0.0.1:{quorum}"));
        config.process_roles = Some(ProcessRoles::CONTROLLER);
        let controller = ControllerNode::start(config).await.with_context(|| {
            format!("starting controller {node_id} on quorum port {quorum} (is the port in use?)")
        })?;
        println!(
            "weir dev: controller {node_id} on quorum port {quorum}, admin http://127.0.0.1:{admin}"
        );
        controllers.push(controller);
    }
    let mut brokers = Vec::new();
    for i in 0..n {
        let node_id = i32::from(i) + 1;
        let (kafka, admin, quorum) = ports(args.port, n, i).context(room)?;
        let address = format!("127.0.0.1:{kafka}");
        let data_dir = args.data_dir.join(format!("broker-{node_id}"));
        // A laptop has no patience for Kafka's 3 s wait for more group members.
        let mut config = BrokerConfig::new(node_id, &data_dir, &address)
            .with_setting("group.initial.rebalance.delay.ms", "0")?;
        config.admin_listen = Some(format!("127.0.0.1:{admin}"));
        if !voters.is_empty() {
            config.controller_quorum = voters.clone();
            config.controller_listen = Some(format!("127.0.0.1:{quorum}"));
        }
        if k > 0 {
            config.process_roles = Some(ProcessRoles::BROKER);
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
    for controller in controllers {
        controller
            .shutdown()
            .await
            .context("stopping a controller")?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_listener_gets_its_own_port() {
        for n in 1..=9u16 {
            for k in 0..=5u16 {
                let mut seen = BTreeSet::new();
                for i in 0..n {
                    let (kafka, admin, quorum) = ports(9092, n, i).unwrap();
                    assert!(seen.insert(kafka) && seen.insert(admin) && seen.insert(quorum));
                }
                for j in 0..k {
                    let (admin, quorum) = controller_ports(9092, n, k, j).unwrap();
                    assert!(seen.insert(admin) && seen.insert(quorum), "n={n} k={k}");
                }
                // Contiguous from the base: the README's ranges hold.
                assert_eq!(seen.len(), usize::from(3 * n + 2 * k));
                assert_eq!(*seen.last().unwrap(), 9092 + 3 * n + 2 * k - 1);
            }
        }
        assert!(controller_ports(u16::MAX - 2, 1, 1, 0).is_none());
    }
}
