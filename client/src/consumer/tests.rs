//! The consumer against a scripted broker: exact request sequences and
//! answers no real broker gives on demand (a coordinator still loading).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartitions, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

use super::{Consumer, ConsumerConfig, OffsetReset};
use crate::config::ClientConfig;
use crate::conn::tests::{encode_msg, fake_tcp_broker};
use crate::util::sb;

#[derive(Default)]
struct Group {
    joins: usize,
    assignment: Bytes,
    finds: usize,
    /// Error codes the next OffsetCommits answer, in turn; then success.
    commit_errors: Vec<i16>,
    commits: Vec<OffsetCommitRequest>,
    fetches: Vec<FetchRequest>,
}

fn answer(port: u16, g: &Mutex<Group>, api: i16, v: i16, mut body: Bytes) -> Option<Bytes> {
    Some(match api {
        18 => {
            let keys = [
                (18, 0, 4),
                (3, 0, 12),
                (10, 0, 6),
                (11, 0, 9),
                (14, 0, 5),
                (12, 0, 4),
                (9, 1, 9),
                (2, 1, 9),
                (1, 4, 12),
                (13, 0, 5),
                (8, 2, 9),
            ]
            .iter()
            .map(|&(k, min, max)| {
                ApiVersion::default()
                    .with_api_key(k)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
            encode_msg(&ApiVersionsResponse::default().with_api_keys(keys), v)
        }
        3 => encode_msg(
            &MetadataResponse::default()
                .with_brokers(vec![
                    MetadataResponseBroker::default()
                        .with_node_id(0.into())
                        .with_host(sb("127.0.0.1"))
                        .with_port(port as i32),
                ])
                .with_topics(vec![
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(sb("t"))))
                        .with_partitions(
                            (0..3)
                                .map(|p| {
                                    MetadataResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_leader_id(0.into())
                                })
                                .collect(),
                        ),
                ]),
            v,
        ),
        10 => {
            g.lock().unwrap().finds += 1;
            encode_msg(
                &FindCoordinatorResponse::default().with_coordinators(vec![
                    Coordinator::default()
                        .with_key(sb("g"))
                        .with_node_id(0.into())
                        .with_host(sb("127.0.0.1"))
                        .with_port(port as i32),
                ]),
                v,
            )
        }
        8 => {
            let req = OffsetCommitRequest::decode(&mut body, v).unwrap();
            let mut g = g.lock().unwrap();
            let code = if g.commit_errors.is_empty() {
                0
            } else {
                g.commit_errors.remove(0)
            };
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            g.commits.push(req);
            encode_msg(&OffsetCommitResponse::default().with_topics(topics), v)
        }
        11 => {
            let req = JoinGroupRequest::decode(&mut body, v).unwrap();
            let mut g = g.lock().unwrap();
            g.joins += 1;
            let resp = if req.member_id.is_empty() {
                JoinGroupResponse::default()
                    .with_error_code(ResponseError::MemberIdRequired.code())
                    .with_member_id(sb("m-1"))
            } else {
                assert_eq!(req.member_id.as_str(), "m-1");
                JoinGroupResponse::default()
                    .with_generation_id(1)
                    .with_protocol_type(Some(sb("consumer")))
                    .with_protocol_name(Some(req.protocols[0].name.clone()))
                    .with_leader(sb("m-1"))
                    .with_member_id(sb("m-1"))
                    .with_members(vec![
                        JoinGroupResponseMember::default()
                            .with_member_id(sb("m-1"))
                            .with_metadata(req.protocols[0].metadata.clone()),
                    ])
            };
            encode_msg(&resp, v)
        }
        14 => {
            let req = SyncGroupRequest::decode(&mut body, v).unwrap();
            let mut g = g.lock().unwrap();
            if let Some(a) = req
                .assignments
                .iter()
                .find(|a| a.member_id.as_str() == "m-1")
            {
                g.assignment = a.assignment.clone();
            }
            encode_msg(
                &SyncGroupResponse::default().with_assignment(g.assignment.clone()),
                v,
            )
        }
        12 => encode_msg(&HeartbeatResponse::default(), v),
        9 => {
            let parts = (0..3)
                .map(|p| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p)
                        .with_committed_offset(if p == 0 { 5 } else { -1 })
                })
                .collect();
            encode_msg(
                &OffsetFetchResponse::default().with_groups(vec![
                    OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(sb("g")))
                        .with_topics(vec![
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb("t")))
                                .with_partitions(parts),
                        ]),
                ]),
                v,
            )
        }
        2 => {
            let req = ListOffsetsRequest::decode(&mut body, v).unwrap();
            let topics = req
                .topics
                .iter()
                .map(|t| {
                    ListOffsetsTopicResponse::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_offset(2)
                                })
                                .collect(),
                        )
                })
                .collect();
            encode_msg(&ListOffsetsResponse::default().with_topics(topics), v)
        }
        1 => {
            let req = FetchRequest::decode(&mut body, v).unwrap();
            // A new session (epoch 0) is given id 77.
            let session_id = if req.session_epoch == 0 {
                77
            } else {
                req.session_id
            };
            let answer_session = req.session_epoch >= 0;
            let responses = req
                .topics
                .iter()
                .map(|t| {
                    FetchableTopicResponse::default()
                        .with_topic(t.topic.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_records(None)
                                })
                                .collect(),
                        )
                })
                .collect();
            g.lock().unwrap().fetches.push(req);
            encode_msg(
                &FetchResponse::default()
                    .with_session_id(if answer_session { session_id } else { 0 })
                    .with_responses(responses),
                v,
            )
        }
        13 => encode_msg(&LeaveGroupResponse::default(), v),
        _ => return None,
    })
}

