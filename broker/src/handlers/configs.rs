//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs. Topic configs
//! are dynamic: a change is validated, persisted and applied to the topic's
//! logs at once. Broker configs are read-only here (set with `--config`).

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
use super::topics::refusal_of;
use crate::broker::BrokerState;
use crate::topic_config::{
    ConfigSource, ConfigType, effective_topic_configs, topic_config_def, validate_topic_config,
};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

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
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let wanted = |name: &str| {
            resource
                .configuration_keys
                .as_ref()
                .is_none_or(|keys| keys.iter().any(|k| k.as_str() == name))
        };
        match resource.resource_type {
            TOPIC => match state.metadata.topic(resource.resource_name.as_str()) {
                None => {
                    result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    result.error_message = Some(str_bytes(format!(
                        "topic '{}' does not exist",
                        resource.resource_name.as_str()
                    )));
                }
                Some(topic) => {
                    for e in effective_topic_configs(&topic.configs, &state.config.settings) {
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
                        let mut c = DescribeConfigsResourceResult::default();
                        c.name = str_bytes(key);
                        c.value = Some(str_bytes(value));
                        c.read_only = true;
                        c.config_source = if explicit {
                            ConfigSource::StaticBroker.kafka_code()
                        } else {
                            ConfigSource::Default.kafka_code()
                        };
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
        if let Some(v) = def.broker_key.and_then(|k| state.config.settings.get(k)) {
            push(
                def.broker_key.unwrap_or(name),
                v,
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
    if state.metadata.topic(topic).is_none() {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("topic '{topic}' does not exist"),
        ));
    }
    for (k, v) in &configs {
        validate_topic_config(k, v).map_err(|e| (ResponseError::InvalidConfig, e.to_string()))?;
    }
    if validate_only {
        return Ok(());
    }
    let state2 = Arc::clone(state);
    let name = topic.to_string();
    match tokio::task::spawn_blocking(move || state2.set_topic_configs(&name, configs)).await {
        Ok(Ok(meta)) => {
            info!(topic = %meta.name, configs = ?meta.configs, "topic configs changed");
            Ok(())
        }
        Ok(Err(e)) => Err(refusal_of(&e)),
        Err(e) => Err((ResponseError::UnknownServerError, e.to_string())),
    }
}

/// Only topic configs change at run time; what both alter APIs answer for
/// any other resource.
fn refuse_non_topic(resource_type: i8) -> Refusal {
    let message = match resource_type {
        BROKER => {
            "broker configs cannot be changed at run time yet; set them with --config at start"
                .into()
        }
        other => format!("resource type {other} is not supported"),
    };
    (ResponseError::InvalidRequest, message)
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
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
    for resource in req.resources {
        let outcome = match resource.resource_type {
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
            other => Err(refuse_non_topic(other)),
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
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let outcome = match resource.resource_type {
            TOPIC => match state.metadata.topic(&name) {
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
            other => Err(refuse_non_topic(other)),
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
