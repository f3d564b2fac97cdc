//! What the broker keeps about its cluster outside the metadata log: the
//! cluster id (`meta.properties`, as Kafka's storage format writes it), the
//! shape of a topic as the Kafka APIs describe it, and the rules for topic
//! names. Topics themselves live in the metadata image (see `cluster`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use uuid::Uuid;

/// Name of the internal topic holding committed offsets and group metadata.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// The internal topics, which Metadata marks `is_internal`.
pub fn is_internal_topic(name: &str) -> bool {
    name == CONSUMER_OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

const META_PROPERTIES: &str = "meta.properties";
/// Where a broker before cluster mode kept its metadata; only its cluster id is reused.
const LEGACY_METADATA_FILE: &str = "metadata.json";

/// A topic as the Kafka APIs describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Config overrides set on the topic (validated when set).
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// Metadata errors.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "data directory {dir} must be writable by the user this process runs as ({user}): {source}"
    )]
    NotWritable {
        dir: PathBuf,
        user: String,
        source: std::io::Error,
    },
}

/// "uid N" of this process, from /proc (no unsafe call needed).
fn process_user() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            Some(format!("uid {}", line.split_whitespace().nth(2)?))
        })
        .unwrap_or_else(|| "unknown uid".to_string())
}

/// The cluster id of this data directory: read from `meta.properties`, or
/// on first start taken from a pre-cluster-mode `metadata.json`, derived
/// from the voter list (so every node of a new cluster agrees without
/// talking), or made up for a single node — then written down.
pub fn load_or_create_cluster_id(
    data_dir: &Path,
    voters: Option<&str>,
) -> Result<String, MetadataError> {
    let path = data_dir.join(META_PROPERTIES);
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            // The usual cause in a container: a volume owned by root.
            MetadataError::NotWritable {
                dir: data_dir.to_path_buf(),
                user: process_user(),
                source,
            }
        } else {
            MetadataError::Io {
                path: path.clone(),
                source,
            }
        }
    };
    fs::create_dir_all(data_dir).map_err(io)?;
    match fs::read_to_string(&path) {
        Ok(text) => {
            if let Some(id) = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("cluster.id="))
            {
                return Ok(id.trim().to_string());
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let legacy = fs::read(data_dir.join(LEGACY_METADATA_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|v| v.get("cluster_id")?.as_str().map(str::to_string));
    let id = match (legacy, voters) {
        (Some(id), _) => id,
        (None, Some(voters)) => {
            let mut sorted: Vec<&str> = voters.split(',').map(str::trim).collect();
            sorted.sort_unstable();
            encode_cluster_id(Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                sorted.join(",").as_bytes(),
            ))
        }
        (None, None) => encode_cluster_id(Uuid::new_v4()),
    };
    let text = format!("version=1\ncluster.id={id}\n");
    write_atomically(&path, text.as_bytes()).map_err(io)?;
    Ok(id)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Kafka's cluster ids are a UUID in URL-safe base64 without padding.
fn encode_cluster_id(uuid: Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid.into_bytes();
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cluster_ids_are_kafka_shaped_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let id = load_or_create_cluster_id(dir.path(), None).unwrap();
        assert_eq!(id.len(), 22);
        assert_eq!(load_or_create_cluster_id(dir.path(), None).unwrap(), id);
        let voters = "1@a:9093,2@b:9093";
        let one = tempfile::tempdir().unwrap();
        let derived = load_or_create_cluster_id(one.path(), Some(voters)).unwrap();
        let two = tempfile::tempdir().unwrap();
        let reordered = load_or_create_cluster_id(two.path(), Some("2@b:9093,1@a:9093")).unwrap();
        assert_eq!(reordered, derived);
        assert_ne!(derived, id);
    }

    #[test]
    fn a_single_node_metadata_file_keeps_its_cluster_id() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(LEGACY_METADATA_FILE),
            br#"{"cluster_id":"AAAAAAAAAAAAAAAAAAAAAA","next_producer_id":0,"topics":{}}"#,
        )
        .unwrap();
        assert_eq!(
            load_or_create_cluster_id(dir.path(), None).unwrap(),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
    }
}
