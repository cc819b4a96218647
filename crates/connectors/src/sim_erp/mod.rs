//! The ERP simulator's REST contract (`backhaul-sim`, kind `erp`): return
//! orders, inventory adjustments, credit memos, supplier claims, repair
//! orders and replacement orders. Quantities and amounts travel as decimal
//! strings.

use backhaul_domain::action::{Action, ActionKind, ActionLine, ActionResult};
use backhaul_domain::values::Money;
use backhaul_engine::{DeliveryRequest, SinkError};
use backhaul_master::CrosswalkKind;
use http::Method;
use serde_json::{Value, json};

use crate::http::{Mapping, WireRequest, wire};

pub(crate) struct ErpMapping {
    /// The ERP's name in the crosswalks: reason codes go out as its codes.
    pub(crate) system: String,
}

fn money_amount(m: Option<Money>) -> Value {
    m.map_or(Value::Null, |m| Value::String(m.amount().to_string()))
}

/// The lines of a supplier claim, repair order or replacement order, each
/// numbered for the document: one return line split over two inspections
/// is two lines, and the ERP wants each number once.
fn unit_lines(lines: &[ActionLine]) -> Vec<Value> {
    lines
        .iter()
        .enumerate()
        .map(|(n, l)| {
            json!({
                "line_no": n + 1,
                "sku": l.sku,
                "quantity": l.quantity,
            })
        })
        .collect()
}

fn currency(action: &Action) -> Option<String> {
    action
        .lines
        .iter()
        .find_map(|l| l.unit_price.or(l.amount))
        .map(|m| m.currency().to_string())
}

impl Mapping for ErpMapping {
    fn encode(&self, request: &DeliveryRequest<'_>) -> Result<WireRequest, SinkError> {
        let a = request.action;
        let unsupported = || {
            SinkError::business(
                "unsupported_action",
                format!("the ERP connector does not handle {}", a.kind.as_str()),
            )
        };
        let (path, body) = match a.kind {
            ActionKind::ErpReturnOrder => (
                "/erp/return-orders",
                json!({
                    "rma": a.rma_number,
                    "return_id": a.return_id,
                    "customer": a.customer,
                    "order_ref": a.order_ref,
                    "currency": currency(a),
                    "lines": a.lines.iter().map(|l| {
                        let mut line = json!({
                            "line_no": l.line_no,
                            "sku": l.sku,
                            "quantity": l.quantity,
                            "unit_price": money_amount(l.unit_price),
                        });
                        if let Some(reason) = &l.reason_code {
                            line["reason_code"] = Value::String(request.outbound_code(
                                &self.system,
                                CrosswalkKind::Reason,
                                reason.as_str(),
                            )?);
                        }
                        Ok(line)
                    }).collect::<Result<Vec<_>, SinkError>>()?,
                }),
            ),
            ActionKind::ErpInventoryAdjustment => (
                "/erp/inventory-adjustments",
                json!({
                    "rma": a.rma_number,
                    "return_order": wire::prerequisite(request, ActionKind::ErpReturnOrder)?,
                    "site": a.site,
                    // The adjustment's own line numbers: one return line
                    // split over two dispositions is two adjustment lines,
                    // and the ERP wants each number once.
                    "lines": a.lines.iter().enumerate().map(|(n, l)| {
                        let mut line = json!({
                            "line_no": n + 1,
                            "sku": l.sku,
                            "quantity": l.quantity,
                            "disposition": l.disposition,
                        });
                        if let Some(location) = &l.location {
                            line["location"] = json!(location);
                        }
                        line
                    }).collect::<Vec<_>>(),
                }),
            ),
            ActionKind::ErpCreditMemo => (
                "/erp/credit-memos",
                json!({
                    "rma": a.rma_number,
                    "return_order": wire::prerequisite(request, ActionKind::ErpReturnOrder)?,
                    "currency": currency(a),
                    "lines": a.lines.iter().map(|l| json!({
                        "line_no": l.line_no,
                        "sku": l.sku,
                        "quantity": l.quantity,
                        "amount": money_amount(l.amount),
                    })).collect::<Vec<_>>(),
                }),
            ),
            ActionKind::ErpSupplierClaim => {
                // A claim without a vendor has nobody to go to: an operator
                // names one (a retry with a corrected action) or skips it.
                let vendor = a.vendor().ok_or_else(|| {
                    SinkError::business(
                        "vendor_missing",
                        format!(
                            "the supplier claim of {} names no vendor: the SKU has none in master data",
                            a.rma_number
                        ),
                    )
                })?;
                (
                    "/erp/supplier-claims",
                    json!({
                        "rma": a.rma_number,
                        "return_order": wire::prerequisite(request, ActionKind::ErpReturnOrder)?,
                        "site": a.site,
                        "vendor": vendor,
                        "lines": unit_lines(&a.lines),
                    }),
                )
            }
            ActionKind::ErpRepairOrder => (
                "/erp/repair-orders",
                json!({
                    "rma": a.rma_number,
                    "return_order": wire::prerequisite(request, ActionKind::ErpReturnOrder)?,
                    "site": a.site,
                    "lines": unit_lines(&a.lines),
                }),
            ),
            ActionKind::ErpReplacementOrder => (
                "/erp/replacement-orders",
                json!({
                    "rma": a.rma_number,
                    "return_order": wire::prerequisite(request, ActionKind::ErpReturnOrder)?,
                    "customer": a.customer,
                    "order_ref": a.order_ref,
                    "lines": unit_lines(&a.lines),
                }),
            ),
            ActionKind::ErpCancelReturnOrder => {
                let number = wire::prerequisite(request, ActionKind::ErpReturnOrder)?;
                return Ok(WireRequest {
                    method: Method::POST,
                    path: format!(
                        "/erp/return-orders/{}/cancel",
                        wire::path_segment(number.as_str())
                    ),
                    body: json!({ "reason": "return cancelled" }),
                });
            }
            ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::CarrierLabel
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => return Err(unsupported()),
        };
        Ok(WireRequest {
            method: Method::POST,
            path: path.to_owned(),
            body,
        })
    }

    fn decode(&self, request: &DeliveryRequest<'_>, body: &Value) -> Result<ActionResult, String> {
        if request.action.kind == ActionKind::ErpCancelReturnOrder {
            return Ok(ActionResult::Accepted);
        }
        let mut result = wire::document(body, "number")?;
        if request.action.kind == ActionKind::ErpCreditMemo
            && let ActionResult::Document { amount, .. } = &mut result
        {
            let raw = body
                .get("amount")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("a credit memo answer without `amount`: {body}"))?;
            let currency = currency(request.action)
                .ok_or_else(|| "a credit memo without amounts".to_owned())?;
            *amount = Some(parse_money(raw, &currency)?);
        }
        Ok(result)
    }
}

/// The credit memo's amount; the simulator answers in the currency of the
/// request without naming it.
fn parse_money(raw: &str, currency: &str) -> Result<Money, String> {
    let value = json!({ "amount": raw, "currency": currency });
    serde_json::from_value(value).map_err(|e| format!("amount `{raw}`: {e}"))
}
