//! [`X12PartnerSink`]: renders the 180 of a delivery and writes it into
//! the outbound folder atomically (a temporary file in the same folder,
//! flushed to disk, renamed over the final name, the folder flushed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use backhaul_domain::action::{ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};

use super::config::{Agreement, X12PartnerConfig};
use super::mapping;
use crate::{BuildError, ConnectorConfig};

/// The x12-partner connector's sink.
pub struct X12PartnerSink {
    system: ExternalRef,
    outbound_dir: PathBuf,
    /// By customer account.
    partners: BTreeMap<String, Agreement>,
}

impl X12PartnerSink {
    /// Checks `config` (a `[connectors.<section>]` of kind `x12-partner`)
    /// and its `x12_partner` table. Errors name the key.
    pub fn from_config(
        section: &str,
        config: &ConnectorConfig,
    ) -> Result<X12PartnerSink, BuildError> {
        let invalid = |key: &str, message: String| BuildError::Invalid {
            target: format!("connectors.{section}{key}"),
            message,
        };
        if !config.url.is_empty() {
            return Err(invalid(
                ".url",
                "an x12-partner connector writes files to x12_partner.outbound_dir; it has no url"
                    .into(),
            ));
        }
        let settings: &X12PartnerConfig = config.x12_partner.as_ref().ok_or_else(|| {
            invalid(
                "",
                format!(
                    "kind `x12-partner` needs its settings in [connectors.{section}.x12_partner]"
                ),
            )
        })?;
        let system = ExternalRef::parse(config.system.as_deref().unwrap_or(section))
            .map_err(|e| invalid(".system", e.to_string()))?;
        let checked = settings
            .check()
            .map_err(|(key, message)| invalid(&format!(".x12_partner.{key}"), message))?;
        Ok(X12PartnerSink {
            system,
            outbound_dir: checked.outbound_dir,
            partners: checked.partners,
        })
    }

    /// Where the 180s are written.
    pub fn outbound_dir(&self) -> &Path {
        &self.outbound_dir
    }
}

impl Sink for X12PartnerSink {
    fn target(&self) -> Target {
        Target::Edi
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            let action = request.action;
            // The kind first, so another target's action is refused as
            // unsupported whatever its customer.
            mapping::answer_of(action)?;
            let customer = action.customer.as_str();
            let agreement = self.partners.get(customer).ok_or_else(|| {
                SinkError::business(
                    "unknown_partner",
                    format!(
                        "no trading partner agreement for customer {customer} \
                         ([connectors.{}.x12_partner.partners.{customer}])",
                        Target::Edi.as_str()
                    ),
                )
            })?;
            let rendered = mapping::render(action, agreement, request.delivery_id, request.key)?;
            let path = self.outbound_dir.join(&rendered.file_name);
            write_atomically(
                &self.outbound_dir,
                &path,
                request.attempt,
                rendered.text.as_bytes(),
            )
            .await
            .map_err(|e| {
                SinkError::technical("write_failed", format!("{}: {e}", path.display()))
            })?;
            tracing::info!(
                connector = "x12-partner",
                delivery_id = request.delivery_id,
                attempt = request.attempt,
                return_id = %action.return_id,
                correlation_id = %request.correlation_id,
                file = %path.display(),
                control = rendered.control,
                "180 written"
            );
            let number = ExternalRef::parse(&format!("{:09}", rendered.control))
                .map_err(|e| SinkError::business("invalid_result", e.to_string()))?;
            Ok(ActionResult::Document {
                number,
                amount: None,
            })
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            match tokio::fs::metadata(&self.outbound_dir).await {
                Ok(m) if m.is_dir() => Ok(()),
                Ok(_) => Err(SinkError::technical(
                    "outbound_dir",
                    format!("{} is not a folder", self.outbound_dir.display()),
                )),
                Err(e) => Err(SinkError::technical(
                    "outbound_dir",
                    format!("{}: {e}", self.outbound_dir.display()),
                )),
            }
        })
    }
}

/// Writes `bytes` as `path` so that the name never shows a partial file:
/// into `<path>.<attempt>.tmp` beside it (one per attempt, so two attempts
/// racing after a lease takeover never write into one file), flushed to
/// disk, renamed over `path` (an earlier attempt's file included), and the
/// folder flushed so the rename survives a crash. A temporary file is
/// removed on failure; one left by a crash never has the `.edi` ending
/// transports take.
async fn write_atomically(
    dir: &Path,
    path: &Path,
    attempt: i32,
    bytes: &[u8],
) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{attempt}.tmp"));
    let tmp = PathBuf::from(tmp);
    let written = async {
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::OpenOptions::new()
            .write(true)
            .open(&tmp)
            .await?
            .sync_all()
            .await?;
        tokio::fs::rename(&tmp, path).await?;
        tokio::fs::File::open(dir).await?.sync_all().await
    }
    .await;
    if written.is_err() {
        // Best effort: the error that matters is the one returned.
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    written
}
