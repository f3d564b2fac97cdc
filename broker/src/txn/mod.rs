//! The transaction coordinators: one per partition of `__transaction_state`
//! this broker leads (see `shards.rs`). A transactional id belongs to the
//! partition `abs(javaHash(id)) % partitions`; requests for an id
//! coordinated elsewhere get NOT_COORDINATOR, for one whose shard is still
//! loading COORDINATOR_LOAD_IN_PROGRESS.

mod coordinator;
mod markers;

use weir_client::acl::{Operation, ResourceType};

use crate::authorizer::Access;
use std::sync::{Arc, OnceLock, Weak};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, RequestKind, ResponseKind, TopicName,
};
use weir_coordinator::txn::{TxnMetadata, TxnPartition, code};

pub use coordinator::{TxnCoordinator, TxnSettings};
pub use markers::write_txn_markers;

use crate::broker::BrokerState;
use crate::clock::now_ms;
use crate::cluster::{CONSUMER_OFFSETS_TOPIC, TRANSACTION_STATE_TOPIC};
use crate::handlers::{RequestContext, str_bytes};
use crate::partitions::Partition;
use crate::shards::{self, LoadFuture, Lookup, ShardKind, Shards};

/// How a transaction coordinator shard is built: over its partition of
/// `__transaction_state`, replayed before it serves.
pub struct TxnShard {
    settings: TxnSettings,
    /// Set on the first leadership change; shards need the broker to write
    /// markers and allocate producer ids.
    state: Arc<OnceLock<Weak<BrokerState>>>,
}

impl ShardKind for TxnShard {
    type Coordinator = TxnCoordinator;
    const NAME: &'static str = "transaction";

    fn load(&self, partition: Arc<Partition>) -> LoadFuture<TxnCoordinator> {
        let state = self.state.get().and_then(Weak::upgrade);
        let settings = self.settings.clone();
        Box::pin(async move {
            let state = state.ok_or("the broker is stopping")?;
            TxnCoordinator::load(&state, partition, settings).await
        })
    }

    fn stop(coordinator: &TxnCoordinator) {
        coordinator.stop();
    }
}

/// This broker's transaction coordinator shards.
pub struct Txns {
    shards: Arc<Shards<TxnShard>>,
    state: Arc<OnceLock<Weak<BrokerState>>>,
}

impl Txns {
    pub fn new(config: &crate::config::BrokerConfig) -> Self {
        let state = Arc::new(OnceLock::new());
        let settings = TxnSettings {
            max_timeout_ms: config.transaction_max_timeout_ms(),
            expiration_ms: config.transactional_id_expiration_ms(),
            timeout_check: config.transaction_timeout_check_interval(),
            expiry_check: config.transactional_id_expiry_check_interval(),
        };
        Txns {
            shards: Shards::new(TxnShard {
                settings,
                state: Arc::clone(&state),
            }),
            state,
        }
    }

    /// Starts or stops shards to match this broker's leaderships of
    /// `__transaction_state` partitions; loading happens in the background.
    pub fn follow_leadership(&self, state: &Arc<BrokerState>) {
        let _ = self.state.set(Arc::downgrade(state));
        self.shards
            .follow(shards::led_partitions(&state.logs, TRANSACTION_STATE_TOPIC));
    }

    pub fn shutdown(&self) {
        self.shards.shutdown();
    }
}

/// Whether a request is for the transaction coordinator.
pub fn is_txn_request(request: &RequestKind) -> bool {
    match request {
        RequestKind::InitProducerId(r) => {
            r.transactional_id.as_ref().is_some_and(|t| !t.is_empty())
        }
        RequestKind::AddPartitionsToTxn(_)
        | RequestKind::AddOffsetsToTxn(_)
        | RequestKind::EndTxn(_)
        | RequestKind::DescribeTransactions(_)
        | RequestKind::ListTransactions(_) => true,
        _ => false,
    }
}

/// Older request versions knew no PRODUCER_FENCED: they get
/// INVALID_PRODUCER_EPOCH, as Kafka answers them.
fn fenced_for(version: i16, first_with_fenced: i16, code: i16) -> i16 {
    if code == code::PRODUCER_FENCED && version < first_with_fenced {
        code::INVALID_PRODUCER_EPOCH
    } else {
        code
    }
}

/// [`fenced_for`] over a response's error codes (TxnOffsetCommit: from v2).
pub fn downgrade_fenced<'a>(version: i16, codes: impl Iterator<Item = &'a mut i16>) {
    for c in codes {
        *c = fenced_for(version, 2, *c);
    }
}

