//! `serve` and `serve_tls` on a real socket: they answer, and return once
//! the shutdown token is cancelled; the TLS listener's certificate files
//! are checked. The only tests that open a socket; everything else drives
//! the router in process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use backhaul_api::{ServerTls, serve_tls};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use crate::helpers::spawn_app;

#[tokio::test]
async fn serve_answers_until_shutdown() {
    let app = spawn_app().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();

    let client = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        shutdown.cancel();
        response
    };
    let server = backhaul_api::serve(listener, app.router.clone(), shutdown.clone());
    let (served, response) = tokio::join!(server, client);

    served.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed after shutdown"
    );
}

/// A throwaway CA and a certificate for `127.0.0.1` it signed, the
/// certificate and key written as PEM files in `dir`: the CA's certificate
/// and the two paths.
fn certificate(dir: &Path) -> (CertificateDer<'static>, PathBuf, PathBuf) {
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_file, key_file) = (dir.join("hub.pem"), dir.join("hub.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (ca.der().clone(), cert_file, key_file)
}

/// `GET /health` over TLS, trusting `ca`; the whole answer.
async fn get_health_over_tls(address: SocketAddr, ca: CertificateDer<'static>) -> String {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(address).await.unwrap();
    let mut stream = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    // The server may close without a TLS close_notify after the answer.
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test]
async fn serve_tls_answers_over_https_beside_a_silent_client_until_shutdown() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert_file, key_file) = certificate(dir.path());
    let tls = ServerTls::from_pem_files(&cert_file, &key_file).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();

    let client = async {
        // Connects and never starts its handshake: the next client's
        // handshake must not wait behind it.
        let _silent = TcpStream::connect(address).await.unwrap();
        let response = get_health_over_tls(address, ca).await;
        // Plain HTTP on the TLS port gets no HTTP answer.
        let mut plain = TcpStream::connect(address).await.unwrap();
        plain
            .write_all(b"GET /health HTTP/1.1\r\nHost: hub\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = plain.read_to_end(&mut answer).await;
        shutdown.cancel();
        (response, answer)
    };
    let server = serve_tls(listener, tls, app.router.clone(), shutdown.clone());
    let (served, (response, plain)) = tokio::join!(server, client);

    served.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");
    assert!(
        !String::from_utf8_lossy(&plain).contains("200 OK"),
        "plain HTTP is not answered"
    );
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[test]
fn bad_certificate_or_key_files_are_refused_naming_the_setting_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert_file, key_file) = certificate(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_key) = certificate(other.path());
    let missing = dir.path().join("missing.pem");
    let cases = [
        (&missing, &key_file, "cert_file", "cannot read"),
        (
            &key_file,
            &key_file,
            "cert_file",
            "holds no PEM certificate",
        ),
        (
            &cert_file,
            &cert_file,
            "key_file",
            "no readable PEM private key",
        ),
        (&cert_file, &other_key, "key_file", "does not go with"),
    ];
    for (cert, key, field, why) in cases {
        let error = ServerTls::from_pem_files(cert, key).unwrap_err();
        assert_eq!(error.field, field, "{error}");
        assert!(error.message.contains(why), "{error}");
        let named = if field == "cert_file" { cert } else { key };
        assert!(
            error.message.contains(&named.display().to_string()),
            "{error}"
        );
    }
}
