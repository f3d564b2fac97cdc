//! A sink task's loop: consume the connector's topics in the consumer group
//! `connect-<name>` (shared by its tasks), convert and transform the
//! records, hand them to the task, and commit the consumer's offsets only
//! after the task's flush.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use weir_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};

use super::instance::Pipeline;
use super::{Props, Worker};
use crate::connector::SinkTask;
use crate::data::{DataError, Value};
use crate::record::{ConnectRecord, Header, SinkRecord};
use crate::store::statuses::{State, Subject};

pub fn group_of(connector: &str) -> String {
    format!("connect-{connector}")
}

fn to_sink_record(pipeline: &Pipeline, r: &ConsumerRecord) -> Result<SinkRecord, DataError> {
    let key = pipeline.key.to_connect(&r.topic, r.key.as_deref())?;
    let value = pipeline.value.to_connect(&r.topic, r.value.as_deref())?;
    let headers = r
        .headers
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
        .collect();
    Ok(SinkRecord {
        record: ConnectRecord {
            topic: r.topic.clone(),
            kafka_partition: Some(r.partition),
            key_schema: key.schema,
            key: key.value,
            value_schema: value.schema,
            value: value.value,
            timestamp: Some(r.timestamp),
            headers,
        },
        kafka_offset: r.offset,
    })
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
            let converted = to_sink_record(&pipeline, r)
                .map_err(|e| format!("Conversion error: {e}"))
                .and_then(|s| {
                    let SinkRecord {
                        record,
                        kafka_offset,
                    } = s;
                    pipeline
                        .transforms
                        .apply(record)
                        .map(|t| {
                            t.map(|record| SinkRecord {
                                record,
                                kafka_offset,
                            })
                        })
                        .map_err(|e| format!("Error in a transformation: {e}"))
                });
            match converted {
                Ok(Some(s)) => batch.push(s),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
        if !records.is_empty() {
            unflushed = true;
            if let Err(e) = task.put(batch).await {
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

async fn flush(task: &mut Box<dyn SinkTask>, consumer: &mut Consumer) -> Result<(), String> {
    task.flush().await?;
    consumer
        .commit()
        .await
        .map_err(|e| format!("committing the sink's offsets: {e}"))
}
