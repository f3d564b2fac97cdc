//! The connector model: a connector validates its configuration and splits
//! its work into task configs; tasks do the I/O. The framework does the
//! Kafka side (producing, consuming, committing offsets).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use crate::config_def::ConfigDef;
use crate::record::{SinkRecord, SourceRecord};
use crate::store::offsets::JsonMap;

pub type Props = BTreeMap<String, String>;
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A task's or connector's failure, as `/status` shows it in `trace`.
pub type TaskError = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// Kafka's `Connector`.
pub trait Connector: Send {
    fn config_def(&self) -> ConfigDef;
    /// Checks the configuration beyond its keys' types (the keys were
    /// validated against [`Connector::config_def`] already).
    fn start(&mut self, config: &Props) -> Result<(), TaskError>;
    /// Errors beyond the keys' types, as (key, message), for
    /// `config/validate` to show beside each key (a required key that is
    /// missing only depends on another, say). `start` should refuse the
    /// same configurations.
    fn validate_config(&self, _config: &Props) -> Vec<(String, String)> {
        Vec::new()
    }
    /// At most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Vec<Props>;
    fn stop(&mut self) {}
}

/// What a source task is told when it starts.
pub trait OffsetReader: Send + Sync {
    /// The offset last committed for a source partition.
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap>;
}

/// Kafka's `SourceTask`.
pub trait SourceTask: Send {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError>;
    /// The next records; an empty batch when there is nothing yet (after
    /// waiting a little, so the framework can check whether to stop).
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>, TaskError>>;
    fn stop(&mut self) {}
}

/// Kafka's `SinkTask`.
pub trait SinkTask: Send {
    fn start(&mut self, config: &Props) -> Result<(), TaskError>;
    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<(), TaskError>>;
    /// Everything `put` so far is durable: the framework commits the
    /// consumer offsets after this returns.
    fn flush(&mut self) -> BoxFuture<'_, Result<(), TaskError>>;
    fn stop(&mut self) {}
}

/// A connector plugin: its names and how to make its parts.
pub struct ConnectorPlugin {
    pub class: &'static str,
    pub aliases: &'static [&'static str],
    pub kind: ConnectorType,
    pub version: &'static str,
    pub connector: fn() -> Box<dyn Connector>,
    pub task: TaskFactory,
}

#[derive(Clone, Copy)]
pub enum TaskFactory {
    Source(fn() -> Box<dyn SourceTask>),
    Sink(fn() -> Box<dyn SinkTask>),
}

impl ConnectorPlugin {
    pub fn answers_to(&self, name: &str) -> bool {
        self.class == name || self.aliases.contains(&name)
    }
}
