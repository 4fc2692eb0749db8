//! One rustls client configuration for every sink that speaks TLS: the system's trust store or
//! the configured CA, and a client certificate for mutual TLS.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::config::TlsConfig;

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `require_roots`: without a CA file the system's store must have certificates (an http://
/// URL needs none).
fn read_certs(path: &std::path::Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))
}

pub fn client_config(tls: &TlsConfig, require_roots: bool) -> Result<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            let certs = read_certs(path, "the CA file")?;
            if certs.is_empty() {
                bail!("{}: no certificate in it", path.display());
            }
            for c in certs {
                roots.add(c).with_context(|| format!("{}: unusable CA certificate", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // Odd certificates in a system store are skipped, as every TLS client does.
                let _ = roots.add(c);
            }
            if roots.is_empty() && require_roots {
                bail!("no CA certificates in the system trust store; set tls.ca_file");
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS set-up")?
        .with_root_certificates(roots);
    Ok(match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "the client certificate")?;
            let key = PrivateKeyDer::from_pem_file(key).with_context(|| {
                format!("cannot read the client key {} (PEM, PKCS#8, PKCS#1 or SEC1)", key.display())
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .context("the client certificate and key do not fit together")?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => bail!("tls: cert_file and key_file go together"),
    })
}

/// The name the server's certificate must carry: the configured one, or the host of `address`.
pub fn server_name(tls: &TlsConfig, host: &str) -> Result<rustls_pki_types::ServerName<'static>> {
    let name = tls.server_name.as_deref().unwrap_or(host);
    rustls_pki_types::ServerName::try_from(name.to_owned())
        .with_context(|| format!("`{name}` is not a valid TLS server name"))
}
