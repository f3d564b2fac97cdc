//! SASL: the mechanisms Kafka brokers offer that Weir speaks (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512), a client's credentials as Kafka's
//! client properties spell them, and the client side of the exchange
//! (SaslHandshake v1, then SaslAuthenticate for each token).

pub mod jaas;
pub mod scram;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;

use crate::conn::Connection;
use crate::error::{Error, Result};
use scram::{ScramClient, ScramHash};

/// A SASL mechanism, by Kafka's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 3] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// A mechanism by name; the error says which names are known, and
    /// that Kafka's others (GSSAPI, OAUTHBEARER) are not served.
    pub fn parse(name: &str) -> std::result::Result<Mechanism, String> {
        let upper = name.trim().to_ascii_uppercase();
        Self::ALL
            .into_iter()
            .find(|m| m.name() == upper)
            .ok_or_else(|| {
                let known = Self::ALL.map(Mechanism::name).join(", ");
                match upper.as_str() {
                    "GSSAPI" | "OAUTHBEARER" => {
                        format!(
                            "SASL mechanism {upper} is not supported by Weir (it speaks {known})"
                        )
                    }
                    _ => format!("unknown SASL mechanism {name:?} (expected one of {known})"),
                }
            })
    }

    /// The SCRAM hash, for the SCRAM mechanisms.
    pub fn scram(self) -> Option<ScramHash> {
        match self {
            Mechanism::Plain => None,
            Mechanism::ScramSha256 => Some(ScramHash::Sha256),
            Mechanism::ScramSha512 => Some(ScramHash::Sha512),
        }
    }

    /// Kafka's ScramMechanism code in Alter/DescribeUserScramCredentials.
    pub fn scram_code(self) -> i8 {
        match self {
            Mechanism::Plain => 0,
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    pub fn from_scram_code(code: i8) -> Option<Mechanism> {
        match code {
            1 => Some(Mechanism::ScramSha256),
            2 => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }
}

impl std::fmt::Display for Mechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who the client logs in as.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// From Kafka client properties (`security.protocol`, `sasl.mechanism`,
    /// and `sasl.jaas.config` or librdkafka's `sasl.username` /
    /// `sasl.password`). `None` for a PLAINTEXT client.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Option<Credentials>> {
        let protocol = props
            .get("security.protocol")
            .map(|p| p.trim().to_ascii_uppercase())
            .unwrap_or_else(|| "PLAINTEXT".into());
        match protocol.as_str() {
            // TLS without SASL: `crate::tls` reads the ssl.* properties.
            "PLAINTEXT" | "SSL" => return Ok(None),
            "SASL_PLAINTEXT" | "SASL_SSL" => {}
            other => {
                return Err(Error::Config(format!(
                    "unknown security.protocol {other:?} (expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
                )));
            }
        }
        let mechanism = props
            .get("sasl.mechanism")
            .ok_or_else(|| {
                Error::Config(format!("security.protocol {protocol} needs sasl.mechanism"))
            })
            .and_then(|m| Mechanism::parse(m).map_err(Error::Config))?;
        let from_jaas = match props.get("sasl.jaas.config") {
            Some(text) => {
                let entry = jaas::parse(text).map_err(Error::Config)?;
                entry
                    .options
                    .get("username")
                    .cloned()
                    .zip(entry.options.get("password").cloned())
            }
            None => None,
        };
        let (username, password) = from_jaas
            .or_else(|| {
                props
                    .get("sasl.username")
                    .cloned()
                    .zip(props.get("sasl.password").cloned())
            })
            .ok_or_else(|| {
                Error::Config(
                    "SASL needs a username and password: sasl.jaas.config with username=\"…\" password=\"…\", or sasl.username and sasl.password".into(),
                )
            })?;
        Ok(Some(Credentials {
            mechanism,
            username,
            password,
        }))
    }
}

/// PLAIN's one token: `authzid NUL authcid NUL password` (RFC 4616), with
/// no separate authorization id, as Kafka's clients send it.
pub fn plain_token(username: &str, password: &str) -> Vec<u8> {
    format!("\0{username}\0{password}").into_bytes()
}

