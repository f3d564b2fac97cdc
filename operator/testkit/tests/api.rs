//! Each behaviour of the fake API server, checked through the real kube client.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};
use weir_kube_testkit::FakeApiServer;

fn cm(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..ConfigMap::default()
    }
}

fn topic_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("weir.dev", "v1alpha1", "Topic"),
        "topics",
    )
}

fn topic(name: &str, spec: Value) -> DynamicObject {
    DynamicObject::new(name, &topic_resource()).data(json!({ "spec": spec }))
}

fn api_status(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn sts(name: &str, replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: StatefulSetSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
                ..LabelSelector::default()
            },
            service_name: Some(name.into()),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
}

#[tokio::test]
async fn create_get_list_delete_with_metadata() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let pp = PostParams::default();

    let a = api.create(&pp, &cm("a", &[("app", "web")])).await.unwrap();
    let b = api.create(&pp, &cm("b", &[("app", "db")])).await.unwrap();
    assert_eq!(a.metadata.namespace.as_deref(), Some("ns"));
    assert!(a.metadata.uid.is_some() && a.metadata.uid != b.metadata.uid);
    assert!(a.metadata.creation_timestamp.is_some());
    assert_eq!(a.metadata.generation, Some(1));
    let rv = |c: &ConfigMap| {
        c.metadata
            .resource_version
            .clone()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(
        rv(&b) > rv(&a),
        "every write bumps the global resourceVersion"
    );

    let (code, reason) = api_status(api.create(&pp, &cm("a", &[])).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    assert_eq!(api.get("a").await.unwrap().data, a.data);
    let (code, reason) = api_status(api.get("missing").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));

    let all = api.list(&ListParams::default()).await.unwrap();
    assert_eq!(all.items.len(), 2);
    assert!(all.metadata.resource_version.is_some());
    let web = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap();
    assert_eq!(
        web.items
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["a"]
    );
    let not_web = api
        .list(&ListParams::default().labels("app!=web"))
        .await
        .unwrap();
    assert_eq!(not_web.items.len(), 1);
    let elsewhere: Api<ConfigMap> = Api::namespaced(api.clone().into_client(), "other");
    assert!(
        elsewhere
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_status(api.get("a").await.unwrap_err()).0, 404);
    assert_eq!(
        api_status(api.delete("a", &DeleteParams::default()).await.unwrap_err()).0,
        404
    );
}

#[tokio::test]
async fn replace_checks_resource_version_and_merge_patch_merges() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<StatefulSet> = Api::namespaced(client, "ns");
    let created = api
        .create(&PostParams::default(), &sts("web", 1))
        .await
        .unwrap();

    let mut stale = created.clone();
    let mut fresh = created.clone();
    fresh.spec.replicas = Some(2);
    let replaced = api
        .replace("web", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.spec.replicas, Some(2));
    assert_eq!(replaced.metadata.generation, Some(2));
    assert_eq!(replaced.metadata.uid, created.metadata.uid);

    stale.spec.replicas = Some(5);
    let (code, reason) = api_status(
        api.replace("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let patch = json!({"metadata": {"labels": {"tier": "front"}}, "spec": {"replicas": 3}});
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.spec.replicas, Some(3));
    assert_eq!(
        patched.spec.service_name.as_deref(),
        Some("web"),
        "untouched fields stay"
    );
    assert_eq!(patched.metadata.labels.unwrap()["tier"], "front");
    assert_eq!(patched.metadata.generation, Some(3));

    let label_only = json!({"metadata": {"labels": {"tier": "back"}}});
    let p = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&label_only))
        .await
        .unwrap();
    assert_eq!(
        p.metadata.generation,
        Some(3),
        "metadata changes do not bump generation"
    );
    let same = api
        .patch("web", &PatchParams::default(), &Patch::Merge(&label_only))
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, p.metadata.resource_version,
        "a no-op write changes nothing"
    );
}

