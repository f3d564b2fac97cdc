//! Broker configuration: identity and addresses from flags, plus Kafka's
//! broker-level keys (`--config key=value`, as in `server.properties`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::topic_config::{TOPIC_CONFIGS, validate_topic_config};

/// Broker-only keys and their defaults (the topic defaults' broker names come
/// from the topic table).
/// Keys a listener may set for itself as `listener.name.<name>.<key>`.
const PER_LISTENER_KEYS: &[&str] = &[
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.client.auth",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "ssl.principal.mapping.rules",
    "sasl.enabled.mechanisms",
    "connections.max.reauth.ms",
];

/// Keys whose values are secrets: never shown in errors or answers.
pub fn is_sensitive(key: &str) -> bool {
    key.ends_with("sasl.jaas.config") || key.ends_with(".password")
}

static BROKER_KEYS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "false"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("socket.request.max.bytes", "104857600"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("group.max.session.timeout.ms", "1800000"),
    ("offsets.retention.minutes", "10080"),
    // KIP-848 consumer groups (Kafka's keys and defaults). The bounds are
    // checked together when the settings are read.
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.min.session.timeout.ms", "45000"),
    ("group.consumer.max.session.timeout.ms", "60000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("group.consumer.min.heartbeat.interval.ms", "5000"),
    ("group.consumer.max.heartbeat.interval.ms", "15000"),
    ("group.consumer.max.size", "2147483647"),
    ("group.consumer.assignors", "uniform,range"),
    // Task groups (stream apps, Connect workers). Heartbeats are frequent
    // so tasks move within a second; a member may ask for its own session
    // timeout within the bounds. The assignment settings are the defaults
    // of apps that do not set their own.
    ("group.tasks.session.timeout.ms", "45000"),
    ("group.tasks.min.session.timeout.ms", "1000"),
    ("group.tasks.max.session.timeout.ms", "1800000"),
    ("group.tasks.heartbeat.interval.ms", "500"),
    ("group.tasks.max.size", "2147483647"),
    ("group.tasks.num.standby.replicas", "0"),
    ("group.tasks.acceptable.recovery.lag", "10000"),
    ("group.tasks.max.warmup.replicas", "2"),
    // TLS on SSL listeners: a PEM file with the certificate chain and the
    // private key (per listener as listener.name.<name>.ssl.keystore.location).
    ("ssl.keystore.type", "PEM"),
    ("ssl.keystore.location", ""),
    // Client certificates (mutual TLS): asked for or not (none, requested,
    // required), checked against the CA certificates of a PEM truststore,
    // and the subject mapped to the principal on SSL listeners (each also
    // per listener; on SASL_SSL listeners ssl.client.auth counts only so).
    ("ssl.client.auth", "none"),
    ("ssl.truststore.type", "PEM"),
    ("ssl.truststore.location", ""),
    (
        "ssl.principal.mapping.rules",
        crate::principal_mapping::DEFAULT_RULES,
    ),
    // SASL listeners (sasl/): the mechanisms offered (per listener as
    // listener.name.<name>.sasl.enabled.mechanisms), KIP-368's session
    // lifetime (0: no re-authentication asked for) and the largest frame
    // a client may send before it has logged in.
    (
        "sasl.enabled.mechanisms",
        "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
    ),
    ("connections.max.reauth.ms", "0"),
    ("sasl.server.max.receive.size", "524288"),
    // Authorization (authorizer/): off unless one of Kafka's authorizer
    // class names is given.
    ("authorizer.class.name", ""),
    ("super.users", ""),
    ("allow.everyone.if.no.acl.found", "false"),
    // Client quotas (quotas/): rates are measured over this many samples
    // of this many seconds each (Kafka's keys and defaults).
    ("quota.window.num", "11"),
    ("quota.window.size.seconds", "1"),
    ("offsets.retention.check.interval.ms", "600000"),
    ("log.retention.check.interval.ms", "300000"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.enable", "true"),
    ("log.flush.scheduler.interval.ms", "9223372036854775807"),
    ("fetch.max.bytes", "57671680"),
    ("delete.topic.enable", "true"),
    // Replication. Kafka's lag allowance (30 s) is kept: it only matters
    // for a follower that is alive but slow; a dead one is fenced by the
    // controller within the session timeout and leaves every ISR then.
    ("replica.lag.time.max.ms", "30000"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.response.max.bytes", "10485760"),
    ("offsets.topic.replication.factor", "3"),
    // Group coordinators are sharded over this many partitions (Kafka's 50);
    // only read when the topic is created, so a data directory written with
    // fewer keeps its count.
    ("offsets.topic.num.partitions", "50"),
    // Transactions (Kafka's keys and defaults).
    ("transaction.state.log.num.partitions", "50"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.max.timeout.ms", "900000"),
    ("transactional.id.expiration.ms", "604800000"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "10000",
    ),
    (
        "transaction.remove.expired.transaction.cleanup.interval.ms",
        "3600000",
    ),
    // How long an offset commit waits for __consumer_offsets' in-sync
    // replicas before it is answered COORDINATOR_NOT_AVAILABLE (Kafka's key).
    ("offsets.commit.timeout.ms", "5000"),
    // Sized for the < 3 s failover goal; Kafka's 2 s / 9 s take ~10 s.
    ("broker.heartbeat.interval.ms", "200"),
    ("broker.session.timeout.ms", "1500"),
    ("controlled.shutdown.enable", "true"),
    ("auto.leader.rebalance.enable", "true"),
    // Bytes/s a replica being added by a reassignment may copy (Kafka's
    // keys; the default, Long.MAX_VALUE, is unlimited). Applied by the
    // follower fetcher (see replica/fetcher.rs).
    ("leader.replication.throttled.rate", "9223372036854775807"),
    ("follower.replication.throttled.rate", "9223372036854775807"),
    // Named listeners (listeners.rs); empty = from --listen/--advertise.
    ("listeners", ""),
    ("advertised.listeners", ""),
    (
        "listener.security.protocol.map",
        crate::listeners::DEFAULT_PROTOCOL_MAP,
    ),
    ("inter.broker.listener.name", ""),
    // How a broker logs in to other brokers on a SASL inter-broker
    // listener (Kafka's default, GSSAPI, is not served: set one we do),
    // and whether a peer's certificate must name the host dialled
    // (brokers' and controllers' connections to each other).
    ("sasl.mechanism.inter.broker.protocol", "GSSAPI"),
    ("ssl.endpoint.identification.algorithm", "https"),
    // The quorum port's listener name: mutual TLS when the protocol map
    // says SSL (listener.name.<name>.ssl.* give its keystore and CA).
    ("controller.listener.names", ""),
];

/// Everything a broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub node_id: i32,
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds, `HOST:PORT` (port 0 picks a free one).
    pub listen: String,
    /// Address clients are told to connect to; `None` means the bound address.
    pub advertise: Option<String>,
    pub rack: Option<String>,
    /// Address of the admin HTTP port (`/healthz`, `/ready`, `/metrics`);
    /// `None` serves none.
    pub admin_listen: Option<String>,
    /// Whether a busy admin address is only worth a warning (the default
    /// address, so several brokers can run side by side on one machine)
    /// rather than a failed start (an address asked for explicitly).
    pub admin_listen_optional: bool,
    /// Kafka broker keys set explicitly (`--config`).
    pub settings: BTreeMap<String, String>,
    /// The metadata quorum's voters (`--controller-quorum`). Empty: this
    /// broker is its own single-voter quorum, with no quorum port.
    pub controller_quorum: Vec<QuorumVoter>,
    /// Address the quorum port binds (Raft and controller requests); `None`
    /// takes this node's voter address, or 0.0.0.0:9093 for a non-voter.
    pub controller_listen: Option<String>,
    /// What this node runs (`--process-roles`, KRaft's process.roles);
    /// `None` derives it from `--controller-quorum` (a listed node is a
    /// combined broker + controller, any other a broker).
    pub process_roles: Option<ProcessRoles>,
}

/// KRaft's process.roles: a broker serves clients and stores partitions; a
/// controller votes in the metadata quorum and may become the active
/// controller. A node can be both (combined mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    pub broker: bool,
    pub controller: bool,
}

impl ProcessRoles {
    pub const COMBINED: ProcessRoles = ProcessRoles {
        broker: true,
        controller: true,
    };
    pub const BROKER: ProcessRoles = ProcessRoles {
        broker: true,
        controller: false,
    };
    pub const CONTROLLER: ProcessRoles = ProcessRoles {
        broker: false,
        controller: true,
    };

    /// Parses `broker`, `controller` or `broker,controller` (either order).
    pub fn parse(spec: &str) -> Result<ProcessRoles, BrokerConfigError> {
        let mut roles = ProcessRoles {
            broker: false,
            controller: false,
        };
        for role in spec.split(',').map(str::trim) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => {
                    return Err(BrokerConfigError::Roles(
                        spec.to_string(),
                        format!("unknown role {other:?} (roles are broker and controller)"),
                    ));
                }
            }
        }
        Ok(roles)
    }
}