/// Where `id`'s coordinator is, from this broker's view.
fn locate(state: &BrokerState, id: &str) -> Result<TxnCoordinator, i16> {
    let image = state.cluster.image();
    let count = image
        .topic_by_name(TRANSACTION_STATE_TOPIC)
        .map(|t| t.partitions.len())
        .ok_or(ResponseError::NotCoordinator.code())?;
    let partition = shards::partition_for(id, count as i32);
    match state.txns.shards.lookup(partition) {
        Lookup::Active(c) => Ok(c),
        Lookup::Loading => Err(ResponseError::CoordinatorLoadInProgress.code()),
        Lookup::NotHere if shards::leads_in_metadata(state, TRANSACTION_STATE_TOPIC, partition) => {
            Err(ResponseError::CoordinatorLoadInProgress.code())
        }
        Lookup::NotHere => Err(ResponseError::NotCoordinator.code()),
    }
}

pub async fn handle(
    state: &Arc<BrokerState>,
    ctx: &RequestContext,
    request: RequestKind,
) -> Option<ResponseKind> {
    let v = ctx.version;
    let access = state.access(ctx);
    if let Some(refused) = refused(&access, &request, v) {
        return Some(refused);
    }
    Some(match request {
        RequestKind::InitProducerId(req) => {
            ResponseKind::InitProducerId(init_producer_id(state, req, v).await)
        }
        RequestKind::AddPartitionsToTxn(req) => {
            ResponseKind::AddPartitionsToTxn(add_partitions_to_txn(state, &access, req, v).await)
        }
        RequestKind::AddOffsetsToTxn(req) => {
            ResponseKind::AddOffsetsToTxn(add_offsets_to_txn(state, req, v).await)
        }
        RequestKind::EndTxn(req) => ResponseKind::EndTxn(end_txn(state, req, v).await),
        RequestKind::DescribeTransactions(req) => {
            ResponseKind::DescribeTransactions(describe_transactions(state, &access, req).await)
        }
        RequestKind::ListTransactions(req) => {
            ResponseKind::ListTransactions(list_transactions(state, &access, req).await)
        }
        _ => return None,
    })
}

