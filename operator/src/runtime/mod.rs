//! The running operator: one kube-runtime Controller per kind and watched
//! namespace, started only while this replica holds the Lease, with
//! metrics, capped exponential backoff and health endpoints.

pub mod backoff;
pub mod health;
pub mod leader;
pub mod metrics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::crd::{Cluster, Topic};
use crate::desired::CLUSTER_LABEL;
use crate::reconcile::{Context, cluster, topic};
use crate::{Error, Result};
use backoff::Backoff;
use leader::{LeaderElector, LeaseConfig};
use metrics::Metrics;

/// How the runtime runs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// `None` runs without leader election (one replica only).
    pub leader_election: Option<LeaseConfig>,
    /// First retry after a failed reconcile; doubles up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            namespaces: Vec::new(),
            leader_election: None,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(300),
        }
    }
}

/// What each controller's reconcile gets: the reconcilers' context plus
/// the runtime's bookkeeping.
struct Shared {
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    backoff: Backoff,
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or_default(),
        obj.meta().name.as_deref().unwrap_or_default()
    )
}

/// Runs `reconcile` with metrics and backoff bookkeeping around it.
async fn instrumented<K, F, Fut>(
    kind: &str,
    obj: Arc<K>,
    shared: Arc<Shared>,
    reconcile: F,
) -> Result<Action>
where
    K: Resource<DynamicType = ()>,
    F: FnOnce(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action>>,
{
    let key = object_key(obj.as_ref());
    let started = Instant::now();
    let result = reconcile(obj, shared.ctx.clone()).await;
    shared.metrics.observe(
        kind,
        started.elapsed(),
        result.as_ref().err().map(Error::reason),
    );
    match &result {
        Ok(_) => shared.backoff.succeeded(&key),
        Err(e) => tracing::warn!(%key, error = %e, "reconcile failed"),
    }
    result
}

fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    _: &Error,
    shared: Arc<Shared>,
) -> Action {
    Action::requeue(shared.backoff.failed(&object_key(obj.as_ref())))
}

fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Cluster owning a broker pod, from its cluster label (pods are owned
/// by StatefulSets, not by the Cluster, so `.owns()` does not see them).
fn pod_cluster(pod: Pod) -> Option<ObjectRef<Cluster>> {
    let name = pod.labels().get(CLUSTER_LABEL)?.clone();
    let namespace = pod.namespace()?;
    Some(ObjectRef::new(&name).within(&namespace))
}

async fn run_cluster_controller(client: Client, namespace: Option<String>, shared: Arc<Shared>) {
    let ns = namespace.as_deref();
    let wc = watcher::Config::default();
    let owned = || {
        watcher::Config::default().labels(&format!(
            "app.kubernetes.io/managed-by={}",
            crate::desired::MANAGED_BY
        ))
    };
    Controller::new(api_in::<Cluster>(&client, ns), wc)
        .owns(api_in::<StatefulSet>(&client, ns), owned())
        .owns(api_in::<Service>(&client, ns), owned())
        .owns(api_in::<ConfigMap>(&client, ns), owned())
        .owns(api_in::<ServiceAccount>(&client, ns), owned())
        .owns(api_in::<PodDisruptionBudget>(&client, ns), owned())
        .owns(api_in::<Deployment>(&client, ns), owned())
        .watches(
            api_in::<Pod>(&client, ns),
            watcher::Config::default().labels(&format!(
                "{CLUSTER_LABEL},app.kubernetes.io/component=broker"
            )),
            pod_cluster,
        )
        .run(
            |c, s: Arc<Shared>| instrumented("Cluster", c, s.clone(), cluster::reconcile),
            error_policy,
            shared,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "cluster controller event");
            }
        })
        .await;
}

async fn run_topic_controller(client: Client, namespace: Option<String>, shared: Arc<Shared>) {
    let ns = namespace.as_deref();
    Controller::new(api_in::<Topic>(&client, ns), watcher::Config::default())
        .run(
            |t, s: Arc<Shared>| instrumented("Topic", t, s.clone(), topic::reconcile),
            error_policy,
            shared,
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "topic controller event");
            }
        })
        .await;
}

