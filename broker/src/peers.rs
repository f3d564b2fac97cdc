//! How a node secures its own connections to other nodes: to brokers'
//! inter-broker listener (follower fetches, transaction markers), with the
//! TLS and SASL its protocol asks for, and on the quorum port, mutual TLS
//! when `controller.listener.names` names an SSL listener. A broker is then
//! the principal its certificate or login says (Kafka's inter-broker
//! principal), which a cluster with an authorizer names in `super.users`.

use std::sync::Arc;
use std::time::Duration;

use weir_client::conn::Connection;
use weir_client::sasl::Credentials;
use weir_client::tls::TlsSettings;
use weir_quorum::tcp::QuorumTls;

use crate::config::BrokerConfig;
use crate::listeners::Listeners;

/// How this broker dials the inter-broker listener of another.
#[derive(Debug, Clone, Default)]
pub struct PeerClient {
    tls: Option<TlsSettings>,
    sasl: Option<Credentials>,
}

impl PeerClient {
    /// From the inter-broker listener's protocol; the error names the key
    /// that is missing or wrong.
    pub fn for_inter_broker(config: &BrokerConfig, listeners: &Listeners) -> Result<Self, String> {
        let name = &listeners.inter_broker;
        let protocol = listeners
            .protocols
            .get(name)
            .map_or("PLAINTEXT", String::as_str);
        let tls = protocol
            .ends_with("SSL")
            .then(|| config.peer_tls(name))
            .transpose()
            .map_err(|e| e.to_string())?;
        let sasl = protocol
            .starts_with("SASL_")
            .then(|| config.inter_broker_sasl(name))
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(PeerClient { tls, sasl })
    }

    /// A connection to `addr`, through TLS and the login when the
    /// listener has them.
    pub async fn connect(
        &self,
        addr: &str,
        client_id: &str,
        timeout: Duration,
    ) -> weir_client::Result<Arc<Connection>> {
        let conn = Connection::connect_with(addr, client_id, timeout, self.tls.as_ref()).await?;
        if let Some(creds) = &self.sasl {
            weir_client::sasl::authenticate(&conn, creds, timeout).await?;
        }
        Ok(conn)
    }
}

/// Mutual TLS for the quorum port, when `controller.listener.names` makes
/// it SSL: the listener's keystore and CA, every peer made to present a
/// certificate the CA signed.
pub fn quorum_tls(config: &BrokerConfig) -> Result<Option<QuorumTls>, String> {
    let Some(name) = config.quorum_tls_listener().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let mut settings = config
        .listener_tls(&name, false)
        .map_err(|e| e.to_string())?;
    if settings.truststore.is_none() {
        return Err(format!(
            "controller.listener.names {name}: the quorum port checks every peer's certificate, so it needs the CA: set ssl.truststore.location or listener.name.{}.ssl.truststore.location",
            name.to_ascii_lowercase()
        ));
    }
    settings.client_auth = crate::tls::ClientAuth::Required;
    let server = Arc::new(crate::tls::ListenerTls::new(settings)?);
    let client = config.peer_tls(&name).map_err(|e| e.to_string())?;
    Ok(Some(QuorumTls {
        acceptor: Arc::new(move || server.acceptor()),
        connector: tokio_rustls::TlsConnector::from(client.rustls_config()),
    }))
}
