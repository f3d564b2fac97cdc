//! The group coordinators: one per partition of `__consumer_offsets` this
//! broker leads, as in Kafka (see `shards.rs`). A group belongs to the
//! partition its id hashes to; a request for a group coordinated elsewhere
//! gets NOT_COORDINATOR (clients look the coordinator up again), one for a
//! group whose partition is still loading COORDINATOR_LOAD_IN_PROGRESS.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatResponse, DeleteGroupsResponse,
    DescribeGroupsResponse, HeartbeatResponse, JoinGroupResponse, LeaveGroupResponse,
    ListGroupsResponse, OffsetCommitResponse, OffsetDeleteResponse, OffsetFetchResponse,
    RequestKind, ResponseKind, SyncGroupResponse, TxnOffsetCommitResponse,
};
use tracing::warn;
use weir_coordinator::{GroupConfig, GroupCoordinator};

use crate::broker::BrokerState;
use crate::cluster::{CONSUMER_OFFSETS_TOPIC, ClusterMetadata};
use crate::group_store::{InternalPartitionStore, TopicCatalogView};
use crate::handlers::RequestContext;
use crate::partitions::{LogManager, Partition};
use crate::shards::{self, LoadFuture, Lookup, ShardKind, Shards};

/// How a group coordinator shard is built: over its partition of
/// `__consumer_offsets`, replayed before it serves.
pub struct GroupShard {
    config: GroupConfig,
    logs: Arc<LogManager>,
    cluster: Arc<ClusterMetadata>,
}

impl ShardKind for GroupShard {
    type Coordinator = GroupCoordinator;
    const NAME: &'static str = "group";

    fn load(&self, partition: Arc<Partition>) -> LoadFuture<GroupCoordinator> {
        let coordinator = GroupCoordinator::new(
            self.config.clone(),
            Arc::new(InternalPartitionStore::new(
                partition,
                Arc::clone(&self.logs),
            )),
            Arc::new(TopicCatalogView::new(Arc::clone(&self.cluster))),
        );
        Box::pin(async move {
            coordinator
                .load()
                .await
                .map_err(|e| format!("loading group metadata: {e}"))?;
            coordinator.start_offset_expiry();
            Ok(coordinator)
        })
    }

    fn stop(coordinator: &GroupCoordinator) {
        coordinator.shutdown();
    }
}

/// This broker's group coordinator shards.
pub struct Groups {
    shards: Arc<Shards<GroupShard>>,
}

impl Groups {
    pub fn new(
        config: &crate::config::BrokerConfig,
        logs: &Arc<LogManager>,
        cluster: &Arc<ClusterMetadata>,
    ) -> Self {
        let config = GroupConfig {
            initial_rebalance_delay: config.group_initial_rebalance_delay(),
            min_session_timeout: config.group_min_session_timeout(),
            max_session_timeout: config.group_max_session_timeout(),
            offsets_retention: config.offsets_retention(),
            offsets_retention_check_interval: config.offsets_retention_check_interval(),
            consumer: config.consumer_group_config(),
            tasks: config.task_group_config(),
            ..GroupConfig::default()
        };
        Groups {
            shards: Shards::new(GroupShard {
                config,
                logs: Arc::clone(logs),
                cluster: Arc::clone(cluster),
            }),
        }
    }

    /// Starts or stops shards to match this broker's leaderships of
    /// `__consumer_offsets` partitions; loading happens in the background.
    pub fn follow_leadership(&self, state: &Arc<BrokerState>) {
        self.shards
            .follow(shards::led_partitions(&state.logs, CONSUMER_OFFSETS_TOPIC));
    }

    pub fn shutdown(&self) {
        self.shards.shutdown();
    }

