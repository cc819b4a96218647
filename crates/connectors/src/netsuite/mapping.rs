//! The pure part of the NetSuite connector: canonical actions to REST
//! record service requests (a return authorization, and the item receipt
//! and credit memo transformed from it), answers back to results, and
//! NetSuite's error shape. No I/O; the exchanges are in `mod.rs`.
//!
//! Records refer to other records as `{"id": …}`; sublists are
//! `{"items": […]}`; numbers are JSON numbers. A create answers 204 with
//! the new record's URL in `Location`, and the record is read back for its
//! document number (`tranId`).

use std::collections::BTreeMap;

use backhaul_domain::action::{Action, ActionResult};
use backhaul_domain::values::ExternalRef;
use backhaul_engine::{DeliveryRequest, SinkError};
use backhaul_master::CrosswalkKind;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::NetSuiteConfig;
use crate::vendor::{self, VendorError};

/// Root of the REST record service.
pub(crate) const RECORDS: &str = "/services/rest/record/v1";

pub(crate) const RETURN_AUTHORIZATION: &str = "returnAuthorization";
pub(crate) const ITEM_RECEIPT: &str = "itemReceipt";
pub(crate) const CREDIT_MEMO: &str = "creditMemo";

/// `value` as a NetSuite external ID, which may hold only letters, digits,
/// `_` and `-`: every other byte, and `_` itself, becomes `_` and two hex
/// digits. So the encoding is one to one and two delivery keys never
/// share an external ID (`RMA-1:erp_credit_memo:7` becomes
/// `RMA-1_3Aerp_5Fcredit_5Fmemo_3A7`).
pub(crate) fn external_id(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("_{byte:02X}"));
        }
    }
    out
}

/// The return authorization's external ID: its RMA number. One return has
/// one return authorization, and the credit memo and item receipt, which
/// know the RMA but not the authorization's internal id, reach it by this
/// external ID (`eid:` works wherever an internal id does).
pub(crate) fn return_authorization_id(action: &Action) -> String {
    external_id(&action.rma_number)
}

/// One record by external ID, with only `fields`.
pub(crate) fn by_external_id(record: &str, eid: &str, fields: &str) -> String {
    format!("{RECORDS}/{record}/eid:{eid}?fields={fields}")
}

/// One record by internal id, with only `fields`.
pub(crate) fn by_id(record: &str, id: &str, fields: &str) -> String {
    format!(
        "{RECORDS}/{record}/{}?fields={fields}",
        crate::http::wire::path_segment(id)
    )
}

/// The return authorization of `action`, whole (for its deletion).
pub(crate) fn return_authorization(action: &Action) -> String {
    format!(
        "{RECORDS}/{RETURN_AUTHORIZATION}/eid:{}",
        return_authorization_id(action)
    )
}

/// The item lines of the return authorization of `action`.
pub(crate) fn return_authorization_lines(action: &Action) -> String {
    format!(
        "{RECORDS}/{RETURN_AUTHORIZATION}/eid:{}/item?expandSubResources=true",
        return_authorization_id(action)
    )
}

/// Where return authorizations are created.
pub(crate) fn return_authorizations() -> String {
    format!("{RECORDS}/{RETURN_AUTHORIZATION}")
}

/// The transformation of the return authorization of `action` into a
/// `target` record, whose item lines are the ones the request lists.
pub(crate) fn transform(action: &Action, target: &str) -> String {
    format!(
        "{RECORDS}/{RETURN_AUTHORIZATION}/eid:{}/!transform/{target}?replace=item",
        return_authorization_id(action)
    )
}

