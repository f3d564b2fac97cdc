//! Support for the cross-process tests in `tests/tests/`: start the real
//! `weir` binary as a broker on a free loopback port, stop it politely or
//! with `kill -9`, and start it again on the same data directory.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `weir` binary under test: `$WEIR_BIN`, else the one cargo built next
/// to this test executable.
pub fn weir_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("WEIR_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/debug/deps/<test> → target/debug/weir
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("weir")
}

/// A free port on 127.0.0.1 for a server a test starts.
///
/// Not one the OS picks with `bind(:0)`: those come from the ephemeral
/// range, which every outgoing connection on the machine also draws from,
/// so between our release and the broker's bind another test's client
/// could take it ("Address already in use"). Ports below the ephemeral
/// range are only ever handed out here; a random start per process and a
/// bind check keep parallel test processes apart.
pub fn free_port() -> u16 {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let (low, high) = (10_000u64, u64::from(ephemeral_range_start()).max(10_001));
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..10_000 {
        let mut x = STATE.load(Ordering::Relaxed);
        if x == 0 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1);
            x = nanos ^ (u64::from(std::process::id()) << 32) | 1;
        }
        // xorshift64: enough spread that parallel processes rarely meet.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        STATE.store(x, Ordering::Relaxed);
        let port = (low + x % (high - low)) as u16;
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port between {low} and {high}");
}

