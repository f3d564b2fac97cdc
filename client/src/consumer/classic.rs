//! Classic group membership: JoinGroup/SyncGroup with the assignment
//! computed here when we lead, and a heartbeat task.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{GroupId, HeartbeatRequest, JoinGroupRequest, SyncGroupRequest};
use kafka_protocol::protocol::StrBytes;

use super::records::{encode_assignment, encode_subscription};
use super::{Consumer, Position, Tp, lock};
use crate::admin::{decode_assignment, decode_subscription};
use crate::assignor::AssignmentStrategy;
use crate::error::{Error, Result};
use crate::util::{millis_i32, sb};

impl Consumer {
    /// Joins (or rejoins) the group and takes up the assignment.
    pub(super) async fn join(&mut self) -> Result<()> {
        let group = self
            .config
            .group_id
            .clone()
            .ok_or_else(|| Error::Config("subscribe needs a group id".into()))?;
        let cooperative = self.config.assignment_strategy.is_cooperative();
        // Eager protocol: every owned partition is given up before joining.
        // Cooperative: kept, and given up after the sync only if it moves.
        let owned: Vec<Tp> = self.positions.keys().cloned().collect();
        if !cooperative && !owned.is_empty() {
            if lock(&self.membership).lost {
                // Someone else may own them already: nothing to hand over.
                self.listener.on_partitions_lost(&owned);
            } else {
                if self.config.enable_auto_commit && self.dirty {
                    // Hand over where we got to before our partitions move.
                    if let Err(e) = self.commit().await {
                        tracing::debug!(error = %e, "commit before rebalance failed");
                    }
                }
                self.listener.on_partitions_revoked(&owned);
            }
        }
        let mut member_id = lock(&self.membership).member_id.clone();
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            if attempts > 50 {
                return Err(Error::Other(format!("could not join group {group:?}")));
            }
            let (_, conn) = self.cluster.coordinator(&group, 0).await?;
            lock(&self.membership).coordinator = Some(conn.clone());
            // Cooperative rebalancing only if every protocol offered is
            // cooperative (as Kafka's clients decide).
            let strategies = if cooperative {
                vec![self.config.assignment_strategy]
            } else {
                vec![
                    self.config.assignment_strategy,
                    other_strategy(self.config.assignment_strategy),
                ]
            };
            let owned: Vec<Tp> = if cooperative && !lock(&self.membership).lost {
                self.positions.keys().cloned().collect()
            } else {
                Vec::new()
            };
            let metadata = encode_subscription(&self.subscription, &owned);
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_session_timeout_ms(millis_i32(self.config.session_timeout))
                .with_rebalance_timeout_ms(millis_i32(self.config.rebalance_timeout))
                .with_member_id(sb(&member_id))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(
                    strategies
                        .iter()
                        .map(|s| {
                            JoinGroupRequestProtocol::default()
                                .with_name(StrBytes::from_static_str(s.protocol_name()))
                                .with_metadata(metadata.clone())
                        })
                        .collect(),
                );
            let timeout = self.config.rebalance_timeout + Duration::from_secs(5);
            let resp = match conn.send_timeout(&req, timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match ResponseError::try_from_code(resp.error_code) {
                None => {}
                Some(ResponseError::MemberIdRequired) => {
                    // KIP-394: the broker hands out the id, we join again with it.
                    member_id = resp.member_id.to_string();
                    continue;
                }
                Some(ResponseError::UnknownMemberId) => {
                    member_id.clear();
                    lock(&self.membership).lost = true;
                    continue;
                }
                Some(
                    ResponseError::RebalanceInProgress
                    | ResponseError::CoordinatorLoadInProgress
                    | ResponseError::CoordinatorNotAvailable
                    | ResponseError::NotCoordinator,
                ) => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                Some(_) => {
                    return Err(Error::kafka(
                        resp.error_code,
                        None,
                        format!("join group {group:?}"),
                    ));
                }
            }
            member_id = resp.member_id.to_string();
            let generation = resp.generation_id;
            let protocol = resp
                .protocol_name
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let assignments = if resp.leader == resp.member_id {
                self.lead(&protocol, &resp.members).await?
            } else {
                Vec::new()
            };
            let sync = SyncGroupRequest::default()
                .with_group_id(GroupId(sb(&group)))
                .with_generation_id(generation)
                .with_member_id(sb(&member_id))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(sb(&protocol)))
                .with_assignments(assignments);
            let sresp = match conn.send_timeout(&sync, timeout).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => continue,
                Err(e) => return Err(e),
            };
            match ResponseError::try_from_code(sresp.error_code) {
                None => {}
                Some(ResponseError::RebalanceInProgress) => continue,
                Some(ResponseError::UnknownMemberId | ResponseError::IllegalGeneration) => {
                    member_id.clear();
                    lock(&self.membership).lost = true;
                    continue;
                }
                Some(ResponseError::NotCoordinator | ResponseError::CoordinatorNotAvailable) => {
                    continue;
                }
                Some(_) => {
                    return Err(Error::kafka(
                        sresp.error_code,
                        None,
                        format!("sync group {group:?}"),
                    ));
                }
            }
            let assigned = decode_assignment(sresp.assignment).unwrap_or_default();
            tracing::debug!(group = %group, generation, member = %member_id, partitions = assigned.len(), "joined group");
            {
                let mut m = lock(&self.membership);
                m.member_id = member_id;
                m.generation = generation;
                m.rejoin = false;
                m.coordinator = Some(conn);
            }
            if cooperative {
                self.take_up_cooperatively(assigned).await;
            } else {
                self.take_up_eagerly(assigned);
            }
            self.start_heartbeat(group);
            return Ok(());
        }
    }

    /// Eager: everything was revoked before joining. A partition we keep
    /// across the rebalance keeps our position: nobody else owned it in
    /// between, and our position may be ahead of what was committed. Unless
    /// we were out of the group: then another member may have read (and
    /// committed) past it.
    fn take_up_eagerly(&mut self, assigned: Vec<Tp>) {
        let lost = std::mem::take(&mut lock(&self.membership).lost);
        let mut previous = std::mem::take(&mut self.positions);
        if lost {
            previous.clear();
        }
        self.positions = assigned
            .iter()
            .cloned()
            .map(|tp| {
                let pos = match previous.get(&tp) {
                    Some(Position::At(o)) => Position::At(*o),
                    _ => Position::Committed,
                };
                (tp, pos)
            })
            .collect();
        self.forget_unassigned();
        self.listener.on_partitions_assigned(&assigned);
    }

    /// Cooperative (KIP-429): what we keep, we keep reading; what moved
    /// away is committed and revoked now, and we rejoin at once so the
    /// leader can hand it to its new owner.
    async fn take_up_cooperatively(&mut self, assigned: Vec<Tp>) {
        let lost = std::mem::take(&mut lock(&self.membership).lost);
        if lost {
            let owned: Vec<Tp> = self.positions.keys().cloned().collect();
            self.positions.clear();
            if !owned.is_empty() {
                self.listener.on_partitions_lost(&owned);
            }
        }
        let keep: BTreeSet<&Tp> = assigned.iter().collect();
        let gone: Vec<Tp> = self
            .positions
            .keys()
            .filter(|tp| !keep.contains(tp))
            .cloned()
            .collect();
        if !gone.is_empty() {
            if self.config.enable_auto_commit && self.dirty {
                if let Err(e) = self.commit().await {
                    tracing::debug!(error = %e, "commit before revocation failed");
                }
            }
            self.listener.on_partitions_revoked(&gone);
            for tp in &gone {
                self.positions.remove(tp);
            }
            lock(&self.membership).rejoin = true;
        }
        let added: Vec<Tp> = assigned
            .into_iter()
            .filter(|tp| !self.positions.contains_key(tp))
            .collect();
        for tp in &added {
            self.positions.insert(tp.clone(), Position::Committed);
        }
        self.forget_unassigned();
        self.listener.on_partitions_assigned(&added);
    }

    /// As group leader: assign partitions to every member.
    async fn lead(
        &self,
        protocol: &str,
        members: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let strategy = AssignmentStrategy::from_protocol_name(protocol)
            .unwrap_or(self.config.assignment_strategy);
        let mut subscriptions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut owned: BTreeMap<String, Vec<Tp>> = BTreeMap::new();
        for m in members {
            let sub = decode_subscription(m.metadata.clone()).unwrap_or_default();
            subscriptions.insert(
                m.member_id.to_string(),
                sub.topics.iter().map(|t| t.to_string()).collect(),
            );
            owned.insert(
                m.member_id.to_string(),
                sub.owned_partitions
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| (t.topic.to_string(), *p)))
                    .collect(),
            );
        }
        let all: Vec<String> = subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.cluster.refresh(Some(&all)).await?;
        let counts: BTreeMap<String, i32> = all
            .iter()
            .filter_map(|t| {
                self.cluster
                    .topic(t)
                    .map(|m| (t.clone(), m.partitions.len() as i32))
            })
            .collect();
        let plan = strategy.assign(&subscriptions, &owned, &counts);
        Ok(plan
            .into_iter()
            .map(|(member, parts)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(sb(&member))
                    .with_assignment(encode_assignment(&parts))
            })
            .collect())
    }

    fn start_heartbeat(&mut self, group: String) {
        if self.heartbeat.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let membership = self.membership.clone();
        let interval = self.config.heartbeat_interval;
        self.heartbeat = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let (conn, generation, member_id, rejoin) = {
                    let m = lock(&membership);
                    (
                        m.coordinator.clone(),
                        m.generation,
                        m.member_id.clone(),
                        m.rejoin,
                    )
                };
                let Some(conn) = conn else { continue };
                if rejoin || generation < 0 {
                    continue;
                }
                let req = HeartbeatRequest::default()
                    .with_group_id(GroupId(sb(&group)))
                    .with_generation_id(generation)
                    .with_member_id(sb(&member_id));
                let code = match conn.send(&req).await {
                    Ok(r) => r.error_code,
                    Err(e) => {
                        tracing::debug!(error = %e, "heartbeat failed");
                        let mut m = lock(&membership);
                        m.coordinator = None;
                        m.rejoin = true;
                        continue;
                    }
                };
                if code != 0 {
                    tracing::debug!(code, "heartbeat says rejoin");
                    let mut m = lock(&membership);
                    m.rejoin = true;
                    m.lost |= membership_lost(code);
                    if code == ResponseError::UnknownMemberId.code() {
                        m.member_id.clear();
                    }
                }
            }
        }));
    }
}

/// Errors that mean the coordinator has dropped us from the group (rather
/// than a rebalance we are still part of).
pub(super) fn membership_lost(code: i16) -> bool {
    [
        ResponseError::UnknownMemberId,
        ResponseError::IllegalGeneration,
        ResponseError::FencedInstanceId,
    ]
    .iter()
    .any(|e| e.code() == code)
}

fn other_strategy(s: AssignmentStrategy) -> AssignmentStrategy {
    match s {
        AssignmentStrategy::Range => AssignmentStrategy::RoundRobin,
        AssignmentStrategy::RoundRobin | AssignmentStrategy::CooperativeSticky => {
            AssignmentStrategy::Range
        }
    }
}
