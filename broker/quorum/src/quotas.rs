//! Client quota changes as the controller decides them (Kafka's
//! AlterClientQuotas): a pure function of the image returning the records
//! to propose.
//!
//! Each entity's changes apply all or none; a value equal to the current
//! one, or the removal of a quota that is not set, needs no record.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use weir_client::quota::{QuotaEntity, QuotaKey};

use crate::image::MetadataImage;
use crate::records::MetadataRecord;
use crate::rpc::ControllerError;

/// One entity's requested changes: per quota key (as the client spelled
/// it), the new value or `None` to remove it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: QuotaEntity,
    pub ops: Vec<(String, Option<f64>)>,
}

// Values are compared by bits, as `QuotaValue` is, so requests can sit in
// the `Eq` request enum.
impl Eq for QuotaAlteration {}

/// The records to propose, and each alteration's outcome in request order.
pub fn alter_client_quotas(
    image: &MetadataImage,
    alterations: &[QuotaAlteration],
) -> (Vec<MetadataRecord>, Vec<Result<(), ControllerError>>) {
    let mut seen = BTreeSet::new();
    let mut records = Vec::new();
    let results = alterations
        .iter()
        .map(|alteration| {
            if !seen.insert(&alteration.entity) {
                return Err(ControllerError::InvalidRequest(format!(
                    "{} appears twice in the request",
                    alteration.entity
                )));
            }
            records.extend(entity_records(image, alteration)?);
            Ok(())
        })
        .collect();
    (records, results)
}

fn entity_records(
    image: &MetadataImage,
    alteration: &QuotaAlteration,
) -> Result<Vec<MetadataRecord>, ControllerError> {
    let entity = &alteration.entity;
    let invalid = |why: String| ControllerError::InvalidRequest(format!("{entity}: {why}"));
    let allowed = entity.validate().map_err(invalid)?;
    let current = image.quotas().get(entity);
    let mut keys = BTreeSet::new();
    let mut records = Vec::new();
    for (name, value) in &alteration.ops {
        let key = QuotaKey::parse(name)
            .filter(|k| allowed.contains(k))
            .ok_or_else(|| invalid(format!("{name:?} is not a quota key for this entity")))?;
        if !keys.insert(key) {
            return Err(invalid(format!("quota key {key} appears twice")));
        }
        let now = current.and_then(|q| q.get(&key));
        let value = value.map(|v| key.check(v)).transpose().map_err(invalid)?;
        if value.as_ref() != now {
            records.push(MetadataRecord::ClientQuota {
                entity: entity.clone(),
                key,
                value,
            });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_client::quota::{EntityName, QuotaValue};

    fn user(name: &str) -> QuotaEntity {
        QuotaEntity {
            user: Some(EntityName::Named(name.into())),
            ..Default::default()
        }
    }

    fn alteration(entity: QuotaEntity, ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
        QuotaAlteration {
            entity,
            ops: ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn applied(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r).unwrap();
        }
    }

    #[test]
    fn sets_changes_and_removes_and_skips_no_ops() {
        let mut image = MetadataImage::default();
        let set = [alteration(
            user("alice"),
            &[
                ("producer_byte_rate", Some(1024.0)),
                ("request_percentage", Some(50.0)),
            ],
        )];
        let (records, results) = alter_client_quotas(&image, &set);
        assert_eq!(results, vec![Ok(())]);
        assert_eq!(records.len(), 2);
        applied(&mut image, &records);
        let alice = &image.quotas()[&user("alice")];
        assert_eq!(alice[&QuotaKey::ProducerByteRate], QuotaValue(1024.0));

        // The same values again, and removing what is not set: no records.
        let (records, results) = alter_client_quotas(&image, &set);
        assert_eq!((records.len(), results), (0, vec![Ok(())]));
        let absent = [alteration(user("alice"), &[("consumer_byte_rate", None)])];
        assert!(alter_client_quotas(&image, &absent).0.is_empty());

        let remove = [alteration(
            user("alice"),
            &[("producer_byte_rate", None), ("request_percentage", None)],
        )];
        let (records, _) = alter_client_quotas(&image, &remove);
        applied(&mut image, &records);
        assert!(
            image.quotas().is_empty(),
            "an entity with no quotas left is gone"
        );
    }

    #[test]
    fn a_bad_entry_fails_alone_and_whole() {
        let image = MetadataImage::default();
        let ip = QuotaEntity {
            ip: Some(EntityName::Default),
            ..Default::default()
        };
        let (records, results) = alter_client_quotas(
            &image,
            &[
                // Half valid: nothing of it is applied.
                alteration(
                    user("bob"),
                    &[
                        ("producer_byte_rate", Some(10.0)),
                        ("producer_byte_rate", Some(20.0)),
                    ],
                ),
                alteration(user("carol"), &[("producer_byte_rate", Some(1.5))]),
                alteration(user("dave"), &[("connection_creation_rate", Some(5.0))]),
                alteration(ip.clone(), &[("connection_creation_rate", Some(5.0))]),
                alteration(ip, &[("connection_creation_rate", Some(6.0))]),
                alteration(user("erin"), &[("no_such_quota", Some(1.0))]),
            ],
        );
        let failed: Vec<String> = results
            .iter()
            .map(|r| {
                r.as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            })
            .collect();
        assert!(failed[0].contains("appears twice"), "{failed:?}");
        assert!(failed[1].contains("whole number"), "{failed:?}");
        assert!(failed[2].contains("connection_creation_rate"), "{failed:?}");
        assert_eq!(failed[3], "");
        assert!(failed[4].contains("appears twice"), "{failed:?}");
        assert!(failed[5].contains("no_such_quota"), "{failed:?}");
        assert_eq!(records.len(), 1, "only the valid ip entry: {records:?}");
    }
}
