//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs. Topic configs
//! are dynamic: a change is validated, stored by the controller and applied
//! to the topic's logs on every broker. Of the broker configs, the topic
//! defaults under their broker names are dynamic (cluster-wide or per
//! broker, as in Kafka); the rest are set with `--config` at start.

use weir_client::acl::Operation;

use crate::authorizer::Access;
use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_response,
    incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::str_bytes;
use super::topics::refusal_of_controller;
use weir_quorum::records::ConfigResource;

use crate::broker::BrokerState;
use crate::config::{BrokerConfigError, validate_broker_setting};
use crate::topic_config::{
    ConfigSource, ConfigType, effective_topic_configs, is_dynamic_broker_key, topic_config_def,
    validate_topic_config,
};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
/// Kafka's ConfigSource codes for values set at run time.
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;

type Refusal = (ResponseError, String);

/// Kafka's ConfigType codes for DescribeConfigs v3+.
fn kafka_config_type(kind: ConfigType) -> i8 {
    match kind {
        ConfigType::Boolean => 1,
        ConfigType::Text | ConfigType::Choice(_) => 2,
        ConfigType::Int { .. } => 3,
        ConfigType::Long { .. } => 5,
        ConfigType::Double { .. } => 6,
        ConfigType::ChoiceList(_) => 7,
    }
}

pub fn describe_configs(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Err(refusal) = config_access(
            access,
            resource.resource_type,
            &resource.resource_name,
            Operation::DescribeConfigs,
        ) {
            (result.error_code, result.error_message) = error_fields(Err(refusal));
            response.results.push(result);
            continue;
        }
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        match resource.resource_type {
            TOPIC => match state.cluster.topic(resource.resource_name.as_str()) {
                None => {
                    result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    result.error_message = Some(str_bytes(format!(
                        "topic '{}' does not exist",
                        resource.resource_name.as_str()
                    )));
                }
                Some(topic) => {
                    for e in effective_topic_configs(&topic.configs, &state.settings()) {
                        if !wanted(e.name) {
                            continue;
                        }
                        let def = topic_config_def(e.name);
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = str_bytes(e.name);
                        c.value = Some(str_bytes(e.value.clone()));
                        c.config_source = e.source.kafka_code();
                        c.config_type = def.map(|d| kafka_config_type(d.kind)).unwrap_or(2);
                        if req.include_synonyms {
                            c.synonyms = topic_synonyms(state, &topic.configs, e.name);
                        }
                        result.configs.push(c);
                    }
                }
            },
            BROKER => {
                let name = resource.resource_name.as_str();
                let image = state.cluster.image();
                let cluster_dynamic = image.cluster_configs().clone();
                let own_dynamic = image
                    .broker_configs(state.config.node_id)
                    .cloned()
                    .unwrap_or_default();
                if !name.is_empty() && name != state.config.node_id.to_string() {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(str_bytes(format!(
                        "broker {name} is not this broker ({})",
                        state.config.node_id
                    )));
                } else {
                    for (key, value, explicit) in state.config.effective_settings() {
                        if !wanted(&key) {
                            continue;
                        }
                        let dynamic = is_dynamic_broker_key(&key);
                        let (value, source) = if let Some(v) = own_dynamic.get(&key) {
                            (v.clone(), DYNAMIC_BROKER_CONFIG)
                        } else if let Some(v) = cluster_dynamic.get(&key) {
                            (v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG)
                        } else if explicit {
                            (value, ConfigSource::StaticBroker.kafka_code())
                        } else {
                            (value, ConfigSource::Default.kafka_code())
                        };
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = str_bytes(key);
                        c.value = Some(str_bytes(value));
                        c.read_only = !dynamic;
                        c.config_source = source;
                        c.config_type = 2;
                        result.configs.push(c);
                    }
                }
            }
            other => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(str_bytes(format!("resource type {other} is not supported")));
            }
        }
        response.results.push(result);
    }
    response
}

/// Whether the principal may `op` (DescribeConfigs, AlterConfigs) on a
/// config resource: on the topic, or on the cluster for a broker's.
fn config_access(
    access: &Access<'_>,
    resource_type: i8,
    name: &str,
    op: Operation,
) -> Result<(), Refusal> {
    match resource_type {
        TOPIC if !access.topic(op, name) => Err((
            ResponseError::TopicAuthorizationFailed,
            super::topics::AUTHORIZATION_FAILED.into(),
        )),
        BROKER | BROKER_LOGGER if !access.cluster(op) => Err((
            ResponseError::ClusterAuthorizationFailed,
            format!("{op} on the cluster is needed for broker configs"),
        )),
        _ => Ok(()),
    }
}

/// Where a topic key's value could come from, most specific first.
fn topic_synonyms(
    state: &BrokerState,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut out = Vec::new();
    let mut push = |n: &str, v: &str, source: ConfigSource| {
        let mut s = DescribeConfigsSynonym::default();
        s.name = str_bytes(n);
        s.value = Some(str_bytes(v));
        s.source = source.kafka_code();
        out.push(s);
    };
    if let Some(v) = overrides.get(name) {
        push(name, v, ConfigSource::Topic);
    }
    if let Some(def) = topic_config_def(name) {
        if let Some(v) = def.broker_key.and_then(|k| state.setting(k)) {
            push(
                def.broker_key.unwrap_or(name),
                &v,
                ConfigSource::StaticBroker,
            );
        }
        push(
            def.broker_key.unwrap_or(name),
            def.default,
            ConfigSource::Default,
        );
    }
    out
}

