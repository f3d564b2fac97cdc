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
