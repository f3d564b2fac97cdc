//! Kafka's FileStream connectors, with their class names and keys: the
//! source tails a file into one topic, a line per record, its byte
//! position kept as the source offset (`{"filename"}` → `{"position"}`);
//! the sink appends each record's value as a line.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

use crate::config_def::{ConfigDef, ConfigType, Importance, Validator};
use crate::connector::{
    BoxFuture, Connector, ConnectorPlugin, ConnectorType, OffsetReader, Props, SinkTask,
    SourceTask, TaskError, TaskFactory,
};
use crate::data::{Schema, SchemaAndValue, SchemaType, Value};
use crate::record::{ConnectRecord, SinkRecord, SourceRecord};
use crate::store::offsets::JsonMap;

pub const SOURCE: ConnectorPlugin = ConnectorPlugin {
    class: "org.apache.kafka.connect.file.FileStreamSourceConnector",
    aliases: &["FileStreamSource", "FileStreamSourceConnector"],
    kind: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(FileSource::default()),
    task: TaskFactory::Source(|| Box::new(FileSourceTask::default())),
};

pub const SINK: ConnectorPlugin = ConnectorPlugin {
    class: "org.apache.kafka.connect.file.FileStreamSinkConnector",
    aliases: &["FileStreamSink", "FileStreamSinkConnector"],
    kind: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(FileSink::default()),
    task: TaskFactory::Sink(|| Box::new(FileSinkTask::default())),
};

fn single_topic(v: &crate::config_def::ParsedValue) -> Result<(), String> {
    match v {
        crate::config_def::ParsedValue::String(s) if s.contains(',') => Err(
            "'topic' in FileStreamSourceConnector configuration requires definition of a single topic".into(),
        ),
        crate::config_def::ParsedValue::String(s) if s.is_empty() => {
            Err("String must be non-empty".into())
        }
        _ => Ok(()),
    }
}

#[derive(Default)]
pub struct FileSource {
    config: Props,
}

impl Connector for FileSource {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "file",
                ConfigType::String,
                Some(""),
                Importance::High,
                "The file to read; standard input is not supported by Weir, so this is required in practice.",
            )
            .define("topic", ConfigType::String, None, Importance::High, "The topic to write to.")
            .validate_with(Validator::Custom(single_topic))
            .define(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "The most lines one poll returns.",
            )
            .validate_with(Validator::Range {
                min: Some(1.0),
                max: None,
            })
    }

    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        if config.get("file").is_none_or(|f| f.trim().is_empty()) {
            return Err(
                "FileStreamSourceConnector needs 'file': Weir does not read standard input".into(),
            );
        }
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        // One file, one reader, whatever tasks.max says (as in Kafka).
        vec![self.config.clone()]
    }
}

#[derive(Default)]
pub struct FileSourceTask {
    file: String,
    topic: String,
    batch: usize,
    position: u64,
    reader: Option<BufReader<tokio::fs::File>>,
    partial: String,
}

fn partition_of(file: &str) -> JsonMap {
    let mut m = JsonMap::new();
    m.insert("filename".into(), Json::String(file.to_string()));
    m
}

impl SourceTask for FileSourceTask {
    fn start(&mut self, config: &Props, offsets: &dyn OffsetReader) -> Result<(), TaskError> {
        self.file = config.get("file").cloned().unwrap_or_default();
        self.topic = config.get("topic").cloned().unwrap_or_default();
        self.batch = config
            .get("batch.size")
            .and_then(|b| b.parse().ok())
            .unwrap_or(2000);
        self.position = offsets
            .offset(&partition_of(&self.file))
            .and_then(|o| o.get("position")?.as_u64())
            .unwrap_or(0);
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>, TaskError>> {
        Box::pin(async move {
            if self.reader.is_none() {
                match tokio::fs::File::open(&self.file).await {
                    Ok(mut f) => {
                        f.seek(SeekFrom::Start(self.position))
                            .await
                            .map_err(|e| format!("seeking in {}: {e}", self.file))?;
                        self.reader = Some(BufReader::new(f));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        // Kafka waits for the file to appear.
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        return Ok(Vec::new());
                    }
                    Err(e) => return Err(format!("opening {}: {e}", self.file)),
                }
            }
            let reader = self.reader.as_mut().expect("opened above");
            let mut out = Vec::new();
            let mut line = String::new();
            while out.len() < self.batch {
                line.clear();
                let n = reader
                    .read_line(&mut line)
                    .await
                    .map_err(|e| format!("reading {}: {e}", self.file))?;
                if n == 0 {
                    break;
                }
                if !line.ends_with('\n') {
                    // Half a line: the rest comes later.
                    self.partial.push_str(&line);
                    break;
                }
                // The offset is the start of the next whole line, so a
                // restart rereads a half-read one.
                self.position += (self.partial.len() + n) as u64;
                let mut text = std::mem::take(&mut self.partial);
                text.push_str(line.trim_end_matches(['\n', '\r']));
                let mut offset = JsonMap::new();
                offset.insert("position".into(), Json::from(self.position));
                let value = SchemaAndValue {
                    schema: Some(Arc::new(Schema::of(SchemaType::String))),
                    value: Value::String(text),
                };
                out.push(SourceRecord {
                    record: ConnectRecord::new(self.topic.clone(), value),
                    source_partition: partition_of(&self.file),
                    source_offset: offset,
                });
            }
            if out.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(out)
        })
    }
}

#[derive(Default)]
pub struct FileSink {
    config: Props,
}

impl Connector for FileSink {
    fn config_def(&self) -> ConfigDef {
        ConfigDef::new().define(
            "file",
            ConfigType::String,
            None,
            Importance::High,
            "The file to append records' values to.",
        )
    }

    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        self.config = config.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        vec![self.config.clone(); max_tasks.max(1)]
    }
}

#[derive(Default)]
pub struct FileSinkTask {
    file: String,
    out: Option<tokio::fs::File>,
}

/// A value as Java's `toString` would print it, near enough for lines.
pub fn display(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Int8(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int64(n) => n.to_string(),
        Value::Float32(n) => n.to_string(),
        Value::Float64(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(display).collect::<Vec<_>>().join(", ")
        ),
        Value::Map(entries) => format!(
            "{{{}}}",
            entries
                .iter()
                .map(|(k, v)| format!("{}={}", display(k), display(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Struct(s) => format!(
            "Struct{{{}}}",
            s.schema
                .fields
                .iter()
                .zip(&s.values)
                .filter(|(_, v)| !v.is_null())
                .map(|(f, v)| format!("{}={}", f.name, display(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

impl SinkTask for FileSinkTask {
    fn start(&mut self, config: &Props) -> Result<(), TaskError> {
        self.file = config.get("file").cloned().unwrap_or_default();
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<(), TaskError>> {
        Box::pin(async move {
            if self.out.is_none() {
                let f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.file)
                    .await
                    .map_err(|e| format!("opening {}: {e}", self.file))?;
                self.out = Some(f);
            }
            let out = self.out.as_mut().expect("opened above");
            let mut text = String::new();
            for r in &records {
                text.push_str(&display(&r.record.value));
                text.push('\n');
            }
            out.write_all(text.as_bytes())
                .await
                .map_err(|e| format!("writing {}: {e}", self.file))
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), TaskError>> {
        Box::pin(async move {
            if let Some(out) = self.out.as_mut() {
                out.flush()
                    .await
                    .and(out.sync_data().await)
                    .map_err(|e| format!("flushing {}: {e}", self.file))?;
            }
            Ok(())
        })
    }
}
