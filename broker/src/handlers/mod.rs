//! The request router: one handler per API. `SUPPORTED` is the single list
//! of what the broker implements; ApiVersions advertises exactly it.

mod acls;
mod configs;
mod fetch;
pub(crate) mod metadata;
mod offsets;
mod produce;
mod quotas;
mod reassign;
mod scram_users;
mod topics;
mod unregister;

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::BrokerState;

/// Who sent a request and how.
pub struct RequestContext {
    pub api: ApiKey,
    pub version: i16,
    pub client_id: String,
    pub peer: SocketAddr,
    /// The listener the request came in through (its name).
    pub listener: std::sync::Arc<str>,
    /// Who sent it: `User:<name>` once logged in with SASL, else
    /// `User:ANONYMOUS` (Kafka's spelling).
    pub principal: std::sync::Arc<str>,
}

/// APIs the broker implements and the version range of each (within what
/// the `kafka-protocol` crate can decode).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::UnregisterBroker, 0, 0),
    // Transactions, without KIP-890's server-side defence (AddPartitionsToTxn
    // v5, EndTxn v5, TxnOffsetCommit v5, AddOffsetsToTxn v4 and the
    // transaction.version feature belong to it).
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::TxnOffsetCommit, 0, 4),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    // SASL (answered by the connection's session, server.rs); SaslHandshake
    // v0's unframed tokens are not served, as in Kafka 4.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    // ACLs (authorizer/); v1 brought prefixed patterns (KIP-290).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    // Client quotas (quotas/); v1 is v0 made flexible.
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    // KIP-848 consumer groups.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// Every API the broker serves with its version range, as ApiVersions says.
pub fn advertised_versions() -> Vec<(ApiKey, i16, i16)> {
    SUPPORTED.to_vec()
}

/// The version range the broker serves for `api`, if it serves it at all.
pub fn supported_versions(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

fn api_versions_response(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let mut v = ApiVersion::default();
            v.api_key = key as i16;
            v.min_version = min;
            v.max_version = max;
            v
        })
        .collect();
    response
}

/// The answer to an ApiVersions request of a version we do not know.
pub fn api_versions_unsupported() -> ResponseKind {
    ResponseKind::ApiVersions(api_versions_response(
        kafka_protocol::error::ResponseError::UnsupportedVersion.code(),
    ))
}

/// Handles one decoded request (see [`Handled`]).
/// `Err` closes the connection (with the reason logged), as Kafka does when a
/// request cannot be served at all.
pub async fn handle(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    request: RequestKind,
) -> Result<Handled, String> {
    match request {
        RequestKind::Produce(req) => Ok(
            match produce::produce(state, &state.access(ctx), req, ctx.version).await {
                produce::Produced::Now(r) => Handled::Now(r.map(ResponseKind::Produce)),
                produce::Produced::Later(wait) => {
                    Handled::Later(Box::pin(async move { ResponseKind::Produce(wait.await) }))
                }
            },
        ),
        other => handle_now(state, ctx, other).await.map(Handled::Now),
    }
}

/// A handled request: its answer now (`None`: none at all, acks=0), or an
/// answer still being waited for (acks=all), which the connection sends in
/// its turn while it reads the next requests.
// One per request, moved once into the connection's writer queue: boxing the
// common `Now` answer would add an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Handled {
    Now(Option<ResponseKind>),
    Later(std::pin::Pin<Box<dyn std::future::Future<Output = ResponseKind> + Send>>),
}

