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
//! A second test runs the image as a user would, with its own default
//! command, and checks what the image promises: non-root, the data volume,
//! a clean exit on `docker stop`.
//!
//! Without a Docker engine the tests print a loud message and pass
//! without running (see `weir_e2e::containers::docker_or_skip`).

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_e2e::containers::{
    ContainerCluster, LABEL, docker_or_skip, http_status, image, image_config,
};
use weir_e2e::history::{
    HistoryWriter, check_history, create_topic, partition_state, read_all, read_payloads,
};

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn containerised_cluster_keeps_every_acknowledged_record() {
    if !docker_or_skip("containerised_cluster_keeps_every_acknowledged_record") {
        return;
    }
    runtime().block_on(async {
        let mut cluster = ContainerCluster::start(3).await;
        eprintln!("cluster up: {}", cluster.bootstrap());
        stop_one_container_under_load(&mut cluster).await;
        disconnect_and_reconnect_the_leader(&mut cluster).await;
        rolling_restart(&mut cluster).await;
    });
}

/// The image as a user runs it: `docker run weir:dev` with no arguments
/// (only `WEIR_ADVERTISE` in the environment). Given a volume it cannot
/// write, it stops with an error naming the directory and its user. Its configuration says
/// non-root user, `weir` entrypoint, a broker by default and the data
/// volume; the running broker is not root, takes `acks=all` writes into
/// the volume, exits 0 on `docker stop` (weir handles SIGTERM itself: a
/// PID 1 without a handler ignores it and is killed, exit 137), and has
/// every acknowledged record after `docker start`.
#[test]
fn the_image_runs_a_broker_as_non_root_and_stops_cleanly_on_sigterm() {
    if !docker_or_skip("the_image_runs_a_broker_as_non_root_and_stops_cleanly_on_sigterm") {
        return;
    }
    runtime().block_on(async {
        let config = image_config().await;
        assert_eq!(config.user.as_deref(), Some("65532:65532"), "image user");
        assert_eq!(
            config.entrypoint,
            Some(vec!["weir".to_string()]),
            "image entrypoint"
        );
        let cmd = config.cmd.unwrap_or_default();
        assert_eq!(cmd.first().map(String::as_str), Some("broker"), "image command {cmd:?}");
        let volumes = config.volumes.unwrap_or_default();
        assert!(
            volumes.iter().any(|v| v == "/var/lib/weir"),
            "image volumes {volumes:?}"
        );
        let ports = config.exposed_ports.unwrap_or_default();
        for port in ["9092/tcp", "9093/tcp", "9644/tcp", "8083/tcp"] {
            assert!(ports.iter().any(|p| p == port), "{port} not in exposed ports {ports:?}");
        }

        // A data volume its user cannot write (a tmpfs owned by root): a
        // clear error naming the directory and the user, and a failed exit.
        let (repo, tag) = image();
        // `timeout`: should the broker start after all, the test fails
        // instead of waiting on it; the label lets a later run remove it.
        let refused = std::process::Command::new("timeout")
            .args(["60", "docker", "run", "--rm", "--tmpfs", "/var/lib/weir:mode=0755"])
            .arg("--label")
            .arg(format!("{LABEL}={}-refused", std::process::id()))
            .arg(format!("{repo}:{tag}"))
            .env_remove("DOCKER_HOST")
            .output()
            .expect("docker run");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "the broker ran on a volume it cannot write: {stderr}");
        assert!(
            stderr.contains(
                "data directory /var/lib/weir must be writable by the user this process runs as (uid 65532)"
            ),
            "unclear error for an unwritable volume: {stderr}"
        );

        let mut cluster = ContainerCluster::start_with_image_defaults(None).await;
        let node_id = cluster.brokers[0].node_id;
        let uids = cluster.brokers[0].process_uids().await;
        assert!(
            !uids.is_empty() && uids.iter().all(|uid| uid == "65532"),
            "processes in the container run as {uids:?}, not only as 65532"
        );

        let bootstrap = cluster.bootstrap();
        let topic = "image-defaults";
        create_topic(&bootstrap, topic, 1, 1, "1").await;
        let writer = HistoryWriter::start(&bootstrap, topic);
        writer.wait_for_progress(300, PROGRESS, "into the broker").await;
        let acked = writer.finish().await;

        let exit = cluster.stop(node_id).await;
        assert_eq!(exit, 0, "docker stop: the broker did not exit cleanly on SIGTERM");
        cluster.start_again(node_id).await;
        let (b, t, n) = (bootstrap.clone(), topic.to_string(), acked.len());
        let read = tokio::task::spawn_blocking(move || read_all(&b, &t, n))
            .await
            .expect("reader task");
        check_history(&acked, &read);
    });
}

