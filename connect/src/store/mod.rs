//! The worker's three internal topics (configs, offsets, statuses): each
//! read from its start by every worker into an in-memory state, and written
//! through the worker's producer.

pub mod configs;
pub mod log;
pub mod offsets;
pub mod statuses;