/// The return authorization: the customer, the RMA as the customer's
/// reference (`otherRefNum`), one line per authorised return line at its
/// unit price. Customers and SKUs go as they are, as NetSuite internal ids.
pub(crate) fn return_authorization_body(
    settings: &NetSuiteConfig,
    system: &str,
    request: &DeliveryRequest<'_>,
) -> Result<Value, SinkError> {
    let a = request.action;
    let items = a
        .lines
        .iter()
        .map(|l| {
            let mut item = json!({
                "item": { "id": l.sku },
                "quantity": vendor::number(l.quantity.get(), "quantity")?,
            });
            if let Some(price) = l.unit_price {
                item["rate"] = vendor::number(price.amount(), "unit price")?;
            }
            if let (Some(field), Some(reason)) = (&settings.reason_field, &l.reason_code) {
                item[field.as_str()] = Value::String(request.outbound_code(
                    system,
                    CrosswalkKind::Reason,
                    reason.as_str(),
                )?);
            }
            Ok(item)
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    let mut body = json!({
        "externalId": return_authorization_id(a),
        "entity": { "id": a.customer },
        "otherRefNum": a.rma_number,
        "memo": format!("{} (order {})", a.rma_number, a.order_ref),
        "item": { "items": items },
    });
    if let Some(subsidiary) = &settings.subsidiary_id {
        body["subsidiary"] = json!({ "id": subsidiary });
    }
    if let Some(location) = &settings.location_id {
        body["location"] = json!({ "id": location });
    }
    Ok(body)
}

/// One item line of the return authorization, as read back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AuthorizedLine {
    /// NetSuite's line key, which the transformed record's `orderLine`
    /// points at.
    pub(crate) line: Value,
    pub(crate) item: String,
}

/// The item lines of a return authorization read with
/// `expandSubResources`.
pub(crate) fn decode_lines(body: &Value) -> Result<Vec<AuthorizedLine>, String> {
    body.get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("a sublist answer without `items`: {body}"))?
        .iter()
        .map(|line| {
            let key = line
                .get("line")
                .filter(|l| l.is_number() || l.is_string())
                .ok_or_else(|| format!("a return authorization line without `line`: {line}"))?;
            let item = line
                .get("item")
                .and_then(|i| i.get("id"))
                .and_then(|id| match id {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    Value::Null | Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
                })
                .ok_or_else(|| format!("a return authorization line without `item.id`: {line}"))?;
            Ok(AuthorizedLine {
                line: key.clone(),
                item,
            })
        })
        .collect()
}

/// What one line of a transformed record receives or credits.
#[derive(Debug, Default)]
struct Allotment {
    quantity: Decimal,
    amount: Option<Decimal>,
}

/// The hub's lines put on the return authorization's lines by SKU (one
/// return line split over two dispositions is one authorised line). A SKU
/// the authorization does not have is a business error: NetSuite would
/// refuse the line, and a person must see why.
fn allot(
    action: &Action,
    lines: &[AuthorizedLine],
    with_amounts: bool,
) -> Result<Vec<(Value, Allotment)>, SinkError> {
    let mut allotted: BTreeMap<usize, Allotment> = BTreeMap::new();
    for l in &action.lines {
        let index = lines
            .iter()
            .position(|authorized| authorized.item == l.sku.as_str())
            .ok_or_else(|| {
                SinkError::business(
                    "line_not_authorized",
                    format!(
                        "{} is not on the return authorization of {}",
                        l.sku, action.rma_number
                    ),
                )
            })?;
        let entry = allotted.entry(index).or_default();
        entry.quantity += l.quantity.get();
        if with_amounts {
            let amount = l.amount.ok_or_else(|| {
                SinkError::business(
                    "amount_missing",
                    format!(
                        "credit line {} of {} has no amount",
                        l.line_no, action.rma_number
                    ),
                )
            })?;
            entry.amount = Some(entry.amount.unwrap_or_default() + amount.amount());
        }
    }
    Ok(allotted
        .into_iter()
        .filter_map(|(index, a)| lines.get(index).map(|l| (l.line.clone(), a)))
        .collect())
}

