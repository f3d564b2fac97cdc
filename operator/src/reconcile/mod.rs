//! Decisions the reconcilers will act on, as pure functions. The reconcilers
//! themselves (the API calls) are not built yet.

pub mod plan;
