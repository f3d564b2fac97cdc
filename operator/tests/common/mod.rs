//! Shared scaffolding for the scenario tests: the fake API server, the
//! operator's runtime over it with in-memory brokers, a stand-in for the
//! StatefulSet controller (the fake API server runs no pods), and polling.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::Reporter;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::task::JoinHandle;
use weir_kube_testkit::FakeApiServer;
use weir_operator::crd::cluster::{
    BrokerPool, Cluster, ClusterSpec, Listeners, Metrics, ReclaimPolicy, Storage,
};
use weir_operator::crd::topic::{DeletionPolicy, ManagementPolicy, Topic, TopicSpec};
use weir_operator::kafka::KafkaConnector;
use weir_operator::kafka::memory::{InMemoryConnector, InMemoryKafka};
use weir_operator::reconcile::clock::{Clock, SystemClock};
use weir_operator::reconcile::{Context, Settings};
use weir_operator::runtime::leader::LeaseConfig;
use weir_operator::runtime::metrics::Metrics as OperatorMetrics;
use weir_operator::runtime::{RuntimeConfig, run};

pub const NS: &str = "streaming";

pub fn bootstrap(cluster: &str) -> String {
    format!("{cluster}-bootstrap.{NS}.svc:9092")
}

/// One operator instance running against `client`.
pub struct Operator {
    pub metrics: Arc<OperatorMetrics>,
    pub task: JoinHandle<()>,
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn settings() -> Settings {
    Settings {
        busy_requeue: Duration::from_millis(100),
        idle_requeue: Duration::from_millis(500),
        bootstrap_override: None,
    }
}

pub fn start_operator(
    client: &Client,
    kafka: Arc<dyn KafkaConnector>,
    settings: Settings,
    lease: Option<LeaseConfig>,
) -> Operator {
    start_operator_with_clock(client, kafka, settings, lease, Arc::new(SystemClock))
}

/// [`start_operator`] reading the time from `clock`.
pub fn start_operator_with_clock(
    client: &Client,
    kafka: Arc<dyn KafkaConnector>,
    settings: Settings,
    lease: Option<LeaseConfig>,
    clock: Arc<dyn Clock>,
) -> Operator {
    let metrics = Arc::new(OperatorMetrics::default());
    let identity = lease
        .as_ref()
        .map_or("test".to_string(), |l| l.identity.clone());
    let ctx = Arc::new(
        Context::new(
            client.clone(),
            kafka,
            Reporter {
                controller: "weir-operator".into(),
                instance: Some(identity),
            },
            settings,
        )
        .with_clock(clock),
    );
    let config = RuntimeConfig {
        namespaces: vec![NS.into()],
        leader_election: lease,
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_secs(1),
    };
    let task = tokio::spawn(run(
        client.clone(),
        ctx,
        metrics.clone(),
        config,
        std::future::pending(),
    ));
    Operator { metrics, task }
}

/// A fake API server, one in-memory cluster behind `demo`'s bootstrap
/// address, and the operator running.
pub struct World {
    pub server: FakeApiServer,
    pub client: Client,
    pub kafka: InMemoryKafka,
    pub connector: InMemoryConnector,
    pub operator: Operator,
}

pub async fn world(brokers: &[i32]) -> World {
    world_with_clock(brokers, Arc::new(SystemClock)).await
}

/// [`world`] with the operator reading the time from `clock`.
pub async fn world_with_clock(brokers: &[i32], clock: Arc<dyn Clock>) -> World {
    let (server, client) = FakeApiServer::start().await.expect("fake API server");
    let kafka = InMemoryKafka::new("cluster-demo", brokers);
    let connector = InMemoryConnector::default();
    connector.add(&bootstrap("demo"), kafka.clone());
    let operator = start_operator_with_clock(
        &client,
        Arc::new(connector.clone()),
        settings(),
        None,
        clock,
    );
    World {
        server,
        client,
        kafka,
        connector,
        operator,
    }
}

pub fn pool(replicas: i32) -> BrokerPool {
    BrokerPool {
        name: "main".into(),
        replicas,
        node_id_start: None,
        resources: None,
        storage: Storage {
            size: "1Gi".into(),
            storage_class_name: None,
            reclaim_on_scale_down: ReclaimPolicy::Retain,
        },
        affinity: None,
        tolerations: Vec::new(),
        topology_spread_constraints: Vec::new(),
    }
}

pub fn cluster(name: &str, replicas: i32) -> Cluster {
    let mut c = Cluster::new(
        name,
        ClusterSpec {
            image: "weir:test".into(),
            broker_pools: vec![pool(replicas)],
            config: BTreeMap::new(),
            rack: None,
            listeners: Listeners::default(),
            pod_template: None,
            rollout: None,
            connect: None,
            metrics: Metrics::default(),
            paused: false,
        },
    );
    c.metadata.namespace = Some(NS.into());
    c
}

pub fn topic(name: &str, cluster: &str, partitions: i32, rf: i16) -> Topic {
    let mut t = Topic::new(
        name,
        TopicSpec {
            cluster_ref: cluster.into(),
            topic_name: None,
            partitions,
            replication_factor: rf,
            config: BTreeMap::new(),
            management_policy: ManagementPolicy::Managed,
            deletion_policy: DeletionPolicy::Delete,
        },
    );
    t.metadata.namespace = Some(NS.into());
    t
}

pub async fn create<K>(client: &Client, obj: &K) -> K
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), obj)
        .await
        .expect("create")
}

