//! CreateTopics, DeleteTopics and CreatePartitions, with Kafka's checks and
//! error codes. The checks are pure (`check_new_topic`), so validate-only
//! requests and real ones take the same path.

use weir_client::acl::{Operation, ResourceType};

use crate::authorizer::Access;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use tracing::info;

use super::str_bytes;
use weir_quorum::rpc::ControllerError;

use crate::broker::BrokerState;
use crate::metadata::validate_topic_name;
use crate::topic_config::{effective_topic_configs, validate_topic_config};

/// More partitions than this in one topic is almost surely a typo, and each
/// one costs open files: refuse rather than exhaust the machine.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// A Kafka error code with its message.
/// Kafka's message for a refused topic.
pub(crate) const AUTHORIZATION_FAILED: &str = "Authorization failed.";

pub(crate) type Refusal = (ResponseError, String);

/// What a valid CreateTopics entry asks for.
#[derive(Debug, PartialEq)]
pub struct NewTopic {
    pub partitions: i32,
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
}

/// Checks one CreateTopics entry against Kafka's rules for this broker.
pub fn check_new_topic(
    topic: &CreatableTopic,
    default_partitions: i32,
    default_rf: i16,
    broker_ids: &[i32],
) -> Result<NewTopic, Refusal> {
    let name = topic.name.as_str();
    validate_topic_name(name).map_err(|m| (ResponseError::InvalidTopicException, m))?;
    let (partitions, rf) = if topic.assignments.is_empty() {
        let partitions = if topic.num_partitions == -1 {
            default_partitions
        } else {
            topic.num_partitions
        };
        let rf = if topic.replication_factor == -1 {
            default_rf
        } else {
            topic.replication_factor
        };
        (partitions, rf)
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err((
                ResponseError::InvalidRequest,
                "both a replica assignment and a partition count or replication factor were given"
                    .into(),
            ));
        }
        let rf = topic.assignments[0].broker_ids.len() as i16;
        for a in &topic.assignments {
            if a.broker_ids.len() as i16 != rf || a.broker_ids.is_empty() {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    "every partition needs the same, non-zero number of replicas".into(),
                ));
            }
            if let Some(b) = a.broker_ids.iter().find(|b| !broker_ids.contains(&b.0)) {
                return Err((
                    ResponseError::InvalidReplicaAssignment,
                    format!("broker {} in the assignment does not exist", b.0),
                ));
            }
        }
        let mut indexes: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        indexes.sort();
        if indexes.iter().enumerate().any(|(i, p)| *p != i as i32) {
            return Err((
                ResponseError::InvalidReplicaAssignment,
                "partitions in the assignment must be numbered 0..n".into(),
            ));
        }
        (topic.assignments.len() as i32, rf)
    };
    if partitions <= 0 {
        return Err((
            ResponseError::InvalidPartitions,
            "Number of partitions must be larger than 0.".into(),
        ));
    }
    if partitions > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "Number of partitions {partitions} is above this broker's limit of {MAX_PARTITIONS_PER_TOPIC}."
            ),
        ));
    }
    if rf <= 0 {
        return Err((
            ResponseError::InvalidReplicationFactor,
            "Replication factor must be larger than 0.".into(),
        ));
    }
    if rf as usize > broker_ids.len() {
        return Err((
            ResponseError::InvalidReplicationFactor,
            format!(
                "Replication factor: {rf} larger than available brokers: {}.",
                broker_ids.len()
            ),
        ));
    }
    let mut configs = BTreeMap::new();
    for c in &topic.configs {
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        validate_topic_config(c.name.as_str(), &value)
            .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
        configs.insert(c.name.to_string(), value);
    }
    Ok(NewTopic {
        partitions,
        replication_factor: rf,
        configs,
    })
}

/// The Kafka error code and message for a change the controller refused.
pub fn refusal_of_controller(error: &ControllerError) -> Refusal {
    let code = match error {
        ControllerError::TopicExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ControllerError::UnknownBroker(_) | ControllerError::Unavailable(_) => {
            ResponseError::NotController
        }
        ControllerError::NotController { .. } => ResponseError::NotController,
        ControllerError::Timeout(_) => ResponseError::RequestTimedOut,
        ControllerError::DuplicateResource(_) => ResponseError::DuplicateResource,
        ControllerError::ResourceNotFound(_) => ResponseError::ResourceNotFound,
        ControllerError::UnacceptableCredential(_) => ResponseError::UnacceptableCredential,
        _ => ResponseError::UnknownServerError,
    };
    let message = match error {
        ControllerError::TopicExists(name) => format!("Topic '{name}' already exists."),
        other => other.to_string(),
    };
    (code, message)
}

