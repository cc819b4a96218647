//! A generic SOAP sink for legacy on-premises ERPs and WMSs
//! (`[connectors.<erp|wms>.soap]`, kind `soap`): one envelope body template
//! per action kind (`template`, a small placeholder syntax over the
//! canonical action, every value XML-escaped), SOAP 1.1 or 1.2, a
//! WS-Security UsernameToken header (`PasswordText` or `PasswordDigest`),
//! the answer's document number read from a configured element, and SOAP
//! Faults classified by their code (`envelope`).
//!
//! The target (`erp` or `wms`) is a setting, so the section is
//! `[connectors.erp]` or `[connectors.wms]` accordingly; the action kinds a
//! template is given for must be that target's.
//!
//! Classification. SOAP reports every fault with HTTP 500, so a Fault is
//! classified by its code, not the status: `Client`/`Sender` (and
//! `VersionMismatch`, `MustUnderstand`, `DataEncodingUnknown`) business,
//! `Server`/`Receiver` and anything else technical. The failure's code is
//! `soap_<code>` (`soap_client`, `soap_server`, `soap_sender`…), its
//! message the fault code, subcode and reason. An answer without a Fault
//! is classified by
//! the shared HTTP rules (2xx success; 408, 425, 429, 5xx technical; other
//! 4xx business).
//!
//! Idempotency. The delivery key goes in the HTTP header
//! `idempotency_header` (when set) and wherever a template writes
//! `{{delivery_key}}`: in the body (a legacy system's own external
//! reference field) or in `header`, an extra SOAP header template (a
//! `MessageID`). The target must deduplicate on one of them; a SOAP
//! service that cannot should be given a look-up operation in a connector
//! of its own, which this generic one does not offer.

mod envelope;
mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use backhaul_domain::action::{ActionKind, ActionResult, Target};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{BoxFuture, DeliveryRequest, Sink, SinkError};
use bytes::Bytes;
use http::{HeaderName, Method};
use serde::{Deserialize, Serialize};

use envelope::{FaultClass, Reading};
pub use envelope::{PasswordType, SoapVersion};
use template::{Context, Template};

use crate::http::Transport;
use crate::vendor::{self, Env, Secret};

/// Generic SOAP settings (`[connectors.<target>.soap]`, kind `soap`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapConfig {
    /// The system served: `erp` or `wms`.
    pub target: SoapTarget,
    /// Path of the service endpoint after the base URL (`/ws/returns`).
    pub path: String,
    /// `1.1` (default) or `1.2`.
    #[serde(default = "default_version")]
    pub version: SoapVersion,
    /// HTTP header that carries the delivery key, if the service reads one
    /// (`X-Idempotency-Key`).
    #[serde(default)]
    pub idempotency_header: Option<String>,
    /// A template for extra SOAP header elements (after the security
    /// header), with the same placeholders as the bodies outside lines:
    /// `<h:MessageID xmlns:h="urn:acme">{{delivery_key}}</h:MessageID>`.
    #[serde(default)]
    pub header: Option<String>,
    /// WS-Security UsernameToken; none sends no security header.
    #[serde(default)]
    pub security: Option<SecurityConfig>,
    /// Where the service answers health checks with a `GET` (default: the
    /// endpoint's `?wsdl`).
    #[serde(default)]
    pub health_path: Option<String>,
    /// One entry per action kind delivered (`erp_return_order`…); other
    /// kinds are business errors `unsupported_action`.
    pub actions: BTreeMap<String, SoapActionConfig>,
}

/// The systems a SOAP connector may serve: legacy ERPs and WMSs (carriers
/// and portals speak JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SoapTarget {
    Erp,
    Wms,
}

impl SoapTarget {
    pub fn target(self) -> Target {
        match self {
            SoapTarget::Erp => Target::Erp,
            SoapTarget::Wms => Target::Wms,
        }
    }
}

fn default_version() -> SoapVersion {
    SoapVersion::Soap11
}

/// The UsernameToken (`[….soap.security]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    /// Environment variable holding the user name.
    pub username_env: String,
    /// Environment variable holding the password.
    pub password_env: String,
    /// `text` or `digest` (default): how the password travels.
    #[serde(default = "default_password_type")]
    pub password_type: PasswordType,
}

fn default_password_type() -> PasswordType {
    PasswordType::Digest
}

