//! The controller listener (port 9093 by default): Raft RPCs between quorum
//! members and requests from brokers to the active controller, over TCP.
//!
//! Each message is one [`frame`](crate::frame): a 4-byte big-endian length
//! and a `serde_json` body. Not tonic/gRPC: openraft's messages are already
//! serde types, so gRPC would only wrap the same serde bytes in protobuf
//! `bytes` fields and add a code generator and an HTTP/2 stack for nothing.
//!
//! One request is in flight per connection (request, then response). A
//! caller that needs a connection while the pooled ones are busy dials
//! another, so a slow AppendEntries (or snapshot chunk) never holds up a
//! Vote to the same peer; a few idle connections per peer are kept for reuse.
//! A connection that fails or times out is dropped, and the next call dials
//! afresh, which is how a restarted peer is reconnected.
//!
//! With [`QuorumTls`] every connection is mutual TLS: the listener asks each
//! peer for a certificate from the cluster's CA and closes connections
//! that present none (a plaintext client gets nowhere), and callers
//! present theirs and verify the listener's.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::frame::{self, DEFAULT_MAX_FRAME, FrameError};
use crate::network::{RpcFailure, Transport};
use crate::raft::{MetadataQuorum, NodeId, QuorumNode, TypeConfig};
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};
use crate::service::{ControllerHandle, not_controller};

/// Timing and limits of the controller listener's connections.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// How long dialing a peer may take. Short: a dead peer must not hold a
    /// vote or a redirect for long.
    pub connect_timeout: Duration,
    /// How long one request may take, dialing included, before the peer
    /// counts as unreachable.
    pub request_timeout: Duration,
    /// Largest frame body accepted or sent.
    pub max_frame: usize,
    /// Idle connections kept per peer.
    pub max_idle_per_peer: usize,
    /// Mutual TLS on every connection; `None`: plain TCP.
    pub tls: Option<QuorumTls>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            max_frame: DEFAULT_MAX_FRAME,
            max_idle_per_peer: 4,
            tls: None,
        }
    }
}

/// Mutual TLS for the quorum port: how the listener accepts (asking for
/// and verifying a client certificate) and how callers connect (with
/// theirs). The acceptor is asked for per connection, so a certificate
/// reloaded from disk is served to the next peer.
#[derive(Clone)]
pub struct QuorumTls {
    pub acceptor: Arc<dyn Fn() -> tokio_rustls::TlsAcceptor + Send + Sync>,
    pub connector: tokio_rustls::TlsConnector,
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls").finish_non_exhaustive()
    }
}

/// How long a peer has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to or from a peer, plain or TLS.
trait PeerStream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> PeerStream for S {}
type Stream = Box<dyn PeerStream>;

/// The name a peer's certificate is checked against: the host dialled.
fn server_name(addr: &str) -> std::io::Result<rustls::pki_types::ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{host:?} cannot be checked against a certificate: {e}"),
        )
    })
}

/// A message to a controller listener.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    Controller(ControllerRequest),
}

/// The answer to a [`Request`], or `Refused` when the request frame was
/// unacceptable (too large, malformed); the listener then closes the connection.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Controller(Result<ControllerResponse, ControllerError>),
    Refused(String),
}

/// Why a call over the controller listener failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// Our own request could not be framed (e.g. over the size limit).
    #[error("request not sent: {0}")]
    NotSent(FrameError),
    #[error("{addr} refused the request: {reason}")]
    Refused { addr: String, reason: String },
    #[error("{addr} answered with an unexpected response: {reason}")]
    Protocol { addr: String, reason: String },
}

/// Outgoing connections, pooled per peer address.
#[derive(Clone)]
pub(crate) struct Connections {
    config: TcpConfig,
    idle: Arc<Mutex<HashMap<String, Vec<Stream>>>>,
}

impl Connections {
    pub(crate) fn new(config: TcpConfig) -> Self {
        Self {
            config,
            idle: Arc::default(),
        }
    }

    pub(crate) fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Sends `req` to `addr` and waits for its response, within `timeout`.
    pub(crate) async fn call(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let frame = frame::encode(req, self.config.max_frame).map_err(CallError::NotSent)?;
        let response = match tokio::time::timeout(timeout, self.exchange(addr, &frame)).await {
            // The connection in use is dropped with the future: a late
            // response must not be read as the answer to a later request.
            Err(_) => {
                return Err(CallError::Unreachable {
                    addr: addr.to_owned(),
                    reason: format!("no response within {timeout:?}"),
                });
            }
            Ok(r) => r,
        };
        match response {
            Ok(Response::Refused(reason)) => Err(CallError::Refused {
                addr: addr.to_owned(),
                reason,
            }),
            Ok(r) => Ok(r),
            Err(FrameError::Malformed(e)) => Err(CallError::Protocol {
                addr: addr.to_owned(),
                reason: e.to_string(),
            }),
            Err(e) => Err(CallError::Unreachable {
                addr: addr.to_owned(),
                reason: e.to_string(),
            }),
        }
    }

