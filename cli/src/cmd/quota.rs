//! `weir quota set|remove|list`: client quotas, as `kafka-configs.sh
//! --entity-type users|clients|ips --alter --add-config
//! 'producer_byte_rate=…'` manages them. An entity is a user, a client
//! id, both, or an IP address; each by name or as the default for all.

use weir_client::admin::QuotaChange;
use weir_client::quota::{EntityName, NameMatch, QuotaEntity, QuotaFilter, QuotaKey};

use super::client_args::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct QuotaArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: QuotaCommand,
}

/// Who a quota is for (Kafka's entity types user, client-id and ip).
#[derive(clap::Args, Debug, Clone)]
struct EntityArgs {
    /// A user (the principal's name, without `User:`).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default for every user without a quota of its own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default for every client id without a quota of its own.
    #[arg(long)]
    client_id_default: bool,
    /// An IP address (for connection_creation_rate).
    #[arg(long, conflicts_with = "ip_default")]
    ip: Option<String>,
    /// The default for every address.
    #[arg(long)]
    ip_default: bool,
}

impl EntityArgs {
    fn part(name: &Option<String>, default: bool) -> Option<EntityName> {
        match (name, default) {
            (Some(n), _) => Some(EntityName::Named(n.clone())),
            (None, true) => Some(EntityName::Default),
            (None, false) => None,
        }
    }

    fn entity(&self) -> anyhow::Result<QuotaEntity> {
        let entity = QuotaEntity {
            user: Self::part(&self.user, self.user_default),
            client_id: Self::part(&self.client_id, self.client_id_default),
            ip: Self::part(&self.ip, self.ip_default),
        };
        entity.validate().map_err(|why| {
            anyhow::anyhow!("{why} (name one with --user, --client-id or --ip, or a default)")
        })?;
        Ok(entity)
    }

    /// A filter selecting what the flags name (nothing named: everything).
    fn filter(&self) -> QuotaFilter {
        let entity = QuotaEntity {
            user: Self::part(&self.user, self.user_default),
            client_id: Self::part(&self.client_id, self.client_id_default),
            ip: Self::part(&self.ip, self.ip_default),
        };
        let components = entity
            .parts()
            .into_iter()
            .map(|(t, name)| {
                let how = name.map_or(NameMatch::Default, |n| NameMatch::Exactly(n.into()));
                (t.to_string(), how)
            })
            .collect();
        QuotaFilter {
            components,
            strict: false,
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum QuotaCommand {
    /// Set quotas: KEY=VALUE, keys producer_byte_rate, consumer_byte_rate,
    /// request_percentage, controller_mutation_rate (user, client id) or
    /// connection_creation_rate (ip).
    Set {
        #[command(flatten)]
        entity: EntityArgs,
        #[arg(required = true, value_parser = parse_setting)]
        quotas: Vec<(QuotaKey, f64)>,
    },
    /// Remove quotas by key.
    Remove {
        #[command(flatten)]
        entity: EntityArgs,
        #[arg(required = true, value_parser = parse_key)]
        keys: Vec<QuotaKey>,
    },
    /// Entities with quotas, and their quotas (those the flags name, or all).
    List {
        #[command(flatten)]
        entity: EntityArgs,
    },
}

fn parse_key(name: &str) -> Result<QuotaKey, String> {
    QuotaKey::parse(name.trim()).ok_or_else(|| {
        let known: Vec<&str> = QuotaKey::ALL.iter().map(|k| k.name()).collect();
        format!("unknown quota {name:?}; known: {}", known.join(", "))
    })
}

fn parse_setting(setting: &str) -> Result<(QuotaKey, f64), String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("{setting:?}: expected KEY=VALUE"))?;
    let key = parse_key(key)?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{setting:?}: {value:?} is not a number"))?;
    key.check(value)?;
    Ok((key, value))
}

pub async fn run(args: QuotaArgs) -> anyhow::Result<()> {
    let admin = args.client.admin().await?;
    let (change, verb) = match args.command {
        QuotaCommand::Set { entity, quotas } => (
            QuotaChange {
                entity: entity.entity()?,
                set: quotas,
                remove: Vec::new(),
            },
            "set",
        ),
        QuotaCommand::Remove { entity, keys } => (
            QuotaChange {
                entity: entity.entity()?,
                set: Vec::new(),
                remove: keys,
            },
            "removed",
        ),
        QuotaCommand::List { entity } => {
            let described = admin.describe_client_quotas(&entity.filter()).await?;
            let shown: Vec<String> = described.iter().map(|(e, _)| e.to_string()).collect();
            let width = shown.iter().map(String::len).max().unwrap_or(6).max(6);
            println!("{:<width$}  QUOTAS", "ENTITY");
            for (name, (_, values)) in shown.iter().zip(&described) {
                let values: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                println!("{name:<width$}  {}", values.join(", "));
            }
            return Ok(());
        }
    };
    let outcome = admin
        .alter_client_quotas(std::slice::from_ref(&change), false)
        .await?;
    for result in outcome {
        result?;
    }
    println!("quotas of {}: {verb}", change.entity);
    Ok(())
}
