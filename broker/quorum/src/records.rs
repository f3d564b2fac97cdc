//! The records of the metadata log, modelled on KRaft's metadata records
//! (KIP-631). A record states a fact the active controller decided; replaying
//! them in log order on any node rebuilds the same [`MetadataImage`].
//!
//! Broker heartbeats are deliberately not records: as in KRaft they go to the
//! active controller's in-memory session tracker, and only their consequences
//! (fence, unfence) are logged, so an idle cluster does not grow the log.
//!
//! [`MetadataImage`]: crate::image::MetadataImage

use std::collections::BTreeMap;
use weir_client::acl::AclBinding;
use weir_client::quota::{QuotaEntity, QuotaKey, QuotaValue};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker's node id, as Kafka spells it (`node.id`, an int32). `-1` means "none"
/// wherever a leader is expected.
pub type BrokerId = i32;

/// The leader value of a partition that has no leader.
pub const NO_LEADER: BrokerId = -1;

/// One listener a broker advertises to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: u16,
}

/// What a config record applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    /// Cluster-wide default (Kafka's broker resource with an empty name).
    Cluster,
    Broker(BrokerId),
    Topic(String),
}

/// One entry of the metadata log. A Raft entry carries a batch of these,
/// applied atomically (all or none), like a KRaft record batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// A broker (re-)registers. `epoch` must exceed the epoch of any earlier
    /// registration of the same node, so a stale incarnation can be told
    /// apart; a new registration starts fenced until it is caught up.
    RegisterBroker {
        node_id: BrokerId,
        epoch: i64,
        incarnation_id: Uuid,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    /// The broker left the cluster for good (scale-down after a drain).
    UnregisterBroker { node_id: BrokerId, epoch: i64 },
    /// The broker missed its session (or shut down): it may not lead or be in an ISR.
    FenceBroker { node_id: BrokerId, epoch: i64 },
    /// The broker is caught up with the metadata log and heartbeating again.
    UnfenceBroker { node_id: BrokerId, epoch: i64 },
    /// A topic comes into existence, with its config overrides. Its partitions
    /// follow as `Partition` records in the same batch.
    CreateTopic {
        name: String,
        topic_id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// A new partition of an existing topic. Partitions are numbered densely:
    /// `partition` must equal the topic's current partition count.
    Partition(PartitionRecord),
    /// A change of an existing partition's replicas, ISR or leader.
    PartitionChange(PartitionChange),
    /// The topic and all its partitions and configs go away.
    RemoveTopic { topic_id: Uuid },
    /// Sets (`Some`) or deletes (`None`) one config key.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next_producer_id` have been handed out.
    ProducerIds { next_producer_id: i64 },
    /// Sets a user's SCRAM credential for one mechanism (KRaft's
    /// UserScramCredentialRecord), replacing any earlier one.
    ScramCredential(ScramCredentialRecord),
    /// Removes a user's SCRAM credential for one mechanism.
    RemoveScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    /// Adds an ACL (KRaft's AccessControlEntryRecord); one already there
    /// stays as it is.
    Acl(AclBinding),
    /// Removes an ACL (one not there is already gone).
    RemoveAcl(AclBinding),
    /// Sets one quota of an entity, or with no value removes it (KRaft's
    /// QuotaRecord).
    ClientQuota {
        entity: QuotaEntity,
        key: QuotaKey,
        value: Option<QuotaValue>,
    },
}

/// The SCRAM mechanisms a credential is stored for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

/// What a broker verifies a SCRAM login against: the salt, iteration
/// count and the two keys derived from the salted password (never the
/// password).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Records and images are logged when something goes wrong; the keys
        // stay out of logs.
        f.debug_struct("ScramCredential")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// A credential as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialRecord {
    pub user: String,
    pub mechanism: ScramMechanism,
    pub credential: ScramCredential,
}

/// A partition as created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRecord {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub leader: BrokerId,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// A change to a partition. Fields left `None` keep their value.
///
/// The epochs are explicit rather than derived on replay so that the image can
/// refuse a change computed against an older state of the partition:
/// `partition_epoch` must be exactly one more than the current one, and
/// `leader_epoch` may not go backwards and must grow when the leader changes.
///
/// A reassignment in progress is carried as in KRaft: `replicas` is the
/// union of the target and the current replicas (target first),
/// `adding_replicas` those of the target not yet holding the data, and
/// `removing_replicas` those not in the target. Both default to empty so
/// logs and snapshots written before reassignments existed still replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub replicas: Option<Vec<BrokerId>>,
    pub isr: Option<Vec<BrokerId>>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adding_replicas: Option<Vec<BrokerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removing_replicas: Option<Vec<BrokerId>>,
}

/// What one Raft entry carries.
pub type MetadataBatch = Vec<MetadataRecord>;
