//! Support for the container tests (`tests/tests/containers.rs`): a cluster
//! of `weir broker` containers of our own image (`weir:dev`, built by
//! `scripts/build-image.sh`) on a user-defined Docker network, driven through
//! the `testcontainers` crate.
//!
//! Addresses: the network gets its own /24; each broker is moved to a fixed
//! address in it right after it starts, and advertises that address. The
//! same address then works for the other brokers (followers fetch from the
//! leader at its advertised address) and for clients on the host, which on
//! Linux reaches a bridge network's container addresses directly. The
//! metadata quorum uses the containers' names (Docker's DNS on the network).
//!
//! Cleanup is RAII: dropping a [`ContainerCluster`] removes its containers
//! (with their volumes) and then its network, on a failed test too.
//!
//! Docker engines older than the API that `testcontainers` speaks (0.28:
//! 1.53; Debian 12's engine answers 1.41) refuse every request. For those,
//! [`docker_or_skip`] runs the test in a child process whose `DOCKER_HOST`
//! points at a small local relay that rewrites the API version in request
//! lines and forwards everything else unchanged to the engine's socket.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{
    EndpointIpamConfig, EndpointSettings, ImageConfig, Ipam, IpamConfig, NetworkConnectRequest,
    NetworkCreateRequest, NetworkDisconnectRequest,
};
use testcontainers::bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, RemoveContainerOptionsBuilder, TopOptionsBuilder,
};
use testcontainers::core::client::docker_client_instance;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The image under test: `$WEIR_IMAGE`, default `weir:dev`.
pub fn image() -> (String, String) {
    let image = std::env::var("WEIR_IMAGE").unwrap_or_else(|_| "weir:dev".to_string());
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
        _ => (image, "latest".to_string()),
    }
}

/// The image's configuration (user, entrypoint, command, volumes, ports).
pub async fn image_config() -> ImageConfig {
    let docker = docker_client_instance().await.expect("Docker client");
    let (repo, tag) = image();
    docker
        .inspect_image(&format!("{repo}:{tag}"))
        .await
        .unwrap_or_else(|e| panic!("inspecting {repo}:{tag}: {e}"))
        .config
        .expect("an image has a config")
}

/// The label every container and network of these tests carries (value:
/// the run's id), so cleanup removes exactly what a run created.
pub const LABEL: &str = "dev.weir.test";

const CHILD_MARKER: &str = "WEIR_DOCKER_API_RELAY";

fn banner(lines: &[&str]) {
    let bar = "!".repeat(78);
    eprintln!("\n{bar}");
    for line in lines {
        eprintln!("!! {line}");
    }
    eprintln!("{bar}\n");
}

/// Whether the container test `test_name` (its libtest name) should run its
/// body in this process.
///
/// - No Docker engine: prints a loud message and returns false (the test
///   passes without running; nothing else here can run it).
/// - An engine whose API is older than testcontainers': runs the test in a
///   child process through the version relay, panics if the child failed,
///   and returns false.
/// - Otherwise (or in that child) returns true.
pub fn docker_or_skip(test_name: &str) -> bool {
    if std::env::var_os(CHILD_MARKER).is_some() {
        return true;
    }
    let engine = match std::env::var("DOCKER_HOST") {
        Err(_) => Engine::Unix(PathBuf::from("/var/run/docker.sock")),
        Ok(host) => match host.split_once("://") {
            Some(("unix", path)) => Engine::Unix(PathBuf::from(path)),
            Some(("tcp" | "http", addr)) => Engine::Tcp(addr.trim_end_matches('/').to_string()),
            // TLS and the rest: leave them to testcontainers.
            _ => return true,
        },
    };
    let server_api = match engine_api_version(&engine) {
        Ok(version) => version,
        Err(e) => {
            banner(&[
                &format!("SKIPPED {test_name}: no Docker engine at {engine:?} ({e})."),
                "The container tests need one; they ran nothing.",
            ]);
            return false;
        }
    };
    let client_api = testcontainers::bollard::API_DEFAULT_VERSION;
    let client = (client_api.major_version, client_api.minor_version);
    if parse_version(&server_api).is_some_and(|server| server >= client) {
        return true;
    }
    let port = start_api_relay(
        engine,
        format!(" /v{}.{}/", client.0, client.1),
        format!(" /v{server_api}/"),
    );
    eprintln!(
        "Docker engine API {server_api} is older than testcontainers' {}.{}: \
         running {test_name} in a child process through a version relay on 127.0.0.1:{port}",
        client.0, client.1
    );
    let status = std::process::Command::new(std::env::current_exe().expect("test executable"))
        .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
        .env("DOCKER_HOST", format!("tcp://127.0.0.1:{port}"))
        .env(CHILD_MARKER, "1")
        .status()
        .expect("running the test in a child process");
    assert!(
        status.success(),
        "{test_name} failed in the child process: {status}"
    );
    false
}

