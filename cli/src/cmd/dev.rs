//! `weir dev`: the whole platform on one machine, no Kubernetes. For now
//! that is one broker; Connect and cluster mode join it as they land.

use std::path::PathBuf;

use anyhow::Context;
use weir_broker::{Broker, BrokerConfig};

use super::broker::wait_for_shutdown_signal;

#[derive(clap::Args, Debug)]
pub struct DevArgs {
    /// Where the platform keeps its data.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./.weir")]
    pub data_dir: PathBuf,
    /// Kafka port of the first broker; the other listeners take the ports
    /// above it (the admin HTTP port is the next one).
    #[arg(long, env = "WEIR_PORT", default_value_t = 9092)]
    pub port: u16,
    /// Number of brokers.
    #[arg(long, env = "WEIR_BROKERS", default_value_t = 1)]
    pub brokers: u16,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    if args.brokers != 1 {
        anyhow::bail!(
            "--brokers {}: only a single broker is available until cluster mode lands; use --brokers 1",
            args.brokers
        );
    }
    let address = format!("127.0.0.1:{}", args.port);
    let data_dir = args.data_dir.join("broker-1");
    // A laptop has no patience for Kafka's 3 s wait for more group members.
    let mut config = BrokerConfig::new(1, &data_dir, &address)
        .with_setting("group.initial.rebalance.delay.ms", "0")?;
    // The next port up serves the admin endpoints.
    let admin_port = args
        .port
        .checked_add(1)
        .context("--port leaves no room for the admin port above it")?;
    config.admin_listen = Some(format!("127.0.0.1:{admin_port}"));
    let broker = Broker::start(config).await.with_context(|| {
        format!("starting broker 1 on {address} (is another broker using the port?)")
    })?;
    let admin = broker
        .admin_addr()
        .map(|a| format!(", admin http://{a}"))
        .unwrap_or_default();
    println!(
        "weir dev: broker 1 on {} (data in {}){admin}",
        broker.local_addr(),
        args.data_dir.display()
    );
    wait_for_shutdown_signal().await?;
    broker.shutdown().await.context("stopping the broker")?;
    println!("weir dev: stopped");
    Ok(())
}
