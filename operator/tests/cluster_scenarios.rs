//! Cluster scenarios through the real kube client, the real controllers and
//! reconcilers, against the fake API server and an in-memory cluster.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::*;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use weir_operator::crd::cluster::{Cluster, MaintenanceWindow, Rollout};
use weir_operator::kafka::NewTopicSpec;
use weir_operator::kafka::memory::Call;
use weir_operator::reconcile::clock::ManualClock;

fn orders(rf: i16, min_insync: &str) -> NewTopicSpec {
    NewTopicSpec {
        name: "orders".into(),
        partitions: 3,
        replication_factor: rf,
        config: BTreeMap::from([("min.insync.replicas".into(), min_insync.into())]),
    }
}

async fn ready_cluster(w: &World, replicas: i32) -> Cluster {
    ready_cluster_from(w, &cluster("demo", replicas)).await
}

/// Creates `c`, runs its pods and waits until it is Ready.
async fn ready_cluster_from(w: &World, c: &Cluster) -> Cluster {
    let created = create(&w.client, c).await;
    eventually("the broker StatefulSet", || async {
        get::<StatefulSet>(&w.client, "demo-main").await.is_some()
    })
    .await;
    sync_statefulsets(&w.client, true).await;
    eventually("Ready", || async {
        get::<Cluster>(&w.client, "demo")
            .await
            .and_then(|c| c.status)
            .is_some_and(|s| condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True"))
    })
    .await;
    created
}

/// Sets the main pool's replicas, as a user editing the Cluster would.
async fn scale_main_pool(w: &World, replicas: i32) {
    patch_spec::<Cluster>(
        &w.client,
        "demo",
        json!({"brokerPools": [{"name": "main", "replicas": replicas, "storage": {"size": "1Gi"}}]}),
    )
    .await;
}

/// Waits until the operator has asked the brokers for one drain of `ids`.
async fn drain_requested(w: &World, ids: &[i32]) {
    eventually(&format!("one drain of brokers {ids:?}"), || async {
        w.kafka.calls().contains(&Call::Drain(ids.to_vec()))
    })
    .await;
}

fn status(c: Option<Cluster>) -> weir_operator::crd::cluster::ClusterStatus {
    c.and_then(|c| c.status).unwrap_or_default()
}

fn at(time: &str) -> Timestamp {
    time.parse().expect("RFC 3339 time")
}

fn with_rollout(mut c: Cluster, windows: &[(&str, &str)], pause: Option<&str>) -> Cluster {
    c.spec.rollout = Some(Rollout {
        maintenance_windows: windows
            .iter()
            .map(|(schedule, duration)| MaintenanceWindow {
                schedule: (*schedule).into(),
                duration: (*duration).into(),
            })
            .collect(),
        pause_between_brokers: pause.map(Into::into),
    });
    c
}

/// Waits until the operator has run `n` more Cluster reconciles, so a
/// test can tell that something did not happen.
async fn after_reconciles(w: &World, n: u64) {
    let start = w.operator.metrics.reconciles("Cluster");
    eventually("more reconciles", || async {
        w.operator.metrics.reconciles("Cluster") >= start + n
    })
    .await;
}

/// Pod name → uid, to tell a restarted pod from the one before.
async fn pod_uids(w: &World) -> BTreeMap<String, String> {
    Api::<Pod>::namespaced(w.client.clone(), NS)
        .list(&Default::default())
        .await
        .expect("pods")
        .iter()
        .filter_map(|p| Some((p.name_any(), p.uid()?)))
        .collect()
}

async fn blocked_reason(w: &World) -> Option<String> {
    status(get::<Cluster>(&w.client, "demo").await).roll_blocked_reason
}

#[tokio::test]
async fn a_cluster_gets_every_child_with_owner_refs_and_becomes_ready_with_its_pods() {
    let w = world(&[0, 1, 2]).await;
    let created = create(&w.client, &cluster("demo", 3)).await;
    let uid = created.uid().expect("uid");
    eventually("all children", || async {
        get::<StatefulSet>(&w.client, "demo-main").await.is_some()
            && get::<PodDisruptionBudget>(&w.client, "demo-brokers")
                .await
                .is_some()
    })
    .await;
    let owners = vec![
        get::<ServiceAccount>(&w.client, "demo")
            .await
            .expect("sa")
            .owner_references()
            .to_vec(),
        get::<ConfigMap>(&w.client, "demo-config")
            .await
            .expect("cm")
            .owner_references()
            .to_vec(),
        get::<Service>(&w.client, "demo-brokers")
            .await
            .expect("headless")
            .owner_references()
            .to_vec(),
        get::<Service>(&w.client, "demo-bootstrap")
            .await
            .expect("bootstrap")
            .owner_references()
            .to_vec(),
        get::<StatefulSet>(&w.client, "demo-main")
            .await
            .expect("sts")
            .owner_references()
            .to_vec(),
        get::<PodDisruptionBudget>(&w.client, "demo-brokers")
            .await
            .expect("pdb")
            .owner_references()
            .to_vec(),
    ];
    for refs in owners {
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].uid, uid);
        assert_eq!(refs[0].controller, Some(true));
    }
    // Without pods the cluster is not ready, and says why.
    eventually("a status without ready brokers", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Ready")
            .is_some_and(|c| c.status == "False" && c.reason == "BrokersNotReady")
    })
    .await;

    sync_statefulsets(&w.client, false).await;
    let s = status(get::<Cluster>(&w.client, "demo").await);
    assert!(condition(&s.conditions, "Ready").is_none_or(|c| c.status != "True"));
    for pod in pod_names(&w.client).await {
        set_pod_ready(&w.client, &pod, true).await;
    }
    eventually("Ready once the pods are", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    let s = status(get::<Cluster>(&w.client, "demo").await);
    assert_eq!(s.observed_generation, Some(1));
    assert_eq!(s.ready_brokers.as_deref(), Some("3/3"));
    assert_eq!(s.brokers.len(), 3);
    assert!(s.brokers.iter().all(|b| b.ready && !b.needs_restart));
    assert_eq!(s.pools[0].ready_replicas, 3);
    assert_eq!(s.listeners[0].bootstrap_servers, bootstrap("demo"));
    assert_eq!(s.cluster_id.as_deref(), Some("cluster-demo"));
    assert!(condition(&s.conditions, "Degraded").is_some_and(|c| c.status == "False"));

    // Every write of a child was a server-side apply by the one field manager.
    let writes: Vec<_> = w
        .server
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == "PATCH" && !r.path.contains("/pods/") && !r.path.contains("/events")
        })
        .collect();
    assert!(!writes.is_empty());
    for r in writes {
        assert_eq!(
            r.field_manager.as_deref(),
            Some("weir-operator"),
            "{}",
            r.path
        );
        assert!(r.query.contains("force=true"), "{}", r.path);
    }
}

