//! Consumer groups of KIP-848 (`group.protocol=consumer`): the coordinator
//! computes the assignment; the member heartbeats (ConsumerGroupHeartbeat)
//! and reconciles. A heartbeat task carries the member's state to the
//! coordinator and brings back the target assignment; the polling side
//! takes it up — revokes first (commit, callback), then assigns — and
//! reports what it owns on the next heartbeat, which is the coordinator's
//! signal that the revoked partitions may go to other members.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{Consumer, Membership, Position, Tp, lock};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::util::{millis_i32, sb};

/// Newest ConsumerGroupHeartbeat spoken: v1 has the member id chosen by
/// the client (KIP-1082).
const HEARTBEAT_MAX_VERSION: i16 = 1;
/// Member epoch of a leave (a static member's is -2).
const LEAVE_EPOCH: i32 = -1;

/// An assignment as the coordinator speaks it: partitions per topic id.
pub(super) type IdAssignment = Vec<(Uuid, Vec<i32>)>;

/// KIP-848 state shared by the heartbeat task and the polling side.
#[derive(Default)]
pub(super) struct Reconciliation {
    /// The assignment last received, not yet taken up by the polling side.
    pub target: Option<IdAssignment>,
    /// What the polling side owns (after its last reconciliation).
    pub owned: IdAssignment,
    /// `owned` changed: report it on the next heartbeat.
    pub owned_changed: bool,
    /// Send the whole member state (subscription, assignor, owned) on the
    /// next heartbeat: after joining, a coordinator change or an error.
    pub send_full: bool,
    /// An error the application must see (an unknown assignor, a full
    /// group…); the heartbeat task has stopped.
    pub fatal: Option<Error>,
}

struct Settings {
    group: String,
    subscription: Vec<String>,
    assignor: Option<String>,
    rebalance_timeout: Duration,
}

impl Consumer {
    /// Starts the heartbeat task if it is not running; a new subscription
    /// is sent in full.
    pub(super) fn ensure_kip848_heartbeat(&mut self, group: &str) {
        // A new subscription: the task restarts with it (same member, same
        // epoch) and sends it in full.
        if std::mem::take(&mut lock(&self.membership).rejoin)
            && let Some(h) = self.heartbeat.take()
        {
            h.abort();
        }
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        {
            let mut m = lock(&self.membership);
            if m.kip848.fatal.is_some() {
                return;
            }
            if m.member_id.is_empty() {
                m.member_id = Uuid::new_v4().to_string();
            }
            m.generation = m.generation.max(0);
            m.kip848.send_full = true;
        }
        let settings = Settings {
            group: group.to_string(),
            subscription: self.subscription.clone(),
            assignor: self.config.group_remote_assignor.clone(),
            rebalance_timeout: self.config.rebalance_timeout,
        };
        self.heartbeat = Some(tokio::spawn(heartbeat_loop(
            self.cluster.clone(),
            self.membership.clone(),
            self.wake.clone(),
            settings,
        )));
    }

    /// Takes up what the heartbeat brought: a lost membership, a new target
    /// assignment. Revokes before it assigns, then has the heartbeat report
    /// the partitions owned now.
    pub(super) async fn reconcile_kip848(&mut self) -> Result<()> {
        let (lost, target, fatal) = {
            let mut m = lock(&self.membership);
            (
                std::mem::take(&mut m.lost),
                m.kip848.target.take(),
                m.kip848.fatal.take(),
            )
        };
        if let Some(e) = fatal {
            return Err(e);
        }
        if lost {
            let owned: Vec<Tp> = self.positions.keys().cloned().collect();
            self.positions.clear();
            self.forget_unassigned();
            if !owned.is_empty() {
                self.listener.on_partitions_lost(&owned);
            }
        }
        let Some(target) = target else {
            return Ok(());
        };
        let wanted = match self.resolve_names(&target).await {
            Some(w) => w,
            None => {
                // A topic we have no metadata for yet: try again next poll,
                // unless a newer assignment has arrived meanwhile.
                lock(&self.membership).kip848.target.get_or_insert(target);
                return Ok(());
            }
        };
        let owned: BTreeSet<Tp> = self.positions.keys().cloned().collect();
        let revoked: Vec<Tp> = owned.difference(&wanted).cloned().collect();
        let added: Vec<Tp> = wanted.difference(&owned).cloned().collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit && self.dirty {
                // Hand over where we got to before the partitions move.
                if let Err(e) = self.commit().await {
                    tracing::debug!(error = %e, "commit before revocation failed");
                }
            }
            self.listener.on_partitions_revoked(&revoked);
            for tp in &revoked {
                self.positions.remove(tp);
            }
            self.forget_unassigned();
        }
        for tp in &added {
            self.positions.insert(tp.clone(), Position::Committed);
        }
        if !added.is_empty() {
            self.listener.on_partitions_assigned(&added);
        }
        {
            let mut m = lock(&self.membership);
            m.kip848.owned = target;
            m.kip848.owned_changed = true;
        }
        self.wake.notify_one();
        Ok(())
    }

    /// Topic names of an assignment, refreshing metadata once for ids not
    /// known yet; None while some stay unknown.
    async fn resolve_names(&self, target: &IdAssignment) -> Option<BTreeSet<Tp>> {
        for attempt in 0..2 {
            let mut out = BTreeSet::new();
            let mut missing = false;
            for (id, partitions) in target {
                match self.cluster.topic_name(id) {
                    Some(name) => out.extend(partitions.iter().map(|p| (name.clone(), *p))),
                    None => missing = true,
                }
            }
            if !missing {
                return Some(out);
            }
            if attempt == 0
                && let Err(e) = self.cluster.refresh(Some(&self.subscription)).await
            {
                tracing::debug!(error = %e, "metadata refresh for an assignment failed");
            }
        }
        None
    }

    /// Leaves the group with a heartbeat of epoch -1 (on close).
    pub(super) async fn leave_kip848(&mut self, group: &str) {
        let (member_id, epoch, conn) = {
            let m = lock(&self.membership);
            (m.member_id.clone(), m.generation, m.coordinator.clone())
        };
        let Some(conn) = conn.filter(|_| epoch > 0 && !member_id.is_empty()) else {
            return;
        };
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(&member_id))
            .with_member_epoch(LEAVE_EPOCH);
        let sent = match conn.capped_version::<ConsumerGroupHeartbeatRequest>(HEARTBEAT_MAX_VERSION)
        {
            Ok(v) => conn
                .send_version(&req, v, self.cluster.config().request_timeout)
                .await
                .map(|r| r.error_code),
            Err(e) => Err(e),
        };
        match sent {
            Ok(0) => {}
            Ok(code) => tracing::debug!(code, "leaving the group failed"),
            Err(e) => tracing::debug!(error = %e, "leaving the group failed"),
        }
    }
}

