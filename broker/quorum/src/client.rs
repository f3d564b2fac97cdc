//! Sending requests to the active controller from anywhere in the cluster.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::raft::{MetadataQuorum, NodeId, QuorumNode};
use crate::rpc::{ControllerError, ControllerRequest, ControllerResponse};
use crate::service::ControllerHandle;
use crate::tcp::{CallError, Connections, Request, Response, TcpConfig};

/// Pause before retrying after a failure without a usable redirect.
const RETRY_BACKOFF: Duration = Duration::from_millis(50);
/// Redirects followed at once before pausing, so two nodes pointing at each
/// other (a leadership change in flight) do not spin.
const IMMEDIATE_REDIRECTS: u32 = 3;

/// Finds the active controller and sends it requests. Cheap to clone.
///
/// Where to send: the leader the local quorum member knows (if built with
/// one), else the last controller that answered or was named in a redirect,
/// else each voter in turn. `NotController` redirects are followed;
/// unreachable controllers and redirects are retried with a short backoff
/// until the caller's deadline; other errors are returned at once.
#[derive(Clone)]
pub struct ControllerClient {
    inner: Arc<Inner>,
}

struct Inner {
    voters: Vec<String>,
    connections: Connections,
    local: Option<Local>,
    hint: Mutex<Option<String>>,
}

struct Local {
    quorum: Arc<MetadataQuorum>,
    /// This node's own controller service, used in process when this node
    /// is the active controller.
    controller: Option<ControllerHandle>,
}

enum Target {
    Local(ControllerHandle),
    Remote(String),
}

impl ControllerClient {
    /// A client that knows only the voters' controller listeners.
    pub fn new(voters: &BTreeMap<NodeId, QuorumNode>, tcp: TcpConfig) -> Self {
        Self::build(voters, tcp, None)
    }

    /// A client on a quorum member: it asks the member who leads, and calls
    /// `controller` in process when this member is the leader.
    pub fn with_local(
        quorum: Arc<MetadataQuorum>,
        controller: Option<ControllerHandle>,
        tcp: TcpConfig,
    ) -> Self {
        let voters = quorum.voters().clone();
        Self::build(&voters, tcp, Some(Local { quorum, controller }))
    }

    fn build(voters: &BTreeMap<NodeId, QuorumNode>, tcp: TcpConfig, local: Option<Local>) -> Self {
        Self {
            inner: Arc::new(Inner {
                voters: voters.values().map(|n| n.addr.clone()).collect(),
                connections: Connections::new(tcp),
                local,
                hint: Mutex::new(None),
            }),
        }
    }

    /// Sends `req` to the active controller, retrying as described on the
    /// type until `deadline`. Past it, answers the last retriable error.
    pub async fn send(
        &self,
        req: ControllerRequest,
        deadline: Instant,
    ) -> Result<ControllerResponse, ControllerError> {
        let mut next_voter = 0;
        let mut avoid: Option<String> = None;
        let mut redirects = 0;
        let mut last = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(last.unwrap_or_else(|| {
                    ControllerError::Unavailable(
                        "no controller answered before the deadline".into(),
                    )
                }));
            }
            let remaining = deadline - now;
            let Some(target) = self.pick(avoid.as_deref(), &mut next_voter) else {
                return Err(ControllerError::Unavailable(
                    "no controller voters are configured".into(),
                ));
            };
            let (addr, result) = match target {
                Target::Local(handle) => {
                    let call = tokio::time::timeout(remaining, handle.call(req.clone())).await;
                    let result = call.unwrap_or_else(|_| {
                        Err(ControllerError::Timeout(
                            "no answer before the deadline".into(),
                        ))
                    });
                    (None, result)
                }
                Target::Remote(addr) => {
                    let result = self.remote(&addr, &req, remaining).await;
                    (Some(addr), result)
                }
            };
            let e = match result {
                Ok(response) => {
                    self.set_hint(addr);
                    return Ok(response);
                }
                Err(e) if !e.is_retriable() => return Err(e),
                Err(e) => e,
            };
            let redirect = match &e {
                ControllerError::NotController {
                    leader_addr: Some(to),
                    ..
                } if Some(to) != addr.as_ref() => Some(to.clone()),
                _ => None,
            };
            tracing::debug!(?addr, ?redirect, "controller request not answered: {e}");
            self.set_hint(redirect.clone());
            avoid = addr;
            last = Some(e);
            if redirect.is_some() && redirects < IMMEDIATE_REDIRECTS {
                redirects += 1;
                continue;
            }
            redirects = 0;
            tokio::time::sleep(RETRY_BACKOFF.min(remaining)).await;
        }
    }

    fn pick(&self, avoid: Option<&str>, next_voter: &mut usize) -> Option<Target> {
        let usable = |addr: &String| Some(addr.as_str()) != avoid;
        if let Some(local) = &self.inner.local
            && let Some(leader) = local.quorum.leader()
        {
            match &local.controller {
                Some(handle) if leader == local.quorum.id() => {
                    return Some(Target::Local(handle.clone()));
                }
                _ => {}
            }
            if let Some(addr) = local.quorum.node_addr(leader).filter(usable) {
                return Some(Target::Remote(addr));
            }
        }
        if let Some(addr) = self.hint().filter(usable) {
            return Some(Target::Remote(addr));
        }
        let voters = &self.inner.voters;
        if voters.is_empty() {
            return None;
        }
        // Skip the one that just failed when there is another to try.
        let mut addr = &voters[*next_voter % voters.len()];
        *next_voter += 1;
        if !usable(addr) && voters.len() > 1 {
            addr = &voters[*next_voter % voters.len()];
            *next_voter += 1;
        }
        Some(Target::Remote(addr.clone()))
    }

    async fn remote(
        &self,
        addr: &str,
        req: &ControllerRequest,
        remaining: Duration,
    ) -> Result<ControllerResponse, ControllerError> {
        let timeout = self
            .inner
            .connections
            .config()
            .request_timeout
            .min(remaining);
        let request = Request::Controller(req.clone());
        match self.inner.connections.call(addr, &request, timeout).await {
            Ok(Response::Controller(result)) => result,
            Ok(other) => Err(ControllerError::Internal(format!(
                "{addr} answered a controller request with {other:?}"
            ))),
            Err(e @ CallError::Unreachable { .. }) => {
                Err(ControllerError::Unavailable(e.to_string()))
            }
            Err(e @ (CallError::NotSent(_) | CallError::Refused { .. })) => {
                Err(ControllerError::InvalidRequest(e.to_string()))
            }
            Err(e @ CallError::Protocol { .. }) => Err(ControllerError::Internal(e.to_string())),
        }
    }

    fn hint(&self) -> Option<String> {
        self.inner
            .hint
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_hint(&self, addr: Option<String>) {
        *self.inner.hint.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }
}

impl std::fmt::Debug for ControllerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerClient")
            .field("voters", &self.inner.voters)
            .field("hint", &self.hint())
            .finish()
    }
}
