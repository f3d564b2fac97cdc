//! Weir's Kubernetes operator.
//!
//! - [`crd`]: the four custom resources and the generated CRD manifests.
//! - [`validate`]: the rules the CRD schema cannot express, as pure functions.
//! - [`desired`]: the Kubernetes objects a Cluster should have, built with no
//!   client in sight, so `weir operator render` and the reconcilers agree.
//! - [`render`]: the CRs in a YAML file → every object the operator would create.
//! - [`reconcile`]: the Cluster and Topic reconcilers, the pure decisions
//!   they act on (roll plan, scale-down plan, topic plan, conditions) and the
//!   brokers behind the [`kafka::KafkaOps`] trait.
//! - [`runtime`]: one controller per kind, leader election on a Lease,
//!   metrics and health endpoints (`weir operator`).

pub mod crd;
pub mod desired;
pub mod kafka;
pub mod reconcile;
pub mod render;
pub mod runtime;
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
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("brokers: {0}")]
    Kafka(#[from] weir_client::Error),
    /// The brokers cannot do what was asked (e.g. shrink a topic's
    /// partitions).
    #[error("not supported by the brokers yet: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("{kind} has no {field}")]
    MissingField {
        kind: &'static str,
        field: &'static str,
    },
}

impl Error {
    /// A short, bounded label for the failures metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid { .. } => "invalid",
            Error::BadDocument { .. } | Error::Yaml(_) | Error::Json(_) => "serialization",
            Error::Kube(_) => "kube_api",
            Error::Kafka(_) => "brokers",
            Error::Unsupported(_) => "unsupported",
            Error::Unreachable(_) => "brokers_unreachable",
            Error::Io { .. } => "io",
            Error::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.reason(),
                _ => "finalizer",
            },
            Error::MissingField { .. } => "missing_field",
        }
    }
}

fn format_field_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
