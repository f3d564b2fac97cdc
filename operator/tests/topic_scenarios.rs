//! Topic scenarios: the Topic controller over the fake API server, with
//! in-memory clusters, and once against a real in-process broker.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use weir_operator::crd::cluster::Cluster;
use weir_operator::crd::topic::{DeletionPolicy, ManagementPolicy, Topic, TopicStatus};
use weir_operator::kafka::memory::{Call, InMemoryKafka};
use weir_operator::kafka::{ConfigChange, NewTopicSpec};
use weir_operator::reconcile::Settings;

fn status(t: Option<Topic>) -> TopicStatus {
    t.and_then(|t| t.status).unwrap_or_default()
}

async fn ready_topic(w: &World, name: &str) -> TopicStatus {
    eventually("the Topic to be Ready", || async {
        let s = status(get::<Topic>(&w.client, name).await);
        condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
    })
    .await;
    status(get::<Topic>(&w.client, name).await)
}

#[tokio::test]
async fn a_managed_topic_is_created_grown_reconfigured_kept_in_line_and_deleted() {
    let w = world(&[0, 1, 2]).await;
    create(&w.client, &cluster("demo", 3)).await;
    let mut t = topic("orders", "demo", 3, 3);
    t.spec.config = BTreeMap::from([("retention.ms".into(), "86400000".into())]);
    create(&w.client, &t).await;
    let s = ready_topic(&w, "orders").await;
    assert_eq!(w.kafka.topic_partitions("orders"), Some(3));
    assert_eq!(s.partitions, Some(3));
    assert_eq!(s.cluster_id.as_deref(), Some("cluster-demo"));
    assert!(s.topic_id.is_some());
    assert_eq!(
        s.effective_config.get("retention.ms").map(String::as_str),
        Some("86400000")
    );
    let cr = get::<Topic>(&w.client, "orders").await.expect("topic");
    assert_eq!(
        cr.metadata.finalizers,
        Some(vec!["weir.dev/topic".to_string()])
    );

    patch_spec::<Topic>(
        &w.client,
        "orders",
        json!({"partitions": 6, "config": {"retention.ms": "3600000"}}),
    )
    .await;
    eventually("six partitions and the new setting", || async {
        w.kafka.topic_partitions("orders") == Some(6)
            && w.kafka
                .topic_config("orders")
                .is_some_and(|c| c["retention.ms"] == "3600000")
    })
    .await;

    // Changed on the brokers behind the operator's back: reverted.
    w.kafka
        .set_config_out_of_band("orders", "retention.ms", "5");
    w.kafka
        .set_config_out_of_band("orders", "cleanup.policy", "compact");
    eventually("the drift reverted", || async {
        w.kafka.topic_config("orders")
            == Some(BTreeMap::from([("retention.ms".into(), "3600000".into())]))
    })
    .await;
    eventually("a DriftReverted event", || async {
        event_reasons(&w.client)
            .await
            .iter()
            .any(|r| r == "DriftReverted")
    })
    .await;
    assert!(w.kafka.calls().contains(&Call::AlterTopicConfig(
        "orders".into(),
        vec![
            ConfigChange::Set("retention.ms".into(), "3600000".into()),
            ConfigChange::Delete("cleanup.policy".into()),
        ]
    )));

    // An unknown key is reported, never applied; the rest stays managed.
    patch_spec::<Topic>(&w.client, "orders", json!({"config": {"no.such.key": "1"}})).await;
    eventually("the unknown key reported", || async {
        let s = status(get::<Topic>(&w.client, "orders").await);
        condition(&s.conditions, "Ready")
            .is_some_and(|c| c.status == "False" && c.reason == "InvalidConfig")
    })
    .await;
    assert!(
        !w.kafka
            .topic_config("orders")
            .expect("topic")
            .contains_key("no.such.key")
    );

    Api::<Topic>::namespaced(w.client.clone(), NS)
        .delete("orders", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the topic and the resource gone", || async {
        w.kafka.topic_names().is_empty() && get::<Topic>(&w.client, "orders").await.is_none()
    })
    .await;
}

#[tokio::test]
async fn observe_reports_drift_and_retain_keeps_the_topic() {
    let w = world(&[0, 1, 2]).await;
    create(&w.client, &cluster("demo", 3)).await;
    w.kafka
        .create_out_of_band(&NewTopicSpec {
            name: "payments".into(),
            partitions: 4,
            replication_factor: 3,
            config: BTreeMap::from([("retention.ms".into(), "5".into())]),
        })
        .expect("topic");
    let mut t = topic("payments", "demo", 4, 3);
    t.spec.management_policy = ManagementPolicy::Observe;
    t.spec.deletion_policy = DeletionPolicy::Retain;
    t.spec.config = BTreeMap::from([("retention.ms".into(), "1000".into())]);
    create(&w.client, &t).await;
    eventually("drift reported", || async {
        let s = status(get::<Topic>(&w.client, "payments").await);
        condition(&s.conditions, "DriftDetected")
            .is_some_and(|c| c.status == "True" && c.reason == "Observed")
            && s.drift
                .iter()
                .any(|d| d.field == "retention.ms" && d.desired == "1000" && d.actual == "5")
    })
    .await;
    assert_eq!(
        w.kafka.topic_config("payments").expect("topic")["retention.ms"],
        "5"
    );
    assert!(
        w.kafka.calls().is_empty(),
        "Observe changes nothing: {:?}",
        w.kafka.calls()
    );

    Api::<Topic>::namespaced(w.client.clone(), NS)
        .delete("payments", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the resource gone", || async {
        get::<Topic>(&w.client, "payments").await.is_none()
    })
    .await;
    assert_eq!(w.kafka.topic_names(), ["payments"]);
}