/// The item receipt transformed from the return authorization: every
/// dispositioned unit received (the disposition is the hub's record; a
/// write-off of scrapped units is NetSuite's next step, not this one).
pub(crate) fn item_receipt_body(
    settings: &NetSuiteConfig,
    request: &DeliveryRequest<'_>,
    lines: &[AuthorizedLine],
) -> Result<Value, SinkError> {
    let items = allot(request.action, lines, false)?
        .into_iter()
        .map(|(line, allotment)| {
            let mut item = json!({
                "orderLine": line,
                "itemReceive": true,
                "quantity": vendor::number(allotment.quantity, "quantity")?,
            });
            if let Some(location) = &settings.location_id {
                item["location"] = json!({ "id": location });
            }
            Ok(item)
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    Ok(json!({
        "externalId": external_id(request.key),
        "memo": request.action.rma_number,
        "item": { "items": items },
    }))
}

/// The credit memo transformed from the return authorization, each line
/// at the hub's amount (NetSuite derives the rate).
pub(crate) fn credit_memo_body(
    request: &DeliveryRequest<'_>,
    lines: &[AuthorizedLine],
) -> Result<Value, SinkError> {
    let items = allot(request.action, lines, true)?
        .into_iter()
        .map(|(line, allotment)| {
            let mut item = json!({
                "orderLine": line,
                "quantity": vendor::number(allotment.quantity, "quantity")?,
            });
            if let Some(amount) = allotment.amount {
                item["amount"] = vendor::number(amount, "amount")?;
            }
            Ok(item)
        })
        .collect::<Result<Vec<_>, SinkError>>()?;
    Ok(json!({
        "externalId": external_id(request.key),
        "memo": request.action.rma_number,
        "item": { "items": items },
    }))
}

/// The internal id at the end of a `Location` header
/// (`…/record/v1/returnAuthorization/647`).
pub(crate) fn id_from_location(location: &str) -> Result<String, String> {
    let id = location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("a `Location` without a record id: {location}"))?;
    Ok(id.to_owned())
}

fn tran_id(body: &Value) -> Result<ExternalRef, String> {
    let number = body
        .get("tranId")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the record has no `tranId`: {body}"))?;
    ExternalRef::parse(number).map_err(|e| format!("`tranId`: {e}"))
}

/// A transaction read back: its document number.
pub(crate) fn decode_document(body: &Value) -> Result<ActionResult, String> {
    Ok(ActionResult::Document {
        number: tran_id(body)?,
        amount: None,
    })
}

/// A credit memo read back: its document number and total, in the
/// action's currency (the record names its currency by internal id only).
pub(crate) fn decode_credit_memo(body: &Value, action: &Action) -> Result<ActionResult, String> {
    let total = body
        .get("total")
        .and_then(vendor::decimal)
        .ok_or_else(|| format!("a credit memo without `total`: {body}"))?;
    let currency =
        vendor::currency(action).ok_or_else(|| "a credit memo without amounts".to_owned())?;
    Ok(ActionResult::Document {
        number: tran_id(body)?,
        amount: Some(vendor::money(total, &currency)?),
    })
}

/// Code and message of NetSuite's error shape (RFC 9457 with extensions):
/// `{"type", "title", "status", "o:errorDetails": [{"detail",
/// "o:errorCode", "o:errorPath"?}]}`. The first detail is the error; its
/// path, when there is one, says which field of the request it concerns.
pub(crate) fn error_fields(body: &Value) -> VendorError {
    let detail = body
        .get("o:errorDetails")
        .and_then(Value::as_array)
        .and_then(|d| d.first());
    let code = detail
        .and_then(|d| d.get("o:errorCode"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = detail
        .and_then(|d| d.get("detail"))
        .and_then(Value::as_str)
        .map(|text| {
            match detail
                .and_then(|d| d.get("o:errorPath"))
                .and_then(Value::as_str)
            {
                Some(path) => format!("{text} (at {path})"),
                None => text.to_owned(),
            }
        })
        .or_else(|| body.get("title").and_then(Value::as_str).map(str::to_owned));
    VendorError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ids_keep_letters_digits_and_hyphens_and_escape_the_rest() {
        assert_eq!(external_id("RMA-000042"), "RMA-000042");
        assert_eq!(
            external_id("RMA-1:erp_credit_memo:7"),
            "RMA-1_3Aerp_5Fcredit_5Fmemo_3A7"
        );
        // One to one: an underscore in the input cannot be confused with
        // an escape.
        assert_ne!(external_id("a_3A"), external_id("a:"));
    }

    #[test]
    fn the_record_id_is_the_last_segment_of_the_location() {
        assert_eq!(
            id_from_location(
                "https://demo.suitetalk.api.netsuite.com/services/rest/record/v1/creditMemo/647"
            )
            .unwrap(),
            "647"
        );
        assert!(id_from_location("https://demo/services/rest/async/v1/job/x").is_err());
    }
}
