//! The group coordinator runs on the leader of `__consumer_offsets`
//! partition 0, as in Kafka: it starts (replaying the partition) when this
//! broker becomes that leader and stops when it is no longer. Elsewhere
//! group requests get NOT_COORDINATOR, which makes clients look the
//! coordinator up again.

use std::sync::{Arc, RwLock};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{
    DeleteGroupsResponse, DescribeGroupsResponse, HeartbeatResponse, JoinGroupResponse,
    LeaveGroupResponse, ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse,
    OffsetFetchResponse, RequestKind, ResponseKind, SyncGroupResponse,
};
use tracing::{info, warn};
use weir_coordinator::{GroupConfig, GroupCoordinator};

use crate::broker::BrokerState;
use crate::cluster::CONSUMER_OFFSETS_TOPIC;
use crate::group_store::{OffsetsTopicStore, TopicCatalogView};

/// The coordinator while this broker leads `__consumer_offsets`-0.
#[derive(Default)]
pub struct Groups {
    active: RwLock<Option<(i32, GroupCoordinator)>>,
}

impl Groups {
    /// The coordinator, if this broker is the coordinator.
    pub fn current(&self) -> Option<GroupCoordinator> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(_, c)| c.clone())
    }

    /// Starts or stops the coordinator to match this broker's leadership of
    /// `__consumer_offsets`-0 (a new leader epoch reloads, since a former
    /// leader's in-memory state may miss what another leader wrote).
    pub async fn follow_leadership(&self, state: &Arc<BrokerState>) {
        let leading = state.logs.get(CONSUMER_OFFSETS_TOPIC, 0).and_then(|p| {
            let r = p.replica();
            r.is_leader().then_some((r.leader_epoch, Arc::clone(&p)))
        });
        let current_epoch = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(epoch, _)| *epoch);
        match (leading, current_epoch) {
            (Some((epoch, _)), Some(current)) if epoch == current => {}
            (None, None) => {}
            (None, Some(_)) => {
                if let Some((_, old)) = self
                    .active
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    old.shutdown();
                    info!("no longer the group coordinator");
                }
            }
            (Some((epoch, partition)), _) => {
                let config = &state.config;
                let coordinator = GroupCoordinator::new(
                    GroupConfig {
                        initial_rebalance_delay: config.group_initial_rebalance_delay(),
                        min_session_timeout: config.group_min_session_timeout(),
                        max_session_timeout: config.group_max_session_timeout(),
                        offsets_retention: config.offsets_retention(),
                        ..GroupConfig::default()
                    },
                    Arc::new(OffsetsTopicStore::new(partition, Arc::clone(&state.logs))),
                    Arc::new(TopicCatalogView::new(Arc::clone(&state.cluster))),
                );
                if let Err(e) = coordinator.load().await {
                    warn!(error = %e, "loading group metadata failed; not coordinating");
                    return;
                }
                let old = self
                    .active
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .replace((epoch, coordinator));
                if let Some((_, old)) = old {
                    old.shutdown();
                }
                info!(epoch, "group coordinator started");
            }
        }
    }

    pub fn shutdown(&self) {
        if let Some((_, c)) = self
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            c.shutdown();
        }
    }
}

/// Whether a request is for the group coordinator.
pub fn is_group_request(request: &RequestKind) -> bool {
    matches!(
        request,
        RequestKind::JoinGroup(_)
            | RequestKind::SyncGroup(_)
            | RequestKind::Heartbeat(_)
            | RequestKind::LeaveGroup(_)
            | RequestKind::OffsetCommit(_)
            | RequestKind::OffsetFetch(_)
            | RequestKind::OffsetDelete(_)
            | RequestKind::DescribeGroups(_)
            | RequestKind::DeleteGroups(_)
            | RequestKind::ListGroups(_)
    )
}