/// Where the Docker engine listens.
#[derive(Debug, Clone)]
enum Engine {
    Unix(PathBuf),
    Tcp(String),
}

/// A connection to the engine, either kind.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Engine {
    fn connect(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Engine::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
            Engine::Tcp(addr) => Conn::Tcp(TcpStream::connect(addr)?),
        })
    }
}

impl Conn {
    fn try_clone(&self) -> std::io::Result<Conn> {
        Ok(match self {
            Conn::Unix(s) => Conn::Unix(s.try_clone()?),
            Conn::Tcp(s) => Conn::Tcp(s.try_clone()?),
        })
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
        };
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(timeout),
            Conn::Tcp(s) => s.set_read_timeout(timeout),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.flush(),
            Conn::Tcp(s) => s.flush(),
        }
    }
}

fn parse_version(text: &str) -> Option<(usize, usize)> {
    let (major, minor) = text.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// `GET /version` (unversioned, so any engine answers): its `ApiVersion`.
fn engine_api_version(engine: &Engine) -> std::io::Result<String> {
    let mut conn = engine.connect()?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(b"GET /version HTTP/1.0\r\nHost: docker\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    let field = "\"ApiVersion\":\"";
    let start = text.find(field).map(|i| i + field.len());
    let version = start.and_then(|s| text[s..].split('"').next().map(str::to_string));
    version.ok_or_else(|| std::io::Error::other(format!("no ApiVersion in {text:?}")))
}

/// A TCP listener on 127.0.0.1 that forwards every connection to the
/// engine, replacing `from` by `to` in what the client sends (only request
/// lines contain " /vX.Y/"). Lives as long as the process.
fn start_api_relay(engine: Engine, from: String, to: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("relay listener");
    let port = listener.local_addr().expect("relay address").port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let (engine, from, to) = (engine.clone(), from.clone(), to.clone());
            std::thread::spawn(move || {
                let Ok(server) = engine.connect() else {
                    return;
                };
                let (Ok(mut client_r), Ok(mut server_r)) = (client.try_clone(), server.try_clone())
                else {
                    return;
                };
                let mut client_w = client;
                let back = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server_r, &mut client_w);
                    let _ = client_w.shutdown(Shutdown::Write);
                });
                let mut server_w = server;
                let _ =
                    copy_replacing(&mut client_r, &mut server_w, from.as_bytes(), to.as_bytes());
                server_w.shutdown_write();
                let _ = back.join();
            });
        }
    });
    port
}

/// Copies `reader` to `writer`, replacing every `from` by `to`. Holds back
/// only a tail that could be the start of `from`, so nothing waits for more
/// input unless it might be part of a match.
pub fn copy_replacing(
    reader: &mut impl Read,
    writer: &mut impl Write,
    from: &[u8],
    to: &[u8],
) -> std::io::Result<()> {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            writer.write_all(&pending)?;
            return writer.flush();
        }
        pending.extend_from_slice(&buf[..n]);
        let hold = (1..from.len())
            .rev()
            .find(|&k| pending.ends_with(&from[..k]))
            .unwrap_or(0);
        let ready = pending.len() - hold;
        let mut out = Vec::with_capacity(ready + 16);
        let mut i = 0;
        while i < ready {
            if pending[i..ready].starts_with(from) {
                out.extend_from_slice(to);
                i += from.len();
            } else {
                out.push(pending[i]);
                i += 1;
            }
        }
        writer.write_all(&out)?;
        writer.flush()?;
        pending.drain(..ready);
    }
}

/// HTTP status of `GET path` at `addr`, or None if nothing answered.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// One broker container.
pub struct ContainerBroker {
    pub node_id: i32,
    /// Container name; also its DNS name on the network.
    pub name: String,
    /// Its fixed address on the network, advertised to clients and peers.
    pub ip: Ipv4Addr,
    container: ContainerAsync<GenericImage>,
    running: bool,
    connected: bool,
}

