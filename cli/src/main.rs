//! `weir`: one binary for every role. Each subcommand lives in `cmd/`; this
//! file only parses the command line, sets up logging and dispatches.

mod cmd;

use std::io::IsTerminal;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The filter the process started with and a handle to replace it, for
/// roles that change log levels at run time (`weir connect`'s
/// `/admin/loggers`).
pub struct LogFilter {
    pub initial: String,
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogFilter {
    pub fn replace(&self, directives: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(directives).map_err(|e| format!("{directives:?}: {e}"))?;
        self.handle.reload(filter).map_err(|e| e.to_string())
    }
}

pub static LOG_FILTER: OnceLock<LogFilter> = OnceLock::new();

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "Kafka-compatible streaming platform for Kubernetes"
)]
struct Cli {
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `weir_broker=debug`.
    #[arg(long, env = "WEIR_LOG", default_value = "info", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a broker.
    Broker(cmd::broker::BrokerArgs),
    /// Run a whole local platform on this machine (no Kubernetes needed).
    Dev(cmd::dev::DevArgs),
    /// Create, list, describe, alter and delete topics.
    Topic(cmd::topic::TopicArgs),
    /// Produce records read from standard input, one per line.
    Produce(cmd::produce::ProduceArgs),
    /// Consume records and print them to standard output.
    Consume(cmd::consume::ConsumeArgs),
    /// List and describe consumer groups, with lag.
    Group(cmd::group::GroupArgs),
    /// List, describe and abort transactions; a partition's producers.
    Txn(cmd::txn::TxnArgs),
    /// SCRAM users: create (or set a password), delete, list.
    User(cmd::user::UserArgs),
    /// ACLs, with kafka-acls.sh's flags: add, list, remove.
    Acl(cmd::acl::AclArgs),
    /// Client quotas (byte rates, request time) per user and client id: set, remove, list.
    Quota(cmd::quota::QuotaArgs),
    /// Cluster operations: drain a broker, list partition reassignments.
    Cluster(cmd::cluster::ClusterArgs),
    /// Measure produce and consume throughput and latency.
    Bench(cmd::bench::BenchArgs),
    /// Run a Kafka Connect-compatible worker (REST API on 8083).
    Connect(cmd::connect::ConnectArgs),
    /// The Kubernetes operator: run it, print its CRDs, or render what it would create.
    Operator(cmd::operator::OperatorArgs),
}

/// Keeps a malformed request from aborting the process (see the module docs).
#[global_allocator]
static ALLOCATOR: weir_broker::alloc::LazyHugeAlloc = weir_broker::alloc::LazyHugeAlloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the causes, no backtrace: this is for people.
            eprintln!("error: {}", error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, `outer: cause: …`. A cause an
/// outer message already ends with (thiserror's `"{path}: {source}"`) is
/// not repeated.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let (filter, handle) = reload::Layer::new(EnvFilter::try_new(&cli.log)?);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    let _ = LOG_FILTER.set(LogFilter {
        initial: cli.log.clone(),
        handle,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Broker(args) => cmd::broker::run(args).await,
            Command::Dev(args) => cmd::dev::run(args).await,
            Command::Topic(args) => cmd::topic::run(args).await,
            Command::Produce(args) => cmd::produce::run(args).await,
            Command::Consume(args) => cmd::consume::run(args).await,
            Command::Group(args) => cmd::group::run(args).await,
            Command::Txn(args) => cmd::txn::run(args).await,
            Command::User(args) => cmd::user::run(args).await,
            Command::Acl(args) => cmd::acl::run(args).await,
            Command::Quota(args) => cmd::quota::run(args).await,
            Command::Cluster(args) => cmd::cluster::run(args).await,
            Command::Connect(args) => cmd::connect::run(args).await,
            Command::Bench(args) => cmd::bench::run(args).await,
            Command::Operator(args) => cmd::operator::run(args).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("metadata file /data/meta.properties: {source}")]
    struct Quoting {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_is_named_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "Permission denied");
        let e = anyhow::Error::new(Quoting { source: io }).context("starting the broker");
        assert_eq!(
            error_line(&e),
            "starting the broker: metadata file /data/meta.properties: Permission denied"
        );
        let plain = anyhow::anyhow!("no such topic").context("describing orders");
        assert_eq!(error_line(&plain), "describing orders: no such topic");
    }
}
