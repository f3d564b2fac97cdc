//! The controller service: the async shell around the controller's pure
//! decisions ([`crate::decide`], [`crate::controller`]). It runs on every
//! voter and acts only while its node is the Raft leader (the active
//! controller); elsewhere it answers `NotController` with a hint.
//!
//! One task owns the decision loop, fed by an mpsc channel: requests are
//! decided one at a time, each against the image after the previous proposal
//! applied (a proposal returns once applied on the leader), so two
//! concurrent requests never decide on the same stale image. The same task
//! tracks broker sessions (in memory, as KRaft does: heartbeats are not
//! records) and fences brokers whose session expired — or, sooner, a
//! broker that has gone quiet and whose quorum port refuses connections
//! (see [`silent_brokers`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::controller::{on_broker_fenced, on_broker_unfenced};
use crate::decide::{self, IsrChange};
use crate::image::MetadataImage;
use crate::raft::{MetadataQuorum, NodeId, QuorumError};
use crate::records::{BrokerId, MetadataRecord};
use crate::rpc::{
    ControllerError, ControllerRequest, ControllerResponse, ElectionResult, NewTopic, TopicInfo,
};

/// Timing of broker sessions.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// How often brokers should heartbeat (they read it from here); the
    /// service also checks sessions at half this period.
    pub heartbeat_interval: Duration,
    /// A broker not heard from for this long is fenced. Kafka's default
    /// (9 s) alone would be three times our 3 s failover goal; 1.5 s is
    /// seven missed heartbeats.
    pub session_timeout: Duration,
    /// The session a newly active controller grants every registered broker:
    /// long enough for live brokers to find it and heartbeat, short enough
    /// that a broker that died with the old controller is fenced quickly.
    pub new_controller_grace: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(200),
            session_timeout: Duration::from_millis(1500),
            new_controller_grace: Duration::from_millis(600),
        }
    }
}

type Reply = oneshot::Sender<Result<ControllerResponse, ControllerError>>;

/// Sends requests to the local controller service. Cheap to clone.
#[derive(Clone)]
pub struct ControllerHandle {
    tx: mpsc::Sender<(ControllerRequest, Reply)>,
}

