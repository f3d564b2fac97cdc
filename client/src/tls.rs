//! TLS to `SSL` and `SASL_SSL` listeners, with rustls, from Kafka's client
//! properties: the brokers' CA from `ssl.truststore.location` (a PEM file,
//! `ssl.truststore.type=PEM`) or librdkafka's `ssl.ca.location`, else the
//! system's roots; a client certificate (for brokers that ask for one)
//! from `ssl.keystore.location` (a PEM file with the chain and the key) or
//! librdkafka's `ssl.certificate.location` with `ssl.key.location`; and
//! `ssl.endpoint.identification.algorithm` (`https`, the default, checks
//! that the certificate names the host dialled; empty skips that check
//! but still verifies the chain).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{Error, Result};

/// How to secure connections: the rustls config every connection shares.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}

fn config_error(what: impl std::fmt::Display) -> Error {
    Error::Config(what.to_string())
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>> {
    let shown = path.display();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| config_error(format!("{key} {shown}: {e}")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| config_error(format!("{key} {shown}: {e}")))?;
    if certs.is_empty() {
        return Err(config_error(format!("{key} {shown} holds no certificate")));
    }
    Ok(certs)
}

fn read_key(path: &Path, key: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        config_error(format!(
            "{key} {} holds no usable private key: {e}",
            path.display()
        ))
    })
}

impl TlsSettings {
    /// From Kafka client properties; `None` unless `security.protocol` is
    /// `SSL` or `SASL_SSL`. Errors name the property and file at fault.
    pub fn from_properties(props: &BTreeMap<String, String>) -> Result<Option<TlsSettings>> {
        let protocol = props
            .get("security.protocol")
            .map(|p| p.trim().to_ascii_uppercase())
            .unwrap_or_default();
        if protocol != "SSL" && protocol != "SASL_SSL" {
            return Ok(None);
        }
        let get = |k: &str| props.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        for key in ["ssl.truststore.type", "ssl.keystore.type"] {
            if let Some(t) = get(key)
                && !t.eq_ignore_ascii_case("PEM")
            {
                return Err(config_error(format!(
                    "{key} {t}: only PEM files are read (convert a JKS or PKCS12 store with keytool or openssl)"
                )));
            }
        }
        let mut roots = RootCertStore::empty();
        match (get("ssl.truststore.location"), get("ssl.ca.location")) {
            (Some(path), _) => add_roots(&mut roots, Path::new(path), "ssl.truststore.location")?,
            (None, Some(path)) => add_roots(&mut roots, Path::new(path), "ssl.ca.location")?,
            (None, None) => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(config_error(
                        "no CA to verify brokers with: set ssl.truststore.location (or ssl.ca.location) to a PEM file",
                    ));
                }
            }
        }
        let identity = match (
            get("ssl.keystore.location"),
            get("ssl.certificate.location"),
            get("ssl.key.location"),
        ) {
            (Some(path), _, _) => {
                let path = Path::new(path);
                let key = "ssl.keystore.location";
                Some((read_certs(path, key)?, read_key(path, key)?))
            }
            (None, Some(cert), Some(key)) => Some((
                read_certs(Path::new(cert), "ssl.certificate.location")?,
                read_key(Path::new(key), "ssl.key.location")?,
            )),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(config_error(
                    "ssl.certificate.location and ssl.key.location go together",
                ));
            }
            (None, None, None) => None,
        };
        let check_host = match get("ssl.endpoint.identification.algorithm") {
            None => props.get("ssl.endpoint.identification.algorithm").is_none(),
            Some(a) if a.eq_ignore_ascii_case("https") => true,
            Some(a) if a.eq_ignore_ascii_case("none") => false,
            Some(other) => {
                return Err(config_error(format!(
                    "ssl.endpoint.identification.algorithm {other:?}: expected https or empty"
                )));
            }
        };
        Self::new(roots, identity, check_host).map(Some)
    }

    /// From PEM files: the CA certificates to verify brokers with, and
    /// optionally a keystore (chain, then key) to present; `what` names
    /// the settings in errors.
    pub fn from_files(
        truststore: &Path,
        keystore: Option<&Path>,
        check_host: bool,
        what: &str,
    ) -> Result<TlsSettings> {
        let mut roots = RootCertStore::empty();
        add_roots(&mut roots, truststore, &format!("{what} truststore"))?;
        let identity = match keystore {
            Some(path) => {
                let key = format!("{what} keystore");
                Some((read_certs(path, &key)?, read_key(path, &key)?))
            }
            None => None,
        };
        Self::new(roots, identity, check_host)
    }

    /// The rustls config connections are made with.
    pub fn rustls_config(&self) -> Arc<rustls::ClientConfig> {
        Arc::clone(&self.config)
    }

    /// From a CA set, an optional client chain and key, and whether the
    /// broker's certificate must name the host dialled.
    pub fn new(
        roots: RootCertStore,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
        check_host: bool,
    ) -> Result<TlsSettings> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| config_error(format!("TLS: {e}")))?;
        let verifier: Arc<dyn ServerCertVerifier> = if check_host {
            verifier
        } else {
            Arc::new(AnyHost(verifier))
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let config = match identity {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| config_error(format!("TLS client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsSettings {
            config: Arc::new(config),
        })
    }

    /// The connector, and the name to verify `addr`'s certificate against.
    pub(crate) fn connector(
        &self,
        addr: &str,
    ) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>)> {
        let host = match addr.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => addr,
        };
        let name = ServerName::try_from(host.to_string()).map_err(|e| Error::Connect {
            addr: addr.to_string(),
            reason: format!("{host:?} is not a host name TLS can verify: {e}"),
        })?;
        Ok((
            tokio_rustls::TlsConnector::from(Arc::clone(&self.config)),
            name,
        ))
    }
}

fn add_roots(roots: &mut RootCertStore, path: &Path, key: &str) -> Result<()> {
    for cert in read_certs(path, key)? {
        roots
            .add(cert)
            .map_err(|e| config_error(format!("{key} {}: {e}", path.display())))?;
    }
    Ok(())
}

/// Verifies the chain as WebPKI does but accepts any host name in it
/// (`ssl.endpoint.identification.algorithm=` empty, as Kafka allows).
#[derive(Debug)]
struct AnyHost(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHost {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
