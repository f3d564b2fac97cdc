//! Every API at every version the broker advertises gets an answer. A
//! response field set on a version that lacks it makes kafka-protocol refuse
//! to encode, which closes the client's connection: this walks the whole
//! advertised table with minimal requests so no such hole can hide.

use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weir_broker::{Broker, BrokerConfig};

/// A small but meaningful request of each kind: named topics and groups
/// that exist, so handlers go past their first checks.
fn request(api: ApiKey, version: i16) -> RequestKind {
    let topic = || TopicName(StrBytes::from_static_str("t"));
    // One group per version: a member joined by an earlier version would
    // otherwise hold the next join until its rebalance timeout.
    let group_name = format!("g-{version}");
    let group = || GroupId(StrBytes::from_string(group_name.clone()));
    match api {
        ApiKey::Produce => {
            let mut r = ProduceRequest::default();
            r.acks = 1;
            r.timeout_ms = 1000;
            let mut t = produce_request::TopicProduceData::default();
            t.name = topic();
            t.partition_data
                .push(produce_request::PartitionProduceData::default().with_index(0));
            r.topic_data.push(t);
            r.into()
        }
        ApiKey::Fetch => {
            let mut r = FetchRequest::default();
            r.max_bytes = 1 << 20;
            r.replica_id = BrokerId(-1);
            let mut t = fetch_request::FetchTopic::default();
            t.topic = topic();
            let mut p = fetch_request::FetchPartition::default();
            p.partition_max_bytes = 1 << 20;
            t.partitions.push(p);
            r.topics.push(t);
            r.into()
        }
        ApiKey::ListOffsets => {
            let mut r = ListOffsetsRequest::default();
            let mut t = list_offsets_request::ListOffsetsTopic::default();
            t.name = topic();
            let mut p = list_offsets_request::ListOffsetsPartition::default();
            p.timestamp = -1;
            t.partitions.push(p);
            r.topics.push(t);
            r.into()
        }
        ApiKey::Metadata => MetadataRequest::default().into(),
        ApiKey::OffsetCommit => {
            let mut r = OffsetCommitRequest::default();
            r.group_id = group();
            r.generation_id_or_member_epoch = -1;
            let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
            t.name = topic();
            t.partitions
                .push(offset_commit_request::OffsetCommitRequestPartition::default());
            r.topics.push(t);
            r.into()
        }
        ApiKey::OffsetFetch => {
            let mut r = OffsetFetchRequest::default();
            if version < 8 {
                r.group_id = group();
            } else {
                let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                g.group_id = group();
                r.groups.push(g);
            }
            r.into()
        }
        ApiKey::FindCoordinator => {
            let mut r = FindCoordinatorRequest::default();
            if version < 4 {
                r.key = StrBytes::from_static_str("g");
            } else {
                r.coordinator_keys.push(StrBytes::from_static_str("g"));
            }
            r.into()
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default();
            r.group_id = group();
            r.session_timeout_ms = 10_000;
            r.rebalance_timeout_ms = 10_000;
            r.protocol_type = StrBytes::from_static_str("consumer");
            r.protocols
                .push(join_group_request::JoinGroupRequestProtocol::default());
            r.into()
        }
        ApiKey::Heartbeat => HeartbeatRequest::default().with_group_id(group()).into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default().with_group_id(group()).into(),
        ApiKey::SyncGroup => SyncGroupRequest::default().with_group_id(group()).into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default()
            .with_groups(vec![group()])
            .into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::ApiVersions => ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("test"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .into(),
        ApiKey::CreateTopics => {
            let mut r = CreateTopicsRequest::default();
            let mut t = create_topics_request::CreatableTopic::default();
            t.name = TopicName(StrBytes::from_static_str("made-here"));
            t.num_partitions = 1;
            t.replication_factor = 1;
            r.topics.push(t);
            r.validate_only = true;
            r.into()
        }
        ApiKey::DeleteTopics => {
            let mut r = DeleteTopicsRequest::default();
            if version < 6 {
                r.topic_names
                    .push(TopicName(StrBytes::from_static_str("absent")));
            } else {
                let mut d = delete_topics_request::DeleteTopicState::default();
                d.name = Some(TopicName(StrBytes::from_static_str("absent")));
                r.topics.push(d);
            }
            r.into()
        }
        ApiKey::DeleteRecords => {
            let mut r = DeleteRecordsRequest::default();
            let mut t = delete_records_request::DeleteRecordsTopic::default();
            t.name = topic();
            t.partitions
                .push(delete_records_request::DeleteRecordsPartition::default());
            r.topics.push(t);
            r.into()
        }
        ApiKey::InitProducerId => InitProducerIdRequest::default()
            .with_transactional_id(None)
            .into(),
        ApiKey::DescribeConfigs => {
            let mut r = DescribeConfigsRequest::default();
            let mut res = describe_configs_request::DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str("t");
            r.resources.push(res);
            r.include_synonyms = true;
            r.into()
        }
        ApiKey::AlterConfigs => {
            let mut r = AlterConfigsRequest::default();
            let mut res = alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str("t");
            r.resources.push(res);
            r.validate_only = true;
            r.into()
        }
        ApiKey::CreatePartitions => {
            let mut r = CreatePartitionsRequest::default();
            let mut t = create_partitions_request::CreatePartitionsTopic::default();
            t.name = topic();
            t.count = 1;
            t.assignments = None;
            r.topics.push(t);
            r.into()
        }
        ApiKey::DeleteGroups => DeleteGroupsRequest::default()
            .with_groups_names(vec![group()])
            .into(),
        ApiKey::IncrementalAlterConfigs => {
            let mut r = IncrementalAlterConfigsRequest::default();
            let mut res = incremental_alter_configs_request::AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = StrBytes::from_static_str("t");
            r.resources.push(res);
            r.validate_only = true;
            r.into()
        }
        ApiKey::OffsetDelete => OffsetDeleteRequest::default().with_group_id(group()).into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
        ApiKey::OffsetForLeaderEpoch => {
            let mut r = OffsetForLeaderEpochRequest::default();
            let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
            t.topic = topic();
            let mut p = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
            p.leader_epoch = 0;
            p.current_leader_epoch = -1;
            t.partitions.push(p);
            r.topics.push(t);
            r.into()
        }
        ApiKey::AlterPartitionReassignments => {
            // "Move" t-0 onto the broker it is on: accepted, changes nothing.
            let mut r = AlterPartitionReassignmentsRequest::default();
            let mut t = alter_partition_reassignments_request::ReassignableTopic::default();
            t.name = topic();
            let mut p = alter_partition_reassignments_request::ReassignablePartition::default();
            p.replicas = Some(vec![BrokerId(1)]);
            t.partitions.push(p);
            r.topics.push(t);
            r.into()
        }
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::default().into(),
        // An id no broker has: answered BROKER_ID_NOT_REGISTERED.
        ApiKey::UnregisterBroker => UnregisterBrokerRequest::default()
            .with_broker_id(BrokerId(99))
            .into(),
        // Transactions: an id no producer initialised, a producer id with no
        // state, a coordinator epoch no broker has — each answered with an
        // error, not a closed connection.
        ApiKey::AddPartitionsToTxn => {
            let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
            t.name = topic();
            t.partitions = vec![0];
            let mut r = AddPartitionsToTxnRequest::default();
            if version <= 3 {
                r.v3_and_below_transactional_id =
                    TransactionalId(StrBytes::from_static_str("none"));
                r.v3_and_below_producer_id = ProducerId(1);
                r.v3_and_below_topics = vec![t];
            } else {
                let mut txn =
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default();
                txn.transactional_id = TransactionalId(StrBytes::from_static_str("none"));
                txn.producer_id = ProducerId(1);
                txn.topics = vec![t];
                r.transactions = vec![txn];
            }
            r.into()
        }
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("none")))
            .with_group_id(group())
            .into(),
        ApiKey::EndTxn => EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("none")))
            .into(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("none")))
            .with_group_id(group())
            .with_generation_id(-1)
            .into(),
        ApiKey::WriteTxnMarkers => {
            let mut t = write_txn_markers_request::WritableTxnMarkerTopic::default();
            t.name = topic();
            t.partition_indexes = vec![99];
            let mut m = write_txn_markers_request::WritableTxnMarker::default();
            m.producer_id = ProducerId(1);
            m.topics = vec![t];
            WriteTxnMarkersRequest::default()
                .with_markers(vec![m])
                .into()
        }
        ApiKey::DescribeProducers => {
            let mut t = describe_producers_request::TopicRequest::default();
            t.name = topic();
            t.partition_indexes = vec![0];
            DescribeProducersRequest::default()
                .with_topics(vec![t])
                .into()
        }
        ApiKey::DescribeTransactions => DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("none"))])
            .into(),
        ApiKey::ListTransactions => ListTransactionsRequest::default()
            .with_duration_filter(-1)
            .into(),
        // A joining member (epoch 0) of its own consumer group: `g-{version}`
        // is a classic group, and the two types do not share an id.
        ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(format!("c-{version}"))))
            .with_member_id(StrBytes::from_string(format!("member-{version}")))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(1000)
            .with_subscribed_topic_names(Some(vec![topic()]))
            .with_topic_partitions(Some(vec![]))
            .into(),
        ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(format!("c-{version}")))])
            .into(),
        // On this PLAINTEXT listener both are answered with an error (and
        // the connection closed), which is what the walk checks.
        ApiKey::SaslHandshake => SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str("PLAIN"))
            .into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"\0alice\0secret"))
            .into(),
        ApiKey::AlterUserScramCredentials => {
            let mut upsertion =
                alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
            upsertion.name = StrBytes::from_string(format!("user-{version}"));
            upsertion.mechanism = 1;
            upsertion.iterations = 4096;
            upsertion.salt = bytes::Bytes::from_static(b"salt");
            upsertion.salted_password = bytes::Bytes::from_static(&[7; 32]);
            AlterUserScramCredentialsRequest::default()
                .with_upsertions(vec![upsertion])
                .into()
        }
        ApiKey::DescribeUserScramCredentials => {
            DescribeUserScramCredentialsRequest::default().into()
        }
        // Authorization is off here: each is answered SECURITY_DISABLED.
        ApiKey::CreateAcls => CreateAclsRequest::default()
            .with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(StrBytes::from_static_str("User:a"))
                    .with_host(StrBytes::from_static_str("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])
            .into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1)
            .into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default()
            .with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ])
            .into(),
        ApiKey::DescribeClientQuotas => DescribeClientQuotasRequest::default()
            .with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(StrBytes::from_static_str("user"))
                    .with_match_type(2),
            ])
            .into(),
        ApiKey::AlterClientQuotas => AlterClientQuotasRequest::default()
            .with_entries(vec![
                alter_client_quotas_request::EntryData::default()
                    .with_entity(vec![
                        alter_client_quotas_request::EntityData::default()
                            .with_entity_type(StrBytes::from_static_str("user"))
                            .with_entity_name(Some(StrBytes::from_string(format!(
                                "user-{version}"
                            )))),
                    ])
                    .with_ops(vec![
                        alter_client_quotas_request::OpData::default()
                            .with_key(StrBytes::from_static_str("consumer_byte_rate"))
                            .with_value(1e9),
                    ]),
            ])
            .into(),
        other => panic!("the broker advertises {other:?} but this test has no request for it"),
    }
}

