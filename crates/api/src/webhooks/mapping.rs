//! What an inbound webhook's body means: the envelope every source uses, the
//! bodies of each kind, and the one canonical [`Command`] each becomes,
//! together with the references that name its return.
//!
//! Every body is the Standard Webhooks payload shape:
//! `{"type": "...", "timestamp": "...", "data": {...}}`. `type` says what
//! happened; `timestamp` (optional) is when the sender says it did and is
//! informational; `data` is the event. Unknown fields are refused at every
//! level, so a misspelt field is a 422 naming it rather than silently lost.
//!
//! | kind      | `type`                 | command                      |
//! |-----------|------------------------|------------------------------|
//! | wms       | `receipt.created`      | `record_receipt`             |
//! | wms       | `inspection.completed` | `record_inspection`          |
//! | wms       | `putaway.completed`    | `record_disposition` with the location |
//! | carrier   | `tracking.updated`     | `record_carrier_milestone`   |
//! | canonical | a command's name       | that command                 |
//!
//! A putaway is the warehouse carrying out a disposition (restock to a bin,
//! quarantine to a cage); the hub records it as the disposition with its
//! location, since the domain has no separate putaway fact. So a hub whose
//! policy disposes on inspection (`dispose_on_inspection`) refuses putaways
//! of units it already disposed of (422 `quantity_exceeds_available`): its
//! WMS should not send them.
//!
//! Parsing is pure: the references are resolved to a return by the route,
//! which needs the store.

use backhaul_domain::Command;
use backhaul_domain::command::{CarrierEvent, Receipt};
use backhaul_domain::model::{
    CarrierMilestone, Disposition, DispositionLine, Inspection, ReceiptLine,
};
use backhaul_domain::values::{ExternalRef, LineNo, Quantity, ReturnId, SerialNumber};
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::webhooks::{InboundKind, InboundSource};

/// The Standard Webhooks payload around every event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    #[serde(rename = "type")]
    event_type: String,
    /// Informational: the command's own times (`occurred_at`) are what the
    /// hub records.
    #[serde(default, rename = "timestamp")]
    _timestamp: Option<DateTime<Utc>>,
    data: Box<RawValue>,
}

/// `receipt.created`: units arrived at the warehouse.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WmsReceipt {
    /// The return, by id; or give `rma_number`.
    #[serde(default)]
    return_id: Option<ReturnId>,
    /// The return, by its RMA number.
    #[serde(default)]
    rma_number: Option<String>,
    /// The WMS's id of this receipt; a receipt is applied once.
    receipt_ref: ExternalRef,
    /// What arrived: SKU, quantity, serials and lot per line.
    lines: Vec<ReceiptLine>,
}

/// `inspection.completed`: the condition of received units.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WmsInspection {
    #[serde(default)]
    return_id: Option<ReturnId>,
    #[serde(default)]
    rma_number: Option<String>,
    /// Per line: quantity, condition, serials, lot, and `evidence_ref`, the
    /// WMS's reference to the photos or report (the hub links to evidence,
    /// it does not store it).
    inspections: Vec<Inspection>,
}

/// `putaway.completed`: inspected units put away under a disposition.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WmsPutaway {
    #[serde(default)]
    return_id: Option<ReturnId>,
    #[serde(default)]
    rma_number: Option<String>,
    lines: Vec<PutawayLine>,
}

/// Units of one return line put away.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutawayLine {
    line_no: LineNo,
    quantity: Quantity,
    /// What the units were put away as: `restock`, `quarantine`, `scrap`…
    disposition: Disposition,
    /// Where: the bin, cage or zone.
    location: ExternalRef,
    #[serde(default)]
    serial_numbers: Vec<SerialNumber>,
}

/// `tracking.updated`: one carrier scan.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CarrierTracking {
    /// The label's tracking number: how a carrier names the parcel.
    #[serde(default)]
    tracking_number: Option<ExternalRef>,
    /// The return, if the carrier echoes the shipment's reference.
    #[serde(default)]
    rma_number: Option<String>,
    #[serde(default)]
    return_id: Option<ReturnId>,
    /// The carrier's status: a canonical milestone (`in_transit`, `Out for
    /// delivery`…) or a code of the source's `status_map`.
    status: String,
    /// When the carrier says it happened. Scans arrive late and out of
    /// order; the latest by this time is the parcel's milestone.
    occurred_at: DateTime<Utc>,
    #[serde(default)]
    location: Option<String>,
}

/// Commands a webhook may not carry, and why.
const REFUSED_COMMANDS: [(&str, &str); 2] = [
    (
        "request",
        "a return is opened through the API, which assigns its id",
    ),
    (
        "record_refused_update",
        "only the engine records refused updates",
    ),
];

/// What a body without a reference is told to send.
const BY_RETURN: &str = "`return_id` or `rma_number`";

/// How the body names its return; at least one is set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReturnRefs {
    pub(crate) return_id: Option<ReturnId>,
    pub(crate) rma_number: Option<String>,
    pub(crate) tracking_number: Option<ExternalRef>,
}

/// A body read: the command and the return it is for.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(crate) refs: ReturnRefs,
    pub(crate) command: Command,
}

