//! A three-member metadata quorum in one process, over the in-process router.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;
use weir_quorum::image::MetadataImage;
use weir_quorum::raft::{NodeId, QuorumNode};
use weir_quorum::records::MetadataRecord;
use weir_quorum::{MetadataQuorum, QuorumConfig, QuorumError, Router};

fn config() -> QuorumConfig {
    QuorumConfig {
        heartbeat_interval: Duration::from_millis(50),
        election_timeout: (Duration::from_millis(200), Duration::from_millis(400)),
        propose_timeout: Duration::from_secs(2),
        ..QuorumConfig::default()
    }
}

fn voters() -> BTreeMap<NodeId, QuorumNode> {
    (1..=3)
        .map(|id| {
            (
                id,
                QuorumNode {
                    addr: format!("127.0.0.1:{}", 9093 + id),
                },
            )
        })
        .collect()
}

struct Cluster {
    router: Router,
    nodes: BTreeMap<NodeId, MetadataQuorum>,
    dirs: Option<PathBuf>,
    config: QuorumConfig,
}

impl Cluster {
    async fn start(dirs: Option<&Path>, config: QuorumConfig) -> Self {
        let mut cluster = Self {
            router: Router::new(),
            nodes: BTreeMap::new(),
            dirs: dirs.map(Path::to_path_buf),
            config,
        };
        for id in 1..=3 {
            cluster.start_node(id).await;
        }
        cluster
    }

    async fn start_node(&mut self, id: NodeId) {
        let dir = self.dirs.as_ref().map(|d| d.join(format!("node-{id}")));
        let node = MetadataQuorum::start(
            id,
            voters(),
            dir.as_deref(),
            self.router.for_node(id),
            self.config.clone(),
        )
        .await
        .unwrap();
        self.router.register(id, node.raft().clone());
        self.nodes.insert(id, node);
    }

    async fn stop_node(&mut self, id: NodeId) {
        self.router.unregister(id);
        if let Some(node) = self.nodes.remove(&id) {
            node.shutdown().await.unwrap();
        }
    }

