//! The admin HTTP port (9644 by default): `/healthz` (the process is up),
//! `/ready` (recovered and serving — what a Kubernetes readiness probe and a
//! rolling restart wait for) and `/metrics` (Prometheus text).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use weir_coordinator::tasks::group::TaskGroupStats;

use crate::broker::BrokerState;

/// Counters the request path bumps; read by `/metrics`.
pub struct Metrics {
    requests: [AtomicU64; API_SLOTS],
    pub connections_opened: AtomicU64,
    pub connections_closed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

/// Kafka API keys we count individually (keys above this share the last slot).
const API_SLOTS: usize = 96;

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: std::array::from_fn(|_| AtomicU64::new(0)),
            connections_opened: AtomicU64::new(0),
            connections_closed: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn count_request(&self, api_key: i16) {
        let slot = (api_key.max(0) as usize).min(API_SLOTS - 1);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self, state: &BrokerState) -> String {
        let mut out = String::new();
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        out.push_str("# HELP weir_broker_requests_total Kafka requests handled, by API.\n");
        out.push_str("# TYPE weir_broker_requests_total counter\n");
        for (key, counter) in self.requests.iter().enumerate() {
            let n = get(counter);
            if n > 0 {
                let api = kafka_protocol::messages::ApiKey::try_from(key as i16)
                    .map(|a| format!("{a:?}"))
                    .unwrap_or_else(|()| key.to_string());
                let _ = writeln!(out, "weir_broker_requests_total{{api=\"{api}\"}} {n}");
            }
        }
        let opened = get(&self.connections_opened);
        let closed = get(&self.connections_closed);
        let gauges: [(&str, &str, &str, u64); 6] = [
            (
                "weir_broker_connections",
                "gauge",
                "Open client connections.",
                opened.saturating_sub(closed),
            ),
            (
                "weir_broker_bytes_in_total",
                "counter",
                "Request bytes received.",
                get(&self.bytes_in),
            ),
            (
                "weir_broker_bytes_out_total",
                "counter",
                "Response bytes sent.",
                get(&self.bytes_out),
            ),
            (
                "weir_broker_partitions",
                "gauge",
                "Partitions stored on this broker.",
                state.logs.all().len() as u64,
            ),
            (
                "weir_broker_topics",
                "gauge",
                "Topics in the cluster.",
                state.cluster.topics().len() as u64,
            ),
            (
                "weir_broker_under_replicated_partitions",
                "gauge",
                "Partitions this broker leads with fewer in-sync replicas than replicas.",
                crate::replica::under_replicated(state) as u64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

/// A Prometheus label value: group ids may hold any character.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Per task group this broker coordinates: members, epochs, rebalances
/// and tasks by role (warm-ups are the moves in progress).
fn task_group_metrics(groups: &[TaskGroupStats]) -> String {
    let mut out = String::new();
    if groups.is_empty() {
        return out;
    }
    let header = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    type Stat = fn(&TaskGroupStats) -> u64;
    let series: [(&str, &str, &str, Stat); 5] = [
        (
            "weir_task_group_members",
            "gauge",
            "Members of the task group.",
            |g| g.members as u64,
        ),
        (
            "weir_task_group_epoch",
            "gauge",
            "The group epoch: bumped by every change of members or topology.",
            |g| g.group_epoch.max(0) as u64,
        ),
        (
            "weir_task_group_assignment_epoch",
            "gauge",
            "The group epoch the target assignment was computed for.",
            |g| g.assignment_epoch.max(0) as u64,
        ),
        (
            "weir_task_group_rebalances_total",
            "counter",
            "Assignments computed by this coordinator.",
            |g| g.rebalances,
        ),
        (
            "weir_task_group_warmups",
            "gauge",
            "Warm-up tasks in progress: stateful tasks that move once caught up.",
            |g| g.warmup as u64,
        ),
    ];
    for (name, kind, help, value) in series {
        header(&mut out, name, kind, help);
        for g in groups {
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\"}} {}",
                label(&g.group_id),
                value(g)
            );
        }
    }
    let name = "weir_task_group_tasks";
    header(
        &mut out,
        name,
        "gauge",
        "Tasks members run, by role (revoking: active tasks being handed over).",
    );
    for g in groups {
        let roles = [
            ("active", g.active),
            ("standby", g.standby),
            ("warmup", g.warmup),
            ("revoking", g.revoking),
        ];
        for (role, n) in roles {
            let group = label(&g.group_id);
            let _ = writeln!(out, "{name}{{group=\"{group}\",role=\"{role}\"}} {n}");
        }
    }
    let name = "weir_task_group_state";
    header(&mut out, name, "gauge", "1 for the group's state.");
    for g in groups {
        let (group, state) = (label(&g.group_id), g.state.as_str());
        let _ = writeln!(out, "{name}{{group=\"{group}\",state=\"{state}\"}} 1");
    }
    out
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready once the controller has unfenced this broker (it is registered and
/// caught up with the metadata log) and its partitions follow the image.
/// Under-replicated partitions do not make a broker unready — a rolling
/// restart waits for them through `/metrics` or the Kafka API — but are
/// named in the answer.
async fn ready(State(state): State<Arc<BrokerState>>) -> (StatusCode, String) {
    if !state.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the controller to admit this broker\n".into(),
        );
    }
    let under = crate::replica::under_replicated(&state);
    (
        StatusCode::OK,
        format!("ready\nunder_replicated_partitions {under}\n"),
    )
}

async fn metrics(State(state): State<Arc<BrokerState>>) -> impl IntoResponse {
    let mut body = state.metrics.render(&state);
    body.push_str(&task_group_metrics(&state.groups.task_group_stats().await));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// Serves the admin endpoints until shutdown.
pub async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "admin HTTP server failed");
    }
}

#[cfg(test)]
mod tests {
    use weir_coordinator::tasks::group::TaskGroupState;

    use super::*;

    #[test]
    fn task_groups_are_labelled_by_group_and_role() {
        let stats = TaskGroupStats {
            group_id: "app \"eu\"".into(),
            state: TaskGroupState::Reconciling,
            members: 3,
            group_epoch: 7,
            assignment_epoch: 6,
            rebalances: 4,
            active: 10,
            standby: 9,
            warmup: 2,
            revoking: 1,
        };
        let text = task_group_metrics(&[stats]);
        for line in [
            "weir_task_group_members{group=\"app \\\"eu\\\"\"} 3",
            "weir_task_group_rebalances_total{group=\"app \\\"eu\\\"\"} 4",
            "weir_task_group_warmups{group=\"app \\\"eu\\\"\"} 2",
            "weir_task_group_tasks{group=\"app \\\"eu\\\"\",role=\"revoking\"} 1",
            "weir_task_group_state{group=\"app \\\"eu\\\"\",state=\"Reconciling\"} 1",
            "# TYPE weir_task_group_rebalances_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(task_group_metrics(&[]).is_empty());
    }
}
