//! Groups as `kafka-consumer-groups.sh` sees them: listed on every broker
//! (each knows only the groups it coordinates), described through the
//! API of their type — DescribeGroups for classic groups, ConsumerGroupDescribe
//! (KIP-848) for consumer groups — with lag, and deleted.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::Assignment;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetDeleteRequest, TopicName,
};

use super::{Admin, OffsetSpec, decode_assignment, decode_subscription, list_offsets};
use crate::error::{Error, Result, check};
use crate::util::sb;

/// Which protocol a group's members speak (KIP-848's `group.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupType {
    /// JoinGroup/SyncGroup, assignment computed by the group's leader.
    Classic,
    /// ConsumerGroupHeartbeat, assignment computed by the coordinator.
    Consumer,
    /// Weir's task groups (stream apps, Connect workers), see
    /// [`crate::task_group`].
    Task,
    /// A type this client does not know (named as the broker lists it).
    Other,
}

impl GroupType {
    fn from_listed(name: &str) -> GroupType {
        match name.to_ascii_lowercase().as_str() {
            // Brokers before ListGroups v5 know only classic groups.
            "" | "classic" => GroupType::Classic,
            "consumer" => GroupType::Consumer,
            "task" => GroupType::Task,
            _ => GroupType::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupType::Classic => "classic",
            GroupType::Consumer => "consumer",
            GroupType::Task => "task",
            GroupType::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub group_type: GroupType,
    pub protocol_type: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub group_type: GroupType,
    pub state: String,
    pub protocol_type: String,
    /// Classic: the assignment strategy chosen, e.g. `range`. Consumer: the
    /// server-side assignor, e.g. `uniform`.
    pub protocol: String,
    /// Consumer groups only: bumped by every change of members or
    /// subscriptions.
    pub group_epoch: Option<i32>,
    /// Consumer groups only: the group epoch the target assignment was
    /// computed for.
    pub assignment_epoch: Option<i32>,
    pub members: Vec<MemberDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Topics the member subscribed to (consumer protocol only).
    pub subscription: Vec<String>,
    /// What the member owns: decoded for classic `consumer`-protocol
    /// groups, empty for other classic groups.
    pub assignment: Vec<(String, i32)>,
    /// Consumer groups only: the member's epoch.
    pub member_epoch: Option<i32>,
    /// Consumer groups only: what the coordinator means the member to own
    /// once it has reconciled (revoked what it must give up first).
    pub target_assignment: Option<Vec<(String, i32)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_end: i64,
    /// `log_end - committed`, or None without a committed offset.
    pub lag: Option<i64>,
    /// Member the partition is assigned to, if any.
    pub member_id: Option<String>,
}

impl Admin {
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        self.cluster.refresh(Some(&[])).await?;
        let mut out = Vec::new();
        for b in self.cluster.brokers() {
            let resp = self
                .cluster
                .broker(b.node_id)
                .await?
                .send(&ListGroupsRequest::default())
                .await?;
            check(resp.error_code, None, || {
                format!("list groups on broker {}", b.node_id)
            })?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.to_string(),
                group_type: GroupType::from_listed(&g.group_type),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(out)
    }

    /// Describes a group of either type. DescribeGroups first: a broker
    /// answers it for classic groups (and with state `Dead` for unknown
    /// ones), and with GROUP_ID_NOT_FOUND for a consumer group, which
    /// ConsumerGroupDescribe then describes — as Kafka's admin client
    /// falls back between the two.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        match self.describe_classic_group(group).await {
            Err(e) if e.kafka_error() == Some(ResponseError::GroupIdNotFound) => {
                self.describe_consumer_group(group).await
            }
            other => other,
        }
    }

