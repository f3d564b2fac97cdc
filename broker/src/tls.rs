//! TLS on `SSL` and `SASL_SSL` listeners, with rustls. A listener's
//! certificate chain and private key come from one PEM file, as Kafka's PEM
//! keystore holds them: `listener.name.<name>.ssl.keystore.location`, else
//! `ssl.keystore.location` (with `ssl.keystore.type=PEM`).
//!
//! Client certificates (mutual TLS) follow `ssl.client.auth`: `none` asks
//! for none, `requested` checks one if the client sends it, `required`
//! refuses a client without one. They are checked against the CA
//! certificates of the PEM truststore (`ssl.truststore.location`, with
//! `ssl.truststore.type=PEM`). On an SSL listener a verified certificate's
//! subject, mapped by `ssl.principal.mapping.rules`, is the principal
//! (`User:<name>`); without one it is `User:ANONYMOUS`.
//!
//! Both files are read again when they change (checked at most once per
//! [`RECHECK`], on a new connection), so a rotated certificate or CA is in
//! force without a restart; connections already open keep theirs. A file
//! that no longer reads leaves the last good one in place.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::principal_mapping::PrincipalMapper;

/// How often, at most, a file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// `ssl.client.auth`: whether clients are asked for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    /// Kafka's values, in either case.
    pub fn parse(value: &str) -> Result<ClientAuth, String> {
        match value.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            _ => Err("expected none, requested or required".into()),
        }
    }
}

/// What a listener's TLS is made of (from the broker config).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub keystore: PathBuf,
    pub client_auth: ClientAuth,
    /// The CA certificates client certificates are checked against; set
    /// whenever `client_auth` is not `None`.
    pub truststore: Option<PathBuf>,
    /// On listeners without SASL: how a certificate's subject becomes the
    /// principal.
    pub principal_mapper: PrincipalMapper,
}

/// Reads a PEM keystore: its certificate chain and private key.
fn load_keystore(keystore: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let shown = keystore.display();
    let certs = read_certificates(keystore, "keystore")?;
    let key = PrivateKeyDer::from_pem_file(keystore)
        .map_err(|e| format!("ssl keystore {shown} holds no usable private key: {e}"))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| format!("ssl keystore {shown}: {e}"))
}

/// The certificates of a PEM file (at least one).
fn read_certificates(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("ssl {what} {shown}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ssl {what} {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ssl {what} {shown} holds no certificate"));
    }
    Ok(certs)
}

/// Reads a PEM truststore: the CA certificates it holds, every one usable.
fn load_truststore(truststore: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(truststore, "truststore")? {
        roots.add(cert).map_err(|e| {
            format!(
                "ssl truststore {}: a certificate cannot be a trust anchor: {e}",
                truststore.display()
            )
        })?;
    }
    Ok(Arc::new(roots))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A value read from a file, read again when the file's modification
/// time changes.
#[derive(Debug)]
struct Watched<T> {
    path: PathBuf,
    /// What the file holds, for the log.
    what: &'static str,
    state: Mutex<Loaded<T>>,
}

#[derive(Debug)]
struct Loaded<T> {
    value: T,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl<T: Clone> Watched<T> {
    fn new(path: &Path, what: &'static str, value: T, modified: Option<SystemTime>) -> Self {
        Watched {
            path: path.to_path_buf(),
            what,
            state: Mutex::new(Loaded {
                value,
                modified,
                checked: Instant::now(),
            }),
        }
    }

    /// The value, read again first if the file changed since.
    fn current(&self, load: impl FnOnce(&Path) -> Result<T, String>) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let now = modified(&self.path);
            if now != state.modified {
                state.modified = now;
                match load(&self.path) {
                    Ok(value) => {
                        tracing::info!(file = %self.path.display(), "TLS {} reloaded", self.what);
                        state.value = value;
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the previous TLS {}", self.what),
                }
            }
        }
        state.value.clone()
    }
}

/// The listener's certificate, read again when its file changes.
#[derive(Debug)]
struct Keystore {
    file: Watched<Arc<CertifiedKey>>,
    provider: Arc<CryptoProvider>,
}

impl ResolvesServerCert for Keystore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.file
                .current(|path| load_keystore(path, &self.provider).map(Arc::new)),
        )
    }
}

/// A listener's TLS: the acceptor for its next connection and the
/// principal a client certificate gives.
pub struct ListenerTls {
    keystore: Arc<Keystore>,
    provider: Arc<CryptoProvider>,
    client_auth: ClientAuth,
    acceptor: Acceptor,
    principal_mapper: PrincipalMapper,
    /// Subjects refused so far (each is warned about once, as a client
    /// that retries would otherwise fill the log).
    refused: Mutex<HashSet<String>>,
}