impl ControllerHandle {
    /// Has the local service decide `req`. Answers `NotController` when this
    /// node is not the active controller.
    pub async fn call(
        &self,
        req: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        let stopped = || ControllerError::Unavailable("the controller service is stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx.send((req, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Starts the controller service of `quorum`'s member; it runs until
/// `shutdown` turns true (or its sender is dropped).
pub fn spawn_controller(
    quorum: Arc<MetadataQuorum>,
    config: ControllerConfig,
    shutdown: watch::Receiver<bool>,
) -> (ControllerHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(256);
    let (probe_tx, probe_rx) = mpsc::unbounded_channel();
    let service = Service {
        quorum,
        config,
        active_term: None,
        sessions: BTreeMap::new(),
        last_heard: BTreeMap::new(),
        probing: BTreeSet::new(),
        probe_tx,
        registered_at: BTreeMap::new(),
    };
    let task = tokio::spawn(service.run(rx, probe_rx, shutdown));
    (ControllerHandle { tx }, task)
}

/// The `NotController` answer of a member that is not the active
/// controller, pointing at the leader it knows.
pub(crate) fn not_controller(quorum: &MetadataQuorum) -> ControllerError {
    let leader = quorum.leader();
    ControllerError::NotController {
        leader,
        leader_addr: leader.and_then(|l| quorum.node_addr(l)),
    }
}

/// The epoch of a new registration: above the broker's previous one, and
/// the log index the registration is expected at (as KRaft uses the record's
/// offset), so epochs stay unique across an unregistration too.
fn next_broker_epoch(previous: Option<i64>, last_log_index: u64) -> i64 {
    let by_index = i64::try_from(last_log_index).unwrap_or(i64::MAX - 1) + 1;
    previous.map_or(1, |p| p + 1).max(by_index)
}

/// Unfenced brokers whose session deadline has passed.
fn expired_sessions(
    image: &MetadataImage,
    sessions: &BTreeMap<BrokerId, Instant>,
    now: Instant,
) -> Vec<BrokerId> {
    image
        .brokers()
        .values()
        .filter(|b| !b.fenced && sessions.get(&b.node_id).is_some_and(|d| *d <= now))
        .map(|b| b.node_id)
        .collect()
}

/// Unfenced brokers not heard from for `silence` (two missed heartbeats):
/// worth probing. A broker's process that died leaves its quorum port
/// refusing connections, and waiting out the whole session for it would
/// cost most of the failover time; a broker that is merely slow or cut off
/// still answers or times out, and keeps its session.
fn silent_brokers(
    image: &MetadataImage,
    last_heard: &BTreeMap<BrokerId, Instant>,
    now: Instant,
    silence: Duration,
) -> Vec<BrokerId> {
    image
        .brokers()
        .values()
        .filter(|b| {
            !b.fenced
                && last_heard
                    .get(&b.node_id)
                    .is_some_and(|heard| now.saturating_duration_since(*heard) >= silence)
        })
        .map(|b| b.node_id)
        .collect()
}

/// What a probe of a silent broker found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ProbeOutcome {
    /// Nothing listens there: the process is gone.
    Refused,
    /// It answered, or could not be reached in time (a network cut): no
    /// conclusion, the session decides.
    Inconclusive,
}

/// Whether a probe's answer fences the broker: only a refusal, only if it
/// is still unfenced and has not been heard from since the probe started.
fn fence_after_probe(
    image: &MetadataImage,
    node: BrokerId,
    outcome: ProbeOutcome,
    probe_started: Instant,
    last_heard: Option<Instant>,
) -> bool {
    outcome == ProbeOutcome::Refused
        && image.broker(node).is_some_and(|b| !b.fenced)
        && last_heard.is_none_or(|heard| heard <= probe_started)
}

/// Tries a TCP connection to `addr` within `timeout`.
async fn probe(addr: String, timeout: Duration) -> ProbeOutcome {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(&addr)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => ProbeOutcome::Refused,
        _ => ProbeOutcome::Inconclusive,
    }
}

/// What a heartbeat changes: controlled shutdown or a wish to be fenced
/// fences the broker (moving its leaderships away); a fenced broker that has
/// caught up with the log up to its registration is unfenced.
fn heartbeat_records(
    image: &MetadataImage,
    node: BrokerId,
    want_fence: bool,
    want_shutdown: bool,
    caught_up: bool,
) -> Vec<MetadataRecord> {
    let fenced = image.broker(node).is_some_and(|b| b.fenced);
    if want_shutdown || (want_fence && !fenced) {
        on_broker_fenced(image, node)
    } else if fenced && !want_fence && caught_up {
        on_broker_unfenced(image, node)
    } else {
        Vec::new()
    }
}

struct Service {
    quorum: Arc<MetadataQuorum>,
    config: ControllerConfig,
    /// The Raft term in which this node became the active controller, if it
    /// is; sessions are only meaningful within it.
    active_term: Option<u64>,
    /// Session deadline per broker.
    sessions: BTreeMap<BrokerId, Instant>,
    /// When each broker was last heard from (or this controller took over).
    last_heard: BTreeMap<BrokerId, Instant>,
    /// Brokers with a probe in flight.
    probing: BTreeSet<BrokerId>,
    /// Probes report here: (broker, when the probe started, outcome).
    probe_tx: mpsc::UnboundedSender<(BrokerId, Instant, ProbeOutcome)>,
    /// Log index of registrations made by this controller; a broker is
    /// caught up once it has applied its registration.
    registered_at: BTreeMap<BrokerId, u64>,
}

impl Service {
    async fn run(
        mut self,
        mut requests: mpsc::Receiver<(ControllerRequest, Reply)>,
        mut probes: mpsc::UnboundedReceiver<(BrokerId, Instant, ProbeOutcome)>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let period = (self.config.heartbeat_interval / 2).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = crate::signal::stop_requested(&mut shutdown) => break,
                call = requests.recv() => {
                    let Some((req, reply)) = call else { break };
                    let answer = match self.activate().await {
                        Ok(()) => self.handle(req).await,
                        Err(e) => Err(e),
                    };
                    // The caller may have given up; nothing to do then.
                    let _ = reply.send(answer);
                }
                // Fencing proposes, which waits for a majority: a member
                // asked to stop (perhaps because the others are going too)
                // must not wait out the proposal's timeout first.
                _ = tick.tick() => {
                    tokio::select! {
                        _ = crate::signal::stop_requested(&mut shutdown) => break,
                        _ = self.expire_sessions() => self.probe_silent_brokers(),
                    }
                }
                Some((node, started, outcome)) = probes.recv() => {
                    tokio::select! {
                        _ = crate::signal::stop_requested(&mut shutdown) => break,
                        _ = self.on_probe(node, started, outcome) => {}
                    }
                }
            }
        }
    }

    /// Makes sure this node is the active controller, taking over on the
    /// first call of a new term: catch up with the log, then give every
    /// registered broker a fresh, short session.
    async fn activate(&mut self) -> Result<(), ControllerError> {
        let term = self.quorum.term();
        if !self.quorum.is_controller() {
            if self.active_term.take().is_some() {
                tracing::info!(node = self.quorum.id(), "no longer the active controller");
            }
            self.sessions.clear();
            self.last_heard.clear();
            self.registered_at.clear();
            return Err(not_controller(&self.quorum));
        }
        if self.active_term == Some(term) {
            return Ok(());
        }
        self.quorum
            .catch_up_as_leader()
            .await
            .map_err(|e| self.error(e))?;
        let now = Instant::now();
        let deadline = now + self.config.new_controller_grace;
        let brokers: Vec<BrokerId> = self.quorum.image().brokers().keys().copied().collect();
        self.sessions = brokers.iter().map(|id| (*id, deadline)).collect();
        // Counted as silent from the start: a broker that died with the old
        // controller is probed (and, refusing, fenced) at once rather than
        // after the grace; live ones answer and keep their grace.
        let silent_since = now
            .checked_sub(self.config.heartbeat_interval * 2)
            .unwrap_or(now);
        self.last_heard = brokers.iter().map(|id| (*id, silent_since)).collect();
        self.registered_at.clear();
        self.active_term = Some(term);
        tracing::info!(
            node = self.quorum.id(),
            term,
            "became the active controller"
        );
        Ok(())
    }

    fn error(&self, e: QuorumError) -> ControllerError {
        match ControllerError::from(e) {
            ControllerError::NotController { leader, .. } => ControllerError::NotController {
                leader,
                leader_addr: leader.and_then(|l| self.quorum.node_addr(l)),
            },
            other => other,
        }
    }

    /// Proposes `records` as one batch (nothing if empty); returns the index
    /// the state now reflects.
    async fn propose(&mut self, records: Vec<MetadataRecord>) -> Result<u64, ControllerError> {
        if records.is_empty() {
            return Ok(self.quorum.applied_index());
        }
        match self.quorum.propose(records).await {
            Ok(index) => Ok(index),
            Err(e) => {
                if matches!(e, QuorumError::NotController { .. }) {
                    self.active_term = None;
                }
                Err(self.error(e))
            }
        }
    }

    fn refresh_session(&mut self, node: BrokerId) {
        let now = Instant::now();
        self.sessions
            .insert(node, now + self.config.session_timeout);
        self.last_heard.insert(node, now);
    }

    /// Probes the quorum port of every broker silent for two heartbeats
    /// (one probe per broker at a time; the answer comes back through the
    /// service loop so decisions stay on this task).
    fn probe_silent_brokers(&mut self) {
        if self.active_term.is_none() {
            return;
        }
        let image = self.quorum.image();
        let now = Instant::now();
        let silence = self.config.heartbeat_interval * 2;
        for node in silent_brokers(&image, &self.last_heard, now, silence) {
            let Ok(member) = NodeId::try_from(node) else {
                continue;
            };
            if member == self.quorum.id() || self.probing.contains(&node) {
                continue;
            }
            let Some(addr) = self.quorum.node_addr(member) else {
                continue;
            };
            self.probing.insert(node);
            let (results, timeout) = (self.probe_tx.clone(), self.config.heartbeat_interval);
            tokio::spawn(async move {
                let outcome = probe(addr, timeout).await;
                let _ = results.send((node, now, outcome));
            });
        }
    }

    async fn on_probe(&mut self, node: BrokerId, started: Instant, outcome: ProbeOutcome) {
        self.probing.remove(&node);
        if self.activate().await.is_err() {
            return;
        }
        let image = self.quorum.image();
        let heard = self.last_heard.get(&node).copied();
        if !fence_after_probe(&image, node, outcome, started, heard) {
            return;
        }
        let records = on_broker_fenced(&image, node);
        match self.propose(records).await {
            Ok(index) => tracing::warn!(
                node,
                index,
                "broker silent and its quorum port refuses connections; fenced"
            ),
            Err(e) => tracing::warn!(node, "fencing an unreachable broker failed: {e}"),
        }
    }

    async fn expire_sessions(&mut self) {
        if self.activate().await.is_err() {
            return;
        }
        let image = self.quorum.image();
        let grace = Instant::now() + self.config.new_controller_grace;
        let now = Instant::now();
        for id in image.brokers().keys() {
            self.sessions.entry(*id).or_insert(grace);
            self.last_heard.entry(*id).or_insert(now);
        }
        for node in expired_sessions(&image, &self.sessions, Instant::now()) {
            // Each decided against the image after the previous fence applied.
            let records = on_broker_fenced(&self.quorum.image(), node);
            match self.propose(records).await {
                Ok(index) => {
                    tracing::warn!(node, index, "broker session expired; fenced")
                }
                Err(e) => tracing::warn!(node, "fencing an expired broker failed: {e}"),
            }
        }
    }

    async fn handle(
        &mut self,
        req: ControllerRequest,
    ) -> Result<ControllerResponse, ControllerError> {
        match req {
            ControllerRequest::RegisterBroker {
                node_id,
                incarnation_id,
                endpoints,
                rack,
                quorum_addr,
            } => {
                let broker_epoch = self
                    .register_broker(node_id, incarnation_id, endpoints, rack, &quorum_addr)
                    .await?;
                Ok(ControllerResponse::RegisterBroker { broker_epoch })
            }
            ControllerRequest::BrokerHeartbeat {
                node_id,
                broker_epoch,
                applied_index,
                want_fence,
                want_shutdown,
            } => {
                self.heartbeat(
                    node_id,
                    broker_epoch,
                    applied_index,
                    want_fence,
                    want_shutdown,
                )
                .await
            }
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            } => Ok(ControllerResponse::CreateTopics(
                self.create_topics(topics, validate_only).await,
            )),
            ControllerRequest::DeleteTopics { names } => {
                let mut results = Vec::with_capacity(names.len());
                for name in names {
                    let result = match decide::delete_topic(&self.quorum.image(), &name) {
                        Ok(record) => {
                            let id = match &record {
                                MetadataRecord::RemoveTopic { topic_id } => *topic_id,
                                _ => Uuid::nil(),
                            };
                            self.propose(vec![record]).await.map(|_| id)
                        }
                        Err(e) => Err(e),
                    };
                    results.push((name, result));
                }
                Ok(ControllerResponse::DeleteTopics(results))
            }
            ControllerRequest::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => {
                let image = self.quorum.image();
                let records =
                    decide::create_partitions(&image, &topic, count, assignments.as_deref())?;
                let info = self
                    .apply_or_preview(&image, records, validate_only)
                    .await?;
                let topic_id = image.topic_by_name(&topic).map(|t| t.id);
                topic_id
                    .and_then(|id| decide::topic_info(&info, &id))
                    .map(ControllerResponse::CreatePartitions)
                    .ok_or(ControllerError::UnknownTopic(topic))
            }
            ControllerRequest::AlterConfigs { resource, changes } => {
                let records = decide::alter_configs(&self.quorum.image(), &resource, &changes)?;
                self.propose(records).await?;
                Ok(ControllerResponse::AlterConfigs)
            }
            ControllerRequest::AllocateProducerIds {
                node_id,
                broker_epoch,
                count,
            } => {
                let image = self.quorum.image();
                decide::registered_broker(&image, node_id, broker_epoch)?;
                let (first_id, record) = decide::allocate_producer_ids(&image, count)?;
                self.propose(vec![record]).await?;
                Ok(ControllerResponse::ProducerIds { first_id, count })
            }
            ControllerRequest::AlterPartition {
                node_id,
                broker_epoch,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => {
                let image = self.quorum.image();
                decide::registered_broker(&image, node_id, broker_epoch)?;
                let change = IsrChange {
                    node_id,
                    topic_id,
                    partition,
                    leader_epoch,
                    partition_epoch,
                    new_isr,
                };
                // The ISR expansion that brings a reassignment's last new
                // replica in sync also completes the move, in this record.
                let record = decide::alter_partition(&image, &change)?;
                self.propose(record.into_iter().collect()).await?;
                self.quorum
                    .image()
                    .partition(&topic_id, partition)
                    .cloned()
                    .map(ControllerResponse::AlterPartition)
                    .ok_or(ControllerError::UnknownPartition {
                        topic_id,
                        partition,
                    })
            }
            ControllerRequest::AlterPartitionReassignments {
                reassignments,
                allow_replication_factor_change,
            } => {
                let (records, results) = decide::alter_reassignments(
                    &self.quorum.image(),
                    &reassignments,
                    allow_replication_factor_change,
                );
                // One batch: the entries were decided in order on a preview,
                // so they commit (or fail) together as decided.
                let proposed = self.propose(records).await;
                Ok(ControllerResponse::AlterPartitionReassignments(
                    reassignments
                        .into_iter()
                        .zip(results)
                        .map(|(entry, result)| {
                            let result =
                                result.and(proposed.as_ref().map(|_| ()).map_err(Clone::clone));
                            (entry, result)
                        })
                        .collect(),
                ))
            }
            ControllerRequest::ListPartitionReassignments { partitions } => {
                Ok(ControllerResponse::ListPartitionReassignments(
                    decide::list_reassignments(&self.quorum.image(), partitions.as_deref()),
                ))
            }
            ControllerRequest::UnregisterBroker { node_id } => {
                let records = decide::unregister_broker(&self.quorum.image(), node_id)?;
                self.propose(records).await?;
                self.sessions.remove(&node_id);
                self.last_heard.remove(&node_id);
                self.registered_at.remove(&node_id);
                // It no longer replicates the metadata log either (a voter
                // stays: the voter set is static).
                if let Ok(member) = NodeId::try_from(node_id)
                    && !self.quorum.is_voter(member)
                {
                    self.quorum
                        .remove_learner(member)
                        .await
                        .map_err(|e| self.error(e))?;
                }
                Ok(ControllerResponse::UnregisterBroker)
            }
            ControllerRequest::AlterScramCredentials {
                deletions,
                upsertions,
            } => {
                let (records, results) = crate::credentials::alter_scram_credentials(
                    &self.quorum.image(),
                    &deletions,
                    &upsertions,
                );
                // One batch: the users that passed commit (or fail) together.
                let proposed = self.propose(records).await;
                Ok(ControllerResponse::AlterScramCredentials(
                    results
                        .into_iter()
                        .map(|(user, result)| {
                            let result =
                                result.and(proposed.as_ref().map(|_| ()).map_err(Clone::clone));
                            (user, result)
                        })
                        .collect(),
                ))
            }
            ControllerRequest::CreateAcls { acls } => {
                let (records, results) = crate::acls::create_acls(&self.quorum.image(), &acls);
                let proposed = self.propose(records).await;
                Ok(ControllerResponse::CreateAcls(
                    results
                        .into_iter()
                        .map(|r| r.and(proposed.as_ref().map(|_| ()).map_err(Clone::clone)))
                        .collect(),
                ))
            }
            ControllerRequest::AlterClientQuotas {
                alterations,
                validate_only,
            } => {
                let (records, results) =
                    crate::quotas::alter_client_quotas(&self.quorum.image(), &alterations);
                let proposed = if validate_only {
                    Ok(())
                } else {
                    // One batch, as Kafka applies an AlterClientQuotas atomically.
                    self.propose(records).await.map(|_| ())
                };
                Ok(ControllerResponse::AlterClientQuotas(
                    results
                        .into_iter()
                        .map(|r| r.and(proposed.clone()))
                        .collect(),
                ))
            }
            ControllerRequest::DeleteAcls { filters } => {
                let (records, matched) = crate::acls::delete_acls(&self.quorum.image(), &filters);
                self.propose(records).await?;
                Ok(ControllerResponse::DeleteAcls(matched))
            }
            ControllerRequest::ElectLeaders { partitions } => {
                let (records, results) =
                    decide::elect_preferred(&self.quorum.image(), partitions.as_deref());
                let proposed = self.propose(records).await;
                Ok(ControllerResponse::ElectLeaders(
                    results
                        .into_iter()
                        .map(|((topic_id, partition), result)| ElectionResult {
                            topic_id,
                            partition,
                            result: match (&proposed, result) {
                                (Err(e), Ok(_)) => Err(e.clone()),
                                (_, r) => r,
                            },
                        })
                        .collect(),
                ))
            }
        }
    }

    async fn register_broker(
        &mut self,
        node_id: BrokerId,
        incarnation_id: Uuid,
        endpoints: Vec<crate::records::Endpoint>,
        rack: Option<String>,
        quorum_addr: &str,
    ) -> Result<i64, ControllerError> {
        let learner_id = NodeId::try_from(node_id).map_err(|_| {
            ControllerError::InvalidRequest(format!("broker id {node_id} is invalid: must be >= 0"))
        })?;
        // The broker must replicate the metadata log before it can catch up
        // and be unfenced; voters already do.
        if !self.quorum.is_voter(learner_id) {
            self.quorum
                .add_learner(learner_id, quorum_addr)
                .await
                .map_err(|e| self.error(e))?;
        }
        let image = self.quorum.image();
        let previous = image.broker(node_id);
        if let Some(same) = previous.filter(|b| b.incarnation_id == incarnation_id) {
            // The same process asking again (its answer was lost): same epoch.
            let epoch = same.epoch;
            self.refresh_session(node_id);
            return Ok(epoch);
        }
        let epoch = next_broker_epoch(previous.map(|b| b.epoch), self.quorum.last_log_index());
        // A new incarnation replaces the old one: first move the old one's
        // leaderships away and drop it from ISRs, as a fence would.
        let mut records = match previous {
            Some(_) => on_broker_fenced(&image, node_id),
            None => Vec::new(),
        };
        records.push(MetadataRecord::RegisterBroker {
            node_id,
            epoch,
            incarnation_id,
            endpoints,
            rack,
        });
        let index = self.propose(records).await?;
        self.registered_at.insert(node_id, index);
        self.refresh_session(node_id);
        Ok(epoch)
    }

    async fn heartbeat(
        &mut self,
        node_id: BrokerId,
        broker_epoch: i64,
        applied_index: u64,
        want_fence: bool,
        want_shutdown: bool,
    ) -> Result<ControllerResponse, ControllerError> {
        let image = self.quorum.image();
        decide::registered_broker(&image, node_id, broker_epoch)?;
        self.refresh_session(node_id);
        // Registered by an earlier controller: its epoch is (at most) the
        // registration's index.
        let registered_at = self
            .registered_at
            .get(&node_id)
            .copied()
            .unwrap_or_else(|| u64::try_from(broker_epoch).unwrap_or(0));
        let caught_up = applied_index >= registered_at;
        let records = heartbeat_records(&image, node_id, want_fence, want_shutdown, caught_up);
        self.propose(records).await?;
        let image = self.quorum.image();
        let is_fenced = image.broker(node_id).is_none_or(|b| b.fenced);
        let shutdown_ready =
            want_shutdown && is_fenced && decide::led_by(&image, node_id).is_empty();
        Ok(ControllerResponse::BrokerHeartbeat {
            is_fenced,
            shutdown_ready,
        })
    }

    async fn create_topics(
        &mut self,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<(String, Result<TopicInfo, ControllerError>)> {
        // With validate_only, later topics are checked against a preview
        // that includes the earlier ones, so duplicates are still caught.
        let mut preview = (*self.quorum.image()).clone();
        let mut results = Vec::with_capacity(topics.len());
        for topic in topics {
            let topic_id = Uuid::new_v4();
            let base = if validate_only {
                Arc::new(preview.clone())
            } else {
                self.quorum.image()
            };
            let result = match decide::create_topic(&base, &topic, topic_id) {
                Ok(records) => self
                    .apply_or_preview(&base, records, validate_only)
                    .await
                    .and_then(|after| {
                        let info = decide::topic_info(&after, &topic_id);
                        if validate_only {
                            preview = after;
                        }
                        info.ok_or_else(|| ControllerError::UnknownTopic(topic.name.clone()))
                    }),
                Err(e) => Err(e),
            };
            results.push((topic.name, result));
        }
        results
    }

    /// Proposes `records`, or with `validate_only` applies them to a copy of
    /// `image`; returns the image after.
    async fn apply_or_preview(
        &mut self,
        image: &MetadataImage,
        records: Vec<MetadataRecord>,
        validate_only: bool,
    ) -> Result<MetadataImage, ControllerError> {
        if validate_only {
            let mut preview = image.clone();
            preview
                .apply_batch(&records)
                .map_err(ControllerError::Rejected)?;
            return Ok(preview);
        }
        self.propose(records).await?;
        Ok((*self.quorum.image()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn broker_epochs_grow_past_the_previous_and_the_log() {
        assert_eq!(next_broker_epoch(None, 0), 1);
        assert_eq!(next_broker_epoch(None, 41), 42);
        assert_eq!(next_broker_epoch(Some(100), 41), 101);
        assert_eq!(next_broker_epoch(Some(3), 41), 42);
    }

    fn image_with(fenced: &[(BrokerId, bool)]) -> MetadataImage {
        let mut image = MetadataImage::default();
        for &(id, f) in fenced {
            let mut batch = vec![MetadataRecord::RegisterBroker {
                node_id: id,
                epoch: 1,
                incarnation_id: Uuid::nil(),
                endpoints: vec![],
                rack: None,
            }];
            if !f {
                batch.push(MetadataRecord::UnfenceBroker {
                    node_id: id,
                    epoch: 1,
                });
            }
            image.apply_batch(&batch).unwrap();
        }
        image
    }

    #[test]
    fn only_unfenced_brokers_past_their_deadline_expire() {
        let image = image_with(&[(1, false), (2, false), (3, true), (4, false)]);
        let now = Instant::now();
        let sessions = BTreeMap::from([
            (1, now - Duration::from_millis(1)),
            (2, now + Duration::from_secs(1)),
            (3, now - Duration::from_secs(1)),
        ]);
        // 4 has no session yet: the shell grants it one before checking.
        assert_eq!(expired_sessions(&image, &sessions, now), vec![1]);
    }

    #[test]
    fn silent_unfenced_brokers_are_probed_and_only_a_refusal_fences() {
        let image = image_with(&[(1, false), (2, false), (3, true)]);
        let now = Instant::now();
        let ms = Duration::from_millis;
        let last_heard =
            BTreeMap::from([(1, now - ms(500)), (2, now - ms(100)), (3, now - ms(900))]);
        // 3 is fenced already, 2 spoke recently.
        assert_eq!(silent_brokers(&image, &last_heard, now, ms(400)), vec![1]);
        let started = now;
        assert!(fence_after_probe(
            &image,
            1,
            ProbeOutcome::Refused,
            started,
            Some(now - ms(500))
        ));
        // A timeout or an answer proves nothing: the session decides.
        assert!(!fence_after_probe(
            &image,
            1,
            ProbeOutcome::Inconclusive,
            started,
            Some(now - ms(500))
        ));
        // Heard from while the probe was out: alive (restarted, or the port
        // was briefly closed).
        assert!(!fence_after_probe(
            &image,
            1,
            ProbeOutcome::Refused,
            started,
            Some(now + ms(1))
        ));
        assert!(!fence_after_probe(
            &image,
            3,
            ProbeOutcome::Refused,
            started,
            None
        ));
    }

    #[test]
    fn heartbeats_fence_on_request_and_unfence_once_caught_up() {
        let image = image_with(&[(1, true), (2, false)]);
        assert!(heartbeat_records(&image, 1, false, false, false).is_empty());
        assert_eq!(
            heartbeat_records(&image, 1, false, false, true),
            vec![MetadataRecord::UnfenceBroker {
                node_id: 1,
                epoch: 1
            }]
        );
        assert!(heartbeat_records(&image, 1, true, false, true).is_empty());
        assert_eq!(
            heartbeat_records(&image, 2, false, true, true),
            vec![MetadataRecord::FenceBroker {
                node_id: 2,
                epoch: 1
            }]
        );
        assert!(heartbeat_records(&image, 2, false, false, true).is_empty());
    }
}
