//! A source task's loop: poll the task, transform and convert its records,
//! produce them with the worker's idempotent producer, and store the source
//! offsets once the records they cover are acknowledged (every
//! `offset.flush.interval.ms`, and on stop).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::Instant;
use weir_client::producer::{DeliveryFuture, ProducerRecord};

use super::instance::Pipeline;
use super::{Props, Worker, read};
use crate::connector::{ConnectorType, OffsetReader, SourceTask};
use crate::errors::{self, ErrorPolicy, Failure, Stage};
use crate::data::{SchemaAndValue, Value};
use crate::record::{ConnectRecord, Header};
use crate::store::offsets::{JsonMap, OffsetState};
use crate::store::statuses::{State, Subject};

struct Offsets<'a> {
    state: &'a std::sync::RwLock<OffsetState>,
    connector: &'a str,
}

impl OffsetReader for Offsets<'_> {
    fn offset(&self, partition: &JsonMap) -> Option<JsonMap> {
        read(self.state).get(self.connector, partition).cloned()
    }
}

/// A header's value as bytes: strings and bytes as they are, other values
/// as their text.
pub(super) fn header_bytes(h: &Header) -> Option<Bytes> {
    match &h.value {
        Value::Null => None,
        Value::String(s) => Some(Bytes::from(s.clone())),
        Value::Bytes(b) => Some(Bytes::from(b.clone())),
        other => Some(Bytes::from(crate::connectors::file::display(other))),
    }
}

fn to_producer_record(
    pipeline: &Pipeline,
    r: &ConnectRecord,
) -> Result<ProducerRecord, Failure> {
    let key = pipeline
        .key
        .from_connect(
            &r.topic,
            &SchemaAndValue {
                schema: r.key_schema.clone(),
                value: r.key.clone(),
            },
        )
        .map_err(|e| Failure::new(Stage::KeyConverter, &pipeline.key_class, e.to_string()))?;
    let value = pipeline
        .value
        .from_connect(
            &r.topic,
            &SchemaAndValue {
                schema: r.value_schema.clone(),
                value: r.value.clone(),
            },
        )
        .map_err(|e| Failure::new(Stage::ValueConverter, &pipeline.value_class, e.to_string()))?;
    Ok(ProducerRecord {
        topic: r.topic.clone(),
        partition: r.kafka_partition,
        key: key.map(Bytes::from),
        value: value.map(Bytes::from),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.clone(), header_bytes(h)))
            .collect(),
        timestamp: r.timestamp,
    })
}

/// A polled record through the transforms and converters: `Ok(None)` when
/// a transform dropped it.
fn process(pipeline: &Pipeline, r: ConnectRecord) -> Result<Option<ProducerRecord>, Failure> {
    match pipeline.transforms.apply(r) {
        Ok(Some(t)) => to_producer_record(pipeline, &t).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(Failure::new(
            Stage::Transformation,
            pipeline.transforms_class(),
            e.to_string(),
        )),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    worker: &Arc<Worker>,
    connector: &str,
    subject: &Subject,
    mut task: Box<dyn SourceTask>,
    connector_config: &Props,
    config: &Props,
    pipeline: Pipeline,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    task.start(
        config,
        &Offsets {
            state: &worker.offsets,
            connector,
        },
    )?;
    let policy = ErrorPolicy::from_config(ConnectorType::Source, connector_config)?;
    let task_index = subject.task_index();
    let mut seen = std::collections::HashSet::new();
    worker.put_status(subject, State::Running, None).await;
    let mut in_flight: Vec<DeliveryFuture> = Vec::new();
    // Latest offset per source partition (canonical JSON → pair).
    let mut pending: BTreeMap<String, (JsonMap, JsonMap)> = BTreeMap::new();
    let mut last_flush = Instant::now();
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        let batch = match task.poll().await {
            Ok(b) => b,
            Err(e) => break Err(e),
        };
        let mut failed = None;
        for r in batch {
            let id = serde_json::Value::Object(r.source_partition.clone()).to_string();
            // A skipped record's offset is committed too, as Kafka does:
            // it is not produced again after a restart.
            pending.insert(id, (r.source_partition, r.source_offset));
            match process(&pipeline, r.record) {
                Ok(Some(pr)) => {
                    if !seen.contains(&pr.topic) {
                        seen.insert(pr.topic.clone());
                        worker.note_topic(connector, task_index, &pr.topic).await;
                    }
                    in_flight.push(worker.producer.send(pr));
                }
                Ok(None) => {}
                Err(f) => {
                    if policy.log {
                        tracing::error!("{}", errors::log_line(&f, connector, task_index, None));
                    }
                    if !policy.tolerate_all {
                        failed = Some(f.trace());
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if last_flush.elapsed() >= worker.config.offset_flush_interval {
            if let Err(e) = commit(worker, connector, &mut in_flight, &mut pending).await {
                break Err(e);
            }
            last_flush = Instant::now();
        }
    };
    task.stop();
    // What was acknowledged is committed even when the task failed, so a
    // restart does not produce it again.
    let committed = commit(worker, connector, &mut in_flight, &mut pending).await;
    result.and(committed)
}

async fn commit(
    worker: &Worker,
    connector: &str,
    in_flight: &mut Vec<DeliveryFuture>,
    pending: &mut BTreeMap<String, (JsonMap, JsonMap)>,
) -> Result<(), String> {
    for d in in_flight.drain(..) {
        d.await
            .map_err(|e| format!("The producer could not deliver a record: {e}"))?;
    }
    if pending.is_empty() {
        return Ok(());
    }
    let offsets: Vec<(JsonMap, JsonMap)> = std::mem::take(pending).into_values().collect();
    worker
        .put_offsets(connector, &offsets)
        .await
        .map_err(|e| format!("storing source offsets: {e:#}"))
}