/// The answer to a transaction request refused as a whole: Write on the
/// transactional id for a producer's requests (and Read on the group whose
/// offsets join the transaction), ClusterAction for a broker's batched
/// AddPartitionsToTxn.
fn refused(access: &Access<'_>, request: &RequestKind, version: i16) -> Option<ResponseKind> {
    let txn_denied = |id: &str| !access.transactional_id(Operation::Write, id);
    let code = ResponseError::TransactionalIdAuthorizationFailed.code();
    Some(match request {
        RequestKind::InitProducerId(r)
            if r.transactional_id.as_ref().is_some_and(|id| txn_denied(id)) =>
        {
            ResponseKind::InitProducerId(
                InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
        }
        RequestKind::EndTxn(r) if txn_denied(&r.transactional_id) => ResponseKind::EndTxn(
            EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        RequestKind::AddOffsetsToTxn(r) if txn_denied(&r.transactional_id) => {
            ResponseKind::AddOffsetsToTxn(AddOffsetsToTxnResponse::default().with_error_code(code))
        }
        RequestKind::AddOffsetsToTxn(r) if !access.group(Operation::Read, &r.group_id) => {
            ResponseKind::AddOffsetsToTxn(
                AddOffsetsToTxnResponse::default()
                    .with_error_code(ResponseError::GroupAuthorizationFailed.code()),
            )
        }
        RequestKind::AddPartitionsToTxn(_)
            if version >= 4 && !access.cluster(Operation::ClusterAction) =>
        {
            ResponseKind::AddPartitionsToTxn(
                AddPartitionsToTxnResponse::default()
                    .with_error_code(ResponseError::ClusterAuthorizationFailed.code()),
            )
        }
        _ => return None,
    })
}

async fn init_producer_id(
    state: &BrokerState,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let mut response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let id = req
        .transactional_id
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
    let answer = match locate(state, &id) {
        Ok(c) => {
            c.init_producer_id(&id, req.transaction_timeout_ms, expected)
                .await
        }
        Err(e) => Err(e),
    };
    match answer {
        Ok((pid, epoch)) => {
            response.producer_id = ProducerId(pid);
            response.producer_epoch = epoch;
        }
        Err(c) => response.error_code = fenced_for(version, 4, c),
    }
    response
}

/// The partitions named that exist; the others are answered
/// UNKNOWN_TOPIC_OR_PARTITION and the rest of the request is not attempted.
fn check_partitions(
    state: &BrokerState,
    topics: &[AddPartitionsToTxnTopic],
) -> Result<Vec<TxnPartition>, ()> {
    let mut out = Vec::new();
    let mut unknown = false;
    for t in topics {
        for &p in &t.partitions {
            if state.cluster.partition(&t.name, p).is_some() {
                out.push((t.name.to_string(), p));
            } else {
                unknown = true;
            }
        }
    }
    if unknown { Err(()) } else { Ok(out) }
}

fn partition_results(
    state: &BrokerState,
    topics: &[AddPartitionsToTxnTopic],
    code: Option<i16>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            let c = code.unwrap_or_else(|| {
                                if state.cluster.partition(&t.name, p).is_some() {
                                    ResponseError::OperationNotAttempted.code()
                                } else {
                                    ResponseError::UnknownTopicOrPartition.code()
                                }
                            });
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(c)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// One transaction's AddPartitionsToTxn; `verify_only` (v4+, from a broker
/// checking a produce) only reports whether the partitions are in it.
async fn add_one(
    state: &BrokerState,
    id: &str,
    pid: i64,
    epoch: i16,
    verify_only: bool,
    topics: &[AddPartitionsToTxnTopic],
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions = match check_partitions(state, topics) {
        Ok(p) => p,
        Err(()) => return partition_results(state, topics, None),
    };
    let code = match locate(state, id) {
        Err(c) => c,
        Ok(c) if verify_only => match c.describe(id).await {
            Some(m)
                if m.producer_id == pid
                    && m.producer_epoch == epoch
                    && partitions.iter().all(|p| m.partitions.contains(p)) =>
            {
                0
            }
            _ => ResponseError::InvalidTxnState.code(),
        },
        Ok(c) => c.add_partitions(id, pid, epoch, &partitions).await,
    };
    partition_results(state, topics, Some(fenced_for(version, 2, code)))
}

async fn add_partitions_to_txn(
    state: &BrokerState,
    access: &Access<'_>,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if version <= 3 {
        // A producer's: Write on its transactional id, then on each topic;
        // a refused topic fails it, and the others are not attempted.
        let id = &req.v3_and_below_transactional_id;
        let topics = &req.v3_and_below_topics;
        let denied = |t: &AddPartitionsToTxnTopic| !access.topic(Operation::Write, &t.name);
        if !access.transactional_id(Operation::Write, id) {
            response.results_by_topic_v3_and_below = partition_results(
                state,
                topics,
                Some(ResponseError::TransactionalIdAuthorizationFailed.code()),
            );
            return response;
        }
        if topics.iter().any(denied) {
            response.results_by_topic_v3_and_below = topics
                .iter()
                .flat_map(|t| {
                    let code = if denied(t) {
                        ResponseError::TopicAuthorizationFailed
                    } else {
                        ResponseError::OperationNotAttempted
                    };
                    partition_results(state, std::slice::from_ref(t), Some(code.code()))
                })
                .collect();
            return response;
        }
        response.results_by_topic_v3_and_below = add_one(
            state,
            &req.v3_and_below_transactional_id,
            req.v3_and_below_producer_id.0,
            req.v3_and_below_producer_epoch,
            false,
            &req.v3_and_below_topics,
            version,
        )
        .await;
        return response;
    }
    for t in &req.transactions {
        let results = add_one(
            state,
            &t.transactional_id,
            t.producer_id.0,
            t.producer_epoch,
            t.verify_only,
            &t.topics,
            version,
        )
        .await;
        response.results_by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(results),
        );
    }
    response
}

async fn add_offsets_to_txn(
    state: &BrokerState,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    // The group's offsets partition joins the transaction; the topic is made
    // now if no group was ever coordinated.
    let offsets_topic = crate::handlers::metadata::ensure_offsets_topic(state).await;
    let group_partition = offsets_topic
        .ok()
        .and_then(|()| crate::groups::partition_of(state, &req.group_id));
    let code = match (locate(state, &req.transactional_id), group_partition) {
        (Err(c), _) => c,
        (Ok(_), None) => ResponseError::CoordinatorNotAvailable.code(),
        (Ok(c), Some(p)) => {
            c.add_partitions(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                &[(CONSUMER_OFFSETS_TOPIC.to_owned(), p)],
            )
            .await
        }
    };
    AddOffsetsToTxnResponse::default().with_error_code(fenced_for(version, 2, code))
}

async fn end_txn(state: &BrokerState, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let code = match locate(state, &req.transactional_id) {
        Err(c) => c,
        Ok(c) => {
            c.end_txn(
                &req.transactional_id,
                req.producer_id.0,
                req.producer_epoch,
                req.committed,
            )
            .await
        }
    };
    EndTxnResponse::default()
        .with_error_code(fenced_for(version, 2, code))
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

fn described(id: &str, m: &TxnMetadata) -> TransactionState {
    let mut topics: Vec<TopicData> = Vec::new();
    for (topic, p) in &m.partitions {
        match topics.last_mut() {
            Some(t) if t.topic.as_str() == topic => t.partitions.push(*p),
            _ => topics.push(
                TopicData::default()
                    .with_topic(TopicName(str_bytes(topic.as_str())))
                    .with_partitions(vec![*p]),
            ),
        }
    }
    TransactionState::default()
        .with_transactional_id(str_bytes(id).into())
        .with_transaction_state(str_bytes(m.state.name()))
        .with_transaction_timeout_ms(m.timeout_ms)
        .with_transaction_start_time_ms(m.start_ms)
        .with_producer_id(ProducerId(m.producer_id))
        .with_producer_epoch(m.producer_epoch)
        .with_topics(topics)
}

async fn describe_transactions(
    state: &BrokerState,
    access: &Access<'_>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut response = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let one = match locate(state, &id) {
            _ if !access.transactional_id(Operation::Describe, &id) => {
                Err(ResponseError::TransactionalIdAuthorizationFailed.code())
            }
            Err(c) => Err(c),
            Ok(c) => c
                .describe(&id)
                .await
                .ok_or(ResponseError::TransactionalIdNotFound.code()),
        };
        response.transaction_states.push(match one {
            Ok(mut m) => {
                // Topics the principal may not describe are left out.
                m.partitions.retain(|(topic, _)| {
                    access.quietly_allows(Operation::Describe, ResourceType::Topic, topic)
                });
                described(&id, &m)
            }
            Err(c) => TransactionState::default()
                .with_transactional_id(id)
                .with_error_code(c)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1),
        });
    }
    response
}

