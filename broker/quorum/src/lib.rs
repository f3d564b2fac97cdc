//! Weir's metadata quorum, KRaft's equivalent: cluster metadata (brokers,
//! topics, partition replicas, leaders, ISR, epochs, configs) is a log of
//! [`MetadataRecord`]s replicated by Raft (openraft); every node replays it
//! into the same [`MetadataImage`].
//!
//! - [`records`] and [`image`]: the log's records and their pure replay.
//! - [`controller`] and [`decide`]: the active controller's pure decisions
//!   (placement, leader election, fencing, per-request validation),
//!   returning records to propose.
//! - [`raft`], [`storage`], [`network`]: openraft wiring and the
//!   [`MetadataQuorum`] facade (voters and learners); [`Transport`] is where
//!   a network plugs in: [`TcpTransport`] for clusters, [`Router`] in tests.
//! - [`frame`], [`tcp`]: the controller listener (port 9093): length-prefixed
//!   JSON frames carrying Raft RPCs and controller requests.
//! - [`rpc`], [`service`], [`client`]: requests to the active controller,
//!   the service that decides them on the Raft leader, and the client that
//!   finds it.
//! - [`member`]: all of the above wired for one node ([`QuorumMember`]).

pub mod acls;
pub mod client;
pub mod controller;
pub mod credentials;
pub mod decide;
pub mod frame;
pub mod image;
pub mod member;
pub mod network;
pub mod quotas;
pub mod raft;
pub mod records;
pub mod rpc;
pub mod service;
mod signal;
pub mod storage;
pub mod tcp;

pub use client::ControllerClient;
pub use image::{ImageError, MetadataImage};
pub use member::{MemberConfig, QuorumMember};
pub use network::{Router, Transport};
pub use raft::{MetadataQuorum, NodeId, QuorumConfig, QuorumError, QuorumNode, Role};
pub use records::{BrokerId, MetadataRecord};
pub use rpc::{
    ControllerError, ControllerRequest, ControllerResponse, NewTopic, OngoingReassignment,
    PartitionReassignment, TopicInfo,
};
pub use service::{ControllerConfig, ControllerHandle, spawn_controller};
pub use tcp::{TcpConfig, TcpTransport, serve};