    async fn describe_classic_group(&self, group: &str) -> Result<GroupDescription> {
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        let resp = conn
            .send(&DescribeGroupsRequest::default().with_groups(vec![GroupId(sb(group))]))
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other(format!("no description of group {group:?}")))?;
        check(g.error_code, g.error_message.as_ref(), || {
            format!("describe group {group:?}")
        })?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                subscription: if consumer {
                    decode_subscription(m.member_metadata)
                        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
                        .unwrap_or_default()
                } else {
                    Vec::new()
                },
                assignment: if consumer {
                    decode_assignment(m.member_assignment).unwrap_or_default()
                } else {
                    Vec::new()
                },
                member_epoch: None,
                target_assignment: None,
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id.to_string(),
            group_type: GroupType::Classic,
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            group_epoch: None,
            assignment_epoch: None,
            members,
        })
    }

    /// A KIP-848 consumer group, through ConsumerGroupDescribe (API 69).
    pub async fn describe_consumer_group(&self, group: &str) -> Result<GroupDescription> {
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        let resp = conn
            .send(&ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb(group))]))
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::Other(format!("no description of group {group:?}")))?;
        check(g.error_code, g.error_message.as_ref(), || {
            format!("describe consumer group {group:?}")
        })?;
        let members = g
            .members
            .into_iter()
            .map(|m| MemberDescription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.instance_id.map(|i| i.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                subscription: m
                    .subscribed_topic_names
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                assignment: partitions_of(&m.assignment),
                member_epoch: Some(m.member_epoch),
                target_assignment: Some(partitions_of(&m.target_assignment)),
            })
            .collect();
        Ok(GroupDescription {
            group_id: g.group_id.to_string(),
            group_type: GroupType::Consumer,
            state: g.group_state.to_string(),
            protocol_type: "consumer".to_string(),
            protocol: g.assignor_name.to_string(),
            group_epoch: Some(g.group_epoch),
            assignment_epoch: Some(g.assignment_epoch),
            members,
        })
    }

    /// The group's committed offsets (partitions without one are absent).
    pub async fn committed_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        super::fetch_committed(&conn, group, None).await
    }

    /// Committed offset vs. log end for every partition the group has an
    /// offset for or is assigned.
    pub async fn group_lag(&self, group: &str) -> Result<Vec<PartitionLag>> {
        let committed = self.committed_offsets(group).await?;
        let desc = self.describe_group(group).await?;
        let mut owner: HashMap<(String, i32), String> = HashMap::new();
        for m in &desc.members {
            for tp in &m.assignment {
                owner.insert(tp.clone(), m.member_id.clone());
            }
        }
        let mut parts: Vec<(String, i32)> = committed
            .keys()
            .cloned()
            .chain(owner.keys().cloned())
            .collect();
        parts.sort();
        parts.dedup();
        let ends = list_offsets(&self.cluster, &parts, OffsetSpec::Latest, 0).await?;
        Ok(parts
            .into_iter()
            .map(|tp| {
                let committed = committed.get(&tp).copied();
                let log_end = ends.get(&tp).map(|o| o.offset).unwrap_or(-1);
                PartitionLag {
                    lag: committed.map(|c| (log_end - c).max(0)),
                    member_id: owner.get(&tp).cloned(),
                    committed,
                    log_end,
                    topic: tp.0,
                    partition: tp.1,
                }
            })
            .collect())
    }

    /// Forgets the group's committed offsets of these partitions
    /// (OffsetDelete; refused for partitions a member is subscribed to).
    pub async fn delete_committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                ps.into_iter()
                                    .map(|p| {
                                        OffsetDeleteRequestPartition::default()
                                            .with_partition_index(p)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            );
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        let resp = conn.send(&req).await?;
        check(resp.error_code, None, || {
            format!("delete offsets of group {group:?}")
        })?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    format!(
                        "delete offset of {}-{} for group {group:?}",
                        t.name.as_str(),
                        p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    }

    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let (_, conn) = self.cluster.coordinator(group, 0).await?;
        let resp = conn
            .send(&DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb(group))]))
            .await?;
        for r in &resp.results {
            check(r.error_code, None, || format!("delete group {group:?}"))?;
        }
        Ok(())
    }
}

/// A ConsumerGroupDescribe assignment as sorted (topic, partition) pairs.
fn partitions_of(assignment: &Assignment) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = assignment
        .topic_partitions
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_name.to_string(), *p)))
        .collect();
    out.sort();
    out
}