pub async fn create_topics(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.to_string()))
        .map(|t| t.name.to_string())
        .collect();
    // Create on the cluster allows every topic; else Create on each.
    let cluster_create = access.quietly_allows(
        Operation::Create,
        ResourceType::Cluster,
        weir_client::acl::CLUSTER_NAME,
    );
    for topic in req.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        let outcome = if !cluster_create && !access.topic(Operation::Create, &topic.name) {
            Err((
                ResponseError::TopicAuthorizationFailed,
                AUTHORIZATION_FAILED.into(),
            ))
        } else if duplicates.contains(topic.name.as_str()) {
            Err((
                ResponseError::InvalidRequest,
                format!(
                    "topic '{}' appears more than once in the request",
                    topic.name.as_str()
                ),
            ))
        } else {
            create_one(state, &topic, req.validate_only).await
        };
        match outcome {
            Ok((id, new)) => {
                result.topic_id = id;
                result.num_partitions = new.partitions;
                result.replication_factor = new.replication_factor;
                if version >= 5 && !access.topic(Operation::DescribeConfigs, &topic.name) {
                    result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                } else if version >= 5 {
                    result.configs = Some(
                        effective_topic_configs(&new.configs, &state.settings())
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = str_bytes(e.name);
                                c.value = Some(str_bytes(e.value));
                                c.config_source = e.source.kafka_code();
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(str_bytes(message));
            }
        }
        response.topics.push(result);
    }
    response
}

async fn create_one(
    state: &Arc<BrokerState>,
    topic: &CreatableTopic,
    validate_only: bool,
) -> Result<(uuid::Uuid, NewTopic), Refusal> {
    let image = state.cluster.image();
    let brokers: Vec<i32> = image.live_brokers().into_iter().collect();
    let new = check_new_topic(
        topic,
        state.config.num_partitions(),
        state.config.default_replication_factor(),
        &brokers,
    )?;
    let name = topic.name.to_string();
    let assignments = (!topic.assignments.is_empty()).then(|| {
        let mut a: Vec<_> = topic.assignments.iter().collect();
        a.sort_by_key(|a| a.partition_index);
        a.into_iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect()
    });
    let request = weir_quorum::rpc::NewTopic {
        name: name.clone(),
        partitions: new.partitions,
        replication_factor: new.replication_factor,
        assignments,
        configs: new.configs.clone(),
    };
    let result = state
        .cluster
        .create_topics(vec![request], validate_only)
        .await
        .pop()
        .unwrap_or(Err(ControllerError::Internal("no answer".into())));
    result.map_err(|e| refusal_of_controller(&e))?;
    if validate_only {
        return Ok((uuid::Uuid::nil(), new));
    }
    state.wait_until_serving(&name).await;
    let id = state.cluster.topic(&name).map(|t| t.id).unwrap_or_default();
    info!(topic = %name, partitions = new.partitions, replication_factor = new.replication_factor, "created topic");
    Ok((id, new))
}

pub async fn delete_topics(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        result.name = name.clone().map(|n| TopicName(str_bytes(n)));
        result.topic_id = id;
        let topic = match &name {
            Some(n) => state.cluster.topic(n),
            None => state.cluster.topic_by_id(id),
        };
        let allowed = match (&name, &topic) {
            (Some(n), _) => access.topic(Operation::Delete, n),
            (None, Some(t)) => access.topic(Operation::Delete, &t.name),
            (None, None) => true,
        };
        let outcome = match topic {
            _ if !allowed => Err((
                ResponseError::TopicAuthorizationFailed,
                AUTHORIZATION_FAILED.into(),
            )),
            None if name.is_none() => Err((
                ResponseError::UnknownTopicId,
                format!("no topic has id {id}"),
            )),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                "This server does not host this topic.".to_string(),
            )),
            Some(_) if !state.config.delete_topic_enabled() => Err((
                ResponseError::TopicDeletionDisabled,
                "delete.topic.enable is false on this broker".to_string(),
            )),
            Some(t) if t.internal => Err((
                ResponseError::InvalidTopicException,
                format!("internal topic '{}' cannot be deleted", t.name),
            )),
            Some(t) => {
                result.name = Some(TopicName(str_bytes(t.name.clone())));
                result.topic_id = t.id;
                match state
                    .cluster
                    .delete_topics(vec![t.name.clone()])
                    .await
                    .pop()
                {
                    Some(Ok(())) => {
                        info!(topic = %t.name, "deleted topic");
                        Ok(())
                    }
                    Some(Err(e)) => Err(refusal_of_controller(&e)),
                    None => Err((ResponseError::UnknownServerError, "no answer".into())),
                }
            }
        };
        if let Err((error, message)) = outcome {
            result.error_code = error.code();
            result.error_message = Some(str_bytes(message));
        }
        response.responses.push(result);
    }
    response
}

