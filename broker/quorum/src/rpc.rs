//! What brokers ask the active controller, and what it answers: KRaft's
//! broker-to-controller and forwarded admin requests, as serde types carried
//! over the controller listener (see [`crate::tcp`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::image::{ImageError, PartitionRegistration};
use crate::raft::{NodeId, QuorumError};
use weir_client::acl::{AclBinding, AclFilter};

use crate::records::{BrokerId, ConfigResource, Endpoint, ScramCredentialRecord, ScramMechanism};

/// A topic to create. `partitions` and `replication_factor` may be -1 for
/// the defaults (1 each) or, with `assignments`, for "as assigned".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Replicas per partition, chosen by the caller instead of the placer.
    pub assignments: Option<Vec<Vec<BrokerId>>>,
    pub configs: BTreeMap<String, String>,
}

/// One partition's wanted reassignment (Kafka's AlterPartitionReassignments
/// entry): move it to `target` replicas, or with `None` cancel the
/// reassignment in progress (back to the original replicas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReassignment {
    pub topic: String,
    pub partition: i32,
    pub target: Option<Vec<BrokerId>>,
}

/// A reassignment in progress (Kafka's ListPartitionReassignments entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// Target and original replicas together, target first.
    pub replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

/// A request to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// A broker starts (or restarts). `quorum_addr` is where it serves the
    /// metadata log's replication as a learner (its controller listener).
    RegisterBroker {
        node_id: BrokerId,
        incarnation_id: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        quorum_addr: String,
    },
    /// Keeps the broker's session alive and carries its wishes.
    BrokerHeartbeat {
        node_id: BrokerId,
        broker_epoch: i64,
        /// The metadata log index the broker has applied.
        applied_index: u64,
        want_fence: bool,
        want_shutdown: bool,
    },
    CreateTopics {
        topics: Vec<NewTopic>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    /// Grows `topic` to `count` partitions.
    CreatePartitions {
        topic: String,
        count: i32,
        assignments: Option<Vec<Vec<BrokerId>>>,
        validate_only: bool,
    },
    /// Sets (`Some`) or deletes (`None`) config keys of one resource.
    AlterConfigs {
        resource: ConfigResource,
        changes: BTreeMap<String, Option<String>>,
    },
    AllocateProducerIds {
        node_id: BrokerId,
        broker_epoch: i64,
        count: i64,
    },
    /// A partition leader changes its ISR (Kafka's AlterPartition).
    AlterPartition {
        node_id: BrokerId,
        broker_epoch: i64,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<BrokerId>,
    },
    /// Preferred-leader election for the given partitions, or all if `None`.
    ElectLeaders {
        partitions: Option<Vec<(Uuid, i32)>>,
    },
    /// Starts, replaces or cancels partition reassignments. With
    /// `allow_replication_factor_change` false a target must keep the
    /// partition's replica count (KIP-860).
    AlterPartitionReassignments {
        reassignments: Vec<PartitionReassignment>,
        allow_replication_factor_change: bool,
    },
    /// The reassignments in progress among `partitions` (topic, partition),
    /// or all of them if `None`.
    ListPartitionReassignments {
        partitions: Option<Vec<(String, i32)>>,
    },
    /// Forgets a broker that left for good (Kafka's UnregisterBroker).
    UnregisterBroker {
        node_id: BrokerId,
    },
    /// Removes and sets users' SCRAM credentials (Kafka's
    /// AlterUserScramCredentials, with the keys already derived from the
    /// salted passwords).
    AlterScramCredentials {
        deletions: Vec<(String, ScramMechanism)>,
        upsertions: Vec<ScramCredentialRecord>,
    },
    /// Adds ACLs (Kafka's CreateAcls).
    CreateAcls {
        acls: Vec<AclBinding>,
    },
    /// Removes the ACLs each filter matches (Kafka's DeleteAcls).
    DeleteAcls {
        filters: Vec<AclFilter>,
    },
    /// Sets and removes client quotas (Kafka's AlterClientQuotas);
    /// `validate_only` decides without changing anything.
    AlterClientQuotas {
        alterations: Vec<crate::quotas::QuotaAlteration>,
        validate_only: bool,
    },
}

/// A topic as created or grown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: Uuid,
    /// Index = partition number.
    pub partitions: Vec<PartitionRegistration>,
}

/// One partition's outcome of an `ElectLeaders` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectionResult {
    pub topic_id: Uuid,
    pub partition: i32,
    /// The new leader.
    pub result: Result<BrokerId, ControllerError>,
}