impl ContainerBroker {
    pub fn bootstrap(&self) -> String {
        format!("{}:9092", self.ip)
    }

    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// The user ids of the processes running in the container (`docker top`).
    pub async fn process_uids(&self) -> Vec<String> {
        let docker = docker_client_instance().await.expect("Docker client");
        let options = TopOptionsBuilder::new().ps_args("-o pid,uid,comm").build();
        let top = docker
            .top_processes(self.id(), Some(options))
            .await
            .unwrap_or_else(|e| panic!("docker top {}: {e}", self.name));
        let titles = top.titles.unwrap_or_default();
        let uid = titles
            .iter()
            .position(|t| t == "UID")
            .unwrap_or_else(|| panic!("docker top without a UID column: {titles:?}"));
        top.processes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.get(uid).cloned())
            .collect()
    }

    /// The last `tail` lines (or "all") the broker wrote to stderr, where
    /// it logs. Through the docker CLI, which negotiates the API version
    /// itself; empty if that fails.
    pub fn logs(&self, tail: &str) -> String {
        std::process::Command::new("docker")
            .args(["logs", "--tail", tail, self.id()])
            .env_remove("DOCKER_HOST")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default()
    }

    /// `/ready` on the admin port answers 200.
    pub async fn is_ready(&self) -> bool {
        let addr = SocketAddr::from((self.ip, 9644));
        tokio::task::spawn_blocking(move || http_status(addr, "/ready") == Some(200))
            .await
            .unwrap_or(false)
    }
}

/// Removes the network (and any container of the run still on it) on drop.
struct NetworkGuard {
    name: String,
    run: String,
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let (name, run) = (self.name.clone(), self.run.clone());
        let cleanup = async move {
            let Ok(docker) = docker_client_instance().await else {
                eprintln!("cleanup: no Docker client; network {name} is left behind");
                return;
            };
            let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL}={run}")])]);
            let options = ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            };
            for c in docker
                .list_containers(Some(options))
                .await
                .unwrap_or_default()
            {
                if let Some(id) = c.id {
                    let rm = RemoveContainerOptionsBuilder::new()
                        .force(true)
                        .v(true)
                        .build();
                    let _ = docker.remove_container(&id, Some(rm)).await;
                }
            }
            if let Err(e) = docker.remove_network(&name).await {
                eprintln!("cleanup: removing network {name}: {e}");
            }
        };
        block_on_anywhere(cleanup);
    }
}

/// Runs `future` to completion from synchronous code (a `Drop`): on the
/// current multi-threaded runtime if there is one, else on a fresh one.
fn block_on_anywhere(future: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(move || handle.block_on(future))
        }
        _ => {
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(future)
            })
            .join();
        }
    }
}

/// Removes containers and networks of earlier runs whose test process is
/// gone (killed before its cleanup ran: a CI timeout, Ctrl-C). A run's
/// label value starts with its process id.
async fn remove_leftovers(docker: &testcontainers::bollard::Docker) {
    let ours = HashMap::from([("label".to_string(), vec![LABEL.to_string()])]);
    let dead = |labels: Option<&HashMap<String, String>>| {
        let pid = labels
            .and_then(|l| l.get(LABEL))
            .and_then(|run| run.split('-').next())
            .unwrap_or("");
        !pid.is_empty() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
    };
    let options = ListContainersOptions {
        all: true,
        filters: Some(ours.clone()),
        ..Default::default()
    };
    for c in docker
        .list_containers(Some(options))
        .await
        .unwrap_or_default()
    {
        if let (Some(id), true) = (&c.id, dead(c.labels.as_ref())) {
            eprintln!("removing container {id}, left behind by an earlier run");
            let rm = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            let _ = docker.remove_container(id, Some(rm)).await;
        }
    }
    let options = ListNetworksOptions {
        filters: Some(ours),
    };
    for n in docker
        .list_networks(Some(options))
        .await
        .unwrap_or_default()
    {
        if let (Some(name), true) = (&n.name, dead(n.labels.as_ref())) {
            eprintln!("removing network {name}, left behind by an earlier run");
            let _ = docker.remove_network(name).await;
        }
    }
}

/// Three (or more) `weir broker` containers forming one cluster; node ids
/// 1..=n, the first three are the quorum's voters.
pub struct ContainerCluster {
    // Field order matters: the containers go before their network.
    pub brokers: Vec<ContainerBroker>,
    network: NetworkGuard,
    /// The network's /24, e.g. 172.30.7.0.
    subnet: Ipv4Addr,
}

impl ContainerCluster {
    /// Creates the network and starts `n` brokers, then waits until every
    /// one answers `/ready`. Needs a multi-threaded tokio runtime.
    pub async fn start(n: usize) -> ContainerCluster {
        Self::launch(n, false, None).await
    }

