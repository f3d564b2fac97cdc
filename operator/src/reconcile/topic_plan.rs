//! What a Topic needs on the brokers, as a pure function of its spec, its
//! policy and what the brokers report.
//!
//! A difference between the spec and the brokers is *drift* when the spec
//! did not change since the last reconcile (someone changed the topic on
//! the brokers), and a spec change otherwise. Managed and Adopt topics get
//! both applied; Observe topics only report. Some differences are never
//! applied: fewer partitions (Kafka cannot remove any), a different
//! replication factor (needs reassignment) and unknown config keys; they
//! become problems shown as conditions.

use std::collections::BTreeMap;

use crate::crd::topic::{DriftEntry, ManagementPolicy, TopicSpec};
use crate::kafka::{ConfigChange, NewTopicSpec, ObservedTopic};

/// Shown in drift entries for a setting left at the broker default.
pub const DEFAULT_VALUE: &str = "(default)";

#[derive(Debug, Clone, PartialEq)]
pub struct TopicInput<'a> {
    pub name: &'a str,
    pub spec: &'a TopicSpec,
    pub observed: Option<&'a ObservedTopic>,
    /// The topic id recorded in status: set once the operator created or adopted it.
    pub known_id: Option<&'a str>,
    /// Whether the spec changed since the last reconcile that saw it.
    pub spec_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAction {
    Create(NewTopicSpec),
    GrowPartitions(i32),
    AlterConfig(Vec<ConfigChange>),
}

/// Something the operator will not do, with a condition reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicPlan {
    pub actions: Vec<TopicAction>,
    pub drift: Vec<DriftEntry>,
    pub problems: Vec<Problem>,
}

fn drift(field: &str, desired: impl ToString, actual: impl ToString) -> DriftEntry {
    DriftEntry {
        field: field.into(),
        desired: desired.to_string(),
        actual: actual.to_string(),
    }
}

/// Spec settings split into the ones the broker knows and problems.
fn valid_config(spec: &TopicSpec) -> (BTreeMap<String, String>, Vec<Problem>) {
    let mut valid = BTreeMap::new();
    let mut problems = Vec::new();
    for (key, value) in &spec.config {
        match weir_broker::topic_config::validate_topic_config(key, value) {
            Ok(()) => {
                valid.insert(key.clone(), value.clone());
            }
            Err(e) => problems.push(Problem {
                reason: "InvalidConfig",
                message: format!("spec.config[{key:?}] not applied: {e}"),
            }),
        }
    }
    (valid, problems)
}

