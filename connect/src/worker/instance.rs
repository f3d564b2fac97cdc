//! One connector instance or task, from start to stop: its status, its
//! plugin, and for an instance the task configs it writes.

use std::sync::Arc;

use tokio::sync::watch;

use super::runner::Snapshot;
use super::{Props, Worker, WorkerConfig};
use crate::connector::{ConnectorPlugin, TaskFactory};
use crate::connectors;
use crate::plugin::Converter;
use crate::store::configs::{TargetState, records};
use crate::store::statuses::{State, Subject};
use crate::transforms::TransformChain;
use crate::validate;

pub(super) fn plugin_of(config: &Props) -> Result<ConnectorPlugin, String> {
    let class = config
        .get("connector.class")
        .map(String::as_str)
        .unwrap_or("");
    connectors::find(class).ok_or_else(|| connectors::unknown(class))
}

/// Waits until told to stop.
pub(super) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The converters and transforms a task uses: the connector's own
/// settings over the worker's.
pub(super) struct Pipeline {
    pub key: Box<dyn Converter>,
    pub value: Box<dyn Converter>,
    pub key_class: String,
    pub value_class: String,
    pub transforms: TransformChain,
    /// The connector's `transforms` aliases, naming the stage in errors.
    transform_aliases: String,
}

impl Pipeline {
    pub fn new(worker: &WorkerConfig, connector: &Props) -> Result<Pipeline, String> {
        let build = |role: &str, default: &str, is_key: bool| {
            let own = connector.get(role).filter(|c| !c.trim().is_empty());
            let (class, settings) = match own.map(|c| c.trim()) {
                Some(class) => (
                    class.to_string(),
                    WorkerConfig::prefixed(connector, &format!("{role}.")),
                ),
                None => (
                    default.to_string(),
                    WorkerConfig::prefixed(&worker.props, &format!("{role}.")),
                ),
            };
            crate::converter::build(&class, &settings, is_key)
                .map(|c| (c, class.clone()))
                .map_err(|e| format!("Invalid {role} {class}: {e}"))
        };
        let transforms = TransformChain::from_config(connector).map_err(|errors| {
            errors
                .into_iter()
                .map(|(k, m)| format!("{k}: {m}"))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        let (key, key_class) = build("key.converter", &worker.key_converter, true)?;
        let (value, value_class) = build("value.converter", &worker.value_converter, false)?;
        Ok(Pipeline {
            key,
            value,
            key_class,
            value_class,
            transforms,
            transform_aliases: connector.get("transforms").cloned().unwrap_or_default(),
        })
    }

    pub fn transforms_class(&self) -> String {
        format!("transforms {}", self.transform_aliases)
    }
}

/// A connector instance: validates, writes its task configs when they
/// changed, and reports its state until stopped.
pub(super) async fn run(
    worker: Arc<Worker>,
    name: String,
    snap: Snapshot,
    stop: watch::Receiver<bool>,
) {
    let subject = Subject::Connector(name.clone());
    match start_connector(&worker, &name, &snap).await {
        Ok(state) => {
            worker.put_status(&subject, state, None).await;
            stopped(stop).await;
        }
        Err(trace) => {
            tracing::warn!(connector = %name, error = %trace, "connector failed");
            worker
                .put_status(&subject, State::Failed, Some(trace))
                .await;
        }
    }
}

async fn start_connector(worker: &Worker, name: &str, snap: &Snapshot) -> Result<State, String> {
    let config = &snap.connector_config;
    let plugin = plugin_of(config)?;
    if snap.target == TargetState::Stopped {
        // KIP-875: a stopped connector has no tasks.
        if !snap.tasks.is_empty() {
            worker
                .write_configs(vec![records::commit(name, 0)])
                .await
                .map_err(|e| format!("writing the task configs: {e:#}"))?;
        }
        return Ok(State::Stopped);
    }
    let infos = validate::validate(&plugin, config);
    if infos.error_count > 0 {
        return Err(format!(
            "Connector configuration is invalid and contains the following {} error(s):\n{}",
            infos.error_count,
            infos.errors().join("\n")
        ));
    }
    let mut connector = (plugin.connector)();
    connector.start(config)?;
    let max: usize = config
        .get("tasks.max")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1);
    let mut tasks = connector.task_configs(max.max(1));
    tasks.truncate(max.max(1));
    connector.stop();
    if tasks != snap.tasks {
        let mut out: Vec<_> = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| records::task(name, i, t))
            .collect();
        out.push(records::commit(name, tasks.len()));
        worker
            .write_configs(out)
            .await
            .map_err(|e| format!("writing the task configs: {e:#}"))?;
    }
    Ok(if snap.target == TargetState::Paused {
        State::Paused
    } else {
        State::Running
    })
}

/// A task: runs until stopped, or until it fails (its status says why).
pub(super) async fn run_task(
    worker: Arc<Worker>,
    name: String,
    index: i32,
    snap: Snapshot,
    stop: watch::Receiver<bool>,
) {
    let subject = Subject::Task(name.clone(), index);
    if snap.target == TargetState::Paused {
        worker.put_status(&subject, State::Paused, None).await;
        stopped(stop).await;
        return;
    }
    let result = async {
        let plugin = plugin_of(&snap.connector_config)?;
        let pipeline = Pipeline::new(&worker.config, &snap.connector_config)?;
        let task_config = snap.task_config.clone().unwrap_or_default();
        match plugin.task {
            TaskFactory::Source(make) => {
                super::source::run(
                    &worker,
                    &name,
                    &subject,
                    make(),
                    &snap.connector_config,
                    &task_config,
                    pipeline,
                    stop,
                )
                .await
            }
            TaskFactory::Sink(make) => {
                super::sink::run(
                    &worker,
                    &name,
                    &subject,
                    make(),
                    &snap.connector_config,
                    &task_config,
                    pipeline,
                    stop,
                )
                .await
            }
        }
    }
    .await;
    if let Err(trace) = result {
        tracing::warn!(connector = %name, task = index, error = %trace, "task failed");
        worker
            .put_status(&subject, State::Failed, Some(trace))
            .await;
    }
}