pub async fn create_partitions(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    for topic in req.topics {
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        let name = topic.name.to_string();
        let live = state.cluster.image().live_brokers();
        let outcome = match state.cluster.topic(&name) {
            _ if !access.topic(Operation::Alter, &name) => Err((
                ResponseError::TopicAuthorizationFailed,
                AUTHORIZATION_FAILED.into(),
            )),
            None => Err((
                ResponseError::UnknownTopicOrPartition,
                format!("topic '{name}' does not exist"),
            )),
            Some(t) if topic.count < t.partitions => Err((
                ResponseError::InvalidPartitions,
                format!(
                    "Topic currently has {} partitions, which is higher than the requested {}.",
                    t.partitions, topic.count
                ),
            )),
            Some(t) if topic.count == t.partitions => Err((
                ResponseError::InvalidPartitions,
                format!("Topic already has {} partitions.", t.partitions),
            )),
            Some(_) if topic.count > MAX_PARTITIONS_PER_TOPIC => Err((
                ResponseError::InvalidPartitions,
                format!(
                    "Number of partitions {} is above this broker's limit of {MAX_PARTITIONS_PER_TOPIC}.",
                    topic.count
                ),
            )),
            Some(t)
                if topic.assignments.as_ref().is_some_and(|a| {
                    a.len() as i32 != topic.count - t.partitions
                        || a.iter().any(|x| {
                            x.broker_ids.len() as i16 != t.replication_factor
                                || x.broker_ids.iter().any(|b| !live.contains(&b.0))
                        })
                }) =>
            {
                Err((
                    ResponseError::InvalidReplicaAssignment,
                    "the assignment must name existing brokers for each new partition".into(),
                ))
            }
            Some(_) => {
                let assignments = topic.assignments.as_ref().map(|a| {
                    a.iter()
                        .map(|x| x.broker_ids.iter().map(|b| b.0).collect())
                        .collect()
                });
                state
                    .cluster
                    .create_partitions(name, topic.count, assignments, req.validate_only)
                    .await
                    .map_err(|e| refusal_of_controller(&e))
            }
        };
        if let Err((error, message)) = outcome {
            result.error_code = error.code();
            result.error_message = Some(str_bytes(message));
        }
        response.results.push(result);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;

    fn topic(name: &str, partitions: i32, rf: i16) -> CreatableTopic {
        let mut t = CreatableTopic::default();
        t.name = TopicName(str_bytes(name));
        t.num_partitions = partitions;
        t.replication_factor = rf;
        t
    }

    #[test]
    fn defaults_fill_in_minus_one() {
        let new = check_new_topic(&topic("a", -1, -1), 3, 1, &[1]).unwrap();
        assert_eq!((new.partitions, new.replication_factor), (3, 1));
    }

    #[test]
    fn bad_counts_get_kafka_codes() {
        let code = |t: CreatableTopic| check_new_topic(&t, 1, 1, &[1]).unwrap_err().0;
        assert_eq!(code(topic("a", 0, 1)), ResponseError::InvalidPartitions);
        assert_eq!(
            code(topic("a", MAX_PARTITIONS_PER_TOPIC + 1, 1)),
            ResponseError::InvalidPartitions
        );
        assert_eq!(
            code(topic("a", 1, 3)),
            ResponseError::InvalidReplicationFactor
        );
        assert_eq!(
            code(topic("a", 1, 0)),
            ResponseError::InvalidReplicationFactor
        );
        assert_eq!(
            code(topic("bad name", 1, 1)),
            ResponseError::InvalidTopicException
        );
    }

    #[test]
    fn configs_are_validated() {
        let mut t = topic("a", 1, 1);
        let mut c = CreatableTopicConfig::default();
        c.name = str_bytes("retention.ms");
        c.value = Some(str_bytes("forever"));
        t.configs.push(c);
        let (code, message) = check_new_topic(&t, 1, 1, &[1]).unwrap_err();
        assert_eq!(code, ResponseError::InvalidConfig);
        assert!(message.contains("retention.ms"), "{message}");
    }
}
