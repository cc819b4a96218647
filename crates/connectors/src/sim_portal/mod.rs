//! The portal simulator's REST contract (`backhaul-sim`, kind `portal`):
//! status updates for the customer-facing portal.

use backhaul_domain::action::{ActionKind, ActionResult};
use backhaul_engine::{DeliveryRequest, SinkError};
use http::Method;
use serde_json::{Value, json};

use crate::http::{Mapping, WireRequest};

pub(crate) struct PortalMapping;

impl Mapping for PortalMapping {
    fn encode(&self, request: &DeliveryRequest<'_>) -> Result<WireRequest, SinkError> {
        let a = request.action;
        let (ActionKind::PortalStatus, Some(status)) = (a.kind, &a.status) else {
            return Err(SinkError::business(
                "unsupported_action",
                format!("the portal connector does not handle {}", a.kind.as_str()),
            ));
        };
        Ok(WireRequest {
            method: Method::POST,
            path: "/portal/status".to_owned(),
            body: json!({
                "rma": a.rma_number,
                "return_id": a.return_id,
                "status": status.status,
                "stage": status.stage,
                "owner": status.owner,
                "version": status.version,
                "at": status.at,
            }),
        })
    }

    fn decode(
        &self,
        _request: &DeliveryRequest<'_>,
        _body: &Value,
    ) -> Result<ActionResult, String> {
        Ok(ActionResult::Accepted)
    }
}
