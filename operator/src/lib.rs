//! Weir's Kubernetes operator.
//!
//! - [`crd`]: the four custom resources and the generated CRD manifests.
//! - [`validate`]: the rules the CRD schema cannot express, as pure functions.
//! - [`desired`]: the Kubernetes objects a Cluster should have, built with no
//!   client in sight, so `weir operator render` and the reconcilers agree.
//! - [`render`]: the CRs in a YAML file → every object the operator would create.
//! - [`reconcile::plan`]: which broker a rolling restart may take down next.
//!
//! Not built yet (see issue 3): the reconcilers and the runtime (controllers,
//! leader election, metrics, health endpoints).

pub mod crd;
pub mod desired;
pub mod reconcile;
pub mod render;
pub mod validate;

pub use validate::FieldError;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name:?} is invalid:\n{}", format_field_errors(.errors))]
    Invalid {
        kind: String,
        name: String,
        errors: Vec<FieldError>,
    },
    #[error("document {index}: {message}")]
    BadDocument { index: usize, message: String },
    #[error("YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

fn format_field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