    /// The task groups this broker coordinates, for `/metrics`.
    pub async fn task_group_stats(&self) -> Vec<weir_coordinator::tasks::group::TaskGroupStats> {
        let mut out = Vec::new();
        for (_, coordinator) in self.shards.active() {
            out.extend(coordinator.task_group_stats().await);
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// A transaction marker reached `__consumer_offsets` partition
    /// `partition`: that shard's pending transactional offsets of the
    /// producer are committed or dropped.
    pub async fn complete_txn(&self, partition: i32, producer_id: i64, committed: bool) {
        if let Lookup::Active(coordinator) = self.shards.lookup(partition) {
            coordinator.complete_txn(producer_id, committed).await;
        }
    }
}

/// The `__consumer_offsets` partition coordinating `group_id`, from the
/// topic's partition count in the metadata (a data directory written with
/// one partition keeps it: every group maps to partition 0 there).
pub fn partition_of(state: &BrokerState, group_id: &str) -> Option<i32> {
    let image = state.cluster.image();
    let count = image
        .topic_by_name(CONSUMER_OFFSETS_TOPIC)?
        .partitions
        .len();
    Some(shards::partition_for(group_id, count as i32))
}

/// Serves a group request (`is_group_request`) on the shard(s) its group ids
/// belong to. Requests naming several groups are split per group and their
/// answers joined; ListGroups lists every shard here.
pub async fn handle(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    request: RequestKind,
) -> Option<ResponseKind> {
    match request {
        RequestKind::ListGroups(req) => {
            let mut response = ListGroupsResponse::default();
            for (_, coordinator) in state.groups.shards.active() {
                let part = coordinator.list_groups(req.clone(), ctx.version).await;
                if part.error_code != 0 {
                    response.error_code = part.error_code;
                }
                response.groups.extend(part.groups);
            }
            if state.groups.shards.any_loading() {
                response.error_code = ResponseError::CoordinatorLoadInProgress.code();
            }
            // Describe on the cluster lists every group, else those the
            // principal may describe.
            let access = state.access(ctx);
            if !access.quietly_allows(
                weir_client::acl::Operation::Describe,
                weir_client::acl::ResourceType::Cluster,
                weir_client::acl::CLUSTER_NAME,
            ) {
                response.groups.retain(|g| {
                    access.quietly_allows(
                        weir_client::acl::Operation::Describe,
                        weir_client::acl::ResourceType::Group,
                        &g.group_id,
                    )
                });
            }
            Some(ResponseKind::ListGroups(response))
        }
        RequestKind::DescribeGroups(req) => {
            let mut response = DescribeGroupsResponse::default();
            for id in &req.groups {
                let mut one = req.clone();
                one.groups = vec![id.clone()];
                if let Some(ResponseKind::DescribeGroups(r)) =
                    on_shard(state, ctx, id, RequestKind::DescribeGroups(one)).await
                {
                    response.groups.extend(r.groups);
                }
            }
            if req.include_authorized_operations {
                let access = state.access(ctx);
                for g in response.groups.iter_mut().filter(|g| g.error_code == 0) {
                    g.authorized_operations = access
                        .authorized_operations(weir_client::acl::ResourceType::Group, &g.group_id);
                }
            }
            Some(ResponseKind::DescribeGroups(response))
        }
        RequestKind::DeleteGroups(req) => {
            let mut response = DeleteGroupsResponse::default();
            for id in &req.groups_names {
                let mut one = req.clone();
                one.groups_names = vec![id.clone()];
                if let Some(ResponseKind::DeleteGroups(r)) =
                    on_shard(state, ctx, id, RequestKind::DeleteGroups(one)).await
                {
                    response.results.extend(r.results);
                }
            }
            Some(ResponseKind::DeleteGroups(response))
        }
        RequestKind::ConsumerGroupDescribe(req) => {
            let mut response = ConsumerGroupDescribeResponse::default();
            for id in &req.group_ids {
                let mut one = req.clone();
                one.group_ids = vec![id.clone()];
                if let Some(ResponseKind::ConsumerGroupDescribe(r)) =
                    on_shard(state, ctx, id, RequestKind::ConsumerGroupDescribe(one)).await
                {
                    response.groups.extend(r.groups);
                }
            }
            Some(ResponseKind::ConsumerGroupDescribe(response))
        }
        RequestKind::OffsetFetch(req) if !req.groups.is_empty() => {
            let mut response = OffsetFetchResponse::default();
            for group in &req.groups {
                let mut one = req.clone();
                one.groups = vec![group.clone()];
                if let Some(ResponseKind::OffsetFetch(r)) =
                    on_shard(state, ctx, &group.group_id, RequestKind::OffsetFetch(one)).await
                {
                    response.groups.extend(r.groups);
                }
            }
            Some(ResponseKind::OffsetFetch(response))
        }
        other => {
            let id = single_group_id(&other)?.to_string();
            on_shard(state, ctx, &id, other).await
        }
    }
}

/// The one group a single-group request is about.
fn single_group_id(request: &RequestKind) -> Option<&str> {
    Some(match request {
        RequestKind::JoinGroup(r) => &r.group_id,
        RequestKind::SyncGroup(r) => &r.group_id,
        RequestKind::Heartbeat(r) => &r.group_id,
        RequestKind::LeaveGroup(r) => &r.group_id,
        RequestKind::OffsetCommit(r) => &r.group_id,
        RequestKind::OffsetFetch(r) => &r.group_id,
        RequestKind::OffsetDelete(r) => &r.group_id,
        RequestKind::TxnOffsetCommit(r) => &r.group_id,
        RequestKind::ConsumerGroupHeartbeat(r) => &r.group_id,
        _ => return None,
    })
}

/// The coordinator of `group_id`, if this broker has it loaded; else the
/// error its clients should see (they look the coordinator up again on
/// NOT_COORDINATOR and wait on COORDINATOR_LOAD_IN_PROGRESS).
pub(crate) fn local_coordinator(
    state: &Arc<BrokerState>,
    group_id: &str,
) -> Result<(GroupCoordinator, i32), ResponseError> {
    let partition = partition_of(state, group_id).ok_or(ResponseError::NotCoordinator)?;
    match state.groups.shards.lookup(partition) {
        Lookup::Active(coordinator) => Ok((coordinator, partition)),
        Lookup::Loading => Err(ResponseError::CoordinatorLoadInProgress),
        Lookup::NotHere if shards::leads_in_metadata(state, CONSUMER_OFFSETS_TOPIC, partition) => {
            Err(ResponseError::CoordinatorLoadInProgress)
        }
        Lookup::NotHere => Err(ResponseError::NotCoordinator),
    }
}

/// A request about one group, on that group's shard if it is here.
async fn on_shard(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    group_id: &str,
    request: RequestKind,
) -> Option<ResponseKind> {
    let access = state.access(ctx);
    if let Some(error) = crate::group_access::refused(&access, group_id, &request) {
        return refusal(&request, error);
    }
    let Some(partition) = partition_of(state, group_id) else {
        return refusal(&request, ResponseError::NotCoordinator);
    };
    match state.groups.shards.lookup(partition) {
        Lookup::Active(coordinator) => {
            let (request, denied) = crate::group_access::without_denied_topics(&access, request);
            let response = serve(state, &coordinator, partition, ctx, request).await?;
            Some(crate::group_access::with_denied_topics(
                &access, response, denied,
            ))
        }
        Lookup::Loading => refusal(&request, ResponseError::CoordinatorLoadInProgress),
        // Named leader by the metadata but not yet applied here (the
        // partition is still opening): as good as loading.
        Lookup::NotHere if shards::leads_in_metadata(state, CONSUMER_OFFSETS_TOPIC, partition) => {
            refusal(&request, ResponseError::CoordinatorLoadInProgress)
        }
        Lookup::NotHere => refusal(&request, ResponseError::NotCoordinator),
    }
}

/// Group requests, on the shard that coordinates their group.
async fn serve(
    state: &Arc<BrokerState>,
    coordinator: &GroupCoordinator,
    partition: i32,
    ctx: &RequestContext,
    request: RequestKind,
) -> Option<ResponseKind> {
    let v = ctx.version;
    Some(match request {
        RequestKind::JoinGroup(req) => {
            let host = ctx.peer.ip().to_string();
            ResponseKind::JoinGroup(
                coordinator
                    .join_group(req, v, &ctx.client_id, &format!("/{host}"))
                    .await,
            )
        }
        RequestKind::ConsumerGroupHeartbeat(req) => {
            let host = ctx.peer.ip().to_string();
            let mut response = coordinator
                .consumer_group_heartbeat(req, v, &ctx.client_id, &format!("/{host}"))
                .await;
            await_membership_replicated(state, partition, &mut response.error_code).await;
            ResponseKind::ConsumerGroupHeartbeat(response)
        }
        RequestKind::ConsumerGroupDescribe(req) => {
            ResponseKind::ConsumerGroupDescribe(coordinator.consumer_group_describe(req, v).await)
        }
        RequestKind::SyncGroup(req) => {
            let mut response = coordinator.sync_group(req, v).await;
            await_membership_replicated(state, partition, &mut response.error_code).await;
            ResponseKind::SyncGroup(response)
        }
        RequestKind::Heartbeat(req) => ResponseKind::Heartbeat(coordinator.heartbeat(req, v).await),
        RequestKind::LeaveGroup(req) => {
            let mut response = coordinator.leave_group(req, v).await;
            await_membership_replicated(state, partition, &mut response.error_code).await;
            ResponseKind::LeaveGroup(response)
        }
        RequestKind::OffsetCommit(req) => {
            let mut response = coordinator.offset_commit(req, v).await;
            await_commit_replicated(state, partition, &mut response).await;
            ResponseKind::OffsetCommit(response)
        }
        RequestKind::OffsetFetch(req) => {
            ResponseKind::OffsetFetch(coordinator.offset_fetch(req, v).await)
        }
        RequestKind::OffsetDelete(req) => {
            ResponseKind::OffsetDelete(coordinator.offset_delete(req, v).await)
        }
        RequestKind::TxnOffsetCommit(req) => {
            let mut response = coordinator.txn_offset_commit(req).await;
            crate::txn::downgrade_fenced(
                v,
                response
                    .topics
                    .iter_mut()
                    .flat_map(|t| t.partitions.iter_mut().map(|p| &mut p.error_code)),
            );
            if response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .any(|p| p.error_code == 0)
                && let Err(e) = await_partition_replicated(state, partition).await
            {
                for p in response
                    .topics
                    .iter_mut()
                    .flat_map(|t| t.partitions.iter_mut())
                {
                    p.error_code = e;
                }
            }
            ResponseKind::TxnOffsetCommit(response)
        }
        RequestKind::DescribeGroups(req) => {
            ResponseKind::DescribeGroups(coordinator.describe_groups(req, v).await)
        }
        RequestKind::DeleteGroups(req) => {
            ResponseKind::DeleteGroups(coordinator.delete_groups(req, v).await)
        }
        _ => return None,
    })
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
            | RequestKind::TxnOffsetCommit(_)
            | RequestKind::ConsumerGroupHeartbeat(_)
            | RequestKind::ConsumerGroupDescribe(_)
    )
}

/// The answer to a group request this broker cannot serve: NOT_COORDINATOR
/// (coordinated elsewhere) or COORDINATOR_LOAD_IN_PROGRESS (its shard is
/// loading). ListGroups is asked of every broker, so a non-coordinator
/// lists none.
fn refusal(request: &RequestKind, error: ResponseError) -> Option<ResponseKind> {
    let code = error.code();
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
        RequestKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatResponse::default().with_error_code(code),
        ),
        RequestKind::ConsumerGroupDescribe(req) => {
            ResponseKind::ConsumerGroupDescribe(ConsumerGroupDescribeResponse::default().with_groups(
                req.group_ids
                    .iter()
                    .map(|id| {
                        kafka_protocol::messages::consumer_group_describe_response::DescribedGroup::default()
                            .with_group_id(id.clone())
                            .with_error_code(code)
                    })
                    .collect(),
            ))
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
        RequestKind::TxnOffsetCommit(req) => {
            let mut r = TxnOffsetCommitResponse::default();
            r.topics = req
                .topics
                .iter()
                .map(|t| {
                    TxnOffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    TxnOffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            ResponseKind::TxnOffsetCommit(r)
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

/// Waits until the in-sync replicas of `__consumer_offsets` partition
/// `partition` hold everything written to it so far; the error code to
/// answer with if they do not in time.
async fn await_partition_replicated(state: &Arc<BrokerState>, partition: i32) -> Result<(), i16> {
    let Some(partition) = state.logs.get(CONSUMER_OFFSETS_TOPIC, partition) else {
        return Ok(());
    };
    let deadline = tokio::time::Instant::now() + state.config.offsets_commit_timeout();
    crate::replica::await_written(state, &partition, CONSUMER_OFFSETS_TOPIC, deadline)
        .await
        .map_err(|e| {
            warn!(error = ?e, "group write not replicated in time");
            match e {
                ResponseError::NotLeaderOrFollower => ResponseError::NotCoordinator,
                _ => ResponseError::CoordinatorNotAvailable,
            }
            .code()
        })
}

/// A membership change (a classic group's new generation and assignment, a
/// consumer group's epochs and assignments) is answered, like an offset
/// commit, once the in-sync replicas hold what it wrote, so a member never
/// acts on group state a coordinator failover would take back. A response
/// that is already an error is sent as it is. Like Kafka's coordinator, a
/// request that wrote nothing still waits for the writes before it: what
/// it answers may rest on them.
pub(crate) async fn await_membership_replicated(
    state: &Arc<BrokerState>,
    partition: i32,
    code: &mut i16,
) {
    if *code != 0 {
        return;
    }
    if let Err(e) = await_partition_replicated(state, partition).await {
        *code = e;
    }
}

/// An offset commit is answered once its `__consumer_offsets` partition's in-sync
/// replicas hold it, as Kafka's coordinator appends with acks=all: a commit
/// acknowledged by a coordinator that then dies is not lost. Within
/// `offsets.commit.timeout.ms`, else the commit is answered
/// COORDINATOR_NOT_AVAILABLE (NOT_COORDINATOR if leadership moved), which
/// clients retry.
async fn await_commit_replicated(
    state: &Arc<BrokerState>,
    partition: i32,
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
    let Err(code) = await_partition_replicated(state, partition).await else {
        return;
    };
    for p in response
        .topics
        .iter_mut()
        .flat_map(|t| t.partitions.iter_mut())
        .filter(|p| p.error_code == 0)
    {
        p.error_code = code;
    }
}
