//! Client quotas, as `kafka-configs.sh --entity-type users|clients|ips`
//! manages them: AlterClientQuotas and DescribeClientQuotas (KIP-546).
//! The model is [`crate::quota`]; this module only puts it on the wire and
//! back. Any broker answers (it forwards changes to the controller).

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};

use super::Admin;
use crate::error::{Error, Result, check};
use crate::quota::{
    MATCH_ANY, MATCH_DEFAULT, MATCH_EXACT, NameMatch, QuotaEntity, QuotaFilter, QuotaKey,
};
use crate::util::sb;

/// One entity's quota changes.
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaChange {
    pub entity: QuotaEntity,
    /// Quotas to set, with their values.
    pub set: Vec<(QuotaKey, f64)>,
    /// Quotas to remove.
    pub remove: Vec<QuotaKey>,
}

/// An entity's quotas as described: quota name → value.
pub type DescribedQuotas = Vec<(QuotaEntity, BTreeMap<String, f64>)>;

impl Admin {
    /// Applies `changes` with one AlterClientQuotas; one outcome per
    /// entity, in order. With `validate_only` the broker checks them and
    /// changes nothing.
    pub async fn alter_client_quotas(
        &self,
        changes: &[QuotaChange],
        validate_only: bool,
    ) -> Result<Vec<std::result::Result<(), Error>>> {
        if changes.is_empty() {
            return Ok(Vec::new());
        }
        let entries = changes.iter().map(entry_of).collect();
        let req = AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only);
        let resp = self.cluster.any().await?.send(&req).await?;
        Ok(changes
            .iter()
            .enumerate()
            .map(|(i, change)| {
                let r = resp
                    .entries
                    .get(i)
                    .ok_or_else(|| Error::Other(format!("no answer for {}", change.entity)))?;
                check(r.error_code, r.error_message.as_ref(), || {
                    format!("alter client quotas of {}", change.entity)
                })
            })
            .collect())
    }

    /// Every entity `filter` selects, with its quotas.
    pub async fn describe_client_quotas(&self, filter: &QuotaFilter) -> Result<DescribedQuotas> {
        let components = filter
            .components
            .iter()
            .map(|(entity_type, how)| {
                let (match_type, name) = match how {
                    NameMatch::Exactly(n) => (MATCH_EXACT, Some(sb(n))),
                    NameMatch::Default => (MATCH_DEFAULT, None),
                    NameMatch::Any => (MATCH_ANY, None),
                };
                ComponentData::default()
                    .with_entity_type(sb(entity_type))
                    .with_match_type(match_type)
                    .with_match(name)
            })
            .collect();
        let req = DescribeClientQuotasRequest::default()
            .with_components(components)
            .with_strict(filter.strict);
        let conn = self.cluster.any().await?;
        let resp = conn.send(&req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            "describe client quotas".to_string()
        })?;
        resp.entries
            .unwrap_or_default()
            .into_iter()
            .map(|entry| {
                let entity = QuotaEntity::from_parts(
                    entry
                        .entity
                        .iter()
                        .map(|e| (e.entity_type.as_str(), e.entity_name.as_deref())),
                )
                .map_err(|reason| Error::Protocol {
                    addr: conn.addr().to_string(),
                    reason,
                })?;
                let values = entry
                    .values
                    .into_iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect();
                Ok((entity, values))
            })
            .collect()
    }
}

fn entry_of(change: &QuotaChange) -> EntryData {
    let entity = change
        .entity
        .parts()
        .into_iter()
        .map(|(t, name)| {
            EntityData::default()
                .with_entity_type(sb(t))
                .with_entity_name(name.map(sb))
        })
        .collect();
    let sets = change
        .set
        .iter()
        .map(|(k, v)| OpData::default().with_key(sb(k.name())).with_value(*v));
    let removals = change
        .remove
        .iter()
        .map(|k| OpData::default().with_key(sb(k.name())).with_remove(true));
    EntryData::default()
        .with_entity(entity)
        .with_ops(sets.chain(removals).collect())
}
