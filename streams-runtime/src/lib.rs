//! Stream-processing library and declarative pipeline runner. Not built yet: see docs/architecture.md.
