//! DescribeClientQuotas and AlterClientQuotas, as `kafka-configs.sh
//! --entity-type users|clients|ips` and `weir quota` send them. Quotas
//! live in the metadata log; changes go to the active controller, and
//! descriptions come from this broker's image. Kafka asks DescribeConfigs
//! (AlterConfigs) on the cluster for them.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, DescribeClientQuotasRequest,
    DescribeClientQuotasResponse, alter_client_quotas_response as alter,
    describe_client_quotas_response as describe,
};
use weir_client::acl::Operation;
use weir_client::quota::{
    MATCH_ANY, MATCH_DEFAULT, MATCH_EXACT, NameMatch, QuotaEntity, QuotaFilter,
};
use weir_quorum::quotas::QuotaAlteration;

use super::str_bytes;
use super::topics::{Refusal, refusal_of_controller};
use crate::authorizer::Access;
use crate::broker::BrokerState;

fn component(c: &ComponentData) -> Result<(String, NameMatch), String> {
    let how = match (c.match_type, &c._match) {
        (MATCH_EXACT, Some(name)) => NameMatch::Exactly(name.to_string()),
        (MATCH_EXACT, None) => {
            return Err(format!("an exact match on {} needs a name", c.entity_type));
        }
        (MATCH_DEFAULT, _) => NameMatch::Default,
        (MATCH_ANY, _) => NameMatch::Any,
        (other, _) => return Err(format!("unknown match type {other}")),
    };
    Ok((c.entity_type.to_string(), how))
}

fn filter_of(req: &DescribeClientQuotasRequest) -> Result<QuotaFilter, String> {
    let filter = QuotaFilter {
        components: req
            .components
            .iter()
            .map(component)
            .collect::<Result<_, _>>()?,
        strict: req.strict,
    };
    filter.validate()?;
    Ok(filter)
}

pub fn describe(
    state: &BrokerState,
    access: &Access<'_>,
    req: DescribeClientQuotasRequest,
) -> DescribeClientQuotasResponse {
    let mut response = DescribeClientQuotasResponse::default();
    let refuse =
        |response: &mut DescribeClientQuotasResponse, error: ResponseError, why: String| {
            response.error_code = error.code();
            response.error_message = Some(str_bytes(why));
        };
    if !access.cluster(Operation::DescribeConfigs) {
        refuse(
            &mut response,
            ResponseError::ClusterAuthorizationFailed,
            "DescribeConfigs on the cluster is needed to describe client quotas".into(),
        );
        return response;
    }
    let filter = match filter_of(&req) {
        Ok(f) => f,
        Err(why) => {
            refuse(&mut response, ResponseError::InvalidRequest, why);
            return response;
        }
    };
    let image = state.cluster.image();
    let entries = image
        .quotas()
        .iter()
        .filter(|(entity, _)| filter.matches(entity))
        .map(|(entity, values)| {
            let mut entry = describe::EntryData::default();
            entry.entity = entity
                .parts()
                .into_iter()
                .map(|(t, name)| {
                    let mut e = describe::EntityData::default();
                    e.entity_type = str_bytes(t);
                    e.entity_name = name.map(str_bytes);
                    e
                })
                .collect();
            entry.values = values
                .iter()
                .map(|(key, value)| {
                    let mut v = describe::ValueData::default();
                    v.key = str_bytes(key.name());
                    v.value = value.0;
                    v
                })
                .collect();
            entry
        })
        .collect();
    response.entries = Some(entries);
    response
}

pub async fn alter(
    state: &BrokerState,
    access: &Access<'_>,
    req: AlterClientQuotasRequest,
) -> AlterClientQuotasResponse {
    let allowed = access.cluster(Operation::AlterConfigs);
    // Per entry: the entity as sent (echoed back), and what to ask the
    // controller or why not.
    let decoded: Vec<(Vec<alter::EntityData>, Result<QuotaAlteration, Refusal>)> = req
        .entries
        .into_iter()
        .map(|entry| {
            let echoed = entry
                .entity
                .iter()
                .map(|e| {
                    let mut out = alter::EntityData::default();
                    out.entity_type = e.entity_type.clone();
                    out.entity_name = e.entity_name.clone();
                    out
                })
                .collect();
            let asked = if allowed {
                QuotaEntity::from_parts(
                    entry
                        .entity
                        .iter()
                        .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
                )
                .map(|entity| QuotaAlteration {
                    entity,
                    ops: entry
                        .ops
                        .iter()
                        .map(|op| (op.key.to_string(), (!op.remove).then_some(op.value)))
                        .collect(),
                })
                .map_err(|why| (ResponseError::InvalidRequest, why))
            } else {
                Err((
                    ResponseError::ClusterAuthorizationFailed,
                    "AlterConfigs on the cluster is needed to alter client quotas".into(),
                ))
            };
            (echoed, asked)
        })
        .collect();
    let to_send: Vec<QuotaAlteration> = decoded
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok().cloned())
        .collect();
    let mut outcomes = if to_send.is_empty() {
        Ok(Vec::new())
    } else {
        state
            .cluster
            .alter_client_quotas(to_send, req.validate_only)
            .await
    }
    .map(Vec::into_iter);
    let mut response = AlterClientQuotasResponse::default();
    response.entries = decoded
        .into_iter()
        .map(|(entity, asked)| {
            let refusal = match asked {
                Err(refusal) => Some(refusal),
                Ok(_) => match &mut outcomes {
                    Ok(results) => results
                        .next()
                        .and_then(|r| r.err())
                        .map(|e| refusal_of_controller(&e)),
                    Err(e) => Some(refusal_of_controller(e)),
                },
            };
            let mut entry = alter::EntryData::default();
            entry.entity = entity;
            if let Some((error, why)) = refusal {
                entry.error_code = error.code();
                entry.error_message = Some(str_bytes(why));
            }
            entry
        })
        .collect();
    response
}
