#[derive(clap::Args)]
pub struct ProduceArgs {}

pub async fn run(_args: ProduceArgs) -> anyhow::Result<()> {
    anyhow::bail!("weir produce is being written")
}
