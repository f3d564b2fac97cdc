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
    let body = state.metrics.render(&state);
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
