//! The partitions this broker stores: one `PartitionLog` per topic-partition,
//! opened at start from the metadata, created and deleted with topics. Log
//! calls do file I/O, so every one runs on tokio's blocking pool.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Notify;
use weir_log::{LogConfig, LogError, PartitionLog};

use crate::clock::now_ms;

/// One stored partition.
pub struct Partition {
    pub topic: String,
    pub index: i32,
    log: Mutex<PartitionLog>,
}

impl Partition {
    /// Locks the log. A panic inside a log call is a bug we do not want to
    /// turn into a broker-wide outage, so a poisoned lock is taken over: the
    /// log validates what it reads, and recovery at the next start repairs
    /// any torn tail.
    pub fn log(&self) -> MutexGuard<'_, PartitionLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
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
    pub fn open_partition(
        &self,
        topic: &str,
        index: i32,
        config: LogConfig,
    ) -> Result<Arc<Partition>, LogError> {
        let log = PartitionLog::open(self.partition_dir(topic, index), config, now_ms())?;
        let partition = Arc::new(Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
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

    /// Forgets a topic's partitions and deletes their data. The directories
    /// are renamed first, so a topic re-created under the same name at once
    /// starts empty even if the removal is slow.
    pub fn delete_topic(&self, topic: &str) -> Result<(), LogError> {
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.write();
            let keys: Vec<_> = map.keys().filter(|(t, _)| t == topic).cloned().collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for partition in removed {
            let dir = self.partition_dir(&partition.topic, partition.index);
            if dir.exists() {
                let doomed = self.data_dir.join(format!(
                    "{}-{}.{}-delete",
                    partition.topic,
                    partition.index,
                    uuid::Uuid::new_v4().simple()
                ));
                let io = |source| LogError::Io {
                    context: format!("deleting {}", dir.display()),
                    source,
                };
                std::fs::rename(&dir, &doomed).map_err(io)?;
                std::fs::remove_dir_all(&doomed).map_err(io)?;
            }
        }
        Ok(())
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
