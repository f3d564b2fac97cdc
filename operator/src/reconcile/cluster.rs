//! The Cluster reconciler: apply the desired children, prune the rest,
//! restart brokers one at a time (inside the maintenance windows, pausing
//! between brokers), scale down only after draining, unregister the brokers
//! a scale-down removed once their pods are gone, and report it all in the
//! status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ObjectReference, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use super::apply::{self, patch_status};
use super::cluster_status::{
    self, DEGRADED, Observation, PodView, READY, RECONCILING, RollState, ScaleState,
};
use super::conditions::{self, Wanted};
use super::plan::{self, RollDecision, RollInput};
use super::rollout;
use super::scale::{self, CurrentPool};
use super::{Context, paused_by_annotation};
use crate::crd::cluster::{BrokerRestart, Cluster, ClusterStatus, ReclaimPolicy};
use crate::desired::{CLUSTER_LABEL, ClusterModel, MANAGED_BY, POOL_LABEL};
use crate::kafka::KafkaOps;
use crate::{Error, Result};

/// The brokers of one Cluster, connected on first use and at most once
/// per reconcile.
struct Brokers<'a> {
    ctx: &'a Context,
    bootstrap: String,
    conn: Option<std::result::Result<Arc<dyn KafkaOps>, String>>,
}

impl Brokers<'_> {
    async fn get(&mut self) -> std::result::Result<Arc<dyn KafkaOps>, String> {
        if self.conn.is_none() {
            let conn = self.ctx.kafka.connect(&self.bootstrap).await;
            self.conn = Some(
                conn.map_err(|e| format!("cannot reach the brokers at {}: {e}", self.bootstrap)),
            );
        }
        self.conn
            .clone()
            .unwrap_or_else(|| Err("not connected".into()))
    }
}

