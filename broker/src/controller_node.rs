//! A dedicated controller (`weir broker --process-roles controller`, KRaft's
//! process.roles=controller): a voter of the metadata quorum that may
//! become the active controller, and nothing else — no Kafka listener, no
//! partitions. Keeping controllers apart from brokers means a broker's load
//! or restart never costs the cluster its controller.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use weir_quorum::member::QuorumMember;
use weir_quorum::raft::{MetadataQuorum, NodeId, QuorumNode, Role};

use crate::broker::{
    BrokerError, bind, bind_admin, quorum_listen_address, start_member, voters_spec,
};
use crate::config::BrokerConfig;
use crate::metadata::load_or_create_cluster_id;

/// A running dedicated controller.
pub struct ControllerNode {
    member: QuorumMember,
    cluster_id: String,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl ControllerNode {
    /// Joins the quorum named by `config.controller_quorum` as a voter,
    /// serving the quorum port and the admin HTTP port.
    pub async fn start(config: BrokerConfig) -> Result<ControllerNode, BrokerError> {
        config
            .check_roles()
            .map_err(|e| BrokerError::Invalid(e.to_string()))?;
        let roles = config.roles();
        if roles.broker || !roles.controller {
            return Err(BrokerError::Invalid(
                "a dedicated controller runs the controller role only".into(),
            ));
        }
        let admin_listener = bind_admin(&config).await?;
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let data_dir = config.data_dir.clone();
        // The same cluster id the brokers derive from the same voters.
        let cluster_id = load_or_create_cluster_id(&data_dir, Some(&voters_spec(&config)))?;
        let quorum_listener = bind(&quorum_listen_address(&config)).await?;
        let voters: BTreeMap<NodeId, QuorumNode> = config
            .controller_quorum
            .iter()
            .map(|v| (v.id as NodeId, QuorumNode::new(v.address.clone())))
            .collect();
        let member = start_member(&config, Role::Voter, voters, quorum_listener).await?;
        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if let Some(listener) = admin_listener {
            tasks.push(tokio::spawn(serve_admin(
                listener,
                Arc::clone(member.quorum()),
                stopped,
            )));
        }
        info!(
            node_id = config.node_id,
            quorum = %member.local_addr(),
            cluster_id = %cluster_id,
            "controller started"
        );
        Ok(ControllerNode {
            member,
            cluster_id,
            admin_addr,
            shutdown,
            tasks,
        })
    }

    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }

    /// Where the quorum port listens.
    pub fn quorum_addr(&self) -> SocketAddr {
        self.member.local_addr()
    }

    /// Where the admin HTTP port listens, if it was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        self.member.quorum()
    }

    /// Leaves the quorum: when this node is the active controller, the
    /// others elect a new one within an election timeout.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        if let Err(e) = self.member.shutdown().await {
            warn!(error = %e, "stopping the metadata quorum failed");
        }
        info!("controller stopped");
        Ok(())
    }
}

/// `/healthz`, `/ready` (a quorum has formed: this node knows the active
/// controller) and `/metrics`.
async fn serve_admin(
    listener: TcpListener,
    quorum: Arc<MetadataQuorum>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(quorum);
    let stop = async move {
        let _ = shutdown.changed().await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        warn!(error = %e, "admin HTTP server failed");
    }
}

async fn ready(State(quorum): State<Arc<MetadataQuorum>>) -> (StatusCode, String) {
    match quorum.leader() {
        Some(leader) => (
            StatusCode::OK,
            format!("ready\nactive_controller {leader}\n"),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no active controller yet (waiting for a quorum of voters)\n".into(),
        ),
    }
}

async fn metrics(State(quorum): State<Arc<MetadataQuorum>>) -> impl IntoResponse {
    let image = quorum.image();
    let registered = image.brokers().len() as u64;
    let live = image.live_brokers().len() as u64;
    let gauges: [(&str, &str, &str, u64); 5] = [
        (
            "weir_controller_active",
            "gauge",
            "1 when this node is the active controller.",
            u64::from(quorum.is_controller()),
        ),
        (
            "weir_controller_registered_brokers",
            "gauge",
            "Brokers registered in the metadata image.",
            registered,
        ),
        (
            "weir_controller_fenced_brokers",
            "gauge",
            "Registered brokers that are fenced (silent past their session).",
            registered.saturating_sub(live),
        ),
        (
            "weir_metadata_applied_index",
            "gauge",
            "Last metadata log index applied to this node's image.",
            quorum.applied_index(),
        ),
        (
            "weir_metadata_term",
            "gauge",
            "Current Raft term of the metadata quorum.",
            quorum.term(),
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
