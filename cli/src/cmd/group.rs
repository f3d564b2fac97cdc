//! `weir group …`: list, describe (with lag) and delete groups of either
//! type (classic, KIP-848 consumer), and reset their offsets.

use anyhow::bail;
use weir_client::ResponseError;
use weir_client::admin::{GroupDescription, PartitionLag};

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
            println!(
                "{:<width$}  {:<20}  {:<8}  PROTOCOL-TYPE",
                "GROUP", "STATE", "TYPE"
            );
            for g in groups {
                println!(
                    "{:<width$}  {:<20}  {:<8}  {}",
                    g.group_id,
                    g.state,
                    g.group_type.as_str(),
                    or_dash(&g.protocol_type)
                );
            }
        }
        GroupCommand::Describe { group } => {
            let desc = match admin.describe_group(&group).await {
                Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
                    // Neither classic nor consumer: a task group, or none.
                    match weir_client::task_group::describe(admin.cluster(), &group).await {
                        Ok(tasks) => {
                            print!("{}", super::group_tasks::describe_text(&tasks));
                            return Ok(());
                        }
                        Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
                            bail!("group {group:?} does not exist")
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                other => other?,
            };
            let lag = admin.group_lag(&group).await?;
            if desc.state == "Dead" && lag.is_empty() {
                bail!("group {group:?} does not exist");
            }
            print!("{}", describe_text(&desc, &lag));
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

/// What `weir group describe` prints: the group line, its members (with
/// epochs and target assignment for consumer groups), then per-partition
/// lag.
fn describe_text(desc: &GroupDescription, lag: &[PartitionLag]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = write!(
        out,
        "Group: {}\tType: {}\tState: {}",
        desc.group_id,
        desc.group_type.as_str(),
        desc.state
    );
    match (desc.group_epoch, desc.assignment_epoch) {
        (Some(group_epoch), Some(assignment_epoch)) => {
            let _ = write!(
                out,
                "\tAssignor: {}\tGroup epoch: {group_epoch}\tAssignment epoch: {assignment_epoch}",
                or_dash(&desc.protocol)
            );
        }
        _ => {
            let _ = write!(
                out,
                "\tProtocol: {}/{}",
                or_dash(&desc.protocol_type),
                or_dash(&desc.protocol)
            );
        }
    }
    let _ = writeln!(out, "\tMembers: {}", desc.members.len());
    if !desc.members.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "MEMBER\tEPOCH\tCLIENT-ID\tHOST\tASSIGNED\tTARGET");
        for m in &desc.members {
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}\t{}",
                m.member_id,
                m.member_epoch.map_or("-".to_string(), |e| e.to_string()),
                m.client_id,
                m.client_host,
                partition_list(&m.assignment),
                m.target_assignment
                    .as_deref()
                    .map_or("-".to_string(), partition_list)
            );
        }
    }
    if !lag.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tMEMBER"
        );
        for l in lag {
            let _ = writeln!(
                out,
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
    let _ = writeln!(out);
    let _ = writeln!(out, "Total lag: {}", thousands(total.max(0) as u64));
    out
}

/// `orders(0,1,2),payments(3)`; `-` for none.
fn partition_list(parts: &[(String, i32)]) -> String {
    if parts.is_empty() {
        return "-".to_string();
    }
    let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for (t, p) in parts {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
            format!("{t}({})", ps.join(","))
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
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
    // A group that does not exist yet may be given offsets to start from,
    // as kafka-consumer-groups.sh allows.
    let desc = match admin.describe_group(&args.group).await {
        Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => None,
        other => Some(other?),
    };
    if let Some(desc) = desc.filter(|d| !d.members.is_empty()) {
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
        client.config("weir-reset-offsets")?,
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

#[cfg(test)]
mod tests {
    use weir_client::admin::{GroupType, MemberDescription};

    use super::*;

    fn member(
        id: &str,
        epoch: Option<i32>,
        target: Option<Vec<(String, i32)>>,
    ) -> MemberDescription {
        MemberDescription {
            member_id: id.into(),
            group_instance_id: None,
            client_id: format!("client-{id}"),
            client_host: "/127.0.0.1".into(),
            subscription: vec!["orders".into()],
            assignment: vec![("orders".into(), 2), ("orders".into(), 0)],
            member_epoch: epoch,
            target_assignment: target,
        }
    }

    #[test]
    fn a_consumer_group_shows_its_epochs_and_each_members_target() {
        let desc = GroupDescription {
            group_id: "g".into(),
            group_type: GroupType::Consumer,
            state: "Reconciling".into(),
            protocol_type: "consumer".into(),
            protocol: "uniform".into(),
            group_epoch: Some(7),
            assignment_epoch: Some(7),
            members: vec![member("m1", Some(6), Some(vec![("orders".into(), 0)]))],
        };
        let text = describe_text(&desc, &[]);
        assert!(
            text.starts_with("Group: g\tType: consumer\tState: Reconciling\tAssignor: uniform\tGroup epoch: 7\tAssignment epoch: 7\tMembers: 1\n"),
            "{text}"
        );
        assert!(
            text.contains("m1\t6\tclient-m1\t/127.0.0.1\torders(0,2)\torders(0)\n"),
            "{text}"
        );
    }

    #[test]
    fn a_classic_group_shows_its_protocol_and_no_epochs() {
        let desc = GroupDescription {
            group_id: "g".into(),
            group_type: GroupType::Classic,
            state: "Stable".into(),
            protocol_type: "consumer".into(),
            protocol: "range".into(),
            group_epoch: None,
            assignment_epoch: None,
            members: vec![member("m1", None, None)],
        };
        let lag = [PartitionLag {
            topic: "orders".into(),
            partition: 0,
            committed: Some(5),
            log_end: 1_005,
            lag: Some(1_000),
            member_id: Some("m1".into()),
        }];
        let text = describe_text(&desc, &lag);
        assert!(
            text.contains("\tType: classic\tState: Stable\tProtocol: consumer/range\t"),
            "{text}"
        );
        assert!(
            text.contains("m1\t-\tclient-m1\t/127.0.0.1\torders(0,2)\t-\n"),
            "{text}"
        );
        assert!(text.contains("orders\t0\t5\t1005\t1000\tm1\n"), "{text}");
        assert!(text.ends_with("Total lag: 1,000\n"), "{text}");
    }
}
