//! Serving certificate: load and check at start-up, serve through a resolver whose pair a
//! background task swaps when the files' content changes.
//!
//! Why content and not mtime: a Secret mounted by the kubelet is a set of symlinks
//! (`tls.crt -> ..data/tls.crt`, `..data -> ..2024_01_01_00_00_00.123`); a rotation atomically
//! re-points `..data`, so the path we were given keeps its mtime (it is a symlink we never
//! stat) while what it resolves to changes. Re-reading through the path on every poll follows
//! the new `..data`; hashing the bytes tells whether anything changed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::server::auth::{certificate_identity, ClientCertificate};
use crate::server::metrics::Metrics;

/// Why a certificate/key pair cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("cannot read {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why (shown inline, so it is not also a `source` that would print twice).
        error: std::io::Error,
    },
    /// The certificate file is not PEM or holds no certificate.
    #[error("{path} holds no PEM certificate{detail}")]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// Parser detail, if any.
        detail: String,
    },
    /// The key file holds no PEM private key.
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1){detail}")]
    NoKey {
        /// The file.
        path: PathBuf,
        /// Parser detail, if any.
        detail: String,
    },
    /// The key is not the certificate's.
    #[error("the private key in {key} does not belong to the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key or certificate cannot be used (unsupported algorithm, unparsable certificate).
    #[error("{key} cannot serve {cert}: {error}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// The TLS configuration cannot be built.
    #[error("cannot configure TLS: {0}")]
    Config(rustls::Error),
    /// The client CA bundle (`--api-client-ca`) cannot be used.
    #[error("the API client CA cannot be used: {0}")]
    ClientCa(String),
}

/// Reads `--api-client-ca`: the PEM certificates that sign API client certificates. Read once
/// at start-up (a CA bundle changes rarely; a restart picks up a new one).
pub fn load_client_roots(path: &Path) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let pem = std::fs::read(path).map_err(|error| TlsError::Read {
        path: path.to_owned(),
        error,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| TlsError::NoCertificate {
            path: path.to_owned(),
            detail: format!(": {e}"),
        })?;
        roots
            .add(cert)
            .map_err(|e| TlsError::ClientCa(format!("{}: {e}", path.display())))?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            detail: String::new(),
        });
    }
    Ok(Arc::new(roots))
}

/// The certificate and key paths, as given (re-resolved on every read).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The ring provider, chosen explicitly so no process-wide default is needed or guessed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Raw bytes of both files, read once so that the hash and the parsed pair describe the same
/// content.
struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Material {
    fn read(files: &TlsFiles) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|error| TlsError::Read {
                path: path.to_owned(),
                error,
            })
        };
        Ok(Self {
            cert: read(&files.cert)?,
            key: read(&files.key)?,
        })
    }

    fn digest(&self) -> ContentDigest {
        let mut hasher = Sha256::new();
        hasher.update((self.cert.len() as u64).to_be_bytes());
        hasher.update(&self.cert);
        hasher.update(&self.key);
        ContentDigest(hasher.finalize().into())
    }

    fn certified_key(
        &self,
        files: &TlsFiles,
        provider: &CryptoProvider,
    ) -> Result<CertifiedKey, TlsError> {
        let chain = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::NoCertificate {
                path: files.cert.clone(),
                detail: format!(": {e}"),
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: files.cert.clone(),
                detail: String::new(),
            });
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key).map_err(|e| TlsError::NoKey {
            path: files.key.clone(),
            detail: match e {
                rustls::pki_types::pem::Error::NoItemsFound => String::new(),
                other => format!(": {other}"),
            },
        })?;
        CertifiedKey::from_der(chain, key, provider).map_err(|error| match error {
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                TlsError::KeyMismatch {
                    cert: files.cert.clone(),
                    key: files.key.clone(),
                }
            }
            error => TlsError::Unusable {
                cert: files.cert.clone(),
                key: files.key.clone(),
                error,
            },
        })
    }
}

/// Identifies the content of both files, so the watcher knows what is being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentDigest([u8; 32]);