/// A broker whose data volume fills up (a 32 MiB tmpfs): the write that
/// does not fit is refused, the broker stays up and says which file and
/// why, every record acknowledged before is still there, and once space is
/// freed (a topic deleted) writes are acknowledged again.
#[test]
fn a_full_disk_refuses_writes_and_loses_nothing() {
    if !docker_or_skip("a_full_disk_refuses_writes_and_loses_nothing") {
        return;
    }
    runtime().block_on(async {
        let cluster = ContainerCluster::start_with_image_defaults(Some(32 << 20)).await;
        let broker = &cluster.brokers[0];
        let bootstrap = cluster.bootstrap();

        let keep = "kept";
        create_topic(&bootstrap, keep, 1, 1, "1").await;
        let writer = HistoryWriter::start(&bootstrap, keep);
        writer
            .wait_for_progress(300, PROGRESS, "before the disk fills")
            .await;
        let mut acked = writer.finish().await;

        // Big records into small segments until one is refused.
        let fill = "filler";
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .expect("admin client");
        let topic =
            NewTopic::new(fill, 1, TopicReplication::Fixed(1)).set("segment.bytes", "1048576");
        for result in admin
            .create_topics(std::iter::once(&topic), &AdminOptions::new())
            .await
            .expect("create topics")
        {
            result.expect("creating the filler topic");
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("message.timeout.ms", "5000")
            .create()
            .expect("producer");
        let payload = vec![0u8; 256 << 10];
        let mut filled = 0usize;
        let refusal = loop {
            assert!(
                filled < 1000,
                "{filled} records of 256 KiB fit on a 32 MiB disk"
            );
            let record = FutureRecord::<(), _>::to(fill)
                .partition(0)
                .payload(&payload);
            match producer.send(record, Duration::from_secs(10)).await {
                Ok(_) => filled += 1,
                Err((e, _)) => break e,
            }
        };
        eprintln!("{filled} records of 256 KiB acknowledged, then: {refusal}");
        assert!(filled > 0, "nothing fitted on the disk");

        // Still up, and it says why.
        let admin_addr = std::net::SocketAddr::from((broker.ip, 9644));
        let health = tokio::task::spawn_blocking(move || http_status(admin_addr, "/healthz"))
            .await
            .expect("health task");
        assert_eq!(
            health,
            Some(200),
            "the broker is not healthy with a full disk"
        );
        let logs = broker.logs("all");
        assert!(
            logs.contains("No space left on device") && logs.contains("topic=filler partition=0"),
            "the broker's log does not name the full disk and the partition:\n{}",
            logs.lines().rev().take(20).collect::<Vec<_>>().join("\n")
        );
        let (b, t) = (bootstrap.clone(), fill.to_string());
        let counted = tokio::task::spawn_blocking(move || read_payloads(&b, &t, filled).len())
            .await
            .expect("counter task");
        assert_eq!(counted, filled, "acknowledged 256 KiB records in {fill}");

        // Space back: the same producer's writes go through again.
        for result in admin
            .delete_topics(&[fill], &AdminOptions::new())
            .await
            .expect("delete topics")
        {
            result.expect("deleting the filler topic");
        }
        let after = acked.last().copied().unwrap_or(0);
        for value in after + 1..=after + 50 {
            let payload = value.to_string();
            // The deletion frees the space once the broker has applied it.
            let deadline = Instant::now() + PROGRESS;
            loop {
                let record = FutureRecord::<(), _>::to(keep)
                    .partition(0)
                    .payload(&payload);
                match producer.send(record, Duration::from_secs(10)).await {
                    Ok(_) => break,
                    Err((e, _)) => {
                        assert!(
                            Instant::now() < deadline,
                            "write {value} after freeing space: {e}"
                        );
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            acked.push(value);
        }
        let (b, t, n) = (bootstrap.clone(), keep.to_string(), acked.len());
        let read = tokio::task::spawn_blocking(move || read_all(&b, &t, n))
            .await
            .expect("reader task");
        check_history(&acked, &read);
    });
}

/// The registry build (`Dockerfile`) and the registry-free one
/// (`docker/runtime.Dockerfile`, what these tests run) must make the same
/// runtime image: their final `FROM scratch` stages are the same text.
#[test]
fn both_image_builds_share_one_runtime_stage() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let runtime_stage = |file: &str| {
        let text = std::fs::read_to_string(root.join(file)).expect(file);
        let start = text
            .find("\nFROM scratch")
            .unwrap_or_else(|| panic!("{file} has no FROM scratch stage"));
        text[start..]
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        runtime_stage("Dockerfile"),
        runtime_stage("docker/runtime.Dockerfile"),
        "the runtime stages of Dockerfile and docker/runtime.Dockerfile differ"
    );
}