/// Merge-patches a resource's spec, as `kubectl edit` would.
pub async fn patch_spec<K>(client: &Client, name: &str, spec: serde_json::Value)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .expect("patch spec");
}

pub async fn get<K>(client: &Client, name: &str) -> Option<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .expect("get")
}

/// Polls `check` until it holds; fails the test after ~20 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

pub fn condition<'a>(
    conditions: &'a [k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<&'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// What the StatefulSet controller would do, once: create each missing
/// pod (ready or not) and its volume from the template, and delete pods
/// above the size. Returns the pods it created.
pub async fn sync_statefulsets(client: &Client, ready: bool) -> Vec<String> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), NS);
    let mut created = Vec::new();
    for sts in sets.list(&ListParams::default()).await.expect("list sts") {
        let name = sts.name_any();
        let start = sts
            .spec
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0);
        let replicas = sts.spec.replicas.unwrap_or(1);
        let template = sts.spec.template.clone();
        let owner = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: name.clone(),
            uid: sts.uid().expect("uid"),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let existing: Vec<Pod> = pods
            .list(&ListParams::default())
            .await
            .expect("list pods")
            .items;
        for pod in existing
            .iter()
            .filter(|p| p.name_any().starts_with(&format!("{name}-")))
        {
            let ordinal: i32 = pod
                .name_any()
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .unwrap_or(-1);
            if ordinal >= start + replicas {
                pods.delete(&pod.name_any(), &DeleteParams::default())
                    .await
                    .expect("delete pod");
            }
        }
        for ordinal in start..start + replicas {
            let pod_name = format!("{name}-{ordinal}");
            if existing.iter().any(|p| p.name_any() == pod_name) {
                continue;
            }
            let mut meta = template.metadata.clone().unwrap_or_default();
            let mut labels = meta.labels.clone().unwrap_or_default();
            labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
            meta.labels = Some(labels);
            meta.name = Some(pod_name.clone());
            meta.namespace = Some(NS.into());
            meta.owner_references = Some(vec![owner.clone()]);
            let pod = Pod {
                metadata: meta,
                spec: template.spec.clone(),
                status: None,
            };
            pods.create(&PostParams::default(), &pod)
                .await
                .expect("create pod");
            set_pod_ready(client, &pod_name, ready).await;
            created.push(pod_name);
            let claim = format!("data-{name}-{ordinal}");
            if pvcs.get_opt(&claim).await.expect("get pvc").is_none() {
                let template = sts
                    .spec
                    .volume_claim_templates
                    .as_ref()
                    .and_then(|t| t.first())
                    .cloned()
                    .expect("claim template");
                let pvc = PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some(claim),
                        namespace: Some(NS.into()),
                        labels: template.metadata.labels.clone(),
                        ..ObjectMeta::default()
                    },
                    spec: template.spec.clone(),
                    status: None,
                };
                pvcs.create(&PostParams::default(), &pvc)
                    .await
                    .expect("create pvc");
            }
        }
    }
    created
}

/// Sets a pod's Ready condition, as the kubelet would.
pub async fn set_pod_ready(client: &Client, pod: &str, ready: bool) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let status = PodStatus {
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..PodCondition::default()
        }]),
        ..PodStatus::default()
    };
    pods.patch_status(
        pod,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .expect("pod status");
}

pub async fn pod_names(client: &Client) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let mut names: Vec<String> = pods
        .list(&ListParams::default())
        .await
        .expect("list pods")
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    names.sort();
    names
}

/// Reasons of the Events recorded in the namespace.
pub async fn event_reasons(client: &Client) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), NS);
    events
        .list(&ListParams::default())
        .await
        .map(|l| l.items.into_iter().filter_map(|e| e.reason).collect())
        .unwrap_or_default()
}
