//! How Raft messages travel between quorum members.
//!
//! [`Transport`] is the boundary: three calls carrying openraft's request and
//! response types to a peer. [`Network`] adapts any transport to openraft's
//! `RaftNetworkFactory`/`RaftNetwork`. [`Router`] is the in-process transport
//! for tests, able to cut nodes off; [`crate::tcp::TcpTransport`] carries the
//! same calls over the controller listener (port 9093).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use openraft::Raft;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};

use crate::raft::{NodeId, QuorumNode, TypeConfig};

/// Why a call to a peer failed.
#[derive(Debug)]
pub enum RpcFailure<E> {
    /// The peer could not be reached; openraft backs off and retries.
    Unreachable(String),
    /// The peer answered with an error.
    Remote(E),
}

/// Carries Raft RPCs to peers. Implementations must not block.
pub trait Transport: Clone + Send + Sync + 'static {
    fn append_entries(
        &self,
        target: NodeId,
        node: &QuorumNode,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = Result<AppendEntriesResponse<NodeId>, RpcFailure<RaftError<NodeId>>>> + Send;

    fn vote(
        &self,
        target: NodeId,
        node: &QuorumNode,
        req: VoteRequest<NodeId>,
    ) -> impl Future<Output = Result<VoteResponse<NodeId>, RpcFailure<RaftError<NodeId>>>> + Send;

    fn install_snapshot(
        &self,
        target: NodeId,
        node: &QuorumNode,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> impl Future<
        Output = Result<
            InstallSnapshotResponse<NodeId>,
            RpcFailure<RaftError<NodeId, InstallSnapshotError>>,
        >,
    > + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TransportError(String);

fn to_rpc_error<E: std::error::Error>(
    target: NodeId,
    failure: RpcFailure<E>,
) -> RPCError<NodeId, QuorumNode, E> {
    match failure {
        RpcFailure::Unreachable(why) => {
            RPCError::Unreachable(Unreachable::new(&TransportError(why)))
        }
        RpcFailure::Remote(e) => RPCError::RemoteError(RemoteError::new(target, e)),
    }
}

/// openraft's network over a [`Transport`].
#[derive(Clone)]
pub struct Network<T> {
    transport: T,
}

impl<T: Transport> Network<T> {
    pub fn new(transport: T) -> Self {
        Self { transport }
    }
}

/// A connection to one peer.
pub struct PeerClient<T> {
    transport: T,
    target: NodeId,
    node: QuorumNode,
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = PeerClient<T>;

    async fn new_client(&mut self, target: NodeId, node: &QuorumNode) -> Self::Network {
        PeerClient {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
        }
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for PeerClient<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>>
    {
        self.transport
            .append_entries(self.target, &self.node, rpc)
            .await
            .map_err(|f| to_rpc_error(self.target, f))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, QuorumNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.transport
            .install_snapshot(self.target, &self.node, rpc)
            .await
            .map_err(|f| to_rpc_error(self.target, f))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, QuorumNode, RaftError<NodeId>>> {
        self.transport
            .vote(self.target, &self.node, rpc)
            .await
            .map_err(|f| to_rpc_error(self.target, f))
    }
}

#[derive(Default)]
struct RouterInner {
    nodes: BTreeMap<NodeId, Raft<TypeConfig>>,
    /// Nodes cut off from every other node (both directions).
    isolated: BTreeSet<NodeId>,
}

/// An in-process transport: calls the target's `Raft` directly.
#[derive(Clone, Default)]
pub struct Router {
    inner: Arc<Mutex<RouterInner>>,
}

impl Router {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `raft` reachable as `id` (replacing a previous one, e.g. on restart).
    pub fn register(&self, id: NodeId, raft: Raft<TypeConfig>) {
        self.lock().nodes.insert(id, raft);
    }

    pub fn unregister(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// Cuts `id` off from all other nodes until [`Router::heal`].
    pub fn isolate(&self, id: NodeId) {
        self.lock().isolated.insert(id);
    }

    pub fn heal(&self) {
        self.lock().isolated.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouterInner> {
        // The guarded maps stay consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The target's `Raft`, if the path from `from` to it is up.
    fn route(&self, from: NodeId, target: NodeId) -> Result<Raft<TypeConfig>, String> {
        let inner = self.lock();
        if inner.isolated.contains(&from) || inner.isolated.contains(&target) {
            return Err(format!("{from} -> {target}: partitioned"));
        }
        inner
            .nodes
            .get(&target)
            .cloned()
            .ok_or_else(|| format!("node {target} is down"))
    }

    /// The transport node `from` uses: the router plus who is sending.
    pub fn for_node(&self, from: NodeId) -> RouterTransport {
        RouterTransport {
            router: self.clone(),
            from,
        }
    }
}

/// [`Router`] as seen by one sending node.
#[derive(Clone)]
pub struct RouterTransport {
    router: Router,
    from: NodeId,
}

impl Transport for RouterTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        _node: &QuorumNode,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcFailure<RaftError<NodeId>>> {
        let raft = self
            .router
            .route(self.from, target)
            .map_err(RpcFailure::Unreachable)?;
        raft.append_entries(req).await.map_err(RpcFailure::Remote)
    }

    async fn vote(
        &self,
        target: NodeId,
        _node: &QuorumNode,
        req: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, RpcFailure<RaftError<NodeId>>> {
        let raft = self
            .router
            .route(self.from, target)
            .map_err(RpcFailure::Unreachable)?;
        raft.vote(req).await.map_err(RpcFailure::Remote)
    }

    async fn install_snapshot(
        &self,
        target: NodeId,
        _node: &QuorumNode,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcFailure<RaftError<NodeId, InstallSnapshotError>>>
    {
        let raft = self
            .router
            .route(self.from, target)
            .map_err(RpcFailure::Unreachable)?;
        raft.install_snapshot(req).await.map_err(RpcFailure::Remote)
    }
}
