//! The Topic reconciler: a finalizer around apply (create, grow, reconfigure,
//! revert drift) and cleanup (delete the topic when the policy says so),
//! talking only to the brokers of the Cluster named by `clusterRef`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Resource, ResourceExt};

use super::apply::patch_status;
use super::conditions::{self, Wanted};
use super::topic_plan::{TopicAction, TopicInput, plan_topic};
use super::{Context, paused_by_annotation};
use crate::crd::cluster::Cluster;
use crate::crd::topic::{DeletionPolicy, ManagementPolicy, Topic, TopicStatus};
use crate::kafka::KafkaOps;
use crate::validate::validate_topic;
use crate::{Error, Result};

/// Keeps a Topic until its topic is deleted from the brokers (or retained).
pub const TOPIC_FINALIZER: &str = "weir.dev/topic";
pub const READY: &str = "Ready";
pub const DRIFT_DETECTED: &str = "DriftDetected";

pub async fn reconcile(topic: Arc<Topic>, ctx: Arc<Context>) -> Result<Action> {
    let namespace = topic.namespace().ok_or(Error::MissingField {
        kind: "Topic",
        field: "metadata.namespace",
    })?;
    let api: Api<Topic> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, TOPIC_FINALIZER, topic, |event| async {
        match event {
            Finalizer::Apply(t) => apply(&t, &api, &namespace, &ctx).await,
            Finalizer::Cleanup(t) => cleanup(&t, &namespace, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The Cluster a Topic names, or a status saying it is missing.
async fn cluster_of(topic: &Topic, namespace: &str, ctx: &Context) -> Result<Option<Cluster>> {
    let clusters: Api<Cluster> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(clusters.get_opt(&topic.spec.cluster_ref).await?)
}

async fn connect(
    topic: &Topic,
    namespace: &str,
    ctx: &Context,
) -> std::result::Result<Arc<dyn KafkaOps>, String> {
    let bootstrap = ctx.bootstrap(&topic.spec.cluster_ref, namespace);
    ctx.kafka.connect(&bootstrap).await.map_err(|e| {
        format!(
            "cannot reach cluster {:?} at {bootstrap}: {e}",
            topic.spec.cluster_ref
        )
    })
}

async fn apply(topic: &Topic, api: &Api<Topic>, namespace: &str, ctx: &Context) -> Result<Action> {
    if paused_by_annotation(&topic.metadata) {
        return Ok(Action::await_change());
    }
    let old = topic.status.clone().unwrap_or_default();
    let generation = topic.metadata.generation;
    let reference = topic.object_ref(&());
    let now = ctx.clock.now();
    let not_ready = |reason: &str, message: String| TopicStatus {
        observed_generation: generation,
        conditions: conditions::set_one(
            &old.conditions,
            Wanted::new(READY, false, reason, message),
            generation,
            now,
        ),
        ..old.clone()
    };

    let Some(cluster) = cluster_of(topic, namespace, ctx).await? else {
        let status = not_ready(
            "ClusterNotFound",
            format!(
                "Cluster {:?} does not exist in {namespace}",
                topic.spec.cluster_ref
            ),
        );
        write_status(api, topic, &old, &status, ctx, &reference).await?;
        return Ok(Action::requeue(ctx.settings.busy_requeue));
    };
    if let Err(errors) = validate_topic(topic, Some(&cluster)) {
        // Config keys are the plan's business: reported, the rest applied.
        let fatal: Vec<String> = errors
            .iter()
            .filter(|e| !e.path.starts_with("spec.config"))
            .map(ToString::to_string)
            .collect();
        if !fatal.is_empty() {
            let status = not_ready("InvalidSpec", fatal.join("; "));
            write_status(api, topic, &old, &status, ctx, &reference).await?;
            return Ok(Action::requeue(ctx.settings.idle_requeue));
        }
    }
    let kafka = match connect(topic, namespace, ctx).await {
        Ok(k) => k,
        Err(why) => {
            let status = not_ready("BrokersUnreachable", why);
            write_status(api, topic, &old, &status, ctx, &reference).await?;
            return Ok(Action::requeue(ctx.settings.busy_requeue));
        }
    };

    let name = topic.topic_name().to_string();
    let observed = kafka.describe_topic(&name).await?;
    let plan = plan_topic(&TopicInput {
        name: &name,
        spec: &topic.spec,
        observed: observed.as_ref(),
        known_id: old.topic_id.as_deref(),
        spec_changed: old.observed_generation != generation,
    });
    let mut failure = None;
    for action in &plan.actions {
        let (result, reason, note) = match action {
            TopicAction::Create(new) => (
                kafka.create_topic(new).await,
                "TopicCreated",
                format!("created topic {name:?} with {} partitions", new.partitions),
            ),
            TopicAction::GrowPartitions(total) => (
                kafka.create_partitions(&name, *total).await,
                "PartitionsAdded",
                format!("grew topic {name:?} to {total} partitions"),
            ),
            TopicAction::AlterConfig(changes) => (
                kafka.alter_topic_config(&name, changes).await,
                if plan.drift.is_empty() {
                    "ConfigUpdated"
                } else {
                    "DriftReverted"
                },
                format!("set {changes:?} on topic {name:?}"),
            ),
        };
        match result {
            Ok(()) => ctx.event(&reference, false, reason, note).await,
            Err(e) => {
                failure = Some(format!("{reason} failed: {e}"));
                break;
            }
        }
    }
    let observed = if plan.actions.is_empty() {
        observed
    } else {
        kafka.describe_topic(&name).await?
    };

    let ready = match (&failure, plan.problems.first(), &observed) {
        (Some(why), _, _) => Wanted::new(READY, false, "ApplyFailed", why.clone()),
        (None, Some(p), _) => Wanted::new(
            READY,
            false,
            p.reason,
            plan.problems
                .iter()
                .map(|p| p.message.clone())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        (None, None, None) => Wanted::new(
            READY,
            false,
            "TopicNotFound",
            format!("topic {name:?} does not exist"),
        ),
        (None, None, Some(_)) => Wanted::new(
            READY,
            true,
            "Ready",
            format!("topic {name:?} matches the spec"),
        ),
    };
    let drift = if plan.drift.is_empty() {
        Wanted::new(DRIFT_DETECTED, false, "NoDrift", "")
    } else {
        let fields: Vec<&str> = plan.drift.iter().map(|d| d.field.as_str()).collect();
        let (reason, verb) = match topic.spec.management_policy {
            ManagementPolicy::Observe => ("Observed", "reported only (Observe)"),
            _ => ("Reverted", "reverted to the spec"),
        };
        Wanted::new(
            DRIFT_DETECTED,
            true,
            reason,
            format!("changed on the brokers: {}; {verb}", fields.join(", ")),
        )
    };
    let settled = ready.status && failure.is_none();
    let status = TopicStatus {
        observed_generation: generation,
        conditions: conditions::merge(&old.conditions, &[ready, drift], generation, now),
        topic_id: observed.as_ref().map(|o| o.id.clone()),
        cluster_id: kafka
            .cluster_id()
            .await
            .ok()
            .flatten()
            .or(old.cluster_id.clone()),
        partitions: observed.as_ref().map(|o| o.partitions),
        effective_config: observed.map(|o| o.effective).unwrap_or_default(),
        drift: plan.drift,
    };
    write_status(api, topic, &old, &status, ctx, &reference).await?;
    Ok(Action::requeue(if settled {
        ctx.settings.idle_requeue
    } else {
        ctx.settings.busy_requeue
    }))
}

async fn cleanup(topic: &Topic, namespace: &str, ctx: &Context) -> Result<Action> {
    let reference = topic.object_ref(&());
    let name = topic.topic_name().to_string();
    let keeps = topic.spec.deletion_policy == DeletionPolicy::Retain
        || topic.spec.management_policy == ManagementPolicy::Observe;
    // Only a topic this resource created or adopted is ever deleted.
    let Some(id) = topic.status.as_ref().and_then(|s| s.topic_id.clone()) else {
        return Ok(Action::await_change());
    };
    if keeps {
        ctx.event(
            &reference,
            false,
            "TopicRetained",
            format!("kept topic {name:?} on the brokers"),
        )
        .await;
        return Ok(Action::await_change());
    }
    if cluster_of(topic, namespace, ctx).await?.is_none() {
        // The brokers went with their Cluster; nothing left to delete.
        return Ok(Action::await_change());
    }
    let kafka = connect(topic, namespace, ctx)
        .await
        .map_err(Error::Unreachable)?;
    match kafka.describe_topic(&name).await? {
        Some(o) if o.id == id => {
            kafka.delete_topic(&name).await?;
            ctx.event(
                &reference,
                false,
                "TopicDeleted",
                format!("deleted topic {name:?}"),
            )
            .await;
        }
        _ => {}
    }
    Ok(Action::await_change())
}

async fn write_status(
    api: &Api<Topic>,
    topic: &Topic,
    old: &TopicStatus,
    new: &TopicStatus,
    ctx: &Context,
    reference: &ObjectReference,
) -> Result<()> {
    if old == new {
        return Ok(());
    }
    patch_status(api, &topic.name_any(), "Topic", new).await?;
    for c in conditions::flips(&old.conditions, &new.conditions) {
        let warning = (c.type_ == READY && c.status == "False")
            || (c.type_ == DRIFT_DETECTED && c.status == "True");
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