#[tokio::test]
async fn a_static_change_restarts_one_broker_at_a_time_and_waits_for_the_isr() {
    let w = world(&[0, 1, 2]).await;
    w.kafka.create_out_of_band(&orders(3, "2")).expect("topic");
    w.kafka.set_controller(Some(0));
    ready_cluster(&w, 3).await;
    let all = ["demo-main-0", "demo-main-1", "demo-main-2"];
    assert_eq!(pod_names(&w.client).await, all);

    patch_spec::<Cluster>(
        &w.client,
        "demo",
        json!({"config": {"num.partitions": "6"}}),
    )
    .await;
    // The active controller (0) goes last: broker 1 first.
    eventually("broker 1 restarted", || async {
        pod_names(&w.client).await == ["demo-main-0", "demo-main-2"]
    })
    .await;
    // Broker 1 comes back but is not yet in every ISR.
    for p in 0..3 {
        w.kafka.set_isr("orders", p, &[0, 2]);
    }
    sync_statefulsets(&w.client, true).await;
    eventually("the roll to wait for the ISR", || async {
        status(get::<Cluster>(&w.client, "demo").await)
            .roll_blocked_reason
            .is_some_and(|r| r.contains("fully in sync"))
    })
    .await;
    assert_eq!(
        pod_names(&w.client).await,
        all,
        "no broker may go while an ISR is short"
    );
    let s = status(get::<Cluster>(&w.client, "demo").await);
    let needing: Vec<i32> = s
        .brokers
        .iter()
        .filter(|b| b.needs_restart)
        .map(|b| b.node_id)
        .collect();
    assert_eq!(needing, [0, 2]);
    assert_eq!(
        s.brokers[0].restart_reason.as_deref(),
        Some("broker config changed")
    );
    assert!(condition(&s.conditions, "RollingRestart").is_some_and(|c| c.status == "True"));

    w.kafka.heal_isr();
    eventually("broker 2 restarted", || async {
        pod_names(&w.client).await == ["demo-main-0", "demo-main-1"]
    })
    .await;
    sync_statefulsets(&w.client, true).await;
    eventually("broker 0 restarted last", || async {
        pod_names(&w.client).await == ["demo-main-1", "demo-main-2"]
    })
    .await;
    sync_statefulsets(&w.client, true).await;
    eventually("the roll to finish", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "RollingRestart").is_some_and(|c| c.status == "False")
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    assert!(
        event_reasons(&w.client)
            .await
            .iter()
            .any(|r| r == "RestartingBroker")
    );
}

