//! openraft's log storage and state machine for the metadata log.
//!
//! The log lives in memory, optionally backed by a journal in a directory:
//! one append-only file (`raft.journal`) of frames `[len u32][crc32c u32][json]`,
//! each frame one operation (append entries, truncate, purge, vote, committed).
//! Replay at start applies the frames in order and cuts a torn or corrupt
//! tail, so a crash mid-write loses only an operation never acknowledged to
//! openraft. Every write is `fdatasync`ed before openraft is told it is done,
//! as Raft requires for votes and log entries. The journal is never compacted
//! yet (a rewrite after purge is the obvious next step).
//!
//! The state machine is the [`MetadataImage`]; a snapshot is the image and its
//! Raft metadata as JSON, kept in `snapshot.json` (written to a temporary file,
//! synced, renamed) so a restarted node starts from it and replays the rest.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftLogReader, RaftSnapshotBuilder, SnapshotMeta,
    StorageError, StorageIOError, StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use crate::image::{ImageError, MetadataImage};
use crate::raft::{NodeId, QuorumNode, TypeConfig};

const JOURNAL_FILE: &str = "raft.journal";
const SNAPSHOT_FILE: &str = "snapshot.json";
/// A frame larger than this is taken as corruption rather than allocated.
const MAX_FRAME: usize = 256 * 1024 * 1024;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

#[derive(Serialize, Deserialize)]
enum JournalOp {
    Append(Vec<Entry<TypeConfig>>),
    /// Removes entries at and after this index (a conflicting suffix).
    Truncate(u64),
    /// Removes entries up to and including this log id (in a snapshot now).
    Purge(LogId<NodeId>),
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
}

struct Journal {
    file: File,
}

impl Journal {
    /// Opens (creating) the journal and replays it into `log`.
    fn open(dir: &Path, log: &mut LogInner) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut good = 0usize;
        while let Some((op, len)) = decode_frame(&bytes[good..]) {
            log.replay(op);
            good += len;
        }
        if good < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                kept = good,
                dropped = bytes.len() - good,
                "metadata journal has a torn or corrupt tail; truncating it"
            );
            file.set_len(good as u64)?;
            file.sync_all()?;
        }
        Ok(Self { file })
    }

    fn write(&mut self, op: &JournalOp) -> io::Result<()> {
        let json = serde_json::to_vec(op).map_err(io::Error::other)?;
        let len = u32::try_from(json.len()).map_err(io::Error::other)?;
        let mut frame = Vec::with_capacity(json.len() + 8);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
        frame.extend_from_slice(&json);
        self.file.write_all(&frame)?;
        self.file.sync_data()
    }
}

/// One frame from the front of `bytes` and its length, or `None` at a torn,
/// corrupt or undecodable frame.
fn decode_frame(bytes: &[u8]) -> Option<(JournalOp, usize)> {
    let len = u32::from_be_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_be_bytes(bytes.get(4..8)?.try_into().ok()?);
    if len > MAX_FRAME {
        return None;
    }
    let body = bytes.get(8..8 + len)?;
    if crc32c::crc32c(body) != crc {
        return None;
    }
    Some((serde_json::from_slice(body).ok()?, 8 + len))
}

#[derive(Default)]
struct LogInner {
    last_purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
}

impl LogInner {
    fn replay(&mut self, op: JournalOp) {
        match op {
            JournalOp::Append(entries) => {
                for e in entries {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            JournalOp::Truncate(index) => {
                self.entries.split_off(&index);
            }
            JournalOp::Purge(log_id) => {
                self.entries = self.entries.split_off(&(log_id.index + 1));
                self.last_purged = Some(log_id);
            }
            JournalOp::Vote(v) => self.vote = Some(v),
            JournalOp::Committed(c) => self.committed = c,
        }
    }
}

fn io_error(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageError::IO {
        source: StorageIOError::write(&e),
    }
}

/// The Raft log: in memory, and journaled when opened on a directory.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Mutex<LogInner>>,
    journal: Option<Arc<std::sync::Mutex<Journal>>>,
}

impl LogStore {
    pub fn in_memory() -> Self {
        Self {
            inner: Arc::default(),
            journal: None,
        }
    }

    /// Opens the journal in `dir`, replaying what it holds.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let mut inner = LogInner::default();
        let journal = Journal::open(dir, &mut inner)?;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            journal: Some(Arc::new(std::sync::Mutex::new(journal))),
        })
    }

    /// Makes `op` durable (if journaled) off the async workers, then applies it
    /// in memory; callers hold the log lock so the two orders agree.
    async fn record(&self, inner: &mut LogInner, op: JournalOp) -> StorageResult<()> {
        let op = match &self.journal {
            None => op,
            Some(journal) => {
                let journal = journal.clone();
                tokio::task::spawn_blocking(move || {
                    let mut j = journal
                        .lock()
                        .map_err(|_| io::Error::other("journal lock poisoned"))?;
                    j.write(&op).map(|()| op)
                })
                .await
                .map_err(io_error)?
                .map_err(io_error)?
            }
        };
        inner.replay(op);
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let inner = self.inner.lock().await;
        Ok(inner.entries.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let inner = self.inner.lock().await;
        let last = inner
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock().await;
        self.record(&mut inner, JournalOp::Vote(*vote)).await
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(self.inner.lock().await.vote)
    }

    // Saving the commit index lets a restarted node re-apply its committed
    // entries at once, before any leader is elected.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        let mut inner = self.inner.lock().await;
        self.record(&mut inner, JournalOp::Committed(committed))
            .await
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(self.inner.lock().await.committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let mut inner = self.inner.lock().await;
        let result = self.record(&mut inner, JournalOp::Append(entries)).await;
        match &result {
            Ok(()) => callback.log_io_completed(Ok(())),
            Err(e) => callback.log_io_completed(Err(io::Error::other(e.to_string()))),
        }
        result
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock().await;
        self.record(&mut inner, JournalOp::Truncate(log_id.index))
            .await
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut inner = self.inner.lock().await;
        self.record(&mut inner, JournalOp::Purge(log_id)).await
    }
}

