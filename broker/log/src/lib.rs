//! Partition log storage (being written).
