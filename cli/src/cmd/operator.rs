//! `weir operator`: the CRDs and what the operator would create, printed
//! without a cluster. Running the operator itself is not built yet (issue 3).

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};

#[derive(clap::Args, Debug)]
pub struct OperatorArgs {
    #[command(subcommand)]
    pub command: Option<OperatorCommand>,
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
        None => bail!(
            "running the operator is not built yet; `weir operator crds` and `weir operator render` work"
        ),
        Some(OperatorCommand::Crds { out }) => crds(out),
        Some(OperatorCommand::Render { file, namespace }) => render(&file, &namespace),
    }
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
