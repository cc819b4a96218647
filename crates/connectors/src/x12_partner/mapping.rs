//! Pure: an `edi_rma_notification` action and its delivery → the X12 180
//! text and the name of its file. The bytes depend only on the action, the
//! delivery id and the agreement, so every attempt of a delivery writes
//! the same file.

use backhaul_domain::action::{Action, ActionKind, PartnerAnswer, PartnerDecision};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::SinkError;
use backhaul_x12::{Line, RmaNotification, Separators, generate_180};
use rust_decimal::Decimal;

use super::config::Agreement;

/// Largest X12 control number (nine digits).
const MAX_CONTROL: i64 = 999_999_999;

/// RDR01 of a line authorised for at least one unit: return with the
/// authorisation (RMA) number.
const AUTHORISED: &str = "RA";

/// RDR01 of a line authorised for nothing: request denied.
const DENIED: &str = "RD";

/// RDR04 holds at most this many characters.
const DESCRIPTION_MAX: usize = 80;

/// One rendered 180.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// ISA13 = GS06 = ST02.
    pub(crate) control: u32,
    /// The file name in the outbound folder.
    pub(crate) file_name: String,
    pub(crate) text: String,
}

/// The control number of a delivery: its outbox id, folded into X12's
/// nine digits (1 to 999,999,999). Outbox ids are a store sequence that
/// never repeats, so numbers are unique for every partner (until the
/// sequence passes a billion deliveries and wraps) and the same on every
/// attempt of one delivery. They increase but are not consecutive per
/// partner: the other targets' deliveries take ids in between.
pub(crate) fn control_number(delivery_id: i64) -> u32 {
    let folded = (delivery_id - 1).rem_euclid(MAX_CONTROL) + 1;
    u32::try_from(folded).unwrap_or(1)
}

/// The file a delivery writes: `180-<partner ISA08>-<delivery key>.edi`,
/// anything but letters, digits, `.`, `-` and `_` replaced by `_` (the key
/// has `:`). Derived from the delivery key, so a retry rewrites the same
/// file instead of adding a second.
pub(crate) fn file_name(receiver_id: &str, key: &str) -> String {
    format!("180-{}-{}.edi", clean(receiver_id), clean(key))
}

fn clean(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The 180 of `action` for its partner, under control numbers derived
/// from `delivery_id`. Business errors: another kind, no agreement for the
/// customer, no partner reference to answer, a value X12 cannot carry.
pub(crate) fn render(
    action: &Action,
    agreement: &Agreement,
    delivery_id: i64,
    key: &str,
) -> Result<Rendered, SinkError> {
    let notification = notification(action, agreement)?;
    let answer = answer_of(action)?;
    let control = control_number(delivery_id);
    let mut envelope = agreement.envelope.clone();
    envelope.interchange_control = control;
    envelope.group_control = control;
    envelope.set_control = control;
    // The decision's time, not the attempt's: a retry writes the same bytes.
    envelope.timestamp = answer.at.naive_utc();
    let text = generate_180(&notification, &envelope)
        .map_err(|e| SinkError::business("x12_write", format!("{}: {e}", action.rma_number)))?;
    Ok(Rendered {
        control,
        file_name: file_name(&envelope.receiver_id, key),
        text,
    })
}

/// The 180's content: BGN02 our RMA, BGN06 the partner's request, one BLI
/// loop per requested line with its authorised quantity, its unit, the
/// partner's line id (N9*LI) and RDR01 `RA` or `RD`; on a rejection the
/// reason as RDR04.
pub(crate) fn notification(
    action: &Action,
    agreement: &Agreement,
) -> Result<RmaNotification, SinkError> {
    let answer = answer_of(action)?;
    let request_ref = answer.request_ref.as_ref().ok_or_else(|| {
        SinkError::business(
            "missing_partner_reference",
            format!(
                "{} has no `edi` external reference: there is no partner request to answer",
                action.rma_number
            ),
        )
    })?;
    let separators = agreement.envelope.separators;
    let description = match answer.decision {
        PartnerDecision::Approved => None,
        PartnerDecision::Rejected => answer
            .reason
            .as_deref()
            .and_then(|r| description(r, separators)),
    };
    let lines = action
        .lines
        .iter()
        .map(|l| {
            let uom = l.uom.as_ref().ok_or_else(|| {
                SinkError::business(
                    "invalid_action",
                    format!(
                        "{} line {} has no unit of measure",
                        action.rma_number, l.line_no
                    ),
                )
            })?;
            let quantity: Decimal = l.quantity.get();
            Ok(Line {
                line_id: l
                    .order_line_ref
                    .as_ref()
                    .map_or_else(|| l.line_no.to_string(), ExternalRef::to_string),
                sku: l.sku.to_string(),
                other_ids: Vec::new(),
                quantity,
                uom: uom.to_string(),
                reason_code: None,
                disposition: Some(
                    if quantity.is_zero() {
                        DENIED
                    } else {
                        AUTHORISED
                    }
                    .to_owned(),
                ),
                description: description.clone(),
                unit_price: None,
                order_ref: None,
            })
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    Ok(RmaNotification {
        rma_number: action.rma_number.clone(),
        request_reference: request_ref.to_string(),
        date: answer.at.date_naive(),
        partner: agreement.party.clone(),
        lines,
    })
}

/// The answer an RMA notification carries; any other kind is not this
/// connector's (a business error, as with every connector).
pub(crate) fn answer_of(action: &Action) -> Result<&PartnerAnswer, SinkError> {
    match (action.kind, &action.answer) {
        (ActionKind::EdiRmaNotification, Some(answer)) => Ok(answer),
        (ActionKind::EdiRmaNotification, None) => Err(SinkError::business(
            "invalid_action",
            format!("{}: the notification carries no answer", action.rma_number),
        )),
        (
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::CarrierLabel
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus,
            _,
        ) => Err(SinkError::business(
            "unsupported_action",
            format!(
                "the x12-partner connector does not handle {}",
                action.kind.as_str()
            ),
        )),
    }
}

/// A rejection's free text as RDR04: delimiters and line breaks become
/// spaces, runs of spaces one, cut to 80 characters; `None` if nothing is
/// left. The reason is for people, so it is tidied rather than refused.
fn description(reason: &str, separators: Separators) -> Option<String> {
    let delimiters = [
        Some(separators.element()),
        Some(separators.component()),
        Some(separators.segment()),
        separators.repetition(),
    ];
    let replaced: String = reason
        .chars()
        .map(|c| {
            if c.is_control() || !c.is_ascii() || delimiters.contains(&Some(c)) {
                ' '
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = replaced.split_whitespace().collect();
    let joined: String = words.join(" ").chars().take(DESCRIPTION_MAX).collect();
    let trimmed = joined.trim_end().to_owned();
    (!trimmed.is_empty()).then_some(trimmed)
}
