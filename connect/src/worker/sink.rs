//! A sink task's loop: consume the connector's topics in the consumer group
//! `connect-<name>` (shared by its tasks), convert and transform the
//! records, hand them to the task, and commit the consumer's offsets only
//! after the task's flush.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;
use tokio::time::Instant;
use weir_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use weir_client::producer::ProducerRecord;

use super::instance::Pipeline;
use super::{Props, Worker};
use crate::connector::{ConnectorType, SinkTask};
use crate::data::Value;
use crate::errors::{self, ErrorPolicy, Failure, Origin, Stage};
use crate::record::{ConnectRecord, Header, SinkRecord};
use crate::store::statuses::{State, Subject};

pub fn group_of(connector: &str) -> String {
    format!("connect-{connector}")
}

fn headers_of(r: &ConsumerRecord) -> Vec<Header> {
    r.headers
        .iter()
        .map(|(k, v)| Header {
            key: k.clone(),
            schema: None,
            value: match v {
                None => Value::Null,
                Some(b) => match std::str::from_utf8(b) {
                    Ok(s) => Value::String(s.to_string()),
                    Err(_) => Value::Bytes(b.to_vec()),
                },
            },
        })
        .collect()
}

/// A consumed record through the converters and transforms: `Ok(None)`
/// when a transform dropped it.
fn process(pipeline: &Pipeline, r: &ConsumerRecord) -> Result<Option<SinkRecord>, Failure> {
    let key = pipeline
        .key
        .to_connect(&r.topic, r.key.as_deref())
        .map_err(|e| Failure::new(Stage::KeyConverter, &pipeline.key_class, e.to_string()))?;
    let value = pipeline
        .value
        .to_connect(&r.topic, r.value.as_deref())
        .map_err(|e| Failure::new(Stage::ValueConverter, &pipeline.value_class, e.to_string()))?;
    let record = ConnectRecord {
        topic: r.topic.clone(),
        kafka_partition: Some(r.partition),
        key_schema: key.schema,
        key: key.value,
        value_schema: value.schema,
        value: value.value,
        timestamp: Some(r.timestamp),
        headers: headers_of(r),
        kafka_offset: Some(r.offset),
    };
    let transformed = pipeline.transforms.apply(record).map_err(|e| {
        Failure::new(
            Stage::Transformation,
            pipeline.transforms_class(),
            e.to_string(),
        )
    })?;
    Ok(transformed.map(|record| SinkRecord {
        record,
        kafka_offset: r.offset,
    }))
}

/// Where records that failed go, when tolerated.
struct ErrorHandler<'a> {
    worker: &'a Worker,
    connector: &'a str,
    task: i32,
    policy: ErrorPolicy,
}

impl ErrorHandler<'_> {
    /// Creates the dead letter queue topic when missing, as Kafka does
    /// when the task starts.
    async fn prepare(&self) -> Result<(), String> {
        let Some(dlq) = &self.policy.dlq else {
            return Ok(());
        };
        let admin = weir_client::admin::Admin::from_cluster(self.worker.cluster.clone());
        match admin
            .create_topic(weir_client::admin::NewTopic::new(
                dlq.topic.clone(),
                1,
                dlq.replication_factor,
            ))
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.kafka_error() == Some(ResponseError::TopicAlreadyExists) => Ok(()),
            Err(e) => Err(format!(
                "creating the dead letter queue topic {}: {e}",
                dlq.topic
            )),
        }
    }

    /// Ok: the record is skipped (and reported); Err: the task's trace.
    async fn handle(&self, failure: Failure, r: &ConsumerRecord) -> Result<(), String> {
        let origin = Origin {
            topic: r.topic.clone(),
            partition: r.partition,
            offset: r.offset,
        };
        if self.policy.log {
            let mut line = errors::log_line(&failure, self.connector, self.task, Some(&origin));
            if self.policy.log_messages {
                line.push_str(&format!(
                    " (key: {:?}, value: {:?})",
                    r.key.as_deref().map(String::from_utf8_lossy),
                    r.value.as_deref().map(String::from_utf8_lossy)
                ));
            }
            tracing::error!("{line}");
        }
        if !self.policy.tolerate_all {
            return Err(failure.trace());
        }
        let Some(dlq) = &self.policy.dlq else {
            return Ok(());
        };
        let mut headers = r.headers.clone();
        if dlq.context_headers {
            headers.extend(errors::context_headers(
                &failure,
                &origin,
                self.connector,
                self.task,
            ));
        }
        // Written before the record's offset can be committed: the send
        // is awaited here, and failures are rare.
        self.worker
            .producer
            .send(ProducerRecord {
                topic: dlq.topic.clone(),
                partition: None,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
                timestamp: Some(r.timestamp),
            })
            .await
            .map(|_| ())
            .map_err(|e| format!("writing to the dead letter queue {}: {e}", dlq.topic))
    }
}

