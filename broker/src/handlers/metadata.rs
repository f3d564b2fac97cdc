//! Metadata, DescribeCluster and FindCoordinator: where things are, as this
//! broker's metadata image says. Fenced brokers are left out, as in KRaft:
//! clients should not be sent to a broker the controller considers gone.

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

use weir_quorum::MetadataImage;
use weir_quorum::image::TopicImage;
use weir_quorum::rpc::{ControllerError, NewTopic};

use weir_client::acl::{CLUSTER_NAME, Operation, ResourceType};

use super::str_bytes;
use super::topics::refusal_of_controller;
use crate::authorizer::Access;
use crate::broker::BrokerState;
use crate::cluster::{
    CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC, is_internal_topic, validate_topic_name,
};

pub async fn metadata(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let mut response = metadata_unauthorized_ops(state, access, &req, version, listener).await;
    // Asked only by versions that have the fields (8+, cluster's 8–10).
    if req.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    if req.include_topic_authorized_operations {
        for t in response.topics.iter_mut().filter(|t| t.error_code == 0) {
            if let Some(name) = &t.name {
                t.topic_authorized_operations =
                    access.authorized_operations(ResourceType::Topic, name);
            }
        }
    }
    response
}

/// Metadata for what the principal may describe: a listing leaves out the
/// other topics, a topic asked for by name or id is answered
/// TOPIC_AUTHORIZATION_FAILED, and auto-creation needs Create on the
/// cluster or the topic.
async fn metadata_unauthorized_ops(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: &MetadataRequest,
    version: i16,
    listener: &str,
) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    let image = state.cluster.image();
    response.brokers = live_brokers(&image, listener)
        .map(|(id, host, port, rack)| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = port;
            b.rack = rack.map(str_bytes);
            b
        })
        .collect();
    response.cluster_id = Some(str_bytes(state.cluster.cluster_id()));
    response.controller_id = BrokerId(state.cluster.controller_id());

    // v0 asks for all topics with an empty list; later versions with null.
    let requested = match &req.topics {
        Some(topics) if !(version == 0 && topics.is_empty()) => topics,
        _ => {
            let mut topics: Vec<_> = image
                .topics()
                .filter(|t| {
                    access.quietly_allows(Operation::Describe, ResourceType::Topic, &t.name)
                })
                .collect();
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            response.topics = topics.into_iter().map(topic_entry).collect();
            return response;
        }
    };
    // Kafka creates topics on Metadata only when both the client and the broker allow it.
    let auto_create =
        state.config.auto_create_topics() && (version < 4 || req.allow_auto_topic_creation);
    for wanted in requested {
        let refused = |name: Option<String>| {
            error_entry(
                name,
                wanted.topic_id,
                ResponseError::TopicAuthorizationFailed,
            )
        };
        let entry = match (&wanted.name, wanted.topic_id.is_nil()) {
            (Some(name), _) if !access.topic(Operation::Describe, name) => {
                refused(Some(name.to_string()))
            }
            (Some(name), _) => match image.topic_by_name(name) {
                Some(topic) => topic_entry(topic),
                None if auto_create && !name.starts_with("__") => {
                    if access.cluster(Operation::Create) || access.topic(Operation::Create, name) {
                        auto_create_topic(state, name).await
                    } else {
                        refused(Some(name.to_string()))
                    }
                }
                None => error_entry(
                    Some(name.to_string()),
                    wanted.topic_id,
                    ResponseError::UnknownTopicOrPartition,
                ),
            },
            (None, false) => match image.topic(&wanted.topic_id) {
                Some(topic) if !access.topic(Operation::Describe, &topic.name) => refused(None),
                Some(topic) => topic_entry(topic),
                None => error_entry(None, wanted.topic_id, ResponseError::UnknownTopicId),
            },
            (None, true) => error_entry(None, wanted.topic_id, ResponseError::InvalidRequest),
        };
        response.topics.push(entry);
    }
    response
}

/// Unfenced brokers with their first endpoint: (id, host, port, rack).
/// Unfenced brokers with their endpoint on `listener` (Kafka leaves out
/// a broker that has none).
fn live_brokers<'a>(
    image: &'a MetadataImage,
    listener: &'a str,
) -> impl Iterator<Item = (i32, String, i32, Option<String>)> + 'a {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced)
        .filter_map(move |b| {
            let e = b.endpoints.iter().find(|e| e.listener == listener)?;
            Some((b.node_id, e.host.clone(), e.port as i32, b.rack.clone()))
        })
}

async fn auto_create_topic(state: &BrokerState, name: &str) -> MetadataResponseTopic {
    let topic = NewTopic {
        name: name.to_string(),
        partitions: state.config.num_partitions(),
        replication_factor: state.config.default_replication_factor(),
        assignments: None,
        configs: BTreeMap::new(),
    };
    let result = match validate_topic_name(name) {
        Err(_) => Err(ResponseError::InvalidTopicException),
        Ok(()) => match state.cluster.create_topics(vec![topic], false).await.pop() {
            Some(Ok(())) => Ok(()),
            Some(Err(ControllerError::TopicExists(_))) => Ok(()),
            Some(Err(e)) => Err(refusal_of_controller(&e).0),
            None => Err(ResponseError::UnknownServerError),
        },
    };
    let image = state.cluster.image();
    match (result, image.topic_by_name(name)) {
        (Ok(()), Some(topic)) => {
            info!(topic = name, "auto-created topic");
            topic_entry(topic)
        }
        (Ok(()), None) => error_entry(
            Some(name.to_string()),
            uuid::Uuid::nil(),
            ResponseError::LeaderNotAvailable,
        ),
        (Err(e), _) => error_entry(Some(name.to_string()), uuid::Uuid::nil(), e),
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

fn topic_entry(topic: &TopicImage) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(str_bytes(topic.name.clone())));
    entry.topic_id = topic.id;
    entry.is_internal = is_internal_topic(&topic.name);
    entry.partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, r)| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = index as i32;
            p.leader_id = BrokerId(r.leader);
            p.leader_epoch = r.leader_epoch;
            p.replica_nodes = r.replicas.iter().copied().map(BrokerId).collect();
            p.isr_nodes = r.isr.iter().copied().map(BrokerId).collect();
            if r.leader < 0 {
                p.error_code = ResponseError::LeaderNotAvailable.code();
            }
            p
        })
        .collect();
    entry
}

