//! What group requests need from the authorizer, as Kafka's KafkaApis
//! checks them: an operation on the group (Read to be a member or commit,
//! Describe to look, Delete to delete), Write on the transactional id of a
//! transactional commit, and per topic Read to commit or delete offsets
//! and Describe to fetch them. Topics the principal may not touch are taken
//! out of the request and answered TOPIC_AUTHORIZATION_FAILED beside what
//! the coordinator answers for the rest.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use weir_client::acl::{Operation, ResourceType};

use crate::authorizer::Access;

/// The operation a group request needs on its group.
fn group_operation(request: &RequestKind) -> Option<Operation> {
    Some(match request {
        RequestKind::JoinGroup(_)
        | RequestKind::SyncGroup(_)
        | RequestKind::Heartbeat(_)
        | RequestKind::LeaveGroup(_)
        | RequestKind::OffsetCommit(_)
        | RequestKind::TxnOffsetCommit(_)
        | RequestKind::ConsumerGroupHeartbeat(_) => Operation::Read,
        RequestKind::OffsetFetch(_)
        | RequestKind::DescribeGroups(_)
        | RequestKind::ConsumerGroupDescribe(_) => Operation::Describe,
        RequestKind::DeleteGroups(_) | RequestKind::OffsetDelete(_) => Operation::Delete,
        _ => return None,
    })
}

/// Why a request about `group_id` is refused as a whole, if it is.
pub fn refused(access: &Access, group_id: &str, request: &RequestKind) -> Option<ResponseError> {
    if let RequestKind::TxnOffsetCommit(r) = request
        && !access.transactional_id(Operation::Write, &r.transactional_id)
    {
        return Some(ResponseError::TransactionalIdAuthorizationFailed);
    }
    if let Some(op) = group_operation(request)
        && !access.group(op, group_id)
    {
        return Some(ResponseError::GroupAuthorizationFailed);
    }
    // A consumer group member must be able to see what it subscribes to.
    if let RequestKind::ConsumerGroupHeartbeat(r) = request
        && r.subscribed_topic_names
            .iter()
            .flatten()
            .any(|t| !access.topic(Operation::Describe, t))
    {
        return Some(ResponseError::TopicAuthorizationFailed);
    }
    None
}

/// Topics taken out of a request, with the partitions it named.
#[derive(Default)]
pub struct DeniedTopics(Vec<(TopicName, Vec<i32>)>);

/// Removes the topics the principal may not touch from a group request.
pub fn without_denied_topics(
    access: &Access,
    mut request: RequestKind,
) -> (RequestKind, DeniedTopics) {
    let mut denied = DeniedTopics::default();
    let mut keep = |name: &TopicName, op: Operation, partitions: Vec<i32>| {
        let allowed = access.topic(op, name);
        if !allowed {
            denied.0.push((name.clone(), partitions));
        }
        allowed
    };
    match &mut request {
        RequestKind::OffsetCommit(r) => r.topics.retain(|t| {
            keep(
                &t.name,
                Operation::Read,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        }),
        RequestKind::TxnOffsetCommit(r) => r.topics.retain(|t| {
            keep(
                &t.name,
                Operation::Read,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        }),
        RequestKind::OffsetDelete(r) => r.topics.retain(|t| {
            keep(
                &t.name,
                Operation::Read,
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        }),
        RequestKind::OffsetFetch(r) => {
            if let Some(topics) = &mut r.topics {
                topics.retain(|t| keep(&t.name, Operation::Describe, t.partition_indexes.clone()));
            }
            for g in &mut r.groups {
                if let Some(topics) = &mut g.topics {
                    topics.retain(|t| {
                        keep(&t.name, Operation::Describe, t.partition_indexes.clone())
                    });
                }
            }
        }
        _ => {}
    }
    (request, denied)
}

/// Adds the denied topics to the coordinator's answer, and leaves out of
/// an all-topics offset fetch the topics the principal may not describe.
pub fn with_denied_topics(
    access: &Access,
    response: ResponseKind,
    denied: DeniedTopics,
) -> ResponseKind {
    let code = ResponseError::TopicAuthorizationFailed.code();
    let describable =
        |name: &TopicName| access.quietly_allows(Operation::Describe, ResourceType::Topic, name);
    match response {
        ResponseKind::OffsetCommit(mut r) => {
            for (name, partitions) in denied.0 {
                r.topics.push(
                    kafka_protocol::messages::offset_commit_response::OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    kafka_protocol::messages::offset_commit_response::OffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        ),
                );
            }
            ResponseKind::OffsetCommit(r)
        }
        ResponseKind::TxnOffsetCommit(mut r) => {
            for (name, partitions) in denied.0 {
                r.topics.push(
                    kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    kafka_protocol::messages::txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        ),
                );
            }
            ResponseKind::TxnOffsetCommit(r)
        }
        ResponseKind::OffsetDelete(mut r) => {
            for (name, partitions) in denied.0 {
                r.topics.push(
                    OffsetDeleteResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code)
                                })
                                .collect(),
                        ),
                );
            }
            ResponseKind::OffsetDelete(r)
        }
        ResponseKind::OffsetFetch(mut r) => {
            // Whichever shape the request had, the answer has the same.
            if r.groups.is_empty() {
                r.topics.retain(|t| describable(&t.name));
                for (name, partitions) in denied.0 {
                    r.topics.push(
                        OffsetFetchResponseTopic::default()
                            .with_name(name)
                            .with_partitions(
                                partitions
                                    .into_iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(-1)
                                            .with_committed_leader_epoch(-1)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            ),
                    );
                }
            } else {
                for g in &mut r.groups {
                    g.topics.retain(|t| describable(&t.name));
                }
                if let Some(g) = r.groups.first_mut() {
                    for (name, partitions) in denied.0 {
                        g.topics.push(
                            OffsetFetchResponseTopics::default()
                                .with_name(name)
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|p| {
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_committed_offset(-1)
                                                .with_committed_leader_epoch(-1)
                                                .with_error_code(code)
                                        })
                                        .collect(),
                                ),
                        );
                    }
                }
            }
            ResponseKind::OffsetFetch(r)
        }
        other => other,
    }
}
