//! `weir topic …`: create, list, describe, alter and delete topics.

use anyhow::{Context, bail};
use weir_client::admin::{AlterConfigOp, ConfigResource, ConfigSource, NewTopic};
use weir_client::{Error, ResponseError};

use super::client_args::{ClientArgs, parse_pairs};

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (default: the broker's `num.partitions`).
        #[arg(long, env = "WEIR_PARTITIONS")]
        partitions: Option<i32>,
        /// Copies of each partition (default: the broker's default).
        #[arg(long, env = "WEIR_REPLICATION_FACTOR")]
        replication_factor: Option<i16>,
        /// Topic config KEY=VALUE, repeatable (e.g. `--config retention.ms=3600000`).
        #[arg(long = "config", env = "WEIR_CONFIG", value_delimiter = ';')]
        config: Vec<String>,
        /// Succeed if the topic already exists.
        #[arg(long, env = "WEIR_IF_NOT_EXISTS")]
        if_not_exists: bool,
    },
    /// List topic names.
    List {
        /// Include internal topics such as `__consumer_offsets`.
        #[arg(long, env = "WEIR_INCLUDE_INTERNAL")]
        include_internal: bool,
    },
    /// Show partitions (leader, replicas, in-sync replicas) and configs.
    Describe {
        /// Topic name.
        name: String,
        /// Show every config, not only those set on the topic.
        #[arg(long, env = "WEIR_ALL_CONFIGS")]
        all_configs: bool,
    },
    /// Add partitions or change configs.
    Alter {
        /// Topic name.
        name: String,
        /// New total partition count (can only grow).
        #[arg(long, env = "WEIR_PARTITIONS")]
        partitions: Option<i32>,
        /// Config to set, KEY=VALUE, repeatable.
        #[arg(long = "config", env = "WEIR_CONFIG", value_delimiter = ';')]
        config: Vec<String>,
        /// Config to remove (back to its default), repeatable.
        #[arg(
            long = "delete-config",
            env = "WEIR_DELETE_CONFIG",
            value_delimiter = ','
        )]
        delete_config: Vec<String>,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
        /// Succeed if the topic does not exist.
        #[arg(long, env = "WEIR_IF_EXISTS")]
        if_exists: bool,
    },
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            config,
            if_not_exists,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs: parse_pairs(&config, "--config")?,
            };
            match admin.create_topic(topic).await {
                Ok(()) => eprintln!("created topic {name:?}"),
                Err(e) if is(&e, ResponseError::TopicAlreadyExists) => {
                    if !if_not_exists {
                        bail!("topic {name:?} already exists");
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot create topic {name:?}")),
            }
        }
        TopicCommand::List { include_internal } => {
            for t in admin.list_topics(include_internal).await? {
                println!("{}", t.name);
            }
        }
        TopicCommand::Describe { name, all_configs } => {
            let t = admin
                .describe_topic(&name)
                .await
                .map_err(|e| not_found(e, &name))?;
            let rf = t.partitions.first().map(|p| p.replicas.len()).unwrap_or(0);
            println!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}",
                t.name,
                t.id,
                t.partitions.len(),
                rf
            );
            for p in &t.partitions {
                println!(
                    "\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{}",
                    p.partition,
                    if p.leader >= 0 {
                        p.leader.to_string()
                    } else {
                        "none".into()
                    },
                    join(&p.replicas),
                    join(&p.isr),
                    if p.offline_replicas.is_empty() {
                        String::new()
                    } else {
                        format!("\tOffline: {}", join(&p.offline_replicas))
                    }
                );
            }
            let configs = admin
                .describe_configs(&ConfigResource::topic(&name))
                .await?;
            let shown: Vec<_> = configs
                .iter()
                .filter(|c| all_configs || c.source == ConfigSource::DynamicTopic)
                .collect();
            if !shown.is_empty() {
                println!("Configs:");
            }
            for c in shown {
                let value = if c.sensitive {
                    "(sensitive)".to_string()
                } else {
                    c.value.clone().unwrap_or_default()
                };
                println!(
                    "\t{}={}\t({}{})",
                    c.name,
                    value,
                    c.source.as_str(),
                    if c.read_only { ", read-only" } else { "" }
                );
            }
        }
        TopicCommand::Alter {
            name,
            partitions,
            config,
            delete_config,
        } => {
            if partitions.is_none() && config.is_empty() && delete_config.is_empty() {
                bail!("nothing to alter: give --partitions, --config or --delete-config");
            }
            let current = admin
                .describe_topic(&name)
                .await
                .map_err(|e| not_found(e, &name))?;
            if let Some(n) = partitions {
                let have = current.partitions.len() as i32;
                if n < have {
                    bail!(
                        "topic {name:?} has {have} partitions; partitions can only be added, not removed"
                    );
                }
                if n > have {
                    admin.create_partitions(&name, n).await?;
                    eprintln!("topic {name:?} now has {n} partitions");
                }
            }
            let mut ops: Vec<AlterConfigOp> = parse_pairs(&config, "--config")?
                .into_iter()
                .map(|(k, v)| AlterConfigOp::Set(k, v))
                .collect();
            ops.extend(delete_config.into_iter().map(AlterConfigOp::Delete));
            if !ops.is_empty() {
                admin
                    .incremental_alter_configs(&ConfigResource::topic(&name), &ops)
                    .await?;
                eprintln!("updated {} config(s) of topic {name:?}", ops.len());
            }
        }
        TopicCommand::Delete { name, if_exists } => {
            match admin.delete_topics(std::slice::from_ref(&name)).await {
                Ok(()) => eprintln!("deleted topic {name:?}"),
                Err(e) if is(&e, ResponseError::UnknownTopicOrPartition) => {
                    if !if_exists {
                        bail!("topic {name:?} does not exist");
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

fn is(e: &Error, code: ResponseError) -> bool {
    e.kafka_error() == Some(code)
}

fn not_found(e: Error, name: &str) -> anyhow::Error {
    if matches!(e, Error::UnknownTopic(_)) || is(&e, ResponseError::UnknownTopicOrPartition) {
        anyhow::anyhow!("topic {name:?} does not exist")
    } else {
        e.into()
    }
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
