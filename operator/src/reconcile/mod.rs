//! The reconcilers and the decisions they act on.
//!
//! Pure decisions: [`plan`] (which broker restarts next), [`rollout`] and
//! [`cron`] (maintenance windows and the pause between brokers), [`scale`]
//! (who leaves and whether that is safe), [`cluster_status`] and
//! [`conditions`] (what the status says), [`topic_plan`] (what a Topic
//! needs on the brokers). Thin async shells: [`cluster`] and [`topic`],
//! applying through [`apply`], asking the brokers through [`crate::kafka`]
//! and reading the time from [`clock`].

pub mod apply;
pub mod clock;
pub mod cluster;
pub mod cluster_status;
pub mod conditions;
pub mod cron;
pub mod plan;
pub mod rollout;
pub mod scale;
pub mod topic;
pub mod topic_plan;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use self::clock::{Clock, SystemClock};
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

impl Settings {
    /// Requeue delay for a reconcile that waits until `until`: then, but
    /// never sooner than `busy_requeue` (no spinning on a time just past)
    /// nor later than `idle_requeue` (other changes are still noticed, and
    /// a far-off time is reached exactly by the last requeue before it).
    pub fn requeue_at(&self, now: Timestamp, until: Timestamp) -> Duration {
        let wait = Duration::try_from(until.duration_since(now)).unwrap_or(Duration::ZERO);
        wait.max(self.busy_requeue).min(self.idle_requeue)
    }
}

/// What every reconcile gets.
pub struct Context {
    pub client: Client,
    pub kafka: Arc<dyn KafkaConnector>,
    pub recorder: Recorder,
    pub settings: Settings,
    /// The system clock, unless a test drives the time.
    pub clock: Arc<dyn Clock>,
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
            clock: Arc::new(SystemClock),
        }
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_is_looked_at_again_when_it_ends_within_the_requeue_bounds() {
        let settings = Settings::default();
        let now: Timestamp = "2026-11-25T12:00:00Z".parse().expect("time");
        let at = |secs: i64| Timestamp::from_second(now.as_second() + secs).expect("time");
        assert_eq!(settings.requeue_at(now, at(90)), Duration::from_secs(90));
        assert_eq!(settings.requeue_at(now, at(-5)), settings.busy_requeue);
        assert_eq!(settings.requeue_at(now, at(86_400)), settings.idle_requeue);
    }
}
