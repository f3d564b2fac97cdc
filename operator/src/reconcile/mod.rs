//! The reconcilers and the decisions they act on.
//!
//! Pure decisions: [`plan`] (which broker restarts next), [`scale`] (who
//! leaves and whether that is safe), [`cluster_status`] and [`conditions`]
//! (what the status says), [`topic_plan`] (what a Topic needs on the
//! brokers). Thin async shells: [`cluster`] and [`topic`], applying through
//! [`apply`] and asking the brokers through [`crate::kafka`].

pub mod apply;
pub mod cluster;
pub mod cluster_status;
pub mod conditions;
pub mod plan;
pub mod scale;
pub mod topic;
pub mod topic_plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::desired::cluster::bootstrap_servers;
use crate::kafka::KafkaConnector;

/// Pauses reconciliation of one resource when `"true"`, like `spec.paused`.
pub const PAUSE_ANNOTATION: &str = "weir.dev/paused";

/// How often to look again.
#[derive(Debug, Clone)]
pub struct Settings {
    /// While something is moving: a roll, a drain, brokers starting.
    pub busy_requeue: Duration,
    /// When all is well (also how soon out-of-band topic changes are seen).
    pub idle_requeue: Duration,
    /// Talk to these brokers instead of `<cluster>-bootstrap.<ns>.svc:9092`
    /// (tests, or an operator running outside the cluster).
    pub bootstrap_override: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            busy_requeue: Duration::from_secs(10),
            idle_requeue: Duration::from_secs(300),
            bootstrap_override: None,
        }
    }
}

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub kafka: Arc<dyn KafkaConnector>,
    pub recorder: Recorder,
    pub settings: Settings,
}

impl Context {
    pub fn new(
        client: Client,
        kafka: Arc<dyn KafkaConnector>,
        reporter: Reporter,
        settings: Settings,
    ) -> Self {
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            kafka,
            settings,
        }
    }

    /// The bootstrap address of Cluster `name` in `namespace`.
    pub fn bootstrap(&self, name: &str, namespace: &str) -> String {
        self.settings
            .bootstrap_override
            .clone()
            .unwrap_or_else(|| bootstrap_servers(name, namespace))
    }

    /// Publishes an Event; a failure is logged, never fails the reconcile.
    pub async fn event(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, regarding).await {
            tracing::warn!(error = %e, reason, "publishing an event failed");
        }
    }
}

/// Whether a resource's pause annotation is set.
pub fn paused_by_annotation(meta: &kube::api::ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(PAUSE_ANNOTATION))
        .is_some_and(|v| v == "true")
}
