//! A whole topic read into memory and kept up to date, with writes that
//! return once this worker has read them back (Kafka's `KafkaBasedLog`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weir_client::admin::{Admin, NewTopic, OffsetSpec};
use weir_client::cluster::Cluster;
use weir_client::consumer::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset};
use weir_client::producer::{Producer, ProducerRecord};

/// How an internal topic is created when missing.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// -1: the broker's default.
    pub replication_factor: i16,
}

pub struct TopicLog {
    topic: String,
    producer: Arc<Producer>,
    admin: Admin,
    /// Next offset to read, per partition.
    read: watch::Receiver<BTreeMap<i32, i64>>,
    reader: JoinHandle<()>,
}

impl Drop for TopicLog {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Creates the topic (compacted) unless it exists.
pub async fn ensure_topic(admin: &Admin, spec: &TopicSpec) -> Result<()> {
    if admin.describe_topic(&spec.name).await.is_ok() {
        return Ok(());
    }
    let mut topic = NewTopic::new(&spec.name, spec.partitions, spec.replication_factor);
    topic
        .configs
        .push(("cleanup.policy".into(), "compact".into()));
    match admin.create_topic(topic).await {
        Ok(()) => {}
        Err(weir_client::Error::Kafka { name, .. }) if name == "TOPIC_ALREADY_EXISTS" => {}
        Err(e) => return Err(e).with_context(|| format!("creating topic {}", spec.name)),
    }
    admin
        .wait_for_topic(&spec.name, Duration::from_secs(30))
        .await
        .with_context(|| format!("waiting for topic {}", spec.name))?;
    Ok(())
}

impl TopicLog {
    /// Starts reading `spec`'s topic from its beginning, handing every
    /// record to `apply` in offset order per partition; returns once what
    /// the topic held at the start has been read.
    pub async fn start(
        cluster: Arc<Cluster>,
        producer: Arc<Producer>,
        spec: &TopicSpec,
        mut apply: impl FnMut(&ConsumerRecord) + Send + 'static,
    ) -> Result<TopicLog> {
        let admin = Admin::from_cluster(cluster.clone());
        ensure_topic(&admin, spec).await?;
        let meta = admin.describe_topic(&spec.name).await?;
        let partitions: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
        let mut consumer = Consumer::with_cluster(
            cluster,
            ConsumerConfig {
                auto_offset_reset: OffsetReset::Earliest,
                enable_auto_commit: false,
                fetch_max_wait: Duration::from_millis(100),
                ..ConsumerConfig::default()
            },
        );
        let assignment: Vec<(&str, i32)> = partitions
            .iter()
            .map(|p| (spec.name.as_str(), *p))
            .collect();
        consumer.assign(&assignment);
        consumer.seek_to_beginning();
        let (tx, read) = watch::channel(partitions.iter().map(|p| (*p, 0)).collect());
        let topic = spec.name.clone();
        let reader = tokio::spawn(async move {
            loop {
                match consumer.poll(Duration::from_millis(200)).await {
                    Ok(records) => {
                        if records.is_empty() {
                            continue;
                        }
                        for r in &records {
                            apply(r);
                        }
                        tx.send_modify(|read: &mut BTreeMap<i32, i64>| {
                            for r in &records {
                                read.insert(r.partition, r.offset + 1);
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(topic = %topic, error = %e, "reading an internal topic");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        let log = TopicLog {
            topic: spec.name.clone(),
            producer,
            admin,
            read,
            reader,
        };
        log.read_to_end().await?;
        Ok(log)
    }

    /// Waits until every record written before the call has been read.
    pub async fn read_to_end(&self) -> Result<()> {
        let ends = self
            .admin
            .list_offsets(&self.topic, OffsetSpec::Latest)
            .await?;
        for (p, end) in ends {
            self.wait_read(p, end.offset).await?;
        }
        Ok(())
    }

    async fn wait_read(&self, partition: i32, offset: i64) -> Result<()> {
        let mut read = self.read.clone();
        tokio::time::timeout(
            Duration::from_secs(60),
            read.wait_for(|r| r.get(&partition).is_some_and(|o| *o >= offset)),
        )
        .await
        .with_context(|| format!("reading {}-{partition} up to {offset}", self.topic))?
        .context("the reader stopped")?;
        Ok(())
    }

    /// Writes a record; `wait` also waits for it to be read back here.
    pub async fn send(
        &self,
        key: impl Into<Bytes>,
        value: Option<Vec<u8>>,
        wait: bool,
    ) -> Result<()> {
        let mut record = ProducerRecord::new(self.topic.clone(), Bytes::new()).with_key(key);
        record.value = value.map(Bytes::from);
        let meta = self
            .producer
            .send(record)
            .await
            .with_context(|| format!("writing to {}", self.topic))?;
        if wait {
            self.wait_read(meta.partition, meta.offset + 1).await?;
        }
        Ok(())
    }
}
