//! The task-group gRPC service (`weir.tasks.v1.TaskGroups`), served on
//! every Kafka listener: `server.rs` hands over a connection whose first
//! byte starts the HTTP/2 preface (`PRI * HTTP/2.0…`) — as a Kafka frame
//! size that byte would mean over a gigabyte, so no Kafka client sends it.
//!
//! A request goes to the coordinator shard of its group id, as Kafka group
//! requests do: a group coordinated elsewhere answers NOT_COORDINATOR and
//! the member looks the coordinator up again with FindCoordinator.
//! Internal topics a group's topology lacks (changelogs, repartition
//! topics) are created here, through the controller.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use weir_client::acl::Operation;

use kafka_protocol::error::ResponseError;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};
use weir_client::task_group::proto;
use weir_client::task_group::proto::task_groups_server::{TaskGroups, TaskGroupsServer};
use weir_coordinator::tasks::group::{
    DescribedTaskGroup, Endpoint, EndpointPartitions, HeartbeatInput, HeartbeatOutput,
};
use weir_coordinator::tasks::topology::{self, InternalTopic};
use weir_coordinator::tasks::{TaskId, Tasks};
use weir_quorum::rpc::NewTopic;

use crate::broker::BrokerState;

/// Connections for the gRPC server, from the Kafka listeners.
pub type GrpcConnections = mpsc::Sender<TcpStream>;

/// Serves task-group calls on the connections the listeners hand over,
/// until `shutdown`.
pub async fn serve(
    state: Arc<BrokerState>,
    connections: mpsc::Receiver<TcpStream>,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = Service {
        state,
        creating: Arc::new(Mutex::new(HashSet::new())),
    };
    let incoming = ReceiverStream::new(connections);
    let incoming = tokio_stream::StreamExt::map(incoming, Ok::<_, std::io::Error>);
    let stopped = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(TaskGroupsServer::new(service))
        .serve_with_incoming_shutdown(incoming, stopped)
        .await
    {
        warn!(error = %e, "task-group service stopped");
    }
}

struct Service {
    state: Arc<BrokerState>,
    /// Internal topics being created, so heartbeats do not pile up requests.
    creating: Arc<Mutex<HashSet<String>>>,
}

fn task_id(t: proto::TaskId) -> TaskId {
    TaskId::new(t.subtopology, t.partition)
}

fn task_ids(ts: Vec<proto::TaskId>) -> BTreeSet<TaskId> {
    ts.into_iter().map(task_id).collect()
}

fn tasks_of(set: proto::TaskSet) -> Tasks {
    Tasks {
        active: task_ids(set.active),
        standby: task_ids(set.standby),
        warmup: task_ids(set.warmup),
    }
}

fn proto_ids(ts: &BTreeSet<TaskId>) -> Vec<proto::TaskId> {
    ts.iter()
        .map(|t| proto::TaskId {
            subtopology: t.subtopology.clone(),
            partition: t.partition,
        })
        .collect()
}

fn proto_tasks(t: &Tasks) -> proto::TaskSet {
    proto::TaskSet {
        active: proto_ids(&t.active),
        standby: proto_ids(&t.standby),
        warmup: proto_ids(&t.warmup),
    }
}

fn internal_topic(t: proto::InternalTopic) -> Result<InternalTopic, String> {
    let replication_factor = match t.replication_factor {
        0 => -1,
        n => i16::try_from(n).map_err(|_| {
            format!(
                "Internal topic {} has replication factor {n}, out of range.",
                t.name
            )
        })?,
    };
    Ok(InternalTopic {
        name: t.name,
        partitions: t.partitions,
        replication_factor,
        configs: t.configs.into_iter().collect(),
    })
}