#[tokio::test]
async fn server_side_apply_tracks_fields_per_manager() {
    let (server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client, "ns", &topic_resource());
    let apply = |m: &str| PatchParams::apply(m);

    let t = topic(
        "orders",
        json!({"partitions": 3, "config": {"retention.ms": "1000", "cleanup.policy": "delete"}}),
    );
    let created = api
        .patch("orders", &apply("op"), &Patch::Apply(&t))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());

    // Another manager owns one extra field.
    let other = topic("orders", json!({"config": {"segment.bytes": "100"}}));
    api.patch("orders", &apply("other"), &Patch::Apply(&other))
        .await
        .unwrap();

    // The first manager stops applying retention.ms: it is removed; segment.bytes stays.
    let t2 = topic(
        "orders",
        json!({"partitions": 3, "config": {"cleanup.policy": "delete"}}),
    );
    let after = api
        .patch("orders", &apply("op"), &Patch::Apply(&t2))
        .await
        .unwrap();
    assert_eq!(
        after.data["spec"]["config"],
        json!({"cleanup.policy": "delete", "segment.bytes": "100"})
    );
    assert_eq!(after.metadata.generation, Some(3));

    // Re-applying the same thing is a no-op.
    let again = api
        .patch("orders", &apply("op"), &Patch::Apply(&t2))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        after.metadata.resource_version
    );
    assert_eq!(again.metadata.generation, Some(3));

    // A label-only apply does not bump generation.
    let mut labelled = t2.clone();
    labelled.metadata.labels = Some(BTreeMap::from([("a".to_string(), "b".to_string())]));
    let l = api
        .patch("orders", &apply("op"), &Patch::Apply(&labelled))
        .await
        .unwrap();
    assert_eq!(l.metadata.generation, Some(3));

    // Changing a field another manager owns conflicts unless forced.
    let grab = topic("orders", json!({"partitions": 6}));
    let (code, reason) = api_status(
        api.patch("orders", &apply("other"), &Patch::Apply(&grab))
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    let forced = api
        .patch("orders", &apply("other").force(), &Patch::Apply(&grab))
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["partitions"], 6);
    assert_eq!(forced.metadata.generation, Some(4));
    let owners = server.managed_fields("weir.dev/v1alpha1", "topics", "ns", "orders");
    assert!(owners["other"].contains(&vec!["spec".to_string(), "partitions".to_string()]));
    assert!(!owners["op"].contains(&vec!["spec".to_string(), "partitions".to_string()]));
}

