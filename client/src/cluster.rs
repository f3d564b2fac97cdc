//! Connections to every broker we know of plus a cache of cluster metadata
//! (brokers, topics, partition leaders), shared by admin, producer and
//! consumer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::config::ClientConfig;
use crate::conn::Connection;
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// -1 while no leader is elected.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub error_code: i16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub id: Uuid,
    pub is_internal: bool,
    /// Sorted by partition index.
    pub partitions: Vec<PartitionMetadata>,
}

impl TopicMetadata {
    pub fn partition(&self, p: i32) -> Option<&PartitionMetadata> {
        self.partitions.iter().find(|m| m.partition == p)
    }
}

#[derive(Default)]
struct State {
    brokers: HashMap<i32, BrokerMetadata>,
    conns: HashMap<i32, Arc<Connection>>,
    bootstrap: Option<Arc<Connection>>,
    topics: HashMap<String, TopicMetadata>,
    names_by_id: HashMap<Uuid, String>,
    /// When each topic's metadata was last fetched.
    fetched_at: HashMap<String, Instant>,
    controller_id: i32,
    cluster_id: Option<String>,
}

/// Cached topic metadata older than this is fetched again, so long-running
/// producers and consumers see added partitions (Kafka's
/// `metadata.max.age.ms` default).
pub const METADATA_MAX_AGE: Duration = Duration::from_secs(300);

pub struct Cluster {
    config: ClientConfig,
    state: Mutex<State>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("bootstrap", &self.config.bootstrap_servers)
            .finish()
    }
}

