//! Weir's async Kafka client: an [`admin::Admin`], a [`producer::Producer`]
//! and a [`consumer::Consumer`], all speaking the Kafka wire protocol through
//! the `kafka-protocol` crate over tokio.
//!
//! Every entry point takes a [`ClientConfig`]; the three share the same
//! connection and metadata layer ([`cluster`]).

pub mod acl;
pub mod admin;
pub mod assignor;
pub mod cluster;
pub mod config;
pub mod conn;
pub mod consumer;
pub mod error;
pub mod partitioner;
pub mod producer;
pub mod quota;
pub mod reassign;
pub mod sasl;
pub mod task_group;
pub mod tls;
pub mod transaction;
mod util;

pub use config::ClientConfig;
pub use error::{Error, Result};
pub use kafka_protocol::error::ResponseError;
pub use kafka_protocol::records::Compression;
