//! `weir dev --brokers 2 --controllers 3`: a local cluster whose metadata
//! quorum is three dedicated controllers, all in one process, used by a
//! real client and stopped cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use weir_e2e::history::{check_history, create_topic, history_producer, read_all};
use weir_e2e::{free_port_range, http_get, wait_until, weir_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_dev_runs_brokers_with_dedicated_controllers() {
    let (brokers, controllers) = (2u16, 3u16);
    let base = free_port_range(3 * brokers + 2 * controllers);
    let data = tempfile::tempdir().expect("temp dir");
    let mut dev = Command::new(weir_bin())
        .args(["dev", "--brokers", "2", "--controllers", "3"])
        .args(["--port", &base.to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .env("WEIR_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("weir dev");
    let stdout = dev.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while !lines.iter().any(|l: &String| l.contains("ready (data in")) {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => lines.push(line),
            Err(e) => panic!("weir dev did not get ready ({e}): {lines:?}"),
        }
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("weir dev: controller 10"))
            .count(),
        3,
        "{lines:?}"
    );

    // The first controller's admin port (after the brokers' 3×2 ports).
    let controller_admin = base + 3 * brokers;
    let (status, body) = http_get(controller_admin, "/ready").expect("controller admin port");
    assert_eq!(status, 200, "{body}");
    let active: i32 = body
        .lines()
        .find_map(|l| l.strip_prefix("active_controller "))
        .and_then(|v| v.trim().parse().ok())
        .expect("active controller");
    assert!((101..=103).contains(&active), "{body}");

    let bootstrap = format!("127.0.0.1:{base},127.0.0.1:{}", base + 1);
    create_topic(&bootstrap, "local", 1, 2, "1").await;
    let producer = history_producer(&bootstrap);
    for i in 0..50u64 {
        producer
            .send(
                rdkafka::producer::FutureRecord::<(), _>::to("local").payload(&i.to_string()),
                Duration::from_secs(10),
            )
            .await
            .expect("acknowledged");
    }
    let read = read_all(&bootstrap, "local", 50);
    check_history(&(0..50).collect::<Vec<_>>(), &read);

    Command::new("kill")
        .args(["-TERM", &dev.id().to_string()])
        .status()
        .expect("kill");
    let mut status = None;
    wait_until(Duration::from_secs(30), "weir dev to stop", || {
        status = dev.try_wait().expect("wait");
        status.is_some()
    });
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}
