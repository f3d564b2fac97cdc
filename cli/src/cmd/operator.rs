//! `weir operator`: run the operator (no subcommand), or print the CRDs and
//! what the operator would create without a cluster.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use weir_operator::runtime::OperatorOptions;

#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: Option<OperatorCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of the running operator (`weir operator` with no subcommand).
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Namespaces whose Weir resources to manage, comma-separated; all when empty.
    #[arg(
        long = "namespace",
        env = "WEIR_WATCH_NAMESPACES",
        value_delimiter = ',',
        num_args = 0..
    )]
    pub namespaces: Vec<String>,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    #[arg(long, env = "WEIR_HEALTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub health_listen: String,
    /// Take a Lease before reconciling, so several replicas can run.
    #[arg(long, env = "WEIR_LEADER_ELECTION", default_value = "on", value_parser = ["on", "off"])]
    pub leader_election: String,
    #[arg(long, env = "WEIR_LEASE_NAME", default_value = "weir-operator")]
    pub lease_name: String,
    /// Defaults to the operator's own namespace (`WEIR_NAMESPACE`, set by the chart).
    #[arg(long, env = "WEIR_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This replica's name in the Lease; defaults to the pod name.
    #[arg(long, env = "WEIR_IDENTITY")]
    pub identity: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum OperatorCommand {
    /// Print the CustomResourceDefinitions as YAML, or write one file per kind.
    Crds {
        /// Write `cluster.yaml`, `topic.yaml`, … into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print every object the operator would create for the resources in FILE
    /// (like `helm template`; no cluster needed). Review with
    /// `weir operator render -f cluster.yaml | kubectl diff -f -`.
    Render {
        /// YAML file with Cluster, Topic, Connector and StreamApp resources; `-` reads stdin.
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// Namespace for resources that name none.
        #[arg(short = 'n', long, env = "WEIR_NAMESPACE", default_value = "default")]
        namespace: String,
    },
}

pub async fn run(args: OperatorArgs) -> anyhow::Result<()> {
    match args.command {
        None => run_operator(args.run).await,
        Some(OperatorCommand::Crds { out }) => crds(out),
        Some(OperatorCommand::Render { file, namespace }) => render(&file, &namespace),
    }
}

async fn run_operator(args: RunArgs) -> anyhow::Result<()> {
    let identity = args
        .identity
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("weir-operator-{}", std::process::id()));
    let options = OperatorOptions {
        namespaces: args
            .namespaces
            .into_iter()
            .filter(|n| !n.trim().is_empty())
            .collect(),
        health_listen: args.health_listen,
        leader_election: args.leader_election == "on",
        lease_name: args.lease_name,
        lease_namespace: args
            .lease_namespace
            .or_else(|| std::env::var("WEIR_NAMESPACE").ok()),
        identity,
    };
    // SIGTERM (Kubernetes stopping the pod) or Ctrl-C stops it cleanly;
    // without a signal handler it still stops when killed.
    let shutdown = async {
        if super::broker::wait_for_shutdown_signal().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    weir_operator::runtime::serve(options, shutdown)
        .await
        .context("running the operator")
}

fn crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let files = weir_operator::crd::crd_files()?;
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for file in files {
                let path = dir.join(file.file_name);
                std::fs::write(&path, &file.yaml)
                    .with_context(|| format!("writing {}", path.display()))?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
            for file in files {
                print!("---\n{}", file.yaml);
            }
        }
    }
    Ok(())
}

fn render(file: &PathBuf, namespace: &str) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let (resources, mut notes) = weir_operator::render::parse_resources(&text)
        .with_context(|| format!("in {}", file.display()))?;
    let rendered = weir_operator::render::render(&resources, namespace)
        .with_context(|| format!("in {}", file.display()))?;
    notes.extend(rendered.notes.iter().cloned());
    // Notes go to stderr so stdout stays pure YAML for `kubectl diff -f -`.
    for note in notes {
        eprintln!("# {note}");
    }
    print!("{}", rendered.to_yaml()?);
    Ok(())
}