/// Reads a body of `source`'s kind. Syntax errors are 400
/// `malformed_json`; everything else the sender got wrong is 422, naming the
/// field by its path in the body (`data.lines[0].quantity`).
pub(crate) fn map(source: &InboundSource, body: &[u8]) -> Result<Mapped, ApiError> {
    let envelope: Envelope = crate::json::parse(body)?;
    let kind = envelope.event_type.as_str();
    match source.kind {
        InboundKind::Wms => match kind {
            "receipt.created" => {
                let data: WmsReceipt = data(&envelope.data)?;
                Ok(Mapped {
                    refs: refs(data.return_id, data.rma_number, None, BY_RETURN)?,
                    command: Command::RecordReceipt(Receipt {
                        receipt_ref: data.receipt_ref,
                        lines: data.lines,
                    }),
                })
            }
            "inspection.completed" => {
                let data: WmsInspection = data(&envelope.data)?;
                Ok(Mapped {
                    refs: refs(data.return_id, data.rma_number, None, BY_RETURN)?,
                    command: Command::RecordInspection {
                        inspections: data.inspections,
                    },
                })
            }
            "putaway.completed" => {
                let data: WmsPutaway = data(&envelope.data)?;
                let dispositions = data
                    .lines
                    .into_iter()
                    .map(|l| DispositionLine {
                        line_no: l.line_no,
                        quantity: l.quantity,
                        disposition: l.disposition,
                        serial_numbers: l.serial_numbers,
                        // Money is the ERP's and the policy's; a
                        // warehouse's putaway carries none.
                        restocking_fee: None,
                        location: Some(l.location),
                        vendor: None,
                        decided_by: None,
                    })
                    .collect();
                Ok(Mapped {
                    refs: refs(data.return_id, data.rma_number, None, BY_RETURN)?,
                    command: Command::RecordDisposition { dispositions },
                })
            }
            other => Err(unknown_type(
                other,
                &[
                    "receipt.created",
                    "inspection.completed",
                    "putaway.completed",
                ],
            )),
        },
        InboundKind::Carrier => match kind {
            "tracking.updated" => {
                let data: CarrierTracking = data(&envelope.data)?;
                let milestone = milestone(source, &data.status)?;
                Ok(Mapped {
                    refs: refs(
                        data.return_id,
                        data.rma_number,
                        data.tracking_number,
                        "`tracking_number`, `rma_number` or `return_id`",
                    )?,
                    command: Command::RecordCarrierMilestone(CarrierEvent {
                        milestone,
                        occurred_at: data.occurred_at,
                        location: data.location,
                    }),
                })
            }
            other => Err(unknown_type(other, &["tracking.updated"])),
        },
        InboundKind::Canonical => canonical(kind, &envelope.data),
    }
}

/// The milestone a carrier status means: the source's own code first, then
/// the canonical names however spelt.
fn milestone(source: &InboundSource, status: &str) -> Result<CarrierMilestone, ApiError> {
    source
        .status_map
        .get(status)
        .copied()
        .or_else(|| CarrierMilestone::parse(status))
        .ok_or_else(|| ApiError::WebhookUnmappedStatus {
            source_name: source.name.clone(),
            status: status.to_owned(),
        })
}

/// A canonical command by name; `data` is its body as the HTTP API takes it
/// plus `return_id` or `rma_number`.
fn canonical(name: &str, raw: &RawValue) -> Result<Mapped, ApiError> {
    if let Some((_, why)) = REFUSED_COMMANDS.iter().find(|(n, _)| *n == name) {
        return Err(ApiError::InvalidBody(format!(
            "type: `{name}` is not accepted by webhook: {why}"
        )));
    }
    let mut body: Map<String, Value> = data(raw)?;
    if body.contains_key("command") {
        return Err(ApiError::InvalidBody(
            "data.command: not allowed; `type` names the command".into(),
        ));
    }
    let return_id = match body.remove("return_id") {
        None => None,
        Some(value) => Some(
            serde_json::from_value::<ReturnId>(value)
                .map_err(|e| ApiError::InvalidBody(format!("data.return_id: {e}")))?,
        ),
    };
    let rma_number = match body.remove("rma_number") {
        None => None,
        Some(Value::String(rma)) => Some(rma),
        Some(_) => {
            return Err(ApiError::InvalidBody(
                "data.rma_number: expected a string".into(),
            ));
        }
    };
    let refs = refs(return_id, rma_number, None, BY_RETURN)?;
    let command = if name == "correct_line" {
        // The corrector is the source, set by the route from its name; a
        // body never says who it is.
        Command::CorrectLine {
            system: String::new(),
            correction: typed(&Value::Object(body))?,
        }
    } else {
        body.insert("command".into(), Value::String(name.to_owned()));
        let command: Command = typed(&Value::Object(body)).map_err(|e| match e {
            // An unknown variant is an unknown `type`.
            ApiError::InvalidBody(message) if message.contains("unknown variant") => {
                ApiError::InvalidBody(format!("type: `{name}` is not a command"))
            }
            other => other,
        })?;
        command
    };
    Ok(Mapped { refs, command })
}

/// `data` parsed as `T`, errors named by their path from the body's root.
fn data<T: DeserializeOwned>(raw: &RawValue) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::InvalidBody(format!("data: {inner}"))
        } else {
            ApiError::InvalidBody(format!("data.{path}: {inner}"))
        }
    })
}

/// A value already parsed as JSON, read as `T` with the same naming.
fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    let text = value.to_string();
    let raw =
        RawValue::from_string(text).map_err(|e| ApiError::InvalidBody(format!("data: {e}")))?;
    data(&raw)
}

/// The references a body named its return by; at least one.
fn refs(
    return_id: Option<ReturnId>,
    rma_number: Option<String>,
    tracking_number: Option<ExternalRef>,
    accepted: &str,
) -> Result<ReturnRefs, ApiError> {
    if return_id.is_none() && rma_number.is_none() && tracking_number.is_none() {
        return Err(ApiError::InvalidBody(format!(
            "data: name the return with {accepted}"
        )));
    }
    Ok(ReturnRefs {
        return_id,
        rma_number,
        tracking_number,
    })
}

fn unknown_type(found: &str, expected: &[&str]) -> ApiError {
    ApiError::InvalidBody(format!(
        "type: `{found}` is not an event this source takes; expected one of {}",
        expected.join(", ")
    ))
}
