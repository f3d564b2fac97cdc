//! A running broker: its shared state, start-up (recovery of every log,
//! replay of group metadata), background log maintenance and clean shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use uuid::Uuid;
use weir_coordinator::{GroupConfig, GroupCoordinator};
use weir_log::LogError;

use crate::clock::now_ms;
use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessions;
use crate::group_store::{OffsetsTopicStore, TopicCatalogView};
use crate::metadata::{CONSUMER_OFFSETS_TOPIC, MetadataError, MetadataStore, TopicMeta};
use crate::partitions::LogManager;
use crate::topic_config::{self, ConfigError};

/// Errors from starting or changing the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("partition log: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("advertised address {0:?} must be HOST:PORT")]
    BadAdvertise(String),
    #[error("{0}")]
    Invalid(String),
    #[error("loading group metadata: {0}")]
    Groups(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything request handlers share.
pub struct BrokerState {
    pub config: BrokerConfig,
    /// Host and port clients are told to connect to.
    pub advertised: (String, i32),
    pub metadata: Arc<MetadataStore>,
    pub logs: Arc<LogManager>,
    pub groups: GroupCoordinator,
    pub fetch_sessions: FetchSessions,
    pub metrics: crate::admin_http::Metrics,
}

impl BrokerState {
    /// Creates a topic: metadata first (which checks the name), then its logs.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        internal: bool,
    ) -> Result<TopicMeta, BrokerError> {
        for (key, value) in &configs {
            topic_config::validate_topic_config(key, value)?;
        }
        let topic = self.metadata.create_topic(TopicMeta {
            name: name.to_string(),
            id: Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
            internal,
        })?;
        self.open_partitions(&topic, 0)?;
        Ok(topic)
    }

    fn open_partitions(&self, topic: &TopicMeta, from: i32) -> Result<(), BrokerError> {
        let log_config = topic_config::log_config(&topic.configs, &self.config.settings);
        for index in from..topic.partitions {
            self.logs
                .open_partition(&topic.name, index, log_config.clone())?;
        }
        Ok(())
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, BrokerError> {
        let topic = self.metadata.delete_topic(name)?;
        self.fetch_sessions.forget_topic(name);
        self.logs.delete_topic(name)?;
        Ok(topic)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32) -> Result<TopicMeta, BrokerError> {
        let before = self
            .metadata
            .topic(name)
            .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
        let topic = self.metadata.update_topic(name, |t| t.partitions = count)?;
        self.open_partitions(&topic, before.partitions)?;
        Ok(topic)
    }

    /// The topic's effective `min.insync.replicas` (on the produce path, so
    /// it looks up the one key rather than resolving every config).
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        const KEY: &str = "min.insync.replicas";
        let topic_value = self
            .metadata
            .topic(topic)
            .and_then(|t| t.configs.get(KEY).cloned());
        topic_value
            .or_else(|| self.config.settings.get(KEY).cloned())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Replaces a topic's config overrides (already validated) and applies
    /// them to its open logs at once: every topic config is dynamic here.
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicMeta, BrokerError> {
        let topic = self.metadata.update_topic(name, |t| t.configs = configs)?;
        let log_config = topic_config::log_config(&topic.configs, &self.config.settings);
        for partition in self.logs.of_topic(name) {
            partition.log().set_config(log_config.clone());
        }
        Ok(topic)
    }
}

/// A started broker. Dropping it without `shutdown` leaves the tasks running
/// until the runtime stops, like a killed process: recovery copes with that.
pub struct Broker {
    state: Arc<BrokerState>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Broker {
    /// Recovers the data directory, binds the listener and starts serving.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let listener =
            TcpListener::bind(&config.listen)
                .await
                .map_err(|source| BrokerError::Bind {
                    addr: config.listen.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr()?;
        let admin_listener = match &config.admin_listen {
            Some(addr) => match TcpListener::bind(addr).await {
                Ok(listener) => Some(listener),
                Err(e)
                    if config.admin_listen_optional
                        && e.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    warn!(addr = %addr, "admin HTTP port is in use; running without it (set --admin-listen to choose another)");
                    None
                }
                Err(source) => {
                    return Err(BrokerError::Bind {
                        addr: addr.clone(),
                        source,
                    });
                }
            },
            None => None,
        };
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let advertised = advertised_address(config.advertise.as_deref(), local_addr)?;

        let data_dir = config.data_dir.clone();
        let metadata = Arc::new(MetadataStore::open(&data_dir)?);
        let logs = Arc::new(LogManager::new(&data_dir));
        let config_for_open = config.clone();
        let (metadata, logs) = {
            let (metadata, logs) = (Arc::clone(&metadata), Arc::clone(&logs));
            tokio::task::spawn_blocking(move || -> Result<_, BrokerError> {
                open_all_logs(&config_for_open, &metadata, &logs)?;
                Ok((metadata, logs))
            })
            .await
            .map_err(|e| BrokerError::Invalid(format!("opening logs: {e}")))??
        };

        let offsets_partition = match logs.get(CONSUMER_OFFSETS_TOPIC, 0) {
            Some(p) => p,
            None => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    ("segment.bytes".to_string(), "104857600".to_string()),
                ]);
                let topic = metadata.create_topic(TopicMeta {
                    name: CONSUMER_OFFSETS_TOPIC.to_string(),
                    id: Uuid::new_v4(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: configs.clone(),
                    internal: true,
                })?;
                logs.open_partition(
                    &topic.name,
                    0,
                    topic_config::log_config(&configs, &config.settings),
                )?
            }
        };
        let groups = GroupCoordinator::new(
            GroupConfig {
                initial_rebalance_delay: config.group_initial_rebalance_delay(),
                min_session_timeout: config.group_min_session_timeout(),
                max_session_timeout: config.group_max_session_timeout(),
                offsets_retention: config.offsets_retention(),
                ..GroupConfig::default()
            },
            Arc::new(OffsetsTopicStore::new(offsets_partition, Arc::clone(&logs))),
            Arc::new(TopicCatalogView::new(Arc::clone(&metadata))),
        );
        groups
            .load()
            .await
            .map_err(|e| BrokerError::Groups(e.to_string()))?;

        let state = Arc::new(BrokerState {
            config,
            advertised,
            metadata,
            logs,
            groups,
            fetch_sessions: FetchSessions::new(),
            metrics: Default::default(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(crate::server::serve(
            listener,
            Arc::clone(&state),
            shutdown_rx.clone(),
        ))];
        if let Some(admin) = admin_listener {
            tasks.push(tokio::spawn(crate::admin_http::serve(
                admin,
                Arc::clone(&state),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(maintain_logs(Arc::clone(&state), shutdown_rx)));
        info!(
            node_id = state.config.node_id,
            listen = %local_addr,
            advertised = %format!("{}:{}", state.advertised.0, state.advertised.1),
            cluster_id = %state.metadata.cluster_id(),
            "broker started"
        );
        Ok(Broker {
            state,
            local_addr,
            admin_addr,
            shutdown,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin HTTP port listens, if it was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Stops accepting requests, then flushes every log to disk.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.groups.shutdown();
        let logs = Arc::clone(&self.state.logs);
        tokio::task::spawn_blocking(move || {
            for partition in logs.all() {
                if let Err(e) = partition.log().flush() {
                    warn!(topic = %partition.topic, partition = partition.index, error = %e, "flush at shutdown failed");
                }
            }
        })
        .await
        .map_err(|e| BrokerError::Invalid(format!("flushing logs: {e}")))?;
        info!("broker stopped");
        Ok(())
    }
}

fn advertised_address(
    advertise: Option<&str>,
    local: SocketAddr,
) -> Result<(String, i32), BrokerError> {
    match advertise {
        Some(addr) => {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| BrokerError::BadAdvertise(addr.to_string()))?;
            let port: u16 = port
                .parse()
                .map_err(|_| BrokerError::BadAdvertise(addr.to_string()))?;
            let port = if port == 0 { local.port() } else { port };
            Ok((
                host.trim_matches(|c| c == '[' || c == ']').to_string(),
                port as i32,
            ))
        }
        None => Ok((local.ip().to_string(), local.port() as i32)),
    }
}

fn open_all_logs(
    config: &BrokerConfig,
    metadata: &MetadataStore,
    logs: &LogManager,
) -> Result<(), BrokerError> {
    let topics = metadata.topics();
    let removed = logs.remove_strays(|topic, index| {
        topics
            .iter()
            .any(|t| t.name == topic && index < t.partitions)
    })?;
    for path in removed {
        info!(path = %path.display(), "removed data of a deleted topic");
    }
    for topic in &topics {
        let log_config = topic_config::log_config(&topic.configs, &config.settings);
        for index in 0..topic.partitions {
            logs.open_partition(&topic.name, index, log_config.clone())?;
        }
    }
    Ok(())
}

/// Time-based rolls, retention, compaction and periodic flushes, each on
/// its own interval, until shutdown.
async fn maintain_logs(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let config = &state.config;
    let mut retention = tokio::time::interval(
        config
            .retention_check_interval()
            .max(Duration::from_millis(10)),
    );
    let mut cleaner =
        tokio::time::interval(config.cleaner_backoff().max(Duration::from_millis(10)));
    let flush_every = config.flush_interval();
    // A disabled flush still needs an interval to select on; it never fires.
    let mut flush = tokio::time::interval(
        flush_every
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(10)),
    );
    let cleaner_enabled = config.cleaner_enabled();
    loop {
        let job: fn(&mut weir_log::PartitionLog, i64) -> Result<(), LogError> = tokio::select! {
            _ = retention.tick() => |log, now| {
                log.roll_if_due(now)?;
                log.enforce_retention(now).map(|_| ())
            },
            _ = cleaner.tick(), if cleaner_enabled => |log, now| log.compact(now).map(|_| ()),
            _ = flush.tick(), if flush_every.is_some() => |log, _| log.flush(),
            _ = shutdown.changed() => return,
        };
        for partition in state.logs.all() {
            let result = partition.with_log(move |log| job(log, now_ms())).await;
            if let Err(e) = result {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "log maintenance failed");
            }
        }
    }
}
