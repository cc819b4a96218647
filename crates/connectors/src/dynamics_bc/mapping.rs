//! The pure part of the Business Central connector: the credit memo as a
//! `salesCreditMemos` deep insert of API v2.0, the answers back to results,
//! and Business Central's error shape. No I/O; the exchanges are in
//! `mod.rs`.
//!
//! API v2.0 is OData v4 in JSON: a collection is `{"value": […]}`, an
//! entity a plain object with `@odata.etag`; numbers are JSON numbers.

use backhaul_domain::action::{Action, ActionLine, ActionResult};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryRequest, SinkError};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::DynamicsBcConfig;
use crate::vendor::{self, VendorError, odata_string, query_component};

/// Business Central's field for the customer's own document number
/// (`externalDocumentNumber`, 35 characters) carries the hub's reference:
/// the look-up key that keeps a retry from creating a second credit memo.
pub(crate) const REFERENCE_FIELD: &str = "externalDocumentNumber";
const REFERENCE_MAX: usize = 35;

/// Business Central keeps unit prices to five decimals.
const UNIT_PRICE_DECIMALS: u32 = 5;

fn company(settings: &DynamicsBcConfig) -> String {
    format!("/api/v2.0/companies({})", settings.company_id)
}

/// The company itself: what the health check reads.
pub(crate) fn company_path(settings: &DynamicsBcConfig) -> String {
    company(settings)
}

/// Where sales credit memos are created.
pub(crate) fn credit_memos_path(settings: &DynamicsBcConfig) -> String {
    format!("{}/salesCreditMemos", company(settings))
}

/// The credit memo's reference: one return may have several credit memos
/// (one per parcel), so the reference names the delivery.
pub(crate) fn credit_reference(request: &DeliveryRequest<'_>) -> Result<String, SinkError> {
    vendor::delivery_reference(request, REFERENCE_FIELD, REFERENCE_MAX)
}

/// The look-up of a credit memo by the hub's reference and customer.
pub(crate) fn credit_lookup_path(
    settings: &DynamicsBcConfig,
    action: &Action,
    reference: &str,
) -> String {
    let filter = format!(
        "{REFERENCE_FIELD} eq {} and customerNumber eq {}",
        odata_string(reference),
        odata_string(action.customer.as_str())
    );
    format!(
        "{}?$filter={}&$select={}&$top=1",
        credit_memos_path(settings),
        query_component(&filter),
        "id,number,externalDocumentNumber,totalAmountIncludingTax,currencyCode"
    )
}

/// A line's unit price: the credited amount over the quantity, to Business
/// Central's five decimals. Business Central multiplies it back and rounds
/// to the currency; a unit price whose product does not give back the
/// hub's amount to the cent is refused (`amount_not_divisible`) rather than
/// credited a cent off.
fn unit_price(line: &ActionLine, amount: Decimal, minor_units: u32) -> Result<Decimal, SinkError> {
    let quantity = line.quantity.get();
    if quantity.is_zero() {
        return Err(SinkError::business(
            "amount_not_divisible",
            format!("credit line {} has no quantity", line.line_no),
        ));
    }
    let unit = (amount / quantity).round_dp(UNIT_PRICE_DECIMALS);
    if (unit * quantity).round_dp(minor_units) != amount.round_dp(minor_units) {
        return Err(SinkError::business(
            "amount_not_divisible",
            format!(
                "credit line {}: {amount} over {quantity} units has no unit price of {UNIT_PRICE_DECIMALS} decimals that gives it back",
                line.line_no
            ),
        ));
    }
    Ok(unit)
}

/// The deep insert of a sales credit memo with its lines. Items and the
/// customer go as they are (`lineObjectNumber`, `customerNumber`). The
/// currency is left out when it is the company's local currency, which
/// Business Central names with an empty code.
pub(crate) fn credit_body(
    settings: &DynamicsBcConfig,
    request: &DeliveryRequest<'_>,
    reference: &str,
) -> Result<Value, SinkError> {
    let a = request.action;
    let lines = a
        .lines
        .iter()
        .map(|l| {
            let amount = l.amount.ok_or_else(|| {
                SinkError::business(
                    "amount_missing",
                    format!(
                        "credit line {} of {} has no amount",
                        l.line_no, a.rma_number
                    ),
                )
            })?;
            let unit = unit_price(l, amount.amount(), amount.currency().minor_units())?;
            Ok(json!({
                "lineType": "Item",
                "lineObjectNumber": l.sku,
                "quantity": vendor::number(l.quantity.get(), "quantity")?,
                "unitPrice": vendor::number(unit, "unit price")?,
            }))
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    let mut body = json!({
        "customerNumber": a.customer,
        REFERENCE_FIELD: reference,
        "salesCreditMemoLines": lines,
    });
    if let Some(currency) = vendor::currency(a)
        && settings.local_currency.as_deref() != Some(currency.as_str())
    {
        body["currencyCode"] = Value::String(currency);
    }
    Ok(body)
}

/// A credit memo (created or found): its number and Business Central's
/// total including tax, in its currency (empty: the local currency).
fn credit_result(
    settings: &DynamicsBcConfig,
    entity: &Value,
    action: &Action,
) -> Result<ActionResult, String> {
    let number = entity
        .get("number")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the answer has no `number`: {entity}"))?;
    let amount = entity
        .get("totalAmountIncludingTax")
        .and_then(vendor::decimal)
        .ok_or_else(|| format!("a credit memo without `totalAmountIncludingTax`: {entity}"))?;
    let currency = entity
        .get("currencyCode")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or_else(|| settings.local_currency.clone())
        .or_else(|| vendor::currency(action))
        .ok_or_else(|| "a credit memo without a currency".to_owned())?;
    Ok(ActionResult::Document {
        number: ExternalRef::parse(number).map_err(|e| format!("`number`: {e}"))?,
        amount: Some(vendor::money(amount, &currency)?),
    })
}

pub(crate) fn decode_credit(
    settings: &DynamicsBcConfig,
    body: &Value,
    action: &Action,
) -> Result<ActionResult, String> {
    credit_result(settings, body, action)
}

/// The credit memo found by the look-up, if any.
pub(crate) fn decode_credit_lookup(
    settings: &DynamicsBcConfig,
    body: &Value,
    action: &Action,
) -> Result<Option<ActionResult>, String> {
    let values = body
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("an OData collection without `value`: {body}"))?;
    values
        .first()
        .map(|found| credit_result(settings, found, action))
        .transpose()
}

/// Code and message of Business Central's error shape:
/// `{"error": {"code", "message"}}`. Codes are grouped by prefix:
/// `BadRequest_*`, `Authentication_*`, `Authorization_*`, `Internal_*`,
/// `Application_*` (the application's validation, e.g. an unknown item).
pub(crate) fn error_fields(body: &Value) -> VendorError {
    let Some(error) = body.get("error") else {
        return VendorError::default();
    };
    VendorError {
        code: error.get("code").and_then(Value::as_str).map(str::to_owned),
        message: error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}
