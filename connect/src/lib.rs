//! Kafka Connect-compatible worker runtime. Not built yet: see docs/architecture.md for where the code stands.
