//! The metadata quorum: openraft configured for the metadata log, behind a
//! small facade the broker will use — propose records on the active
//! controller, read the latest applied image anywhere.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{ChangeMembers, Config, Raft, SnapshotPolicy, TokioRuntime};
use tokio::sync::watch;

use crate::image::{ImageError, MetadataImage};
use crate::network::{Network, Transport};
use crate::records::{MetadataBatch, MetadataRecord};
use crate::storage::{Applied, LogStore, StateMachineStore};

/// A quorum member's id (a controller's `node.id`).
pub type NodeId = u64;
/// How to reach a quorum member (`host:port` of its controller listener).
pub type QuorumNode = openraft::BasicNode;

openraft::declare_raft_types!(
    /// openraft's types for the metadata log: an entry carries a batch of
    /// records; applying it answers whether the image accepted the batch.
    pub TypeConfig:
        D = MetadataBatch,
        R = Result<(), ImageError>,
        NodeId = NodeId,
        Node = QuorumNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = TokioRuntime,
);

/// Timing of the quorum.
#[derive(Debug, Clone)]
pub struct QuorumConfig {
    pub heartbeat_interval: Duration,
    /// A follower that hears no leader for a random time in this range starts
    /// an election; the upper bound is most of the failover time.
    pub election_timeout: (Duration, Duration),
    /// How long `propose` waits for its batch to commit.
    pub propose_timeout: Duration,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_after_entries: u64,
    /// Entries kept in the log behind a snapshot, so a briefly lagging
    /// follower catches up from the log instead of a whole snapshot.
    pub keep_behind_snapshot: u64,
}

impl Default for QuorumConfig {
    /// Tighter than KRaft's defaults (1 s fetch timeout, 2 s election
    /// timeout) to fit the failover goal of under 3 s with room for the
    /// broker side. A voter refuses to vote while its leader lease runs
    /// (openraft: the election timeout's upper bound since it last heard
    /// the leader), so the first candidate after a leader dies is usually
    /// turned down and the second wins: a dead controller is replaced in
    /// about two timeouts, 0.8–1.6 s here (measured 2.2 s with 0.6–1.2 s).
    /// Four missed 100 ms heartbeats before anyone stands keeps a loaded
    /// machine from electing needlessly.
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(100),
            election_timeout: (Duration::from_millis(400), Duration::from_millis(800)),
            propose_timeout: Duration::from_secs(5),
            snapshot_after_entries: 10_000,
            keep_behind_snapshot: 1_000,
        }
    }
}

/// Errors of the metadata quorum.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("this node is not the active controller (leader: {leader:?})")]
    NotController { leader: Option<NodeId> },
    #[error("the batch committed at index {index} but the image refused it: {source}")]
    Rejected { index: u64, source: ImageError },
    #[error("the batch did not commit within {0:?}; it may still commit later")]
    Timeout(Duration),
    #[error("invalid quorum configuration: {0}")]
    Config(String),
    #[error("metadata storage: {0}")]
    Storage(#[from] std::io::Error),
    #[error("the metadata quorum member is stopped")]
    Stopped,
    #[error("raft: {0}")]
    Raft(String),
}

/// How a member takes part in the quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Votes, may become the active controller (KRaft's controller role).
    Voter,
    /// Replicates the log without voting (a KRaft observer: every broker that
    /// is not a controller). It waits for the active controller to add it.
    Learner,
}

pub type Result<T, E = QuorumError> = std::result::Result<T, E>;

/// One member of the metadata quorum.
pub struct MetadataQuorum {
    id: NodeId,
    role: Role,
    /// The configured voters: where to look for the active controller before
    /// (or without) having replicated the membership.
    voters: BTreeMap<NodeId, QuorumNode>,
    raft: Raft<TypeConfig>,
    applied: watch::Receiver<Applied>,
    config: QuorumConfig,
}

impl MetadataQuorum {
    /// Starts member `node_id` of the static voter set `voters` (like KRaft's
    /// `controller.quorum.voters`). With `storage_dir` the log and snapshots
    /// are kept there and recovered on restart; without, in memory.
    ///
    /// Every member initializes the cluster with the same voter set when its
    /// log is empty; openraft accepts that, since all propose the identical
    /// first membership entry.
    pub async fn start<T: Transport>(
        node_id: NodeId,
        voters: BTreeMap<NodeId, QuorumNode>,
        storage_dir: Option<&Path>,
        transport: T,
        config: QuorumConfig,
    ) -> Result<Self> {
        Self::start_as(Role::Voter, node_id, voters, storage_dir, transport, config).await
    }

