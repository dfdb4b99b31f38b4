//! HTTPS (`serve --tls`): a rustls client that trusts only the simulator's own certificate
//! (self-signed, made at start) or only the CA of a provided certificate; plain HTTP on the
//! TLS port gets no answer; the binary's ready line shows https URLs and its log the
//! certificate's SHA-256 fingerprint.

use crate::support::*;
use replica_sim::TlsSetup;

/// SHA-256 of `der` as `AB:CD:…`, computed here rather than by the code under test.
fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};

fn addr_of(sim: &replica_sim::SimHandle, host: &str) -> SocketAddr {
    *sim.addrs().get(host).expect("host listens")
}

fn roots(certs: &[CertificateDer<'static>]) -> RootCertStore {
    let mut r = RootCertStore::empty();
    for c in certs {
        r.add(c.clone()).expect("a usable trust anchor");
    }
    r
}

/// Identify over HTTPS, validating the server against `roots` for the name 127.0.0.1.
/// Returns the whole HTTP answer.
async fn https_identify(addr: SocketAddr, roots: RootCertStore) -> std::io::Result<String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let head = format!(
        "POST /wsman HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/soap+xml;charset=UTF-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        basic(ADMIN.0, ADMIN.1),
        identify_body().len()
    );
    tls.write_all(head.as_bytes()).await?;
    tls.write_all(identify_body().as_bytes()).await?;
    tls.flush().await?;
    let mut out = Vec::new();
    // A server may close without close_notify after `Connection: close`; what came counts.
    if let Err(e) = tls.read_to_end(&mut out).await
        && out.is_empty()
    {
        return Err(e);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn self_signed_certificate_serves_https_to_a_client_that_trusts_it() {
    within(30, async {
        let mut config = config();
        config.tls = Some(TlsSetup::self_signed(&[]));
        let sim = start_with(config).await;
        assert!(sim.url("HV-REPLICA").starts_with("https://127.0.0.1:"));
        let tls = sim.tls().expect("serving TLS");
        assert_eq!(tls.fingerprint, fingerprint(tls.certificate.as_ref()));
        let addr = addr_of(&sim, "HV-REPLICA");

        let answer = https_identify(addr, roots(std::slice::from_ref(&tls.certificate)))
            .await
            .expect("TLS handshake and answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("IdentifyResponse"), "{answer}");

        // A client that does not trust the certificate refuses the handshake.
        let refused = https_identify(addr, RootCertStore::empty()).await;
        assert!(refused.is_err(), "{refused:?}");

        // Plain HTTP on the TLS port: no HTTP answer, and the server goes on.
        let mut plain = TcpStream::connect(addr).await.expect("connect");
        let _ = plain
            .write_all(b"POST /wsman HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await;
        let mut got = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut got)).await;
        assert!(!got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        let again = https_identify(addr, roots(std::slice::from_ref(&tls.certificate)))
            .await
            .expect("still serving");
        assert!(again.starts_with("HTTP/1.1 200"));
    })
    .await;
}

/// A CA and a leaf for localhost/127.0.0.1 signed by it; returns (CA DER, leaf PEM, key PEM,
/// leaf DER).
fn ca_and_leaf() -> (
    CertificateDer<'static>,
    String,
    String,
    CertificateDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "replica-sim test CA");
    let ca_key = KeyPair::generate().expect("CA key");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    (
        ca_cert.der().clone(),
        leaf.pem(),
        leaf_key.serialize_pem(),
        leaf.der().clone(),
    )
}

#[tokio::test]
async fn a_provided_certificate_is_served_and_validates_against_its_ca() {
    within(30, async {
        let (ca, leaf_pem, key_pem, leaf_der) = ca_and_leaf();
        let dir = super::support::scratch_dir("files");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &leaf_pem).expect("cert file");
        std::fs::write(&key, &key_pem).expect("key file");
        let mut config = config();
        config.tls = Some(TlsSetup::Files {
            cert: cert.clone(),
            key: key.clone(),
        });
        let sim = start_with(config).await;
        let tls = sim.tls().expect("serving TLS");
        assert_eq!(tls.certificate, leaf_der);
        assert_eq!(tls.fingerprint, fingerprint(leaf_der.as_ref()));
        let answer = https_identify(addr_of(&sim, "HV-PRIMARY"), roots(&[ca]))
            .await
            .expect("validates against the CA");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

        // A key that is not the certificate's, or a file that is not PEM: refused at start.
        let other = dir.join("other.pem");
        std::fs::write(
            &other,
            rcgen::KeyPair::generate().expect("key").serialize_pem(),
        )
        .expect("other key");
        let mut bad = crate::support::config();
        bad.tls = Some(TlsSetup::Files {
            cert: cert.clone(),
            key: other,
        });
        let err = replica_sim::Sim::start_with(bad)
            .await
            .err()
            .expect("mismatched key refused");
        assert!(
            format!("{err:#}").contains("certificate and key"),
            "{err:#}"
        );
        let mut bad = crate::support::config();
        bad.tls = Some(TlsSetup::Files {
            cert: key.clone(),
            key,
        });
        let err = replica_sim::Sim::start_with(bad)
            .await
            .err()
            .expect("no certificate refused");
        assert!(format!("{err:#}").contains("no PEM certificate"), "{err:#}");
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}

#[test]
fn serve_tls_announces_https_and_logs_the_fingerprint() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_replica-sim"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls"])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("replica-sim starts");
    let line = super::support::read_ready_line(&mut child, 20);
    let _ = child.kill();
    let out = child.wait_with_output().expect("exit");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ready: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: `{line}`\n{stderr}"));
    for host in ["HV-PRIMARY", "HV-REPLICA"] {
        let url = ready["hosts"][host].as_str().unwrap_or_default();
        assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    }
    let fp = stderr
        .lines()
        .find(|l| l.contains("TLS certificate"))
        .and_then(|l| l.split("sha256=").nth(1))
        .map(|f| f.split_whitespace().next().unwrap_or_default().to_string())
        .unwrap_or_else(|| panic!("no fingerprint logged:\n{stderr}"));
    assert_eq!(fp.len(), 95, "{fp}");
    assert!(
        fp.split(':')
            .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()))
    );
}