/// Logs in on a fresh connection: SaslHandshake, then the mechanism's
/// tokens in SaslAuthenticate requests. A refusal is the broker's
/// `SASL_AUTHENTICATION_FAILED` with its message.
pub async fn authenticate(conn: &Connection, creds: &Credentials, timeout: Duration) -> Result<()> {
    let handshake = SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_static_str(creds.mechanism.name()));
    let answer = conn.send_version(&handshake, 1, timeout).await?;
    if answer.error_code != 0 {
        let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(Error::kafka(
            answer.error_code,
            Some(format!("the broker offers {}", offered.join(", "))),
            format!(
                "SASL handshake for {} with {}",
                creds.mechanism,
                conn.addr()
            ),
        ));
    }
    let step = |token: Vec<u8>| async move {
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let version = conn.version_for::<SaslAuthenticateRequest>()?;
        let answer = conn.send_version(&request, version, timeout).await?;
        if answer.error_code != 0 {
            return Err(Error::kafka(
                answer.error_code,
                answer.error_message.map(|m| m.to_string()),
                format!("SASL {} login as {:?}", creds.mechanism, creds.username),
            ));
        }
        Ok(answer.auth_bytes)
    };
    let protocol_error = |reason: String| Error::Protocol {
        addr: conn.addr().to_owned(),
        reason: format!("SASL {}: {reason}", creds.mechanism),
    };
    match creds.mechanism.scram() {
        None => {
            step(plain_token(&creds.username, &creds.password)).await?;
        }
        Some(hash) => {
            let mut client = ScramClient::new(hash, &creds.username, &creds.password);
            let server_first = step(client.first().into_bytes()).await?;
            let server_first = std::str::from_utf8(&server_first)
                .map_err(|_| protocol_error("the server's first message is not UTF-8".into()))?;
            let last = client.answer(server_first).map_err(protocol_error)?;
            let server_final = step(last.into_bytes()).await?;
            let server_final = std::str::from_utf8(&server_final)
                .map_err(|_| protocol_error("the server's final message is not UTF-8".into()))?;
            client.verify(server_final).map_err(protocol_error)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn credentials_come_from_kafkas_client_properties() {
        assert_eq!(Credentials::from_properties(&props(&[])).unwrap(), None);
        let jaas = Credentials::from_properties(&props(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="s3cret";"#,
            ),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(jaas.mechanism, Mechanism::ScramSha512);
        assert_eq!(
            (jaas.username.as_str(), jaas.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(!format!("{jaas:?}").contains("s3cret"));
        let rdkafka = Credentials::from_properties(&props(&[
            ("security.protocol", "sasl_plaintext"),
            ("sasl.mechanism", "plain"),
            ("sasl.username", "bob"),
            ("sasl.password", "pw"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(rdkafka.mechanism, Mechanism::Plain);
        for (bad, why) in [
            (
                vec![("security.protocol", "SASL_PLAINTEXT")],
                "sasl.mechanism",
            ),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "GSSAPI"),
                ],
                "not supported",
            ),
            (
                vec![
                    ("security.protocol", "SASL_PLAINTEXT"),
                    ("sasl.mechanism", "PLAIN"),
                ],
                "username and password",
            ),
            (
                vec![("security.protocol", "SASL_SSL")],
                "SASL_SSL needs sasl.mechanism",
            ),
            (
                vec![("security.protocol", "KERBEROS")],
                "unknown security.protocol",
            ),
        ] {
            let err = Credentials::from_properties(&props(&bad))
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn mechanisms_by_name_and_code() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::parse(&m.name().to_lowercase()), Ok(m));
        }
        assert_eq!(Mechanism::from_scram_code(2), Some(Mechanism::ScramSha512));
        assert_eq!(Mechanism::from_scram_code(0), None);
        assert_eq!(plain_token("u", "p"), b"\0u\0p");
    }
}
