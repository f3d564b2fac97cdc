#[derive(clap::Args)]
pub struct GroupArgs {}

pub async fn run(_args: GroupArgs) -> anyhow::Result<()> {
    anyhow::bail!("weir group is being written")
}
