//! `weir broker`: run one broker until SIGTERM or Ctrl-C, then stop cleanly.

use std::path::PathBuf;

use anyhow::Context;
use weir_broker::{Broker, BrokerConfig, ControllerNode};

const DEFAULT_ADMIN_LISTEN: &str = "0.0.0.0:9644";

#[derive(clap::Args, Debug)]
pub struct BrokerArgs {
    /// This broker's id, unique in the cluster.
    #[arg(long, env = "WEIR_NODE_ID", default_value_t = 1)]
    pub node_id: i32,
    /// Where logs and metadata live.
    #[arg(long, env = "WEIR_DATA_DIR", default_value = "./.weir")]
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds.
    #[arg(long, env = "WEIR_LISTEN", default_value = "0.0.0.0:9092")]
    pub listen: String,
    /// Address clients are told to connect to (default: the listen address,
    /// or this host's name when listening on all interfaces).
    #[arg(long, env = "WEIR_ADVERTISE")]
    pub advertise: Option<String>,
    /// Address of the admin HTTP port (/healthz, /ready, /metrics). Default
    /// 0.0.0.0:9644; when that is taken (another broker on this machine) the
    /// broker runs without it and says so. An address given here must bind.
    #[arg(long, env = "WEIR_ADMIN_LISTEN")]
    pub admin_listen: Option<String>,
    /// The metadata quorum's voters, ID@HOST:PORT,… (KRaft's
    /// controller.quorum.voters). A broker whose id is listed is a voter
    /// (combined broker + controller); others follow the quorum. Without
    /// it the broker is a cluster of one.
    #[arg(long, env = "WEIR_CONTROLLER_QUORUM")]
    pub controller_quorum: Option<String>,
    /// What this node runs (KRaft's process.roles): `broker`,
    /// `controller` (a dedicated controller: a quorum voter with no Kafka
    /// listener) or `broker,controller` (combined). Default: combined when
    /// this node is listed in --controller-quorum, else broker.
    #[arg(long, env = "WEIR_PROCESS_ROLES")]
    pub process_roles: Option<String>,
    /// Address the quorum port binds (default: this node's port from
    /// --controller-quorum on every interface, or 0.0.0.0:9093).
    #[arg(long, env = "WEIR_CONTROLLER_LISTEN")]
    pub controller_listen: Option<String>,
    /// Rack (failure domain) of this broker, reported to clients.
    #[arg(long, env = "WEIR_RACK")]
    pub rack: Option<String>,
    /// Named listeners, NAME://HOST:PORT,… (Kafka's `listeners`); replaces
    /// --listen. Same as --config listeners=….
    #[arg(long, env = "WEIR_LISTENERS")]
    pub listeners: Option<String>,
    /// What each listener tells clients, NAME://HOST:PORT,… (Kafka's
    /// `advertised.listeners`).
    #[arg(long, env = "WEIR_ADVERTISED_LISTENERS")]
    pub advertised_listeners: Option<String>,
    /// NAME:PROTOCOL,… (Kafka's `listener.security.protocol.map`).
    #[arg(long, env = "WEIR_LISTENER_SECURITY_PROTOCOL_MAP")]
    pub listener_security_protocol_map: Option<String>,
    /// The listener brokers reach each other through (Kafka's
    /// `inter.broker.listener.name`).
    #[arg(long, env = "WEIR_INTER_BROKER_LISTENER_NAME")]
    pub inter_broker_listener_name: Option<String>,
    /// Kafka broker setting KEY=VALUE (e.g. log.retention.ms=3600000); repeatable.
    /// From the environment, separate several with ';'.
    #[arg(long = "config", env = "WEIR_CONFIG")]
    pub config: Vec<String>,
}

/// `--config` values split at the ';' that separate settings, but not at
/// one inside a value: a JAAS config ends with ';', and a piece that does
/// not start with `KEY=` belongs to the setting before it.
fn split_settings(values: &[String]) -> Vec<String> {
    let starts_setting = |piece: &str| {
        piece.split_once('=').is_some_and(|(k, _)| {
            let k = k.trim();
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
    };
    let mut out: Vec<String> = Vec::new();
    for value in values {
        let mut first = true;
        for piece in value.split(';') {
            match out.last_mut() {
                Some(last) if !first && !starts_setting(piece) => {
                    last.push(';');
                    last.push_str(piece);
                }
                _ if piece.trim().is_empty() => {}
                _ => out.push(piece.to_owned()),
            }
            first = false;
        }
    }
    out
}

impl BrokerArgs {
    pub fn broker_config(&self) -> anyhow::Result<BrokerConfig> {
        // The listener flags are their keys' spelling as flags.
        let flagged: Vec<String> = [
            ("listeners", &self.listeners),
            ("advertised.listeners", &self.advertised_listeners),
            (
                "listener.security.protocol.map",
                &self.listener_security_protocol_map,
            ),
            (
                "inter.broker.listener.name",
                &self.inter_broker_listener_name,
            ),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| format!("{key}={v}")))
        .collect();
        let mut config = BrokerConfig::new(self.node_id, &self.data_dir, &self.listen)
            .with_settings(
                flagged
                    .iter()
                    .chain(&split_settings(&self.config))
                    .map(String::as_str),
            )?;
        config.rack = self.rack.clone();
        config.admin_listen = Some(
            self.admin_listen
                .clone()
                .unwrap_or_else(|| DEFAULT_ADMIN_LISTEN.to_string()),
        );
        config.admin_listen_optional = self.admin_listen.is_none();
        if let Some(quorum) = &self.controller_quorum {
            config.controller_quorum = weir_broker::config::parse_controller_quorum(quorum)?;
        }
        config.controller_listen = self.controller_listen.clone();
        if let Some(roles) = &self.process_roles {
            config.process_roles = Some(weir_broker::ProcessRoles::parse(roles)?);
        }
        config.check_roles()?;
        config.advertise = match &self.advertise {
            Some(a) => Some(a.clone()),
            None => default_advertise(&self.listen),
        };
        Ok(config)
    }
}

/// Listening on every interface says nothing about where clients should
/// connect, so advertise this host's name, as Kafka does.
fn default_advertise(listen: &str) -> Option<String> {
    let (host, port) = listen.rsplit_once(':')?;
    let unspecified = host.is_empty() || host == "0.0.0.0" || host == "[::]" || host == "::";
    if !unspecified {
        return None;
    }
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    Some(format!("{}:{port}", name.trim()))
}

pub async fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = args.broker_config()?;
    if !config.roles().broker {
        let controller = ControllerNode::start(config)
            .await
            .context("starting the controller")?;
        wait_for_shutdown_signal().await?;
        return controller
            .shutdown()
            .await
            .context("stopping the controller");
    }
    let broker = Broker::start(config).await.context("starting the broker")?;
    wait_for_shutdown_signal().await?;
    broker.shutdown().await.context("stopping the broker")?;
    Ok(())
}

/// Waits for SIGTERM (Kubernetes, `docker stop`) or Ctrl-C.
pub async fn wait_for_shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
    }
    tracing::info!("shutting down");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_settings;

    #[test]
    fn settings_split_at_semicolons_between_settings_only() {
        let jaas = r#"listener.name.s.plain.sasl.jaas.config=m.M required user_a="x;y";"#;
        let got = split_settings(&[
            format!("log.retention.ms=1;{jaas};num.partitions=3"),
            jaas.to_string(),
        ]);
        assert_eq!(got, ["log.retention.ms=1", jaas, "num.partitions=3", jaas]);
    }
}