#[tokio::test]
async fn a_restart_starts_only_inside_a_maintenance_window() {
    // A Wednesday noon; the window is 02:00-03:00 UTC every day.
    let clock = ManualClock::new(at("2026-11-25T12:00:00Z"));
    let w = world_with_clock(&[0, 1, 2], Arc::new(clock.clone())).await;
    w.kafka.create_out_of_band(&orders(3, "2")).expect("topic");
    ready_cluster_from(
        &w,
        &with_rollout(cluster("demo", 3), &[("0 2 * * *", "1h")], None),
    )
    .await;
    let before = pod_uids(&w).await;

    patch_spec::<Cluster>(
        &w.client,
        "demo",
        json!({"config": {"num.partitions": "6"}}),
    )
    .await;
    eventually("the roll held outside the window", || async {
        blocked_reason(&w).await.as_deref()
            == Some("outside maintenance windows; next opens at 2026-11-26T02:00:00Z")
    })
    .await;
    after_reconciles(&w, 3).await;
    assert_eq!(pod_uids(&w).await, before, "no restart outside the window");
    let s = status(get::<Cluster>(&w.client, "demo").await);
    assert!(s.brokers.iter().all(|b| b.needs_restart));
    assert!(
        condition(&s.conditions, "RollingRestart")
            .is_some_and(|c| c.status == "True" && c.reason == "Blocked")
    );

    // The window opens: the roll starts.
    clock.set(at("2026-11-26T02:30:00Z"));
    eventually("broker 0 restarted in the window", || async {
        pod_names(&w.client).await == ["demo-main-1", "demo-main-2"]
    })
    .await;
    // It closes while broker 0 restarts: broker 0 comes back, but no other
    // broker goes until the next window.
    clock.set(at("2026-11-26T03:00:00Z"));
    // A reconcile already under way read the old time; the pod comes back
    // only once one has started since (a real clock never jumps mid-way).
    after_reconciles(&w, 2).await;
    sync_statefulsets(&w.client, true).await;
    eventually("the roll held until the next window", || async {
        blocked_reason(&w).await.as_deref()
            == Some("outside maintenance windows; next opens at 2026-11-27T02:00:00Z")
    })
    .await;
    after_reconciles(&w, 3).await;
    let now = pod_uids(&w).await;
    assert_ne!(now["demo-main-0"], before["demo-main-0"]);
    assert_eq!(now["demo-main-1"], before["demo-main-1"]);
    assert_eq!(now["demo-main-2"], before["demo-main-2"]);

    clock.set(at("2026-11-27T02:00:00Z"));
    eventually("broker 1 restarted in the next window", || async {
        pod_names(&w.client).await == ["demo-main-0", "demo-main-2"]
    })
    .await;
}

