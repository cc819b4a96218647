//! The carrier simulator's REST contract (`backhaul-sim`, kind `carrier`):
//! return labels and voids (the sink), and its scan feeds (the source, in
//! `tracking`).

pub(crate) mod tracking;

use backhaul_domain::action::{ActionKind, ActionResult};
use backhaul_domain::model::Label;
use backhaul_engine::{DeliveryRequest, SinkError};
use http::Method;
use serde_json::{Value, json};

use crate::http::{Mapping, WireRequest, wire};

pub(crate) struct CarrierMapping;

impl Mapping for CarrierMapping {
    fn encode(&self, request: &DeliveryRequest<'_>) -> Result<WireRequest, SinkError> {
        let a = request.action;
        match a.kind {
            ActionKind::CarrierLabel => Ok(WireRequest {
                method: Method::POST,
                path: "/carrier/labels".to_owned(),
                body: json!({
                    "rma": a.rma_number,
                    "return_id": a.return_id,
                    "customer": a.customer,
                    "to_site": a.site,
                    "parcels": 1,
                }),
            }),
            ActionKind::CarrierVoidLabel => {
                let tracking = a.tracking_number.as_ref().ok_or_else(|| {
                    SinkError::business("invalid_action", "a void without a tracking number")
                })?;
                Ok(WireRequest {
                    method: Method::POST,
                    path: format!(
                        "/carrier/labels/{}/void",
                        wire::path_segment(tracking.as_str())
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
            | ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => Err(SinkError::business(
                "unsupported_action",
                format!("the carrier connector does not handle {}", a.kind.as_str()),
            )),
        }
    }

    fn decode(&self, request: &DeliveryRequest<'_>, body: &Value) -> Result<ActionResult, String> {
        match request.action.kind {
            ActionKind::CarrierLabel => {
                // The simulator's answer has exactly the canonical label's
                // fields; anything else is refused by the label's own parse.
                let label: Label = serde_json::from_value(json!({
                    "carrier": body.get("carrier"),
                    "tracking_number": body.get("tracking_number"),
                    "label_ref": body.get("label_ref"),
                    "expires_at": body.get("expires_at"),
                }))
                .map_err(|e| format!("label answer: {e}: {body}"))?;
                Ok(ActionResult::Label(label))
            }
            ActionKind::CarrierVoidLabel
            | ActionKind::ErpReturnOrder
            | ActionKind::ErpInventoryAdjustment
            | ActionKind::ErpCreditMemo
            | ActionKind::ErpCancelReturnOrder
            | ActionKind::ErpSupplierClaim
            | ActionKind::ErpRepairOrder
            | ActionKind::ErpReplacementOrder
            | ActionKind::WmsExpectedReceipt
            | ActionKind::WmsCancelExpectedReceipt
            | ActionKind::PortalStatus
            | ActionKind::EdiRmaNotification => Ok(ActionResult::Accepted),
        }
    }
}
