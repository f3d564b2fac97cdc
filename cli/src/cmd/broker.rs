#[derive(clap::Args)]
pub struct BrokerArgs {}

pub async fn run(_args: BrokerArgs) -> anyhow::Result<()> {
    anyhow::bail!("weir broker is being written")
}
