//! `weir group …`: list, describe (with lag) and delete consumer groups.

use anyhow::bail;
use weir_client::ResponseError;

use super::client_args::{ClientArgs, thousands};

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand, Debug)]
enum GroupCommand {
    /// List groups with their state.
    List,
    /// Members, assignments and per-partition lag of a group.
    Describe {
        /// Group id.
        group: String,
    },
    /// Delete a group that has no members (its committed offsets go too).
    Delete {
        /// Group id.
        group: String,
    },
    /// Move an inactive group's committed offsets (a dry run unless
    /// --execute), as kafka-consumer-groups.sh --reset-offsets.
    ResetOffsets(ResetArgs),
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["topic", "all_topics"])))]
#[command(group(clap::ArgGroup::new("target").required(true)
    .args(["to_earliest", "to_latest", "to_datetime", "shift_by", "to_offset"])))]
struct ResetArgs {
    /// Group id.
    group: String,
    /// A topic (all its partitions), or TOPIC:P,P… for some; repeatable.
    #[arg(long)]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    /// YYYY-MM-DDTHH:mm:SS[.sss][Z|±HH:MM] (UTC without a zone).
    #[arg(long)]
    to_datetime: Option<String>,
    /// Move each committed offset by N (negative: back).
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<i64>,
    #[arg(long)]
    to_offset: Option<i64>,
    /// Commit the new offsets (without it, only print them).
    #[arg(long)]
    execute: bool,
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    match args.command {
        GroupCommand::List => {
            let groups = admin.list_groups().await?;
            let width = groups
                .iter()
                .map(|g| g.group_id.len())
                .max()
                .unwrap_or(5)
                .max(5);
            println!("{:<width$}  {:<20}  TYPE", "GROUP", "STATE");
            for g in groups {
                println!(
                    "{:<width$}  {:<20}  {}",
                    g.group_id, g.state, g.protocol_type
                );
            }
        }
        GroupCommand::Describe { group } => {
            let desc = admin.describe_group(&group).await?;
            let lag = admin.group_lag(&group).await?;
            if desc.state == "Dead" && lag.is_empty() {
                bail!("group {group:?} does not exist");
            }
            println!(
                "Group: {}\tState: {}\tProtocol: {}/{}\tMembers: {}",
                desc.group_id,
                desc.state,
                if desc.protocol_type.is_empty() {
                    "-"
                } else {
                    &desc.protocol_type
                },
                if desc.protocol.is_empty() {
                    "-"
                } else {
                    &desc.protocol
                },
                desc.members.len()
            );
            if !desc.members.is_empty() {
                println!();
                println!("MEMBER\tCLIENT-ID\tHOST\tPARTITIONS");
                for m in &desc.members {
                    let parts: Vec<String> = m
                        .assignment
                        .iter()
                        .map(|(t, p)| format!("{t}-{p}"))
                        .collect();
                    println!(
                        "{}\t{}\t{}\t{}",
                        m.member_id,
                        m.client_id,
                        m.client_host,
                        parts.join(",")
                    );
                }
            }
            if !lag.is_empty() {
                println!();
                println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER");
                for l in &lag {
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        l.topic,
                        l.partition,
                        l.committed.map_or("-".to_string(), |c| c.to_string()),
                        l.log_end,
                        l.lag.map_or("-".to_string(), |c| c.to_string()),
                        l.member_id.as_deref().unwrap_or("-")
                    );
                }
            }
            let total: i64 = lag.iter().filter_map(|l| l.lag).sum();
            println!();
            println!("Total lag: {}", thousands(total.max(0) as u64));
        }
        GroupCommand::ResetOffsets(reset) => reset_offsets(&args.client, &admin, reset).await?,
        GroupCommand::Delete { group } => match admin.delete_group(&group).await {
            Ok(()) => eprintln!("deleted group {group:?}"),
            Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
                bail!("group {group:?} does not exist")
            }
            Err(e) if e.kafka_error() == Some(ResponseError::NonEmptyGroup) => {
                bail!("group {group:?} still has members; stop its consumers first")
            }
            Err(e) => return Err(e.into()),
        },
    }
    Ok(())
}

