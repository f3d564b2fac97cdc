//! The partitions this broker stores: one `PartitionLog` per topic-partition,
//! opened at start from the metadata, created and deleted with topics. Log
//! calls do file I/O, so every one runs on tokio's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Notify;
use weir_log::{LogConfig, LogError, PartitionLog};

/// Names the topic id a partition directory belongs to (Kafka's file name).
const PARTITION_METADATA_FILE: &str = "partition.metadata";

use tracing::warn;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::replica::ReplicaState;

/// One stored partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    /// The topic's id: a re-created topic of the same name is another topic.
    pub topic_id: Uuid,
    log: Mutex<PartitionLog>,
    replica: Mutex<ReplicaState>,
}

impl Partition {
    /// Locks the log. A panic inside a log call is a bug we do not want to
    /// turn into a broker-wide outage, so a poisoned lock is taken over: the
    /// log validates what it reads, and recovery at the next start repairs
    /// any torn tail.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the replication state. Never held across an await, and never
    /// taken while holding the log lock (the log lock may be taken inside).
    pub fn replica(&self) -> MutexGuard<'_, ReplicaState> {
        self.replica.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the log right here: for work of a few page-cache
    /// copies (a replicated batch, a small read), where a hop to the
    /// blocking pool and back would cost more than the work itself.
    pub fn with_log_inline<T>(
        &self,
        f: impl FnOnce(&mut PartitionLog) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        f(&mut self.log())
    }

    /// Runs `f` on the log on the blocking pool.
    pub async fn with_log<T, F>(self: &Arc<Self>, f: F) -> Result<T, LogError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PartitionLog) -> Result<T, LogError> + Send + 'static,
    {
        let partition = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&mut partition.log()))
            .await
            .map_err(|e| LogError::Io {
                context: "log task".into(),
                source: std::io::Error::other(e.to_string()),
            })?
    }
}

/// Every partition on this broker, plus a signal fetchers wait on.
pub struct LogManager {
    data_dir: PathBuf,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Woken after every append so long-polling fetches re-check.
    appended: Notify,
}

impl LogManager {
    pub fn new(data_dir: &Path) -> Self {
        LogManager {
            data_dir: data_dir.to_path_buf(),
            partitions: RwLock::new(HashMap::new()),
            appended: Notify::new(),
        }
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.data_dir.join(format!("{topic}-{index}"))
    }

    /// Opens (recovering, or creating when absent) the log of a partition.
    /// Data left by an earlier topic of the same name (another topic id) is
    /// deleted first.
    pub fn open_partition(
        &self,
        topic: &str,
        index: i32,
        topic_id: Uuid,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let dir = self.partition_dir(topic, index);
        let id_file = dir.join(PARTITION_METADATA_FILE);
        let io = |context: String| move |source| LogError::Io { context, source };
        match std::fs::read_to_string(&id_file) {
            Ok(text) if read_topic_id(&text) == Some(topic_id) => {}
            Ok(_) => {
                warn!(%topic, partition = index, "data of an earlier topic with this name: deleting it");
                self.remove_dir(&dir)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("reading {}", id_file.display()))(e)),
        }
        let log = PartitionLog::open(&dir, config, now_ms())?;
        if !id_file.exists() {
            std::fs::write(&id_file, format!("version=0\ntopic_id={topic_id}\n"))
                .map_err(io(format!("writing {}", id_file.display())))?;
        }
        let partition = Arc::new(Partition {
            topic: topic.to_string(),
            index,
            topic_id,
            log: Mutex::new(log),
            replica: Mutex::new(ReplicaState::offline()),
        });
        self.write()
            .insert((topic.to_string(), index), Arc::clone(&partition));
        Ok(partition)
    }

    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.read().get(&(topic.to_string(), index)).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.read().values().cloned().collect()
    }

    pub fn of_topic(&self, topic: &str) -> Vec<Arc<Partition>> {
        let mut parts: Vec<_> = self
            .read()
            .values()
            .filter(|p| p.topic == topic)
            .cloned()
            .collect();
        parts.sort_by_key(|p| p.index);
        parts
    }

    /// Forgets a partition and deletes its data. The directory is renamed
    /// first, so a partition re-created under the same name at once starts
    /// empty even if the removal is slow.
    pub fn delete_partition(&self, topic: &str, index: i32) -> Result<(), LogError> {
        let removed = self.write().remove(&(topic.to_string(), index));
        if removed.is_some() {
            self.remove_dir(&self.partition_dir(topic, index))?;
        }
        Ok(())
    }

    fn remove_dir(&self, dir: &Path) -> Result<(), LogError> {
        if !dir.exists() {
            return Ok(());
        }
        let name = dir.file_name().unwrap_or_default().to_string_lossy();
        let doomed = self
            .data_dir
            .join(format!("{name}.{}-delete", uuid::Uuid::new_v4().simple()));
        let io = |source| LogError::Io {
            context: format!("deleting {}", dir.display()),
            source,
        };
        std::fs::rename(dir, &doomed).map_err(io)?;
        std::fs::remove_dir_all(&doomed).map_err(io)
    }

    /// Removes what a crash may have left: directories renamed for deletion,
    /// and partition directories of topics the metadata no longer has.
    pub fn remove_strays(
        &self,
        known: impl Fn(&str, i32) -> bool,
    ) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().to_string();
            let stray = if name.ends_with("-delete") {
                true
            } else if let Some((topic, index)) = name.rsplit_once('-') {
                index.parse::<i32>().is_ok_and(|i| !known(topic, i))
            } else {
                false
            };
            if stray {
                std::fs::remove_dir_all(entry.path())?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }

    pub fn notify_appended(&self) {
        self.appended.notify_waiters();
    }

    pub fn appended(&self) -> &Notify {
        &self.appended
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<(String, i32), Arc<Partition>>> {
        self.partitions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<(String, i32), Arc<Partition>>> {
        self.partitions.write().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_topic_id(text: &str) -> Option<Uuid> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("topic_id="))
        .and_then(|id| id.trim().parse().ok())
}
