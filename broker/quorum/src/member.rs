//! One node's part in the metadata quorum over TCP, wired together: the
//! Raft member, its controller listener, its controller service (voters
//! only) and a client for the active controller. This is what `weir broker`
//! starts; tests start several in one process.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::ControllerClient;
use crate::raft::{MetadataQuorum, NodeId, QuorumConfig, QuorumError, QuorumNode, Role};
use crate::service::{ControllerConfig, ControllerHandle, spawn_controller};
use crate::tcp::{TcpConfig, TcpTransport, serve};

/// Everything a member needs to know about timing and limits.
#[derive(Debug, Clone, Default)]
pub struct MemberConfig {
    pub quorum: QuorumConfig,
    pub controller: ControllerConfig,
    pub tcp: TcpConfig,
}

/// A running quorum member with its listener, service and client.
pub struct QuorumMember {
    quorum: Arc<MetadataQuorum>,
    controller: Option<ControllerHandle>,
    client: ControllerClient,
    local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// How long an active controller stays after being asked to stop.
    linger: std::time::Duration,
}

impl QuorumMember {
    /// Starts member `node_id` serving on `listener` (its controller
    /// listener, already bound so that port 0 can be used). Voters run the
    /// controller service; learners wait for the controller to add them
    /// (which registering as a broker does).
    pub async fn start(
        node_id: NodeId,
        role: Role,
        voters: BTreeMap<NodeId, QuorumNode>,
        listener: TcpListener,
        storage_dir: Option<&Path>,
        config: MemberConfig,
    ) -> Result<Self, QuorumError> {
        let local_addr = listener.local_addr()?;
        let transport = TcpTransport::new(config.tcp.clone());
        let linger = config.quorum.heartbeat_interval * 3;
        let quorum = Arc::new(
            MetadataQuorum::start_as(role, node_id, voters, storage_dir, transport, config.quorum)
                .await?,
        );
        let (shutdown, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let controller = match role {
            Role::Voter => {
                let (handle, task) =
                    spawn_controller(quorum.clone(), config.controller, stopped.clone());
                tasks.push(task);
                Some(handle)
            }
            Role::Learner => None,
        };
        let server = {
            let (quorum, controller, tcp) =
                (quorum.clone(), controller.clone(), config.tcp.clone());
            tokio::spawn(async move { serve(listener, quorum, controller, &tcp, stopped).await })
        };
        tasks.push(server);
        let client = ControllerClient::with_local(quorum.clone(), controller.clone(), config.tcp);
        Ok(Self {
            quorum,
            controller,
            client,
            local_addr,
            shutdown,
            tasks: Mutex::new(tasks),
            linger,
        })
    }

    pub fn id(&self) -> NodeId {
        self.quorum.id()
    }

    /// The Raft member: image, watch, leader, proposals.
    pub fn quorum(&self) -> &Arc<MetadataQuorum> {
        &self.quorum
    }

    /// The local controller service (voters only).
    pub fn controller(&self) -> Option<&ControllerHandle> {
        self.controller.as_ref()
    }

    /// A client for the active controller, short-circuiting to the local
    /// service when this member leads.
    pub fn client(&self) -> &ControllerClient {
        &self.client
    }

    /// Where the controller listener listens (`host:port` for `QuorumNode.addr`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops the listener (closing its connections), the controller service
    /// and the Raft member. Idempotent.
    pub async fn shutdown(&self) -> Result<(), QuorumError> {
        if self.quorum.is_controller() {
            // The others learn that our last entries (this node's own
            // fencing, in a controlled shutdown) are committed only from our
            // next AppendEntries: send a couple before going, or their
            // images keep the old state until a new controller is elected.
            tokio::time::sleep(self.linger).await;
        }
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            if let Err(e) = task.await {
                tracing::warn!(node = self.id(), "quorum member task failed: {e}");
            }
        }
        match self.quorum.shutdown().await {
            Ok(()) | Err(QuorumError::Stopped) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