const STATE_NAMES: [&str; 8] = [
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
];

async fn list_transactions(
    state: &BrokerState,
    access: &Access<'_>,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut response = ListTransactionsResponse::default();
    response.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|f| !STATE_NAMES.contains(&f.as_str()))
        .cloned()
        .collect();
    let pattern = req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(regex_lite_match);
    let now = now_ms();
    for (_, coordinator) in state.txns.shards.active() {
        for (id, m) in coordinator.list().await {
            let state_ok = req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|f| f.as_str() == m.state.name());
            let pid_ok = req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(m.producer_id));
            // duration_filter (v1): transactions running longer than it.
            let duration_ok = req.duration_filter < 0
                || (m.state == weir_coordinator::txn::TxnState::Ongoing
                    && now - m.start_ms > req.duration_filter);
            let pattern_ok = pattern.as_ref().is_none_or(|p| p(&id));
            let visible =
                access.quietly_allows(Operation::Describe, ResourceType::TransactionalId, &id);
            if state_ok && pid_ok && duration_ok && pattern_ok && visible {
                response.transaction_states.push(
                    ListedTransaction::default()
                        .with_transactional_id(str_bytes(id).into())
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_transaction_state(str_bytes(m.state.name())),
                );
            }
        }
    }
    if state.txns.shards.any_loading() {
        response.error_code = ResponseError::CoordinatorLoadInProgress.code();
    }
    response
}

/// ListTransactions v2's `transactional_id_pattern` is a Java regular
/// expression; without a regex engine in the broker, the common forms
/// (a literal, `prefix.*`, `.*`) are matched and anything else matches
/// literally.
fn regex_lite_match(pattern: &str) -> impl Fn(&str) -> bool + use<> {
    let pattern = pattern.to_owned();
    move |id: &str| match pattern.strip_suffix(".*") {
        Some(prefix) => id.starts_with(prefix),
        None => id == pattern,
    }
}

/// DescribeProducers: the producers with state on partitions this broker
/// leads, with their open transactions (what `kafka-transactions.sh
/// find-hanging` looks at).
pub fn describe_producers(
    state: &BrokerState,
    access: &Access<'_>,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let mut response = DescribeProducersResponse::default();
    for t in req.topics {
        let mut topic = TopicResponse::default().with_name(t.name.clone());
        let allowed = access.topic(Operation::Read, &t.name);
        for index in t.partition_indexes {
            let mut part = PartitionResponse::default().with_partition_index(index);
            if !allowed {
                part.error_code = ResponseError::TopicAuthorizationFailed.code();
                topic.partitions.push(part);
                continue;
            }
            match state.logs.get(&t.name, index) {
                None => {
                    part.error_code = if state.cluster.partition(&t.name, index).is_some() {
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                }
                Some(p) => {
                    if let Err(e) = crate::handlers::check_leader(&p.replica(), -1) {
                        part.error_code = e.code();
                    } else {
                        part.active_producers = p
                            .log()
                            .producer_entries()
                            .into_iter()
                            .map(|e| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(e.producer_id))
                                    .with_producer_epoch(i32::from(e.epoch))
                                    .with_last_sequence(e.batches.back().map_or(-1, |b| b.last_seq))
                                    .with_last_timestamp(-1)
                                    .with_coordinator_epoch(-1)
                                    .with_current_txn_start_offset(
                                        e.current_txn_first_offset.unwrap_or(-1),
                                    )
                            })
                            .collect();
                    }
                }
            }
            topic.partitions.push(part);
        }
        response.topics.push(topic);
    }
    response
}
