#[derive(clap::Args)]
pub struct TopicArgs {}

pub async fn run(_args: TopicArgs) -> anyhow::Result<()> {
    anyhow::bail!("weir topic is being written")
}
