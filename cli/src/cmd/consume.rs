#[derive(clap::Args)]
pub struct ConsumeArgs {}

pub async fn run(_args: ConsumeArgs) -> anyhow::Result<()> {
    anyhow::bail!("weir consume is being written")
}
