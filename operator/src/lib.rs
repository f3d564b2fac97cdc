//! CRD types, desired-state builders and reconcilers. Not built yet: see docs/architecture.md.