pub async fn reconcile(cluster: Arc<Cluster>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = cluster.namespace().ok_or(Error::MissingField {
        kind: "Cluster",
        field: "metadata.namespace",
    })?;
    let name = cluster.name_any();
    let api: Api<Cluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let old = cluster.status.clone().unwrap_or_default();
    let reference = cluster.object_ref(&());
    let generation = cluster.metadata.generation;
    let now = ctx.clock.now();

    if cluster.spec.paused || paused_by_annotation(&cluster.metadata) {
        let status = ClusterStatus {
            conditions: conditions::set_one(
                &old.conditions,
                Wanted::new(
                    RECONCILING,
                    false,
                    "Paused",
                    "reconciliation is paused (spec.paused or the weir.dev/paused annotation); children are left as they are",
                ),
                old.observed_generation,
                now,
            ),
            ..old.clone()
        };
        write_status(&api, &name, &old, &status, &ctx, &reference).await?;
        // Unpausing edits the Cluster, which wakes the controller.
        return Ok(Action::await_change());
    }

    let model = match ClusterModel::from_crd(&cluster, &namespace) {
        Ok(model) => model,
        Err(errors) => {
            let message = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            let wanted = [
                Wanted::new(READY, false, "InvalidSpec", message.clone()),
                Wanted::new(
                    RECONCILING,
                    false,
                    "InvalidSpec",
                    "fix the spec to continue",
                ),
                Wanted::new(DEGRADED, true, "InvalidSpec", message),
            ];
            let status = ClusterStatus {
                observed_generation: generation,
                conditions: conditions::merge(&old.conditions, &wanted, generation, now),
                ..old.clone()
            };
            write_status(&api, &name, &old, &status, &ctx, &reference).await?;
            return Ok(Action::await_change());
        }
    };
    let uid = cluster.uid().ok_or(Error::MissingField {
        kind: "Cluster",
        field: "metadata.uid",
    })?;
    let ours = format!("{CLUSTER_LABEL}={name},app.kubernetes.io/managed-by={MANAGED_BY}");
    let mut brokers = Brokers {
        ctx: &ctx,
        bootstrap: ctx.bootstrap(&name, &namespace),
        conn: None,
    };

    // Scale-down first: it decides the StatefulSet sizes applied below.
    let current = current_pools(&ctx, &namespace, &ours, &uid).await?;
    let leaving = scale::leaving_brokers(&current, &model.pools());
    let scale_state = if leaving.is_empty() {
        ScaleState::Steady
    } else {
        scale_down(&mut brokers, &leaving, model.brokers().len()).await
    };
    let mut retired = old.retired_brokers.clone();
    if scale_state == ScaleState::Steady && !leaving.is_empty() {
        retired = scale::retire(&retired, &leaving);
        if retired != old.retired_brokers {
            // Recorded before the StatefulSets shrink: once they have, nothing
            // else says which brokers left.
            let recorded = ClusterStatus {
                retired_brokers: retired.clone(),
                ..old.clone()
            };
            write_status(&api, &name, &old, &recorded, &ctx, &reference).await?;
        }
    }
    let mut objects = model.desired_objects();
    let keep = match scale_state {
        ScaleState::Steady => BTreeSet::new(),
        _ => scale::hold(&mut objects, &current),
    };
    for object in &objects {
        apply::apply(&ctx.client, &namespace, object).await?;
    }
    for gone in apply::prune(&ctx.client, &namespace, &ours, &uid, &objects, &keep).await? {
        ctx.event(
            &reference,
            false,
            "Pruned",
            format!("deleted {gone}, no longer desired"),
        )
        .await;
    }

    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let broker_selector = format!("{CLUSTER_LABEL}={name},app.kubernetes.io/component=broker");
    let pods: BTreeMap<String, PodView> = pod_api
        .list(&ListParams::default().labels(&broker_selector))
        .await?
        .iter()
        .map(|p| (p.name_any(), cluster_status::pod_view(p)))
        .collect();
    if scale_state == ScaleState::Steady {
        prune_volumes(&ctx, &model, &namespace, &name, &pods, &reference).await?;
    }

    let identities = model.brokers();
    let retired =
        unregister_retired(&mut brokers, retired, &identities, &pods, &ctx, &reference).await;
    let mut views = cluster_status::broker_pods(&model, &identities, &pods, None);
    let mut cluster_id = None;
    let needs_roll = views
        .iter()
        .any(|b| cluster_status::restart_reason(&model, b).is_some());
    let mut last_restart = old.last_broker_restart.clone();
    // A restart not yet seen finished still needs the brokers' view (its
    // ISR), even when it was the last of its roll: the pause runs from then.
    let unfinished = last_restart
        .as_ref()
        .is_some_and(|r| r.finished_at.is_none());
    let mut hold_until = None;
    let roll = if needs_roll || unfinished {
        match roll_step(&mut brokers, &model, &identities, &pods, last_restart, now).await {
            Ok(step) => {
                views = step.views;
                cluster_id = step.cluster_id;
                last_restart = step.last_restart;
                match step.decision {
                    RollDecision::Done => RollState::UpToDate,
                    RollDecision::Wait(why) => RollState::Blocked(why),
                    RollDecision::Held(hold) => {
                        hold_until = hold.until();
                        RollState::Blocked(hold.to_string())
                    }
                    RollDecision::Restart {
                        node_id,
                        pod,
                        reason,
                    } => {
                        restart_pod(&pod_api, &pod).await?;
                        last_restart = Some(rollout::restart_started(node_id, &pod, now));
                        if let Some(v) = views.iter_mut().find(|b| b.node_id == node_id) {
                            v.ready = false;
                        }
                        let message = format!("restarting broker {node_id} ({pod}): {reason}");
                        ctx.event(&reference, false, "RestartingBroker", message.clone())
                            .await;
                        RollState::Restarting(message)
                    }
                }
            }
            Err(why) => {
                last_restart = old.last_broker_restart.clone();
                if needs_roll {
                    RollState::Blocked(why)
                } else {
                    RollState::UpToDate
                }
            }
        }
    } else {
        RollState::UpToDate
    };

    let all_ready = views.iter().all(|b| b.ready);
    let dynamic = model.dynamic_broker_settings();
    let mut dynamic_config_error = None;
    if all_ready && !dynamic.is_empty() {
        match brokers.get().await {
            Ok(k) => match k.apply_broker_config(&dynamic).await {
                Ok(changed) if !changed.is_empty() => {
                    ctx.event(
                        &reference,
                        false,
                        "BrokerConfigApplied",
                        format!("applied {} live, without a restart", changed.join(", ")),
                    )
                    .await;
                }
                Ok(_) => {}
                Err(e) => {
                    dynamic_config_error = Some(format!("live broker settings not applied: {e}"))
                }
            },
            Err(e) => dynamic_config_error = Some(e),
        }
    }
    if cluster_id.is_none()
        && old.cluster_id.is_none()
        && all_ready
        && let Ok(k) = brokers.get().await
    {
        cluster_id = k.cluster_id().await.ok().flatten();
    }

    let observation = Observation {
        model: &model,
        identities: &identities,
        brokers: &views,
        roll,
        scale: scale_state,
        dynamic_config_error,
        cluster_id,
        connect: connect_readiness(&ctx, &model, &namespace).await?,
        generation,
        last_restart,
        retired_brokers: retired,
    };
    let status = cluster_status::cluster_status(&observation, &old, now);
    write_status(&api, &name, &old, &status, &ctx, &reference).await?;
    let settled = conditions::is_true(&status.conditions, READY);
    let steady = observation.scale == ScaleState::Steady;
    Ok(Action::requeue(match hold_until {
        // Brokers left to unregister: look again soon, their pods are going.
        _ if !status.retired_brokers.is_empty() => ctx.settings.busy_requeue,
        // Held by a window or a pause with nothing else moving: look again
        // when it ends, not every few seconds until then.
        Some(until) if steady => ctx.settings.requeue_at(now, until),
        _ if settled => ctx.settings.idle_requeue,
        _ => ctx.settings.busy_requeue,
    }))
}

