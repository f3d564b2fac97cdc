//! SASL on `SASL_PLAINTEXT` and `SASL_SSL` listeners: PLAIN, SCRAM-SHA-256
//! and SCRAM-SHA-512, as Kafka brokers serve them (SaslHandshake v1, then
//! the tokens in SaslAuthenticate), with KIP-368 re-authentication.
//!
//! [`Session`] is one connection's state, decided without I/O: which
//! requests it may send now, and the answers to its handshake and tokens.
//! Until a client has logged in it may send only ApiVersions and the SASL
//! requests, in frames no larger than `sasl.server.max.receive.size`;
//! anything else closes the connection, as Kafka does. A failed login is
//! answered `SASL_AUTHENTICATION_FAILED` and the connection closed.
//!
//! PLAIN checks the `user_<name>="password"` entries of the listener's
//! `plain.sasl.jaas.config` (Kafka's); a listener without one checks the
//! password against the user's SCRAM credential instead (Weir's), so one
//! set of users serves both.

mod plain;
pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use weir_client::sasl::Mechanism;
use weir_client::sasl::scram::{ScramHash, StoredCredential};
use weir_quorum::MetadataImage;
use weir_quorum::records::ScramMechanism;

pub use plain::parse_plain;
use scram::{ScramError, ScramServer};

/// The principal of a client that has not logged in (Kafka's).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// One SASL listener's settings.
#[derive(Clone)]
pub struct ListenerSasl {
    pub mechanisms: Vec<Mechanism>,
    /// PLAIN's users from the listener's JAAS config; `None` checks PLAIN
    /// passwords against SCRAM credentials.
    pub plain_users: Option<BTreeMap<String, String>>,
    /// `connections.max.reauth.ms`; `None` (0): sessions do not expire.
    pub max_reauth: Option<Duration>,
    /// `sasl.server.max.receive.size`: the largest frame before login.
    pub max_receive: usize,
    /// Salts the made-up challenges for unknown users (random per broker).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for ListenerSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerSasl")
            .field("mechanisms", &self.mechanisms)
            .field("max_reauth", &self.max_reauth)
            .finish_non_exhaustive()
    }
}

/// Where users' SCRAM credentials come from (the metadata image).
pub trait CredentialStore {
    fn scram(&self, user: &str, hash: ScramHash) -> Option<StoredCredential>;
}

/// The image's stored SCRAM mechanism for a hash, and back.
pub fn stored_mechanism(hash: ScramHash) -> ScramMechanism {
    match hash {
        ScramHash::Sha256 => ScramMechanism::Sha256,
        ScramHash::Sha512 => ScramMechanism::Sha512,
    }
}

pub fn hash_of(m: ScramMechanism) -> ScramHash {
    match m {
        ScramMechanism::Sha256 => ScramHash::Sha256,
        ScramMechanism::Sha512 => ScramHash::Sha512,
    }
}

/// SCRAM credentials from the metadata image.
impl CredentialStore for MetadataImage {
    fn scram(&self, user: &str, hash: ScramHash) -> Option<StoredCredential> {
        self.scram_credential(user, stored_mechanism(hash))
            .map(|c| StoredCredential {
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            })
    }
}

enum Stage {
    /// Waiting for SaslHandshake.
    Handshake,
    /// Mechanism chosen; tokens in SaslAuthenticate.
    Exchange(Exchange),
    /// Logged in (perhaps re-authenticating from here).
    Done,
}

enum Exchange {
    Plain,
    Scram(ScramServer),
}

/// One connection's login.
pub struct Session {
    listener: Arc<ListenerSasl>,
    stage: Stage,
    mechanism: Option<Mechanism>,
    /// `User:<name>` once logged in.
    principal: Option<String>,
    /// When the login runs out (KIP-368); a request after it closes the connection.
    expires: Option<Instant>,
}

/// What the connection does after answering a SASL request.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Send the answer, then close (a failed login).
    Close,
}

impl Session {
    pub fn new(listener: Arc<ListenerSasl>) -> Self {
        Session {
            listener,
            stage: Stage::Handshake,
            mechanism: None,
            principal: None,
            expires: None,
        }
    }

    pub fn principal(&self) -> Option<&str> {
        self.principal.as_deref()
    }

    /// The largest frame the client may send now.
    pub fn max_frame(&self, max: usize) -> usize {
        if self.principal.is_some() {
            max
        } else {
            max.min(self.listener.max_receive)
        }
    }

    /// Whether a request of `api` may be handled now; `Err` says why the
    /// connection is closed instead.
    pub fn admit(&self, api: ApiKey, now: Instant) -> Result<(), String> {
        match (api, &self.stage) {
            (ApiKey::ApiVersions, _) => Ok(()),
            (ApiKey::SaslHandshake, Stage::Handshake | Stage::Done) => Ok(()),
            (ApiKey::SaslAuthenticate, Stage::Exchange(_)) => Ok(()),
            (ApiKey::SaslHandshake | ApiKey::SaslAuthenticate, _) => {
                Err(format!("unexpected {api:?} request at this point of the SASL exchange"))
            }
            _ if self.principal.is_none() => Err(format!(
                "unexpected {api:?} request before SASL authentication (log in with SaslHandshake and SaslAuthenticate first)"
            )),
            _ if self.expires.is_some_and(|e| now >= e) => Err(
                "the SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate".into(),
            ),
            _ => Ok(()),
        }
    }

