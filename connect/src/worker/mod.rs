//! A Connect worker: reads the three internal topics, joins the task group
//! named by its group id, and runs what the coordinator assigns it — each
//! connector instance and each connector task (subtopology `c:<name>`,
//! one partition per task index; partition 0 also runs the instance).
//!
//! Every worker computes the same topology from the config topic (the
//! topology epoch is the config topic's next offset), so a connector
//! created through any worker reaches every worker and the coordinator
//! spreads its tasks; a task is revoked and stopped before it is given to
//! another worker, so none runs twice.

pub mod config;
mod instance;
mod offsets;
mod runner;
mod sink;
mod source;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use weir_client::ClientConfig;
use weir_client::cluster::Cluster;
use weir_client::producer::{Producer, ProducerConfig};
use weir_client::task_group::proto;

use crate::loggers::Loggers;
use crate::store::configs::{Change, ConfigState, RestartRequest, TargetState, records};
use crate::store::log::TopicLog;
use crate::store::offsets::OffsetState;
use crate::store::statuses::{self, State, Status, StatusState, Subject};
pub use config::WorkerConfig;

pub type Props = BTreeMap<String, String>;

/// A connector's subtopology. Its task `i` runs connector task `i`, and
/// task 0 also the connector instance, so the coordinator's balancing by
/// task count spreads connectors and tasks alike.
pub fn connector_subtopology(name: &str) -> String {
    format!("c:{name}")
}

/// The topology every worker derives from the same config state: a
/// subtopology per connector with one task per task config (one for the
/// instance alone while there are none, or the connector is stopped).
pub fn topology(state: &ConfigState) -> proto::Topology {
    let subtopologies = state
        .connectors
        .iter()
        .map(|(name, c)| {
            let tasks = if c.target == TargetState::Stopped {
                0
            } else {
                c.tasks.len()
            };
            proto::Subtopology {
                id: connector_subtopology(name),
                task_count: i32::try_from(tasks.max(1)).unwrap_or(i32::MAX),
                ..proto::Subtopology::default()
            }
        })
        .collect();
    proto::Topology {
        epoch: i32::try_from(state.applied).unwrap_or(i32::MAX),
        subtopologies,
        ..proto::Topology::default()
    }
}

/// What the REST API and the runner share.
pub struct Worker {
    /// `host:port` of this worker's REST API, as statuses name it.
    pub id: String,
    pub config: WorkerConfig,
    pub cluster: Arc<Cluster>,
    pub producer: Arc<Producer>,
    pub configs: Arc<RwLock<ConfigState>>,
    pub statuses: Arc<RwLock<StatusState>>,
    pub offsets: Arc<RwLock<OffsetState>>,
    pub loggers: Arc<Loggers>,
    config_log: TopicLog,
    status_log: TopicLog,
    offset_log: TopicLog,
}

