//! TLS of the outbound clients, against HTTPS servers on a loopback socket
//! with certificates made for the test (a throwaway CA, a server
//! certificate for `127.0.0.1`, a client certificate for mutual TLS):
//! a connector trusting the CA through `tls.ca_file` delivers, one without
//! it fails technically saying the certificate is not trusted, a server
//! that requires a client certificate takes the configured one and refuses
//! a connector without it, a webhook subscriber gets its deliveries over
//! https, and bad TLS files are refused when the connector is built,
//! naming the setting and the file. Each server runs joined with its
//! client in the test's own task, so nothing outlives the test.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use backhaul_connectors::{ConnectorConfig, TlsConfig, build_with_env, plain_http_warnings};
use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_engine::{Sink, SinkError};
use backhaul_sim::{Sim, SimConfig, SimDb, SimKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::helpers::{action, assert_technical, build_one, config, deliver, no_prerequisites};

/// A certificate and its key, as a server or a client holds them.
struct Identity {
    chain: Vec<CertificateDer<'static>>,
    /// The certificate as a PEM file holds it.
    pem: String,
    key: KeyPair,
}

impl Identity {
    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

/// A throwaway PKI in a temporary folder: `ca.pem` (the CA), `client.pem`
/// and `client.key` (a client certificate the CA signed), `stranger.pem`
/// and `stranger.key` (a client certificate from a CA nobody trusts).
struct Pki {
    dir: TempDir,
    ca: CertificateDer<'static>,
    server: Identity,
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> Identity {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, names.first().copied().unwrap_or("hub"));
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Identity {
        chain: vec![cert.der().clone()],
        pem: cert.pem(),
        key,
    }
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let authority = ca("Backhaul test CA");
        let server = leaf(
            &authority,
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = leaf(&authority, &["hub"], ExtendedKeyUsagePurpose::ClientAuth);
        let stranger_ca = ca("Somebody else's CA");
        let stranger = leaf(&stranger_ca, &["hub"], ExtendedKeyUsagePurpose::ClientAuth);
        let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
        write("ca.pem", authority.pem());
        for (name, identity) in [("client", &client), ("stranger", &stranger)] {
            write(&format!("{name}.pem"), identity.pem.clone());
            write(&format!("{name}.key"), identity.key.serialize_pem());
        }
        Pki {
            dir,
            ca: authority.der().clone(),
            server,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The TLS settings trusting the test CA.
    fn trusting(&self) -> TlsConfig {
        TlsConfig {
            ca_file: Some(self.path("ca.pem")),
            ..TlsConfig::default()
        }
    }

    /// The TLS settings trusting the test CA, presenting `name`'s
    /// certificate (`client` or `stranger`).
    fn presenting(&self, name: &str) -> TlsConfig {
        TlsConfig {
            client_cert_file: Some(self.path(&format!("{name}.pem"))),
            client_key_file: Some(self.path(&format!("{name}.key"))),
            ..self.trusting()
        }
    }

    /// A server presenting the server certificate; requiring a client
    /// certificate the test CA signed if `mutual`.
    fn server_config(&self, mutual: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if mutual {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(self.ca.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        Arc::new(
            builder
                .with_single_cert(self.server.chain.clone(), self.server.private_key())
                .unwrap(),
        )
    }
}

/// A TLS listener for `axum::serve`: handshakes one connection at a time
/// (enough for a test) and counts the handshakes it refused.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Serves `router` over HTTPS on a loopback port while `client` runs with
/// the server's base URL; the server stops when the client is done. Gives
/// the client's output and the number of handshakes the server refused.
async fn with_https_server<F, Fut, T>(
    config: Arc<rustls::ServerConfig>,
    router: Router,
    client: F,
) -> (T, usize)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = T>,
{
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", tcp.local_addr().unwrap());
    let refused = Arc::new(AtomicUsize::new(0));
    let listener = TlsListener {
        tcp,
        acceptor: TlsAcceptor::from(config),
        refused: refused.clone(),
    };
    let shutdown = CancellationToken::new();
    let server =
        axum::serve(listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let client = async {
        let out = client(base).await;
        shutdown.cancel();
        out
    };
    let (served, out) = tokio::join!(server, client);
    served.unwrap();
    (out, refused.load(Ordering::SeqCst))
}

/// The ERP simulator's connector at `url` with `tls`.
fn erp_sink(url: &str, tls: Option<TlsConfig>) -> Arc<dyn Sink> {
    let mut section = config(Target::Erp, url);
    section.tls = tls;
    build_one(Target::Erp, section, BTreeMap::new()).unwrap()
}

/// One return order delivered by a connector built with `tls` to the ERP
/// simulator served over HTTPS with `server`, then the connector's health
/// check: both results, and how many handshakes the server refused.
async fn deliver_over_https(
    server: Arc<rustls::ServerConfig>,
    tls: Option<TlsConfig>,
) -> (
    Result<ActionResult, SinkError>,
    Result<(), SinkError>,
    usize,
) {
    let sim = Sim::open(SimConfig::new(SimKind::Erp), SimDb::Memory)
        .await
        .unwrap();
    let order = action(ActionKind::ErpReturnOrder);
    let ((delivered, health), refused) =
        with_https_server(server, sim.router(), |url| async move {
            let sink = erp_sink(&url, tls);
            let delivered = deliver(sink.as_ref(), &order, "tls-1", &no_prerequisites()).await;
            let health = sink.health().await;
            (delivered, health)
        })
        .await;
    (delivered, health, refused)
}

fn message(result: &Result<ActionResult, SinkError>) -> String {
    match result {
        Err(SinkError::Technical { message, .. } | SinkError::Business { message, .. }) => {
            message.clone()
        }
        other => format!("{other:?}"),
    }
}

#[tokio::test]
async fn a_connector_trusting_the_ca_in_its_ca_file_delivers_over_https() {
    let pki = Pki::new();

    let (delivered, health, refused) =
        deliver_over_https(pki.server_config(false), Some(pki.trusting())).await;

    assert_eq!(
        delivered,
        Ok(crate::helpers::document("RO-000001")),
        "{delivered:?}"
    );
    assert_eq!(health, Ok(()));
    assert_eq!(refused, 0);
}

#[tokio::test]
async fn without_the_ca_the_delivery_fails_technically_saying_the_certificate_is_not_trusted() {
    let pki = Pki::new();

    // The Mozilla roots alone: the test CA is not among them.
    let (delivered, health, _) = deliver_over_https(pki.server_config(false), None).await;

    let text = message(&delivered);
    assert_technical(delivered, "tls", None);
    assert!(
        text.contains("certificate is not trusted") && text.contains("tls.ca_file"),
        "{text}"
    );
    assert!(
        matches!(&health, Err(SinkError::Technical { code, message, .. })
            if code == "tls" && message.contains("not trusted")),
        "{health:?}"
    );
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_takes_the_configured_one() {
    let pki = Pki::new();

    let (delivered, health, refused) =
        deliver_over_https(pki.server_config(true), Some(pki.presenting("client"))).await;

    assert_eq!(
        delivered,
        Ok(crate::helpers::document("RO-000001")),
        "{delivered:?}"
    );
    assert_eq!(health, Ok(()));
    assert_eq!(refused, 0);
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_refuses_a_connector_without_one() {
    let pki = Pki::new();

    let (delivered, health, refused) =
        deliver_over_https(pki.server_config(true), Some(pki.trusting())).await;

    let text = message(&delivered);
    assert_technical(delivered, "tls", None);
    assert!(
        text.contains("refused the handshake") && text.contains("tls.client_cert_file"),
        "{text}"
    );
    assert!(health.is_err(), "{health:?}");
    assert!(refused >= 1, "the server refused {refused} handshakes");
}

#[tokio::test]
async fn a_server_requiring_a_client_certificate_refuses_one_its_ca_did_not_sign() {
    let pki = Pki::new();

    let (delivered, _, refused) =
        deliver_over_https(pki.server_config(true), Some(pki.presenting("stranger"))).await;

    assert_technical(delivered, "tls", None);
    assert!(refused >= 1, "the server refused {refused} handshakes");
}

#[tokio::test]
async fn a_webhook_subscriber_receives_its_deliveries_over_https() {
    let pki = Pki::new();
    let hits = Arc::new(AtomicUsize::new(0));
    let router = {
        let hits = hits.clone();
        Router::new().route(
            "/hooks",
            post(move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                StatusCode::NO_CONTENT
            }),
        )
    };
    let ca = pki.path("ca.pem");

    let (delivered, _) = with_https_server(pki.server_config(false), router, |base| async move {
        // The connector's `tls` serves every subscriber without its own.
        let section: ConnectorConfig = toml::from_str(&format!(
            r#"
            kind = "webhook"
            [tls]
            ca_file = {ca:?}
            [[subscribers]]
            name = "crm"
            url = "{base}/hooks"
            secret_env = "CRM_SECRET"
            event_types = ["return.*"]
            "#
        ))
        .unwrap();
        let env = |name: &str| {
            (name == "CRM_SECRET").then(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned())
        };
        let mut sinks = build_with_env(
            &BTreeMap::from([("portal".to_owned(), section)]),
            &BTreeMap::new(),
            &env,
        )
        .unwrap();
        let sink = sinks.remove(0).0;
        deliver(
            sink.as_ref(),
            &action(ActionKind::PortalStatus),
            "RMA-000042:portal_status:3",
            &no_prerequisites(),
        )
        .await
    })
    .await;

    assert_eq!(delivered, Ok(ActionResult::Accepted));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

/// Why building the ERP connector at `url` with `tls` was refused.
#[track_caller]
fn refusal(url: &str, tls: TlsConfig) -> String {
    let mut section = config(Target::Erp, url);
    section.tls = Some(tls);
    build_one(Target::Erp, section, BTreeMap::new())
        .err()
        .expect("the configuration should be refused")
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn bad_tls_files_are_refused_at_build_naming_the_connector_the_setting_and_the_file() {
    let pki = Pki::new();
    let url = "https://erp.example.com";
    let missing = pki.path("nowhere/ca.pem");
    let not_pem = write(pki.dir.path(), "not.pem", "this is not a certificate\n");
    let garbled = write(
        pki.dir.path(),
        "garbled.pem",
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (
            TlsConfig {
                ca_file: Some(missing.clone()),
                ..TlsConfig::default()
            },
            "connectors.erp: tls.ca_file: cannot read",
            missing,
        ),
        (
            TlsConfig {
                ca_file: Some(not_pem.clone()),
                ..TlsConfig::default()
            },
            "connectors.erp: tls.ca_file: ",
            not_pem.clone(),
        ),
        (
            TlsConfig {
                ca_file: Some(garbled.clone()),
                ..TlsConfig::default()
            },
            "connectors.erp: tls.ca_file: ",
            garbled,
        ),
        (
            // A certificate where the key should be.
            TlsConfig {
                client_key_file: Some(pki.path("client.pem")),
                ..pki.presenting("client")
            },
            "connectors.erp: tls.client_key_file: ",
            pki.path("client.pem"),
        ),
        (
            // Another certificate's key.
            TlsConfig {
                client_key_file: Some(pki.path("stranger.key")),
                ..pki.presenting("client")
            },
            "connectors.erp: tls.client_key_file: ",
            pki.path("stranger.key"),
        ),
        (
            TlsConfig {
                client_cert_file: Some(not_pem.clone()),
                ..pki.presenting("client")
            },
            "connectors.erp: tls.client_cert_file: ",
            not_pem,
        ),
    ];
    for (tls, start, path) in cases {
        let message = refusal(url, tls);
        assert!(message.starts_with(start), "{message}");
        assert!(
            message.contains(&path.display().to_string()),
            "names the file: {message}"
        );
    }
    let no_pem_message = refusal(
        url,
        TlsConfig {
            ca_file: Some(pki.path("not.pem")),
            ..TlsConfig::default()
        },
    );
    assert!(
        no_pem_message.contains("holds no PEM certificate"),
        "{no_pem_message}"
    );
}

#[test]
fn half_a_client_certificate_is_refused() {
    let pki = Pki::new();
    let only_cert = TlsConfig {
        client_cert_file: Some(pki.path("client.pem")),
        ..TlsConfig::default()
    };
    let only_key = TlsConfig {
        client_key_file: Some(pki.path("client.key")),
        ..TlsConfig::default()
    };

    let message = refusal("https://erp.example.com", only_cert);
    assert!(
        message.starts_with("connectors.erp: tls.client_key_file: must be set"),
        "{message}"
    );
    let message = refusal("https://erp.example.com", only_key);
    assert!(
        message.starts_with("connectors.erp: tls.client_cert_file: must be set"),
        "{message}"
    );
}

#[test]
fn tls_settings_without_an_https_url_are_refused() {
    let pki = Pki::new();

    let message = refusal("http://erp.example.com", pki.trusting());
    assert!(
        message.starts_with("connectors.erp: tls: ") && message.contains("plain http"),
        "{message}"
    );
    let mut section = config(Target::Erp, "");
    section.tls = Some(pki.trusting());
    let in_process = BTreeMap::from([(Target::Erp, Router::new())]);
    let message = build_one(Target::Erp, section, in_process)
        .err()
        .expect("refused")
        .to_string();
    assert!(message.starts_with("connectors.erp: tls: "), "{message}");
}

#[test]
fn a_webhook_subscribers_bad_tls_file_is_refused_naming_the_subscriber() {
    let section: ConnectorConfig = toml::from_str(
        r#"
        kind = "webhook"
        [[subscribers]]
        name = "crm"
        url = "https://crm.example.com/hooks"
        secret_env = "CRM_SECRET"
        event_types = ["return.*"]
        tls = { ca_file = "/nonexistent/crm-ca.pem" }
        "#,
    )
    .unwrap();
    let env = |_: &str| Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned());

    let message = build_with_env(
        &BTreeMap::from([("portal".to_owned(), section)]),
        &BTreeMap::new(),
        &env,
    )
    .err()
    .expect("refused")
    .to_string();

    assert!(
        message.starts_with("connectors.portal.subscribers[0].tls.ca_file: cannot read")
            && message.contains("/nonexistent/crm-ca.pem"),
        "{message}"
    );
}

#[test]
fn plain_http_to_another_machine_is_warned_about_and_loopback_is_not() {
    let connectors: BTreeMap<String, ConnectorConfig> = [
        ("erp", "http://erp.internal:8000"),
        ("wms", "http://127.0.0.1:7002"),
        ("carrier", "http://localhost:7003"),
        ("portal", "https://portal.example.com"),
    ]
    .into_iter()
    .map(|(name, url)| {
        let target = match name {
            "erp" => Target::Erp,
            "wms" => Target::Wms,
            "carrier" => Target::Carrier,
            _ => Target::Portal,
        };
        (name.to_owned(), config(target, url))
    })
    .collect();

    let warnings = plain_http_warnings(&connectors, &BTreeMap::new());

    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("connectors.erp.url: `http://erp.internal:8000`"),
        "{warnings:?}"
    );
}

#[test]
fn a_sources_tls_settings_are_checked_like_a_connectors() {
    let sources = |url: &str| -> BTreeMap<String, backhaul_connectors::SourceConfig> {
        toml::from_str(&format!(
            r#"
            [tracking]
            kind = "sim-carrier-tracking"
            url = "{url}"
            tls = {{ ca_file = "/nonexistent/carrier-ca.pem" }}
            "#
        ))
        .unwrap()
    };

    let missing = backhaul_connectors::build_sources(
        &sources("https://carrier.example.com"),
        &BTreeMap::new(),
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(
        missing.starts_with("sources.tracking: tls.ca_file: cannot read")
            && missing.contains("/nonexistent/carrier-ca.pem"),
        "{missing}"
    );
}
