//! The WMS simulator's REST contract (`backhaul-sim`, kind `wms`): expected
//! receipts (ASNs) and their cancellation.

use backhaul_domain::action::{ActionKind, ActionResult};
use backhaul_engine::{DeliveryRequest, SinkError};
use http::Method;
use serde_json::{Value, json};

use crate::http::{Mapping, WireRequest, wire};

pub(crate) struct WmsMapping;

impl Mapping for WmsMapping {
    fn encode(&self, request: &DeliveryRequest<'_>) -> Result<WireRequest, SinkError> {
        let a = request.action;
        match a.kind {
            ActionKind::WmsExpectedReceipt => Ok(WireRequest {
                method: Method::POST,
                path: "/wms/expected-receipts".to_owned(),
                body: json!({
                    "rma": a.rma_number,
                    "return_id": a.return_id,
                    "site": a.site,
                    "lines": a.lines.iter().map(|l| json!({
                        "line_no": l.line_no,
                        "sku": l.sku,
                        "quantity": l.quantity,
                    })).collect::<Vec<_>>(),
                }),
            }),
            ActionKind::WmsCancelExpectedReceipt => {
                let asn = wire::prerequisite(request, ActionKind::WmsExpectedReceipt)?;
                Ok(WireRequest {
                    method: Method::POST,
                    path: format!(
                        "/wms/expected-receipts/{}/cancel",
                        wire::path_segment(asn.as_str())
                    ),
                    body: json!({ "reason": "return cancelled" }),
                })
            }
            ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::CarrierLabel
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => Err(SinkError::business(
                "unsupported_action",
                format!("the WMS connector does not handle {}", a.kind.as_str()),
            )),
        }
    }

    fn decode(&self, request: &DeliveryRequest<'_>, body: &Value) -> Result<ActionResult, String> {
        match request.action.kind {
            ActionKind::WmsExpectedReceipt => wire::document(body, "asn"),
            ActionKind::WmsCancelExpectedReceipt
            | ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::CarrierLabel
            | ActionKind::CarrierVoidLabel
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => Ok(ActionResult::Accepted),
        }
    }
}