/// A bad broker setting; names the key and the rule.
#[derive(Debug, thiserror::Error)]
pub enum BrokerConfigError {
    #[error("unknown broker config key {0:?} (see docs/compatibility.md for the keys Weir knows)")]
    UnknownKey(String),
    #[error("invalid broker config {key}={value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    #[error("broker config must be KEY=VALUE, got {0:?}")]
    Malformed(String),
    #[error("--controller-quorum {0:?}: {1}")]
    Quorum(String, String),
    #[error("--process-roles {0:?}: {1}")]
    Roles(String, String),
}

impl BrokerConfig {
    pub fn new(node_id: i32, data_dir: impl Into<PathBuf>, listen: impl Into<String>) -> Self {
        BrokerConfig {
            node_id,
            data_dir: data_dir.into(),
            listen: listen.into(),
            advertise: None,
            rack: None,
            admin_listen: None,
            admin_listen_optional: false,
            settings: BTreeMap::new(),
            controller_quorum: Vec::new(),
            controller_listen: None,
            process_roles: None,
        }
    }

    /// Parses `KEY=VALUE` pairs into settings, checking each against the known keys.
    pub fn with_settings<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, BrokerConfigError> {
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| BrokerConfigError::Malformed(pair.to_string()))?;
            self = self.with_setting(key.trim(), value.trim())?;
        }
        self.check_consumer_group_bounds()?;
        self.check_task_group_bounds()?;
        Ok(self)
    }

    /// Kafka refuses to start with a consumer-group session timeout or
    /// heartbeat interval outside its own bounds.
    fn check_consumer_group_bounds(&self) -> Result<(), BrokerConfigError> {
        for what in ["session.timeout.ms", "heartbeat.interval.ms"] {
            let key = format!("group.consumer.{what}");
            let value = self.long(&key);
            let min = self.long(&format!("group.consumer.min.{what}"));
            let max = self.long(&format!("group.consumer.max.{what}"));
            if value < min || value > max {
                return Err(BrokerConfigError::Invalid {
                    key: key.clone(),
                    value: value.to_string(),
                    reason: format!(
                        "must be between group.consumer.min.{what} ({min}) and group.consumer.max.{what} ({max})"
                    ),
                });
            }
        }
        if self.long("group.consumer.heartbeat.interval.ms")
            >= self.long("group.consumer.session.timeout.ms")
        {
            return Err(BrokerConfigError::Invalid {
                key: "group.consumer.heartbeat.interval.ms".into(),
                value: self.get("group.consumer.heartbeat.interval.ms").into(),
                reason: "must be less than group.consumer.session.timeout.ms".into(),
            });
        }
        Ok(())
    }

    /// A task group's default session must fit its bounds and outlast a
    /// heartbeat interval.
    fn check_task_group_bounds(&self) -> Result<(), BrokerConfigError> {
        let session = self.long("group.tasks.session.timeout.ms");
        let (min, max) = (
            self.long("group.tasks.min.session.timeout.ms"),
            self.long("group.tasks.max.session.timeout.ms"),
        );
        let invalid = |key: &str, reason: String| BrokerConfigError::Invalid {
            key: key.into(),
            value: self.get(key).into(),
            reason,
        };
        if session < min || session > max {
            return Err(invalid(
                "group.tasks.session.timeout.ms",
                format!(
                    "must be between group.tasks.min.session.timeout.ms ({min}) and group.tasks.max.session.timeout.ms ({max})"
                ),
            ));
        }
        if self.long("group.tasks.heartbeat.interval.ms") >= min.min(session) {
            return Err(invalid(
                "group.tasks.heartbeat.interval.ms",
                "must be less than group.tasks.min.session.timeout.ms and group.tasks.session.timeout.ms".into(),
            ));
        }
        Ok(())
    }

    /// The listeners to bind and advertise, checked against each other.
    pub fn listeners(&self) -> Result<crate::listeners::Listeners, BrokerConfigError> {
        let set = |key: &str| Some(self.get(key)).filter(|v| !v.trim().is_empty());
        crate::listeners::resolve(&crate::listeners::ListenerSettings {
            listeners: set("listeners"),
            advertised: set("advertised.listeners"),
            protocol_map: self.get("listener.security.protocol.map"),
            inter_broker: set("inter.broker.listener.name"),
            legacy_listen: &self.listen,
            legacy_advertise: self.advertise.as_deref(),
        })
        .map_err(|reason| BrokerConfigError::Invalid {
            key: "listeners".into(),
            value: self.get("listeners").to_owned(),
            reason,
        })
    }

    /// Consumer groups' settings, for the coordinator.
    pub fn consumer_group_config(&self) -> weir_coordinator::consumer_group::ConsumerConfig {
        weir_coordinator::consumer_group::ConsumerConfig {
            session_timeout: self.millis("group.consumer.session.timeout.ms"),
            heartbeat_interval: self.millis("group.consumer.heartbeat.interval.ms"),
            assignors: self
                .get("group.consumer.assignors")
                .split(',')
                .filter_map(|a| assignor_name(a.trim()))
                .map(str::to_owned)
                .collect(),
            max_size: self.long("group.consumer.max.size").max(1) as usize,
            ..Default::default()
        }
    }

    /// Task groups' settings, for the coordinator.
    pub fn task_group_config(&self) -> weir_coordinator::tasks::group::TaskGroupConfig {
        weir_coordinator::tasks::group::TaskGroupConfig {
            session_timeout: self.millis("group.tasks.session.timeout.ms"),
            min_session_timeout: self.millis("group.tasks.min.session.timeout.ms"),
            max_session_timeout: self.millis("group.tasks.max.session.timeout.ms"),
            heartbeat_interval: self.millis("group.tasks.heartbeat.interval.ms"),
            max_size: self.long("group.tasks.max.size").max(1) as usize,
            assignor: weir_coordinator::tasks::assignor::AssignorConfig {
                num_standby_replicas: self
                    .long("group.tasks.num.standby.replicas")
                    .clamp(0, i64::from(u32::MAX)) as u32,
                acceptable_recovery_lag: self.long("group.tasks.acceptable.recovery.lag"),
                max_warmup_replicas: self
                    .long("group.tasks.max.warmup.replicas")
                    .clamp(0, i64::from(u32::MAX)) as u32,
            },
        }
    }

    /// The TLS settings of listener `name` (an SSL or SASL_SSL one, `sasl`
    /// for SASL_SSL); the error names the key that is wrong.
    pub fn listener_tls(
        &self,
        name: &str,
        sasl: bool,
    ) -> Result<crate::tls::TlsSettings, BrokerConfigError> {
        let own = |k: &str| format!("listener.name.{}.{k}", name.to_ascii_lowercase());
        // The listener's own value, else the broker's.
        let setting = |k: &str| {
            self.listener_setting(name, k)
                .map(|v| (own(k), v))
                .unwrap_or_else(|| (k.to_owned(), self.get(k)))
        };
        let path = |k: &str| {
            Some(setting(k).1)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let keystore = path("ssl.keystore.location").ok_or_else(|| BrokerConfigError::Invalid {
            key: own("ssl.keystore.location"),
            value: String::new(),
            reason: format!(
                "listener {name} uses TLS but has no keystore: set ssl.keystore.location or {}",
                own("ssl.keystore.location")
            ),
        })?;
        // Kafka: on SASL_SSL listeners, only the listener's own
        // ssl.client.auth asks for client certificates.
        let (auth_key, auth) = match self.listener_setting(name, "ssl.client.auth") {
            Some(value) => (own("ssl.client.auth"), value),
            None if sasl => ("ssl.client.auth".to_owned(), "none"),
            None => ("ssl.client.auth".to_owned(), self.get("ssl.client.auth")),
        };
        let invalid = |key: String, value: &str, reason: String| BrokerConfigError::Invalid {
            key,
            value: value.to_owned(),
            reason,
        };
        let client_auth = crate::tls::ClientAuth::parse(auth)
            .map_err(|reason| invalid(auth_key.clone(), auth, reason))?;
        let truststore = path("ssl.truststore.location");
        if client_auth != crate::tls::ClientAuth::None && truststore.is_none() {
            return Err(invalid(
                auth_key,
                auth,
                format!(
                    "listener {name} checks client certificates, so it needs a PEM file of the CA certificates they are signed by: set ssl.truststore.location or {}",
                    own("ssl.truststore.location")
                ),
            ));
        }
        let (rules_key, rules) = setting("ssl.principal.mapping.rules");
        let principal_mapper = crate::principal_mapping::PrincipalMapper::parse(rules)
            .map_err(|reason| invalid(rules_key, rules, reason))?;
        Ok(crate::tls::TlsSettings {
            keystore,
            client_auth,
            truststore,
            principal_mapper,
        })
    }

    /// How this broker connects to others through `listener` (the
    /// inter-broker listener) or to the quorum port: TLS verifying peers
    /// against the listener's truststore and presenting the listener's own
    /// keystore, so a listener that asks for client certificates gets one.
    pub fn peer_tls(
        &self,
        listener: &str,
    ) -> Result<weir_client::tls::TlsSettings, BrokerConfigError> {
        let own = |k: &str| format!("listener.name.{}.{k}", listener.to_ascii_lowercase());
        let path = |k: &str| {
            self.listener_setting(listener, k)
                .or_else(|| Some(self.get(k)))
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        };
        let truststore = path("ssl.truststore.location").ok_or_else(|| BrokerConfigError::Invalid {
            key: own("ssl.truststore.location"),
            value: String::new(),
            reason: format!(
                "brokers and controllers connect to each other over {listener} with TLS, so they need the CA to verify each other: set ssl.truststore.location or {}",
                own("ssl.truststore.location")
            ),
        })?;
        let keystore = path("ssl.keystore.location");
        let check_host = !self.get("ssl.endpoint.identification.algorithm").is_empty();
        weir_client::tls::TlsSettings::from_files(
            &truststore,
            keystore.as_deref(),
            check_host,
            &format!("listener {listener}"),
        )
        .map_err(|e| BrokerConfigError::Invalid {
            key: own("ssl.truststore.location"),
            value: truststore.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// How this broker logs in to others on a SASL inter-broker listener:
    /// `sasl.mechanism.inter.broker.protocol`, with the username and
    /// password of that mechanism's JAAS entry on the listener (Kafka's
    /// `listener.name.<name>.<mechanism>.sasl.jaas.config`).
    pub fn inter_broker_sasl(
        &self,
        listener: &str,
    ) -> Result<weir_client::sasl::Credentials, BrokerConfigError> {
        let key = "sasl.mechanism.inter.broker.protocol";
        let value = self.get(key);
        let mechanism = weir_client::sasl::Mechanism::parse(value).map_err(|reason| {
            BrokerConfigError::Invalid {
                key: key.into(),
                value: value.into(),
                reason: format!("{reason}: the inter-broker listener {listener} uses SASL"),
            }
        })?;
        let jaas_key = format!(
            "listener.name.{}.{}.sasl.jaas.config",
            listener.to_ascii_lowercase(),
            mechanism.name().to_ascii_lowercase()
        );
        let missing = |reason: String| BrokerConfigError::Invalid {
            key: jaas_key.clone(),
            value: HIDDEN.into(),
            reason,
        };
        let text = self
            .settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&jaas_key))
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| {
                missing(format!(
                    "brokers log in to each other over {listener} with {mechanism}: this JAAS entry needs username=\"…\" password=\"…\""
                ))
            })?;
        let entry = weir_client::sasl::jaas::parse(text).map_err(&missing)?;
        let (username, password) = entry
            .options
            .get("username")
            .cloned()
            .zip(entry.options.get("password").cloned())
            .ok_or_else(|| {
                missing("it has no username and password for brokers to log in with".into())
            })?;
        Ok(weir_client::sasl::Credentials {
            mechanism,
            username,
            password,
        })
    }

    /// The quorum port's listener (`controller.listener.names`, the first
    /// name) when the protocol map makes it SSL; `None` for plain TCP.
    pub fn quorum_tls_listener(&self) -> Result<Option<String>, BrokerConfigError> {
        let key = "controller.listener.names";
        let value = self.get(key);
        let Some(name) = value
            .split(',')
            .map(|n| n.trim().to_ascii_uppercase())
            .find(|n| !n.is_empty())
        else {
            return Ok(None);
        };
        let invalid = |reason: String| BrokerConfigError::Invalid {
            key: key.into(),
            value: value.into(),
            reason,
        };
        let protocols =
            crate::listeners::parse_protocol_map(self.get("listener.security.protocol.map"))
                .map_err(&invalid)?;
        match protocols.get(&name).map(String::as_str) {
            Some("PLAINTEXT") => Ok(None),
            Some("SSL") => Ok(Some(name)),
            Some(other) => Err(invalid(format!(
                "{name} is {other} in listener.security.protocol.map: the quorum port is secured with SSL (mutual TLS), not SASL"
            ))),
            None => Err(invalid(format!(
                "{name} has no security protocol in listener.security.protocol.map"
            ))),
        }
    }

    /// A listener's own value of a per-listener key
    /// (`listener.name.<name>.<key>`, the name in either case).
    fn listener_setting(&self, name: &str, key: &str) -> Option<&str> {
        let own = format!("listener.name.{name}.{key}");
        self.settings
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&own))
            .map(|(_, v)| v.as_str())
    }

    /// The SASL settings of listener `name` (a SASL_PLAINTEXT or SASL_SSL
    /// one); the error names the key that is wrong.
    pub fn listener_sasl(
        &self,
        name: &str,
    ) -> Result<crate::sasl::ListenerSasl, BrokerConfigError> {
        let key = |k: &str| format!("listener.name.{}.{k}", name.to_ascii_lowercase());
        let mechanisms_text = self
            .listener_setting(name, "sasl.enabled.mechanisms")
            .unwrap_or_else(|| self.get("sasl.enabled.mechanisms"));
        let mechanisms =
            parse_mechanisms(mechanisms_text).map_err(|reason| BrokerConfigError::Invalid {
                key: key("sasl.enabled.mechanisms"),
                value: mechanisms_text.into(),
                reason,
            })?;
        let plain_users = match self.listener_setting(name, "plain.sasl.jaas.config") {
            None => None,
            Some(text) => {
                let entry = weir_client::sasl::jaas::parse(text).map_err(|reason| {
                    BrokerConfigError::Invalid {
                        key: key("plain.sasl.jaas.config"),
                        value: HIDDEN.into(),
                        reason,
                    }
                })?;
                Some(
                    entry
                        .options
                        .iter()
                        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_owned(), v.clone())))
                        .collect(),
                )
            }
        };
        let reauth = self
            .listener_setting(name, "connections.max.reauth.ms")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| self.long("connections.max.reauth.ms").max(0) as u64);
        Ok(crate::sasl::ListenerSasl {
            mechanisms,
            plain_users,
            max_reauth: (reauth > 0).then(|| Duration::from_millis(reauth)),
            max_receive: self.long("sasl.server.max.receive.size").max(1) as usize,
            secret: rand::random::<[u8; 32]>().to_vec(),
        })
    }

    /// How requests are authorized (checked when set).
    pub fn authorizer(&self) -> crate::authorizer::AuthorizerConfig {
        crate::authorizer::AuthorizerConfig {
            enabled: crate::authorizer::parse_authorizer_class(self.get("authorizer.class.name"))
                .unwrap_or(false),
            super_users: crate::authorizer::parse_super_users(self.get("super.users"))
                .unwrap_or_default(),
            allow_if_no_acl: self
                .get("allow.everyone.if.no.acl.found")
                .eq_ignore_ascii_case("true"),
        }
    }

    /// Sets one broker key after checking it.
    pub fn with_setting(mut self, key: &str, value: &str) -> Result<Self, BrokerConfigError> {
        validate_broker_setting(key, value)?;
        self.settings.insert(key.to_string(), value.to_string());
        Ok(self)
    }

    fn get(&self, key: &str) -> &str {
        self.settings
            .get(key)
            .map(String::as_str)
            .or_else(|| BROKER_KEYS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d))
            .unwrap_or("")
    }

    fn long(&self, key: &str) -> i64 {
        // Settings were validated on the way in; a default always parses.
        self.get(key).parse().unwrap_or_default()
    }

    fn millis(&self, key: &str) -> Duration {
        Duration::from_millis(self.long(key).max(0) as u64)
    }

    pub fn auto_create_topics(&self) -> bool {
        self.get("auto.create.topics.enable")
            .eq_ignore_ascii_case("true")
    }
    pub fn num_partitions(&self) -> i32 {
        self.long("num.partitions") as i32
    }
    pub fn default_replication_factor(&self) -> i16 {
        self.long("default.replication.factor") as i16
    }
    /// How client quotas measure rates: samples kept, and each one's span.
    pub fn quota_window(&self) -> (usize, Duration) {
        let samples = self.long("quota.window.num").max(1) as usize;
        let span = Duration::from_secs(self.long("quota.window.size.seconds").max(1) as u64);
        (samples, span)
    }
    pub fn socket_request_max_bytes(&self) -> usize {
        self.long("socket.request.max.bytes") as usize
    }
    pub fn group_initial_rebalance_delay(&self) -> Duration {
        self.millis("group.initial.rebalance.delay.ms")
    }
    pub fn group_min_session_timeout(&self) -> Duration {
        self.millis("group.min.session.timeout.ms")
    }
    pub fn group_max_session_timeout(&self) -> Duration {
        self.millis("group.max.session.timeout.ms")
    }
    pub fn offsets_retention(&self) -> Duration {
        Duration::from_secs(self.long("offsets.retention.minutes").max(0) as u64 * 60)
    }
    pub fn retention_check_interval(&self) -> Duration {
        self.millis("log.retention.check.interval.ms")
    }
    pub fn cleaner_backoff(&self) -> Duration {
        self.millis("log.cleaner.backoff.ms")
    }
    pub fn cleaner_enabled(&self) -> bool {
        self.get("log.cleaner.enable").eq_ignore_ascii_case("true")
    }
    /// How often every log is fsynced; `None` (Kafka's default) leaves it
    /// to the OS, with an fsync at shutdown: durability against
    /// a killed process comes from the page cache, and against a lost
    /// machine from replication.
    pub fn flush_interval(&self) -> Option<Duration> {
        let every = self.millis("log.flush.scheduler.interval.ms");
        (every < Duration::from_secs(365 * 24 * 3600)).then_some(every)
    }
    pub fn fetch_max_bytes(&self) -> usize {
        self.long("fetch.max.bytes") as usize
    }
    pub fn replica_lag_max(&self) -> Duration {
        self.millis("replica.lag.time.max.ms")
    }
    pub fn replica_fetch_wait_max(&self) -> Duration {
        self.millis("replica.fetch.wait.max.ms")
    }
    pub fn replica_fetch_max_bytes(&self) -> i32 {
        self.long("replica.fetch.max.bytes").min(i32::MAX as i64) as i32
    }
    pub fn replica_fetch_response_max_bytes(&self) -> i32 {
        self.long("replica.fetch.response.max.bytes")
            .min(i32::MAX as i64) as i32
    }
    pub fn offsets_topic_replication_factor(&self) -> i16 {
        self.long("offsets.topic.replication.factor")
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn offsets_retention_check_interval(&self) -> Duration {
        self.millis("offsets.retention.check.interval.ms")
            .max(Duration::from_millis(100))
    }
    pub fn transaction_state_num_partitions(&self) -> i32 {
        self.long("transaction.state.log.num.partitions")
            .clamp(1, i32::MAX as i64) as i32
    }
    pub fn transaction_state_replication_factor(&self) -> i16 {
        self.long("transaction.state.log.replication.factor")
            .clamp(1, i16::MAX as i64) as i16
    }
    pub fn transaction_max_timeout_ms(&self) -> i32 {
        self.long("transaction.max.timeout.ms")
            .clamp(1, i32::MAX as i64) as i32
    }
    pub fn transactional_id_expiration_ms(&self) -> i64 {
        self.long("transactional.id.expiration.ms").max(1)
    }
    /// How often open transactions are checked against their timeouts.
    pub fn transaction_timeout_check_interval(&self) -> Duration {
        self.millis("transaction.abort.timed.out.transaction.cleanup.interval.ms")
            .max(Duration::from_millis(50))
    }
    pub fn transactional_id_expiry_check_interval(&self) -> Duration {
        self.millis("transaction.remove.expired.transaction.cleanup.interval.ms")
            .max(Duration::from_millis(50))
    }
    pub fn offsets_topic_num_partitions(&self) -> i32 {
        self.long("offsets.topic.num.partitions")
            .clamp(1, i32::MAX as i64) as i32
    }
    pub fn heartbeat_interval(&self) -> Duration {
        self.millis("broker.heartbeat.interval.ms")
            .max(Duration::from_millis(10))
    }
    pub fn offsets_commit_timeout(&self) -> Duration {
        self.millis("offsets.commit.timeout.ms")
    }
    pub fn session_timeout(&self) -> Duration {
        self.millis("broker.session.timeout.ms")
    }
    pub fn controlled_shutdown(&self) -> bool {
        self.get("controlled.shutdown.enable")
            .eq_ignore_ascii_case("true")
    }
    pub fn auto_leader_rebalance(&self) -> bool {
        self.get("auto.leader.rebalance.enable")
            .eq_ignore_ascii_case("true")
    }
    /// What this node runs: `--process-roles` when given (checked against
    /// the quorum by [`BrokerConfig::check_roles`]), else a node listed in
    /// `--controller-quorum` (or alone) is combined and any other a broker.
    pub fn roles(&self) -> ProcessRoles {
        self.process_roles.unwrap_or(
            if self.controller_quorum.is_empty()
                || self.controller_quorum.iter().any(|v| v.id == self.node_id)
            {
                ProcessRoles::COMBINED
            } else {
                ProcessRoles::BROKER
            },
        )
    }

    /// Whether this node votes in the metadata quorum (and may become the
    /// active controller).
    pub fn is_voter(&self) -> bool {
        self.roles().controller
    }

    /// Refuses roles that contradict the quorum: a controller must be one
    /// of its voters (the voter set is static), and a listed voter must run
    /// the controller, or the quorum would count a vote no one casts.
    pub fn check_roles(&self) -> Result<(), BrokerConfigError> {
        let roles = self.roles();
        let listed = self.controller_quorum.iter().any(|v| v.id == self.node_id);
        let spec = match roles {
            ProcessRoles::COMBINED => "broker,controller",
            ProcessRoles::CONTROLLER => "controller",
            _ => "broker",
        };
        let refuse = |why: String| Err(BrokerConfigError::Roles(spec.to_string(), why));
        if !roles.broker && !roles.controller {
            return refuse("names no role".into());
        }
        if roles.controller && self.controller_quorum.is_empty() && !roles.broker {
            return refuse(
                "a dedicated controller needs --controller-quorum naming its peers".into(),
            );
        }
        if roles.controller && !self.controller_quorum.is_empty() && !listed {
            return refuse(format!(
                "node {} runs a controller but is not a voter in --controller-quorum",
                self.node_id
            ));
        }
        if !roles.controller && listed {
            return refuse(format!(
                "node {} is a voter in --controller-quorum, so it must run the controller role",
                self.node_id
            ));
        }
        if !roles.controller && self.controller_quorum.is_empty() {
            return refuse("a broker without the controller role needs --controller-quorum".into());
        }
        Ok(())
    }

    pub fn delete_topic_enabled(&self) -> bool {
        self.get("delete.topic.enable").eq_ignore_ascii_case("true")
    }

    /// Every broker key with its value and whether it was set explicitly,
    /// sorted by name (DescribeConfigs on the broker resource).
    pub fn effective_settings(&self) -> Vec<(String, String, bool)> {
        let defaults = BROKER_KEYS.iter().map(|(k, d)| (*k, *d)).chain(
            TOPIC_CONFIGS
                .iter()
                .filter_map(|d| d.broker_key.map(|k| (k, d.default))),
        );
        let mut all: Vec<_> = defaults
            .map(|(key, default)| match self.settings.get(key) {
                Some(v) => (key.to_string(), v.clone(), true),
                None => (key.to_string(), default.to_string(), false),
            })
            .collect();
        all.sort();
        all.dedup_by(|a, b| a.0 == b.0);
        all
    }
}