/// What readers of the state machine see: the image and the log index it
/// reflects, published together after every apply.
#[derive(Debug, Clone, Default)]
pub struct Applied {
    /// Index of the last applied log entry (0 before any).
    pub index: u64,
    pub image: Arc<MetadataImage>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, QuorumNode>,
    image: MetadataImage,
}

struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, QuorumNode>,
    image: Arc<MetadataImage>,
    snapshot: Option<(SnapshotMeta<NodeId, QuorumNode>, Vec<u8>)>,
}

/// The replicated state machine: the metadata image.
#[derive(Clone)]
pub struct StateMachineStore {
    inner: Arc<Mutex<SmInner>>,
    applied: watch::Sender<Applied>,
    dir: Option<PathBuf>,
}

impl StateMachineStore {
    /// A state machine starting from the snapshot in `dir` if there is one.
    pub fn open(dir: Option<&Path>) -> io::Result<Self> {
        let mut inner = SmInner {
            last_applied: None,
            membership: StoredMembership::default(),
            image: Arc::default(),
            snapshot: None,
        };
        if let Some(dir) = dir {
            match fs::read(dir.join(SNAPSHOT_FILE)) {
                Ok(bytes) => {
                    let file: SnapshotFile = serde_json::from_slice(&bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    inner.last_applied = file.meta.last_log_id;
                    inner.membership = file.meta.last_membership.clone();
                    inner.image = Arc::new(file.image);
                    inner.snapshot = Some((file.meta, bytes));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let (applied, _) = watch::channel(Applied {
            index: inner.last_applied.map_or(0, |l| l.index),
            image: inner.image.clone(),
        });
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            applied,
            dir: dir.map(Path::to_path_buf),
        })
    }

    pub fn subscribe(&self) -> watch::Receiver<Applied> {
        self.applied.subscribe()
    }

    fn publish(&self, inner: &SmInner) {
        self.applied.send_replace(Applied {
            index: inner.last_applied.map_or(0, |l| l.index),
            image: inner.image.clone(),
        });
    }

    async fn persist_snapshot(&self, bytes: &[u8]) -> StorageResult<()> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let bytes = bytes.to_vec();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            fs::create_dir_all(&dir)?;
            let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
            let mut f = File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, dir.join(SNAPSHOT_FILE))?;
            File::open(&dir)?.sync_all()
        })
        .await
        .map_err(io_error)?
        .map_err(io_error)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let mut inner = self.inner.lock().await;
        let meta = SnapshotMeta {
            last_log_id: inner.last_applied,
            last_membership: inner.membership.clone(),
            snapshot_id: match inner.last_applied {
                Some(l) => format!("{}-{}", l.leader_id, l.index),
                None => "empty".to_owned(),
            },
        };
        let file = SnapshotFile {
            meta: meta.clone(),
            image: MetadataImage::clone(&inner.image),
        };
        let bytes = serde_json::to_vec(&file).map_err(io_error)?;
        self.persist_snapshot(&bytes).await?;
        inner.snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, QuorumNode>)> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Result<(), ImageError>>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut image = MetadataImage::clone(&inner.image);
        let mut results = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let outcome = match entry.payload {
                EntryPayload::Blank => Ok(()),
                // A refused batch is skipped identically on every node; the
                // proposer learns why from the outcome.
                EntryPayload::Normal(batch) => image.apply_batch(&batch),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    Ok(())
                }
            };
            results.push(outcome);
        }
        inner.image = Arc::new(image);
        self.publish(&inner);
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, QuorumNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let bytes = snapshot.into_inner();
        let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| StorageError::IO {
            source: StorageIOError::read_snapshot(Some(meta.signature()), &e),
        })?;
        self.persist_snapshot(&bytes).await?;
        let mut inner = self.inner.lock().await;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.image = Arc::new(file.image);
        inner.snapshot = Some((meta.clone(), bytes));
        self.publish(&inner);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let inner = self.inner.lock().await;
        Ok(inner.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Vec::new()),
        }
    }

    fn replayed(dir: &Path) -> LogInner {
        let mut log = LogInner::default();
        Journal::open(dir, &mut log).unwrap();
        log
    }

    #[test]
    fn journal_replays_operations_and_cuts_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = LogInner::default();
            let mut j = Journal::open(dir.path(), &mut log).unwrap();
            j.write(&JournalOp::Append((1..=5).map(entry).collect()))
                .unwrap();
            j.write(&JournalOp::Truncate(4)).unwrap();
            j.write(&JournalOp::Purge(entry(1).log_id)).unwrap();
            j.write(&JournalOp::Vote(Vote::new(2, 3))).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let good_len = fs::metadata(&path).unwrap().len();
        // A crash mid-write: a frame header promising more than was written.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 100, 1, 2, 3, 4, b'{']).unwrap();
        drop(f);

        let log = replayed(dir.path());
        assert_eq!(log.entries.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(log.last_purged, Some(entry(1).log_id));
        assert_eq!(log.vote, Some(Vote::new(2, 3)));
        assert_eq!(fs::metadata(&path).unwrap().len(), good_len);

        // A flipped bit in the last frame drops that frame only.
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let log = replayed(dir.path());
        assert_eq!(log.vote, None);
        assert_eq!(log.entries.keys().copied().collect::<Vec<_>>(), [2, 3]);
    }
}