async fn handle_now(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    request: RequestKind,
) -> Result<Option<ResponseKind>, String> {
    let v = ctx.version;
    if crate::groups::is_group_request(&request) {
        return Ok(crate::groups::handle(state, ctx, request).await);
    }
    if crate::txn::is_txn_request(&request) {
        return Ok(crate::txn::handle(state, ctx, request).await);
    }
    let access = state.access(ctx);
    let response = match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions_response(0)),
        RequestKind::Metadata(req) => {
            ResponseKind::Metadata(metadata::metadata(state, &access, req, v, &ctx.listener).await)
        }
        RequestKind::DescribeCluster(req) => ResponseKind::DescribeCluster(
            metadata::describe_cluster(state, &access, req, &ctx.listener),
        ),
        RequestKind::FindCoordinator(req) => ResponseKind::FindCoordinator(
            metadata::find_coordinator(state, &access, req, v, &ctx.listener).await,
        ),
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(produce::init_producer_id(state, &access, req).await)
        }
        RequestKind::Fetch(req) => ResponseKind::Fetch(fetch::fetch(state, &access, req, v).await),
        RequestKind::OffsetForLeaderEpoch(req) => ResponseKind::OffsetForLeaderEpoch(
            offsets::offset_for_leader_epoch(state, &access, req),
        ),
        RequestKind::ListOffsets(req) => {
            ResponseKind::ListOffsets(offsets::list_offsets(state, &access, req, v).await)
        }
        RequestKind::DeleteRecords(req) => {
            ResponseKind::DeleteRecords(offsets::delete_records(state, &access, req).await)
        }
        RequestKind::CreateTopics(req) => {
            ResponseKind::CreateTopics(topics::create_topics(state, &access, req, v).await)
        }
        RequestKind::DeleteTopics(req) => {
            ResponseKind::DeleteTopics(topics::delete_topics(state, &access, req, v).await)
        }
        RequestKind::CreatePartitions(req) => {
            ResponseKind::CreatePartitions(topics::create_partitions(state, &access, req).await)
        }
        RequestKind::DescribeConfigs(req) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(state, &access, req))
        }
        RequestKind::AlterConfigs(req) => {
            ResponseKind::AlterConfigs(configs::alter_configs(state, &access, req).await)
        }
        RequestKind::IncrementalAlterConfigs(req) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(state, &access, req).await,
        ),
        RequestKind::AlterPartitionReassignments(req) => ResponseKind::AlterPartitionReassignments(
            reassign::alter_partition_reassignments(state, &access, req).await,
        ),
        RequestKind::ListPartitionReassignments(req) => ResponseKind::ListPartitionReassignments(
            reassign::list_partition_reassignments(state, &access, req).await,
        ),
        RequestKind::WriteTxnMarkers(req) => {
            ResponseKind::WriteTxnMarkers(crate::txn::write_txn_markers(state, &access, req).await)
        }
        RequestKind::DescribeProducers(req) => {
            ResponseKind::DescribeProducers(crate::txn::describe_producers(state, &access, req))
        }
        RequestKind::UnregisterBroker(req) => {
            ResponseKind::UnregisterBroker(unregister::unregister_broker(state, &access, req).await)
        }
        RequestKind::AlterUserScramCredentials(req) => {
            ResponseKind::AlterUserScramCredentials(scram_users::alter(state, &access, req).await)
        }
        RequestKind::DescribeUserScramCredentials(req) => {
            ResponseKind::DescribeUserScramCredentials(scram_users::describe(state, &access, req))
        }
        RequestKind::CreateAcls(req) => {
            ResponseKind::CreateAcls(acls::create_acls(state, ctx, req).await)
        }
        RequestKind::DescribeAcls(req) => {
            ResponseKind::DescribeAcls(acls::describe_acls(state, ctx, req))
        }
        RequestKind::DeleteAcls(req) => {
            ResponseKind::DeleteAcls(acls::delete_acls(state, ctx, req).await)
        }
        RequestKind::DescribeClientQuotas(req) => {
            ResponseKind::DescribeClientQuotas(quotas::describe(state, &access, req))
        }
        RequestKind::AlterClientQuotas(req) => {
            ResponseKind::AlterClientQuotas(quotas::alter(state, &access, req).await)
        }
        _ => return Err(format!("no handler for {:?}", ctx.api)),
    };
    Ok(Some(response))
}

/// Whether this broker may serve a partition as its leader, and whether the
/// client's view of the leader epoch (-1: no view) matches ours (KIP-320).
pub(crate) fn check_leader(
    replica: &crate::replica::ReplicaState,
    current_leader_epoch: i32,
) -> Result<(), kafka_protocol::error::ResponseError> {
    use kafka_protocol::error::ResponseError;
    if current_leader_epoch >= 0 && current_leader_epoch < replica.leader_epoch {
        return Err(ResponseError::FencedLeaderEpoch);
    }
    if current_leader_epoch > replica.leader_epoch {
        return Err(ResponseError::UnknownLeaderEpoch);
    }
    if !replica.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    Ok(())
}

/// `StrBytes` from anything printable, for error messages and names.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