#[tokio::test]
async fn joins_with_member_id_required_and_leads_the_assignment() {
    let group = Arc::new(Mutex::new(Group::default()));
    let g = group.clone();
    let port =
        fake_tcp_broker(move |port| move |api, v, body| answer(port, &g, api, v, body)).await;
    let client = ClientConfig::new(format!("127.0.0.1:{port}"));
    let config = ConsumerConfig {
        group_id: Some("g".into()),
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(20),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(client, config).await.unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
    assert!(records.is_empty());
    assert_eq!(
        group.lock().unwrap().joins,
        2,
        "first join only fetches a member id"
    );
    assert_eq!(consumer.group_member(), Some((1, "m-1".to_string())));
    let t = |p| ("t".to_string(), p);
    assert_eq!(consumer.assignment(), vec![t(0), t(1), t(2)]);
    // Partition 0 resumes at its committed offset, the others reset.
    assert_eq!(consumer.position("t", 0), Some(5));
    assert_eq!(consumer.position("t", 1), Some(2));
    consumer.close().await.unwrap();
}

/// A coordinator still loading its groups, then one that has moved: the
/// commit is retried, after finding the coordinator again, until it lands,
/// with its leader epoch and metadata.
#[tokio::test]
async fn a_commit_retries_a_loading_or_moved_coordinator() {
    let group = Arc::new(Mutex::new(Group {
        commit_errors: vec![
            ResponseError::CoordinatorLoadInProgress.code(),
            ResponseError::NotCoordinator.code(),
        ],
        ..Group::default()
    }));
    let g = group.clone();
    let port =
        fake_tcp_broker(move |port| move |api, v, body| answer(port, &g, api, v, body)).await;
    let client = ClientConfig::new(format!("127.0.0.1:{port}"));
    let config = ConsumerConfig {
        group_id: Some("g".into()),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(client, config).await.unwrap();
    consumer.assign(&[("t", 0)]);
    consumer
        .commit_offsets_with(&[super::CommitOffset::new("t", 0, 42)
            .with_leader_epoch(3)
            .with_metadata("m")])
        .await
        .expect("commit lands once the coordinator answers");
    let g = group.lock().unwrap();
    assert_eq!(g.commits.len(), 3, "two refused, one stored");
    assert!(g.finds >= 3, "the coordinator looked up again: {}", g.finds);
    let p = &g.commits[2].topics[0].partitions[0];
    assert_eq!((p.committed_offset, p.committed_leader_epoch), (42, 3));
    assert_eq!(p.committed_metadata.as_deref(), Some("m"));
}

/// The first Fetch opens a session with every partition; the next names
/// none of them (their offsets did not move) and rides the session.
#[tokio::test]
async fn fetches_after_the_first_ride_an_incremental_session() {
    let group = Arc::new(Mutex::new(Group::default()));
    let g = group.clone();
    let port =
        fake_tcp_broker(move |port| move |api, v, body| answer(port, &g, api, v, body)).await;
    let client = ClientConfig::new(format!("127.0.0.1:{port}"));
    let config = ConsumerConfig {
        auto_offset_reset: OffsetReset::Earliest,
        fetch_max_wait: Duration::from_millis(20),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(client, config).await.unwrap();
    consumer.assign(&[("t", 0), ("t", 1), ("t", 2)]);
    consumer.poll(Duration::from_millis(100)).await.unwrap();
    let g = group.lock().unwrap();
    assert!(g.fetches.len() >= 2, "{} fetches", g.fetches.len());
    let (first, second) = (&g.fetches[0], &g.fetches[1]);
    assert_eq!((first.session_id, first.session_epoch), (0, 0));
    assert_eq!(first.topics[0].partitions.len(), 3);
    assert_eq!((second.session_id, second.session_epoch), (77, 1));
    assert!(
        second.topics.is_empty(),
        "unchanged partitions are not sent again"
    );
    assert!(second.forgotten_topics_data.is_empty());
}
