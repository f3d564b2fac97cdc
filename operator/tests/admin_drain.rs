//! The admin-backed drain on real brokers (in-process, one quorum): a
//! scale-down by two drains both leaving brokers at once, and none of their
//! replicas lands on the other.

use std::future::Future;
use std::net::TcpListener;
use std::time::Duration;

use weir_broker::config::QuorumVoter;
use weir_broker::{Broker, BrokerConfig};
use weir_client::ClientConfig;
use weir_client::admin::{Admin, NewTopic};
use weir_operator::kafka::KafkaConnector;
use weir_operator::kafka::admin::AdminConnector;

/// A port for a listener whose address must be known before it binds (the
/// quorum voters name each other), below the ephemeral range so no
/// outgoing connection takes it in between.
fn free_port() -> u16 {
    let start = 20_000 + (std::process::id() % 5_000) as u16 * 2;
    (start..start + 10_000)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port")
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_leaving_brokers_are_drained_at_once_onto_the_staying_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut quorum_ports = Vec::new();
    for _ in 0..3 {
        // Held until every port is chosen, so the three differ.
        let port = free_port();
        quorum_ports.push((port, TcpListener::bind(("127.0.0.1", port)).expect("bind")));
    }
    let voters: Vec<QuorumVoter> = quorum_ports
        .iter()
        .enumerate()
        .map(|(i, (port, _))| QuorumVoter {
            id: i32::try_from(i).expect("small") + 1,
            address: format!("127.0.0.1:{port}"),
        })
        .collect();
    let ports: Vec<u16> = quorum_ports.iter().map(|(p, _)| *p).collect();
    drop(quorum_ports);
    let mut brokers = Vec::new();
    for node in 1..=4 {
        let mut config =
            BrokerConfig::new(node, dir.path().join(format!("b{node}")), "127.0.0.1:0");
        config.controller_quorum = voters.clone();
        config.controller_listen =
            Some(match ports.get(usize::try_from(node - 1).expect("index")) {
                Some(port) => format!("127.0.0.1:{port}"),
                None => "127.0.0.1:0".into(),
            });
        brokers.push(Broker::start(config).await.expect("broker starts"));
    }
    eventually("every broker ready", || async {
        brokers.iter().all(|b| b.state().is_ready())
    })
    .await;
    let bootstrap = brokers[0].local_addr().to_string();
    let admin = Admin::connect(ClientConfig::new(bootstrap.clone()))
        .await
        .expect("admin");
    eventually("four brokers registered", || async {
        admin.list_topics(false).await.is_ok() && admin.cluster().brokers().len() == 4
    })
    .await;
    admin
        .create_topic(NewTopic::new("orders", 6, 2))
        .await
        .expect("topic");
    let on_leaving = |admin: Admin| async move {
        admin
            .describe_topic("orders")
            .await
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|p| p.replicas.iter().any(|r| *r >= 3))
                    .count()
            })
            .unwrap_or(usize::MAX)
    };
    eventually("replicas on brokers 3 and 4", || async {
        (1..usize::MAX).contains(&on_leaving(admin.clone()).await)
    })
    .await;

    let kafka = AdminConnector::new(Duration::from_secs(10))
        .connect(&bootstrap)
        .await
        .expect("connect");
    kafka.drain(&[3, 4]).await.expect("both drain at once");
    eventually("brokers 3 and 4 drained", || async {
        kafka.is_drained(&[3, 4]).await.unwrap_or(false)
    })
    .await;
    let topic = admin.describe_topic("orders").await.expect("describe");
    for p in &topic.partitions {
        assert_eq!(p.replicas.len(), 2, "{p:?}");
        assert!(p.replicas.iter().all(|r| [1, 2].contains(r)), "{p:?}");
    }
    // Asking again once drained moves nothing.
    kafka.drain(&[3, 4]).await.expect("a repeated drain");
    // Together: one by one, each waits for a controlled shutdown the
    // shrinking quorum can no longer confirm.
    for stopped in futures::future::join_all(brokers.into_iter().map(Broker::shutdown)).await {
        stopped.expect("shutdown");
    }
}
