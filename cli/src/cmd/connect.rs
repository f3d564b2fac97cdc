//! `weir connect`: a Kafka Connect-compatible worker, as Kafka's
//! `connect-distributed.sh` runs one (its worker keys as `--config k=v`).
//! The client subcommands talk to a worker's REST API.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use weir_connect::loggers::{LogLevels, Loggers};
use weir_connect::worker::{Worker, WorkerConfig};

/// `/admin/loggers` changes this process's log filter.
struct ProcessFilter(&'static crate::LogFilter);

impl LogLevels for ProcessFilter {
    fn apply(&self, directives: &str) -> Result<(), String> {
        self.0.replace(directives)
    }
}

use super::broker::wait_for_shutdown_signal;
use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConnectArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The worker group: workers with the same id share connectors and tasks.
    #[arg(long, env = "WEIR_GROUP_ID")]
    group_id: Option<String>,
    /// Where the REST API listens.
    #[arg(long, env = "WEIR_REST_LISTEN", default_value = "0.0.0.0:8083")]
    rest_listen: SocketAddr,
    /// A Kafka Connect worker setting, KEY=VALUE (repeatable), e.g.
    /// `offset.storage.topic=my-offsets` or `key.converter=…`.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

fn parse_config(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--config {kv:?}: expected KEY=VALUE"))?;
            if k.trim().is_empty() {
                bail!("--config {kv:?}: the key is empty");
            }
            Ok((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The name statuses give this worker: `rest.advertised.host.name` and
/// `rest.advertised.port` when set, else the listen address (the host name
/// when it listens on every address).
fn worker_id(props: &BTreeMap<String, String>, listen: SocketAddr) -> String {
    let host = props
        .get("rest.advertised.host.name")
        .cloned()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                std::fs::read_to_string("/etc/hostname")
                    .ok()
                    .map(|h| h.trim().to_string())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into())
            } else {
                listen.ip().to_string()
            }
        });
    let port = props
        .get("rest.advertised.port")
        .cloned()
        .unwrap_or_else(|| listen.port().to_string());
    format!("{host}:{port}")
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let props = parse_config(&args.config)?;
    let group_id = args
        .group_id
        .clone()
        .or_else(|| props.get("group.id").cloned())
        .context("weir connect needs --group-id (the worker group's name)")?;
    let config = WorkerConfig::new(&group_id, props.clone())?;
    let listener = tokio::net::TcpListener::bind(args.rest_listen)
        .await
        .with_context(|| format!("listening on {} for the REST API", args.rest_listen))?;
    let id = worker_id(&props, listener.local_addr()?);
    let client = args.client.config(&format!("connect-{id}"))?;
    let loggers = match crate::LOG_FILTER.get() {
        Some(f) => Loggers::new(&f.initial, Some(Box::new(ProcessFilter(f)))),
        None => Loggers::new("info", None),
    };
    let handle = Worker::start(client, config, id.clone(), Arc::new(loggers))
        .await
        .context("starting the worker")?;
    let app = weir_connect::rest::router(handle.worker.clone());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tracing::info!(worker = %id, group = %group_id, rest = %args.rest_listen, "Connect worker started");
    wait_for_shutdown_signal().await?;
    tracing::info!("stopping the worker: tasks commit and leave the group");
    handle.shutdown().await;
    server.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_and_worker_ids() {
        let p = parse_config(&["a=b=c".into(), "x=".into()]).unwrap();
        assert_eq!(p["a"], "b=c");
        assert_eq!(p["x"], "");
        assert!(parse_config(&["novalue".into()]).is_err());
        let listen: SocketAddr = "127.0.0.1:8083".parse().unwrap();
        assert_eq!(worker_id(&BTreeMap::new(), listen), "127.0.0.1:8083");
        let p = parse_config(&["rest.advertised.host.name=w1".into()]).unwrap();
        assert_eq!(worker_id(&p, listen), "w1:8083");
    }
}