#[tokio::test]
async fn status_subresource_is_separate_from_the_main_resource() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(client, "ns", &topic_resource());
    let created = api
        .create(
            &PostParams::default(),
            &topic("t", json!({"partitions": 1})),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));

    let status = json!({"status": {"ready": true, "observedGeneration": 1}});
    let s = api
        .patch_status("t", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    assert_eq!(s.data["status"]["ready"], true);
    assert_eq!(
        s.metadata.generation,
        Some(1),
        "status writes never bump generation"
    );

    let mut applied = topic("t", json!({}));
    applied.data = json!({"status": {"ready": false}});
    let s = api
        .patch_status(
            "t",
            &PatchParams::apply("op").force(),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(s.data["status"]["ready"], false);
    assert_eq!(s.data["spec"]["partitions"], 1);
    assert_eq!(s.metadata.generation, Some(1));

    // A status write cannot change the spec.
    let sneaky = json!({"spec": {"partitions": 9}, "status": {"ready": true}});
    let s = api
        .patch_status("t", &PatchParams::default(), &Patch::Merge(&sneaky))
        .await
        .unwrap();
    assert_eq!(s.data["spec"]["partitions"], 1);

    // A main-resource write ignores .status.
    let main = json!({"spec": {"partitions": 2}, "status": {"ready": false}});
    let m = api
        .patch("t", &PatchParams::default(), &Patch::Merge(&main))
        .await
        .unwrap();
    assert_eq!(m.data["status"]["ready"], true);
    assert_eq!(m.data["spec"]["partitions"], 2);
    assert_eq!(m.metadata.generation, Some(2));

    let mut full = m.clone();
    full.data["status"] = json!({"ready": false, "observedGeneration": 2});
    full.data["spec"] = json!({"partitions": 7});
    let r = api
        .replace_status("t", &PostParams::default(), &full)
        .await
        .unwrap();
    assert_eq!(r.data["status"]["observedGeneration"], 2);
    assert_eq!(r.data["spec"]["partitions"], 2);
    assert_eq!(r.metadata.generation, Some(2));
}

#[tokio::test]
async fn delete_waits_for_finalizers() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let mut c = cm("guarded", &[]);
    c.metadata.finalizers = Some(vec!["weir.dev/cleanup".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();

    api.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    let kept = api.get("guarded").await.unwrap();
    assert!(
        kept.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp is set"
    );
    assert_eq!(
        kept.metadata.finalizers.as_deref(),
        Some(&["weir.dev/cleanup".to_string()][..])
    );
    // Deleting again changes nothing.
    api.delete("guarded", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        api.get("guarded").await.unwrap().metadata.resource_version,
        kept.metadata.resource_version
    );

    let clear = json!({"metadata": {"finalizers": null}});
    api.patch("guarded", &PatchParams::default(), &Patch::Merge(&clear))
        .await
        .unwrap();
    assert_eq!(api_status(api.get("guarded").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn finalizer_removed_by_replace_also_deletes() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let mut c = cm("f", &[]);
    c.metadata.finalizers = Some(vec!["x".into()]);
    api.create(&PostParams::default(), &c).await.unwrap();
    api.delete("f", &DeleteParams::default()).await.unwrap();
    let mut kept = api.get("f").await.unwrap();
    kept.metadata.finalizers = Some(vec![]);
    api.replace("f", &PostParams::default(), &kept)
        .await
        .unwrap();
    assert_eq!(api_status(api.get("f").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn watcher_sees_create_and_delete() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    api.create(&PostParams::default(), &cm("before", &[]))
        .await
        .unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();

    let mut seen_init = false;
    let mut step = 0;
    let result = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = stream.try_next().await.unwrap() {
            match ev {
                watcher::Event::InitApply(c) => {
                    assert_eq!(c.metadata.name.as_deref(), Some("before"));
                    seen_init = true;
                }
                watcher::Event::InitDone if step == 0 => {
                    step = 1;
                    api.create(&PostParams::default(), &cm("live", &[]))
                        .await
                        .unwrap();
                }
                watcher::Event::Apply(c)
                    if step == 1 && c.metadata.name.as_deref() == Some("live") =>
                {
                    step = 2;
                    api.delete("live", &DeleteParams::default()).await.unwrap();
                }
                watcher::Event::Delete(c) if step == 2 => {
                    assert_eq!(c.metadata.name.as_deref(), Some("live"));
                    return;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        result.is_ok(),
        "watcher did not see the create and the delete (step {step})"
    );
    assert!(seen_init);
}

#[tokio::test]
async fn raw_watch_replays_from_resource_version_and_sends_bookmarks() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let a = api
        .create(&PostParams::default(), &cm("a", &[("app", "x")]))
        .await
        .unwrap();
    api.create(&PostParams::default(), &cm("b", &[("app", "y")]))
        .await
        .unwrap();
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    let rv = a.metadata.resource_version.unwrap();

    let wp = WatchParams::default().labels("app=x").timeout(5);
    let mut events = api.watch(&wp, &rv).await.unwrap().boxed();
    let first = tokio::time::timeout(Duration::from_secs(5), events.try_next())
        .await
        .unwrap()
        .unwrap();
    match first {
        Some(WatchEvent::Modified(c)) => assert_eq!(c.data.unwrap()["k"], "2"),
        other => panic!("expected MODIFIED of a, got {other:?}"),
    }
    let mut got_bookmark = false;
    while let Ok(Ok(Some(ev))) =
        tokio::time::timeout(Duration::from_secs(3), events.try_next()).await
    {
        match ev {
            WatchEvent::Bookmark(_) => {
                got_bookmark = true;
                break;
            }
            WatchEvent::Added(c) | WatchEvent::Modified(c) | WatchEvent::Deleted(c) => {
                assert_eq!(
                    c.metadata.name.as_deref(),
                    Some("a"),
                    "the label selector filters events"
                );
            }
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        }
    }
    assert!(got_bookmark);
}

#[tokio::test]
async fn owner_removal_collects_dependents() {
    let (server, client) = FakeApiServer::start().await.unwrap();
    let topics: Api<DynamicObject> = Api::namespaced_with(client.clone(), "ns", &topic_resource());
    let cms: Api<ConfigMap> = Api::namespaced(client, "ns");
    let owner = topics
        .create(&PostParams::default(), &topic("owner", json!({})))
        .await
        .unwrap();
    let owner_ref = OwnerReference {
        api_version: "weir.dev/v1alpha1".into(),
        kind: "Topic".into(),
        name: "owner".into(),
        uid: owner.metadata.uid.clone().unwrap(),
        controller: Some(true),
        block_owner_deletion: None,
    };
    let mut child = cm("child", &[]);
    child.metadata.owner_references = Some(vec![owner_ref.clone()]);
    cms.create(&PostParams::default(), &child).await.unwrap();
    let mut grandchild = cm("grandchild", &[]);
    let child_uid = cms.get("child").await.unwrap().metadata.uid.unwrap();
    grandchild.metadata.owner_references = Some(vec![OwnerReference {
        uid: child_uid,
        kind: "ConfigMap".into(),
        api_version: "v1".into(),
        name: "child".into(),
        ..owner_ref.clone()
    }]);
    cms.create(&PostParams::default(), &grandchild)
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("unrelated", &[]))
        .await
        .unwrap();

    // While the owner waits on a finalizer, its dependents stay.
    topics
        .patch(
            "owner",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["f"]}})),
        )
        .await
        .unwrap();
    topics
        .delete("owner", &DeleteParams::default())
        .await
        .unwrap();
    assert!(cms.get("child").await.is_ok());

    topics
        .patch(
            "owner",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": []}})),
        )
        .await
        .unwrap();
    assert_eq!(api_status(topics.get("owner").await.unwrap_err()).0, 404);
    assert_eq!(api_status(cms.get("child").await.unwrap_err()).0, 404);
    assert_eq!(api_status(cms.get("grandchild").await.unwrap_err()).0, 404);
    assert!(cms.get("unrelated").await.is_ok());
    assert!(
        server
            .object("v1", "configmaps", "ns", "unrelated")
            .is_some()
    );
}

#[tokio::test]
async fn requests_are_recorded_for_verifiers() {
    let (server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    let c = cm("a", &[]);
    api.patch("a", &PatchParams::apply("weir-operator"), &Patch::Apply(&c))
        .await
        .unwrap();
    let reqs = server.requests();
    let last = reqs.last().unwrap();
    assert_eq!(last.method, "PATCH");
    assert_eq!(last.path, "/api/v1/namespaces/ns/configmaps/a");
    assert_eq!(last.field_manager.as_deref(), Some("weir-operator"));
    assert_eq!(last.body.as_ref().unwrap()["data"]["k"], "v");
    server.clear_requests();
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn cluster_scoped_and_bad_requests_get_status_errors() {
    let (server, client) = FakeApiServer::start().await.unwrap();
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = k8s_openapi::api::core::v1::Namespace {
        metadata: ObjectMeta {
            name: Some("weir".into()),
            ..ObjectMeta::default()
        },
        ..Default::default()
    };
    ns_api.create(&PostParams::default(), &ns).await.unwrap();
    assert!(ns_api.get("weir").await.is_ok());
    assert_eq!(
        ns_api
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let http = reqwest_like(
        &server,
        "PATCH",
        "/api/v1/namespaces/ns/configmaps/a",
        "application/apply-patch+yaml",
        "{}",
    )
    .await;
    assert!(
        http.contains("\"kind\":\"Status\"") && http.contains("fieldManager"),
        "{http}"
    );
    let http = reqwest_like(
        &server,
        "POST",
        "/api/v1/namespaces/ns/configmaps",
        "application/json",
        "not json",
    )
    .await;
    assert!(http.contains("\"code\":400"), "{http}");
    let http = reqwest_like(
        &server,
        "POST",
        "/api/v1/namespaces/ns/configmaps",
        "application/json",
        "{}",
    )
    .await;
    assert!(http.contains("\"code\":422"), "{http}");
}

/// A minimal raw HTTP/1.1 request, to send what the kube client never would.
async fn reqwest_like(
    server: &FakeApiServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = server.url().trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn json_patch_applies_atomically() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "ns");
    api.create(&PostParams::default(), &cm("a", &[]))
        .await
        .unwrap();
    let ops: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
    ]))
    .unwrap();
    let p = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(ops))
        .await
        .unwrap();
    assert_eq!(p.metadata.finalizers, Some(vec!["f".to_string()]));

    let failing: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/k", "value": "changed"},
        {"op": "test", "path": "/metadata/finalizers", "value": null},
    ]))
    .unwrap();
    let err = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(failing))
        .await
        .unwrap_err();
    assert_eq!(api_status(err), (422, "Invalid".to_string()));
    assert_eq!(
        api.get("a").await.unwrap().data.unwrap()["k"],
        "v",
        "a failed patch changes nothing"
    );
}

#[tokio::test]
async fn a_dependent_of_a_deleted_owner_is_collected() {
    let (_server, client) = FakeApiServer::start().await.unwrap();
    let topics: Api<DynamicObject> = Api::namespaced_with(client, "ns", &topic_resource());
    let mut orphan = topic("late", json!({}));
    orphan.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "weir.dev/v1alpha1".into(),
        kind: "Topic".into(),
        name: "gone".into(),
        uid: "no-such-uid".into(),
        controller: Some(true),
        block_owner_deletion: None,
    }]);
    topics
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    assert_eq!(api_status(topics.get("late").await.unwrap_err()).0, 404);
}
