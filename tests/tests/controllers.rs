//! Dedicated controllers (`--process-roles controller`, KRaft's
//! process.roles=controller): three controller processes form the metadata
//! quorum, three broker-only processes serve clients. Losing the active
//! controller elects another while writes go on; a broker lost after that
//! is fenced and its leaderships move by the new controller's decision;
//! nothing acknowledged is lost.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use weir_e2e::history::{
    HistoryWriter, check_history, create_topic, full_isr, partition_state, read_all,
};
use weir_e2e::{ClusterProcesses, wait_until};

fn broker_ids(bootstrap: &str) -> Vec<i32> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("metadata");
    let mut ids: Vec<i32> = metadata.brokers().iter().map(|b| b.id()).collect();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedicated_controllers_run_the_quorum_and_survive_losing_the_active_one() {
    let mut cluster = ClusterProcesses::start_with_controllers(3, 3, &[]);
    let bootstrap = cluster.bootstrap();
    // Clients see the brokers only: a controller has no Kafka listener.
    assert_eq!(broker_ids(&bootstrap), vec![1, 2, 3]);
    // librdkafka sends CreateTopics to the controller id Metadata names,
    // so this also checks that id is a broker it can reach.
    create_topic(&bootstrap, "history", 1, 3, "2").await;
    wait_until(Duration::from_secs(20), "a full ISR", || {
        full_isr(&bootstrap, "history")
    });

    let writer = HistoryWriter::start(&bootstrap, "history");
    writer
        .wait_for_progress(100, Duration::from_secs(30), "writes before the kill")
        .await;
    let first = cluster.active_controller().expect("an active controller");
    assert!(
        first > 100,
        "a dedicated controller leads the quorum, not {first}"
    );
    cluster.controller(first).kill9();
    let mut second = None;
    wait_until(Duration::from_secs(20), "a new active controller", || {
        second = cluster.active_controller().filter(|&id| id != first);
        second.is_some()
    });
    writer
        .wait_for_progress(
            100,
            Duration::from_secs(30),
            "writes after the controller kill",
        )
        .await;

    // A broker loss now needs the new controller: it fences the silent
    // broker and elects another leader.
    let (leader, _, _) = partition_state(&bootstrap, "history").expect("metadata");
    cluster.broker(leader).kill9();
    writer
        .wait_for_progress(100, Duration::from_secs(30), "a new leader acknowledging")
        .await;
    let (new_leader, _, _) = partition_state(&bootstrap, "history").expect("metadata");
    assert_ne!(new_leader, leader, "a killed broker cannot lead");

    // Admin requests go through the new controller.
    create_topic(&bootstrap, "after-failover", 2, 2, "1").await;
    wait_until(
        Duration::from_secs(20),
        "the new topic to have leaders",
        || partition_state(&bootstrap, "after-failover").is_some_and(|(l, _, _)| l >= 0),
    );

    cluster.broker(leader).restart();
    cluster.controller(first).restart();
    cluster.wait_ready(Duration::from_secs(60));
    wait_until(
        Duration::from_secs(60),
        "the restarted broker to rejoin the ISR",
        || full_isr(&bootstrap, "history"),
    );
    let acked = writer.finish().await;
    let read = read_all(&bootstrap, "history", acked.len());
    check_history(&acked, &read);

    // Controllers store metadata, never partitions.
    for controller in &cluster.controllers {
        let partitions: Vec<String> = std::fs::read_dir(&controller.data_dir)
            .expect("controller data dir")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("history") || name.starts_with("after-failover"))
            .collect();
        assert!(
            partitions.is_empty(),
            "controller {} holds {partitions:?}",
            controller.node_id
        );
    }
}