/// `len` consecutive free ports on 127.0.0.1 (for `weir dev --port BASE`,
/// which takes the ports above its base); the first is returned.
pub fn free_port_range(len: u16) -> u16 {
    for _ in 0..1_000 {
        let base = free_port();
        let all_free = (1..len).all(|i| {
            base.checked_add(i)
                .is_some_and(|p| TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if all_free && u32::from(base) + u32::from(len) < u32::from(ephemeral_range_start()) {
            return base;
        }
    }
    panic!("no {len} consecutive free ports");
}

/// The first port the kernel hands out for `bind(:0)` and outgoing
/// connections (32768 when it cannot be read).
fn ephemeral_range_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `weir broker` child process.
pub struct BrokerProcess {
    child: Option<Child>,
    pub node_id: i32,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Set for members of a multi-broker cluster: the admin HTTP port (for
    /// `/ready`) and the quorum flags.
    pub admin_port: Option<u16>,
    quorum: Option<(String, u16)>,
    /// A dedicated controller (`--process-roles controller`): no Kafka
    /// listener; `port` is unused.
    pub controller_only: bool,
    extra: Vec<String>,
    _temp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker on a fresh data directory; `extra` are more
    /// `--config KEY=VALUE` settings.
    pub fn start(extra: &[&str]) -> BrokerProcess {
        Self::start_on(free_port(), extra)
    }

    /// As [`Self::start`], with the Kafka listener (`--listen`) on `port`,
    /// for settings that must name it (e.g. `listeners`).
    pub fn start_on(port: u16, extra: &[&str]) -> BrokerProcess {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut broker = BrokerProcess {
            child: None,
            node_id: 1,
            port,
            data_dir: temp.path().to_path_buf(),
            admin_port: None,
            quorum: None,
            controller_only: false,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _temp: Some(temp),
        };
        broker.spawn();
        broker
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The quorum port of a cluster member.
    pub fn quorum_port(&self) -> Option<u16> {
        self.quorum.as_ref().map(|(_, port)| *port)
    }

    fn spawn(&mut self) {
        let listen = self.bootstrap();
        let admin = match self.admin_port {
            Some(port) => format!("127.0.0.1:{port}"),
            // Tests run brokers side by side: each picks a free admin port.
            None => "127.0.0.1:0".to_string(),
        };
        let mut cmd = Command::new(weir_bin());
        cmd.args([
            "broker",
            "--node-id",
            &self.node_id.to_string(),
            "--listen",
            &listen,
            "--advertise",
            &listen,
            "--admin-listen",
            &admin,
        ])
        .arg("--data-dir")
        .arg(&self.data_dir)
        .args(["--config", "group.initial.rebalance.delay.ms=0"])
        .env(
            "WEIR_LOG",
            std::env::var("WEIR_E2E_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdin(Stdio::null());
        for setting in &self.extra {
            // `{port}` stands for this node's Kafka port, so settings shared
            // by a cluster's nodes can name it (`listeners`).
            let setting = setting.replace("{port}", &self.port.to_string());
            cmd.args(["--config", &setting]);
        }
        if let Some((voters, port)) = &self.quorum {
            cmd.args(["--controller-quorum", voters])
                .args(["--controller-listen", &format!("127.0.0.1:{port}")]);
        }
        if self.controller_only {
            cmd.args(["--process-roles", "controller"]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", weir_bin().display()));
        self.child = Some(child);
        // A controller has no Kafka listener: its admin port answers instead.
        let addr: SocketAddr = if self.controller_only {
            admin.parse().expect("address")
        } else {
            listen.parse().expect("address")
        };
        wait_until(
            Duration::from_secs(30),
            "the broker to accept connections",
            || {
                if let Some(child) = self.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    panic!("broker exited during start: {status}");
                }
                TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
            },
        );
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process: alive but
    /// silent, like a long GC pause or a hung disk.
    pub fn freeze(&self, frozen: bool) {
        if let Some(child) = &self.child {
            let signal = if frozen { "-STOP" } else { "-CONT" };
            let status = Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {signal} failed");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "broker exited with {status} after SIGTERM"
                        );
                        return;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("broker did not stop within 20 s of SIGTERM");
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Starts again on the same data directory and port.
    pub fn restart(&mut self) {
        self.spawn();
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Whether the admin port answers `/ready` with 200 (cluster members only).
    pub fn is_ready(&self) -> bool {
        let Some(port) = self.admin_port else {
            return self.child.is_some();
        };
        http_get(port, "/ready").is_some_and(|(status, _)| status == 200)
    }
}

/// A plain HTTP/1.0 GET on 127.0.0.1: (status, body), or None if nothing answered.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Several `weir broker` processes forming one cluster on 127.0.0.1.
pub struct ClusterProcesses {
    /// Nodes with the broker role (combined with the controller role in
    /// `start`), node ids 1..=n.
    pub brokers: Vec<BrokerProcess>,
    /// Dedicated controllers (`start_with_controllers`), node ids 101.. .
    pub controllers: Vec<BrokerProcess>,
}

impl ClusterProcesses {
    /// Starts `n` brokers, the first three of them also the metadata
    /// quorum's voters (combined mode), and waits until every one is
    /// ready; `extra` are `--config KEY=VALUE` settings for all.
    pub fn start(n: usize, extra: &[&str]) -> ClusterProcesses {
        let nodes: Vec<(i32, bool)> = (1..=n as i32).map(|id| (id, false)).collect();
        Self::launch(&nodes, n.min(3), extra)
    }

    /// Starts `controllers` dedicated controllers (node ids 101..), which
    /// alone form the quorum, and `brokers` broker-only nodes (1..=brokers).
    pub fn start_with_controllers(
        controllers: usize,
        brokers: usize,
        extra: &[&str],
    ) -> ClusterProcesses {
        let nodes: Vec<(i32, bool)> = (101..101 + controllers as i32)
            .map(|id| (id, true))
            .chain((1..=brokers as i32).map(|id| (id, false)))
            .collect();
        Self::launch(&nodes, controllers, extra)
    }

    /// `nodes` are (node id, controller only); the first `voters` of them
    /// vote in the quorum.
    fn launch(nodes: &[(i32, bool)], voters: usize, extra: &[&str]) -> ClusterProcesses {
        let quorum_ports: Vec<u16> = nodes.iter().map(|_| free_port()).collect();
        let voters = nodes
            .iter()
            .zip(&quorum_ports)
            .take(voters)
            .map(|((id, _), port)| format!("{id}@127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = ClusterProcesses {
            brokers: Vec::new(),
            controllers: Vec::new(),
        };
        for (&(node_id, controller_only), quorum_port) in nodes.iter().zip(quorum_ports) {
            let temp = tempfile::tempdir().expect("temp dir");
            let mut node = BrokerProcess {
                child: None,
                node_id,
                port: free_port(),
                data_dir: temp.path().to_path_buf(),
                admin_port: Some(free_port()),
                quorum: Some((voters.clone(), quorum_port)),
                controller_only,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                _temp: Some(temp),
            };
            node.spawn();
            if controller_only {
                cluster.controllers.push(node);
            } else {
                cluster.brokers.push(node);
            }
        }
        cluster.wait_ready(Duration::from_secs(60));
        cluster
    }

    /// Every broker's address, comma-separated, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(BrokerProcess::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Waits until every running node answers `/ready`.
    pub fn wait_ready(&self, timeout: Duration) {
        wait_until(timeout, "every node to be ready", || {
            self.brokers
                .iter()
                .chain(&self.controllers)
                .filter(|b| b.is_running())
                .all(BrokerProcess::is_ready)
        });
    }

    /// The node the running nodes agree is the active controller (from a
    /// dedicated controller's `/ready`), if they agree on one.
    pub fn active_controller(&self) -> Option<i32> {
        let mut seen = self
            .controllers
            .iter()
            .filter(|c| c.is_running())
            .filter_map(|c| {
                let (status, body) = http_get(c.admin_port?, "/ready")?;
                (status == 200).then_some(())?;
                body.lines()
                    .find_map(|l| l.strip_prefix("active_controller "))?
                    .trim()
                    .parse()
                    .ok()
            });
        let first = seen.next()?;
        seen.all(|id| id == first).then_some(first)
    }

    /// Waits until every broker's copy of `topic`-0 is byte for byte the
    /// same (see [`history::replicas_identical`]).
    pub fn wait_replicas_identical(&self, topic: &str) {
        let dirs: Vec<&Path> = self.brokers.iter().map(|b| b.data_dir.as_path()).collect();
        wait_until(Duration::from_secs(30), "identical replicas", || {
            history::replicas_identical(&dirs, topic, 0)
        });
    }

    pub fn controller(&mut self, node_id: i32) -> &mut BrokerProcess {
        self.controllers
            .iter_mut()
            .find(|c| c.node_id == node_id)
            .expect("a controller with that node id")
    }

    pub fn broker(&mut self, node_id: i32) -> &mut BrokerProcess {
        self.brokers
            .iter_mut()
            .find(|b| b.node_id == node_id)
            .expect("a broker with that node id")
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub mod containers;

/// The task groups tests' topology: subtopology 0 reads `clicks` and
/// repartitions by key; subtopology 1 counts per key in a store backed by
/// a changelog, with a standby per task.
pub fn task_topology() -> weir_client::task_group::proto::Topology {
    use weir_client::task_group::proto;
    let internal = |name: &str| proto::InternalTopic {
        name: name.into(),
        ..Default::default()
    };
    proto::Topology {
        epoch: 1,
        subtopologies: vec![
            proto::Subtopology {
                id: "0".into(),
                source_topics: vec!["clicks".into()],
                repartition_sinks: vec![TASK_REPARTITION.into()],
                ..Default::default()
            },
            proto::Subtopology {
                id: "1".into(),
                repartition_sources: vec![internal(TASK_REPARTITION)],
                changelogs: vec![internal(TASK_CHANGELOG)],
                ..Default::default()
            },
        ],
        num_standby_replicas: Some(1),
        ..Default::default()
    }
}

pub const TASK_CHANGELOG: &str = "app-counts-changelog";
pub const TASK_REPARTITION: &str = "app-rekey-repartition";
pub mod history;