pub fn describe_cluster(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: DescribeClusterRequest,
    listener: &str,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    if req.include_cluster_authorized_operations {
        response.cluster_authorized_operations =
            access.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    response.cluster_id = str_bytes(state.cluster.cluster_id());
    response.controller_id = BrokerId(state.cluster.controller_id());
    let image = state.cluster.image();
    response.brokers = live_brokers(&image, listener)
        .map(|(id, host, port, rack)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = BrokerId(id);
            b.host = str_bytes(host);
            b.port = port;
            b.rack = rack.map(str_bytes);
            b
        })
        .collect();
    response
}

/// Key types: 0 = consumer group, 1 = transaction. Transactions are not
/// served yet, so their coordinator lookups say so rather than pointing
/// clients at APIs we would refuse. A group's coordinator is the leader of
/// the `__consumer_offsets` partition its id hashes to (`shards.rs`).
pub async fn find_coordinator(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: FindCoordinatorRequest,
    version: i16,
    listener: &str,
) -> FindCoordinatorResponse {
    let (topic_ready, topic) = match req.key_type {
        0 => (ensure_offsets_topic(state).await, CONSUMER_OFFSETS_TOPIC),
        1 => (
            ensure_transaction_topic(state).await,
            TRANSACTION_STATE_TOPIC,
        ),
        _ => (Err(ResponseError::InvalidRequest), CONSUMER_OFFSETS_TOPIC),
    };
    // Finding a coordinator needs Describe on the group or transactional id.
    let allowed = |key: &str| match req.key_type {
        1 if !access.transactional_id(Operation::Describe, key) => {
            Err(ResponseError::TransactionalIdAuthorizationFailed)
        }
        0 if !access.group(Operation::Describe, key) => {
            Err(ResponseError::GroupAuthorizationFailed)
        }
        _ => Ok(()),
    };
    let locate = |key: &str| {
        allowed(key)?;
        topic_ready.and_then(|()| leader_of(state, topic, key, listener))
    };
    let fill = |key: kafka_protocol::protocol::StrBytes| {
        let mut c = Coordinator::default();
        match locate(&key) {
            Err(e) => {
                c.error_code = e.code();
                c.node_id = BrokerId(-1);
                c.port = -1;
            }
            Ok((id, host, port)) => {
                c.node_id = BrokerId(id);
                c.host = str_bytes(host);
                c.port = port;
            }
        }
        c.key = key;
        c
    };
    let mut response = FindCoordinatorResponse::default();
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

/// `__consumer_offsets` is created on first need (as Kafka does) with
/// `offsets.topic.num.partitions` partitions, replicated to as many brokers
/// as `offsets.topic.replication.factor` asks and the cluster has.
pub async fn ensure_offsets_topic(state: &BrokerState) -> Result<(), ResponseError> {
    ensure_internal_topic(
        state,
        CONSUMER_OFFSETS_TOPIC,
        state.config.offsets_topic_num_partitions(),
        state.config.offsets_topic_replication_factor(),
    )
    .await
}

/// `__transaction_state`, likewise: `transaction.state.log.num.partitions`
/// partitions, `transaction.state.log.replication.factor` replicas.
pub async fn ensure_transaction_topic(state: &BrokerState) -> Result<(), ResponseError> {
    ensure_internal_topic(
        state,
        TRANSACTION_STATE_TOPIC,
        state.config.transaction_state_num_partitions(),
        state.config.transaction_state_replication_factor(),
    )
    .await
}

async fn ensure_internal_topic(
    state: &BrokerState,
    name: &str,
    partitions: i32,
    replication_factor: i16,
) -> Result<(), ResponseError> {
    let image = state.cluster.image();
    if image.topic_by_name(name).is_some() {
        return Ok(());
    }
    let live = image.live_brokers().len().max(1);
    let rf = replication_factor.min(live as i16);
    let topic = NewTopic {
        name: name.to_string(),
        partitions,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            ("segment.bytes".to_string(), "104857600".to_string()),
        ]),
    };
    match state.cluster.create_topics(vec![topic], false).await.pop() {
        Some(Ok(())) | Some(Err(ControllerError::TopicExists(_))) => {
            info!(partitions, replication_factor = rf, "created {name}");
            Ok(())
        }
        _ => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// The live leader of the partition of internal `topic` that coordinates `key`.
fn leader_of(
    state: &BrokerState,
    topic: &str,
    key: &str,
    listener: &str,
) -> Result<(i32, String, i32), ResponseError> {
    let image = state.cluster.image();
    let leader = image
        .topic_by_name(topic)
        .and_then(|t| {
            let index = crate::shards::partition_for(key, t.partitions.len() as i32);
            t.partitions.get(index as usize)
        })
        .map(|p| p.leader)
        .ok_or(ResponseError::CoordinatorNotAvailable)?;
    live_brokers(&image, listener)
        .find(|(id, ..)| *id == leader)
        .map(|(id, host, port, _)| (id, host, port))
        .ok_or(ResponseError::CoordinatorNotAvailable)
}
