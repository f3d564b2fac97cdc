//! Leader election on a `coordination.k8s.io/v1` Lease, so two operator
//! replicas never reconcile at once. [`decide`] is the rule, a pure function
//! of the Lease and the time; [`LeaderElector`] reads and writes the Lease
//! with resourceVersion preconditions, so of two candidates racing for an
//! expired Lease exactly one write wins.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::Result;

#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    /// Who we are in `holderIdentity`, unique per replica (the pod name).
    pub identity: String,
    /// How long a holder keeps the Lease without renewing.
    pub lease_duration: Duration,
    /// How often the holder renews, and a candidate looks.
    pub retry_every: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// Nobody holds it, or the holder let it expire: take it.
    Acquire,
    /// We hold it: renew.
    Renew,
    /// Someone else holds it and it has not expired.
    Wait { holder: String },
}

/// The rule: renew our own Lease; take one that is free or expired; wait otherwise.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Acquire;
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    if holder.is_empty() {
        return LeaseDecision::Acquire;
    }
    if holder == me {
        return LeaseDecision::Renew;
    }
    let last = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0);
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    match last {
        Some(last) if last + duration > now => LeaseDecision::Wait { holder },
        _ => LeaseDecision::Acquire,
    }
}

/// The Lease spec after acting on `decision` (`None` when waiting).
pub fn next_spec(
    old: Option<&LeaseSpec>,
    decision: &LeaseDecision,
    me: &str,
    now: Timestamp,
    lease_duration: Duration,
) -> Option<LeaseSpec> {
    let seconds = i32::try_from(lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    match decision {
        LeaseDecision::Wait { .. } => None,
        LeaseDecision::Renew => Some(LeaseSpec {
            renew_time: Some(MicroTime(now)),
            lease_duration_seconds: Some(seconds),
            ..old.cloned().unwrap_or_default()
        }),
        LeaseDecision::Acquire => {
            let transitions = old.and_then(|s| s.lease_transitions).unwrap_or(0);
            let had_holder = old
                .and_then(|s| s.holder_identity.as_deref())
                .is_some_and(|h| !h.is_empty());
            Some(LeaseSpec {
                holder_identity: Some(me.into()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_duration_seconds: Some(seconds),
                lease_transitions: Some(if had_holder {
                    transitions + 1
                } else {
                    transitions
                }),
                ..LeaseSpec::default()
            })
        }
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One round: returns whether we hold the Lease afterwards. A lost race
    /// (409) means someone else got it.
    pub async fn try_once(&self) -> Result<bool> {
        let now = Timestamp::now();
        let me = &self.config.identity;
        let current = self.api.get_opt(&self.config.name).await?;
        let old_spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(old_spec, me, now);
        let Some(spec) = next_spec(old_spec, &decision, me, now, self.config.lease_duration) else {
            return Ok(false);
        };
        let result = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(mut lease) => {
                // Replace keeps metadata.resourceVersion: a concurrent write fails with 409.
                lease.spec = Some(spec);
                self.api
                    .replace(&self.config.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Runs rounds forever, publishing whether we lead. Any failure to
    /// renew steps down at once: better idle than two leaders.
    pub async fn run(self, leading: watch::Sender<bool>) {
        loop {
            let now_leading = match self.try_once().await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, lease = %self.config.name, "leader election round failed");
                    false
                }
            };
            leading.send_if_modified(|l| {
                let changed = *l != now_leading;
                *l = now_leading;
                changed
            });
            tokio::time::sleep(self.config.retry_every).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid time")
    }

    fn held_by(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn take_renew_or_wait() {
        assert_eq!(decide(None, "a", at(100)), LeaseDecision::Acquire);
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", at(100)),
            LeaseDecision::Acquire
        );
        let lease = held_by("b", 100, 15);
        assert_eq!(decide(Some(&lease), "b", at(200)), LeaseDecision::Renew);
        assert_eq!(
            decide(Some(&lease), "a", at(114)),
            LeaseDecision::Wait { holder: "b".into() }
        );
        assert_eq!(decide(Some(&lease), "a", at(115)), LeaseDecision::Acquire);
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_keeps_the_holder() {
        let lease = held_by("b", 100, 15);
        let taken = next_spec(
            Some(&lease),
            &LeaseDecision::Acquire,
            "a",
            at(200),
            Duration::from_secs(15),
        )
        .expect("acquired");
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        assert_eq!(taken.lease_transitions, Some(4));
        let renewed = next_spec(
            Some(&taken),
            &LeaseDecision::Renew,
            "a",
            at(205),
            Duration::from_secs(15),
        )
        .expect("renewed");
        assert_eq!(renewed.holder_identity.as_deref(), Some("a"));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
        assert_eq!(renewed.renew_time, Some(MicroTime(at(205))));
        assert_eq!(
            next_spec(
                Some(&lease),
                &LeaseDecision::Wait { holder: "b".into() },
                "a",
                at(1),
                Duration::from_secs(1)
            ),
            None
        );
    }
}
