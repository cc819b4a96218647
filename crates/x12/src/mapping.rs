//! Maps an inbound 180 to the hub's canonical [`ReturnRequest`] (channel
//! `edi`). What a 180 does not carry (currency, receiving site, requested
//! outcome, canonical reason codes) comes from the partner agreement in
//! [`MappingSettings`]. Amounts stay exact decimals throughout.

use std::collections::BTreeMap;

use backhaul_domain::action::EDI_REFERENCE;
use backhaul_domain::model::{Channel, RequestedOutcome, ReturnLine, ReturnRequest};
use backhaul_domain::values::{
    Currency, CustomerAccount, ExternalRef, LineNo, Money, OrderRef, Quantity, ReasonCode,
    SiteCode, Sku, Uom, ValueError,
};
use rust_decimal::Decimal;

use crate::ts180::ReturnAuthorizationRequest;

/// Why a valid 180 still cannot become a canonical return request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("line {line_id}: {source}")]
    Value {
        line_id: String,
        #[source]
        source: ValueError,
    },
    #[error("line {line_id}: no original order reference (PRF01)")]
    MissingOrder { line_id: String },
    #[error("line {line_id}: partner reason {code:?} has no canonical reason code")]
    UnknownReason { line_id: String, code: String },
    #[error("{0}")]
    Header(ValueError),
}

/// The parts of a trading partner agreement the mapping needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingSettings {
    pub currency: Currency,
    pub site: SiteCode,
    pub requested_outcome: RequestedOutcome,
    /// Partner RDR02 codes to canonical reason codes.
    pub reasons: BTreeMap<String, ReasonCode>,
    /// Used when a line has no reason code.
    pub default_reason: ReasonCode,
}

/// Builds the canonical request. The partner's id becomes the customer
/// account; its request number is kept as external reference `edi`. The
/// order reference is that of the first line (PRF), as the canonical model
/// has one order per return.
pub fn to_return_request(
    request: &ReturnAuthorizationRequest,
    settings: &MappingSettings,
) -> Result<ReturnRequest, MappingError> {
    let customer = CustomerAccount::parse(&request.partner.id).map_err(MappingError::Header)?;
    let edi_ref = ExternalRef::parse(&request.reference).map_err(MappingError::Header)?;
    let mut order_ref = None;
    let mut lines = Vec::with_capacity(request.lines.len());
    for (i, line) in request.lines.iter().enumerate() {
        let value = |source| MappingError::Value {
            line_id: line.line_id.clone(),
            source,
        };
        let order = line
            .order_ref
            .as_deref()
            .ok_or_else(|| MappingError::MissingOrder {
                line_id: line.line_id.clone(),
            })?;
        if order_ref.is_none() {
            order_ref = Some(OrderRef::parse(order).map_err(value)?);
        }
        let reason_code =
            match &line.reason_code {
                None => settings.default_reason.clone(),
                Some(code) => settings.reasons.get(code).cloned().ok_or_else(|| {
                    MappingError::UnknownReason {
                        line_id: line.line_id.clone(),
                        code: code.clone(),
                    }
                })?,
            };
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        lines.push(ReturnLine {
            line_no: LineNo::parse(line_no).map_err(value)?,
            sku: Sku::parse(&line.sku).map_err(value)?,
            quantity: Quantity::from_decimal(line.quantity).map_err(value)?,
            uom: Uom::parse(&line.uom).map_err(value)?,
            serial_numbers: Vec::new(),
            lot_number: None,
            reason_code,
            requested_outcome: settings.requested_outcome,
            unit_price: Money::new(line.unit_price.unwrap_or(Decimal::ZERO), settings.currency)
                .map_err(value)?,
            unit_tax: Money::new(Decimal::ZERO, settings.currency).map_err(value)?,
            order_line_ref: Some(ExternalRef::parse(&line.line_id).map_err(value)?),
        });
    }
    let order_ref = order_ref.ok_or_else(|| MappingError::MissingOrder {
        line_id: String::new(),
    })?;
    Ok(ReturnRequest {
        channel: Channel::Edi,
        customer,
        order_ref,
        currency: settings.currency,
        site: settings.site.clone(),
        region: None,
        external_refs: BTreeMap::from([(EDI_REFERENCE.to_owned(), edi_ref)]),
        lines,
    })
}
