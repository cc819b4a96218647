//! Client TLS: the one place where the hub's outbound HTTP clients get
//! their trust settings. Every [`Remote`](super::Remote) (connectors,
//! sources, webhook subscribers) is built from a [`ClientTls`] made here, so
//! an `https://` target is checked the same way whichever connector talks
//! to it.
//!
//! What a client trusts: the Mozilla root certificates (compiled in from
//! `webpki-roots`, so a container without an OS certificate store works the
//! same as a laptop), plus the certificates of the connector's `ca_file`
//! (a company CA in front of an on-premise SAP). With `client_cert_file`
//! and `client_key_file` it presents a certificate for mutual TLS. The
//! files are read and checked when the connector is built (`backhaul config
//! check` and the start of `serve`), never at the first delivery.
//!
//! Crypto: rustls with its `ring` provider, handed to each client in its
//! `rustls::ClientConfig`; no process-wide default provider is installed,
//! and rustls' default `aws-lc-rs` is not compiled in.
//!
//! How a failed handshake reads is here too ([`handshake_failure`]): the
//! transport reports it as a `tls` failure, which the dispatcher retries
//! (see `http`'s classification).
//!
//! What does not live here: the hub's own listener (`backhaul serve` with
//! `[server.tls]`, in the binary).

use std::error::Error as StdError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{AlertDescription, CertificateError, RootCertStore};
use serde::{Deserialize, Serialize};

/// TLS settings of one outbound HTTP client (`[connectors.<target>.tls]`,
/// a webhook subscriber's `tls`, `[sources.<name>.tls]`). They apply to an
/// `https://` URL; the Mozilla roots are trusted without any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of extra CA certificates to trust beside the Mozilla roots,
    /// e.g. the company CA that signed an on-premise ERP's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the certificate (chain, leaf first) the hub presents for
    /// mutual TLS; needs `client_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// PEM file of the private key of `client_cert_file` (PKCS#8, PKCS#1 or
    /// SEC1), unencrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
}

impl TlsConfig {
    /// Resolves relative paths against `folder` (the configuration file's),
    /// so a configuration works from any working directory.
    pub fn resolve_relative_to(&mut self, folder: &Path) {
        for path in [
            &mut self.ca_file,
            &mut self.client_cert_file,
            &mut self.client_key_file,
        ]
        .into_iter()
        .flatten()
        {
            if path.is_relative() {
                *path = folder.join(&*path);
            }
        }
    }
}

/// Why TLS settings were refused: the setting at fault (`tls.ca_file`) and
/// why, naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TlsError {
    pub field: &'static str,
    pub message: String,
}

impl TlsError {
    fn new(field: &'static str, message: String) -> TlsError {
        TlsError { field, message }
    }
}

/// Ready client TLS settings, checked; cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field(
                "client_auth",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish_non_exhaustive()
    }
}

impl ClientTls {
    /// `settings` with its files read and checked (the default: the Mozilla
    /// roots and no client certificate). An error names the setting and
    /// the file.
    pub fn build(settings: &TlsConfig) -> Result<ClientTls, TlsError> {
        let mut roots = mozilla_store();
        if let Some(path) = &settings.ca_file {
            add_anchors(&mut roots, path)?;
        }
        let builder = builder(roots).map_err(|e| TlsError::new("tls", e.to_string()))?;
        let config = match (&settings.client_cert_file, &settings.client_key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => {
                return Err(TlsError::new(
                    "tls.client_key_file",
                    "must be set with tls.client_cert_file (mutual TLS needs the key too)"
                        .to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err(TlsError::new(
                    "tls.client_cert_file",
                    "must be set with tls.client_key_file (mutual TLS needs the certificate too)"
                        .to_owned(),
                ));
            }
            (Some(cert_path), Some(key_path)) => {
                let chain = certificates("tls.client_cert_file", cert_path)?;
                let key = private_key(key_path)?;
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    TlsError::new(
                        "tls.client_key_file",
                        format!(
                            "`{}` does not go with the certificate in `{}`: {e}",
                            key_path.display(),
                            cert_path.display()
                        ),
                    )
                })?
            }
        };
        Ok(ClientTls {
            config: Arc::new(config),
        })
    }

    /// An HTTP client builder with this TLS: the only way the hub makes
    /// one (`clippy.toml` disallows reqwest's own constructors). reqwest is
    /// compiled without a crypto provider, so a client built without a
    /// ready rustls configuration would panic when it is built; this one
    /// carries its provider (ring) in the configuration. Public for test
    /// drivers that talk HTTP themselves (`tests/crash.rs`).
    #[allow(clippy::disallowed_methods)]
    pub fn http_client(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().use_preconfigured_tls((*self.config).clone())
    }
}

/// A client builder on the ring provider trusting `roots`.
fn builder(
    roots: RootCertStore,
) -> Result<
    rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    rustls::Error,
> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots))
}

fn mozilla_store() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Reads `path` whole, naming `field` and the file when it cannot.
fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError::new(field, format!("cannot read `{}`: {e}", path.display())))
}

/// The PEM certificates in `path`, at least one.
fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError::new(
                field,
                format!("`{}` is not a readable PEM file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(TlsError::new(
            field,
            format!(
                "`{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                path.display()
            ),
        ));
    }
    Ok(certs)
}

/// Adds the certificates of a `ca_file` to `roots`; each must be usable as
/// a trust anchor.
fn add_anchors(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    let field = "tls.ca_file";
    for (i, cert) in certificates(field, path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            TlsError::new(
                field,
                format!(
                    "certificate {} of `{}` cannot be trusted as a CA: {e}",
                    i + 1,
                    path.display()
                ),
            )
        })?;
    }
    Ok(())
}

/// The one private key in `path`.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let field = "tls.client_key_file";
    let bytes = read(field, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        let why = match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "holds no PEM private key (PKCS#8, PKCS#1 or SEC1; an encrypted key must be decrypted first)"
                    .to_owned()
            }
            other => format!("is not a readable PEM file: {other}"),
        };
        TlsError::new(field, format!("`{}` {why}", path.display()))
    })
}

/// What went wrong in a TLS handshake, for an operator, if `error` (or an
/// error it was caused by) is one: `None` for any other failure.
pub(crate) fn handshake_failure(error: &(dyn StdError + 'static)) -> Option<String> {
    rustls_error(error).map(describe)
}

/// The rustls error in `error`'s causes. An I/O error's `source` skips the
/// error it wraps (and the HTTP client nests I/O errors), so a wrapped
/// error is searched as well as the causes.
fn rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
        && let Some(tls) = rustls_error(inner)
    {
        return Some(tls);
    }
    error.source().and_then(rustls_error)
}

fn describe(error: &rustls::Error) -> String {
    use rustls::Error;
    match error {
        Error::InvalidCertificate(cert) => {
            let why = match cert {
                CertificateError::UnknownIssuer => {
                    "no CA this connector trusts issued it (for a private CA, set tls.ca_file)"
                }
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    "it is not valid for the host name of the url"
                }
                CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                    "it has expired"
                }
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                    "it is not valid yet (check the clocks)"
                }
                _ => "it failed verification",
            };
            format!("TLS: the server's certificate is not trusted: {why} ({error})")
        }
        Error::AlertReceived(alert) => {
            let hint = match alert {
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::AccessDenied
                | AlertDescription::HandshakeFailure => {
                    ": it may want a client certificate it trusts (tls.client_cert_file and tls.client_key_file)"
                }
                _ => "",
            };
            format!("TLS: the server refused the handshake ({error}){hint}")
        }
        other => format!("TLS: the handshake failed: {other}"),
    }
}
