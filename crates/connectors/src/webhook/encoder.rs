//! The event a status-change action becomes, and its body. Pure: the body
//! depends only on the action, so every attempt of a delivery sends the
//! same bytes (only the timestamp and signature headers change).

use backhaul_domain::action::{Action, ActionKind};
use backhaul_engine::SinkError;
use serde_json::json;

/// The event type of a return's status change; what subscribers filter on.
pub const STATUS_CHANGED: &str = "return.status_changed";

/// One event, ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    pub(crate) event_type: &'static str,
    /// The new status, for the subscribers' status filters.
    pub(crate) status: &'static str,
    pub(crate) body: Vec<u8>,
}

/// The event of a `portal_status` action; any other kind is not this
/// connector's (a business error, as with every connector).
pub(crate) fn encode(action: &Action) -> Result<Encoded, SinkError> {
    let (ActionKind::PortalStatus, Some(update)) = (action.kind, &action.status) else {
        return Err(SinkError::business(
            "unsupported_action",
            format!(
                "the webhook connector does not handle {}",
                action.kind.as_str()
            ),
        ));
    };
    let body = json!({
        "type": STATUS_CHANGED,
        "timestamp": update.at,
        "data": {
            "return_id": action.return_id,
            "rma_number": action.rma_number,
            "customer": action.customer,
            "order_ref": action.order_ref,
            "status": update.status,
            "stage": update.stage,
            "owner": update.owner,
            "version": update.version,
            "at": update.at,
        },
    });
    let body = serde_json::to_vec(&body)
        .map_err(|e| SinkError::business("encode_failed", e.to_string()))?;
    Ok(Encoded {
        event_type: STATUS_CHANGED,
        status: update.status.as_str(),
        body,
    })
}
