//! TLS on `SSL` listeners, with rustls. A listener's certificate chain and
//! private key come from one PEM file, as Kafka's PEM keystore holds them:
//! `listener.name.<name>.ssl.keystore.location`, else
//! `ssl.keystore.location` (with `ssl.keystore.type=PEM`).
//!
//! The file is read again when it changes (checked at most once per
//! [`RECHECK`], on a new connection), so a rotated certificate is served
//! without a restart; connections already open keep theirs. A file that
//! no longer reads as a keystore leaves the last good one in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// How often, at most, the keystore's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(1);

/// Reads a PEM keystore: its certificate chain and private key.
fn load(keystore: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let shown = keystore.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(keystore)
        .map_err(|e| format!("ssl keystore {shown}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("ssl keystore {shown}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ssl keystore {shown} holds no certificate"));
    }
    let key = PrivateKeyDer::from_pem_file(keystore)
        .map_err(|e| format!("ssl keystore {shown} holds no usable private key: {e}"))?;
    CertifiedKey::from_der(certs, key, provider).map_err(|e| format!("ssl keystore {shown}: {e}"))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The listener's certificate, read again when its file changes.
#[derive(Debug)]
struct Keystore {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    modified: Option<SystemTime>,
    checked: Instant,
}

impl Keystore {
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let now = modified(&self.path);
            if now != state.modified {
                state.modified = now;
                match load(&self.path, &self.provider) {
                    Ok(key) => {
                        tracing::info!(keystore = %self.path.display(), "TLS certificate reloaded");
                        state.key = Arc::new(key);
                    }
                    Err(e) => tracing::warn!(error = %e, "keeping the previous TLS certificate"),
                }
            }
        }
        Arc::clone(&state.key)
    }
}

impl ResolvesServerCert for Keystore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The acceptor for a listener, from its keystore file; the error names
/// the file and what is wrong with it.
pub fn acceptor(keystore: &Path) -> Result<TlsAcceptor, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let modified = modified(keystore);
    let key = load(keystore, &provider)?;
    let resolver = Keystore {
        path: keystore.to_path_buf(),
        provider: Arc::clone(&provider),
        state: Mutex::new(Loaded {
            key: Arc::new(key),
            modified,
            checked: Instant::now(),
        }),
    };
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(TlsAcceptor::from(Arc::new(config)))
}
