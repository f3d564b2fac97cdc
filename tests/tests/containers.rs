//! A three-broker cluster of our own image (`weir:dev`, from
//! `scripts/build-image.sh`) in Docker containers on a user-defined network,
//! driven from the host by librdkafka (the `rdkafka` crate). Three faults,
//! one after another on the same cluster, each under `acks=all` load with
//! `min.insync.replicas=2` and each with a history check (every acknowledged
//! record is read back exactly once, in order):
//!
//! (a) `docker stop` of the partition leader (SIGTERM: controlled shutdown),
//!     then `docker start`;
//! (b) the leader cut off the network, writes going on with the other two,
//!     then reconnected;
//! (c) a rolling restart of all three, one at a time, waiting for `/ready`
//!     and a full ISR in between.
//!
//! Without a Docker engine the test prints a loud message and passes
//! without running (see `weir_e2e::containers::docker_or_skip`).

use std::time::{Duration, Instant};

use weir_e2e::containers::{ContainerCluster, docker_or_skip};
use weir_e2e::history::{HistoryWriter, check_history, create_topic, partition_state, read_all};

/// Polls `topic`-0's metadata until `check(leader, isr)` holds.
async fn wait_for_partition(
    bootstrap: &str,
    topic: &str,
    timeout: Duration,
    what: &str,
    check: impl Fn(i32, &[i32]) -> bool,
) -> (i32, Vec<i32>) {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let (b, t) = (bootstrap.to_string(), topic.to_string());
        let state = tokio::task::spawn_blocking(move || partition_state(&b, &t))
            .await
            .expect("metadata task");
        if let Some((leader, _, isr)) = state {
            if check(leader, &isr) {
                return (leader, isr);
            }
            last = Some((leader, isr));
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what} on {topic}; last (leader, isr): {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn new_topic(bootstrap: &str, topic: &str) {
    create_topic(bootstrap, topic, 1, 3, "2").await;
    wait_for_partition(
        bootstrap,
        topic,
        Duration::from_secs(30),
        "a full ISR",
        |l, isr| l >= 0 && isr.len() == 3,
    )
    .await;
}

async fn finish_and_check(writer: HistoryWriter, bootstrap: &str, topic: &str, at_least: usize) {
    let acked = writer.finish().await;
    assert!(
        acked.len() >= at_least,
        "{topic}: only {} writes acknowledged",
        acked.len()
    );
    let (b, t, n) = (bootstrap.to_string(), topic.to_string(), acked.len());
    let read = tokio::task::spawn_blocking(move || read_all(&b, &t, n))
        .await
        .expect("reader task");
    check_history(&acked, &read);
    eprintln!(
        "{topic}: {} acknowledged, {} read, history complete and in order",
        acked.len(),
        read.len()
    );
}

const PROGRESS: Duration = Duration::from_secs(60);

/// (a) `docker stop` (SIGTERM) of the leader under load, then start again.
async fn stop_one_container_under_load(cluster: &mut ContainerCluster) {
    let bootstrap = cluster.bootstrap();
    let topic = "stop-under-load";
    new_topic(&bootstrap, topic).await;
    let writer = HistoryWriter::start(&bootstrap, topic);
    writer
        .wait_for_progress(200, PROGRESS, "before the stop")
        .await;

    let (leader, _) =
        wait_for_partition(&bootstrap, topic, PROGRESS, "a leader", |l, _| l >= 0).await;
    eprintln!("(a) docker stop of the leader, broker {leader}");
    let exit = cluster.stop(leader).await;
    assert_eq!(
        exit, 0,
        "broker {leader} did not exit cleanly after SIGTERM"
    );
    let (new_leader, isr) =
        wait_for_partition(&bootstrap, topic, PROGRESS, "a new leader", |l, isr| {
            l >= 0 && l != leader && !isr.contains(&leader)
        })
        .await;
    eprintln!("(a) broker {new_leader} leads, ISR {isr:?}");
    writer
        .wait_for_progress(200, PROGRESS, "with the old leader stopped")
        .await;

    cluster.start_again(leader).await;
    wait_for_partition(
        &bootstrap,
        topic,
        PROGRESS,
        "the restarted broker back in the ISR",
        |_, isr| isr.len() == 3,
    )
    .await;
    writer
        .wait_for_progress(100, PROGRESS, "after the restart")
        .await;
    finish_and_check(writer, &bootstrap, topic, 500).await;
}

/// (b) The leader cut off the network; the majority goes on; reconnect.
async fn disconnect_and_reconnect_the_leader(cluster: &mut ContainerCluster) {
    let bootstrap = cluster.bootstrap();
    let topic = "partitioned-leader";
    new_topic(&bootstrap, topic).await;
    let writer = HistoryWriter::start(&bootstrap, topic);
    writer
        .wait_for_progress(200, PROGRESS, "before the partition")
        .await;

    let (leader, _) =
        wait_for_partition(&bootstrap, topic, PROGRESS, "a leader", |l, _| l >= 0).await;
    eprintln!("(b) disconnecting the leader, broker {leader}, from the network");
    cluster.disconnect(leader).await;
    // The other two: a new leader among them, and acks=all writes with
    // min.insync.replicas=2 go on.
    let majority = cluster
        .brokers
        .iter()
        .filter(|b| b.node_id != leader)
        .map(|b| b.bootstrap())
        .collect::<Vec<_>>()
        .join(",");
    let (new_leader, isr) = wait_for_partition(
        &majority,
        topic,
        PROGRESS,
        "a leader on the majority side",
        |l, _| l >= 0 && l != leader,
    )
    .await;
    eprintln!("(b) broker {new_leader} leads on the majority side, ISR {isr:?}");
    writer
        .wait_for_progress(200, PROGRESS, "on the majority side")
        .await;

    eprintln!("(b) reconnecting broker {leader}");
    cluster.reconnect(leader).await;
    cluster.wait_ready(PROGRESS).await;
    wait_for_partition(
        &bootstrap,
        topic,
        PROGRESS,
        "the reconnected broker back in the ISR",
        |_, isr| isr.len() == 3,
    )
    .await;
    writer
        .wait_for_progress(100, PROGRESS, "after reconnecting")
        .await;
    finish_and_check(writer, &bootstrap, topic, 500).await;
}

/// (c) Restart every broker, one at a time.
async fn rolling_restart(cluster: &mut ContainerCluster) {
    let bootstrap = cluster.bootstrap();
    let topic = "rolling-restart";
    new_topic(&bootstrap, topic).await;
    let writer = HistoryWriter::start(&bootstrap, topic);
    writer
        .wait_for_progress(200, PROGRESS, "before the restarts")
        .await;

    let ids: Vec<i32> = cluster.brokers.iter().map(|b| b.node_id).collect();
    for id in ids {
        eprintln!("(c) restarting broker {id}");
        let exit = cluster.stop(id).await;
        assert_eq!(exit, 0, "broker {id} did not exit cleanly after SIGTERM");
        writer
            .wait_for_progress(100, PROGRESS, &format!("with broker {id} stopped"))
            .await;
        cluster.start_again(id).await;
        wait_for_partition(
            &bootstrap,
            topic,
            PROGRESS,
            &format!("broker {id} back in the ISR"),
            |_, isr| isr.len() == 3,
        )
        .await;
    }
    writer
        .wait_for_progress(100, PROGRESS, "after the restarts")
        .await;
    finish_and_check(writer, &bootstrap, topic, 500).await;
}

#[test]
fn containerised_cluster_keeps_every_acknowledged_record() {
    if !docker_or_skip("containerised_cluster_keeps_every_acknowledged_record") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            let mut cluster = ContainerCluster::start(3).await;
            eprintln!("cluster up: {}", cluster.bootstrap());
            stop_one_container_under_load(&mut cluster).await;
            disconnect_and_reconnect_the_leader(&mut cluster).await;
            rolling_restart(&mut cluster).await;
        });
}