/// A controller quorum voter, `ID@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    pub id: i32,
    pub address: String,
}

/// Parses `--controller-quorum ID@HOST:PORT,…` (KRaft's
/// controller.quorum.voters). The node itself need not be a voter: a
/// broker-only node follows the metadata log as an observer.
pub fn parse_controller_quorum(spec: &str) -> Result<Vec<QuorumVoter>, BrokerConfigError> {
    let bad = |why: String| BrokerConfigError::Quorum(spec.to_string(), why);
    let voters = spec
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let (id, address) = v
                .split_once('@')
                .ok_or_else(|| bad(format!("{v:?} is not ID@HOST:PORT")))?;
            let id: i32 = id
                .parse()
                .map_err(|_| bad(format!("{id:?} is not a node id")))?;
            if id < 0 {
                return Err(bad(format!("node id {id} is negative")));
            }
            if address
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(bad(format!("{address:?} is not HOST:PORT")));
            }
            Ok(QuorumVoter {
                id,
                address: address.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if voters.is_empty() {
        return Err(bad("names no voter".into()));
    }
    let mut ids: Vec<i32> = voters.iter().map(|v| v.id).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(bad(format!("node {} is listed twice", w[0])));
    }
    Ok(voters)
}

/// Shown instead of a secret's value.
const HIDDEN: &str = "[hidden]";

