//! `weir user create|delete|list`: SCRAM users, as `kafka-configs.sh
//! --entity-type users --alter --add-config 'SCRAM-SHA-512=[password=…]'`
//! manages them. A user logs in with SCRAM-SHA-256, SCRAM-SHA-512, or
//! PLAIN on a listener without JAAS users (checked against the credential).

use anyhow::Context;
use weir_client::sasl::Mechanism;

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct UserArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(clap::Subcommand, Debug)]
enum UserCommand {
    /// Create a user, or set a new password.
    Create {
        name: String,
        /// The password (also WEIR_USER_PASSWORD, which keeps it out of
        /// the process list).
        #[arg(long, env = "WEIR_USER_PASSWORD", hide_env_values = true)]
        password: String,
        /// SCRAM mechanisms to store a credential for (default both).
        #[arg(long = "mechanism", value_parser = parse_scram)]
        mechanisms: Vec<Mechanism>,
        /// PBKDF2 iterations (Kafka accepts 4096 to 16384).
        #[arg(long, default_value_t = 4096)]
        iterations: i32,
    },
    /// Delete a user's credentials (all of them unless --mechanism).
    Delete {
        name: String,
        #[arg(long = "mechanism", value_parser = parse_scram)]
        mechanisms: Vec<Mechanism>,
    },
    /// Every user with a SCRAM credential, with mechanisms and iterations.
    List,
}

fn parse_scram(name: &str) -> Result<Mechanism, String> {
    let m = Mechanism::parse(name)?;
    m.scram()
        .map(|_| m)
        .ok_or_else(|| format!("{m} is not a SCRAM mechanism (SCRAM-SHA-256 or SCRAM-SHA-512)"))
}

const BOTH: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

pub async fn run(args: UserArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    match args.command {
        UserCommand::Create {
            name,
            password,
            mechanisms,
            iterations,
        } => {
            anyhow::ensure!(!password.is_empty(), "--password must not be empty");
            let mechanisms = if mechanisms.is_empty() {
                BOTH.to_vec()
            } else {
                mechanisms
            };
            for m in &mechanisms {
                admin
                    .upsert_scram_credential(&name, *m, &password, iterations)
                    .await?;
            }
            let names: Vec<&str> = mechanisms.iter().map(|m| m.name()).collect();
            println!("user {name}: {} credential set", names.join(", "));
        }
        UserCommand::Delete { name, mechanisms } => {
            let mechanisms = if mechanisms.is_empty() {
                let users = admin
                    .describe_scram_users(Some(std::slice::from_ref(&name)))
                    .await
                    .with_context(|| format!("looking up user {name:?}"))?;
                users
                    .into_iter()
                    .flat_map(|u| u.credentials.into_iter().map(|(m, _)| m))
                    .collect()
            } else {
                mechanisms
            };
            for m in &mechanisms {
                admin.delete_scram_credential(&name, *m).await?;
            }
            println!("user {name}: deleted");
        }
        UserCommand::List => {
            let users = admin.describe_scram_users(None).await?;
            let width = users.iter().map(|u| u.user.len()).max().unwrap_or(4).max(4);
            println!("{:<width$}  CREDENTIALS", "USER");
            for u in users {
                let creds: Vec<String> = u
                    .credentials
                    .iter()
                    .map(|(m, i)| format!("{m} (iterations {i})"))
                    .collect();
                println!("{:<width$}  {}", u.user, creds.join(", "));
            }
        }
    }
    Ok(())
}
