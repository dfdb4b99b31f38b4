//! `serve --tls`: HTTPS on every listener (WinRM's port 5986 style), with rustls on ring.
//!
//! Either a self-signed certificate made at start (for `localhost`, `127.0.0.1`, `::1` and the
//! listen address; a new key every start) or a certificate chain and key the user provides as
//! PEM files (`--tls-cert FILE --tls-key FILE`). The leaf certificate's SHA-256 fingerprint is
//! logged at start so that a client can pin it instead of turning validation off.

use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Where the server's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSetup {
    /// Made at start, valid for these names (DNS names or IP addresses).
    SelfSigned {
        /// The names the certificate is valid for.
        names: Vec<String>,
    },
    /// PEM files: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1 or
    /// SEC1).
    Files {
        /// The PEM certificate chain, leaf first.
        cert: PathBuf,
        /// The PEM private key of the leaf.
        key: PathBuf,
    },
}

impl TlsSetup {
    /// The self-signed default: loopback names plus `extra` (e.g. the listen address).
    pub fn self_signed(extra: &[String]) -> TlsSetup {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(|s| (*s).to_string())
            .collect();
        for e in extra {
            if !e.is_empty() && !names.contains(e) && e != "0.0.0.0" && e != "::" {
                names.push(e.clone());
            }
        }
        TlsSetup::SelfSigned { names }
    }
}

/// A ready TLS server side.
#[derive(Clone)]
pub struct Tls {
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// The leaf certificate, DER.
    pub certificate: CertificateDer<'static>,
    /// The leaf certificate as PEM (what a client can trust or pin).
    pub certificate_pem: String,
    /// SHA-256 of the leaf certificate's DER: upper-case hex pairs joined by `:`, the form
    /// `openssl x509 -fingerprint -sha256` prints.
    pub fingerprint: String,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of `der`, as `AB:CD:…`.
pub fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A certificate as PEM text, with `\n` line ends (what `openssl x509` writes).
fn pem_of(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

impl Tls {
    /// Makes or loads the certificate and builds the server side; a bad file is an error
    /// naming it.
    pub fn build(setup: &TlsSetup) -> anyhow::Result<Tls> {
        let (chain, key) = match setup {
            TlsSetup::SelfSigned { names } => {
                let made = rcgen::generate_simple_self_signed(names.clone())
                    .map_err(|e| anyhow::anyhow!("making a self-signed certificate: {e}"))?;
                let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
                (vec![made.cert.der().clone()], key)
            }
            TlsSetup::Files { cert, key } => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|e| {
                        anyhow::anyhow!("reading certificates from {}: {e}", cert.display())
                    })?;
                if chain.is_empty() {
                    anyhow::bail!("{} holds no PEM certificate", cert.display());
                }
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                    anyhow::anyhow!("reading a private key from {}: {e}", key.display())
                })?;
                (chain, key)
            }
        };
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no certificate"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| anyhow::anyhow!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("certificate and key do not make a TLS identity: {e}"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            fingerprint: fingerprint(&leaf),
            certificate_pem: pem_of(&leaf),
            certificate: leaf,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_names_and_fingerprint() {
        let setup = TlsSetup::self_signed(&["0.0.0.0".into(), "10.1.2.3".into()]);
        assert_eq!(
            setup,
            TlsSetup::SelfSigned {
                names: vec![
                    "localhost".into(),
                    "127.0.0.1".into(),
                    "::1".into(),
                    "10.1.2.3".into()
                ]
            }
        );
        let tls = Tls::build(&setup).expect("self-signed");
        assert_eq!(tls.fingerprint.len(), 32 * 3 - 1);
        assert_eq!(tls.fingerprint, fingerprint(tls.certificate.as_ref()));
        assert!(
            tls.certificate_pem
                .starts_with("-----BEGIN CERTIFICATE-----\n")
        );
        let back = CertificateDer::from_pem_slice(tls.certificate_pem.as_bytes()).expect("pem");
        assert_eq!(back, tls.certificate);
        // A new key and certificate each time.
        assert_ne!(
            Tls::build(&setup).expect("again").fingerprint,
            tls.fingerprint
        );
    }

    #[test]
    fn missing_or_wrong_files_are_errors() {
        let e = Tls::build(&TlsSetup::Files {
            cert: "/nonexistent/cert.pem".into(),
            key: "/nonexistent/key.pem".into(),
        })
        .expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/cert.pem"), "{e}");
    }
}
