//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455):
//! forwarded to the active controller, which decides and records moves.
//! The followers need nothing special: a replica newly assigned here opens
//! an empty log and fetches from the leader like any other follower.
//!
//! The conversions between Kafka's messages and the controller's types are
//! pure functions, so the error codes are testable without a cluster.

use weir_client::acl::Operation;

use crate::authorizer::Access;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use weir_quorum::rpc::{ControllerError, OngoingReassignment, PartitionReassignment};

use super::str_bytes;
use super::topics::refusal_of_controller;
use crate::broker::BrokerState;

pub async fn alter_partition_reassignments(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if !access.cluster(Operation::Alter) {
        return AlterPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "Alter on the cluster is needed to reassign partitions",
            )));
    }
    let entries = reassignments_of(&req);
    let results = state
        .cluster
        .alter_partition_reassignments(entries.clone(), req.allow_replication_factor_change)
        .await;
    alter_response(&entries, results, req.allow_replication_factor_change)
}

pub async fn list_partition_reassignments(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !access.cluster(Operation::Describe) {
        return ListPartitionReassignmentsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(str_bytes(
                "Describe on the cluster is needed to list reassignments",
            )));
    }
    let wanted = req.topics.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partition_indexes.iter().map(|p| (t.name.to_string(), *p)))
            .collect()
    });
    let mut response = ListPartitionReassignmentsResponse::default();
    match state.cluster.list_partition_reassignments(wanted).await {
        Ok(ongoing) => response.topics = ongoing_topics(ongoing),
        Err(e) => {
            let (code, message) = refusal(&e);
            response.error_code = code.code();
            response.error_message = Some(str_bytes(message));
        }
    }
    response
}

/// The request's entries, in order: a replica list moves the partition,
/// a null one cancels its move.
pub fn reassignments_of(req: &AlterPartitionReassignmentsRequest) -> Vec<PartitionReassignment> {
    req.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| PartitionReassignment {
                topic: t.name.to_string(),
                partition: p.partition_index,
                target: p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
            })
        })
        .collect()
}

/// One result per entry, grouped by topic in request order.
pub fn alter_response(
    entries: &[PartitionReassignment],
    results: Vec<Result<(), ControllerError>>,
    allow_replication_factor_change: bool,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    // Echoed, as Kafka does (v1+; v0 requests carry the default, true).
    response.allow_replication_factor_change = allow_replication_factor_change;
    for (entry, result) in entries.iter().zip(results) {
        let mut p = ReassignablePartitionResponse::default();
        p.partition_index = entry.partition;
        if let Err(e) = result {
            let (code, message) = refusal(&e);
            p.error_code = code.code();
            p.error_message = Some(str_bytes(message));
        }
        match response
            .responses
            .iter_mut()
            .find(|t| t.name.as_str() == entry.topic)
        {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = ReassignableTopicResponse::default();
                t.name = TopicName(str_bytes(entry.topic.clone()));
                t.partitions.push(p);
                response.responses.push(t);
            }
        }
    }
    response
}

/// Ongoing moves grouped by topic (the controller lists them sorted).
pub fn ongoing_topics(ongoing: Vec<OngoingReassignment>) -> Vec<OngoingTopicReassignment> {
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect();
    let mut topics: Vec<OngoingTopicReassignment> = Vec::new();
    for o in ongoing {
        let mut p = OngoingPartitionReassignment::default();
        p.partition_index = o.partition;
        p.replicas = ids(o.replicas);
        p.adding_replicas = ids(o.adding_replicas);
        p.removing_replicas = ids(o.removing_replicas);
        match topics.last_mut().filter(|t| t.name.as_str() == o.topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OngoingTopicReassignment::default();
                t.name = TopicName(str_bytes(o.topic));
                t.partitions.push(p);
                topics.push(t);
            }
        }
    }
    topics
}

/// Kafka's error code for a refused reassignment entry.
fn refusal(error: &ControllerError) -> (ResponseError, String) {
    match error {
        ControllerError::UnknownPartition { .. } => {
            (ResponseError::UnknownTopicOrPartition, error.to_string())
        }
        ControllerError::NoReassignmentInProgress { .. } => {
            (ResponseError::NoReassignmentInProgress, error.to_string())
        }
        other => refusal_of_controller(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use uuid::Uuid;

    #[test]
    fn entries_keep_their_order_and_errors_get_kafka_codes() {
        let mut req = AlterPartitionReassignmentsRequest::default();
        let mut t = ReassignableTopic::default();
        t.name = TopicName(str_bytes("a"));
        let mut move_it = ReassignablePartition::default();
        move_it.partition_index = 0;
        move_it.replicas = Some(vec![BrokerId(4), BrokerId(2)]);
        let mut cancel = ReassignablePartition::default();
        cancel.partition_index = 1;
        cancel.replicas = None;
        t.partitions = vec![move_it, cancel];
        req.topics.push(t);
        let entries = reassignments_of(&req);
        assert_eq!(entries[0].target, Some(vec![4, 2]));
        assert_eq!((entries[1].partition, &entries[1].target), (1, &None));

        let results = vec![
            Err(ControllerError::UnknownPartition {
                topic_id: Uuid::nil(),
                partition: 0,
            }),
            Err(ControllerError::NoReassignmentInProgress {
                topic: "a".into(),
                partition: 1,
            }),
        ];
        let response = alter_response(&entries, results, true);
        let codes: Vec<i16> = response.responses[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect();
        assert_eq!(
            codes,
            vec![
                ResponseError::UnknownTopicOrPartition.code(),
                ResponseError::NoReassignmentInProgress.code()
            ]
        );
        let bad = alter_response(
            &entries[..1],
            vec![Err(ControllerError::InvalidReplicaAssignment("x".into()))],
            true,
        );
        assert_eq!(
            bad.responses[0].partitions[0].error_code,
            ResponseError::InvalidReplicaAssignment.code()
        );
    }

    #[test]
    fn ongoing_moves_are_grouped_by_topic() {
        let o = |topic: &str, partition| OngoingReassignment {
            topic: topic.into(),
            partition,
            replicas: vec![4, 1],
            adding_replicas: vec![4],
            removing_replicas: vec![1],
        };
        let topics = ongoing_topics(vec![o("a", 0), o("a", 2), o("b", 1)]);
        assert_eq!(topics.len(), 2);
        assert_eq!(topics[0].partitions.len(), 2);
        assert_eq!(topics[1].partitions[0].adding_replicas, vec![BrokerId(4)]);
    }
}