/// How many refused subjects are remembered before they are warned about
/// again.
const REFUSED_REMEMBERED: usize = 1024;

/// A client certificate that gives no principal.
#[derive(Debug)]
pub struct Refused {
    pub reason: String,
    /// Whether this subject was refused before (and warned about then).
    pub seen_before: bool,
}

enum Acceptor {
    /// No client certificates: the configuration never changes (the
    /// keystore is read again by its resolver).
    Fixed(TlsAcceptor),
    /// Checked against a truststore: rebuilt when it changes.
    Trusting(Watched<TlsAcceptor>),
}

impl ListenerTls {
    /// The listener's TLS from its settings; the error names the file and
    /// what is wrong with it.
    pub fn new(settings: TlsSettings) -> Result<ListenerTls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let modified_at = modified(&settings.keystore);
        let key = load_keystore(&settings.keystore, &provider)?;
        let keystore = Arc::new(Keystore {
            file: Watched::new(
                &settings.keystore,
                "certificate",
                Arc::new(key),
                modified_at,
            ),
            provider: Arc::clone(&provider),
        });
        let configure = |roots| build(&provider, &keystore, settings.client_auth, roots);
        let acceptor = match (&settings.truststore, settings.client_auth) {
            (truststore, ClientAuth::None) => {
                // Kafka reads a truststore that is set even when it asks
                // for no client certificate: an unreadable one is refused.
                if let Some(truststore) = truststore {
                    load_truststore(truststore)?;
                }
                Acceptor::Fixed(configure(None)?)
            }
            (Some(truststore), _) => {
                let modified_at = modified(truststore);
                let acceptor = configure(Some(load_truststore(truststore)?))?;
                Acceptor::Trusting(Watched::new(
                    truststore,
                    "truststore",
                    acceptor,
                    modified_at,
                ))
            }
            (None, _) => {
                return Err("client certificates are asked for but no truststore is set".into());
            }
        };
        Ok(ListenerTls {
            keystore,
            provider,
            client_auth: settings.client_auth,
            acceptor,
            principal_mapper: settings.principal_mapper,
            refused: Mutex::new(HashSet::new()),
        })
    }

    /// The acceptor for a new connection (with the truststore as it is
    /// now).
    pub fn acceptor(&self) -> TlsAcceptor {
        match &self.acceptor {
            Acceptor::Fixed(acceptor) => acceptor.clone(),
            Acceptor::Trusting(file) => file.current(|path| {
                let roots = load_truststore(path)?;
                build(
                    &self.provider,
                    &self.keystore,
                    self.client_auth,
                    Some(roots),
                )
            }),
        }
    }

    /// The principal of a client on a listener without SASL: its verified
    /// certificate's subject mapped by `ssl.principal.mapping.rules`
    /// (`User:<name>`), or `User:ANONYMOUS` without a certificate. A
    /// subject no rule maps is refused, as Kafka refuses it.
    pub fn principal(
        &self,
        certificates: Option<&[CertificateDer<'_>]>,
    ) -> Result<String, Refused> {
        let Some(leaf) = certificates.and_then(<[_]>::first) else {
            return Ok(crate::sasl::ANONYMOUS.to_owned());
        };
        let (subject, reason) = match crate::x500::subject_name(leaf) {
            Err(reason) => (String::new(), reason),
            Ok(subject) => match self.principal_mapper.map(&subject) {
                Some(name) => return Ok(format!("User:{name}")),
                None => {
                    let reason = format!(
                        "no rule of ssl.principal.mapping.rules applies to the client certificate's subject {subject:?}"
                    );
                    (subject, reason)
                }
            },
        };
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REFUSED_REMEMBERED {
            refused.clear();
        }
        let seen_before = !refused.insert(subject);
        Err(Refused {
            reason,
            seen_before,
        })
    }
}

/// A server configuration serving `keystore`'s certificate that checks
/// client certificates against `roots` (none: asks for no certificate).
fn build(
    provider: &Arc<CryptoProvider>,
    keystore: &Arc<Keystore>,
    client_auth: ClientAuth,
    roots: Option<Arc<RootCertStore>>,
) -> Result<TlsAcceptor, String> {
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match roots {
        None => builder.with_no_client_auth(),
        Some(roots) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, Arc::clone(provider));
            let verifier = match client_auth {
                ClientAuth::Requested => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("ssl truststore: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let resolver: Arc<dyn ResolvesServerCert> = Arc::clone(keystore) as _;
    Ok(TlsAcceptor::from(Arc::new(
        builder.with_cert_resolver(resolver),
    )))
}