#[tokio::test]
async fn adopt_takes_over_an_existing_topic_and_a_decrease_is_refused() {
    let w = world(&[0, 1, 2]).await;
    create(&w.client, &cluster("demo", 3)).await;
    w.kafka
        .create_out_of_band(&NewTopicSpec {
            name: "legacy".into(),
            partitions: 8,
            replication_factor: 3,
            config: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
        })
        .expect("topic");
    let mut t = topic("legacy", "demo", 4, 3);
    t.spec.management_policy = ManagementPolicy::Adopt;
    create(&w.client, &t).await;
    eventually("the decrease reported", || async {
        let s = status(get::<Topic>(&w.client, "legacy").await);
        condition(&s.conditions, "Ready")
            .is_some_and(|c| c.status == "False" && c.reason == "PartitionDecrease")
    })
    .await;
    // Adopted: the settings follow the spec; the partitions stay.
    eventually("the settings taken over", || async {
        w.kafka.topic_config("legacy") == Some(BTreeMap::new())
    })
    .await;
    assert_eq!(w.kafka.topic_partitions("legacy"), Some(8));
    assert!(
        !w.kafka
            .calls()
            .iter()
            .any(|c| matches!(c, Call::CreateTopic(_) | Call::CreatePartitions(..)))
    );
}

#[tokio::test]
async fn a_topic_acts_only_on_the_cluster_its_ref_names() {
    let w = world(&[0, 1, 2]).await;
    let other = InMemoryKafka::new("cluster-other", &[0, 1, 2]);
    w.connector.add(&bootstrap("other"), other.clone());
    create(&w.client, &cluster("demo", 3)).await;
    create(&w.client, &cluster("other", 3)).await;
    create(&w.client, &topic("clicks", "other", 2, 2)).await;
    ready_topic(&w, "clicks").await;
    assert_eq!(other.topic_names(), ["clicks"]);
    assert!(w.kafka.topic_names().is_empty());

    create(&w.client, &topic("lost", "nowhere", 1, 1)).await;
    eventually("the missing cluster reported", || async {
        let s = status(get::<Topic>(&w.client, "lost").await);
        condition(&s.conditions, "Ready").is_some_and(|c| c.reason == "ClusterNotFound")
    })
    .await;
}

/// The Topic reconciler through weir-client against a real broker.
#[tokio::test]
async fn a_topic_on_a_real_broker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = weir_broker::Broker::start(weir_broker::config::BrokerConfig::new(
        1,
        dir.path(),
        "127.0.0.1:0",
    ))
    .await
    .expect("broker");
    let address = broker.local_addr().to_string();
    let (_server, client) = weir_kube_testkit::FakeApiServer::start()
        .await
        .expect("fake API server");
    let connector = Arc::new(weir_operator::kafka::admin::AdminConnector::new(
        Duration::from_secs(10),
    ));
    let _operator = start_operator(
        &client,
        connector,
        Settings {
            bootstrap_override: Some(address.clone()),
            ..settings()
        },
        None,
    );
    let mut c = cluster("demo", 1);
    c.spec.paused = true; // no brokers to run: only the Topic matters here
    create(&client, &c).await;
    let mut t = topic("events", "demo", 2, 1);
    t.spec.config = BTreeMap::from([("retention.ms".into(), "60000".into())]);
    create(&client, &t).await;

    let admin = weir_client::admin::Admin::connect(weir_client::ClientConfig::new(address))
        .await
        .expect("admin");
    let configs = |admin: weir_client::admin::Admin| async move {
        admin
            .describe_configs(&weir_client::admin::ConfigResource::topic("events"))
            .await
            .map(|cs| {
                cs.into_iter()
                    .filter_map(|c| Some((c.name, c.value?)))
                    .collect::<BTreeMap<_, _>>()
            })
            .unwrap_or_default()
    };
    eventually("the topic on the broker", || async {
        admin
            .describe_topic("events")
            .await
            .is_ok_and(|t| t.partitions.len() == 2)
    })
    .await;
    eventually("Ready with the broker's view", || async {
        let s = status(get::<Topic>(&client, "events").await);
        condition(&s.conditions, "Ready").is_some_and(|c| c.status == "True")
            && s.effective_config.get("retention.ms").map(String::as_str) == Some("60000")
    })
    .await;

    patch_spec::<Topic>(&client, "events", json!({"partitions": 3})).await;
    eventually("three partitions", || async {
        admin
            .describe_topic("events")
            .await
            .is_ok_and(|t| t.partitions.len() == 3)
    })
    .await;

    // Out of band, with a Kafka admin client: reverted to the spec.
    admin
        .incremental_alter_configs(
            &weir_client::admin::ConfigResource::topic("events"),
            &[weir_client::admin::AlterConfigOp::Set(
                "retention.ms".into(),
                "1234".into(),
            )],
        )
        .await
        .expect("alter");
    eventually("the drift reverted", || async {
        configs(admin.clone())
            .await
            .get("retention.ms")
            .map(String::as_str)
            == Some("60000")
    })
    .await;

    Api::<Topic>::namespaced(client.clone(), NS)
        .delete("events", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the topic deleted from the broker", || async {
        admin.describe_topic("events").await.is_err()
    })
    .await;
    let _ = get::<Cluster>(&client, "demo").await;
    broker.shutdown().await.expect("shutdown");
}