#[tokio::test]
async fn the_next_broker_waits_the_pause_after_the_last_is_back() {
    let clock = ManualClock::new(at("2026-11-25T12:00:00Z"));
    let mut w = world_with_clock(&[0, 1, 2], Arc::new(clock.clone())).await;
    w.kafka.create_out_of_band(&orders(3, "2")).expect("topic");
    ready_cluster_from(&w, &with_rollout(cluster("demo", 3), &[], Some("5m"))).await;
    let before = pod_uids(&w).await;

    patch_spec::<Cluster>(
        &w.client,
        "demo",
        json!({"config": {"num.partitions": "6"}}),
    )
    .await;
    eventually("broker 0 restarted", || async {
        pod_names(&w.client).await == ["demo-main-1", "demo-main-2"]
    })
    .await;
    // Back a minute later: the pause runs from then.
    clock.advance(SignedDuration::from_mins(1));
    // As above: only reconciles that read the new time may see it back.
    after_reconciles(&w, 2).await;
    sync_statefulsets(&w.client, true).await;
    eventually("the pause", || async {
        blocked_reason(&w).await.as_deref()
            == Some("pausing between brokers until 2026-11-25T12:06:00Z")
    })
    .await;
    let s = status(get::<Cluster>(&w.client, "demo").await);
    let last = s.last_broker_restart.expect("the restart is recorded");
    assert_eq!((last.node_id, last.pod.as_str()), (0, "demo-main-0"));
    assert_eq!(last.started_at.0, at("2026-11-25T12:00:00Z"));
    assert_eq!(
        last.finished_at.map(|t| t.0),
        Some(at("2026-11-25T12:01:00Z"))
    );

    // The pause is in the status, not in the operator's memory: a new
    // operator keeps to it.
    w.operator.task.abort();
    w.operator = start_operator_with_clock(
        &w.client,
        Arc::new(w.connector.clone()),
        settings(),
        None,
        Arc::new(clock.clone()),
    );
    clock.advance(SignedDuration::from_mins(4));
    after_reconciles(&w, 3).await;
    let now = pod_uids(&w).await;
    assert_eq!(now["demo-main-1"], before["demo-main-1"], "still pausing");
    assert_eq!(now["demo-main-2"], before["demo-main-2"]);
    assert_eq!(
        blocked_reason(&w).await.as_deref(),
        Some("pausing between brokers until 2026-11-25T12:06:00Z")
    );

    clock.advance(SignedDuration::from_mins(1));
    eventually("broker 1 restarted after the pause", || async {
        pod_names(&w.client).await == ["demo-main-0", "demo-main-2"]
    })
    .await;
}

#[tokio::test]
async fn a_dynamic_change_is_applied_live_without_a_restart() {
    let w = world(&[0, 1, 2]).await;
    ready_cluster(&w, 3).await;
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), NS);
    let before: Vec<String> = pods
        .list(&Default::default())
        .await
        .expect("pods")
        .iter()
        .filter_map(|p| p.uid())
        .collect();

    patch_spec::<Cluster>(
        &w.client,
        "demo",
        json!({"config": {"log.retention.ms": "3600000"}}),
    )
    .await;
    eventually("the setting applied live", || async {
        w.kafka
            .broker_config()
            .get("log.retention.ms")
            .map(String::as_str)
            == Some("3600000")
    })
    .await;
    eventually("the new generation observed", || async {
        status(get::<Cluster>(&w.client, "demo").await).observed_generation == Some(2)
    })
    .await;
    let after: Vec<String> = pods
        .list(&Default::default())
        .await
        .expect("pods")
        .iter()
        .filter_map(|p| p.uid())
        .collect();
    assert_eq!(before, after, "no broker pod may be restarted");
    let s = status(get::<Cluster>(&w.client, "demo").await);
    assert!(s.brokers.iter().all(|b| !b.needs_restart));
    assert!(
        w.kafka
            .calls()
            .contains(&Call::BrokerConfig(vec!["log.retention.ms".into()]))
    );
}