/// The answer to a group request on a broker that is not the coordinator.
/// ListGroups is asked of every broker, so a non-coordinator lists none.
pub fn not_coordinator(request: &RequestKind) -> Option<ResponseKind> {
    let code = ResponseError::NotCoordinator.code();
    Some(match request {
        RequestKind::JoinGroup(_) => {
            let mut r = JoinGroupResponse::default();
            r.error_code = code;
            r.generation_id = -1;
            ResponseKind::JoinGroup(r)
        }
        RequestKind::SyncGroup(_) => {
            let mut r = SyncGroupResponse::default();
            r.error_code = code;
            ResponseKind::SyncGroup(r)
        }
        RequestKind::Heartbeat(_) => {
            let mut r = HeartbeatResponse::default();
            r.error_code = code;
            ResponseKind::Heartbeat(r)
        }
        RequestKind::LeaveGroup(_) => {
            let mut r = LeaveGroupResponse::default();
            r.error_code = code;
            ResponseKind::LeaveGroup(r)
        }
        RequestKind::OffsetCommit(req) => {
            let mut r = OffsetCommitResponse::default();
            r.topics = req
                .topics
                .iter()
                .map(|t| {
                    let mut topic = OffsetCommitResponseTopic::default();
                    topic.name = t.name.clone();
                    topic.partitions = t
                        .partitions
                        .iter()
                        .map(|p| {
                            let mut part = OffsetCommitResponsePartition::default();
                            part.partition_index = p.partition_index;
                            part.error_code = code;
                            part
                        })
                        .collect();
                    topic
                })
                .collect();
            ResponseKind::OffsetCommit(r)
        }
        RequestKind::OffsetFetch(req) => {
            let mut r = OffsetFetchResponse::default();
            r.error_code = code;
            r.groups = req
                .groups
                .iter()
                .map(|g| {
                    let mut group = OffsetFetchResponseGroup::default();
                    group.group_id = g.group_id.clone();
                    group.error_code = code;
                    group
                })
                .collect();
            ResponseKind::OffsetFetch(r)
        }
        RequestKind::OffsetDelete(_) => {
            let mut r = OffsetDeleteResponse::default();
            r.error_code = code;
            ResponseKind::OffsetDelete(r)
        }
        RequestKind::DescribeGroups(req) => {
            let mut r = DescribeGroupsResponse::default();
            r.groups = req
                .groups
                .iter()
                .map(|id| {
                    let mut group = DescribedGroup::default();
                    group.group_id = id.clone();
                    group.error_code = code;
                    group
                })
                .collect();
            ResponseKind::DescribeGroups(r)
        }
        RequestKind::DeleteGroups(req) => {
            let mut r = DeleteGroupsResponse::default();
            r.results = req
                .groups_names
                .iter()
                .map(|id| {
                    let mut group = DeletableGroupResult::default();
                    group.group_id = id.clone();
                    group.error_code = code;
                    group
                })
                .collect();
            ResponseKind::DeleteGroups(r)
        }
        RequestKind::ListGroups(_) => ResponseKind::ListGroups(ListGroupsResponse::default()),
        _ => return None,
    })
}

/// An offset commit is answered once `__consumer_offsets`-0's in-sync
/// replicas hold it, as Kafka's coordinator appends with acks=all: a commit
/// acknowledged by a coordinator that then dies is not lost. Within
/// `offsets.commit.timeout.ms`, else the commit is answered
/// COORDINATOR_NOT_AVAILABLE (NOT_COORDINATOR if leadership moved), which
/// clients retry.
pub async fn await_commit_replicated(
    state: &Arc<BrokerState>,
    response: &mut OffsetCommitResponse,
) {
    if !response
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| p.error_code == 0)
    {
        return;
    }
    let Some(partition) = state.logs.get(CONSUMER_OFFSETS_TOPIC, 0) else {
        return;
    };
    let written_up_to = partition.log().log_end_offset();
    crate::replica::advance_high_watermark(state, &partition);
    let deadline = tokio::time::Instant::now() + state.config.offsets_commit_timeout();
    let min_insync = state.min_insync_replicas(CONSUMER_OFFSETS_TOPIC);
    let waited = crate::replica::wait_for_replication(
        state,
        &partition,
        written_up_to,
        min_insync,
        deadline,
    )
    .await;
    let Err(e) = waited else { return };
    let code = match e {
        ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
        _ => ResponseError::CoordinatorNotAvailable,
    }
    .code();
    warn!(error = ?e, "offset commit not replicated in time");
    for p in response
        .topics
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
        .filter(|p| p.error_code == 0)
    {
        p.error_code = code;
    }
}
