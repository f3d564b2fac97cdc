//! What a `Cluster` becomes in Kubernetes.
//!
//! Names, for a Cluster `demo` in namespace `ns`:
//!
//! | object | name |
//! | --- | --- |
//! | ServiceAccount (brokers and Connect) | `demo` |
//! | ConfigMap with `broker.properties` | `demo-config` |
//! | headless Service (per-broker DNS, quorum) | `demo-brokers` |
//! | bootstrap Service (clients) | `demo-bootstrap`, port 9092 |
//! | StatefulSet per pool `p` | `demo-p` |
//! | PodDisruptionBudget over all brokers | `demo-brokers` |
//! | Connect Deployment and Service | `demo-connect`, port 8083 |
//!
//! Node ids: pool `i` numbers its brokers from its `nodeIdStart` (default
//! `1000 * i`). Its StatefulSet sets `spec.ordinals.start` to that number, so
//! pod `demo-p-1001` is node 1001: the pod's ordinal, its
//! `apps.kubernetes.io/pod-index` label (read through the downward API into
//! `WEIR_NODE_ID`) and the node id are one number, with no arithmetic in the
//! pod. The controller quorum is the three lowest node ids (all brokers when
//! there are fewer), on port 9093 of their per-pod DNS names.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, StatefulSet, StatefulSetOrdinals,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, Container, ContainerPort, EmptyDirVolumeSource, EnvVar, EnvVarSource,
    HTTPGetAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CLUSTER_LABEL, CONFIG_HASH_ANNOTATION, DesiredObject, MANAGED_BY, POOL_LABEL};
use crate::crd::API_VERSION;
use crate::crd::cluster::{BrokerPool, Cluster, ClusterSpec, ReclaimPolicy};
use crate::reconcile::rollout::RolloutPolicy;
use crate::validate::{FieldError, is_dynamic_broker_key, node_id_start, validate_cluster};

pub const KAFKA_PORT: i32 = 9092;
pub const CONTROLLER_PORT: i32 = 9093;
pub const ADMIN_PORT: i32 = 9644;
pub const CONNECT_REST_PORT: i32 = 8083;
/// Where each broker's volume is mounted; `--data-dir` points here.
pub const DATA_DIR: &str = "/var/lib/weir";
/// The non-root user the image runs as; also owns the data volume.
const RUN_AS: i64 = 1000;
const QUORUM_SIZE: usize = 3;
/// Node labels the Kubernetes node-topology admission copies onto pods
/// (beta in 1.35), so the downward API can hand them to the broker.
const RACK_KEYS: [&str; 2] = [
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
];

/// One broker as the builders number and address it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerIdentity {
    pub node_id: i32,
    pub pool: String,
    pub pod: String,
    /// The pod's stable DNS name under the headless Service.
    pub host: String,
}

/// Where in-cluster clients of Cluster `name` in `namespace` bootstrap from
/// (its bootstrap Service); Topics find their cluster's brokers here.
pub fn bootstrap_servers(name: &str, namespace: &str) -> String {
    format!("{name}-bootstrap.{namespace}.svc:{KAFKA_PORT}")
}

/// A broker pool as a StatefulSet: its name, node ids and volume policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolShape {
    pub pool: String,
    pub statefulset: String,
    pub node_id_start: i32,
    pub replicas: i32,
    pub reclaim: ReclaimPolicy,
}

impl PoolShape {
    pub fn node_ids(&self) -> std::ops::Range<i32> {
        self.node_id_start..self.node_id_start.saturating_add(self.replicas)
    }
}

/// A validated Cluster and everything derived from it.
#[derive(Debug, Clone)]
pub struct ClusterModel {
    name: String,
    namespace: String,
    spec: ClusterSpec,
    owner: Option<OwnerReference>,
    rollout: RolloutPolicy,
}