#[tokio::test]
async fn scale_down_drains_first_and_shrinks_only_when_drained() {
    let w = world(&[0, 1, 2]).await;
    w.kafka.create_out_of_band(&orders(2, "1")).expect("topic");
    ready_cluster(&w, 3).await;

    scale_main_pool(&w, 2).await;
    drain_requested(&w, &[2]).await;
    eventually("the status to say so", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Reconciling").is_some_and(|c| c.reason == "Draining")
    })
    .await;
    let sts = get::<StatefulSet>(&w.client, "demo-main")
        .await
        .expect("sts");
    assert_eq!(
        sts.spec.replicas,
        Some(3),
        "no shrink before the drain finished"
    );

    w.kafka.finish_drain();
    eventually("the shrink", || async {
        get::<StatefulSet>(&w.client, "demo-main")
            .await
            .is_some_and(|s| s.spec.replicas == Some(2))
    })
    .await;
    sync_statefulsets(&w.client, true).await;
    eventually("Ready with two brokers", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        s.ready_brokers.as_deref() == Some("2/2")
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    // The pool retains volumes: the leaving broker's PVC stays.
    assert!(
        get::<PersistentVolumeClaim>(&w.client, "data-demo-main-2")
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_broker_removed_by_scale_down_is_unregistered_once_its_pod_is_gone() {
    let w = world(&[0, 1, 2]).await;
    w.kafka.create_out_of_band(&orders(2, "1")).expect("topic");
    ready_cluster(&w, 3).await;

    scale_main_pool(&w, 2).await;
    drain_requested(&w, &[2]).await;
    w.kafka.finish_drain();
    eventually(
        "the shrink, with broker 2 remembered as retired",
        || async {
            let shrunk = get::<StatefulSet>(&w.client, "demo-main")
                .await
                .is_some_and(|s| s.spec.replicas == Some(2));
            shrunk && status(get::<Cluster>(&w.client, "demo").await).retired_brokers == [2]
        },
    )
    .await;
    // Its pod still exists: the broker may still run, so it stays registered.
    after_reconciles(&w, 2).await;
    assert_eq!(w.kafka.registered(), [0, 1, 2]);
    assert_eq!(
        status(get::<Cluster>(&w.client, "demo").await).retired_brokers,
        [2]
    );

    // The StatefulSet controller deletes the pod and the broker stops.
    sync_statefulsets(&w.client, true).await;
    assert_eq!(pod_names(&w.client).await, ["demo-main-0", "demo-main-1"]);
    w.kafka.stop_broker(2);
    eventually("broker 2 unregistered and no longer retired", || async {
        w.kafka.registered() == [0, 1]
            && status(get::<Cluster>(&w.client, "demo").await)
                .retired_brokers
                .is_empty()
    })
    .await;
    assert!(w.kafka.calls().contains(&Call::Unregister(2)));
    eventually("the Unregistered event", || async {
        event_reasons(&w.client)
            .await
            .iter()
            .any(|r| r == "Unregistered")
    })
    .await;
    eventually("Ready with two brokers", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        s.ready_brokers.as_deref() == Some("2/2")
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
}

#[tokio::test]
async fn scale_down_by_two_drains_both_and_removes_both() {
    let w = world(&[0, 1, 2, 3, 4]).await;
    w.kafka.create_out_of_band(&orders(3, "2")).expect("topic");
    ready_cluster(&w, 5).await;
    assert!(
        w.kafka
            .replicas()
            .values()
            .any(|r| r.contains(&3) && r.contains(&4)),
        "some partition has replicas on both leaving brokers"
    );

    scale_main_pool(&w, 3).await;
    drain_requested(&w, &[3, 4]).await;
    eventually("the status to say so", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Reconciling").is_some_and(|c| c.reason == "Draining")
            && condition(&s.conditions, "Degraded").is_some_and(|c| c.status == "False")
    })
    .await;
    assert_eq!(
        get::<StatefulSet>(&w.client, "demo-main")
            .await
            .expect("sts")
            .spec
            .replicas,
        Some(5),
        "no shrink before the drain finished"
    );

    w.kafka.finish_drain();
    eventually("the shrink to three", || async {
        get::<StatefulSet>(&w.client, "demo-main")
            .await
            .is_some_and(|s| s.spec.replicas == Some(3))
    })
    .await;
    sync_statefulsets(&w.client, true).await;
    eventually("Ready with three brokers", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        s.ready_brokers.as_deref() == Some("3/3")
            && condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(
        pod_names(&w.client).await,
        ["demo-main-0", "demo-main-1", "demo-main-2"]
    );
    for (partition, replicas) in w.kafka.replicas() {
        assert_eq!(
            replicas.len(),
            3,
            "{partition:?} keeps its replication factor"
        );
        assert!(
            replicas.iter().all(|r| (0..3).contains(r)),
            "{partition:?} is on {replicas:?}"
        );
    }
    let drains: Vec<Call> = w
        .kafka
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Drain(_)))
        .collect();
    assert_eq!(drains, [Call::Drain(vec![3, 4])], "one drain, both brokers");
}

#[tokio::test]
async fn scale_down_below_a_replication_factor_is_refused() {
    let w = world(&[0, 1, 2]).await;
    w.kafka.create_out_of_band(&orders(3, "2")).expect("topic");
    ready_cluster(&w, 3).await;

    scale_main_pool(&w, 2).await;
    eventually("the refusal", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Degraded").is_some_and(|c| {
            c.status == "True" && c.reason == "ScaleDownRefused" && c.message.contains("\"orders\"")
        })
    })
    .await;
    let sts = get::<StatefulSet>(&w.client, "demo-main")
        .await
        .expect("sts");
    assert_eq!(sts.spec.replicas, Some(3));
    assert!(!w.kafka.calls().iter().any(|c| matches!(c, Call::Drain(_))));
    assert_eq!(pod_names(&w.client).await.len(), 3);
}