/// One action kind's operation (`[….soap.actions.erp_return_order]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapActionConfig {
    /// The operation's SOAPAction (`urn:acme:CreateReturnOrder`).
    pub soap_action: String,
    /// The body's content: one element, usually, with its namespace
    /// declared, and placeholders (see `template`).
    pub body: String,
    /// Local name of the answer element holding the document number
    /// (`ReturnOrderNumber`). Required for kinds whose number later
    /// actions refer to (return order, expected receipt); without it the
    /// result is "accepted".
    #[serde(default)]
    pub number: Option<String>,
}

/// One action kind, checked.
struct Operation {
    soap_action: String,
    body: Template,
    number: Option<String>,
}

/// The sink of a SOAP service.
pub(crate) struct SoapSink {
    target: Target,
    system: ExternalRef,
    transport: Arc<dyn Transport>,
    path: String,
    version: SoapVersion,
    idempotency_header: Option<HeaderName>,
    header: Option<Template>,
    security: Option<(Secret, Secret, PasswordType)>,
    health_path: String,
    operations: BTreeMap<ActionKind, Operation>,
}

impl SoapSink {
    pub(crate) fn new(
        system: ExternalRef,
        transport: Arc<dyn Transport>,
        settings: &SoapConfig,
        env: Env<'_>,
    ) -> Result<SoapSink, String> {
        let target = settings.target.target();
        if !settings.path.starts_with('/') {
            return Err("soap.path must start with `/`".to_owned());
        }
        let idempotency_header = settings
            .idempotency_header
            .as_deref()
            .map(|name| {
                HeaderName::try_from(name)
                    .map_err(|_| format!("soap.idempotency_header: `{name}` is not a header name"))
            })
            .transpose()?;
        let header = match &settings.header {
            Some(raw) => {
                let template = Template::parse("soap.header", raw)?;
                envelope::check_well_formed(&template.skeleton())
                    .map_err(|e| format!("soap.header: {e}"))?;
                Some(template)
            }
            None => None,
        };
        let security = match &settings.security {
            Some(s) => Some((
                vendor::secret_from_env(env, "soap.security.username_env", &s.username_env)?,
                vendor::secret_from_env(env, "soap.security.password_env", &s.password_env)?,
                s.password_type,
            )),
            None => None,
        };
        if settings.actions.is_empty() {
            return Err(
                "soap.actions must have a template for at least one action kind".to_owned(),
            );
        }
        let mut operations = BTreeMap::new();
        for (name, action) in &settings.actions {
            let key = format!("soap.actions.{name}");
            let kind = ActionKind::parse(name).ok_or_else(|| {
                format!("{key}: `{name}` is not an action kind (erp_return_order, wms_expected_receipt…)")
            })?;
            if kind.target() != target {
                return Err(format!(
                    "{key}: a {} action, but this connector serves `{}`",
                    kind.target().as_str(),
                    target.as_str()
                ));
            }
            if action.soap_action.contains('"') {
                return Err(format!("{key}.soap_action must not contain `\"`"));
            }
            let body = Template::parse(&format!("{key}.body"), &action.body)?;
            envelope::check_well_formed(&body.skeleton())
                .map_err(|e| format!("{key}.body: {e}"))?;
            if let Some(number) = &action.number
                && (number.is_empty() || number.contains([':', '<', '>', ' ']))
            {
                return Err(format!(
                    "{key}.number: `{number}` is not an element's local name"
                ));
            }
            // Later actions refer to these kinds' numbers (the credit memo
            // to the return order, the cancellation to the receipt).
            let referred_to = ActionKind::ALL.iter().any(|k| k.requires().contains(&kind));
            if referred_to && action.number.is_none() {
                return Err(format!(
                    "{key}.number must name the answer element with the document number: later actions refer to it"
                ));
            }
            operations.insert(
                kind,
                Operation {
                    soap_action: action.soap_action.clone(),
                    body,
                    number: action.number.clone(),
                },
            );
        }
        let health_path = match &settings.health_path {
            Some(path) if path.starts_with('/') => path.clone(),
            Some(_) => return Err("soap.health_path must start with `/`".to_owned()),
            None => format!("{}?wsdl", settings.path),
        };
        Ok(SoapSink {
            target,
            system,
            transport,
            path: settings.path.clone(),
            version: settings.version,
            idempotency_header,
            header,
            security,
            health_path,
            operations,
        })
    }

