//! `POST /v1/eligibility`: would this return be accepted, and why? For
//! portals and call centres before the customer commits. The body is the
//! request a `POST /v1/returns` would send; the answer is the policy's
//! assessment (verdict per line, every rule with whether it passed and
//! why) and nothing is stored. It reads master data from the hub's memory
//! and never calls the ERP, so it answers in well under a millisecond of
//! hub time.

use axum::Json;
use axum::extract::State;
use backhaul_domain::eligibility::Assessment;
use backhaul_domain::model::ReturnRequest;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::json::JsonBody;

pub(crate) async fn check(
    State(state): State<AppState>,
    principal: Principal,
    body: JsonBody<ReturnRequest>,
) -> Result<Json<Assessment>, ApiError> {
    let assessment = state
        .engine
        .check_eligibility(body.value, &principal.partner)
        .await?;
    Ok(Json(assessment))
}
