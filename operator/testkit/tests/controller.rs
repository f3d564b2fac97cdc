//! A kube-runtime Controller with the finalizer helper runs unchanged
//! against the fake API server.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Error as FinalizerError, Event, finalizer};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use weir_kube_testkit::FakeApiServer;

const FINALIZER: &str = "weir.dev/cleanup";

struct Ctx {
    topics: Api<DynamicObject>,
    config_maps: Api<ConfigMap>,
}

fn topics_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("weir.dev", "v1alpha1", "Topic"),
        "topics",
    )
}

async fn reconcile(
    topic: Arc<DynamicObject>,
    ctx: Arc<Ctx>,
) -> Result<Action, FinalizerError<kube::Error>> {
    let ctx2 = ctx.clone();
    finalizer(&ctx.topics, FINALIZER, topic, |event| async move {
        match event {
            Event::Apply(t) => {
                let owner = t.controller_owner_ref(&topics_resource()).ok_or_else(|| {
                    kube::Error::Api(Box::new(kube::core::Status::failure("no uid", "Invalid")))
                })?;
                let cm = json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": format!("{}-config", t.name_any()), "ownerReferences": [owner]},
                    "data": {"partitions": t.data["spec"]["partitions"].to_string()},
                });
                let pp = PatchParams::apply("weir-operator").force();
                ctx2.config_maps.patch(&format!("{}-config", t.name_any()), &pp, &Patch::Apply(&cm)).await?;
                let status = json!({
                    "apiVersion": "weir.dev/v1alpha1",
                    "kind": "Topic",
                    "status": {"ready": true, "observedGeneration": t.meta().generation},
                });
                ctx2.topics.patch_status(&t.name_any(), &pp, &Patch::Apply(&status)).await?;
                Ok(Action::requeue(Duration::from_secs(300)))
            }
            Event::Cleanup(_) => Ok(Action::await_change()),
        }
    })
    .await
}

fn error_policy(_: Arc<DynamicObject>, _: &FinalizerError<kube::Error>, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(100))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn controller_with_finalizer_reconciles_and_cleans_up() {
    let (server, client) = FakeApiServer::start().await.unwrap();
    let topics: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns", &topics_resource());
    let config_maps: Api<ConfigMap> = Api::namespaced(client, "ns");
    let ctx = Arc::new(Ctx {
        topics: topics.clone(),
        config_maps: config_maps.clone(),
    });
    let controller = Controller::new_with(
        topics.clone(),
        watcher::Config::default(),
        topics_resource(),
    )
    .run(reconcile, error_policy, ctx)
    .for_each(|_| async {});
    let running = tokio::spawn(controller);

    let t =
        DynamicObject::new("orders", &topics_resource()).data(json!({"spec": {"partitions": 3}}));
    topics.create(&PostParams::default(), &t).await.unwrap();

    eventually("the child ConfigMap and Ready status", || async {
        let ready = topics
            .get("orders")
            .await
            .is_ok_and(|t| t.data["status"]["ready"] == true);
        ready && config_maps.get("orders-config").await.is_ok()
    })
    .await;
    let t = topics.get("orders").await.unwrap();
    assert_eq!(t.finalizers(), [FINALIZER.to_string()]);
    assert_eq!(t.data["status"]["observedGeneration"], 1);
    let cm = config_maps.get("orders-config").await.unwrap();
    assert_eq!(cm.owner_references()[0].uid, t.uid().unwrap());
    assert_eq!(cm.data.unwrap()["partitions"], "3");

    let applies = server
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH" && r.field_manager.as_deref() == Some("weir-operator"))
        .count();
    assert!(applies >= 2);

    topics
        .delete("orders", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the Topic, then its ConfigMap, to be gone", || async {
        topics.get("orders").await.is_err() && config_maps.get("orders-config").await.is_err()
    })
    .await;
    running.abort();
}