    async fn exchange(&self, addr: &str, frame: &[u8]) -> Result<Response, FrameError> {
        if let Some(mut stream) = self.take_idle(addr) {
            match round_trip(&mut stream, frame, self.config.max_frame).await {
                Ok(r) => {
                    self.put_idle(addr, stream);
                    return Ok(r);
                }
                // The peer may have closed an idle connection (it restarted):
                // try once more on a fresh one.
                Err(FrameError::Closed | FrameError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut stream = tokio::time::timeout(self.config.connect_timeout, self.dial(addr))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let response = round_trip(&mut stream, frame, self.config.max_frame).await?;
        self.put_idle(addr, stream);
        Ok(response)
    }

    /// A new connection to `addr`, through the TLS handshake when the
    /// quorum port is secured.
    async fn dial(&self, addr: &str) -> std::io::Result<Stream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        match &self.config.tls {
            None => Ok(Box::new(stream)),
            Some(tls) => {
                let tls = tls.connector.connect(server_name(addr)?, stream).await?;
                Ok(Box::new(tls))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Stream>>> {
        // A pool of sockets stays usable even if a holder panicked.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn take_idle(&self, addr: &str) -> Option<Stream> {
        self.lock().get_mut(addr).and_then(Vec::pop)
    }

    fn put_idle(&self, addr: &str, stream: Stream) {
        let mut idle = self.lock();
        let streams = idle.entry(addr.to_owned()).or_default();
        if streams.len() < self.config.max_idle_per_peer {
            streams.push(stream);
        }
    }
}

async fn round_trip(
    stream: &mut Stream,
    frame: &[u8],
    limit: usize,
) -> Result<Response, FrameError> {
    use tokio::io::AsyncWriteExt;
    stream.write_all(frame).await?;
    frame::read_frame(stream, limit).await
}

/// The [`Transport`] of a real cluster: Raft RPCs to each peer's controller
/// listener at `QuorumNode.addr`. Failures and timeouts are reported as
/// [`RpcFailure::Unreachable`], so openraft backs off and retries.
#[derive(Clone)]
pub struct TcpTransport {
    connections: Connections,
}

impl TcpTransport {
    pub fn new(config: TcpConfig) -> Self {
        Self {
            connections: Connections::new(config),
        }
    }

    async fn rpc<R, E>(
        &self,
        node: &QuorumNode,
        req: Request,
        answer: fn(Response) -> Option<Result<R, E>>,
    ) -> Result<R, RpcFailure<E>> {
        let timeout = self.connections.config().request_timeout;
        let response = self
            .connections
            .call(&node.addr, &req, timeout)
            .await
            .map_err(|e| RpcFailure::Unreachable(e.to_string()))?;
        let unexpected = format!("{}: unexpected response {response:?}", node.addr);
        answer(response)
            .ok_or(RpcFailure::Unreachable(unexpected))?
            .map_err(RpcFailure::Remote)
    }
}

impl Transport for TcpTransport {
    async fn append_entries(
        &self,
        _target: NodeId,
        node: &QuorumNode,
        req: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcFailure<RaftError<NodeId>>> {
        self.rpc(node, Request::AppendEntries(req), |r| match r {
            Response::AppendEntries(r) => Some(r),
            _ => None,
        })
        .await
    }

    async fn vote(
        &self,
        _target: NodeId,
        node: &QuorumNode,
        req: VoteRequest<NodeId>,
    ) -> Result<VoteResponse<NodeId>, RpcFailure<RaftError<NodeId>>> {
        self.rpc(node, Request::Vote(req), |r| match r {
            Response::Vote(r) => Some(r),
            _ => None,
        })
        .await
    }

    async fn install_snapshot(
        &self,
        _target: NodeId,
        node: &QuorumNode,
        req: InstallSnapshotRequest<TypeConfig>,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcFailure<RaftError<NodeId, InstallSnapshotError>>>
    {
        self.rpc(node, Request::InstallSnapshot(req), |r| match r {
            Response::InstallSnapshot(r) => Some(r),
            _ => None,
        })
        .await
    }
}

/// What a listener does with a request.
pub(crate) trait Dispatch: Clone + Send + Sync + 'static {
    fn dispatch(&self, req: Request) -> impl Future<Output = Response> + Send;
}

/// Raft RPCs to the local member; controller requests to the local
/// controller service, or, where none runs (a learner), a redirect.
#[derive(Clone)]
struct NodeDispatch {
    quorum: Arc<MetadataQuorum>,
    controller: Option<ControllerHandle>,
}

impl Dispatch for NodeDispatch {
    async fn dispatch(&self, req: Request) -> Response {
        let raft = self.quorum.raft();
        match req {
            Request::AppendEntries(r) => Response::AppendEntries(raft.append_entries(r).await),
            Request::Vote(r) => Response::Vote(raft.vote(r).await),
            Request::InstallSnapshot(r) => {
                Response::InstallSnapshot(raft.install_snapshot(r).await)
            }
            Request::Controller(r) => Response::Controller(match &self.controller {
                Some(c) => c.call(r).await,
                None => Err(not_controller(&self.quorum)),
            }),
        }
    }
}

/// Serves the controller listener until `shutdown` turns true (or its
/// sender is dropped): Raft RPCs go to `quorum`, controller requests to
/// `controller` (or are redirected to the active controller when `None`).
/// On shutdown every open connection is closed, so peers see this node gone.
pub async fn serve(
    listener: TcpListener,
    quorum: Arc<MetadataQuorum>,
    controller: Option<ControllerHandle>,
    config: &TcpConfig,
    shutdown: watch::Receiver<bool>,
) {
    let dispatch = NodeDispatch { quorum, controller };
    serve_with(listener, dispatch, config.clone(), shutdown).await;
}

pub(crate) async fn serve_with<D: Dispatch>(
    listener: TcpListener,
    dispatch: D,
    config: TcpConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_frame = config.max_frame;
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = crate::signal::stop_requested(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, "set_nodelay: {e}");
                    }
                    let tls = config.tls.as_ref().map(|t| (t.acceptor)());
                    connections.spawn(accept(stream, tls, dispatch.clone(), max_frame));
                }
                Err(e) => {
                    // E.g. out of file descriptors: pause rather than spin.
                    tracing::warn!("controller listener accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

/// Serves one accepted connection, after the TLS handshake when the port
/// is secured (a peer without a trusted certificate is closed unanswered).
async fn accept<D: Dispatch>(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    dispatch: D,
    max_frame: usize,
) {
    let peer = stream.peer_addr().ok();
    let Some(tls) = tls else {
        return serve_connection(Box::new(stream), peer, dispatch, max_frame).await;
    };
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
        Ok(Ok(stream)) => serve_connection(Box::new(stream), peer, dispatch, max_frame).await,
        Ok(Err(e)) => tracing::warn!(?peer, "refusing a quorum connection: TLS: {e}"),
        Err(_) => tracing::debug!(?peer, "quorum TLS handshake timed out"),
    }
}

async fn serve_connection<D: Dispatch>(
    mut stream: Stream,
    peer: Option<std::net::SocketAddr>,
    dispatch: D,
    max_frame: usize,
) {
    loop {
        let req: Request = match frame::read_frame(&mut stream, max_frame).await {
            Ok(req) => req,
            Err(FrameError::Closed) => return,
            Err(e @ (FrameError::TooLarge { .. } | FrameError::Malformed(_))) => {
                // Only this connection goes: its byte stream can no longer be
                // trusted to be at a frame boundary.
                tracing::warn!(?peer, "closing controller connection: {e}");
                refuse(&mut stream, &e, max_frame).await;
                return;
            }
            Err(e) => {
                tracing::debug!(?peer, "controller connection failed: {e}");
                return;
            }
        };
        let response = dispatch.dispatch(req).await;
        match frame::write_frame(&mut stream, &response, max_frame).await {
            Ok(()) => {}
            Err(e @ FrameError::TooLarge { .. }) => {
                tracing::warn!(?peer, "response not sent: {e}");
                refuse(&mut stream, &e, max_frame).await;
                return;
            }
            Err(e) => {
                tracing::debug!(?peer, "controller connection failed: {e}");
                return;
            }
        }
    }
}

/// Tells the peer why its connection is being closed, if it still listens.
async fn refuse(stream: &mut Stream, why: &FrameError, max_frame: usize) {
    let _ = frame::write_frame(stream, &Response::Refused(why.to_string()), max_frame).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    /// Answers every controller request with `AlterConfigs`, except a
    /// `DeleteTopics` naming "slow", which waits until released.
    #[derive(Clone, Default)]
    struct TestDispatch {
        release: Arc<Notify>,
    }

    impl Dispatch for TestDispatch {
        async fn dispatch(&self, req: Request) -> Response {
            if let Request::Controller(ControllerRequest::DeleteTopics { names }) = &req
                && names.iter().any(|n| n == "slow")
            {
                self.release.notified().await;
            }
            Response::Controller(Ok(ControllerResponse::AlterConfigs))
        }
    }

    async fn start(max_frame: usize) -> (String, TestDispatch, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let dispatch = TestDispatch::default();
        let (stop, stopped) = watch::channel(false);
        let config = TcpConfig {
            max_frame,
            ..TcpConfig::default()
        };
        tokio::spawn(serve_with(listener, dispatch.clone(), config, stopped));
        (addr, dispatch, stop)
    }

    fn request(name: &str) -> Request {
        Request::Controller(ControllerRequest::DeleteTopics {
            names: vec![name.to_owned()],
        })
    }

    fn connections(max_frame: usize) -> Connections {
        Connections::new(TcpConfig {
            max_frame,
            ..TcpConfig::default()
        })
    }

    async fn call_ok(c: &Connections, addr: &str, name: &str) {
        let r = c
            .call(addr, &request(name), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(
            matches!(
                r,
                Response::Controller(Ok(ControllerResponse::AlterConfigs))
            ),
            "{r:?}"
        );
    }

    /// Reads what the listener sends before closing: one frame, then EOF.
    async fn refusal_then_eof(raw: &mut TcpStream) -> String {
        let response: Response = frame::read_frame(raw, DEFAULT_MAX_FRAME).await.unwrap();
        let mut rest = Vec::new();
        let n = raw.read_to_end(&mut rest).await.unwrap();
        assert_eq!(n, 0, "connection left open");
        match response {
            Response::Refused(why) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_malformed_frame_closes_only_its_connection() {
        let (addr, _, _stop) = start(DEFAULT_MAX_FRAME).await;
        let pool = connections(DEFAULT_MAX_FRAME);
        call_ok(&pool, &addr, "before").await;
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&[0, 0, 0, 5, b'{', b'"', b'x', b'"', b'}'])
            .await
            .unwrap();
        let why = refusal_then_eof(&mut raw).await;
        assert!(why.contains("malformed"), "{why}");
        // The pooled connection opened before still works, as do new ones.
        call_ok(&pool, &addr, "after").await;
        call_ok(&connections(DEFAULT_MAX_FRAME), &addr, "fresh").await;
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused_naming_the_limit() {
        let (addr, _, _stop) = start(1024).await;
        let mut raw = TcpStream::connect(&addr).await.unwrap();
        raw.write_all(&1025u32.to_be_bytes()).await.unwrap();
        let why = refusal_then_eof(&mut raw).await;
        assert!(why.contains("limit of 1024 bytes"), "{why}");
        // A sender with the same limit refuses before sending.
        let big = request(&"x".repeat(2000));
        let err = connections(1024)
            .call(&addr, &big, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(
            matches!(
                &err,
                CallError::NotSent(FrameError::TooLarge { limit: 1024, .. })
            ),
            "{err}"
        );
        // The listener still serves others.
        call_ok(&connections(1024), &addr, "small").await;
    }

    #[tokio::test]
    async fn a_slow_call_does_not_block_another_to_the_same_peer() {
        let (addr, dispatch, _stop) = start(DEFAULT_MAX_FRAME).await;
        let pool = connections(DEFAULT_MAX_FRAME);
        call_ok(&pool, &addr, "warm-up").await;
        let slow = {
            let (pool, addr) = (pool.clone(), addr.clone());
            tokio::spawn(async move { call_ok(&pool, &addr, "slow").await })
        };
        // Completes while the slow call still holds its connection.
        call_ok(&pool, &addr, "fast").await;
        assert!(!slow.is_finished());
        dispatch.release.notify_one();
        slow.await.unwrap();
    }

    #[tokio::test]
    async fn unreachable_peers_and_timeouts_are_reported_and_shutdown_closes_connections() {
        let (addr, _, stop) = start(DEFAULT_MAX_FRAME).await;
        let pool = connections(DEFAULT_MAX_FRAME);
        let err = pool
            .call(&addr, &request("slow"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::Unreachable { .. }), "{err}");
        call_ok(&pool, &addr, "ok").await;
        stop.send(true).unwrap();
        // Pooled and new connections alike now fail.
        let mut failed = false;
        for _ in 0..50 {
            if pool
                .call(&addr, &request("x"), Duration::from_secs(1))
                .await
                .is_err()
            {
                failed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(failed, "listener still answering after shutdown");
    }
}