impl Cluster {
    /// Reaches one bootstrap server and learns the brokers.
    pub async fn connect(config: ClientConfig) -> Result<Arc<Cluster>> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::Config("bootstrap_servers is empty".into()));
        }
        let cluster = Arc::new(Cluster {
            config,
            state: Mutex::new(State::default()),
        });
        cluster.refresh(Some(&[])).await?;
        Ok(cluster)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A live connection to some broker, preferring ones already open.
    pub async fn any(&self) -> Result<Arc<Connection>> {
        let (bootstrap, open, known) = {
            let s = self.state();
            let open: Vec<_> = s.conns.values().filter(|c| c.is_alive()).cloned().collect();
            let known: Vec<_> = s.brokers.keys().copied().collect();
            (s.bootstrap.clone().filter(|c| c.is_alive()), open, known)
        };
        if let Some(c) = bootstrap.or_else(|| open.into_iter().next()) {
            return Ok(c);
        }
        for node in known {
            if let Ok(c) = self.broker(node).await {
                return Ok(c);
            }
        }
        self.bootstrap().await
    }

    /// A new connection to `addr`, logged in when the config has credentials.
    async fn open(&self, addr: &str) -> Result<Arc<Connection>> {
        let conn = Connection::connect_with(
            addr,
            &self.config.client_id,
            self.config.request_timeout,
            self.config.tls.as_ref(),
        )
        .await?;
        if let Some(creds) = &self.config.sasl {
            crate::sasl::authenticate(&conn, creds, self.config.request_timeout).await?;
        }
        Ok(conn)
    }

    async fn bootstrap(&self) -> Result<Arc<Connection>> {
        let mut last = None;
        for addr in &self.config.bootstrap_servers {
            match self.open(addr).await {
                Ok(c) => {
                    self.state().bootstrap = Some(c.clone());
                    return Ok(c);
                }
                // Wrong credentials are wrong on every broker.
                Err(e) if e.is_authentication_failure() => return Err(e),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "bootstrap server unreachable");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Config("bootstrap_servers is empty".into())))
    }

    /// The connection to broker `node_id`, opened on first use.
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>> {
        let addr = {
            let s = self.state();
            if let Some(c) = s.conns.get(&node_id).filter(|c| c.is_alive()) {
                return Ok(c.clone());
            }
            s.brokers.get(&node_id).map(|b| b.addr())
        };
        let addr = match addr {
            Some(a) => a,
            None => {
                // Boxed: refresh -> any -> broker -> refresh is a cycle.
                Box::pin(self.refresh(Some(&[]))).await?;
                self.state()
                    .brokers
                    .get(&node_id)
                    .map(|b| b.addr())
                    .ok_or_else(|| {
                        Error::Other(format!("broker {node_id} is not in the cluster metadata"))
                    })?
            }
        };
        let conn = self.open(&addr).await?;
        let mut s = self.state();
        // Another task may have connected meanwhile; keep one connection per
        // broker so requests to it stay ordered.
        if let Some(c) = s.conns.get(&node_id).filter(|c| c.is_alive()) {
            return Ok(c.clone());
        }
        s.conns.insert(node_id, conn.clone());
        Ok(conn)
    }

    /// Refreshes metadata: `None` for every topic, `Some(&[])` for brokers
    /// only, otherwise the named topics (forgotten when the broker says they
    /// do not exist).
    pub async fn refresh(&self, topics: Option<&[String]>) -> Result<()> {
        let mut attempt = 0;
        loop {
            let conn = self.any().await?;
            let req = MetadataRequest::default()
                .with_allow_auto_topic_creation(false)
                .with_topics(topics.map(|ts| {
                    ts.iter()
                        .map(|t| {
                            MetadataRequestTopic::default()
                                .with_name(Some(StrBytes::from_string(t.clone()).into()))
                        })
                        .collect()
                }));
            match conn.send(&req).await {
                Ok(resp) => {
                    self.apply(resp, topics);
                    return Ok(());
                }
                Err(e) if e.is_retriable() && attempt < 2 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "metadata request failed; retrying on another connection");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn apply(&self, resp: MetadataResponse, requested: Option<&[String]>) {
        let mut s = self.state();
        if !resp.brokers.is_empty() {
            let brokers: HashMap<i32, BrokerMetadata> = resp
                .brokers
                .iter()
                .map(|b| {
                    let m = BrokerMetadata {
                        node_id: *b.node_id,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.as_ref().map(|r| r.to_string()),
                    };
                    (m.node_id, m)
                })
                .collect();
            // Drop connections to brokers that left or moved.
            s.conns
                .retain(|id, c| brokers.get(id).is_some_and(|b| b.addr() == c.addr()));
            s.brokers = brokers;
        }
        s.controller_id = *resp.controller_id;
        s.cluster_id = resp.cluster_id.as_ref().map(|c| c.to_string());
        if requested.is_none() {
            s.topics.clear();
            s.names_by_id.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.as_ref().map(|n| n.to_string()) else {
                continue;
            };
            if t.error_code == ResponseError::UnknownTopicOrPartition.code()
                || t.error_code == ResponseError::InvalidTopicException.code()
            {
                if let Some(old) = s.topics.remove(&name) {
                    s.names_by_id.remove(&old.id);
                }
                continue;
            }
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: *p.leader_id,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| **b).collect(),
                    isr: p.isr_nodes.iter().map(|b| **b).collect(),
                    offline_replicas: p.offline_replicas.iter().map(|b| **b).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            if !t.topic_id.is_nil() {
                s.names_by_id.insert(t.topic_id, name.clone());
            }
            s.fetched_at.insert(name.clone(), Instant::now());
            s.topics.insert(
                name.clone(),
                TopicMetadata {
                    name,
                    id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                },
            );
        }
    }

    pub fn topic(&self, name: &str) -> Option<TopicMetadata> {
        self.state().topics.get(name).cloned()
    }

    /// Cached metadata, fetched when missing.
    pub async fn topic_or_fetch(&self, name: &str) -> Result<TopicMetadata> {
        let fresh = self
            .state()
            .fetched_at
            .get(name)
            .is_some_and(|t| t.elapsed() < METADATA_MAX_AGE);
        if let Some(t) = self
            .topic(name)
            .filter(|t| fresh && !t.partitions.is_empty())
        {
            return Ok(t);
        }
        self.refresh(Some(&[name.to_string()])).await?;
        self.topic(name)
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    pub fn topic_name(&self, id: &Uuid) -> Option<String> {
        self.state().names_by_id.get(id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMetadata> {
        let mut v: Vec<_> = self.state().topics.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn brokers(&self) -> Vec<BrokerMetadata> {
        let mut v: Vec<_> = self.state().brokers.values().cloned().collect();
        v.sort_by_key(|b| b.node_id);
        v
    }

    pub fn controller_id(&self) -> i32 {
        self.state().controller_id
    }

    pub fn cluster_id(&self) -> Option<String> {
        self.state().cluster_id.clone()
    }

    /// Leader of a partition from the cache, if one is known.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<i32> {
        let s = self.state();
        let p = s.topics.get(topic)?.partition(partition)?;
        (p.leader >= 0).then_some(p.leader)
    }

    /// Forgets a topic so the next lookup asks the brokers again.
    pub fn invalidate(&self, topic: &str) {
        let mut s = self.state();
        if let Some(old) = s.topics.remove(topic) {
            s.names_by_id.remove(&old.id);
        }
    }

    /// The connection to the controller (for admin requests that must go
    /// there), falling back to any broker.
    pub async fn controller(&self) -> Result<Arc<Connection>> {
        let id = self.controller_id();
        if id >= 0
            && let Ok(c) = self.broker(id).await
        {
            return Ok(c);
        }
        self.any().await
    }

    /// Finds the group coordinator (key_type 0) or transaction coordinator
    /// (1), retrying while the coordinator is still loading.
    pub async fn coordinator(&self, key: &str, key_type: i8) -> Result<(i32, Arc<Connection>)> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        loop {
            let conn = self.any().await?;
            let version = conn.version_for::<FindCoordinatorRequest>()?;
            let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
            if version >= 4 {
                req.coordinator_keys = vec![StrBytes::from_string(key.to_string())];
            } else {
                req.key = StrBytes::from_string(key.to_string());
            }
            let resp = conn.send(&req).await?;
            let (code, msg, node, host, port) = if version >= 4 {
                match resp.coordinators.into_iter().next() {
                    Some(c) => (c.error_code, c.error_message, *c.node_id, c.host, c.port),
                    None => return Err(Error::NoCoordinator(key.to_string())),
                }
            } else {
                (
                    resp.error_code,
                    resp.error_message,
                    *resp.node_id,
                    resp.host,
                    resp.port,
                )
            };
            if code != 0 {
                let err = Error::kafka(
                    code,
                    msg.map(|m| m.to_string()),
                    format!("find coordinator of {key:?}"),
                );
                if err.is_retriable() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                return Err(err);
            }
            {
                let mut s = self.state();
                s.brokers.entry(node).or_insert_with(|| BrokerMetadata {
                    node_id: node,
                    host: host.to_string(),
                    port,
                    rack: None,
                });
            }
            return Ok((node, self.broker(node).await?));
        }
    }
}