async fn reset_offsets(
    client: &ClientArgs,
    admin: &weir_client::admin::Admin,
    args: ResetArgs,
) -> anyhow::Result<()> {
    use std::collections::BTreeMap;
    use weir_client::admin::OffsetSpec;

    use super::reset_offsets::{PartitionFacts, ResetTo, parse_datetime, plan};

    let to = match (&args.to_datetime, args.shift_by, args.to_offset) {
        (Some(dt), ..) => ResetTo::Datetime(parse_datetime(dt)?),
        (_, Some(n), _) => ResetTo::ShiftBy(n),
        (.., Some(o)) => ResetTo::Offset(o),
        _ if args.to_earliest => ResetTo::Earliest,
        _ => ResetTo::Latest,
    };
    let desc = admin.describe_group(&args.group).await?;
    if !desc.members.is_empty() {
        bail!(
            "group {:?} has {} active member(s) (state {}); offsets can only be reset while it is inactive: stop its consumers first",
            args.group,
            desc.members.len(),
            desc.state
        );
    }
    let committed = admin.committed_offsets(&args.group).await?;
    let mut partitions: Vec<(String, i32)> = Vec::new();
    if args.all_topics {
        partitions.extend(committed.keys().cloned());
    }
    for spec in &args.topic {
        match spec.split_once(':') {
            Some((topic, list)) => {
                for p in list.split(',') {
                    let p = p.trim().parse::<i32>().map_err(|_| {
                        anyhow::anyhow!("--topic {spec:?}: {p:?} is not a partition number")
                    })?;
                    partitions.push((topic.to_string(), p));
                }
            }
            None => {
                let meta = admin.describe_topic(spec).await?;
                partitions.extend(meta.partitions.iter().map(|p| (spec.clone(), p.partition)));
            }
        }
    }
    partitions.sort();
    partitions.dedup();
    if partitions.is_empty() {
        bail!("no partitions to reset for group {:?}", args.group);
    }
    let earliest = admin
        .list_offsets_for(&partitions, OffsetSpec::Earliest)
        .await?;
    let latest = admin
        .list_offsets_for(&partitions, OffsetSpec::Latest)
        .await?;
    let at_time = match to {
        ResetTo::Datetime(ms) => Some(
            admin
                .list_offsets_for(&partitions, OffsetSpec::Timestamp(ms))
                .await?,
        ),
        _ => None,
    };
    let mut facts = BTreeMap::new();
    for key in &partitions {
        let (Some(e), Some(l)) = (earliest.get(key), latest.get(key)) else {
            bail!("{}-{} does not exist", key.0, key.1);
        };
        facts.insert(
            key.clone(),
            PartitionFacts {
                committed: committed.get(key).copied(),
                earliest: e.offset,
                latest: l.offset,
                at_time: at_time.as_ref().and_then(|m| m.get(key)).map(|o| o.offset),
            },
        );
    }
    let planned = plan(to, &facts)?;
    println!("GROUP\tTOPIC\tPARTITION\tNEW-OFFSET");
    for ((topic, partition), offset) in &planned {
        println!("{}\t{topic}\t{partition}\t{offset}", args.group);
    }
    if !args.execute {
        eprintln!("dry run: nothing committed (add --execute to commit these offsets)");
        return Ok(());
    }
    let mut consumer = weir_client::consumer::Consumer::connect(
        client.config("weir-reset-offsets"),
        weir_client::consumer::ConsumerConfig {
            group_id: Some(args.group.clone()),
            enable_auto_commit: false,
            ..Default::default()
        },
    )
    .await?;
    let offsets: Vec<(String, i32, i64)> =
        planned.into_iter().map(|((t, p), o)| (t, p, o)).collect();
    consumer.commit_offsets(&offsets).await?;
    eprintln!(
        "committed {} offset(s) for group {:?}",
        offsets.len(),
        args.group
    );
    Ok(())
}
