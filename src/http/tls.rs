//! TLS with rustls from a certificate and key file, reloaded when they change.
//!
//! The files are checked every second; a changed pair is loaded and used for new
//! handshakes, while connections already open keep theirs (nothing is dropped). A pair
//! that fails to load is reported and the previous one stays in use.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;

/// Why a certificate pair cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the key or the configuration.
    #[error("TLS setup failed: {0}")]
    Rustls(String),
}

/// The current certificate, swapped in place when the files change.
#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// A TLS acceptor whose certificate follows its files.
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<Resolver>,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    /// Loads the pair once; fails with a message naming the file when it is unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Tls>, TlsError> {
        let certified = load_pair(cert, key)?;
        let resolver = Arc::new(Resolver {
            current: RwLock::new(Arc::new(certified)),
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Rustls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
        }))
    }

    /// The acceptor for new connections.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reloads the pair when either file's modification time changes, until the task is
    /// dropped.
    pub async fn watch(self: Arc<Self>) {
        let mut seen = (mtime(&self.cert), mtime(&self.key));
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = (mtime(&self.cert), mtime(&self.key));
            if now == seen {
                continue;
            }
            seen = now;
            match load_pair(&self.cert, &self.key) {
                Ok(certified) => {
                    if let Ok(mut current) = self.resolver.current.write() {
                        *current = Arc::new(certified);
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                }
                Err(e) => {
                    tracing::warn!("TLS certificate not reloaded, keeping the previous one: {e}")
                }
            }
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: &Path, message: String| TlsError::File {
        path: path.to_path_buf(),
        message,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_err(cert, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_err(cert, "no PEM certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_err(key, e.to_string()))?;
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| file_err(key, format!("unusable private key: {e}")))?;
    Ok(CertifiedKey::new(chain, signing_key))
}

/// Writes a self-signed certificate and key for `hosts` (DNS names or IP addresses), for
/// registries that accept one. Returns the certificate PEM. The key is written 0600.
pub fn write_self_signed(hosts: &[String], cert: &Path, key: &Path) -> Result<String, TlsError> {
    let generated = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| TlsError::Rustls(format!("cannot generate a certificate: {e}")))?;
    let cert_pem = generated.cert.pem();
    let key_pem = generated.signing_key.serialize_pem();
    write_file(key, key_pem.as_bytes(), 0o600)?;
    write_file(cert, cert_pem.as_bytes(), 0o644)?;
    Ok(cert_pem)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(mode);
    let _ = mode;
    let mut f = options.open(path).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    f.write_all(bytes).map_err(|e| TlsError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_loads_and_a_bad_one_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        write_self_signed(&["localhost".into(), "127.0.0.1".into()], &cert, &key).unwrap();
        Tls::load(&cert, &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&cert, "not pem").unwrap();
        let e = Tls::load(&cert, &key).err().unwrap().to_string();
        assert!(e.contains("c.pem"), "{e}");
    }
}