pub fn plan_topic(input: &TopicInput<'_>) -> TopicPlan {
    let spec = input.spec;
    let policy = spec.management_policy;
    let (config, mut problems) = valid_config(spec);
    let Some(observed) = input.observed else {
        let adopted_before = input.known_id.is_some();
        let actions = match policy {
            ManagementPolicy::Observe => {
                problems.push(Problem {
                    reason: "TopicNotFound",
                    message: format!(
                        "topic {:?} does not exist (Observe never creates it)",
                        input.name
                    ),
                });
                Vec::new()
            }
            ManagementPolicy::Adopt if !adopted_before => {
                problems.push(Problem {
                    reason: "TopicNotFound",
                    message: format!(
                        "topic {:?} does not exist yet; Adopt waits for it",
                        input.name
                    ),
                });
                Vec::new()
            }
            _ => vec![TopicAction::Create(NewTopicSpec {
                name: input.name.into(),
                partitions: spec.partitions,
                replication_factor: spec.replication_factor,
                config,
            })],
        };
        return TopicPlan {
            actions,
            drift: Vec::new(),
            problems,
        };
    };

    let mut differences = Vec::new();
    let mut actions = Vec::new();
    if let Some(id) = input.known_id
        && id != observed.id
    {
        differences.push(drift("topicId", id, &observed.id));
    }
    if spec.partitions < observed.partitions {
        problems.push(Problem {
            reason: "PartitionDecrease",
            message: format!(
                "spec asks for {} partitions but the topic has {}; Kafka cannot remove partitions",
                spec.partitions, observed.partitions
            ),
        });
        differences.push(drift("partitions", spec.partitions, observed.partitions));
    } else if spec.partitions > observed.partitions {
        differences.push(drift("partitions", spec.partitions, observed.partitions));
        actions.push(TopicAction::GrowPartitions(spec.partitions));
    }
    if spec.replication_factor != observed.replication_factor {
        problems.push(Problem {
            reason: "ReplicationFactorChange",
            message: format!(
                "spec asks for replication factor {} but the topic has {}; changing it needs partition reassignment, which is not supported",
                spec.replication_factor, observed.replication_factor
            ),
        });
        differences.push(drift(
            "replicationFactor",
            spec.replication_factor,
            observed.replication_factor,
        ));
    }
    let mut changes = Vec::new();
    for (key, value) in &config {
        let actual = observed.overrides.get(key);
        if actual != Some(value) {
            differences.push(drift(
                key,
                value,
                actual.map_or(DEFAULT_VALUE, String::as_str),
            ));
            changes.push(ConfigChange::Set(key.clone(), value.clone()));
        }
    }
    for (key, actual) in &observed.overrides {
        // An invalid key stays as it is on the brokers: it is reported, never applied.
        if !spec.config.contains_key(key) {
            differences.push(drift(key, DEFAULT_VALUE, actual));
            changes.push(ConfigChange::Delete(key.clone()));
        }
    }
    if !changes.is_empty() {
        actions.push(TopicAction::AlterConfig(changes));
    }
    let is_drift = !input.spec_changed || policy == ManagementPolicy::Observe;
    TopicPlan {
        actions: if policy == ManagementPolicy::Observe {
            Vec::new()
        } else {
            actions
        },
        drift: if is_drift { differences } else { Vec::new() },
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::topic::DeletionPolicy;

    fn spec(partitions: i32, config: &[(&str, &str)], policy: ManagementPolicy) -> TopicSpec {
        TopicSpec {
            cluster_ref: "demo".into(),
            topic_name: None,
            partitions,
            replication_factor: 3,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            management_policy: policy,
            deletion_policy: DeletionPolicy::Delete,
        }
    }

    fn observed(partitions: i32, overrides: &[(&str, &str)]) -> ObservedTopic {
        ObservedTopic {
            id: "id-1".into(),
            partitions,
            replication_factor: 3,
            overrides: overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            effective: BTreeMap::new(),
        }
    }

    fn input<'a>(
        spec: &'a TopicSpec,
        observed: Option<&'a ObservedTopic>,
        changed: bool,
    ) -> TopicInput<'a> {
        TopicInput {
            name: "orders",
            spec,
            observed,
            known_id: Some("id-1"),
            spec_changed: changed,
        }
    }

    #[test]
    fn missing_topic_is_created_with_valid_settings_only() {
        let s = spec(
            6,
            &[("retention.ms", "1000"), ("no.such.key", "1")],
            ManagementPolicy::Managed,
        );
        let plan = plan_topic(&TopicInput {
            known_id: None,
            ..input(&s, None, true)
        });
        assert_eq!(
            plan.actions,
            vec![TopicAction::Create(NewTopicSpec {
                name: "orders".into(),
                partitions: 6,
                replication_factor: 3,
                config: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            })]
        );
        assert_eq!(plan.problems[0].reason, "InvalidConfig");
    }

    #[test]
    fn observe_and_adopt_never_create() {
        for policy in [ManagementPolicy::Observe, ManagementPolicy::Adopt] {
            let s = spec(1, &[], policy);
            let plan = plan_topic(&TopicInput {
                known_id: None,
                ..input(&s, None, false)
            });
            assert!(plan.actions.is_empty(), "{policy:?}");
            assert_eq!(plan.problems[0].reason, "TopicNotFound");
        }
    }

    #[test]
    fn out_of_band_changes_are_drift_and_reverted_when_managed() {
        let s = spec(3, &[("retention.ms", "1000")], ManagementPolicy::Managed);
        let o = observed(3, &[("retention.ms", "5"), ("cleanup.policy", "compact")]);
        let plan = plan_topic(&input(&s, Some(&o), false));
        assert_eq!(
            plan.actions,
            vec![TopicAction::AlterConfig(vec![
                ConfigChange::Set("retention.ms".into(), "1000".into()),
                ConfigChange::Delete("cleanup.policy".into()),
            ])]
        );
        let fields: Vec<&str> = plan.drift.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["retention.ms", "cleanup.policy"]);
        assert!(plan.problems.is_empty());
    }

    #[test]
    fn observe_reports_drift_and_changes_nothing() {
        let s = spec(3, &[("retention.ms", "1000")], ManagementPolicy::Observe);
        let o = observed(2, &[("retention.ms", "5")]);
        let plan = plan_topic(&input(&s, Some(&o), true));
        assert!(plan.actions.is_empty());
        assert_eq!(plan.drift.len(), 2);
    }

    #[test]
    fn spec_changes_are_applied_without_drift() {
        let s = spec(6, &[], ManagementPolicy::Managed);
        let o = observed(3, &[]);
        let plan = plan_topic(&input(&s, Some(&o), true));
        assert_eq!(plan.actions, vec![TopicAction::GrowPartitions(6)]);
        assert!(plan.drift.is_empty());
    }

    #[test]
    fn partition_decrease_and_replication_change_are_problems_never_actions() {
        let mut s = spec(2, &[], ManagementPolicy::Managed);
        s.replication_factor = 1;
        let o = observed(4, &[]);
        let plan = plan_topic(&input(&s, Some(&o), true));
        assert!(plan.actions.is_empty());
        let reasons: Vec<&str> = plan.problems.iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["PartitionDecrease", "ReplicationFactorChange"]);
    }
}