/// Every controller for every watched namespace, until they end.
async fn run_controllers(
    client: Client,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    config: &RuntimeConfig,
) {
    let shared = Arc::new(Shared {
        ctx,
        metrics,
        backoff: Backoff::new(config.backoff_base, config.backoff_cap),
    });
    let namespaces: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let mut runs = Vec::new();
    for ns in namespaces {
        runs.push(tokio::spawn(run_cluster_controller(
            client.clone(),
            ns.clone(),
            shared.clone(),
        )));
        runs.push(tokio::spawn(run_topic_controller(
            client.clone(),
            ns,
            shared.clone(),
        )));
    }
    // Aborting this future (stepping down) must stop the controllers too.
    let _guard = AbortOnDrop(
        runs.iter()
            .map(tokio::task::JoinHandle::abort_handle)
            .collect(),
    );
    join_all(runs).await;
}

struct AbortOnDrop(Vec<tokio::task::AbortHandle>);
impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

/// What `weir operator` is started with.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    pub namespaces: Vec<String>,
    pub health_listen: String,
    pub leader_election: bool,
    pub lease_name: String,
    /// `None`: the kube client's default namespace.
    pub lease_namespace: Option<String>,
    pub identity: String,
}

/// How long a leader keeps the Lease without renewing, and how often it renews.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const LEASE_RETRY: Duration = Duration::from_secs(5);

/// Runs the operator in (or against) a Kubernetes cluster, with the brokers
/// reached through weir-client, until `shutdown` completes.
pub async fn serve(options: OperatorOptions, shutdown: impl Future<Output = ()>) -> Result<()> {
    let client = Client::try_default().await?;
    let listener = tokio::net::TcpListener::bind(&options.health_listen)
        .await
        .map_err(|source| Error::Io {
            context: format!("binding the health listener {}", options.health_listen),
            source,
        })?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let health = tokio::spawn(health::serve(listener, metrics.clone(), ready.clone()));
    let _stop_health = AbortOnDrop(vec![health.abort_handle()]);
    let leader_election = options.leader_election.then(|| LeaseConfig {
        name: options.lease_name.clone(),
        namespace: options
            .lease_namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string()),
        identity: options.identity.clone(),
        lease_duration: LEASE_DURATION,
        retry_every: LEASE_RETRY,
    });
    let reporter = kube::runtime::events::Reporter {
        controller: crate::desired::MANAGED_BY.into(),
        instance: Some(options.identity.clone()),
    };
    let ctx = Arc::new(Context::new(
        client.clone(),
        Arc::new(crate::kafka::admin::AdminConnector::new(
            Duration::from_secs(15),
        )),
        reporter,
        crate::reconcile::Settings::default(),
    ));
    let config = RuntimeConfig {
        namespaces: options.namespaces,
        leader_election,
        ..RuntimeConfig::default()
    };
    tracing::info!(namespaces = ?config.namespaces, leader_election = options.leader_election, "operator starting");
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    run(client, ctx, metrics, config, shutdown).await;
    Ok(())
}

/// Runs the operator until `shutdown` completes: controllers only while
/// leading (always, without leader election).
pub async fn run(
    client: Client,
    ctx: Arc<Context>,
    metrics: Arc<Metrics>,
    config: RuntimeConfig,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let Some(lease) = config.leader_election.clone() else {
        metrics.set_leader(true);
        tokio::select! {
            () = run_controllers(client, ctx, metrics.clone(), &config) => {}
            () = &mut shutdown => {}
        }
        return;
    };
    let (tx, mut leading) = watch::channel(false);
    let elector = tokio::spawn(LeaderElector::new(client.clone(), lease).run(tx));
    let _stop_elector = AbortOnDrop(vec![elector.abort_handle()]);
    loop {
        // Wait to lead.
        tokio::select! {
            r = leading.wait_for(|l| *l) => if r.is_err() { return },
            () = &mut shutdown => return,
        }
        tracing::info!("leading: starting controllers");
        metrics.set_leader(true);
        tokio::select! {
            () = run_controllers(client.clone(), ctx.clone(), metrics.clone(), &config) => {}
            _ = leading.wait_for(|l| !*l) => tracing::warn!("lost the lease: stepping down"),
            () = &mut shutdown => { metrics.set_leader(false); return }
        }
        metrics.set_leader(false);
    }
}
