//! What the reconcilers need from the brokers, behind two small traits so
//! the reconcilers can be tested without brokers:
//!
//! - [`BrokerFacts`]: partitions, ISR and the active controller (for the
//!   rolling restart), topics' replication factors and draining (for
//!   scale-down), live broker settings, and unregistering brokers that left.
//! - [`TopicAdmin`]: describe, create, grow, reconfigure and delete a topic.
//!
//! [`admin::AdminConnector`] implements them over weir-client's `Admin`;
//! [`memory::InMemoryKafka`] is a plain in-memory cluster for tests.

pub mod admin;
pub mod memory;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::Result;
use crate::reconcile::plan::PartitionState;

/// A snapshot of what the brokers say about themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFacts {
    pub cluster_id: Option<String>,
    /// The node id of the active controller, when one is known.
    pub controller_id: Option<i32>,
    /// Every partition of every topic, internal ones included.
    pub partitions: Vec<PartitionState>,
    pub topics: Vec<TopicReplication>,
}

/// How many replicas a topic keeps, for the scale-down check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicReplication {
    pub name: String,
    pub replication_factor: i16,
}

/// A topic as the brokers describe it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedTopic {
    pub id: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Settings set on the topic itself (the rest are broker defaults).
    pub overrides: BTreeMap<String, String>,
    /// Every setting with the value in force.
    pub effective: BTreeMap<String, String>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    pub config: BTreeMap<String, String>,
}

/// One incremental change of a topic setting.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the broker default.
    Delete(String),
}

/// Facts about the brokers and the few broker-level actions a Cluster needs.
pub trait BrokerFacts: Send + Sync {
    fn facts(&self) -> BoxFuture<'_, Result<ClusterFacts>>;
    /// Starts moving every partition replica off these brokers, all at
    /// once and only onto brokers not in `node_ids`
    /// ([`weir_client::reassign::plan_drains`]).
    fn drain<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<()>>;
    /// Whether none of these brokers holds a partition replica any more.
    fn is_drained<'a>(&'a self, node_ids: &'a [i32]) -> BoxFuture<'a, Result<bool>>;
    /// Sets cluster-wide dynamic broker settings that differ from
    /// `settings`; returns the keys it changed.
    fn apply_broker_config<'a>(
        &'a self,
        settings: &'a BTreeMap<String, String>,
    ) -> BoxFuture<'a, Result<Vec<String>>>;
    /// Forgets a broker that left for good (Kafka's UnregisterBroker), so
    /// the metadata no longer lists it. Succeeds when it is not registered;
    /// refused while the broker still runs or holds replicas.
    fn unregister<'a>(&'a self, node_id: i32) -> BoxFuture<'a, Result<()>>;
}

/// Topic administration on one cluster.
pub trait TopicAdmin: Send + Sync {
    /// `None` when the topic does not exist.
    fn describe_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<ObservedTopic>>>;
    fn create_topic<'a>(&'a self, topic: &'a NewTopicSpec) -> BoxFuture<'a, Result<()>>;
    fn create_partitions<'a>(&'a self, name: &'a str, total: i32) -> BoxFuture<'a, Result<()>>;
    fn alter_topic_config<'a>(
        &'a self,
        name: &'a str,
        changes: &'a [ConfigChange],
    ) -> BoxFuture<'a, Result<()>>;
    /// Deleting a topic that does not exist succeeds.
    fn delete_topic<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
    fn cluster_id(&self) -> BoxFuture<'_, Result<Option<String>>>;
}

/// Both, as one connection to one cluster.
pub trait KafkaOps: BrokerFacts + TopicAdmin {}
impl<T: BrokerFacts + TopicAdmin> KafkaOps for T {}

/// Opens [`KafkaOps`] on the cluster behind a bootstrap address.
pub trait KafkaConnector: Send + Sync {
    fn connect<'a>(&'a self, bootstrap: &'a str) -> BoxFuture<'a, Result<Arc<dyn KafkaOps>>>;
}
