//! TLS on the hub's own listener (`[server.tls]` of the binary): the
//! certificate and key read once at start-up into a [`ServerTls`], and
//! [`serve_tls`], which serves the router over it with the same graceful
//! shutdown as [`serve`](crate::serve).
//!
//! Handshakes run inside the listener's `accept`, several at once (a slow
//! or silent client does not hold up the others), each bounded by
//! [`HANDSHAKE_TIMEOUT`] and at most [`MAX_HANDSHAKES`] in flight; nothing
//! is spawned for them, so they end with the listener. A failed handshake
//! (a client that does not trust the certificate, a port scanner) closes
//! that connection only and is logged at debug level.
//!
//! Crypto: rustls with the `ring` provider, passed in the configuration (no
//! process-wide default provider), as for the connectors' clients.
//!
//! Not here: client certificates of partners (mutual TLS on the API);
//! API keys authenticate partners.

use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in flight at most; past that, new connections wait in the
/// kernel's backlog until one ends.
pub const MAX_HANDSHAKES: usize = 256;

/// Why the listener's certificate or key was refused: the setting at fault
/// (`cert_file`, `key_file`) and why, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ServerTlsError {
    pub field: &'static str,
    pub message: String,
}

/// The listener's certificate and key, checked. Cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Reads the PEM certificate chain (leaf first) in `cert_file` and its
    /// private key in `key_file`.
    pub fn from_pem_files(cert_file: &Path, key_file: &Path) -> Result<ServerTls, ServerTlsError> {
        let error = |field: &'static str, message: String| ServerTlsError { field, message };
        let read = |field: &'static str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| error(field, format!("cannot read `{}`: {e}", path.display())))
        };
        let cert_bytes = read("cert_file", cert_file)?;
        let chain = CertificateDer::pem_slice_iter(&cert_bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                error(
                    "cert_file",
                    format!("`{}` is not a readable PEM file: {e}", cert_file.display()),
                )
            })?;
        if chain.is_empty() {
            return Err(error(
                "cert_file",
                format!(
                    "`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                    cert_file.display()
                ),
            ));
        }
        let key_bytes = read("key_file", key_file)?;
        let key = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| {
            error(
                "key_file",
                format!(
                    "`{}` holds no readable PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted): {e}",
                    key_file.display()
                ),
            )
        })?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| error("cert_file", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            error(
                "key_file",
                format!(
                    "`{}` does not go with the certificate in `{}`: {e}",
                    key_file.display(),
                    cert_file.display()
                ),
            )
        })?;
        // The API speaks HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

type Handshake = Pin<Box<dyn Future<Output = Option<(TlsStream<TcpStream>, SocketAddr)>> + Send>>;

/// A TCP listener whose connections come out of `accept` with their TLS
/// handshake done.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: FuturesUnordered<Handshake>,
}

impl TlsListener {
    fn handshake(&self, tcp: TcpStream, address: SocketAddr) -> Handshake {
        let accepting = self.acceptor.accept(tcp);
        Box::pin(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, accepting).await {
                Ok(Ok(tls)) => Some((tls, address)),
                Ok(Err(error)) => {
                    tracing::debug!(%address, %error, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%address, "TLS handshake timed out");
                    None
                }
            }
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    // Cancel-safe, as axum needs: a connection accepted or a handshake in
    // flight when the future is dropped stays in `self` for the next call.
    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let room = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if room => match accepted {
                    Ok((tcp, address)) => {
                        let handshake = self.handshake(tcp, address);
                        self.handshakes.push(handshake);
                    }
                    Err(error) => {
                        // As axum's own TCP listener does: out of file
                        // descriptors and the like pass; do not spin.
                        tracing::warn!(%error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.next(), if !self.handshakes.is_empty() => {
                    if let Some(connection) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// [`serve`](crate::serve) over TLS: serves `router` on `listener` with
/// `tls` until `shutdown` is cancelled, then stops accepting connections
/// and waits for in-flight requests to finish.
pub async fn serve_tls(
    listener: TcpListener,
    tls: ServerTls,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "HTTPS API listening");
    }
    let listener = TlsListener {
        tcp: listener,
        acceptor: tls.acceptor,
        handshakes: FuturesUnordered::new(),
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    tracing::info!("HTTPS API stopped");
    Ok(())
}