/// The broker StatefulSets this Cluster owns now.
async fn current_pools(
    ctx: &Context,
    namespace: &str,
    selector: &str,
    uid: &str,
) -> Result<Vec<CurrentPool>> {
    let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await?
        .into_iter()
        .filter(|s| s.owner_references().iter().any(|o| o.uid == uid))
        .map(|s| CurrentPool {
            statefulset: s.name_any(),
            node_id_start: s.spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
            replicas: s.spec.replicas.unwrap_or(1),
        })
        .collect())
}

/// Whether the brokers in `leaving` may go now; they are asked to drain
/// when they still hold replicas.
async fn scale_down(brokers: &mut Brokers<'_>, leaving: &[i32], remaining: usize) -> ScaleState {
    let kafka = match brokers.get().await {
        Ok(k) => k,
        Err(e) => return ScaleState::Failed(format!("scale-down waits: {e}")),
    };
    let facts = match kafka.facts().await {
        Ok(f) => f,
        Err(e) => {
            return ScaleState::Failed(format!("scale-down waits: reading topics failed: {e}"));
        }
    };
    if let Some(why) = scale::refusal(&facts.topics, remaining) {
        return ScaleState::Refused(why);
    }
    match kafka.is_drained(leaving).await {
        Ok(true) => ScaleState::Steady,
        Ok(false) => match kafka.drain(leaving).await {
            Ok(()) => ScaleState::Draining(format!(
                "moving partitions off brokers {leaving:?} before removing them"
            )),
            Err(e) => ScaleState::Failed(format!("cannot drain brokers {leaving:?}: {e}")),
        },
        Err(e) => ScaleState::Failed(format!(
            "cannot tell whether brokers {leaving:?} are drained: {e}"
        )),
    }
}

