//! Metadata, DescribeCluster and FindCoordinator: where things are. On a
//! single broker this node leads every partition and coordinates every group.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, TopicName,
};
use tracing::info;

use super::str_bytes;
use crate::broker::{BrokerError, BrokerState};
use crate::metadata::{MetadataError, TopicMeta};

pub async fn metadata(
    state: &Arc<BrokerState>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let node = BrokerId(state.config.node_id);
    let mut broker = MetadataResponseBroker::default();
    broker.node_id = node;
    broker.host = str_bytes(state.advertised.0.clone());
    broker.port = state.advertised.1;
    broker.rack = state.config.rack.clone().map(str_bytes);
    response.brokers = vec![broker];
    response.cluster_id = Some(str_bytes(state.metadata.cluster_id()));
    response.controller_id = node;

    // v0 asks for all topics with an empty list; later versions with null.
    let requested = match req.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => topics,
        _ => {
            response.topics = state
                .metadata
                .topics()
                .iter()
                .map(|t| topic_entry(state, t))
                .collect();
            return response;
        }
    };
    // Kafka creates topics on Metadata only when both the client and the broker allow it.
    let auto_create =
        state.config.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
    for wanted in requested {
        let entry = match (&wanted.name, wanted.topic_id.is_nil()) {
            (Some(name), _) => match state.metadata.topic(name) {
                Some(topic) => topic_entry(state, &topic),
                None if auto_create && !name.starts_with("__") => auto_create_topic(state, name),
                None => error_entry(
                    Some(name.to_string()),
                    wanted.topic_id,
                    ResponseError::UnknownTopicOrPartition,
                ),
            },
            (None, false) => match state.metadata.topic_by_id(wanted.topic_id) {
                Some(topic) => topic_entry(state, &topic),
                None => error_entry(None, wanted.topic_id, ResponseError::UnknownTopicId),
            },
            (None, true) => error_entry(None, wanted.topic_id, ResponseError::InvalidRequest),
        };
        response.topics.push(entry);
    }
    response
}

fn auto_create_topic(state: &BrokerState, name: &str) -> MetadataResponseTopic {
    let partitions = state.config.num_partitions();
    let rf = state.config.default_replication_factor();
    match state.create_topic(name, partitions, rf, BTreeMap::new(), false) {
        Ok(topic) => {
            info!(topic = name, partitions, "auto-created topic");
            topic_entry(state, &topic)
        }
        // Another request created it first.
        Err(BrokerError::Metadata(MetadataError::TopicExists(_))) => {
            match state.metadata.topic(name) {
                Some(topic) => topic_entry(state, &topic),
                None => error_entry(
                    Some(name.to_string()),
                    uuid::Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ),
            }
        }
        Err(BrokerError::Metadata(MetadataError::InvalidTopic(_))) => error_entry(
            Some(name.to_string()),
            uuid::Uuid::nil(),
            ResponseError::InvalidTopicException,
        ),
        Err(_) => error_entry(
            Some(name.to_string()),
            uuid::Uuid::nil(),
            ResponseError::KafkaStorageError,
        ),
    }
}

fn error_entry(
    name: Option<String>,
    id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.error_code = error.code();
    entry.name = name.map(|n| TopicName(str_bytes(n)));
    entry.topic_id = id;
    entry
}

fn topic_entry(state: &BrokerState, topic: &TopicMeta) -> MetadataResponseTopic {
    let node = BrokerId(state.config.node_id);
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(str_bytes(topic.name.clone())));
    entry.topic_id = topic.id;
    entry.is_internal = topic.internal;
    entry.partitions = (0..topic.partitions)
        .map(|index| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = index;
            p.leader_id = node;
            p.leader_epoch = 0;
            p.replica_nodes = vec![node];
            p.isr_nodes = vec![node];
            p
        })
        .collect();
    entry
}

pub fn describe_cluster(
    state: &Arc<BrokerState>,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = str_bytes(state.metadata.cluster_id());
    response.controller_id = BrokerId(state.config.node_id);
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = BrokerId(state.config.node_id);
    broker.host = str_bytes(state.advertised.0.clone());
    broker.port = state.advertised.1;
    broker.rack = state.config.rack.clone().map(str_bytes);
    response.brokers = vec![broker];
    response
}

/// Key types: 0 = consumer group, 1 = transaction. Transactions are not
/// served yet, so their coordinator lookups say so rather than pointing
/// clients at APIs we would refuse.
pub fn find_coordinator(
    state: &Arc<BrokerState>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let error = match req.key_type {
        0 => None,
        1 => Some(ResponseError::CoordinatorNotAvailable),
        _ => Some(ResponseError::InvalidRequest),
    };
    let mut response = FindCoordinatorResponse::default();
    let fill = |key: kafka_protocol::protocol::StrBytes| {
        let mut c = Coordinator::default();
        c.key = key;
        match error {
            Some(e) => {
                c.error_code = e.code();
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
            None => {
                c.node_id = BrokerId(state.config.node_id);
                c.host = str_bytes(state.advertised.0.clone());
                c.port = state.advertised.1;
            }
        }
        c
    };
    if version >= 4 {
        response.coordinators = req.coordinator_keys.into_iter().map(fill).collect();
    } else {
        let c = fill(req.key);
        response.error_code = c.error_code;
        response.node_id = c.node_id;
        response.host = c.host;
        response.port = c.port;
    }
    response
}