    /// One broker running the image's own default command (no arguments
    /// given to `docker run`), told only its advertised address through
    /// the environment (`WEIR_ADVERTISE`), as a user of the image would.
    /// With `data_tmpfs_bytes`, its data volume is a tmpfs of that size: a
    /// small disk to fill.
    pub async fn start_with_image_defaults(data_tmpfs_bytes: Option<i64>) -> ContainerCluster {
        Self::launch(1, true, data_tmpfs_bytes).await
    }

    async fn launch(
        n: usize,
        image_defaults: bool,
        data_tmpfs_bytes: Option<i64>,
    ) -> ContainerCluster {
        let docker = docker_client_instance().await.expect("Docker client");
        let (repo, tag) = image();
        if docker
            .inspect_image(&format!("{repo}:{tag}"))
            .await
            .is_err()
        {
            panic!(
                "the image {repo}:{tag} is missing: build it with scripts/build-image.sh \
                 (scripts/test.sh does so before the tests)"
            );
        }
        remove_leftovers(&docker).await;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let run = format!("{}-{}", std::process::id(), nanos % 1_000_000);
        let name = format!("weir-test-{run}");
        // A /24 no other network uses: the engine refuses overlapping ones.
        let mut attempt = 0u32;
        let subnet = loop {
            let third = ((std::process::id() + attempt * 37) % 250) as u8 + 1;
            let subnet = Ipv4Addr::new(172, 30, third, 0);
            let request = NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".to_string()),
                labels: Some(HashMap::from([(LABEL.to_string(), run.clone())])),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(format!("{subnet}/24")),
                        // Dynamic addresses from the lower half; brokers
                        // take fixed ones from the upper half.
                        ip_range: Some(format!("{subnet}/25")),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => break subnet,
                Err(e) if attempt < 20 => {
                    eprintln!("network {subnet}/24 not available ({e}); trying another");
                    attempt += 1;
                }
                Err(e) => panic!("creating a Docker network: {e}"),
            }
        };
        let network = NetworkGuard {
            name: name.clone(),
            run: run.clone(),
        };
        let mut cluster = ContainerCluster {
            brokers: Vec::new(),
            network,
            subnet,
        };
        let names: Vec<String> = (1..=n).map(|i| format!("{name}-broker-{i}")).collect();
        let voters = names
            .iter()
            .take(3)
            .enumerate()
            .map(|(i, host)| format!("{}@{host}:9093", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        for (i, container_name) in names.into_iter().enumerate() {
            let node_id = i as i32 + 1;
            let ip = cluster.address_of(node_id);
            let container = GenericImage::new(repo.clone(), tag.clone())
                .with_container_name(container_name.clone())
                .with_network(name.clone())
                .with_label(LABEL, run.clone())
                .with_env_var("WEIR_LOG", "info");
            let container = match data_tmpfs_bytes {
                // Owned by the image's user: a tmpfs mount takes the mode of
                // the image's directory but not its owner (nor a mode given
                // in the mount's options), so only `--tmpfs`'s uid/gid work.
                Some(bytes) => container.with_host_config_modifier(move |host| {
                    host.tmpfs = Some(HashMap::from([(
                        "/var/lib/weir".to_string(),
                        format!("size={bytes},uid=65532,gid=65532"),
                    )]));
                }),
                None => container,
            };
            let container = if image_defaults {
                container
                    .with_env_var("WEIR_ADVERTISE", format!("{ip}:9092"))
                    .start()
                    .await
            } else {
                container
                    .with_cmd([
                        "broker".to_string(),
                        "--node-id".to_string(),
                        node_id.to_string(),
                        "--data-dir".to_string(),
                        "/var/lib/weir".to_string(),
                        "--listen".to_string(),
                        "0.0.0.0:9092".to_string(),
                        "--advertise".to_string(),
                        format!("{ip}:9092"),
                        "--admin-listen".to_string(),
                        "0.0.0.0:9644".to_string(),
                        "--controller-quorum".to_string(),
                        voters.clone(),
                        "--config".to_string(),
                        "group.initial.rebalance.delay.ms=0".to_string(),
                    ])
                    .start()
                    .await
            }
            .unwrap_or_else(|e| panic!("starting {container_name}: {e}"));
            let mut broker = ContainerBroker {
                node_id,
                name: container_name,
                ip,
                container,
                running: true,
                connected: true,
            };
            // From the dynamic address Docker gave it to the fixed one (a
            // fixed address set by `connect` also holds across restarts).
            cluster.disconnect_container(&broker).await;
            broker.connected = false;
            cluster.connect_container(&broker).await;
            broker.connected = true;
            cluster.brokers.push(broker);
        }
        cluster.wait_ready(Duration::from_secs(90)).await;
        cluster
    }

    fn address_of(&self, node_id: i32) -> Ipv4Addr {
        let [a, b, c, _] = self.subnet.octets();
        Ipv4Addr::new(a, b, c, 200 + node_id as u8)
    }

    /// Every broker's address, comma-separated, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.brokers
            .iter()
            .map(ContainerBroker::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn broker(&self, node_id: i32) -> &ContainerBroker {
        self.brokers
            .iter()
            .find(|b| b.node_id == node_id)
            .expect("a broker with that node id")
    }

    fn index(&self, node_id: i32) -> usize {
        self.brokers
            .iter()
            .position(|b| b.node_id == node_id)
            .expect("a broker with that node id")
    }

    /// Waits until every running, connected broker answers `/ready`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut all = true;
            for b in self.brokers.iter().filter(|b| b.running && b.connected) {
                all &= b.is_ready().await;
            }
            if all {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for every broker to be ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `docker stop`: SIGTERM, then (after 30 s) SIGKILL. Returns the exit
    /// code (0 for a clean, controlled shutdown).
    pub async fn stop(&mut self, node_id: i32) -> i64 {
        let i = self.index(node_id);
        let broker = &mut self.brokers[i];
        broker
            .container
            .stop_with_timeout(Some(30))
            .await
            .unwrap_or_else(|e| panic!("stopping {}: {e}", broker.name));
        broker.running = false;
        broker
            .container
            .exit_code()
            .await
            .expect("exit code")
            .expect("a stopped container has an exit code")
    }

    /// `docker start` of a stopped broker (same data volume, same address);
    /// waits until it is ready.
    pub async fn start_again(&mut self, node_id: i32) {
        let i = self.index(node_id);
        let broker = &mut self.brokers[i];
        broker
            .container
            .start()
            .await
            .unwrap_or_else(|e| panic!("starting {} again: {e}", broker.name));
        broker.running = true;
        self.wait_ready(Duration::from_secs(60)).await;
    }

    /// Cuts the broker off the network: nothing reaches it, it reaches
    /// nothing (its only network is this one).
    pub async fn disconnect(&mut self, node_id: i32) {
        let i = self.index(node_id);
        self.disconnect_container(&self.brokers[i]).await;
        self.brokers[i].connected = false;
    }

    /// Puts the broker back on the network at its fixed address.
    pub async fn reconnect(&mut self, node_id: i32) {
        let i = self.index(node_id);
        self.connect_container(&self.brokers[i]).await;
        self.brokers[i].connected = true;
    }

    async fn disconnect_container(&self, broker: &ContainerBroker) {
        let docker = docker_client_instance().await.expect("Docker client");
        let request = NetworkDisconnectRequest {
            container: broker.id().to_string(),
            force: Some(true),
        };
        docker
            .disconnect_network(&self.network.name, request)
            .await
            .unwrap_or_else(|e| panic!("disconnecting {}: {e}", broker.name));
    }

    async fn connect_container(&self, broker: &ContainerBroker) {
        let docker = docker_client_instance().await.expect("Docker client");
        let request = NetworkConnectRequest {
            container: broker.id().to_string(),
            endpoint_config: Some(EndpointSettings {
                ipam_config: Some(EndpointIpamConfig {
                    ipv4_address: Some(broker.ip.to_string()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        docker
            .connect_network(&self.network.name, request)
            .await
            .unwrap_or_else(|e| panic!("connecting {} at {}: {e}", broker.name, broker.ip));
    }
}

impl Drop for ContainerCluster {
    fn drop(&mut self) {
        // A failing test: show what the brokers said.
        if std::thread::panicking() {
            for b in &self.brokers {
                eprintln!("---- {} (node {}), last 40 lines", b.name, b.node_id);
                eprintln!("{}", b.logs("40"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_replacing;

    /// Reads in small pieces, so matches straddle reads.
    struct Trickle<'a>(&'a [u8], usize);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_api_version_is_rewritten_in_request_lines_only() {
        let input = b"GET /v1.53/version HTTP/1.1\r\n\r\nPOST /v1.53/containers/create HTTP/1.1\r\nContent-Length: 9\r\n\r\n\"/v1.53/\"";
        for piece in [1, 2, 3, 7, 1000] {
            let mut out = Vec::new();
            copy_replacing(
                &mut Trickle(input, piece),
                &mut out,
                b" /v1.53/",
                b" /v1.41/",
            )
            .unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                "GET /v1.41/version HTTP/1.1\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 9\r\n\r\n\"/v1.53/\"",
                "piece size {piece}"
            );
        }
    }
}