/// A running worker.
pub struct WorkerHandle {
    pub worker: Arc<Worker>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WorkerHandle {
    /// Stops every task (committing), leaves the group, and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// A config or status record's key (both are text in Kafka's formats).
fn key_text(r: &weir_client::consumer::ConsumerRecord) -> std::borrow::Cow<'_, str> {
    r.key
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default()
}

fn read<T: Clone>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    /// Connects, creates the internal topics when missing, reads them, and
    /// starts the runner.
    pub async fn start(
        client: ClientConfig,
        config: WorkerConfig,
        id: String,
        loggers: Arc<Loggers>,
    ) -> Result<WorkerHandle> {
        let cluster = Cluster::connect(client)
            .await
            .context("connecting to the brokers")?;
        let producer = Arc::new(
            Producer::with_cluster(cluster.clone(), ProducerConfig::default())
                .await
                .context("starting the worker's producer")?,
        );
        let configs = Arc::new(RwLock::new(ConfigState::default()));
        let statuses = Arc::new(RwLock::new(StatusState::default()));
        let offsets = Arc::new(RwLock::new(OffsetState::default()));
        // Changes read once the worker has caught up go to the runner;
        // older ones (restart requests above all) are history.
        let live = Arc::new(AtomicBool::new(false));
        let (changes_tx, changes) = mpsc::unbounded_channel();
        let config_log = {
            let state = configs.clone();
            let live = live.clone();
            let loggers = loggers.clone();
            TopicLog::start(
                cluster.clone(),
                producer.clone(),
                &config.config_topic,
                move |r| {
                    let key = key_text(r);
                    let change = write(&state).apply(r.offset, &key, r.value.as_deref());
                    if !live.load(Ordering::Acquire) {
                        return;
                    }
                    // As in Kafka, cluster-wide levels reach running workers
                    // only: a restarted worker starts from its own flags.
                    if let Change::Logger(logger, level) = &change {
                        if let Err(e) = loggers.set(logger, level, r.timestamp) {
                            tracing::warn!(logger, error = %e, "a cluster log level");
                        }
                        return;
                    }
                    let _ = changes_tx.send(change);
                },
            )
            .await?
        };
        let status_log = {
            let state = statuses.clone();
            TopicLog::start(
                cluster.clone(),
                producer.clone(),
                &config.status_topic,
                move |r| {
                    let key = key_text(r);
                    write(&state).apply(&key, r.value.as_deref());
                },
            )
            .await?
        };
        let offset_log = {
            let state = offsets.clone();
            TopicLog::start(
                cluster.clone(),
                producer.clone(),
                &config.offset_topic,
                move |r| {
                    if let Some(k) = r.key.as_deref() {
                        write(&state).apply(k, r.value.as_deref());
                    }
                },
            )
            .await?
        };
        live.store(true, Ordering::Release);
        let worker = Arc::new(Worker {
            id,
            config,
            cluster,
            producer,
            configs,
            statuses,
            offsets,
            loggers,
            config_log,
            status_log,
            offset_log,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let task = tokio::spawn(runner::run(worker.clone(), changes, shutdown_rx));
        Ok(WorkerHandle {
            worker,
            shutdown,
            task,
        })
    }

    pub fn config_state(&self) -> ConfigState {
        read(&self.configs).clone()
    }

    pub fn status_of(&self, subject: &Subject) -> Option<Status> {
        read(&self.statuses).get(subject).cloned()
    }

    pub fn task_statuses(&self, connector: &str) -> Vec<(i32, Status)> {
        read(&self.statuses)
            .tasks_of(connector)
            .into_iter()
            .map(|(i, s)| (i, s.clone()))
            .collect()
    }

    pub fn source_offsets(
        &self,
        connector: &str,
    ) -> Vec<(
        crate::store::offsets::JsonMap,
        crate::store::offsets::JsonMap,
    )> {
        read(&self.offsets).of(connector)
    }

    /// Writes config records in order; returns once this worker has read
    /// them, so its next answer reflects them.
    pub async fn write_configs(&self, records: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        let n = records.len();
        for (i, (key, value)) in records.into_iter().enumerate() {
            self.config_log.send(key, value, i + 1 == n).await?;
        }
        Ok(())
    }

    pub async fn put_connector(
        &self,
        name: &str,
        config: &Props,
        initial: Option<TargetState>,
    ) -> Result<()> {
        let mut out = Vec::new();
        if let Some(t) = initial {
            out.push(records::target_state(name, t));
        }
        out.push(records::connector(name, config));
        self.write_configs(out).await
    }

    pub async fn delete_connector(&self, name: &str) -> Result<()> {
        self.write_configs(vec![records::connector_deleted(name)])
            .await
    }

    pub async fn set_target(&self, name: &str, state: TargetState) -> Result<()> {
        self.write_configs(vec![records::target_state(name, state)])
            .await
    }

    pub async fn request_restart(&self, req: &RestartRequest) -> Result<()> {
        self.write_configs(vec![records::restart(req)]).await
    }

    /// Writes a status of something this worker runs.
    pub async fn put_status(&self, subject: &Subject, state: State, trace: Option<String>) {
        let status = Status {
            state,
            trace,
            worker_id: self.id.clone(),
            generation: read(&self.configs).applied,
        };
        if let Err(e) = self
            .status_log
            .send(subject.key(), Some(statuses::encode(&status)), false)
            .await
        {
            tracing::warn!(error = %e, key = %subject.key(), "writing a status");
        }
    }

    pub async fn forget_status(&self, subject: &Subject) {
        if let Err(e) = self.status_log.send(subject.key(), None, false).await {
            tracing::warn!(error = %e, key = %subject.key(), "deleting a status");
        }
    }

    /// Records (KIP-558) that a connector's task used a topic, the first
    /// time it does.
    pub async fn note_topic(&self, connector: &str, task: i32, topic: &str) {
        if !self.config.topic_tracking
            || read(&self.statuses)
                .topics
                .get(connector)
                .is_some_and(|t| t.contains_key(topic))
        {
            return;
        }
        let status = statuses::TopicStatus {
            name: topic.to_string(),
            connector: connector.to_string(),
            task,
            discover_timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        };
        if let Err(e) = self
            .status_log
            .send(
                statuses::topic_key(topic, connector),
                Some(statuses::encode_topic(&status)),
                true,
            )
            .await
        {
            tracing::warn!(error = %e, connector, topic, "recording an active topic");
        }
    }

    pub fn active_topics(&self, connector: &str) -> Vec<String> {
        read(&self.statuses).topics_of(connector)
    }

    /// Forgets the topics a connector used.
    pub async fn reset_topics(&self, connector: &str) -> Result<()> {
        let topics = self.active_topics(connector);
        let n = topics.len();
        for (i, t) in topics.iter().enumerate() {
            self.status_log
                .send(statuses::topic_key(t, connector), None, i + 1 == n)
                .await?;
        }
        Ok(())
    }

    /// Stores source offsets (after the records they cover were acknowledged).
    pub async fn put_offsets(
        &self,
        connector: &str,
        offsets: &[(
            crate::store::offsets::JsonMap,
            crate::store::offsets::JsonMap,
        )],
    ) -> Result<()> {
        let pairs: Vec<_> = offsets
            .iter()
            .map(|(p, o)| (p.clone(), Some(o.clone())))
            .collect();
        self.write_source_offsets(connector, &pairs, false).await
    }
}