async fn round_trip(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    correlation_id: i32,
) -> Result<(), String> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("every-version"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .map_err(|e| e.to_string())?;
    request(api, version)
        .encode(&mut body, version)
        .map_err(|e| format!("encoding the request: {e}"))?;
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await.map_err(|e| e.to_string())?;

    let size = tokio::time::timeout(Duration::from_secs(10), stream.read_i32())
        .await
        .map_err(|_| "no response within 10 s".to_string())?
        .map_err(|e| format!("connection closed instead of a response: {e}"))?;
    let mut response = vec![0; size as usize];
    stream
        .read_exact(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = bytes::Bytes::from(response);
    let header = ResponseHeader::decode(&mut buf, api.response_header_version(version))
        .map_err(|e| e.to_string())?;
    if header.correlation_id != correlation_id {
        return Err(format!(
            "correlation id {} instead of {correlation_id}",
            header.correlation_id
        ));
    }
    ResponseKind::decode(api, &mut buf, version)
        .map_err(|e| format!("decoding the response: {e}"))?;
    if buf.has_remaining() {
        return Err(format!("{} bytes left after the response", buf.remaining()));
    }
    Ok(())
}

#[tokio::test]
async fn every_advertised_api_version_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let config = BrokerConfig::new(1, dir.path(), "127.0.0.1:0")
        .with_setting("group.initial.rebalance.delay.ms", "0")
        .unwrap();
    let broker = Broker::start(config).await.unwrap();
    broker
        .state()
        .create_topic("t", 1, 1, Default::default())
        .await
        .unwrap();
    let addr = broker.local_addr();

    // The advertised table, as a client sees it.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    round_trip(&mut stream, ApiKey::ApiVersions, 3, 0)
        .await
        .unwrap();
    let advertised: Vec<(ApiKey, i16, i16)> = weir_broker::advertised_versions();
    assert!(advertised.len() >= 25);

    let mut failures = Vec::new();
    let mut correlation_id = 1;
    for (api, min, max) in advertised {
        for version in min..=max {
            correlation_id += 1;
            // A fresh connection per request: a failure closes it.
            let mut stream = TcpStream::connect(addr).await.unwrap();
            if let Err(e) = round_trip(&mut stream, api, version, correlation_id).await {
                failures.push(format!("{api:?} v{version}: {e}"));
            }
        }
    }
    broker.shutdown().await.unwrap();
    assert!(
        failures.is_empty(),
        "{} request(s) not answered:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