/// The active controller's answer; one variant per request kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    RegisterBroker {
        broker_epoch: i64,
    },
    BrokerHeartbeat {
        is_fenced: bool,
        /// Controlled shutdown is done: the broker leads nothing any more.
        shutdown_ready: bool,
    },
    /// Per topic, in request order, so one bad topic does not fail the others.
    CreateTopics(Vec<(String, Result<TopicInfo, ControllerError>)>),
    /// Per name, in request order: the removed topic's id.
    DeleteTopics(Vec<(String, Result<Uuid, ControllerError>)>),
    CreatePartitions(TopicInfo),
    AlterConfigs,
    ProducerIds {
        first_id: i64,
        count: i64,
    },
    AlterPartition(PartitionRegistration),
    ElectLeaders(Vec<ElectionResult>),
    /// Per entry, in request order.
    AlterPartitionReassignments(Vec<(PartitionReassignment, Result<(), ControllerError>)>),
    ListPartitionReassignments(Vec<OngoingReassignment>),
    UnregisterBroker,
    /// Per user, in order of first mention; a user's changes apply all
    /// or none.
    AlterScramCredentials(Vec<(String, Result<(), ControllerError>)>),
    /// Per ACL, in request order.
    CreateAcls(Vec<Result<(), ControllerError>>),
    /// Per filter, in request order: the ACLs it removed.
    DeleteAcls(Vec<Vec<AclBinding>>),
    /// Per entity, in request order.
    AlterClientQuotas(Vec<Result<(), ControllerError>>),
}

/// Why the controller refused a request, naming what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ControllerError {
    #[error("not the active controller (leader: {leader:?} at {leader_addr:?})")]
    NotController {
        leader: Option<NodeId>,
        leader_addr: Option<String>,
    },
    /// Transient: the controller could not be reached or is stopping.
    #[error("controller unavailable: {0}")]
    Unavailable(String),
    /// The change was proposed but not seen committed in time; it may still apply.
    #[error("request timed out: {0}")]
    Timeout(String),
    #[error("broker {0} is not registered")]
    UnknownBroker(BrokerId),
    #[error("broker {node_id}: epoch {got} is stale (current {current})")]
    StaleBrokerEpoch {
        node_id: BrokerId,
        got: i64,
        current: i64,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    #[error("topic '{0}' does not exist")]
    UnknownTopic(String),
    #[error("partition {topic_id}/{partition} does not exist")]
    UnknownPartition { topic_id: Uuid, partition: i32 },
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("broker {sender} is not the leader of the partition (leader: {leader})")]
    NotLeader { sender: BrokerId, leader: BrokerId },
    #[error("leader epoch {got} does not match the current {current}")]
    FencedLeaderEpoch { got: i32, current: i32 },
    #[error("partition epoch {got} does not match the current {current}")]
    InvalidUpdateVersion { got: i32, current: i32 },
    #[error("ineligible replica: {0}")]
    IneligibleReplica(String),
    #[error("the preferred leader already leads")]
    ElectionNotNeeded,
    #[error("the preferred leader is not live and in sync")]
    PreferredLeaderNotAvailable,
    #[error("partition {topic}-{partition} has no reassignment in progress")]
    NoReassignmentInProgress { topic: String, partition: i32 },
    /// A user credential named twice in one request.
    #[error("{0}")]
    DuplicateResource(String),
    /// A user credential to delete or describe that does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A credential Kafka would refuse (no user name, iterations out of bounds).
    #[error("{0}")]
    UnacceptableCredential(String),
    /// The change committed but replay refused it (decided on a state that
    /// changed in between); nothing was applied.
    #[error("refused by the metadata image: {0}")]
    Rejected(ImageError),
    #[error("internal controller error: {0}")]
    Internal(String),
}

impl ControllerError {
    /// Whether sending the same request again (perhaps elsewhere) may succeed.
    /// A timed-out proposal is not retriable: it may still apply, and only the
    /// caller knows whether doing it twice is harmless.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::NotController { .. } | Self::Unavailable(_))
    }
}

impl From<QuorumError> for ControllerError {
    fn from(e: QuorumError) -> Self {
        match e {
            QuorumError::NotController { leader } => Self::NotController {
                leader,
                leader_addr: None,
            },
            QuorumError::Rejected { source, .. } => Self::Rejected(source),
            QuorumError::Timeout(d) => Self::Timeout(format!("not committed within {d:?}")),
            QuorumError::Stopped => Self::Unavailable("the metadata quorum is stopped".into()),
            other => Self::Internal(other.to_string()),
        }
    }
}