    pub fn handshake(&mut self, req: &SaslHandshakeRequest) -> (SaslHandshakeResponse, After) {
        let mut response = SaslHandshakeResponse::default();
        response.mechanisms = self
            .listener
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_static_str(m.name()))
            .collect();
        let asked = Mechanism::parse(req.mechanism.as_str())
            .ok()
            .filter(|m| self.listener.mechanisms.contains(m));
        let Some(mechanism) = asked else {
            response.error_code = ResponseError::UnsupportedSaslMechanism.code();
            return (response, After::Close);
        };
        // KIP-368: a re-authentication keeps the mechanism it logged in with.
        if self.principal.is_some() && self.mechanism != Some(mechanism) {
            response.error_code = ResponseError::IllegalSaslState.code();
            return (response, After::Close);
        }
        self.mechanism = Some(mechanism);
        self.stage = Stage::Exchange(match mechanism.scram() {
            None => Exchange::Plain,
            Some(hash) => Exchange::Scram(ScramServer::new(hash)),
        });
        (response, After::Continue)
    }

    /// Answers one token. `version` is the request's (v1 carries the
    /// session lifetime).
    pub fn authenticate(
        &mut self,
        req: &SaslAuthenticateRequest,
        store: &dyn CredentialStore,
        now: Instant,
    ) -> (SaslAuthenticateResponse, After) {
        let mechanism = self.mechanism.unwrap_or(Mechanism::Plain);
        let stage = std::mem::replace(&mut self.stage, Stage::Handshake);
        let outcome = match stage {
            Stage::Exchange(Exchange::Plain) => self.plain(&req.auth_bytes, store),
            Stage::Exchange(Exchange::Scram(mut server)) => {
                let hash = mechanism.scram().unwrap_or(ScramHash::Sha512);
                let lookup = |user: &str| store.scram(user, hash);
                let nonce = weir_client::sasl::scram::nonce();
                match server.step(&req.auth_bytes, &lookup, &nonce, &self.listener.secret) {
                    Ok((reply, None)) => {
                        self.stage = Stage::Exchange(Exchange::Scram(server));
                        return (ok_response(reply, 0), After::Continue);
                    }
                    Ok((reply, Some(user))) => Ok((reply, user)),
                    Err(e) => Err(e),
                }
            }
            _ => Err(ScramError::Invalid("no SASL exchange in progress".into())),
        };
        let (reply, user) = match outcome {
            Ok(done) => done,
            Err(e) => return (failed(mechanism, &e), After::Close),
        };
        let principal = format!("User:{user}");
        if self.principal.as_ref().is_some_and(|p| *p != principal) {
            let e = ScramError::Invalid("re-authentication may not change the principal".into());
            return (failed(mechanism, &e), After::Close);
        }
        self.principal = Some(principal);
        self.stage = Stage::Done;
        self.expires = self.listener.max_reauth.map(|d| now + d);
        let lifetime = self
            .listener
            .max_reauth
            .map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64);
        (ok_response(reply, lifetime), After::Continue)
    }

    fn plain(
        &self,
        token: &[u8],
        store: &dyn CredentialStore,
    ) -> Result<(Vec<u8>, String), ScramError> {
        let (user, password) = parse_plain(token).map_err(ScramError::Invalid)?;
        let good = match &self.listener.plain_users {
            Some(users) => users.get(&user).is_some_and(|expected| {
                weir_client::sasl::scram::equal_in_constant_time(
                    expected.as_bytes(),
                    password.as_bytes(),
                )
            }),
            None => plain::matches_scram(&user, &password, store),
        };
        if good {
            Ok((Vec::new(), user))
        } else {
            Err(ScramError::Credentials)
        }
    }
}

fn ok_response(reply: Vec<u8>, lifetime_ms: i64) -> SaslAuthenticateResponse {
    let mut response = SaslAuthenticateResponse::default();
    response.auth_bytes = Bytes::from(reply);
    response.session_lifetime_ms = lifetime_ms;
    response
}

fn failed(mechanism: Mechanism, e: &ScramError) -> SaslAuthenticateResponse {
    let mut response = SaslAuthenticateResponse::default();
    response.error_code = ResponseError::SaslAuthenticationFailed.code();
    // Kafka's wording, which clients show; never the password.
    let message = match e {
        ScramError::Credentials => format!(
            "Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}"
        ),
        ScramError::Invalid(why) => format!("Authentication failed: {why}"),
    };
    response.error_message = Some(StrBytes::from_string(message));
    response
}

#[cfg(test)]
mod tests;