/// Unregisters the retired brokers whose pods are gone; returns the ones
/// still to unregister. A refusal (the broker still runs) or any failure
/// keeps the broker for a later reconcile.
async fn unregister_retired(
    brokers: &mut Brokers<'_>,
    retired: Vec<i32>,
    identities: &[crate::desired::cluster::BrokerIdentity],
    pods: &BTreeMap<String, PodView>,
    ctx: &Context,
    reference: &ObjectReference,
) -> Vec<i32> {
    if retired.is_empty() {
        return retired;
    }
    let desired: BTreeSet<i32> = identities.iter().map(|b| b.node_id).collect();
    let present: BTreeSet<i32> = pods.keys().filter_map(|p| scale::pod_node_id(p)).collect();
    let plan = scale::unregistering(&retired, &desired, &present);
    let mut later = plan.later;
    if plan.now.is_empty() {
        return later;
    }
    match brokers.get().await {
        Ok(kafka) => {
            for node_id in plan.now {
                match kafka.unregister(node_id).await {
                    Ok(()) => {
                        ctx.event(
                            reference,
                            false,
                            "Unregistered",
                            format!("broker {node_id} unregistered after scale-down"),
                        )
                        .await;
                    }
                    Err(e) => {
                        tracing::debug!(node_id, error = %e, "retired broker not unregistered yet");
                        later.push(node_id);
                    }
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "retired brokers not unregistered yet");
            later.extend(plan.now);
        }
    }
    later.sort_unstable();
    later
}

/// What [`roll_step`] found out and decided.
struct RollStep {
    decision: RollDecision,
    views: Vec<plan::BrokerPod>,
    cluster_id: Option<String>,
    /// The last restart, marked finished if its broker is back now.
    last_restart: Option<BrokerRestart>,
}

/// Asks the brokers for the facts and the planner for the next restart.
async fn roll_step(
    brokers: &mut Brokers<'_>,
    model: &ClusterModel,
    identities: &[crate::desired::cluster::BrokerIdentity],
    pods: &BTreeMap<String, PodView>,
    last_restart: Option<BrokerRestart>,
    now: Timestamp,
) -> std::result::Result<RollStep, String> {
    let kafka = brokers
        .get()
        .await
        .map_err(|e| format!("roll waits: {e}"))?;
    let facts = kafka
        .facts()
        .await
        .map_err(|e| format!("roll waits: reading partitions and ISR failed: {e}"))?;
    let views = cluster_status::broker_pods(model, identities, pods, facts.controller_id);
    let back = plan::all_back(&views, &facts.partitions);
    let last_restart = rollout::restart_progress(last_restart, back, now);
    let hash = model.config_hash();
    let decision = plan::next_restart(&RollInput {
        brokers: &views,
        partitions: &facts.partitions,
        desired_config_hash: &hash,
        desired_image: model.image(),
        hold: rollout::hold(now, model.rollout(), last_restart.as_ref()),
    });
    Ok(RollStep {
        decision,
        views,
        cluster_id: facts.cluster_id,
        last_restart,
    })
}

/// Deletes one broker pod; the StatefulSet recreates it from the new template.
async fn restart_pod(api: &Api<Pod>, pod: &str) -> Result<()> {
    // Delete the pod we looked at, not a replacement created meanwhile.
    let uid = api.get(pod).await?.uid();
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid,
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(pod, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes the volumes of brokers a pool no longer has, only where the
/// pool's `reclaimOnScaleDown` is Delete and the pod is gone.
async fn prune_volumes(
    ctx: &Context,
    model: &ClusterModel,
    namespace: &str,
    cluster: &str,
    pods: &BTreeMap<String, PodView>,
    reference: &ObjectReference,
) -> Result<()> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), namespace);
    for pool in model
        .pools()
        .iter()
        .filter(|p| p.reclaim == ReclaimPolicy::Delete)
    {
        let selector = format!("{CLUSTER_LABEL}={cluster},{POOL_LABEL}={}", pool.pool);
        let prefix = format!("data-{}-", pool.statefulset);
        for pvc in api.list(&ListParams::default().labels(&selector)).await? {
            let name = pvc.name_any();
            let Some(ordinal) = name
                .strip_prefix(&prefix)
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let pod = format!("{}-{ordinal}", pool.statefulset);
            if pool.node_ids().contains(&ordinal) || pods.contains_key(&pod) {
                continue;
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    ctx.event(
                        reference,
                        false,
                        "VolumeDeleted",
                        format!(
                            "deleted {name}: pool {} shrank and reclaims volumes",
                            pool.pool
                        ),
                    )
                    .await;
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Ready and desired Connect workers, when the Cluster runs any.
async fn connect_readiness(
    ctx: &Context,
    model: &ClusterModel,
    namespace: &str,
) -> Result<Option<(i32, i32)>> {
    let Some(desired) = model.connect_deployment() else {
        return Ok(None);
    };
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), namespace);
    let ready = api
        .get_opt(&model.connect_name())
        .await?
        .and_then(|d| d.status)
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    Ok(Some((ready, desired.spec.replicas.unwrap_or(1))))
}

/// Writes the status when it changed, and an Event per condition that flipped.
async fn write_status(
    api: &Api<Cluster>,
    name: &str,
    old: &ClusterStatus,
    new: &ClusterStatus,
    ctx: &Context,
    reference: &ObjectReference,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    patch_status(api, name, "Cluster", new).await?;
    for c in conditions::flips(&old.conditions, &new.conditions) {
        let warning = c.type_ == DEGRADED && c.status == "True";
        ctx.event(
            reference,
            warning,
            &c.reason,
            format!("{} is {}: {}", c.type_, c.status, c.message),
        )
        .await;
    }
    Ok(())
}
