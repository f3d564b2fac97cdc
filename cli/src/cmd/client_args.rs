//! Flags shared by every command that talks to brokers.

use std::time::Duration;

use anyhow::Context;
use weir_client::ClientConfig;
use weir_client::admin::Admin;

#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT…].
    #[arg(
        long = "bootstrap-server",
        env = "WEIR_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap_server: String,
    /// How long one request to a broker may take, in milliseconds.
    #[arg(
        long,
        env = "WEIR_REQUEST_TIMEOUT_MS",
        default_value_t = 30_000,
        global = true
    )]
    pub request_timeout_ms: u64,
    /// A Kafka client properties file (`security.protocol`,
    /// `sasl.mechanism`, `sasl.jaas.config`…), as Kafka's tools take it.
    #[arg(long, env = "WEIR_COMMAND_CONFIG", global = true)]
    pub command_config: Option<std::path::PathBuf>,
}

impl ClientArgs {
    pub fn config(&self, client_id: &str) -> anyhow::Result<ClientConfig> {
        let (sasl, tls) = match &self.command_config {
            None => (None, None),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading --command-config {}", path.display()))?;
                let props = parse_properties(&text);
                let context = || format!("--command-config {}", path.display());
                (
                    weir_client::sasl::Credentials::from_properties(&props)
                        .with_context(context)?,
                    weir_client::tls::TlsSettings::from_properties(&props).with_context(context)?,
                )
            }
        };
        Ok(ClientConfig {
            client_id: client_id.to_string(),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            sasl,
            tls,
            ..ClientConfig::new(self.bootstrap_server.as_str())
        })
    }

    pub async fn admin(&self) -> anyhow::Result<Admin> {
        // The client's own error already says which address and why.
        Ok(Admin::connect(self.config("weir-admin")?).await?)
    }
}

/// A Java properties file: `key=value` or `key: value` lines, `#` and `!`
/// comments, a trailing `\` continuing the line.
pub fn parse_properties(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            pending.push_str(head);
            continue;
        }
        pending.push_str(line);
        let entry = std::mem::take(&mut pending);
        let split = entry.find(['=', ':']);
        if let Some(at) = split {
            let (k, v) = (entry[..at].trim(), entry[at + 1..].trim());
            if !k.is_empty() {
                out.insert(k.to_owned(), v.to_owned());
            }
        }
    }
    out
}

/// Parses `k=v` pairs given with `--config`/`--header`.
pub fn parse_pairs(pairs: &[String], what: &str) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .with_context(|| format!("{what} {p:?} is not KEY=VALUE"))?;
            anyhow::ensure!(!k.is_empty(), "{what} {p:?} has an empty key");
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// 1234567 → "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_thousands() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }

    #[test]
    fn reads_kafka_client_properties() {
        let props = parse_properties(
            "# a comment\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism: SCRAM-SHA-512\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"alice\" password=\"a=b\";\n",
        );
        assert_eq!(props["sasl.mechanism"], "SCRAM-SHA-512");
        let creds = weir_client::sasl::Credentials::from_properties(&props)
            .unwrap()
            .unwrap();
        assert_eq!(
            (creds.username.as_str(), creds.password.as_str()),
            ("alice", "a=b")
        );
    }

    #[test]
    fn parses_pairs() {
        let p = parse_pairs(&["a=b".into(), "c=d=e".into()], "--config").unwrap();
        assert_eq!(
            p,
            vec![("a".into(), "b".into()), ("c".into(), "d=e".into())]
        );
        assert!(
            parse_pairs(&["nope".into()], "--config")
                .unwrap_err()
                .to_string()
                .contains("KEY=VALUE")
        );
    }
}