/// A checked pair and the content it came from.
pub struct Loaded {
    /// The pair, ready to serve.
    pub key: CertifiedKey,
    /// What the files held.
    pub digest: ContentDigest,
}

/// Reads and checks the pair: certificate chain parses, key parses, key matches the leaf.
pub fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<Loaded, TlsError> {
    let material = Material::read(files)?;
    Ok(Loaded {
        key: material.certified_key(files, provider)?,
        digest: material.digest(),
    })
}

/// A hex SHA-256 of the leaf certificate, for logs (matches `openssl x509 -fingerprint -sha256`
/// up to formatting).
pub fn leaf_fingerprint(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|leaf| {
            Sha256::digest(leaf.as_ref())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        })
        .unwrap_or_default()
}

/// Hands every handshake the current pair; the reload task swaps it. A connection keeps the
/// pair it was established with, so swapping never disturbs connections in flight.
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert").finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Starts serving `initial`.
    pub fn new(initial: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Arc::new(initial)),
        }
    }

    fn swap(&self, next: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// TLS 1.2 and 1.3 only (rustls has nothing older), ALPN h2 then http/1.1 (the API server
/// speaks HTTP/2 to webhooks when offered).
pub fn server_config(
    resolver: Arc<ReloadingCert>,
    provider: Arc<CryptoProvider>,
) -> Result<ServerConfig, TlsError> {
    server_config_with_clients(resolver, provider, None)
}

/// [`server_config`] that also asks clients for a certificate (hinting `client_certs`' CAs)
/// without requiring one: the API server's admission calls carry none. A certificate that is
/// presented must be the client's (the handshake signature is verified), but the handshake
/// does not judge its chain; [`ClientCertCheck::examine`] does, afterwards, for the API alone
/// (see `server::auth` for why).
pub fn server_config_with_clients(
    resolver: Arc<ReloadingCert>,
    provider: Arc<CryptoProvider>,
    client_certs: Option<&ClientCertCheck>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?;
    let builder = match client_certs {
        None => builder.with_no_client_auth(),
        Some(check) => builder.with_client_cert_verifier(Arc::new(RequestClientCert {
            ca: Arc::clone(&check.verifier),
        })),
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Judges API client certificates against `--api-client-ca`: chains to it, valid now, issued
/// for client authentication (webpki's checks, the same a requiring handshake would make).
#[derive(Debug, Clone)]
pub struct ClientCertCheck {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCertCheck {
    /// A check against `roots` (from [`load_client_roots`]).
    pub fn new(
        roots: Arc<rustls::RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
        Ok(Self { verifier })
    }

    /// What the chain a client presented (leaf first) says: who it names when the CA signed it
    /// and it is valid now, else why not.
    pub fn examine(&self, chain: &[CertificateDer<'_>]) -> ClientCertificate {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return ClientCertificate::Refused("no certificate in the chain".to_owned());
        };
        if let Err(error) = self
            .verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
        {
            return ClientCertificate::Refused(describe_certificate_error(&error));
        }
        match certificate_identity(leaf) {
            Some(requester) => ClientCertificate::Verified(requester),
            None => ClientCertificate::Refused(
                "it has no subject common name (CN) to name the user".to_owned(),
            ),
        }
    }
}

/// Why webpki refused a client certificate, in the terms an operator fixes it by, with
/// rustls' own detail (which dates, which usage).
fn describe_certificate_error(error: &rustls::Error) -> String {
    use rustls::CertificateError as E;
    let hint = match error {
        rustls::Error::InvalidCertificate(E::UnknownIssuer) => {
            "it is not signed by the API's client CA (--api-client-ca)"
        }
        rustls::Error::InvalidCertificate(E::Expired | E::ExpiredContext { .. }) => {
            "it has expired"
        }
        rustls::Error::InvalidCertificate(E::NotValidYet | E::NotValidYetContext { .. }) => {
            "it is not valid yet"
        }
        rustls::Error::InvalidCertificate(E::InvalidPurpose | E::InvalidPurposeContext { .. }) => {
            "it is not issued for client authentication (extended key usage clientAuth)"
        }
        _ => "it does not verify against the API's client CA (--api-client-ca)",
    };
    format!("{hint} ({error})")
}

/// Asks for a client certificate, proves the client holds its key, and leaves judging the chain
/// to [`ClientCertCheck::examine`] after the handshake.
#[derive(Debug)]
struct RequestClientCert {
    /// For the CA names hinted to clients and the handshake signature checks.
    ca: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for RequestClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.ca.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.ca.supported_verify_schemes()
    }
}

/// What one poll saw.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Observation {
    Content(ContentDigest),
    Unreadable(String),
}

/// Polls the files every `interval` until `shutdown` flips, swapping in a new pair when the
/// content changed and is valid. A bad pair keeps the old one, is logged and counted.
///
/// A change is acted on once two consecutive polls read the same content: writers that replace
/// the two files one after the other (not the kubelet, which swaps both at once) would otherwise
/// produce a spurious "key does not match" between the two writes.
pub async fn watch_files(
    files: TlsFiles,
    resolver: Arc<ReloadingCert>,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    interval: Duration,
    serving: ContentDigest,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut applied = Observation::Content(serving);
    let mut previous = applied.clone();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let material = Material::read(&files);
        let seen = match &material {
            Ok(material) => Observation::Content(material.digest()),
            Err(error) => Observation::Unreadable(error.to_string()),
        };
        let settled = seen == previous;
        previous = seen.clone();
        if !settled || seen == applied {
            continue;
        }
        applied = seen;
        let result = material.and_then(|m| m.certified_key(&files, &provider));
        match result {
            Ok(key) => {
                tracing::info!(
                    cert = %files.cert.display(),
                    sha256 = %leaf_fingerprint(&key),
                    "serving certificate reloaded"
                );
                resolver.swap(key);
                metrics.record_tls_reload(true);
            }
            Err(error) => {
                tracing::warn!(%error, "serving certificate not reloaded; keeping the previous one");
                metrics.record_tls_reload(false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::issue;

    fn write_pair(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        std::fs::create_dir_all(dir).unwrap();
        let files = TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rg-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn loads_a_matching_pair() {
        let issued = issue("t", &["localhost".into()], 1, 1).unwrap();
        let files = write_pair(&temp_dir("ok"), &issued.cert_pem, &issued.key_pem);
        let key = load(&files, &provider()).unwrap().key;
        assert_eq!(key.cert.len(), 1);
        assert_eq!(leaf_fingerprint(&key).len(), 64);
    }

    #[test]
    fn refuses_a_key_of_another_certificate_naming_both_files() {
        let a = issue("a", &["localhost".into()], 1, 1).unwrap();
        let b = issue("b", &["localhost".into()], 1, 1).unwrap();
        let files = write_pair(&temp_dir("mismatch"), &a.cert_pem, &b.key_pem);
        let error = load(&files, &provider()).err().unwrap();
        let message = error.to_string();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{message}");
        assert!(
            message.contains("tls.key") && message.contains("tls.crt"),
            "{message}"
        );
    }

    #[test]
    fn names_the_file_that_is_missing_or_not_pem() {
        let issued = issue("t", &["localhost".into()], 1, 1).unwrap();
        let dir = temp_dir("bad");
        let files = write_pair(&dir, "not a certificate", &issued.key_pem);
        let error = load(&files, &provider()).err().unwrap();
        assert!(matches!(error, TlsError::NoCertificate { .. }), "{error}");
        assert!(error.to_string().contains("tls.crt"));

        let files = write_pair(&dir, &issued.cert_pem, "");
        let error = load(&files, &provider()).err().unwrap();
        assert!(matches!(error, TlsError::NoKey { .. }), "{error}");

        let missing = TlsFiles {
            cert: dir.join("absent.crt"),
            key: files.key.clone(),
        };
        let error = load(&missing, &provider()).err().unwrap();
        assert!(error.to_string().contains("absent.crt"), "{error}");
    }
}
