use std::time::Duration;

/// Settings shared by the admin client, the producer and the consumer.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT` addresses tried in order until one answers; the rest of the
    /// cluster is discovered through Metadata.
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    /// How long one request may take before it fails; also the connect timeout.
    pub request_timeout: Duration,
    /// SASL credentials (a `SASL_PLAINTEXT` listener); `None` connects
    /// without logging in.
    pub sasl: Option<crate::sasl::Credentials>,
    /// TLS (an `SSL` or `SASL_SSL` listener); `None` connects in plain text.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: vec!["127.0.0.1:9092".to_string()],
            client_id: "weir".to_string(),
            request_timeout: Duration::from_secs(30),
            sasl: None,
            tls: None,
        }
    }
}

impl ClientConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        let servers = bootstrap
            .into()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Self {
            bootstrap_servers: servers,
            ..Self::default()
        }
    }
}