    /// The envelope of one delivery.
    fn envelope(&self, request: &DeliveryRequest<'_>, op: &Operation) -> Result<String, SinkError> {
        let prerequisite_number = request
            .action
            .kind
            .requires()
            .iter()
            .find_map(|k| request.prerequisite_number(*k))
            .map(ExternalRef::as_str);
        let context = Context {
            system: self.system.as_str(),
            prerequisite_number,
        };
        let mut header = String::new();
        if let Some((user, password, kind)) = &self.security {
            let nonce: [u8; 16] = rand::random();
            // The token's creation time is the wall clock's by definition
            // (the server checks its freshness against its own).
            header.push_str(&envelope::security_header(
                user.expose(),
                password.expose(),
                *kind,
                &nonce,
                chrono::Utc::now(),
            ));
        }
        if let Some(extra) = &self.header {
            header.push_str(&extra.render(request, &context)?);
        }
        let body = op.body.render(request, &context)?;
        Ok(envelope::envelope(self.version, &header, &body))
    }
}

impl Sink for SoapSink {
    fn target(&self) -> Target {
        self.target
    }

    fn system(&self) -> &ExternalRef {
        &self.system
    }

    fn deliver<'a>(
        &'a self,
        request: DeliveryRequest<'a>,
    ) -> BoxFuture<'a, Result<ActionResult, SinkError>> {
        Box::pin(async move {
            let kind = request.action.kind;
            let op = self.operations.get(&kind).ok_or_else(|| {
                vendor::unsupported(kind, "SOAP", "no envelope template is configured for it")
            })?;
            let xml = self.envelope(&request, op)?;
            let mut builder = http::Request::builder()
                .method(Method::POST)
                .uri(&self.path);
            builder = match self.version {
                SoapVersion::Soap11 => builder
                    .header(http::header::CONTENT_TYPE, "text/xml; charset=utf-8")
                    .header("soapaction", format!("\"{}\"", op.soap_action)),
                SoapVersion::Soap12 => builder.header(
                    http::header::CONTENT_TYPE,
                    format!(
                        "application/soap+xml; charset=utf-8; action=\"{}\"",
                        op.soap_action
                    ),
                ),
            };
            if let Some(name) = &self.idempotency_header {
                builder = builder.header(name, request.key);
            }
            let http_request = builder
                .body(Bytes::from(xml))
                .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
            let (status, headers, body) = self.transport.send(http_request).await?;
            let reading = envelope::read(&body, op.number.as_deref());
            match reading {
                Ok(Reading::Fault(fault)) => {
                    let code = format!(
                        "soap_{}",
                        fault
                            .code
                            .split('.')
                            .next()
                            .unwrap_or("fault")
                            .to_ascii_lowercase()
                    );
                    let message = match &fault.subcode {
                        Some(sub) => format!("{} ({sub}): {}", fault.code, fault.reason),
                        None => format!("{}: {}", fault.code, fault.reason),
                    };
                    let status = Some(status.as_u16());
                    Err(match fault.class() {
                        FaultClass::Business => SinkError::Business {
                            code,
                            message,
                            status,
                        },
                        FaultClass::Technical => SinkError::Technical {
                            code,
                            message,
                            status,
                            retry_after: crate::http::retry_after(&headers),
                        },
                    })
                }
                // No Fault: the shared HTTP rules decide, then the body is
                // read.
                Ok(Reading::Body(number)) => {
                    crate::http::classify(status, &headers, &body)?;
                    match (&op.number, number) {
                        (Some(_), Some(text)) => Ok(ActionResult::Document {
                            number: ExternalRef::parse(&text).map_err(|e| {
                                SinkError::business("invalid_response", format!("`{text}`: {e}"))
                            })?,
                            amount: None,
                        }),
                        (Some(element), None) => Err(SinkError::business(
                            "invalid_response",
                            format!("the answer has no <{element}> element"),
                        )),
                        (None, _) => Ok(ActionResult::Accepted),
                    }
                }
                Err(e) => {
                    crate::http::classify(status, &headers, &body)?;
                    Err(SinkError::business("invalid_response", e))
                }
            }
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let request = http::Request::builder()
                .method(Method::GET)
                .uri(&self.health_path)
                .body(Bytes::new())
                .map_err(|e| SinkError::technical("health", e.to_string()))?;
            let (status, headers, body) = self.transport.send(request).await?;
            crate::http::classify(status, &headers, &body)
        })
    }
}