#[tokio::test]
async fn deleting_a_cluster_removes_its_children_but_keeps_the_volumes() {
    let w = world(&[0, 1, 2]).await;
    ready_cluster(&w, 3).await;
    assert!(
        get::<PersistentVolumeClaim>(&w.client, "data-demo-main-0")
            .await
            .is_some()
    );

    Api::<Cluster>::namespaced(w.client.clone(), NS)
        .delete("demo", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the children gone", || async {
        get::<StatefulSet>(&w.client, "demo-main").await.is_none()
            && get::<Service>(&w.client, "demo-bootstrap").await.is_none()
            && get::<ConfigMap>(&w.client, "demo-config").await.is_none()
            && pod_names(&w.client).await.is_empty()
    })
    .await;
    for i in 0..3 {
        assert!(
            get::<PersistentVolumeClaim>(&w.client, &format!("data-demo-main-{i}"))
                .await
                .is_some()
        );
    }
}

#[tokio::test]
async fn a_paused_cluster_is_left_alone_and_says_so() {
    let w = world(&[0]).await;
    let mut c = cluster("demo", 1);
    c.metadata.annotations = Some(BTreeMap::from([(
        "weir.dev/paused".to_string(),
        "true".to_string(),
    )]));
    create(&w.client, &c).await;
    eventually("the paused condition", || async {
        let s = status(get::<Cluster>(&w.client, "demo").await);
        condition(&s.conditions, "Reconciling").is_some_and(|c| c.reason == "Paused")
    })
    .await;
    assert!(get::<StatefulSet>(&w.client, "demo-main").await.is_none());
}

#[tokio::test]
async fn children_no_longer_desired_are_pruned() {
    let w = world(&[0]).await;
    let mut c = cluster("demo", 1);
    c.spec.connect = Some(weir_operator::crd::cluster::ConnectSpec {
        replicas: 1,
        ..Default::default()
    });
    create(&w.client, &c).await;
    eventually("the Connect service", || async {
        get::<Service>(&w.client, "demo-connect").await.is_some()
    })
    .await;
    patch_spec::<Cluster>(&w.client, "demo", json!({"connect": null})).await;
    eventually("the Connect service pruned", || async {
        get::<Service>(&w.client, "demo-connect").await.is_none()
            && get::<k8s_openapi::api::apps::v1::Deployment>(&w.client, "demo-connect")
                .await
                .is_none()
    })
    .await;
    assert!(get::<Service>(&w.client, "demo-bootstrap").await.is_some());
}
