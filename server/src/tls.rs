//! TLS to Redis (`rediss://` URLs), with rustls: the system's root certificates, or a CA file given with
//! `--redis-ca` for servers whose certificates a private CA signed (the common case for Redis).

use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How to verify the server: a PEM bundle of CA certificates, or the system's roots when `None`.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub ca_pem: Option<Vec<u8>>,
}

impl TlsSettings {
    /// Reads a CA bundle (PEM) from `path`.
    pub fn from_ca_file(path: &std::path::Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        anyhow::ensure!(
            CertificateDer::pem_slice_iter(&pem).next().is_some(),
            "{} holds no PEM certificate",
            path.display()
        );
        Ok(TlsSettings { ca_pem: Some(pem) })
    }

    fn connector(&self) -> anyhow::Result<TlsConnector> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    roots.add(cert.context("a CA certificate in the CA file")?)?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsConnector::from(Arc::new(config)))
    }

    /// Wraps a connected socket in TLS, verifying the server as `host`.
    pub async fn connect(
        &self,
        host: &str,
        stream: TcpStream,
    ) -> anyhow::Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_string())
            .with_context(|| format!("{host:?} is not a server name"))?;
        let stream = self
            .connector()?
            .connect(name, stream)
            .await
            .with_context(|| format!("TLS handshake with {host}"))?;
        Ok(stream)
    }

    /// A `redis` crate client for a `rediss://` connection, verifying the server with these settings.
    pub fn client(&self, info: redis::ConnectionInfo) -> redis::RedisResult<redis::Client> {
        let certs = redis::TlsCertificates {
            client_tls: None,
            root_cert: self.ca_pem.clone(),
        };
        redis::Client::build_with_tls(info, certs)
    }
}