/// Validates and stores a topic's new full set of overrides.
async fn apply_topic_configs(
    state: &Arc<BrokerState>,
    topic: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> Result<(), Refusal> {
    let Some(current) = state.cluster.topic(topic) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{topic}' does not exist"),
        ));
    };
    for (k, v) in &configs {
        validate_topic_config(k, v).map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    if validate_only {
        return Ok(());
    }
    // The controller stores changes, not whole sets: removed keys are deletions.
    let mut changes: BTreeMap<String, Option<String>> = current
        .configs
        .keys()
        .filter(|k| !configs.contains_key(*k))
        .map(|k| (k.clone(), None))
        .collect();
    for (k, v) in &configs {
        if current.configs.get(k) != Some(v) {
            changes.insert(k.clone(), Some(v.clone()));
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    state
        .cluster
        .alter_topic_configs(topic, changes)
        .await
        .map_err(|e| refusal_of_controller(&e))?;
    info!(topic, configs = ?configs, "topic configs changed");
    Ok(())
}

/// What both alter APIs answer for a resource type that has no configs here.
fn refuse_unknown_resource(resource_type: i8) -> Refusal {
    (
        ResponseError::InvalidRequest,
        format!("resource type {resource_type} is not supported"),
    )
}

/// The broker resource a name stands for: empty is the cluster-wide
/// default, a node id that broker.
fn broker_resource(name: &str) -> Result<ConfigResource, Refusal> {
    if name.is_empty() {
        return Ok(ConfigResource::Cluster);
    }
    name.parse().map(ConfigResource::Broker).map_err(|_| {
        (
            ResponseError::InvalidRequest,
            format!("broker resource name {name:?} is not a node id"),
        )
    })
}

/// The dynamic broker keys a resource has set now.
fn current_broker_configs(
    state: &BrokerState,
    resource: &ConfigResource,
) -> BTreeMap<String, String> {
    let image = state.cluster.image();
    match resource {
        ConfigResource::Cluster => image.cluster_configs().clone(),
        ConfigResource::Broker(id) => image.broker_configs(*id).cloned().unwrap_or_default(),
        ConfigResource::Topic(_) => BTreeMap::new(),
    }
}

/// Validates and stores changes to broker keys (`None` deletes). Only the
/// topic defaults under their broker names change at run time, as in
/// Kafka; the rest are read at start.
async fn apply_broker_configs(
    state: &Arc<BrokerState>,
    resource: ConfigResource,
    changes: BTreeMap<String, Option<String>>,
    validate_only: bool,
) -> Result<(), Refusal> {
    for (key, value) in &changes {
        if !is_dynamic_broker_key(key) {
            let why = match validate_broker_setting(key, "0") {
                Err(BrokerConfigError::UnknownKey(_)) => format!("unknown broker config {key}"),
                _ => format!("{key} cannot be changed at run time; set it with --config at start"),
            };
            return Err((ResponseError::InvalidConfig, why));
        }
        if let Some(value) = value {
            validate_broker_setting(key, value)
                .map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
        }
    }
    if validate_only || changes.is_empty() {
        return Ok(());
    }
    state
        .cluster
        .alter_configs(resource.clone(), changes.clone())
        .await
        .map_err(|e| refusal_of_controller(&e))?;
    info!(?resource, ?changes, "broker configs changed");
    Ok(())
}

/// A resource result's error code and message.
fn error_fields(outcome: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err((e, m)) => (e.code(), Some(str_bytes(m))),
    }
}

/// The legacy API: the given set replaces all of a topic's overrides.
pub async fn alter_configs(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in req.resources {
        let allowed = config_access(
            access,
            resource.resource_type,
            &resource.resource_name,
            Operation::AlterConfigs,
        );
        let outcome = match resource.resource_type {
            _ if allowed.is_err() => allowed,
            TOPIC => {
                let configs = resource
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                apply_topic_configs(
                    state,
                    resource.resource_name.as_str(),
                    configs,
                    req.validate_only,
                )
                .await
            }
            BROKER => match broker_resource(resource.resource_name.as_str()) {
                Err(e) => Err(e),
                Ok(target) => {
                    // The given set replaces every dynamic key of the resource.
                    let wanted: BTreeMap<String, String> = resource
                        .configs
                        .iter()
                        .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                        .collect();
                    let mut changes: BTreeMap<String, Option<String>> =
                        current_broker_configs(state, &target)
                            .into_keys()
                            .filter(|k| !wanted.contains_key(k))
                            .map(|k| (k, None))
                            .collect();
                    changes.extend(wanted.into_iter().map(|(k, v)| (k, Some(v))));
                    apply_broker_configs(state, target, changes, req.validate_only).await
                }
            },
            other => Err(refuse_unknown_resource(other)),
        };
        let mut r = alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        (r.error_code, r.error_message) = error_fields(outcome);
        response.responses.push(r);
    }
    response
}

/// One IncrementalAlterConfigs operation applied to a topic's overrides.
pub fn apply_operation(
    configs: &mut BTreeMap<String, String>,
    name: &str,
    operation: i8,
    value: Option<&str>,
) -> Result<(), Refusal> {
    let def = topic_config_def(name).ok_or_else(|| {
        (
            ResponseError::InvalidConfig,
            format!("unknown topic config name: {name}"),
        )
    })?;
    let is_list = matches!(def.kind, ConfigType::ChoiceList(_) | ConfigType::Text);
    let current = || {
        configs
            .get(name)
            .cloned()
            .unwrap_or_else(|| def.default.to_string())
    };
    let items = |s: &str| {
        s.split(',')
            .map(str::trim)
            .filter(|i| !i.is_empty())
            .map(String::from)
            .collect::<Vec<_>>()
    };
    match operation {
        0 => {
            let value = value.ok_or_else(|| {
                (
                    ResponseError::InvalidRequest,
                    format!("SET of {name} needs a value"),
                )
            })?;
            configs.insert(name.to_string(), value.to_string());
        }
        1 => {
            configs.remove(name);
        }
        2 | 3 if !is_list => {
            return Err((
                ResponseError::InvalidRequest,
                format!("{name} is not a list; APPEND and SUBTRACT need a list config"),
            ));
        }
        2 => {
            let mut list = items(&current());
            for item in items(value.unwrap_or_default()) {
                if !list.contains(&item) {
                    list.push(item);
                }
            }
            configs.insert(name.to_string(), list.join(","));
        }
        3 => {
            let remove = items(value.unwrap_or_default());
            let list: Vec<_> = items(&current())
                .into_iter()
                .filter(|i| !remove.contains(i))
                .collect();
            configs.insert(name.to_string(), list.join(","));
        }
        other => {
            return Err((
                ResponseError::InvalidRequest,
                format!("unknown config operation {other}"),
            ));
        }
    }
    Ok(())
}

pub async fn incremental_alter_configs(
    state: &Arc<BrokerState>,
    access: &Access<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let allowed = config_access(
            access,
            resource.resource_type,
            &resource.resource_name,
            Operation::AlterConfigs,
        );
        let outcome = match resource.resource_type {
            _ if allowed.is_err() => allowed,
            TOPIC => match state.cluster.topic(&name) {
                None => Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic '{name}' does not exist"),
                )),
                Some(topic) => {
                    let mut configs = topic.configs.clone();
                    let applied: Result<(), Refusal> = resource.configs.iter().try_for_each(|c| {
                        apply_operation(
                            &mut configs,
                            c.name.as_str(),
                            c.config_operation,
                            c.value.as_ref().map(StrBytes::as_str),
                        )
                    });
                    match applied {
                        Ok(()) => {
                            apply_topic_configs(state, &name, configs, req.validate_only).await
                        }
                        Err(e) => Err(e),
                    }
                }
            },
            BROKER => match broker_resource(&name) {
                Err(e) => Err(e),
                Ok(target) => {
                    let changes: Result<BTreeMap<String, Option<String>>, Refusal> = resource
                        .configs
                        .iter()
                        .map(|c| match c.config_operation {
                            0 => Ok((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
                            1 => Ok((c.name.to_string(), None)),
                            op => Err((
                                ResponseError::InvalidRequest,
                                format!("operation {op} on broker config {} is not supported; use SET or DELETE", c.name.as_str()),
                            )),
                        })
                        .collect();
                    match changes {
                        Ok(changes) => {
                            apply_broker_configs(state, target, changes, req.validate_only).await
                        }
                        Err(e) => Err(e),
                    }
                }
            },
            other => Err(refuse_unknown_resource(other)),
        };
        let mut r = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        (r.error_code, r.error_message) = error_fields(outcome);
        response.responses.push(r);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incremental_operations_follow_kafka() {
        let mut configs = BTreeMap::new();
        apply_operation(&mut configs, "retention.ms", 0, Some("1000")).unwrap();
        assert_eq!(configs["retention.ms"], "1000");
        apply_operation(&mut configs, "retention.ms", 1, None).unwrap();
        assert!(!configs.contains_key("retention.ms"));
        apply_operation(&mut configs, "cleanup.policy", 2, Some("compact")).unwrap();
        assert_eq!(configs["cleanup.policy"], "delete,compact");
        apply_operation(&mut configs, "cleanup.policy", 3, Some("delete")).unwrap();
        assert_eq!(configs["cleanup.policy"], "compact");
        assert_eq!(
            apply_operation(&mut configs, "retention.ms", 2, Some("1"))
                .unwrap_err()
                .0,
            ResponseError::InvalidRequest
        );
        assert_eq!(
            apply_operation(&mut configs, "nope", 0, Some("1"))
                .unwrap_err()
                .0,
            ResponseError::InvalidConfig
        );
    }
}
