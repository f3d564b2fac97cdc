//! Quorum members, controller service and client over real TCP on 127.0.0.1:
//! three voters (each also a broker, as in KRaft's combined mode) and one
//! learner (a broker only).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;
use weir_quorum::image::MetadataImage;
use weir_quorum::records::{Endpoint, NO_LEADER};
use weir_quorum::{
    BrokerId, ControllerClient, ControllerConfig, ControllerError, ControllerRequest,
    ControllerResponse, MemberConfig, NewTopic, NodeId, QuorumConfig, QuorumMember, QuorumNode,
    Role, TcpConfig, TopicInfo,
};

const VOTERS: [NodeId; 3] = [1, 2, 3];
const LEARNER: NodeId = 4;

fn config() -> MemberConfig {
    MemberConfig {
        quorum: QuorumConfig {
            heartbeat_interval: Duration::from_millis(50),
            election_timeout: (Duration::from_millis(250), Duration::from_millis(500)),
            propose_timeout: Duration::from_secs(3),
            ..QuorumConfig::default()
        },
        controller: ControllerConfig {
            heartbeat_interval: Duration::from_millis(50),
            session_timeout: Duration::from_millis(800),
            new_controller_grace: Duration::from_millis(800),
        },
        tcp: TcpConfig {
            connect_timeout: Duration::from_millis(200),
            request_timeout: Duration::from_millis(800),
            ..TcpConfig::default()
        },
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

struct Cluster {
    voters: BTreeMap<NodeId, QuorumNode>,
    members: BTreeMap<NodeId, QuorumMember>,
    /// Per broker: its registration and the switch that stops its heartbeats.
    brokers: BTreeMap<BrokerId, (ControllerRequest, i64, watch::Sender<bool>)>,
}

impl Cluster {
    async fn start() -> Self {
        Self::start_with(config()).await
    }

    async fn start_with(config: MemberConfig) -> Self {
        let mut listeners = BTreeMap::new();
        for id in VOTERS.into_iter().chain([LEARNER]) {
            listeners.insert(id, TcpListener::bind("127.0.0.1:0").await.unwrap());
        }
        let voters: BTreeMap<NodeId, QuorumNode> = VOTERS
            .iter()
            .map(|id| {
                let addr = listeners[id].local_addr().unwrap().to_string();
                (*id, QuorumNode { addr })
            })
            .collect();
        let mut members = BTreeMap::new();
        for (id, listener) in listeners {
            let role = if id == LEARNER {
                Role::Learner
            } else {
                Role::Voter
            };
            let member =
                QuorumMember::start(id, role, voters.clone(), listener, None, config.clone())
                    .await
                    .unwrap();
            members.insert(id, member);
        }
        Self {
            voters,
            members,
            brokers: BTreeMap::new(),
        }
    }

    /// Waits until the running voters agree on a leader.
    async fn controller(&self) -> NodeId {
        let end = deadline();
        while Instant::now() < end {
            let seen: BTreeSet<_> = self
                .members
                .values()
                .filter(|m| m.quorum().role() == Role::Voter)
                .map(|m| m.quorum().leader())
                .collect();
            if let [Some(l)] = seen.into_iter().collect::<Vec<_>>()[..]
                && self
                    .members
                    .get(&l)
                    .is_some_and(|m| m.quorum().is_controller())
            {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no controller elected");
    }

    fn client(&self, id: NodeId) -> ControllerClient {
        self.members[&id].client().clone()
    }

    async fn send(&self, req: ControllerRequest) -> Result<ControllerResponse, ControllerError> {
        let any = *self.members.keys().next().unwrap();
        self.client(any).send(req, deadline()).await
    }

    /// Registers every member as a broker (rack per `racks`) and keeps it
    /// heartbeating through its own member's client.
    async fn register_brokers(&mut self, racks: &[&str]) {
        for (i, (&id, member)) in self.members.iter().enumerate() {
            let node_id = BrokerId::try_from(id).unwrap();
            let registration = ControllerRequest::RegisterBroker {
                node_id,
                incarnation_id: Uuid::new_v4(),
                endpoints: vec![Endpoint {
                    listener: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: racks.get(i).map(|r| (*r).to_owned()),
                quorum_addr: member.local_addr().to_string(),
            };
            let response = member
                .client()
                .send(registration.clone(), deadline())
                .await
                .unwrap();
            let ControllerResponse::RegisterBroker { broker_epoch } = response else {
                panic!("unexpected {response:?}");
            };
            let (stop, stopped) = watch::channel(false);
            tokio::spawn(heartbeat(
                member.client().clone(),
                member.quorum().clone(),
                node_id,
                broker_epoch,
                stopped,
            ));
            self.brokers
                .insert(node_id, (registration, broker_epoch, stop));
        }
    }

    fn stop_heartbeats(&self, broker: BrokerId) {
        self.brokers[&broker].2.send_replace(true);
    }

    fn epoch(&self, broker: BrokerId) -> i64 {
        self.brokers[&broker].1
    }

    /// Waits until `member`'s image satisfies `done`.
    async fn wait_image(
        &self,
        member: NodeId,
        what: &str,
        done: impl Fn(&MetadataImage) -> bool,
    ) -> Arc<MetadataImage> {
        let mut watch = self.members[&member].quorum().watch();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            watch
                .wait_for(|a| done(&a.image))
                .await
                .unwrap()
                .image
                .clone()
        })
        .await;
        waited.unwrap_or_else(|_| panic!("member {member}: timed out waiting for {what}"))
    }

    async fn shutdown(self) {
        for (_, _, stop) in self.brokers.values() {
            stop.send_replace(true);
        }
        for member in self.members.values() {
            member.shutdown().await.unwrap();
        }
    }
}

/// A broker's heartbeat loop, until `stopped`.
async fn heartbeat(
    client: ControllerClient,
    quorum: Arc<weir_quorum::MetadataQuorum>,
    node_id: BrokerId,
    broker_epoch: i64,
    mut stopped: watch::Receiver<bool>,
) {
    while !*stopped.borrow_and_update() {
        let request = ControllerRequest::BrokerHeartbeat {
            node_id,
            broker_epoch,
            applied_index: quorum.applied_index(),
            want_fence: false,
            want_shutdown: false,
        };
        let _ = client
            .send(request, Instant::now() + Duration::from_secs(1))
            .await;
        tokio::select! {
            _ = stopped.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn all_unfenced(n: usize) -> impl Fn(&MetadataImage) -> bool {
    move |image| image.live_brokers().len() == n
}

fn new_topic(name: &str, partitions: i32, rf: i16) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        assignments: None,
        configs: BTreeMap::new(),
    }
}

async fn create_topics(
    cluster: &Cluster,
    topics: Vec<NewTopic>,
) -> Vec<(String, Result<TopicInfo, ControllerError>)> {
    let response = cluster
        .send(ControllerRequest::CreateTopics {
            topics,
            validate_only: false,
        })
        .await
        .unwrap();
    match response {
        ControllerResponse::CreateTopics(results) => results,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_register_get_placed_rack_aware_and_a_silent_one_is_fenced() {
    let mut cluster = Cluster::start().await;
    cluster.controller().await;
    // Racks a, b, c, a: every RF-3 partition must span all three.
    cluster.register_brokers(&["a", "b", "c", "a"]).await;
    // The learner replicates too: its image sees all four unfenced.
    let image = cluster
        .wait_image(LEARNER, "4 unfenced brokers", all_unfenced(4))
        .await;
    assert_eq!(image.brokers().len(), 4);

    let results = create_topics(
        &cluster,
        vec![
            new_topic("orders", 8, 3),
            new_topic("orders", 1, 1),
            new_topic("too-wide", 1, 5),
        ],
    )
    .await;
    let orders = results[0].1.clone().unwrap();
    assert_eq!(
        results[1].1,
        Err(ControllerError::TopicExists("orders".into()))
    );
    assert!(
        matches!(&results[2].1, Err(ControllerError::InvalidReplicationFactor(m)) if m.contains('5')),
        "{:?}",
        results[2]
    );
    let image = cluster
        .wait_image(LEARNER, "topic orders", |i| {
            i.topic_by_name("orders").is_some()
        })
        .await;
    for p in &image.topic(&orders.topic_id).unwrap().partitions {
        let distinct: BTreeSet<_> = p.replicas.iter().collect();
        assert_eq!(distinct.len(), 3, "{p:?}");
        let racks: BTreeSet<_> = p
            .replicas
            .iter()
            .map(|r| image.broker(*r).unwrap().rack.clone())
            .collect();
        assert_eq!(racks.len(), 3, "not rack-aware: {p:?}");
        assert_eq!((p.leader, &p.isr), (p.replicas[0], &p.replicas));
    }

    // The broker leading partition 0 goes silent.
    let before = image.topic(&orders.topic_id).unwrap().partitions.clone();
    let silent = before[0].leader;
    cluster.stop_heartbeats(silent);
    let image = cluster
        .wait_image(LEARNER, "the silent broker fenced", |i| {
            i.broker(silent).is_some_and(|b| b.fenced)
        })
        .await;
    let after = &image.topic(&orders.topic_id).unwrap().partitions;
    for (old, new) in before.iter().zip(after) {
        assert!(!new.isr.contains(&silent), "{new:?}");
        if old.leader == silent {
            assert_ne!(new.leader, NO_LEADER);
            assert!(old.isr.contains(&new.leader), "{old:?} -> {new:?}");
            assert!(new.leader_epoch > old.leader_epoch, "{old:?} -> {new:?}");
        } else {
            assert_eq!(new.leader, old.leader);
        }
    }
    assert_eq!(image.live_brokers().len(), 3);

    // AlterPartition: a stale partition epoch is refused; a current one applies.
    let p = after[0].clone();
    let alter = |partition_epoch, new_isr: Vec<BrokerId>| ControllerRequest::AlterPartition {
        node_id: p.leader,
        broker_epoch: cluster.epoch(p.leader),
        topic_id: orders.topic_id,
        partition: 0,
        leader_epoch: p.leader_epoch,
        partition_epoch,
        new_isr,
    };
    let stale = cluster
        .send(alter(p.partition_epoch - 1, vec![p.leader]))
        .await;
    assert_eq!(
        stale,
        Err(ControllerError::InvalidUpdateVersion {
            got: p.partition_epoch - 1,
            current: p.partition_epoch
        })
    );
    let shrunk = cluster.send(alter(p.partition_epoch, vec![p.leader])).await;
    match shrunk {
        Ok(ControllerResponse::AlterPartition(r)) => {
            assert_eq!(r.isr, vec![p.leader]);
            assert_eq!(r.partition_epoch, p.partition_epoch + 1);
            assert_eq!(r.leader_epoch, p.leader_epoch);
        }
        other => panic!("unexpected {other:?}"),
    }
    // Growing the ISR with the fenced broker is refused.
    let current = cluster
        .send(alter(p.partition_epoch + 1, vec![p.leader, silent]))
        .await;
    assert!(
        matches!(current, Err(ControllerError::IneligibleReplica(_))),
        "{current:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_broker_whose_port_refuses_is_fenced_before_its_session_ends() {
    let mut config = config();
    // Longer than the test waits: only the probe can fence within it.
    config.controller.session_timeout = Duration::from_secs(60);
    let mut cluster = Cluster::start_with(config).await;
    let controller = cluster.controller().await;
    cluster.register_brokers(&["a", "b", "c", "a"]).await;
    cluster
        .wait_image(controller, "4 unfenced brokers", all_unfenced(4))
        .await;
    // Both go silent; only the learner's process (its port) is gone.
    let alive = VOTERS.into_iter().find(|v| *v != controller).unwrap() as BrokerId;
    let dead = LEARNER as BrokerId;
    cluster.stop_heartbeats(alive);
    cluster.stop_heartbeats(dead);
    cluster
        .members
        .remove(&LEARNER)
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let image = cluster
        .wait_image(controller, "the dead broker fenced", |i| {
            i.broker(dead).is_some_and(|b| b.fenced)
        })
        .await;
    assert!(
        !image.broker(alive).unwrap().fenced,
        "a silent broker that still answers keeps its session"
    );

    // Gone for good: unregistering forgets it and stops replicating the
    // metadata log to it; a broker still running is refused.
    let refused = cluster
        .send(ControllerRequest::UnregisterBroker { node_id: alive })
        .await;
    assert!(
        matches!(&refused, Err(ControllerError::InvalidRequest(m)) if m.contains("running")),
        "{refused:?}"
    );
    let done = cluster
        .send(ControllerRequest::UnregisterBroker { node_id: dead })
        .await;
    assert_eq!(done, Ok(ControllerResponse::UnregisterBroker));
    cluster
        .wait_image(controller, "the dead broker forgotten", |i| {
            i.broker(dead).is_none()
        })
        .await;
    let learners: Vec<NodeId> = cluster.members[&controller]
        .quorum()
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .learner_ids()
        .collect();
    assert!(
        !learners.contains(&LEARNER),
        "still a learner: {learners:?}"
    );
    let again = cluster
        .send(ControllerRequest::UnregisterBroker { node_id: dead })
        .await;
    assert_eq!(again, Err(ControllerError::UnknownBroker(dead)));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_requests_and_repeated_registrations_go_through_the_controller() {
    let mut cluster = Cluster::start().await;
    cluster.controller().await;
    cluster.register_brokers(&[]).await;
    cluster
        .wait_image(LEARNER, "4 unfenced brokers", all_unfenced(4))
        .await;

    // The same incarnation registering again (a lost answer) keeps its epoch.
    let (registration, epoch, _) = &cluster.brokers[&4];
    let again = cluster.send(registration.clone()).await.unwrap();
    assert_eq!(
        again,
        ControllerResponse::RegisterBroker {
            broker_epoch: *epoch
        }
    );

    let allocate = || ControllerRequest::AllocateProducerIds {
        node_id: 4,
        broker_epoch: cluster.epoch(4),
        count: 1000,
    };
    let first = cluster.send(allocate()).await.unwrap();
    let second = cluster.send(allocate()).await.unwrap();
    assert_eq!(
        (first, second),
        (
            ControllerResponse::ProducerIds {
                first_id: 0,
                count: 1000
            },
            ControllerResponse::ProducerIds {
                first_id: 1000,
                count: 1000
            }
        )
    );

    let orders = create_topics(&cluster, vec![new_topic("orders", 2, 2)]).await[0]
        .1
        .clone()
        .unwrap();
    let grow = |count| ControllerRequest::CreatePartitions {
        topic: "orders".into(),
        count,
        assignments: None,
        validate_only: false,
    };
    assert!(matches!(
        cluster.send(grow(2)).await,
        Err(ControllerError::InvalidPartitions(_))
    ));
    match cluster.send(grow(5)).await.unwrap() {
        ControllerResponse::CreatePartitions(info) => {
            assert_eq!(info.topic_id, orders.topic_id);
            assert_eq!(info.partitions.len(), 5);
        }
        other => panic!("unexpected {other:?}"),
    }
    let configs = ControllerRequest::AlterConfigs {
        resource: weir_quorum::records::ConfigResource::Topic("orders".into()),
        changes: BTreeMap::from([("retention.ms".into(), Some("1000".into()))]),
    };
    assert_eq!(
        cluster.send(configs).await,
        Ok(ControllerResponse::AlterConfigs)
    );
    let elected = cluster
        .send(ControllerRequest::ElectLeaders {
            partitions: Some(vec![(orders.topic_id, 0)]),
        })
        .await
        .unwrap();
    match elected {
        ControllerResponse::ElectLeaders(results) => {
            assert_eq!(results[0].result, Err(ControllerError::ElectionNotNeeded));
        }
        other => panic!("unexpected {other:?}"),
    }
    let image = cluster
        .wait_image(LEARNER, "configs and partitions", |i| {
            i.topic_configs("orders")
                .is_some_and(|c| c.contains_key("retention.ms"))
        })
        .await;
    assert_eq!(image.topic(&orders.topic_id).unwrap().partitions.len(), 5);
    assert_eq!(image.next_producer_id(), 2000);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_moves_leadership_away_before_it_is_ready() {
    let mut cluster = Cluster::start().await;
    cluster.controller().await;
    cluster.register_brokers(&[]).await;
    cluster
        .wait_image(LEARNER, "4 unfenced brokers", all_unfenced(4))
        .await;
    let orders = create_topics(&cluster, vec![new_topic("orders", 8, 3)]).await[0]
        .1
        .clone()
        .unwrap();
    let leaving: BrokerId = 4;
    let led_before: Vec<usize> = (0..orders.partitions.len())
        .filter(|i| orders.partitions[*i].leader == leaving)
        .collect();
    assert!(
        !led_before.is_empty(),
        "placement gave broker 4 no leadership"
    );
    cluster.stop_heartbeats(leaving);

    let response = cluster
        .send(ControllerRequest::BrokerHeartbeat {
            node_id: leaving,
            broker_epoch: cluster.epoch(leaving),
            applied_index: 0,
            want_fence: false,
            want_shutdown: true,
        })
        .await
        .unwrap();
    assert_eq!(
        response,
        ControllerResponse::BrokerHeartbeat {
            is_fenced: true,
            shutdown_ready: true
        }
    );
    // Ready means: as of the answer, the image already shows it leads nothing.
    let controller = cluster.controller().await;
    let image = cluster.members[&controller].quorum().image();
    let partitions = &image.topic(&orders.topic_id).unwrap().partitions;
    for (i, p) in partitions.iter().enumerate() {
        assert_ne!(
            p.leader, leaving,
            "partition {i} still led by the leaving broker"
        );
        assert!(!p.isr.contains(&leaving));
        if led_before.contains(&i) {
            assert!(p.leader_epoch > orders.partitions[i].leader_epoch);
        }
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_controller_takes_over_and_clients_are_redirected_to_it() {
    let mut cluster = Cluster::start().await;
    let old = cluster.controller().await;
    cluster.register_brokers(&[]).await;
    cluster
        .wait_image(LEARNER, "4 unfenced brokers", all_unfenced(4))
        .await;

    // A client that has been talking to the old controller.
    let remembering = ControllerClient::new(&cluster.voters, config().tcp);
    let first = remembering
        .send(
            ControllerRequest::CreateTopics {
                topics: vec![new_topic("before", 4, 3)],
                validate_only: false,
            },
            deadline(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&first, ControllerResponse::CreateTopics(r) if r[0].1.is_ok()),
        "{first:?}"
    );

    // The controller's node dies: its quorum member, service and broker.
    let old_broker = BrokerId::try_from(old).unwrap();
    cluster.stop_heartbeats(old_broker);
    cluster
        .members
        .remove(&old)
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let new = cluster.controller().await;
    assert_ne!(new, old);

    let created = remembering
        .send(
            ControllerRequest::CreateTopics {
                topics: vec![new_topic("after", 2, 2)],
                validate_only: false,
            },
            deadline(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&created, ControllerResponse::CreateTopics(r) if r[0].1.is_ok()),
        "{created:?}"
    );

    // A client that only knows a follower is redirected to the controller.
    let follower = *cluster
        .members
        .keys()
        .find(|id| **id != new && **id != LEARNER)
        .unwrap();
    let only_follower = BTreeMap::from([(follower, cluster.voters[&follower].clone())]);
    let redirected = ControllerClient::new(&only_follower, config().tcp)
        .send(
            ControllerRequest::DeleteTopics {
                names: vec!["before".into()],
            },
            deadline(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&redirected, ControllerResponse::DeleteTopics(r) if r[0].1.is_ok()),
        "{redirected:?}"
    );

    // The broker that died with the old controller is fenced by the new one
    // (at once: its port refuses the takeover probe); the live brokers stay
    // unfenced. The learner sees it all, the deletion too.
    let image = cluster
        .wait_image(
            LEARNER,
            "only the dead broker fenced, 'before' deleted",
            move |i| {
                i.broker(old_broker).is_some_and(|b| b.fenced)
                    && i.live_brokers().len() == 3
                    && i.topic_by_name("before").is_none()
            },
        )
        .await;
    assert!(image.topic_by_name("after").is_some());
    for p in image.topics().flat_map(|t| &t.partitions) {
        assert_ne!(p.leader, old_broker, "{p:?}");
    }
    cluster.shutdown().await;
}