    /// Waits until the running nodes, other than `isolated`, agree on a leader among them.
    async fn controller(&self, isolated: Option<NodeId>) -> NodeId {
        for _ in 0..200 {
            let seen: Vec<_> = self
                .nodes
                .values()
                .filter(|n| Some(n.id()) != isolated)
                .map(|n| n.leader())
                .collect();
            let agreed = seen.first().copied().flatten().filter(|l| {
                seen.iter().all(|s| *s == Some(*l))
                    && Some(*l) != isolated
                    && self.nodes.get(l).is_some_and(|n| n.is_controller())
            });
            if let Some(l) = agreed {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("no controller elected");
    }

    async fn wait_applied(&self, id: NodeId, index: u64) -> Arc<MetadataImage> {
        let mut watch = self.nodes[&id].watch();
        tokio::time::timeout(Duration::from_secs(5), watch.wait_for(|a| a.index >= index))
            .await
            .unwrap_or_else(|_| panic!("node {id} did not apply {index}"))
            .unwrap();
        self.nodes[&id].image()
    }
}

fn create_topic(n: u128) -> Vec<MetadataRecord> {
    vec![MetadataRecord::CreateTopic {
        name: format!("topic-{n}"),
        topic_id: Uuid::from_u128(n),
        configs: BTreeMap::new(),
    }]
}

fn topic_names(image: &MetadataImage) -> Vec<String> {
    let mut names: Vec<_> = image.topics().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_apply_in_the_same_order_everywhere() {
    let cluster = Cluster::start(None, config()).await;
    let leader = cluster.controller(None).await;
    let mut last = 0;
    for n in 1..=10 {
        last = cluster.nodes[&leader]
            .propose(create_topic(n))
            .await
            .unwrap();
    }
    // A producer-id block that goes backwards is refused by every image alike.
    let producer_ids = |next| {
        vec![MetadataRecord::ProducerIds {
            next_producer_id: next,
        }]
    };
    cluster.nodes[&leader]
        .propose(producer_ids(100))
        .await
        .unwrap();
    let refused = cluster.nodes[&leader].propose(producer_ids(50)).await;
    assert!(
        matches!(refused, Err(QuorumError::Rejected { .. })),
        "{refused:?}"
    );
    last += 2;

    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    match cluster.nodes[&follower].propose(create_topic(99)).await {
        Err(QuorumError::NotController { leader: hint }) => assert_eq!(hint, Some(leader)),
        other => panic!("follower accepted a proposal: {other:?}"),
    }
    let images: Vec<_> = wait_all_applied(&cluster, last).await;
    assert_eq!(images[0].next_producer_id(), 100);
    assert_eq!(topic_names(&images[0]).len(), 10);
    assert!(images.iter().all(|i| **i == *images[0]));
}

async fn wait_all_applied(cluster: &Cluster, index: u64) -> Vec<Arc<MetadataImage>> {
    let mut images = Vec::new();
    for id in cluster.nodes.keys() {
        images.push(cluster.wait_applied(*id, index).await);
    }
    images
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_controller_is_replaced_and_proposals_continue() {
    let mut cluster = Cluster::start(None, config()).await;
    let first = cluster.controller(None).await;
    cluster.nodes[&first]
        .propose(create_topic(1))
        .await
        .unwrap();
    cluster.stop_node(first).await;
    let second = cluster.controller(None).await;
    assert_ne!(first, second);
    let index = cluster.nodes[&second]
        .propose(create_topic(2))
        .await
        .unwrap();
    let images = wait_all_applied(&cluster, index).await;
    for image in images {
        assert_eq!(topic_names(&image), ["topic-1", "topic-2"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_minority_cannot_commit_and_catches_up_after_healing() {
    let cluster = Cluster::start(None, config()).await;
    let old = cluster.controller(None).await;
    let before = cluster.nodes[&old].propose(create_topic(1)).await.unwrap();
    cluster.router.isolate(old);

    // The cut-off controller still believes it leads, but nothing commits.
    let stranded = cluster.nodes[&old].propose(create_topic(666)).await;
    assert!(
        matches!(
            stranded,
            Err(QuorumError::Timeout(_)) | Err(QuorumError::NotController { .. })
        ),
        "{stranded:?}"
    );
    let new = cluster.controller(Some(old)).await;
    assert_ne!(new, old);
    let mut index = 0;
    for n in 2..=5 {
        index = cluster.nodes[&new].propose(create_topic(n)).await.unwrap();
    }
    assert_eq!(cluster.nodes[&old].applied_index(), before);

    cluster.router.heal();
    let image = cluster.wait_applied(old, index).await;
    // The uncommitted proposal of the old controller was discarded.
    assert_eq!(
        topic_names(&image),
        ["topic-1", "topic-2", "topic-3", "topic-4", "topic-5"]
    );
    assert_eq!(*image, *cluster.nodes[&new].image());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_members_recover_their_image_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = QuorumConfig {
        snapshot_after_entries: 5,
        keep_behind_snapshot: 2,
        ..config()
    };
    let mut cluster = Cluster::start(Some(dir.path()), config).await;
    let leader = cluster.controller(None).await;
    let mut index = 0;
    for n in 1..=12 {
        index = cluster.nodes[&leader]
            .propose(create_topic(n))
            .await
            .unwrap();
    }
    cluster.nodes[&leader].snapshot().await.unwrap();
    let expected = cluster.wait_applied(leader, index).await;
    for id in 1..=3 {
        cluster.wait_applied(id, index).await;
    }

    // Everyone stops; on restart each replays snapshot + journal to the
    // committed index before any election.
    for id in 1..=3 {
        cluster.stop_node(id).await;
    }
    for id in 1..=3 {
        cluster.start_node(id).await;
        assert_eq!(
            *cluster.wait_applied(id, index).await,
            *expected,
            "node {id}"
        );
    }
    let leader = cluster.controller(None).await;
    let index = cluster.nodes[&leader]
        .propose(create_topic(13))
        .await
        .unwrap();
    for image in wait_all_applied(&cluster, index).await {
        assert_eq!(topic_names(&image).len(), 13);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_far_behind_catches_up_from_a_snapshot() {
    let config = QuorumConfig {
        snapshot_after_entries: 5,
        keep_behind_snapshot: 0,
        ..config()
    };
    let mut cluster = Cluster::start(None, config).await;
    let leader = cluster.controller(None).await;
    let behind = *cluster.nodes.keys().find(|id| **id != leader).unwrap();
    cluster.stop_node(behind).await;
    let mut index = 0;
    for n in 1..=20 {
        index = cluster.nodes[&leader]
            .propose(create_topic(n))
            .await
            .unwrap();
    }
    cluster.nodes[&leader].snapshot().await.unwrap();
    // A fresh, empty member: the log it needs is gone, only a snapshot helps.
    cluster.start_node(behind).await;
    let image = cluster.wait_applied(behind, index).await;
    assert_eq!(topic_names(&image).len(), 20);
}
