//! Coordinators sharded over the partitions of an internal topic, as Kafka
//! runs its group and transaction coordinators: the key (a group id, a
//! transactional id) picks a partition with Java's string hash, and the
//! leader of that partition coordinates it. One [`Shards`] per coordinator
//! kind follows this broker's leaderships: a partition it starts leading is
//! loaded in the background (requests meanwhile answer
//! COORDINATOR_LOAD_IN_PROGRESS, and the metadata loop never waits on a
//! replay), a partition it stops leading is dropped at once.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use tracing::{info, warn};

use crate::partitions::Partition;

/// Java's `String.hashCode` over UTF-16 code units, as Kafka hashes ids.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, unit| h.wrapping_mul(31).wrapping_add(unit as i32))
}

/// The partition of an internal topic with `partitions` partitions that
/// coordinates `key`: Kafka's `Utils.abs(key.hashCode) % partitions`
/// (`Utils.abs` maps `i32::MIN` to 0).
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = java_string_hash(key);
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs % partitions.max(1)
}

/// Where a shard stands on this broker.
#[derive(Clone)]
pub enum Lookup<C> {
    Active(C),
    Loading,
    NotHere,
}

enum Slot<C> {
    Loading,
    Active(C),
}

/// A loader builds a shard's coordinator from its partition (replaying it).
pub type LoadFuture<C> = Pin<Box<dyn Future<Output = Result<C, String>> + Send>>;

/// How a kind of coordinator starts and stops; [`Shards`] does the rest.
pub trait ShardKind: Send + Sync + 'static {
    type Coordinator: Clone + Send + Sync + 'static;
    /// For log lines: "group", "transaction".
    const NAME: &'static str;
    fn load(&self, partition: Arc<Partition>) -> LoadFuture<Self::Coordinator>;
    fn stop(coordinator: &Self::Coordinator);
}

/// This broker's shards of one coordinator kind, by partition, each with
/// the leader epoch it was loaded for: a new epoch reloads, since a former
/// leader's memory may miss what another leader wrote meanwhile.
pub struct Shards<K: ShardKind> {
    kind: Arc<K>,
    slots: RwLock<SlotMap<K::Coordinator>>,
}

/// Partition -> (leader epoch it was loaded for, slot).
type SlotMap<C> = HashMap<i32, (i32, Slot<C>)>;

impl<K: ShardKind> Shards<K> {
    pub fn new(kind: K) -> Arc<Self> {
        Arc::new(Shards {
            kind: Arc::new(kind),
            slots: RwLock::new(HashMap::new()),
        })
    }

    pub fn lookup(&self, partition: i32) -> Lookup<K::Coordinator> {
        match self.read().get(&partition) {
            Some((_, Slot::Active(c))) => Lookup::Active(c.clone()),
            Some((_, Slot::Loading)) => Lookup::Loading,
            None => Lookup::NotHere,
        }
    }

    /// Every loaded shard with its partition.
    pub fn active(&self) -> Vec<(i32, K::Coordinator)> {
        self.read()
            .iter()
            .filter_map(|(p, (_, slot))| match slot {
                Slot::Active(c) => Some((*p, c.clone())),
                Slot::Loading => None,
            })
            .collect()
    }

    /// Whether any shard here is still loading.
    pub fn any_loading(&self) -> bool {
        self.read()
            .values()
            .any(|(_, slot)| matches!(slot, Slot::Loading))
    }

    /// Matches the shards to the partitions this broker leads now (index,
    /// leader epoch, partition): new leaderships start loading in the
    /// background, lost ones stop.
    pub fn follow(self: &Arc<Self>, leading: Vec<(i32, i32, Arc<Partition>)>) {
        let wanted: HashMap<i32, i32> = leading.iter().map(|(i, e, _)| (*i, *e)).collect();
        let mut slots = self.write();
        slots.retain(|index, (epoch, slot)| {
            let keep = wanted.get(index) == Some(epoch);
            if !keep {
                if let Slot::Active(c) = slot {
                    K::stop(c);
                }
                info!(
                    kind = K::NAME,
                    partition = index,
                    "coordinator shard dropped"
                );
            }
            keep
        });
        for (index, epoch, partition) in leading {
            if slots.contains_key(&index) {
                continue;
            }
            slots.insert(index, (epoch, Slot::Loading));
            let shards = Arc::clone(self);
            let load = self.kind.load(partition);
            tokio::spawn(async move { shards.finish_load(index, epoch, load.await) });
        }
    }

    fn finish_load(&self, index: i32, epoch: i32, loaded: Result<K::Coordinator, String>) {
        let mut slots = self.write();
        let current = slots.get_mut(&index);
        match (current, loaded) {
            (Some((e, slot @ Slot::Loading)), Ok(c)) if *e == epoch => {
                *slot = Slot::Active(c);
                info!(
                    kind = K::NAME,
                    partition = index,
                    epoch,
                    "coordinator shard loaded"
                );
            }
            (Some((e, Slot::Loading)), Err(error)) if *e == epoch => {
                // Dropped, so the next leadership change (or the retry in
                // `follow`'s next call) loads it again.
                slots.remove(&index);
                warn!(kind = K::NAME, partition = index, %error, "loading a coordinator shard failed");
            }
            // Leadership moved while loading: what was loaded is stale.
            (_, Ok(c)) => K::stop(&c),
            (_, Err(_)) => {}
        }
    }