/// Heartbeats until aborted (close) or a fatal error.
async fn heartbeat_loop(
    cluster: Arc<Cluster>,
    membership: Arc<Mutex<Membership>>,
    wake: Arc<Notify>,
    settings: Settings,
) {
    let mut interval = Duration::from_secs(3);
    let mut backoff = Duration::from_millis(100);
    // The first heartbeat joins at once.
    let mut due = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(due) => {}
            _ = wake.notified() => {}
        }
        match heartbeat_once(&cluster, &membership, &settings).await {
            Ok(next) => {
                interval = next.unwrap_or(interval);
                backoff = Duration::from_millis(100);
                due = interval;
            }
            Err(Retry::Soon) => {
                due = backoff;
                backoff = (backoff * 2).min(interval);
            }
            Err(Retry::Never(e)) => {
                tracing::warn!(error = %e, group = %settings.group, "leaving the group: heartbeat refused");
                lock(&membership).kip848.fatal = Some(e);
                return;
            }
        }
    }
}

enum Retry {
    Soon,
    Never(Error),
}

/// One heartbeat; the interval the coordinator asks for.
async fn heartbeat_once(
    cluster: &Cluster,
    membership: &Mutex<Membership>,
    settings: &Settings,
) -> std::result::Result<Option<Duration>, Retry> {
    let known = lock(membership)
        .coordinator
        .clone()
        .filter(|c| c.is_alive());
    let conn = match known {
        Some(c) => c,
        None => match cluster.coordinator(&settings.group, 0).await {
            Ok((_, c)) => {
                let mut m = lock(membership);
                m.coordinator = Some(c.clone());
                m.kip848.send_full = true;
                c
            }
            Err(e) => {
                tracing::debug!(error = %e, "finding the group coordinator failed");
                return Err(Retry::Soon);
            }
        },
    };
    let (req, sent_owned) = {
        let m = lock(membership);
        let full = m.kip848.send_full || m.generation == 0;
        let mut req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&settings.group)))
            .with_member_id(sb(&m.member_id))
            .with_member_epoch(m.generation)
            .with_rebalance_timeout_ms(millis_i32(settings.rebalance_timeout));
        if full {
            req.subscribed_topic_names = Some(
                settings
                    .subscription
                    .iter()
                    .map(|t| TopicName(sb(t)))
                    .collect(),
            );
            req.server_assignor = settings.assignor.as_deref().map(sb);
        }
        let sent_owned = full || m.kip848.owned_changed;
        if sent_owned {
            req.topic_partitions = Some(
                m.kip848
                    .owned
                    .iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_partitions(ps.clone())
                    })
                    .collect(),
            );
        }
        (req, sent_owned)
    };
    let version = conn
        .capped_version::<ConsumerGroupHeartbeatRequest>(HEARTBEAT_MAX_VERSION)
        .map_err(Retry::Never)?;
    let resp = match conn
        .send_version(&req, version, cluster.config().request_timeout)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "heartbeat failed");
            lock(membership).coordinator = None;
            return Err(Retry::Soon);
        }
    };
    let mut m = lock(membership);
    match ResponseError::try_from_code(resp.error_code) {
        None => {
            if let Some(id) = resp.member_id.filter(|id| !id.is_empty()) {
                m.member_id = id.to_string();
            }
            m.generation = resp.member_epoch;
            m.kip848.send_full = false;
            if sent_owned {
                m.kip848.owned_changed = false;
            }
            if let Some(a) = resp.assignment {
                m.kip848.target = Some(
                    a.topic_partitions
                        .into_iter()
                        .map(|t| (t.topic_id, t.partitions))
                        .collect(),
                );
            }
            Ok((resp.heartbeat_interval_ms > 0)
                .then(|| Duration::from_millis(resp.heartbeat_interval_ms as u64)))
        }
        Some(ResponseError::FencedMemberEpoch | ResponseError::UnknownMemberId) => {
            // Our partitions may be someone else's already: the polling
            // side gives them up as lost, and we join again from epoch 0.
            tracing::info!(group = %settings.group, code = resp.error_code, "member fenced; rejoining");
            m.generation = 0;
            m.lost = true;
            m.kip848.target = None;
            m.kip848.owned.clear();
            m.kip848.send_full = true;
            Err(Retry::Soon)
        }
        Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
            m.coordinator = None;
            Err(Retry::Soon)
        }
        Some(ResponseError::CoordinatorLoadInProgress) => Err(Retry::Soon),
        Some(_) => Err(Retry::Never(Error::kafka(
            resp.error_code,
            resp.error_message.map(|s: StrBytes| s.to_string()),
            format!("heartbeat of group {:?}", settings.group),
        ))),
    }
}