/// `sasl.enabled.mechanisms`: a comma-separated list of mechanisms Weir serves.
fn parse_mechanisms(value: &str) -> Result<Vec<weir_client::sasl::Mechanism>, String> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let m = weir_client::sasl::Mechanism::parse(name)?;
        if !out.contains(&m) {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err("names no mechanism".into());
    }
    Ok(out)
}

/// A server-side assignor by its short name or Kafka's class name.
fn assignor_name(name: &str) -> Option<&'static str> {
    match name {
        "uniform" | "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
            Some("uniform")
        }
        "range" | "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => Some("range"),
        _ => None,
    }
}

/// Checks one broker key: a topic default under its broker name is checked
/// by the topic rule; a broker-only key must be a boolean or a number.
pub fn validate_broker_setting(key: &str, value: &str) -> Result<(), BrokerConfigError> {
    let invalid = |reason: String| BrokerConfigError::Invalid {
        key: key.into(),
        value: value.into(),
        reason,
    };
    // Per-listener keys: `listener.name.<name>.<key>` for the keys a
    // listener may set for itself, and a SASL mechanism's JAAS config
    // (`listener.name.<name>.<mechanism>.sasl.jaas.config`).
    if let Some(rest) = key.strip_prefix("listener.name.") {
        return match rest.split_once('.') {
            Some((name, inner)) if !name.is_empty() && PER_LISTENER_KEYS.contains(&inner) => {
                // The error names the key as it was given.
                validate_broker_setting(inner, value).map_err(|e| match e {
                    BrokerConfigError::Invalid { value, reason, .. } => {
                        BrokerConfigError::Invalid {
                            key: key.into(),
                            value,
                            reason,
                        }
                    }
                    other => other,
                })
            }
            Some((name, inner)) if !name.is_empty() && inner.ends_with(".sasl.jaas.config") => {
                let mechanism = inner.trim_end_matches(".sasl.jaas.config");
                weir_client::sasl::Mechanism::parse(mechanism).map_err(|reason| {
                    BrokerConfigError::Invalid {
                        key: key.into(),
                        value: HIDDEN.into(),
                        reason,
                    }
                })?;
                weir_client::sasl::jaas::parse(value)
                    .map(|_| ())
                    .map_err(|reason| BrokerConfigError::Invalid {
                        key: key.into(),
                        value: HIDDEN.into(),
                        reason,
                    })
            }
            _ => Err(BrokerConfigError::UnknownKey(key.to_string())),
        };
    }
    if key == "sasl.enabled.mechanisms" {
        return parse_mechanisms(value).map(|_| ()).map_err(invalid);
    }
    let pem_only = match key {
        "ssl.keystore.type" => {
            Some("keystores are read (a file with the certificate chain and the private key)")
        }
        "ssl.truststore.type" => Some("truststores are read (a file with the CA certificates)"),
        _ => None,
    };
    if let Some(what) = pem_only {
        return if value.eq_ignore_ascii_case("PEM") {
            Ok(())
        } else {
            Err(invalid(format!("only PEM {what}")))
        };
    }
    if key == "ssl.keystore.location" || key == "ssl.truststore.location" {
        return Ok(());
    }
    if key == "ssl.client.auth" {
        return crate::tls::ClientAuth::parse(value)
            .map(|_| ())
            .map_err(invalid);
    }
    if key == "ssl.principal.mapping.rules" {
        return crate::principal_mapping::PrincipalMapper::parse(value)
            .map(|_| ())
            .map_err(invalid);
    }
    if key == "authorizer.class.name" {
        return crate::authorizer::parse_authorizer_class(value)
            .map(|_| ())
            .map_err(invalid);
    }
    if key == "super.users" {
        return crate::authorizer::parse_super_users(value)
            .map(|_| ())
            .map_err(invalid);
    }
    if let Some(def) = TOPIC_CONFIGS.iter().find(|d| d.broker_key == Some(key)) {
        return validate_topic_config(def.name, value).map_err(|e| invalid(e.to_string()));
    }
    let (_, default) = BROKER_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .ok_or_else(|| BrokerConfigError::UnknownKey(key.to_string()))?;
    match key {
        "listeners" | "advertised.listeners" => {
            return crate::listeners::parse_list(value)
                .map(|_| ())
                .map_err(invalid);
        }
        "listener.security.protocol.map" => {
            return crate::listeners::parse_protocol_map(value)
                .map(|_| ())
                .map_err(invalid);
        }
        "inter.broker.listener.name" | "controller.listener.names" => return Ok(()),
        "sasl.mechanism.inter.broker.protocol" => {
            // Checked where it is used: only a SASL inter-broker listener
            // needs a mechanism Weir serves.
            return Ok(());
        }
        "ssl.endpoint.identification.algorithm" => {
            return if value.is_empty() || value.eq_ignore_ascii_case("https") {
                Ok(())
            } else {
                Err(invalid(
                    "expected https, or empty to skip the host name check".into(),
                ))
            };
        }
        _ => {}
    }
    if key == "group.consumer.assignors" {
        let names: Vec<&str> = value.split(',').map(str::trim).collect();
        if let Some(bad) = names.iter().find(|a| assignor_name(a).is_none()) {
            return Err(invalid(format!(
                "unknown assignor {bad:?}: expected uniform or range (or Kafka's class names for them)"
            )));
        }
        return Ok(());
    }
    if *default == "true" || *default == "false" {
        if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
            return Err(invalid("expected true or false".into()));
        }
    } else {
        let n: i64 = value
            .parse()
            .map_err(|_| invalid("not a whole number".into()))?;
        if n < 0 {
            return Err(invalid("must not be negative".into()));
        }
        let at_least_one = [
            "num.partitions",
            "default.replication.factor",
            "quota.window.num",
            "quota.window.size.seconds",
        ];
        if at_least_one.contains(&key) && n < 1 {
            return Err(invalid("must be at least 1".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_by_name_and_rule() {
        let base = || BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0");
        assert!(matches!(
            base().with_settings(["log.retention.mss=1"]),
            Err(BrokerConfigError::UnknownKey(_))
        ));
        assert!(matches!(
            base().with_settings(["num.partitions=0"]),
            Err(BrokerConfigError::Invalid { .. })
        ));
        assert!(matches!(
            base().with_settings(["log.cleanup.policy=sometimes"]),
            Err(BrokerConfigError::Invalid { .. })
        ));
        assert!(matches!(
            base().with_settings(["auto.create.topics.enable"]),
            Err(BrokerConfigError::Malformed(_))
        ));
        assert!(matches!(
            base().with_settings(["group.consumer.session.timeout.ms=1000"]),
            Err(BrokerConfigError::Invalid { .. })
        ));
        assert!(matches!(
            base().with_settings(["group.tasks.heartbeat.interval.ms=5000"]),
            Err(BrokerConfigError::Invalid { key, .. }) if key == "group.tasks.heartbeat.interval.ms"
        ));
        let tasks = base()
            .with_settings([
                "group.tasks.num.standby.replicas=1",
                "group.tasks.session.timeout.ms=10000",
            ])
            .expect("valid task group settings")
            .task_group_config();
        assert_eq!(tasks.assignor.num_standby_replicas, 1);
        assert_eq!(tasks.session_timeout, Duration::from_secs(10));
        assert!(matches!(
            base().with_settings(["group.consumer.assignors=uniform,sticky"]),
            Err(BrokerConfigError::Invalid { .. })
        ));
        let consumer = base()
            .with_settings([
                "group.consumer.min.session.timeout.ms=1000",
                "group.consumer.session.timeout.ms=2000",
                "group.consumer.min.heartbeat.interval.ms=100",
                "group.consumer.heartbeat.interval.ms=200",
                "group.consumer.assignors=org.apache.kafka.coordinator.group.assignor.RangeAssignor",
            ])
            .unwrap()
            .consumer_group_config();
        assert_eq!(consumer.session_timeout, Duration::from_secs(2));
        assert_eq!(consumer.assignors, vec!["range".to_string()]);
        let cfg = base()
            .with_settings([
                "num.partitions=3",
                "auto.create.topics.enable=true",
                "log.retention.ms=1000",
            ])
            .unwrap();
        assert_eq!(cfg.num_partitions(), 3);
        assert!(cfg.auto_create_topics());
    }

    #[test]
    fn process_roles_default_from_the_quorum_and_contradictions_are_refused() {
        let quorum = parse_controller_quorum("1@a:9093,2@b:9093,3@c:9093").unwrap();
        let node = |id: i32, roles: Option<&str>| {
            let mut config = BrokerConfig::new(id, "/tmp/x", "127.0.0.1:0");
            config.controller_quorum = quorum.clone();
            config.process_roles = roles.map(|r| ProcessRoles::parse(r).unwrap());
            config
        };
        assert_eq!(node(1, None).roles(), ProcessRoles::COMBINED);
        assert_eq!(node(4, None).roles(), ProcessRoles::BROKER);
        assert_eq!(
            BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0").roles(),
            ProcessRoles::COMBINED
        );
        assert_eq!(
            ProcessRoles::parse("controller, broker").unwrap(),
            ProcessRoles::COMBINED
        );
        let dedicated = node(2, Some("controller"));
        assert!(dedicated.check_roles().is_ok());
        assert!(dedicated.is_voter());
        assert!(node(4, Some("broker")).check_roles().is_ok());
        assert!(!node(4, Some("broker")).is_voter());

        let err = |c: BrokerConfig| c.check_roles().unwrap_err().to_string();
        assert!(err(node(4, Some("controller"))).contains("not a voter"));
        assert!(err(node(1, Some("broker"))).contains("must run the controller role"));
        let mut alone = BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0");
        alone.process_roles = Some(ProcessRoles::CONTROLLER);
        assert!(err(alone).contains("needs --controller-quorum"));
        assert!(
            ProcessRoles::parse("broker,zookeeper")
                .unwrap_err()
                .to_string()
                .contains("\"zookeeper\"")
        );
    }

    #[test]
    fn controller_quorum_is_parsed() {
        let voters = parse_controller_quorum("1@broker-0:9093, 2@broker-1:9093").unwrap();
        assert_eq!(
            voters,
            [
                QuorumVoter {
                    id: 1,
                    address: "broker-0:9093".into()
                },
                QuorumVoter {
                    id: 2,
                    address: "broker-1:9093".into()
                }
            ]
        );
        assert!(parse_controller_quorum("1@a:9093,1@b:9093").is_err());
        assert!(parse_controller_quorum("x@a:9093").is_err());
        assert!(parse_controller_quorum("-1@a:9093").is_err());
        assert!(parse_controller_quorum("1@a").is_err());
        assert!(parse_controller_quorum("").is_err());
    }

    #[test]
    fn client_certificate_settings_follow_kafka() {
        use crate::tls::ClientAuth;
        let tls = |pairs: &[&str], sasl: bool| {
            BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0")
                .with_settings(
                    [
                        "ssl.keystore.location=/k.pem",
                        "ssl.truststore.location=/ca.pem",
                    ]
                    .into_iter()
                    .chain(pairs.iter().copied()),
                )
                .and_then(|c| c.listener_tls("SSL", sasl))
        };
        let plain = tls(&[], false).unwrap();
        assert_eq!(plain.client_auth, ClientAuth::None);
        assert_eq!(
            plain.principal_mapper.map("CN=a,O=b").as_deref(),
            Some("CN=a,O=b")
        );
        let required = tls(&["ssl.client.auth=required"], false).unwrap();
        assert_eq!(required.client_auth, ClientAuth::Required);
        assert_eq!(required.truststore, Some(PathBuf::from("/ca.pem")));
        // On SASL_SSL the broker-wide value does not count; the listener's does.
        assert_eq!(
            tls(&["ssl.client.auth=required"], true)
                .unwrap()
                .client_auth,
            ClientAuth::None
        );
        assert_eq!(
            tls(&["listener.name.ssl.ssl.client.auth=requested"], true)
                .unwrap()
                .client_auth,
            ClientAuth::Requested
        );
        // The listener's own rules and truststore win over the broker's.
        let own = tls(
            &[
                "ssl.principal.mapping.rules=RULE:^CN=([^,]*).*$/$1/",
                "listener.name.ssl.ssl.principal.mapping.rules=RULE:^.*O=(.*)$/$1/U",
                "listener.name.ssl.ssl.truststore.location=/own.pem",
            ],
            false,
        )
        .unwrap();
        assert_eq!(own.principal_mapper.map("CN=a,O=b").as_deref(), Some("B"));
        assert_eq!(own.truststore, Some(PathBuf::from("/own.pem")));

        let refused = |pairs: &[&str]| tls(pairs, false).unwrap_err().to_string();
        assert!(refused(&["ssl.client.auth=sometimes"]).contains("ssl.client.auth"));
        let bad_rule = refused(&["listener.name.ssl.ssl.principal.mapping.rules=RULE:x"]);
        assert!(
            bad_rule.contains("listener.name.ssl.ssl.principal.mapping.rules"),
            "{bad_rule}"
        );
        assert!(refused(&["ssl.truststore.type=JKS"]).contains("only PEM truststores"));
        let untrusted = BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0")
            .with_settings(["ssl.keystore.location=/k.pem", "ssl.client.auth=requested"])
            .unwrap()
            .listener_tls("SSL", false)
            .unwrap_err()
            .to_string();
        assert!(
            untrusted.contains("ssl.client.auth") && untrusted.contains("ssl.truststore.location"),
            "{untrusted}"
        );
    }

    #[test]
    fn defaults_follow_kafka() {
        let cfg = BrokerConfig::new(1, "/tmp/x", "127.0.0.1:0");
        assert!(!cfg.auto_create_topics());
        assert_eq!(cfg.socket_request_max_bytes(), 104_857_600);
        assert_eq!(cfg.group_initial_rebalance_delay(), Duration::from_secs(3));
        assert_eq!(cfg.num_partitions(), 1);
    }
}
