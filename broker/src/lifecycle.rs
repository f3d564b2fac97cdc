//! The broker's membership in the cluster: register with the active
//! controller, heartbeat so it is not fenced, become ready once unfenced,
//! and at shutdown hand leaderships away before stopping (KRaft's
//! controlled shutdown).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;
use weir_quorum::records::Endpoint;
use weir_quorum::rpc::{ControllerError, ControllerRequest, ControllerResponse};

use crate::broker::BrokerState;

/// How long one controller request may take before it is retried.
const REQUEST_DEADLINE: Duration = Duration::from_secs(3);
/// How long a controlled shutdown waits for the controller to move
/// leaderships away before stopping anyway (Kafka retries for about 30 s;
/// a pod has 30 s of grace in all).
const CONTROLLED_SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);

/// Registers, then heartbeats until shutdown; re-registers when the
/// controller no longer knows this incarnation (e.g. after it fenced us).
pub async fn run(
    state: Arc<BrokerState>,
    quorum_addr: Option<SocketAddr>,
    mut shutdown: watch::Receiver<bool>,
) {
    let incarnation = Uuid::new_v4();
    let interval = state.config.heartbeat_interval();
    'register: loop {
        let epoch = loop {
            match register(&state, incarnation, quorum_addr).await {
                Ok(epoch) => break epoch,
                Err(e) => {
                    warn!(error = %e, "registering with the controller failed; retrying");
                    if sleep_or_stop(&mut shutdown, interval).await {
                        return;
                    }
                }
            }
        };
        state.cluster.set_broker_epoch(epoch);
        info!(epoch, "registered with the controller");
        loop {
            let request = ControllerRequest::BrokerHeartbeat {
                node_id: state.config.node_id,
                broker_epoch: epoch,
                applied_index: state.cluster.quorum().applied_index(),
                want_fence: false,
                want_shutdown: false,
            };
            match state
                .cluster
                .controller()
                .send(request, tokio::time::Instant::now() + REQUEST_DEADLINE)
                .await
            {
                Ok(ControllerResponse::BrokerHeartbeat { is_fenced, .. }) => {
                    let was = state.is_admitted();
                    if !is_fenced && !was {
                        info!("admitted by the controller");
                    } else if is_fenced && was {
                        warn!("fenced by the controller");
                    }
                    state.set_admitted(!is_fenced);
                }
                Ok(other) => warn!(answer = ?other, "unexpected heartbeat answer"),
                Err(ControllerError::StaleBrokerEpoch { .. }) => {
                    warn!("the controller no longer knows this registration: registering again");
                    continue 'register;
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
            if sleep_or_stop(&mut shutdown, interval).await {
                return;
            }
        }
    }
}

async fn register(
    state: &BrokerState,
    incarnation: Uuid,
    quorum_addr: Option<SocketAddr>,
) -> Result<i64, ControllerError> {
    let (host, _) = &state.advertised;
    let quorum_addr = quorum_addr
        .map(|a| format!("{host}:{}", a.port()))
        .unwrap_or_default();
    let request = ControllerRequest::RegisterBroker {
        node_id: state.config.node_id,
        incarnation_id: incarnation,
        endpoints: state
            .endpoints
            .iter()
            .map(|(listener, host, port)| Endpoint {
                listener: listener.clone(),
                host: host.clone(),
                port: *port,
            })
            .collect(),
        rack: state.config.rack.clone(),
        quorum_addr,
    };
    match state
        .cluster
        .controller()
        .send(request, tokio::time::Instant::now() + REQUEST_DEADLINE)
        .await?
    {
        ControllerResponse::RegisterBroker { broker_epoch } => Ok(broker_epoch),
        other => Err(ControllerError::Internal(format!(
            "unexpected registration answer {other:?}"
        ))),
    }
}

/// Sleeps for `d`; true when shutdown was asked for meanwhile.
async fn sleep_or_stop(shutdown: &mut watch::Receiver<bool>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Asks the controller to move leadership off this broker and remove it
/// from every ISR, and waits until it has (or the deadline passes), so
/// clients switch to the new leaders before this broker goes away.
pub async fn controlled_shutdown(state: &BrokerState) {
    let epoch = state.cluster.broker_epoch();
    if epoch < 0 {
        return;
    }
    let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_DEADLINE;
    info!("controlled shutdown: handing over leaderships");
    while tokio::time::Instant::now() < deadline {
        let request = ControllerRequest::BrokerHeartbeat {
            node_id: state.config.node_id,
            broker_epoch: epoch,
            applied_index: state.cluster.quorum().applied_index(),
            want_fence: true,
            want_shutdown: true,
        };
        match state
            .cluster
            .controller()
            .send(request, tokio::time::Instant::now() + REQUEST_DEADLINE)
            .await
        {
            Ok(ControllerResponse::BrokerHeartbeat {
                shutdown_ready: true,
                ..
            }) => {
                info!("controlled shutdown: the controller has moved every leadership away");
                // Let this broker's image catch up, so it stops serving the
                // partitions it no longer leads before the listener closes.
                state
                    .cluster
                    .wait_applied(state.cluster.quorum().applied_index())
                    .await;
                return;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, "controlled shutdown request failed");
            }
        }
        tokio::time::sleep(state.config.heartbeat_interval()).await;
    }
    warn!("controlled shutdown did not finish in time; stopping anyway");
}
