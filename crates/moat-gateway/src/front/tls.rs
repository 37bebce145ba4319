//! TLS for the HTTP front with rustls: HTTP/2 by ALPN, and a certificate that reloads
//! without a restart (the files are re-read when they change).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use moat_config::SecretRef;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(10);

/// Accepts TLS connections with the current certificate.
#[derive(Clone)]
pub struct TlsAcceptor(tokio_rustls::TlsAcceptor);

impl TlsAcceptor {
    pub async fn accept(
        &self,
        stream: tokio::net::TcpStream,
    ) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
        self.0.accept(stream).await
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS certificate `{0}`: {1}")]
    Cert(String, String),
    #[error("cannot read TLS key `{0}`: {1}")]
    Key(String, String),
    #[error("TLS setup failed: {0}")]
    Rustls(String),
}

#[derive(Debug)]
struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load(cert: &SecretRef, key: &SecretRef, base: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = cert.resolve(base).map_err(|e| TlsError::Cert(cert.to_string(), e.reason))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.expose())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Cert(cert.to_string(), e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(cert.to_string(), "no PEM certificate in it".into()));
    }
    let key_pem = key.resolve(base).map_err(|e| TlsError::Key(key.to_string(), e.reason))?;
    let der = rustls_pemfile::private_key(&mut key_pem.expose())
        .map_err(|e| TlsError::Key(key.to_string(), e.to_string()))?
        .ok_or_else(|| TlsError::Key(key.to_string(), "no PEM private key in it".into()))?;
    let signing =
        provider().key_provider.load_private_key(der).map_err(|e| TlsError::Key(key.to_string(), e.to_string()))?;
    let ck = CertifiedKey::new(certs, signing);
    // A reload that catches the certificate and key half-written must not serve a mismatched
    // pair: keep the old one until both match.
    ck.keys_match().map_err(|e| TlsError::Key(key.to_string(), format!("does not match the certificate: {e}")))?;
    Ok(ck)
}

fn mtimes(refs: &[&SecretRef], base: &Path) -> Vec<Option<SystemTime>> {
    refs.iter()
        .map(|r| match r {
            SecretRef::File(p) => {
                let full: PathBuf = if p.is_absolute() { p.clone() } else { base.join(p) };
                std::fs::metadata(full).and_then(|m| m.modified()).ok()
            }
            SecretRef::Env(_) => None,
        })
        .collect()
}

/// Builds the acceptor and starts watching the files for a new certificate.
pub fn acceptor(cert: SecretRef, key: SecretRef, base: PathBuf) -> Result<TlsAcceptor, TlsError> {
    let first = load(&cert, &key, &base)?;
    let resolver = Arc::new(Resolver { current: RwLock::new(Arc::new(first)) });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver.clone());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let weak = Arc::downgrade(&resolver);
    tokio::spawn(async move {
        let mut seen = mtimes(&[&cert, &key], &base);
        loop {
            tokio::time::sleep(RELOAD_CHECK).await;
            let Some(resolver) = weak.upgrade() else { return };
            let now = mtimes(&[&cert, &key], &base);
            if now == seen {
                continue;
            }
            seen = now;
            match load(&cert, &key, &base) {
                Ok(ck) => {
                    if let Ok(mut g) = resolver.current.write() {
                        *g = Arc::new(ck);
                    }
                    tracing::info!(cert = %cert, "TLS certificate reloaded");
                }
                Err(e) => tracing::error!(error = %e, "new TLS certificate not loaded; keeping the current one"),
            }
        }
    });
    Ok(TlsAcceptor(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}
