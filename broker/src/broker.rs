//! A running broker: its shared state, start-up (joining the metadata
//! quorum, registering with the controller, opening the partitions the
//! image assigns here), background log and ISR maintenance, and controlled
//! shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use weir_log::LogError;
use weir_quorum::{
    ControllerConfig, ControllerError, MemberConfig, NewTopic, NodeId, QuorumMember, QuorumNode,
    Role,
};

use crate::clock::now_ms;
use crate::cluster::ClusterMetadata;
use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessions;
use crate::groups::Groups;
use crate::metadata::{MetadataError, load_or_create_cluster_id};
use crate::partitions::LogManager;
use crate::replica::fetcher::Fetchers;
use crate::topic_config::ConfigError;

/// Errors from starting or changing the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("partition log: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot listen on {addr}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("advertised listener {0} is not bound")]
    BadAdvertise(String),
    #[error("{0}")]
    Invalid(String),
    #[error("loading group metadata: {0}")]
    Groups(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Everything request handlers share.
pub struct BrokerState {
    pub config: BrokerConfig,
    /// Host and port of the inter-broker listener, as registered.
    pub advertised: (String, i32),
    /// Every advertised endpoint: (listener name, host, port).
    pub endpoints: Vec<(String, String, u16)>,
    /// The listener brokers reach each other through.
    pub inter_broker_listener: String,
    /// How this broker dials that listener on others (TLS, login).
    pub peers: crate::peers::PeerClient,
    pub cluster: Arc<ClusterMetadata>,
    pub logs: Arc<LogManager>,
    pub groups: Groups,
    pub txns: crate::txn::Txns,
    pub fetchers: Fetchers,
    pub fetch_sessions: FetchSessions,
    pub metrics: crate::admin_http::Metrics,
    /// Connections the listeners found speaking HTTP/2: task-group gRPC.
    pub grpc: crate::task_groups::GrpcConnections,
    pub authorizer: crate::authorizer::Authorizer,
    /// Senders' rates against their client quotas.
    pub quotas: crate::quotas::QuotaManager,
    /// Whether the controller has admitted (unfenced) this broker.
    admitted: watch::Sender<bool>,
    /// Admitted, and its partitions follow the image: clients are served.
    ready: watch::Sender<bool>,
}

impl BrokerState {
    /// `HOST:PORT` of a broker's inter-broker listener (its first endpoint
    /// if it registered none by that name).
    pub fn inter_broker_address(
        &self,
        endpoints: &[weir_quorum::records::Endpoint],
    ) -> Option<String> {
        endpoints
            .iter()
            .find(|e| e.listener == self.inter_broker_listener)
            .or_else(|| endpoints.first())
            .map(|e| format!("{}:{}", e.host, e.port))
    }

    /// What the sender of a request may do, against the current ACLs.
    pub(crate) fn access<'a>(
        &'a self,
        ctx: &'a crate::handlers::RequestContext,
    ) -> crate::authorizer::Access<'a> {
        self.authorizer.access(
            || self.cluster.image().acls().clone(),
            &ctx.principal,
            ctx.peer.ip(),
        )
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    pub fn is_admitted(&self) -> bool {
        *self.admitted.borrow()
    }

    /// What the controller's last heartbeat answer said. Losing admission
    /// (fenced) makes the broker unready at once; regaining it makes it
    /// ready after the next image is applied.
    pub fn set_admitted(&self, admitted: bool) {
        self.admitted
            .send_if_modified(|a| std::mem::replace(a, admitted) != admitted);
        if !admitted {
            self.set_ready(false);
        }
    }

    fn set_ready(&self, ready: bool) {
        self.ready
            .send_if_modified(|r| std::mem::replace(r, ready) != ready);
    }

    /// Creates a topic through the controller and waits until the
    /// partitions this broker leads are serving.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<(), ControllerError> {
        let topic = NewTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            assignments: None,
            configs,
        };
        let result = self.cluster.create_topics(vec![topic], false).await.pop();
        result.unwrap_or_else(|| Err(ControllerError::Internal("no answer".into())))?;
        self.wait_until_serving(name).await;
        Ok(())
    }

    /// Waits (briefly) until every partition of `topic` that the image says
    /// this broker leads is open and leading here, so a client told about
    /// a new topic can use it at once.
    pub async fn wait_until_serving(&self, topic: &str) {
        let me = self.config.node_id;
        let serving = || {
            let image = self.cluster.image();
            let Some(t) = image.topic_by_name(topic) else {
                return true;
            };
            t.partitions.iter().enumerate().all(|(i, p)| {
                p.leader != me
                    || self.logs.get(topic, i as i32).is_some_and(|local| {
                        local.replica().leader_epoch >= p.leader_epoch
                            && local.replica().is_leader()
                    })
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !serving() && tokio::time::Instant::now() < deadline {
            let woken = self.logs.appended().notified();
            let _ = tokio::time::timeout(Duration::from_millis(20), woken).await;
        }
    }

    /// The broker keys in effect: set at run time for this broker, else set
    /// at run time for the whole cluster, else given with `--config` (Kafka's
    /// order of precedence). Only the topic defaults change at run time.
    pub fn settings(&self) -> BTreeMap<String, String> {
        let image = self.cluster.image();
        let mut settings = self.config.settings.clone();
        settings.extend(image.cluster_configs().clone());
        if let Some(own) = image.broker_configs(self.config.node_id) {
            settings.extend(own.clone());
        }
        settings
    }

    /// One broker key's value in effect, if set anywhere (see `settings`).
    pub fn setting(&self, key: &str) -> Option<String> {
        let image = self.cluster.image();
        image
            .broker_configs(self.config.node_id)
            .and_then(|c| c.get(key))
            .or_else(|| image.cluster_configs().get(key))
            .or_else(|| self.config.settings.get(key))
            .cloned()
    }

    /// The topic's effective `min.insync.replicas` (on the produce path, so
    /// it looks up the one key rather than resolving every config).
    pub fn min_insync_replicas(&self, topic: &str) -> i32 {
        const KEY: &str = "min.insync.replicas";
        let image = self.cluster.image();
        let topic_value = image.topic_configs(topic).and_then(|c| c.get(KEY).cloned());
        topic_value
            .or_else(|| self.setting(KEY))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }
}

/// A started broker. Dropping it without `shutdown` leaves the tasks running
/// until the runtime stops, like a killed process: recovery copes with that.
pub struct Broker {
    state: Arc<BrokerState>,
    local_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    quorum_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    member: QuorumMember,
}

impl Broker {
    /// The TLS of listener `name`: its keystore, truststore and client
    /// certificate settings.
    fn listener_tls(
        config: &BrokerConfig,
        name: &str,
        sasl: bool,
    ) -> Result<crate::tls::ListenerTls, BrokerError> {
        let settings = config
            .listener_tls(name, sasl)
            .map_err(|e| BrokerError::Invalid(e.to_string()))?;
        crate::tls::ListenerTls::new(settings).map_err(BrokerError::Invalid)
    }

    /// Recovers the data directory, joins the metadata quorum, binds the
    /// listeners and starts serving. A broker alone in its quorum is ready
    /// when this returns; a broker of a larger cluster becomes ready (see
    /// `/ready`) once a quorum has formed and the controller admitted it.
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        config
            .check_roles()
            .map_err(|e| BrokerError::Invalid(e.to_string()))?;
        if !config.roles().broker {
            return Err(BrokerError::Invalid(
                "this node has no broker role: start it as a controller (ControllerNode)".into(),
            ));
        }
        let listeners = config
            .listeners()
            .map_err(|e| BrokerError::Invalid(e.to_string()))?;
        // TLS and SASL settings are checked before anything is bound: a
        // missing or unreadable keystore or truststore, or a bad JAAS
        // config, stops the broker naming it.
        let mut security = std::collections::HashMap::new();
        for l in &listeners.bind {
            let protocol = listeners.protocols[&l.name].as_str();
            let mut secured = crate::server::ListenerSecurity::default();
            if protocol.starts_with("SASL_") {
                let sasl = config
                    .listener_sasl(&l.name)
                    .map_err(|e| BrokerError::Invalid(e.to_string()))?;
                secured.sasl = Some(Arc::new(sasl));
            }
            if protocol.ends_with("SSL") {
                let sasl = secured.sasl.is_some();
                secured.tls = Some(Arc::new(Self::listener_tls(&config, &l.name, sasl)?));
            }
            security.insert(l.name.clone(), secured);
        }
        let peers = crate::peers::PeerClient::for_inter_broker(&config, &listeners)
            .map_err(BrokerError::Invalid)?;
        let mut bound = Vec::with_capacity(listeners.bind.len());
        for l in &listeners.bind {
            let socket = bind(&l.bind_address()).await?;
            bound.push((l.name.clone(), socket));
        }
        let local_addr = bound[0].1.local_addr()?;
        let admin_listener = bind_admin(&config).await?;
        let admin_addr = admin_listener
            .as_ref()
            .map(TcpListener::local_addr)
            .transpose()?;
        let endpoints = advertised_endpoints(&listeners, &bound)?;
        let advertised = endpoints
            .iter()
            .find(|(name, ..)| *name == listeners.inter_broker)
            .map(|(_, host, port)| (host.clone(), i32::from(*port)))
            .expect("resolve checked the inter-broker listener is advertised");

        let data_dir = config.data_dir.clone();
        let multi_node = !config.controller_quorum.is_empty();
        let quorum_spec = multi_node.then(|| voters_spec(&config));
        let cluster_id = load_or_create_cluster_id(&data_dir, quorum_spec.as_deref())?;
        let logs = Arc::new(LogManager::new(&data_dir));
        // Only half-deleted directories go now; data of partitions no longer
        // assigned here waits until this broker's image is known current.
        logs.remove_strays(|_, _| true)?;

        // The quorum port: a cluster's members reach each other there; a
        // broker alone still runs the same quorum, on a loopback port no
        // one else uses.
        let quorum_listener = if multi_node {
            bind(&quorum_listen_address(&config)).await?
        } else {
            bind("127.0.0.1:0").await?
        };
        let quorum_addr = quorum_listener.local_addr()?;
        let voters: BTreeMap<NodeId, QuorumNode> = if multi_node {
            config
                .controller_quorum
                .iter()
                .map(|v| (v.id as NodeId, QuorumNode::new(v.address.clone())))
                .collect()
        } else {
            BTreeMap::from([(
                config.node_id as NodeId,
                QuorumNode::new(quorum_addr.to_string()),
            )])
        };
        let role = if config.is_voter() {
            Role::Voter
        } else {
            Role::Learner
        };
        let member = start_member(&config, role, voters, quorum_listener).await?;
        let cluster = Arc::new(ClusterMetadata::new(
            config.node_id,
            cluster_id,
            Arc::clone(member.quorum()),
            member.client().clone(),
        ));

        let (ready, _) = watch::channel(false);
        let (admitted, _) = watch::channel(false);
        let groups = Groups::new(&config, &logs, &cluster);
        let txns = crate::txn::Txns::new(&config);
        let (grpc, grpc_connections) = tokio::sync::mpsc::channel(64);
        let authorizer = crate::authorizer::Authorizer::new(config.authorizer());
        let quotas = crate::quotas::QuotaManager::new(config.quota_window());
        let state = Arc::new(BrokerState {
            authorizer,
            quotas,
            config,
            advertised,
            endpoints,
            inter_broker_listener: listeners.inter_broker.clone(),
            peers,
            cluster,
            logs,
            groups,
            txns,
            fetchers: Fetchers::default(),
            fetch_sessions: FetchSessions::new(),
            metrics: Default::default(),
            grpc,
            admitted,
            ready,
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(crate::lifecycle::run(
            Arc::clone(&state),
            multi_node.then_some(quorum_addr),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(follow_image(
            Arc::clone(&state),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(crate::task_groups::serve(
            Arc::clone(&state),
            grpc_connections,
            shutdown_rx.clone(),
        )));
        // Clients are served once the controller has admitted this broker
        // (as a KRaft broker starts its listeners when it is unfenced);
        // until then connections wait in the listen backlog.
        for (name, socket) in bound {
            let (state, shutdown) = (Arc::clone(&state), shutdown_rx.clone());
            let secured = security.get(&name).cloned().unwrap_or_default();
            tasks.push(tokio::spawn(async move {
                let mut ready = state.ready.subscribe();
                let mut stop = shutdown.clone();
                tokio::select! {
                    r = ready.wait_for(|r| *r) => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
                crate::server::serve(socket, name, state, shutdown, secured).await
            }));
        }
        if let Some(admin) = admin_listener {
            tasks.push(tokio::spawn(crate::admin_http::serve(
                admin,
                Arc::clone(&state),
                shutdown_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(maintain_logs(
            Arc::clone(&state),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(maintain_isrs(Arc::clone(&state), shutdown_rx)));
        if !multi_node {
            // Alone, the quorum forms at once: serve only when ready, so a
            // client's first request finds the broker registered.
            let mut ready = state.ready.subscribe();
            let waited =
                tokio::time::timeout(SINGLE_NODE_START_TIMEOUT, ready.wait_for(|r| *r)).await;
            if waited.is_err() {
                return Err(BrokerError::Invalid(format!(
                    "the broker did not become ready within {SINGLE_NODE_START_TIMEOUT:?}"
                )));
            }
        }
        info!(
            node_id = state.config.node_id,
            listen = %local_addr,
            advertised = %format!("{}:{}", state.advertised.0, state.advertised.1),
            quorum = %quorum_addr,
            cluster_id = %state.cluster.cluster_id(),
            "broker started"
        );
        Ok(Broker {
            state,
            local_addr,
            admin_addr,
            quorum_addr: multi_node.then_some(quorum_addr),
            shutdown,
            tasks,
            member,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the admin HTTP port listens, if it was asked for.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Where the quorum port listens (multi-node clusters only).
    pub fn quorum_addr(&self) -> Option<SocketAddr> {
        self.quorum_addr
    }

    pub fn state(&self) -> &Arc<BrokerState> {
        &self.state
    }

    /// Controlled shutdown: hands this broker's leaderships to other
    /// replicas (when there are any) before it stops accepting requests,
    /// then flushes every log to disk and leaves the quorum.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        if self.state.config.controlled_shutdown() {
            crate::lifecycle::controlled_shutdown(&self.state).await;
        }
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        self.state.fetchers.stop_all();
        self.state.groups.shutdown();
        self.state.txns.shutdown();
        let logs = Arc::clone(&self.state.logs);
        tokio::task::spawn_blocking(move || {
            for partition in logs.all() {
                if let Err(e) = partition.log().flush() {
                    warn!(topic = %partition.topic, partition = partition.index, error = %e, "flush at shutdown failed");
                }
            }
        })
        .await
        .map_err(|e| BrokerError::Invalid(format!("flushing logs: {e}")))?;
        if let Err(e) = self.member.shutdown().await {
            warn!(error = %e, "stopping the metadata quorum failed");
        }
        info!("broker stopped");
        Ok(())
    }
}

/// Where the metadata quorum lives inside the data directory (the name
/// cannot clash with a partition directory, which always ends in -N).
const QUORUM_DIR: &str = "__cluster_metadata";
const SINGLE_NODE_START_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn bind(addr: &str) -> Result<TcpListener, BrokerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BrokerError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// This node's part in the metadata quorum, its log in the data directory
/// and the session timing from the broker's settings.
pub(crate) async fn start_member(
    config: &BrokerConfig,
    role: Role,
    voters: BTreeMap<NodeId, QuorumNode>,
    listener: TcpListener,
) -> Result<QuorumMember, BrokerError> {
    QuorumMember::start(
        config.node_id as NodeId,
        role,
        voters,
        listener,
        Some(&config.data_dir.join(QUORUM_DIR)),
        MemberConfig {
            controller: ControllerConfig {
                heartbeat_interval: config.heartbeat_interval(),
                session_timeout: config.session_timeout(),
                ..ControllerConfig::default()
            },
            tcp: weir_quorum::TcpConfig {
                tls: crate::peers::quorum_tls(config).map_err(BrokerError::Invalid)?,
                ..weir_quorum::TcpConfig::default()
            },
            ..MemberConfig::default()
        },
    )
    .await
    .map_err(|e| BrokerError::Invalid(format!("metadata quorum: {e}")))
}

/// The admin HTTP listener, if one is asked for. A busy default address
/// is only a warning (several nodes side by side on one machine).
pub(crate) async fn bind_admin(config: &BrokerConfig) -> Result<Option<TcpListener>, BrokerError> {
    let Some(addr) = &config.admin_listen else {
        return Ok(None);
    };
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if config.admin_listen_optional && e.kind() == std::io::ErrorKind::AddrInUse => {
            warn!(addr = %addr, "admin HTTP port is in use; running without it (set --admin-listen to choose another)");
            Ok(None)
        }
        Err(source) => Err(BrokerError::Bind {
            addr: addr.clone(),
            source,
        }),
    }
}

/// `--controller-quorum` written back as ID@HOST:PORT,… (a new cluster's
/// id derives from it, so every node of one cluster agrees on it).
pub(crate) fn voters_spec(config: &BrokerConfig) -> String {
    config
        .controller_quorum
        .iter()
        .map(|v| format!("{}@{}", v.id, v.address))
        .collect::<Vec<_>>()
        .join(",")
}

/// The quorum port: `--controller-listen`, else this voter's own port on
/// every interface, else Kafka's 9093.
pub(crate) fn quorum_listen_address(config: &BrokerConfig) -> String {
    if let Some(addr) = &config.controller_listen {
        return addr.clone();
    }
    let port = config
        .controller_quorum
        .iter()
        .find(|v| v.id == config.node_id)
        .and_then(|v| v.address.rsplit_once(':'))
        .map(|(_, port)| port.to_string())
        .unwrap_or_else(|| "9093".into());
    format!("0.0.0.0:{port}")
}

/// Applies every new metadata image to the local partitions, from the
/// moment the controller admits this broker (before that its image may be
/// stale, and a stale image must not delete data); the broker is ready once
/// an image has been applied.
async fn follow_image(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut admitted = state.admitted.subscribe();
    tokio::select! {
        r = admitted.wait_for(|a| *a) => if r.is_err() { return },
        _ = shutdown.changed() => return,
    }
    let image = state.cluster.image();
    let wanted = crate::replica::assigned_partitions(&image, state.config.node_id);
    let logs = Arc::clone(&state.logs);
    let removed = tokio::task::spawn_blocking(move || {
        logs.remove_strays(|topic, index| wanted.contains(&(topic.to_string(), index)))
    })
    .await;
    match removed {
        Ok(Ok(paths)) => {
            for path in paths {
                info!(path = %path.display(), "removed data of a partition no longer assigned here");
            }
        }
        Ok(Err(e)) => warn!(error = %e, "removing stray partitions failed"),
        Err(e) => warn!(error = %e, "removing stray partitions failed"),
    }
    let mut watch = state.cluster.quorum().watch();
    loop {
        let image = watch.borrow_and_update().image.clone();
        let unopened = crate::replica::apply_image(&state, &image).await;
        state.set_ready(state.is_admitted());
        // A partition that could not be opened is tried again without
        // waiting for the next metadata change (space freed, files fixed).
        let retry = async {
            if unopened > 0 {
                tokio::time::sleep(OPEN_RETRY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = admitted.changed() => if r.is_err() { return },
            r = watch.changed() => if r.is_err() { return },
            _ = retry => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How soon assigned partitions that could not be opened are tried again.
const OPEN_RETRY: Duration = Duration::from_secs(2);

/// Leader housekeeping on an interval: followers that stopped keeping up
/// leave the ISR.
async fn maintain_isrs(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let every = (state.config.replica_lag_max() / 2).max(Duration::from_millis(50));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => crate::replica::shrink_lagging_isrs(&state),
            _ = shutdown.changed() => return,
        }
    }
}

/// The advertised endpoints, a host or port left out taken from the
/// listener's bound socket.
fn advertised_endpoints(
    listeners: &crate::listeners::Listeners,
    bound: &[(String, TcpListener)],
) -> Result<Vec<(String, String, u16)>, BrokerError> {
    listeners
        .advertised
        .iter()
        .map(|a| {
            let local = bound
                .iter()
                .find(|(name, _)| *name == a.name)
                .map(|(_, socket)| socket.local_addr())
                .transpose()?
                .ok_or_else(|| BrokerError::BadAdvertise(a.name.clone()))?;
            // Bound on every interface: say this host's name, as Kafka does.
            let host = match (a.host.is_empty(), local.ip().is_unspecified()) {
                (false, _) => a.host.clone(),
                (true, true) => std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .unwrap_or_else(|_| local.ip().to_string()),
                (true, false) => local.ip().to_string(),
            };
            let port = if a.port == 0 { local.port() } else { a.port };
            Ok((a.name.clone(), host, port))
        })
        .collect()
}

/// Time-based rolls, retention, compaction and periodic flushes, each on
/// its own interval, until shutdown.
async fn maintain_logs(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let config = &state.config;
    let mut retention = tokio::time::interval(
        config
            .retention_check_interval()
            .max(Duration::from_millis(10)),
    );
    let mut cleaner =
        tokio::time::interval(config.cleaner_backoff().max(Duration::from_millis(10)));
    let flush_every = config.flush_interval();
    // A disabled flush still needs an interval to select on; it never fires.
    let mut flush = tokio::time::interval(
        flush_every
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(10)),
    );
    let cleaner_enabled = config.cleaner_enabled();
    loop {
        let job: fn(&mut weir_log::PartitionLog, i64) -> Result<(), LogError> = tokio::select! {
            _ = retention.tick() => |log, now| {
                log.roll_if_due(now)?;
                log.enforce_retention(now).map(|_| ())
            },
            _ = cleaner.tick(), if cleaner_enabled => |log, now| log.compact(now).map(|_| ()),
            _ = flush.tick(), if flush_every.is_some() => |log, _| log.flush(),
            _ = shutdown.changed() => return,
        };
        for partition in state.logs.all() {
            let result = partition.with_log(move |log| job(log, now_ms())).await;
            if let Err(e) = result {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "log maintenance failed");
            }
        }
    }
}
