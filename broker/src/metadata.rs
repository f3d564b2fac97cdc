//! Cluster metadata of a single broker: cluster id, topics (id, partition
//! count, config overrides) and the producer-id counter, kept in one JSON
//! file replaced atomically on every change.
//!
//! This is the single-node stand-in for the Raft metadata log that cluster
//! mode brings; callers see only `MetadataStore`'s methods, so that change
//! stays behind this module.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Name of the internal topic holding committed offsets and group metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

const METADATA_FILE: &str = "metadata.json";

/// A topic as the cluster knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Config overrides set on the topic (validated when set).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MetadataImage {
    cluster_id: String,
    next_producer_id: i64,
    topics: BTreeMap<String, TopicMeta>,
}

/// Metadata errors.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata file {path} is not valid: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("{0}")]
    InvalidTopic(String),
}

/// The broker's metadata, readable concurrently, every write persisted before it returns.
pub struct MetadataStore {
    path: PathBuf,
    image: RwLock<MetadataImage>,
}

impl MetadataStore {
    /// Loads the metadata in `data_dir`, creating a new cluster id on first start.
    pub fn open(data_dir: &Path) -> Result<Self, MetadataError> {
        let path = data_dir.join(METADATA_FILE);
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(data_dir).map_err(io)?;
        let image = match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| MetadataError::Corrupt {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let image = MetadataImage {
                    cluster_id: new_cluster_id(),
                    next_producer_id: 0,
                    topics: BTreeMap::new(),
                };
                write_atomically(&path, &image).map_err(io)?;
                image
            }
            Err(e) => return Err(io(e)),
        };
        Ok(MetadataStore {
            path,
            image: RwLock::new(image),
        })
    }

    pub fn cluster_id(&self) -> String {
        self.read().cluster_id.clone()
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.read().topics.get(name).cloned()
    }

    pub fn topic_by_id(&self, id: Uuid) -> Option<TopicMeta> {
        self.read().topics.values().find(|t| t.id == id).cloned()
    }

    pub fn topics(&self) -> Vec<TopicMeta> {
        self.read().topics.values().cloned().collect()
    }

    /// Adds a topic after checking its name against Kafka's rules and the
    /// existing topics.
    pub fn create_topic(&self, topic: TopicMeta) -> Result<TopicMeta, MetadataError> {
        self.update(|image| {
            validate_topic_name(&topic.name).map_err(MetadataError::InvalidTopic)?;
            if image.topics.contains_key(&topic.name) {
                return Err(MetadataError::TopicExists(topic.name.clone()));
            }
            let folded = fold_collision(&topic.name);
            if let Some(other) = image.topics.keys().find(|n| fold_collision(n) == folded) {
                return Err(MetadataError::InvalidTopic(format!(
                    "topic '{}' collides with existing topic '{other}' ('.' and '_' are interchangeable in metric names)",
                    topic.name
                )));
            }
            image.topics.insert(topic.name.clone(), topic.clone());
            Ok(topic.clone())
        })
    }

    pub fn delete_topic(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        self.update(|image| {
            image
                .topics
                .remove(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))
        })
    }

    /// Applies `change` to a topic and persists the result.
    pub fn update_topic(
        &self,
        name: &str,
        change: impl FnOnce(&mut TopicMeta),
    ) -> Result<TopicMeta, MetadataError> {
        self.update(|image| {
            let topic = image
                .topics
                .get_mut(name)
                .ok_or_else(|| MetadataError::UnknownTopic(name.to_string()))?;
            change(topic);
            Ok(topic.clone())
        })
    }

    /// Hands out a producer id never given before, even across restarts.
    pub fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        self.update(|image| {
            let id = image.next_producer_id;
            image.next_producer_id += 1;
            Ok(id)
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, MetadataImage> {
        // A panic while holding the lock cannot leave the image half-changed
        // (updates work on a copy), so a poisoned lock is still safe to read.
        self.image.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes a copy, persists it, then publishes it: a failed write leaves
    /// both the file and the in-memory image as they were.
    fn update<T>(
        &self,
        change: impl FnOnce(&mut MetadataImage) -> Result<T, MetadataError>,
    ) -> Result<T, MetadataError> {
        let mut guard = self.image.write().unwrap_or_else(|e| e.into_inner());
        let mut next = guard.clone();
        let out = change(&mut next)?;
        write_atomically(&self.path, &next).map_err(|source| MetadataError::Io {
            path: self.path.clone(),
            source,
        })?;
        *guard = next;
        Ok(out)
    }
}

fn write_atomically(path: &Path, image: &MetadataImage) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(image).map_err(std::io::Error::other)?;
    let mut file = fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Kafka's cluster ids are a random UUID in URL-safe base64 without padding.
fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | b as u32;
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

/// Kafka's topic name rules: 1–249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be '{name}'"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name '{name}' has the character {c:?}; only ASCII letters, digits, '.', '_' and '-' are allowed"
        ));
    }
    Ok(())
}

fn fold_collision(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> TopicMeta {
        TopicMeta {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
        }
    }

    #[test]
    fn topics_and_producer_ids_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        let cluster_id = store.cluster_id();
        assert_eq!(cluster_id.len(), 22);
        let created = store.create_topic(topic("orders")).unwrap();
        assert_eq!(store.allocate_producer_id().unwrap(), 0);
        assert_eq!(store.allocate_producer_id().unwrap(), 1);
        store.update_topic("orders", |t| t.partitions = 6).unwrap();
        drop(store);

        let store = MetadataStore::open(dir.path()).unwrap();
        assert_eq!(store.cluster_id(), cluster_id);
        let orders = store.topic("orders").unwrap();
        assert_eq!(orders.id, created.id);
        assert_eq!(orders.partitions, 6);
        assert_eq!(store.allocate_producer_id().unwrap(), 2);
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_x-2").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
        assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    }

    #[test]
    fn duplicate_and_colliding_names_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::open(dir.path()).unwrap();
        store.create_topic(topic("a.b")).unwrap();
        assert!(matches!(
            store.create_topic(topic("a.b")),
            Err(MetadataError::TopicExists(_))
        ));
        assert!(matches!(
            store.create_topic(topic("a_b")),
            Err(MetadataError::InvalidTopic(_))
        ));
        assert!(matches!(
            store.delete_topic("nope"),
            Err(MetadataError::UnknownTopic(_))
        ));
    }

    #[test]
    fn corrupt_file_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(METADATA_FILE), b"{not json").unwrap();
        assert!(matches!(
            MetadataStore::open(dir.path()),
            Err(MetadataError::Corrupt { .. })
        ));
        assert_eq!(
            fs::read(dir.path().join(METADATA_FILE)).unwrap(),
            b"{not json"
        );
    }
}
