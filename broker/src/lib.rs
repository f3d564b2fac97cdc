//! Weir's broker: a Kafka wire server over Weir's partition log and group
//! coordinator. `Broker::start` recovers the data directory and serves.
//!
//! Layers, outermost first: `server` (listener, framing, decoding) →
//! `handlers` (one per API) → `BrokerState` (the cluster's metadata image
//! and controller link in `cluster`, logs, replication in `replica`, the
//! group coordinator in `groups`). `lifecycle` keeps the broker registered
//! with the active controller.

pub mod admin_http;
pub mod alloc;
pub mod authorizer;
pub mod broker;
mod clock;
pub mod cluster;
pub mod codec;
pub mod config;
pub mod controller_node;
pub mod fetch_session;
mod group_access;
mod group_store;
mod groups;
mod handlers;
mod lifecycle;
pub mod listeners;
pub mod metadata;
pub mod partitions;
pub mod peers;
pub mod principal_mapping;
pub mod quotas;
pub mod replica;
pub mod sasl;
mod server;
mod shards;
mod task_groups;
pub mod tls;
pub mod topic_config;
mod txn;
pub mod x500;

pub use broker::{Broker, BrokerError, BrokerState};
pub use config::{BrokerConfig, BrokerConfigError, ProcessRoles};
pub use controller_node::ControllerNode;
pub use handlers::advertised_versions;

// Unit tests decode garbage on purpose; they need the same allocator as the
// `weir` binary (which declares it in `cli/`).
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: alloc::LazyHugeAlloc = alloc::LazyHugeAlloc;
