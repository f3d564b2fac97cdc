//! PostgreSQL connectors, shaped as Confluent's JDBC connectors:
//! `weir.postgres.source` polls tables (or one query) into topics, by
//! mode — bulk, incrementing, timestamp, timestamp+incrementing — with the
//! last row seen as the source offset; `weir.postgres.sink` writes Struct
//! records to tables, inserting or upserting (`ON CONFLICT … DO UPDATE`),
//! deleting on tombstones, and creating or widening tables from the
//! records' schemas. Both speak to the server through `tokio-postgres`.

pub mod sink;
pub mod source;
mod values;

use std::str::FromStr;

use tokio_postgres::{Client, NoTls};

use crate::config_def::{ConfigDef, ConfigType, Importance};
use crate::connector::{ConnectorPlugin, ConnectorType, Props, TaskFactory};

pub const SOURCE: ConnectorPlugin = ConnectorPlugin {
    class: "weir.postgres.source",
    aliases: &["PostgresSource", "weir.postgres.PostgresSourceConnector"],
    kind: ConnectorType::Source,
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(source::PostgresSource::default()),
    task: TaskFactory::Source(|| Box::new(source::PostgresSourceTask::default())),
};

pub const SINK: ConnectorPlugin = ConnectorPlugin {
    class: "weir.postgres.sink",
    aliases: &["PostgresSink", "weir.postgres.PostgresSinkConnector"],
    kind: ConnectorType::Sink,
    version: env!("CARGO_PKG_VERSION"),
    connector: || Box::new(sink::PostgresSink::default()),
    task: TaskFactory::Sink(|| Box::new(sink::PostgresSinkTask::default())),
};

/// The connection keys both connectors share.
pub(crate) fn connection_def(def: ConfigDef) -> ConfigDef {
    def.define(
        "connection.url",
        ConfigType::String,
        None,
        Importance::High,
        "The server: postgresql://user:password@host:port/database (a jdbc:postgresql:// URL or libpq key=value pairs also do).",
    )
    .in_group("Connection")
    .define(
        "connection.user",
        ConfigType::String,
        Some(""),
        Importance::High,
        "The user, when not in connection.url.",
    )
    .in_group("Connection")
    .define(
        "connection.password",
        ConfigType::Password,
        Some(""),
        Importance::High,
        "The password, when not in connection.url.",
    )
    .in_group("Connection")
}

/// The client configuration from `connection.url`, `connection.user` and
/// `connection.password`; the error names the key.
pub(crate) fn pg_config(config: &Props) -> Result<tokio_postgres::Config, String> {
    let url = config
        .get("connection.url")
        .map(|u| u.trim())
        .unwrap_or_default();
    if url.is_empty() {
        return Err(
            "Missing required configuration \"connection.url\" which has no default value.".into(),
        );
    }
    let url = url.strip_prefix("jdbc:").unwrap_or(url);
    let mut pg = tokio_postgres::Config::from_str(url).map_err(|e| {
        format!(
            "Invalid value {} for configuration connection.url: not a PostgreSQL URL ({e}); expected postgresql://user:password@host:port/database",
            redact(url)
        )
    })?;
    if pg.get_hosts().is_empty() {
        return Err(format!(
            "Invalid value {} for configuration connection.url: no host",
            redact(url)
        ));
    }
    if let Some(u) = config
        .get("connection.user")
        .filter(|u| !u.trim().is_empty())
    {
        pg.user(u.trim());
    }
    if let Some(p) = config.get("connection.password").filter(|p| !p.is_empty()) {
        pg.password(p.as_str());
    }
    if pg.get_user().is_none() {
        return Err(
            "No user for the PostgreSQL connection: set connection.user or put one in connection.url"
                .into(),
        );
    }
    pg.application_name("weir-connect");
    Ok(pg)
}

/// The URL as errors show it: without the password.
/// What both connectors' `start` refuses: keys of the wrong type, then the
/// connector's own checks (the ones `config/validate` shows per key).
fn start_checked(
    def: &ConfigDef,
    own_errors: Vec<(String, String)>,
    config: &Props,
) -> Result<(), crate::connector::TaskError> {
    def.parse(config)?;
    if own_errors.is_empty() {
        return Ok(());
    }
    let messages: Vec<_> = own_errors.into_iter().map(|(_, m)| m).collect();
    Err(messages.join("; "))
}

fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:[hidden]{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A connected client, its connection driven on the runtime, the session
/// in UTC with ISO dates (so times read and written mean one thing).
pub(crate) async fn connect(config: &tokio_postgres::Config) -> Result<Client, String> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("connecting to PostgreSQL at {}: {e}", where_(config)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection closed");
        }
    });
    client
        .batch_execute("SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'")
        .await
        .map_err(|e| format!("setting up the PostgreSQL session: {e}"))?;
    Ok(client)
}

fn where_(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config
            .get_dbname()
            .unwrap_or(config.get_user().unwrap_or(""))
    )
}

/// A quoted identifier; `schema.table` is quoted part by part.
pub(crate) fn quote_table(name: &str) -> String {
    name.split('.').map(quote).collect::<Vec<_>>().join(".")
}

pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A database error with its detail, as status traces show it.
pub(crate) fn db_error(what: &str, e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{what}: {} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(": ");
                s.push_str(d);
            }
            s
        }
        None => format!("{what}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_props as p;

    #[test]
    fn urls_users_and_redaction() {
        let c = pg_config(&p(&[(
            "connection.url",
            "postgresql://u:secret@127.0.0.1:5433/db",
        )]))
        .unwrap();
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_ports(), [5433]);
        assert_eq!(c.get_dbname(), Some("db"));
        let c = pg_config(&p(&[
            ("connection.url", "jdbc:postgresql://localhost/db"),
            ("connection.user", "other"),
            ("connection.password", "pw"),
        ]))
        .unwrap();
        assert_eq!(c.get_user(), Some("other"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        let e = pg_config(&p(&[("connection.url", "postgresql://localhost/db")])).unwrap_err();
        assert!(e.contains("connection.user"), "{e}");
        let e =
            pg_config(&p(&[("connection.url", "postgresql://u:pw@h:notaport/db")])).unwrap_err();
        assert!(e.contains("connection.url") && !e.contains("pw@"), "{e}");
        assert_eq!(quote_table("public.my\"t"), "\"public\".\"my\"\"t\"");
    }
}
