//! Weir's metadata quorum, KRaft's equivalent: cluster metadata (brokers,
//! topics, partition replicas, leaders, ISR, epochs, configs) is a log of
//! [`MetadataRecord`]s replicated by Raft (openraft); every node replays it
//! into the same [`MetadataImage`].
//!
//! - [`records`] and [`image`]: the log's records and their pure replay.
//! - [`controller`]: the active controller's pure decisions (placement,
//!   leader election, fencing), returning records to propose.
//! - [`raft`], [`storage`], [`network`]: openraft wiring and the
//!   [`MetadataQuorum`] facade; [`Transport`] is where a real network plugs in.

pub mod controller;
pub mod image;
pub mod records;

pub use image::{ImageError, MetadataImage};
pub use records::{BrokerId, MetadataRecord};
pub mod network;
pub mod raft;
pub mod storage;

pub use network::{Router, Transport};
pub use raft::{MetadataQuorum, QuorumConfig, QuorumError};