impl ClusterModel {
    /// Validates the Cluster; `default_namespace` is used when the resource
    /// carries none (a file not yet applied).
    pub fn from_crd(cluster: &Cluster, default_namespace: &str) -> Result<Self, Vec<FieldError>> {
        validate_cluster(cluster)?;
        if let Some(rack) = &cluster.spec.rack
            && !RACK_KEYS.contains(&rack.topology_key.as_str())
        {
            return Err(vec![FieldError::new(
                "spec.rack.topologyKey",
                format!(
                    "must be one of {RACK_KEYS:?}: only these node labels reach pods (Kubernetes node topology labels, 1.35+)"
                ),
            )]);
        }
        let rollout = RolloutPolicy::from_spec(cluster.spec.rollout.as_ref())?;
        let name = cluster.metadata.name.clone().unwrap_or_default();
        // An owner reference without the owner's uid would be rejected, so a
        // file that has no uid yet gets none (as `weir operator render` promises).
        let owner = cluster.metadata.uid.as_ref().map(|uid| OwnerReference {
            api_version: API_VERSION.into(),
            kind: "Cluster".into(),
            name: name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        });
        Ok(ClusterModel {
            namespace: cluster
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| default_namespace.to_string()),
            name,
            spec: cluster.spec.clone(),
            owner,
            rollout,
        })
    }

    /// When and how fast brokers may restart (`spec.rollout`, parsed).
    pub fn rollout(&self) -> &RolloutPolicy {
        &self.rollout
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
    pub fn image(&self) -> &str {
        &self.spec.image
    }
    pub fn service_account_name(&self) -> String {
        self.name.clone()
    }
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }
    pub fn headless_service_name(&self) -> String {
        format!("{}-brokers", self.name)
    }
    pub fn bootstrap_service_name(&self) -> String {
        format!("{}-bootstrap", self.name)
    }
    pub fn pdb_name(&self) -> String {
        format!("{}-brokers", self.name)
    }
    pub fn connect_name(&self) -> String {
        format!("{}-connect", self.name)
    }
    pub fn pool_statefulset_name(&self, pool: &BrokerPool) -> String {
        format!("{}-{}", self.name, pool.name)
    }

    /// Where in-cluster clients bootstrap from.
    pub fn bootstrap_servers(&self) -> String {
        bootstrap_servers(&self.name, &self.namespace)
    }

    /// Every broker the spec asks for, in node-id order within each pool.
    pub fn brokers(&self) -> Vec<BrokerIdentity> {
        let mut brokers = Vec::new();
        for (i, pool) in self.spec.broker_pools.iter().enumerate() {
            let start = node_id_start(i, pool);
            let sts = self.pool_statefulset_name(pool);
            for node_id in start..start.saturating_add(pool.replicas) {
                let pod = format!("{sts}-{node_id}");
                brokers.push(BrokerIdentity {
                    node_id,
                    pool: pool.name.clone(),
                    host: format!(
                        "{pod}.{}.{}.svc",
                        self.headless_service_name(),
                        self.namespace
                    ),
                    pod,
                });
            }
        }
        brokers
    }

    /// `--controller-quorum` for a multi-broker cluster; `None` for one broker.
    pub fn controller_quorum(&self) -> Option<String> {
        let mut brokers = self.brokers();
        if brokers.len() < 2 {
            return None;
        }
        brokers.sort_by_key(|b| b.node_id);
        let voters: Vec<String> = brokers
            .iter()
            .take(QUORUM_SIZE)
            .map(|b| format!("{}@{}:{CONTROLLER_PORT}", b.node_id, b.host))
            .collect();
        Some(voters.join(","))
    }

    /// Hex FNV-1a of the static broker settings: stable across builds and
    /// Rust versions (unlike `DefaultHasher`), since it is stored on pods.
    /// Dynamic settings are left out: changing one is applied live and must
    /// not restart brokers.
    pub fn config_hash(&self) -> String {
        let statics: BTreeMap<String, String> = self
            .spec
            .config
            .iter()
            .filter(|(k, _)| !is_dynamic_broker_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in properties(&statics).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        format!("{hash:016x}")
    }

    /// The broker settings in `server.properties` form, sorted by key.
    pub fn broker_properties(&self) -> String {
        properties(&self.spec.config)
    }

    /// The settings brokers take at run time, without a restart.
    pub fn dynamic_broker_settings(&self) -> BTreeMap<String, String> {
        self.spec
            .config
            .iter()
            .filter(|(k, _)| is_dynamic_broker_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Each pool with the StatefulSet that runs it and its node ids.
    pub fn pools(&self) -> Vec<PoolShape> {
        self.spec
            .broker_pools
            .iter()
            .enumerate()
            .map(|(i, pool)| PoolShape {
                pool: pool.name.clone(),
                statefulset: self.pool_statefulset_name(pool),
                node_id_start: node_id_start(i, pool),
                replicas: pool.replicas,
                reclaim: pool.storage.reclaim_on_scale_down,
            })
            .collect()
    }

    fn labels(&self, component: &str) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels(component);
        labels.insert("app.kubernetes.io/name".into(), "weir".into());
        labels.insert("app.kubernetes.io/managed-by".into(), MANAGED_BY.into());
        labels
    }

    /// The labels selectors use; fewer than on the objects, since a
    /// StatefulSet's selector can never change.
    fn selector_labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance".into(), self.name.clone()),
            ("app.kubernetes.io/component".into(), component.into()),
            (CLUSTER_LABEL.into(), self.name.clone()),
        ])
    }

    fn metadata(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: self.owner.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }

    pub fn service_account(&self) -> ServiceAccount {
        ServiceAccount {
            metadata: self.metadata(self.service_account_name(), "cluster"),
            // Brokers and workers never call the Kubernetes API.
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        }
    }

    pub fn broker_config_map(&self) -> ConfigMap {
        let mut data = BTreeMap::from([
            ("broker.properties".to_string(), self.broker_properties()),
            ("bootstrap.servers".to_string(), self.bootstrap_servers()),
        ]);
        if let Some(connect) = self.spec.connect.as_ref().filter(|c| c.replicas > 0) {
            data.insert("connect.properties".into(), properties(&connect.config));
        }
        ConfigMap {
            metadata: self.metadata(self.config_map_name(), "broker"),
            data: Some(data),
            ..ConfigMap::default()
        }
    }

    /// Gives each broker pod a stable DNS name. Not-ready pods are published
    /// too: brokers must find each other to form the quorum before any of
    /// them can report ready.
    pub fn headless_service(&self) -> Service {
        Service {
            metadata: self.metadata(self.headless_service_name(), "broker"),
            spec: Some(ServiceSpec {
                cluster_ip: Some("None".into()),
                publish_not_ready_addresses: Some(true),
                selector: Some(self.selector_labels("broker")),
                ports: Some(vec![
                    service_port("kafka", KAFKA_PORT),
                    service_port("controller", CONTROLLER_PORT),
                    service_port("admin", ADMIN_PORT),
                ]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    pub fn bootstrap_service(&self) -> Service {
        let mut metadata = self.metadata(self.bootstrap_service_name(), "broker");
        let annotations = &self.spec.listeners.internal.annotations;
        if !annotations.is_empty() {
            metadata.annotations = Some(annotations.clone());
        }
        self.cluster_ip_service(metadata, "broker", service_port("kafka", KAFKA_PORT))
    }

    /// A ClusterIP Service in front of one component's pods.
    fn cluster_ip_service(
        &self,
        metadata: ObjectMeta,
        component: &str,
        port: ServicePort,
    ) -> Service {
        Service {
            metadata,
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(self.selector_labels(component)),
                ports: Some(vec![port]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    pub fn broker_statefulsets(&self) -> Vec<StatefulSet> {
        (0..self.spec.broker_pools.len())
            .filter_map(|i| self.broker_statefulset(i))
            .collect()
    }

    /// The StatefulSet of the pool at `index`. `OnDelete`: the operator, not
    /// the StatefulSet controller, decides when each broker restarts.
    pub fn broker_statefulset(&self, index: usize) -> Option<StatefulSet> {
        let pool = self.spec.broker_pools.get(index)?;
        let mut selector = self.selector_labels("broker");
        selector.insert(POOL_LABEL.into(), pool.name.clone());
        let mut labels = self.labels("broker");
        labels.insert(POOL_LABEL.into(), pool.name.clone());
        let mut metadata = self.metadata(self.pool_statefulset_name(pool), "broker");
        metadata.labels = Some(labels.clone());

        let when_scaled = match pool.storage.reclaim_on_scale_down {
            ReclaimPolicy::Retain => "Retain",
            ReclaimPolicy::Delete => "Delete",
        };
        Some(StatefulSet {
            metadata,
            spec: StatefulSetSpec {
                service_name: Some(self.headless_service_name()),
                replicas: Some(pool.replicas),
                ordinals: Some(StatefulSetOrdinals {
                    start: Some(node_id_start(index, pool)),
                }),
                pod_management_policy: Some("Parallel".into()),
                update_strategy: Some(StatefulSetUpdateStrategy {
                    type_: Some("OnDelete".into()),
                    rolling_update: None,
                }),
                // Deleting the Cluster never deletes data; shrinking a pool
                // does only when the pool says so.
                persistent_volume_claim_retention_policy: Some(
                    StatefulSetPersistentVolumeClaimRetentionPolicy {
                        when_deleted: Some("Retain".into()),
                        when_scaled: Some(when_scaled.into()),
                    },
                ),
                selector: LabelSelector {
                    match_labels: Some(selector),
                    match_expressions: None,
                },
                template: self.broker_pod_template(pool, labels.clone()),
                volume_claim_templates: Some(vec![PersistentVolumeClaim {
                    metadata: ObjectMeta {
                        name: Some("data".into()),
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    },
                    spec: Some(PersistentVolumeClaimSpec {
                        access_modes: Some(vec!["ReadWriteOnce".into()]),
                        storage_class_name: pool.storage.storage_class_name.clone(),
                        resources: Some(VolumeResourceRequirements {
                            requests: Some(BTreeMap::from([(
                                "storage".to_string(),
                                Quantity(pool.storage.size.clone()),
                            )])),
                            limits: None,
                        }),
                        ..PersistentVolumeClaimSpec::default()
                    }),
                    ..PersistentVolumeClaim::default()
                }]),
                ..StatefulSetSpec::default()
            },
            ..StatefulSet::default()
        })
    }

    fn broker_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "broker",
            "--node-id",
            "$(WEIR_NODE_ID)",
            "--data-dir",
            DATA_DIR,
            "--listen",
            "0.0.0.0:9092",
            "--advertise",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        args.push(format!(
            "$(POD_NAME).{}.{}.svc:{KAFKA_PORT}",
            self.headless_service_name(),
            self.namespace
        ));
        args.push("--admin-listen".into());
        args.push(format!("0.0.0.0:{ADMIN_PORT}"));
        if self.spec.rack.is_some() {
            args.push("--rack".into());
            args.push("$(WEIR_RACK)".into());
        }
        for (key, value) in &self.spec.config {
            args.push("--config".into());
            args.push(format!("{key}={value}"));
        }
        if let Some(quorum) = self.controller_quorum() {
            args.push("--controller-quorum".into());
            args.push(quorum);
        }
        args
    }

    fn broker_pod_template(
        &self,
        pool: &BrokerPool,
        own_labels: BTreeMap<String, String>,
    ) -> PodTemplateSpec {
        let mut env = vec![
            field_env("POD_NAME", "metadata.name"),
            field_env(
                "WEIR_NODE_ID",
                "metadata.labels['apps.kubernetes.io/pod-index']",
            ),
        ];
        if let Some(rack) = &self.spec.rack {
            env.push(field_env(
                "WEIR_RACK",
                &format!("metadata.labels['{}']", rack.topology_key),
            ));
        }
        let mut annotations = self.pod_annotations();
        annotations.insert(CONFIG_HASH_ANNOTATION.into(), self.config_hash());
        let container = Container {
            name: "broker".into(),
            image: Some(self.spec.image.clone()),
            args: Some(self.broker_args()),
            env: Some(env),
            ports: Some(vec![
                container_port("kafka", KAFKA_PORT),
                container_port("controller", CONTROLLER_PORT),
                container_port("admin", ADMIN_PORT),
            ]),
            readiness_probe: Some(http_probe("/ready", "admin", 5, 3)),
            liveness_probe: Some(http_probe("/healthz", "admin", 10, 6)),
            // The admin port opens only after log recovery, which can take
            // long after a crash; until then liveness must not kill the pod.
            startup_probe: Some(http_probe("/healthz", "admin", 10, 360)),
            resources: pool.resources.clone(),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![
                volume_mount("data", DATA_DIR),
                volume_mount("tmp", "/tmp"),
            ]),
            ..Container::default()
        };
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(self.pod_labels(own_labels)),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                service_account_name: Some(self.service_account_name()),
                automount_service_account_token: Some(false),
                priority_class_name: self
                    .spec
                    .pod_template
                    .as_ref()
                    .and_then(|t| t.priority_class_name.clone()),
                affinity: pool.affinity.clone(),
                tolerations: non_empty(pool.tolerations.clone()),
                topology_spread_constraints: non_empty(pool.topology_spread_constraints.clone()),
                security_context: Some(pod_security_context()),
                // Time for a clean shutdown: leadership moves away and logs
                // are flushed, so the restart needs no recovery.
                termination_grace_period_seconds: Some(120),
                containers: vec![container],
                volumes: Some(vec![Volume {
                    name: "tmp".into(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Volume::default()
                }]),
                ..PodSpec::default()
            }),
        }
    }

    fn pod_labels(&self, own: BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut labels = self
            .spec
            .pod_template
            .as_ref()
            .map(|t| t.labels.clone())
            .unwrap_or_default();
        // Ours win: selectors and the reconcilers depend on them.
        labels.extend(own);
        labels
    }

    fn pod_annotations(&self) -> BTreeMap<String, String> {
        let mut annotations = self
            .spec
            .pod_template
            .as_ref()
            .map(|t| t.annotations.clone())
            .unwrap_or_default();
        if self.spec.metrics.enabled {
            annotations.insert("prometheus.io/scrape".into(), "true".into());
            annotations.insert("prometheus.io/port".into(), ADMIN_PORT.to_string());
            annotations.insert("prometheus.io/path".into(), "/metrics".into());
        }
        annotations
    }

    /// At most one broker down by eviction (drains, node upgrades), so with
    /// replication factor 3 and `min.insync.replicas` 2 producers keep going.
    pub fn pod_disruption_budget(&self) -> PodDisruptionBudget {
        PodDisruptionBudget {
            metadata: self.metadata(self.pdb_name(), "broker"),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(self.selector_labels("broker")),
                    match_expressions: None,
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        }
    }

    fn connect_replicas(&self) -> Option<i32> {
        self.spec
            .connect
            .as_ref()
            .map(|c| c.replicas)
            .filter(|r| *r > 0)
    }

    /// Connect workers, when `spec.connect.replicas` is above 0.
    pub fn connect_deployment(&self) -> Option<Deployment> {
        let replicas = self.connect_replicas()?;
        let connect = self.spec.connect.as_ref()?;
        let mut args: Vec<String> = vec![
            "connect".into(),
            "--bootstrap-server".into(),
            format!("{}:{KAFKA_PORT}", self.bootstrap_service_name()),
            "--group-id".into(),
            self.connect_name(),
            "--rest-listen".into(),
            format!("0.0.0.0:{CONNECT_REST_PORT}"),
        ];
        for (key, value) in &connect.config {
            args.push("--config".into());
            args.push(format!("{key}={value}"));
        }
        let labels = self.labels("connect");
        let container = Container {
            name: "connect".into(),
            image: Some(self.spec.image.clone()),
            args: Some(args),
            ports: Some(vec![container_port("rest", CONNECT_REST_PORT)]),
            readiness_probe: Some(http_probe("/", "rest", 5, 3)),
            liveness_probe: Some(http_probe("/", "rest", 10, 6)),
            resources: connect.resources.clone(),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![volume_mount("tmp", "/tmp")]),
            ..Container::default()
        };
        let annotations = self.pod_annotations();
        Some(Deployment {
            metadata: self.metadata(self.connect_name(), "connect"),
            spec: DeploymentSpec {
                replicas: Some(replicas),
                selector: LabelSelector {
                    match_labels: Some(self.selector_labels("connect")),
                    match_expressions: None,
                },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(self.pod_labels(labels)),
                        annotations: (!annotations.is_empty()).then_some(annotations),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(self.service_account_name()),
                        automount_service_account_token: Some(false),
                        priority_class_name: self
                            .spec
                            .pod_template
                            .as_ref()
                            .and_then(|t| t.priority_class_name.clone()),
                        security_context: Some(pod_security_context()),
                        containers: vec![container],
                        volumes: Some(vec![Volume {
                            name: "tmp".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Volume::default()
                        }]),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            },
            ..Deployment::default()
        })
    }

    pub fn connect_service(&self) -> Option<Service> {
        self.connect_replicas()?;
        Some(self.cluster_ip_service(
            self.metadata(self.connect_name(), "connect"),
            "connect",
            service_port("rest", CONNECT_REST_PORT),
        ))
    }

    /// Everything this Cluster should have, in the order to create it:
    /// identities and config before the pods that use them.
    pub fn desired_objects(&self) -> Vec<DesiredObject> {
        let mut objects = vec![
            DesiredObject::ServiceAccount(self.service_account()),
            DesiredObject::ConfigMap(self.broker_config_map()),
            DesiredObject::Service(self.headless_service()),
            DesiredObject::Service(self.bootstrap_service()),
        ];
        objects.extend(
            self.broker_statefulsets()
                .into_iter()
                .map(DesiredObject::StatefulSet),
        );
        objects.push(DesiredObject::PodDisruptionBudget(
            self.pod_disruption_budget(),
        ));
        objects.extend(self.connect_deployment().map(DesiredObject::Deployment));
        objects.extend(self.connect_service().map(DesiredObject::Service));
        objects
    }
}

fn properties(settings: &BTreeMap<String, String>) -> String {
    settings.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: Some("v1".into()),
                field_path: field_path.into(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn http_probe(path: &str, port: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn volume_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    }
}

fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(RUN_AS),
        run_as_group: Some(RUN_AS),
        fs_group: Some(RUN_AS),
        // Re-owning a large volume on every start would delay each restart.
        fs_group_change_policy: Some("OnRootMismatch".into()),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    }
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Builder-style fixtures: a valid three-broker cluster to start from,
    //! changed one field at a time by each test.

    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use crate::crd::cluster::{
        BrokerPool, Cluster, ClusterSpec, ConnectSpec, Listeners, Metrics, PodTemplate,
        ReclaimPolicy, Storage,
    };

    pub struct ClusterBuilder {
        cluster: Cluster,
    }

    pub fn cluster(name: &str) -> ClusterBuilder {
        let spec = ClusterSpec {
            image: "weir:test".into(),
            broker_pools: vec![pool("main", 3)],
            config: BTreeMap::new(),
            rack: None,
            listeners: Listeners::default(),
            pod_template: None,
            rollout: None,
            connect: None,
            metrics: Metrics::default(),
            paused: false,
        };
        let mut cluster = Cluster::new(name, spec);
        cluster.metadata.namespace = Some("streaming".into());
        ClusterBuilder { cluster }
    }

    pub fn pool(name: &str, replicas: i32) -> BrokerPool {
        BrokerPool {
            name: name.into(),
            replicas,
            node_id_start: None,
            resources: None,
            storage: Storage {
                size: "10Gi".into(),
                storage_class_name: None,
                reclaim_on_scale_down: ReclaimPolicy::Retain,
            },
            affinity: None,
            tolerations: Vec::new(),
            topology_spread_constraints: Vec::new(),
        }
    }

    impl ClusterBuilder {
        pub fn uid(mut self, uid: &str) -> Self {
            self.cluster.metadata.uid = Some(uid.into());
            self
        }
        pub fn no_namespace(mut self) -> Self {
            self.cluster.metadata.namespace = None;
            self
        }
        pub fn pools(mut self, pools: Vec<BrokerPool>) -> Self {
            self.cluster.spec.broker_pools = pools;
            self
        }
        pub fn config(mut self, key: &str, value: &str) -> Self {
            self.cluster.spec.config.insert(key.into(), value.into());
            self
        }
        pub fn connect(mut self, replicas: i32) -> Self {
            self.cluster.spec.connect = Some(ConnectSpec {
                replicas,
                resources: None,
                config: BTreeMap::from([("offset.flush.interval.ms".into(), "10000".into())]),
            });
            self
        }
        pub fn rack(mut self) -> Self {
            self.cluster.spec.rack = Some(crate::crd::cluster::Rack {
                topology_key: "topology.kubernetes.io/zone".into(),
            });
            self
        }
        pub fn pod_template(mut self) -> Self {
            self.cluster.spec.pod_template = Some(PodTemplate {
                annotations: BTreeMap::from([("team".into(), "data".into())]),
                labels: BTreeMap::from([
                    ("cost-center".into(), "42".into()),
                    // Must not override the operator's own label.
                    ("weir.dev/cluster".into(), "hijack".into()),
                ]),
                priority_class_name: Some("streaming".into()),
            });
            self
        }
        pub fn metrics(mut self, enabled: bool) -> Self {
            self.cluster.spec.metrics.enabled = enabled;
            self
        }
        pub fn build(self) -> Cluster {
            self.cluster
        }
    }

    /// A pool with placement and resources, to see them passed through.
    pub fn placed_pool(name: &str, replicas: i32) -> BrokerPool {
        let mut pool = pool(name, replicas);
        pool.storage.storage_class_name = Some("fast-ssd".into());
        pool.storage.reclaim_on_scale_down = ReclaimPolicy::Delete;
        pool.resources = Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".into(), Quantity("2".into())),
                ("memory".into(), Quantity("4Gi".into())),
            ])),
            ..ResourceRequirements::default()
        });
        pool.tolerations = vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Equal".into()),
            value: Some("kafka".into()),
            effect: Some("NoSchedule".into()),
            ..Toleration::default()
        }];
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cluster, placed_pool, pool};
    use super::*;
    use crate::desired::golden::assert_golden;

    fn model(c: &Cluster) -> ClusterModel {
        match ClusterModel::from_crd(c, "default") {
            Ok(m) => m,
            Err(e) => panic!("fixture should be valid: {e:?}"),
        }
    }

    fn yaml<T: serde::Serialize>(object: &T) -> String {
        serde_yaml::to_string(object).expect("k8s objects serialize")
    }

    #[test]
    fn every_builder_matches_its_golden_file() {
        let m = model(
            &cluster("demo")
                .uid("0b1c2d3e-0000-4000-8000-000000000001")
                .connect(2)
                .build(),
        );
        assert_golden("service_account.yaml", &yaml(&m.service_account()));
        assert_golden("config_map.yaml", &yaml(&m.broker_config_map()));
        assert_golden("headless_service.yaml", &yaml(&m.headless_service()));
        assert_golden("bootstrap_service.yaml", &yaml(&m.bootstrap_service()));
        assert_golden(
            "broker_statefulset.yaml",
            &yaml(&m.broker_statefulset(0).expect("pool 0")),
        );
        assert_golden(
            "pod_disruption_budget.yaml",
            &yaml(&m.pod_disruption_budget()),
        );
        assert_golden(
            "connect_deployment.yaml",
            &yaml(&m.connect_deployment().expect("connect")),
        );
        assert_golden(
            "connect_service.yaml",
            &yaml(&m.connect_service().expect("connect")),
        );
    }

    #[test]
    fn placement_storage_and_pod_template_pass_through() {
        let c = cluster("demo")
            .pools(vec![pool("main", 3), placed_pool("big", 2)])
            .config("log.retention.ms", "3600000")
            .rack()
            .pod_template()
            .build();
        let m = model(&c);
        assert_golden(
            "broker_statefulset_placed.yaml",
            &yaml(&m.broker_statefulset(1).expect("pool 1")),
        );
    }

    #[test]
    fn single_broker_has_no_quorum_and_no_metrics_annotations() {
        let m = model(
            &cluster("solo")
                .pools(vec![pool("main", 1)])
                .metrics(false)
                .build(),
        );
        let sts = m.broker_statefulset(0).expect("pool 0");
        let args = sts
            .spec
            .template
            .spec
            .as_ref()
            .expect("pod spec")
            .containers[0]
            .args
            .clone()
            .unwrap_or_default();
        assert!(!args.iter().any(|a| a == "--controller-quorum"), "{args:?}");
        let annotations = sts
            .spec
            .template
            .metadata
            .and_then(|m| m.annotations)
            .unwrap_or_default();
        assert!(!annotations.contains_key("prometheus.io/scrape"));
        assert!(annotations.contains_key(CONFIG_HASH_ANNOTATION));
    }

    #[test]
    fn node_ids_follow_pool_starts_and_quorum_takes_the_lowest_three() {
        let mut pinned = pool("b", 2);
        pinned.node_id_start = Some(50);
        let m = model(
            &cluster("demo")
                .pools(vec![pool("a", 2), pinned, pool("c", 1)])
                .build(),
        );
        let ids: Vec<i32> = m.brokers().iter().map(|b| b.node_id).collect();
        assert_eq!(ids, [0, 1, 50, 51, 2000]);
        assert_eq!(m.brokers()[2].pod, "demo-b-50");
        assert_eq!(
            m.controller_quorum().as_deref(),
            Some(
                "0@demo-a-0.demo-brokers.streaming.svc:9093,\
                 1@demo-a-1.demo-brokers.streaming.svc:9093,\
                 50@demo-b-50.demo-brokers.streaming.svc:9093"
            )
        );
        let sts = m.broker_statefulset(1).expect("pool b");
        assert_eq!(sts.spec.ordinals.and_then(|o| o.start), Some(50));
    }

    #[test]
    fn no_uid_means_no_owner_reference_and_default_namespace_fills_in() {
        let m = model(&cluster("demo").no_namespace().build());
        for object in m.desired_objects() {
            assert_eq!(
                object.metadata().owner_references,
                None,
                "{}",
                object.name()
            );
            assert_eq!(object.metadata().namespace.as_deref(), Some("default"));
        }
    }

    #[test]
    fn every_object_is_owned_and_labelled() {
        let m = model(&cluster("demo").uid("u-1").connect(1).build());
        let objects = m.desired_objects();
        let kinds: Vec<_> = objects
            .iter()
            .map(|o| (o.kind(), o.name().to_string()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("ServiceAccount", "demo".to_string()),
                ("ConfigMap", "demo-config".into()),
                ("Service", "demo-brokers".into()),
                ("Service", "demo-bootstrap".into()),
                ("StatefulSet", "demo-main".into()),
                ("PodDisruptionBudget", "demo-brokers".into()),
                ("Deployment", "demo-connect".into()),
                ("Service", "demo-connect".into()),
            ]
        );
        for object in &objects {
            let meta = object.metadata();
            let owner = &meta.owner_references.as_ref().expect("owner")[0];
            assert_eq!(
                (owner.kind.as_str(), owner.uid.as_str()),
                ("Cluster", "u-1")
            );
            let labels = meta.labels.as_ref().expect("labels");
            for key in [
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
                "app.kubernetes.io/managed-by",
                CLUSTER_LABEL,
            ] {
                assert!(labels.contains_key(key), "{} lacks {key}", object.name());
            }
        }
    }

    #[test]
    fn config_hash_changes_with_settings_only() {
        let a = model(&cluster("demo").build()).config_hash();
        let b = model(&cluster("demo").config("num.partitions", "6").build()).config_hash();
        let c = model(&cluster("other").build()).config_hash();
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn dynamic_settings_do_not_change_the_hash() {
        let a = model(&cluster("demo").build());
        let b = model(&cluster("demo").config("log.retention.ms", "1000").build());
        assert_eq!(a.config_hash(), b.config_hash());
        assert_eq!(
            b.dynamic_broker_settings(),
            BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())])
        );
        assert!(a.dynamic_broker_settings().is_empty());
    }

    #[test]
    fn invalid_specs_are_refused_before_building() {
        let errors = ClusterModel::from_crd(
            &cluster("demo").config("no.such.key", "1").build(),
            "default",
        )
        .expect_err("unknown key");
        assert_eq!(errors[0].path, "spec.config[\"no.such.key\"]");
    }
}