    /// Starts `node_id` as a learner of the quorum whose voters are `voters`.
    /// It never initializes the cluster: it replicates once the active
    /// controller adds it ([`MetadataQuorum::add_learner`], done by the
    /// controller when the broker registers). Its `image()`/`watch()` follow
    /// the log as on voters.
    pub async fn start_learner<T: Transport>(
        node_id: NodeId,
        voters: BTreeMap<NodeId, QuorumNode>,
        storage_dir: Option<&Path>,
        transport: T,
        config: QuorumConfig,
    ) -> Result<Self> {
        Self::start_as(
            Role::Learner,
            node_id,
            voters,
            storage_dir,
            transport,
            config,
        )
        .await
    }

    /// Starts a member in the given role; see [`MetadataQuorum::start`] and
    /// [`MetadataQuorum::start_learner`].
    pub async fn start_as<T: Transport>(
        role: Role,
        node_id: NodeId,
        voters: BTreeMap<NodeId, QuorumNode>,
        storage_dir: Option<&Path>,
        transport: T,
        config: QuorumConfig,
    ) -> Result<Self> {
        let ids = || voters.keys().collect::<Vec<_>>();
        if voters.is_empty() {
            return Err(QuorumError::Config("the voter set is empty".into()));
        }
        match (role, voters.contains_key(&node_id)) {
            (Role::Voter, false) => {
                return Err(QuorumError::Config(format!(
                    "node {node_id} is not among the voters {:?}",
                    ids()
                )));
            }
            (Role::Learner, true) => {
                return Err(QuorumError::Config(format!(
                    "node {node_id} is a voter {:?}; it cannot start as a learner",
                    ids()
                )));
            }
            _ => {}
        }
        let raft_config = Config {
            cluster_name: "weir-metadata".into(),
            heartbeat_interval: millis(config.heartbeat_interval),
            election_timeout_min: millis(config.election_timeout.0),
            election_timeout_max: millis(config.election_timeout.1),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_after_entries),
            max_in_snapshot_log_to_keep: config.keep_behind_snapshot,
            ..Config::default()
        }
        .validate()
        .map_err(|e| QuorumError::Config(e.to_string()))?;
        let log = match storage_dir {
            Some(dir) => LogStore::open(dir)?,
            None => LogStore::in_memory(),
        };
        let state_machine = StateMachineStore::open(storage_dir)?;
        let applied = state_machine.subscribe();
        let raft = Raft::new(
            node_id,
            Arc::new(raft_config),
            Network::new(transport),
            log,
            state_machine,
        )
        .await
        .map_err(|e| QuorumError::Raft(e.to_string()))?;
        if role == Role::Voter {
            match raft.initialize(voters.clone()).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(QuorumError::Raft(e.to_string())),
            }
        }
        Ok(Self {
            id: node_id,
            role,
            voters,
            raft,
            applied,
            config,
        })
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The voters this member was started with.
    pub fn voters(&self) -> &BTreeMap<NodeId, QuorumNode> {
        &self.voters
    }

    /// Whether `id` votes in the membership this member knows (the
    /// configured voters until a membership has been replicated here).
    pub fn is_voter(&self, id: NodeId) -> bool {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if membership.nodes().next().is_none() {
            return self.voters.contains_key(&id);
        }
        membership.voter_ids().any(|v| v == id)
    }

    /// The controller-listener address of quorum member `id`, from the
    /// replicated membership, else the configured voters.
    pub fn node_addr(&self, id: NodeId) -> Option<String> {
        let metrics = self.raft.metrics().borrow().clone();
        metrics
            .membership_config
            .membership()
            .get_node(&id)
            .or_else(|| self.voters.get(&id))
            .map(|n| n.addr.clone())
    }

    /// The index of the last entry in this member's log (appended, perhaps
    /// not yet committed).
    pub fn last_log_index(&self) -> u64 {
        self.raft.metrics().borrow().last_log_index.unwrap_or(0)
    }

    /// On the active controller: adds `node_id` as a learner reachable at
    /// `addr` (or updates its address), returning once the membership change
    /// commits, without waiting for the learner to catch up. A voter, or a
    /// learner already known at `addr`, is left alone.
    /// Stops replicating to learner `node_id` (a broker unregistered for
    /// good). Nothing to do if it is not one.
    pub async fn remove_learner(&self, node_id: NodeId) -> Result<()> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let is_learner = membership.learner_ids().any(|l| l == node_id);
        if !is_learner {
            return Ok(());
        }
        let result = self
            .raft
            .change_membership(ChangeMembers::RemoveNodes([node_id].into()), false)
            .await;
        result.map(|_| ()).map_err(membership_error)
    }

    pub async fn add_learner(&self, node_id: NodeId, addr: &str) -> Result<()> {
        let metrics = self.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if membership.voter_ids().any(|v| v == node_id) {
            return Ok(());
        }
        let node = QuorumNode {
            addr: addr.to_owned(),
        };
        let result = match membership.get_node(&node_id) {
            Some(known) if known.addr == addr => return Ok(()),
            // A learner that moved: SetNodes replaces its address, which is
            // safe for a non-voter (it cannot split a vote).
            Some(_) => {
                self.raft
                    .change_membership(ChangeMembers::SetNodes([(node_id, node)].into()), true)
                    .await
            }
            None => self.raft.add_learner(node_id, node, false).await,
        };
        result.map(|_| ()).map_err(membership_error)
    }

    /// On the active controller: confirms leadership with a quorum and waits
    /// until everything committed before is applied here, so decisions made
    /// next see every earlier controller's changes.
    pub async fn catch_up_as_leader(&self) -> Result<()> {
        let timeout = self.config.propose_timeout;
        let confirmed = tokio::time::timeout(timeout, self.raft.ensure_linearizable())
            .await
            .map_err(|_| QuorumError::Timeout(timeout))?;
        match confirmed {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(QuorumError::NotController {
                    leader: f.leader_id,
                })
            }
            Err(RaftError::Fatal(_)) => Err(QuorumError::Stopped),
            Err(e) => Err(QuorumError::Raft(e.to_string())),
        }
    }

    /// The openraft handle, for a transport's receiving side to deliver RPCs to.
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// Appends `records` as one batch and waits until it is committed and
    /// applied here. Returns its log index. Only the active controller (the
    /// Raft leader) may propose; others answer `NotController` with a hint.
    /// On `Timeout` the outcome is unknown, as with Kafka's REQUEST_TIMED_OUT.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<u64> {
        let write = self.raft.client_write(records);
        let response = match tokio::time::timeout(self.config.propose_timeout, write).await {
            Err(_) => return Err(QuorumError::Timeout(self.config.propose_timeout)),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                return Err(QuorumError::NotController {
                    leader: f.leader_id,
                });
            }
            Ok(Err(RaftError::Fatal(_))) => return Err(QuorumError::Stopped),
            Ok(Err(e)) => return Err(QuorumError::Raft(e.to_string())),
            Ok(Ok(r)) => r,
        };
        let index = response.log_id.index;
        response
            .data
            .map(|()| index)
            .map_err(|source| QuorumError::Rejected { index, source })
    }

    /// The image as of the latest entry applied on this node.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied.borrow().image.clone()
    }

    /// The index of the latest applied entry.
    pub fn applied_index(&self) -> u64 {
        self.applied.borrow().index
    }

    /// Follows applied state: changes whenever entries are applied.
    pub fn watch(&self) -> watch::Receiver<Applied> {
        self.applied.clone()
    }

    /// The current active controller as this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// The current Raft term as this node knows it.
    pub fn term(&self) -> u64 {
        self.raft.metrics().borrow().current_term
    }

    pub fn is_controller(&self) -> bool {
        self.leader() == Some(self.id)
    }

    /// Builds a snapshot now (and lets openraft purge the log behind it).
    pub async fn snapshot(&self) -> Result<()> {
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))
    }

    /// Stops this member; its storage directory can be reopened by `start`.
    pub async fn shutdown(&self) -> Result<()> {
        self.raft
            .shutdown()
            .await
            .map_err(|e| QuorumError::Raft(e.to_string()))
    }
}

/// A membership change's failure as the quorum reports errors.
fn membership_error(e: RaftError<NodeId, ClientWriteError<NodeId, QuorumNode>>) -> QuorumError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => QuorumError::NotController {
            leader: f.leader_id,
        },
        RaftError::Fatal(_) => QuorumError::Stopped,
        e => QuorumError::Raft(e.to_string()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