/// The topics a sink reads: `topics`, or those `topics.regex` matches now.
async fn topics_of(worker: &Worker, config: &Props) -> Result<Vec<String>, String> {
    let listed: Vec<String> = config
        .get("topics")
        .map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return Ok(listed);
    }
    let pattern = config.get("topics.regex").cloned().unwrap_or_default();
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| format!("Invalid topics.regex {pattern}: {e}"))?;
    worker
        .cluster
        .refresh(None)
        .await
        .map_err(|e| format!("listing topics: {e}"))?;
    Ok(worker
        .cluster
        .topics()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| re.is_match(n))
        .collect())
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    worker: &Arc<Worker>,
    connector: &str,
    subject: &Subject,
    mut task: Box<dyn SinkTask>,
    connector_config: &Props,
    config: &Props,
    pipeline: Pipeline,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let topics = topics_of(worker, connector_config).await?;
    let errors = ErrorHandler {
        worker,
        connector,
        task: subject.task_index(),
        policy: ErrorPolicy::from_config(ConnectorType::Sink, connector_config)?,
    };
    errors.prepare().await?;
    task.start(config)?;
    let mut consumer = Consumer::with_cluster(
        worker.cluster.clone(),
        ConsumerConfig {
            group_id: Some(group_of(connector)),
            auto_offset_reset: OffsetReset::Earliest,
            enable_auto_commit: false,
            session_timeout: worker.config.session_timeout.max(Duration::from_secs(6)),
            heartbeat_interval: Duration::from_secs(1),
            ..ConsumerConfig::default()
        },
    );
    if !topics.is_empty() {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&names).map_err(|e| e.to_string())?;
    }
    worker.put_status(subject, State::Running, None).await;
    let mut last_flush = Instant::now();
    let mut unflushed = false;
    let mut seen = std::collections::HashSet::new();
    let result = loop {
        if *stop.borrow() {
            break Ok(());
        }
        if topics.is_empty() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let records = match consumer.poll(Duration::from_millis(500)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(connector, error = %e, "sink poll");
                continue;
            }
        };
        let mut batch = Vec::with_capacity(records.len());
        let mut failed = None;
        for r in &records {
            if !seen.contains(&r.topic) {
                seen.insert(r.topic.clone());
                worker.note_topic(connector, errors.task, &r.topic).await;
            }
            match process(&pipeline, r) {
                Ok(Some(s)) => batch.push(s),
                Ok(None) => {}
                Err(f) => {
                    if let Err(trace) = errors.handle(f, r).await {
                        failed = Some(trace);
                        break;
                    }
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if !records.is_empty() {
            unflushed = true;
            if let Err(e) = put(&mut task, batch, &errors.policy, &stop).await {
                break Err(e);
            }
        }
        if unflushed && last_flush.elapsed() >= worker.config.offset_flush_interval {
            if let Err(e) = flush(&mut task, &mut consumer).await {
                break Err(e);
            }
            unflushed = false;
            last_flush = Instant::now();
        }
    };
    let flushed = if result.is_ok() && unflushed {
        flush(&mut task, &mut consumer).await
    } else {
        Ok(())
    };
    task.stop();
    let _ = consumer.close().await;
    result.and(flushed)
}

/// Hands a batch to the task, trying again with growing delays for
/// `errors.retry.timeout` while it fails.
async fn put(
    task: &mut Box<dyn SinkTask>,
    batch: Vec<SinkRecord>,
    policy: &ErrorPolicy,
    stop: &watch::Receiver<bool>,
) -> Result<(), String> {
    if policy.retry_timeout == Some(Duration::ZERO) {
        return task.put(batch).await;
    }
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match task.put(batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if policy.may_retry(started.elapsed()) && !*stop.borrow() => {
                tracing::warn!(error = %e, attempt, "sink task put failed; retrying");
                tokio::time::sleep(policy.retry_delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn flush(task: &mut Box<dyn SinkTask>, consumer: &mut Consumer) -> Result<(), String> {
    task.flush().await?;
    consumer
        .commit()
        .await
        .map_err(|e| format!("committing the sink's offsets: {e}"))
}