fn topology_of(t: proto::Topology) -> Result<topology::Topology, String> {
    let subtopologies = t
        .subtopologies
        .into_iter()
        .map(|s| {
            Ok(topology::Subtopology {
                id: s.id,
                source_topics: s.source_topics,
                repartition_sources: s
                    .repartition_sources
                    .into_iter()
                    .map(internal_topic)
                    .collect::<Result<_, String>>()?,
                repartition_sinks: s.repartition_sinks,
                changelogs: s
                    .changelogs
                    .into_iter()
                    .map(internal_topic)
                    .collect::<Result<_, String>>()?,
                copartition_groups: s.copartition_groups.into_iter().map(|g| g.topics).collect(),
                task_count: s.task_count,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(topology::Topology {
        epoch: t.epoch,
        subtopologies,
        num_standby_replicas: t.num_standby_replicas,
        acceptable_recovery_lag: t.acceptable_recovery_lag,
        max_warmup_replicas: t.max_warmup_replicas,
    })
}

fn endpoint_of(e: proto::Endpoint) -> Result<Endpoint, String> {
    let port =
        u16::try_from(e.port).map_err(|_| format!("Endpoint port {} is out of range.", e.port))?;
    Ok(Endpoint { host: e.host, port })
}

fn proto_endpoint(e: &Endpoint) -> proto::Endpoint {
    proto::Endpoint {
        host: e.host.clone(),
        port: u32::from(e.port),
    }
}

fn offsets_of(o: proto::TaskOffsets) -> HashMap<TaskId, i64> {
    o.offsets
        .into_iter()
        .filter_map(|o| Some((task_id(o.task?), o.offset)))
        .collect()
}

fn input_of(req: proto::HeartbeatRequest, client_host: String) -> Result<HeartbeatInput, String> {
    Ok(HeartbeatInput {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id,
        rack_id: req.rack_id,
        process_id: req.process_id,
        endpoint: req.endpoint.map(endpoint_of).transpose()?,
        weight: req.threads,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        session_timeout_ms: req.session_timeout_ms,
        topology: req.topology.map(topology_of).transpose()?,
        owned: req.owned.map(tasks_of),
        offsets: req.offsets.map(offsets_of),
        end_offsets: req.end_offsets.map(offsets_of),
        endpoint_epoch: req.endpoint_epoch,
        client_id: req.client_id,
        client_host,
    })
}

fn topic_partitions(ps: &[(String, i32)]) -> Vec<proto::TopicPartitions> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in ps {
        by_topic.entry(t).or_default().push(*p);
    }
    by_topic
        .into_iter()
        .map(|(topic, partitions)| proto::TopicPartitions {
            topic: topic.to_owned(),
            partitions,
        })
        .collect()
}

fn proto_statuses(statuses: &[topology::Status]) -> Vec<proto::Status> {
    statuses
        .iter()
        .map(|s| proto::Status {
            code: s.code as i32,
            detail: s.detail.clone(),
        })
        .collect()
}

fn response_of(out: HeartbeatOutput) -> proto::HeartbeatResponse {
    proto::HeartbeatResponse {
        error_code: i32::from(out.error),
        error_message: out.message.unwrap_or_default(),
        member_id: out.member_id,
        member_epoch: out.member_epoch,
        heartbeat_interval_ms: out.heartbeat_interval_ms,
        assignment: out.assignment.as_ref().map(proto_tasks),
        statuses: proto_statuses(&out.statuses),
        endpoint_epoch: out.endpoint_epoch,
        endpoints: out.endpoints.map(|es| proto::EndpointMap {
            endpoints: es
                .iter()
                .map(|e: &EndpointPartitions| proto::EndpointPartitions {
                    endpoint: Some(proto_endpoint(&e.endpoint)),
                    active: topic_partitions(&e.active),
                    standby: topic_partitions(&e.standby),
                })
                .collect(),
        }),
    }
}

fn refusal(code: i16, message: impl Into<String>) -> proto::HeartbeatResponse {
    proto::HeartbeatResponse {
        error_code: i32::from(code),
        error_message: message.into(),
        ..proto::HeartbeatResponse::default()
    }
}

fn described(group_id: String, d: DescribedTaskGroup) -> proto::DescribedGroup {
    proto::DescribedGroup {
        group_id,
        error_code: 0,
        error_message: String::new(),
        state: d.state.as_str().to_owned(),
        group_epoch: d.group_epoch,
        assignment_epoch: d.assignment_epoch,
        topology_epoch: d.topology_epoch,
        statuses: proto_statuses(&d.statuses),
        members: d
            .members
            .into_iter()
            .map(|m| {
                let member = m.member.record;
                proto::DescribedMember {
                    member_id: member.member_id,
                    instance_id: member.instance_id,
                    rack_id: member.rack_id,
                    process_id: member.process_id,
                    endpoint: member.endpoint.as_ref().map(proto_endpoint),
                    threads: member.weight,
                    client_id: member.client_id,
                    client_host: member.client_host,
                    member_epoch: member.member_epoch,
                    state: member.state.as_str().to_owned(),
                    assigned: Some(proto_tasks(&member.assigned)),
                    target: Some(proto_tasks(&m.target)),
                    lags: m
                        .lags
                        .into_iter()
                        .map(|(t, lag)| proto::TaskLag {
                            task: Some(proto::TaskId {
                                subtopology: t.subtopology,
                                partition: t.partition,
                            }),
                            lag,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

impl Service {
    /// Creates the topics a topology lacks, in the background, once each.
    fn create_missing(&self, topics: Vec<InternalTopic>) {
        let todo: Vec<InternalTopic> = {
            let mut creating = self.creating.lock().unwrap_or_else(|p| p.into_inner());
            topics
                .into_iter()
                .filter(|t| creating.insert(t.name.clone()))
                .collect()
        };
        if todo.is_empty() {
            return;
        }
        let state = Arc::clone(&self.state);
        let creating = Arc::clone(&self.creating);
        tokio::spawn(async move {
            let names: Vec<String> = todo.iter().map(|t| t.name.clone()).collect();
            let new: Vec<NewTopic> = todo
                .into_iter()
                .map(|t| NewTopic {
                    name: t.name,
                    partitions: t.partitions.max(1),
                    replication_factor: if t.replication_factor > 0 {
                        t.replication_factor
                    } else {
                        state.config.default_replication_factor()
                    },
                    assignments: None,
                    configs: t.configs,
                })
                .collect();
            for (name, result) in names
                .iter()
                .zip(state.cluster.create_topics(new, false).await)
            {
                match result {
                    Ok(()) => info!(topic = %name, "created a task group's internal topic"),
                    Err(e) => {
                        warn!(topic = %name, error = %e, "could not create a task group's internal topic")
                    }
                }
            }
            let mut creating = creating.lock().unwrap_or_else(|p| p.into_inner());
            for name in &names {
                creating.remove(name);
            }
        });
    }
}

impl Service {
    /// What a task-group member may do. gRPC is served on PLAINTEXT
    /// listeners without SASL only, so its members are anonymous.
    fn access(&self, peer: Option<std::net::SocketAddr>) -> crate::authorizer::Access<'_> {
        let host = peer
            .map(|a| a.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        self.state.authorizer.access(
            || self.state.cluster.image().acls().clone(),
            crate::sasl::ANONYMOUS,
            host,
        )
    }
}

#[tonic::async_trait]
impl TaskGroups for Service {
    async fn heartbeat(
        &self,
        request: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::HeartbeatResponse>, Status> {
        let peer = request.remote_addr();
        let host = peer.map(|a| format!("/{}", a.ip())).unwrap_or_default();
        let req = request.into_inner();
        let group_id = req.group_id.clone();
        if !self.access(peer).group(Operation::Read, &group_id) {
            let e = ResponseError::GroupAuthorizationFailed;
            return Ok(Response::new(refusal(e.code(), e.to_string())));
        }
        let (coordinator, partition) =
            match crate::groups::local_coordinator(&self.state, &group_id) {
                Ok(c) => c,
                Err(e) => return Ok(Response::new(refusal(e.code(), e.to_string()))),
            };
        let input = match input_of(req, host) {
            Ok(input) => input,
            Err(message) => {
                return Ok(Response::new(refusal(
                    ResponseError::InvalidRequest.code(),
                    message,
                )));
            }
        };
        let mut beat = coordinator.task_group_heartbeat(&group_id, input).await;
        // As for consumer groups: answered once the in-sync replicas hold
        // what it wrote, so a failover never takes an answer back.
        crate::groups::await_membership_replicated(&self.state, partition, &mut beat.output.error)
            .await;
        self.create_missing(beat.missing_topics);
        Ok(Response::new(response_of(beat.output)))
    }

    async fn describe(
        &self,
        request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::DescribeResponse>, Status> {
        let mut groups = Vec::new();
        let peer = request.remote_addr();
        for group_id in request.into_inner().group_ids {
            let found = match crate::groups::local_coordinator(&self.state, &group_id) {
                _ if !self.access(peer).group(Operation::Describe, &group_id) => {
                    let e = ResponseError::GroupAuthorizationFailed;
                    Err((e.code(), e.to_string()))
                }
                Ok((c, _)) => c.describe_task_group(&group_id).await,
                Err(e) => Err((e.code(), e.to_string())),
            };
            groups.push(match found {
                Ok(d) => described(group_id, d),
                Err((code, message)) => proto::DescribedGroup {
                    group_id,
                    error_code: i32::from(code),
                    error_message: message,
                    state: "Dead".into(),
                    ..proto::DescribedGroup::default()
                },
            });
        }
        Ok(Response::new(proto::DescribeResponse { groups }))
    }
}