    pub fn shutdown(&self) {
        for (_, (_, slot)) in self.write().drain() {
            if let Slot::Active(c) = slot {
                K::stop(&c);
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, SlotMap<K::Coordinator>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, SlotMap<K::Coordinator>> {
        self.slots.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether the metadata names this broker leader of `topic`'s `partition`
/// (it may not have applied that yet: then its shard is as good as loading).
pub fn leads_in_metadata(state: &crate::broker::BrokerState, topic: &str, partition: i32) -> bool {
    let image = state.cluster.image();
    image
        .topic_by_name(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .is_some_and(|p| p.leader == state.config.node_id)
}

/// The partitions of `topic` this broker leads, with their leader epochs.
pub fn led_partitions(
    logs: &crate::partitions::LogManager,
    topic: &str,
) -> Vec<(i32, i32, Arc<Partition>)> {
    logs.of_topic(topic)
        .into_iter()
        .filter_map(|p| {
            let (leading, index, epoch) = {
                let r = p.replica();
                (r.is_leader(), p.index, r.leader_epoch)
            };
            leading.then_some((index, epoch, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::sync::oneshot;

    /// Loads wait for the test to release them; stops are counted.
    #[derive(Default)]
    struct Gated {
        gates: Mutex<Vec<oneshot::Receiver<u32>>>,
        stopped: Arc<Mutex<Vec<u32>>>,
    }

    #[derive(Clone)]
    struct Loaded(u32, Arc<Mutex<Vec<u32>>>);

    impl ShardKind for Gated {
        type Coordinator = Loaded;
        const NAME: &'static str = "test";
        fn load(&self, _partition: Arc<Partition>) -> LoadFuture<Loaded> {
            let gate = self.gates.lock().unwrap().remove(0);
            let stopped = Arc::clone(&self.stopped);
            Box::pin(async move {
                let id = gate.await.map_err(|_| "gate dropped".to_string())?;
                Ok(Loaded(id, stopped))
            })
        }
        fn stop(c: &Loaded) {
            c.1.lock().unwrap().push(c.0);
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_shard_serves_only_once_loaded_and_a_stale_load_is_discarded() {
        let dir = tempfile::tempdir().unwrap();
        let logs = crate::partitions::LogManager::new(dir.path());
        let partition = logs
            .open_partition("__internal", 3, uuid::Uuid::new_v4(), Default::default())
            .unwrap();
        let kind = Gated::default();
        let stopped = Arc::clone(&kind.stopped);
        let (first, first_rx) = oneshot::channel();
        let (second, second_rx) = oneshot::channel();
        kind.gates.lock().unwrap().extend([first_rx, second_rx]);
        let shards = Shards::new(kind);

        shards.follow(vec![(3, 1, Arc::clone(&partition))]);
        assert!(matches!(shards.lookup(3), Lookup::Loading));
        assert!(matches!(shards.lookup(4), Lookup::NotHere));
        assert!(shards.any_loading());

        // A new leader epoch arrives before the first load ends: the
        // first load's result is stale and is stopped, never served.
        shards.follow(vec![(3, 2, Arc::clone(&partition))]);
        first.send(1).unwrap();
        settle().await;
        assert!(matches!(shards.lookup(3), Lookup::Loading));
        assert_eq!(*stopped.lock().unwrap(), vec![1]);

        second.send(2).unwrap();
        settle().await;
        assert!(matches!(shards.lookup(3), Lookup::Active(Loaded(2, _))));
        assert_eq!(shards.active().len(), 1);

        // Leadership lost: dropped and stopped at once.
        shards.follow(vec![]);
        assert!(matches!(shards.lookup(3), Lookup::NotHere));
        assert_eq!(*stopped.lock().unwrap(), vec![1, 2]);
    }

    #[test]
    fn java_hash_matches_javas_string_hash_code() {
        // Values Java's "…".hashCode() gives.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99162322);
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        // A character outside the BMP counts as two UTF-16 units.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_for_follows_kafkas_utils_abs() {
        // Utils.abs(Integer.MIN_VALUE) is 0, not a negative partition.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("hello", 50), 99162322 % 50);
        // A negative hash (Java: -1688714549) takes its absolute value.
        assert_eq!(java_string_hash("negative-group-1"), -1688714549);
        assert_eq!(partition_for("negative-group-1", 50), 1688714549 % 50);
        for key in ["", "g", "orders-app", "connect-cluster"] {
            let p = partition_for(key, 7);
            assert!((0..7).contains(&p));
        }
        assert_eq!(partition_for("anything", 1), 0);
    }
}
